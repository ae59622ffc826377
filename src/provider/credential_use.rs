//! Whose credentials a store's client authenticates with, and which endpoints named in the store
//! receive them. Each provider describes its own spec (in its own file) through
//! [`CredentialUse`]; the rules that decide what a tenant's store may do with that are in
//! `crate::resolve::trust`.

use azure_core::http::Url;

use crate::api::ProviderSpec;

/// Whose credentials a store's client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// No credentials at all (`fake`).
    Nothing,
    /// Credentials the store names: `secretRef` Secrets and ServiceAccounts, read in a
    /// SecretStore's own namespace (so the tenant's own).
    Named,
    /// The process's own identity (AWS default chain / IRSA / pod identity, Azure managed
    /// identity, Azure workload identity from the pod's token file): the operator's. The text
    /// says which, for messages (`the AWS default credential chain`).
    Process(String),
}

/// An endpoint named in a store that receives credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The store field it comes from (`spec.provider.azurekv.vaultUrl`).
    pub field: String,
    /// The URL as written.
    pub url: String,
    /// Hosts accepted without `--allowed-hosts`: exact names, or `*.suffix` for any name under
    /// `suffix`. Empty when the cloud has none (Azure Stack).
    pub well_known: &'static [&'static str],
}

/// What a provider's store spec says about credentials. Implemented next to each provider.
pub trait CredentialUse {
    /// The `spec.provider` key (`azurekv`), as in `--allowed-hosts` items.
    fn provider_key(&self) -> &'static str;

    /// Whose credentials the client would send.
    fn identity(&self) -> Identity;

    /// The fields through which a store gives credentials of its own, for messages
    /// (`auth.secretRef, or auth.jwt with a ServiceAccount of its namespace`).
    fn own_credentials_hint(&self) -> &'static str;

    /// Roles assumed from the identity, in order (AWS `additionalRoles`, then `role`).
    fn assumed_roles(&self) -> Vec<String> {
        Vec::new()
    }

    /// Every endpoint the store names that receives credentials or tokens made from them; empty
    /// when the provider picks its endpoints itself (AWS: by region, under AWS's own domains).
    /// `Err` when the spec is too broken to tell (the client build reports it in detail).
    fn credential_endpoints(&self) -> Result<Vec<Endpoint>, String>;

    /// The audience of ServiceAccount tokens (TokenRequest) when the store names none
    /// (`sts.amazonaws.com`, `api://AzureADTokenExchange`); empty when the provider takes none.
    fn default_token_audience(&self) -> &'static str {
        ""
    }

    /// The endpoints named in the store that receive its ServiceAccount token; empty when the
    /// provider sends it only to hosts it picks itself (AWS STS by region, an Azure cloud's fixed
    /// authority or the operator's `AZURE_AUTHORITY_HOST`). `Err` as [`Self::credential_endpoints`].
    fn token_endpoints(&self) -> Result<Vec<Endpoint>, String> {
        Ok(Vec::new())
    }
}

/// The [`CredentialUse`] of a store's provider.
pub fn of(spec: &ProviderSpec) -> &dyn CredentialUse {
    match spec {
        ProviderSpec::Fake(s) => s,
        ProviderSpec::Aws(s) => s,
        ProviderSpec::AzureKeyVault(s) => s,
    }
}

/// The host of an endpoint URL, lower case, if it is an `https` URL without user info.
pub fn https_host(url: &str) -> Result<String, String> {
    let parsed = Url::parse(url.trim()).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    if parsed.scheme() != "https" {
        return Err(format!("`{url}` is not an https URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("`{url}` carries user information"));
    }
    parsed.host_str().map(str::to_ascii_lowercase).filter(|h| !h.is_empty()).ok_or_else(|| format!("`{url}` has no host"))
}

/// Whether `host` is one of `well_known` (exact names, or `*.suffix` for names under `suffix`).
pub fn is_well_known(host: &str, well_known: &[&str]) -> bool {
    well_known.iter().any(|w| match w.strip_prefix("*.") {
        Some(suffix) => host.strip_suffix(suffix).and_then(|rest| rest.strip_suffix('.')).is_some_and(|label| !label.is_empty()),
        None => host == *w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_https_urls_only() {
        assert_eq!(https_host("https://Team.Vault.Azure.Net/").unwrap(), "team.vault.azure.net");
        assert_eq!(https_host("https://127.0.0.1:8443").unwrap(), "127.0.0.1");
        assert!(https_host("http://team.vault.azure.net").is_err());
        assert!(https_host("https://login.microsoftonline.com@evil.example/").is_err());
        assert!(https_host("team.vault.azure.net").is_err());
    }

    #[test]
    fn well_known_suffixes_need_a_name_under_them() {
        let known = &["*.vault.azure.net", "login.microsoftonline.com"];
        assert!(is_well_known("team.vault.azure.net", known));
        assert!(is_well_known("login.microsoftonline.com", known));
        assert!(!is_well_known("vault.azure.net", known));
        assert!(!is_well_known("evilvault.azure.net", known));
        assert!(!is_well_known("team.vault.azure.net.evil.example", known));
        assert!(!is_well_known("login.microsoftonline.com.evil.example", known));
    }
}
