//! Every case of the reference's distiller vectors (`distiller.json`, see
//! `spec_support` for where it is read from): each case's definitions and
//! notification must give the original's event, be dropped, or (for definitions
//! the original refused) fail to load.
//!
//! Flags: `catch_all` turns on `catch_all_notifications`; `original_bug` cases (the
//! original raised and lost the notification) pass if the notification is dropped
//! with a reason or distilled without the bad trait (the case's `recommended`
//! event, when it gives one, is then required exactly); `python_quirk` cases
//! compare a dict/list trait as data, since we render JSON where the original
//! rendered Python's repr; `expected_definitions_error` cases must be refused when
//! loading, with a message.

mod spec_support;

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
    let loaded = Distiller::from_yaml(defs, "vector.yaml");
    if case.get("expected_definitions_error").is_some() {
        return match loaded {
            Err(e) if !e.to_string().is_empty() => Ok(()),
            Err(_) => Err("refused without a message".into()),
            Ok(_) => Err(format!(
                "loaded; the original refused it: {}",
                case["expected"]["definitions_error"]
            )),
        };
    }
    let d = loaded
        .map_err(|e| format!("load: {e}"))?
        .with_catch_all(case["catch_all"].as_bool().unwrap_or(false));
    let now = DateTime::from_timestamp(1_700_000_000, 0).ok_or("clock")?;
    let got = d.distill_at(&case["notification"], now);
    let expected = case.get("expected").unwrap_or(&Value::Null);
    let original_bug = case.get("original_bug").is_some();
    let quirk = case.get("python_quirk").is_some();

    if original_bug {
        if let Some(recommended) = case
            .get("recommended")
            .filter(|r| r.get("event_type").is_some())
        {
            let event = got.map_err(|r| format!("dropped ({r}), recommended {recommended}"))?;
            return same_event(&event.to_json(), recommended, quirk);
        }
    }
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
    same_event(&event, expected, quirk)
}

/// Compares our event with the expected one: envelope, instants, every trait.
fn same_event(event: &Value, expected: &Value, quirk: bool) -> Result<(), String> {
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
fn vendored_copy_is_current() {
    spec_support::assert_vendored_current("distiller.json");
}

#[test]
fn distiller_vectors() {
    let (path, cases) = spec_support::cases("distiller.json");
    eprintln!("{} cases from {}", cases.len(), path.display());
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
