//! Fetching the whole plan of a run: every (store, key, version) read once, batched where the
//! provider can, with at most `concurrency` calls in flight per store. Every call ends by the
//! run's provider deadline ([`Deadline`]), store by store: a store that never answers fails only its
//! own reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::provider::{ErrorClass, FindQuery, Provider, ProviderError, RemoteKey, SecretValue};

use super::deadline::Deadline;
use super::stores::StoreKey;

/// Result of one read.
pub type ReadResult = Result<SecretValue, ProviderError>;

/// Reads every key in `reads` once. Keys a provider can batch are grouped (up to its limit per
/// call); a batch the provider refuses ([`ErrorClass::BatchUnavailable`]) is read key by key, and
/// so is a batch that failed as a whole with an error one key can cause (`NotFound`,
/// `InvalidRequest`, `Other`): only the culprit is blamed. Store-wide errors (unreachable,
/// throttled, timed out) stay on every key of the batch.
///
/// `concurrency` bounds the calls in flight of each store, so a store that hangs cannot hold the
/// calls of another.
pub async fn fetch_all(
    clients: &BTreeMap<StoreKey, Arc<dyn Provider>>,
    reads: BTreeSet<(StoreKey, RemoteKey)>,
    concurrency: usize,
    deadline: &Arc<Deadline>,
) -> HashMap<(StoreKey, RemoteKey), ReadResult> {
    let mut tasks: JoinSet<Vec<((StoreKey, RemoteKey), ReadResult)>> = JoinSet::new();
    let mut by_store: BTreeMap<StoreKey, Vec<RemoteKey>> = BTreeMap::new();
    for (store, key) in reads {
        by_store.entry(store).or_default().push(key);
    }
    for (store, keys) in by_store {
        let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
        let client = clients[&store].clone();
        let (batchable, singles): (Vec<RemoteKey>, Vec<RemoteKey>) = keys.into_iter().partition(|k| client.batch_limit(k) > 1);
        let limit = batchable.first().map_or(1, |k| client.batch_limit(k));
        for chunk in batchable.chunks(limit) {
            let (client, store, chunk, sem, deadline) =
                (client.clone(), store.clone(), chunk.to_vec(), semaphore.clone(), deadline.clone());
            tasks.spawn(async move {
                let batch = deadline
                    .bound(&store, async {
                        let _permit = sem.clone().acquire_owned().await.expect("semaphore open");
                        client.get_batch(&chunk).await
                    })
                    .await;
                match batch {
                    Ok(results) => chunk.into_iter().zip(results).map(|(k, r)| ((store.clone(), k), r)).collect(),
                    Err(e) if e.class == ErrorClass::BatchUnavailable => read_singles(client, store, chunk, sem, deadline).await,
                    Err(e) if chunk.len() > 1 && may_be_one_key(e.class) => {
                        tracing::info!(
                            "{store}: a batch read failed as a whole ({}); reading its keys one by one to find the culprit",
                            e.class
                        );
                        read_singles(client, store, chunk, sem, deadline).await
                    }
                    Err(e) => chunk.into_iter().map(|k| ((store.clone(), k), Err(e.clone()))).collect(),
                }
            });
        }
        for key in singles {
            let (client, store, sem, deadline) = (client.clone(), store.clone(), semaphore.clone(), deadline.clone());
            tasks.spawn(async move { read_singles(client, store, vec![key], sem, deadline).await });
        }
    }
    let mut out = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        out.extend(done.expect("fetch task does not panic (provider calls are caught)"));
    }
    out
}

/// Whether a whole-batch error may come from a single key (then the keys are read one by one).
fn may_be_one_key(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::NotFound | ErrorClass::InvalidRequest | ErrorClass::Other)
}

async fn read_singles(
    client: Arc<dyn Provider>,
    store: StoreKey,
    keys: Vec<RemoteKey>,
    sem: Arc<Semaphore>,
    deadline: Arc<Deadline>,
) -> Vec<((StoreKey, RemoteKey), ReadResult)> {
    let mut set = JoinSet::new();
    for key in keys {
        let (client, sem, deadline, store) = (client.clone(), sem.clone(), deadline.clone(), store.clone());
        set.spawn(async move {
            let r = deadline
                .bound(&store, async {
                    let _permit = sem.acquire_owned().await.expect("semaphore open");
                    client.get(&key).await
                })
                .await;
            (key, r)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        let (key, r) = done.expect("read task does not panic (provider calls are caught)");
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

/// Runs every distinct find once, concurrently (at most `concurrency` per store), each by the
/// provider deadline.
pub async fn find_all(
    clients: &BTreeMap<StoreKey, Arc<dyn Provider>>,
    finds: BTreeMap<(StoreKey, FindKey), FindQuery>,
    concurrency: usize,
    deadline: &Arc<Deadline>,
) -> HashMap<(StoreKey, FindKey), Result<Vec<String>, ProviderError>> {
    let mut semaphores: BTreeMap<StoreKey, Arc<Semaphore>> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    for ((store, key), query) in finds {
        let sem = semaphores.entry(store.clone()).or_insert_with(|| Arc::new(Semaphore::new(concurrency.max(1)))).clone();
        let (client, deadline) = (clients[&store].clone(), deadline.clone());
        tasks.spawn(async move {
            let r = deadline
                .bound(&store, async {
                    let _permit = sem.acquire_owned().await.expect("semaphore open");
                    client.find(&query).await
                })
                .await;
            ((store, key), r)
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (k, r) = done.expect("find task does not panic (provider calls are caught)");
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
            if keys.iter().any(|k| k.key == "missing") {
                // As moto answers a batch holding a secret without a current value.
                return Err(ProviderError::new(ErrorClass::NotFound, "BatchGetSecretValue: ResourceNotFoundException"));
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
        fetch_all(&clients, reads, concurrency, &Arc::new(Deadline::start(std::time::Duration::from_secs(30)))).await
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
    #[tokio::test]
    async fn a_batch_failing_as_a_whole_blames_only_its_culprit() {
        let p = Arc::new(Recording::new(false));
        let mut r = reads(3, None);
        r.insert((store(), RemoteKey { key: "missing".into(), version: None, metadata: false }));
        let out = fetch_with(p.clone(), r, 16).await;
        let calls = p.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().filter(|c| c.starts_with("batch")).count(), 1);
        assert_eq!(calls.iter().filter(|c| c.starts_with("get")).count(), 4, "{calls:?}");
        assert_eq!(
            out[&(store(), RemoteKey { key: "missing".into(), version: None, metadata: false })].as_ref().unwrap_err().class,
            ErrorClass::NotFound
        );
        for i in 0..3 {
            let k = RemoteKey { key: format!("k{i:03}"), version: None, metadata: false };
            assert_eq!(out[&(store(), k)].as_ref().unwrap().0, format!("v-k{i:03}").into_bytes());
        }
    }

    /// A store whose every call hangs.
    struct Hanging;

    #[async_trait]
    impl Provider for Hanging {
        fn name(&self) -> &'static str {
            "Hanging"
        }
        async fn get(&self, _: &RemoteKey) -> Result<SecretValue, ProviderError> {
            std::future::pending().await
        }
        async fn find(&self, _: &FindQuery) -> Result<Vec<String>, ProviderError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_hanging_store_fails_only_its_own_reads_and_holds_no_other_store_back() {
        let slow = StoreKey { name: "slow".into(), ..store() };
        let clients: BTreeMap<StoreKey, Arc<dyn Provider>> =
            BTreeMap::from([(store(), Arc::new(Recording::new(false)) as Arc<dyn Provider>), (slow.clone(), Arc::new(Hanging) as _)]);
        let mut r = reads(3, Some("AWSPREVIOUS"));
        for i in 0..3 {
            r.insert((slow.clone(), RemoteKey { key: format!("h{i}"), version: None, metadata: false }));
        }
        let started = std::time::Instant::now();
        // One call in flight per store: the hanging store's calls cannot take the healthy one's turn.
        let out = fetch_all(&clients, r, 1, &Arc::new(Deadline::start(std::time::Duration::from_millis(500)))).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let healthy = RemoteKey { key: "k002".into(), version: Some("AWSPREVIOUS".into()), metadata: false };
        assert_eq!(out[&(store(), healthy)].as_ref().unwrap().0, b"v-k002");
        let e = out[&(slow, RemoteKey { key: "h1".into(), version: None, metadata: false })].clone().unwrap_err();
        assert_eq!(e.class, ErrorClass::Timeout);
        assert!(e.message.starts_with("SecretStore ns/slow (host unknown host) did not answer"), "{e}");
    }
}
