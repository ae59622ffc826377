//! Stores the operator's trust rules refuse (`resolve::trust`): logged when the controller first
//! sees them (so a migration from ESO shows its breakage at start) and after each change, and
//! marked on the SecretStore's own status as ESO marks an invalid store (`Ready=False`, reason
//! `InvalidProviderConfig`).

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use super::objects;
use crate::api::{EsoKind, StoreRefKind};
use crate::resolve::stores::Catalog;
use crate::settings::Settings;

/// ESO's reason for a store whose provider configuration cannot be used.
pub const REASON_INVALID: &str = "InvalidProviderConfig";
/// ESO's reason and message for a valid store.
pub const REASON_VALID: &str = "Valid";
pub const MESSAGE_VALID: &str = "store validated";

/// Why `store` would be refused, if it would. `None` for a store of another controller class and
/// for a store whose spec is invalid (reported to its ExternalSecrets in detail).
pub fn refusal(store: &DynamicObject, kind: StoreRefKind, settings: &Settings, controller_class: &str) -> Option<String> {
    let value = objects::to_value(store);
    let class = value.pointer("/spec/controller").and_then(Value::as_str).unwrap_or("");
    if !super::wave::class_matches(class, controller_class) {
        return None;
    }
    let eso_kind = if kind == StoreRefKind::SecretStore { EsoKind::SecretStore } else { EsoKind::ClusterSecretStore };
    let mut catalog = Catalog::default();
    catalog.add_store(&objects::document(value), eso_kind, settings).ok()?;
    let store = catalog.stores().next()?;
    // Escaped as a Problem is: the reason may quote the store's fields (roles, hosts).
    crate::resolve::trust::check(store, &settings.trust, settings.controller)
        .err()
        .map(|why| format!("[Refused] {}", crate::problem::printable(&why)))
}

/// Logs a refusal of `store` (its ExternalSecrets will get Ready=False) and writes the
/// SecretStore's Ready condition: `False`/`InvalidProviderConfig` while refused; back to
/// `True`/`Valid` only where this controller had set it `False` for a refusal. Writes only when
/// the condition changes (a background task; failures are logged at debug level).
pub fn review(store: &DynamicObject, kind: StoreRefKind, settings: &Settings, controller_class: &str, client: &Client) {
    let refused = refusal(store, kind, settings, controller_class);
    let ns = store.namespace();
    if let Some(why) = &refused {
        let name = match &ns {
            Some(ns) => format!("{} {ns}/{}", kind.as_str(), store.name_any()),
            None => format!("{} {}", kind.as_str(), store.name_any()),
        };
        tracing::warn!("{name}: {why}");
    }
    let (Some(ns), StoreRefKind::SecretStore) = (ns, kind) else { return };
    let current = store.data.pointer("/status/conditions").and_then(Value::as_array).and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    let Some(wanted) = wanted_condition(refused.as_deref(), current) else { return };
    let now = super::status::timestamp(time::OffsetDateTime::now_utc());
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": wanted.0, "reason": wanted.1, "message": wanted.2, "lastTransitionTime": now,
    }]}});
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &objects::resource(EsoKind::SecretStore));
    let name = store.name_any();
    tokio::spawn(async move {
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::debug!("status of SecretStore {ns}/{name}: {}", objects::api_error(&e));
        }
    });
}

/// The Ready condition to write as `(status, reason, message)`, or `None` to leave it as it is.
fn wanted_condition(refused: Option<&str>, current: Option<&Value>) -> Option<(&'static str, &'static str, String)> {
    match (refused, current) {
        (Some(why), c) if c.is_none_or(|c| c["status"] != "False" || c["message"] != why) => {
            Some(("False", REASON_INVALID, why.to_string()))
        }
        (None, Some(c)) if c["reason"] == REASON_INVALID && c["message"].as_str().is_some_and(|m| m.starts_with("[Refused]")) => {
            Some(("True", REASON_VALID, MESSAGE_VALID.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_condition_is_written_only_when_it_changes() {
        let refused = json!({"type": "Ready", "status": "False", "reason": REASON_INVALID, "message": "[Refused] why"});
        assert_eq!(wanted_condition(Some("[Refused] why"), None).map(|w| w.0), Some("False"));
        assert_eq!(wanted_condition(Some("[Refused] why"), Some(&refused)), None, "unchanged");
        assert_eq!(wanted_condition(Some("[Refused] other"), Some(&refused)).map(|w| w.2), Some("[Refused] other".into()));
        assert_eq!(wanted_condition(None, Some(&refused)).map(|w| (w.0, w.1)), Some(("True", REASON_VALID)), "allowed again");
        let eso = json!({"type": "Ready", "status": "False", "reason": REASON_INVALID, "message": "unable to validate store"});
        assert_eq!(wanted_condition(None, Some(&eso)), None, "another writer's condition is left alone");
        assert_eq!(wanted_condition(None, None), None);
    }
}
