//! ExternalSecret `status`, as ESO writes it so Argo CD's built-in ExternalSecret health check
//! works unchanged: one `Ready` condition with ESO's reasons and messages, `refreshTime`,
//! `syncedResourceVersion` and `binding`.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// ESO's condition reasons.
pub mod reason {
    pub const SYNCED: &str = "SecretSynced";
    pub const SYNCED_ERROR: &str = "SecretSyncedError";
    pub const DELETED: &str = "SecretDeleted";
    pub const MISSING: &str = "SecretMissing";
}

/// ESO's condition messages (constants of `externalsecret_controller.go`).
pub mod message {
    pub const SYNCED: &str = "secret synced";
    pub const PROVIDER_ERROR: &str = "could not get secret data from provider";
    pub const UPDATE_ERROR: &str = "could not update secret";
    pub const MERGE_MISSING: &str = "secret will not be created due to CreationPolicy=Merge";
}

/// The outcome of one reconcile, as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ready: bool,
    pub reason: &'static str,
    /// ESO's short message; details go to a Warning event and the log, never values.
    pub message: String,
    /// For a successful sync: its start time, the `<generation>-<meta hash>` synced, and the
    /// Secret name for `binding`.
    pub synced: Option<(OffsetDateTime, String, String)>,
}

/// RFC 3339 at second precision, as `metav1.Time` serialises.
pub fn timestamp(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default()
}

/// The merge patch for the status subresource. The `Ready` condition keeps its
/// `lastTransitionTime` when its status did not change; a failure leaves `refreshTime`,
/// `syncedResourceVersion` and `binding` as they were.
pub fn patch(current_status: Option<&Value>, outcome: &Outcome, now: OffsetDateTime) -> Value {
    let status_word = if outcome.ready { "True" } else { "False" };
    let previous = current_status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")));
    let transition = match previous {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status_word) => {
            c.get("lastTransitionTime").cloned().unwrap_or_else(|| json!(timestamp(now)))
        }
        _ => json!(timestamp(now)),
    };
    let mut status = json!({
        "conditions": [{
            "type": "Ready",
            "status": status_word,
            "reason": outcome.reason,
            "message": outcome.message,
            "lastTransitionTime": transition,
        }]
    });
    if let Some((refreshed, version, secret)) = &outcome.synced {
        status["refreshTime"] = json!(timestamp(*refreshed));
        status["syncedResourceVersion"] = json!(version);
        status["binding"] = json!({ "name": secret });
    }
    json!({ "status": status })
}

/// Whether applying `patch` would change `current_status` (no status write otherwise).
pub fn changes(current_status: Option<&Value>, patch: &Value) -> bool {
    let Some(current) = current_status else { return true };
    let Some(new) = patch.get("status").and_then(Value::as_object) else { return false };
    new.iter().any(|(k, v)| current.get(k) != Some(v))
}

/// `status.refreshTime` and `status.syncedResourceVersion` of an ExternalSecret object.
pub fn last_sync(status: Option<&Value>) -> super::policy::LastSync {
    let get = |k: &str| status.and_then(|s| s.get(k)).and_then(Value::as_str);
    super::policy::LastSync {
        refresh_time: get("refreshTime").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
        synced_resource_version: get("syncedResourceVersion").map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn success_sets_every_field_and_failure_keeps_the_last_sync() {
        let ok = Outcome {
            ready: true,
            reason: reason::SYNCED,
            message: message::SYNCED.into(),
            synced: Some((now(), "3-abc".into(), "db-creds".into())),
        };
        let p = patch(None, &ok, now());
        assert_eq!(
            p,
            json!({"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced", "message": "secret synced", "lastTransitionTime": "2023-11-14T22:13:20Z"}],
                "refreshTime": "2023-11-14T22:13:20Z",
                "syncedResourceVersion": "3-abc",
                "binding": {"name": "db-creds"},
            }})
        );
        assert_eq!(last_sync(p.get("status")).synced_resource_version.as_deref(), Some("3-abc"));
        assert_eq!(last_sync(p.get("status")).refresh_time, Some(now()));
        let failed = Outcome { ready: false, reason: reason::SYNCED_ERROR, message: message::PROVIDER_ERROR.into(), synced: None };
        let later = now() + time::Duration::seconds(60);
        let f = patch(p.get("status"), &failed, later);
        assert!(f["status"].get("refreshTime").is_none());
        assert_eq!(f["status"]["conditions"][0]["lastTransitionTime"], json!("2023-11-14T22:14:20Z"));
        // Same status again: the transition time stays, and nothing changes.
        let mut merged = p["status"].clone();
        merged["conditions"] = f["status"]["conditions"].clone();
        let again = patch(Some(&merged), &failed, later + time::Duration::seconds(60));
        assert_eq!(again["status"]["conditions"][0]["lastTransitionTime"], json!("2023-11-14T22:14:20Z"));
        assert!(!changes(Some(&merged), &again));
        assert!(changes(Some(&merged), &patch(Some(&merged), &ok, later)));
    }
}
