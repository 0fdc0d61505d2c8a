//! `stv3`: the StackTach.v3 command-line tool.
//!
//! Each subcommand lives in a module of its own; this file only parses the command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod distill;
mod timex;

#[derive(Parser)]
#[command(name = "stv3", version, about = "StackTach.v3 tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Distill notifications (JSON Lines) into events, one JSON line per input.
    Distill(distill::Args),
    /// Evaluate a timex expression.
    Timex(timex::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Distill(args) => distill::run(args),
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
