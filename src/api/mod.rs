//! The `external-secrets.io` API as ESO defines it (`apis/externalsecrets/v1`), read from manifests.
//!
//! `v1` is the reference shape; `v1beta1` is read as `v1` (same field names for everything in
//! scope) and the seed's `v1alpha1` shape is mapped onto `v1` (`dataFrom[]` entries that are a bare
//! remote reference become `dataFrom[].extract`).

pub mod crd;
pub mod decode;
pub mod external_secret;
pub mod meta;
pub mod secret_store;
pub mod strict_value;

pub use decode::{decode_strict, Strictness};
pub use external_secret::*;
pub use meta::ObjectMeta;
pub use secret_store::*;

/// API group of ESO's resources.
pub const GROUP: &str = "external-secrets.io";

/// API versions of the group this tool reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V1beta1,
    V1alpha1,
}

impl ApiVersion {
    /// Parses the version part of `external-secrets.io/<version>`; `None` for other versions.
    pub fn parse(version: &str) -> Option<Self> {
        match version {
            "v1" => Some(Self::V1),
            "v1beta1" => Some(Self::V1beta1),
            "v1alpha1" => Some(Self::V1alpha1),
            _ => None,
        }
    }
}

/// Kinds of the group this tool handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EsoKind {
    ExternalSecret,
    SecretStore,
    ClusterSecretStore,
}

impl EsoKind {
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "ExternalSecret" => Some(Self::ExternalSecret),
            "SecretStore" => Some(Self::SecretStore),
            "ClusterSecretStore" => Some(Self::ClusterSecretStore),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExternalSecret => "ExternalSecret",
            Self::SecretStore => "SecretStore",
            Self::ClusterSecretStore => "ClusterSecretStore",
        }
    }
}

/// Splits an `apiVersion` of the ESO group into its version; `None` when the group differs.
pub fn eso_version(api_version: &str) -> Option<&str> {
    api_version.strip_prefix(GROUP).and_then(|rest| rest.strip_prefix('/'))
}
