//! Fetching the whole plan of a run: every (store, key, version) read once, batched where the
//! provider can, with at most `concurrency` calls in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::provider::{ErrorClass, FindQuery, Provider, ProviderError, RemoteKey, SecretValue};

use super::stores::StoreKey;

/// Result of one read.
pub type ReadResult = Result<SecretValue, ProviderError>;

/// Reads every key in `reads` once. Keys a provider can batch are grouped (up to its limit per
/// call); a batch the provider refuses ([`ErrorClass::BatchUnavailable`]) is read key by key.
pub async fn fetch_all(
    clients: &BTreeMap<StoreKey, Arc<dyn Provider>>,
    reads: BTreeSet<(StoreKey, RemoteKey)>,
    concurrency: usize,
) -> HashMap<(StoreKey, RemoteKey), ReadResult> {
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks: JoinSet<Vec<((StoreKey, RemoteKey), ReadResult)>> = JoinSet::new();
    let mut by_store: BTreeMap<StoreKey, Vec<RemoteKey>> = BTreeMap::new();
    for (store, key) in reads {
        by_store.entry(store).or_default().push(key);
    }
    for (store, keys) in by_store {
        let client = clients[&store].clone();
        let (batchable, singles): (Vec<RemoteKey>, Vec<RemoteKey>) = keys.into_iter().partition(|k| client.batch_limit(k) > 1);
        let limit = batchable.first().map_or(1, |k| client.batch_limit(k));
        for chunk in batchable.chunks(limit) {
            let (client, store, chunk, sem) = (client.clone(), store.clone(), chunk.to_vec(), semaphore.clone());
            tasks.spawn(async move {
                let permit = sem.clone().acquire_owned().await.expect("semaphore open");
                let batch = client.get_batch(&chunk).await;
                drop(permit);
                match batch {
                    Ok(results) => chunk.into_iter().zip(results).map(|(k, r)| ((store.clone(), k), r)).collect(),
                    Err(e) if e.class == ErrorClass::BatchUnavailable => read_singles(client, store, chunk, sem).await,
                    Err(e) => chunk.into_iter().map(|k| ((store.clone(), k), Err(e.clone()))).collect(),
                }
            });
        }
        for key in singles {
            let (client, store, sem) = (client.clone(), store.clone(), semaphore.clone());
            tasks.spawn(async move { read_singles(client, store, vec![key], sem).await });
        }
    }
    let mut out = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        out.extend(done.expect("fetch task does not panic"));
    }
    out
}

async fn read_singles(
    client: Arc<dyn Provider>,
    store: StoreKey,
    keys: Vec<RemoteKey>,
    sem: Arc<Semaphore>,
) -> Vec<((StoreKey, RemoteKey), ReadResult)> {
    let mut set = JoinSet::new();
    for key in keys {
        let (client, sem) = (client.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = client.get(&key).await;
            (key, r)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        let (key, r) = done.expect("read task does not panic");
        out.push(((store.clone(), key), r));
    }
    out
}

/// Identity of a find query, for deduplication.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindKey {
    pub path: Option<String>,
    pub regexp: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Runs every distinct find once, concurrently.
pub async fn find_all(
    clients: &BTreeMap<StoreKey, Arc<dyn Provider>>,
    finds: BTreeMap<(StoreKey, FindKey), FindQuery>,
    concurrency: usize,
) -> HashMap<(StoreKey, FindKey), Result<Vec<String>, ProviderError>> {
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for ((store, key), query) in finds {
        let (client, sem) = (clients[&store].clone(), semaphore.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = client.find(&query).await;
            ((store, key), r)
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (k, r) = done.expect("find task does not panic");
        out.insert(k, r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StoreRefKind;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A provider over an in-memory map that records its calls; `deny_batch` answers batches as
    /// a store whose credentials lack `BatchGetSecretValue` does.
    struct Recording {
        deny_batch: bool,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        calls: Mutex<Vec<String>>,
    }

    impl Recording {
        fn new(deny_batch: bool) -> Self {
            Recording { deny_batch, in_flight: AtomicUsize::new(0), max_in_flight: AtomicUsize::new(0), calls: Mutex::new(Vec::new()) }
        }
        async fn enter(&self, call: String) {
            self.calls.lock().unwrap().push(call);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Provider for Recording {
        fn name(&self) -> &'static str {
            "Recording"
        }
        async fn get(&self, key: &RemoteKey) -> Result<SecretValue, ProviderError> {
            self.enter(format!("get {}", key.key)).await;
            if key.key == "missing" {
                return Err(ProviderError::new(ErrorClass::NotFound, "missing"));
            }
            Ok(SecretValue(format!("v-{}", key.key).into_bytes()))
        }
        fn batch_limit(&self, key: &RemoteKey) -> usize {
            if key.version.is_none() {
                20
            } else {
                1
            }
        }
        async fn get_batch(&self, keys: &[RemoteKey]) -> Result<Vec<ReadResult>, ProviderError> {
            self.enter(format!("batch {}", keys.len())).await;
            if self.deny_batch {
                return Err(ProviderError::new(ErrorClass::BatchUnavailable, "denied"));
            }
            Ok(keys.iter().map(|k| Ok(SecretValue(format!("v-{}", k.key).into_bytes()))).collect())
        }
        async fn find(&self, _: &FindQuery) -> Result<Vec<String>, ProviderError> {
            Ok(Vec::new())
        }
    }

    fn store() -> StoreKey {
        StoreKey { kind: StoreRefKind::SecretStore, namespace: Some("ns".into()), name: "s".into() }
    }

    fn reads(n: usize, version: Option<&str>) -> BTreeSet<(StoreKey, RemoteKey)> {
        (0..n).map(|i| (store(), RemoteKey { key: format!("k{i:03}"), version: version.map(str::to_string), metadata: false })).collect()
    }

    async fn fetch_with(
        p: Arc<Recording>,
        reads: BTreeSet<(StoreKey, RemoteKey)>,
        concurrency: usize,
    ) -> HashMap<(StoreKey, RemoteKey), ReadResult> {
        let clients: BTreeMap<StoreKey, Arc<dyn Provider>> = BTreeMap::from([(store(), p as Arc<dyn Provider>)]);
        fetch_all(&clients, reads, concurrency).await
    }

    #[tokio::test]
    async fn current_versions_are_read_in_batches_of_the_provider_limit() {
        let p = Arc::new(Recording::new(false));
        let out = fetch_with(p.clone(), reads(45, None), 16).await;
        assert_eq!(out.len(), 45);
        assert_eq!(out[&(store(), RemoteKey { key: "k044".into(), version: None, metadata: false })].as_ref().unwrap().0, b"v-k044");
        let mut calls = p.calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, vec!["batch 20", "batch 20", "batch 5"]);
    }

    #[tokio::test]
    async fn a_denied_batch_falls_back_to_single_reads_with_per_key_results() {
        let p = Arc::new(Recording::new(true));
        let mut r = reads(3, None);
        r.insert((store(), RemoteKey { key: "missing".into(), version: None, metadata: false }));
        let out = fetch_with(p.clone(), r, 16).await;
        let calls = p.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().filter(|c| c.starts_with("batch")).count(), 1);
        assert_eq!(calls.iter().filter(|c| c.starts_with("get")).count(), 4);
        assert_eq!(
            out[&(store(), RemoteKey { key: "missing".into(), version: None, metadata: false })].as_ref().unwrap_err().class,
            ErrorClass::NotFound
        );
        assert_eq!(out[&(store(), RemoteKey { key: "k001".into(), version: None, metadata: false })].as_ref().unwrap().0, b"v-k001");
    }

    #[tokio::test]
    async fn calls_in_flight_never_exceed_the_concurrency_bound() {
        let p = Arc::new(Recording::new(false));
        let out = fetch_with(p.clone(), reads(40, Some("AWSPREVIOUS")), 4).await;
        assert_eq!(out.len(), 40);
        assert_eq!(p.calls.lock().unwrap().len(), 40);
        assert_eq!(p.max_in_flight.load(Ordering::SeqCst), 4);
    }
}
