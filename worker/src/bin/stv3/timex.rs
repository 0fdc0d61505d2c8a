//! `stv3 timex`: evaluate a timex expression from the command line.
//!
//! Prints one JSON line, `{"timestamp":"…"}` or `{"range":{"begin":"…","end":"…"}}`,
//! with RFC 3339 UTC datetimes, so scripts and the shared test vectors can compare
//! results. `$timestamp` defaults to the current time, as a convenience for trying
//! out `day`, `hour` and friends; every other variable must be given with `--var`.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::process::ExitCode;
use worker::event::format_datetime;
use worker::timex::{Expression, TimexValue};

#[derive(clap::Args)]
pub struct Args {
    /// The expression, e.g. `day($last) + 6h` or `$timestamp to $timestamp + 1h`.
    #[arg(allow_hyphen_values = true)]
    expression: String,
    /// A variable value, e.g. `--var last=2015-01-31T12:00:00Z` (repeatable).
    /// `timestamp` defaults to now.
    #[arg(long = "var", value_name = "NAME=RFC3339", value_parser = parse_var)]
    vars: Vec<(String, DateTime<Utc>)>,
}

/// Parses `NAME=RFC3339` (a leading `$` on the name is allowed).
fn parse_var(arg: &str) -> Result<(String, DateTime<Utc>), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=RFC3339, got `{arg}`"))?;
    let name = name.trim().strip_prefix('$').unwrap_or(name.trim());
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!("`{name}` is not a variable name"));
    }
    let value = DateTime::parse_from_rfc3339(value.trim())
        .map_err(|err| format!("`{value}` is not an RFC 3339 datetime ({err})"))?;
    Ok((name.to_string(), value.with_timezone(&Utc)))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let expr = match Expression::parse(&args.expression) {
        Ok(expr) => expr,
        Err(err) => {
            eprintln!("stv3 timex: {err}");
            if let Some(offset) = err.offset() {
                eprintln!("  {}", args.expression.replace(['\t', '\n', '\r'], " "));
                eprintln!("  {}^", " ".repeat(offset));
            }
            return Ok(ExitCode::from(1));
        }
    };
    let mut vars: HashMap<String, DateTime<Utc>> = args.vars.into_iter().collect();
    vars.entry("timestamp".to_string()).or_insert_with(Utc::now);
    let output = match expr.evaluate(&vars) {
        Ok(TimexValue::Timestamp(t)) => json!({ "timestamp": format_datetime(&t) }),
        Ok(TimexValue::Range(range)) => json!({
            "range": {
                "begin": format_datetime(&range.begin),
                "end": format_datetime(&range.end),
            }
        }),
        Err(err) => {
            eprintln!("stv3 timex: {err}");
            return Ok(ExitCode::from(1));
        }
    };
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}
