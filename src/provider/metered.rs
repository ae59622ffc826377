//! A provider client kept across reconciles (controller mode): counts every call for
//! `externalsecret_provider_api_calls_count` and marks itself revoked on an access error
//! (401/403), so the cache that holds it builds a fresh client with fresh credentials.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{ErrorClass, FindQuery, Provider, ProviderError, RemoteKey, SecretValue};

/// Called once per provider API call: provider name (`AWS/SecretsManager`), ESO's call name
/// (`GetSecretValue`, `BatchGetSecretValue`, `ListSecrets`, `GetSecret`, `GetSecrets`) and
/// whether it succeeded.
pub type CallObserver = Arc<dyn Fn(&'static str, &'static str, bool) + Send + Sync>;

/// A client wrapped with call counting and revocation.
pub struct Metered {
    inner: Arc<dyn Provider>,
    observe: CallObserver,
    revoked: AtomicBool,
}

impl Metered {
    pub fn new(inner: Arc<dyn Provider>, observe: CallObserver) -> Self {
        Metered { inner, observe, revoked: AtomicBool::new(false) }
    }

    /// True once a call failed with 401/403: the credentials may have changed or expired.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }

    fn call_names(&self) -> (&'static str, &'static str, &'static str) {
        match self.inner.name() {
            "AWS/SecretsManager" => ("GetSecretValue", "BatchGetSecretValue", "ListSecrets"),
            "Azure/KeyVault" => ("GetSecret", "GetSecret", "GetSecrets"),
            _ => ("GetSecret", "GetSecrets", "ListSecrets"),
        }
    }

    fn record<T>(&self, call: &'static str, result: &Result<T, ProviderError>) {
        if let Err(e) = result {
            if e.class == ErrorClass::AccessDenied {
                self.revoked.store(true, Ordering::Relaxed);
            }
            // A refused batch is not a failed read: the caller reads one by one instead.
            if e.class == ErrorClass::BatchUnavailable {
                return;
            }
        }
        (self.observe)(self.inner.name(), call, result.is_ok());
    }
}

#[async_trait]
impl Provider for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn get(&self, key: &RemoteKey) -> Result<SecretValue, ProviderError> {
        let r = self.inner.get(key).await;
        // As ESO counts: any error answer of the call (a missing key included) is `error`.
        self.record(self.call_names().0, &r);
        r
    }
    fn property_order(&self) -> crate::resolve::value::DotOrder {
        self.inner.property_order()
    }
    fn canonical_key(&self, key: &str) -> String {
        self.inner.canonical_key(key)
    }
    fn check_extract(&self, key: &str) -> Result<(), String> {
        self.inner.check_extract(key)
    }
    fn batch_limit(&self, key: &RemoteKey) -> usize {
        self.inner.batch_limit(key)
    }
    async fn get_batch(&self, keys: &[RemoteKey]) -> Result<Vec<Result<SecretValue, ProviderError>>, ProviderError> {
        let r = self.inner.get_batch(keys).await;
        if let Ok(results) = &r {
            if results.iter().any(|x| matches!(x, Err(e) if e.class == ErrorClass::AccessDenied)) {
                self.revoked.store(true, Ordering::Relaxed);
            }
        }
        let counted = r.as_ref().map(|_| ()).map_err(Clone::clone);
        self.record(self.call_names().1, &counted);
        r
    }
    async fn find(&self, query: &FindQuery) -> Result<Vec<String>, ProviderError> {
        let r = self.inner.find(query).await;
        self.record(self.call_names().2, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A provider that refuses every read, as a store whose credentials were revoked.
    struct Refusing;

    #[async_trait]
    impl Provider for Refusing {
        fn name(&self) -> &'static str {
            "AWS/SecretsManager"
        }
        async fn get(&self, _: &RemoteKey) -> Result<SecretValue, ProviderError> {
            Err(ProviderError::new(ErrorClass::AccessDenied, "denied"))
        }
        async fn find(&self, _: &FindQuery) -> Result<Vec<String>, ProviderError> {
            Ok(vec![])
        }
    }

    /// Calls seen: (provider, call, success).
    type Calls = Arc<Mutex<Vec<(&'static str, &'static str, bool)>>>;

    fn recorder() -> (CallObserver, Calls) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = calls.clone();
        (Arc::new(move |p, c, ok| sink.lock().unwrap().push((p, c, ok))), calls)
    }

    fn key(k: &str) -> RemoteKey {
        RemoteKey { key: k.into(), version: None, metadata: false }
    }

    #[tokio::test]
    async fn every_call_is_counted_and_a_missing_key_is_an_error_answer() {
        let spec: crate::api::FakeProvider = serde_json::from_value(serde_json::json!({"data": [{"key": "a", "value": "1"}]})).unwrap();
        let (observe, calls) = recorder();
        let client = Metered::new(Arc::new(super::super::fake::FakeClient::new(&spec).unwrap()), observe);
        assert_eq!(client.get(&key("a")).await.unwrap().as_bytes(), b"1");
        assert_eq!(client.get(&key("missing")).await.unwrap_err().class, ErrorClass::NotFound);
        assert_eq!(*calls.lock().unwrap(), vec![("Fake", "GetSecret", true), ("Fake", "GetSecret", false)]);
        assert!(!client.revoked(), "a missing key says nothing about the credentials");
    }

    #[tokio::test]
    async fn an_access_error_revokes_the_client_and_names_eso_calls() {
        let (observe, calls) = recorder();
        let client = Metered::new(Arc::new(Refusing), observe);
        assert!(client.get(&key("a")).await.is_err());
        assert!(client.revoked());
        assert_eq!(*calls.lock().unwrap(), vec![("AWS/SecretsManager", "GetSecretValue", false)]);
    }
}
