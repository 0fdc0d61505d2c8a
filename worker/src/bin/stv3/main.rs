//! `stv3`: the StackTach.v3 command-line tool.
//!
//! Each subcommand lives in a module of its own; this file only parses the command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod backup;
mod check_config;
mod db;
mod distill;
mod notigen;
mod progress;
mod replay;
mod sandbox;
mod timex;

/// mimalloc rather than the system's allocator: distilling and replaying allocate
/// many small, short-lived values (traits, rows), and glibc's malloc spent a third of
/// replay's time consolidating them (docs/benchmarks.md, "Replay").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "stv3", version, about = "StackTach.v3 tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Database dumps to an S3-compatible store (`backup upload`).
    Backup(backup::Args),
    /// Check a winchester.yaml and every file it names; exits non-zero listing every problem.
    CheckConfig(check_config::Args),
    /// Database schema management (`db upgrade`).
    Db(db::Args),
    /// Distill notifications (JSON Lines) into events, one JSON line per input.
    Distill(distill::Args),
    /// Generate Nova-style notifications (to JSON Lines or RabbitMQ).
    Notigen(notigen::Args),
    /// Dry-run trigger and pipeline definitions over recorded notifications.
    Replay(replay::Args),
    /// Run the whole system in one process (notigen, ingest, pipeline workers, live view).
    Sandbox(sandbox::Args),
    /// Evaluate a timex expression.
    Timex(timex::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backup(args) => backup::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Db(args) => db::run(args),
        Command::Distill(args) => distill::run(args),
        Command::Notigen(args) => notigen::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Timex(args) => timex::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stv3: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
