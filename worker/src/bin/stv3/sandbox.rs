//! `stv3 sandbox`: the whole system in one process (what `./build.sh` runs).

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use worker::sandbox::{self, SandboxOptions};
use worker::winchester::config::load_config;

#[derive(clap::Args)]
pub struct Args {
    /// winchester.yaml (its database URL is replaced by --database or the data dir).
    #[arg(long, short, default_value = "etc/winchester.yaml")]
    config: PathBuf,
    /// Where the embedded database lives; survives restarts.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Start from scratch: delete the data directory first.
    #[arg(long)]
    reset: bool,
    /// Use this database instead of the embedded one (e.g. mysql://user:pass@127.0.0.1/db).
    #[arg(long)]
    database: Option<String>,
    /// Ingest through this RabbitMQ (publish, then consume with yagi-event in-process).
    #[arg(long, num_args = 0..=1, default_missing_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: Option<String>,
    /// yagi.conf naming the queue to use with --amqp.
    #[arg(long, default_value = "etc/yagi.conf")]
    yagi_config: PathBuf,
    /// Generated notifications per second.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Simulated instances.
    #[arg(long, default_value_t = 50)]
    instances: usize,
    /// Pipeline workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// The URL of an API serving this database (`./build.sh` starts one), shown in the
    /// live view.
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    let options = SandboxOptions {
        config,
        database: args.database,
        data_dir: args.data_dir,
        reset: args.reset,
        rate: args.rate,
        instances: args.instances,
        seed: args.seed,
        amqp: args.amqp,
        yagi_config: Some(args.yagi_config),
        workers: args.workers,
        run_for: args.seconds.map(Duration::from_secs),
        api_url: args.api_url,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = worker::observe::shutdown_on_signals();
        sandbox::run(options, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
