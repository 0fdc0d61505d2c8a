//! `yagi-event --config yagi.conf`: consumes notifications from RabbitMQ into the
//! winchester engine (and the shoebox archive), as yagi's event worker did.
//!
//! A bad yagi.conf or winchester.yaml stops it at start-up (exit 2). `/healthz` answers
//! from the start, while it waits for the database and the broker (`/readyz` once it
//! consumes), so a liveness probe never restarts a collector that is only waiting.
//! SIGTERM finishes and acknowledges the batch in hand and exits 0.

use anyhow::Result;
use clap::Parser;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use worker::observe;
use worker::winchester::config::load_config;
use worker::winchester::engine::Engine;
use worker::yagi::metrics::YagiMetrics;
use worker::yagi::{load_yagi_config, run_consumer, EngineParts};

#[derive(Parser)]
#[command(
    name = "yagi-event",
    version,
    about = "StackTach.v3 RabbitMQ consumer (yagi's event worker)"
)]
struct Args {
    /// yagi.conf
    #[arg(long, short)]
    config: PathBuf,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9102")]
    metrics_listen: SocketAddr,
    /// The name the console shows this collector's last-seen time under (the
    /// operator passes the cell's name).
    #[arg(long, env = "STV3_COLLECTOR_NAME", default_value = "")]
    collector_name: String,
}

fn main() -> ExitCode {
    observe::run_main(run(Args::parse()))
}

async fn run(args: Args) -> Result<ExitCode> {
    let config = match load_yagi_config(&args.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(config = %args.config.display(), "bad configuration: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let shutdown = observe::shutdown_on_signals();
    let health = observe::Health::default();
    let metrics = YagiMetrics::new();
    let mut registry = Registry::default();
    metrics.register(&mut registry);

    let wconfig = match config.winchester_config.as_deref().map(load_config) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(errors)) => {
            tracing::error!("bad winchester configuration: {errors}");
            return Ok(ExitCode::from(2));
        }
    };
    observe::serve(
        args.metrics_listen,
        Arc::new(registry),
        health.clone(),
        shutdown.clone(),
    )
    .await?;

    let mut parts = EngineParts::default();
    if let Some(wconfig) = &wconfig {
        for w in &wconfig.warnings {
            tracing::warn!("{w}");
        }
        let Some(engine) = Engine::live(wconfig, &shutdown).await? else {
            return Ok(ExitCode::SUCCESS);
        };
        engine.manager.set_collector(&args.collector_name);
        parts.manager = Some(engine.manager.clone());
    }

    match run_consumer(config, parts, metrics, health, shutdown).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}
