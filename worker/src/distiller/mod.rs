//! The distiller: turns a raw OpenStack notification into a flat, typed [`Event`]
//! according to an event definitions file (the successor of stackdistiller).
//!
//! ```
//! use worker::distiller::Distiller;
//! let d = Distiller::from_yaml(
//!     "- event_type: compute.instance.*\n  traits:\n    host: {fields: payload.host}\n",
//!     "inline.yaml",
//! ).unwrap();
//! let n = serde_json::json!({
//!     "event_type": "compute.instance.update", "message_id": "m-1",
//!     "timestamp": "2015-02-27 00:10:00", "payload": {"host": "c-1"}
//! });
//! let event = d.distill(&n).unwrap();
//! assert_eq!(event.traits.len(), 1);
//! ```
//!
//! All the work that can be done once is done at load ([`definitions`]): patterns and
//! field paths are compiled, plugin parameters checked, default traits merged in. A
//! notification then costs one pattern scan and one walk per trait; nothing on the
//! per-notification path can panic or fail except by [`Dropped`].
//!
//! Behaviour follows the original, except where it lost data:
//! - a value that cannot be converted (int of `"abc"`) omits that trait instead of
//!   losing the notification;
//! - an unparseable envelope timestamp drops the notification with a reason;
//! - `catch_all` works (see [`Distiller::with_catch_all`]).

mod convert;
mod definitions;
mod error;
mod path;
mod pattern;
mod plugins;

pub use convert::{parse_datetime, python_float_repr};
pub use error::{Dropped, LoadError, LoadWarning};
pub use path::{FieldPath, Found, Match};
pub use pattern::{Glob, TypeMatcher};
pub use plugins::{Bitfield, Flag, Ignored, Plugin, Split};

use crate::event::{Event, TraitValue};
use chrono::{DateTime, Utc};
use definitions::Definition;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A loaded set of event definitions.
#[derive(Debug, Clone)]
pub struct Distiller {
    /// In file order; scanned from the end, so the last matching definition wins.
    definitions: Vec<Definition>,
    /// Used when nothing matches, if catch-all is on.
    catch_all: Option<Definition>,
    source: String,
}

impl Distiller {
    /// Loads definitions from YAML text. `source` names the text in errors (usually
    /// the file path). Warnings are logged; [`Distiller::load`] returns them.
    pub fn from_yaml(text: &str, source: &str) -> Result<Distiller, LoadError> {
        let (distiller, warnings) = Distiller::load(text, source)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(distiller)
    }

    /// Loads definitions from YAML text, returning the warnings (what the original
    /// ignored, paths that may not mean what they seem) instead of logging them.
    pub fn load(text: &str, source: &str) -> Result<(Distiller, Vec<LoadWarning>), LoadError> {
        let (definitions, warnings) = definitions::load(text, source)?;
        let distiller = Distiller {
            definitions,
            catch_all: None,
            source: source.to_string(),
        };
        Ok((distiller, warnings))
    }

    /// Loads definitions from a file (warnings are logged).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Distiller, LoadError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            file: name.clone(),
            source,
        })?;
        Distiller::from_yaml(&text, &name)
    }

    /// Turns catch-all mode on or off.
    ///
    /// With catch-all on, a notification that no definition matches is not dropped:
    /// it becomes an event built by a definition `event_type: '*'` carrying only the
    /// default traits (`service`, `request_id`, `tenant_id`), as winchester's
    /// `catch_all_notifications` did with stackdistiller 0.12.
    pub fn with_catch_all(mut self, on: bool) -> Distiller {
        self.catch_all = on.then(Definition::catch_all);
        self
    }

    /// Whether catch-all mode is on.
    pub fn catch_all(&self) -> bool {
        self.catch_all.is_some()
    }

    /// Number of definitions loaded (not counting the catch-all).
    pub fn len(&self) -> usize {
        self.definitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
    }

    /// The source name given at load.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Distills a notification; a notification without a usable timestamp is
    /// stamped with the current time.
    pub fn distill(&self, notification: &Value) -> Result<Event, Dropped> {
        self.distill_with(notification, Utc::now)
    }

    /// Distills a notification with `now` as the time for a notification that
    /// carries no timestamp (deterministic for tests and replays).
    pub fn distill_at(&self, notification: &Value, now: DateTime<Utc>) -> Result<Event, Dropped> {
        self.distill_with(notification, || now)
    }

    /// Parses JSON bytes and distills them; invalid JSON is [`Dropped::InvalidJson`].
    pub fn distill_slice(&self, bytes: &[u8], now: DateTime<Utc>) -> Result<Event, Dropped> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| Dropped::InvalidJson(e.to_string()))?;
        self.distill_at(&value, now)
    }

    fn distill_with(
        &self,
        n: &Value,
        now: impl FnOnce() -> DateTime<Utc>,
    ) -> Result<Event, Dropped> {
        let body = n.as_object().ok_or(Dropped::NotAnObject)?;
        let event_type = required_str(body.get("event_type"), "event_type")?;
        let message_id = required_str(body.get("message_id"), "message_id")?;
        // Both are stored in 255-character columns; longer ones are not real
        // notifications, and must not fail the batch they arrive in.
        for (field, value) in [("event_type", event_type), ("message_id", message_id)] {
            let len = value.chars().count();
            if len > MAX_ENVELOPE_CHARS {
                return Err(Dropped::TooLong { field, len });
            }
        }

        let def = self
            .definitions
            .iter()
            .rev()
            .find(|d| d.matcher.is_match(event_type))
            .or(self.catch_all.as_ref())
            .ok_or_else(|| Dropped::NoMatchingDefinition {
                event_type: event_type.to_string(),
            })?;

        let timestamp = match envelope_time(body.get("timestamp"), "timestamp")? {
            Some(t) => t,
            None => match envelope_time(body.get("_context_timestamp"), "_context_timestamp")? {
                Some(t) => t,
                None => now(),
            },
        };

        let mut traits = BTreeMap::new();
        for t in &def.traits {
            let value = match &t.plugin {
                None => t.fields.first(n).and_then(|v| convert::convert(&v, t.ty)),
                Some(p) => p
                    .value(&t.fields, n)
                    .and_then(|v| convert::convert(&v, t.ty)),
            };
            match value {
                // NaN and infinities (from strings such as "nan") cannot be stored or
                // compared: the trait is omitted like any unconvertible value.
                Some(TraitValue::Float(f)) if !f.is_finite() => {}
                Some(v) => {
                    traits.insert(t.name.clone(), v);
                }
                None => {}
            }
        }
        if traits.is_empty() {
            return Err(Dropped::NoTraits {
                event_type: event_type.to_string(),
            });
        }
        Ok(Event {
            event_type: event_type.to_string(),
            message_id: message_id.to_string(),
            timestamp,
            traits,
        })
    }
}

/// The longest event_type or message_id accepted (the stores' column width).
pub const MAX_ENVELOPE_CHARS: usize = 255;

fn required_str<'a>(v: Option<&'a Value>, field: &'static str) -> Result<&'a str, Dropped> {
    match v {
        None | Some(Value::Null) => Err(Dropped::Missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Dropped::NotAString(field)),
    }
}

/// An envelope time: absent, null or empty means "not given"; anything else must
/// parse as ISO 8601.
fn envelope_time(v: Option<&Value>, field: &'static str) -> Result<Option<DateTime<Utc>>, Dropped> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            convert::parse_datetime(s)
                .map(Some)
                .ok_or_else(|| Dropped::InvalidTimestamp {
                    field,
                    value: s.clone(),
                })
        }
        Some(other) => Err(Dropped::InvalidTimestamp {
            field,
            value: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlong_envelope_fields_and_non_finite_floats_are_refused() {
        let d = Distiller::from_yaml(
            "- event_type: '*'\n  traits:\n    f: {fields: payload.f, type: float}\n",
            "t.yaml",
        )
        .unwrap();
        let long = "x".repeat(MAX_ENVELOPE_CHARS + 1);
        let n = json!({"event_type": "a", "message_id": long, "publisher_id": "p"});
        assert!(matches!(
            d.distill_at(&n, now()),
            Err(Dropped::TooLong {
                field: "message_id",
                ..
            })
        ));
        let n = json!({"event_type": "a", "message_id": "m", "publisher_id": "p",
                       "payload": {"f": "nan"}});
        let e = d.distill_at(&n, now()).unwrap();
        assert!(!e.traits.contains_key("f"), "NaN omitted");
        assert!(e.traits.contains_key("service"));
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_425_000_000, 0).unwrap()
    }

    #[test]
    fn merge_keys_and_anchors() {
        let yaml = "\
- event_type: compute.*
  traits: &t
    a: {fields: payload.a}
    b: {fields: payload.b, type: int}
- event_type: compute.x
  traits:
    <<: *t
    b: {fields: payload.c}
    d: {fields: payload.d}
";
        let d = Distiller::from_yaml(yaml, "t.yaml").unwrap();
        let n = json!({"event_type": "compute.x", "message_id": "1",
                       "payload": {"a": "A", "b": 2, "c": "C", "d": "D"}});
        let e = d.distill_at(&n, now()).unwrap();
        assert_eq!(e.traits["a"], TraitValue::Text("A".into()));
        assert_eq!(e.traits["b"], TraitValue::Text("C".into()));
        assert_eq!(e.traits["d"], TraitValue::Text("D".into()));
        assert_eq!(e.timestamp, now());
    }

    #[test]
    fn catch_all() {
        let d = Distiller::from_yaml("- event_type: image.*\n  traits: {}\n", "t.yaml").unwrap();
        let n = json!({"event_type": "compute.x", "message_id": "1", "publisher_id": "p"});
        assert!(matches!(
            d.distill_at(&n, now()),
            Err(Dropped::NoMatchingDefinition { .. })
        ));
        let d = d.with_catch_all(true);
        let e = d.distill_at(&n, now()).unwrap();
        assert_eq!(e.traits.len(), 1);
        assert_eq!(e.traits["service"], TraitValue::Text("p".into()));
    }

    #[test]
    fn envelope_problems() {
        let d = Distiller::from_yaml("- event_type: '*'\n  traits: {}\n", "t.yaml").unwrap();
        let cases = [
            (json!([]), "not a JSON object"),
            (json!({"message_id": "1"}), "missing event_type"),
            (json!({"event_type": "x"}), "missing message_id"),
            (
                json!({"event_type": 1, "message_id": "1"}),
                "event_type is not a string",
            ),
            (
                json!({"event_type": "x", "message_id": "1", "timestamp": "junk"}),
                "invalid timestamp",
            ),
            (json!({"event_type": "x", "message_id": "1"}), "no traits"),
        ];
        for (n, want) in cases {
            let got = d.distill_at(&n, now()).unwrap_err().to_string();
            assert!(got.contains(want), "{got} should contain {want}");
        }
        assert!(d
            .distill_slice(b"{nope", now())
            .unwrap_err()
            .to_string()
            .starts_with("invalid JSON"));
    }

    #[test]
    fn load_errors_name_file_line_definition_and_trait() {
        let cases = [
            ("- event_type: a\n  traits:\n    x: {fields: 'payload & a'}\n", 3, "trait 'x'"),
            ("- event_type: a\n  traits:\n    x: {fields: p, plugin: nope}\n", 3, "no plugin named 'nope'"),
            ("- event_type: a\n  traits:\n    x: {fields: p, type: str}\n", 3, "invalid type \"str\""),
            ("- event_type: a\n  traits:\n    x: {type: int}\n", 3, "'fields' is missing"),
            ("- event_type: a\n", 1, "'traits' is missing"),
            ("- traits: {}\n", 1, "'event_type' is missing"),
            ("- event_type: a\n  traits:\n    x:\n      fields: p\n      plugin: {name: split, parameters: {segment: x}}\n", 5, "segment"),
            ("a: b\n", 1, "expected a list"),
        ];
        for (yaml, line, want) in cases {
            let err = Distiller::from_yaml(yaml, "defs.yaml").unwrap_err();
            assert_eq!(err.line(), Some(line), "{err}");
            let err = err.to_string();
            assert!(err.contains(want), "{err} should contain {want}");
            assert!(err.starts_with(&format!("defs.yaml:{line}: ")), "{err}");
        }
        let err = Distiller::from_yaml("- event_type: a\n  traits: [\n", "defs.yaml").unwrap_err();
        assert!(
            matches!(err, LoadError::Yaml { line: Some(_), .. }),
            "{err}"
        );
        let err = Distiller::from_yaml(
            "- event_type: a\n  traits:\n    x: {fields: 'a.'}\n",
            "f.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("definition 0 (event_type \"a\"), trait 'x'"),
            "{err}"
        );
    }

    /// What the original loaded and ignored loads here too, with one warning each,
    /// naming the file, the line and what it means.
    #[test]
    fn leniency_warns_and_loads() {
        let yaml = "\
- event_type: compute.*
  comment: ignored by the original
  traits:
    deep: {fields: 'payload..address'}
    either: {fields: 'payload.a|payload.b'}
    host:
      fields: publisher_id
      plugin:
        name: split
        parameters: {segment: 1, sep: '-'}
      description: also ignored
    timestamp: {fields: payload.launched_at, type: datetime}
";
        let (d, warnings) = Distiller::load(yaml, "defs.yaml").unwrap();
        let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        let at = |line: usize, what: &str| {
            lines
                .iter()
                .any(|w| w.starts_with(&format!("defs.yaml:{line}: ")) && w.contains(what))
        };
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert!(at(2, "unknown definition key 'comment'"), "{lines:#?}");
        assert!(at(4, "any depth"), "{lines:#?}");
        assert!(at(5, "payload.(a|payload).b"), "{lines:#?}");
        assert!(
            at(10, "unknown parameter of plugin split 'sep'"),
            "{lines:#?}"
        );
        assert!(at(11, "unknown trait key 'description'"), "{lines:#?}");
        assert!(
            at(12, "overwritten by the notification's timestamp"),
            "{lines:#?}"
        );

        let n = json!({"event_type": "compute.x", "message_id": "m", "timestamp": "2015-01-01T00:00:00Z",
                       "publisher_id": "compute.host-1",
                       "payload": {"launched_at": "2014-01-01T00:00:00Z",
                                   "ips": [{"address": "10.0.0.1"}]}});
        let e = d.distill_at(&n, now()).unwrap();
        assert_eq!(e.traits["deep"], TraitValue::Text("10.0.0.1".into()));
        assert_eq!(e.traits["host"], TraitValue::Text("host-1".into()));
        assert!(!e.traits.contains_key("either"));
        assert!(!e.traits.contains_key("timestamp"));
    }

    #[test]
    fn empty_lists_and_null_traits_load() {
        let (d, warnings) = Distiller::load(
            "- event_type: []\n  traits: {}\n- event_type: a\n  traits:\n- event_type: b\n  traits: []\n",
            "defs.yaml",
        )
        .unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].line, Some(1));
        assert!(warnings[0].message.contains("matches no event type"));
        for et in ["a", "b"] {
            let n = json!({"event_type": et, "message_id": "m", "publisher_id": "p"});
            assert_eq!(d.distill_at(&n, now()).unwrap().traits.len(), 1);
        }
        let n = json!({"event_type": "c", "message_id": "m", "publisher_id": "p"});
        assert!(d.distill_at(&n, now()).is_err());
    }

    #[test]
    fn shared_configs_load() {
        for f in [
            "event_definitions.yaml",
            "event_definitions.winchester-etc.yaml",
        ] {
            let p = format!(
                "{}/../../shared/spec/configs/{f}",
                env!("CARGO_MANIFEST_DIR")
            );
            if std::path::Path::new(&p).exists() {
                Distiller::from_file(&p).unwrap();
            }
        }
        let p = format!(
            "{}/tests/data/event_definitions.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        assert_eq!(Distiller::from_file(&p).unwrap().len(), 6);
    }
}
