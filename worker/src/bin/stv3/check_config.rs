//! `stv3 check-config winchester.yaml`: loads the whole configuration set (event
//! definitions, trigger definitions, pipelines, handlers) the way a worker would,
//! prints the warnings, then `OK: …` (exit 0) or every problem found (exit 1).
//!
//! Warnings are what the original accepted (an unknown key or plugin parameter,
//! which it ignored) and what may not mean what it seems (`..`, a `|` inside a
//! path); the workers load such files. `--strict` refuses them: the same lines,
//! exit 1.

use std::path::PathBuf;
use std::process::ExitCode;
use worker::winchester::config::load_config;

#[derive(clap::Args)]
pub struct Args {
    /// The winchester.yaml to check.
    #[arg(value_name = "WINCHESTER_YAML")]
    config: PathBuf,
    /// Refuse the configuration when there is any warning (exit 1).
    #[arg(long)]
    strict: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match load_config(&args.config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            let n = loaded.warnings.len();
            if args.strict && n > 0 {
                eprintln!(
                    "{}: {n} warning{} refused by --strict",
                    args.config.display(),
                    if n == 1 { "" } else { "s" }
                );
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "OK: {} event definitions, {} triggers, {} pipelines{}",
                loaded.distiller.as_ref().map_or(0, |d| d.len()),
                loaded.triggers.len(),
                loaded.pipelines.len(),
                match n {
                    0 => String::new(),
                    1 => " (1 warning)".to_string(),
                    n => format!(" ({n} warnings)"),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for w in &errors.warnings {
                eprintln!("warning: {w}");
            }
            for e in &errors.errors {
                eprintln!("error: {e}");
            }
            let n = errors.len();
            eprintln!(
                "{}: {n} problem{} found",
                args.config.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
