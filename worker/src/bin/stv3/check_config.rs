//! `stv3 check-config winchester.yaml`: loads the whole configuration set (event
//! definitions, trigger definitions, pipelines, handlers) the way a worker would,
//! prints the warnings, then `OK: …` (exit 0) or every problem found (exit 1).

use std::path::PathBuf;
use std::process::ExitCode;
use worker::winchester::config::load_config;

#[derive(clap::Args)]
pub struct Args {
    /// The winchester.yaml to check.
    #[arg(value_name = "WINCHESTER_YAML")]
    config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match load_config(&args.config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "OK: {} event definitions, {} triggers, {} pipelines",
                loaded.distiller.as_ref().map_or(0, |d| d.len()),
                loaded.triggers.len(),
                loaded.pipelines.len()
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
