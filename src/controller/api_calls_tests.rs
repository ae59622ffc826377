//! Exact API calls of one reconcile, against tower-test's mock of the kube client's HTTP
//! service (the pattern kube-rs documents): method, path, query (field manager, force) and body
//! of each request, and the 404 / 409 paths. Each test plays the API server in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};
use tower_test::mock::Handle;

use super::reconcile::{reconcile, Context};
use super::wave::{WaveConfig, Waves};
use super::{metrics::Metrics, target};
use crate::resolve::client_cache::ClientCache;
use crate::settings::Settings;

type ApiServer = Handle<Request<Body>, Response<Body>>;

fn context() -> (Arc<Context>, ApiServer, Arc<Metrics>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let settings = Settings { controller: true, ..Settings::default() };
    let metrics = Arc::new(Metrics::new());
    let waves = Waves::start(WaveConfig {
        client: client.clone(),
        settings: settings.clone(),
        controller_class: "default".into(),
        cache: Arc::new(ClientCache::new(Arc::new(|_, _, _| {}))),
        window: Duration::from_millis(1),
        max_wait: Duration::from_millis(5),
        max: 10,
        on_wave: None,
    });
    let ctx = Context {
        client: client.clone(),
        settings,
        waves,
        metrics: metrics.clone(),
        events: super::events::Events::new(client, None),
        failures: Mutex::new(HashMap::new()),
        targets: Mutex::new(HashMap::new()),
        forced: Mutex::new(Default::default()),
        synced: Mutex::new(HashMap::new()),
        min_refresh: super::policy::DEFAULT_MIN_REFRESH,
        raised: Mutex::new(HashMap::new()),
    };
    (Arc::new(ctx), handle, metrics)
}

fn external_secret(extra_target: Value) -> Arc<super::objects::ExternalSecretObject> {
    let mut target = json!({ "name": "db-creds" });
    target.as_object_mut().unwrap().extend(extra_target.as_object().unwrap().clone());
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {
                "name": "db", "namespace": "apps", "uid": "uid-1", "generation": 1, "resourceVersion": "10",
                "labels": { "app.kubernetes.io/instance": "argo-app", "team": "db" },
            },
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": { "name": "store", "kind": "SecretStore" },
                "target": target,
                "data": [{ "secretKey": "password", "remoteRef": { "key": "/db", "property": "password" } }],
            },
        }))
        .unwrap(),
    )
}

fn store() -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": { "name": "store", "namespace": "apps", "uid": "uid-s", "generation": 1, "resourceVersion": "5" },
        "spec": { "provider": { "fake": { "data": [{ "key": "/db", "value": "{\"password\":\"hunter2\"}" }] } } },
    })
}

fn not_found(kind: &str, name: &str) -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
        "message": format!("{kind} \"{name}\" not found")});
    Response::builder().status(404).body(Body::from(serde_json::to_vec(&status).unwrap())).unwrap()
}

fn ok(v: Value) -> Response<Body> {
    Response::builder().status(200).body(Body::from(serde_json::to_vec(&v).unwrap())).unwrap()
}

/// The next request: method, path with query, and JSON body (`Null` when empty).
async fn next(server: &mut ApiServer) -> (String, String, Value, tower_test::mock::SendResponse<Response<Body>>) {
    let (req, send) =
        tokio::time::timeout(Duration::from_secs(5), server.next_request()).await.expect("a request in time").expect("a request");
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (method, uri, body, send)
}

/// The requeue delay of an Action in seconds (kube-runtime exposes it only through Debug).
fn requeue_secs(action: &Action) -> f64 {
    let text = format!("{action:?}");
    let start = text.find("Some(").expect("a requeue") + 5;
    let end = start + text[start..].find("s)").expect("seconds");
    text[start..end].parse().expect("a number")
}

fn query(uri: &str) -> HashMap<String, String> {
    uri.split_once('?')
        .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.replace("%2F", "/"))).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn creates_the_secret_with_server_side_apply_then_reports_status() {
    let (ctx, mut server, metrics) = context();
    let es = external_secret(json!({}));
    let run = tokio::spawn(reconcile(es, ctx));

    let (m, uri, _, send) = next(&mut server).await;
    assert_eq!((m.as_str(), uri.as_str()), ("GET", "/api/v1/namespaces/apps/secrets/db-creds"));
    send.send_response(not_found("secrets", "db-creds"));

    let (m, uri, _, send) = next(&mut server).await;
    assert_eq!((m.as_str(), uri.as_str()), ("GET", "/apis/external-secrets.io/v1/namespaces/apps/secretstores/store"));
    send.send_response(ok(store()));

    let (m, uri, body, send) = next(&mut server).await;
    assert_eq!(m, "PATCH");
    assert!(uri.starts_with("/api/v1/namespaces/apps/secrets/db-creds?"), "{uri}");
    let q = query(&uri);
    assert_eq!(q.get("fieldManager").map(String::as_str), Some("externalsecrets.external-secrets.io/db"));
    assert_eq!(q.get("force").map(String::as_str), Some("true"));
    let hash = super::hash::data_hash([(&"password".to_string(), b"hunter2".as_slice())]);
    assert_eq!(
        body,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "db-creds", "namespace": "apps",
                // Argo CD's tracking label is not copied (ESO #68).
                "labels": { "reconcile.external-secrets.io/created-by": super::hash::created_by("apps", "db"),
                            "reconcile.external-secrets.io/managed": "true", "team": "db" },
                "annotations": { "reconcile.external-secrets.io/data-hash": hash },
                "ownerReferences": [{ "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "name": "db", "uid": "uid-1", "controller": true, "blockOwnerDeletion": true }],
            },
            "type": "Opaque",
            "data": { "password": "aHVudGVyMg==" },
        })
    );
    send.send_response(ok(body.clone()));

    let (m, uri, body, send) = next(&mut server).await;
    assert_eq!((m.as_str(), uri.as_str()), ("POST", "/apis/events.k8s.io/v1/namespaces/apps/events?"));
    assert_eq!(
        (body["reason"].as_str(), body["note"].as_str(), body["type"].as_str()),
        (Some("Created"), Some("secret created"), Some("Normal"))
    );
    send.send_response(ok(body));

    let (m, uri, body, send) = next(&mut server).await;
    assert_eq!((m.as_str(), uri.as_str()), ("PATCH", "/apis/external-secrets.io/v1/namespaces/apps/externalsecrets/db/status?"));
    let status = &body["status"];
    assert_eq!(status["conditions"][0]["type"], json!("Ready"));
    assert_eq!(status["conditions"][0]["status"], json!("True"));
    assert_eq!(status["conditions"][0]["reason"], json!("SecretSynced"));
    assert_eq!(status["binding"], json!({"name": "db-creds"}));
    assert!(status["syncedResourceVersion"].as_str().unwrap().starts_with("1-"));
    send.send_response(ok(json!({})));

    let action = run.await.unwrap().expect("reconciled");
    // Next refresh: the hour plus a spread of at most 3 minutes.
    assert!((3590.0..=3781.0).contains(&requeue_secs(&action)), "{action:?}");
    let text = String::from_utf8(metrics.render()).unwrap();
    assert!(text.contains(r#"externalsecret_status_condition{condition="Ready",name="db",namespace="apps",status="True"} 1"#));
    assert!(text.contains(r#"externalsecret_sync_calls_total{name="db",namespace="apps"} 1"#));
    assert!(!text.contains("hunter2"));
}

#[tokio::test]
async fn keys_no_longer_named_are_removed_after_the_apply() {
    let (ctx, mut server, _) = context();
    let run = tokio::spawn(reconcile(external_secret(json!({ "creationPolicy": "Orphan" })), ctx));
    let (_, _, _, send) = next(&mut server).await;
    send.send_response(ok(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "db-creds", "namespace": "apps", "labels": { target::MANAGED_LABEL: "true" } },
        "data": { "password": "b2xk", "stale": "eA==" },
    })));
    let (_, _, _, send) = next(&mut server).await;
    send.send_response(ok(store()));
    let (m, uri, body, send) = next(&mut server).await;
    assert_eq!(m, "PATCH");
    assert!(body["metadata"].get("ownerReferences").is_none(), "Orphan: no ownerReference");
    assert_eq!(body["data"], json!({ "password": "aHVudGVyMg==" }));
    send.send_response(ok(body));
    let _ = uri;
    let (m, uri, body, send) = next(&mut server).await;
    assert_eq!((m.as_str(), uri.as_str()), ("PATCH", "/api/v1/namespaces/apps/secrets/db-creds?"));
    assert_eq!(body, json!({ "data": { "stale": null } }));
    send.send_response(ok(json!({})));
    let (_, uri, body, send) = next(&mut server).await;
    assert!(uri.contains("/events"));
    assert_eq!(body["reason"], json!("Updated"));
    send.send_response(ok(body));
    let (_, uri, _, send) = next(&mut server).await;
    assert!(uri.ends_with("/externalsecrets/db/status?"));
    send.send_response(ok(json!({})));
    run.await.unwrap().expect("reconciled");
}

#[tokio::test]
async fn a_conflict_requeues_at_once_without_status() {
    let (ctx, mut server, _) = context();
    let run = tokio::spawn(reconcile(external_secret(json!({})), ctx));
    let (_, _, _, send) = next(&mut server).await;
    send.send_response(not_found("secrets", "db-creds"));
    let (_, _, _, send) = next(&mut server).await;
    send.send_response(ok(store()));
    let (m, _, _, send) = next(&mut server).await;
    assert_eq!(m, "PATCH");
    let conflict =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "conflict"});
    send.send_response(Response::builder().status(409).body(Body::from(serde_json::to_vec(&conflict).unwrap())).unwrap());
    assert_eq!(run.await.unwrap().expect("requeued"), Action::requeue(Duration::from_millis(200)));
}

#[tokio::test]
async fn a_provider_error_never_touches_the_secret() {
    let (ctx, mut server, metrics) = context();
    let mut es = (*external_secret(json!({}))).clone();
    let mut spec = es.spec.as_ref().unwrap().value();
    spec["data"][0]["remoteRef"]["key"] = json!("/missing");
    es.spec = Some(super::objects::JsonText(spec.to_string()));
    let run = tokio::spawn(reconcile(Arc::new(es), ctx));
    let (_, _, _, send) = next(&mut server).await;
    send.send_response(ok(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "db-creds", "namespace": "apps" }, "data": { "password": "b2xk" },
    })));
    let (_, _, _, send) = next(&mut server).await;
    send.send_response(ok(store()));
    // No write to the Secret: the next calls are the Warning event and the status.
    let (m, uri, body, send) = next(&mut server).await;
    assert_eq!((m.as_str(), uri.as_str()), ("POST", "/apis/events.k8s.io/v1/namespaces/apps/events?"));
    assert_eq!((body["type"].as_str(), body["reason"].as_str()), (Some("Warning"), Some("UpdateFailed")));
    assert!(body["note"].as_str().unwrap().contains("/missing"), "{body}");
    send.send_response(ok(body));
    let (m, uri, body, send) = next(&mut server).await;
    assert_eq!((m.as_str(), uri.as_str()), ("PATCH", "/apis/external-secrets.io/v1/namespaces/apps/externalsecrets/db/status?"));
    assert_eq!(body["status"]["conditions"][0]["status"], json!("False"));
    assert_eq!(body["status"]["conditions"][0]["reason"], json!("SecretSyncedError"));
    assert_eq!(body["status"]["conditions"][0]["message"], json!("could not get secret data from provider"));
    assert!(body["status"].get("refreshTime").is_none());
    send.send_response(ok(json!({})));
    assert!(run.await.unwrap().is_err());
    let text = String::from_utf8(metrics.render()).unwrap();
    assert!(text.contains(r#"externalsecret_sync_calls_error{name="db",namespace="apps"} 1"#));
    // Nothing else was asked of the API server.
    if let Ok(Some((req, _))) = tokio::time::timeout(Duration::from_millis(100), server.next_request()).await {
        panic!("unexpected {} {}", req.method(), req.uri());
    }
}
