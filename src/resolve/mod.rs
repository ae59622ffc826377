//! Resolution: from ExternalSecrets to Secrets.
//!
//! 1. [`parse_external_secret`] (`external_secret.rs`) decodes and validates each ExternalSecret
//!    (strict fields, unsupported features refused by name, keys, names, policies, regexes).
//! 2. [`resolve`] plans every remote read of the whole run, builds one client per store used
//!    (`stores.rs`), runs the finds, fetches each (store, key, version) once (`fetch.rs`), and
//!    assembles each Secret (`assemble.rs`, with `value.rs` and the templates) with ESO's merge
//!    order: `dataFrom` in order, then `data`; `secret.rs` writes the manifest.
//!
//! Every problem names the file, document, ExternalSecret and field; none carries a value.
//!
//! Failures stay with their ExternalSecret: each store's provider calls end by the run's deadline
//! on their own (`deadline.rs`), and each ExternalSecret is assembled on its own, off the async
//! workers, with panics caught and its own deadline.

mod assemble;
pub mod client_cache;
pub mod deadline;
mod external_secret;
pub mod fetch;
pub mod secret;
pub mod store;
pub mod stores;
pub mod trust;
pub mod value;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::api::StoreRef;
use crate::problem::{Problem, Problems};
use crate::provider::{FindQuery, Provider, RemoteKey};
use crate::settings::Settings;

use assemble::{canonical, remote_key, Assembly, Planned, StoreData};
use external_secret::store_ref;
pub use external_secret::{parse_external_secret, ParsedExternalSecret, MAX_SECRET_BYTES};
use fetch::FindKey;
pub use secret::RenderedSecret;
use stores::{Catalog, StoreKey};

/// What a run reports while it goes, readable even if its deadline ends it early.
#[derive(Debug, Default)]
pub struct Progress {
    /// Problems known before assembly (stores whose client could not be built).
    pub early: Mutex<Vec<Problem>>,
    /// Distinct remote reads planned (one per (store, key, version) however many entries use it).
    pub reads: AtomicUsize,
}

impl Progress {
    /// The early problems, taken out.
    pub fn take_early(&self) -> Vec<Problem> {
        self.early.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default()
    }
}

/// Resolves every ExternalSecret; returns one Secret per ExternalSecret in order, or every
/// problem of the run (the render's all-or-nothing view of [`resolve_each`]).
pub async fn resolve(
    ess: Arc<Vec<ParsedExternalSecret>>,
    catalog: &Catalog,
    sources: Arc<crate::template::apply::TemplateSources>,
    settings: &Settings,
    progress: &Progress,
) -> Result<Vec<RenderedSecret>, Problems> {
    let mut problems = Problems::default();
    let mut secrets = Vec::new();
    for r in resolve_each(ess, catalog, sources, settings, progress).await? {
        match r {
            Ok(s) => secrets.push(s),
            Err(p) => problems.extend(p),
        }
    }
    problems.into_result(secrets)
}

/// Resolves every ExternalSecret on its own: one result per ExternalSecret, in order, each
/// `Ok(Secret)` or its own problems (the results of [`resolve_streaming`], gathered).
pub async fn resolve_each(
    ess: Arc<Vec<ParsedExternalSecret>>,
    catalog: &Catalog,
    sources: Arc<crate::template::apply::TemplateSources>,
    settings: &Settings,
    progress: &Progress,
) -> Result<Vec<Result<RenderedSecret, Problems>>, Problems> {
    let mut out: Vec<Option<Result<RenderedSecret, Problems>>> = (0..ess.len()).map(|_| None).collect();
    resolve_streaming(ess, catalog, sources, settings, progress, |i, r| out[i] = Some(r)).await;
    Ok(out.into_iter().map(|r| r.unwrap_or_else(|| Err(Problem::new("internal error: no result").into()))).collect())
}

/// Resolves every ExternalSecret on its own and hands each result to `sink` (with the
/// ExternalSecret's index) as soon as it is known. Reads are still planned, deduplicated and
/// batched across all of them (the controller resolves a refresh wave this way).
///
/// Failures stay with their ExternalSecret:
/// - each store is worked on its own (client, finds, reads), every call ending by 90% of
///   `settings.timeout` ([`deadline::Deadline`]): a store that does not answer fails only the
///   ExternalSecrets that use it, naming the store and host, and holds back no other;
/// - an ExternalSecret is assembled (values, templates: CPU work) on a blocking thread as soon as
///   its stores are done, with panics caught; one still running at `settings.timeout` fails
///   alone.
///
/// `progress` receives the problems known before assembly (stores whose client could not be
/// built), so a caller whose deadline passes can still report them, and the number of reads.
pub async fn resolve_streaming(
    ess: Arc<Vec<ParsedExternalSecret>>,
    catalog: &Catalog,
    sources: Arc<crate::template::apply::TemplateSources>,
    settings: &Settings,
    progress: &Progress,
    mut sink: impl FnMut(usize, Result<RenderedSecret, Problems>),
) {
    use futures::StreamExt;

    // 1. Plan: which store serves each source.
    let mut jobs: Vec<Job> = Vec::with_capacity(ess.len());
    let mut used: BTreeMap<StoreKey, &stores::Store> = BTreeMap::new();
    let mut finds: BTreeMap<StoreKey, BTreeMap<FindKey, FindQuery>> = BTreeMap::new();
    let mut keys: BTreeMap<StoreKey, BTreeSet<RemoteKey>> = BTreeMap::new();
    for (index, es) in ess.iter().enumerate() {
        let mut plan = Vec::new();
        let ns = es.effective_namespace.as_deref();
        let mut refused = BTreeSet::new();
        let mut problems = Problems::default();
        let mut lookup = |own: Option<&StoreRef>, field: String| -> Option<StoreKey> {
            let r = store_ref(&es.spec, own)?;
            match catalog.lookup(ns, r) {
                Ok(store) => {
                    used.insert(store.key.clone(), store);
                    Some(store.key.clone())
                }
                Err(why) => {
                    // `None` for a refused store reference: reported once per field, and the
                    // ExternalSecret is not assembled (its missing sources would repeat the cause).
                    if refused.insert(field.clone()) {
                        problems.push(es.problem(field, why));
                    }
                    None
                }
            }
        };
        for (i, d) in es.spec.data_from.iter().enumerate() {
            let own = d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref());
            let field = format!("spec.dataFrom[{i}]{}", if own.is_some() { ".sourceRef.storeRef" } else { "" });
            let Some(store) = lookup(own, if own.is_some() { field } else { "spec.secretStoreRef".into() }) else { continue };
            if let Some(e) = &d.extract {
                keys.entry(store.clone()).or_default().insert(remote_key(e));
                plan.push(Planned::Extract { index: i, store, key: remote_key(e) });
            } else if let Some(f) = &d.find {
                let find = FindKey {
                    path: f.path.clone().filter(|p| !p.is_empty()),
                    regexp: f.name.as_ref().map(|n| n.regexp.clone()),
                    tags: f.tags.clone(),
                };
                // One query per distinct (store, find) of the run.
                finds.entry(store.clone()).or_default().entry(find.clone()).or_insert_with(|| FindQuery {
                    path: find.path.clone(),
                    name: find.regexp.as_ref().and_then(|r| regex::Regex::new(r).ok()),
                    tags: f.tags.clone(),
                });
                plan.push(Planned::Find { index: i, store, find });
            }
        }
        for (i, d) in es.spec.data.iter().enumerate() {
            let own = d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref());
            let field = if own.is_some() { format!("spec.data[{i}].sourceRef.storeRef") } else { "spec.secretStoreRef".into() };
            let Some(store) = lookup(own, field) else { continue };
            keys.entry(store.clone()).or_default().insert(remote_key(&d.remote_ref));
            plan.push(Planned::Data { index: i, store, key: remote_key(&d.remote_ref) });
        }
        let needs = plan.iter().map(Planned::store).cloned().collect();
        jobs.push(Job { index, needs, plan: refused.is_empty().then_some(plan), problems });
    }

    // 2. Each store on its own, concurrently: client, finds, then every read once.
    let mut deadline = deadline::Deadline::start(settings.timeout);
    for (key, store) in &used {
        deadline.add_store(key, &store.provider);
    }
    let deadline = Arc::new(deadline);
    let mut working: futures::stream::FuturesUnordered<_> = used
        .iter()
        .map(|(key, store)| {
            let finds = finds.remove(key).unwrap_or_default();
            let keys = keys.remove(key).unwrap_or_default();
            work_store(key, store, catalog, settings, progress, &deadline, finds, keys)
        })
        .collect();

    // 3. Assemble each ExternalSecret once its stores are done, a few at a time on blocking threads.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    let slots = Arc::new(tokio::sync::Semaphore::new(threads));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut done: BTreeMap<StoreKey, Arc<StoreData>> = BTreeMap::new();
    let mut finished = vec![false; ess.len()];
    let mut remaining = ess.len();
    let dispatch = |jobs: &mut Vec<Job>, done: &BTreeMap<StoreKey, Arc<StoreData>>| {
        let (ready, waiting): (Vec<Job>, Vec<Job>) =
            std::mem::take(jobs).into_iter().partition(|j| j.needs.iter().all(|s| done.contains_key(s)));
        *jobs = waiting;
        if ready.is_empty() {
            return;
        }
        let ctx = Arc::new(Assembly { sources: sources.clone(), stores: done.clone() });
        for job in ready {
            let (ctx, ess, tx, slots) = (ctx.clone(), ess.clone(), tx.clone(), slots.clone());
            tokio::spawn(async move {
                let Ok(slot) = slots.acquire_owned().await else { return };
                tokio::task::spawn_blocking(move || {
                    let index = job.index;
                    let result = job.assemble(&ess[index], &ctx);
                    drop(slot);
                    let _ = tx.send((index, result));
                });
            });
        }
    };
    dispatch(&mut jobs, &done);
    let cut = tokio::time::sleep_until(deadline.assembly);
    tokio::pin!(cut);
    while remaining > 0 {
        tokio::select! {
            Some((key, data)) = working.next(), if !working.is_empty() => {
                done.insert(key.clone(), Arc::new(data));
                dispatch(&mut jobs, &done);
            }
            Some((i, result)) = rx.recv() => {
                if !std::mem::replace(&mut finished[i], true) {
                    remaining -= 1;
                    sink(i, result);
                }
            }
            _ = &mut cut => break,
        }
    }
    for (i, _) in finished.iter().enumerate().filter(|(_, f)| !**f) {
        let late = format!(
            "deadline of {}s exceeded while assembling this ExternalSecret (values, templates); other ExternalSecrets were not held back",
            deadline.timeout().as_secs_f32()
        );
        sink(i, Err(ess[i].problem("spec", late).into()));
    }
}

/// One ExternalSecret to assemble: the stores it needs, its plan (`None` when a store reference
/// was refused) and its problems so far.
struct Job {
    index: usize,
    needs: BTreeSet<StoreKey>,
    plan: Option<Vec<Planned>>,
    problems: Problems,
}

impl Job {
    /// Assembles the Secret, a panic in template code caught as this ExternalSecret's error.
    fn assemble(self, es: &ParsedExternalSecret, ctx: &Assembly) -> Result<RenderedSecret, Problems> {
        let mut problems = self.problems;
        let Some(plan) = self.plan else { return Err(problems) };
        match crate::isolate::catch("template", || ctx.assemble(es, plan)) {
            Ok(Ok(s)) => problems.into_result(s),
            Ok(Err(p)) => {
                problems.extend(p);
                Err(problems)
            }
            Err(panicked) => {
                problems.push(es.problem("spec", panicked));
                Err(problems)
            }
        }
    }
}

/// One store's work: its client, its finds, then its reads (planned keys and found names), every
/// call by the provider deadline.
#[allow(clippy::too_many_arguments)]
async fn work_store<'a>(
    key: &'a StoreKey,
    store: &stores::Store,
    catalog: &Catalog,
    settings: &Settings,
    progress: &Progress,
    deadline: &Arc<deadline::Deadline>,
    finds: BTreeMap<FindKey, FindQuery>,
    keys: BTreeSet<RemoteKey>,
) -> (&'a StoreKey, StoreData) {
    let client = match deadline.bound(key, catalog.client(store, settings)).await {
        Ok(c) => c,
        Err(e) => {
            // Known now: reported even if the run's deadline passes before assembly.
            if let Ok(mut early) = progress.early.lock() {
                early.push(Problem::new(format!("{key}: {e}")).at(&store.origin));
            }
            return (key, StoreData { broken: Some(e), ..Default::default() });
        }
    };
    let clients: BTreeMap<StoreKey, Arc<dyn Provider>> = BTreeMap::from([(key.clone(), client.clone())]);
    let found =
        fetch::find_all(&clients, finds.into_iter().map(|(f, q)| ((key.clone(), f), q)).collect(), settings.concurrency, deadline).await;
    let mut reads: BTreeSet<(StoreKey, RemoteKey)> = keys.iter().map(|k| (key.clone(), canonical(Some(&client), k))).collect();
    for names in found.values().flatten() {
        reads.extend(names.iter().map(|n| (key.clone(), RemoteKey { key: n.clone(), version: None, metadata: false })));
    }
    progress.reads.fetch_add(reads.len(), Ordering::Relaxed);
    let fetched = fetch::fetch_all(&clients, reads, settings.concurrency, deadline).await;
    (
        key,
        StoreData {
            client: Some(client),
            broken: None,
            found: found.into_iter().map(|((_, f), r)| (f, r)).collect(),
            fetched: fetched.into_iter().map(|((_, k), r)| (k, r)).collect(),
        },
    )
}
