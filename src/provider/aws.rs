//! AWS Secrets Manager (ESO `providers/v1/aws/secretsmanager`), through the official SDK.
//!
//! - Key = store `prefix` + `remoteRef.key` (name or ARN). `version` is a VersionStage
//!   (`AWSCURRENT`, `AWSPREVIOUS`, custom) unless it is `uuid/<VersionId>`.
//! - Reads of the current version are batched with `BatchGetSecretValue` (20 ids per call). That call
//!   needs `secretsmanager:BatchGetSecretValue` on `*`: on AccessDenied the client stops batching for
//!   the rest of the run and the caller reads those keys with `GetSecretValue`; `--no-batch` turns
//!   batching off.
//! - `metadataPolicy: Fetch` reads `DescribeSecret` and serves the tags as a JSON object.
//! - `find` lists names with `ListSecrets` (server-side filters on name prefix and tags, exact
//!   checks client-side) and the values are then read like any other key.
//! - `ResourceNotFoundException` and "marked for deletion" (also worded "marked deleted") are both
//!   [`ErrorClass::NotFound`].
//! - An error answer without a readable error code (a proxy's page, an emulator's XML body) is
//!   classed by its HTTP status: 401/403 AccessDenied, 429 Throttled, 5xx Unavailable.
//! - Throttling and 5xx are retried by the SDK's standard retry strategy (exponential backoff with
//!   jitter, 5 attempts); the run's overall deadline bounds the total.
//!
//! Credentials: the SDK's default chain (environment, web identity/IRSA, EKS Pod Identity,
//! instance role) unless static keys are given; then `additionalRoles` are assumed in order and
//! `role` last, with `externalID`, `sessionTags` and `transitiveTagKeys`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use crate::api::AwsProvider;

use super::{ErrorClass, FindQuery, Provider, ProviderError, RemoteKey, SecretValue};

/// AWS caps `BatchGetSecretValue` at 20 secrets per call.
pub const BATCH_SIZE: usize = 20;

/// Static keys from `auth.secretRef`. `Debug` redacts them.
#[derive(Clone)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticKeys(<redacted>)")
    }
}

/// A web identity for `AssumeRoleWithWebIdentity` (controller mode, `auth.jwt`): the role from
/// the ServiceAccount's `eks.amazonaws.com/role-arn` annotation and a token from TokenRequest.
#[derive(Clone)]
pub struct WebIdentity {
    pub role_arn: String,
    pub token: String,
}

impl fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebIdentity({}, <token redacted>)", self.role_arn)
    }
}

/// A Secrets Manager client for one store.
pub struct AwsClient {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    batching: AtomicBool,
}

impl AwsClient {
    /// Builds the client: region, credentials (static `keys` or the default chain), then the role
    /// chain. Role assumption calls STS now, once per store and run.
    pub async fn new(spec: &AwsProvider, keys: Option<StaticKeys>, batching: bool) -> Result<Self, ProviderError> {
        Self::with_identity(spec, keys, None, batching).await
    }

    /// As [`AwsClient::new`], first exchanging `web_identity` (if any) for role credentials with
    /// `sts:AssumeRoleWithWebIdentity`, as ESO's JWT auth does.
    pub async fn with_identity(
        spec: &AwsProvider,
        keys: Option<StaticKeys>,
        web_identity: Option<WebIdentity>,
        batching: bool,
    ) -> Result<Self, ProviderError> {
        if spec.service != "SecretsManager" {
            return Err(ProviderError::new(
                ErrorClass::Config,
                format!("spec.provider.aws.service `{}` is not supported (only SecretsManager)", spec.service),
            ));
        }
        if spec.region.is_empty() {
            return Err(ProviderError::new(ErrorClass::Config, "spec.provider.aws.region is required"));
        }
        if !is_region_name(&spec.region) {
            return Err(ProviderError::new(
                ErrorClass::Config,
                format!("spec.provider.aws.region `{}` is not an AWS region name (lower-case letters, digits and `-`)", spec.region),
            ));
        }
        if spec.session_tags_policy.as_deref().is_some_and(|p| p != "None") || spec.custom_session_tags.is_some() {
            return Err(ProviderError::new(ErrorClass::Config, "spec.provider.aws.sessionTagsPolicy/customSessionTags are not supported"));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(spec.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(5));
        if let Some(k) = keys {
            loader = loader.credentials_provider(Credentials::new(
                k.access_key_id,
                k.secret_access_key,
                k.session_token,
                None,
                "extsecret-secretRef",
            ));
        }
        let mut config = loader.load().await;
        if let Some(w) = web_identity {
            let out = aws_sdk_sts::Client::new(&config)
                .assume_role_with_web_identity()
                .role_arn(&w.role_arn)
                .role_session_name("extsecret")
                .web_identity_token(w.token)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("sts:AssumeRoleWithWebIdentity `{}`", w.role_arn), e))?;
            let c = out
                .credentials
                .ok_or_else(|| ProviderError::new(ErrorClass::Other, "sts:AssumeRoleWithWebIdentity returned no credentials"))?;
            let expiry = std::time::SystemTime::try_from(c.expiration).ok();
            let creds = Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), expiry, "extsecret-web-identity");
            config =
                config.to_builder().credentials_provider(aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(creds)).build();
        }
        let last = spec.role.iter().map(|r| (r, true));
        for (role, is_final) in spec.additional_roles.iter().map(|r| (r, false)).chain(last) {
            config = assume_role(&config, role, is_final.then_some(spec)).await?;
        }
        Ok(AwsClient {
            client: aws_sdk_secretsmanager::Client::new(&config),
            prefix: spec.prefix.clone().unwrap_or_default(),
            batching: AtomicBool::new(batching),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// Whether `region` is one DNS label of lower-case letters, digits and inner `-` (`us-east-1`).
/// The SDK builds endpoints as `secretsmanager.{region}.amazonaws.com` and accepts dots in a
/// region, so `bucket.s3.us-east-1` would reach `secretsmanager.bucket.s3.us-east-1.amazonaws.com`,
/// a host under a customer's name; one label keeps every endpoint a host AWS itself names.
pub fn is_region_name(region: &str) -> bool {
    !region.is_empty()
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Assumes `role` with the credentials of `config`; `final_role` carries externalID and session tags.
async fn assume_role(config: &SdkConfig, role: &str, final_role: Option<&AwsProvider>) -> Result<SdkConfig, ProviderError> {
    let sts = aws_sdk_sts::Client::new(config);
    let mut req = sts.assume_role().role_arn(role).role_session_name("extsecret");
    if let Some(spec) = final_role {
        req = req.set_external_id(spec.external_id.clone());
        for t in &spec.session_tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
                .map_err(|e| ProviderError::new(ErrorClass::Config, format!("session tag: {e}")))?;
            req = req.tags(tag);
        }
        for k in &spec.transitive_tag_keys {
            req = req.transitive_tag_keys(k);
        }
    }
    let out = req.send().await.map_err(|e| map_sdk_error(&format!("sts:AssumeRole `{role}`"), e))?;
    let c =
        out.credentials.ok_or_else(|| ProviderError::new(ErrorClass::Other, format!("sts:AssumeRole `{role}` returned no credentials")))?;
    let expiry = std::time::SystemTime::try_from(c.expiration).ok();
    let creds = Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), expiry, "extsecret-assume-role");
    Ok(config.to_builder().credentials_provider(aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(creds)).build())
}

#[async_trait]
impl Provider for AwsClient {
    fn name(&self) -> &'static str {
        "AWS/SecretsManager"
    }

    async fn get(&self, key: &RemoteKey) -> Result<SecretValue, ProviderError> {
        let id = self.full_key(&key.key);
        if key.metadata {
            let out = self
                .client
                .describe_secret()
                .secret_id(&id)
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("DescribeSecret `{id}`"), e))?;
            let tags: BTreeMap<&str, &str> =
                out.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
            return Ok(SecretValue(serde_json::to_vec(&tags).expect("tags serialize")));
        }
        let mut req = self.client.get_secret_value().secret_id(&id);
        match key.version.as_deref() {
            None | Some("") => {}
            Some(v) => match v.strip_prefix("uuid/") {
                Some(version_id) => req = req.version_id(version_id),
                None => req = req.version_stage(v),
            },
        }
        let out = req.send().await.map_err(|e| map_sdk_error(&format!("GetSecretValue {key}"), e))?;
        payload(&id, out.secret_string, out.secret_binary)
    }

    fn batch_limit(&self, key: &RemoteKey) -> usize {
        let current = matches!(key.version.as_deref(), None | Some("") | Some("AWSCURRENT"));
        if current && !key.metadata && self.batching.load(Ordering::Relaxed) {
            BATCH_SIZE
        } else {
            1
        }
    }

    async fn get_batch(&self, keys: &[RemoteKey]) -> Result<Vec<Result<SecretValue, ProviderError>>, ProviderError> {
        if !self.batching.load(Ordering::Relaxed) {
            return Err(ProviderError::new(ErrorClass::BatchUnavailable, "batching is off"));
        }
        let ids: Vec<String> = keys.iter().map(|k| self.full_key(&k.key)).collect();
        let mut found: HashMap<String, Result<SecretValue, ProviderError>> = HashMap::new();
        let mut next_token = None;
        loop {
            let resp =
                self.client.batch_get_secret_value().set_secret_id_list(Some(ids.clone())).set_next_token(next_token.take()).send().await;
            let out = match resp {
                Ok(out) => out,
                Err(e) => {
                    let err = map_sdk_error("BatchGetSecretValue", e);
                    if err.class == ErrorClass::AccessDenied {
                        self.batching.store(false, Ordering::Relaxed);
                        tracing::warn!("BatchGetSecretValue denied; reading one secret per call for this store from now on");
                        return Err(ProviderError::new(ErrorClass::BatchUnavailable, err.message));
                    }
                    return Err(err);
                }
            };
            for v in out.secret_values() {
                let name = v.name().unwrap_or_default().to_string();
                let arn = v.arn().unwrap_or_default().to_string();
                let value = payload(&name, v.secret_string.clone(), v.secret_binary.clone());
                found.insert(arn, value.clone());
                found.insert(name, value);
            }
            for e in out.errors() {
                let id = e.secret_id().unwrap_or_default().to_string();
                let code = e.error_code().unwrap_or("Unknown");
                let err = classify(code, e.message().unwrap_or_default(), &format!("BatchGetSecretValue `{id}`"));
                found.insert(id, Err(err));
            }
            match out.next_token {
                Some(t) if !t.is_empty() => next_token = Some(t),
                _ => break,
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                found.get(id).cloned().unwrap_or_else(|| {
                    Err(ProviderError::new(ErrorClass::NotFound, format!("secret `{id}` not in the BatchGetSecretValue answer")))
                })
            })
            .collect())
    }

    async fn find(&self, query: &FindQuery) -> Result<Vec<String>, ProviderError> {
        let name_prefix = format!("{}{}", self.prefix, query.path.clone().unwrap_or_default());
        let mut req = self.client.list_secrets();
        if !name_prefix.is_empty() {
            req = req.filters(Filter::builder().key(FilterNameStringType::Name).values(&name_prefix).build());
        }
        for (k, v) in &query.tags {
            req = req.filters(Filter::builder().key(FilterNameStringType::TagKey).values(k).build());
            req = req.filters(Filter::builder().key(FilterNameStringType::TagValue).values(v).build());
        }
        let mut names = Vec::new();
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error("ListSecrets", e))?;
            for s in page.secret_list() {
                let Some(name) = s.name() else { continue };
                let Some(relative) = name.strip_prefix(&name_prefix).map(|_| &name[self.prefix.len()..]) else { continue };
                let tags_ok =
                    query.tags.iter().all(|(k, v)| s.tags().iter().any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str())));
                if tags_ok && query.name.as_ref().is_none_or(|re| re.is_match(name)) {
                    names.push(relative.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

fn payload(
    id: &str,
    string: Option<String>,
    binary: Option<aws_sdk_secretsmanager::primitives::Blob>,
) -> Result<SecretValue, ProviderError> {
    match (string, binary) {
        (Some(s), _) => Ok(SecretValue(s.into_bytes())),
        (None, Some(b)) => Ok(SecretValue(b.into_inner())),
        (None, None) => {
            Err(ProviderError::new(ErrorClass::Other, format!("invalid secret received: no SecretString nor SecretBinary for `{id}`")))
        }
    }
}

/// Maps an SDK error to a class; the message holds the operation, AWS's error code and message.
fn map_sdk_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => match err.code() {
            Some(code) => classify(code, err.message().unwrap_or_default(), what),
            None => classify_status(ctx.raw().status().as_u16(), what),
        },
        SdkError::TimeoutError(_) => ProviderError::new(ErrorClass::Unavailable, format!("{what}: timed out")),
        SdkError::DispatchFailure(d) => {
            let why = if d.is_io() {
                "connection failed"
            } else if d.is_timeout() {
                "timed out"
            } else {
                "request could not be sent"
            };
            ProviderError::new(ErrorClass::Unavailable, format!("{what}: {why}"))
        }
        SdkError::ConstructionFailure(_) => {
            let source = std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default();
            ProviderError::new(ErrorClass::Config, format!("{what}: request could not be built (missing credentials?) {source}"))
        }
        _ => ProviderError::new(ErrorClass::Other, format!("{what}: unreadable response")),
    }
}

/// An error answer whose body holds no error code the SDK can read: the HTTP status decides.
fn classify_status(status: u16, what: &str) -> ProviderError {
    let class = match status {
        401 | 403 => ErrorClass::AccessDenied,
        429 => ErrorClass::Throttled,
        500..=599 => ErrorClass::Unavailable,
        _ => ErrorClass::Other,
    };
    ProviderError::new(class, format!("{what}: HTTP {status} without a readable error code"))
}

fn classify(code: &str, message: &str, what: &str) -> ProviderError {
    let class = match code {
        "ResourceNotFoundException" => ErrorClass::NotFound,
        // AWS words it "because it was marked for deletion" (GetSecretValue) and documents "a secret
        // that's currently marked deleted" (moto answers with the latter).
        "InvalidRequestException" | "InvalidParameterException"
            if message.contains("marked for deletion") || message.contains("marked deleted") =>
        {
            ErrorClass::NotFound
        }
        "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" | "InvalidClientTokenId" | "ExpiredTokenException" => {
            ErrorClass::AccessDenied
        }
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" => ErrorClass::Throttled,
        "InvalidRequestException" | "InvalidParameterException" | "ValidationException" => ErrorClass::InvalidRequest,
        "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => ErrorClass::Unavailable,
        _ => ErrorClass::Other,
    };
    ProviderError::new(class, format!("{what}: {code}: {message}"))
}

/// AWS: the SDK's default chain (no `auth`) is the process's identity; `auth.secretRef` and
/// `auth.jwt` are the store's own. Endpoints are AWS's own, chosen by region (a region must be
/// one DNS label, see [`is_region_name`]), so no store can point them elsewhere; `AWS_ENDPOINT_URL`
/// is the operator's.
impl super::credential_use::CredentialUse for AwsProvider {
    fn provider_key(&self) -> &'static str {
        "aws"
    }

    fn identity(&self) -> super::credential_use::Identity {
        match &self.auth {
            Some(a) if a.secret_ref.is_some() || a.jwt.is_some() => super::credential_use::Identity::Named,
            _ => super::credential_use::Identity::Process("the AWS default credential chain: no spec.provider.aws.auth".into()),
        }
    }

    fn own_credentials_hint(&self) -> &'static str {
        "spec.provider.aws.auth.secretRef, or auth.jwt with a ServiceAccount of its namespace"
    }

    fn assumed_roles(&self) -> Vec<String> {
        self.additional_roles.iter().chain(self.role.iter()).filter(|r| !r.is_empty()).cloned().collect()
    }

    fn credential_endpoints(&self) -> Result<Vec<super::credential_use::Endpoint>, String> {
        Ok(Vec::new())
    }

    fn default_token_audience(&self) -> &'static str {
        TOKEN_AUDIENCE
    }
}

/// The audience of `auth.jwt` ServiceAccount tokens when the store names none (as ESO's
/// `providers/v1/aws/auth/auth.go`).
pub const TOKEN_AUDIENCE: &str = "sts.amazonaws.com";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_region_is_one_dns_label_so_endpoints_stay_aws_hosts() {
        assert!(is_region_name("us-east-1") && is_region_name("us-gov-west-1") && is_region_name("eusc-de-east-1"));
        for bad in ["bucket.s3.us-east-1", "us-east-1.", "US-EAST-1", "-us", "a/b", ""] {
            assert!(!is_region_name(bad), "{bad}");
        }
        let spec = AwsProvider { service: "SecretsManager".into(), region: "bucket.s3.us-east-1".into(), ..Default::default() };
        let err = AwsClient::new(&spec, None, false).await.err().expect("refused");
        assert!(err.message.contains("is not an AWS region name"), "{err}");
    }

    #[test]
    fn secrets_marked_for_deletion_are_not_found_in_either_wording() {
        let aws = classify(
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
            "GetSecretValue `a`",
        );
        assert_eq!(aws.class, ErrorClass::NotFound);
        let documented = classify(
            "InvalidRequestException",
            "You tried to perform the operation on a secret that's currently marked deleted.",
            "GetSecretValue `a`",
        );
        assert_eq!(documented.class, ErrorClass::NotFound);
        assert_eq!(classify("InvalidRequestException", "You can't do that now.", "x").class, ErrorClass::InvalidRequest);
    }

    #[test]
    fn an_error_without_a_readable_code_is_classed_by_its_status() {
        assert_eq!(classify_status(403, "BatchGetSecretValue").class, ErrorClass::AccessDenied);
        assert_eq!(classify_status(401, "x").class, ErrorClass::AccessDenied);
        assert_eq!(classify_status(429, "x").class, ErrorClass::Throttled);
        assert_eq!(classify_status(503, "x").class, ErrorClass::Unavailable);
        assert_eq!(classify_status(400, "x").class, ErrorClass::Other);
        assert_eq!(classify_status(403, "BatchGetSecretValue").message, "BatchGetSecretValue: HTTP 403 without a readable error code");
    }
}
