//! `stv3 distill`: notifications (JSON Lines) in, one JSON line per notification out.
//!
//! Each non-empty input line gives exactly one output line, in order: the event
//! (`Event::to_json`) or `{"dropped": "<reason>"}`, so output lines pair with input
//! lines. A bad line never stops the run; a bad definitions file or unreadable input
//! does (non-zero exit, reason on stderr). Input is streamed line by line and output
//! is buffered.

use anyhow::Context;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use worker::distiller::{Distiller, Dropped};

#[derive(clap::Args)]
pub struct Args {
    /// Event definitions file (YAML, stackdistiller format).
    #[arg(long, short = 'd', value_name = "FILE")]
    definitions: PathBuf,
    /// Notifications, one JSON object per line; `-` or absent reads stdin.
    #[arg(value_name = "INPUT")]
    input: Option<PathBuf>,
    /// Distill notifications no definition matches, with only the default traits.
    #[arg(long)]
    catch_all: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let defs = args.definitions.display().to_string();
    let text = std::fs::read_to_string(&args.definitions)
        .with_context(|| format!("cannot read event definitions {defs}"))?;
    let (distiller, warnings) = Distiller::load(&text, &defs)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let distiller = distiller.with_catch_all(args.catch_all);
    let input: Box<dyn BufRead> = match &args.input {
        None => Box::new(io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(io::stdin().lock()),
        Some(p) => Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(p).with_context(|| format!("cannot open input {}", p.display()))?,
        )),
    };
    let name = args
        .input
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".to_string());
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    distill_stream(&distiller, input, &mut out, &name)?;
    out.flush().context("cannot write output")?;
    Ok(ExitCode::SUCCESS)
}

fn distill_stream(
    distiller: &Distiller,
    mut input: impl BufRead,
    out: &mut impl Write,
    name: &str,
) -> anyhow::Result<()> {
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read input {name}"))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let json = match distiller.distill_slice(&line, chrono::Utc::now()) {
            Ok(event) => event.to_json(),
            Err(Dropped::InvalidJson(msg)) => {
                serde_json::json!({ "dropped": format!("line {number}: invalid JSON: {msg}") })
            }
            Err(reason) => serde_json::json!({ "dropped": reason.to_string() }),
        };
        serde_json::to_writer(&mut *out, &json).context("cannot write output")?;
        out.write_all(b"\n").context("cannot write output")?;
    }
}
