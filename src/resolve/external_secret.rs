//! Decoding and validating one ExternalSecret: strict fields, unsupported features refused by
//! name, secret keys, names, policies and regexes (the API server's and ESO's webhook rules).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::{decode_strict, ApiVersion, ExternalSecretSpec, ObjectMeta, StoreRef};
use crate::manifest::Document;
use crate::problem::{Origin, Problem, Problems};
use crate::settings::Settings;

use super::{stores, value};

/// Kubernetes refuses a Secret whose data is over 1 MiB.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// An ExternalSecret read from the input, validated.
#[derive(Clone, Debug)]
pub struct ParsedExternalSecret {
    pub origin: Origin,
    pub meta: ObjectMeta,
    pub spec: ExternalSecretSpec,
    /// `metadata.namespace`, else [`crate::settings::Settings::namespace`] (the bound Application's
    /// namespace, else `--namespace`).
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
    pub(super) fn problem(&self, field: impl Into<String>, message: impl Into<String>) -> Problem {
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
    validate(&es, settings.controller, &mut problems);
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

fn validate(es: &ParsedExternalSecret, controller: bool, problems: &mut Problems) {
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
        Some("Merge" | "CreateOrMerge" | "None") if controller => {}
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

pub(super) fn store_ref<'a>(spec: &'a ExternalSecretSpec, own: Option<&'a StoreRef>) -> Option<&'a StoreRef> {
    own.or(spec.secret_store_ref.as_ref())
}
