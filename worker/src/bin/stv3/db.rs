//! `stv3 db upgrade --config winchester.yaml [--database URL]`: applies the schema
//! migrations (the successor of `winchester_db upgrade head`).
//!
//! Only `database.url` is read from `winchester.yaml` here, with the shared loader
//! (the same parsing and errors as every other reader of the file).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use worker::store::{self, redact_url};
use worker::winchester::config::{
    database_url_from_env, parse_settings_with_url, DATABASE_URL_ENV,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(clap::Subcommand)]
enum DbCommand {
    /// Create the schema, or bring it up to date (idempotent).
    Upgrade(UpgradeArgs),
}

#[derive(clap::Args)]
struct UpgradeArgs {
    /// winchester.yaml, whose `database.url` names the database.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The database URL, instead of (or overriding) the configuration's.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Wait up to this long for the database to answer (a MySQL still initialising, a
    /// failover) instead of failing at once; 0: do not wait. The operator's migration
    /// Job sets it through the environment, which older images simply ignore.
    #[arg(
        long,
        env = "STV3_DB_WAIT_SECONDS",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    wait: u64,
}

fn database_url(args: &UpgradeArgs) -> Result<String> {
    if let Some(url) = &args.database {
        return Ok(url.clone());
    }
    let env_url = database_url_from_env();
    let Some(path) = &args.config else {
        return env_url.with_context(|| {
            format!("give --config winchester.yaml, --database URL or ${DATABASE_URL_ENV}")
        });
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // The shared loader: the same parsing and errors as every other reader of the file.
    match parse_settings_with_url(&text, &path.display().to_string(), env_url.as_deref()) {
        Ok((settings, _warnings)) => Ok(settings.database.url),
        Err(errors) => bail!("{errors}"),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        DbCommand::Upgrade(args) => {
            let url = database_url(&args)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let store = if args.wait > 0 {
                    // open_when_ready retries what a database that is not up yet answers,
                    // and migrates; a refused login still fails at once.
                    let give_up = tokio_util::sync::CancellationToken::new();
                    let timer = give_up.clone();
                    let wait = std::time::Duration::from_secs(args.wait);
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        timer.cancel();
                    });
                    store::open_when_ready(&url, &give_up)
                        .await
                        .with_context(|| format!("cannot upgrade {}", redact_url(&url)))?
                        .with_context(|| {
                            format!("{} did not answer within {} s", redact_url(&url), args.wait)
                        })?
                } else {
                    let store = store::open(&url)
                        .await
                        .with_context(|| format!("cannot open {}", redact_url(&url)))?;
                    store
                        .migrate()
                        .await
                        .with_context(|| format!("cannot upgrade {}", redact_url(&url)))?;
                    store
                };
                println!(
                    "database {} ({}) is up to date",
                    redact_url(&url),
                    store.backend()
                );
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
