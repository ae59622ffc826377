//! Kubernetes Events (`events.k8s.io/v1`) about ExternalSecrets, with ESO's reasons: `Created`,
//! `Updated`, `Deleted` (Normal) and `UpdateFailed` (Warning). Notes are value-free.
//!
//! Written directly rather than through kube-runtime's `Recorder`: the Recorder keeps every event
//! it published for six minutes to build series, about 3 KiB per ExternalSecret, which at 5,000
//! ExternalSecrets was most of the controller's memory. Each event here is one create, named
//! `<object>.<nanoseconds>` as the Recorder names them. The same event (object, reason, note)
//! is not repeated within [`REPEAT_AFTER`]: a failing ExternalSecret retried with backoff does not
//! flood its namespace; only recent events are remembered.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;

/// An identical event is published again only after this long.
pub const REPEAT_AFTER: Duration = Duration::from_secs(10 * 60);

/// Recently published events: (object uid, reason) → (hash of the note, when).
type Recent = HashMap<(String, String), (u64, Instant)>;

/// Publishes events as `reportingController: extsecret`.
#[derive(Clone)]
pub struct Events {
    client: Client,
    /// `reportingInstance`: the pod name, else `extsecret`.
    instance: String,
    recent: Arc<Mutex<Recent>>,
}

impl Events {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Events { client, instance: instance.unwrap_or_else(|| "extsecret".into()), recent: Default::default() }
    }

    /// Whether this event was published within [`REPEAT_AFTER`]; records it otherwise.
    fn repeated(&self, regarding: &ObjectReference, reason: &str, note: &str) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        note.hash(&mut h);
        let (note_hash, now) = (h.finish(), Instant::now());
        let key = (regarding.uid.clone().unwrap_or_default(), reason.to_string());
        let Ok(mut recent) = self.recent.lock() else { return false };
        if recent.len() > 4096 {
            recent.retain(|_, (_, at)| now.duration_since(*at) < REPEAT_AFTER);
        }
        match recent.get(&key) {
            Some((n, at)) if *n == note_hash && now.duration_since(*at) < REPEAT_AFTER => true,
            _ => {
                recent.insert(key, (note_hash, now));
                false
            }
        }
    }

    /// Creates one event about `regarding`; `note` is cut at 1 KiB (the API server's limit).
    pub async fn publish(&self, regarding: ObjectReference, warning: bool, reason: &str, note: String) -> Result<(), kube::Error> {
        if self.repeated(&regarding, reason, &note) {
            return Ok(());
        }
        let now = Timestamp::now();
        let ns = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let event = Event {
            action: Some("Reconcile".into()),
            reason: Some(reason.into()),
            note: Some(note.chars().take(1024).collect()),
            event_time: Some(MicroTime(now)),
            metadata: ObjectMeta {
                namespace: Some(ns.clone()),
                name: Some(format!("{}.{:x}", regarding.name.as_deref().unwrap_or("extsecret"), now.as_nanosecond())),
                ..Default::default()
            },
            regarding: Some(regarding),
            reporting_controller: Some("extsecret".into()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &ns).create(&PostParams::default(), &event).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_identical_event_is_not_repeated_but_a_different_note_is() {
        let (service, _server) = tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let events = Events::new(Client::new(service, "default"), None);
        let es = ObjectReference { uid: Some("uid-1".into()), ..Default::default() };
        let other = ObjectReference { uid: Some("uid-2".into()), ..Default::default() };
        assert!(!events.repeated(&es, "UpdateFailed", "SecretStore `x` not found"));
        assert!(events.repeated(&es, "UpdateFailed", "SecretStore `x` not found"));
        assert!(!events.repeated(&es, "UpdateFailed", "another cause"));
        assert!(!events.repeated(&es, "Updated", "another cause"), "another reason");
        assert!(!events.repeated(&other, "UpdateFailed", "SecretStore `x` not found"), "another object");
    }
}
