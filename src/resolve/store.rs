//! A store of a run: its identity ([`StoreKey`]) and what was read from its manifest
//! ([`Store`]), with what its credentials depend on. The catalog of a run is in
//! `super::stores`; the rules on who may use which credentials in `super::trust`.

use crate::api::{ProviderSpec, SecretKeySelector, SecretStoreSpec, StoreRefKind};
use crate::problem::Origin;

/// Identity of a store: kind, namespace (SecretStores only) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey {
    pub kind: StoreRefKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// A store read from a manifest.
#[derive(Clone, Debug)]
pub struct Store {
    pub key: StoreKey,
    pub origin: Origin,
    pub spec: SecretStoreSpec,
    pub provider: ProviderSpec,
    /// Written by the operator (`--stores`, a ClusterSecretStore): may use this process's
    /// identity and send it anywhere. Else a tenant's (see [`super::trust`]).
    pub operator: bool,
}

impl Store {
    /// The ServiceAccount whose token this store authenticates with (controller mode), as
    /// `(namespace, name, audiences)`: AWS `auth.jwt` (audience `sts.amazonaws.com` unless
    /// given) or Azure `serviceAccountRef` (audience `api://AzureADTokenExchange`). The namespace
    /// is a SecretStore's own, else the reference's.
    pub fn service_account(&self) -> Option<(Option<String>, String, Vec<String>)> {
        let (sel, default_audience) = match &self.provider {
            ProviderSpec::Aws(spec) => {
                (spec.auth.as_ref()?.jwt.as_ref().map(|j| j.service_account_ref.clone())?, crate::provider::aws::TOKEN_AUDIENCE)
            }
            ProviderSpec::AzureKeyVault(spec) => (spec.service_account_ref.clone()?, crate::provider::azure::TOKEN_AUDIENCE),
            ProviderSpec::Fake(_) => return None,
        };
        let audiences = if sel.audiences.is_empty() { vec![default_audience.to_string()] } else { sel.audiences.clone() };
        Some((self.key.namespace.clone().or(sel.namespace), sel.name, audiences))
    }

    /// The Secrets this store's credentials come from, as `(namespace, name)`: a SecretStore's
    /// own namespace, or the selector's namespace for a ClusterSecretStore (`None` if unset).
    pub fn credential_secrets(&self) -> Vec<(Option<String>, String)> {
        let mut selectors: Vec<&SecretKeySelector> = Vec::new();
        match &self.provider {
            ProviderSpec::Fake(_) => {}
            ProviderSpec::Aws(spec) => {
                if let Some(r) = spec.auth.as_ref().and_then(|a| a.secret_ref.as_ref()) {
                    selectors.extend([&r.access_key_id_secret_ref, &r.secret_access_key_secret_ref]);
                    selectors.extend(r.session_token_secret_ref.as_ref());
                }
            }
            ProviderSpec::AzureKeyVault(spec) => {
                if let Some(r) = &spec.auth_secret_ref {
                    selectors.extend([&r.client_id, &r.client_secret, &r.client_certificate, &r.tenant_id].into_iter().flatten());
                }
            }
        }
        let mut out: Vec<(Option<String>, String)> =
            selectors.into_iter().map(|s| (self.key.namespace.clone().or_else(|| s.namespace.clone()), s.name.clone())).collect();
        out.sort();
        out.dedup();
        out
    }
}
