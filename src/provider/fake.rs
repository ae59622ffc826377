//! The `fake` provider (ESO `providers/v1/fake`): values inline in the SecretStore, for demos and
//! tests. A `data[]` entry without `version` answers reads without version; `valueMap` is served as
//! a JSON object of its entries.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::api::FakeProvider;

use super::{ErrorClass, FindQuery, Provider, ProviderError, RemoteKey, SecretValue};

/// Serves the store's inline values.
pub struct FakeClient {
    /// `(key, version or "")` to value.
    values: BTreeMap<(String, String), SecretValue>,
}

impl FakeClient {
    pub fn new(spec: &FakeProvider) -> Result<Self, ProviderError> {
        let mut values = BTreeMap::new();
        for (i, d) in spec.data.iter().enumerate() {
            let value = match (&d.value, &d.value_map) {
                (Some(v), _) => v.clone().into_bytes(),
                (None, Some(m)) => serde_json::to_vec(m).expect("string map serializes"),
                (None, None) => {
                    return Err(ProviderError::new(
                        ErrorClass::Config,
                        format!("spec.provider.fake.data[{i}] has neither value nor valueMap"),
                    ))
                }
            };
            values.insert((d.key.clone(), d.version.clone().unwrap_or_default()), SecretValue(value));
        }
        Ok(FakeClient { values })
    }
}

#[async_trait]
impl Provider for FakeClient {
    fn name(&self) -> &'static str {
        "Fake"
    }

    async fn get(&self, key: &RemoteKey) -> Result<SecretValue, ProviderError> {
        if key.metadata {
            return Err(ProviderError::new(ErrorClass::InvalidRequest, "the fake provider has no metadata (metadataPolicy: Fetch)"));
        }
        let version = key.version.clone().unwrap_or_default();
        self.values
            .get(&(key.key.clone(), version))
            .cloned()
            .ok_or_else(|| ProviderError::new(ErrorClass::NotFound, format!("secret {key} not found in the fake store")))
    }

    async fn find(&self, query: &FindQuery) -> Result<Vec<String>, ProviderError> {
        if !query.tags.is_empty() {
            return Err(ProviderError::new(ErrorClass::InvalidRequest, "the fake provider has no tags (find.tags)"));
        }
        Ok(self
            .values
            .keys()
            .filter(|(_, version)| version.is_empty())
            .map(|(k, _)| k)
            .filter(|k| query.path.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
            .filter(|k| query.name.as_ref().is_none_or(|re| re.is_match(k)))
            .cloned()
            .collect())
    }
}

impl super::credential_use::CredentialUse for FakeProvider {
    fn provider_key(&self) -> &'static str {
        "fake"
    }

    fn identity(&self) -> super::credential_use::Identity {
        super::credential_use::Identity::Nothing
    }

    fn own_credentials_hint(&self) -> &'static str {
        "nothing (the fake provider has no credentials)"
    }

    fn credential_endpoints(&self) -> Result<Vec<super::credential_use::Endpoint>, String> {
        Ok(Vec::new())
    }
}
