//! `stv3-api --config winchester.yaml [--listen 127.0.0.1:8000]`: the REST API over
//! the database the configuration names.
//!
//! The database URL comes from, in order: `--database`, `STV3_DATABASE_URL` (how the
//! operator passes it, from a Secret), the config's `database.url`. It is only ever
//! logged redacted. The server answers at once; data calls are 503 and `/readyz` is
//! not ready until the database answers. SIGTERM stops accepting connections and
//! lets requests in flight finish.

use anyhow::{bail, Context, Result};
use api::{ApiConfig, AppState, Auth, Bounds, Limits};
use clap::Parser;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use worker::observe;
use worker::store::{redact_url, OpenOptions};
use worker::winchester::config::{database_url_from_env, parse_settings_with_url};

#[derive(Parser)]
#[command(
    name = "stv3-api",
    version,
    about = "StackTach.v3 REST API (quincy-compatible)"
)]
struct Args {
    /// winchester.yaml (for database.url). Optional when --database or
    /// STV3_DATABASE_URL gives the URL.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Database URL, overriding STV3_DATABASE_URL and the config's database.url.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// File holding the bearer token that DELETE and PUT need (overrides
    /// STV3_API_TOKEN). Without a token those calls are refused.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Require the token for read-only calls too.
    #[arg(long)]
    protect_reads: bool,
    /// The largest `limit` a listing accepts.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    max_limit: u64,
    /// Shoebox's destination folder, served under /v2/archives (also STV3_ARCHIVE_DIR).
    #[arg(long, value_name = "DIR", env = "STV3_ARCHIVE_DIR")]
    archive_dir: Option<PathBuf>,
    /// Trait filters (`traits=` / `distinguishing_traits=` items) one request may give.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    max_trait_filters: u64,
    /// Events of one stream an answer with details carries (`events_limit` up to it).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    max_stream_events: u64,
    /// Events all streams of one listing page with details carry together.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_listing_events: u64,
    /// Requests answered at once; more get 503 at once instead of queueing.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_concurrent_requests: u64,
    /// Seconds to produce an answer before it is abandoned with a 503.
    #[arg(long, default_value_t = 30.0, value_parser = positive_seconds)]
    request_timeout: f64,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    header_read_timeout: f64,
    /// Seconds one database statement may run (MariaDB max_statement_time, SQLite a
    /// progress handler); 0 for none.
    #[arg(long, default_value_t = 20.0, value_parser = non_negative_seconds)]
    statement_timeout: f64,
    /// A yagi-event whose metrics the console samples, as NAME=URL (for example
    /// cell1=http://10.0.0.5:9102/metrics); repeat for each collector.
    #[arg(long = "collector", value_name = "NAME=URL")]
    collectors: Vec<api::collectors::CollectorTarget>,
    /// Seconds between two samples of the collectors' metrics.
    #[arg(long, default_value_t = 15.0, value_parser = positive_seconds)]
    collector_interval: f64,
}

fn non_negative_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 86400")),
    }
}

fn positive_seconds(s: &str) -> std::result::Result<f64, String> {
    match non_negative_seconds(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} must be more than 0 seconds")),
    }
}

fn main() -> ExitCode {
    observe::run_main(run(Args::parse()))
}

/// The database URL by precedence: flag, environment, config file.
fn database_url(args: &Args) -> Result<String> {
    let override_url = args.database.clone().or_else(database_url_from_env);
    let Some(path) = &args.config else {
        return override_url.context(
            "no database: give --config winchester.yaml, --database URL or STV3_DATABASE_URL",
        );
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let source = path.display().to_string();
    match parse_settings_with_url(&text, &source, override_url.as_deref()) {
        Ok((settings, warnings)) => {
            for w in warnings {
                tracing::debug!("{w}");
            }
            if settings.database.url.trim().is_empty() {
                bail!("{source}: no database.url (or give --database or STV3_DATABASE_URL)");
            }
            Ok(settings.database.url)
        }
        Err(errors) => bail!("{errors}"),
    }
}

fn token(args: &Args) -> Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let t = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        return Ok(Some(t));
    }
    Ok(std::env::var(api::auth::TOKEN_ENV).ok())
}

async fn run(args: Args) -> Result<ExitCode> {
    let url = match database_url(&args) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("stv3-api: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let auth = Auth::new(token(&args)?.as_deref(), args.protect_reads)?;
    if !auth.has_token() {
        tracing::warn!("no API token configured: DELETE and PUT are refused (403)");
    }
    let bounds = Bounds {
        max_concurrent: usize::try_from(args.max_concurrent_requests).unwrap_or(usize::MAX),
        request_timeout: Duration::from_secs_f64(args.request_timeout),
        header_read_timeout: Duration::from_secs_f64(args.header_read_timeout),
    };
    let config = ApiConfig {
        limits: Limits {
            default: 200.min(args.max_limit),
            max: args.max_limit,
            max_trait_filters: usize::try_from(args.max_trait_filters).unwrap_or(usize::MAX),
            stream_events: args.max_stream_events,
            listing_events: args.max_listing_events,
        },
        auth,
        archive_dir: args.archive_dir.clone(),
        bounds,
        collectors: args.collectors.clone(),
        collector_interval: Some(Duration::from_secs_f64(args.collector_interval)),
    };
    let store_options = OpenOptions {
        statement_timeout: (args.statement_timeout > 0.0)
            .then(|| Duration::from_secs_f64(args.statement_timeout)),
    };
    let shutdown = observe::shutdown_on_signals();
    let state = AppState::new(config);
    state.collectors().spawn(shutdown.clone());
    let app = api::app(state.clone(), Registry::default());
    let (bound, server) = api::spawn_with(
        args.listen,
        app,
        shutdown.clone(),
        bounds.header_read_timeout,
    )
    .await?;
    tracing::info!(%bound, database = %redact_url(&url), "stv3-api listening");

    match worker::store::open_when_ready_with(&url, store_options, &shutdown).await {
        Ok(Some(store)) => {
            tracing::info!(backend = store.backend(), "database ready");
            state.set_store(store);
        }
        Ok(None) => {}
        Err(e) => {
            shutdown.cancel();
            let _ = server.await;
            return Err(e).context(format!("cannot open {}", redact_url(&url)));
        }
    }
    server.await??;
    tracing::info!("stv3-api stopped");
    Ok(ExitCode::SUCCESS)
}
