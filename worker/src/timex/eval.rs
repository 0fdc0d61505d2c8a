//! Evaluation of a syntax tree against variable values.
//!
//! Values are timestamps or ranges; ranges made by `hour`, `day`, `month` and
//! `year` remember the timestamp that chose them (the pin). Shifting or replacing
//! components of a pinned range by less than its unit moves the result by whole
//! range lengths until it contains the pin again, so `day + 6h` means "the 24 hours
//! from 06:00 that contain the timestamp" rather than "tomorrow-ish". A shift of a
//! whole unit or more (`day($last) + 1d`) gives a plain, unpinned range; the
//! original crashed there. All arithmetic is on UTC wall-clock time, to the
//! microsecond.

use super::duration::{self, Duration, Unit};
use super::error::TimexError;
use super::parser::{Node, Op};
use super::Variables;
use chrono::{Datelike, NaiveDateTime, NaiveTime, TimeDelta, Timelike};

/// The pinning timestamp of a range and the range function's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    at: NaiveDateTime,
    unit: Unit,
}

/// An intermediate result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Timestamp(NaiveDateTime),
    Range {
        begin: NaiveDateTime,
        end: NaiveDateTime,
        pin: Option<Pin>,
    },
}

impl Value {
    /// The timestamp, or the beginning of a range (the original's `.timestamp`).
    fn timestamp(&self) -> NaiveDateTime {
        match self {
            Value::Timestamp(t) => *t,
            Value::Range { begin, .. } => *begin,
        }
    }
}

/// Evaluates `node`; variable values are read from `vars`.
pub fn evaluate<V: Variables + ?Sized>(node: &Node, vars: &V) -> Result<Value, TimexError> {
    match node {
        Node::Variable(name) => vars
            .get(name)
            .map(|t| Value::Timestamp(t.naive_utc()))
            .ok_or_else(|| TimexError::UnknownVariable(name.clone())),
        Node::Span { begin, end } => Ok(Value::Range {
            begin: evaluate(begin, vars)?.timestamp(),
            end: evaluate(end, vars)?.timestamp(),
            pin: None,
        }),
        Node::Pinned { unit, at } => {
            let at = evaluate(at, vars)?.timestamp();
            let (begin, end) = unit_containing(at, *unit)?;
            Ok(Value::Range {
                begin,
                end,
                pin: Some(Pin { at, unit: *unit }),
            })
        }
        Node::UnknownRange { name, at, .. } => {
            evaluate(at, vars)?;
            Err(TimexError::UnknownRange(name.clone()))
        }
        Node::Apply {
            op,
            operand,
            duration,
        } => apply(evaluate(operand, vars)?, *op, duration),
    }
}

/// The hour, day, month or year that contains `at`.
fn unit_containing(
    at: NaiveDateTime,
    unit: Unit,
) -> Result<(NaiveDateTime, NaiveDateTime), TimexError> {
    let date = at.date();
    let begin = match unit {
        Unit::Hour => date.and_time(NaiveTime::MIN).with_hour(at.hour()),
        Unit::Day => Some(date.and_time(NaiveTime::MIN)),
        Unit::Month => date.with_day(1).map(|d| d.and_time(NaiveTime::MIN)),
        Unit::Year => date
            .with_day(1)
            .and_then(|d| d.with_month(1))
            .map(|d| d.and_time(NaiveTime::MIN)),
        Unit::Minute | Unit::Second | Unit::Microsecond => None,
    }
    .ok_or_else(|| TimexError::InvalidDate(format!("cannot take the {unit:?} of {at}")))?;
    let end = duration::shift(begin, &Duration::of(unit, 1), false)?;
    Ok((begin, end))
}

fn step(t: NaiveDateTime, op: Op, d: &Duration) -> Result<NaiveDateTime, TimexError> {
    match op {
        Op::Add => duration::shift(t, d, false),
        Op::Subtract => duration::shift(t, d, true),
        Op::Replace => duration::replace(t, d),
    }
}

fn micros_between(begin: NaiveDateTime, end: NaiveDateTime) -> Result<i128, TimexError> {
    end.signed_duration_since(begin)
        .num_microseconds()
        .map(i128::from)
        .ok_or_else(|| TimexError::InvalidDate("range is too long".to_string()))
}

fn apply(value: Value, op: Op, d: &Duration) -> Result<Value, TimexError> {
    match value {
        Value::Timestamp(t) => {
            if d.is_ambiguous() {
                // The parser rejects this; kept as an error rather than a guess.
                return Err(TimexError::InvalidDate(format!(
                    "the duration `{d}` has a number without a unit, which needs a range"
                )));
            }
            Ok(Value::Timestamp(step(t, op, d)?))
        }
        Value::Range { begin, end, pin } => {
            let resolved = d.resolve(micros_between(begin, end)?)?;
            let begin = step(begin, op, &resolved)?;
            let end = step(end, op, &resolved)?;
            match pin {
                Some(pin) if d.is_less_than_one(pin.unit) => {
                    let (begin, end) = move_to_contain(begin, end, pin.at)?;
                    Ok(Value::Range {
                        begin,
                        end,
                        pin: Some(pin),
                    })
                }
                _ => Ok(Value::Range {
                    begin,
                    end,
                    pin: None,
                }),
            }
        }
    }
}

fn utc(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// Moves `[begin, end)` by whole multiples of its length until it contains `at`.
fn move_to_contain(
    begin: NaiveDateTime,
    end: NaiveDateTime,
    at: NaiveDateTime,
) -> Result<(NaiveDateTime, NaiveDateTime), TimexError> {
    if begin <= at && at < end {
        return Ok((begin, end));
    }
    let length = micros_between(begin, end)?;
    if length <= 0 {
        return Err(TimexError::InvalidDate(format!(
            "the range from {} to {} is empty, so it cannot be moved to contain {}",
            utc(begin),
            utc(end),
            utc(at)
        )));
    }
    let steps = if begin > at {
        // Smallest k with begin - k*length <= at.
        -((micros_between(at, begin)? + length - 1) / length)
    } else {
        // Smallest k with end + k*length > at.
        micros_between(end, at)? / length + 1
    };
    let offset = steps
        .checked_mul(length)
        .and_then(|m| i64::try_from(m).ok())
        .map(TimeDelta::microseconds)
        .ok_or_else(|| TimexError::InvalidDate("date out of range".to_string()))?;
    let moved = |t: NaiveDateTime| {
        t.checked_add_signed(offset)
            .filter(|t| (1..=9999).contains(&t.year()))
            .ok_or_else(|| {
                TimexError::InvalidDate("date out of range (years 1 to 9999)".to_string())
            })
    };
    Ok((moved(begin)?, moved(end)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timex::parser::parse;
    use chrono::{DateTime, Utc};

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
    }

    fn eval(source: &str, ts: &str) -> Result<Value, TimexError> {
        let ts = dt(ts).and_utc();
        let vars =
            move |name: &str| -> Option<DateTime<Utc>> { (name == "timestamp").then_some(ts) };
        evaluate(&parse(source).unwrap(), &vars)
    }

    fn range(source: &str, ts: &str) -> (NaiveDateTime, NaiveDateTime) {
        match eval(source, ts).unwrap() {
            Value::Range { begin, end, .. } => (begin, end),
            other => panic!("{source}: expected a range, got {other:?}"),
        }
    }

    #[test]
    fn pinned_ranges_wrap_around_their_pin() {
        let ts = "2014-08-01T17:30:10.000025";
        assert_eq!(
            range("day + 1h", ts),
            (dt("2014-08-01T01:00:00"), dt("2014-08-02T01:00:00"))
        );
        assert_eq!(
            range("day + 18h", ts),
            (dt("2014-07-31T18:00:00"), dt("2014-08-01T18:00:00"))
        );
        assert_eq!(
            range("day - 8h", ts),
            (dt("2014-08-01T16:00:00"), dt("2014-08-02T16:00:00"))
        );
        assert_eq!(
            range("day + 6h + 1h", ts),
            (dt("2014-08-01T07:00:00"), dt("2014-08-02T07:00:00"))
        );
    }

    #[test]
    fn far_shifts_use_closed_form_steps() {
        // Millions of steps away: must answer at once and still contain the pin.
        let (begin, end) = range("hour + 123456789012s", "2015-06-01T10:20:30");
        assert!(begin <= dt("2015-06-01T10:20:30") && dt("2015-06-01T10:20:30") < end);
        assert_eq!(end - begin, TimeDelta::hours(1));
    }

    #[test]
    fn whole_unit_shifts_unpin() {
        let ts = "2016-02-29T23:59:59.999999";
        assert_eq!(
            range("day + 1d", ts),
            (dt("2016-03-01T00:00:00"), dt("2016-03-02T00:00:00"))
        );
        // Unpinned now, so a further small shift does not wrap back.
        assert_eq!(
            range("day + 1d + 1h", ts),
            (dt("2016-03-01T01:00:00"), dt("2016-03-02T01:00:00"))
        );
    }

    #[test]
    fn empty_pinned_range_is_an_error() {
        assert!(matches!(
            eval("hour @ 0h", "2015-01-31T12:30:00"),
            Err(TimexError::InvalidDate(_))
        ));
    }

    #[test]
    fn missing_variable() {
        assert_eq!(
            eval("day($nope)", "2015-01-31T12:30:00"),
            Err(TimexError::UnknownVariable("nope".to_string()))
        );
    }

    #[test]
    fn end_of_calendar_is_an_error() {
        assert!(eval("year", "9999-06-01T00:00:00").is_err());
        assert!(eval("$timestamp - 1d", "0001-01-01T00:00:00").is_err());
    }
}
