//! The 40-notification Nova sample, distilled with the shared
//! `event_definitions.yaml`, reproduces the original's output: same events, same
//! traits with the same types and values (datetimes as instants, floats to 1e-9).

use chrono::{DateTime, Utc};
use serde_json::Value;
use worker::distiller::Distiller;

fn data(name: &str) -> String {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Differences between our JSON event and the expected one.
fn diff(got: &Value, want: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if want.get("dropped").is_some() || got.get("dropped").is_some() {
        if want.get("dropped").is_none() || got.get("dropped").is_none() {
            out.push(format!("got {got}, expected {want}"));
        }
        return out;
    }
    for key in ["event_type", "message_id"] {
        if got[key] != want[key] {
            out.push(format!("{key} {}, expected {}", got[key], want[key]));
        }
    }
    if instant(&got["timestamp"]).is_none()
        || instant(&got["timestamp"]) != instant(&want["timestamp"])
    {
        out.push(format!(
            "timestamp {}, expected {}",
            got["timestamp"], want["timestamp"]
        ));
    }
    let empty = serde_json::Map::new();
    let g = got["traits"].as_object().unwrap_or(&empty);
    let w = want["traits"].as_object().unwrap_or(&empty);
    for (name, wt) in w {
        let Some(gt) = g.get(name) else {
            out.push(format!("missing trait {name}"));
            continue;
        };
        if gt["type"] != wt["type"] {
            out.push(format!(
                "trait {name} type {}, expected {}",
                gt["type"], wt["type"]
            ));
            continue;
        }
        let (gv, wv) = (&gt["value"], &wt["value"]);
        let same = match wt["type"].as_str() {
            Some("datetime") => instant(gv).is_some() && instant(gv) == instant(wv),
            Some("float") => match (gv.as_f64(), wv.as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
                _ => false,
            },
            _ => gv == wv,
        };
        if !same {
            out.push(format!("trait {name} value {gv}, expected {wv}"));
        }
    }
    for name in g.keys().filter(|k| !w.contains_key(*k)) {
        out.push(format!("unexpected trait {name}"));
    }
    out
}

#[test]
fn sample_reproduces_original_output() {
    let defs = data("event_definitions.yaml");
    let d = Distiller::from_yaml(&defs, "event_definitions.yaml").expect("load definitions");
    let now = DateTime::from_timestamp(1_700_000_000, 0).expect("clock");
    let inputs = data("notifications-sample.jsonl");
    let expected = data("notifications-sample.distilled.jsonl");
    let inputs: Vec<&str> = inputs.lines().filter(|l| !l.trim().is_empty()).collect();
    let expected: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(inputs.len(), 40);
    assert_eq!(inputs.len(), expected.len());

    let mut failures = Vec::new();
    for (i, (input, want)) in inputs.iter().zip(&expected).enumerate() {
        let n: Value = serde_json::from_str(input).expect("sample line is JSON");
        let want: Value = serde_json::from_str(want).expect("expected line is JSON");
        let got = match d.distill_at(&n, now) {
            Ok(e) => e.to_json(),
            Err(r) => serde_json::json!({ "dropped": r.to_string() }),
        };
        for problem in diff(&got, &want) {
            failures.push(format!("line {}: {problem}", i + 1));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
