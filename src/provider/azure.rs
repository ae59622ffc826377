//! Azure Key Vault (ESO `providers/v1/azure/keyvault`), through the official SDK crates
//! (`azure_security_keyvault_{secrets,certificates,keys}`, `azure_identity`).
//!
//! - `remoteRef.key` is `[secret|cert|key]/<name>` (no prefix = `secret/`): `secret/` serves the
//!   value; `cert/` the certificate's DER bytes; `key/` the public JWK exactly as Key Vault returns
//!   it. `version` is the object version (empty = latest). `metadataPolicy: Fetch` serves the tags
//!   as a JSON object. `property` tries the gjson path first, then the dotted literal (ESO's Azure
//!   order).
//! - `find` lists the vault's secrets once per run (all pages), skips disabled ones, matches
//!   `name.regexp` and `tags` exactly, and the matches are then read one GET each. A vault is
//!   never listed to read one key.
//! - A disabled secret is an error; an expired one is served, with a warning (as ESO).
//! - Credentials are built once per store and run, so a run asks for one token per store; the SDK
//!   retries 429 and 5xx with exponential backoff honouring `Retry-After`, inside the run's deadline.
//!
//! Auth (`authType`): `ServicePrincipal` with a client secret, or a client certificate (PEM with the
//! key, as ESO) through a client assertion this module signs (RS256, pure Rust: no OpenSSL);
//! `ManagedIdentity` (optionally `identityId`); `WorkloadIdentity` from the pod's
//! `AZURE_FEDERATED_TOKEN_FILE`. `PublicCloud` leaves the SDK's cloud unset, so
//! `AZURE_AUTHORITY_HOST` is honoured.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use base64::Engine;
use futures::TryStreamExt;
use tokio::sync::OnceCell;

use super::{ErrorClass, FindQuery, Provider, ProviderError, RemoteKey, SecretValue};
use crate::api::AzureKvProvider;

/// What a store authenticates with, resolved from its spec and `--credentials`.
#[derive(Clone)]
pub enum AzureAuth {
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: String,
    },
    /// PEM with the certificate and its private key.
    ClientCertificate {
        tenant_id: String,
        client_id: String,
        pem: String,
    },
    ManagedIdentity {
        identity_id: Option<String>,
    },
    WorkloadIdentity {
        tenant_id: Option<String>,
        client_id: Option<String>,
    },
    /// Workload identity with a token the controller got from TokenRequest (`serviceAccountRef`).
    FederatedToken {
        tenant_id: String,
        client_id: String,
        token: String,
    },
}

impl fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AzureAuth(<redacted>)")
    }
}

/// Sovereign clouds; `None` is the public cloud (SDK cloud option left unset).
#[derive(Clone, Debug)]
pub enum AzureCloud {
    Public,
    Government,
    China,
    Custom { authority_host: String },
}

impl AzureCloud {
    /// The cloud of `environmentType` (ESO's names; `PublicCloud` when unset). `GermanCloud` was
    /// retired; `AzureStackCloud` needs `customCloudConfig.activeDirectoryEndpoint`.
    pub fn of(spec: &AzureKvProvider) -> Result<AzureCloud, String> {
        let base = "spec.provider.azurekv";
        Ok(match spec.environment_type.as_deref().unwrap_or("PublicCloud") {
            "" | "PublicCloud" => AzureCloud::Public,
            "USGovernmentCloud" => AzureCloud::Government,
            "ChinaCloud" => AzureCloud::China,
            "GermanCloud" => return Err(format!("{base}.environmentType GermanCloud was retired by Microsoft in 2021")),
            "AzureStackCloud" => match spec.custom_cloud_config.as_ref().and_then(|c| c.active_directory_endpoint.clone()) {
                Some(authority_host) => AzureCloud::Custom { authority_host },
                None => return Err(format!("{base}.environmentType AzureStackCloud needs customCloudConfig.activeDirectoryEndpoint")),
            },
            other => {
                return Err(format!(
                    "{base}.environmentType `{other}` is not one of PublicCloud, USGovernmentCloud, ChinaCloud, AzureStackCloud"
                ))
            }
        })
    }

    /// Key Vault and Managed HSM hosts of the cloud (none for Azure Stack: only `--allowed-hosts`).
    pub fn vault_hosts(&self) -> &'static [&'static str] {
        match self {
            AzureCloud::Public => &["*.vault.azure.net", "*.managedhsm.azure.net"],
            AzureCloud::Government => &["*.vault.usgovcloudapi.net", "*.managedhsm.usgovcloudapi.net"],
            AzureCloud::China => &["*.vault.azure.cn", "*.managedhsm.azure.cn"],
            AzureCloud::Custom { .. } => &[],
        }
    }
}

/// Microsoft Entra authority hosts (public, US Government, China): an Azure Stack Hub connected
/// to Entra ID names one of them as its `activeDirectoryEndpoint`.
pub const ENTRA_AUTHORITY_HOSTS: &[&str] =
    &["login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn"];

/// Azure: `ManagedIdentity`, and `WorkloadIdentity` without `serviceAccountRef` (the pod's token
/// file), are the process's identity; `ServicePrincipal` (`authSecretRef`) and `serviceAccountRef`
/// are the store's own. Credentials go to `vaultUrl` (the access token) and, for everything but
/// managed identity, to the authority: store-named only for `AzureStackCloud`
/// (`customCloudConfig.activeDirectoryEndpoint`); the other clouds' authorities are fixed (or
/// the operator's `AZURE_AUTHORITY_HOST`).
impl super::credential_use::CredentialUse for AzureKvProvider {
    fn provider_key(&self) -> &'static str {
        "azurekv"
    }

    fn identity(&self) -> super::credential_use::Identity {
        use super::credential_use::Identity;
        match self.auth_type.as_deref().unwrap_or("") {
            "ManagedIdentity" => Identity::Process("authType ManagedIdentity: this process's managed identity".into()),
            "WorkloadIdentity" if self.service_account_ref.is_none() => {
                Identity::Process("authType WorkloadIdentity without serviceAccountRef: this process's own federated token".into())
            }
            _ => Identity::Named,
        }
    }

    fn own_credentials_hint(&self) -> &'static str {
        "spec.provider.azurekv.authSecretRef (ServicePrincipal), or serviceAccountRef with a ServiceAccount of its namespace (WorkloadIdentity)"
    }

    fn credential_endpoints(&self) -> Result<Vec<super::credential_use::Endpoint>, String> {
        use super::credential_use::Endpoint;
        let cloud = AzureCloud::of(self)?;
        let mut out =
            vec![Endpoint { field: "spec.provider.azurekv.vaultUrl".into(), url: self.vault_url.clone(), well_known: cloud.vault_hosts() }];
        if let AzureCloud::Custom { authority_host } = &cloud {
            if self.auth_type.as_deref() != Some("ManagedIdentity") {
                out.push(Endpoint {
                    field: "spec.provider.azurekv.customCloudConfig.activeDirectoryEndpoint".into(),
                    url: authority_host.clone(),
                    well_known: ENTRA_AUTHORITY_HOSTS,
                });
            }
        }
        Ok(out)
    }

    fn default_token_audience(&self) -> &'static str {
        TOKEN_AUDIENCE
    }

    /// The ServiceAccount token (`serviceAccountRef`) goes to the authority only.
    fn token_endpoints(&self) -> Result<Vec<super::credential_use::Endpoint>, String> {
        let endpoints = self.credential_endpoints()?;
        Ok(endpoints.into_iter().filter(|e| e.field.ends_with(".activeDirectoryEndpoint")).collect())
    }
}

/// The audience of `serviceAccountRef` tokens when the store names none (as ESO's
/// `providers/v1/azure/keyvault/keyvault_auth.go`).
pub const TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Object kinds of `remoteRef.key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Secret,
    Certificate,
    Key,
}

/// Splits `[secret|cert|key]/<name>`; only the first two segments count (as ESO).
pub fn parse_key(key: &str) -> (ObjectKind, &str) {
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some("secret"), Some(name)) => (ObjectKind::Secret, name),
        (Some("cert"), Some(name)) => (ObjectKind::Certificate, name),
        (Some("key"), Some(name)) => (ObjectKind::Key, name),
        _ => (ObjectKind::Secret, key),
    }
}

/// A secret listed by `find`.
#[derive(Clone, Debug)]
struct Listed {
    name: String,
    enabled: bool,
    tags: BTreeMap<String, String>,
}

/// A Key Vault client for one store.
pub struct AzureClient {
    vault: String,
    secrets: SecretClient,
    certificates: CertificateClient,
    keys: KeyClient,
    listing: OnceCell<Result<Vec<Listed>, ProviderError>>,
}

impl AzureClient {
    /// Builds the credential and the three clients (no request is made yet).
    pub fn new(vault_url: &str, auth: AzureAuth, cloud: AzureCloud) -> Result<Self, ProviderError> {
        let vault = vault_url.trim_end_matches('/').to_string();
        // The SDK's construction errors quote their input (`invalid tenant ID <value>`), and a
        // tenant can point any field at any key of a credential Secret: only the kind is kept.
        let config = |e: azure_core::Error| {
            ProviderError::new(
                ErrorClass::Config,
                format!(
                    "Azure Key Vault `{vault}`: the credential or client could not be built ({}); check tenantId and clientId",
                    causes(&e)
                ),
            )
        };
        let client_options = || ClientOptions {
            cloud: match &cloud {
                AzureCloud::Public => None,
                AzureCloud::Government => Some(Arc::new(azure_core::cloud::CloudConfiguration::AzureGovernment)),
                AzureCloud::China => Some(Arc::new(azure_core::cloud::CloudConfiguration::AzureChina)),
                AzureCloud::Custom { authority_host } => {
                    let mut custom = azure_core::cloud::CustomConfiguration::default();
                    custom.authority_host = authority_host.clone();
                    Some(Arc::new(azure_core::cloud::CloudConfiguration::Custom(custom)))
                }
            },
            ..Default::default()
        };
        let credential: Arc<dyn TokenCredential> = match auth {
            AzureAuth::ClientSecret { tenant_id, client_id, secret } => {
                let options = azure_identity::ClientSecretCredentialOptions { client_options: client_options() };
                azure_identity::ClientSecretCredential::new(&tenant_id, client_id, Secret::new(secret), Some(options)).map_err(config)?
            }
            AzureAuth::ClientCertificate { tenant_id, client_id, pem } => {
                let authority = authority_host(&cloud)?;
                let assertion = CertificateAssertion::new(&pem, &client_id, &format!("{authority}/{tenant_id}/oauth2/v2.0/token"))?;
                let options = azure_identity::ClientAssertionCredentialOptions { client_options: client_options() };
                azure_identity::ClientAssertionCredential::new(tenant_id, client_id, assertion, Some(options)).map_err(config)?
            }
            AzureAuth::FederatedToken { tenant_id, client_id, token } => {
                let options = azure_identity::ClientAssertionCredentialOptions { client_options: client_options() };
                azure_identity::ClientAssertionCredential::new(tenant_id, client_id, FederatedToken(token), Some(options))
                    .map_err(config)?
            }
            AzureAuth::ManagedIdentity { identity_id } => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    client_options: client_options(),
                    user_assigned_id: identity_id.map(|id| {
                        if id.starts_with("/subscriptions/") {
                            azure_identity::UserAssignedId::ResourceId(id)
                        } else {
                            azure_identity::UserAssignedId::ClientId(id)
                        }
                    }),
                };
                azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(config)?
            }
            AzureAuth::WorkloadIdentity { tenant_id, client_id } => {
                let mut options = azure_identity::WorkloadIdentityCredentialOptions::default();
                options.credential_options.client_options = client_options();
                options.tenant_id = tenant_id;
                options.client_id = client_id;
                azure_identity::WorkloadIdentityCredential::new(Some(options)).map_err(config)?
            }
        };
        Ok(AzureClient {
            secrets: SecretClient::new(&vault, credential.clone(), Some(SecretClientOptions::default())).map_err(config)?,
            certificates: CertificateClient::new(&vault, credential.clone(), Some(CertificateClientOptions::default())).map_err(config)?,
            keys: KeyClient::new(&vault, credential, Some(KeyClientOptions::default())).map_err(config)?,
            vault,
            listing: OnceCell::new(),
        })
    }

    fn error(&self, what: &str, e: azure_core::Error) -> ProviderError {
        map_error(&self.vault, what, e)
    }

    async fn get_secret(&self, name: &str, version: Option<String>, metadata: bool) -> Result<SecretValue, ProviderError> {
        let what = describe("secret", name, &version);
        let options =
            azure_security_keyvault_secrets::models::SecretClientGetSecretOptions { secret_version: version, ..Default::default() };
        let secret = self.secrets.get_secret(name, Some(options)).await.and_then(|r| r.into_model()).map_err(|e| self.error(&what, e))?;
        let attributes = secret.attributes.clone().unwrap_or_default();
        if attributes.enabled == Some(false) {
            return Err(ProviderError::new(ErrorClass::AccessDenied, format!("Azure Key Vault `{}`: {what} is disabled", self.vault)));
        }
        if attributes.expires.is_some_and(|exp| exp < time::OffsetDateTime::now_utc()) {
            tracing::warn!("Azure Key Vault `{}`: {what} has expired; served anyway, as ESO does", self.vault);
        }
        if metadata {
            return Ok(tags_json(secret.tags.unwrap_or_default()));
        }
        secret
            .value
            .map(|v| SecretValue(v.into_bytes()))
            .ok_or_else(|| ProviderError::new(ErrorClass::Other, format!("Azure Key Vault `{}`: {what} has no value", self.vault)))
    }

    async fn get_certificate(&self, name: &str, version: Option<String>, metadata: bool) -> Result<SecretValue, ProviderError> {
        let what = describe("certificate", name, &version);
        let options = azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions {
            certificate_version: version,
            ..Default::default()
        };
        let cert =
            self.certificates.get_certificate(name, Some(options)).await.and_then(|r| r.into_model()).map_err(|e| self.error(&what, e))?;
        if metadata {
            return Ok(tags_json(cert.tags.unwrap_or_default()));
        }
        cert.cer.map(SecretValue).ok_or_else(|| {
            ProviderError::new(ErrorClass::Other, format!("Azure Key Vault `{}`: {what} has no DER certificate", self.vault))
        })
    }

    async fn get_key(&self, name: &str, version: Option<String>, metadata: bool) -> Result<SecretValue, ProviderError> {
        let what = describe("key", name, &version);
        let options = azure_security_keyvault_keys::models::KeyClientGetKeyOptions { key_version: version, ..Default::default() };
        let response = self.keys.get_key(name, Some(options)).await.map_err(|e| self.error(&what, e))?;
        // The JWK exactly as Key Vault sent it (field order and encoding untouched).
        let body = response.into_body();
        let text = std::str::from_utf8(body.as_ref())
            .map_err(|_| ProviderError::new(ErrorClass::Other, format!("Azure Key Vault `{}`: {what}: unreadable answer", self.vault)))?;
        if metadata {
            let tags: BTreeMap<String, String> = serde_json::from_str(gjson::get(text, "tags").json()).unwrap_or_default();
            return Ok(tags_json(tags));
        }
        let raw = gjson::get(text, "key");
        raw.exists()
            .then(|| SecretValue(raw.json().as_bytes().to_vec()))
            .ok_or_else(|| ProviderError::new(ErrorClass::Other, format!("Azure Key Vault `{}`: {what} has no JWK", self.vault)))
    }

    /// Lists the vault's secrets once per run (every page).
    async fn listing(&self) -> Result<&Vec<Listed>, ProviderError> {
        let result = self
            .listing
            .get_or_init(|| async {
                let mut out = Vec::new();
                let mut pages = self.secrets.list_secret_properties(None).map_err(|e| self.error("secret list", e))?.into_pages();
                while let Some(page) = pages.try_next().await.map_err(|e| self.error("secret list", e))? {
                    let page = page.into_model().map_err(|e| self.error("secret list", e))?;
                    for p in page.value {
                        let Some(name) = p.id.as_deref().and_then(|id| id.trim_end_matches('/').rsplit('/').next()).map(str::to_string)
                        else {
                            continue;
                        };
                        let enabled = p.attributes.as_ref().and_then(|a| a.enabled).unwrap_or(true);
                        out.push(Listed { name, enabled, tags: p.tags.unwrap_or_default().into_iter().collect() });
                    }
                }
                Ok(out)
            })
            .await;
        result.as_ref().map_err(Clone::clone)
    }
}

/// `secret `db`` or `secret `db` version `abc``, for messages.
fn describe(kind: &str, name: &str, version: &Option<String>) -> String {
    match version {
        Some(v) => format!("{kind} `{name}` version `{v}`"),
        None => format!("{kind} `{name}`"),
    }
}

fn tags_json(tags: impl IntoIterator<Item = (String, String)>) -> SecretValue {
    let sorted: BTreeMap<String, String> = tags.into_iter().collect();
    SecretValue(serde_json::to_vec(&sorted).expect("tags serialize"))
}

fn authority_host(cloud: &AzureCloud) -> Result<String, ProviderError> {
    Ok(match cloud {
        AzureCloud::Public => std::env::var("AZURE_AUTHORITY_HOST").unwrap_or_else(|_| "https://login.microsoftonline.com".into()),
        AzureCloud::Government => "https://login.microsoftonline.us".into(),
        AzureCloud::China => "https://login.chinacloudapi.cn".into(),
        AzureCloud::Custom { authority_host } => authority_host.clone(),
    }
    .trim_end_matches('/')
    .to_string())
}

/// Maps an SDK error: the service's error code and HTTP status, never a body.
fn map_error(vault: &str, what: &str, e: azure_core::Error) -> ProviderError {
    use azure_core::error::ErrorKind;
    match e.kind() {
        ErrorKind::HttpResponse { status, error_code, raw_response } => {
            let code = error_code.clone().unwrap_or_else(|| format!("HTTP {}", u16::from(*status)));
            // Key Vault answers a disabled object with 403 and an inner code (`SecretDisabled`).
            let inner = raw_response.as_ref().and_then(|r| {
                let body = std::str::from_utf8(r.body().as_ref()).ok()?;
                let inner = gjson::get(body, "error.innererror.code");
                inner.exists().then(|| inner.str().to_string())
            });
            if let Some(inner) = inner.filter(|c| c.ends_with("Disabled")) {
                return ProviderError::new(
                    ErrorClass::AccessDenied,
                    format!("Azure Key Vault `{vault}`: {what} is disabled ({code}/{inner})"),
                );
            }
            let class = match u16::from(*status) {
                404 => ErrorClass::NotFound,
                401 | 403 => ErrorClass::AccessDenied,
                429 => ErrorClass::Throttled,
                400 => ErrorClass::InvalidRequest,
                500..=599 => ErrorClass::Unavailable,
                _ => ErrorClass::Other,
            };
            ProviderError::new(class, format!("Azure Key Vault `{vault}`: {what}: {code} (HTTP {})", u16::from(*status)))
        }
        ErrorKind::Credential => ProviderError::new(
            ErrorClass::AccessDenied,
            format!("Azure Key Vault `{vault}`: {what}: could not get a token: {}", causes(&e)),
        ),
        ErrorKind::Connection | ErrorKind::Io => {
            ProviderError::new(ErrorClass::Unavailable, format!("Azure Key Vault `{vault}`: {what}: connection failed"))
        }
        _ => ProviderError::new(ErrorClass::Other, format!("Azure Key Vault `{vault}`: {what}: {}", causes(&e))),
    }
}

/// What a credential or transport error says, reduced to codes: the identity service's own text
/// can quote what it was sent (a client id read from the wrong key of a Secret is a secret), so
/// only `AADSTS` codes, HTTP statuses and the error's kind are kept.
fn causes(e: &azure_core::Error) -> String {
    let mut codes: Vec<String> = Vec::new();
    let mut statuses: Vec<u16> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let aadsts = regex::Regex::new(r"AADSTS\d+").expect("static regex");
    while let Some(cause) = next {
        for m in aadsts.find_iter(&cause.to_string()) {
            if !codes.iter().any(|c| c == m.as_str()) {
                codes.push(m.as_str().to_string());
            }
        }
        if let Some(az) = cause.downcast_ref::<azure_core::Error>() {
            if let azure_core::error::ErrorKind::HttpResponse { status, .. } = az.kind() {
                statuses.push(u16::from(*status));
            }
        }
        next = cause.source();
    }
    let mut out = format!("{:?}", e.kind()).split(|c: char| !c.is_alphanumeric()).next().unwrap_or("Other").to_string();
    if let Some(status) = statuses.first() {
        out.push_str(&format!(", HTTP {status}"));
    }
    if !codes.is_empty() {
        out.push_str(&format!(", {}", codes.join(", ")));
    }
    out
}

#[async_trait]
impl Provider for AzureClient {
    fn name(&self) -> &'static str {
        "Azure/KeyVault"
    }

    fn property_order(&self) -> crate::resolve::value::DotOrder {
        crate::resolve::value::DotOrder::PathFirst
    }

    fn canonical_key(&self, key: &str) -> String {
        match parse_key(key) {
            (ObjectKind::Secret, name) => name.to_string(),
            _ => key.to_string(),
        }
    }

    fn check_extract(&self, key: &str) -> Result<(), String> {
        match parse_key(key).0 {
            ObjectKind::Secret => Ok(()),
            _ => Err(format!("dataFrom.extract reads secrets only; `{key}` is a certificate or key (use data[] for it)")),
        }
    }

    async fn get(&self, key: &RemoteKey) -> Result<SecretValue, ProviderError> {
        let (kind, name) = parse_key(&key.key);
        let version = key.version.clone().filter(|v| !v.is_empty());
        match kind {
            ObjectKind::Secret => self.get_secret(name, version, key.metadata).await,
            ObjectKind::Certificate => self.get_certificate(name, version, key.metadata).await,
            ObjectKind::Key => self.get_key(name, version, key.metadata).await,
        }
    }

    async fn find(&self, query: &FindQuery) -> Result<Vec<String>, ProviderError> {
        if query.path.is_some() {
            tracing::warn!("Azure Key Vault `{}`: find.path is ignored (as ESO)", self.vault);
        }
        let listing = self.listing().await?;
        Ok(listing
            .iter()
            .filter(|s| s.enabled)
            .filter(|s| query.tags.iter().all(|(k, v)| s.tags.get(k) == Some(v)))
            .filter(|s| query.name.as_ref().is_none_or(|re| re.is_match(&s.name)))
            .map(|s| s.name.clone())
            .collect())
    }
}

/// A client assertion for certificate credentials: a JWT signed with the certificate's RSA key
/// (RS256), with the certificate's SHA-1 thumbprint as `x5t`, as Entra ID expects.
struct CertificateAssertion {
    key: rsa::PrivateKey,
    thumbprint: String,
    client_id: String,
    audience: String,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateAssertion(<redacted>)")
    }
}

impl CertificateAssertion {
    fn new(pem_text: &str, client_id: &str, audience: &str) -> Result<Self, ProviderError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        use sha1::Digest;
        let bad = |m: &str| ProviderError::new(ErrorClass::Config, format!("authSecretRef.clientCertificate: {m}"));
        let blocks = pem::parse_many(pem_text).map_err(|_| bad("not PEM"))?;
        let cert = blocks.iter().find(|b| b.tag() == "CERTIFICATE").ok_or_else(|| bad("no CERTIFICATE block"))?;
        let key = match blocks.iter().find(|b| b.tag().ends_with("PRIVATE KEY")) {
            Some(b) if b.tag() == "PRIVATE KEY" => {
                rsa::PrivateKey::from_pkcs8_der(b.contents()).map_err(|_| bad("the private key is not an RSA PKCS#8 key"))?
            }
            Some(b) if b.tag() == "RSA PRIVATE KEY" => {
                rsa::PrivateKey::from_pkcs1_der(b.contents()).map_err(|_| bad("the RSA private key cannot be read"))?
            }
            _ => return Err(bad("no unencrypted RSA private key block (PRIVATE KEY or RSA PRIVATE KEY)")),
        };
        let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(cert.contents()));
        Ok(CertificateAssertion { key, thumbprint, client_id: client_id.to_string(), audience: audience.to_string() })
    }

    fn sign(&self) -> Result<String, String> {
        use rsa::signature::{SignatureEncoding, Signer};
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint});
        let claims = serde_json::json!({
            "aud": self.audience, "iss": self.client_id, "sub": self.client_id,
            "jti": format!("{:x}-{:x}", now.as_nanos(), std::process::id()),
            "nbf": now.as_secs(), "exp": now.as_secs() + 600,
        });
        let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(self.key.clone());
        let signature = signer.try_sign(signing_input.as_bytes()).map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(format!("{signing_input}.{}", b64(&signature.to_bytes())))
    }
}

#[async_trait]
impl azure_identity::ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<azure_core::http::ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.sign().map_err(|m| azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, m))
    }
}

/// A ServiceAccount token used as the client assertion (workload identity federation).
struct FederatedToken(String);

impl fmt::Debug for FederatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FederatedToken(<redacted>)")
    }
}

#[async_trait]
impl azure_identity::ClientAssertion for FederatedToken {
    async fn secret(&self, _: Option<azure_core::http::ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_object_kind_as_eso() {
        assert_eq!(parse_key("secret/db"), (ObjectKind::Secret, "db"));
        assert_eq!(parse_key("cert/tls"), (ObjectKind::Certificate, "tls"));
        assert_eq!(parse_key("key/signing/extra"), (ObjectKind::Key, "signing"));
        assert_eq!(parse_key("plain"), (ObjectKind::Secret, "plain"));
    }
}
