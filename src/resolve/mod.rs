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

mod assemble;
pub mod client_cache;
mod external_secret;
pub mod fetch;
pub mod secret;
pub mod stores;
pub mod trust;
pub mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::api::StoreRef;
use crate::problem::{Problem, Problems};
use crate::provider::{FindQuery, Provider, ProviderError, RemoteKey};
use crate::settings::Settings;

use assemble::{canonical, remote_key, Assembly, Planned};
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
/// `Ok(Secret)` or its own problems. Reads are still planned, deduplicated and batched across
/// all of them (the controller resolves a refresh wave this way).
///
///
/// Assembly (value extraction and templates) is CPU work: it runs on a blocking thread, so the
/// caller's deadline still ends the run even if a template loops for long.
///
/// `progress` receives the problems known before assembly (stores whose client could not be
/// built), so a caller whose deadline passes can still report them, and the number of reads.
pub async fn resolve_each(
    ess: Arc<Vec<ParsedExternalSecret>>,
    catalog: &Catalog,
    sources: Arc<crate::template::apply::TemplateSources>,
    settings: &Settings,
    progress: &Progress,
) -> Result<Vec<Result<RenderedSecret, Problems>>, Problems> {
    // Problems of the plan, per ExternalSecret.
    let mut planned_problems: Vec<Problems> = Vec::with_capacity(ess.len());
    // 1. Plan: which store serves each source.
    // `None` for an ExternalSecret with a refused store reference: it is reported once per field
    // and not assembled (its missing sources would only repeat the same cause).
    let mut plans: Vec<Option<Vec<Planned>>> = Vec::with_capacity(ess.len());
    let mut used: BTreeMap<StoreKey, &stores::Store> = BTreeMap::new();
    let mut finds: BTreeMap<(StoreKey, FindKey), FindQuery> = BTreeMap::new();
    for es in ess.iter() {
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
                plan.push(Planned::Extract { index: i, store, key: remote_key(e) });
            } else if let Some(f) = &d.find {
                let find = FindKey {
                    path: f.path.clone().filter(|p| !p.is_empty()),
                    regexp: f.name.as_ref().map(|n| n.regexp.clone()),
                    tags: f.tags.clone(),
                };
                // One query per distinct (store, find) of the run.
                finds.entry((store.clone(), find.clone())).or_insert_with(|| FindQuery {
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
            plan.push(Planned::Data { index: i, store, key: remote_key(&d.remote_ref) });
        }
        plans.push(refused.is_empty().then_some(plan));
        planned_problems.push(problems);
    }

    // 2. One client per store used.
    let mut clients: BTreeMap<StoreKey, Arc<dyn Provider>> = BTreeMap::new();
    let mut broken: HashMap<StoreKey, ProviderError> = HashMap::new();
    for (key, store) in &used {
        match catalog.client(store, settings).await {
            Ok(c) => {
                clients.insert(key.clone(), c);
            }
            Err(e) => {
                // Known now: reported even if the run's deadline passes before assembly.
                if let Ok(mut early) = progress.early.lock() {
                    early.push(Problem::new(format!("{key}: {e}")).at(&store.origin));
                }
                broken.insert(key.clone(), e);
            }
        }
    }
    finds.retain(|(store, _), _| clients.contains_key(store));

    // 3. Finds, then every read once.
    let found = fetch::find_all(&clients, finds, settings.concurrency).await;
    let mut reads = BTreeSet::new();
    for plan in plans.iter().flatten() {
        for p in plan {
            match p {
                Planned::Data { store, key, .. } | Planned::Extract { store, key, .. } if clients.contains_key(store) => {
                    reads.insert((store.clone(), canonical(&clients, store, key)));
                }
                Planned::Find { store, find, .. } => {
                    if let Some(Ok(names)) = found.get(&(store.clone(), find.clone())) {
                        for name in names {
                            reads.insert((store.clone(), RemoteKey { key: name.clone(), version: None, metadata: false }));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    progress.reads.store(reads.len(), Ordering::Relaxed);
    let fetched = fetch::fetch_all(&clients, reads, settings.concurrency).await;

    // 4. Assemble.
    let ctx = Assembly { sources, clients, fetched, found, broken };
    let assembled = tokio::task::spawn_blocking(move || {
        ess.iter()
            .zip(plans)
            .zip(planned_problems)
            .map(|((es, plan), mut problems)| match plan {
                None => Err(problems),
                Some(plan) => match ctx.assemble(es, plan) {
                    Ok(s) => problems.into_result(s),
                    Err(p) => {
                        problems.extend(p);
                        Err(problems)
                    }
                },
            })
            .collect::<Vec<_>>()
    })
    .await;
    assembled.map_err(|_| Problems::from(Problem::new("internal error while assembling the Secrets")))
}
