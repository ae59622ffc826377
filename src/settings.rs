//! Operator settings: flags, or `EXTSECRET_<FLAG>` environment variables set in the plugin's own
//! container. Never read from `ARGOCD_ENV_*`, `PARAM_*` or anything else an Application author
//! controls (clap reads exactly the variable names below).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::api::Strictness;
use crate::resolve::trust::{self, AllowedHost, AssumableRoles, NamespaceRule, TrustPolicy};

/// Flags shared by every front-end. Path lists in variables are separated by `:` (as KUBECONFIG);
/// switches take `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
#[derive(Args, Clone, Debug, Default)]
pub struct OperatorArgs {
    /// Files or folders with SecretStores, ClusterSecretStores and Namespaces (the operator's stores)
    #[arg(long = "stores", env = "EXTSECRET_STORES", value_delimiter = ':', value_name = "PATH")]
    pub stores: Vec<PathBuf>,
    /// Files or folders with the Secrets that stores' secretRef credentials point at
    #[arg(long = "credentials", env = "EXTSECRET_CREDENTIALS", value_delimiter = ':', value_name = "PATH")]
    pub credentials: Vec<PathBuf>,
    /// Namespace of objects that have none: input objects outside Argo CD (under Argo CD they take the Application's namespace) and objects of --stores/--credentials files
    #[arg(long, env = "EXTSECRET_NAMESPACE")]
    pub namespace: Option<String>,
    /// Refuse SecretStores that come from the rendered input
    #[arg(long, env = "EXTSECRET_NO_INPUT_STORES", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_input_stores: bool,
    #[command(flatten)]
    pub reads: ReadArgs,
    #[command(flatten)]
    pub trust: InputTrustArgs,
    /// Accept a render that produces no document at all
    #[arg(long, env = "EXTSECRET_ALLOW_EMPTY", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_empty: bool,
    // --- Application binding (see crate::binding) ---
    /// YAML file mapping Argo CD project names to namespace globs their Applications may use besides the destination namespace
    #[arg(long, env = "EXTSECRET_PROJECT_NAMESPACES", value_name = "FILE")]
    pub project_namespaces: Option<PathBuf>,
    /// argocd generate: accept SecretStores from the rendered input (refused there by default)
    #[arg(long, env = "EXTSECRET_ALLOW_INPUT_STORES", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_input_stores: bool,
}

/// How ExternalSecrets are decoded and providers read; shared by every front-end and the controller.
#[derive(Args, Clone, Debug)]
pub struct ReadArgs {
    /// Warn about unknown fields instead of failing
    #[arg(long, env = "EXTSECRET_LENIENT", value_parser = clap::builder::BoolishValueParser::new())]
    pub lenient: bool,
    /// Provider calls in flight at once, per store (a store that hangs holds no other store's calls)
    #[arg(long, env = "EXTSECRET_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Deadline of a run (a render, renderer included, or a controller's refresh wave); each store's provider calls end by 90% of it: `45s`, `2m`, or seconds
    #[arg(long, env = "EXTSECRET_TIMEOUT", default_value = "45s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Do not use BatchGetSecretValue (one GetSecretValue per secret)
    #[arg(long, env = "EXTSECRET_NO_BATCH", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_batch: bool,
}

impl Default for ReadArgs {
    fn default() -> Self {
        ReadArgs { lenient: false, concurrency: 16, timeout: Duration::from_secs(45), no_batch: false }
    }
}

impl ReadArgs {
    /// These flags applied to `settings`.
    pub fn apply(&self, settings: &mut Settings) {
        settings.strictness = if self.lenient { Strictness::Lenient } else { Strictness::Strict };
        settings.concurrency = self.concurrency as usize;
        settings.timeout = self.timeout;
        settings.batch = !self.no_batch;
    }
}

/// The settings of one run, after defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    pub stores: Vec<PathBuf>,
    pub credentials: Vec<PathBuf>,
    /// Effective namespace for input objects without one: the bound Application's namespace, else
    /// `--namespace`, else `ARGOCD_APP_NAMESPACE`.
    pub namespace: Option<String>,
    pub no_input_stores: bool,
    pub strictness: Strictness,
    pub concurrency: usize,
    pub timeout: Duration,
    pub batch: bool,
    pub allow_empty: bool,
    /// Controller mode: the cluster's Secrets are visible, so every creationPolicy is accepted.
    pub controller: bool,
    // --- Application binding (see crate::binding) ---
    /// The Argo CD Application the render is bound to, when known (set by the front-ends).
    pub application: Option<crate::binding::Application>,
    /// `--namespace` / `EXTSECRET_NAMESPACE` as set (never `ARGOCD_APP_NAMESPACE`): the namespace
    /// of objects without one in operator files (`--stores`, `--credentials`).
    pub operator_namespace: Option<String>,
    /// Who may use this process's identity, and where credentials may go.
    pub trust: TrustPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        OperatorArgs::default().settings()
    }
}

impl OperatorArgs {
    /// Applies defaults: the namespace falls back to `ARGOCD_APP_NAMESPACE` (the Application's
    /// destination namespace, set by Argo CD itself).
    pub fn settings(&self) -> Settings {
        let namespace = self
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("ARGOCD_APP_NAMESPACE").ok().filter(|n| !n.is_empty()));
        let mut settings = Settings {
            stores: self.stores.iter().filter(|p| !p.as_os_str().is_empty()).cloned().collect(),
            credentials: self.credentials.iter().filter(|p| !p.as_os_str().is_empty()).cloned().collect(),
            namespace,
            no_input_stores: self.no_input_stores,
            strictness: Strictness::Strict,
            concurrency: 0,
            timeout: Duration::ZERO,
            batch: true,
            allow_empty: self.allow_empty,
            controller: false,
            application: None,
            operator_namespace: self.namespace.clone().filter(|n| !n.is_empty()),
            trust: self.trust.policy(),
        };
        self.reads.apply(&mut settings);
        settings
    }
}

// ---- Trust: who may use this process's own identity, and where credentials may go ----------
// (src/resolve/trust.rs has the rules; each provider says what its credentials are.)

/// Hosts beyond each provider's well-known ones that may receive this process's credentials.
#[derive(Args, Clone, Debug, Default)]
pub struct AllowedHostsArgs {
    /// Hosts a tenant's store may send this process's own identity to, beyond each provider's well-known hosts: `provider=host-glob` items, comma-separated (`azurekv=127.0.0.1`, `azurekv=*.vault.corp.example`)
    #[arg(long, env = "EXTSECRET_ALLOWED_HOSTS", value_delimiter = ',', value_name = "PROVIDER=HOST", value_parser = trust::parse_allowed_host)]
    pub allowed_hosts: Vec<AllowedHost>,
}

/// Trust switches of the render front-ends (`render`, Argo CD, KRM function, legacy plugin).
#[derive(Args, Clone, Debug, Default)]
pub struct InputTrustArgs {
    /// Let SecretStores from the rendered input use this process's own identity (AWS default chain, Azure managed/workload identity): set it if you wrote the input yourself
    #[arg(long, env = "EXTSECRET_TRUST_INPUT_STORES", value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_input_stores: bool,
    #[command(flatten)]
    pub hosts: AllowedHostsArgs,
}

impl InputTrustArgs {
    /// The policy of a render front-end (no controller switches).
    pub fn policy(&self) -> TrustPolicy {
        TrustPolicy { input_stores: self.trust_input_stores, allowed_hosts: self.hosts.allowed_hosts.clone(), ..Default::default() }
    }
}

/// Trust switches of the controller.
#[derive(Args, Clone, Debug)]
pub struct ClusterTrustArgs {
    /// Namespaces whose SecretStores may use the controller's own identity: `none`, `all` (ESO's behaviour), or namespace globs, comma-separated (`team-*,ops`)
    #[arg(long, env = "EXTSECRET_NAMESPACED_STORES_IDENTITY", default_value = "none", value_delimiter = ',', value_name = "NAMESPACES")]
    pub namespaced_stores_identity: Vec<String>,
    /// YAML file mapping namespace globs to the role ARN globs their SecretStores may assume with the controller's own identity (`team-a: ["arn:aws:iam::111122223333:role/team-a-*"]`)
    #[arg(long, env = "EXTSECRET_ASSUMABLE_ROLES", value_name = "FILE")]
    pub assumable_roles: Option<PathBuf>,
    #[command(flatten)]
    pub hosts: AllowedHostsArgs,
}

impl ClusterTrustArgs {
    /// The policy; errors name the flag (a bad `--namespaced-stores-identity`, an unreadable file).
    pub fn policy(&self) -> Result<TrustPolicy, String> {
        Ok(TrustPolicy {
            input_stores: false,
            allowed_hosts: self.hosts.allowed_hosts.clone(),
            namespaced_identity: NamespaceRule::parse(&self.namespaced_stores_identity)?,
            assumable_roles: self.assumable_roles.as_deref().map(AssumableRoles::load).transpose()?,
            api_audiences: Vec::new(),
        })
    }
}

// ---- end of trust ---------------------------------------------------------------------------

/// Parses `45s`, `2m`, `1m30s`, `500ms` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let re = regex::Regex::new(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$").expect("static regex");
    let caps = re.captures(s).filter(|_| !s.is_empty()).ok_or_else(|| format!("`{s}` is not a duration (use 45s, 2m, 1m30s)"))?;
    let too_long = || format!("`{s}` is too long a duration");
    let n = |i: usize| caps.get(i).map_or(Some(0), |m| m.as_str().parse::<u64>().ok());
    let secs = [(1, 3600), (2, 60), (3, 1)]
        .into_iter()
        .try_fold(0u64, |sum, (i, unit)| n(i)?.checked_mul(unit)?.checked_add(sum))
        .ok_or_else(too_long)?;
    Duration::from_secs(secs).checked_add(Duration::from_millis(n(4).ok_or_else(too_long)?)).ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("1h0m0s").unwrap(), Duration::from_secs(3600));
        // Overflows are errors, not panics or wrapped values.
        for huge in ["9999999999999999999h", "5124095576030432h", "99999999999999999999999s", "18446744073709551615s1000ms"] {
            assert!(parse_duration(huge).unwrap_err().contains("too long"), "{huge}");
        }
    }
}

/// Parses only the environment (`EXTSECRET_*`), for the legacy plugin whose argv kustomize owns.
#[derive(clap::Parser, Debug)]
#[command(no_binary_name = true)]
struct EnvOnly {
    #[command(flatten)]
    operator: OperatorArgs,
}

impl OperatorArgs {
    /// Operator settings from `EXTSECRET_*` variables alone.
    pub fn try_parse_env() -> Result<OperatorArgs, clap::Error> {
        use clap::Parser;
        EnvOnly::try_parse_from(std::iter::empty::<String>()).map(|e| e.operator)
    }
}
