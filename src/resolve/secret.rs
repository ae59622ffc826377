//! Building the Secret manifest from an ExternalSecret and its resolved data (a pure function
//! shared by every front-end).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::provider::SecretValue;

/// A Secret ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedSecret {
    pub name: String,
    /// The ExternalSecret's own `metadata.namespace` (none if it had none).
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub immutable: bool,
    /// `type` of the Secret: `Opaque` unless a template sets it.
    pub secret_type: String,
    /// Exact bytes per key.
    pub data: BTreeMap<String, SecretValue>,
}

/// Annotations that belong to the tools that handled the ExternalSecret, not to the Secret:
/// `kubectl.kubernetes.io/last-applied-configuration` and every `config.kubernetes.io/*`,
/// `internal.config.kubernetes.io/*`, `config.k8s.io/*`, `kustomize.config.k8s.io/*` key
/// (kustomize would drop a Secret marked `local-config`), and this tool's own `extsecret.io/*`.
pub fn is_tool_internal(key: &str) -> bool {
    key == "kubectl.kubernetes.io/last-applied-configuration"
        || ["config.kubernetes.io/", "internal.config.kubernetes.io/", "config.k8s.io/", "kustomize.config.k8s.io/", "extsecret.io/"]
            .iter()
            .any(|p| key.starts_with(p))
}

/// Labels and annotations copied from the ExternalSecret (Argo CD sync-wave and hook annotations
/// included), less the tool-internal ones.
pub fn copied(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter().filter(|(k, _)| !is_tool_internal(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Secret types the API server acts on with cluster-wide power: a ServiceAccount token Secret is
/// filled by the token controller with a token for the named ServiceAccount, and a bootstrap token
/// authenticates a node. Someone who may create ExternalSecrets but not Secrets could mint either.
/// ESO refuses `kubernetes.io/service-account-token` with the annotation and always refuses
/// `bootstrap.kubernetes.io/token` (pkg/controllers/externalsecret); the type alone is refused here.
pub const PRIVILEGED_TYPES: &[&str] = &["kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token"];

/// The annotation that binds a Secret to a ServiceAccount (the token controller fills it).
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "kubernetes.io/service-account.name";

impl RenderedSecret {
    /// Why this Secret must not be written, as `(what, reason)`: a privileged type
    /// ([`PRIVILEGED_TYPES`]) or the ServiceAccount annotation, from whatever source (template
    /// `type` or metadata, `templateFrom` with target `Annotations`, copied annotations).
    pub fn privileged(&self) -> Option<(&'static str, String)> {
        if PRIVILEGED_TYPES.contains(&self.secret_type.as_str()) {
            return Some(("type", format!("Secret type `{}` is refused: it would mint credentials for the cluster", self.secret_type)));
        }
        if self.annotations.contains_key(SERVICE_ACCOUNT_ANNOTATION) {
            return Some((
                "annotation",
                format!("the annotation `{SERVICE_ACCOUNT_ANNOTATION}` is refused: it would bind the Secret to a ServiceAccount token"),
            ));
        }
        None
    }

    /// The manifest: `apiVersion: v1`, `kind: Secret`, `metadata` (name, namespace, labels,
    /// annotations; empty maps omitted), `type: Opaque`, `immutable` when set, and `data` as the
    /// standard base64 of the exact bytes, keys sorted. No hash of the values is written.
    pub fn to_manifest(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(self.name));
        if let Some(ns) = &self.namespace {
            metadata.insert("namespace".into(), json!(ns));
        }
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), json!(self.labels));
        }
        if !self.annotations.is_empty() {
            metadata.insert("annotations".into(), json!(self.annotations));
        }
        let mut secret = Map::new();
        secret.insert("apiVersion".into(), json!("v1"));
        secret.insert("kind".into(), json!("Secret"));
        secret.insert("metadata".into(), Value::Object(metadata));
        secret.insert("type".into(), json!(self.secret_type));
        if self.immutable {
            secret.insert("immutable".into(), json!(true));
        }
        let data: Map<String, Value> =
            self.data.iter().map(|(k, v)| (k.clone(), json!(base64::engine::general_purpose::STANDARD.encode(v.as_bytes())))).collect();
        secret.insert("data".into(), Value::Object(data));
        Value::Object(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_has_sorted_base64_data_and_filtered_metadata() {
        let mut annotations = BTreeMap::new();
        annotations.insert("argocd.argoproj.io/sync-wave".to_string(), "-1".to_string());
        annotations.insert("config.kubernetes.io/path".to_string(), "x.yaml".to_string());
        annotations.insert("kubectl.kubernetes.io/last-applied-configuration".to_string(), "{}".to_string());
        let mut data = BTreeMap::new();
        data.insert("z".to_string(), SecretValue(vec![0, 255]));
        data.insert("a".to_string(), SecretValue(b"hi".to_vec()));
        let s = RenderedSecret {
            name: "db".into(),
            namespace: None,
            labels: BTreeMap::new(),
            annotations: copied(&annotations),
            immutable: true,
            secret_type: "Opaque".into(),
            data,
        };
        assert_eq!(
            serde_json::to_string(&s.to_manifest()).unwrap(),
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","annotations":{"argocd.argoproj.io/sync-wave":"-1"}},"type":"Opaque","immutable":true,"data":{"a":"aGk=","z":"AP8="}}"#
        );
    }
}
