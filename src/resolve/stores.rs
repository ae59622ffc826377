//! The stores of a run and who may use them (the seed's roles):
//! - a SecretStore serves only ExternalSecrets of its own namespace;
//! - ClusterSecretStores are the cluster operator's: they come only from `--stores`, and their
//!   `spec.conditions` are enforced against the ExternalSecret's effective namespace (namespace
//!   labels come from Namespace manifests given with `--stores`);
//! - `secretRef` credentials come only from `--credentials` Secret manifests.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use crate::api::{
    self, decode_strict, AwsProvider, EsoKind, FakeProvider, ObjectMeta, ProviderSpec, SecretKeySelector, SecretStoreSpec, StoreRef,
    StoreRefKind,
};
use crate::manifest::Document;

pub use super::store::{Store, StoreKey};
use crate::problem::{printable, Origin, Problem, Problems};
use crate::provider::{self, ErrorClass, Provider, ProviderError, SecretValue};
use crate::settings::Settings;

/// Every store, namespace and credential Secret of a run.
#[derive(Default, Debug)]
pub struct Catalog {
    stores: BTreeMap<StoreKey, Store>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    credentials: BTreeMap<(String, String), BTreeMap<String, SecretValue>>,
    /// Controller mode: clients kept across runs, by store fingerprint.
    cache: Option<(Arc<super::client_cache::ClientCache>, BTreeMap<StoreKey, String>)>,
    /// Controller mode: ServiceAccount tokens for AWS `auth.jwt` and Azure `serviceAccountRef`.
    service_account_tokens: BTreeMap<StoreKey, ServiceAccountToken>,
}

/// A ServiceAccount token from TokenRequest, with the ServiceAccount's annotations (controller
/// mode). `Debug` redacts the token.
#[derive(Clone)]
pub struct ServiceAccountToken {
    pub token: String,
    pub annotations: BTreeMap<String, String>,
}

impl std::fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountToken(<redacted>)")
    }
}

/// AWS: the role `auth.jwt` assumes comes from this ServiceAccount annotation (as ESO and IRSA).
pub const AWS_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// Azure workload identity: client and tenant ids from these ServiceAccount annotations.
pub const AZURE_CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
pub const AZURE_TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";

impl std::fmt::Debug for super::client_cache::ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCache({} builds)", self.builds())
    }
}

impl Catalog {
    /// Adds a SecretStore or ClusterSecretStore document. Duplicates, a SecretStore without an
    /// effective namespace, bad fields and unsupported providers are problems.
    pub fn add_store(&mut self, doc: &Document, kind: EsoKind, settings: &Settings) -> Result<(), Problems> {
        let object = format!("{} {}", kind.as_str(), doc.qualified_name());
        let problem = |msg: String| Problem::new(msg).at(&doc.origin).object(object.clone());
        let (namespace, ref_kind) = match kind {
            EsoKind::ClusterSecretStore => (None, StoreRefKind::ClusterSecretStore),
            _ => {
                let ns = doc.namespace().map(str::to_string).or_else(|| settings.namespace.clone());
                if ns.is_none() {
                    return Err(problem(
                        "a SecretStore needs a namespace: set metadata.namespace, --namespace or ARGOCD_APP_NAMESPACE".into(),
                    )
                    .into());
                }
                (ns, StoreRefKind::SecretStore)
            }
        };
        let spec_value = doc.value.get("spec").cloned().unwrap_or(Value::Null);
        let (spec, warnings) = decode_strict::<SecretStoreSpec>(spec_value, "spec", settings.strictness)
            .map_err(|errs| field_problems(errs, &doc.origin, &object))?;
        log_warnings(&object, &warnings);
        warn_unanchored(&object, &spec);
        let provider = decode_provider(&spec.provider, settings).map_err(|errs| field_problems(errs, &doc.origin, &object))?;
        let key = StoreKey { kind: ref_kind, namespace, name: doc.name().to_string() };
        if let Some(existing) = self.stores.get(&key) {
            return Err(problem(format!("{key} is defined twice (also at {})", existing.origin)).into());
        }
        let operator = key.kind == StoreRefKind::ClusterSecretStore;
        self.stores.insert(key.clone(), Store { key, origin: doc.origin.clone(), spec, provider, operator });
        Ok(())
    }

    /// Marks every store added so far as the operator's (`--stores`).
    pub fn mark_operator_stores(&mut self) {
        self.stores.values_mut().for_each(|s| s.operator = true);
    }

    /// Records a Namespace manifest's labels for ClusterSecretStore `namespaceSelector`s.
    pub fn add_namespace(&mut self, doc: &Document) {
        let meta: ObjectMeta = doc.value.get("metadata").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default();
        let mut labels = meta.labels;
        labels.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| meta.name.clone());
        self.namespace_labels.insert(meta.name, labels);
    }

    /// Records a credential Secret (`data` base64-decoded, `stringData` taken as is).
    pub fn add_credentials(&mut self, doc: &Document, settings: &Settings) -> Result<(), Problems> {
        let object = format!("Secret {}", doc.qualified_name());
        let ns = doc.namespace().map(str::to_string).or_else(|| settings.namespace.clone()).ok_or_else(|| {
            Problem::new("a credential Secret needs a namespace: set metadata.namespace or --namespace")
                .at(&doc.origin)
                .object(object.clone())
        })?;
        let mut values = BTreeMap::new();
        if let Some(Value::Object(data)) = doc.value.get("data") {
            for (k, v) in data {
                let decoded = v.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
                let Some(bytes) = decoded else {
                    return Err(Problem::new("value is not base64").at(&doc.origin).object(object).field(format!("data.{k}")).into());
                };
                values.insert(k.clone(), SecretValue(bytes));
            }
        }
        if let Some(Value::Object(data)) = doc.value.get("stringData") {
            for (k, v) in data {
                let Some(s) = v.as_str() else {
                    return Err(Problem::new("value is not a string")
                        .at(&doc.origin)
                        .object(object)
                        .field(format!("stringData.{k}"))
                        .into());
                };
                values.insert(k.clone(), SecretValue(s.as_bytes().to_vec()));
            }
        }
        self.credentials.insert((ns, doc.name().to_string()), values);
        Ok(())
    }

    /// Finds the store `reference` names for an ExternalSecret in `es_namespace`, enforcing the
    /// namespace rules. The error says why a reference is refused.
    pub fn lookup(&self, es_namespace: Option<&str>, reference: &StoreRef) -> Result<&Store, String> {
        match reference.kind {
            StoreRefKind::SecretStore => {
                let ns = es_namespace.ok_or_else(|| {
                    format!("SecretStore `{}` serves one namespace, and this ExternalSecret has none: set metadata.namespace, --namespace or ARGOCD_APP_NAMESPACE", reference.name)
                })?;
                let key = StoreKey { kind: StoreRefKind::SecretStore, namespace: Some(ns.to_string()), name: reference.name.clone() };
                if let Some(s) = self.stores.get(&key) {
                    return Ok(s);
                }
                let elsewhere: Vec<String> = self
                    .stores
                    .keys()
                    .filter(|k| k.kind == StoreRefKind::SecretStore && k.name == reference.name)
                    .filter_map(|k| k.namespace.clone())
                    .collect();
                if elsewhere.is_empty() {
                    Err(format!(
                        "no SecretStore `{}` in namespace `{ns}` (give it with --stores, or in the input unless --no-input-stores)",
                        reference.name
                    ))
                } else {
                    Err(format!(
                        "SecretStore `{}` exists only in namespace(s) {}; a SecretStore serves only its own namespace, not `{ns}`",
                        reference.name,
                        elsewhere.join(", ")
                    ))
                }
            }
            StoreRefKind::ClusterSecretStore => {
                let key = StoreKey { kind: StoreRefKind::ClusterSecretStore, namespace: None, name: reference.name.clone() };
                let store = self
                    .stores
                    .get(&key)
                    .ok_or_else(|| format!("no ClusterSecretStore `{}` (ClusterSecretStores come only from --stores)", reference.name))?;
                self.check_conditions(store, es_namespace)?;
                Ok(store)
            }
        }
    }

    /// ClusterSecretStore `spec.conditions`: allowed when any condition matches the namespace.
    fn check_conditions(&self, store: &Store, es_namespace: Option<&str>) -> Result<(), String> {
        if store.spec.conditions.is_empty() {
            return Ok(());
        }
        let name = &store.key.name;
        let ns = es_namespace.ok_or_else(|| format!("ClusterSecretStore `{name}` has conditions and this ExternalSecret has no namespace: set metadata.namespace, --namespace or ARGOCD_APP_NAMESPACE"))?;
        for c in &store.spec.conditions {
            if c.namespaces.iter().any(|n| n == ns) {
                return Ok(());
            }
            for re in &c.namespace_regexes {
                let re = regex::Regex::new(re).map_err(|e| format!("ClusterSecretStore `{name}`: bad namespaceRegexes entry: {e}"))?;
                if re.is_match(ns) {
                    return Ok(());
                }
            }
            if let Some(sel) = &c.namespace_selector {
                let labels = self.namespace_labels.get(ns);
                let matched = match labels {
                    Some(labels) => sel.matches(labels).map_err(|e| format!("ClusterSecretStore `{name}`: {e}"))?,
                    // Without a Namespace manifest its labels are unknown: a selector (even a
                    // negative one) cannot be shown to match, so it does not.
                    None => false,
                };
                if matched {
                    return Ok(());
                }
            }
        }
        let hint = if self.namespace_labels.contains_key(ns) {
            ""
        } else {
            " (no Namespace manifest for it was given with --stores, so its labels are unknown and no namespaceSelector can match)"
        };
        Err(format!("using ClusterSecretStore `{name}` is not allowed from namespace `{ns}`: denied by spec.conditions{hint}"))
    }

    /// Reads one credential for a store: a SecretStore reads in its own namespace; a
    /// ClusterSecretStore needs `namespace` in the selector.
    fn credential(&self, store: &Store, sel: &SecretKeySelector, field: &str) -> Result<String, ProviderError> {
        let ns = match (&store.key.namespace, &sel.namespace) {
            (Some(ns), _) => ns.clone(),
            (None, Some(ns)) => ns.clone(),
            (None, None) => {
                return Err(ProviderError::new(
                    ErrorClass::Config,
                    format!("{field}: a ClusterSecretStore's secretRef needs a namespace at render time"),
                ))
            }
        };
        let secret = self.credentials.get(&(ns.clone(), sel.name.clone())).ok_or_else(|| {
            ProviderError::new(
                ErrorClass::Config,
                format!(
                    "{field}: credential Secret `{ns}/{}` not found (give it with --credentials; it is never read from the rendered input)",
                    sel.name
                ),
            )
        })?;
        let value = secret.get(&sel.key).ok_or_else(|| {
            ProviderError::new(ErrorClass::Config, format!("{field}: key `{}` missing in credential Secret `{ns}/{}`", sel.key, sel.name))
        })?;
        String::from_utf8(value.0.clone())
            .map(|s| s.trim().to_string())
            .map_err(|_| ProviderError::new(ErrorClass::Config, format!("{field}: credential is not UTF-8")))
    }

    /// Uses `cache` for clients: a store with a fingerprint (see [`Catalog::set_fingerprint`])
    /// reuses the client built for the same fingerprint.
    pub fn with_cache(&mut self, cache: Arc<super::client_cache::ClientCache>) {
        self.cache = Some((cache, BTreeMap::new()));
    }

    /// Records what a store's client depends on (uid, generation, credential resourceVersions).
    pub fn set_fingerprint(&mut self, key: &StoreKey, fingerprint: String) {
        if let Some((_, fps)) = &mut self.cache {
            fps.insert(key.clone(), fingerprint);
        }
    }

    /// Gives a store its ServiceAccount token (controller mode).
    pub fn set_service_account_token(&mut self, key: &StoreKey, token: ServiceAccountToken) {
        self.service_account_tokens.insert(key.clone(), token);
    }

    /// Every store of the catalog.
    pub fn stores(&self) -> impl Iterator<Item = &Store> {
        self.stores.values()
    }

    /// The client for a store: from the cache when its fingerprint is unchanged, else built.
    /// A tenant's store that may not use the credentials it asks for is refused first
    /// ([`super::trust::check`]).
    pub async fn client(&self, store: &Store, settings: &Settings) -> Result<Arc<dyn Provider>, ProviderError> {
        super::trust::check(store, &settings.trust, settings.controller).map_err(|m| ProviderError::new(ErrorClass::Refused, m))?;
        let Some((cache, fps)) = &self.cache else { return self.build_provider(store, settings).await };
        let Some(fp) = fps.get(&store.key) else { return self.build_provider(store, settings).await };
        if let Some(c) = cache.get(&store.key, fp) {
            return Ok(c);
        }
        Ok(cache.put(&store.key, fp, self.build_provider(store, settings).await?))
    }

    /// Builds the provider client for a store. AWS `auth.jwt` needs an API server and is refused.
    async fn build_provider(&self, store: &Store, settings: &Settings) -> Result<Arc<dyn Provider>, ProviderError> {
        match &store.provider {
            ProviderSpec::Fake(spec) => Ok(Arc::new(provider::fake::FakeClient::new(spec)?)),
            ProviderSpec::AzureKeyVault(spec) => self.build_azure(store, spec),
            ProviderSpec::Aws(spec) => {
                let auth = spec.auth.clone().unwrap_or_default();
                let web_identity = match (&auth.jwt, self.service_account_tokens.get(&store.key)) {
                    (Some(jwt), Some(t)) => Some(provider::aws::WebIdentity {
                        role_arn: t.annotations.get(AWS_ROLE_ANNOTATION).cloned().ok_or_else(|| {
                            ProviderError::new(
                                ErrorClass::Config,
                                format!(
                                    "spec.provider.aws.auth.jwt: ServiceAccount `{}` has no `{AWS_ROLE_ANNOTATION}` annotation",
                                    jwt.service_account_ref.name
                                ),
                            )
                        })?,
                        token: t.token.clone(),
                    }),
                    _ => None,
                };
                if auth.jwt.is_some() && web_identity.is_none() {
                    return Err(ProviderError::new(ErrorClass::Config, "spec.provider.aws.auth.jwt needs a Kubernetes API server (TokenRequest): use the controller, or the default credential chain (IRSA) at render time"));
                }
                let keys = match &auth.secret_ref {
                    None => None,
                    Some(r) => {
                        let base = "spec.provider.aws.auth.secretRef";
                        Some(provider::aws::StaticKeys {
                            access_key_id: self.credential(store, &r.access_key_id_secret_ref, &format!("{base}.accessKeyIDSecretRef"))?,
                            secret_access_key: self.credential(
                                store,
                                &r.secret_access_key_secret_ref,
                                &format!("{base}.secretAccessKeySecretRef"),
                            )?,
                            session_token: match &r.session_token_secret_ref {
                                Some(s) => Some(self.credential(store, s, &format!("{base}.sessionTokenSecretRef"))?),
                                None => None,
                            },
                        })
                    }
                };
                Ok(Arc::new(provider::aws::AwsClient::with_identity(spec, keys, web_identity, settings.batch).await?))
            }
        }
    }
}

impl Catalog {
    /// The Azure client for a store: `authType` picks the credential; secrets come from
    /// `--credentials`; `serviceAccountRef` (TokenRequest) is refused at render time.
    fn build_azure(&self, store: &Store, spec: &api::AzureKvProvider) -> Result<Arc<dyn Provider>, ProviderError> {
        use provider::azure::{AzureAuth, AzureClient, AzureCloud};
        let config = |m: String| ProviderError::new(ErrorClass::Config, m);
        let base = "spec.provider.azurekv";
        if spec.vault_url.is_empty() {
            return Err(config(format!("{base}.vaultUrl is required")));
        }
        let federated = self.service_account_tokens.get(&store.key);
        if spec.service_account_ref.is_some() && federated.is_none() {
            return Err(config(format!(
                "{base}.serviceAccountRef needs a Kubernetes API server (TokenRequest): use the controller, or WorkloadIdentity with the pod's AZURE_FEDERATED_TOKEN_FILE at render time"
            )));
        }
        let cloud = AzureCloud::of(spec).map_err(config)?;
        let refs = spec.auth_secret_ref.clone().unwrap_or_default();
        let read = |sel: &Option<SecretKeySelector>, field: &str| -> Result<Option<String>, ProviderError> {
            sel.as_ref().map(|s| self.credential(store, s, &format!("{base}.authSecretRef.{field}"))).transpose()
        };
        // A tenant id is a GUID or a domain name (what azure_identity accepts); checked here so the
        // error names the field and never quotes what was read.
        let tenant = || -> Result<Option<String>, ProviderError> {
            let id = read(&refs.tenant_id, "tenantId")?.or_else(|| spec.tenant_id.clone());
            match id {
                Some(t) if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') => {
                    let field = if refs.tenant_id.is_some() { "authSecretRef.tenantId" } else { "tenantId" };
                    Err(config(format!("{base}.{field}: not a valid tenant id (a GUID or a domain name)")))
                }
                other => Ok(other),
            }
        };
        let auth = match spec.auth_type.as_deref().unwrap_or("ServicePrincipal") {
            "" | "ServicePrincipal" => {
                let tenant_id = tenant()?.ok_or_else(|| config(format!("{base}.tenantId is required for ServicePrincipal")))?;
                let client_id = read(&refs.client_id, "clientId")?
                    .ok_or_else(|| config(format!("{base}.authSecretRef.clientId is required for ServicePrincipal")))?;
                match (read(&refs.client_secret, "clientSecret")?, read(&refs.client_certificate, "clientCertificate")?) {
                    (Some(secret), None) => AzureAuth::ClientSecret { tenant_id, client_id, secret },
                    (None, Some(pem)) => AzureAuth::ClientCertificate { tenant_id, client_id, pem },
                    (Some(_), Some(_)) => {
                        return Err(config(format!("{base}.authSecretRef: set clientSecret or clientCertificate, not both")))
                    }
                    (None, None) => {
                        return Err(config(format!(
                            "{base}.authSecretRef: clientSecret or clientCertificate is required for ServicePrincipal"
                        )))
                    }
                }
            }
            "ManagedIdentity" => AzureAuth::ManagedIdentity { identity_id: spec.identity_id.clone().filter(|i| !i.is_empty()) },
            "WorkloadIdentity" => match federated {
                // serviceAccountRef (controller): ids from the store, else the ServiceAccount's annotations.
                Some(t) => AzureAuth::FederatedToken {
                    tenant_id: tenant()?.or_else(|| t.annotations.get(AZURE_TENANT_ID_ANNOTATION).cloned()).ok_or_else(|| {
                        config(format!("{base}: no tenant id (tenantId, or the ServiceAccount's {AZURE_TENANT_ID_ANNOTATION} annotation)"))
                    })?,
                    client_id: read(&refs.client_id, "clientId")?.or_else(|| t.annotations.get(AZURE_CLIENT_ID_ANNOTATION).cloned()).ok_or_else(
                        || config(format!("{base}: no client id (authSecretRef.clientId, or the ServiceAccount's {AZURE_CLIENT_ID_ANNOTATION} annotation)")),
                    )?,
                    token: t.token.clone(),
                },
                None => AzureAuth::WorkloadIdentity { tenant_id: tenant()?, client_id: read(&refs.client_id, "clientId")? },
            },
            other => {
                return Err(config(format!("{base}.authType `{other}` is not one of ServicePrincipal, ManagedIdentity, WorkloadIdentity")))
            }
        };
        Ok(Arc::new(AzureClient::new(&spec.vault_url, auth, cloud)?))
    }
}

/// Decodes `spec.provider`: exactly one key, one this tool implements.
fn decode_provider(value: &Value, settings: &Settings) -> Result<ProviderSpec, Vec<api::decode::FieldError>> {
    let err = |field: &str, message: String| vec![api::decode::FieldError { field: field.into(), message }];
    let Some(map) = value.as_object() else {
        return Err(err("spec.provider", "must be a mapping with one provider".into()));
    };
    let keys: Vec<&String> = map.keys().collect();
    let [name] = keys.as_slice() else {
        return Err(err("spec.provider", format!("exactly one provider must be set, found {}", keys.len())));
    };
    let inner = map[name.as_str()].clone();
    let field = format!("spec.provider.{name}");
    match name.as_str() {
        "fake" => {
            let (spec, warnings) = decode_strict::<FakeProvider>(inner, &field, settings.strictness)?;
            log_warnings(&field, &warnings);
            Ok(ProviderSpec::Fake(spec))
        }
        "aws" => {
            let (spec, warnings) = decode_strict::<AwsProvider>(inner, &field, settings.strictness)?;
            log_warnings(&field, &warnings);
            Ok(ProviderSpec::Aws(spec))
        }
        "azurekv" => {
            let (spec, warnings) = decode_strict::<api::AzureKvProvider>(inner, &field, settings.strictness)?;
            log_warnings(&field, &warnings);
            Ok(ProviderSpec::AzureKeyVault(spec))
        }
        other => Err(err(&field, format!("provider `{other}` is not supported (supported: {})", api::SUPPORTED_PROVIDERS.join(", ")))),
    }
}

pub(crate) fn field_problems(errs: Vec<api::decode::FieldError>, origin: &Origin, object: &str) -> Problems {
    Problems(errs.into_iter().map(|e| Problem::new(e.message).at(origin).object(object).field(e.field)).collect())
}

/// `namespaceRegexes` match anywhere in the name, as Go's `regexp.MatchString` in ESO does: `team-a`
/// also admits `team-a-staging` and `not-team-a`. A pattern without `^` or `$` is logged as a warning.
fn warn_unanchored(object: &str, spec: &SecretStoreSpec) {
    for (i, c) in spec.conditions.iter().enumerate() {
        for (j, re) in c.namespace_regexes.iter().enumerate() {
            if !re.starts_with('^') || !re.ends_with('$') {
                tracing::warn!(
                    "{}: spec.conditions[{i}].namespaceRegexes[{j}] `{}` is not anchored: it matches any namespace that contains a match (write ^...$ to match whole names)",
                    printable(object),
                    printable(re)
                );
            }
        }
    }
}

pub(crate) fn log_warnings(object: &str, warnings: &[String]) {
    for w in warnings {
        tracing::warn!("{}: {}", printable(object), printable(w));
    }
}
