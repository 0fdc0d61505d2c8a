//! The JSON quincy/quince put on the wire, built from the store's values.
//!
//! - Datetimes are `{"__type__": "datetime", "datetime": …}` and time ranges
//!   `{"__type__": "timex.TimeRange", "begin": …, "end": …}`, with the strings Python's
//!   `datetime.isoformat()` made of winchester's naive UTC datetimes:
//!   `2015-02-27T00:11:16.202000`, or `2015-02-27T00:11:16` when there are no
//!   microseconds, and no offset. klugman decodes these hints.
//! - An event is its traits, flattened, plus `message_id`, `event_type` and
//!   `timestamp` (winchester's `Event.as_dict`); a listed event has a `_mark`.
//! - A stream is `id`, `name`, `state` (its name), `first_event`, `last_event`,
//!   `fire_timestamp`, `expire_timestamp` (null when unset), `distinguishing_traits`,
//!   `_mark`, and with details its `events` (winchester's `Stream.as_dict`).
//! - `_mark` is the id in hex; in ascending listings it carries a `+`, so passing it
//!   back as `mark` continues in the same direction.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use worker::event::TraitValue;
use worker::store::{DistValue, StoredEvent, Stream};
use worker::timex::TimeRange;

/// `datetime.isoformat()` of a naive UTC datetime.
pub fn isoformat(d: &DateTime<Utc>) -> String {
    let naive = d.naive_utc();
    if d.timestamp_subsec_micros() == 0 {
        naive.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        naive.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

pub fn datetime(d: &DateTime<Utc>) -> Value {
    json!({ "__type__": "datetime", "datetime": isoformat(d) })
}

fn opt_datetime(d: &Option<DateTime<Utc>>) -> Value {
    d.as_ref().map(datetime).unwrap_or(Value::Null)
}

pub fn time_range(r: &TimeRange) -> Value {
    json!({
        "__type__": "timex.TimeRange",
        "begin": isoformat(&r.begin),
        "end": isoformat(&r.end),
    })
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub fn trait_value(v: &TraitValue) -> Value {
    match v {
        TraitValue::Text(s) => Value::String(s.clone()),
        TraitValue::Int(i) => Value::from(*i),
        TraitValue::Float(f) => float(*f),
        TraitValue::Datetime(d) => datetime(d),
    }
}

pub fn dist_value(v: &DistValue) -> Value {
    match v {
        DistValue::Text(s) => Value::String(s.clone()),
        DistValue::Int(i) => Value::from(*i),
        DistValue::Float(f) => float(*f),
        DistValue::Datetime(d) => datetime(d),
        DistValue::Range(r) => time_range(r),
    }
}

/// A `_mark`: the id in hex, `+`-prefixed in ascending listings.
pub fn mark(id: i64, ascending: bool) -> String {
    if ascending {
        format!("+{id:x}")
    } else {
        format!("{id:x}")
    }
}

/// An event as `Event.as_dict` made it (no `_mark`): traits first, so the envelope
/// fields win over traits of the same name, as they did.
pub fn event(e: &StoredEvent) -> Map<String, Value> {
    let mut out: Map<String, Value> = e
        .event
        .traits
        .iter()
        .map(|(k, v)| (k.clone(), trait_value(v)))
        .collect();
    out.insert(
        "message_id".into(),
        Value::String(e.event.message_id.clone()),
    );
    out.insert(
        "event_type".into(),
        Value::String(e.event.event_type.clone()),
    );
    out.insert("timestamp".into(), datetime(&e.event.timestamp));
    out
}

/// An event of a listing, with its `_mark`.
pub fn listed_event(e: &StoredEvent, ascending: bool) -> Value {
    let mut out = event(e);
    out.insert("_mark".into(), Value::String(mark(e.id, ascending)));
    Value::Object(out)
}

/// Events of a stream shown with `details`, and where they start among its events.
#[derive(Clone, Copy)]
pub struct ShownEvents<'a> {
    pub events: &'a [StoredEvent],
    pub offset: u64,
}

/// A stream with its `_mark`, and its events when `events` is given (details). When
/// the stream has more events than shown after them, `_events_next_offset` says
/// where the next page of them starts (`events_offset=`).
pub fn stream(s: &Stream, ascending: bool, events: Option<ShownEvents<'_>>) -> Value {
    let dist: Map<String, Value> = s
        .distinguishing_traits
        .iter()
        .map(|(k, v)| (k.clone(), dist_value(v)))
        .collect();
    let mut out = Map::new();
    out.insert("id".into(), Value::from(s.id));
    out.insert("name".into(), Value::String(s.name.clone()));
    out.insert("state".into(), Value::String(s.state.name().into()));
    out.insert("first_event".into(), datetime(&s.first_event));
    out.insert("last_event".into(), datetime(&s.last_event));
    out.insert("fire_timestamp".into(), opt_datetime(&s.fire_timestamp));
    out.insert("expire_timestamp".into(), opt_datetime(&s.expire_timestamp));
    out.insert("distinguishing_traits".into(), Value::Object(dist));
    out.insert("_mark".into(), Value::String(mark(s.id, ascending)));
    if let Some(shown) = events {
        out.insert(
            "events".into(),
            Value::Array(
                shown
                    .events
                    .iter()
                    .map(|e| Value::Object(event(e)))
                    .collect(),
            ),
        );
        let next = shown.offset + shown.events.len() as u64;
        if next < s.event_count && !shown.events.is_empty() {
            out.insert("_events_next_offset".into(), Value::from(next));
        }
    }
    Value::Object(out)
}

/// quincy's count answer: a list of one `{"count": n}`.
pub fn count(n: u64) -> Value {
    json!([{ "count": n }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn datetimes_as_python_isoformat() {
        let t = Utc.with_ymd_and_hms(2015, 2, 27, 0, 11, 16).unwrap();
        assert_eq!(isoformat(&t), "2015-02-27T00:11:16");
        assert_eq!(
            isoformat(&(t + Duration::microseconds(202_000))),
            "2015-02-27T00:11:16.202000"
        );
        assert_eq!(
            datetime(&t),
            json!({"__type__": "datetime", "datetime": "2015-02-27T00:11:16"})
        );
    }

    #[test]
    fn marks() {
        assert_eq!(mark(255, false), "ff");
        assert_eq!(mark(255, true), "+ff");
    }
}
