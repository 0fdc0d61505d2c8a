//! `pipeline-worker --config winchester.yaml`: fires and expires streams.
//!
//! Any number of these may run against one database; each stream is processed by one
//! of them. SIGTERM finishes the stream in hand and exits 0.

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
use worker::winchester::worker::WorkerMetrics;

#[derive(Parser)]
#[command(
    name = "pipeline-worker",
    version,
    about = "StackTach.v3 pipeline worker"
)]
struct Args {
    /// winchester.yaml
    #[arg(long, short)]
    config: PathBuf,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9101")]
    metrics_listen: SocketAddr,
    /// Name in logs (default: pipeline-worker-<pid>).
    #[arg(long)]
    name: Option<String>,
}

fn main() -> ExitCode {
    observe::run_main(run(Args::parse()))
}

async fn run(args: Args) -> Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            // A bad configuration never starts a worker.
            tracing::error!("bad winchester configuration: {errors}");
            return Ok(ExitCode::from(2));
        }
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let shutdown = observe::shutdown_on_signals();
    let health = observe::Health::default();
    let metrics = WorkerMetrics::new();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    observe::serve(
        args.metrics_listen,
        Arc::new(registry),
        health.clone(),
        shutdown.clone(),
    )
    .await?;

    let Some(engine) = Engine::live(&config, &shutdown).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    let name = args
        .name
        .unwrap_or_else(|| format!("pipeline-worker-{}", std::process::id()));
    let worker = engine.worker(name).with_metrics(metrics);
    health.set_ready(true);
    worker.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}
