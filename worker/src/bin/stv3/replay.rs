//! `stv3 replay`: dry-run trigger and pipeline definitions over recorded notifications.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use worker::shoebox;
use worker::store;
use worker::winchester::config::load_config;
use worker::winchester::replay::{replay, ReplayOptions};

#[derive(clap::Args)]
pub struct Args {
    /// winchester.yaml naming the event definitions, triggers and pipelines.
    #[arg(long, short)]
    config: PathBuf,
    /// Database to replay into (default: an in-memory SQLite, discarded afterwards;
    /// `sqlite::memory:` names the same through the services' driver).
    #[arg(long)]
    database: Option<String>,
    /// After the input, move the clock past every expiration and run the expire
    /// pipelines too.
    #[arg(long)]
    expire: bool,
    /// Run the workers before every notification, even when nothing can be due (the
    /// reference the faster default is tested against; slower, same report).
    #[arg(long)]
    reference: bool,
    /// Print a report: `json` prints the streams and emitted notifications as one
    /// JSON document.
    #[arg(long, value_parser = ["json", "text"], default_value = "text")]
    report: String,
    /// Recorded notifications: a JSON Lines file, a shoebox archive (plain or gzip, JSON
    /// Lines or the original binary format), a directory of archives (read in file name
    /// order), or `-` for standard input.
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
    let Input {
        notifications,
        locations,
        bad_lines,
    } = read_input(&args.input)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async {
        let store = match &args.database {
            Some(url) => store::open(url)
                .await
                .with_context(|| format!("opening {}", store::redact_url(url)))?,
            // A scratch store, driven inline (store::inline).
            None => store::inline::open_memory(store::OpenOptions::default())
                .context("opening the in-memory database")?,
        };
        store.migrate().await.context("migrating the database")?;
        if args.database.is_none() {
            // Nothing queries it after the report.
            store
                .drop_query_indexes()
                .await
                .context("preparing the in-memory database")?;
        }
        let options = ReplayOptions {
            expire: args.expire,
            reference: args.reference,
            progress: Some(crate::progress::reporter(notifications.len() as u64)),
        };
        anyhow::Ok(replay(&config, store, notifications, options).await?)
    })?;
    for reason in &bad_lines {
        eprintln!("dropped: {reason}");
    }
    for (index, reason) in &outcome.dropped {
        let at = input_location(&locations, *index);
        eprintln!("{at}: dropped: {reason}");
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
        writeln!(stdout, "time: {}", outcome.timings)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The notifications of the input, numbered from 1 in reading order.
struct Input {
    notifications: Vec<(usize, serde_json::Value)>,
    /// `locations[n - 1]`: where notification `n` came from.
    locations: Vec<shoebox::Location>,
    /// Records that are not notifications, each naming its file and line.
    bad_lines: Vec<String>,
}

fn read_input(path: &Path) -> Result<Input> {
    let mut reader = shoebox::read_notifications(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut input = Input {
        notifications: Vec::new(),
        locations: Vec::new(),
        bad_lines: Vec::new(),
    };
    while let Some(item) = reader.next() {
        match item {
            Ok(v) => {
                input.notifications.push((input.notifications.len() + 1, v));
                if let Some(at) = reader.location() {
                    input.locations.push(at.clone());
                }
            }
            Err(e) => input.bad_lines.push(e.to_string()),
        }
    }
    Ok(input)
}

fn input_location(locations: &[shoebox::Location], index: usize) -> String {
    match index.checked_sub(1).and_then(|i| locations.get(i)) {
        Some(at) => format!("{}: line {}", at.path.display(), at.line),
        None => format!("notification {index}"),
    }
}
