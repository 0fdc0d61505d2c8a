//! `stv3 replay`: dry-run trigger and pipeline definitions over recorded notifications.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use worker::store;
use worker::winchester::config::load_config;
use worker::winchester::replay::{replay, ReplayOptions};

#[derive(clap::Args)]
pub struct Args {
    /// winchester.yaml naming the event definitions, triggers and pipelines.
    #[arg(long, short)]
    config: PathBuf,
    /// Database to replay into (default: an in-memory SQLite, discarded afterwards).
    #[arg(long)]
    database: Option<String>,
    /// After the input, move the clock past every expiration and run the expire
    /// pipelines too.
    #[arg(long)]
    expire: bool,
    /// Print a report: `json` prints the streams and emitted notifications as one
    /// JSON document.
    #[arg(long, value_parser = ["json", "text"], default_value = "text")]
    report: String,
    /// Recorded notifications, one JSON object per line (`-` for standard input).
    input: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        Box::new(BufReader::new(f))
    };
    let mut notifications = Vec::new();
    let mut bad_lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", args.input.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) => notifications.push((i + 1, v)),
            Err(e) => bad_lines.push((i + 1, format!("invalid JSON: {e}"))),
        }
    }
    let url = args
        .database
        .clone()
        .unwrap_or_else(|| "sqlite::memory:".to_string());
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async {
        let store = store::open(&url)
            .await
            .with_context(|| format!("opening {}", store::redact_url(&url)))?;
        store.migrate().await.context("migrating the database")?;
        let options = ReplayOptions {
            expire: args.expire,
        };
        anyhow::Ok(replay(&config, store, notifications, options).await?)
    })?;
    for (line, reason) in bad_lines.iter().chain(outcome.dropped.iter()) {
        eprintln!("line {line}: dropped: {reason}");
    }
    let mut stdout = std::io::stdout().lock();
    if args.report == "json" {
        serde_json::to_writer_pretty(&mut stdout, &outcome.report)?;
        writeln!(stdout)?;
    } else {
        let mut states: BTreeMap<String, u64> = BTreeMap::new();
        if let Some(streams) = outcome.report["streams"].as_array() {
            for s in streams {
                let state = s["state"].as_str().unwrap_or("?").to_string();
                *states.entry(state).or_default() += 1;
            }
        }
        writeln!(
            stdout,
            "{} notifications: {} events stored, {} duplicates, {} dropped",
            outcome.notifications,
            outcome.stored,
            outcome.duplicates,
            outcome.dropped.len() + bad_lines.len()
        )?;
        writeln!(
            stdout,
            "streams: {} fired, {} expired, {} pipeline errors",
            outcome.fired, outcome.expired, outcome.errors
        )?;
        for (state, n) in states {
            writeln!(stdout, "  {state}: {n}")?;
        }
        let emitted = outcome.report["emitted"].as_array().map_or(0, Vec::len);
        writeln!(stdout, "emitted: {emitted} notifications")?;
    }
    Ok(ExitCode::SUCCESS)
}
