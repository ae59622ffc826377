//! Secret providers behind one trait (as ESO's `SecretsClient`: get one, get many, find).
//!
//! A provider returns whole remote values as [`SecretValue`] bytes; properties, decoding and key
//! conversion are applied locally by [`crate::resolve`], so each remote value is read once per run
//! however many entries use it.

pub mod aws;
pub mod azure;
pub mod credential_use;
pub mod fake;
pub mod metered;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

/// Bytes of a secret value. `Debug` prints neither the bytes nor their length, so nothing of a
/// value can reach a log or a panic message through formatting.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretValue(pub Vec<u8>);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl SecretValue {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One remote read: a key at a version, or the key's metadata (tags) when `metadata` is set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteKey {
    /// Provider key as written in `remoteRef.key` (the store's prefix is added by the provider).
    pub key: String,
    /// Provider version (`None` = current).
    pub version: Option<String>,
    /// Read the metadata (`metadataPolicy: Fetch`) instead of the value.
    pub metadata: bool,
}

impl fmt::Display for RemoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.key)?;
        if let Some(v) = &self.version {
            write!(f, " version `{v}`")?;
        }
        if self.metadata {
            f.write_str(" (metadata)")?;
        }
        Ok(())
    }
}

/// A `dataFrom[].find` query, compiled.
#[derive(Clone, Debug)]
pub struct FindQuery {
    /// Name prefix (`find.path`).
    pub path: Option<String>,
    /// Unanchored pattern on the name (`find.name.regexp`).
    pub name: Option<regex::Regex>,
    /// Tags that must all be present with these values.
    pub tags: BTreeMap<String, String>,
}

/// Broad class of a provider error, shown in every error message (`[NotFound]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The key (or version, or property) does not exist; includes AWS "marked for deletion".
    NotFound,
    AccessDenied,
    /// Still throttled after the retries.
    Throttled,
    /// The provider rejected the request (bad version id, malformed ARN, ...).
    InvalidRequest,
    /// The provider could not be reached or answered 5xx after the retries.
    Unavailable,
    /// The store's configuration or credentials are unusable.
    Config,
    /// The batched read API is not allowed for these credentials; the caller falls back to single reads.
    BatchUnavailable,
    /// The run's deadline passed.
    Timeout,
    /// The store may not use these credentials or send them there (see `resolve::trust`).
    Refused,
    Other,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A provider error: class and a value-free message (names, codes, never values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    pub class: ErrorClass,
    pub message: String,
}

impl ProviderError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ProviderError { class, message: message.into() }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.class, self.message)
    }
}

impl std::error::Error for ProviderError {}

/// What a provider reads with.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Provider name as in ESO's metrics (`AWS/SecretsManager`, `Fake`).
    fn name(&self) -> &'static str;

    /// Reads one remote value.
    async fn get(&self, key: &RemoteKey) -> Result<SecretValue, ProviderError>;

    /// Order of `property` lookups when the property has dots (ESO differs per provider).
    fn property_order(&self) -> crate::resolve::value::DotOrder {
        crate::resolve::value::DotOrder::LiteralFirst
    }

    /// The spelling of `key` reads are deduplicated on (Azure: `secret/NAME` is `NAME`).
    fn canonical_key(&self, key: &str) -> String {
        key.to_string()
    }

    /// Whether `dataFrom.extract` may read `key` (Azure: secrets only); the error says why not.
    fn check_extract(&self, _key: &str) -> Result<(), String> {
        Ok(())
    }

    /// Largest batch [`Provider::get_batch`] takes for this key; `1` means the key is read alone.
    fn batch_limit(&self, _key: &RemoteKey) -> usize {
        1
    }

    /// Reads several keys in one call, one result per key in order. `Err` with
    /// [`ErrorClass::BatchUnavailable`] tells the caller to read them one by one instead.
    async fn get_batch(&self, keys: &[RemoteKey]) -> Result<Vec<Result<SecretValue, ProviderError>>, ProviderError> {
        let _ = keys;
        Err(ProviderError::new(ErrorClass::BatchUnavailable, "batch reads not supported"))
    }

    /// Lists the keys matching `query` (names relative to the store's prefix). Values are then read
    /// through [`Provider::get`]/[`Provider::get_batch`] like any other key.
    async fn find(&self, query: &FindQuery) -> Result<Vec<String>, ProviderError>;
}
