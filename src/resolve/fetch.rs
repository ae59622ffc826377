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

async fn read_singles(client: Arc<dyn Provider>, store: StoreKey, keys: Vec<RemoteKey>, sem: Arc<Semaphore>) -> Vec<((StoreKey, RemoteKey), ReadResult)> {
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
