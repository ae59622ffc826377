//! The controller end to end: the real `extsecret controller` binary, the real kube client, a
//! Kubernetes API server, and (for AWS) a real moto server through the real SDK.
//!
//! The API server is `tests/support/kube_standin.py` (kmock with the additions kube-runtime needs;
//! one per test), unless `EXTSECRET_TEST_KUBECONFIG` names a real cluster's kubeconfig: then every
//! test runs against that cluster, in a namespace of its own, with the CRDs of
//! `examples/controller/crds.yaml` applied beforehand (README, "Controller tests on a real cluster").
//!
//! What the stand-in does not have, and how the tests deal with it:
//! - garbage collection is immediate (a real cluster's GC is asynchronous): the ownerReference
//!   test waits for the Secret to go either way;
//! - no admission, validation or defaulting: nothing here relies on them;
//! - field ownership is simplified (leaf fields, atomic lists): the tests assert the Secret's
//!   content, not its managedFields;
//! - request counting and failure injection (`/__standin/...`) exist only there: the assertions
//!   that use them are skipped on a real cluster.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// The API server and the controller
// ---------------------------------------------------------------------------------------------

/// The API server of one test, and the namespace the test works in.
struct Cluster {
    url: Option<String>,
    kubeconfig: PathBuf,
    client: Client,
    ns: String,
    _standin: Option<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(c) = self._standin.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}-{:x}", test.replace('_', "-").chars().take(40).collect::<String>(), nanos & 0xfffff)
}

async fn cluster(test: &str) -> Cluster {
    let dir = common::tempdir();
    let ns = unique(test);
    if let Some(kc) = std::env::var("EXTSECRET_TEST_KUBECONFIG").ok().filter(|k| !k.is_empty()) {
        let kubeconfig = PathBuf::from(kc);
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = Client::try_from(config).unwrap();
        let c = Cluster { url: None, kubeconfig, client, ns, _standin: None, dir };
        c.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.ns}})).await;
        return c;
    }
    let port_file = dir.path().join("port");
    let standin = Command::new("python3")
        .arg(common::repo().join("tests/support/kube_standin.py"))
        .args(["--host", "127.0.0.1", "--port", "0", "--port-file"])
        .arg(&port_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse::<u16>().ok()) {
            break p;
        }
        assert!(Instant::now() < deadline, "the kube stand-in did not start (pip install -r tests/support/requirements.txt)");
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = format!("http://127.0.0.1:{port}");
    let kubeconfig = common::write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {url}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: test\n    namespace: default\ncurrent-context: standin\n"
        ),
    );
    let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    Cluster { url: Some(url), kubeconfig, client, ns, _standin: Some(standin), dir }
}

fn resource(api_version: &str, kind: &str) -> (ApiResource, bool) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (plural, namespaced) = match kind {
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        "ServiceAccount" => ("serviceaccounts", true),
        "Namespace" => ("namespaces", false),
        "ExternalSecret" => ("externalsecrets", true),
        "SecretStore" => ("secretstores", true),
        "ClusterSecretStore" => ("clustersecretstores", false),
        other => panic!("no resource for {other}"),
    };
    (ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural), namespaced)
}

impl Cluster {
    fn api(&self, api_version: &str, kind: &str) -> Api<DynamicObject> {
        let (ar, namespaced) = resource(api_version, kind);
        if namespaced {
            Api::namespaced_with(self.client.clone(), &self.ns, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        }
    }

    /// Server-side applies an object (its namespace is the test's).
    async fn apply(&self, mut obj: Value) {
        let (av, kind) = (obj["apiVersion"].as_str().unwrap().to_string(), obj["kind"].as_str().unwrap().to_string());
        if resource(&av, &kind).1 {
            obj["metadata"]["namespace"] = json!(self.ns);
        }
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        self.api(&av, &kind).patch(&name, &PatchParams::apply("extsecret-tests").force(), &Patch::Apply(&obj)).await.unwrap();
    }

    async fn merge(&self, api_version: &str, kind: &str, name: &str, patch: Value) {
        self.api(api_version, kind).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    async fn delete(&self, api_version: &str, kind: &str, name: &str) {
        self.api(api_version, kind).delete(name, &DeleteParams::default()).await.unwrap();
    }

    async fn secret(&self, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), &self.ns).get_opt(name).await.unwrap()
    }

    async fn external_secret(&self, name: &str) -> Option<DynamicObject> {
        self.api("external-secrets.io/v1", "ExternalSecret").get_opt(name).await.unwrap()
    }

    /// Starts `extsecret controller` on this namespace with `args` and `env`.
    fn controller(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Controller {
        let metrics_port = common::free_port();
        let log = self.dir.path().join(format!("{name}.log"));
        let mut c = common::extsecret(&["controller", "--kubeconfig"]);
        c.arg(&self.kubeconfig)
            .args([
                "--namespace",
                &self.ns,
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--wave-window",
                "20ms",
                "--timeout",
                "10s",
            ])
            .args(args)
            .env("EXTSECRET_LOG", "info")
            .env("POD_NAME", name)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        Controller { child: c.spawn().expect("extsecret"), log, metrics_port }
    }

    /// Request counters of the stand-in (`None` on a real cluster).
    fn requests(&self) -> Option<Value> {
        let url = self.url.as_ref()?;
        Some(http_json("GET", &format!("{url}/__standin/requests"), None))
    }

    /// Makes the stand-in fail the next `count` matching requests (no-op on a real cluster).
    fn fail_next(&self, resource: &str, verb: &str, status: u16, count: u32) -> bool {
        let Some(url) = &self.url else { return false };
        http_json(
            "POST",
            &format!("{url}/__standin/fail"),
            Some(json!({"resource": resource, "verb": verb, "status": status, "count": count})),
        );
        true
    }
}

/// A tiny HTTP/1.1 client (the test-control endpoints and /metrics): method, URL, JSON body.
fn http_text(method: &str, url: &str, body: Option<Value>) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    if out.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        // De-chunk.
        let mut text = String::new();
        let mut rest = body.as_str();
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            text.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        return text;
    }
    body
}

fn http_json(method: &str, url: &str, body: Option<Value>) -> Value {
    serde_json::from_str(&http_text(method, url, body)).unwrap_or(Value::Null)
}

/// A running controller process; killed when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
    metrics_port: u16,
}

impl Controller {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn metrics(&self) -> String {
        http_text("GET", &format!("http://127.0.0.1:{}/metrics", self.metrics_port), None)
    }
    /// SIGKILL: no graceful release of anything.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// SIGTERM, then wait for the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it returns `Some`, or fails after `secs` seconds with `what`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn data(secret: &Secret) -> BTreeMap<String, String> {
    secret.data.iter().flatten().map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())).collect()
}

fn ready(es: &DynamicObject) -> Option<(String, String, String)> {
    let c = es.data.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == "Ready")?;
    Some((c["status"].as_str()?.into(), c["reason"].as_str()?.into(), c["message"].as_str()?.into()))
}

fn fake_store(name: &str, values: &[(&str, &str)]) -> Value {
    let data: Vec<Value> = values.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name}, "spec": {"provider": {"fake": {"data": data}}}})
}

fn external_secret(name: &str, store: &str, target: Value, data: &[(&str, &str, Option<&str>)], refresh: &str) -> Value {
    let data: Vec<Value> = data
        .iter()
        .map(|(k, key, property)| {
            let mut r = json!({"key": key});
            if let Some(p) = property {
                r["property"] = json!(p);
            }
            json!({"secretKey": k, "remoteRef": r})
        })
        .collect();
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": "argo-app", "team": "db"}},
        "spec": {"refreshInterval": refresh, "secretStoreRef": {"name": store, "kind": "SecretStore"}, "target": target, "data": data},
    })
}

// ---------------------------------------------------------------------------------------------
// moto (AWS) seeding
// ---------------------------------------------------------------------------------------------

fn put_aws_secret(url: &str, name: &str, value: &str) {
    let script = r#"
import sys, boto3
url, name, value = sys.argv[1:4]
c = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
try:
    c.create_secret(Name=name, SecretString=value)
except c.exceptions.ResourceExistsException:
    c.put_secret_value(SecretId=name, SecretString=value)
"#;
    let mut c = Command::new("python3");
    c.args(["-c", script, url, name, value]);
    common::scrub_env(&mut c);
    let out = common::run(c, None);
    assert!(out.status.success(), "boto3: {}", common::stderr(&out));
}

fn aws_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", url.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

fn aws_store(name: &str) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name},
           "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "us-east-1"}}}})
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// F7: a `refreshInterval` below `--min-refresh-interval` is raised to it, with one warning.
#[tokio::test]
async fn a_tiny_refresh_interval_is_raised_to_the_floor() {
    let c = cluster("refresh-floor").await;
    let ctl = c.controller("ctl", &["--min-refresh-interval", "2s"], &[]);
    c.apply(fake_store("store", &[("/k", "v")])).await;
    c.apply(external_secret("db", "store", json!({"name": "db"}), &[("v", "/k", None)], "1ms")).await;
    eventually(20, "the Secret", || async { c.secret("db").await }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = ctl.metrics();
    let prefix = format!(r#"externalsecret_sync_calls_total{{name="db",namespace="{}"}} "#, c.ns);
    let syncs: u64 = metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|n| n.trim().parse().ok()).expect("sync count");
    assert!((1..=4).contains(&syncs), "{syncs} syncs in about 3 s with a 2 s floor");
    let log = ctl.log();
    assert_eq!(log.matches("is shorter than the controller's --min-refresh-interval").count(), 1, "{log}");
    assert!(log.contains("spec.refreshInterval 1ms") && log.contains("refreshing every 2s instead"), "{log}");
}

#[tokio::test]
async fn creates_the_secret_with_owner_reference_data_status_events_and_metrics() {
    let c = cluster("creates").await;
    let ctl = c.controller("ctl", &[], &[]);
    c.apply(fake_store("store", &[("/db", r#"{"username":"app","password":"pw-create-1"}"#)])).await;
    c.apply(external_secret(
        "db",
        "store",
        json!({"name": "db-creds"}),
        &[("username", "/db", Some("username")), ("password", "/db", Some("password"))],
        "1h",
    ))
    .await;

    let secret = eventually(20, "the Secret", || async { c.secret("db-creds").await }).await;
    assert_eq!(data(&secret), BTreeMap::from([("password".into(), "pw-create-1".into()), ("username".into(), "app".into())]));
    let es = c.external_secret("db").await.unwrap();
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!((owners[0].kind.as_str(), owners[0].name.as_str(), owners[0].controller), ("ExternalSecret", "db", Some(true)));
    assert_eq!(Some(&owners[0].uid), es.metadata.uid.as_ref());
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("reconcile.external-secrets.io/managed").map(String::as_str), Some("true"));
    assert_eq!(labels.get("team").map(String::as_str), Some("db"));
    assert!(!labels.contains_key("app.kubernetes.io/instance"), "Argo CD's tracking label is not copied");
    let hash = secret.metadata.annotations.clone().unwrap_or_default().get("reconcile.external-secrets.io/data-hash").cloned();
    assert_eq!(hash.map(|h| h.len()), Some(56));

    let (status, reason, message) =
        eventually(10, "Ready=True", || async { c.external_secret("db").await.as_ref().and_then(ready).filter(|r| r.0 == "True") }).await;
    assert_eq!((status.as_str(), reason.as_str(), message.as_str()), ("True", "SecretSynced", "secret synced"));
    let es = c.external_secret("db").await.unwrap();
    assert_eq!(es.data.pointer("/status/binding/name"), Some(&json!("db-creds")));
    assert!(es.data.pointer("/status/refreshTime").is_some());

    let metrics = ctl.metrics();
    assert!(
        metrics
            .contains(&format!(r#"externalsecret_status_condition{{condition="Ready",name="db",namespace="{}",status="True"}} 1"#, c.ns)),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(r#"externalsecret_sync_calls_total{{name="db",namespace="{}"}} 1"#, c.ns)), "{metrics}");
    assert!(
        metrics.contains(r#"externalsecret_provider_api_calls_count{call="GetSecret",provider="Fake",status="success"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("externalsecret_reconcile_duration_seconds_bucket"));

    // Settled: no more writes once in sync (stand-in counters).
    if let Some(before) = c.requests() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = c.requests().unwrap();
        for verb in ["create", "patch", "update"] {
            assert_eq!(before["by_verb"][verb], after["by_verb"][verb], "writes after settling: {before} -> {after}");
        }
    }
    // Deleting the ExternalSecret deletes its Secret (ownerReference; the stand-in's GC is immediate).
    c.delete("external-secrets.io/v1", "ExternalSecret", "db").await;
    eventually(60, "the Secret to be garbage-collected", || async { c.secret("db-creds").await.is_none().then_some(()) }).await;
    assert!(!ctl.log().contains("pw-create-1"), "a value reached the log");
}

#[tokio::test]
async fn a_deleted_or_edited_secret_is_repaired_at_once() {
    let c = cluster("repair").await;
    let _ctl = c.controller("ctl", &[], &[]);
    c.apply(fake_store("store", &[("/token", "tok-repair")])).await;
    c.apply(external_secret("app", "store", json!({"name": "app-token"}), &[("token", "/token", None)], "1h")).await;
    eventually(20, "the Secret", || async { c.secret("app-token").await }).await;

    // Edited out of band: restored well before the hour.
    c.merge("v1", "Secret", "app-token", json!({"data": {"token": "aGFja2Vk"}})).await;
    eventually(10, "the edit to be repaired", || async {
        c.secret("app-token").await.filter(|s| data(s).get("token").map(String::as_str) == Some("tok-repair"))
    })
    .await;
    // Deleted: recreated.
    c.delete("v1", "Secret", "app-token").await;
    let s = eventually(10, "the Secret to be recreated", || async { c.secret("app-token").await }).await;
    assert_eq!(data(&s).get("token").map(String::as_str), Some("tok-repair"));
}

#[tokio::test]
async fn a_store_change_requeues_its_external_secrets() {
    let c = cluster("store-change").await;
    let _ctl = c.controller("ctl", &[], &[]);
    c.apply(fake_store("store", &[("/k", "one")])).await;
    c.apply(external_secret("es", "store", json!({"name": "out"}), &[("v", "/k", None)], "1h")).await;
    eventually(20, "the Secret", || async { c.secret("out").await }).await;
    c.apply(fake_store("store", &[("/k", "two")])).await;
    eventually(10, "the new value", || async { c.secret("out").await.filter(|s| data(s)["v"] == "two") }).await;
}

#[tokio::test]
async fn a_remote_change_reaches_the_secret_after_the_refresh_interval() {
    let moto = common::moto();
    let c = cluster("remote-change").await;
    let key = format!("{}/db", c.ns);
    put_aws_secret(&moto.url, &key, r#"{"password":"first"}"#);
    let env = aws_env(&moto.url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ctl = c.controller("ctl", &["--namespaced-stores-identity", "all", "--min-refresh-interval", "1s"], &env);
    c.apply(aws_store("aws")).await;
    c.apply(external_secret("db", "aws", json!({"name": "db"}), &[("password", &key, Some("password"))], "2s")).await;
    eventually(20, "the Secret", || async { c.secret("db").await.filter(|s| data(s)["password"] == "first") }).await;
    put_aws_secret(&moto.url, &key, r#"{"password":"second"}"#);
    let started = Instant::now();
    eventually(15, "the refreshed value", || async { c.secret("db").await.filter(|s| data(s)["password"] == "second") }).await;
    assert!(started.elapsed() < Duration::from_secs(12));
    let metrics = ctl.metrics();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            r#"externalsecret_provider_api_calls_count{call="BatchGetSecretValue",provider="AWS/SecretsManager",status="success"}"#
        ) || l.starts_with(
            r#"externalsecret_provider_api_calls_count{call="GetSecretValue",provider="AWS/SecretsManager",status="success"}"#
        )),
        "{metrics}"
    );
    assert!(!ctl.log().contains("second") && !ctl.log().contains("first"), "a value reached the log");
}

#[tokio::test]
async fn a_provider_outage_leaves_the_secret_alone_and_recovers() {
    // A moto of this test's own, stopped and started again on the same port.
    let port = common::free_port();
    let start_moto = || {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    };
    let url = format!("http://127.0.0.1:{port}");
    let mut moto = start_moto();
    let c = cluster("outage").await;
    put_aws_secret(&url, "outage/db", "v1-before");
    let env = aws_env(&url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ctl = c.controller("ctl", &["--timeout", "3s", "--namespaced-stores-identity", "all", "--min-refresh-interval", "1s"], &env);
    c.apply(aws_store("aws")).await;
    c.apply(external_secret("db", "aws", json!({"name": "db"}), &[("v", "outage/db", None)], "1s")).await;
    let before = eventually(20, "the Secret", || async { c.secret("db").await }).await;
    assert_eq!(data(&before)["v"], "v1-before");

    moto.kill().unwrap();
    moto.wait().unwrap();
    let failed =
        eventually(30, "Ready=False", || async { c.external_secret("db").await.as_ref().and_then(ready).filter(|r| r.0 == "False") }).await;
    assert_eq!((failed.1.as_str(), failed.2.as_str()), ("SecretSyncedError", "could not get secret data from provider"));
    let during = c.secret("db").await.expect("the Secret is kept during the outage");
    assert_eq!(data(&during), data(&before));
    assert_eq!(during.metadata.resource_version, before.metadata.resource_version, "the Secret was written during the outage");

    let mut moto = start_moto();
    put_aws_secret(&url, "outage/db", "v2-after");
    eventually(40, "recovery", || async { c.secret("db").await.filter(|s| data(s)["v"] == "v2-after") }).await;
    eventually(10, "Ready=True", || async { c.external_secret("db").await.as_ref().and_then(ready).filter(|r| r.0 == "True") }).await;
    assert!(ctl.metrics().contains(&format!(r#"externalsecret_sync_calls_error{{name="db",namespace="{}"}}"#, c.ns)));
    let log = ctl.log();
    assert!(!log.contains("v1-before") && !log.contains("v2-after"), "a value reached the log");
    let _ = moto.kill();
    let _ = moto.wait();
}

#[tokio::test]
async fn deletion_policy_delete_removes_the_secret_through_the_finalizer() {
    let c = cluster("deletion-delete").await;
    let _ctl = c.controller("ctl", &[], &[]);
    c.apply(fake_store("store", &[("/k", "v")])).await;
    // Orphan + Delete: no ownerReference, so only the finalizer can delete the Secret.
    c.apply(external_secret(
        "es",
        "store",
        json!({"name": "out", "creationPolicy": "Orphan", "deletionPolicy": "Delete"}),
        &[("k", "/k", None)],
        "1h",
    ))
    .await;
    let s = eventually(20, "the Secret", || async { c.secret("out").await }).await;
    assert!(s.metadata.owner_references.unwrap_or_default().is_empty());
    let es = eventually(10, "the finalizer", || async {
        c.external_secret("es")
            .await
            .filter(|e| e.metadata.finalizers.iter().flatten().any(|f| f == "externalsecrets.external-secrets.io/externalsecret-cleanup"))
    })
    .await;
    assert!(es.metadata.deletion_timestamp.is_none());
    c.delete("external-secrets.io/v1", "ExternalSecret", "es").await;
    eventually(20, "the Secret to be deleted", || async { c.secret("out").await.is_none().then_some(()) }).await;
    eventually(10, "the ExternalSecret to go", || async { c.external_secret("es").await.is_none().then_some(()) }).await;
}

#[tokio::test]
async fn merge_writes_into_a_foreign_secret_and_keeps_its_keys() {
    let c = cluster("merge").await;
    let _ctl = c.controller("ctl", &[], &[]);
    c.apply(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shared"}, "type": "Opaque", "stringData": {"theirs": "kept"}}),
    )
    .await;
    c.apply(fake_store("store", &[("/k", "ours")])).await;
    c.apply(external_secret(
        "es",
        "store",
        json!({"name": "shared", "creationPolicy": "Merge", "deletionPolicy": "Merge"}),
        &[("mine", "/k", None)],
        "1h",
    ))
    .await;
    let s = eventually(20, "the merged key", || async { c.secret("shared").await.filter(|s| data(s).contains_key("mine")) }).await;
    assert_eq!(data(&s), BTreeMap::from([("mine".into(), "ours".into()), ("theirs".into(), "kept".into())]));
    assert!(s.metadata.owner_references.unwrap_or_default().is_empty(), "Merge never takes ownership");
    // deletionPolicy Merge: deleting the ExternalSecret takes back its key, label and hash only.
    eventually(10, "the finalizer", || async {
        c.external_secret("es").await.filter(|e| e.metadata.finalizers.iter().flatten().any(|f| f.ends_with("externalsecret-cleanup")))
    })
    .await;
    c.delete("external-secrets.io/v1", "ExternalSecret", "es").await;
    let s = eventually(20, "the key to be removed", || async { c.secret("shared").await.filter(|s| !data(s).contains_key("mine")) }).await;
    assert_eq!(data(&s), BTreeMap::from([("theirs".into(), "kept".into())]));
    assert!(!s.metadata.labels.unwrap_or_default().contains_key("reconcile.external-secrets.io/managed"));
    assert!(!s.metadata.annotations.unwrap_or_default().contains_key("reconcile.external-secrets.io/data-hash"));

    // Merge never creates a missing Secret: Ready=True, reason SecretMissing.
    c.apply(external_secret("missing", "store", json!({"name": "absent", "creationPolicy": "Merge"}), &[("mine", "/k", None)], "1h")).await;
    let r = eventually(20, "SecretMissing", || async { c.external_secret("missing").await.as_ref().and_then(ready) }).await;
    assert_eq!(r, ("True".into(), "SecretMissing".into(), "secret will not be created due to CreationPolicy=Merge".into()));
    assert!(c.secret("absent").await.is_none());
}

#[tokio::test]
async fn another_controller_class_is_left_alone() {
    let c = cluster("class").await;
    let _ctl = c.controller("ctl", &[], &[]);
    let mut theirs = fake_store("eso-store", &[("/k", "v")]);
    theirs["spec"]["controller"] = json!("eso");
    c.apply(theirs).await;
    c.apply(fake_store("our-store", &[("/k", "v")])).await;
    c.apply(external_secret("theirs", "eso-store", json!({"name": "theirs"}), &[("k", "/k", None)], "1h")).await;
    c.apply(external_secret("ours", "our-store", json!({"name": "ours"}), &[("k", "/k", None)], "1h")).await;
    // Ours is synced, so the controller has seen both; theirs has no Secret and no status.
    eventually(20, "our Secret", || async { c.secret("ours").await }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(c.secret("theirs").await.is_none());
    assert!(c.external_secret("theirs").await.unwrap().data.get("status").is_none_or(Value::is_null));

    // A missing store is the default controller's to report (as unclassed), with its name.
    c.apply(external_secret("lost", "nosuch", json!({"name": "lost"}), &[("k", "/k", None)], "1h")).await;
    let r = eventually(20, "Ready=False", || async { c.external_secret("lost").await.as_ref().and_then(ready) }).await;
    assert_eq!((r.0.as_str(), r.1.as_str()), ("False", "SecretSyncedError"));
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.client.clone(), &c.ns);
    let note = eventually(10, "the Warning event", || async {
        events.list(&Default::default()).await.ok()?.items.into_iter().find(|e| e.reason.as_deref() == Some("UpdateFailed"))?.note
    })
    .await;
    assert!(note.contains("SecretStore `nosuch` not found in namespace"), "{note}");
    assert!(!note.contains("--stores"), "{note}");

    // A controller of class `eso` takes theirs.
    let _eso = c.controller("eso", &["--controller-class", "eso"], &[]);
    eventually(20, "their Secret from the `eso` controller", || async { c.secret("theirs").await }).await;
}

#[tokio::test]
async fn a_failing_api_server_write_is_retried_and_reported() {
    let c = cluster("write-failure").await;
    let _ctl = c.controller("ctl", &[], &[]);
    c.apply(fake_store("store", &[("/k", "v")])).await;
    if !c.fail_next("secrets", "patch", 500, 2) {
        return; // needs the stand-in's failure injection
    }
    c.apply(external_secret("es", "store", json!({"name": "out"}), &[("k", "/k", None)], "1h")).await;
    // Reported as ESO does, then retried with backoff until the write goes through.
    eventually(20, "the Secret after retries", || async { c.secret("out").await }).await;
    eventually(10, "Ready=True", || async { c.external_secret("es").await.as_ref().and_then(ready).filter(|r| r.0 == "True") }).await;
}

#[tokio::test]
async fn one_of_two_replicas_holds_the_lease_and_the_other_takes_over() {
    let c = cluster("leader").await;
    c.apply(fake_store("store", &[("/k", "v")])).await;
    let lease_args = ["--leader-elect", "--lease-name", "extsecret-test", "--lease-namespace", &c.ns, "--lease-duration", "3"];
    let mut a = c.controller("replica-a", &lease_args, &[]);
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), &c.ns);
    let holder = eventually(20, "a holder", || async {
        leases.get_opt("extsecret-test").await.ok().flatten().and_then(|l| l.spec?.holder_identity).filter(|h| !h.is_empty())
    })
    .await;
    assert_eq!(holder, "replica-a");
    let b = c.controller("replica-b", &lease_args, &[]);
    c.apply(external_secret("first", "store", json!({"name": "first"}), &[("k", "/k", None)], "1h")).await;
    eventually(20, "the first Secret", || async { c.secret("first").await }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(b.log().contains("waiting for Lease"), "{}", b.log());
    assert!(!b.log().contains("holding Lease"), "two active writers:\n{}", b.log());

    // The leader dies without releasing: the standby takes over once the Lease expires.
    a.kill();
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let holder = leases.get_opt("extsecret-test").await.ok().flatten().and_then(|l| l.spec?.holder_identity);
        if holder.as_deref() == Some("replica-b") {
            break;
        }
        assert!(Instant::now() < deadline, "replica-b did not take the Lease (holder {holder:?}):\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.apply(external_secret("second", "store", json!({"name": "second"}), &[("k", "/k", None)], "1h")).await;
    eventually(30, "the second Secret from replica-b", || async { c.secret("second").await }).await;
    assert!(b.log().contains("holding Lease"));
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_a_restart_reads_nothing_not_due() {
    let c = cluster("sigterm").await;
    let mut ctl = c.controller("ctl", &[], &[]);
    c.apply(fake_store("store", &[("/k", "v")])).await;
    c.apply(external_secret("es", "store", json!({"name": "out"}), &[("k", "/k", None)], "1h")).await;
    eventually(20, "the Secret", || async { c.secret("out").await }).await;
    eventually(10, "Ready=True", || async { c.external_secret("es").await.as_ref().and_then(ready).filter(|r| r.0 == "True") }).await;
    assert_eq!(ctl.terminate(), Some(0), "{}", ctl.log());
    assert!(ctl.log().contains("controller stopped"));

    // A restart inside the interval: ready once its cache has synced, and no provider read.
    let again = c.controller("ctl2", &[], &[]);
    eventually(20, "/readyz", || async {
        let r = std::panic::catch_unwind(|| http_text("GET", &format!("http://127.0.0.1:{}/readyz", again.metrics_port), None)).ok();
        r.filter(|b| b == "ok")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = again.metrics();
    assert!(!metrics.contains("externalsecret_provider_api_calls_count{"), "a restart read the provider:\n{metrics}");
    assert!(!metrics.contains("externalsecret_sync_calls_total{"), "{metrics}");
}

#[tokio::test]
async fn aws_jwt_auth_exchanges_a_service_account_token() {
    if std::env::var("EXTSECRET_TEST_KUBECONFIG").is_ok_and(|k| !k.is_empty()) {
        return; // moto accepts any web identity token; a real cluster's TokenRequest is not needed here
    }
    let moto = common::moto();
    let c = cluster("jwt").await;
    let key = format!("{}/jwt", c.ns);
    put_aws_secret(&moto.url, &key, "via-web-identity");
    // No static keys in the controller's environment: only the web identity can read.
    let ctl = c.controller("ctl", &[], &[("AWS_ENDPOINT_URL", &moto.url), ("AWS_REGION", "us-east-1")]);
    c.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/reader"}}})).await;
    let mut store = aws_store("aws");
    store["spec"]["provider"]["aws"]["auth"] = json!({"jwt": {"serviceAccountRef": {"name": "reader"}}});
    c.apply(store).await;
    c.apply(external_secret("es", "aws", json!({"name": "out"}), &[("v", &key, None)], "1h")).await;
    let s = eventually(30, "the Secret", || async { c.secret("out").await }).await;
    assert_eq!(data(&s)["v"], "via-web-identity");
    let requests = c.requests().unwrap();
    assert!(requests["by_resource"]["serviceaccounts/token"].as_u64().unwrap_or(0) >= 1, "{requests}");
    assert!(!ctl.log().contains("via-web-identity"));
}

#[tokio::test]
async fn azure_service_account_ref_presents_a_token_request_token() {
    if std::env::var("EXTSECRET_TEST_KUBECONFIG").is_ok_and(|k| !k.is_empty()) {
        return; // the Key Vault stand-in trusts the stand-in API server's tokens only
    }
    let c = cluster("azure-sa").await;
    let kv = common::keyvault(&json!({
        "tenant": "tenant-sa",
        "clients": {"sa-client": {"federated_subject": format!("system:serviceaccount:{}:kv-reader", c.ns)}},
        "secrets": {"db": "from-a-service-account-token"},
    }));
    c.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kv-reader", "annotations": {
        "azure.workload.identity/client-id": "sa-client", "azure.workload.identity/tenant-id": "tenant-sa"}}}))
        .await;
    c.apply(json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "kv"},
        "spec": {"provider": {"azurekv": {"vaultUrl": kv.url, "authType": "WorkloadIdentity", "serviceAccountRef": {"name": "kv-reader"}}}}}))
    .await;
    c.apply(external_secret("es", "kv", json!({"name": "out"}), &[("v", "db", None)], "1h")).await;
    let ca = kv.ca.to_str().unwrap().to_string();
    let ctl = c.controller("ctl", &[], &[("SSL_CERT_FILE", &ca), ("AZURE_AUTHORITY_HOST", &kv.authority)]);
    let s = eventually(30, "the Secret", || async { c.secret("out").await }).await;
    assert_eq!(data(&s)["v"], "from-a-service-account-token");
    let tokens: Vec<Value> = kv.requests().into_iter().filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/token"))).collect();
    assert_eq!(tokens.len(), 1, "one token exchange: {tokens:?}");
    assert_eq!((tokens[0]["client_id"].as_str(), tokens[0]["token_kind"].as_str()), (Some("sa-client"), Some("client_assertion")));
    assert!(!ctl.log().contains("from-a-service-account-token"));
}

/// Notes of the events of `reason` about the ExternalSecret `name`.
async fn event_notes(c: &Cluster, name: &str, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.client.clone(), &c.ns);
    let list = events.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
    list.into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason) && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn a_template_that_runs_long_fails_alone_and_holds_no_other_external_secret_back() {
    let c = cluster("long-template").await;
    c.apply(fake_store("store", &[("/k", "plain-value-long-tpl")])).await;
    // Nested loops of 3,000 × 3,000 × 3,000 in handlebars (no iteration budget there).
    let bomb_template = r#"{{#each (splitList " " (indent 3000 ""))}}{{#each (splitList " " (indent 3000 ""))}}{{#each (splitList " " (indent 3000 ""))}}x{{/each}}{{/each}}{{/each}}"#;
    let mut bomb =
        external_secret("bomb", "store", json!({"name": "bomb", "template": {"data": {"k": bomb_template}}}), &[("v", "/k", None)], "1h");
    bomb["metadata"]["annotations"] = json!({"extsecret.io/template-engine": "handlebars"});
    c.apply(bomb).await;
    c.apply(external_secret("plain", "store", json!({"name": "plain"}), &[("v", "/k", None)], "1h")).await;
    // Both exist before the controller starts: they are resolved in one wave.
    let started = Instant::now();
    let ctl = c.controller("ctl", &["--timeout", "6s"], &[]);
    let s = eventually(20, "the plain Secret", || async { c.secret("plain").await }).await;
    assert_eq!(data(&s)["v"], "plain-value-long-tpl");
    assert!(started.elapsed() < Duration::from_millis(4500), "held back by another ExternalSecret's template: {:?}", started.elapsed());
    let r = eventually(30, "the bomb's Ready=False", || async {
        c.external_secret("bomb").await.as_ref().and_then(ready).filter(|r| r.0 == "False")
    })
    .await;
    assert_eq!(r.1, "SecretSyncedError");
    assert!(c.secret("bomb").await.is_none());
    let notes = eventually(10, "the bomb's Warning event", || async {
        Some(event_notes(&c, "bomb", "UpdateFailed").await).filter(|n| !n.is_empty())
    })
    .await;
    assert!(notes[0].contains(&format!("ExternalSecret {}/bomb: spec", c.ns)), "{notes:?}");
    assert!(event_notes(&c, "plain", "UpdateFailed").await.is_empty(), "the plain ExternalSecret was failed with the bomb");
    let ready_plain = c.external_secret("plain").await.as_ref().and_then(ready).unwrap();
    assert_eq!(ready_plain.0, "True");
    assert!(!ctl.log().contains("plain-value-long-tpl"), "a value reached the log");
}

#[tokio::test]
async fn a_store_that_never_answers_fails_only_its_own_external_secrets_and_is_named() {
    let c = cluster("slow-store").await;
    let port = common::silent_port();
    c.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "az"},
        "stringData": {"id": "2d3c8a1e-1111-4222-8333-444455556666", "secret": "client-secret-slow"}}))
        .await;
    c.apply(json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "slow"},
        "spec": {"provider": {"azurekv": {"vaultUrl": format!("https://127.0.0.1:{port}"), "tenantId": "72f988bf-0000-4000-8000-00000000000a",
            "authSecretRef": {"clientId": {"name": "az", "key": "id"}, "clientSecret": {"name": "az", "key": "secret"}}}}}}))
    .await;
    c.apply(fake_store("fast", &[("/k", "fast-value-slow-store")])).await;
    c.apply(external_secret("hangs", "slow", json!({"name": "hangs"}), &[("v", "db", None)], "1h")).await;
    c.apply(external_secret("quick", "fast", json!({"name": "quick"}), &[("v", "/k", None)], "1h")).await;
    // Token requests go to the same silent endpoint.
    let authority = format!("https://127.0.0.1:{port}");
    let ctl = c.controller("ctl", &["--timeout", "4s"], &[("AZURE_AUTHORITY_HOST", &authority)]);
    let s = eventually(20, "the healthy store's Secret", || async { c.secret("quick").await }).await;
    assert_eq!(data(&s)["v"], "fast-value-slow-store");
    let r = eventually(30, "Ready=False for the slow store's ExternalSecret", || async {
        c.external_secret("hangs").await.as_ref().and_then(ready).filter(|r| r.0 == "False")
    })
    .await;
    assert_eq!((r.1.as_str(), r.2.as_str()), ("SecretSyncedError", "could not get secret data from provider"));
    let notes =
        eventually(10, "the Warning event", || async { Some(event_notes(&c, "hangs", "UpdateFailed").await).filter(|n| !n.is_empty()) })
            .await;
    assert!(notes[0].contains(&format!("SecretStore {}/slow (host 127.0.0.1:{port}) did not answer", c.ns)), "{notes:?}");
    assert!(event_notes(&c, "quick", "UpdateFailed").await.is_empty(), "the healthy store's ExternalSecret was failed with the slow one");
    assert_eq!(c.external_secret("quick").await.as_ref().and_then(ready).unwrap().0, "True");
    assert!(!ctl.log().contains("fast-value-slow-store") && !ctl.log().contains("client-secret-slow"), "a value reached the log");
}

#[tokio::test]
async fn a_find_that_shrinks_removes_the_vanished_keys_and_names_them() {
    let c = cluster("find-shrinks").await;
    let _ctl = c.controller("ctl", &[], &[]);
    c.apply(fake_store("store", &[("/app/a", "va"), ("/app/b", "vb"), ("/other", "vo")])).await;
    c.apply(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "es"},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "store", "kind": "SecretStore"}, "target": {"name": "out"},
                 "dataFrom": [{"find": {"path": "/app/", "name": {"regexp": "."}}, "rewrite": [{"regexp": {"source": "^/app/", "target": ""}}]}]},
    }))
    .await;
    let s = eventually(20, "the Secret", || async { c.secret("out").await.filter(|s| data(s).len() == 2) }).await;
    assert_eq!(data(&s), BTreeMap::from([("a".into(), "va".into()), ("b".into(), "vb".into())]));

    // `b` vanishes (a store change refreshes at once): removed, and said so in a Normal event.
    c.apply(fake_store("store", &[("/app/a", "va"), ("/other", "vo")])).await;
    let s = eventually(15, "`b` to be removed", || async { c.secret("out").await.filter(|s| !data(s).contains_key("b")) }).await;
    assert_eq!(data(&s), BTreeMap::from([("a".into(), "va".into())]));
    let notes = eventually(10, "the Updated event naming `b`", || async {
        Some(event_notes(&c, "es", "Updated").await).filter(|n| n.iter().any(|n| n.contains("`b`")))
    })
    .await;
    assert!(notes.iter().any(|n| n == "secret updated; removed keys the ExternalSecret no longer produces: `b`"), "{notes:?}");

    // Shrinking to nothing stays an error: the Secret is left as it is.
    c.apply(fake_store("store", &[("/other", "vo")])).await;
    eventually(15, "Ready=False", || async { c.external_secret("es").await.as_ref().and_then(ready).filter(|r| r.0 == "False") }).await;
    assert_eq!(data(&c.secret("out").await.unwrap()), BTreeMap::from([("a".into(), "va".into())]));
}

#[tokio::test]
async fn stores_of_different_controller_classes_are_reported_by_the_default_controller() {
    let c = cluster("mixed-classes").await;
    let _ctl = c.controller("ctl", &[], &[]);
    let mut theirs = fake_store("eso-store", &[("/k", "v")]);
    theirs["spec"]["controller"] = json!("eso");
    c.apply(theirs).await;
    c.apply(fake_store("our-store", &[("/k", "v")])).await;
    let mut es = external_secret("mixed", "our-store", json!({"name": "mixed"}), &[("a", "/k", None), ("b", "/k", None)], "1h");
    es["spec"]["data"][1]["sourceRef"] = json!({"storeRef": {"name": "eso-store", "kind": "SecretStore"}});
    c.apply(es).await;
    let r = eventually(20, "Ready=False", || async { c.external_secret("mixed").await.as_ref().and_then(ready) }).await;
    assert_eq!((r.0.as_str(), r.1.as_str()), ("False", "SecretSyncedError"));
    let notes =
        eventually(10, "the Warning event", || async { Some(event_notes(&c, "mixed", "UpdateFailed").await).filter(|n| !n.is_empty()) })
            .await;
    assert!(notes[0].contains("its stores belong to different controller classes (`default`, `eso`)"), "{notes:?}");
    assert!(c.secret("mixed").await.is_none());
}

// ---------------------------------------------------------------------------------------------
// Whose credentials go where: namespaced SecretStores and the controller's own identity
// ---------------------------------------------------------------------------------------------

/// A SecretStore that would use the controller's own workload identity (its federated token
/// file) with `host` as Azure Stack authority and vault.
fn azure_store_aimed_at(name: &str, host: &common::KeyVault) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name},
        "spec": {"provider": {"azurekv": {"vaultUrl": host.url, "authType": "WorkloadIdentity", "tenantId": "tenant-ctl",
            "environmentType": "AzureStackCloud", "customCloudConfig": {"activeDirectoryEndpoint": host.url}}}}})
}

/// The controller's own identity: AWS keys for moto and an Azure federated token file.
fn controller_identity(c: &Cluster, moto: &str, ca: &std::path::Path) -> Vec<(&'static str, String)> {
    let token = common::write(c.dir.path(), "azure-token", "eyJhbGciOiJSUzI1NiJ9.CONTROLLER-OWN-TOKEN.sig");
    let mut env = aws_env(moto);
    env.extend([
        ("AZURE_FEDERATED_TOKEN_FILE", token.to_str().unwrap().to_string()),
        ("AZURE_CLIENT_ID", "ctl-client".into()),
        ("AZURE_TENANT_ID", "tenant-ctl".into()),
        ("SSL_CERT_FILE", ca.to_str().unwrap().to_string()),
    ]);
    env
}

async fn ready_false(c: &Cluster, es: &str) -> String {
    let what = format!("Ready=False on {es}");
    eventually(30, &what, || async { c.external_secret(es).await.as_ref().and_then(ready).filter(|r| r.0 == "False") }).await.2
}

#[tokio::test]
async fn namespaced_stores_may_not_use_the_controllers_identity_by_default() {
    let moto = common::moto();
    let c = cluster("identity-default").await;
    let evil = common::keyvault(&json!({"tenant": "tenant-ctl", "clients": {}, "secrets": {"db": "hostile-value"}}));
    let env = controller_identity(&c, &moto.url, &evil.ca);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let key = format!("{}/db", c.ns);
    put_aws_secret(&moto.url, &key, "not-for-this-tenant");
    c.apply(aws_store("aws")).await;
    c.apply(azure_store_aimed_at("kv", &evil)).await;
    let ctl = c.controller("ctl", &[], &env);
    c.apply(external_secret("via-aws", "aws", json!({"name": "via-aws"}), &[("v", &key, None)], "1h")).await;
    c.apply(external_secret("via-kv", "kv", json!({"name": "via-kv"}), &[("v", "db", None)], "1h")).await;

    for (es, store) in [("via-kv", "kv"), ("via-aws", "aws")] {
        let message = ready_false(&c, es).await;
        assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
        let named = format!("SecretStore {}/{store}: [Refused]", c.ns);
        assert!(message.contains(&named) && message.contains("--namespaced-stores-identity"), "{message}");
        assert!(message.contains("`all` is ESO's behaviour"), "{message}");
    }
    assert!(c.secret("via-aws").await.is_none() && c.secret("via-kv").await.is_none());
    assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
    // The SecretStore itself says why, as ESO marks an invalid store.
    let (_, reason, message) = eventually(10, "the SecretStore's Ready=False", || async {
        let store = c.api("external-secrets.io/v1", "SecretStore").get_opt("kv").await.unwrap()?;
        ready(&store).filter(|r| r.0 == "False")
    })
    .await;
    assert_eq!(reason, "InvalidProviderConfig");
    assert!(message.starts_with("[Refused]") && message.contains("--namespaced-stores-identity"), "{message}");
    // At start the controller names each store it will refuse.
    let log = ctl.log();
    for store in ["aws", "kv"] {
        assert!(log.contains(&format!("SecretStore {}/{store}: [Refused]", c.ns)), "{log}");
    }
    assert!(!log.contains("CONTROLLER-OWN-TOKEN") && !log.contains("not-for-this-tenant"));
}

#[tokio::test]
async fn with_namespaced_stores_identity_all_the_identity_goes_only_to_well_known_or_allowed_hosts() {
    let moto = common::moto();
    let c = cluster("identity-all").await;
    let evil = common::keyvault(&json!({"tenant": "tenant-ctl", "clients": {}, "secrets": {"db": "hostile-value"}}));
    let env = controller_identity(&c, &moto.url, &evil.ca);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let key = format!("{}/db", c.ns);
    put_aws_secret(&moto.url, &key, "eso-style");
    // ESO's behaviour: a namespaced AWS store on the controller's own identity works.
    let _ctl = c.controller("ctl", &["--namespaced-stores-identity", "all"], &env);
    c.apply(aws_store("aws")).await;
    c.apply(azure_store_aimed_at("kv", &evil)).await;
    c.apply(external_secret("via-aws", "aws", json!({"name": "via-aws"}), &[("v", &key, None)], "1h")).await;
    c.apply(external_secret("via-kv", "kv", json!({"name": "via-kv"}), &[("v", "db", None)], "1h")).await;
    let s = eventually(30, "the AWS Secret", || async { c.secret("via-aws").await }).await;
    assert_eq!(data(&s)["v"], "eso-style");
    let message = ready_false(&c, "via-kv").await;
    assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
    assert!(message.contains(&format!("SecretStore {}/kv: [Refused]", c.ns)), "{message}");
    assert!(message.contains("activeDirectoryEndpoint names host `127.0.0.1`") && message.contains("--allowed-hosts"), "{message}");
    assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
}

/// F6: a tenant's SecretStore may not borrow the controller's TokenRequest right to get a token
/// the API server accepts, nor a token of another audience for a host it chose.
#[tokio::test]
async fn service_account_tokens_never_get_an_api_server_audience_nor_another_audience_for_a_tenants_host() {
    let moto = common::moto();
    let c = cluster("sa-audience").await;
    let evil = common::keyvault(&json!({"tenant": "attacker-tenant", "clients": {}, "secrets": {"db": "hostile-value"}}));
    let env = controller_identity(&c, &moto.url, &evil.ca);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer",
        "annotations": {"azure.workload.identity/client-id": "deployer-client"}}}))
        .await;
    let store = |name: &str, audiences: Value| {
        let mut s = azure_store_aimed_at(name, &evil);
        s["spec"]["provider"]["azurekv"]["tenantId"] = json!("attacker-tenant");
        s["spec"]["provider"]["azurekv"]["serviceAccountRef"] = json!({"name": "deployer", "audiences": audiences});
        s
    };
    c.apply(store("api", json!(["https://kubernetes.default.svc.cluster.local"]))).await;
    c.apply(store("other", json!(["api://some-app"]))).await;
    let ctl = c.controller("ctl", &[], &env);
    c.apply(external_secret("via-api", "api", json!({"name": "via-api"}), &[("v", "db", None)], "1h")).await;
    c.apply(external_secret("via-other", "other", json!({"name": "via-other"}), &[("v", "db", None)], "1h")).await;

    let message = ready_false(&c, "via-api").await;
    assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
    assert!(message.contains(&format!("SecretStore {}/api: [Refused]", c.ns)), "{message}\n{}", ctl.log());
    assert!(message.contains("`https://kubernetes.default.svc.cluster.local`, which the Kubernetes API server accepts"), "{message}");
    assert!(message.contains(&format!("ServiceAccount {}/deployer", c.ns)) && message.contains("no switch allows it"), "{message}");
    let message = ready_false(&c, "via-other").await;
    assert!(message.contains(&format!("SecretStore {}/other: [Refused]", c.ns)), "{message}");
    assert!(message.contains("activeDirectoryEndpoint names host `127.0.0.1`"), "{message}");
    assert!(message.contains("`api://AzureADTokenExchange`") && message.contains("`azurekv=127.0.0.1` to --allowed-hosts"), "{message}");
    // The API server's own URL (as the controller's client knows it) is refused too.
    if let Some(url) = &c.url {
        c.apply(store("server", json!([url]))).await;
        c.apply(external_secret("via-server", "server", json!({"name": "via-server"}), &[("v", "db", None)], "1h")).await;
        let message = ready_false(&c, "via-server").await;
        assert!(message.contains(&format!("`{url}`, which the Kubernetes API server accepts")), "{message}");
    }
    assert!(c.secret("via-api").await.is_none() && c.secret("via-other").await.is_none());
    assert!(evil.requests().is_empty(), "the hostile host received: {:#?}", evil.requests());
    // Refused before any token was even requested.
    if let Some(requests) = c.requests() {
        assert_eq!(requests["by_resource"]["serviceaccounts/token"].as_u64().unwrap_or(0), 0, "{requests}");
    }
    let log = ctl.log();
    assert!(log.contains(&format!("SecretStore {}/api: [Refused]", c.ns)), "{log}");
}

#[tokio::test]
async fn assumable_roles_let_a_namespace_assume_only_the_roles_it_is_given() {
    let moto = common::moto();
    let c = cluster("assumable-roles").await;
    let key = format!("{}/db", c.ns);
    put_aws_secret(&moto.url, &key, "through-an-allowed-role");
    let roles = common::write(
        c.dir.path(),
        "roles.yaml",
        &format!("{}:\n  - arn:aws:iam::123456789012:role/{}-*\n", c.ns, c.ns.split('-').next().unwrap()),
    );
    let env = aws_env(&moto.url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _ctl = c.controller("ctl", &["--assumable-roles", roles.to_str().unwrap()], &env);
    let prefix = c.ns.split('-').next().unwrap().to_string();
    for (store, role) in [
        ("allowed", Some(format!("arn:aws:iam::123456789012:role/{prefix}-reader"))),
        ("admin", Some("arn:aws:iam::123456789012:role/admin".to_string())),
        ("plain", None),
    ] {
        let mut s = aws_store(store);
        if let Some(role) = role {
            s["spec"]["provider"]["aws"]["role"] = json!(role);
        }
        c.apply(s).await;
        c.apply(external_secret(store, store, json!({"name": store}), &[("v", &key, None)], "1h")).await;
    }
    let s = eventually(30, "the Secret through the allowed role", || async { c.secret("allowed").await }).await;
    assert_eq!(data(&s)["v"], "through-an-allowed-role");
    let admin = ready_false(&c, "admin").await;
    assert!(admin.contains("role `arn:aws:iam::123456789012:role/admin`") && admin.contains("--assumable-roles"), "{admin}");
    let plain = ready_false(&c, "plain").await;
    assert!(plain.contains("--namespaced-stores-identity"), "the identity itself is not granted: {plain}");
    assert!(c.secret("admin").await.is_none() && c.secret("plain").await.is_none());
}

#[tokio::test]
async fn a_tenants_own_credentials_go_to_its_own_host() {
    let c = cluster("own-credentials").await;
    let kv = common::keyvault(&json!({
        "tenant": "tenant-own",
        "clients": {"own-client": {"secret": "own-client-secret"}},
        "secrets": {"db": "with-own-credentials"},
    }));
    c.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kv-creds"},
        "stringData": {"client-id": "own-client", "client-secret": "own-client-secret"}}))
        .await;
    c.apply(json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "kv"},
        "spec": {"provider": {"azurekv": {"vaultUrl": kv.url, "tenantId": "tenant-own", "environmentType": "AzureStackCloud",
            "customCloudConfig": {"activeDirectoryEndpoint": kv.url},
            "authSecretRef": {"clientId": {"name": "kv-creds", "key": "client-id"}, "clientSecret": {"name": "kv-creds", "key": "client-secret"}}}}}}))
    .await;
    c.apply(external_secret("es", "kv", json!({"name": "out"}), &[("v", "db", None)], "1h")).await;
    let ca = kv.ca.to_str().unwrap().to_string();
    let ctl = c.controller("ctl", &[], &[("SSL_CERT_FILE", &ca)]);
    let s = eventually(30, "the Secret", || async { c.secret("out").await }).await;
    assert_eq!(data(&s)["v"], "with-own-credentials");
    assert!(!ctl.log().contains("[Refused]"), "{}", ctl.log());
}
