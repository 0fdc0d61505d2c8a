//! The shared distiller vectors (tests/data/distiller.json): each case's definitions
//! and notification must give the original's event, or be dropped.
//!
//! Marks: `original_bug` cases (the original crashed and lost the notification)
//! pass if the notification is dropped with a reason or distilled without the bad
//! trait; `python_quirk` cases compare a dict/list trait as data, since we render
//! JSON where the original rendered Python's repr.

use chrono::{DateTime, Utc};
use serde_json::Value;
use worker::distiller::Distiller;

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// A Python repr of a dict/list as JSON (good enough for the vectors' values).
fn python_repr_to_json(s: &str) -> Option<Value> {
    let j = s
        .replace('\'', "\"")
        .replace("True", "true")
        .replace("False", "false")
        .replace("None", "null");
    serde_json::from_str(&j).ok()
}

fn same_trait(name: &str, got: &Value, want: &Value, quirk: bool) -> Result<(), String> {
    let (gt, wt) = (&got["type"], &want["type"]);
    if gt != wt {
        return Err(format!("trait {name}: type {gt}, expected {wt}"));
    }
    let (gv, wv) = (&got["value"], &want["value"]);
    let ok = match wt.as_str() {
        Some("datetime") => instant(gv).is_some() && instant(gv) == instant(wv),
        Some("float") => match (gv.as_f64(), wv.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            _ => false,
        },
        Some("text") if quirk && gv != wv => {
            let ours = gv
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok());
            let theirs = wv.as_str().and_then(python_repr_to_json);
            ours.is_some() && ours == theirs
        }
        _ => gv == wv,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("trait {name}: value {gv}, expected {wv}"))
    }
}

fn check(case: &Value) -> Result<(), String> {
    let defs = case["definitions"].as_str().ok_or("no definitions text")?;
    let d = Distiller::from_yaml(defs, "vector.yaml").map_err(|e| format!("load: {e}"))?;
    let now = DateTime::from_timestamp(1_700_000_000, 0).ok_or("clock")?;
    let got = d.distill_at(&case["notification"], now);
    let expected = case.get("expected").unwrap_or(&Value::Null);
    let original_bug = case.get("original_bug").is_some();
    let quirk = case.get("python_quirk").is_some();

    if case.get("dropped").is_some() || expected.get("dropped").is_some() {
        return match got {
            Err(_) => Ok(()),
            Ok(e) => Err(format!("expected dropped, got {}", e.to_json())),
        };
    }
    if original_bug && expected.get("event_type").is_none() {
        // The original raised; either outcome is fine as long as it is sane.
        return match got {
            Err(reason) if !reason.to_string().is_empty() => Ok(()),
            Err(_) => Err("dropped without a reason".into()),
            Ok(e) => {
                let n = &case["notification"];
                if Some(e.event_type.as_str()) != n["event_type"].as_str()
                    || Some(e.message_id.as_str()) != n["message_id"].as_str()
                {
                    return Err(format!("wrong envelope: {}", e.to_json()));
                }
                Ok(())
            }
        };
    }
    let event = got
        .map_err(|r| format!("dropped ({r}), expected an event"))?
        .to_json();
    for key in ["event_type", "message_id"] {
        if event[key] != expected[key] {
            return Err(format!("{key}: {}, expected {}", event[key], expected[key]));
        }
    }
    if instant(&event["timestamp"]) != instant(&expected["timestamp"]) {
        return Err(format!(
            "timestamp {}, expected {}",
            event["timestamp"], expected["timestamp"]
        ));
    }
    let empty = serde_json::Map::new();
    let got_traits = event["traits"].as_object().unwrap_or(&empty);
    let want_traits = expected["traits"].as_object().unwrap_or(&empty);
    let mut problems = Vec::new();
    for (name, want) in want_traits {
        match got_traits.get(name) {
            None => problems.push(format!("missing trait {name}")),
            Some(g) => {
                if let Err(e) = same_trait(name, g, want, quirk) {
                    problems.push(e);
                }
            }
        }
    }
    for name in got_traits.keys().filter(|k| !want_traits.contains_key(*k)) {
        problems.push(format!("unexpected trait {name}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn distiller_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/distiller.json");
    let text = std::fs::read_to_string(path).expect("read distiller.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("parse distiller.json");
    assert!(!cases.is_empty());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c).err().map(|e| format!("{}: {e}", c["name"])))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
