//! Resolution: from ExternalSecrets to Secrets.
//!
//! 1. [`parse_external_secret`] decodes and validates each ExternalSecret (strict fields,
//!    unsupported features refused by name, secret keys, regexes).
//! 2. [`resolve`] plans every remote read of the whole run, builds one client per store used,
//!    runs the finds, fetches each (store, key, version) once ([`fetch`]), and assembles each
//!    Secret with ESO's merge order: `dataFrom` in order, then `data`.
//!
//! Every problem names the file, document, ExternalSecret and field; none carries a value.

pub mod fetch;
pub mod secret;
pub mod stores;
pub mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::api::{self, decode_strict, ApiVersion, ExternalSecretSpec, ObjectMeta, RemoteRef, StoreRef};
use crate::manifest::Document;
use crate::problem::{Origin, Problem, Problems};
use crate::provider::{FindQuery, Provider, ProviderError, RemoteKey, SecretValue};
use crate::settings::Settings;

use fetch::{FindKey, ReadResult};
pub use secret::RenderedSecret;
use stores::{Catalog, StoreKey};
use value::DotOrder;

/// Kubernetes refuses a Secret whose data is over 1 MiB.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// An ExternalSecret read from the input, validated.
#[derive(Clone, Debug)]
pub struct ParsedExternalSecret {
    pub origin: Origin,
    pub meta: ObjectMeta,
    pub spec: ExternalSecretSpec,
    /// `metadata.namespace`, else `--namespace`, else `ARGOCD_APP_NAMESPACE`.
    pub effective_namespace: Option<String>,
    /// Template engine (annotation `extsecret.io/template-engine`; Go text/template by default).
    pub engine: crate::template::Engine,
}

impl ParsedExternalSecret {
    /// `ExternalSecret ns/name`, for messages.
    pub fn object(&self) -> String {
        format!("ExternalSecret {}", self.meta.qualified_name())
    }
    /// `spec.target.name`, defaulting to the ExternalSecret's name.
    pub fn target_name(&self) -> &str {
        self.spec.target.name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&self.meta.name)
    }
    fn problem(&self, field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(message).at(&self.origin).object(self.object()).field(field)
    }
}

/// Decodes and validates one ExternalSecret document of the given API version.
pub fn parse_external_secret(doc: &Document, version: ApiVersion, settings: &Settings) -> Result<ParsedExternalSecret, Problems> {
    let meta: ObjectMeta = match doc.value.get("metadata").cloned().map(serde_json::from_value) {
        Some(Ok(m)) => m,
        _ => {
            return Err(Problem::new("metadata must be a mapping with string labels and annotations")
                .at(&doc.origin)
                .object("ExternalSecret")
                .field("metadata")
                .into())
        }
    };
    let object = format!("ExternalSecret {}", meta.qualified_name());
    if meta.name.is_empty() {
        return Err(Problem::new("metadata.name is required").at(&doc.origin).object(object).field("metadata.name").into());
    }
    let mut spec_value = doc.value.get("spec").cloned().unwrap_or(Value::Null);
    if !spec_value.is_object() {
        return Err(Problem::new("spec is required and must be a mapping").at(&doc.origin).object(object).field("spec").into());
    }
    if version == ApiVersion::V1alpha1 {
        map_v1alpha1(&mut spec_value);
    }
    let (spec, warnings) = decode_strict::<ExternalSecretSpec>(spec_value, "spec", settings.strictness)
        .map_err(|e| stores::field_problems(e, &doc.origin, &object))?;
    stores::log_warnings(&object, &warnings);
    let engine = crate::template::Engine::from_annotations(&meta.annotations)
        .map_err(|m| Problems::from(Problem::new(m).at(&doc.origin).object(object.clone()).field("metadata.annotations")))?;
    let es = ParsedExternalSecret {
        engine,
        origin: doc.origin.clone(),
        effective_namespace: meta.namespace.clone().filter(|n| !n.is_empty()).or_else(|| settings.namespace.clone()),
        meta,
        spec,
    };
    let mut problems = Problems::default();
    for (field, why) in es.spec.unsupported_fields() {
        problems.push(es.problem(field, format!("not supported: {why}")));
    }
    validate(&es, &mut problems);
    problems.into_result(es)
}

/// The seed's `v1alpha1` shape: a `dataFrom[]` entry that is a bare remote reference is an extract.
fn map_v1alpha1(spec: &mut Value) {
    if let Some(Value::Array(items)) = spec.get_mut("dataFrom") {
        for item in items.iter_mut() {
            if item.get("key").is_some() && item.get("extract").is_none() && item.get("find").is_none() {
                *item = serde_json::json!({ "extract": item.take() });
            }
        }
    }
}

fn validate(es: &ParsedExternalSecret, problems: &mut Problems) {
    let spec = &es.spec;
    if spec.data.is_empty() && spec.data_from.is_empty() {
        problems.push(es.problem("spec", "one of data or dataFrom is required"));
    }
    let target_field = if spec.target.name.as_deref().is_some_and(|n| !n.is_empty()) { "spec.target.name" } else { "metadata.name" };
    if let Some(why) = value::dns_subdomain_error(es.target_name()) {
        problems.push(es.problem(target_field, format!("`{}` is not a valid Secret name ({why})", es.target_name())));
    }
    if let Some(why) = es.meta.namespace.as_deref().filter(|n| !n.is_empty()).and_then(value::dns_label_error) {
        problems.push(es.problem("metadata.namespace", format!("not a valid namespace ({why})")));
    }
    // A render writes whole Secrets: policies that merge into (or skip) a Secret of the cluster
    // need the controller.
    match spec.target.creation_policy.as_deref() {
        None | Some("") | Some("Owner") | Some("Orphan") => {}
        Some(p @ ("Merge" | "CreateOrMerge" | "None")) => problems.push(es.problem(
            "spec.target.creationPolicy",
            format!("creationPolicy {p} merges into (or leaves alone) a Secret of the cluster, which a render cannot see; it would overwrite it with a whole Secret: use Owner or Orphan, or the controller"),
        )),
        Some(other) => problems.push(es.problem("spec.target.creationPolicy", format!("unknown creationPolicy `{other}` (Owner, Orphan, Merge, CreateOrMerge, None)"))),
    }
    let mut seen = BTreeMap::new();
    for (i, d) in spec.data.iter().enumerate() {
        let field = format!("spec.data[{i}].secretKey");
        if let Some(why) = value::secret_key_error(&d.secret_key) {
            problems.push(es.problem(&field, format!("`{}` is not a valid Secret key ({why})", d.secret_key)));
        }
        if let Some(first) = seen.insert(d.secret_key.clone(), i) {
            problems.push(es.problem(&field, format!("duplicate secretKey `{}` (also spec.data[{first}])", d.secret_key)));
        }
        if d.remote_ref.key.is_empty() {
            problems.push(es.problem(format!("spec.data[{i}].remoteRef.key"), "remoteRef.key is required"));
        }
        if store_ref(spec, d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())).is_none() {
            problems.push(es.problem(format!("spec.data[{i}]"), "no store: set spec.secretStoreRef or sourceRef.storeRef"));
        }
    }
    for (i, d) in spec.data_from.iter().enumerate() {
        let base = format!("spec.dataFrom[{i}]");
        match (&d.extract, &d.find) {
            (Some(_), Some(_)) => problems.push(es.problem(&base, "extract and find are mutually exclusive")),
            (None, None) if d.source_ref.as_ref().is_none_or(|s| s.generator_ref.is_none()) => {
                problems.push(es.problem(&base, "one of extract or find is required"))
            }
            (Some(e), None) if e.key.is_empty() => problems.push(es.problem(format!("{base}.extract.key"), "extract.key is required")),
            (None, Some(f)) if f.name.is_none() && f.tags.is_empty() => {
                problems.push(es.problem(format!("{base}.find"), "find needs name.regexp or tags"))
            }
            _ => {}
        }
        if let Some(Err(e)) = d.find.as_ref().and_then(|f| f.name.as_ref()).map(|n| regex::Regex::new(&n.regexp)) {
            problems.push(
                es.problem(format!("{base}.find.name.regexp"), format!("invalid regular expression: {}", first_line(&e.to_string()))),
            );
        }
        for (j, r) in d.rewrite.iter().enumerate() {
            match &r.regexp {
                Some(rx) => {
                    if let Err(e) = regex::Regex::new(&rx.source) {
                        problems.push(es.problem(
                            format!("{base}.rewrite[{j}].regexp.source"),
                            format!("invalid regular expression: {}", first_line(&e.to_string())),
                        ));
                    }
                }
                None if r.transform.is_none() && r.merge.is_none() => {
                    problems.push(es.problem(format!("{base}.rewrite[{j}]"), "one of regexp, transform or merge is required"))
                }
                None => {}
            }
        }
        if store_ref(spec, d.source_ref.as_ref().and_then(|s| s.store_ref.as_ref())).is_none() {
            problems.push(es.problem(&base, "no store: set spec.secretStoreRef or sourceRef.storeRef"));
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

fn store_ref<'a>(spec: &'a ExternalSecretSpec, own: Option<&'a StoreRef>) -> Option<&'a StoreRef> {
    own.or(spec.secret_store_ref.as_ref())
}

/// One planned source of an ExternalSecret.
enum Planned {
    Data { index: usize, store: StoreKey, key: RemoteKey },
    Extract { index: usize, store: StoreKey, key: RemoteKey },
    Find { index: usize, store: StoreKey, find: FindKey },
}

fn remote_key(r: &RemoteRef) -> RemoteKey {
    RemoteKey {
        key: r.key.clone(),
        version: r.version.clone().filter(|v| !v.is_empty()),
        metadata: r.metadata_policy == api::MetadataPolicy::Fetch,
    }
}

/// Resolves every ExternalSecret; returns one Secret per ExternalSecret in order, or every
/// problem of the run.
///
/// Assembly (value extraction and templates) is CPU work: it runs on a blocking thread, so the
/// caller's deadline still ends the run even if a template loops for long.
///
/// `early` receives the problems known before assembly (stores whose client could not be built),
/// so a caller whose deadline passes can still report them.
pub async fn resolve(
    ess: Arc<Vec<ParsedExternalSecret>>,
    catalog: &Catalog,
    sources: Arc<crate::template::apply::TemplateSources>,
    settings: &Settings,
    early: &std::sync::Mutex<Vec<Problem>>,
) -> Result<Vec<RenderedSecret>, Problems> {
    let mut problems = Problems::default();
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
    }

    // 2. One client per store used.
    let mut clients: BTreeMap<StoreKey, Arc<dyn Provider>> = BTreeMap::new();
    let mut broken: HashMap<StoreKey, ProviderError> = HashMap::new();
    for (key, store) in &used {
        match catalog.build_provider(store, settings).await {
            Ok(c) => {
                clients.insert(key.clone(), c);
            }
            Err(e) => {
                // Known now: reported even if the run's deadline passes before assembly.
                if let Ok(mut early) = early.lock() {
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
    let fetched = fetch::fetch_all(&clients, reads, settings.concurrency).await;

    // 4. Assemble.
    let ctx = Assembly { sources, clients, fetched, found, broken };
    let assembled = tokio::task::spawn_blocking(move || {
        let mut problems = Problems::default();
        let mut secrets = Vec::with_capacity(ess.len());
        for (es, plan) in ess.iter().zip(plans) {
            let Some(plan) = plan else { continue };
            match ctx.assemble(es, plan) {
                Ok(s) => secrets.push(s),
                Err(p) => problems.extend(p),
            }
        }
        (secrets, problems)
    })
    .await;
    let (secrets, more) = assembled.map_err(|_| Problems::from(Problem::new("internal error while assembling the Secrets")))?;
    problems.extend(more);
    problems.into_result(secrets)
}

/// `key` as the store's provider spells it for deduplication.
fn canonical(clients: &BTreeMap<StoreKey, Arc<dyn Provider>>, store: &StoreKey, key: &RemoteKey) -> RemoteKey {
    match clients.get(store) {
        Some(c) => RemoteKey { key: c.canonical_key(&key.key), ..key.clone() },
        None => key.clone(),
    }
}

struct Assembly {
    clients: BTreeMap<StoreKey, Arc<dyn Provider>>,
    sources: Arc<crate::template::apply::TemplateSources>,
    fetched: HashMap<(StoreKey, RemoteKey), ReadResult>,
    found: HashMap<(StoreKey, FindKey), Result<Vec<String>, ProviderError>>,
    broken: HashMap<StoreKey, ProviderError>,
}

impl Assembly {
    fn read(&self, store: &StoreKey, key: &RemoteKey) -> Result<&SecretValue, String> {
        if let Some(e) = self.broken.get(store) {
            return Err(format!("{e} ({store} is unusable)"));
        }
        match self.fetched.get(&(store.clone(), canonical(&self.clients, store, key))) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(format!("{e} ({store})")),
            None => Err(format!("secret {key} was not read ({store})")),
        }
    }

    /// The store's `property` lookup order (ESO's differs per provider).
    fn order(&self, store: &StoreKey) -> DotOrder {
        self.clients.get(store).map_or(DotOrder::LiteralFirst, |c| c.property_order())
    }

    fn assemble(&self, es: &ParsedExternalSecret, plan: Vec<Planned>) -> Result<RenderedSecret, Problems> {
        let mut problems = Problems::default();
        let mut data: BTreeMap<String, SecretValue> = BTreeMap::new();
        for p in plan {
            match p {
                Planned::Extract { index, store, key } => {
                    let field = format!("spec.dataFrom[{index}].extract");
                    let entry = &es.spec.data_from[index];
                    let e = entry.extract.as_ref().expect("planned extract");
                    let checked = self.clients.get(&store).map_or(Ok(()), |c| c.check_extract(&key.key));
                    let result = checked.and_then(|_| self.read(&store, &key)).and_then(|payload| {
                        let payload = match &e.property {
                            Some(p) => value::select_property(payload.as_bytes(), p, self.order(&store))
                                .map_err(|m| format!("{m} in secret {key}"))?,
                            None => payload.0.clone(),
                        };
                        value::expand_object(&payload).map_err(|m| format!("{m}: secret {key}"))
                    });
                    match result {
                        Ok(pairs) => {
                            let steps = rewrite_steps(&entry.rewrite);
                            for (k, v) in pairs {
                                let name = match name_key(es, index, &steps, &k, e.conversion_strategy) {
                                    Ok(n) => n,
                                    Err((f, m)) => {
                                        problems.push(es.problem(f, m));
                                        continue;
                                    }
                                };
                                match finish_value(v, e.decoding_strategy, e.null_byte_policy) {
                                    Ok(v) => insert_key(es, &mut data, &mut problems, &field, &k, name, v),
                                    Err(m) => problems.push(es.problem(&field, format!("{m} (key `{k}` of secret {key})"))),
                                }
                            }
                        }
                        Err(m) => problems.push(es.problem(format!("{field}.key"), m)),
                    }
                }
                Planned::Find { index, store, find } => {
                    let field = format!("spec.dataFrom[{index}].find");
                    let entry = &es.spec.data_from[index];
                    let f = entry.find.as_ref().expect("planned find");
                    let names = match (self.broken.get(&store), self.found.get(&(store.clone(), find))) {
                        (Some(e), _) => Err(format!("{e} ({store} is unusable)")),
                        (None, Some(Ok(names))) => Ok(names.clone()),
                        (None, Some(Err(e))) => Err(format!("{e} ({store})")),
                        (None, None) => Err(format!("find was not run ({store})")),
                    };
                    let names = match names {
                        Ok(n) => n,
                        Err(m) => {
                            problems.push(es.problem(&field, m));
                            continue;
                        }
                    };
                    let steps = rewrite_steps(&entry.rewrite);
                    for name in names {
                        let key = RemoteKey { key: name.clone(), version: None, metadata: false };
                        let result = self.read(&store, &key).and_then(|v| {
                            finish_value(v.0.clone(), f.decoding_strategy, f.null_byte_policy).map_err(|m| format!("{m} (secret {key})"))
                        });
                        match result {
                            Ok(v) => match name_key(es, index, &steps, &name, f.conversion_strategy) {
                                Ok(new) => insert_key(es, &mut data, &mut problems, &field, &name, new, v),
                                Err((f, m)) => problems.push(es.problem(f, m)),
                            },
                            Err(m) => problems.push(es.problem(&field, m)),
                        }
                    }
                }
                Planned::Data { index, store, key } => {
                    let d = &es.spec.data[index];
                    let r = &d.remote_ref;
                    let base = format!("spec.data[{index}].remoteRef");
                    let payload = match self.read(&store, &key) {
                        Ok(p) => p,
                        Err(m) => {
                            problems.push(es.problem(format!("{base}.key"), m));
                            continue;
                        }
                    };
                    let selected = match &r.property {
                        Some(p) if !p.is_empty() => match value::select_property(payload.as_bytes(), p, self.order(&store)) {
                            Ok(v) => v,
                            Err(m) => {
                                problems.push(es.problem(format!("{base}.property"), format!("[NotFound] {m} in secret {key} ({store})")));
                                continue;
                            }
                        },
                        _ => payload.0.clone(),
                    };
                    match finish_value(selected, r.decoding_strategy, r.null_byte_policy) {
                        Ok(v) => {
                            data.insert(d.secret_key.clone(), SecretValue(v));
                        }
                        Err(m) => problems.push(es.problem(format!("{base}.decodingStrategy"), format!("{m} (secret {key})"))),
                    }
                }
            }
        }
        if problems.is_empty() && data.is_empty() {
            problems.push(
                es.problem("spec", "the ExternalSecret produced no data (a find matched nothing?); refusing to render an empty Secret"),
            );
        }
        let mut rendered = RenderedSecret {
            name: es.target_name().to_string(),
            namespace: es.meta.namespace.clone().filter(|n| !n.is_empty()),
            labels: secret::copied(&es.meta.labels),
            annotations: secret::copied(&es.meta.annotations),
            immutable: es.spec.target.immutable,
            secret_type: "Opaque".into(),
            data,
        };
        if let (Some(t), true) = (&es.spec.target.template, problems.is_empty()) {
            let context: crate::template::Context = rendered.data.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
            match crate::template::apply::apply(t, es.engine, &context, es.effective_namespace.as_deref(), &self.sources) {
                Ok(applied) => {
                    rendered.secret_type = applied.secret_type;
                    rendered.data = applied.data.into_iter().map(|(k, v)| (k, SecretValue(v))).collect();
                    rendered.labels = applied.labels.unwrap_or(rendered.labels);
                    rendered.annotations = applied.annotations.unwrap_or(rendered.annotations);
                    for (key, why) in rendered.data.keys().filter_map(|k| value::secret_key_error(k).map(|w| (k, w))) {
                        problems
                            .push(es.problem("spec.target.template", format!("template key `{key}` is not a valid Secret key ({why})")));
                    }
                }
                Err(list) => {
                    for (field, m) in list {
                        problems.push(es.problem(field, m));
                    }
                }
            }
            if problems.is_empty() && rendered.data.is_empty() {
                problems.push(es.problem("spec.target.template", "the template produced no data; refusing to render an empty Secret"));
            }
        }
        let size: usize = rendered.data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
        if size > MAX_SECRET_BYTES {
            problems
                .push(es.problem("spec", format!("the Secret's data is {size} bytes, over Kubernetes' limit of {MAX_SECRET_BYTES} bytes")));
        }
        problems.into_result(rendered)
    }
}

fn finish_value(v: Vec<u8>, decoding: api::DecodingStrategy, nul: api::NullBytePolicy) -> Result<Vec<u8>, String> {
    let v = value::decode(v, decoding)?;
    value::check_null_bytes(&v, nul)?;
    Ok(v)
}

/// A compiled `rewrite[]` step (regexes were validated when the ExternalSecret was parsed).
enum RewriteStep<'a> {
    Regexp(regex::Regex, &'a str),
    Transform(&'a str),
}

fn rewrite_steps(rewrites: &[api::Rewrite]) -> Vec<RewriteStep<'_>> {
    rewrites
        .iter()
        .filter_map(|r| match (&r.regexp, &r.transform) {
            (Some(rx), _) => regex::Regex::new(&rx.source).ok().map(|re| RewriteStep::Regexp(re, &rx.target)),
            (None, Some(t)) => Some(RewriteStep::Transform(&t.template)),
            _ => None,
        })
        .collect()
}

/// Names a key from `extract`/`find`: the `rewrite` steps in order when there are any, else the
/// conversion strategy (as ESO: conversion is skipped when rewrite is set). Errors carry the field.
fn name_key(
    es: &ParsedExternalSecret,
    index: usize,
    steps: &[RewriteStep<'_>],
    key: &str,
    conversion: api::ConversionStrategy,
) -> Result<String, (String, String)> {
    if steps.is_empty() {
        return Ok(value::convert_key(key, conversion));
    }
    let mut name = key.to_string();
    for (j, step) in steps.iter().enumerate() {
        name = match step {
            RewriteStep::Regexp(re, target) => re.replace_all(&name, *target).into_owned(),
            RewriteStep::Transform(t) => crate::template::apply::transform_key(es.engine, t, &name)
                .map_err(|m| (format!("spec.dataFrom[{index}].rewrite[{j}].transform.template"), m))?,
        };
    }
    Ok(name)
}

/// Inserts a key produced by extract/find after checking it is a valid Secret key (an empty key
/// from a rewrite is an error here, where ESO silently drops it, #2886).
fn insert_key(
    es: &ParsedExternalSecret,
    data: &mut BTreeMap<String, SecretValue>,
    problems: &mut Problems,
    field: &str,
    from: &str,
    key: String,
    v: Vec<u8>,
) {
    match value::secret_key_error(&key) {
        None => {
            data.insert(key, SecretValue(v));
        }
        Some(why) => problems.push(es.problem(
            field,
            format!("remote key `{from}` becomes `{key}`, which is not a valid Secret key ({why}; use rewrite or conversionStrategy)"),
        )),
    }
}
