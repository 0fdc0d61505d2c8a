//! yagi-event: the RabbitMQ consumer that feeds the winchester engine (the successor
//! of yagi's event worker).
//!
//! - [`config`]: the original `yagi.conf`, loaded unchanged.
//! - [`consumer`]: one queue's consumer (batches, acknowledgement after the commit,
//!   dead-lettering, reconnection).
//! - [`apps`]: the handler chain (winchester, shoebox).
//! - [`metrics`]: Prometheus metrics.
//!
//! [`run_consumer`] runs every configured queue in-process until the shutdown token
//! is cancelled; the `yagi-event` binary and the sandbox both call it.

pub mod apps;
pub mod config;
pub mod consumer;
pub mod metrics;
mod shoebox_adapter;

use apps::{App, AppChain, ShoeboxApp, WinchesterApp};
use config::{AppKind, YagiConfig};
use consumer::{consume_queue, QueueContext, Readiness};
use metrics::YagiMetrics;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::observe::Health;
use crate::winchester::ingest::TriggerManager;

pub use config::{load_yagi_config, ConfigError};

/// Why yagi-event could not start.
#[derive(Debug, thiserror::Error)]
pub enum YagiError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("the winchester app needs an engine (the [winchester] config_file)")]
    NoEngine,
    #[error("shoebox: {0}")]
    Shoebox(String),
}

/// The engine parts the apps use. `manager` is needed when a consumer runs the
/// winchester app; `shoebox` (an opened archive app) when one runs the shoebox app
/// (when `None`, it is opened from the `[shoebox]` section).
#[derive(Clone, Default)]
pub struct EngineParts {
    pub manager: Option<Arc<TriggerManager>>,
    pub shoebox: Option<Arc<ShoeboxApp>>,
}

/// Builds every consumer's app chain (one shared instance of each app).
pub fn build_chains(
    config: &YagiConfig,
    parts: &EngineParts,
) -> Result<HashMap<String, AppChain>, YagiError> {
    let winchester: Option<Arc<dyn App>> = if config.uses(AppKind::Winchester) {
        let manager = parts.manager.clone().ok_or(YagiError::NoEngine)?;
        Some(Arc::new(WinchesterApp::new(manager)))
    } else {
        None
    };
    let shoebox: Option<Arc<dyn App>> = if config.uses(AppKind::Shoebox) {
        match &parts.shoebox {
            Some(s) => Some(s.clone() as Arc<dyn App>),
            None => Some(Arc::new(
                ShoeboxApp::open(&config.shoebox).map_err(YagiError::Shoebox)?,
            )),
        }
    } else {
        None
    };
    let mut chains = HashMap::new();
    for c in &config.consumers {
        let mut apps: Vec<Arc<dyn App>> = Vec::new();
        for kind in &c.apps {
            let app = match kind {
                AppKind::Winchester => winchester.clone(),
                AppKind::Shoebox => shoebox.clone(),
            };
            if let Some(app) = app {
                apps.push(app);
            }
        }
        chains.insert(c.queue.clone(), AppChain::new(apps));
    }
    Ok(chains)
}

/// Consumes every queue of `config` until `shutdown` is cancelled (SIGTERM): each
/// batch in hand is finished and acknowledged, then the connections are closed.
/// Readiness (`health`) is true while every queue is connected and the store answers.
/// Logs the original's statistics every `update_timer`.
pub async fn run_consumer(
    config: YagiConfig,
    parts: EngineParts,
    metrics: YagiMetrics,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), YagiError> {
    let chains = build_chains(&config, &parts)?;
    let readiness = Arc::new(Readiness::new(config.consumers.len(), health));
    tracing::info!(
        broker = %config.broker.params,
        queues = ?config.consumers.iter().map(|c| c.queue.as_str()).collect::<Vec<_>>(),
        poll_delay = ?config.broker.poll_delay,
        "yagi-event starting (push consumer: poll_delay is not used)"
    );

    let mut counters = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, c) in config.consumers.iter().enumerate() {
        let received_since = Arc::new(AtomicU64::new(0));
        counters.push((c.queue.clone(), received_since.clone()));
        let ctx = QueueContext {
            index,
            broker: config.broker.clone(),
            consumer: c.clone(),
            chain: chains.get(&c.queue).cloned().unwrap_or_default(),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            received_since,
        };
        tasks.spawn(consume_queue(ctx, shutdown.clone()));
    }

    let mut all_apps: Vec<Arc<dyn App>> = Vec::new();
    for chain in chains.values() {
        for app in &chain.apps {
            if !all_apps.iter().any(|a| Arc::ptr_eq(a, app)) {
                all_apps.push(app.clone());
            }
        }
    }

    let period = config.update_timer;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut since = Instant::now();
    loop {
        tokio::select! {
            joined = tasks.join_next() => {
                match joined {
                    None => break,
                    Some(Err(e)) => tracing::error!(error = %e, "a consumer task failed"),
                    Some(Ok(())) => {}
                }
            }
            _ = ticker.tick() => {
                log_statistics(&counters, since.elapsed().as_secs_f64());
                since = Instant::now();
                for app in &all_apps {
                    app.log_statistics();
                }
            }
        }
    }
    for app in &all_apps {
        app.close();
    }
    tracing::info!("yagi-event stopped");
    Ok(())
}

/// The original's update-timer lines: messages per queue, the total and the rate.
fn log_statistics(counters: &[(String, Arc<AtomicU64>)], elapsed: f64) {
    let mut total = 0;
    for (queue, n) in counters {
        let n = n.swap(0, Ordering::Relaxed);
        total += n;
        tracing::info!("Sent {n} messages from {queue}");
    }
    let rate = if elapsed > 0.0 {
        total as f64 / elapsed
    } else {
        0.0
    };
    tracing::info!(
        elapsed_seconds = elapsed.round() as u64,
        total_messages = total,
        messages_per_second = rate,
        "Update timer elapsed: {:.0} seconds. Sent {total} total messages. Messages per second: {rate:.2}",
        elapsed
    );
}
