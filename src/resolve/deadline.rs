//! Per-store deadlines: every provider call of a run (client building, finds, reads) ends by the
//! run's deadline store by store, so a store that never answers fails only the ExternalSecrets
//! that use it, with an error naming the store and the host it did not answer from. A panic in
//! provider code is caught here too and becomes an error of that store's call.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::ProviderSpec;
use crate::provider::{ErrorClass, ProviderError};

use super::stores::StoreKey;

/// Share of the run's `--timeout` given to provider calls; the rest is kept for assembling the
/// Secrets (values, templates) and writing the output.
const PROVIDER_SHARE: f64 = 0.9;

/// The deadlines of one run.
#[derive(Debug)]
pub struct Deadline {
    /// Provider calls of every store end by this instant.
    pub providers: Instant,
    /// Assembly of each ExternalSecret ends by this instant (the run's `--timeout`).
    pub assembly: Instant,
    provider_budget: Duration,
    timeout: Duration,
    hosts: BTreeMap<StoreKey, String>,
}

impl Deadline {
    /// Deadlines from now for a run bounded by `timeout` (`--timeout`).
    pub fn start(timeout: Duration) -> Self {
        let now = Instant::now();
        let provider_budget = timeout.mul_f64(PROVIDER_SHARE);
        Deadline { providers: now + provider_budget, assembly: now + timeout, provider_budget, timeout, hosts: BTreeMap::new() }
    }

    /// Records the host `store` talks to, for the timeout's message.
    pub fn add_store(&mut self, store: &StoreKey, spec: &ProviderSpec) {
        self.hosts.insert(store.clone(), host_of(spec));
    }

    /// The run's whole `--timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The error of a store that did not answer in time: names the store and its host.
    pub fn timed_out(&self, store: &StoreKey) -> ProviderError {
        let host = self.hosts.get(store).map(String::as_str).unwrap_or("unknown host");
        ProviderError::new(
            ErrorClass::Timeout,
            format!(
                "{store} (host {host}) did not answer: deadline of {}s exceeded while reading from providers (--timeout; provider calls end at {}s)",
                self.timeout.as_secs_f32(),
                self.provider_budget.as_secs_f32(),
            ),
        )
    }

    /// Runs one provider call of `store` under the provider deadline, with panics caught.
    pub fn bound<T>(
        &self,
        store: &StoreKey,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> impl Future<Output = Result<T, ProviderError>> {
        let (at, late) = (self.providers, self.timed_out(store));
        let store = store.clone();
        async move {
            match tokio::time::timeout_at(at, crate::isolate::catch_future("provider", call)).await {
                Ok(Ok(r)) => r,
                Ok(Err(panicked)) => Err(ProviderError::new(ErrorClass::Other, format!("{panicked} ({store})"))),
                Err(_) => Err(late),
            }
        }
    }
}

/// The host a store's provider talks to: AWS's endpoint (`AWS_ENDPOINT_URL_SECRETS_MANAGER`,
/// `AWS_ENDPOINT_URL`, else the region's), Azure's `vaultUrl` host; the fake store is in-process.
pub fn host_of(spec: &ProviderSpec) -> String {
    let host = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.split(['/', '?', '#']).next().unwrap_or(rest).to_string()
    };
    match spec {
        ProviderSpec::Fake(_) => "in-process".into(),
        ProviderSpec::Aws(aws) => ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .map(|u| host(&u))
            .unwrap_or_else(|| format!("secretsmanager.{}.amazonaws.com", aws.region)),
        ProviderSpec::AzureKeyVault(kv) => host(&kv.vault_url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StoreRefKind;

    fn store() -> StoreKey {
        StoreKey { kind: StoreRefKind::SecretStore, namespace: Some("team-a".into()), name: "vault".into() }
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_names_the_store_and_its_host() {
        let mut d = Deadline::start(Duration::from_millis(100));
        let spec: crate::api::AzureKvProvider =
            serde_json::from_value(serde_json::json!({"vaultUrl": "https://slow.vault.azure.net/"})).unwrap();
        d.add_store(&store(), &ProviderSpec::AzureKeyVault(spec));
        let never = d.bound(&store(), std::future::pending::<Result<(), ProviderError>>()).await.unwrap_err();
        assert_eq!(never.class, ErrorClass::Timeout);
        assert!(
            never.message.starts_with("SecretStore team-a/vault (host slow.vault.azure.net) did not answer: deadline of 0.1s exceeded"),
            "{never}"
        );
        let quick = d.bound(&store(), async { Ok::<_, ProviderError>(1) }).await;
        assert_eq!(quick, Ok(1));
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error_of_that_call() {
        let d = Deadline::start(Duration::from_secs(5));
        let e = d.bound(&store(), async { panic!("value-canary") as Result<(), ProviderError> }).await.unwrap_err();
        assert!(e.message.contains("internal error in provider code") && !e.message.contains("value-canary"), "{e}");
    }
}
