//! `SecretStore` / `ClusterSecretStore` spec (ESO `secretstore_types.go`,
//! `secretstore_aws_types.go`, `secretstore_fake_types.go`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `spec` of a SecretStore or ClusterSecretStore. `provider` is decoded separately (see
/// [`ProviderSpec`]) so that an unsupported provider is refused by name.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// Controller class; not used at render time.
    #[serde(default)]
    pub controller: Option<String>,
    pub provider: Value,
    #[serde(default)]
    pub retry_settings: Option<RetrySettings>,
    /// Store re-validation period (controller only).
    #[serde(default)]
    pub refresh_interval: Option<Value>,
    /// ClusterSecretStore only: the namespaces allowed to use it (any condition matching allows).
    #[serde(default)]
    pub conditions: Vec<ClusterStoreCondition>,
}

/// `spec.retrySettings`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Go duration.
    #[serde(default)]
    pub retry_interval: Option<String>,
}

/// One `spec.conditions[]` entry of a ClusterSecretStore.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStoreCondition {
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub namespace_regexes: Vec<String>,
}

/// Kubernetes `LabelSelector`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `matchExpressions[]`: operator `In`, `NotIn`, `Exists`, `DoesNotExist`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (Kubernetes semantics; an empty selector matches all).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> Result<bool, String> {
        for (k, v) in &self.match_labels {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
        for req in &self.match_expressions {
            let value = labels.get(&req.key);
            let ok = match req.operator.as_str() {
                "In" => value.is_some_and(|v| req.values.contains(v)),
                "NotIn" => !value.is_some_and(|v| req.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => return Err(format!("unknown label selector operator `{other}`")),
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The providers this tool implements; exactly one key of `spec.provider`.
#[derive(Clone, Debug)]
pub enum ProviderSpec {
    Fake(FakeProvider),
    Aws(AwsProvider),
    AzureKeyVault(AzureKvProvider),
}

/// Provider keys this tool implements, for error messages.
pub const SUPPORTED_PROVIDERS: &[&str] = &["aws", "azurekv", "fake"];

/// `spec.provider.azurekv` (ESO `AzureKVProvider`).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKvProvider {
    /// `https://NAME.vault.azure.net` (or the cloud's suffix).
    pub vault_url: String,
    /// `ServicePrincipal` (default), `ManagedIdentity` or `WorkloadIdentity`.
    #[serde(default)]
    pub auth_type: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// `PublicCloud` (default), `USGovernmentCloud`, `ChinaCloud`; `GermanCloud` was retired;
    /// `AzureStackCloud` needs `customCloudConfig`.
    #[serde(default)]
    pub environment_type: Option<String>,
    #[serde(default)]
    pub auth_secret_ref: Option<AzureAuthSecretRef>,
    /// ManagedIdentity: client id or resource id of a user-assigned identity.
    #[serde(default)]
    pub identity_id: Option<String>,
    /// `WorkloadIdentity` with a ServiceAccount token from TokenRequest. Controller only.
    #[serde(default)]
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// ESO's switch between its two Go SDKs; meaningless here, accepted.
    #[serde(default, rename = "useAzureSDK")]
    pub use_azure_sdk: Option<bool>,
    #[serde(default)]
    pub custom_cloud_config: Option<AzureCustomCloudConfig>,
}

/// `azurekv.authSecretRef`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureAuthSecretRef {
    #[serde(default)]
    pub client_id: Option<SecretKeySelector>,
    #[serde(default)]
    pub client_secret: Option<SecretKeySelector>,
    /// PEM holding the certificate and its private key (as ESO).
    #[serde(default)]
    pub client_certificate: Option<SecretKeySelector>,
    #[serde(default)]
    pub tenant_id: Option<SecretKeySelector>,
}

/// `azurekv.customCloudConfig`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureCustomCloudConfig {
    #[serde(default)]
    pub active_directory_endpoint: Option<String>,
    #[serde(default)]
    pub key_vault_endpoint: Option<String>,
    #[serde(default, rename = "keyVaultDNSSuffix")]
    pub key_vault_dns_suffix: Option<String>,
    #[serde(default)]
    pub resource_manager_endpoint: Option<String>,
}

/// `spec.provider.fake` (ESO `FakeProvider`): values inline in the store.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FakeProvider {
    #[serde(default)]
    pub data: Vec<FakeProviderData>,
}

/// `spec.provider.fake.data[]`: `value` served for `key` at `version` (`""` when unset).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FakeProviderData {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    /// Deprecated in ESO: served as a JSON object of the map.
    #[serde(default)]
    pub value_map: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub version: Option<String>,
}

/// `spec.provider.aws` (ESO `AWSProvider`), `service: SecretsManager` only.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    pub service: String,
    pub region: String,
    /// Role assumed last (with `externalID` and `sessionTags`).
    #[serde(default)]
    pub role: Option<String>,
    /// Roles assumed in order before `role`.
    #[serde(default)]
    pub additional_roles: Vec<String>,
    #[serde(default, rename = "externalID")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub session_tags: Vec<AwsTag>,
    #[serde(default)]
    pub transitive_tag_keys: Vec<String>,
    /// `None|Simple|Custom`; only `None` is supported.
    #[serde(default)]
    pub session_tags_policy: Option<String>,
    #[serde(default)]
    pub custom_session_tags: Option<Value>,
    /// Prepended to every remote key.
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub auth: Option<AwsAuth>,
    /// PushSecret settings; not used when reading.
    #[serde(default)]
    pub secrets_manager: Option<Value>,
}

/// `sessionTags[]`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct AwsTag {
    pub key: String,
    pub value: String,
}

/// `provider.aws.auth`: none means the SDK's default credential chain.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    #[serde(default)]
    pub secret_ref: Option<AwsSecretRef>,
    /// A ServiceAccount token (TokenRequest) exchanged with AssumeRoleWithWebIdentity for the
    /// role in the ServiceAccount's `eks.amazonaws.com/role-arn` annotation. Controller only.
    #[serde(default)]
    pub jwt: Option<AwsJwtAuth>,
}

/// `auth.jwt`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwtAuth {
    pub service_account_ref: ServiceAccountSelector,
}

/// A ServiceAccount (`name`, optional `namespace` for ClusterSecretStores, token `audiences`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// `auth.secretRef`: static keys read from Kubernetes Secrets.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretRef {
    #[serde(rename = "accessKeyIDSecretRef")]
    pub access_key_id_secret_ref: SecretKeySelector,
    pub secret_access_key_secret_ref: SecretKeySelector,
    #[serde(default)]
    pub session_token_secret_ref: Option<SecretKeySelector>,
}

/// A key of a Kubernetes Secret (`name`, `key`, optional `namespace`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub struct SecretKeySelector {
    pub name: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub namespace: Option<String>,
}
