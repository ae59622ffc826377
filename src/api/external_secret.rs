//! `ExternalSecret` spec (ESO `apis/externalsecrets/v1/externalsecret_types.go`), field names as in
//! the YAML. Fields this tool reads but does not implement are kept as raw values so they can be
//! refused by name (see [`ExternalSecretSpec::unsupported_fields`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `spec` of an ExternalSecret.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// Default store for every entry without its own `sourceRef.storeRef`.
    #[serde(default)]
    pub secret_store_ref: Option<StoreRef>,
    #[serde(default)]
    pub target: Target,
    /// Go duration; read by the controller, ignored at render time.
    #[serde(default)]
    pub refresh_interval: Option<Value>,
    /// `CreatedOnce|Periodic|OnChange`; controller only.
    #[serde(default)]
    pub refresh_policy: Option<String>,
    /// Controller only.
    #[serde(default)]
    pub sync_windows: Option<Value>,
    #[serde(default)]
    pub data: Vec<DataEntry>,
    #[serde(default)]
    pub data_from: Vec<DataFromEntry>,
}

/// `spec.secretStoreRef` / `sourceRef.storeRef`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreRef {
    pub name: String,
    /// `SecretStore` (default, also for `""`) or `ClusterSecretStore`.
    #[serde(default)]
    pub kind: StoreRefKind,
}

/// Kind of store a reference names; `""` and absent mean `SecretStore`, as in ESO.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord, schemars::JsonSchema)]
pub enum StoreRefKind {
    #[default]
    #[serde(alias = "")]
    SecretStore,
    ClusterSecretStore,
}

impl StoreRefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretStore => "SecretStore",
            Self::ClusterSecretStore => "ClusterSecretStore",
        }
    }
}

/// `spec.target`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Secret name; defaults to the ExternalSecret's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Controller only (`Owner|Orphan|Merge|None|CreateOrMerge`).
    #[serde(default)]
    pub creation_policy: Option<String>,
    /// Controller only (`Retain|Delete|Merge`).
    #[serde(default)]
    pub deletion_policy: Option<String>,
    /// Sets `immutable: true` on the Secret.
    #[serde(default)]
    pub immutable: bool,
    /// How the Secret is built from the fetched data (ESO engine v2 templates).
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// Generic targets: not supported.
    #[serde(default)]
    pub manifest: Option<Value>,
}

/// `spec.target.template` (ESO `ExternalSecretTemplate`).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    /// Secret type, e.g. `kubernetes.io/tls`; default `Opaque`.
    #[serde(default, rename = "type")]
    pub secret_type: Option<String>,
    /// Only `v2` exists (ESO removed v1).
    #[serde(default)]
    pub engine_version: Option<String>,
    #[serde(default)]
    pub merge_policy: MergePolicy,
    #[serde(default)]
    pub metadata: Option<TemplateMetadata>,
    /// Secret key to template; highest precedence.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub template_from: Vec<TemplateFrom>,
}

/// `template.mergePolicy`: `Merge` keeps the provider data beside the templated keys.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum MergePolicy {
    #[default]
    #[serde(alias = "")]
    Replace,
    Merge,
}

/// `template.metadata`: label and annotation values are templates.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct TemplateMetadata {
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Added by ESO's controller only: refused at render time.
    #[serde(default)]
    pub finalizers: Option<Value>,
}

/// One `template.templateFrom[]` entry: exactly one of `configMap`, `secret`, `literal`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    #[serde(default)]
    pub config_map: Option<TemplateRef>,
    #[serde(default)]
    pub secret: Option<TemplateRef>,
    /// A template rendering to a YAML map of keys and values.
    #[serde(default)]
    pub literal: Option<String>,
    /// `Data` (default), `Labels` or `Annotations` (case-insensitive).
    #[serde(default)]
    pub target: Option<String>,
    /// Not supported yet.
    #[serde(default)]
    pub values_decoding_strategy: Option<Value>,
}

/// `templateFrom[].configMap` / `.secret`: an object of the input stream and the keys to use.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct TemplateRef {
    pub name: String,
    #[serde(default)]
    pub items: Vec<TemplateRefItem>,
}

/// `items[]`: a key of the ConfigMap/Secret, rendered as one value or as a YAML map.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    pub key: String,
    #[serde(default)]
    pub template_as: TemplateScope,
}

/// `templateAs`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum TemplateScope {
    /// The item's value is a template for the value of the same key.
    #[default]
    #[serde(alias = "")]
    Values,
    /// The item renders to a YAML map of keys and values.
    KeysAndValues,
}

/// One `spec.data[]` entry.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataEntry {
    /// Key in the Secret; must match `^[-._a-zA-Z0-9]+$`.
    pub secret_key: String,
    pub remote_ref: RemoteRef,
    #[serde(default)]
    pub source_ref: Option<SourceRef>,
}

/// `remoteRef` (ESO `ExternalSecretDataRemoteRef`), also used by `dataFrom[].extract`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRef {
    /// Provider key (AWS: secret name or ARN).
    pub key: String,
    /// gjson path into the value.
    #[serde(default)]
    pub property: Option<String>,
    /// Provider version (AWS: VersionStage, or `uuid/<VersionId>`).
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub metadata_policy: MetadataPolicy,
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,
    #[serde(default)]
    pub null_byte_policy: NullBytePolicy,
}

/// `remoteRef.metadataPolicy`: `Fetch` reads the secret's tags (as a JSON object) instead of its value.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum MetadataPolicy {
    #[default]
    #[serde(alias = "")]
    None,
    Fetch,
}

/// Key conversion for `extract`/`find` keys, applied only when no `rewrite` is given (as ESO).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum ConversionStrategy {
    /// Every char that is not a letter, digit, `-`, `.` or `_` becomes `_`.
    #[default]
    #[serde(alias = "")]
    Default,
    /// Such a char becomes `_U%04x_`.
    Unicode,
}

/// Decoding applied to each fetched value (ESO `runtime/decoding`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum DecodingStrategy {
    #[default]
    #[serde(alias = "")]
    None,
    /// Standard base64 with padding.
    Base64,
    /// URL-safe base64 with padding.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// Base64, else Base64URL, else the value as is.
    Auto,
}

/// `Fail` rejects values containing a NUL byte.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum NullBytePolicy {
    #[default]
    #[serde(alias = "")]
    Ignore,
    Fail,
}

/// `sourceRef` of a `data[]` or `dataFrom[]` entry.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    #[serde(default)]
    pub store_ref: Option<StoreRef>,
    /// Generators: not supported.
    #[serde(default)]
    pub generator_ref: Option<Value>,
}

/// One `spec.dataFrom[]` entry: exactly one of `extract` and `find`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataFromEntry {
    #[serde(default)]
    pub extract: Option<RemoteRef>,
    #[serde(default)]
    pub find: Option<FindSpec>,
    #[serde(default)]
    pub rewrite: Vec<Rewrite>,
    #[serde(default)]
    pub source_ref: Option<SourceRef>,
}

/// `dataFrom[].find`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindSpec {
    /// Name prefix to search under.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub name: Option<FindName>,
    /// Every tag must match exactly.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,
    #[serde(default)]
    pub null_byte_policy: NullBytePolicy,
}

/// `find.name`: an unanchored RE2 pattern (Go `MatchString`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub struct FindName {
    pub regexp: String,
}

/// One `dataFrom[].rewrite[]` step: `regexp` or `transform` (`merge` is not supported).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    #[serde(default)]
    pub regexp: Option<RewriteRegexp>,
    #[serde(default)]
    pub transform: Option<RewriteTransform>,
    #[serde(default)]
    pub merge: Option<Value>,
}

/// `rewrite[].transform`: a template run per key with `{{ .value }}` = the key.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
pub struct RewriteTransform {
    pub template: String,
}

/// `rewrite[].regexp`: `source` is replaced by `target` in every key (`$1`, `${1}` expand groups).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
pub struct RewriteRegexp {
    pub source: String,
    pub target: String,
}

impl ExternalSecretSpec {
    /// Fields of ESO's API that are set here but outside what this tool implements, as
    /// `(field path, reason)`. Each must fail the render: silently ignoring them would produce a
    /// Secret ESO would not.
    pub fn unsupported_fields(&self) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        if let Some(t) = &self.target.template {
            if t.engine_version.as_deref().is_some_and(|v| !v.is_empty() && v != "v2") {
                out.push(("spec.target.template.engineVersion".to_string(), "only engine v2 exists"));
            }
            if t.metadata.as_ref().is_some_and(|m| m.finalizers.is_some()) {
                out.push((
                    "spec.target.template.metadata.finalizers".to_string(),
                    "finalizers are set by the controller, not at render time",
                ));
            }
            for (i, tf) in t.template_from.iter().enumerate() {
                if tf.values_decoding_strategy.is_some() {
                    out.push((
                        format!("spec.target.template.templateFrom[{i}].valuesDecodingStrategy"),
                        "valuesDecodingStrategy is not supported yet",
                    ));
                }
            }
        }
        if self.target.manifest.is_some() {
            out.push(("spec.target.manifest".to_string(), "generic targets are not supported"));
        }
        for (i, d) in self.data.iter().enumerate() {
            if d.source_ref.as_ref().is_some_and(|s| s.generator_ref.is_some()) {
                out.push((format!("spec.data[{i}].sourceRef.generatorRef"), "generators are not supported"));
            }
        }
        for (i, d) in self.data_from.iter().enumerate() {
            if d.source_ref.as_ref().is_some_and(|s| s.generator_ref.is_some()) {
                out.push((format!("spec.dataFrom[{i}].sourceRef.generatorRef"), "generators are not supported"));
            }
            for (j, r) in d.rewrite.iter().enumerate() {
                if r.merge.is_some() {
                    out.push((format!("spec.dataFrom[{i}].rewrite[{j}].merge"), "rewrite merge is not supported"));
                }
            }
        }
        out
    }
}
