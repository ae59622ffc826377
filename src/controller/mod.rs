//! Controller mode: `extsecret controller` reconciles `external-secrets.io/v1` ExternalSecrets in
//! a cluster as ESO does, with the render's API types, providers, resolution and templates.
//!
//! - `objects`: the dynamic `external-secrets.io` objects as documents for the shared decoders.
//! - `policy`: creationPolicy, deletionPolicy, refreshPolicy, the refresh decision and spreads.
//! - `target`: the Secret write plan (server-side apply body, keys to remove, refusals).
//! - `hash`: ESO's data hash and meta hash, byte for byte.
//! - `status`: ESO's status and Ready condition.
//! - `wave`: reads of ExternalSecrets due together resolved together (deduplicated, batched).
//! - `reconcile`: one reconcile, finalizer and deletionPolicy.
//! - `metrics`: ESO's metric names, `/metrics`, `/healthz`, `/readyz`.
//!
//! Watches: ExternalSecrets (generation, label, annotation, finalizer and deletion changes only;
//! status writes do not re-trigger), the *metadata* of Secrets labelled
//! `reconcile.external-secrets.io/managed=true` (an edit or deletion of a managed Secret is
//! repaired at once; no cache of all Secrets), and SecretStores and ClusterSecretStores (a change
//! requeues the ExternalSecrets that use the store).

pub mod events;
pub mod hash;
pub mod metrics;
pub mod objects;
pub mod policy;
pub mod reconcile;
pub mod status;
pub mod store_trust;
pub mod target;
pub mod wave;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::api::{EsoKind, StoreRefKind};
use crate::resolve::client_cache::ClientCache;
use crate::settings::{parse_duration, Settings};

/// `extsecret controller` flags (each also from an `EXTSECRET_*` variable).
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// kubeconfig file (default: in-cluster config, else KUBECONFIG or ~/.kube/config)
    #[arg(long, env = "EXTSECRET_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch one namespace only (default: the whole cluster)
    #[arg(long, env = "EXTSECRET_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Process only stores whose spec.controller names this class (`default` also takes empty ones)
    #[arg(long, env = "EXTSECRET_CONTROLLER_CLASS", default_value = "default")]
    pub controller_class: String,
    /// Address of /metrics, /healthz and /readyz
    #[arg(long, env = "EXTSECRET_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Run only while holding the Lease (one active replica at a time)
    #[arg(long, env = "EXTSECRET_LEADER_ELECT", value_parser = clap::builder::BoolishValueParser::new())]
    pub leader_elect: bool,
    /// Name of the leader-election Lease
    #[arg(long, env = "EXTSECRET_LEASE_NAME", default_value = "extsecret-controller")]
    pub lease_name: String,
    /// Namespace of the Lease (default: POD_NAMESPACE, else the client's default namespace)
    #[arg(long, env = "EXTSECRET_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Lease validity in seconds; a standby takes over this long after the leader stops renewing
    #[arg(long, env = "EXTSECRET_LEASE_DURATION", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_duration: u64,
    /// A refresh wave reads once no ExternalSecret joined it for this long (`100ms`)...
    #[arg(long, env = "EXTSECRET_WAVE_WINDOW", default_value = "100ms", value_parser = parse_duration)]
    pub wave_window: Duration,
    /// ...or this long after its first ExternalSecret joined (`2s`)
    #[arg(long, env = "EXTSECRET_WAVE_MAX_WAIT", default_value = "2s", value_parser = parse_duration)]
    pub wave_max_wait: Duration,
    /// Shortest refresh interval: a non-zero spec.refreshInterval below it is raised to it, with a warning (`0` turns the floor off)
    #[arg(long, env = "EXTSECRET_MIN_REFRESH_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub min_refresh_interval: Duration,
    /// API requests in flight at once (besides the watches)
    #[arg(long, env = "EXTSECRET_API_REQUESTS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub api_requests: u16,
    /// Reconciles in flight at once
    #[arg(long, env = "EXTSECRET_RECONCILES", default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    pub reconciles: u16,
    #[command(flatten)]
    pub reads: crate::settings::ReadArgs,
    #[command(flatten)]
    pub trust: crate::settings::ClusterTrustArgs,
}

impl ControllerArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let trust = self.trust.policy().map_err(anyhow::Error::msg)?;
        let mut settings = Settings { controller: true, namespace: None, trust, ..Settings::default() };
        self.reads.apply(&mut settings);
        Ok(settings)
    }
}

/// The API client and its server URL.
async fn client(args: &ControllerArgs) -> anyhow::Result<(Client, String)> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    // A bound on HTTP requests in flight (watches hold one each for their lifetime): a thousand
    // reconciles waiting on the API server then share a few connections instead of opening one each.
    let limit = tower::limit::ConcurrencyLimitLayer::new(usize::from(args.api_requests) + WATCHES);
    let server = config.cluster_url.to_string();
    Ok((kube::client::ClientBuilder::try_from(config)?.with_layer(&limit).build(), server))
}

/// The controller's own ServiceAccount token in a pod; its `aud` claim lists the API server's
/// default audiences.
const OWN_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Audiences the API server accepts that `trust::is_api_server_audience` cannot know by itself:
/// the client's server URL, the audiences of this pod's own ServiceAccount token (k3s and RKE2
/// add theirs), and the service-account issuer (from the API server's OIDC discovery document,
/// when this identity may read it; 5 s at most).
async fn api_server_audiences(client: &Client, server: String) -> Vec<String> {
    let mut out = vec![server];
    if let Ok(token) = std::fs::read_to_string(OWN_TOKEN_FILE) {
        out.extend(crate::resolve::trust::token_audiences(&token));
    }
    let request = hyper::Request::get("/.well-known/openid-configuration").body(Vec::new());
    let answer = match request {
        Ok(r) => tokio::time::timeout(Duration::from_secs(5), client.request::<Value>(r)).await,
        Err(_) => return out,
    };
    match answer {
        Ok(Ok(doc)) => out.extend(doc.get("issuer").and_then(Value::as_str).filter(|i| !i.is_empty()).map(String::from)),
        Ok(Err(e)) => tracing::debug!("service-account issuer not known (OIDC discovery: {e}); the built-in API server audiences apply"),
        Err(_) => tracing::debug!("service-account issuer not known (OIDC discovery timed out)"),
    }
    out
}

/// Long-lived watch requests: ExternalSecrets, Secret metadata, SecretStores, ClusterSecretStores,
/// and the Lease.
const WATCHES: usize = 5;

/// Whether an ExternalSecret object names the store `(kind, name)` (its default store or any
/// `sourceRef.storeRef`); `namespace` is the store's for a SecretStore.
fn uses_store(es: &objects::ExternalSecretObject, kind: StoreRefKind, name: &str, namespace: Option<&str>) -> bool {
    if kind == StoreRefKind::SecretStore && es.namespace().as_deref() != namespace {
        return false;
    }
    let matches = |r: &Value| {
        let k = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let k = if k.is_empty() { "SecretStore" } else { k };
        r.get("name").and_then(Value::as_str) == Some(name) && k == kind.as_str()
    };
    let spec = es.spec.as_ref().map(objects::JsonText::value);
    let spec = spec.as_ref();
    spec.and_then(|s| s.get("secretStoreRef")).is_some_and(matches)
        || ["data", "dataFrom"].iter().any(|f| {
            spec.and_then(|s| s.get(*f))
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(|i| i.pointer("/sourceRef/storeRef").is_some_and(matches)))
        })
}

/// Only these changes of an ExternalSecret trigger a reconcile (ESO's
/// `shouldEnqueueExternalSecretUpdate`): status writes do not.
fn trigger_hash(es: &objects::ExternalSecretObject) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    es.metadata.generation.hash(&mut h);
    es.labels().iter().collect::<Vec<_>>().hash(&mut h);
    es.annotations().iter().collect::<Vec<_>>().hash(&mut h);
    es.finalizers().hash(&mut h);
    es.metadata.deletion_timestamp.as_ref().map(|t| t.0.to_string()).hash(&mut h);
    Some(h.finish())
}

/// Runs the controller until SIGTERM/SIGINT; returns the exit code.
pub async fn run(args: ControllerArgs) -> i32 {
    match run_inner(args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("extsecret controller: {e:#}");
            1
        }
    }
}

async fn run_inner(args: ControllerArgs) -> anyhow::Result<()> {
    let mut settings = args.settings()?;
    let (client, server) = client(&args).await?;
    settings.trust.api_audiences = api_server_audiences(&client, server).await;
    let metrics = Arc::new(metrics::Metrics::new());
    let health = Arc::new(metrics::Health::default());
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    tokio::spawn(metrics::serve(listener, metrics.clone(), health.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("signal received: finishing reconciles in flight, then stopping");
            let _ = stop_tx.send(true);
        }
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Leader election: wait for the Lease before doing anything.
    let mut leadership = None;
    if args.leader_elect {
        let ns = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| client.default_namespace().to_string());
        let identity = std::env::var("POD_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("extsecret-{}-{:x}", std::process::id(), policy::random_seed() & 0xffff_ffff));
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&ns)
            .with_identity(&identity)
            .with_duration(args.lease_duration)
            .with_grace((args.lease_duration / 3).max(1))
            .build()
            .await?;
        let (mut rx, handle) = manager.watch().await;
        health.ready.store(true, Ordering::Relaxed);
        tracing::info!("waiting for Lease {ns}/{} as {identity}", args.lease_name);
        let won = tokio::select! {
            r = rx.wait_for(|leader| *leader) => { r?; true }
            _ = stopped(stop_rx.clone()) => false,
        };
        if !won {
            drop(rx);
            let _ = handle.await;
            return Ok(());
        }
        tracing::info!("holding Lease {ns}/{}: this replica is the active writer", args.lease_name);
        leadership = Some((rx, handle));
    }

    let cache = {
        let m = metrics.clone();
        Arc::new(ClientCache::new(Arc::new(move |provider, call, ok| {
            m.provider_calls.with_label_values(&[provider, call, if ok { "success" } else { "error" }]).inc();
        })))
    };
    let waves = wave::Waves::start(wave::WaveConfig {
        client: client.clone(),
        settings: settings.clone(),
        controller_class: args.controller_class.clone(),
        cache,
        window: args.wave_window,
        max_wait: args.wave_max_wait,
        max: 5000,
        on_wave: Some({
            let m = metrics.clone();
            Arc::new(move |size, reads| {
                m.waves.inc();
                m.wave_size.observe(size as f64);
                m.wave_reads.observe(reads as f64);
            })
        }),
    });
    let ctx = Arc::new(reconcile::Context {
        client: client.clone(),
        settings,
        waves,
        metrics: metrics.clone(),
        events: events::Events::new(client.clone(), std::env::var("POD_NAME").ok().filter(|n| !n.is_empty())),
        failures: Mutex::new(HashMap::new()),
        targets: Mutex::new(HashMap::new()),
        forced: Mutex::new(Default::default()),
        synced: Mutex::new(HashMap::new()),
        min_refresh: args.min_refresh_interval,
        raised: Mutex::new(HashMap::new()),
    });

    let es_api = match &args.namespace {
        Some(ns) => Api::<objects::ExternalSecretObject>::namespaced(client.clone(), ns),
        None => Api::<objects::ExternalSecretObject>::all(client.clone()),
    };
    let scoped = |r: &kube::api::ApiResource| match &args.namespace {
        Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, r),
        None => Api::<DynamicObject>::all_with(client.clone(), r),
    };
    let writer = reflector::store::Writer::<objects::ExternalSecretObject>::default();
    let reader: Store<objects::ExternalSecretObject> = writer.as_reader();
    let es_stream = reflector::reflector(
        writer,
        watcher(es_api, watcher::Config::default()).default_backoff().modify(|o: &mut objects::ExternalSecretObject| {
            // Cached for every ExternalSecret: drop what the controller never reads (managedFields,
            // and kubectl's copy of the whole object).
            o.managed_fields_mut().clear();
            o.metadata.creation_timestamp = None;
            o.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
        }),
    )
    .applied_objects()
    .predicate_filter(trigger_hash, Default::default());

    let secret_api: Api<PartialObjectMeta<Secret>> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let managed = watcher::Config::default().labels(&format!("{}=true", target::MANAGED_LABEL));
    let targets_ctx = ctx.clone();
    let secret_to_es = move |s: PartialObjectMeta<Secret>| {
        let ns = s.namespace().unwrap_or_default();
        let mut names: Vec<String> = s
            .owner_references()
            .iter()
            .filter(|r| r.kind == "ExternalSecret" && r.controller == Some(true))
            .map(|r| r.name.clone())
            .collect();
        if let Ok(t) = targets_ctx.targets.lock() {
            names.extend(t.get(&(ns.clone(), s.name_any())).cloned());
        }
        names.sort();
        names.dedup();
        names.into_iter().map(|n| ObjectRef::new(&n).within(&ns)).collect::<Vec<_>>()
    };
    // A store change (a new generation) refreshes every ExternalSecret that uses it. The stores'
    // first listing (at start, or after a relist) only records their generations: a restart
    // must not re-read every remote secret.
    // A store the trust rules refuse is logged, and marked on its status, when first seen and
    // after each change.
    let by_store = |kind: StoreRefKind, reader: Store<objects::ExternalSecretObject>, ctx: Arc<reconcile::Context>, class: String| {
        // (namespace, name) → the generation last seen.
        type Generations = HashMap<(Option<String>, String), Option<i64>>;
        let generations: Mutex<Generations> = Mutex::new(HashMap::new());
        move |store: DynamicObject| {
            let (name, ns) = (store.name_any(), store.namespace());
            let previous = generations.lock().ok().and_then(|mut g| g.insert((ns.clone(), name.clone()), store.metadata.generation));
            if previous != Some(store.metadata.generation) {
                store_trust::review(&store, kind, &ctx.settings, &class, &ctx.client);
            }
            if previous.is_none_or(|p| p == store.metadata.generation) {
                return Vec::new();
            }
            let users: Vec<Arc<objects::ExternalSecretObject>> =
                reader.state().into_iter().filter(|es| uses_store(es, kind, &name, ns.as_deref())).collect();
            if let Ok(mut forced) = ctx.forced.lock() {
                forced.extend(users.iter().map(|es| (es.namespace().unwrap_or_default(), es.name_any())));
            }
            users.iter().map(|es| ObjectRef::from_obj(es.as_ref())).collect::<Vec<_>>()
        }
    };
    let ss = objects::resource(EsoKind::SecretStore);
    let css = objects::resource(EsoKind::ClusterSecretStore);

    // ExternalSecrets deleted without a finalizer are never reconciled again: drop what was kept
    // for them (target index, last sync, metric series) once a minute.
    let (gc_reader, gc_ctx) = (reader.clone(), ctx.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let live: std::collections::HashSet<(String, String)> =
                gc_reader.state().iter().map(|es| (es.namespace().unwrap_or_default(), es.name_any())).collect();
            let uids: std::collections::HashSet<String> = gc_reader.state().iter().filter_map(|es| es.uid()).collect();
            if let Ok(mut targets) = gc_ctx.targets.lock() {
                targets.retain(|(ns, _), es| {
                    let keep = live.contains(&(ns.clone(), es.clone()));
                    if !keep {
                        gc_ctx.metrics.forget(es, ns);
                    }
                    keep
                });
            }
            if let Ok(mut synced) = gc_ctx.synced.lock() {
                synced.retain(|uid, _| uids.contains(uid));
            }
            if let Ok(mut failures) = gc_ctx.failures.lock() {
                failures.retain(|uid, _| uids.contains(uid));
            }
            if let Ok(mut raised) = gc_ctx.raised.lock() {
                raised.retain(|uid, _| uids.contains(uid));
            }
        }
    });

    let ready_reader = reader.clone();
    let ready_health = health.clone();
    tokio::spawn(async move {
        // Polled: kube-runtime's readiness signal wakes only its most recent waiter (the
        // controller's own), so a second waiter would sleep forever.
        loop {
            if let Some(result) = futures::FutureExt::now_or_never(ready_reader.wait_until_ready()) {
                if result.is_ok() {
                    ready_health.ready.store(true, Ordering::Relaxed);
                    tracing::info!("ExternalSecret cache synced");
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let lost = async move {
        match leadership {
            Some((mut rx, _handle)) => {
                let _ = rx.wait_for(|leader| !*leader).await;
                tracing::error!("lost the Lease: stopping so that only one replica writes");
            }
            None => std::future::pending::<()>().await,
        }
    };
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        lost.await;
        let _ = lost_tx.send(());
    });
    let mut lost_rx = lost_rx;
    let shutdown = {
        let stop_rx = stop_rx.clone();
        async move {
            tokio::select! { _ = stopped(stop_rx) => {}, _ = &mut lost_rx => {} }
        }
    };

    let mut css_api = Api::<DynamicObject>::all_with(client.clone(), &css);
    if args.namespace.is_some() {
        // A namespaced controller still reads ClusterSecretStores (cluster-scoped).
        css_api = Api::<DynamicObject>::all_with(client.clone(), &css);
    }
    Controller::for_stream(es_stream, reader.clone())
        .with_config(ControllerConfig::default().concurrency(args.reconciles))
        .watches(secret_api, managed, secret_to_es)
        .watches_with(
            scoped(&ss),
            ss.clone(),
            watcher::Config::default(),
            by_store(StoreRefKind::SecretStore, reader.clone(), ctx.clone(), args.controller_class.clone()),
        )
        .watches_with(
            css_api,
            css.clone(),
            watcher::Config::default(),
            by_store(StoreRefKind::ClusterSecretStore, reader.clone(), ctx.clone(), args.controller_class.clone()),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("controller: {e}");
            }
        })
        .await;
    tracing::info!("controller stopped");
    Ok(())
}
#[cfg(test)]
mod api_calls_tests;
