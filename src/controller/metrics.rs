//! Prometheus metrics with ESO's exact names (so ESO dashboards keep working), and the HTTP
//! endpoint serving `/metrics`, `/healthz` and `/readyz`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `externalsecret_provider_api_calls_count` | counter | `provider`, `call`, `status` (`success`/`error`) |
//! | `externalsecret_sync_calls_total` | counter | `name`, `namespace` |
//! | `externalsecret_sync_calls_error` | counter | `name`, `namespace` |
//! | `externalsecret_status_condition` | gauge 0/1 | `name`, `namespace`, `condition`, `status` |
//! | `externalsecret_reconcile_duration_seconds` | histogram | (none) |
//! | `extsecret_refresh_waves_total` | counter | (none): waves of reads resolved together |
//! | `extsecret_refresh_wave_reads` | histogram | (none): distinct remote reads per wave |
//! | `extsecret_refresh_wave_external_secrets` | histogram | (none): ExternalSecrets per wave |
//!
//! Counters keep ESO's names as written: the `prometheus` crate does not append `_total`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// The controller's metrics, registered in their own registry.
pub struct Metrics {
    pub registry: Registry,
    pub provider_calls: IntCounterVec,
    pub sync_calls: IntCounterVec,
    pub sync_errors: IntCounterVec,
    pub status_condition: IntGaugeVec,
    pub reconcile_duration: Histogram,
    pub waves: IntCounter,
    pub wave_reads: Histogram,
    pub wave_size: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let provider_calls = IntCounterVec::new(
            Opts::new("externalsecret_provider_api_calls_count", "Number of API calls towards the secret provider"),
            &["provider", "call", "status"],
        )
        .expect("metric");
        let sync_calls = IntCounterVec::new(
            Opts::new("externalsecret_sync_calls_total", "Total number of the External Secret sync calls"),
            &["name", "namespace"],
        )
        .expect("metric");
        let sync_errors = IntCounterVec::new(
            Opts::new("externalsecret_sync_calls_error", "Total number of the External Secret sync errors"),
            &["name", "namespace"],
        )
        .expect("metric");
        let status_condition = IntGaugeVec::new(
            Opts::new("externalsecret_status_condition", "The status condition of a specific External Secret"),
            &["name", "namespace", "condition", "status"],
        )
        .expect("metric");
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new("externalsecret_reconcile_duration_seconds", "Time spent reconciling one ExternalSecret, in seconds")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )
        .expect("metric");
        let sizes = vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];
        let waves = IntCounter::new("extsecret_refresh_waves_total", "Waves of ExternalSecrets resolved together").expect("metric");
        let wave_reads = Histogram::with_opts(
            HistogramOpts::new("extsecret_refresh_wave_reads", "Distinct remote reads per wave").buckets(sizes.clone()),
        )
        .expect("metric");
        let wave_size =
            Histogram::with_opts(HistogramOpts::new("extsecret_refresh_wave_external_secrets", "ExternalSecrets per wave").buckets(sizes))
                .expect("metric");
        for c in [
            Box::new(provider_calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(sync_calls.clone()),
            Box::new(sync_errors.clone()),
            Box::new(status_condition.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(waves.clone()),
            Box::new(wave_reads.clone()),
            Box::new(wave_size.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics { registry, provider_calls, sync_calls, sync_errors, status_condition, reconcile_duration, waves, wave_reads, wave_size }
    }

    /// Sets the Ready gauge pair of an ExternalSecret (ESO sets `True`/`False` to 1/0).
    pub fn set_ready(&self, name: &str, namespace: &str, ready: bool) {
        let (on, off) = if ready { ("True", "False") } else { ("False", "True") };
        self.status_condition.with_label_values(&[name, namespace, "Ready", on]).set(1);
        self.status_condition.with_label_values(&[name, namespace, "Ready", off]).set(0);
    }

    /// Drops the series of a deleted ExternalSecret.
    pub fn forget(&self, name: &str, namespace: &str) {
        for status in ["True", "False"] {
            let _ = self.status_condition.remove_label_values(&[name, namespace, "Ready", status]);
        }
        let _ = self.sync_calls.remove_label_values(&[name, namespace]);
        let _ = self.sync_errors.remove_label_values(&[name, namespace]);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Liveness and readiness: live once serving; ready once the caches have synced (set by the
/// controller; a standby replica waiting for the Lease is ready too, so a rollout can proceed).
#[derive(Default)]
pub struct Health {
    pub ready: AtomicBool,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) -> std::io::Result<()> {
    tracing::info!("serving /metrics, /healthz and /readyz on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                continue;
            }
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (metrics, health) = (metrics.clone(), health.clone());
                async move { Ok::<_, Infallible>(respond(req.uri().path(), &metrics, &health)) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
    }
}

fn respond(path: &str, metrics: &Metrics, health: &Health) -> hyper::Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (200, "text/plain; version=0.0.4", metrics.render()),
        "/healthz" => (200, "text/plain", b"ok".to_vec()),
        "/readyz" if health.ready.load(Ordering::Relaxed) => (200, "text/plain", b"ok".to_vec()),
        "/readyz" => (503, "text/plain", b"caches not synced".to_vec()),
        _ => (404, "text/plain", b"not found".to_vec()),
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_esos_names() {
        let m = Metrics::new();
        m.provider_calls.with_label_values(&["AWS/SecretsManager", "BatchGetSecretValue", "success"]).inc();
        m.sync_calls.with_label_values(&["db", "apps"]).inc();
        m.sync_errors.with_label_values(&["db", "apps"]).inc();
        m.set_ready("db", "apps", true);
        m.reconcile_duration.observe(0.2);
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"externalsecret_provider_api_calls_count{call="BatchGetSecretValue",provider="AWS/SecretsManager",status="success"} 1"#,
            r#"externalsecret_sync_calls_total{name="db",namespace="apps"} 1"#,
            r#"externalsecret_sync_calls_error{name="db",namespace="apps"} 1"#,
            r#"externalsecret_status_condition{condition="Ready",name="db",namespace="apps",status="True"} 1"#,
            r#"externalsecret_status_condition{condition="Ready",name="db",namespace="apps",status="False"} 0"#,
            "externalsecret_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("_count_total"));
    }
}
