//! Timex: the small time-expression language of StackTach trigger definitions.
//!
//! Triggers use it for expirations (`$last + 2d`), for distinguishing ranges
//! (`day`, the UTC day containing `$timestamp`) and for datetime criteria
//! (`$audit_period_beginning + 1d`). An expression is compiled once with
//! [`Expression::parse`], when a definition is loaded, so syntax errors surface
//! with a position before any event arrives; [`Expression::variables`] lets the
//! loader check that the names it uses will be supplied. Evaluating it against
//! variable values ([`Expression::evaluate`]) gives a [`TimexValue`]: a timestamp or
//! a [`TimeRange`].
//!
//! The language, briefly:
//! - `$name` is a variable, a UTC timestamp supplied by the caller. There is no
//!   implicit "now": the original silently used the current time for a missing
//!   `$timestamp`, which made expirations wrong; here a missing variable is an error.
//! - `+ D`, `- D` shift by a duration `D` made of numbers with units
//!   `y mo d h m s us` (also `yr`, `min`, `sec`, `hr`), combinable: `1d 2h`.
//!   `@ D` replaces components, so `$t @ 0h 0m 0s` is midnight of `$t`'s day.
//! - `a to b` is the range from timestamp `a` (inclusive) to timestamp `b` (exclusive).
//! - `hour`, `day`, `month`, `year` are the unit containing `$timestamp`, or
//!   containing the timestamp given in parentheses: `day($last)`. Small shifts of
//!   these keep that timestamp inside (see [`eval`]'s notes); directly on a range
//!   function or a `to` range, a number without a unit takes the unit below the
//!   range's size (`day @ 2` sets the hour); after another operation it needs a
//!   unit (`(day + 1h) @ 2` is refused, as the original refused it).
//! - Operators apply left to right (`$a + 1d @ 2h` is `($a + 1d) @ 2h`): every
//!   operator takes a duration on its right, so the original's precedence of `@`
//!   over `+`/`-` never regroups anything.
//! - Parentheses group; whitespace is free.
//!
//! Month arithmetic clamps to the end of the month (Jan 31 + 1mo = Feb 28) where
//! the original raised an error; replacing a component with an impossible value
//! (`@ 30d` in February) is an error. Dates stay within years 1 to 9999.

mod duration;
mod error;
mod eval;
mod lexer;
mod parser;

pub use error::TimexError;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

/// Supplies the values of the variables an expression refers to.
///
/// Implemented for maps from names to datetimes and for closures, so callers can
/// look values up in whatever they hold (an event's traits, a stream's bounds)
/// without copying them into a map.
pub trait Variables {
    /// The value of `$name`, or `None` when it is not defined.
    fn get(&self, name: &str) -> Option<DateTime<Utc>>;
}

impl<S: BuildHasher> Variables for HashMap<String, DateTime<Utc>, S> {
    fn get(&self, name: &str) -> Option<DateTime<Utc>> {
        HashMap::get(self, name).copied()
    }
}

impl<S: BuildHasher> Variables for HashMap<&str, DateTime<Utc>, S> {
    fn get(&self, name: &str) -> Option<DateTime<Utc>> {
        HashMap::get(self, name).copied()
    }
}

impl Variables for BTreeMap<String, DateTime<Utc>> {
    fn get(&self, name: &str) -> Option<DateTime<Utc>> {
        BTreeMap::get(self, name).copied()
    }
}

impl Variables for BTreeMap<&str, DateTime<Utc>> {
    fn get(&self, name: &str) -> Option<DateTime<Utc>> {
        BTreeMap::get(self, name).copied()
    }
}

impl<F> Variables for F
where
    F: Fn(&str) -> Option<DateTime<Utc>>,
{
    fn get(&self, name: &str) -> Option<DateTime<Utc>> {
        self(name)
    }
}

/// A compiled timex expression.
///
/// It displays (and serializes) as its source text, and deserializes from a string
/// by parsing it, so definitions can hold it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    source: String,
    root: parser::Node,
    variables: Vec<String>,
}

impl Expression {
    /// Compiles `source` for a definition: [`Expression::parse`], and a range
    /// function other than hour, day, month or year is refused here (the original
    /// accepted it and failed on every evaluation).
    pub fn compile(source: &str) -> Result<Expression, TimexError> {
        let expr = Expression::parse(source)?;
        match expr.root.unknown_range() {
            Some(err) => Err(err),
            None => Ok(expr),
        }
    }

    /// Parses `source` as the original's grammar did: an unknown range function
    /// parses and fails when evaluated. Errors carry the character offset of the
    /// problem ([`TimexError::offset`]).
    pub fn parse(source: &str) -> Result<Expression, TimexError> {
        let root = parser::parse(source)?;
        let mut variables = Vec::new();
        root.collect_variables(&mut variables);
        Ok(Expression {
            source: source.to_string(),
            root,
            variables,
        })
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The names of the variables the expression reads, without `$`, in order of
    /// first appearance. A range function without argument (`day`) reads `timestamp`.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// True when the expression always gives a range, false when it always gives a
    /// timestamp (which one is decided by its shape, not by the variable values).
    pub fn is_range(&self) -> bool {
        self.root.is_range()
    }

    /// Evaluates the expression with the given variable values.
    pub fn evaluate<V: Variables + ?Sized>(&self, vars: &V) -> Result<TimexValue, TimexError> {
        Ok(match eval::evaluate(&self.root, vars)? {
            eval::Value::Timestamp(t) => TimexValue::Timestamp(t.and_utc()),
            eval::Value::Range { begin, end, .. } => TimexValue::Range(TimeRange {
                begin: begin.and_utc(),
                end: end.and_utc(),
            }),
        })
    }
}

impl FromStr for Expression {
    type Err = TimexError;

    fn from_str(source: &str) -> Result<Expression, TimexError> {
        Expression::parse(source)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Expression {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Expression {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Expression::compile(&source)
            .map_err(|err| serde::de::Error::custom(format!("timex `{source}`: {err}")))
    }
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimexValue {
    Timestamp(DateTime<Utc>),
    Range(TimeRange),
}

impl TimexValue {
    /// Whether `t` matches: equal to a timestamp, or inside a range
    /// (`begin <= t < end`). Criteria use this.
    pub fn contains(&self, t: &DateTime<Utc>) -> bool {
        match self {
            TimexValue::Timestamp(ts) => ts == t,
            TimexValue::Range(range) => range.contains(t),
        }
    }

    /// The timestamp, or the beginning of the range.
    pub fn begin(&self) -> DateTime<Utc> {
        match self {
            TimexValue::Timestamp(ts) => *ts,
            TimexValue::Range(range) => range.begin,
        }
    }

    /// The timestamp, or the (exclusive) end of the range.
    pub fn end(&self) -> DateTime<Utc> {
        match self {
            TimexValue::Timestamp(ts) => *ts,
            TimexValue::Range(range) => range.end,
        }
    }

    /// The timestamp, or the beginning of the range: the single instant the
    /// original used when a timestamp was needed (e.g. an expiration).
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.begin()
    }

    pub fn is_range(&self) -> bool {
        matches!(self, TimexValue::Range(_))
    }

    pub fn as_range(&self) -> Option<&TimeRange> {
        match self {
            TimexValue::Range(range) => Some(range),
            TimexValue::Timestamp(_) => None,
        }
    }
}

/// A half-open span of time, `[begin, end)`. Ranges built with `to` are kept as
/// written, so `end` may come before `begin`; such a range contains nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    pub begin: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl TimeRange {
    pub fn new(begin: DateTime<Utc>, end: DateTime<Utc>) -> TimeRange {
        TimeRange { begin, end }
    }

    /// `begin <= t < end`.
    pub fn contains(&self, t: &DateTime<Utc>) -> bool {
        self.begin <= *t && *t < self.end
    }

    /// `end - begin` (negative for a reversed range).
    pub fn duration(&self) -> TimeDelta {
        self.end.signed_duration_since(self.begin)
    }

    /// True when the range contains no instant (`end <= begin`).
    pub fn is_empty(&self) -> bool {
        self.end <= self.begin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn api_round_trip() {
        let expr: Expression = "day($last) @ 12h".parse().unwrap();
        assert_eq!(expr.to_string(), "day($last) @ 12h");
        assert_eq!(expr.variables(), ["last".to_string()]);
        assert!(expr.is_range());
        let mut vars = HashMap::new();
        vars.insert("last".to_string(), at("2016-02-29T23:59:59.999999Z"));
        let value = expr.evaluate(&vars).unwrap();
        assert_eq!(
            value,
            TimexValue::Range(TimeRange::new(
                at("2016-02-29T12:00:00Z"),
                at("2016-03-01T12:00:00Z")
            ))
        );
        assert!(value.contains(&at("2016-02-29T12:00:00Z")));
        assert!(!value.contains(&at("2016-03-01T12:00:00Z")));
        assert_eq!(value.as_range().unwrap().duration(), TimeDelta::days(1));
    }

    #[test]
    fn timestamps_match_only_themselves() {
        let t = at("2015-01-31T12:00:00Z");
        let value = Expression::parse("$t")
            .unwrap()
            .evaluate(&|_: &str| Some(t))
            .unwrap();
        assert!(value.contains(&t));
        assert!(!value.contains(&(t + TimeDelta::microseconds(1))));
        assert_eq!(value.timestamp(), t);
        assert!(!value.is_range());
    }

    #[test]
    fn no_implicit_now() {
        let vars: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        assert_eq!(
            Expression::parse("day").unwrap().evaluate(&vars),
            Err(TimexError::UnknownVariable("timestamp".to_string()))
        );
    }

    #[test]
    fn serde_uses_the_source_text() {
        let expr: Expression = serde_json::from_str("\"$last + 2d\"").unwrap();
        assert_eq!(serde_json::to_string(&expr).unwrap(), "\"$last + 2d\"");
        let err = serde_json::from_str::<Expression>("\"$last +\"").unwrap_err();
        assert!(err.to_string().contains("column 8"), "{err}");
    }

    /// Feeds many garbled expressions through the parser and evaluator: errors are
    /// fine, panics and hangs are not.
    #[test]
    fn garbage_never_panics() {
        const PIECES: &[&str] = &[
            "$",
            "timestamp",
            "last",
            "x",
            "(",
            ")",
            "+",
            "-",
            "@",
            " ",
            "to",
            "day",
            "hour",
            "month",
            "year",
            "week",
            "1",
            "0",
            "2",
            "31",
            "24",
            "60",
            "9999",
            "99999999999",
            "9223372036854775807",
            "18446744073709551616",
            "y",
            "mo",
            "d",
            "h",
            "m",
            "s",
            "us",
            "sec",
            "min",
            "hr",
            "yr",
            ".",
            "é",
            "\t",
            "\n",
            "_",
            "#",
        ];
        let vars = |name: &str| match name {
            "timestamp" => Some(at("2016-02-29T23:59:59.999999Z")),
            "last" => Some(at("9999-12-31T23:59:59Z")),
            "x" => Some(at("0001-01-01T00:00:00Z")),
            _ => None,
        };
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let mut source = String::new();
            for _ in 0..len {
                let r = next();
                if r % 10 == 0 {
                    source.push(char::from_u32((r >> 8) as u32 % 0x300).unwrap_or('?'));
                } else {
                    source.push_str(PIECES[(r >> 8) as usize % PIECES.len()]);
                }
            }
            if let Ok(expr) = Expression::parse(&source) {
                parsed += 1;
                let _ = expr.evaluate(&vars);
            }
        }
        assert!(parsed > 100, "only {parsed} random expressions parsed");
    }
}
