//! Trait plugins: `split` and `bitfield`, with the original's semantics.
//!
//! Parameters are checked when the definitions load (wrong types, an empty
//! separator, a bit out of range are load errors) so a plugin cannot fail per
//! notification. Unknown parameters and flag keys are warnings: the original's
//! plugins took `**kw` and ignored them, so files that have them must still load.

use super::convert::to_text;
use super::path::{FieldPath, Match};
use serde_json::{Map, Value};

/// A parameter (or bitfield flag key) the original ignored: where it is and what
/// to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The bitfield flag it is in, when it is a flag key.
    pub flag: Option<usize>,
    pub key: String,
    pub message: String,
}

/// A configured plugin.
#[derive(Debug, Clone, PartialEq)]
pub enum Plugin {
    Split(Split),
    Bitfield(Bitfield),
}

/// `split`: takes the first match as text and returns one piece of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Default `"."` (the original's default, despite some docs saying otherwise).
    pub separator: String,
    /// Default 0; negative counts from the end, as Python indexing does.
    pub segment: i64,
    /// Default none (no limit); at most this many splits, as `str.split(sep, n)`.
    pub max_split: Option<i64>,
}

/// `bitfield`: starts from `initial_bitfield` and sets `bit` for each flag whose
/// `path` matched (and, if `value` is given, whose value equals it).
#[derive(Debug, Clone, PartialEq)]
pub struct Bitfield {
    pub initial_bitfield: i64,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// Compared with the jsonpath-rw style path of each match (`payload.a.b`).
    pub path: String,
    pub bit: u32,
    pub value: Option<Value>,
}

impl Plugin {
    /// Builds a plugin from its name and the `parameters` mapping (absent or null:
    /// defaults); what the original ignored is added to `warnings`.
    pub fn from_config(
        name: &str,
        params: Option<&Value>,
        warnings: &mut Vec<Ignored>,
    ) -> Result<Plugin, String> {
        let empty = Map::new();
        let params = match params {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => return Err(format!("plugin parameters must be a mapping, not {other}")),
        };
        match name {
            "split" => Split::from_params(params, warnings).map(Plugin::Split),
            "bitfield" => Bitfield::from_params(params, warnings).map(Plugin::Bitfield),
            other => Err(format!(
                "no plugin named '{other}' (available: split, bitfield)"
            )),
        }
    }

    /// The plugin's raw value for a notification, before type conversion; `None`
    /// omits the trait. Split needs only the first match; bitfield needs all
    /// matches with their paths.
    pub fn value(&self, fields: &FieldPath, root: &Value) -> Option<Value> {
        match self {
            Plugin::Split(s) => s.apply(fields.first(root)?.as_ref()).map(Value::String),
            Plugin::Bitfield(b) => Some(Value::from(b.apply(&fields.find_all(root)))),
        }
    }
}

fn check_known(
    params: &Map<String, Value>,
    what: &str,
    flag: Option<usize>,
    known: &[&str],
    warnings: &mut Vec<Ignored>,
) {
    for k in params.keys().filter(|k| !known.contains(&k.as_str())) {
        warnings.push(Ignored {
            flag,
            key: k.clone(),
            message: format!(
                "unknown {what} '{k}' ignored, as the original did (known: {})",
                known.join(", ")
            ),
        });
    }
}

fn int_param(params: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(other) => Err(format!("parameter '{key}' must be an integer, not {other}")),
    }
}

impl Split {
    fn from_params(
        params: &Map<String, Value>,
        warnings: &mut Vec<Ignored>,
    ) -> Result<Split, String> {
        check_known(
            params,
            "parameter of plugin split",
            None,
            &["separator", "segment", "max_split"],
            warnings,
        );
        let separator = match params.get("separator") {
            None | Some(Value::Null) => ".".to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                return Err(format!(
                    "parameter 'separator' must be a non-empty string, not {other}"
                ))
            }
        };
        Ok(Split {
            separator,
            segment: int_param(params, "segment")?.unwrap_or(0),
            max_split: int_param(params, "max_split")?,
        })
    }

    /// `str(value).split(separator, max_split)[segment]`, or `None` when out of range.
    pub fn apply(&self, value: &Value) -> Option<String> {
        let owned;
        let text: &str = match value {
            Value::String(s) => s,
            other => {
                owned = to_text(other);
                &owned
            }
        };
        let limit = match self.max_split {
            Some(n) if n >= 0 => usize::try_from(n).ok()?.saturating_add(1),
            _ => usize::MAX,
        };
        let sep = self.separator.as_str();
        if self.segment >= 0 {
            let seg = usize::try_from(self.segment).ok()?;
            text.splitn(limit, sep).nth(seg).map(str::to_string)
        } else {
            let pieces: Vec<&str> = text.splitn(limit, sep).collect();
            let back = usize::try_from(self.segment.unsigned_abs()).ok()?;
            pieces
                .len()
                .checked_sub(back)
                .map(|i| pieces[i].to_string())
        }
    }
}

impl Bitfield {
    fn from_params(
        params: &Map<String, Value>,
        warnings: &mut Vec<Ignored>,
    ) -> Result<Bitfield, String> {
        check_known(
            params,
            "parameter of plugin bitfield",
            None,
            &["initial_bitfield", "flags"],
            warnings,
        );
        let initial_bitfield = int_param(params, "initial_bitfield")?.unwrap_or(0);
        let flags = match params.get("flags") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    Flag::from_config(f, i, warnings).map_err(|e| format!("flag {i}: {e}"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("parameter 'flags' must be a list, not {other}")),
        };
        Ok(Bitfield {
            initial_bitfield,
            flags,
        })
    }

    pub fn apply(&self, matches: &[Match<'_>]) -> i64 {
        let mut bits = self.initial_bitfield;
        for flag in &self.flags {
            // dict(match_list): the last match for a path wins.
            let found = matches.iter().rev().find(|(p, _)| *p == flag.path);
            if let Some((_, v)) = found {
                let set = match &flag.value {
                    None => true,
                    Some(want) => python_eq(v, want),
                };
                if set {
                    bits |= 1i64 << flag.bit;
                }
            }
        }
        bits
    }
}

impl Flag {
    fn from_config(v: &Value, index: usize, warnings: &mut Vec<Ignored>) -> Result<Flag, String> {
        let m = v
            .as_object()
            .ok_or_else(|| format!("must be a mapping, not {v}"))?;
        check_known(
            m,
            &format!("key of bitfield flag {index}"),
            Some(index),
            &["path", "bit", "value"],
            warnings,
        );
        let path = match m.get("path") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("'path' must be a string, not {other}")),
            None => return Err("missing 'path'".to_string()),
        };
        let bit = match m.get("bit") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            None => return Err("missing 'bit'".to_string()),
            Some(_) => None,
        };
        let bit = bit
            .filter(|b| (0..=62).contains(b))
            .and_then(|b| u32::try_from(b).ok())
            .ok_or_else(|| "'bit' must be an integer from 0 to 62".to_string())?;
        Ok(Flag {
            path,
            bit,
            value: m.get("value").cloned(),
        })
    }
}

/// Python `==` between JSON-ish values: numbers (and booleans, as 0/1) compare by
/// numeric value, everything else structurally.
fn python_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_i64() && y.is_i64() => {
            x.as_i64() == y.as_i64()
        }
        (Value::Number(x), Value::Number(y)) if x.is_u64() && y.is_u64() => {
            x.as_u64() == y.as_u64()
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plugin(name: &str, params: Option<&Value>) -> Result<Plugin, String> {
        Plugin::from_config(name, params, &mut Vec::new())
    }

    fn split(params: Value) -> Split {
        match plugin("split", Some(&params)).unwrap() {
            Plugin::Split(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn split_semantics() {
        let v = json!("compute.host-1.example");
        assert_eq!(split(json!({})).apply(&v).as_deref(), Some("compute"));
        assert_eq!(
            split(json!({"segment": 1, "max_split": 1}))
                .apply(&v)
                .as_deref(),
            Some("host-1.example")
        );
        assert_eq!(
            split(json!({"segment": 2})).apply(&v).as_deref(),
            Some("example")
        );
        assert_eq!(
            split(json!({"segment": -1})).apply(&v).as_deref(),
            Some("example")
        );
        assert_eq!(split(json!({"segment": 9})).apply(&v), None);
        assert_eq!(
            split(json!({"separator": "-", "segment": 1}))
                .apply(&v)
                .as_deref(),
            Some("1.example")
        );
        assert_eq!(split(json!({})).apply(&json!(1.5)).as_deref(), Some("1"));
    }

    #[test]
    fn bad_parameters() {
        assert!(plugin("nope", None).is_err());
        assert!(plugin("split", Some(&json!({"segment": "1"}))).is_err());
        assert!(plugin("split", Some(&json!({"separator": ""}))).is_err());
        assert!(plugin("split", Some(&json!([1]))).is_err());
        assert!(plugin("bitfield", Some(&json!({"flags": [{"path": "a"}]}))).is_err());
        assert!(plugin(
            "bitfield",
            Some(&json!({"flags": [{"path": "a", "bit": 63}]}))
        )
        .is_err());
        assert!(plugin("bitfield", Some(&json!({"flags": {}}))).is_err());
    }

    #[test]
    fn unknown_parameters_are_warnings() {
        let mut warnings = Vec::new();
        let p = Plugin::from_config(
            "split",
            Some(&json!({"segement": 1, "separator": "-"})),
            &mut warnings,
        )
        .unwrap();
        assert!(matches!(p, Plugin::Split(Split { segment: 0, .. })));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .message
                .contains("unknown parameter of plugin split 'segement'"),
            "{warnings:?}"
        );
        let mut warnings = Vec::new();
        Plugin::from_config(
            "bitfield",
            Some(&json!({"flags": [{"path": "a", "bit": 1, "mask": 3}]})),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(warnings[0].flag, Some(0));
        assert_eq!(warnings[0].key, "mask");
    }

    #[test]
    fn bitfield_semantics() {
        let p = plugin(
            "bitfield",
            Some(&json!({
                "initial_bitfield": 8,
                "flags": [
                    {"path": "payload.a", "bit": 0},
                    {"path": "payload.b", "bit": 1, "value": 1},
                    {"path": "payload.c", "bit": "2", "value": "x"},
                    {"path": "payload.d", "bit": 4}
                ]
            })),
        )
        .unwrap();
        let fields =
            FieldPath::parse_list(&["payload.a", "payload.b", "payload.c", "payload.d"]).unwrap();
        let doc = json!({"payload": {"a": false, "b": 1.0, "c": "y", "d": null}});
        assert_eq!(p.value(&fields, &doc), Some(json!(8 | 1 | 2)));
        assert_eq!(p.value(&fields, &json!({})), Some(json!(8)));
    }
}
