//! AWS Secrets Manager end to end: the real binary, the real AWS SDK, a real moto server.
//!
//! Secrets are seeded from the test with boto3 (`python3`, which moto itself depends on). moto is
//! shared by every test (and test binary), so each test works under its own secret-name prefix
//! ([`unique`]) and never resets moto.
//!
//! Tests that count API calls use a moto of their own ([`Recorder`]), started with moto's request
//! recorder on and writing to a temporary folder: the recorder is global to a moto process, and its
//! file would otherwise land in the working directory of the shared moto (the repository root).
//! Each test still counts only the requests that carry its own prefix.

mod common;

use common::{map, secrets, text};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

/// Namespace of every object in these tests.
const NS: &str = "apps";

// ---------------------------------------------------------------------------------------------
// moto, seeding and rendering helpers
// ---------------------------------------------------------------------------------------------

/// URL of the shared moto.
fn moto_url() -> &'static str {
    &common::moto().url
}

/// A secret-name prefix no other test (nor an earlier run against the same moto) uses: lower-case
/// letters, digits and `-` only, so it can be written into regular expressions as is.
fn unique(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("xs-{test}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Runs boto3 calls against moto at `url` with the given keys; returns each call's response
/// (without `ResponseMetadata`). An argument `{"__b64": "..."}` is passed as bytes.
const BOTO: &str = r#"
import base64, json, sys, boto3
req = json.load(sys.stdin)
kw = dict(endpoint_url=req["url"], region_name="us-east-1",
          aws_access_key_id=req["key"], aws_secret_access_key=req["secret"])
clients = {}
def conv(v):
    if isinstance(v, dict):
        if list(v) == ["__b64"]:
            return base64.b64decode(v["__b64"])
        return {k: conv(x) for k, x in v.items()}
    if isinstance(v, list):
        return [conv(x) for x in v]
    return v
out = []
for call in req["calls"]:
    svc = call.get("service", "secretsmanager")
    if svc not in clients:
        clients[svc] = boto3.client(svc, **kw)
    r = getattr(clients[svc], call["method"])(**conv(call.get("args", {})))
    r.pop("ResponseMetadata", None)
    out.append(r)
json.dump(out, sys.stdout, default=str)
"#;

fn boto(url: &str, keys: (&str, &str), calls: Vec<Value>) -> Vec<Value> {
    let mut c = Command::new("python3");
    c.args(["-c", BOTO]);
    common::scrub_env(&mut c);
    let req = json!({"url": url, "key": keys.0, "secret": keys.1, "calls": calls});
    let out = common::run(c, Some(req.to_string().as_bytes()));
    assert!(out.status.success(), "boto3 seeding failed:\n{}", common::stderr(&out));
    serde_json::from_slice(&out.stdout).expect("boto3 output")
}

/// Seeds the shared moto.
fn seed(calls: Vec<Value>) -> Vec<Value> {
    boto(moto_url(), ("testing", "testing"), calls)
}

fn create(name: &str, value: &str) -> Value {
    json!({"method": "create_secret", "args": {"Name": name, "SecretString": value}})
}

fn create_tagged(name: &str, value: &str, tags: &[(&str, &str)]) -> Value {
    let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
    json!({"method": "create_secret", "args": {"Name": name, "SecretString": value, "Tags": tags}})
}

fn create_binary(name: &str, bytes: &[u8]) -> Value {
    json!({"method": "create_secret", "args": {"Name": name, "SecretBinary": {"__b64": B64.encode(bytes)}}})
}

/// A SecretStore `aws` in [`NS`] for Secrets Manager in us-east-1, with `extra` merged into
/// `spec.provider.aws`.
fn store_with(extra: Value) -> Value {
    let mut aws = json!({"service": "SecretsManager", "region": "us-east-1"});
    if let (Some(a), Value::Object(e)) = (aws.as_object_mut(), extra) {
        a.extend(e);
    }
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": NS},
        "spec": {"provider": {"aws": aws}},
    })
}

fn store() -> Value {
    store_with(json!({}))
}

/// An ExternalSecret `name` in [`NS`] using store `aws`, with `spec` merged in.
fn es(name: &str, spec: Value) -> Value {
    let mut s = json!({"secretStoreRef": {"name": "aws", "kind": "SecretStore"}});
    if let (Some(m), Value::Object(e)) = (s.as_object_mut(), spec) {
        m.extend(e);
    }
    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name, "namespace": NS}, "spec": s})
}

/// One `spec.data[]` entry.
fn data(secret_key: &str, remote_ref: Value) -> Value {
    json!({"secretKey": secret_key, "remoteRef": remote_ref})
}

/// The documents as a stream of JSON objects (which the reader accepts as is).
fn stream(docs: &[Value]) -> String {
    docs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n") + "\n"
}

/// An input file in a fresh folder; the folder lives as long as the returned guard.
struct Input {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Input {
    fn new(docs: &[Value]) -> Input {
        let dir = common::tempdir();
        let path = common::write(dir.path(), "manifests.yaml", &stream(docs));
        Input { _dir: dir, path }
    }
    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
    /// Writes another file next to the input and returns its path.
    fn file(&self, name: &str, docs: &[Value]) -> String {
        common::write(self._dir.path(), name, &stream(docs)).to_str().unwrap().to_string()
    }
}

/// Renders `docs` (`-o json`) against the shared moto with static keys, `extra` flags first.
fn render(docs: &[Value], extra: &[&str]) -> (Output, Input) {
    let input = Input::new(docs);
    let mut args = vec!["render", "-o", "json"];
    args.extend_from_slice(extra);
    args.push(input.path());
    moto_url();
    let mut c = common::extsecret(&args);
    common::aws_env(&mut c, common::moto());
    // These stores come from the input and use the environment's keys (the user's own identity).
    c.env("EXTSECRET_TRUST_INPUT_STORES", "true");
    (common::run(c, None), input)
}

/// Asserts that none of `values` appears on stderr.
fn assert_no_values(stderr: &str, values: &[&str]) {
    for v in values {
        assert!(!stderr.contains(v), "stderr leaks a secret value `{v}`:\n{stderr}");
    }
}

/// The `error: ` lines of stderr.
fn errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("error: ")).collect()
}

// ---------------------------------------------------------------------------------------------
// A moto of one's own, with the request recorder on
// ---------------------------------------------------------------------------------------------

/// A moto server started by this file (not the shared one), recording every request into a file
/// of its own temporary folder. It stops when dropped or when this test process exits (its
/// watchdog reads stdin until EOF).
struct Recorder {
    url: String,
    recording: PathBuf,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Recorder {
    fn start(extra_env: &[(&str, &str)]) -> Recorder {
        let dir = common::tempdir();
        let recording = dir.path().join("recording.jsonl");
        let port = common::free_port();
        let watchdog = "import subprocess,sys\np=subprocess.Popen(['moto_server','-H','127.0.0.1','-p',sys.argv[1]],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\nsys.stdin.read()\np.kill()\np.wait()\n";
        let mut c = Command::new("python3");
        c.args(["-c", watchdog, &port.to_string()]).current_dir(dir.path());
        common::scrub_env(&mut c);
        c.env("MOTO_ENABLE_RECORDING", "true").env("MOTO_RECORDER_FILEPATH", &recording);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let child = c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("python3");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Recorder { url: format!("http://127.0.0.1:{port}"), recording, _dir: dir, child: Some(child) }
    }

    /// The shared recording moto (started once per test binary).
    fn shared() -> &'static Recorder {
        static R: OnceLock<Recorder> = OnceLock::new();
        R.get_or_init(|| Recorder::start(&[]))
    }

    /// The `extsecret render -o json` command against this moto; `keys` are the static keys put
    /// in the environment (none: no credentials in the environment at all).
    fn command(&self, keys: Option<(&str, &str)>, args: &[&str]) -> Command {
        let mut full = vec!["render", "-o", "json"];
        full.extend_from_slice(args);
        let mut c = common::extsecret(&full);
        c.env("AWS_ENDPOINT_URL", &self.url)
            .env("EXTSECRET_TRUST_INPUT_STORES", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/extsecret-test/config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/extsecret-test/credentials");
        if let Some((id, secret)) = keys {
            c.env("AWS_ACCESS_KEY_ID", id).env("AWS_SECRET_ACCESS_KEY", secret);
        }
        c
    }

    /// Every request recorded so far.
    fn requests(&self) -> Vec<Request> {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines().filter(|l| !l.trim().is_empty()).map(Request::parse).collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// One recorded request.
#[derive(Debug)]
struct Request {
    /// `BatchGetSecretValue`, `GetSecretValue`, `ListSecrets`, `AssumeRole`, ...
    action: String,
    /// The access key id the request was signed with.
    access_key: String,
    /// JSON body (Secrets Manager), or `Null`.
    json: Value,
    /// Form body (STS), else empty.
    form: BTreeMap<String, String>,
}

impl Request {
    fn parse(line: &str) -> Request {
        let entry: Value = serde_json::from_str(line).expect("recording line");
        let header = |name: &str| -> String {
            entry["headers"]
                .as_object()
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let raw = entry["body"].as_str().unwrap_or("");
        let body = if entry["body_encoded"] == true { B64.decode(raw).expect("recorded body") } else { raw.as_bytes().to_vec() };
        let body = String::from_utf8_lossy(&body).into_owned();
        let form: BTreeMap<String, String> =
            body.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (url_decode(k), url_decode(v))).collect();
        let target = header("X-Amz-Target");
        let action = match target.rsplit_once('.') {
            Some((_, a)) => a.to_string(),
            None => form.get("Action").cloned().unwrap_or_default(),
        };
        let auth = header("Authorization");
        let access_key = auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or("").to_string();
        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
        Request { action, access_key, json, form }
    }

    /// Secret ids this request names (`SecretId`, `SecretIdList`) and name filter values.
    fn ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        if let Some(id) = self.json["SecretId"].as_str() {
            ids.push(id.to_string());
        }
        for id in self.json["SecretIdList"].as_array().into_iter().flatten() {
            ids.push(id.as_str().unwrap().to_string());
        }
        for f in self.json["Filters"].as_array().into_iter().flatten() {
            for v in f["Values"].as_array().into_iter().flatten() {
                ids.push(v.as_str().unwrap().to_string());
            }
        }
        ids
    }

    /// Whether the request concerns the test whose prefix is `p`.
    fn mentions(&self, p: &str) -> bool {
        self.ids().iter().any(|i| i.contains(p)) || self.form.values().any(|v| v.contains(p))
    }
}

fn url_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("-"), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The requests of test `p`, by action.
fn calls_of<'a>(requests: &'a [Request], p: &str, action: &str) -> Vec<&'a Request> {
    requests.iter().filter(|r| r.action == action && r.mentions(p)).collect()
}

// ---------------------------------------------------------------------------------------------
// data[]: whole values and properties
// ---------------------------------------------------------------------------------------------

#[test]
fn data_reads_the_whole_secret_string_or_a_gjson_property_as_eso_renders_it() {
    let p = unique("props");
    let json_secret = r#"{"s":"plain \"quoted\" text","nested":{"k": "v", "x": [1, 2]},"i":12345678901234567890,"neg":-7,"f":1.50,"e":1e3,"t":true,"fa":false,"nu":null,"friends":[{"name":"ann","age":31},{"name":"bob","age":42}]}"#;
    seed(vec![
        create(&format!("{p}/json"), json_secret),
        create(&format!("{p}/plain"), "just a password"),
        create(&format!("{p}/dotted"), r#"{"foo.bar":"x","foo":{"bar":"y"}}"#),
        create(&format!("{p}/nested-only"), r#"{"foo":{"bar":"y"}}"#),
    ]);
    let key = |name: &str, property: Option<&str>| match property {
        Some(prop) => json!({"key": format!("{p}/{name}"), "property": prop}),
        None => json!({"key": format!("{p}/{name}")}),
    };
    let docs = [
        store(),
        es(
            "props",
            json!({"data": [
                data("whole", key("json", None)),
                data("plain", key("plain", None)),
                data("s", key("json", Some("s"))),
                data("nested", key("json", Some("nested"))),
                data("nested-x", key("json", Some("nested.x"))),
                data("i", key("json", Some("i"))),
                data("neg", key("json", Some("neg"))),
                data("f", key("json", Some("f"))),
                data("e", key("json", Some("e"))),
                data("t", key("json", Some("t"))),
                data("fa", key("json", Some("fa"))),
                data("nu", key("json", Some("nu"))),
                data("friend1", key("json", Some("friends.1.name"))),
                data("names", key("json", Some("friends.#.name"))),
                data("count", key("json", Some("friends.#"))),
                data("literal", key("dotted", Some("foo.bar"))),
                data("path", key("nested-only", Some("foo.bar"))),
            ]}),
        ),
    ];
    let (out, _input) = render(&docs, &[]);
    let all = secrets(&out);
    assert_eq!(
        text(&all, "props"),
        map(&[
            ("whole", json_secret),
            ("plain", "just a password"),
            ("s", r#"plain "quoted" text"#),
            ("nested", r#"{"k": "v", "x": [1, 2]}"#),
            ("nested-x", "[1, 2]"),
            ("i", "12345678901234567890"),
            ("neg", "-7"),
            ("f", "1.5"),
            ("e", "1000"),
            ("t", "true"),
            ("fa", "false"),
            ("nu", ""),
            ("friend1", "bob"),
            ("names", r#"["ann","bob"]"#),
            ("count", "2"),
            ("literal", "x"),
            ("path", "y"),
        ])
    );
}

#[test]
fn version_selects_a_stage_or_a_version_id() {
    let p = unique("versions");
    let name = format!("{p}/rotated");
    let r = seed(vec![
        create(&name, "first"),
        json!({"method": "put_secret_value", "args": {"SecretId": name, "SecretString": "second"}}),
        json!({"method": "put_secret_value", "args": {"SecretId": name, "SecretString": "staged", "VersionStages": ["NEXT"]}}),
    ]);
    let (v1, v2, v3) = (r[0]["VersionId"].as_str().unwrap(), r[1]["VersionId"].as_str().unwrap(), r[2]["VersionId"].as_str().unwrap());
    let at = |version: &str| json!({"key": name, "version": version});
    let docs = [
        store(),
        es(
            "versions",
            json!({"data": [
                data("current", json!({"key": name})),
                data("awscurrent", at("AWSCURRENT")),
                data("previous", at("AWSPREVIOUS")),
                data("custom-stage", at("NEXT")),
                data("id1", at(&format!("uuid/{v1}"))),
                data("id2", at(&format!("uuid/{v2}"))),
                data("id3", at(&format!("uuid/{v3}"))),
            ]}),
        ),
    ];
    for flags in [&[][..], &["--no-batch"][..]] {
        let (out, _input) = render(&docs, flags);
        assert_eq!(
            text(&secrets(&out), "versions"),
            map(&[
                ("current", "second"),
                ("awscurrent", "second"),
                ("previous", "first"),
                ("custom-stage", "staged"),
                ("id1", "first"),
                ("id2", "second"),
                ("id3", "staged"),
            ]),
            "flags {flags:?}"
        );
    }
}

#[test]
fn secret_binary_passes_through_as_exact_bytes() {
    let p = unique("binary");
    let bytes: Vec<u8> = vec![0x00, 0xff, 0xfe, 0x80, b'\n', b'a', 0xc3, 0x28, 0x00, b'"', 0xf0, 0x9f];
    assert!(std::str::from_utf8(&bytes).is_err());
    seed(vec![create_binary(&format!("{p}/blob"), &bytes)]);
    let docs = [store(), es("blob", json!({"data": [data("blob", json!({"key": format!("{p}/blob")}))]}))];
    // Batched (BatchGetSecretValue) and single (GetSecretValue) reads carry the same bytes.
    for flags in [&[][..], &["--no-batch"][..]] {
        let (out, _input) = render(&docs, flags);
        assert_eq!(secrets(&out)["blob"]["blob"], bytes, "flags {flags:?}");
    }
}

#[test]
fn decoding_strategy_base64_decodes_the_value_or_the_property() {
    let p = unique("decode");
    seed(vec![create(&format!("{p}/b64"), "aGVsbG8gd29ybGQ="), create(&format!("{p}/json"), r#"{"bin":"AP/+gA==","url":"-_8="}"#)]);
    let docs = [
        store(),
        es(
            "decoded",
            json!({"data": [
                data("whole", json!({"key": format!("{p}/b64"), "decodingStrategy": "Base64"})),
                data("bin", json!({"key": format!("{p}/json"), "property": "bin", "decodingStrategy": "Base64"})),
                data("url", json!({"key": format!("{p}/json"), "property": "url", "decodingStrategy": "Base64URL"})),
                data("auto", json!({"key": format!("{p}/json"), "property": "url", "decodingStrategy": "Auto"})),
            ]}),
        ),
    ];
    let (out, _input) = render(&docs, &[]);
    let s = &secrets(&out)["decoded"];
    assert_eq!(s["whole"], b"hello world");
    assert_eq!(s["bin"], vec![0x00, 0xff, 0xfe, 0x80]);
    assert_eq!(s["url"], vec![0xfb, 0xff]);
    assert_eq!(s["auto"], vec![0xfb, 0xff]);
}

// ---------------------------------------------------------------------------------------------
// dataFrom: extract and find
// ---------------------------------------------------------------------------------------------

#[test]
fn extract_expands_a_json_object_with_strings_unquoted_and_other_values_raw() {
    let p = unique("extract");
    seed(vec![
        create(&format!("{p}/db"), r#"{"user":"admin","port":5432,"ratio":1.50,"on":true,"none":null,"obj":{"a": [1, 2]},"a/b":"slash"}"#),
        create(&format!("{p}/nested"), r#"{"db":{"host":"h","port":1}}"#),
    ]);
    let docs = [
        store(),
        es(
            "extracted",
            json!({
                "dataFrom": [
                    {"extract": {"key": format!("{p}/db")}},
                    {"extract": {"key": format!("{p}/nested"), "property": "db"}},
                ],
                // data[] is applied after dataFrom and wins.
                "data": [data("user", json!({"key": format!("{p}/nested"), "property": "db.host"}))],
            }),
        ),
    ];
    let (out, _input) = render(&docs, &[]);
    assert_eq!(
        text(&secrets(&out), "extracted"),
        map(&[
            ("user", "h"),
            ("port", "1"),
            ("ratio", "1.50"),
            ("on", "true"),
            ("none", ""),
            ("obj", r#"{"a": [1, 2]}"#),
            ("a_b", "slash"),
            ("host", "h"),
        ])
    );
}

#[test]
fn extract_of_a_plain_text_secret_fails_clearly_without_the_value() {
    let p = unique("extract-plain");
    let value = format!("plain-text-value-{p}");
    seed(vec![create(&format!("{p}/plain"), &value)]);
    let docs = [store(), es("plain", json!({"dataFrom": [{"extract": {"key": format!("{p}/plain")}}]}))];
    let (out, input) = render(&docs, &[]);
    let err = common::failed(&out);
    assert!(
        err.contains(&format!(
            "{}: document 1: ExternalSecret {NS}/plain: spec.dataFrom[0].extract.key: the secret is not a JSON object",
            input.path()
        )),
        "{err}"
    );
    assert_no_values(&err, &[&value]);
}

#[test]
fn find_by_name_path_and_tags_with_default_key_conversion() {
    let p = unique("find");
    let other = format!("{p}-other");
    seed(vec![
        create(&format!("{p}/app/db-pass"), "pass"),
        create(&format!("{p}/app/db-user"), "user"),
        create(&format!("{p}/app/api-key"), "api"),
        create(&format!("{p}/other/db-x"), "x"),
        create_tagged(&format!("{p}/tagged/prod"), "prod-value", &[("team", &p), ("env", "prod")]),
        create_tagged(&format!("{p}/tagged/dev"), "dev-value", &[("team", &p), ("env", "dev")]),
        // moto's (and AWS's) tag-value filter matches prefixes: only an exact value may match.
        create_tagged(&format!("{p}/tagged/prefix"), "prefix-value", &[("team", &other), ("env", "prod")]),
        // AWS filters tag keys and values independently: the pairs must still match exactly.
        create_tagged(&format!("{p}/tagged/swapped"), "swapped-value", &[("team", "prod"), ("env", &p)]),
    ]);
    let docs = [
        store(),
        es("by-name", json!({"dataFrom": [{"find": {"name": {"regexp": format!("^{p}/app/db-")}}}]})),
        es("by-path", json!({"dataFrom": [{"find": {"path": format!("{p}/app/"), "name": {"regexp": "-"}}}]})),
        es("by-tags", json!({"dataFrom": [{"find": {"tags": {"team": p, "env": "prod"}}}]})),
        es("unanchored", json!({"dataFrom": [{"find": {"path": format!("{p}/"), "name": {"regexp": "db"}}}]})),
    ];
    let (out, _input) = render(&docs, &[]);
    let all = secrets(&out);
    let k = |name: &str| format!("{p}_{name}");
    assert_eq!(text(&all, "by-name"), map(&[(&k("app_db-pass"), "pass"), (&k("app_db-user"), "user")]));
    assert_eq!(text(&all, "by-path"), map(&[(&k("app_api-key"), "api"), (&k("app_db-pass"), "pass"), (&k("app_db-user"), "user")]));
    assert_eq!(text(&all, "by-tags"), map(&[(&k("tagged_prod"), "prod-value")]));
    assert_eq!(text(&all, "unanchored"), map(&[(&k("app_db-pass"), "pass"), (&k("app_db-user"), "user"), (&k("other_db-x"), "x")]));
}

#[test]
fn find_with_rewrite_renames_keys_and_skips_the_conversion() {
    let p = unique("rewrite");
    let (pass, api) = (format!("pass-value-{p}"), format!("api-value-{p}"));
    seed(vec![create(&format!("{p}/app/db-pass"), &pass), create(&format!("{p}/app/api-key"), &api)]);
    let find = json!({"name": {"regexp": format!("^{p}/app/")}});
    let docs = [
        store(),
        es(
            "rewritten",
            json!({"dataFrom": [{
                "find": find,
                "rewrite": [
                    {"regexp": {"source": format!("^{p}/app/(.*)$"), "target": "app-${1}"}},
                    {"regexp": {"source": "-", "target": "_"}},
                ],
            }]}),
        ),
    ];
    let (out, _input) = render(&docs, &[]);
    assert_eq!(text(&secrets(&out), "rewritten"), map(&[("app_api_key", &api), ("app_db_pass", &pass)]));

    // With a rewrite, `/` is not converted to `_`: a key that keeps one is refused.
    let docs = [
        store(),
        es("kept-slash", json!({"dataFrom": [{"find": find, "rewrite": [{"regexp": {"source": format!("^{p}/"), "target": ""}}]}]})),
    ];
    let (out, input) = render(&docs, &[]);
    let err = common::failed(&out);
    assert!(
        err.contains(&format!(
            "{}: document 1: ExternalSecret {NS}/kept-slash: spec.dataFrom[0].find: remote key `{p}/app/db-pass` becomes `app/db-pass`, which is not a valid Secret key",
            input.path()
        )),
        "{err}"
    );
    assert_no_values(&err, &[&pass, &api]);
}

// ---------------------------------------------------------------------------------------------
// Store prefix, metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn store_prefix_is_prepended_to_every_key_and_stripped_from_found_names() {
    let p = unique("prefix");
    seed(vec![
        create(&format!("{p}/team-a/db"), r#"{"user":"team-a-user"}"#),
        create(&format!("{p}/team-a/svc/x"), "vx"),
        create(&format!("{p}/team-a/svc/y"), "vy"),
        create(&format!("{p}/team-b/svc/z"), "vz"),
        // Without the prefix `db` would be this one.
        create(&format!("{p}/db"), r#"{"user":"unprefixed"}"#),
    ]);
    let docs = [
        store_with(json!({"prefix": format!("{p}/team-a/")})),
        es(
            "prefixed",
            json!({
                "data": [data("user", json!({"key": "db", "property": "user"}))],
                "dataFrom": [
                    {"extract": {"key": "db"}},
                    {"find": {"path": "svc/", "name": {"regexp": "."}}},
                    {"find": {"name": {"regexp": "svc/y$"}}, "rewrite": [{"regexp": {"source": "^svc/", "target": "found-"}}]},
                ],
            }),
        ),
    ];
    let (out, _input) = render(&docs, &[]);
    assert_eq!(text(&secrets(&out), "prefixed"), map(&[("user", "team-a-user"), ("svc_x", "vx"), ("svc_y", "vy"), ("found-y", "vy")]));
}

#[test]
fn metadata_policy_fetch_serves_the_tags_as_a_json_object() {
    let p = unique("meta");
    let name = format!("{p}/tagged");
    seed(vec![create_tagged(&name, "the-value", &[("owner", "team-x"), ("env", "prod")])]);
    let docs = [
        store(),
        es(
            "meta",
            json!({"data": [
                data("tags", json!({"key": name, "metadataPolicy": "Fetch"})),
                data("owner", json!({"key": name, "metadataPolicy": "Fetch", "property": "owner"})),
                data("value", json!({"key": name})),
            ]}),
        ),
    ];
    let (out, _input) = render(&docs, &[]);
    assert_eq!(
        text(&secrets(&out), "meta"),
        map(&[("tags", r#"{"env":"prod","owner":"team-x"}"#), ("owner", "team-x"), ("value", "the-value")])
    );
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

fn secret_ref_store() -> Value {
    store_with(json!({"auth": {"secretRef": {
        "accessKeyIDSecretRef": {"name": "aws-creds", "key": "access-key"},
        "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret-access-key"},
    }}}))
}

fn credential_secret(name: &str, access_key: &str, secret_key: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {"access-key": B64.encode(access_key)},
        "stringData": {"secret-access-key": secret_key},
    })
}

#[test]
fn secret_ref_credentials_come_from_the_credentials_flag_only() {
    let moto = Recorder::shared();
    let p = unique("secretref");
    let access_key = "AKIDFROMSECRETREF";
    let secret_key = format!("secret-access-key-{p}");
    boto(&moto.url, ("testing", "testing"), vec![create(&format!("{p}/db"), "db-value")]);
    let app = es("app", json!({"data": [data("db", json!({"key": format!("{p}/db")}))]}));

    // No key in the environment: the store's secretRef, read from --credentials, signs the calls.
    let input = Input::new(&[secret_ref_store(), app.clone()]);
    let creds = input.file("creds.yaml", &[credential_secret("aws-creds", access_key, &secret_key)]);
    let out = common::run(moto.command(None, &["--credentials", &creds, input.path()]), None);
    assert_eq!(text(&secrets(&out), "app"), map(&[("db", "db-value")]));
    let reads: Vec<_> = moto.requests().into_iter().filter(|r| r.mentions(&p) && r.action.ends_with("SecretValue")).collect();
    assert!(!reads.is_empty());
    assert!(reads.iter().all(|r| r.access_key == access_key), "{reads:?}");

    // The same Secret in the rendered input is not a credential.
    let input = Input::new(&[credential_secret("aws-creds", access_key, &secret_key), secret_ref_store(), app.clone()]);
    let out = common::run(moto.command(None, &[input.path()]), None);
    let err = common::failed(&out);
    assert!(
        err.contains(&format!(
            "{}: document 2: ExternalSecret {NS}/app: spec.data[0].remoteRef.key: [Config] spec.provider.aws.auth.secretRef.accessKeyIDSecretRef: credential Secret `{NS}/aws-creds` not found (give it with --credentials; it is never read from the rendered input)",
            input.path()
        )),
        "{err}"
    );
    assert_no_values(&err, &[&secret_key, "db-value"]);

    // --credentials without that Secret: the same clear error.
    let input = Input::new(&[secret_ref_store(), app]);
    let creds = input.file("creds.yaml", &[credential_secret("other-creds", access_key, &secret_key)]);
    let out = common::run(moto.command(None, &["--credentials", &creds, input.path()]), None);
    let err = common::failed(&out);
    assert!(err.contains(&format!("credential Secret `{NS}/aws-creds` not found")), "{err}");
    assert_no_values(&err, &[&secret_key, "db-value"]);
}

#[test]
fn role_chain_is_assumed_through_sts_with_external_id_and_session_tags() {
    let moto = Recorder::shared();
    let p = unique("role");
    let (first, last) = (format!("arn:aws:iam::123456789012:role/{p}-first"), format!("arn:aws:iam::123456789012:role/{p}-reader"));
    boto(&moto.url, ("testing", "testing"), vec![create(&format!("{p}/db"), "db-value")]);
    let docs = [
        store_with(json!({
            "additionalRoles": [first],
            "role": last,
            "externalID": format!("ext-{p}"),
            "sessionTags": [{"key": "team", "value": "payments"}, {"key": "env", "value": "prod"}],
            "transitiveTagKeys": ["team"],
        })),
        es("app", json!({"data": [data("db", json!({"key": format!("{p}/db")}))]})),
    ];
    let input = Input::new(&docs);
    let out = common::run(moto.command(Some(("testing", "testing")), &[input.path()]), None);
    assert_eq!(text(&secrets(&out), "app"), map(&[("db", "db-value")]));

    let requests = moto.requests();
    let assumed: Vec<&Request> = requests.iter().filter(|r| r.action == "AssumeRole" && r.mentions(&p)).collect();
    assert_eq!(assumed.len(), 2, "{assumed:?}");
    let (a, b) = (&assumed[0].form, &assumed[1].form);
    // additionalRoles first, with the environment's keys and nothing else.
    assert_eq!(a["RoleArn"], first);
    assert_eq!(assumed[0].access_key, "testing");
    assert!(!a.contains_key("ExternalId") && !a.keys().any(|k| k.starts_with("Tags")), "{a:?}");
    // Then `role`, with the first role's credentials, externalID, session tags and transitive keys.
    assert_eq!(b["RoleArn"], last);
    assert_ne!(assumed[1].access_key, "testing");
    assert_eq!(b["ExternalId"], format!("ext-{p}"));
    assert_eq!((b["Tags.member.1.Key"].as_str(), b["Tags.member.1.Value"].as_str()), ("team", "payments"));
    assert_eq!((b["Tags.member.2.Key"].as_str(), b["Tags.member.2.Value"].as_str()), ("env", "prod"));
    assert_eq!(b["TransitiveTagKeys.member.1"], "team");
    // The secret is read with the last role's credentials.
    let reads: Vec<&Request> = requests.iter().filter(|r| r.mentions(&p) && r.action.ends_with("SecretValue")).collect();
    assert_eq!(reads.len(), 1);
    assert!(![assumed[0].access_key.as_str(), assumed[1].access_key.as_str()].contains(&reads[0].access_key.as_str()), "{reads:?}");
}

#[test]
fn auth_jwt_is_refused_at_render_time() {
    let docs = [
        store_with(json!({"auth": {"jwt": {"serviceAccountRef": {"name": "eso"}}}})),
        es("app", json!({"data": [data("db", json!({"key": "any"}))]})),
    ];
    let (out, input) = render(&docs, &[]);
    let err = common::failed(&out);
    assert!(
        err.contains(&format!(
            "{}: document 1: ExternalSecret {NS}/app: spec.data[0].remoteRef.key: [Config] spec.provider.aws.auth.jwt needs a Kubernetes API server",
            input.path()
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_secret_fails_the_render_with_a_not_found_problem() {
    let p = unique("missing");
    let value = format!("present-value-{p}");
    seed(vec![create(&format!("{p}/present"), &value)]);
    let docs = [
        store(),
        es(
            "app",
            json!({"data": [
                data("present", json!({"key": format!("{p}/present")})),
                data("absent", json!({"key": format!("{p}/absent")})),
            ]}),
        ),
    ];
    for flags in [&[][..], &["--no-batch"][..]] {
        let (out, input) = render(&docs, flags);
        let err = common::failed(&out);
        let errs = errors(&err);
        assert_eq!(errs.len(), 1, "flags {flags:?}: {err}");
        assert!(
            errs[0].starts_with(&format!(
                "error: {}: document 1: ExternalSecret {NS}/app: spec.data[1].remoteRef.key: [NotFound] ",
                input.path()
            )),
            "flags {flags:?}: {err}"
        );
        assert!(errs[0].contains(&format!("`{p}/absent`")), "{err}");
        assert_no_values(&err, &[&value]);
    }
}

#[test]
fn a_secret_marked_for_deletion_is_not_found() {
    let p = unique("deleted");
    let name = format!("{p}/gone");
    let value = format!("deleted-value-{p}");
    seed(vec![create(&name, &value), json!({"method": "delete_secret", "args": {"SecretId": name, "RecoveryWindowInDays": 7}})]);
    let docs = [store(), es("app", json!({"data": [data("gone", json!({"key": name}))]}))];
    for flags in [&[][..], &["--no-batch"][..]] {
        let (out, input) = render(&docs, flags);
        let err = common::failed(&out);
        assert!(
            err.contains(&format!("error: {}: document 1: ExternalSecret {NS}/app: spec.data[0].remoteRef.key: [NotFound] ", input.path())),
            "flags {flags:?}: {err}"
        );
        assert_no_values(&err, &[&value]);
    }
}

#[test]
fn every_problem_of_a_run_is_reported_together_without_values() {
    let p = unique("problems");
    let values = [format!("json-user-{p}"), format!("json-pass-{p}"), format!("plain-{p}"), format!("found-{p}")];
    seed(vec![
        create(&format!("{p}/json"), &format!(r#"{{"user":"{}","pass":"{}"}}"#, values[0], values[1])),
        create(&format!("{p}/plain"), &values[2]),
        create(&format!("{p}/dir/found"), &values[3]),
    ]);
    let docs = [
        store(),
        // 1: a missing property next to a good one.
        es(
            "bad-property",
            json!({"data": [
                data("user", json!({"key": format!("{p}/json"), "property": "user"})),
                data("token", json!({"key": format!("{p}/json"), "property": "token"})),
            ]}),
        ),
        // 2: a missing secret.
        es("bad-key", json!({"data": [data("x", json!({"key": format!("{p}/nope")}))]})),
        // 3: extract of a plain-text secret.
        es("bad-extract", json!({"dataFrom": [{"extract": {"key": format!("{p}/plain")}}]})),
        // 4: an unknown version id.
        es(
            "bad-version",
            json!({"data": [data("x", json!({"key": format!("{p}/json"), "version": "uuid/00000000-0000-0000-0000-000000000000"}))]}),
        ),
        // 5: metadata of a missing secret.
        es("bad-metadata", json!({"data": [data("x", json!({"key": format!("{p}/nope"), "metadataPolicy": "Fetch"}))]})),
        // 6: a found key that is not a valid Secret key.
        es(
            "bad-find",
            json!({"dataFrom": [{"find": {"path": format!("{p}/dir/"), "name": {"regexp": "."}}, "rewrite": [{"regexp": {"source": "^.*/dir", "target": "dir"}}]}]}),
        ),
    ];
    let (out, input) = render(&docs, &[]);
    let err = common::failed(&out);
    let at =
        |doc: usize, name: &str, field: &str| format!("error: {}: document {doc}: ExternalSecret {NS}/{name}: {field}: ", input.path());
    let expected = [
        (
            at(1, "bad-property", "spec.data[1].remoteRef.property"),
            format!("[NotFound] property `token` does not exist in secret `{p}/json`"),
        ),
        (at(2, "bad-key", "spec.data[0].remoteRef.key"), format!("[NotFound] BatchGetSecretValue `{p}/nope`")),
        (at(3, "bad-extract", "spec.dataFrom[0].extract.key"), "the secret is not a JSON object".to_string()),
        (at(4, "bad-version", "spec.data[0].remoteRef.key"), "[NotFound] GetSecretValue".to_string()),
        (at(5, "bad-metadata", "spec.data[0].remoteRef.key"), format!("[NotFound] DescribeSecret `{p}/nope`")),
        (at(6, "bad-find", "spec.dataFrom[0].find"), "becomes `dir/found`, which is not a valid Secret key".to_string()),
    ];
    let errs = errors(&err);
    assert_eq!(errs.len(), expected.len(), "{err}");
    for (prefix, message) in &expected {
        assert!(
            errs.iter().any(|e| e.starts_with(prefix.as_str()) && e.contains(message.as_str())),
            "missing `{prefix}...{message}` in:\n{err}"
        );
    }
    assert_no_values(&err, &values.iter().map(String::as_str).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Economy: API calls counted by moto's recorder
// ---------------------------------------------------------------------------------------------

#[test]
fn each_secret_is_read_once_per_run_however_many_entries_use_it() {
    let moto = Recorder::shared();
    let p = unique("once");
    let shared = format!("{p}/shared");
    boto(&moto.url, ("testing", "testing"), vec![create(&shared, r#"{"a":"1","b":"2","c":"3"}"#), create(&format!("{p}/other"), "o")]);
    let docs = [
        store(),
        es("es-a", json!({"data": [data("a", json!({"key": shared, "property": "a"}))]})),
        es(
            "es-b",
            json!({"data": [data("b", json!({"key": shared, "property": "b"})), data("c", json!({"key": shared, "property": "c"}))]}),
        ),
        es("es-c", json!({"data": [data("whole", json!({"key": shared}))]})),
        es("es-d", json!({"dataFrom": [{"extract": {"key": shared}}]})),
        es("es-e", json!({"dataFrom": [{"find": {"path": format!("{p}/"), "name": {"regexp": "."}}}]})),
        es("es-f", json!({"dataFrom": [{"find": {"path": format!("{p}/"), "name": {"regexp": "."}}}]})),
    ];
    let input = Input::new(&docs);
    for (flags, read_action) in [(&[][..], "BatchGetSecretValue"), (&["--no-batch"][..], "GetSecretValue")] {
        let before = moto.requests().len();
        let mut args = flags.to_vec();
        args.push(input.path());
        let out = common::run(moto.command(Some(("testing", "testing")), &args), None);
        let all = secrets(&out);
        assert_eq!(text(&all, "es-b"), map(&[("b", "2"), ("c", "3")]));
        assert_eq!(text(&all, "es-f")[&format!("{p}_shared")], r#"{"a":"1","b":"2","c":"3"}"#);
        let requests: Vec<Request> = moto.requests().into_iter().skip(before).collect();
        let mine: Vec<&Request> = requests.iter().filter(|r| r.mentions(&p)).collect();
        let count = |a: &str| mine.iter().filter(|r| r.action == a).count();
        assert_eq!(count("ListSecrets"), 1, "flags {flags:?}: one find query, run once: {mine:?}");
        let mut reads: Vec<String> = mine.iter().filter(|r| r.action.ends_with("SecretValue")).flat_map(|r| r.ids()).collect();
        reads.sort();
        assert_eq!(reads, vec![format!("{p}/other"), shared.clone()], "flags {flags:?}: each secret read once: {mine:?}");
        let expected_calls = if read_action == "BatchGetSecretValue" { 1 } else { 2 };
        assert_eq!(count(read_action), expected_calls, "flags {flags:?}: {mine:?}");
        assert_eq!(mine.len(), 1 + expected_calls, "flags {flags:?}: {mine:?}");
    }
}

#[test]
fn forty_five_current_secrets_take_three_batch_calls_and_no_batch_takes_one_call_each() {
    let moto = Recorder::shared();
    let p = unique("batch");
    let names: Vec<String> = (0..45).map(|i| format!("{p}/s{i:02}")).collect();
    boto(&moto.url, ("testing", "testing"), names.iter().enumerate().map(|(i, n)| create(n, &format!("v{i}"))).collect());
    let entries: Vec<Value> = names.iter().enumerate().map(|(i, n)| data(&format!("k{i:02}"), json!({"key": n}))).collect();
    // Split over three ExternalSecrets: batching is per run, not per ExternalSecret.
    let docs = [
        store(),
        es("part-1", json!({"data": entries[..10]})),
        es("part-2", json!({"data": entries[10..30]})),
        es("part-3", json!({"data": entries[30..]})),
    ];
    let input = Input::new(&docs);
    let expected: BTreeMap<String, String> = (0..45).map(|i| (format!("k{i:02}"), format!("v{i}"))).collect();
    let all_names: BTreeSet<String> = names.iter().cloned().collect();

    let before = moto.requests().len();
    let out = common::run(moto.command(Some(("testing", "testing")), &[input.path()]), None);
    let all = secrets(&out);
    let merged: BTreeMap<String, String> = ["part-1", "part-2", "part-3"].iter().flat_map(|s| text(&all, s)).collect();
    assert_eq!(merged, expected);
    let requests: Vec<Request> = moto.requests().into_iter().skip(before).collect();
    let batches = calls_of(&requests, &p, "BatchGetSecretValue");
    let mut sizes: Vec<usize> = batches.iter().map(|r| r.ids().len()).collect();
    sizes.sort();
    assert_eq!(sizes, vec![5, 20, 20], "ceil(45/20) = 3 calls of at most 20 ids");
    let batched: BTreeSet<String> = batches.iter().flat_map(|r| r.ids()).collect();
    assert_eq!(batched, all_names);
    assert_eq!(calls_of(&requests, &p, "GetSecretValue").len(), 0);

    let before = moto.requests().len();
    let out = common::run(moto.command(Some(("testing", "testing")), &["--no-batch", input.path()]), None);
    let all = secrets(&out);
    let merged: BTreeMap<String, String> = ["part-1", "part-2", "part-3"].iter().flat_map(|s| text(&all, s)).collect();
    assert_eq!(merged, expected);
    let requests: Vec<Request> = moto.requests().into_iter().skip(before).collect();
    assert_eq!(calls_of(&requests, &p, "BatchGetSecretValue").len(), 0);
    let singles = calls_of(&requests, &p, "GetSecretValue");
    assert_eq!(singles.len(), 45, "one GetSecretValue per secret");
    assert_eq!(singles.iter().flat_map(|r| r.ids()).collect::<BTreeSet<_>>(), all_names);
}

/// moto enforces IAM policies when started with `INITIAL_NO_AUTH_ACTION_COUNT`: the first N
/// requests are free (they create the user, its key and its policy), every later one is signed
/// with that user's key and checked. moto reports the denial as HTTP 403 with an XML body the
/// JSON-protocol SDK cannot read a code from; the provider classes such a 403 as AccessDenied.
#[test]
fn batch_get_denied_by_iam_falls_back_to_one_get_per_secret() {
    let moto = Recorder::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"},
    ]});
    let r = boto(
        &moto.url,
        ("testing", "testing"),
        vec![
            json!({"service": "iam", "method": "create_user", "args": {"UserName": "reader"}}),
            json!({"service": "iam", "method": "create_access_key", "args": {"UserName": "reader"}}),
            json!({"service": "iam", "method": "put_user_policy", "args": {"UserName": "reader", "PolicyName": "no-batch", "PolicyDocument": policy.to_string()}}),
        ],
    );
    let (id, secret) = (
        r[1]["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string(),
        r[1]["AccessKey"]["SecretAccessKey"].as_str().unwrap().to_string(),
    );
    let p = unique("denied");
    let names: Vec<String> = (0..25).map(|i| format!("{p}/s{i:02}")).collect();
    boto(&moto.url, (&id, &secret), names.iter().enumerate().map(|(i, n)| create(n, &format!("v{i}"))).collect());
    // The policy is enforced: boto3 itself is refused BatchGetSecretValue.
    let mut c = Command::new("python3");
    c.args(["-c", BOTO]);
    common::scrub_env(&mut c);
    let req = json!({"url": moto.url, "key": id, "secret": secret, "calls": [{"method": "batch_get_secret_value", "args": {"SecretIdList": [names[0]]}}]});
    let denied = common::run(c, Some(req.to_string().as_bytes()));
    assert!(
        !denied.status.success() && common::stderr(&denied).contains("not authorized to perform: secretsmanager:BatchGetSecretValue"),
        "{}",
        common::stderr(&denied)
    );

    let entries: Vec<Value> = names.iter().enumerate().map(|(i, n)| data(&format!("k{i:02}"), json!({"key": n}))).collect();
    let input = Input::new(&[store(), es("app", json!({"data": entries}))]);
    let before = moto.requests().len();
    let out = common::run(moto.command(Some((&id, &secret)), &[input.path()]), None);
    let expected: BTreeMap<String, String> = (0..25).map(|i| (format!("k{i:02}"), format!("v{i}"))).collect();
    assert_eq!(text(&secrets(&out), "app"), expected);
    assert!(common::stderr(&out).contains("BatchGetSecretValue denied"), "{}", common::stderr(&out));
    let requests: Vec<Request> = moto.requests().into_iter().skip(before).collect();
    let batches = calls_of(&requests, &p, "BatchGetSecretValue").len();
    assert!((1..=2).contains(&batches), "at most one denied call per chunk of 20: {batches}");
    let singles = calls_of(&requests, &p, "GetSecretValue");
    assert_eq!(singles.len(), 25);
    assert_eq!(singles.iter().flat_map(|r| r.ids()).collect::<BTreeSet<_>>(), names.iter().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn trace_logging_never_shows_the_sdk_or_http_stack() {
    // `aws_sigv4` logs the access key id (and the canonical request) at trace: EXTSECRET_LOG
    // governs only extsecret's own targets, so even `trace,aws_sigv4=trace` shows none of it.
    let p = unique("logs");
    seed(vec![create(&format!("{p}/db"), "log-canary-value")]);
    let input = Input::new(&[es("app", json!({"data": [data("db", json!({"key": format!("{p}/db")}))]}))]);
    let stores = input.file("stores.yaml", &[store()]);
    let mut c = common::extsecret(&["render", "-o", "json", "--stores", &stores, input.path()]);
    common::aws_env(&mut c, common::moto());
    c.env("EXTSECRET_LOG", "trace,aws_sigv4=trace,hyper=trace").env("AWS_ACCESS_KEY_ID", "AKIDLOGCANARY");
    let out = common::run(c, None);
    assert_eq!(text(&secrets(&out), "app"), map(&[("db", "log-canary-value")]));
    let err = common::stderr(&out);
    assert!(err.contains("ignored aws_sigv4=trace,hyper=trace"), "{err}");
    assert_no_values(&err, &["AKIDLOGCANARY", "log-canary-value", "Credential=", "authorization"]);
    assert!(err.lines().filter(|l| !l.contains("EXTSECRET_LOG: ignored")).all(|l| !l.contains("aws_") && !l.contains("hyper")), "{err}");
}

#[test]
fn a_batch_failing_as_a_whole_blames_only_the_secret_that_caused_it() {
    // A secret created without a value has no AWSCURRENT version: moto then fails the whole
    // BatchGetSecretValue call (ResourceNotFoundException); only that secret may be blamed.
    let p = unique("culprit");
    let values = [format!("good-one-{p}"), format!("good-two-{p}")];
    seed(vec![
        create(&format!("{p}/one"), &values[0]),
        create(&format!("{p}/two"), &values[1]),
        json!({"method": "create_secret", "args": {"Name": format!("{p}/novalue")}}),
    ]);
    let docs = [
        store(),
        es("good", json!({"data": [data("one", json!({"key": format!("{p}/one")})), data("two", json!({"key": format!("{p}/two")}))]})),
        es("bad", json!({"data": [data("x", json!({"key": format!("{p}/novalue")}))]})),
    ];
    let (out, input) = render(&docs, &[]);
    let err = common::failed(&out);
    let errs = errors(&err);
    assert_eq!(errs.len(), 1, "{err}");
    assert!(
        errs[0]
            .starts_with(&format!("error: {}: document 2: ExternalSecret {NS}/bad: spec.data[0].remoteRef.key: [NotFound] ", input.path())),
        "{err}"
    );
    assert!(errs[0].contains(&format!("`{p}/novalue`")), "{err}");
    assert!(!err.contains(&format!("{NS}/good")), "a key of the failed batch was blamed with it:\n{err}");
    assert_no_values(&err, &[&values[0], &values[1]]);
}
