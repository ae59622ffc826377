//! Applying `spec.target.template` to the fetched data, with ESO's precedence (ESO
//! `ApplyTemplate`): provider data (only when the template has no `data`/`templateFrom`, or with
//! `mergePolicy: Merge`) < `templateFrom` in order < `template.data`. Label and annotation
//! templates, when given, replace the labels and annotations copied from the ExternalSecret.

use std::collections::BTreeMap;

use crate::api::{MergePolicy, TemplateScope, TemplateSpec};

use super::{bytes, render, Context, Engine};

/// ConfigMaps and Secrets of the input stream that `templateFrom` may name, by
/// `(namespace, name)`; values as bytes.
#[derive(Clone, Debug, Default)]
pub struct TemplateSources {
    pub config_maps: BTreeMap<(Option<String>, String), BTreeMap<String, Vec<u8>>>,
    pub secrets: BTreeMap<(Option<String>, String), BTreeMap<String, Vec<u8>>>,
}

/// The parts of a Secret a template decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Templated {
    pub secret_type: String,
    pub data: BTreeMap<String, Vec<u8>>,
    /// `Some` when the template sets labels (they replace the copied ones).
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A template problem: the field (`spec.target.template.data.tls.crt`) and a value-free message.
pub type FieldProblem = (String, String);

#[derive(Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    Data,
    Labels,
    Annotations,
}

fn target_kind(t: Option<&str>) -> Result<TargetKind, String> {
    match t.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("data") => Ok(TargetKind::Data),
        Some("labels") => Ok(TargetKind::Labels),
        Some("annotations") => Ok(TargetKind::Annotations),
        Some(other) => Err(format!("target `{other}` is not one of Data, Labels, Annotations")),
    }
}

struct Out {
    data: BTreeMap<String, Vec<u8>>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl Out {
    /// Adds a rendered pair. Errors never quote the pair: keys of a KeysAndValues rendering may be
    /// computed from values.
    fn put(&mut self, target: TargetKind, key: String, value: Vec<u8>) -> Result<(), String> {
        let text = || String::from_utf8(value.clone()).map_err(|_| "a rendered label or annotation value is not UTF-8 text".to_string());
        match target {
            TargetKind::Data => {
                if let Some(why) = crate::resolve::value::secret_key_error(&key) {
                    return Err(format!("a rendered data key is not a valid Secret key ({why})"));
                }
                self.data.insert(key, value);
            }
            TargetKind::Labels => {
                let value = text()?;
                if !is_qualified_name(&key) || !is_label_value(&value) {
                    return Err("a rendered label is not valid (keys: [prefix/]name of at most 63 characters; values: at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric)".into());
                }
                self.labels.get_or_insert_with(BTreeMap::new).insert(key, value);
            }
            TargetKind::Annotations => {
                let value = text()?;
                if !is_qualified_name(&key) {
                    return Err("a rendered annotation key is not a valid [prefix/]name".into());
                }
                self.annotations.get_or_insert_with(BTreeMap::new).insert(key, value);
            }
        }
        Ok(())
    }
}

/// Kubernetes qualified name: optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(|p| !p.is_empty() && crate::resolve::value::dns_subdomain_error(p).is_none())
        && !name.is_empty()
        && is_label_value(name)
}

/// Kubernetes label value: empty, or at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

/// Parses a KeysAndValues rendering: a YAML map whose scalar values are taken as written.
fn keys_and_values(rendered: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text =
        std::str::from_utf8(rendered).map_err(|_| "the rendered text is not UTF-8, so it cannot be read as a YAML map".to_string())?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|_| "the rendered text is not a YAML map of keys and values".to_string())?;
    let map = v.as_object().ok_or_else(|| "the rendered text is not a YAML map of keys and values".to_string())?;
    Ok(map
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone().into_bytes(),
                serde_json::Value::Null => Vec::new(),
                other => other.to_string().into_bytes(),
            };
            (k.clone(), value)
        })
        .collect())
}

/// Applies `t` to `provider` data. `namespace` is the ExternalSecret's effective namespace (where
/// `templateFrom` ConfigMaps and Secrets are looked up). All problems are returned together. All
/// templates of the call share one work budget ([`super::budget`]).
pub fn apply(
    t: &TemplateSpec,
    engine: Engine,
    provider: &Context,
    namespace: Option<&str>,
    sources: &TemplateSources,
) -> Result<Templated, Vec<FieldProblem>> {
    super::budget::scope(|| apply_all(t, engine, provider, namespace, sources))
}

fn apply_all(
    t: &TemplateSpec,
    engine: Engine,
    provider: &Context,
    namespace: Option<&str>,
    sources: &TemplateSources,
) -> Result<Templated, Vec<FieldProblem>> {
    let mut problems: Vec<FieldProblem> = Vec::new();
    let base = "spec.target.template";
    let mut out = Out { data: BTreeMap::new(), labels: None, annotations: None };
    if (t.data.is_empty() && t.template_from.is_empty()) || t.merge_policy == MergePolicy::Merge {
        out.data = provider.clone();
    }
    for (i, tf) in t.template_from.iter().enumerate() {
        let field = format!("{base}.templateFrom[{i}]");
        let target = match target_kind(tf.target.as_deref()) {
            Ok(k) => k,
            Err(m) => {
                problems.push((format!("{field}.target"), m));
                continue;
            }
        };
        let refs = [("configMap", &tf.config_map, &sources.config_maps), ("secret", &tf.secret, &sources.secrets)];
        let given = refs.iter().filter(|(_, r, _)| r.is_some()).count() + usize::from(tf.literal.is_some());
        if given != 1 {
            problems.push((field.clone(), "exactly one of configMap, secret or literal is required".into()));
            continue;
        }
        if let Some(literal) = &tf.literal {
            match render(engine, &format!("{field}.literal"), literal, provider).and_then(|r| keys_and_values(&r)) {
                Ok(pairs) => {
                    for (k, v) in pairs {
                        if let Err(m) = out.put(target, k, v) {
                            problems.push((format!("{field}.literal"), m));
                        }
                    }
                }
                Err(m) => problems.push((format!("{field}.literal"), m)),
            }
        }
        for (what, reference, objects) in refs {
            let Some(r) = reference else { continue };
            let kind = if what == "configMap" { "ConfigMap" } else { "Secret" };
            let Some(object) = objects.get(&(namespace.map(str::to_string), r.name.clone())) else {
                problems.push((
                    format!("{field}.{what}.name"),
                    format!(
                        "no {kind} `{}` in the input stream{}",
                        r.name,
                        namespace.map(|n| format!(" in namespace `{n}`")).unwrap_or_default()
                    ),
                ));
                continue;
            };
            for (j, item) in r.items.iter().enumerate() {
                let item_field = format!("{field}.{what}.items[{j}]");
                let Some(source) = object.get(&item.key) else {
                    problems.push((format!("{item_field}.key"), format!("{kind} `{}` has no key `{}`", r.name, item.key)));
                    continue;
                };
                let Ok(source) = std::str::from_utf8(source) else {
                    problems
                        .push((format!("{item_field}.key"), format!("{kind} `{}` key `{}` is not UTF-8 template text", r.name, item.key)));
                    continue;
                };
                let rendered = render(engine, &format!("{kind} {}/{}", r.name, item.key), source, provider);
                let result = match (rendered, item.template_as) {
                    (Err(m), _) => Err(m),
                    (Ok(v), TemplateScope::Values) => out.put(target, item.key.clone(), v),
                    (Ok(v), TemplateScope::KeysAndValues) => {
                        keys_and_values(&v).and_then(|pairs| pairs.into_iter().try_for_each(|(k, v)| out.put(target, k, v)))
                    }
                };
                if let Err(m) = result {
                    problems.push((item_field, m));
                }
            }
        }
    }
    for (key, source) in &t.data {
        let field = format!("{base}.data.{key}");
        match render(engine, &format!("data.{key}"), source, provider) {
            Ok(v) => out.data.insert(key.clone(), v).map_or((), |_| ()),
            Err(m) => problems.push((field, m)),
        }
    }
    if let Some(meta) = &t.metadata {
        for (target, templates, name) in
            [(TargetKind::Labels, &meta.labels, "labels"), (TargetKind::Annotations, &meta.annotations, "annotations")]
        {
            let Some(templates) = templates else { continue };
            match target {
                TargetKind::Labels => drop(out.labels.get_or_insert_with(BTreeMap::new)),
                _ => drop(out.annotations.get_or_insert_with(BTreeMap::new)),
            }
            for (key, source) in templates {
                let field = format!("{base}.metadata.{name}.{key}");
                if let Err(m) =
                    render(engine, &format!("metadata.{name}.{key}"), source, provider).and_then(|v| out.put(target, key.clone(), v))
                {
                    problems.push((field, m));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Templated {
        secret_type: t.secret_type.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "Opaque".into()),
        data: out.data,
        labels: out.labels,
        annotations: out.annotations,
    })
}

/// Renders a `rewrite[].transform` template for one key (`{{ .value }}` is the key).
pub fn transform_key(engine: Engine, template: &str, key: &str) -> Result<String, String> {
    let context: Context = BTreeMap::from([("value".to_string(), key.as_bytes().to_vec())]);
    let out = render(engine, "rewrite.transform", template, &context)?;
    bytes::engine_to_text(&bytes::to_engine(&out))
}
