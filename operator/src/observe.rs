//! The operator's own observability: Prometheus metrics about reconciles, `/healthz`
//! and `/readyz` for the kubelet's probes, served with axum. (The worker has the same
//! for its processes in `worker::observe`; the operator keeps its own so the operator
//! library does not depend on the worker, see `Cargo.toml`.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// The default address of the metrics and health endpoints.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// `result` label of the reconcile counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// `error` label of the error counter: [`crate::Error::metric_label`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The kind of error.
    pub error: &'static str,
}

/// Labels of a region's gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    /// The region's namespace.
    pub namespace: String,
    /// The region's name.
    pub region: String,
}

/// Labels of a region's condition gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// The region's namespace.
    pub namespace: String,
    /// The region's name.
    pub region: String,
    /// The condition type (`Ready`, `Degraded`, ...).
    pub condition: String,
}

/// The operator's metrics, registered under the `stv3_operator` prefix.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ResultLabel, Counter>,
    errors: Family<ErrorLabel, Counter>,
    duration: Histogram,
    leader: Gauge<i64, AtomicI64>,
    cells: Family<RegionLabels, Gauge>,
    cells_ready: Family<RegionLabels, Gauge>,
    conditions: Family<ConditionLabels, Gauge>,
    migration_failed: Family<RegionLabels, Gauge>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            // 1 ms … ~16 s.
            duration: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 15,
            )),
            leader: Gauge::default(),
            cells: Family::default(),
            cells_ready: Family::default(),
            conditions: Family::default(),
            migration_failed: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("stv3_operator");
        r.register(
            "reconciles",
            "Reconciles of a region, by result",
            m.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciles, by kind of error",
            m.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "How long one reconcile of a region took",
            m.duration.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles",
            m.leader.clone(),
        );
        r.register("region_cells", "Cells in a region's spec", m.cells.clone());
        r.register(
            "region_cells_ready",
            "Cells of a region whose collectors are all ready",
            m.cells_ready.clone(),
        );
        r.register(
            "region_condition",
            "1 when a region's condition is True, 0 when False (the region's status)",
            m.conditions.clone(),
        );
        r.register(
            "region_migration_failed",
            "1 while a region's schema migration Job has failed (nothing rolls until it succeeds)",
            m.migration_failed.clone(),
        );
        m
    }

    /// Sets a region's gauges from the status just written.
    pub fn set_region(
        &self,
        namespace: &str,
        region: &str,
        status: &crate::crd::StackTachRegionStatus,
    ) {
        let labels = RegionLabels {
            namespace: namespace.into(),
            region: region.into(),
        };
        let ready = status.cells.iter().filter(|c| crate::status::cell_ready(c));
        self.cells
            .get_or_create(&labels)
            .set(status.cells.len() as i64);
        self.cells_ready
            .get_or_create(&labels)
            .set(ready.count() as i64);
        let failed = status.conditions.iter().any(|c| {
            c.reason.parse() == Ok(crate::reason::Reason::MigrationFailed)
                && ((c.type_ == crate::status::types::PROGRESSING && c.status == "False")
                    || (c.type_ == crate::status::types::DEGRADED && c.status == "True"))
        });
        self.migration_failed
            .get_or_create(&labels)
            .set(i64::from(failed));
        for c in &status.conditions {
            self.conditions
                .get_or_create(&ConditionLabels {
                    namespace: namespace.into(),
                    region: region.into(),
                    condition: c.type_.clone(),
                })
                .set(i64::from(c.status == "True"));
        }
    }

    /// Drops a deleted region's gauges.
    pub fn forget_region(&self, namespace: &str, region: &str) {
        let labels = RegionLabels {
            namespace: namespace.into(),
            region: region.into(),
        };
        self.cells.remove(&labels);
        self.cells_ready.remove(&labels);
        self.migration_failed.remove(&labels);
        // The condition family has one series per type: drop every one of the region's.
        for condition in crate::status::types::ALL {
            self.conditions.remove(&ConditionLabels {
                namespace: namespace.into(),
                region: region.into(),
                condition: condition.to_string(),
            });
        }
    }

    /// Records one reconcile: its duration and result (and the error's kind).
    pub fn record(&self, elapsed: Duration, error: Option<&'static str>) {
        self.duration.observe(elapsed.as_secs_f64());
        let result = if error.is_some() { "error" } else { "ok" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        if let Some(error) = error {
            self.errors.get_or_create(&ErrorLabel { error }).inc();
        }
    }

    /// Records whether this replica is the leader.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

/// How long the region watch may keep failing before `/healthz` says the controller
/// is not live (and the kubelet restarts the pod): long enough to ride out an API
/// server restart, short enough that a wedged operator does not sit for hours.
pub const WATCH_FAILURE_GRACE: Duration = Duration::from_secs(120);

/// What the probes see. Live while the controller runs and its region watch has not
/// been failing for longer than [`WATCH_FAILURE_GRACE`]; ready once the replica knows
/// its part: it leads and its controller runs, or it stands by for the Lease.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    failing_since: Arc<Mutex<Option<Instant>>>,
}

impl Health {
    /// The region watch delivered something: it works.
    pub fn watch_ok(&self) {
        if let Ok(mut f) = self.failing_since.lock() {
            *f = None;
        }
    }

    /// The region watch failed (it retries with back-off).
    pub fn watch_failed(&self) {
        if let Ok(mut f) = self.failing_since.lock() {
            f.get_or_insert_with(Instant::now);
        }
    }

    /// The controller stopped (its stream ended).
    pub fn controller_stopped(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Why `/healthz` fails, if it does.
    pub fn not_live(&self) -> Option<String> {
        if self.stopped.load(Ordering::SeqCst) {
            return Some("the controller stopped".into());
        }
        let since = self.failing_since.lock().ok().and_then(|f| *f)?;
        let failing = since.elapsed();
        (failing > WATCH_FAILURE_GRACE)
            .then(|| format!("the region watch has failed for {}s", failing.as_secs()))
    }

    /// Sets readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    health: Health,
}

/// `/metrics` (OpenMetrics text), `/healthz` and `/readyz`.
pub fn router(registry: Arc<Registry>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health })
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.not_live() {
        None => (StatusCode::OK, "ok".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Binds `addr` and serves the endpoints until `shutdown` is cancelled. Returns the
/// bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    let app = router(registry, health);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the metrics server failed");
        }
    });
    Ok((bound, task))
}

/// A token cancelled on SIGTERM (the kubelet stopping the pod) or Ctrl-C.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_and_probes_are_served() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.record(Duration::from_millis(3), None);
        m.record(Duration::from_millis(5), Some("kube"));
        m.set_leader(true);
        let health = Health::default();
        let stop = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(registry),
            health.clone(),
            stop.clone(),
        )
        .await
        .unwrap();
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.0 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.0 503"));
        health.set_ready(true);
        assert!(get("/readyz").await.starts_with("HTTP/1.0 200"));
        let body = get("/metrics").await;
        for line in [
            "stv3_operator_reconciles_total{result=\"ok\"} 1",
            "stv3_operator_reconciles_total{result=\"error\"} 1",
            "stv3_operator_reconcile_errors_total{error=\"kube\"} 1",
            "stv3_operator_reconcile_duration_seconds_count 2",
            "stv3_operator_leader 1",
        ] {
            assert!(body.contains(line), "no {line:?} in\n{body}");
        }
        // A failing watch within its grace is still live; a stopped controller is not.
        health.watch_failed();
        assert!(get("/healthz").await.starts_with("HTTP/1.0 200"));
        health.controller_stopped();
        let h = get("/healthz").await;
        assert!(
            h.starts_with("HTTP/1.0 503") && h.contains("the controller stopped"),
            "{h}"
        );
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn region_gauges_follow_the_status_and_go_with_the_region() {
        use crate::crd::{CellStatus, StackTachRegionStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let cond = |t: &str, s: &str| Condition {
            type_: t.into(),
            status: s.into(),
            reason: "R".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        };
        let st = StackTachRegionStatus {
            cells: vec![
                CellStatus {
                    name: "a".into(),
                    conditions: vec![cond("Ready", "True")],
                    ..Default::default()
                },
                CellStatus {
                    name: "b".into(),
                    conditions: vec![cond("Ready", "False")],
                    ..Default::default()
                },
            ],
            conditions: vec![cond("Ready", "False"), cond("Degraded", "True")],
            ..Default::default()
        };
        m.set_region("ns", "r", &st);
        let text = || {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
            out
        };
        let body = text();
        for line in [
            "stv3_operator_region_cells{namespace=\"ns\",region=\"r\"} 2",
            "stv3_operator_region_cells_ready{namespace=\"ns\",region=\"r\"} 1",
            "stv3_operator_region_condition{namespace=\"ns\",region=\"r\",condition=\"Ready\"} 0",
            "stv3_operator_region_condition{namespace=\"ns\",region=\"r\",condition=\"Degraded\"} 1",
        ] {
            assert!(body.contains(line), "no {line:?} in\n{body}");
        }
        m.forget_region("ns", "r");
        assert!(!text().contains("region=\"r\""), "{}", text());
    }
}
