//! Rows ↔ values, shared by both backends: datetimes as microseconds, trait and
//! distinguishing-trait values spread over typed columns, and stream/event rows.

use super::bookkeeping::decode_counts;
use super::sql::{Arg, DbRow};
use super::{
    DistValue, DistinguishingTraits, EventId, StoreError, StoredEvent, Stream, StreamState,
};
use crate::event::{Event, TraitType, TraitValue};
use crate::timex::TimeRange;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// Type codes of `event_trait.type` and `stream_dist_trait.type` (the original's
/// trait types, plus 5 for a time range).
pub const TYPE_TEXT: i64 = 1;
pub const TYPE_INT: i64 = 2;
pub const TYPE_FLOAT: i64 = 3;
pub const TYPE_DATETIME: i64 = 4;
pub const TYPE_RANGE: i64 = 5;

pub fn micros(d: DateTime<Utc>) -> i64 {
    d.timestamp_micros()
}

pub fn from_micros(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Corrupt(format!("datetime out of range: {v}")))
}

fn opt_from_micros(v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(from_micros).transpose()
}

pub fn type_code(t: TraitType) -> i64 {
    match t {
        TraitType::Text => TYPE_TEXT,
        TraitType::Int => TYPE_INT,
        TraitType::Float => TYPE_FLOAT,
        TraitType::Datetime => TYPE_DATETIME,
    }
}

pub fn trait_type(code: i64) -> Result<TraitType, StoreError> {
    match code {
        TYPE_TEXT => Ok(TraitType::Text),
        TYPE_INT => Ok(TraitType::Int),
        TYPE_FLOAT => Ok(TraitType::Float),
        TYPE_DATETIME => Ok(TraitType::Datetime),
        other => Err(StoreError::Corrupt(format!("unknown trait type {other}"))),
    }
}

/// `type, t_string, t_int, t_float, t_datetime` of a trait value.
pub fn trait_args(v: &TraitValue) -> [Arg<'_>; 5] {
    let mut out = [Arg::Null, Arg::Null, Arg::Null, Arg::Null, Arg::Null];
    out[0] = Arg::Int(type_code(v.trait_type()));
    match v {
        TraitValue::Text(s) => out[1] = s.as_str().into(),
        TraitValue::Int(i) => out[2] = Arg::Int(*i),
        TraitValue::Float(f) => out[3] = Arg::Float(*f),
        TraitValue::Datetime(d) => out[4] = Arg::Int(micros(*d)),
    }
    out
}

/// `type, dt_string, dt_int, dt_float, dt_datetime, dt_begin, dt_end` of a
/// distinguishing-trait value.
pub fn dist_args(v: &DistValue) -> [Arg<'_>; 7] {
    let mut out = [
        Arg::Null,
        Arg::Null,
        Arg::Null,
        Arg::Null,
        Arg::Null,
        Arg::Null,
        Arg::Null,
    ];
    let code = match v {
        DistValue::Text(s) => {
            out[1] = s.as_str().into();
            TYPE_TEXT
        }
        DistValue::Int(i) => {
            out[2] = Arg::Int(*i);
            TYPE_INT
        }
        DistValue::Float(f) => {
            out[3] = Arg::Float(*f);
            TYPE_FLOAT
        }
        DistValue::Datetime(d) => {
            out[4] = Arg::Int(micros(*d));
            TYPE_DATETIME
        }
        DistValue::Range(r) => {
            out[5] = Arg::Int(micros(r.begin));
            out[6] = Arg::Int(micros(r.end));
            TYPE_RANGE
        }
    };
    out[0] = Arg::Int(code);
    out
}

/// The `stream_dist_trait` condition matching `value` (columns of alias `d`).
pub fn dist_condition<'a>(value: &'a DistValue, sql: &mut super::sql::Sql<'a>) {
    match value {
        DistValue::Text(s) => sql.push("d.dt_string = ").bind(s.as_str()),
        DistValue::Int(i) => sql.push("d.dt_int = ").bind(*i),
        DistValue::Float(f) => sql.push("d.dt_float = ").bind(*f),
        DistValue::Datetime(d) => sql.push("d.dt_datetime = ").bind(micros(*d)),
        DistValue::Range(TimeRange { begin, end }) => sql
            .push("d.dt_begin = ")
            .bind(micros(*begin))
            .push(" AND d.dt_end = ")
            .bind(micros(*end)),
    };
}

/// The columns [`stream_from_row`] reads, in order.
pub const STREAM_COLS: &str = "id, name, state, state_serial_no, first_event, last_event, \
     expire_timestamp, fire_timestamp, dist_traits, fire_counts, event_count, claim_until, \
     open_key";

/// A stream as stored, with what the ingest write-back needs besides the [`Stream`].
#[derive(Debug, Clone)]
pub struct StreamRow {
    pub stream: Stream,
    /// `dist_traits` as stored (JSON), written back unchanged.
    pub dist_json: String,
    pub open_key: Option<String>,
}

pub fn stream_from_row<R: DbRow>(r: &R) -> Result<StreamRow, StoreError> {
    let id = r.int(0)?;
    let bad = |what: &str| StoreError::Corrupt(format!("stream {id}: bad {what}"));
    let state = i16::try_from(r.int(2)?)
        .ok()
        .and_then(StreamState::from_i16)
        .ok_or_else(|| bad("state"))?;
    let dist_json = r.text(8)?;
    let distinguishing_traits: DistinguishingTraits =
        serde_json::from_str(&dist_json).map_err(|_| bad("dist_traits"))?;
    let fire_counts = decode_counts(&r.text(9)?).ok_or_else(|| bad("fire_counts"))?;
    let event_count = u64::try_from(r.int(10)?).map_err(|_| bad("event_count"))?;
    Ok(StreamRow {
        stream: Stream {
            id,
            name: r.text(1)?,
            state,
            state_serial_no: r.int(3)?,
            first_event: from_micros(r.int(4)?)?,
            last_event: from_micros(r.int(5)?)?,
            expire_timestamp: opt_from_micros(r.opt_int(6)?)?,
            fire_timestamp: opt_from_micros(r.opt_int(7)?)?,
            distinguishing_traits,
            fire_counts,
            event_count,
            claim_until: opt_from_micros(r.opt_int(11)?)?,
        },
        dist_json,
        open_key: r.opt_text(12)?,
    })
}

pub fn streams_from_rows<R: DbRow>(rows: &[R]) -> Result<Vec<Stream>, StoreError> {
    rows.iter()
        .map(|r| stream_from_row(r).map(|s| s.stream))
        .collect()
}

/// The event columns [`events_with_traits`] reads (aliases `e` event, `et` event_type).
pub const EVENT_COLS: &str = "e.id, e.message_id, et.name, e.generated";
/// The trait columns [`trait_from_row`] reads.
pub const TRAIT_COLS: &str = "event_id, name, type, t_string, t_int, t_float, t_datetime";

pub fn trait_from_row<R: DbRow>(r: &R) -> Result<(EventId, String, TraitValue), StoreError> {
    let event_id = r.int(0)?;
    let name = r.text(1)?;
    let missing = || StoreError::Corrupt(format!("event {event_id}: trait {name} has no value"));
    let value = match trait_type(r.int(2)?)? {
        TraitType::Text => TraitValue::Text(r.opt_text(3)?.ok_or_else(missing)?),
        TraitType::Int => TraitValue::Int(r.opt_int(4)?.ok_or_else(missing)?),
        TraitType::Float => TraitValue::Float(r.opt_float(5)?.ok_or_else(missing)?),
        TraitType::Datetime => {
            TraitValue::Datetime(from_micros(r.opt_int(6)?.ok_or_else(missing)?)?)
        }
    };
    Ok((event_id, name, value))
}

/// Traits one row per event (SQLite, [`super::sql::Backend::TRAITS_AS_JSON`]): the
/// event id, then a JSON array of `[name, type, t_string, t_int, t_float, t_datetime]`
/// with the float as 17 significant digits of text (SQLite's JSON writes reals with
/// 15, which does not round-trip). Followed by an `IN (…)` list and [`TRAITS_JSON_TAIL`].
pub const TRAITS_JSON: &str = "SELECT event_id, json_group_array(json_array(name, type, \
     t_string, t_int, CASE WHEN t_float IS NULL THEN NULL ELSE printf('%!.17g', t_float) END, \
     t_datetime)) FROM event_trait WHERE event_id IN ";
pub const TRAITS_JSON_TAIL: &str = " GROUP BY event_id";

/// One trait of a [`TRAITS_JSON`] array.
type JsonTrait = (
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// The traits of a [`TRAITS_JSON`] row, appended to `out`.
pub fn traits_from_json_row<R: DbRow>(
    r: &R,
    out: &mut Vec<(EventId, String, TraitValue)>,
) -> Result<(), StoreError> {
    let event_id = r.int(0)?;
    let text = r.text(1)?;
    let traits: Vec<JsonTrait> = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("event {event_id}: traits: {e}")))?;
    for (name, code, text, int, float, datetime) in traits {
        let missing =
            || StoreError::Corrupt(format!("event {event_id}: trait {name} has no value"));
        let value = match trait_type(code)? {
            TraitType::Text => TraitValue::Text(text.ok_or_else(missing)?),
            TraitType::Int => TraitValue::Int(int.ok_or_else(missing)?),
            TraitType::Float => {
                let f = float.ok_or_else(missing)?;
                TraitValue::Float(f.parse().map_err(|e| {
                    StoreError::Corrupt(format!("event {event_id}: trait {name}: {f}: {e}"))
                })?)
            }
            TraitType::Datetime => {
                TraitValue::Datetime(from_micros(datetime.ok_or_else(missing)?)?)
            }
        };
        out.push((event_id, name, value));
    }
    Ok(())
}

/// Events from `EVENT_COLS` rows (kept in their order) and their traits.
pub fn events_with_traits<R: DbRow>(
    heads: &[R],
    traits: Vec<(EventId, String, TraitValue)>,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut events = Vec::with_capacity(heads.len());
    let mut index = HashMap::with_capacity(heads.len());
    for r in heads {
        let id = r.int(0)?;
        index.insert(id, events.len());
        events.push(StoredEvent {
            id,
            event: Event {
                message_id: r.text(1)?,
                event_type: r.text(2)?,
                timestamp: from_micros(r.int(3)?)?,
                traits: BTreeMap::new(),
            },
        });
    }
    for (event_id, name, value) in traits {
        if let Some(&i) = index.get(&event_id) {
            events[i].event.traits.insert(name, value);
        }
    }
    Ok(events)
}
