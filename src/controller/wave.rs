//! Refresh waves: ExternalSecrets that come due close together are resolved together, so
//! each remote secret is read once per wave (deduplicated, batched with BatchGetSecretValue) however
//! many ExternalSecrets use it. A wave reads its stores, their credential Secrets and the
//! `templateFrom` sources fresh from the API server (one GET each per wave), then runs the same
//! resolution as a render ([`crate::resolve::resolve_streaming`]). Each ExternalSecret is answered
//! as soon as its own result is known: a store that does not answer or a long template fails or
//! delays only the ExternalSecrets that use it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DynamicObject};
use kube::Client;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::objects;
use crate::api::{EsoKind, StoreRef, StoreRefKind};
use crate::problem::{Problem, Problems};
use crate::resolve::client_cache::ClientCache;
use crate::resolve::stores::Catalog;
use crate::resolve::{ParsedExternalSecret, RenderedSecret};
use crate::settings::Settings;

/// The result of resolving one ExternalSecret in a wave.
#[derive(Debug)]
pub enum WaveResult {
    /// A store it uses belongs to another controller class: leave the ExternalSecret alone.
    OtherClass(String),
    Rendered(RenderedSecret),
    /// Value-free problems (names, fields, provider error classes).
    Failed(Problems),
    /// A store it uses is refused by the operator's trust rules (`resolve::trust`): the problems
    /// name the store, the rule and the switch, for the Ready condition itself.
    StoreRefused(Problems),
}

struct Request {
    es: ParsedExternalSecret,
    reply: oneshot::Sender<WaveResult>,
}

/// What a wave needs from the controller.
pub struct WaveConfig {
    pub client: Client,
    pub settings: Settings,
    pub controller_class: String,
    pub cache: Arc<ClientCache>,
    /// A wave closes when no ExternalSecret arrived for this long...
    pub window: Duration,
    /// ...or this long after its first one arrived...
    pub max_wait: Duration,
    /// ...or when it holds this many ExternalSecrets.
    pub max: usize,
    /// Called after each wave with its ExternalSecret count and distinct remote reads.
    pub on_wave: Option<Arc<dyn Fn(usize, usize) + Send + Sync>>,
}

/// Handle to the wave loop.
#[derive(Clone)]
pub struct Waves {
    tx: mpsc::Sender<Request>,
}

impl Waves {
    /// Starts the loop that gathers requests into waves and resolves each wave on its own task.
    pub fn start(config: WaveConfig) -> Self {
        let (tx, mut rx) = mpsc::channel::<Request>(4096);
        let config = Arc::new(config);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let closes = tokio::time::Instant::now() + config.max_wait;
                while batch.len() < config.max {
                    let quiet = (tokio::time::Instant::now() + config.window).min(closes);
                    match tokio::time::timeout_at(quiet, rx.recv()).await {
                        Ok(Some(r)) => batch.push(r),
                        _ => break,
                    }
                }
                tokio::spawn(run_wave(config.clone(), batch));
            }
        });
        Waves { tx }
    }

    /// Resolves one ExternalSecret in the next wave.
    pub async fn resolve(&self, es: ParsedExternalSecret) -> WaveResult {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Request { es, reply }).await.is_err() {
            return WaveResult::Failed(Problem::new("the controller is shutting down").into());
        }
        answer.await.unwrap_or_else(|_| WaveResult::Failed(Problem::new("internal error: the wave ended without an answer").into()))
    }
}

/// With the default class a controller takes stores whose `spec.controller` is empty or
/// `default`; with any other class only stores naming it exactly.
pub fn class_matches(store_class: &str, ours: &str) -> bool {
    if ours == "default" {
        store_class.is_empty() || store_class == "default"
    } else {
        store_class == ours
    }
}

/// How the controller classes of an ExternalSecret's stores fall for this controller.
#[derive(Debug, PartialEq, Eq)]
pub enum Classes {
    /// Every store is this controller's.
    Ours,
    /// Every store belongs to one other class: that controller's work, left alone.
    Other(String),
    /// Stores of different classes: no controller can serve it. The default-class controller
    /// reports it (status and event); controllers of other classes leave it alone.
    Mixed(Vec<String>),
}

/// Sorts the classes of an ExternalSecret's stores (`""` and `default` are one class).
pub fn split_classes(store_classes: &[String], ours: &str) -> Classes {
    let named = |c: &str| if c.is_empty() { "default".to_string() } else { c.to_string() };
    let distinct: BTreeSet<String> = store_classes.iter().map(|c| named(c)).collect();
    match (distinct.len(), store_classes.iter().find(|c| !class_matches(c, ours))) {
        (0 | 1, None) => Classes::Ours,
        (0 | 1, Some(c)) => Classes::Other(c.clone()),
        _ if ours == "default" => Classes::Mixed(distinct.into_iter().collect()),
        (_, Some(c)) => Classes::Other(c.clone()),
        (_, None) => Classes::Ours,
    }
}

/// Every store an ExternalSecret names, as `(kind, namespace for SecretStores, name)`.
fn store_refs(es: &ParsedExternalSecret) -> BTreeSet<(StoreRefKind, Option<String>, String)> {
    let own = |r: &StoreRef| {
        let ns = (r.kind == StoreRefKind::SecretStore).then(|| es.effective_namespace.clone()).flatten();
        (r.kind, ns, r.name.clone())
    };
    let spec = &es.spec;
    spec.secret_store_ref
        .iter()
        .chain(spec.data.iter().filter_map(|d| d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())))
        .chain(spec.data_from.iter().filter_map(|d| d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())))
        .map(own)
        .collect()
}

async fn run_wave(config: Arc<WaveConfig>, batch: Vec<Request>) {
    let client = &config.client;
    // 1. The stores of the wave, fresh from the API server.
    let mut wanted = BTreeSet::new();
    for r in &batch {
        wanted.extend(store_refs(&r.es));
    }
    let mut stores: BTreeMap<(StoreRefKind, Option<String>, String), Value> = BTreeMap::new();
    for key in &wanted {
        let (kind, ns, name) = key;
        let api: Api<DynamicObject> = match (kind, ns) {
            (StoreRefKind::SecretStore, Some(ns)) => Api::namespaced_with(client.clone(), ns, &objects::resource(EsoKind::SecretStore)),
            (StoreRefKind::SecretStore, None) => continue,
            (StoreRefKind::ClusterSecretStore, _) => Api::all_with(client.clone(), &objects::resource(EsoKind::ClusterSecretStore)),
        };
        match api.get_opt(name).await {
            Ok(Some(obj)) => {
                stores.insert(key.clone(), objects::to_value(&obj));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("reading {} {name}: {}", kind.as_str(), objects::api_error(&e)),
        }
    }
    let class_of = |v: &Value| v.pointer("/spec/controller").and_then(Value::as_str).unwrap_or("").to_string();

    // 2. The catalog: stores, their credentials, namespace labels for ClusterSecretStore conditions.
    let settings = &config.settings;
    let mut catalog = Catalog::default();
    catalog.with_cache(config.cache.clone());
    let mut store_problems: BTreeMap<(StoreRefKind, Option<String>, String), Problems> = BTreeMap::new();
    let mut secret_api_cache: BTreeMap<(String, String), Option<Secret>> = BTreeMap::new();
    let mut needs_namespace_labels = false;
    let mut refused = BTreeSet::new();
    for (key, value) in &stores {
        if !class_matches(&class_of(value), &config.controller_class) {
            continue;
        }
        let kind = if key.0 == StoreRefKind::SecretStore { EsoKind::SecretStore } else { EsoKind::ClusterSecretStore };
        let doc = objects::document(value.clone());
        if let Err(p) = catalog.add_store(&doc, kind, settings) {
            store_problems.insert(key.clone(), p);
            continue;
        }
        let store_key = crate::resolve::stores::StoreKey { kind: key.0, namespace: key.1.clone(), name: key.2.clone() };
        let Some(store) = catalog.stores().find(|s| s.key == store_key).cloned() else { continue };
        // Refused stores are reported before any credential is read or token requested.
        if let Err(why) = crate::resolve::trust::check(&store, &settings.trust, settings.controller) {
            store_problems.insert(key.clone(), Problem::new(format!("[Refused] {why}")).object(store_key.to_string()).into());
            refused.insert(key.clone());
            continue;
        }
        needs_namespace_labels |= store.spec.conditions.iter().any(|c| c.namespace_selector.is_some());
        let mut fingerprint = format!(
            "{}/{}",
            value.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or(""),
            value.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0)
        );
        for (ns, name) in store.credential_secrets() {
            let Some(ns) = ns else { continue };
            let entry = match secret_api_cache.get(&(ns.clone(), name.clone())) {
                Some(s) => s.clone(),
                None => {
                    let got = Api::<Secret>::namespaced(client.clone(), &ns).get_opt(&name).await.ok().flatten();
                    secret_api_cache.insert((ns.clone(), name.clone()), got.clone());
                    got
                }
            };
            if let Some(secret) = entry {
                fingerprint.push('/');
                fingerprint.push_str(secret.metadata.resource_version.as_deref().unwrap_or(""));
                let doc = objects::document(serde_json::to_value(&secret).unwrap_or(Value::Null));
                if let Err(p) = catalog.add_credentials(&doc, settings) {
                    store_problems.insert(key.clone(), p);
                }
            }
        }
        if let Some((ns, name, audiences)) = store.service_account() {
            let api_audiences = &settings.trust.api_audiences;
            match service_account_token(client, &config.cache, &store_key, &mut fingerprint, ns, &name, audiences, api_audiences).await {
                Ok(Some(token)) => catalog.set_service_account_token(&store_key, token),
                Ok(None) => {}
                Err(message) => {
                    store_problems.insert(key.clone(), Problem::new(message).object(format!("{store_key}")).into());
                }
            }
        }
        catalog.set_fingerprint(&store_key, fingerprint);
    }
    if needs_namespace_labels {
        let namespaces: BTreeSet<String> = batch.iter().filter_map(|r| r.es.effective_namespace.clone()).collect();
        for ns in namespaces {
            if let Ok(Some(obj)) = Api::<Namespace>::all(client.clone()).get_opt(&ns).await {
                catalog.add_namespace(&objects::document(serde_json::to_value(&obj).unwrap_or(Value::Null)));
            }
        }
    }

    // 3. Sort out ExternalSecrets of another class and those whose store is unusable.
    let mut answers: Vec<Option<WaveResult>> = Vec::with_capacity(batch.len());
    let mut to_resolve = Vec::new();
    for r in &batch {
        let refs = store_refs(&r.es);
        // A missing store counts as unclassed: the default-class controller reports it, others
        // leave the ExternalSecret alone.
        let classes: Vec<String> = refs.iter().map(|k| stores.get(k).map(class_of).unwrap_or_default()).collect();
        let mut problems = Problems::default();
        match split_classes(&classes, &config.controller_class) {
            Classes::Ours => {}
            Classes::Other(class) => {
                answers.push(Some(WaveResult::OtherClass(class)));
                continue;
            }
            Classes::Mixed(all) => problems.push(
                Problem::new(format!(
                    "its stores belong to different controller classes ({}): no controller serves it (each serves one class, --controller-class); use stores of one class",
                    all.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ))
                .object(r.es.object()),
            ),
        }
        for (kind, ns, name) in refs.iter().filter(|k| !stores.contains_key(*k)) {
            let place = ns.as_deref().map(|n| format!(" in namespace `{n}`")).unwrap_or_default();
            problems.push(Problem::new(format!("{} `{name}` not found{place}", kind.as_str())).object(r.es.object()));
        }
        for k in &refs {
            if let Some(p) = store_problems.get(k) {
                problems.0.extend(p.0.iter().cloned());
            }
        }
        if problems.is_empty() {
            answers.push(None);
            to_resolve.push(r.es.clone());
        } else if refs.iter().any(|k| refused.contains(k)) {
            answers.push(Some(WaveResult::StoreRefused(problems)));
        } else {
            answers.push(Some(WaveResult::Failed(problems)));
        }
    }

    // 4. templateFrom sources of the wave's namespaces.
    let mut docs = Vec::new();
    let mut seen = BTreeSet::new();
    for es in &to_resolve {
        let Some(ns) = es.effective_namespace.clone() else { continue };
        for t in es.spec.target.template.iter().flat_map(|t| t.template_from.iter()) {
            if let Some(cm) = &t.config_map {
                if seen.insert(("ConfigMap", ns.clone(), cm.name.clone())) {
                    if let Ok(Some(obj)) = Api::<ConfigMap>::namespaced(client.clone(), &ns).get_opt(&cm.name).await {
                        docs.push(objects::document(serde_json::to_value(&obj).unwrap_or(Value::Null)));
                    }
                }
            }
            if let Some(s) = &t.secret {
                if seen.insert(("Secret", ns.clone(), s.name.clone())) {
                    if let Ok(Some(obj)) = Api::<Secret>::namespaced(client.clone(), &ns).get_opt(&s.name).await {
                        docs.push(objects::document(serde_json::to_value(&obj).unwrap_or(Value::Null)));
                    }
                }
            }
        }
    }
    let sources = Arc::new(crate::render::template_sources(&docs, settings));

    // 5. Resolve everything at once; each ExternalSecret is answered as soon as its result is
    // known (a slow store or a long template holds back no other ExternalSecret of the wave).
    let batch_len = batch.len();
    let mut pending = Vec::with_capacity(to_resolve.len());
    for (r, answer) in batch.into_iter().zip(answers) {
        match answer {
            Some(a) => {
                let _ = r.reply.send(a);
            }
            None => pending.push(Some(r.reply)),
        }
    }
    let progress = crate::resolve::Progress::default();
    if !to_resolve.is_empty() {
        let run = crate::resolve::resolve_streaming(Arc::new(to_resolve), &catalog, sources, settings, &progress, |i, result| {
            if let Some(reply) = pending.get_mut(i).and_then(Option::take) {
                let _ = reply.send(match result {
                    Ok(secret) => WaveResult::Rendered(secret),
                    Err(p) => WaveResult::Failed(p),
                });
            }
        });
        // Each store's calls and each ExternalSecret's assembly end by `settings.timeout` on their
        // own inside the run; this outer bound is a backstop.
        if tokio::time::timeout(settings.timeout + crate::render::BACKSTOP_GRACE, run).await.is_err() {
            let mut p = Problems(progress.take_early());
            p.push(Problem::new(format!("deadline of {}s exceeded while reading from providers", settings.timeout.as_secs_f32())));
            for reply in pending.iter_mut().filter_map(Option::take) {
                let _ = reply.send(WaveResult::Failed(Problems(p.0.clone())));
            }
        }
    }
    if let Some(f) = &config.on_wave {
        f(batch_len, progress.reads.load(std::sync::atomic::Ordering::Relaxed));
    }
}

/// Reads the ServiceAccount a store authenticates with (its resourceVersion joins the store's
/// fingerprint) and, unless a client for the same fingerprint is cached, asks TokenRequest for a
/// token with the store's audiences (one hour). Never one with an audience the API server
/// accepts (`trust::check` refused such stores already; checked again right here).
#[allow(clippy::too_many_arguments)]
async fn service_account_token(
    client: &Client,
    cache: &ClientCache,
    store: &crate::resolve::stores::StoreKey,
    fingerprint: &mut String,
    namespace: Option<String>,
    name: &str,
    audiences: Vec<String>,
    api_audiences: &[String],
) -> Result<Option<crate::resolve::stores::ServiceAccountToken>, String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let ns = namespace.ok_or_else(|| format!("ServiceAccount `{name}`: a ClusterSecretStore's serviceAccountRef needs a namespace"))?;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa = api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading ServiceAccount {ns}/{name}: {}", objects::api_error(&e)))?
        .ok_or_else(|| format!("ServiceAccount {ns}/{name} not found"))?;
    fingerprint.push_str("/sa:");
    fingerprint.push_str(sa.metadata.resource_version.as_deref().unwrap_or(""));
    if cache.get(store, fingerprint).is_some() {
        return Ok(None);
    }
    if let Some(bad) = audiences.iter().find(|a| crate::resolve::trust::is_api_server_audience(a, api_audiences)) {
        return Err(format!(
            "ServiceAccount {ns}/{name}: no token is requested with audience `{bad}`, which the Kubernetes API server accepts"
        ));
    }
    let request =
        TokenRequest { spec: TokenRequestSpec { audiences, expiration_seconds: Some(3600), ..Default::default() }, ..Default::default() };
    let answer = api
        .create_token_request(name, &Default::default(), &request)
        .await
        .map_err(|e| format!("TokenRequest for ServiceAccount {ns}/{name}: {}", objects::api_error(&e)))?;
    let token = answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("TokenRequest for ServiceAccount {ns}/{name} returned no token"))?;
    Ok(Some(crate::resolve::stores::ServiceAccountToken { token, annotations: sa.metadata.annotations.unwrap_or_default() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_classes() {
        assert!(class_matches("", "default"));
        assert!(class_matches("default", "default"));
        assert!(!class_matches("eso", "default"));
        assert!(class_matches("extsecret", "extsecret"));
        assert!(!class_matches("", "extsecret"));
        assert!(!class_matches("default", "extsecret"));
    }

    #[test]
    fn stores_of_different_classes_are_the_default_controllers_to_report() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(split_classes(&c(&["", "default"]), "default"), Classes::Ours);
        assert_eq!(split_classes(&c(&["eso"]), "default"), Classes::Other("eso".into()));
        assert_eq!(split_classes(&c(&["", "eso"]), "default"), Classes::Mixed(vec!["default".into(), "eso".into()]));
        assert_eq!(split_classes(&c(&["", "eso"]), "eso"), Classes::Other("".into()));
        assert_eq!(split_classes(&c(&["eso", "eso"]), "eso"), Classes::Ours);
    }
}
