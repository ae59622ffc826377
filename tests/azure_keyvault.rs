//! Azure Key Vault end to end: the real binary and the real Azure SDK crates (secrets,
//! certificates, keys, identity) against the HTTPS stand-in of `tests/support/keyvault_standin.py`
//! (vault, Entra token endpoint and App Service managed-identity endpoint), over TLS with a CA made
//! at test time and trusted through `SSL_CERT_FILE`; tokens come from `AZURE_AUTHORITY_HOST`.
//!
//! Every test starts a stand-in of its own ([`common::keyvault`]) and reads its request log to
//! count what the binary asked for.

mod common;

use common::{map, secrets, text};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use common::KeyVault;
use serde_json::{json, Value};

/// Namespace of every object in these tests.
const NS: &str = "apps";
const TENANT: &str = "72f988bf-0000-4000-8000-00000000000a";
const CLIENT_ID: &str = "2d3c8a1e-1111-4222-8333-444455556666";
const CLIENT_SECRET: &str = "sp-client-secret~value";

// ---------------------------------------------------------------------------------------------
// Material made with openssl: a certificate (with its RSA key) and an EC key
// ---------------------------------------------------------------------------------------------

struct Material {
    /// Certificate of `CN=app.example` (PEM and DER) and its RSA private key (PKCS#8 PEM).
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
    /// The RSA modulus, base64url (the JWK `n`).
    rsa_n: String,
    /// A second certificate (EC), DER and PEM.
    ec_cert_pem: String,
    ec_cert_der: Vec<u8>,
    /// The EC public point, base64url (the JWK `x` and `y`).
    ec_x: String,
    ec_y: String,
}

/// Runs `openssl` with `args` (split at spaces) in `dir`; returns its stdout.
fn openssl(dir: &Path, args: &str) -> Vec<u8> {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl").args(&args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn material() -> &'static Material {
    static M: OnceLock<Material> = OnceLock::new();
    M.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("azure-material-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        openssl(&dir, "req -x509 -newkey rsa:2048 -nodes -keyout key.pem -subj /CN=app.example -days 30 -out cert.pem");
        let cert_der = openssl(&dir, "x509 -in cert.pem -outform DER");
        let modulus = String::from_utf8(openssl(&dir, "rsa -in key.pem -noout -modulus")).unwrap();
        let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
        let n: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        openssl(&dir, "ecparam -name prime256v1 -genkey -noout -out ec.key");
        openssl(&dir, "req -x509 -new -key ec.key -subj /CN=old.example -days 30 -out ec.pem");
        let ec_cert_der = openssl(&dir, "x509 -in ec.pem -outform DER");
        let spki = openssl(&dir, "ec -in ec.key -pubout -outform DER");
        let point = &spki[spki.len() - 65..];
        assert_eq!(point[0], 4, "uncompressed EC point");
        Material {
            cert_pem: std::fs::read_to_string(dir.join("cert.pem")).unwrap(),
            cert_der,
            key_pem: std::fs::read_to_string(dir.join("key.pem")).unwrap(),
            rsa_n: B64URL.encode(n),
            ec_cert_pem: std::fs::read_to_string(dir.join("ec.pem")).unwrap(),
            ec_cert_der,
            ec_x: B64URL.encode(&point[1..33]),
            ec_y: B64URL.encode(&point[33..]),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Stand-in configuration, manifests and rendering
// ---------------------------------------------------------------------------------------------

/// A stand-in configuration for [`TENANT`] with the service principal [`CLIENT_ID`] /
/// [`CLIENT_SECRET`], and `extra` (objects, other clients, ...) merged in.
fn config(extra: Value) -> Value {
    let mut c = json!({
        "tenant": TENANT,
        "clients": {CLIENT_ID: {"secret": CLIENT_SECRET}},
        "page_size": 2,
    });
    if let (Some(m), Value::Object(e)) = (c.as_object_mut(), extra) {
        for (k, v) in e {
            if k == "clients" {
                m["clients"].as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
            } else {
                m.insert(k, v);
            }
        }
    }
    c
}

/// A SecretStore `name` in [`NS`] for the vault of `kv`, with `azurekv` set to `spec` (over the
/// vault URL).
fn store_named(name: &str, kv: &KeyVault, spec: Value) -> Value {
    let mut azure = json!({"vaultUrl": kv.url});
    if let (Some(a), Value::Object(e)) = (azure.as_object_mut(), spec) {
        a.extend(e);
    }
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"provider": {"azurekv": azure}},
    })
}

/// `azurekv` for a ServicePrincipal with a client secret, read from the credentials Secret `creds`.
fn sp_spec(creds: &str) -> Value {
    json!({
        "tenantId": TENANT,
        "authSecretRef": {
            "clientId": {"name": creds, "key": "client-id"},
            "clientSecret": {"name": creds, "key": "client-secret"},
        },
    })
}

/// The store `azure`: a ServicePrincipal (client secret from `azure-creds`), ESO's default authType.
fn store(kv: &KeyVault) -> Value {
    store_named("azure", kv, sp_spec("azure-creds"))
}

/// A credentials Secret `name` in [`NS`] with `stringData`.
fn credentials(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "stringData": data})
}

fn sp_credentials() -> Value {
    credentials("azure-creds", &[("client-id", CLIENT_ID), ("client-secret", CLIENT_SECRET)])
}

/// An ExternalSecret `name` in [`NS`] using store `store`, with `spec` merged in.
fn es_with(name: &str, store: &str, spec: Value) -> Value {
    let mut s = json!({"secretStoreRef": {"name": store, "kind": "SecretStore"}});
    if let (Some(m), Value::Object(e)) = (s.as_object_mut(), spec) {
        m.extend(e);
    }
    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name, "namespace": NS}, "spec": s})
}

fn es(name: &str, spec: Value) -> Value {
    es_with(name, "azure", spec)
}

/// One `spec.data[]` entry.
fn data(secret_key: &str, remote_ref: Value) -> Value {
    json!({"secretKey": secret_key, "remoteRef": remote_ref})
}

fn stream(docs: &[Value]) -> String {
    docs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n") + "\n"
}

/// A finished run and the folder of its inputs.
struct Run {
    out: Output,
    _dir: tempfile::TempDir,
}

/// Renders `docs` (`-o json`) against `kv` with `creds` given through `--credentials`, `extra`
/// flags, and `env` on top of [`common::azure_env`].
fn render_with(kv: &KeyVault, docs: &[Value], creds: &[Value], extra: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = common::tempdir();
    let input = common::write(dir.path(), "manifests.yaml", &stream(docs));
    let mut args = vec!["render".to_string(), "-o".into(), "json".into()];
    if !creds.is_empty() {
        let c = common::write(dir.path(), "creds/azure.yaml", &stream(creds));
        args.push("--credentials".into());
        args.push(c.to_str().unwrap().into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(input.to_str().unwrap().into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = common::extsecret(&args);
    common::azure_env(&mut c, kv);
    c.env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    Run { out: common::run(c, None), _dir: dir }
}

/// Renders with the ServicePrincipal credentials Secret.
fn render(kv: &KeyVault, docs: &[Value]) -> Run {
    render_with(kv, docs, &[sp_credentials()], &[], &[])
}

/// The `error: ` lines of stderr.
fn errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("error: ")).collect()
}

fn assert_no_values(stderr: &str, values: &[&str]) {
    for v in values {
        assert!(!stderr.contains(v), "stderr leaks a secret value `{v}`:\n{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Request-log helpers
// ---------------------------------------------------------------------------------------------

/// Authorized vault GETs of `path` (the SDK's unauthenticated first request, answered with the
/// 401 challenge, is not counted).
fn authorized_gets(log: &[Value], path: &str) -> usize {
    log.iter().filter(|r| r["method"] == "GET" && r["authorized"] == true && r["path"] == path).count()
}

/// Statuses answered to authorized GETs of `path`, in order.
fn statuses(log: &[Value], path: &str) -> Vec<u64> {
    log.iter().filter(|r| r["authorized"] == true && r["path"] == path).map(|r| r["status"].as_u64().unwrap()).collect()
}

/// Entra token requests (`POST /{tenant}/oauth2/v2.0/token`).
fn token_requests(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/oauth2/v2.0/token")).collect()
}

/// Managed-identity token requests (`GET /msi/token`).
fn msi_requests(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|r| r["path"] == "/msi/token").collect()
}

/// The paths of every authorized vault GET, as a set.
fn vault_paths(log: &[Value]) -> BTreeSet<String> {
    log.iter().filter(|r| r["authorized"] == true).map(|r| r["path"].as_str().unwrap().to_string()).collect()
}

/// Authorized GETs of the secret listing (every page).
fn list_pages(log: &[Value]) -> usize {
    authorized_gets(log, "/secrets")
}

// ---------------------------------------------------------------------------------------------
// secret/: values, versions, properties
// ---------------------------------------------------------------------------------------------

const V_OLD: &str = "0123456789abcdef0123456789abcdef";
const V_CERT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const V_CERT_OLD: &str = "01d001d001d001d001d001d001d001d0";
const V_KEY: &str = "5e1a9d2c5e1a9d2c5e1a9d2c5e1a9d2c";
const V_EC: &str = "ecec0000ecec0000ecec0000ecec0000";

#[test]
fn secret_values_versions_and_properties_are_rendered_byte_for_byte() {
    let m = material();
    let json_secret = r#"{"user":"admin","db":{"host":"db.local","port":5432},"foo.bar":"literal","foo":{"bar":"nested"},"only.dotted":"lit","list":[1,"two"]}"#;
    let kv = common::keyvault(&config(json!({"secrets": {
        "plain": "just a password",
        "json": json_secret,
        "rotated": {"versions": [{"version": V_OLD, "value": "first"}, {"value": "second"}]},
        "unicode": "pässwörd ✓\n\tline 2 ",
        "tls": {"value": m.cert_pem.clone() + &m.key_pem, "contentType": "application/x-pem-file", "managed": true},
    }})));
    let key = |k: &str| json!({"key": k});
    let prop = |k: &str, p: &str| json!({"key": k, "property": p});
    let docs = [
        store(&kv),
        es(
            "values",
            json!({"data": [
                data("plain", key("plain")),
                data("json", key("secret/json")),
                data("user", prop("secret/json", "user")),
                data("host", prop("secret/json", "db.host")),
                data("port", prop("secret/json", "db.port")),
                data("db", prop("secret/json", "db")),
                data("second", prop("secret/json", "list.1")),
                data("path-first", prop("secret/json", "foo.bar")),
                data("literal-next", prop("secret/json", "only.dotted")),
                data("latest", key("secret/rotated")),
                data("empty-version", json!({"key": "secret/rotated", "version": ""})),
                data("old", json!({"key": "secret/rotated", "version": V_OLD})),
                data("unicode", key("secret/unicode")),
                data("tls-pem", key("secret/tls")),
            ]}),
        ),
    ];
    let run = render(&kv, &docs);
    let all = secrets(&run.out);
    let expected_pem = m.cert_pem.clone() + &m.key_pem;
    assert_eq!(
        text(&all, "values"),
        map(&[
            ("plain", "just a password"),
            ("json", json_secret),
            ("user", "admin"),
            ("host", "db.local"),
            ("port", "5432"),
            ("db", r#"{"host":"db.local","port":5432}"#),
            ("second", "two"),
            // ESO's Azure order: the gjson path first, then the dotted literal.
            ("path-first", "nested"),
            ("literal-next", "lit"),
            ("latest", "second"),
            ("empty-version", "second"),
            ("old", "first"),
            ("unicode", "pässwörd ✓\n\tline 2 "),
            ("tls-pem", expected_pem.as_str()),
        ])
    );

    // One GET per distinct object and version, no listing (a vault is never enumerated to read
    // one key), one token request.
    let log = kv.requests();
    let want: BTreeSet<String> = [
        "/secrets/plain/".to_string(),
        "/secrets/json/".into(),
        "/secrets/rotated/".into(),
        format!("/secrets/rotated/{V_OLD}"),
        "/secrets/unicode/".into(),
        "/secrets/tls/".into(),
    ]
    .into();
    assert_eq!(vault_paths(&log), want, "log: {log:#?}");
    for p in &want {
        assert_eq!(authorized_gets(&log, p), 1, "GETs of {p}");
    }
    assert_eq!(list_pages(&log), 0);
    let tokens = token_requests(&log);
    assert_eq!(tokens.len(), 1, "token requests: {tokens:#?}");
    assert_eq!(tokens[0]["token_kind"], "client_secret");
    assert_eq!(tokens[0]["client_id"], CLIENT_ID);
    assert_eq!(tokens[0]["tenant"], TENANT);
    assert_eq!(tokens[0]["status"], 200);
}

// ---------------------------------------------------------------------------------------------
// cert/ and key/
// ---------------------------------------------------------------------------------------------

/// Stand-in objects shared by the certificate and key tests.
fn cert_and_key_objects() -> Value {
    let m = material();
    json!({
        "certificates": {
            "tls": {"versions": [
                {"version": V_CERT_OLD, "cer_pem": m.ec_cert_pem, "tags": {"owner": "old"}},
                {"version": V_CERT, "cer_pem": m.cert_pem, "tags": {"owner": "ops", "env": "prod"}},
            ]},
        },
        "keys": {
            "signing": {"version": V_KEY, "key": {"kty": "RSA", "key_ops": ["sign", "verify", "wrapKey", "unwrapKey", "encrypt", "decrypt"], "n": m.rsa_n, "e": "AQAB"}, "tags": {"use": "jwt", "alg": "RS256"}},
            "ec": {"version": V_EC, "key": {"kty": "EC", "key_ops": ["sign", "verify"], "crv": "P-256", "x": m.ec_x, "y": m.ec_y}},
        },
    })
}

#[test]
fn cert_gives_the_der_certificate_and_key_the_public_jwk_exactly_as_key_vault_returns_it() {
    let m = material();
    let kv = common::keyvault(&config(cert_and_key_objects()));
    let docs = [
        store(&kv),
        es(
            "objects",
            json!({"data": [
                data("tls.der", json!({"key": "cert/tls"})),
                data("old.der", json!({"key": "cert/tls", "version": V_CERT_OLD})),
                data("signing.jwk", json!({"key": "key/signing"})),
                data("signing-v.jwk", json!({"key": "key/signing", "version": V_KEY})),
                data("ec.jwk", json!({"key": "key/ec"})),
                data("kty", json!({"key": "key/signing", "property": "kty"})),
                data("n", json!({"key": "key/signing", "property": "n"})),
                data("crv", json!({"key": "key/ec", "property": "crv"})),
            ]}),
        ),
    ];
    let run = render(&kv, &docs);
    let all = secrets(&run.out);
    let got = &all["objects"];
    assert_eq!(got["tls.der"], m.cert_der, "cert/ must be the DER certificate");
    assert_eq!(got["old.der"], m.ec_cert_der, "cert/ with a version");
    // Key Vault's JWK: compact, its own field order (kid, kty, key_ops, n, e / crv, x, y).
    let signing = format!(
        r#"{{"kid":"{}/keys/signing/{V_KEY}","kty":"RSA","key_ops":["sign","verify","wrapKey","unwrapKey","encrypt","decrypt"],"n":"{}","e":"AQAB"}}"#,
        kv.url, m.rsa_n
    );
    let ec = format!(
        r#"{{"kid":"{}/keys/ec/{V_EC}","kty":"EC","key_ops":["sign","verify"],"crv":"P-256","x":"{}","y":"{}"}}"#,
        kv.url, m.ec_x, m.ec_y
    );
    assert_eq!(String::from_utf8(got["signing.jwk"].clone()).unwrap(), signing);
    assert_eq!(String::from_utf8(got["signing-v.jwk"].clone()).unwrap(), signing);
    assert_eq!(String::from_utf8(got["ec.jwk"].clone()).unwrap(), ec);
    assert_eq!(got["kty"], b"RSA");
    assert_eq!(got["n"], m.rsa_n.as_bytes());
    assert_eq!(got["crv"], b"P-256");

    let log = kv.requests();
    for (path, n) in [
        ("/certificates/tls/".to_string(), 1),
        (format!("/certificates/tls/{V_CERT_OLD}"), 1),
        ("/keys/signing/".into(), 1),
        (format!("/keys/signing/{V_KEY}"), 1),
        ("/keys/ec/".into(), 1),
    ] {
        assert_eq!(authorized_gets(&log, &path), n, "GETs of {path}: {log:#?}");
    }
    assert_eq!(token_requests(&log).len(), 1, "one credential for the store's three clients");
}

#[test]
fn a_certificate_private_key_comes_through_secret_and_a_template_reads_it() {
    // Key Vault stores a certificate's key as the certificate's secret (PEM or PFX as imported).
    let m = material();
    let kv = common::keyvault(&config(json!({
        "secrets": {"tls": {"value": m.key_pem.clone() + &m.cert_pem, "contentType": "application/x-pem-file", "managed": true}},
        "certificates": {"tls": {"cer_pem": m.cert_pem}},
    })));
    let docs = [
        store(&kv),
        es(
            "tls",
            json!({
                "data": [data("bundle", json!({"key": "secret/tls"})), data("der", json!({"key": "cert/tls"}))],
                "target": {"template": {"type": "kubernetes.io/tls", "data": {
                    "tls.key": "{{ .bundle | filterPEM \"PRIVATE KEY\" }}",
                    "tls.crt": "{{ .bundle | filterPEM \"CERTIFICATE\" }}",
                }}},
            }),
        ),
    ];
    let run = render(&kv, &docs);
    let t = text(&secrets(&run.out), "tls");
    assert_eq!(t["tls.key"], m.key_pem);
    assert_eq!(t["tls.crt"], m.cert_pem);
}

// ---------------------------------------------------------------------------------------------
// metadataPolicy: Fetch
// ---------------------------------------------------------------------------------------------

#[test]
fn metadata_policy_fetch_serves_the_tags_as_a_json_object() {
    let mut objects = cert_and_key_objects();
    objects["secrets"] = json!({
        "tagged": {"value": "the-value", "tags": {"team": "payments", "env": "prod", "conf": "{\"a\":1}"}},
    });
    let kv = common::keyvault(&config(objects));
    let fetch = |k: &str| json!({"key": k, "metadataPolicy": "Fetch"});
    let fetch_prop = |k: &str, p: &str| json!({"key": k, "metadataPolicy": "Fetch", "property": p});
    let docs = [
        store(&kv),
        es(
            "meta",
            json!({"data": [
                data("tags", fetch("secret/tagged")),
                data("team", fetch_prop("secret/tagged", "team")),
                data("value", json!({"key": "secret/tagged"})),
                data("cert-tags", fetch("cert/tls")),
                data("key-tags", fetch("key/signing")),
            ]}),
        ),
    ];
    let run = render(&kv, &docs);
    assert_eq!(
        text(&secrets(&run.out), "meta"),
        map(&[
            ("tags", r#"{"conf":"{\"a\":1}","env":"prod","team":"payments"}"#),
            ("team", "payments"),
            ("value", "the-value"),
            ("cert-tags", r#"{"env":"prod","owner":"ops"}"#),
            // Sorted, compact, whatever order the service sends (ESO marshals a Go map).
            ("key-tags", r#"{"alg":"RS256","use":"jwt"}"#),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// dataFrom.extract and dataFrom.find
// ---------------------------------------------------------------------------------------------

#[test]
fn extract_expands_a_secret_json_object_and_refuses_certificates_and_keys() {
    let mut objects = cert_and_key_objects();
    objects["secrets"] = json!({"config": r#"{"a":"1","b":{"c":2},"d":true,"e":null,"f":1.50}"#});
    let kv = common::keyvault(&config(objects));
    let docs = [store(&kv), es("config", json!({"dataFrom": [{"extract": {"key": "secret/config"}}]}))];
    let run = render(&kv, &docs);
    assert_eq!(
        text(&secrets(&run.out), "config"),
        // As ESO's Azure GetSecretMap: strings unquoted, null empty, every other value its raw JSON.
        map(&[("a", "1"), ("b", r#"{"c":2}"#), ("d", "true"), ("e", ""), ("f", "1.50")])
    );

    let docs = [
        store(&kv),
        es("from-cert", json!({"dataFrom": [{"extract": {"key": "cert/tls"}}]})),
        es("from-key", json!({"dataFrom": [{"extract": {"key": "key/signing"}}]})),
    ];
    let run = render(&kv, &docs);
    let err = common::failed(&run.out);
    let lines = errors(&err);
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("ExternalSecret apps/from-cert: spec.dataFrom[0].extract") && lines[0].contains("cert/tls"), "{err}");
    assert!(lines[1].contains("ExternalSecret apps/from-key: spec.dataFrom[0].extract") && lines[1].contains("key/signing"), "{err}");
}

#[test]
fn find_lists_the_vault_once_with_paging_skips_disabled_secrets_and_reads_only_the_matches() {
    let kv = common::keyvault(&config(json!({"page_size": 2, "secrets": {
        "app-db-password": {"value": "p-db", "tags": {"app": "shop", "tier": "db"}},
        "app-api-key": {"value": "p-api", "tags": {"app": "shop", "tier": "api"}},
        "app-disabled": {"value": "never", "enabled": false, "tags": {"app": "shop", "tier": "db"}},
        "other-thing": {"value": "o", "tags": {"app": "blog"}},
        "app-cache": "p-cache",
        "zeta": {"value": "z", "tags": {"app": "shop", "tier": "db"}},
        "app-log": {"value": "p-log", "tags": {"app": "shop", "tier": "log"}},
    }})));
    let docs = [
        store(&kv),
        es("by-name", json!({"dataFrom": [{"find": {"name": {"regexp": "^app-"}}}]})),
        es("by-tags", json!({"dataFrom": [{"find": {"tags": {"app": "shop", "tier": "db"}}}]})),
        es("by-both", json!({"dataFrom": [{"find": {"name": {"regexp": "^app-"}, "tags": {"tier": "api"}}}]})),
        es("with-data", json!({"dataFrom": [{"find": {"tags": {"app": "blog"}}}], "data": [data("direct", json!({"key": "zeta"}))]})),
    ];
    let run = render(&kv, &docs);
    let all = secrets(&run.out);
    assert_eq!(
        text(&all, "by-name"),
        map(&[("app-api-key", "p-api"), ("app-cache", "p-cache"), ("app-db-password", "p-db"), ("app-log", "p-log")])
    );
    assert_eq!(text(&all, "by-tags"), map(&[("app-db-password", "p-db"), ("zeta", "z")]));
    assert_eq!(text(&all, "by-both"), map(&[("app-api-key", "p-api")]));
    assert_eq!(text(&all, "with-data"), map(&[("other-thing", "o"), ("direct", "z")]));

    let log = kv.requests();
    // 7 secrets in pages of 2: one listing of 4 pages for the whole run, whatever the finds.
    assert_eq!(list_pages(&log), 4, "{log:#?}");
    let pages: Vec<&Value> = log.iter().filter(|r| r["authorized"] == true && r["path"] == "/secrets").collect();
    assert_eq!(pages.iter().filter(|r| r["query"].get("$skiptoken").is_none()).count(), 1, "the listing starts once");
    // One GET per matched secret, none for the disabled or unmatched ones.
    for name in ["app-db-password", "app-api-key", "app-cache", "zeta", "app-log", "other-thing"] {
        assert_eq!(authorized_gets(&log, &format!("/secrets/{name}/")), 1, "GETs of {name}: {log:#?}");
    }
    assert_eq!(authorized_gets(&log, "/secrets/app-disabled/"), 0);
    assert_eq!(token_requests(&log).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Errors, disabled and expired secrets, retries
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_name_the_store_the_vault_the_object_and_the_service_error_code() {
    let mut objects = cert_and_key_objects();
    objects["secrets"] = json!({"good": "good-value-123", "denied": {"value": "denied-value-456", "forbidden": true}});
    let kv = common::keyvault(&config(objects));
    let docs = [
        store(&kv),
        es(
            "broken",
            json!({"data": [
                data("good", json!({"key": "good"})),
                data("missing", json!({"key": "secret/missing"})),
                data("denied", json!({"key": "denied"})),
                data("no-cert", json!({"key": "cert/missing-cert"})),
                data("no-key", json!({"key": "key/missing-key"})),
                data("no-version", json!({"key": "good", "version": "ffffffffffffffffffffffffffffffff"})),
            ]}),
        ),
    ];
    let run = render(&kv, &docs);
    let err = common::failed(&run.out);
    assert_no_values(&err, &["good-value-123", "denied-value-456"]);
    let lines = errors(&err);
    assert_eq!(lines.len(), 5, "{err}");
    let expect = |field: usize, object: &str, code: &str| {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("spec.data[{field}].remoteRef")))
            .unwrap_or_else(|| panic!("no error for spec.data[{field}]:\n{err}"));
        assert!(line.contains("ExternalSecret apps/broken"), "{line}");
        assert!(line.contains("SecretStore apps/azure"), "the store: {line}");
        assert!(line.contains(&kv.url), "the vault: {line}");
        assert!(line.contains(object), "the object `{object}`: {line}");
        assert!(line.contains(code), "the service's code `{code}`: {line}");
    };
    expect(1, "missing", "SecretNotFound");
    expect(2, "denied", "Forbidden");
    expect(3, "missing-cert", "CertificateNotFound");
    expect(4, "missing-key", "KeyNotFound");
    expect(5, "good", "SecretNotFound");
}

#[test]
fn a_disabled_secret_is_a_clear_error() {
    let kv = common::keyvault(&config(json!({"secrets": {"off": {"value": "disabled-value-789", "enabled": false}}})));
    let docs = [store(&kv), es("off", json!({"data": [data("v", json!({"key": "secret/off"}))]}))];
    let run = render(&kv, &docs);
    let err = common::failed(&run.out);
    assert_no_values(&err, &["disabled-value-789"]);
    let lines = errors(&err);
    assert_eq!(lines.len(), 1, "{err}");
    let line = lines[0];
    assert!(line.contains("ExternalSecret apps/off: spec.data[0].remoteRef.key"), "{line}");
    assert!(line.contains("`off`") && line.contains(&kv.url) && line.contains("SecretStore apps/azure"), "{line}");
    assert!(line.contains("disabled"), "the error must say the secret is disabled: {line}");
}

#[test]
fn an_expired_secret_is_served_with_a_warning() {
    let kv = common::keyvault(&config(json!({"secrets": {
        "expired": {"value": "still-served", "exp": 1_600_000_000},
        "valid": {"value": "fresh", "exp": 4_000_000_000u64},
    }})));
    let docs = [store(&kv), es("exp", json!({"data": [data("old", json!({"key": "expired"})), data("new", json!({"key": "valid"}))]}))];
    let run = render(&kv, &docs);
    assert_eq!(text(&secrets(&run.out), "exp"), map(&[("old", "still-served"), ("new", "fresh")]));
    let err = common::stderr(&run.out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "one warning, for the expired secret only:\n{err}");
    assert!(warnings[0].contains("`expired`") && warnings[0].contains("expired") && warnings[0].contains(&kv.url), "{}", warnings[0]);
    assert_no_values(&err, &["still-served", "fresh"]);
}

#[test]
fn throttling_and_unavailability_are_retried() {
    let kv = common::keyvault(&config(json!({
        "list_faults": [503, 429],
        "secrets": {
            "flaky": {"value": "eventually", "faults": [429, 503, 429]},
            "found-1": "f1",
        },
    })));
    let docs = [
        store(&kv),
        es("flaky", json!({"data": [data("v", json!({"key": "flaky"}))], "dataFrom": [{"find": {"name": {"regexp": "^found-"}}}]})),
    ];
    let run = render(&kv, &docs);
    assert_eq!(text(&secrets(&run.out), "flaky"), map(&[("v", "eventually"), ("found-1", "f1")]));
    let log = kv.requests();
    assert_eq!(statuses(&log, "/secrets/flaky/"), vec![429, 503, 429, 200], "{log:#?}");
    let list: Vec<u64> = statuses(&log, "/secrets");
    assert_eq!(list[..2], [503, 429], "{log:#?}");
    assert!(list[2..].iter().all(|s| *s == 200), "{list:?}");
}

#[test]
fn retries_stop_at_the_overall_deadline() {
    let faults = vec![503; 100];
    let kv = common::keyvault(&config(json!({"secrets": {"down": {"value": "x", "faults": faults}}})));
    let docs = [store(&kv), es("down", json!({"data": [data("v", json!({"key": "down"}))]}))];
    let start = Instant::now();
    let run = render_with(&kv, &docs, &[sp_credentials()], &["--timeout", "3s"], &[]);
    let elapsed = start.elapsed();
    let err = common::failed(&run.out);
    assert!(!errors(&err).is_empty(), "{err}");
    assert!(elapsed.as_secs() < 15, "the run must end near its 3 s deadline, took {elapsed:?}");
    assert!(statuses(&kv.requests(), "/secrets/down/").len() >= 2, "the SDK retried before the deadline");
}

// ---------------------------------------------------------------------------------------------
// Call counts: one token per store, one GET per distinct object
// ---------------------------------------------------------------------------------------------

#[test]
fn one_token_request_per_store_and_one_get_per_distinct_object() {
    let mut objects = cert_and_key_objects();
    objects["secrets"] = json!({"one": "1", "two": "2", "three": "3"});
    objects["clients"] = json!({"client-b": {"secret": "b-secret"}});
    let kv = common::keyvault(&config(objects));
    let b_creds = credentials("b-creds", &[("client-id", "client-b"), ("client-secret", "b-secret")]);
    let mut docs = vec![store(&kv), store_named("azure-b", &kv, sp_spec("b-creds"))];
    for i in 0..6 {
        docs.push(es(
            &format!("app-{i}"),
            json!({"data": [
                data("one", json!({"key": "one"})),
                data("one-again", json!({"key": "secret/one"})),
                data("two", json!({"key": "secret/two"})),
                data("three", json!({"key": "three", "property": ""})),
                data("der", json!({"key": "cert/tls"})),
                data("jwk", json!({"key": "key/signing"})),
            ]}),
        ));
    }
    for i in 0..3 {
        docs.push(es_with(&format!("b-{i}"), "azure-b", json!({"data": [data("one", json!({"key": "one"}))]})));
    }
    let run = render_with(&kv, &docs, &[sp_credentials(), b_creds], &[], &[]);
    let all = secrets(&run.out);
    assert_eq!(all.len(), 9);
    assert_eq!(text(&all, "b-2"), map(&[("one", "1")]));

    let log = kv.requests();
    let tokens = token_requests(&log);
    let clients: BTreeSet<&str> = tokens.iter().map(|t| t["client_id"].as_str().unwrap()).collect();
    assert_eq!(tokens.len(), 2, "one token per store: {tokens:#?}");
    assert_eq!(clients, BTreeSet::from([CLIENT_ID, "client-b"]));
    let gets =
        |client: &str, path: &str| log.iter().filter(|r| r["authorized"] == true && r["client_id"] == client && r["path"] == path).count();
    for path in ["/secrets/one/", "/secrets/two/", "/secrets/three/", "/certificates/tls/", "/keys/signing/"] {
        assert_eq!(gets(CLIENT_ID, path), 1, "store azure: GETs of {path}");
    }
    assert_eq!(gets("client-b", "/secrets/one/"), 1, "store azure-b: GETs of /secrets/one/");
    assert_eq!(log.iter().filter(|r| r["authorized"] == true).count(), 6, "{log:#?}");
    assert_eq!(list_pages(&log), 0);
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[test]
fn service_principal_with_a_client_certificate_signs_an_assertion_entra_accepts() {
    let m = material();
    let kv = common::keyvault(&config(json!({
        "clients": {"cert-app": {"certificate": m.cert_pem}},
        "secrets": {"db": "from-cert-auth"},
    })));
    let spec = json!({
        "authType": "ServicePrincipal",
        "tenantId": TENANT,
        "authSecretRef": {
            "clientId": {"name": "cert-creds", "key": "client-id"},
            "clientCertificate": {"name": "cert-creds", "key": "tls.pem"},
        },
    });
    let pem = m.cert_pem.clone() + &m.key_pem;
    let creds = credentials("cert-creds", &[("client-id", "cert-app"), ("tls.pem", &pem)]);
    let docs = [store_named("azure", &kv, spec), es("db", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let run = render_with(&kv, &docs, &[creds], &[], &[]);
    assert_eq!(text(&secrets(&run.out), "db"), map(&[("v", "from-cert-auth")]));
    let log = kv.requests();
    let tokens = token_requests(&log);
    assert_eq!(tokens.len(), 1, "{tokens:#?}");
    assert_eq!(tokens[0]["token_kind"], "client_certificate", "the stand-in verified the certificate-signed JWT");
    assert_eq!(tokens[0]["status"], 200);
    assert_eq!(tokens[0]["client_id"], "cert-app");
}

#[test]
fn a_rejected_client_secret_is_an_error_naming_the_store_and_entra_code() {
    let kv = common::keyvault(&config(json!({"secrets": {"db": "x-value"}})));
    let creds = credentials("azure-creds", &[("client-id", CLIENT_ID), ("client-secret", "wrong-secret-000")]);
    let docs = [store(&kv), es("db", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let run = render_with(&kv, &docs, &[creds], &[], &[]);
    let err = common::failed(&run.out);
    assert_no_values(&err, &["wrong-secret-000", "x-value"]);
    let lines = errors(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("SecretStore apps/azure") && lines[0].contains(&kv.url), "{}", lines[0]);
    // Entra's error code (AADSTS7000215, "Invalid client secret provided").
    assert!(lines[0].contains("7000215"), "the error must carry Entra's error code: {}", lines[0]);
    assert_eq!(authorized_gets(&kv.requests(), "/secrets/db/"), 0);
}

#[test]
fn managed_identity_uses_the_app_service_endpoint_with_or_without_identity_id() {
    let kv = common::keyvault(&config(json!({
        "managed_identity": {"header": "mi-header-secret", "system_assigned": true, "client_ids": ["7c9e6679-7425-40de-944b-e07fc1f90ae7"]},
        "secrets": {"db": "from-managed-identity"},
    })));
    let docs = [
        store_named("mi-system", &kv, json!({"authType": "ManagedIdentity"})),
        store_named("mi-user", &kv, json!({"authType": "ManagedIdentity", "identityId": "7c9e6679-7425-40de-944b-e07fc1f90ae7"})),
        es_with("sys", "mi-system", json!({"data": [data("v", json!({"key": "db"}))]})),
        es_with("user", "mi-user", json!({"data": [data("v", json!({"key": "db"}))]})),
    ];
    let endpoint = kv.identity_endpoint();
    let env = [("IDENTITY_ENDPOINT", endpoint.as_str()), ("IDENTITY_HEADER", "mi-header-secret")];
    // The user's own identity, for stores of their own input, to a vault host they allow.
    let run = render_with(&kv, &docs, &[], &["--trust-input-stores", "--allowed-hosts", "azurekv=127.0.0.1"], &env);
    let all = secrets(&run.out);
    assert_eq!(text(&all, "sys"), map(&[("v", "from-managed-identity")]));
    assert_eq!(text(&all, "user"), map(&[("v", "from-managed-identity")]));
    let log = kv.requests();
    let msi = msi_requests(&log);
    assert_eq!(msi.len(), 2, "one token per store: {msi:#?}");
    assert!(msi.iter().all(|r| r["status"] == 200 && r["query"]["api-version"] == "2019-08-01" && r["query"]["resource"] == "api://0.0.1"));
    let ids: BTreeSet<Option<&str>> = msi.iter().map(|r| r["query"].get("client_id").and_then(Value::as_str)).collect();
    assert_eq!(ids, BTreeSet::from([None, Some("7c9e6679-7425-40de-944b-e07fc1f90ae7")]));
    assert!(token_requests(&log).is_empty());
    assert!(log.iter().filter(|r| r["authorized"] == true).all(|r| r["token_kind"] == "managed_identity"));
}

#[test]
fn workload_identity_exchanges_the_pods_federated_token() {
    let kv = common::keyvault(&config(json!({
        "clients": {"wi-client-id": {"assertion": "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig"}},
        "secrets": {"db": "from-workload-identity"},
    })));
    let dir = common::tempdir();
    let token = common::write(dir.path(), "azure-identity-token", "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig");
    let docs =
        [store_named("azure", &kv, json!({"authType": "WorkloadIdentity"})), es("db", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let env = [("AZURE_FEDERATED_TOKEN_FILE", token.to_str().unwrap()), ("AZURE_CLIENT_ID", "wi-client-id"), ("AZURE_TENANT_ID", TENANT)];
    let run = render_with(&kv, &docs, &[], &["--trust-input-stores", "--allowed-hosts", "azurekv=127.0.0.1"], &env);
    assert_eq!(text(&secrets(&run.out), "db"), map(&[("v", "from-workload-identity")]));
    let log = kv.requests();
    let tokens = token_requests(&log);
    assert_eq!(tokens.len(), 1, "{tokens:#?}");
    assert_eq!(tokens[0]["token_kind"], "client_assertion");
    assert_eq!(tokens[0]["client_id"], "wi-client-id");
    assert_eq!(tokens[0]["tenant"], TENANT);
    assert_eq!(tokens[0]["status"], 200);
}

#[test]
fn service_account_ref_is_refused_in_render_mode() {
    let kv = common::keyvault(&config(json!({"secrets": {"db": "x"}})));
    let spec = json!({"authType": "WorkloadIdentity", "serviceAccountRef": {"name": "workload-sa"}});
    let docs = [store_named("azure", &kv, spec), es("db", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let run = render_with(&kv, &docs, &[], &[], &[]);
    let err = common::failed(&run.out);
    assert!(err.contains("serviceAccountRef"), "{err}");
    assert!(kv.requests().is_empty(), "nothing is asked of the vault");
}

#[test]
fn german_cloud_is_refused_as_retired() {
    let kv = common::keyvault(&config(json!({"secrets": {"db": "x"}})));
    let mut spec = sp_spec("azure-creds");
    spec["environmentType"] = json!("GermanCloud");
    let docs = [store_named("azure", &kv, spec), es("db", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let run = render(&kv, &docs);
    let err = common::failed(&run.out);
    assert!(err.contains("GermanCloud") && err.contains("retired"), "{err}");
    assert!(kv.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// A mixed stream: AWS (moto) and Azure together
// ---------------------------------------------------------------------------------------------

#[test]
fn a_stream_with_an_aws_store_and_an_azure_store_renders_both() {
    let moto = common::moto();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let aws_name = format!("xs-azure-mixed-{}-{}", std::process::id(), nanos % 1_000_000_000_000);
    let seed = r#"
import boto3, sys
c = boto3.client("secretsmanager", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
c.create_secret(Name=sys.argv[2], SecretString='{"password":"from-aws"}')
"#;
    let mut c = Command::new("python3");
    c.args(["-c", seed, &moto.url, &aws_name]);
    common::scrub_env(&mut c);
    let out = common::run(c, None);
    assert!(out.status.success(), "boto3 seeding: {}", common::stderr(&out));

    let kv = common::keyvault(&config(json!({"secrets": {"api-key": "from-azure"}})));
    let aws_store = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": NS},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "us-east-1"}}},
    });
    let docs = [
        aws_store,
        store(&kv),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "passes-through", "namespace": NS}, "data": {"k": "v"}}),
        es_with("from-aws", "aws", json!({"data": [data("password", json!({"key": aws_name, "property": "password"}))]})),
        es("from-azure", json!({"data": [data("api-key", json!({"key": "api-key"}))]})),
        es(
            "both",
            json!({"data": [
                data("api-key", json!({"key": "api-key"})),
                {"secretKey": "password", "remoteRef": {"key": aws_name, "property": "password"}, "sourceRef": {"storeRef": {"name": "aws", "kind": "SecretStore"}}},
            ]}),
        ),
    ];
    let dir = common::tempdir();
    let input = common::write(dir.path(), "manifests.yaml", &stream(&docs));
    let creds = common::write(dir.path(), "creds.yaml", &stream(&[sp_credentials()]));
    // The AWS store uses the environment's keys (the user's own identity, for their own input).
    let mut c = common::extsecret(&[
        "render",
        "-o",
        "json",
        "--trust-input-stores",
        "--credentials",
        creds.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    common::aws_env(&mut c, moto);
    common::azure_env(&mut c, &kv);
    let out = common::run(c, None);
    let all = secrets(&out);
    assert_eq!(text(&all, "from-aws"), map(&[("password", "from-aws")]));
    assert_eq!(text(&all, "from-azure"), map(&[("api-key", "from-azure")]));
    assert_eq!(text(&all, "both"), map(&[("api-key", "from-azure"), ("password", "from-aws")]));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list["items"].as_array().unwrap().iter().any(|i| i["kind"] == "ConfigMap"), "other documents pass through");
    let log = kv.requests();
    assert_eq!(authorized_gets(&log, "/secrets/api-key/"), 1);
    assert_eq!(token_requests(&log).len(), 1);
}

#[test]
fn identity_service_messages_are_reduced_to_codes_so_a_misplaced_secret_is_never_echoed() {
    // The client id is read from the wrong key: the client *secret* goes to Entra as the id, and
    // Entra's message quotes the identifier it was sent. Only its AADSTS code may be shown.
    let kv = common::keyvault(&config(json!({"secrets": {"db": "x-value"}})));
    let creds = credentials("azure-creds", &[("client-id", "LEAK-CHECK-CLIENT-SECRET"), ("client-secret", "LEAK-CHECK-CLIENT-SECRET")]);
    let docs = [store(&kv), es("db", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let run = render_with(&kv, &docs, &[creds], &[], &[]);
    let err = common::failed(&run.out);
    assert_no_values(&err, &["LEAK-CHECK-CLIENT-SECRET", "x-value"]);
    assert!(err.contains("could not get a token") && err.contains("AADSTS700016"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Whose credentials go where: a tenant's store never sends this process's identity to a host it
// chose
// ---------------------------------------------------------------------------------------------

/// A second stand-in playing a hostile host: it records whatever it receives.
fn hostile() -> KeyVault {
    common::keyvault(&config(json!({"secrets": {"db": "hostile-value"}})))
}

/// Stores of the input that would use this process's own identity against `host`: workload
/// identity (the pod's federated token) with `host` as Azure Stack authority and vault, and
/// managed identity with `host` as vault.
fn stores_aimed_at(host: &KeyVault) -> Vec<Value> {
    let wi = json!({
        "authType": "WorkloadIdentity", "tenantId": TENANT, "environmentType": "AzureStackCloud",
        "customCloudConfig": {"activeDirectoryEndpoint": host.url},
    });
    vec![
        store_named("wi", host, wi),
        store_named("mi", host, json!({"authType": "ManagedIdentity"})),
        es_with("via-wi", "wi", json!({"data": [data("v", json!({"key": "db"}))]})),
        es_with("via-mi", "mi", json!({"data": [data("v", json!({"key": "db"}))]})),
    ]
}

/// The process's own identity: a federated token file and an App Service managed identity.
fn process_identity_env(dir: &Path, msi: &KeyVault) -> Vec<(String, String)> {
    let token = common::write(dir, "azure-identity-token", "eyJhbGciOiJSUzI1NiJ9.PROCESS-OWN-FEDERATED-TOKEN.sig");
    vec![
        ("AZURE_FEDERATED_TOKEN_FILE".into(), token.to_str().unwrap().into()),
        ("AZURE_CLIENT_ID".into(), "wi-client-id".into()),
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        ("IDENTITY_ENDPOINT".into(), msi.identity_endpoint()),
        ("IDENTITY_HEADER".into(), "mi-header-secret".into()),
    ]
}

#[test]
fn an_input_store_never_sends_the_process_identity_to_a_host_it_chose() {
    let own = common::keyvault(&config(json!({"managed_identity": {"header": "mi-header-secret", "system_assigned": true}})));
    let evil = hostile();
    let dir = common::tempdir();
    let env = process_identity_env(dir.path(), &own);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // By default a store of the input may not use the process's identity at all.
    let run = render_with(&own, &stores_aimed_at(&evil), &[], &[], &env);
    assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
    let err = common::failed(&run.out);
    for store in ["SecretStore apps/wi", "SecretStore apps/mi"] {
        let line = errors(&err).into_iter().find(|l| l.contains(store)).unwrap_or_else(|| panic!("{store} refused: {err}"));
        assert!(line.contains("[Refused]") && line.contains("--trust-input-stores"), "{line}");
    }

    // Trusted input still sends the identity only to well-known or allowed hosts.
    let run = render_with(&own, &stores_aimed_at(&evil), &[], &["--trust-input-stores"], &env);
    let err = common::failed(&run.out);
    assert!(err.contains("customCloudConfig.activeDirectoryEndpoint names host `127.0.0.1`"), "{err}");
    assert!(err.contains("vaultUrl names host `127.0.0.1`") && err.contains("`azurekv=127.0.0.1`"), "{err}");
    assert!(err.contains("--allowed-hosts"), "{err}");
    assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
    assert!(msi_requests(&own.requests()).is_empty(), "no managed-identity token was even asked for");
    assert_no_values(&err, &["PROCESS-OWN-FEDERATED-TOKEN", "hostile-value"]);
}

#[test]
fn a_tenants_own_credentials_go_to_its_own_host_and_operator_stores_choose_theirs() {
    // The tenant's own client secret (authSecretRef in its namespace) to its own Azure Stack
    // authority and vault: no switch needed.
    let kv = common::keyvault(&config(json!({
        "managed_identity": {"header": "mi-header-secret", "system_assigned": true},
        "secrets": {"db": "own-credentials"},
    })));
    let mut spec = sp_spec("azure-creds");
    spec["environmentType"] = json!("AzureStackCloud");
    spec["customCloudConfig"] = json!({"activeDirectoryEndpoint": kv.url});
    let docs = [store_named("azure", &kv, spec), es("db", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let run = render(&kv, &docs);
    assert_eq!(text(&secrets(&run.out), "db"), map(&[("v", "own-credentials")]));
    assert_eq!(token_requests(&kv.requests()).len(), 1);

    // A store of the operator's `--stores` may use the process's identity, with its own hosts.
    let dir = common::tempdir();
    let stores = common::write(dir.path(), "stores.yaml", &stream(&[store_named("mi", &kv, json!({"authType": "ManagedIdentity"}))]));
    let docs = [es_with("by-operator", "mi", json!({"data": [data("v", json!({"key": "db"}))]}))];
    let endpoint = kv.identity_endpoint();
    let env = [("IDENTITY_ENDPOINT", endpoint.as_str()), ("IDENTITY_HEADER", "mi-header-secret")];
    let run = render_with(&kv, &docs, &[], &["--stores", stores.to_str().unwrap()], &env);
    assert_eq!(text(&secrets(&run.out), "by-operator"), map(&[("v", "own-credentials")]));
    assert_eq!(msi_requests(&kv.requests()).len(), 1);
}
