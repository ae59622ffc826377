//! `ExternalSecret` spec (ESO `apis/externalsecrets/v1/externalsecret_types.go`), field names as in
//! the YAML. Fields this tool reads but does not implement are kept as raw values so they can be
//! refused by name (see [`ExternalSecretSpec::unsupported_fields`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `spec` of an ExternalSecret.
#[derive(Clone, Debug, Default, Deserialize)]
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
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct StoreRef {
    pub name: String,
    /// `SecretStore` (default, also for `""`) or `ClusterSecretStore`.
    #[serde(default)]
    pub kind: StoreRefKind,
}

/// Kind of store a reference names; `""` and absent mean `SecretStore`, as in ESO.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Clone, Debug, Default, Deserialize)]
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
    /// Not supported yet (templates issue).
    #[serde(default)]
    pub template: Option<Value>,
    /// Generic targets: not supported.
    #[serde(default)]
    pub manifest: Option<Value>,
}

/// One `spec.data[]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataEntry {
    /// Key in the Secret; must match `^[-._a-zA-Z0-9]+$`.
    pub secret_key: String,
    pub remote_ref: RemoteRef,
    #[serde(default)]
    pub source_ref: Option<SourceRef>,
}

/// `remoteRef` (ESO `ExternalSecretDataRemoteRef`), also used by `dataFrom[].extract`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub enum MetadataPolicy {
    #[default]
    #[serde(alias = "")]
    None,
    Fetch,
}

/// Key conversion for `extract`/`find` keys, applied only when no `rewrite` is given (as ESO).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub enum ConversionStrategy {
    /// Every char that is not a letter, digit, `-`, `.` or `_` becomes `_`.
    #[default]
    #[serde(alias = "")]
    Default,
    /// Such a char becomes `_U%04x_`.
    Unicode,
}

/// Decoding applied to each fetched value (ESO `runtime/decoding`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub enum NullBytePolicy {
    #[default]
    #[serde(alias = "")]
    Ignore,
    Fail,
}

/// `sourceRef` of a `data[]` or `dataFrom[]` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    #[serde(default)]
    pub store_ref: Option<StoreRef>,
    /// Generators: not supported.
    #[serde(default)]
    pub generator_ref: Option<Value>,
}

/// One `spec.dataFrom[]` entry: exactly one of `extract` and `find`.
#[derive(Clone, Debug, Default, Deserialize)]
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
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
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
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
pub struct FindName {
    pub regexp: String,
}

/// One `dataFrom[].rewrite[]` step; only `regexp` is supported.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    #[serde(default)]
    pub regexp: Option<RewriteRegexp>,
    #[serde(default)]
    pub transform: Option<Value>,
    #[serde(default)]
    pub merge: Option<Value>,
}

/// `rewrite[].regexp`: `source` is replaced by `target` in every key (`$1`, `${1}` expand groups).
#[derive(Clone, Debug, Deserialize)]
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
        if self.target.template.is_some() {
            out.push(("spec.target.template".to_string(), "templates are not supported yet"));
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
                if r.transform.is_some() {
                    out.push((format!("spec.dataFrom[{i}].rewrite[{j}].transform"), "rewrite transform templates are not supported yet"));
                }
                if r.merge.is_some() {
                    out.push((format!("spec.dataFrom[{i}].rewrite[{j}].merge"), "rewrite merge is not supported"));
                }
            }
        }
        out
    }
}
