//! Events: the flat, typed record the distiller makes of a notification.
//!
//! An event keeps the three envelope fields (`event_type`, `message_id`, `timestamp`)
//! apart from its traits, as winchester stores them, and every trait carries one of
//! the four StackTach types. The JSON form written by [`Event::to_json`] is the one
//! `stv3 distill` prints and the shared test vectors use.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The type of a trait, as stackdistiller and winchester name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TraitType {
    Text,
    Int,
    Float,
    Datetime,
}

impl TraitType {
    /// The name used in definitions files and in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            TraitType::Text => "text",
            TraitType::Int => "int",
            TraitType::Float => "float",
            TraitType::Datetime => "datetime",
        }
    }

    /// Parses a `type:` value from a definitions file.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "text" => Some(TraitType::Text),
            "int" => Some(TraitType::Int),
            "float" => Some(TraitType::Float),
            "datetime" => Some(TraitType::Datetime),
            _ => None,
        }
    }
}

/// A typed trait value.
#[derive(Debug, Clone, PartialEq)]
pub enum TraitValue {
    Text(String),
    Int(i64),
    Float(f64),
    Datetime(DateTime<Utc>),
}

impl TraitValue {
    pub fn trait_type(&self) -> TraitType {
        match self {
            TraitValue::Text(_) => TraitType::Text,
            TraitValue::Int(_) => TraitType::Int,
            TraitValue::Float(_) => TraitType::Float,
            TraitValue::Datetime(_) => TraitType::Datetime,
        }
    }

    /// `{"type": …, "value": …}` with datetimes as RFC 3339 UTC strings.
    pub fn to_json(&self) -> Value {
        let value = match self {
            TraitValue::Text(s) => Value::String(s.clone()),
            TraitValue::Int(i) => Value::from(*i),
            TraitValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            TraitValue::Datetime(d) => Value::String(format_datetime(d)),
        };
        json!({ "type": self.trait_type().as_str(), "value": value })
    }
}

/// A distilled event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: String,
    pub message_id: String,
    pub timestamp: DateTime<Utc>,
    /// Trait name → value. Ordered so output is stable.
    pub traits: BTreeMap<String, TraitValue>,
}

impl Event {
    /// The JSON form printed by `stv3 distill`.
    pub fn to_json(&self) -> Value {
        let traits: Map<String, Value> = self
            .traits
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        json!({
            "event_type": self.event_type,
            "message_id": self.message_id,
            "timestamp": format_datetime(&self.timestamp),
            "traits": traits,
        })
    }
}

/// RFC 3339 in UTC with a `Z`, keeping microseconds only when there are any
/// (the precision Python's datetime, and so the original, had).
pub fn format_datetime(d: &DateTime<Utc>) -> String {
    if d.timestamp_subsec_nanos() == 0 {
        d.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        d.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

/// A borrowed view of one value of an event, envelope fields included: what trigger
/// criteria and distinguishing traits look at. Borrowing keeps matching free of
/// allocations on the per-event path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Text(&'a str),
    Int(i64),
    Float(f64),
    Datetime(DateTime<Utc>),
}

impl ValueRef<'_> {
    pub fn to_owned_value(self) -> TraitValue {
        match self {
            ValueRef::Text(s) => TraitValue::Text(s.to_string()),
            ValueRef::Int(i) => TraitValue::Int(i),
            ValueRef::Float(f) => TraitValue::Float(f),
            ValueRef::Datetime(d) => TraitValue::Datetime(d),
        }
    }

    pub fn as_datetime(self) -> Option<DateTime<Utc>> {
        match self {
            ValueRef::Datetime(d) => Some(d),
            _ => None,
        }
    }
}

impl TraitValue {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            TraitValue::Text(s) => ValueRef::Text(s),
            TraitValue::Int(i) => ValueRef::Int(*i),
            TraitValue::Float(f) => ValueRef::Float(*f),
            TraitValue::Datetime(d) => ValueRef::Datetime(*d),
        }
    }
}

impl Event {
    /// Looks a name up the way winchester's event dictionaries did: the envelope
    /// fields `event_type`, `message_id` and `timestamp` first, then the traits.
    pub fn get(&self, name: &str) -> Option<ValueRef<'_>> {
        match name {
            "event_type" => Some(ValueRef::Text(&self.event_type)),
            "message_id" => Some(ValueRef::Text(&self.message_id)),
            "timestamp" => Some(ValueRef::Datetime(self.timestamp)),
            _ => self.traits.get(name).map(TraitValue::as_ref),
        }
    }

    /// The event's datetime values (the envelope timestamp and every datetime
    /// trait): the variables a timex criterion is evaluated with.
    pub fn datetime(&self, name: &str) -> Option<DateTime<Utc>> {
        self.get(name).and_then(ValueRef::as_datetime)
    }
}

/// Timex expressions in criteria see the event's datetime values as variables.
impl crate::timex::Variables for Event {
    fn get(&self, name: &str) -> Option<DateTime<Utc>> {
        self.datetime(name)
    }
}
