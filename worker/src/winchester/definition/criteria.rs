//! Criteria: what an event must look like to match a trigger's match, fire or load
//! criteria, and the per-trait criterion forms.
//!
//! Semantics follow the original winchester: a criteria matches when the event type
//! passes the globs (inclusions, `!` exclusions), the event's timestamp is inside the
//! optional `timestamp` expression, and every trait criterion passes. The failure
//! reasons given to the [`MatchObserver`] are the original's debug reasons.

use crate::distiller::TypeMatcher;
use crate::event::{Event, ValueRef};
use crate::timex::Expression;
use crate::winchester::debug::MatchObserver;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One entry of `match_criteria`, `fire_criteria` or `load_criteria`.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    /// How many matching events a fire criterion needs (default 1).
    pub number: u32,
    /// Distinguishing trait name → the event trait that supplies it for events
    /// matched by this criteria.
    pub map_distinguished_by: BTreeMap<String, String>,
    pub(crate) event_types: TypeMatcher,
    pub(crate) timestamp: Option<Expression>,
    pub(crate) traits: Vec<(String, Criterion)>,
}

/// A test on one trait.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Criterion {
    /// Equal to a constant, compared as Python's `==` compared the original's values.
    Equals(Constant),
    /// A numeric comparison (`{int: "> 5"}`, `{float: "<= 2.5"}`).
    Compare { op: Op, value: Number },
    /// The trait (a datetime) is inside the expression's value.
    Time(Expression),
}

/// A constant from a definitions file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Constant {
    Text(String),
    Number(Number),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i64),
    Float(f64),
}

/// Comparison operators: the original's `=`, `>`, `<`, plus `==`, `>=`, `<=`, `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub(crate) fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            _ => return None,
        })
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
        }
    }

    /// The original's debug reason when the comparison fails.
    fn failure(self) -> &'static str {
        match self {
            Op::Eq => "== failed",
            Op::Ne => "!= failed",
            Op::Gt => "> failed",
            Op::Ge => ">= failed",
            Op::Lt => "< failed",
            Op::Le => "<= failed",
        }
    }
}

impl Number {
    /// Compares numerically across int and float (exact for integers).
    fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b),
            (Number::Int(a), Number::Float(b)) => int_float(a, b),
            (Number::Float(a), Number::Int(b)) => int_float(b, a).map(Ordering::reverse),
        }
    }
}

/// Orders an integer against a float without losing precision.
fn int_float(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // Every i64 lies strictly inside (-2^63 - 1, 2^63); compare on the float's floor.
    if f >= 9_223_372_036_854_775_808.0 {
        return Some(Ordering::Less);
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Some(Ordering::Greater);
    }
    let floor = f.floor();
    // In range now, so the cast is exact.
    let fi = floor as i64;
    match i.cmp(&fi) {
        Ordering::Equal if floor < f => Some(Ordering::Less),
        ord => Some(ord),
    }
}

/// A trait value as a number, when it is one.
fn as_number(v: ValueRef<'_>) -> Option<Number> {
    match v {
        ValueRef::Int(i) => Some(Number::Int(i)),
        ValueRef::Float(f) => Some(Number::Float(f)),
        ValueRef::Text(_) | ValueRef::Datetime(_) => None,
    }
}

impl Constant {
    /// Python `==` between an event value and a constant: text equals text, numbers
    /// equal numbers of either kind; text never equals a number, and a datetime
    /// equals no constant.
    fn equals(&self, v: ValueRef<'_>) -> bool {
        match (self, v) {
            (Constant::Text(c), ValueRef::Text(t)) => c == t,
            (Constant::Number(c), v) => {
                as_number(v).and_then(|n| n.compare(*c)) == Some(Ordering::Equal)
            }
            _ => false,
        }
    }
}

impl Criterion {
    fn matches(&self, name: &str, event: &Event, obs: &mut dyn MatchObserver) -> bool {
        match self {
            Criterion::Equals(c) => {
                let Some(v) = event.get(name) else {
                    obs.mismatch(&format!("not {name}"));
                    return false;
                };
                check(obs, c.equals(v), "== failed")
            }
            Criterion::Compare { op, value } => {
                let Some(v) = event.get(name) else {
                    obs.mismatch(&format!("not {name}"));
                    return false;
                };
                let ok = as_number(v)
                    .and_then(|n| n.compare(*value))
                    .is_some_and(|ord| op.holds(ord));
                check(obs, ok, op.failure())
            }
            Criterion::Time(expr) => {
                let Some(v) = event.get(name) else {
                    obs.mismatch(&format!("Time: not '{name}'"));
                    return false;
                };
                let range = match expr.evaluate(event) {
                    Ok(r) => r,
                    Err(_) => {
                        obs.mismatch("Time: no referenced trait");
                        return false;
                    }
                };
                let ok = v.as_datetime().is_some_and(|t| range.contains(&t));
                check(obs, ok, "Not in timerange")
            }
        }
    }
}

fn check(obs: &mut dyn MatchObserver, ok: bool, reason: &str) -> bool {
    if ok {
        obs.matched();
    } else {
        obs.mismatch(reason);
    }
    ok
}

impl Criteria {
    /// Whether the event matches this criteria.
    pub fn matches(&self, event: &Event, obs: &mut dyn MatchObserver) -> bool {
        if !self.event_types.is_match(&event.event_type) {
            obs.mismatch("Wrong event type");
            return false;
        }
        if let Some(expr) = &self.timestamp {
            let Ok(value) = expr.evaluate(event) else {
                obs.mismatch("No timestamp trait");
                return false;
            };
            if !value.contains(&event.timestamp) {
                obs.mismatch("Not time yet.");
                return false;
            }
        }
        if self.traits.is_empty() {
            obs.matched();
            return true;
        }
        self.traits
            .iter()
            .all(|(name, criterion)| criterion.matches(name, event, obs))
    }

    /// Whether an event type passes this criteria's `event_type` patterns.
    pub fn matches_type(&self, event_type: &str) -> bool {
        self.event_types.is_match(event_type)
    }

    /// A criteria with no conditions: every event matches (what `{}` means).
    pub fn any() -> Criteria {
        Criteria {
            number: 1,
            map_distinguished_by: BTreeMap::new(),
            event_types: TypeMatcher::new(&["*"]),
            timestamp: None,
            traits: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_exactly_across_kinds() {
        let i = Number::Int;
        let f = Number::Float;
        assert_eq!(i(3).compare(f(3.0)), Some(Ordering::Equal));
        assert_eq!(i(3).compare(f(3.5)), Some(Ordering::Less));
        assert_eq!(f(3.5).compare(i(3)), Some(Ordering::Greater));
        assert_eq!(i(-4).compare(f(-3.5)), Some(Ordering::Less));
        assert_eq!(i(-3).compare(f(-3.5)), Some(Ordering::Greater));
        assert_eq!(i(i64::MAX).compare(f(9.3e18)), Some(Ordering::Less));
        assert_eq!(i(i64::MIN).compare(f(-1e300)), Some(Ordering::Greater));
        assert_eq!(i(1).compare(f(f64::NAN)), None);
        assert_eq!(
            i(9_007_199_254_740_993).compare(f(9_007_199_254_740_992.0)),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn constants_compare_like_python() {
        let n = |x: i64| Constant::Number(Number::Int(x));
        assert!(n(3).equals(ValueRef::Int(3)));
        assert!(n(3).equals(ValueRef::Float(3.0)));
        assert!(!n(3).equals(ValueRef::Text("3")));
        assert!(!Constant::Text("3".into()).equals(ValueRef::Int(3)));
        assert!(Constant::Text("a".into()).equals(ValueRef::Text("a")));
        assert!(!Constant::Text("a".into()).equals(ValueRef::Datetime(chrono::Utc::now())));
    }
}
