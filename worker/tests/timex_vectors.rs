//! Runs every case of the reference's timex vectors (`timex.json`, results of the
//! original implementation; see `spec_support` for where it is read from) against
//! `worker::timex`.
//!
//! Each case gives an expression, variable values and the expected timestamp,
//! range, or error phase (`parse: …` or `eval: …`). Cases marked `original_bug`
//! crashed in the original; for them an error or a value are both accepted, a
//! panic is not. Every case is checked and all failures are reported together.

mod spec_support;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use worker::timex::{Expression, TimexValue};

fn datetime(value: &Value) -> Result<DateTime<Utc>, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("not a string: {value}"))?;
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|err| format!("bad datetime {text:?}: {err}"))
}

/// Checks one case; `Err` describes the mismatch.
fn check(case: &Value) -> Result<(), String> {
    let source = case["expr"]
        .as_str()
        .ok_or("case without an `expr` string")?;
    let mut vars = HashMap::new();
    if let Some(map) = case["vars"].as_object() {
        for (name, value) in map {
            vars.insert(name.clone(), datetime(value)?);
        }
    }
    let expected = &case["expected"];
    let lenient = case.get("original_bug").is_some();

    let result = Expression::parse(source)
        .map_err(|e| ("parse", e))
        .and_then(|expr| expr.evaluate(&vars).map_err(|e| ("eval", e)));

    if let Some(error) = expected.get("error").and_then(Value::as_str) {
        let phase = error.split(':').next().unwrap_or_default();
        return match result {
            Err(_) if lenient => Ok(()),
            Ok(_) if lenient => Ok(()),
            Err((got, _)) if got == phase => Ok(()),
            Err((got, err)) => Err(format!(
                "expected a {phase} error ({error}), got a {got} error: {err}"
            )),
            Ok(value) => Err(format!("expected a {phase} error ({error}), got {value:?}")),
        };
    }

    let value = match result {
        Ok(value) => value,
        Err((phase, err)) => {
            return Err(format!("expected {expected}, got a {phase} error: {err}"))
        }
    };
    if let Some(ts) = expected.get("timestamp") {
        let want = datetime(ts)?;
        return match value {
            TimexValue::Timestamp(got) if got == want => Ok(()),
            other => Err(format!("expected timestamp {want:?}, got {other:?}")),
        };
    }
    if let Some(range) = expected.get("range") {
        let begin = datetime(&range["begin"])?;
        let end = datetime(&range["end"])?;
        return match value {
            TimexValue::Range(got) if got.begin == begin && got.end == end => Ok(()),
            other => Err(format!(
                "expected range {begin:?} to {end:?}, got {other:?}"
            )),
        };
    }
    Err(format!("unrecognised expectation {expected}"))
}

#[test]
fn vendored_copy_is_current() {
    spec_support::assert_vendored_current("timex.json");
}

#[test]
fn timex_vectors() {
    let (path, cases) = spec_support::cases("timex.json");
    eprintln!("{} cases from {}", cases.len(), path.display());

    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(|| check(case)))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        if let Err(why) = outcome {
            failures.push(format!(
                "case {index} `{}` with vars {}: {why}",
                case["expr"].as_str().unwrap_or("?"),
                case["vars"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} timex vectors failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
