//! Assembling each Secret from the fetched values: ESO's merge order (`dataFrom` in order, then
//! `data`), properties, decoding, key naming (`rewrite` or `conversionStrategy`), templates, and
//! the checks on the result. Pure CPU work over what the fetch phase read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::api::{self, RemoteRef};
use crate::problem::Problems;
use crate::provider::{Provider, ProviderError, RemoteKey, SecretValue};

use super::fetch::{FindKey, ReadResult};
use super::stores::StoreKey;
use super::value::{self, DotOrder};
use super::{secret, ParsedExternalSecret, RenderedSecret, MAX_SECRET_BYTES};

/// One planned source of an ExternalSecret.
pub(super) enum Planned {
    Data { index: usize, store: StoreKey, key: RemoteKey },
    Extract { index: usize, store: StoreKey, key: RemoteKey },
    Find { index: usize, store: StoreKey, find: FindKey },
}

impl Planned {
    /// The store this source is read from.
    pub(super) fn store(&self) -> &StoreKey {
        match self {
            Planned::Data { store, .. } | Planned::Extract { store, .. } | Planned::Find { store, .. } => store,
        }
    }
}

pub(super) fn remote_key(r: &RemoteRef) -> RemoteKey {
    RemoteKey {
        key: r.key.clone(),
        version: r.version.clone().filter(|v| !v.is_empty()),
        metadata: r.metadata_policy == api::MetadataPolicy::Fetch,
    }
}

/// `key` as the store's provider spells it for deduplication.
pub(super) fn canonical(client: Option<&Arc<dyn Provider>>, key: &RemoteKey) -> RemoteKey {
    match client {
        Some(c) => RemoteKey { key: c.canonical_key(&key.key), ..key.clone() },
        None => key.clone(),
    }
}

/// What the fetch phase learnt from one store: its client (or why it could not be built), its
/// finds and its reads.
#[derive(Default)]
pub(super) struct StoreData {
    pub(super) client: Option<Arc<dyn Provider>>,
    pub(super) broken: Option<ProviderError>,
    pub(super) found: HashMap<FindKey, Result<Vec<String>, ProviderError>>,
    pub(super) fetched: HashMap<RemoteKey, ReadResult>,
}

/// What an ExternalSecret is assembled from: the stores done so far and the template sources.
pub(super) struct Assembly {
    pub(super) sources: Arc<crate::template::apply::TemplateSources>,
    pub(super) stores: BTreeMap<StoreKey, Arc<StoreData>>,
}

impl Assembly {
    fn client(&self, store: &StoreKey) -> Option<&Arc<dyn Provider>> {
        self.stores.get(store).and_then(|d| d.client.as_ref())
    }

    fn read(&self, store: &StoreKey, key: &RemoteKey) -> Result<&SecretValue, String> {
        let Some(d) = self.stores.get(store) else { return Err(format!("secret {key} was not read ({store})")) };
        if let Some(e) = &d.broken {
            return Err(format!("{e} ({store} is unusable)"));
        }
        match d.fetched.get(&canonical(d.client.as_ref(), key)) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(format!("{e} ({store})")),
            None => Err(format!("secret {key} was not read ({store})")),
        }
    }

    /// The store's `property` lookup order (ESO's differs per provider).
    fn order(&self, store: &StoreKey) -> DotOrder {
        self.client(store).map_or(DotOrder::LiteralFirst, |c| c.property_order())
    }

    pub(super) fn assemble(&self, es: &ParsedExternalSecret, plan: Vec<Planned>) -> Result<RenderedSecret, Problems> {
        // One template budget for the ExternalSecret: rewrite transforms and the target template.
        let _budget = crate::template::budget::enter();
        let mut problems = Problems::default();
        let mut data: BTreeMap<String, SecretValue> = BTreeMap::new();
        for p in plan {
            match p {
                Planned::Extract { index, store, key } => {
                    let field = format!("spec.dataFrom[{index}].extract");
                    let entry = &es.spec.data_from[index];
                    let e = entry.extract.as_ref().expect("planned extract");
                    let checked = self.client(&store).map_or(Ok(()), |c| c.check_extract(&key.key));
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
                            let mut named = BTreeMap::new();
                            for (k, v) in pairs {
                                let name = match name_key(es, index, &steps, &k, e.conversion_strategy) {
                                    Ok(n) => n,
                                    Err((f, m)) => {
                                        problems.push(es.problem(f, m));
                                        continue;
                                    }
                                };
                                match finish_value(v, e.decoding_strategy, e.null_byte_policy) {
                                    Ok(v) => insert_key(es, &mut data, &mut named, &mut problems, &field, &k, name, v),
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
                    let done = self.stores.get(&store);
                    let names = match (done.and_then(|d| d.broken.as_ref()), done.and_then(|d| d.found.get(&find))) {
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
                    let mut named = BTreeMap::new();
                    for name in names {
                        let key = RemoteKey { key: name.clone(), version: None, metadata: false };
                        let result = self.read(&store, &key).and_then(|v| {
                            finish_value(v.0.clone(), f.decoding_strategy, f.null_byte_policy).map_err(|m| format!("{m} (secret {key})"))
                        });
                        match result {
                            Ok(v) => match name_key(es, index, &steps, &name, f.conversion_strategy) {
                                Ok(new) => insert_key(es, &mut data, &mut named, &mut problems, &field, &name, new, v),
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
        if let Some((what, why)) = rendered.privileged() {
            let field = if what == "type" {
                "spec.target.template.type"
            } else if es.meta.annotations.contains_key(secret::SERVICE_ACCOUNT_ANNOTATION) {
                "metadata.annotations"
            } else {
                "spec.target.template"
            };
            problems.push(es.problem(field, format!("{why} (no operator switch allows it; create such Secrets directly)")));
        }
        let size: usize = rendered.data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
        if size > MAX_SECRET_BYTES {
            // No size in the message: a length is information about the values.
            problems.push(es.problem("spec", format!("the Secret's data is over Kubernetes' limit of {MAX_SECRET_BYTES} bytes")));
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
/// from a rewrite is an error here, where ESO silently drops it, #2886) and that no other remote
/// key of the same `dataFrom` entry (`named`: Secret key → remote key) became the same Secret key.
/// ESO fails such a collision from `conversionStrategy` too ("secret name collision during
/// conversion", pkg/controllers/externalsecret/externalsecret_controller_secret.go) but silently
/// keeps one from `rewrite`; both are errors here. Across entries later ones override earlier ones
/// (ESO's merge order), so `named` is per entry.
#[allow(clippy::too_many_arguments)]
fn insert_key(
    es: &ParsedExternalSecret,
    data: &mut BTreeMap<String, SecretValue>,
    named: &mut BTreeMap<String, String>,
    problems: &mut Problems,
    field: &str,
    from: &str,
    key: String,
    v: Vec<u8>,
) {
    if let Some(why) = value::secret_key_error(&key) {
        problems.push(es.problem(
            field,
            format!("remote key `{from}` becomes `{key}`, which is not a valid Secret key ({why}; use rewrite or conversionStrategy)"),
        ));
        return;
    }
    if let Some(other) = named.get(&key).filter(|o| o.as_str() != from) {
        let (first, second) = if other.as_str() < from { (other.as_str(), from) } else { (from, other.as_str()) };
        problems.push(es.problem(
            field,
            format!(
                "remote keys `{first}` and `{second}` both become the Secret key `{key}` (key name collision after conversionStrategy or rewrite; rename one with rewrite)"
            ),
        ));
        return;
    }
    named.insert(key.clone(), from.to_string());
    data.insert(key, SecretValue(v));
}
