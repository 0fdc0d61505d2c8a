//! The original klugman's output layouts, from the server's JSON to text.
//!
//! Each function returns the full text to print (every table followed by a newline,
//! as Python's `print(table)` did), so callers and tests see exactly what a user sees.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::pyshow::show;
use crate::table::Table;

/// The stream fields the original always printed, in its order.
const STREAM_KEYS: [&str; 7] = [
    "id",
    "state",
    "name",
    "first_event",
    "last_event",
    "fire_timestamp",
    "expire_timestamp",
];

/// Archive fields shown first, in this order; any others follow alphabetically. The
/// original's draft printed `id` and `filename`; our server adds size and times.
const ARCHIVE_KEYS: [&str; 7] = [
    "id",
    "name",
    "filename",
    "size",
    "modified",
    "mtime",
    "last_modified",
];

/// The server's answer as a list of objects: list endpoints return arrays, but a
/// single item (`/events/{id}`) or a count may come as one object. Anything that is
/// not an object is skipped rather than crashing as the original did.
fn rows(v: &Value) -> Vec<&Map<String, Value>> {
    match v {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        Value::Object(o) => vec![o],
        _ => Vec::new(),
    }
}

/// The entries of `o` sorted by key. `serde_json::Map` is only sorted while no
/// crate in the build turns on serde_json's `preserve_order`, so we sort ourselves.
fn sorted(o: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut entries: Vec<(&str, &Value)> = o.iter().map(|(k, v)| (k.as_str(), v)).collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// One `Property | Value` table per row, with the given keys where present
/// (the original's `dump_response`).
fn dump(keys: &[&str], rows: &[&Map<String, Value>]) -> String {
    let mut out = String::new();
    for row in rows {
        let mut t = Table::new(["Property", "Value"]);
        for key in keys {
            if let Some(v) = row.get(*key) {
                t.add_row([key.to_string(), show(v)]);
            }
        }
        out.push_str(&t.render());
        out.push('\n');
    }
    out
}

/// `streams`, `streams --id`, with or without `--details`: a
/// `Section | Property | Value` table per stream with its `Stream` fields and its
/// `D.Trait` rows, then, when the stream carries events, `Events:` and one
/// `Property | Value` table per event with its keys sorted.
///
/// Distinguishing traits are printed sorted by name (the original's order was
/// Python 2 dict order, i.e. arbitrary).
pub fn streams(v: &Value) -> String {
    let mut out = String::new();
    for row in rows(v) {
        let mut t = Table::new(["Section", "Property", "Value"]);
        for key in STREAM_KEYS {
            t.add_row([
                "Stream".to_string(),
                key.to_string(),
                show(row.get(key).unwrap_or(&Value::Null)),
            ]);
        }
        if let Some(Value::Object(traits)) = row.get("distinguishing_traits") {
            for (name, value) in sorted(traits) {
                t.add_row(["D.Trait".to_string(), name.to_string(), show(value)]);
            }
        }
        out.push_str(&t.render());
        out.push('\n');
        if let Some(events) = row.get("events") {
            out.push_str("Events:\n");
            for event in rows(events) {
                let mut t = Table::new(["Property", "Value"]);
                for (key, value) in sorted(event) {
                    t.add_row([key.to_string(), show(value)]);
                }
                out.push_str(&t.render());
                out.push('\n');
            }
        }
    }
    out
}

/// `events` and `events --msg_id`: one `Property | Value` table per event, over the
/// sorted union of all events' keys (each table shows the keys its event has).
pub fn events(v: &Value) -> String {
    let rows = rows(v);
    let keys: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.keys().map(String::as_str))
        .collect();
    let keys: Vec<&str> = keys.into_iter().collect();
    dump(&keys, &rows)
}

/// `--count` for streams and events: `Property | Value` with the `count` row.
pub fn count(v: &Value) -> String {
    dump(&["count"], &rows(v))
}

/// `archives`: one `Property | Value` table per archive.
pub fn archives(v: &Value) -> String {
    let rows = rows(v);
    let mut keys: Vec<&str> = ARCHIVE_KEYS
        .iter()
        .copied()
        .filter(|k| rows.iter().any(|r| r.contains_key(*k)))
        .collect();
    let rest: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.keys().map(String::as_str))
        .filter(|k| !ARCHIVE_KEYS.contains(k))
        .collect();
    keys.extend(rest);
    dump(&keys, &rows)
}

#[cfg(test)]
mod tests;
