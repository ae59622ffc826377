//! Who may use this process's own identity, and where credentials may go.
//!
//! - The operator's stores (`--stores`, ClusterSecretStores) may do anything: their author owns
//!   the identity and chooses its hosts.
//! - A tenant's store (a SecretStore from the rendered input, or a namespaced SecretStore in the
//!   cluster) may always use the credentials it names (`secretRef` Secrets and ServiceAccounts of
//!   its own namespace: the tenant's own) and send them to any host it names.
//! - A tenant's store may use the process's own identity (AWS default chain / IRSA, Azure managed or
//!   workload identity) only when the operator allows it: `--trust-input-stores` for rendered
//!   input; `--namespaced-stores-identity` and `--assumable-roles` in the controller. Even then every
//!   endpoint the store names that receives those credentials must be one of the provider's
//!   well-known hosts for its cloud, or on `--allowed-hosts`.
//!
//! - A ServiceAccount token the controller requests (TokenRequest, AWS `auth.jwt` / Azure
//!   `serviceAccountRef`) never has an audience the Kubernetes API server accepts, whoever wrote
//!   the store ([`check_token_audiences`]); and a tenant's store whose token goes to a host that is
//!   neither well-known nor on `--allowed-hosts` gets only the provider's default audience.
//!
//! What each provider's credentials are and where they go is described by the provider itself
//! ([`crate::provider::credential_use`]).

use std::path::{Path, PathBuf};

use crate::provider::credential_use::{self, Identity};

use super::store::Store;

/// A pattern where `*` stands for any run of characters (including none); everything else is
/// literal. Matching is whole-string.
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    re: regex::Regex,
}

impl Glob {
    /// Compiles `text`; an empty pattern is refused.
    pub fn new(text: &str) -> Result<Glob, String> {
        if text.trim().is_empty() {
            return Err("an empty pattern".into());
        }
        let body = regex::escape(text.trim()).replace(r"\*", ".*");
        let re = regex::Regex::new(&format!("^(?:{body})$")).map_err(|e| format!("pattern `{text}`: {e}"))?;
        Ok(Glob { text: text.trim().to_string(), re })
    }

    /// Whether the whole of `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One `--allowed-hosts` item: `provider=host-glob` (`azurekv=127.0.0.1`, `azurekv=*.vault.corp.example`).
#[derive(Clone, Debug)]
pub struct AllowedHost {
    pub provider: String,
    pub host: Glob,
}

/// Parses one `--allowed-hosts` item. The provider is a `spec.provider` key this tool implements.
pub fn parse_allowed_host(item: &str) -> Result<AllowedHost, String> {
    let (provider, host) =
        item.split_once('=').ok_or_else(|| format!("`{item}` is not `provider=host-glob` (for example `azurekv=127.0.0.1`)"))?;
    let provider = provider.trim();
    if !crate::api::SUPPORTED_PROVIDERS.contains(&provider) {
        return Err(format!("`{provider}` is not a provider of this tool ({})", crate::api::SUPPORTED_PROVIDERS.join(", ")));
    }
    Ok(AllowedHost { provider: provider.to_string(), host: Glob::new(&host.to_ascii_lowercase())? })
}

/// Which namespaced SecretStores in the cluster may use the controller's own identity
/// (`--namespaced-stores-identity`).
#[derive(Clone, Debug, Default)]
pub enum NamespaceRule {
    /// None (the default).
    #[default]
    Nothing,
    /// Every namespace: ESO's behaviour.
    All,
    /// Namespaces matching any of these globs.
    Globs(Vec<Glob>),
}

impl NamespaceRule {
    /// `none`, `all`, or namespace globs.
    pub fn parse(items: &[String]) -> Result<NamespaceRule, String> {
        let items: Vec<&str> = items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
        match items.as_slice() {
            [] | ["none"] => Ok(NamespaceRule::Nothing),
            ["all"] => Ok(NamespaceRule::All),
            _ if items.iter().any(|i| *i == "none" || *i == "all") => {
                Err("--namespaced-stores-identity: `none` and `all` stand alone, not in a list of namespaces".into())
            }
            _ => Ok(NamespaceRule::Globs(
                items.iter().map(|i| Glob::new(i)).collect::<Result<_, _>>().map_err(|e| format!("--namespaced-stores-identity: {e}"))?,
            )),
        }
    }

    /// Whether SecretStores of `namespace` may use the controller's identity.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            NamespaceRule::Nothing => false,
            NamespaceRule::All => true,
            NamespaceRule::Globs(g) => g.iter().any(|g| g.matches(namespace)),
        }
    }
}

impl std::fmt::Display for NamespaceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NamespaceRule::Nothing => f.write_str("none"),
            NamespaceRule::All => f.write_str("all"),
            NamespaceRule::Globs(g) => f.write_str(&g.iter().map(Glob::as_str).collect::<Vec<_>>().join(",")),
        }
    }
}

/// `--assumable-roles FILE`: a YAML (or JSON) mapping of namespace glob to role ARN globs, e.g.
/// `team-a: ["arn:aws:iam::111122223333:role/team-a-*"]`.
#[derive(Clone, Debug)]
pub struct AssumableRoles {
    pub file: PathBuf,
    pub entries: Vec<(Glob, Vec<Glob>)>,
}

impl AssumableRoles {
    /// Reads and checks the file.
    pub fn load(file: &Path) -> Result<AssumableRoles, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("--assumable-roles {}: {e}", file.display()))?;
        let map: std::collections::BTreeMap<String, Vec<String>> = serde_saphyr::from_str(&text)
            .map_err(|_| format!("--assumable-roles {}: not a mapping of namespace glob to a list of role ARN globs", file.display()))?;
        let mut entries = Vec::new();
        for (ns, roles) in map {
            let bad = |e: String| format!("--assumable-roles {}: {e}", file.display());
            entries.push((Glob::new(&ns).map_err(bad)?, roles.iter().map(|r| Glob::new(r)).collect::<Result<_, _>>().map_err(bad)?));
        }
        Ok(AssumableRoles { file: file.to_path_buf(), entries })
    }

    /// Whether any entry for `namespace` allows `role`.
    pub fn allows(&self, namespace: &str, role: &str) -> bool {
        self.entries.iter().any(|(ns, roles)| ns.matches(namespace) && roles.iter().any(|r| r.matches(role)))
    }

    /// Whether the file names `namespace` at all.
    pub fn covers(&self, namespace: &str) -> bool {
        self.entries.iter().any(|(ns, _)| ns.matches(namespace))
    }
}

/// The operator's trust settings of a run.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    /// `--trust-input-stores`: SecretStores from the rendered input may use the process's identity.
    pub input_stores: bool,
    /// `--allowed-hosts`: hosts beyond the well-known ones.
    pub allowed_hosts: Vec<AllowedHost>,
    /// `--namespaced-stores-identity` (controller).
    pub namespaced_identity: NamespaceRule,
    /// `--assumable-roles` (controller).
    pub assumable_roles: Option<AssumableRoles>,
    /// Audiences this cluster's API server is known to accept besides those of
    /// [`is_api_server_audience`]: the kube client's server URL and the service-account issuer
    /// (controller, found at start).
    pub api_audiences: Vec<String>,
}

/// Checks that `store` may authenticate as its spec asks and send credentials where it names.
/// The error says why not and which operator switch would allow it; it does not name the store
/// (callers prefix it). `controller`: the store is a namespaced SecretStore of the cluster (else
/// one of the rendered input).
pub fn check(store: &Store, policy: &TrustPolicy, controller: bool) -> Result<(), String> {
    check_token_audiences(store, policy)?;
    if store.operator {
        return Ok(());
    }
    let usage = credential_use::of(&store.provider);
    let Identity::Process(what) = usage.identity() else { return Ok(()) };
    let hint = usage.own_credentials_hint();
    if controller {
        check_namespaced(store.key.namespace.as_deref().unwrap_or(""), &what, &usage.assumed_roles(), hint, policy)?;
    } else if !policy.input_stores {
        return Err(format!(
            "this SecretStore comes from the rendered input and would authenticate with this process's own identity ({what}); \
             the operator allows that with --trust-input-stores / EXTSECRET_TRUST_INPUT_STORES=true (set it if you wrote this input yourself), \
             or give the store credentials of its own ({hint})"
        ));
    }
    let key = usage.provider_key();
    let mut refusals = Vec::new();
    for e in usage.credential_endpoints()? {
        let host = match https_host_for(&e.field, &e.url) {
            Ok(h) => h,
            Err(m) => {
                refusals.push(m);
                continue;
            }
        };
        let allowed = policy.allowed_hosts.iter().any(|a| a.provider == key && a.host.matches(&host));
        if !allowed && !credential_use::is_well_known(&host, e.well_known) {
            let known = if e.well_known.is_empty() { "none for this cloud".to_string() } else { e.well_known.join(", ") };
            refusals.push(format!(
                "{} names host `{host}`, which would receive this process's own identity ({what}), and it is neither a \
                 well-known {key} host ({known}) nor allowed by --allowed-hosts / EXTSECRET_ALLOWED_HOSTS (the operator may add `{key}={host}`)",
                e.field
            ));
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(refusals.join("; "))
    }
}

/// Checks the audiences of the ServiceAccount token the store asks for (if any):
/// - none may be one the API server accepts (whoever wrote the store: such a token would act as
///   the ServiceAccount against the cluster wherever it goes); no switch allows it;
/// - a tenant's store whose token goes to a host that is neither one of the provider's well-known
///   hosts nor on `--allowed-hosts` may only ask for the provider's default audience (ESO allows
///   any).
pub fn check_token_audiences(store: &Store, policy: &TrustPolicy) -> Result<(), String> {
    let Some((namespace, name, audiences)) = store.service_account() else { return Ok(()) };
    let account = match &namespace {
        Some(ns) => format!("ServiceAccount {ns}/{name}"),
        None => format!("ServiceAccount `{name}`"),
    };
    let usage = credential_use::of(&store.provider);
    let default = usage.default_token_audience();
    if let Some(bad) = audiences.iter().find(|a| is_api_server_audience(a, &policy.api_audiences)) {
        return Err(format!(
            "serviceAccountRef.audiences asks for a token of {account} with audience `{bad}`, which the Kubernetes API server \
             accepts: whoever receives it could act as that ServiceAccount in the cluster; the controller never requests such a \
             token (no switch allows it); name the audience the provider expects (`{default}` when none is named)"
        ));
    }
    if store.operator || audiences.iter().all(|a| a == default) {
        return Ok(());
    }
    let key = usage.provider_key();
    for e in usage.token_endpoints()? {
        let host = https_host_for(&e.field, &e.url)?;
        let allowed = policy.allowed_hosts.iter().any(|a| a.provider == key && a.host.matches(&host));
        if !allowed && !credential_use::is_well_known(&host, e.well_known) {
            let known = if e.well_known.is_empty() { "none for this cloud".to_string() } else { e.well_known.join(", ") };
            let asked = audiences.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
            return Err(format!(
                "{} names host `{host}`, which would receive a token of {account} with audiences {asked}; a token for a host that \
                 is neither a well-known {key} host ({known}) nor allowed by --allowed-hosts / EXTSECRET_ALLOWED_HOSTS may only have \
                 the provider's audience `{default}` (ESO allows any); drop serviceAccountRef.audiences, or the operator may add \
                 `{key}={host}` to --allowed-hosts",
                e.field
            ));
        }
    }
    Ok(())
}

/// Whether the Kubernetes API server would accept a token with audience `audience`: an empty
/// one, one of `known` (the client's server URL, the issuer), or one naming the in-cluster
/// service (`kubernetes`, `kubernetes.default`, `kubernetes.default.svc[.<cluster domain>]`,
/// with or without `https://`, a port or a path). Compared without case or trailing `/`, so
/// stricter than the API server's exact match.
/// The `aud` claim of a ServiceAccount token (a JWT; read, not verified), as a list: the
/// controller's own projected token carries the API server's default audiences (`k3s` and `rke2`
/// add their own names there), which the built-in rules cannot guess. Empty when unreadable.
pub fn token_audiences(jwt: &str) -> Vec<String> {
    use base64::Engine;
    let payload = jwt.trim().split('.').nth(1).unwrap_or("");
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else { return Vec::new() };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Vec::new() };
    match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(|a| a.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

pub fn is_api_server_audience(audience: &str, known: &[String]) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    let a = norm(audience);
    if a.is_empty() || known.iter().any(|k| norm(k) == a) {
        return true;
    }
    let rest = a.strip_prefix("https://").or_else(|| a.strip_prefix("http://")).unwrap_or(&a);
    let host = rest.split(['/', ':', '?', '#']).next().unwrap_or("").trim_end_matches('.');
    let known_hosts = known.iter().filter_map(|k| credential_use::https_host(k).ok());
    matches!(host, "kubernetes" | "kubernetes.default" | "kubernetes.default.svc")
        || host.starts_with("kubernetes.default.svc.")
        || known_hosts.into_iter().any(|k| k == host)
}

fn https_host_for(field: &str, url: &str) -> Result<String, String> {
    credential_use::https_host(url)
        .map_err(|m| format!("{field}: {m}; this process's own identity goes only to https URLs without user information"))
}

/// A namespaced SecretStore in the cluster using the controller's identity: its namespace must be
/// allowed by `--namespaced-stores-identity`, or every role it assumes by `--assumable-roles`;
/// and when `--assumable-roles` is given, the roles of an allowed namespace must be in it too.
fn check_namespaced(ns: &str, what: &str, roles: &[String], hint: &str, policy: &TrustPolicy) -> Result<(), String> {
    let denied_role = |a: &AssumableRoles| roles.iter().find(|r| !a.allows(ns, r)).cloned();
    let role_refusal = |a: &AssumableRoles, role: String| {
        format!(
            "role `{role}`, assumed with the controller's own identity ({what}), is not allowed for namespace `{ns}` by \
             --assumable-roles / EXTSECRET_ASSUMABLE_ROLES ({}); the operator may add it there",
            a.file.display()
        )
    };
    let assumable = policy.assumable_roles.as_ref();
    if policy.namespaced_identity.allows(ns) {
        return match assumable.and_then(|a| denied_role(a).map(|r| (a, r))) {
            Some((a, role)) => Err(role_refusal(a, role)),
            None => Ok(()),
        };
    }
    if let Some(a) = assumable.filter(|a| !roles.is_empty() && a.covers(ns)) {
        return match denied_role(a) {
            Some(role) => Err(role_refusal(a, role)),
            None => Ok(()),
        };
    }
    let roles_hint = if roles.is_empty() { "" } else { ", or allow the roles it assumes with --assumable-roles" };
    Err(format!(
        "this namespaced SecretStore would authenticate with the controller's own identity ({what}), which \
         --namespaced-stores-identity / EXTSECRET_NAMESPACED_STORES_IDENTITY (now `{}`) does not allow for namespace `{ns}`; the \
         operator may allow the namespace there (`all` is ESO's behaviour){roles_hint}, or give the store credentials of its own ({hint})",
        policy.namespaced_identity
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_strings_with_star_as_any_run() {
        let g = Glob::new("team-*").unwrap();
        assert!(g.matches("team-a") && g.matches("team-") && !g.matches("xteam-a"));
        let g = Glob::new("arn:aws:iam::1:role/a.b").unwrap();
        assert!(g.matches("arn:aws:iam::1:role/a.b") && !g.matches("arn:aws:iam::1:role/aXb"));
        assert!(Glob::new(" ").is_err());
    }

    #[test]
    fn allowed_hosts_name_a_provider_and_a_host_glob() {
        let a = parse_allowed_host("azurekv=127.0.0.1").unwrap();
        assert_eq!((a.provider.as_str(), a.host.matches("127.0.0.1")), ("azurekv", true));
        assert!(parse_allowed_host("127.0.0.1").is_err());
        assert!(parse_allowed_host("vaultx=a.example").is_err());
    }

    #[test]
    fn namespace_rules() {
        let rule = |s: &[&str]| NamespaceRule::parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(!rule(&["none"]).unwrap().allows("a"));
        assert!(rule(&["all"]).unwrap().allows("a"));
        let globs = rule(&["team-*", "ops"]).unwrap();
        assert!(globs.allows("team-a") && globs.allows("ops") && !globs.allows("other"));
        assert!(rule(&["all", "ops"]).is_err());
    }

    #[test]
    fn api_server_audiences_are_recognised_loosely() {
        let known = vec!["https://10.0.0.1:6443".to_string(), "https://oidc.example/id/ABC".to_string()];
        for a in [
            "https://kubernetes.default.svc.cluster.local",
            "https://kubernetes.default.svc",
            "HTTPS://Kubernetes.Default.Svc.corp.example/",
            "kubernetes.default.svc:443",
            "https://kubernetes",
            "",
            " ",
            "https://10.0.0.1:6443/",
            "https://10.0.0.1",
            "https://oidc.example/id/abc",
        ] {
            assert!(is_api_server_audience(a, &known), "{a}");
        }
        for a in [
            "api://AzureADTokenExchange",
            "sts.amazonaws.com",
            "https://kubernetes.default.svc.evil.example.com.x",
            "https://vault.example",
        ] {
            let is_api = is_api_server_audience(a, &known);
            assert_eq!(is_api, a.starts_with("https://kubernetes.default.svc."), "{a}");
        }
    }

    #[test]
    fn the_audiences_of_a_token_are_read_from_its_claims() {
        use base64::Engine;
        let jwt = |claims: &str| format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(
            token_audiences(&jwt(r#"{"aud":["https://kubernetes.default.svc.cluster.local","k3s"]}"#)),
            ["https://kubernetes.default.svc.cluster.local", "k3s"]
        );
        assert_eq!(token_audiences(&jwt(r#"{"aud":"rke2"}"#)), ["rke2"]);
        assert!(token_audiences("not a token").is_empty());
        assert!(is_api_server_audience("k3s", &token_audiences(&jwt(r#"{"aud":["k3s"]}"#))));
    }

    fn store(kind: crate::api::EsoKind, azure: serde_json::Value) -> Store {
        let mut meta = serde_json::json!({"name": "s"});
        if kind == crate::api::EsoKind::SecretStore {
            meta["namespace"] = "team-b".into();
        }
        let doc = crate::manifest::Document {
            origin: crate::problem::Origin { file: "t".into(), index: 0, item: None },
            raw: None,
            value: serde_json::json!({"kind": kind.as_str(), "metadata": meta, "spec": {"provider": {"azurekv": azure}}}),
        };
        let mut catalog = super::super::stores::Catalog::default();
        catalog.add_store(&doc, kind, &crate::settings::Settings { controller: true, ..Default::default() }).unwrap();
        let store = catalog.stores().next().unwrap().clone();
        store
    }

    #[test]
    fn service_account_token_audiences() {
        use crate::api::EsoKind::{ClusterSecretStore, SecretStore};
        let azure = |audiences: serde_json::Value, authority: &str| {
            serde_json::json!({"vaultUrl": "https://kv.example", "authType": "WorkloadIdentity", "tenantId": "t",
                "environmentType": "AzureStackCloud", "customCloudConfig": {"activeDirectoryEndpoint": authority},
                "serviceAccountRef": {"name": "deployer", "namespace": "team-b", "audiences": audiences}})
        };
        let none = TrustPolicy::default();
        let check = |kind, audiences, authority: &str, policy: &TrustPolicy| {
            check_token_audiences(&store(kind, azure(audiences, authority)), policy)
        };
        let api = serde_json::json!(["https://kubernetes.default.svc"]);
        // Never an API server audience, not even for the operator's stores or well-known hosts.
        for kind in [SecretStore, ClusterSecretStore] {
            let e = check(kind, api.clone(), "https://login.microsoftonline.com/", &none).unwrap_err();
            assert!(e.contains("ServiceAccount team-b/deployer") && e.contains("no switch allows it"), "{e}");
        }
        let known = TrustPolicy { api_audiences: vec!["https://issuer.example".into()], ..Default::default() };
        assert!(check(ClusterSecretStore, serde_json::json!(["https://issuer.example"]), "https://evil.example", &known).is_err());
        // The default audience goes anywhere (ESO's behaviour); another one only to known hosts.
        assert!(check(SecretStore, serde_json::json!([]), "https://evil.example", &none).is_ok());
        assert!(check(SecretStore, serde_json::json!(["api://AzureADTokenExchange"]), "https://evil.example", &none).is_ok());
        let other = serde_json::json!(["api://app"]);
        let e = check(SecretStore, other.clone(), "https://evil.example", &none).unwrap_err();
        assert!(e.contains("`evil.example`") && e.contains("`azurekv=evil.example` to --allowed-hosts"), "{e}");
        assert!(check(SecretStore, other.clone(), "https://login.microsoftonline.com/", &none).is_ok());
        let allowed = TrustPolicy { allowed_hosts: vec![parse_allowed_host("azurekv=evil.example").unwrap()], ..Default::default() };
        assert!(check(SecretStore, other.clone(), "https://evil.example", &allowed).is_ok());
        assert!(check(ClusterSecretStore, other, "https://evil.example", &none).is_ok(), "the operator's choice");
    }

    #[test]
    fn namespaced_stores_and_roles() {
        let dir = std::env::temp_dir().join(format!("extsecret-roles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("roles.yaml");
        std::fs::write(&file, "team-*:\n  - arn:aws:iam::1:role/team-*\n").unwrap();
        let roles = AssumableRoles::load(&file).unwrap();
        let role = |r: &str| vec![r.to_string()];
        let none = TrustPolicy::default();
        assert!(check_namespaced("team-a", "id", &[], "h", &none).unwrap_err().contains("--namespaced-stores-identity"));
        assert!(check_namespaced("team-a", "id", &role("arn:aws:iam::1:role/x"), "h", &none).unwrap_err().contains("--assumable-roles"));
        let only_roles = TrustPolicy { assumable_roles: Some(roles.clone()), ..Default::default() };
        assert!(check_namespaced("team-a", "id", &role("arn:aws:iam::1:role/team-a"), "h", &only_roles).is_ok());
        assert!(check_namespaced("team-a", "id", &role("arn:aws:iam::1:role/admin"), "h", &only_roles).unwrap_err().contains("admin"));
        assert!(check_namespaced("team-a", "id", &[], "h", &only_roles).is_err(), "the identity itself is not granted");
        assert!(check_namespaced("other", "id", &role("arn:aws:iam::1:role/team-a"), "h", &only_roles).is_err());
        let all = TrustPolicy { namespaced_identity: NamespaceRule::All, ..Default::default() };
        assert!(check_namespaced("x", "id", &role("arn:aws:iam::1:role/any"), "h", &all).is_ok(), "ESO's behaviour");
        let all_with_roles = TrustPolicy { namespaced_identity: NamespaceRule::All, assumable_roles: Some(roles), ..Default::default() };
        assert!(check_namespaced("x", "id", &[], "h", &all_with_roles).is_ok());
        assert!(check_namespaced("team-a", "id", &role("arn:aws:iam::1:role/admin"), "h", &all_with_roles).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
