//! Every case of the reference's trigger-criteria vectors (`criteria.json`, results
//! of the original winchester 0.56; see `spec_support` for where it is read from),
//! checked against `worker::winchester`.
//!
//! Kinds:
//! - `match`: the trigger must (or must not) take the event, through the expected
//!   match criteria (by index), giving the expected distinguishing traits;
//! - `definition_error`: the trigger must be refused when loading, with a message;
//! - `fire`: whether a stream holding the events is ready to fire;
//! - `expiration`: the expire timestamp of a stream spanning `first`..`last`;
//! - `streams`: the steps are ingested one by one, with `now` as the clock, into a
//!   fresh in-memory SQLite store through the real `TriggerSet` rules; the streams
//!   (ids, states, distinguishing traits, times, events) and the number of events
//!   stored must be the expected ones.
//!
//! Flags: every definition the original loaded must load here. `original_bug` cases
//! (the original raised) accept a load error or a sane result, never a panic; when
//! `recommended` gives a concrete outcome ("no match", "definition error at load
//! time") that outcome is required. Deliberate differences from the original (the
//! documented differences of `winchester::definition` and `worker::timex`) are
//! listed in [`DELIBERATE`] with their reason and the outcome we require instead; a
//! name there that is not a case fails the test. `note` is informational. Each case runs under
//! `catch_unwind`, so a panic is a reported failure, and all failures are reported
//! together.

mod spec_support;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use worker::event::{Event, TraitValue};
use worker::store::{self, DistValue, EventQuery, Page, StreamQuery};
use worker::winchester::debug::{DebugManager, NoObserver};
use worker::winchester::definition::{load_triggers_with_warnings, TriggerDefinition};
use worker::winchester::triggers::TriggerSet;

/// Cases where we deliberately differ from the original: (case name, the outcome we
/// require instead, why).
const DELIBERATE: &[(&str, Outcome, &str)] = &[
    (
        "criterion_int_ge_never_matches",
        Outcome::Match { criteria_index: 0 },
        "`>=` and `<=` are implemented (a documented difference of \
         winchester::definition): the original accepted them at load time and silently \
         never matched; here 7 >= 5 matches",
    ),
    (
        "criterion_datetime_month_arithmetic",
        Outcome::Match { criteria_index: 0 },
        "worker::timex clamps month arithmetic to the end of the month (2015-01-31 + 1mo \
         = 2015-02-28, see timex::duration) where the original raised ValueError and \
         crashed add_event; the trait equals that timestamp, so it matches (the case's \
         original_bug text allows a clamping timex to match)",
    ),
];

/// The outcome a [`DELIBERATE`] case must have instead of the original's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// The trigger takes the event through this match criteria.
    Match { criteria_index: usize },
}

fn instant(v: &Value) -> Result<DateTime<Utc>, String> {
    let text = v.as_str().ok_or_else(|| format!("not a datetime: {v}"))?;
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("bad datetime {text:?}: {e}"))
}

/// An event from the vectors' JSON form (the one `Event::to_json` writes).
fn event(v: &Value) -> Result<Event, String> {
    let text = |key: &str| {
        v[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("event without a `{key}` string: {v}"))
    };
    let mut traits = BTreeMap::new();
    if let Some(map) = v["traits"].as_object() {
        for (name, t) in map {
            let value = &t["value"];
            let bad = || format!("trait {name}: bad value {t}");
            let tv = match t["type"].as_str() {
                Some("text") => TraitValue::Text(value.as_str().ok_or_else(bad)?.to_string()),
                Some("int") => TraitValue::Int(value.as_i64().ok_or_else(bad)?),
                Some("float") => TraitValue::Float(value.as_f64().ok_or_else(bad)?),
                Some("datetime") => TraitValue::Datetime(instant(value)?),
                _ => return Err(format!("trait {name}: unknown type in {t}")),
            };
            traits.insert(name.clone(), tv);
        }
    }
    Ok(Event {
        event_type: text("event_type")?,
        message_id: text("message_id")?,
        timestamp: instant(&v["timestamp"])?,
        traits,
    })
}

/// Loads one trigger definition (the vectors give a single mapping, the loader
/// takes the file's list).
fn load_one(text: &str) -> Result<TriggerDefinition, String> {
    let mut defs = load_all(&[text])?;
    match defs.len() {
        1 => Ok(defs.remove(0)),
        n => Err(format!("loaded {n} triggers from one definition")),
    }
}

fn load_all(texts: &[&str]) -> Result<Vec<TriggerDefinition>, String> {
    let mut list = String::new();
    for text in texts {
        list.push_str("- ");
        list.push_str(&text.trim_end().replace('\n', "\n  "));
        list.push('\n');
    }
    match load_triggers_with_warnings(&list, "vector.yaml", None) {
        Ok((defs, _warnings)) => Ok(defs),
        Err(e) => {
            let message = e.to_string();
            if message.trim().is_empty() {
                Err("refused without a message".into())
            } else {
                Err(message)
            }
        }
    }
}

fn trigger_text(case: &Value) -> Result<&str, String> {
    case["trigger"]
        .as_str()
        .ok_or_else(|| "case without a `trigger` string".into())
}

/// A distinguishing value in the vectors' form.
fn dist_json(v: &DistValue) -> Value {
    let time = |d: &DateTime<Utc>| json!(worker::event::format_datetime(d));
    match v {
        DistValue::Text(s) => json!({"type": "text", "value": s}),
        DistValue::Int(i) => json!({"type": "int", "value": i}),
        DistValue::Float(f) => json!({"type": "float", "value": f}),
        DistValue::Datetime(d) => json!({"type": "datetime", "value": time(d)}),
        DistValue::Range(r) => {
            json!({"type": "timerange", "begin": time(&r.begin), "end": time(&r.end)})
        }
    }
}

/// Compares values, datetimes as instants (whatever their spelling).
fn same_value(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len()
                && w.iter()
                    .all(|(k, wv)| g.get(k).is_some_and(|gv| same_value(gv, wv)))
        }
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same_value(a, b))
        }
        (Value::String(_), Value::String(_)) if got != want => {
            matches!((instant(got), instant(want)), (Ok(a), Ok(b)) if a == b)
        }
        (Value::Number(g), Value::Number(w)) => g.as_f64() == w.as_f64(),
        _ => got == want,
    }
}

/// What matching one event gave: the criteria index and distinguishing traits.
fn route(def: &TriggerDefinition, e: &Event) -> Option<(usize, Value)> {
    let criteria = def.matching_criteria(e, &mut NoObserver)?;
    let index = def
        .match_criteria
        .iter()
        .position(|c| std::ptr::eq(c, criteria))?;
    let traits = def.distinguishing_traits(e, criteria)?;
    let traits: serde_json::Map<String, Value> = traits
        .iter()
        .map(|(k, v)| (k.clone(), dist_json(v)))
        .collect();
    Some((index, Value::Object(traits)))
}

fn check_match(case: &Value) -> Result<(), String> {
    let e = event(&case["event"])?;
    let original_bug = case.get("original_bug").is_some();
    let recommended = case["recommended"].as_str();

    if let Some((_, want, _)) = DELIBERATE
        .iter()
        .find(|(name, ..)| Some(*name) == case["name"].as_str())
    {
        let def = load_one(trigger_text(case)?)
            .map_err(|e| format!("the original loaded it; refused: {e}"))?;
        let got = route(&def, &e);
        return match (want, got) {
            (Outcome::Match { criteria_index }, Some((i, _))) if i == *criteria_index => Ok(()),
            (Outcome::Match { criteria_index }, got) => Err(format!(
                "got {got:?}; expected a match by criteria {criteria_index} (deliberate \
                 difference from the original)"
            )),
        };
    }

    let def = match load_one(trigger_text(case)?) {
        Ok(def) => def,
        // The original loaded it and crashed matching; refusing it up front is the
        // sane alternative (required when `recommended` says so).
        Err(_) if original_bug && recommended != Some("no match") => return Ok(()),
        Err(e) => return Err(format!("the original loaded it; refused: {e}")),
    };
    let got = route(&def, &e);

    if original_bug {
        return match recommended {
            Some("definition error at load time") => Err(format!(
                "loaded; recommended a definition error (original: {})",
                case["expected_error_in_original"]
            )),
            Some("no match") => match got {
                None => Ok(()),
                Some((i, traits)) => Err(format!(
                    "matched criteria {i} with {traits}; recommended no match (original: {})",
                    case["expected_error_in_original"]
                )),
            },
            // No concrete recommendation: any outcome that is not a panic.
            _ => Ok(()),
        };
    }

    let want = case["expected_match"]
        .as_bool()
        .ok_or("no `expected_match` boolean")?;
    match (got, want) {
        (None, false) => Ok(()),
        (Some((i, traits)), false) => Err(format!(
            "matched criteria {i} with {traits}; expected no match"
        )),
        (None, true) => Err(format!(
            "no match; expected criteria {} with {}",
            case["expected_criteria_index"], case["expected_distinguishing_traits"]
        )),
        (Some((i, traits)), true) => {
            let want_index = case["expected_criteria_index"].as_u64();
            let want_traits = &case["expected_distinguishing_traits"];
            if want_index != Some(i as u64) {
                return Err(format!(
                    "matched criteria {i}; expected {}",
                    case["expected_criteria_index"]
                ));
            }
            if !same_value(&traits, want_traits) {
                return Err(format!(
                    "distinguishing traits {traits}; expected {want_traits}"
                ));
            }
            Ok(())
        }
    }
}

fn check_definition_error(case: &Value) -> Result<(), String> {
    match load_one(trigger_text(case)?) {
        Err(e) if e == "refused without a message" => Err(e),
        Err(_) => Ok(()),
        Ok(_) => Err(format!(
            "loaded; the original refused it: {}",
            case["expected_definition_error"]
        )),
    }
}

fn check_fire(case: &Value) -> Result<(), String> {
    let def = load_one(trigger_text(case)?).map_err(|e| format!("load: {e}"))?;
    let events = case["events"].as_array().ok_or("no `events` list")?;
    let mut counts = vec![0u64; def.fire_criteria.len()];
    for v in events {
        let e = event(v)?;
        for (count, matched) in counts.iter_mut().zip(def.fire_matches(&e, &mut NoObserver)) {
            *count += u64::from(matched);
        }
    }
    let got = def.should_fire(&counts);
    let want = case["expected_fire"]
        .as_bool()
        .ok_or("no `expected_fire` boolean")?;
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "should_fire {got} (counts {counts:?}); expected {want}"
        ))
    }
}

fn check_expiration(case: &Value) -> Result<(), String> {
    let def = load_one(trigger_text(case)?).map_err(|e| format!("load: {e}"))?;
    let first = instant(&case["first"])?;
    let last = instant(&case["last"])?;
    let want = instant(&case["expected_expire_timestamp"])?;
    // None of these expressions uses `$timestamp`; "now" is the last event.
    let got = def
        .expire_timestamp(first, last, last)
        .map_err(|e| format!("evaluating the expiration: {e}"))?;
    if got == want {
        Ok(())
    } else {
        Err(format!("expires at {got:?}; expected {want:?}"))
    }
}

fn check_streams(case: &Value) -> Result<(), String> {
    let texts: Vec<&str> = case["triggers"]
        .as_array()
        .ok_or("no `triggers` list")?
        .iter()
        .map(|t| t.as_str().ok_or("a trigger that is not a string"))
        .collect::<Result<_, _>>()?;
    let defs = load_all(&texts).map_err(|e| format!("load: {e}"))?;
    let debug = Arc::new(DebugManager::new(
        defs.iter().map(|t| (t.name.clone(), t.debug_level)),
    ));
    let rules = TriggerSet::new(defs, debug);
    let steps = case["steps"].as_array().ok_or("no `steps` list")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let store = store::open("sqlite::memory:")
            .await
            .map_err(|e| format!("open: {e}"))?;
        store.migrate().await.map_err(|e| format!("migrate: {e}"))?;
        for (i, step) in steps.iter().enumerate() {
            let e = event(&step["event"])?;
            let now = instant(&step["now"])?;
            store
                .ingest(std::slice::from_ref(&e), &rules, now)
                .await
                .map_err(|err| format!("step {i} ({}): ingest: {err}", e.message_id))?;
        }

        let mut problems = Vec::new();
        let stored = store
            .count_events(&EventQuery::default())
            .await
            .map_err(|e| format!("count_events: {e}"))?;
        if Some(stored) != case["expected_events_stored"].as_u64() {
            problems.push(format!(
                "{stored} events stored; expected {}",
                case["expected_events_stored"]
            ));
        }

        let streams = store
            .find_streams(&StreamQuery {
                page: Page {
                    ascending: true,
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| format!("find_streams: {e}"))?;
        let mut got = Vec::new();
        for s in &streams {
            let events = store
                .stream_events(s.id)
                .await
                .map_err(|e| format!("stream_events: {e}"))?;
            let time = |t: Option<DateTime<Utc>>| {
                t.map_or(Value::Null, |t| json!(worker::event::format_datetime(&t)))
            };
            let traits: serde_json::Map<String, Value> = s
                .distinguishing_traits
                .iter()
                .map(|(k, v)| (k.clone(), dist_json(v)))
                .collect();
            got.push(json!({
                "id": s.id,
                "name": s.name,
                "state": s.state.name(),
                "distinguishing_traits": traits,
                "first_event": time(Some(s.first_event)),
                "last_event": time(Some(s.last_event)),
                "fire_timestamp": time(s.fire_timestamp),
                "expire_timestamp": time(s.expire_timestamp),
                "events": events.iter().map(|e| e.event.message_id.clone()).collect::<Vec<_>>(),
            }));
        }
        let want = case["expected_streams"]
            .as_array()
            .ok_or("no `expected_streams` list")?;
        if got.len() != want.len() {
            problems.push(format!(
                "{} streams; expected {}: got {}",
                got.len(),
                want.len(),
                Value::Array(got.clone())
            ));
        } else {
            for (g, w) in got.iter().zip(want) {
                if !same_value(g, w) {
                    problems.push(format!("stream {g}; expected {w}"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    })
}

fn check(case: &Value) -> Result<(), String> {
    match case["kind"].as_str() {
        Some("match") => check_match(case),
        Some("definition_error") => check_definition_error(case),
        Some("fire") => check_fire(case),
        Some("expiration") => check_expiration(case),
        Some("streams") => check_streams(case),
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[test]
fn vendored_copy_is_current() {
    spec_support::assert_vendored_current("criteria.json");
}

#[test]
fn criteria_vectors() {
    let (path, cases) = spec_support::cases("criteria.json");
    eprintln!("{} cases from {}", cases.len(), path.display());

    let mut failures = Vec::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (index, case) in cases.iter().enumerate() {
        *by_kind
            .entry(case["kind"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| check(case)))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        if let Err(why) = outcome {
            failures.push(format!(
                "case {index} {} `{}`: {why}",
                case["kind"].as_str().unwrap_or("?"),
                case["name"].as_str().unwrap_or("?")
            ));
        }
    }
    eprintln!("checked {by_kind:?}");
    for (name, outcome, why) in DELIBERATE {
        if !cases.iter().any(|c| c["name"].as_str() == Some(name)) {
            failures.push(format!("DELIBERATE names `{name}`, which is not a case"));
        }
        eprintln!("deliberate difference `{name}` ({outcome:?}): {why}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} criteria vectors failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
