//! `stv3-api --config winchester.yaml [--listen 127.0.0.1:8000]`: the REST API over
//! the database the configuration names.
//!
//! The database URL comes from, in order: `--database`, `STV3_DATABASE_URL` (how the
//! operator passes it, from a Secret), the config's `database.url`. It is only ever
//! logged redacted. The server answers at once; data calls are 503 and `/readyz` is
//! not ready until the database answers. SIGTERM stops accepting connections and
//! lets requests in flight finish.

use anyhow::{bail, Context, Result};
use api::{ApiConfig, AppState, Auth, Limits};
use clap::Parser;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use worker::observe;
use worker::store::redact_url;
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
    let config = ApiConfig {
        limits: Limits {
            default: 200.min(args.max_limit),
            max: args.max_limit,
        },
        auth,
        archive_dir: args.archive_dir.clone(),
    };
    let shutdown = observe::shutdown_on_signals();
    let state = AppState::new(config);
    let app = api::app(state.clone(), Registry::default());
    let (bound, server) = api::spawn(args.listen, app, shutdown.clone()).await?;
    tracing::info!(%bound, database = %redact_url(&url), "stv3-api listening");

    match worker::store::open_when_ready(&url, &shutdown).await {
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
