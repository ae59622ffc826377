//! Provider clients kept across runs (controller mode). ESO builds a fresh client per reconcile,
//! re-doing STS / token exchanges each time; here a store's client is built once and reused while
//! its fingerprint (the store's uid and generation, and the resourceVersions of the Secrets its
//! credentials come from) is unchanged, and rebuilt after an access error (401/403) or once it is
//! [`MAX_AGE`] old (tokens from TokenRequest and STS sessions last an hour).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::store::StoreKey;
use crate::provider::metered::{CallObserver, Metered};
use crate::provider::Provider;

/// A client older than this is rebuilt (fresh token, fresh STS session).
pub const MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// A cached client: the fingerprint it was built for, the client, when it was built.
type Entry = (String, Arc<Metered>, Instant);

/// Clients by store, each with the fingerprint it was built for and when.
pub struct ClientCache {
    entries: Mutex<HashMap<StoreKey, Entry>>,
    observe: CallObserver,
    builds: AtomicU64,
}

impl ClientCache {
    /// An empty cache; `observe` sees every provider call of the clients it holds.
    pub fn new(observe: CallObserver) -> Self {
        ClientCache { entries: Mutex::new(HashMap::new()), observe, builds: AtomicU64::new(0) }
    }

    /// The client built for `store` with this `fingerprint`, unless it was revoked.
    pub fn get(&self, store: &StoreKey, fingerprint: &str) -> Option<Arc<dyn Provider>> {
        let entries = self.entries.lock().ok()?;
        let (fp, client, built) = entries.get(store)?;
        (fp == fingerprint && !client.revoked() && built.elapsed() < MAX_AGE).then(|| client.clone() as Arc<dyn Provider>)
    }

    /// Keeps a newly built client and returns it wrapped (counted, revocable).
    pub fn put(&self, store: &StoreKey, fingerprint: &str, client: Arc<dyn Provider>) -> Arc<dyn Provider> {
        self.builds.fetch_add(1, Ordering::Relaxed);
        let metered = Arc::new(Metered::new(client, self.observe.clone()));
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(store.clone(), (fingerprint.to_string(), metered.clone(), Instant::now()));
        }
        metered
    }

    /// Drops the clients of stores that no longer exist.
    pub fn retain(&self, keep: impl Fn(&StoreKey) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|k, _| keep(k));
        }
    }

    /// How many clients were built so far (for tests and benchmarks).
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }
}
