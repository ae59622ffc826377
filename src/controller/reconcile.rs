//! One reconcile of one ExternalSecret (ESO's `Reconcile`): finalizer and deletionPolicy,
//! the refresh decision, a read in the next wave, the Secret write (server-side apply), events,
//! status and metrics. A provider or template error never touches the Secret.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};

use super::objects::ExternalSecretObject;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::metrics::Metrics;
use super::policy::{self, CreationPolicy, DeletionPolicy, RefreshPolicy};
use super::status::{self, message, reason, Outcome};
use super::target::{self, Owner, WritePlan};
use super::wave::{WaveResult, Waves};
use super::{hash, objects};
use crate::api::{ApiVersion, EsoKind};
use crate::problem::Problems;
use crate::settings::Settings;

/// ESO's finalizer on an ExternalSecret whose deletionPolicy needs work when it goes.
pub const FINALIZER: &str = "externalsecrets.external-secrets.io/externalsecret-cleanup";

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub waves: Waves,
    pub metrics: Arc<Metrics>,
    pub events: super::events::Events,
    /// Consecutive failures per ExternalSecret uid, for the backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Target Secret `(namespace, name)` → ExternalSecret name, to map Secret events back.
    pub targets: Mutex<HashMap<(String, String), String>>,
    /// ExternalSecrets `(namespace, name)` whose store changed: refreshed at their next
    /// reconcile even if not due.
    pub forced: Mutex<std::collections::HashSet<(String, String)>>,
    /// The last successful sync per ExternalSecret uid, as written to its status: a reconcile that
    /// runs before the cache has seen that status write does not read the provider again.
    pub synced: Mutex<HashMap<String, policy::LastSync>>,
    /// `--min-refresh-interval`: shorter non-zero refresh intervals are raised to it.
    pub min_refresh: Duration,
    /// ExternalSecret uid → the `refreshInterval` last warned about as raised (one warning each).
    pub raised: Mutex<HashMap<String, Duration>>,
}

/// Why a reconcile failed; the controller retries with capped exponential backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Sync(String),
    #[error("kube API: {0}")]
    Api(String),
}

/// Reconciles one ExternalSecret. Errors are value-free.
pub async fn reconcile(obj: Arc<ExternalSecretObject>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    // A panic anywhere in this ExternalSecret's reconcile is its own failure (status and event),
    // never the process's: the message is withheld (it may quote data), the place is kept.
    let result = match crate::isolate::catch_future("controller", reconcile_inner(&obj, &ctx)).await {
        Ok(r) => r,
        Err(panicked) => {
            let details = format!("ExternalSecret {}/{}: {panicked}", obj.namespace().unwrap_or_default(), obj.name_any());
            ctx.fail(&obj, "internal error", details.clone(), OffsetDateTime::now_utc()).await?;
            Err(ReconcileError::Sync(details))
        }
    };
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    let uid = obj.uid().unwrap_or_default();
    if let Ok(mut f) = ctx.failures.lock() {
        if result.is_ok() {
            f.remove(&uid);
        }
    }
    result
}

/// After a failure: 1 s, 2 s, 4 s, ... at most 5 minutes, with a spread.
pub fn error_policy(obj: Arc<ExternalSecretObject>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    let uid = obj.uid().unwrap_or_default();
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(uid).or_insert(0);
            *n += 1;
            *n
        })
        .unwrap_or(1);
    let delay = policy::backoff(n, policy::random_seed());
    tracing::warn!("ExternalSecret {}/{}: {err}; retrying in {}s", obj.namespace().unwrap_or_default(), obj.name_any(), delay.as_secs());
    Action::requeue(delay)
}

fn reference(obj: &ExternalSecretObject) -> ObjectReference {
    ObjectReference {
        api_version: Some("external-secrets.io/v1".into()),
        kind: Some("ExternalSecret".into()),
        name: obj.metadata.name.clone(),
        namespace: obj.metadata.namespace.clone(),
        uid: obj.metadata.uid.clone(),
        resource_version: obj.metadata.resource_version.clone(),
        ..Default::default()
    }
}

impl Context {
    async fn event(&self, obj: &ExternalSecretObject, warning: bool, reason: &str, note: String) {
        if let Err(e) = self.events.publish(reference(obj), warning, reason, note).await {
            tracing::debug!("event not recorded: {}", objects::api_error(&e));
        }
    }

    /// Warns once per ExternalSecret (and again if its interval changes) that its
    /// `refreshInterval` was raised to `--min-refresh-interval`: a log line and a Warning event.
    async fn warn_raised(&self, obj: &ExternalSecretObject, asked: Duration, used: Duration) {
        let first = self.raised.lock().is_ok_and(|mut r| r.insert(obj.uid().unwrap_or_default(), asked) != Some(asked));
        if !first {
            return;
        }
        let note = format!(
            "spec.refreshInterval {asked:?} is shorter than the controller's --min-refresh-interval / EXTSECRET_MIN_REFRESH_INTERVAL \
             ({used:?}): refreshing every {used:?} instead (ESO has no floor; the operator may lower it, 0 turns it off)"
        );
        tracing::warn!("ExternalSecret {}/{}: {note}", obj.namespace().unwrap_or_default(), obj.name_any());
        self.event(obj, true, "RefreshIntervalRaised", note).await;
    }

    fn es_api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &objects::resource(EsoKind::ExternalSecret))
    }

    /// Patches the status when it changes, and the Ready gauge.
    async fn set_status(&self, obj: &ExternalSecretObject, outcome: &Outcome, now: OffsetDateTime) -> Result<(), ReconcileError> {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        self.metrics.set_ready(&name, &ns, outcome.ready);
        let current = obj.status.as_ref().map(objects::JsonText::value);
        let patch = status::patch(current.as_ref(), outcome, now);
        if !status::changes(current.as_ref(), &patch) {
            return Ok(());
        }
        match self.es_api(&ns).patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(e) if objects::is_not_found(&e) => Ok(()),
            Err(e) => Err(ReconcileError::Api(format!("status of ExternalSecret {ns}/{name}: {}", objects::api_error(&e)))),
        }
    }

    /// Records a failed sync: Warning event with the details, Ready=False with ESO's short message.
    async fn fail(&self, obj: &ExternalSecretObject, short: &str, details: String, now: OffsetDateTime) -> Result<(), ReconcileError> {
        let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        self.metrics.sync_errors.with_label_values(&[&name, &ns]).inc();
        self.event(obj, true, "UpdateFailed", details).await;
        let outcome = Outcome { ready: false, reason: reason::SYNCED_ERROR, message: short.into(), synced: None };
        self.set_status(obj, &outcome, now).await
    }
}

/// Value-free text of problems, without the `cluster: document 0:` origin prefix.
fn describe(problems: &Problems) -> String {
    problems
        .0
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.origin = None;
            p.to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn reconcile_inner(obj: &ExternalSecretObject, ctx: &Context) -> Result<Action, ReconcileError> {
    let now = OffsetDateTime::now_utc();
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    // The object as a document, only while it is read: a reconcile waiting on its wave keeps
    // nothing but what it needs.
    let (parsed, deletion_policy, creation, status_last) = {
        let doc = objects::document(objects::external_secret_value(obj));
        let spec_target = doc.value.pointer("/spec/target");
        let text = |k: &str| spec_target.and_then(|t| t.get(k)).and_then(Value::as_str);
        (
            crate::resolve::parse_external_secret(&doc, ApiVersion::V1, &ctx.settings),
            DeletionPolicy::parse(text("deletionPolicy")),
            CreationPolicy::parse(text("creationPolicy")).unwrap_or_default(),
            status::last_sync(doc.value.get("status")),
        )
    };
    let target_name = parsed.as_ref().map(|p| p.target_name().to_string()).unwrap_or_else(|_| name.clone());
    if let Ok(mut t) = ctx.targets.lock() {
        t.insert((ns.clone(), target_name.clone()), name.clone());
    }
    let deletion = deletion_policy.clone().unwrap_or_default();

    // Deletion: deletionPolicy through the finalizer, then let the object go.
    if obj.metadata.deletion_timestamp.is_some() {
        if obj.finalizers().iter().any(|f| f == FINALIZER) {
            cleanup(obj, ctx, &ns, &target_name, deletion, creation).await?;
            remove_finalizer(obj, ctx).await?;
        }
        ctx.metrics.forget(&name, &ns);
        if let Ok(mut s) = ctx.synced.lock() {
            s.remove(&obj.uid().unwrap_or_default());
        }
        if let Ok(mut t) = ctx.targets.lock() {
            t.remove(&(ns.clone(), target_name));
        }
        return Ok(Action::await_change());
    }

    let es = match parsed {
        Ok(es) => es,
        Err(problems) => {
            // A configuration error: reported, not retried until the object changes.
            ctx.fail(obj, "invalid ExternalSecret", describe(&problems), now).await?;
            return Ok(Action::await_change());
        }
    };
    let refresh_policy = RefreshPolicy::parse(es.spec.refresh_policy.as_deref());
    let interval = policy::refresh_interval(es.spec.refresh_interval.as_ref());
    let (refresh_policy, asked_interval) = match (refresh_policy, interval) {
        (Ok(p), Ok(i)) => (p, i),
        (Err(e), _) => {
            ctx.fail(obj, "invalid ExternalSecret", format!("{}: spec.refreshPolicy: {e}", es.object()), now).await?;
            return Ok(Action::await_change());
        }
        (_, Err(e)) => {
            ctx.fail(obj, "invalid ExternalSecret", format!("{}: {e}", es.object()), now).await?;
            return Ok(Action::await_change());
        }
    };
    let (interval, raised) = policy::effective_interval(asked_interval, ctx.min_refresh);
    if raised && refresh_policy == RefreshPolicy::Periodic {
        ctx.warn_raised(obj, asked_interval, interval).await;
    }
    if let Err(e) = deletion_policy {
        ctx.fail(obj, "invalid ExternalSecret", format!("{}: spec.target.deletionPolicy: {e}", es.object()), now).await?;
        return Ok(Action::await_change());
    }

    // Refresh only when due, or when the Secret is not as written.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets
        .get_opt(&target_name)
        .await
        .map_err(|e| ReconcileError::Api(format!("reading Secret {ns}/{target_name}: {}", objects::api_error(&e))))?;
    let current_version = format!(
        "{}-{}",
        obj.metadata.generation.unwrap_or(0),
        hash::meta_hash(&obj.labels().clone().into_iter().collect(), &obj.annotations().clone().into_iter().collect())
    );
    let uid = obj.uid().unwrap_or_default();
    let mut last = status_last;
    if let Some(known) = ctx.synced.lock().ok().and_then(|s| s.get(&uid).cloned()) {
        if known.refresh_time > last.refresh_time {
            last = known;
        }
    }
    let seed = policy::random_seed();
    let requeue = |from: OffsetDateTime| match policy::next_refresh(refresh_policy, interval, from, OffsetDateTime::now_utc(), seed) {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    };
    let valid = match creation {
        CreationPolicy::Orphan | CreationPolicy::None => true,
        _ => existing.as_ref().is_some_and(is_secret_valid),
    };
    let forced = ctx.forced.lock().map(|mut f| f.remove(&(ns.clone(), name.clone()))).unwrap_or(false);
    if !forced && !policy::should_refresh(refresh_policy, interval, &last, &current_version, now) && valid {
        return Ok(requeue(last.refresh_time.unwrap_or(now)));
    }

    // The finalizer first, so a Secret is never written that its deletionPolicy could not clean.
    let wants_finalizer = deletion != DeletionPolicy::Retain;
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    if wants_finalizer != has_finalizer {
        set_finalizer(obj, ctx, wants_finalizer).await?;
    }

    ctx.metrics.sync_calls.with_label_values(&[&name, &ns]).inc();
    let rendered = match ctx.waves.resolve(es).await {
        WaveResult::OtherClass(class) => {
            tracing::debug!("ExternalSecret {ns}/{name}: its store belongs to controller class `{class}`; skipped");
            return Ok(Action::await_change());
        }
        WaveResult::Failed(problems) => {
            let details = describe(&problems);
            ctx.fail(obj, message::PROVIDER_ERROR, details.clone(), now).await?;
            return Err(ReconcileError::Sync(details));
        }
        WaveResult::StoreRefused(problems) => {
            let details = describe(&problems);
            ctx.fail(obj, &details, details.clone(), now).await?;
            return Err(ReconcileError::Sync(details));
        }
        WaveResult::Rendered(r) => r,
    };

    let owner = Owner { name: name.clone(), namespace: ns.clone(), uid: obj.uid().unwrap_or_default() };
    let synced = Outcome {
        ready: true,
        reason: reason::SYNCED,
        message: message::SYNCED.into(),
        synced: Some((now, current_version.clone(), target_name.clone())),
    };
    let remember = |ctx: &Context| {
        if let Ok(mut s) = ctx.synced.lock() {
            s.insert(uid.clone(), policy::LastSync { refresh_time: Some(now), synced_resource_version: Some(current_version.clone()) });
        }
    };
    match target::plan(&rendered, &owner, creation, existing.as_ref()) {
        WritePlan::UpToDate => {
            ctx.set_status(obj, &synced, now).await?;
            remember(ctx);
        }
        WritePlan::Missing => {
            let outcome = Outcome { ready: true, reason: reason::MISSING, message: message::MERGE_MISSING.into(), ..synced };
            ctx.set_status(obj, &outcome, now).await?;
            remember(ctx);
        }
        WritePlan::Refuse(why) => {
            // A conflict no retry fixes: reported, then left until something changes.
            ctx.fail(obj, &why, format!("Secret {ns}/{target_name}: {why}"), now).await?;
            return Ok(Action::await_change());
        }
        WritePlan::Apply { body, remove_keys, create } => {
            let params = PatchParams::apply(&target::field_manager(&name)).force();
            let written = match secrets.patch(&target_name, &params, &Patch::Apply(&body)).await {
                Ok(_) if remove_keys.is_empty() => Ok(()),
                Ok(_) => {
                    let nulls: serde_json::Map<String, Value> = remove_keys.iter().map(|k| (k.clone(), Value::Null)).collect();
                    secrets.patch(&target_name, &PatchParams::default(), &Patch::Merge(&json!({ "data": nulls }))).await.map(|_| ())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                if objects::is_conflict(&e) {
                    return Ok(Action::requeue(Duration::from_millis(200)));
                }
                let details = format!("Secret {ns}/{target_name}: {}", objects::api_error(&e));
                ctx.fail(obj, message::UPDATE_ERROR, details.clone(), now).await?;
                return Err(ReconcileError::Api(details));
            }
            let (reason, note) = if create { ("Created", "secret created") } else { ("Updated", "secret updated") };
            ctx.event(obj, false, reason, removal_note(note, &remove_keys)).await;
            tracing::info!("ExternalSecret {ns}/{name}: Secret {target_name} {}", if create { "created" } else { "updated" });
            ctx.set_status(obj, &synced, now).await?;
            remember(ctx);
        }
    }
    Ok(requeue(now))
}

/// The note of a write event; keys removed (no longer produced, e.g. a `find` whose match set
/// shrank) are named, never silently dropped. Key names only, never values.
fn removal_note(note: &str, removed: &[String]) -> String {
    if removed.is_empty() {
        return note.to_string();
    }
    let keys = removed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    format!("{note}; removed keys the ExternalSecret no longer produces: {keys}")
}

/// ESO's `isSecretValid`: the Secret exists, carries the managed label, and its data still has
/// the hash we wrote (an out-of-band edit or deletion is repaired at once).
fn is_secret_valid(secret: &Secret) -> bool {
    let labels = secret.metadata.labels.as_ref();
    let annotations = secret.metadata.annotations.as_ref();
    if labels.and_then(|l| l.get(target::MANAGED_LABEL)).map(String::as_str) != Some("true") {
        return false;
    }
    let data = target::existing_data(secret);
    let actual = hash::data_hash(data.iter().map(|(k, v)| (k, v.as_slice())));
    annotations.and_then(|a| a.get(target::DATA_HASH_ANNOTATION)) == Some(&actual)
}

async fn set_finalizer(obj: &ExternalSecretObject, ctx: &Context, present: bool) -> Result<(), ReconcileError> {
    let mut finalizers: Vec<String> = obj.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    if present {
        finalizers.push(FINALIZER.into());
    }
    // A JSON patch guarded by the resourceVersion, so a concurrent finalizer change is not lost.
    let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() } });
    let ns = obj.namespace().unwrap_or_default();
    match ctx.es_api(&ns).patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if objects::is_not_found(&e) => Ok(()),
        Err(e) => Err(ReconcileError::Api(format!("finalizer of ExternalSecret {ns}/{}: {}", obj.name_any(), objects::api_error(&e)))),
    }
}

async fn remove_finalizer(obj: &ExternalSecretObject, ctx: &Context) -> Result<(), ReconcileError> {
    set_finalizer(obj, ctx, false).await
}

/// deletionPolicy when the ExternalSecret goes: `Delete` deletes a Secret this ExternalSecret
/// manages (not one it merged into); `Merge` (and `Delete` on a merged Secret) removes only the
/// keys it wrote; `Retain` keeps the Secret.
async fn cleanup(
    obj: &ExternalSecretObject,
    ctx: &Context,
    ns: &str,
    target_name: &str,
    deletion: DeletionPolicy,
    creation: CreationPolicy,
) -> Result<(), ReconcileError> {
    if deletion == DeletionPolicy::Retain || creation == CreationPolicy::None {
        return Ok(());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = secrets.get_opt(target_name).await.map_err(|e| ReconcileError::Api(objects::api_error(&e)))? else {
        return Ok(());
    };
    let managed = secret.metadata.labels.as_ref().and_then(|l| l.get(target::MANAGED_LABEL)).is_some_and(|v| v == "true");
    let foreign_owner =
        secret.metadata.owner_references.iter().flatten().any(|r| r.controller == Some(true) && Some(&r.uid) != obj.metadata.uid.as_ref());
    if !managed || foreign_owner {
        return Ok(());
    }
    if deletion == DeletionPolicy::Delete && !creation.merges() {
        match secrets.delete(target_name, &DeleteParams::default()).await {
            Ok(_) => {
                ctx.event(obj, false, "Deleted", "secret deleted due to DeletionPolicy=Delete".into()).await;
                Ok(())
            }
            Err(e) if objects::is_not_found(&e) => Ok(()),
            Err(e) => Err(ReconcileError::Api(format!("deleting Secret {ns}/{target_name}: {}", objects::api_error(&e)))),
        }
    } else {
        // Remove the keys this ExternalSecret wrote (as its field manager records them, or as
        // its spec names them).
        let mut keys: BTreeMap<String, Value> = BTreeMap::new();
        let spec = obj.spec.as_ref().map(objects::JsonText::value).unwrap_or(Value::Null);
        for d in spec.get("data").and_then(Value::as_array).into_iter().flatten() {
            if let Some(k) = d.get("secretKey").and_then(Value::as_str) {
                keys.insert(k.into(), Value::Null);
            }
        }
        let manager = target::field_manager(&obj.name_any());
        for entry in secret.metadata.managed_fields.iter().flatten().filter(|e| e.manager.as_deref() == Some(manager.as_str())) {
            if let Some(data) = entry.fields_v1.as_ref().and_then(|f| f.0.get("f:data")).and_then(Value::as_object) {
                keys.extend(data.keys().filter_map(|k| k.strip_prefix("f:")).map(|k| (k.to_string(), Value::Null)));
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        // The Secret is someone else's again: our label and hash go with our keys.
        let patch = json!({
            "metadata": {
                "labels": { target::MANAGED_LABEL: null },
                "annotations": { target::DATA_HASH_ANNOTATION: null },
            },
            "data": keys,
        });
        secrets
            .patch(target_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| ReconcileError::Api(format!("removing keys from Secret {ns}/{target_name}: {}", objects::api_error(&e))))
    }
}
