//! Type coercions from JSON values to trait values, as the original's Python
//! conversions (`str`, `int`, `float`, iso8601) behaved.
//!
//! Every function returns `None` where the original raised; the caller then omits
//! the trait instead of losing the whole notification.

use crate::event::{TraitType, TraitValue};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde_json::Value;

/// Converts a (non-null) value to the trait type. An empty string for a non-text
/// type gives `None` (Nova sends `""` for unset dates).
pub fn convert(value: &Value, ty: TraitType) -> Option<TraitValue> {
    if ty != TraitType::Text && value.as_str() == Some("") {
        return None;
    }
    match ty {
        TraitType::Text => Some(TraitValue::Text(to_text(value))),
        TraitType::Int => to_int(value).map(TraitValue::Int),
        TraitType::Float => to_float(value).map(TraitValue::Float),
        TraitType::Datetime => value
            .as_str()
            .and_then(parse_datetime)
            .map(TraitValue::Datetime),
    }
}

/// Python's `str()` of a JSON value: strings as they are, integers in decimal,
/// floats in Python's shortest repr (`1e+20`, `3.0`), booleans `True`/`False`;
/// objects and arrays as compact JSON (the original printed Python's repr).
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Null => "None".to_string(),
        Value::Number(n) => {
            if n.is_f64() {
                n.as_f64()
                    .map(python_float_repr)
                    .unwrap_or_else(|| n.to_string())
            } else {
                n.to_string()
            }
        }
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// Python's `int()`: integers as they are, floats truncated, booleans 0/1, strings of
/// an optionally signed decimal integer (surrounding whitespace allowed).
pub fn to_int(value: &Value) -> Option<i64> {
    match value {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            let t = f.trunc();
            // i64::MAX as f64 rounds up to 2^63, which is out of range.
            (t.is_finite() && t >= i64::MIN as f64 && t < i64::MAX as f64).then_some(t as i64)
        }),
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse::<i64>().ok()
        }
        _ => None,
    }
}

/// Python's `float()`: numbers, booleans 1.0/0.0, numeric strings. Non-finite
/// results are refused (JSON cannot carry them).
pub fn to_float(value: &Value) -> Option<f64> {
    let f = match value {
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation when
/// the exponent is below -4 or at least 16, and always a `.0` or exponent.
pub fn python_float_repr(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{f:e}"); // e.g. "-1.25e-7", "3e0"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

/// Parses ISO 8601 as the `iso8601` package did and converts to UTC: `YYYY-MM-DD`
/// (or `YYYYMMDD`), optionally followed by `T` or a space and `HH[:MM[:SS[.ffffff]]]`,
/// optionally a zone `Z`, `±HH`, `±HH:MM` or `±HHMM`. No zone means UTC. Fractions
/// keep microseconds (Python's precision).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let mut i = 0;
    let num = |i: &mut usize, min: usize, max: usize| -> Option<u32> {
        let start = *i;
        while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
            *i += 1;
        }
        if *i - start < min {
            return None;
        }
        s.get(start..*i)?.parse().ok()
    };
    let year = num(&mut i, 4, 4)? as i32;
    let (month, day) = if b.get(i) == Some(&b'-') {
        i += 1;
        let m = num(&mut i, 1, 2)?;
        let d = if b.get(i) == Some(&b'-') {
            i += 1;
            num(&mut i, 1, 2)?
        } else {
            1
        };
        (m, d)
    } else if i == b.len() {
        (1, 1)
    } else {
        (num(&mut i, 2, 2)?, num(&mut i, 2, 2)?)
    };
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let mut time = NaiveTime::MIN;
    let mut offset = 0i32;
    if i < b.len() {
        if b[i] != b'T' && b[i] != b' ' {
            return None;
        }
        i += 1;
        let hour = num(&mut i, 2, 2)?;
        let mut minute = 0;
        let mut second = 0;
        let mut micros = 0;
        if b.get(i) == Some(&b':') || b.get(i).is_some_and(u8::is_ascii_digit) {
            if b.get(i) == Some(&b':') {
                i += 1;
            }
            minute = num(&mut i, 2, 2)?;
            if b.get(i) == Some(&b':') || b.get(i).is_some_and(u8::is_ascii_digit) {
                if b.get(i) == Some(&b':') {
                    i += 1;
                }
                second = num(&mut i, 1, 2)?;
                if matches!(b.get(i), Some(b'.') | Some(b',')) {
                    i += 1;
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    let frac = s.get(start..i)?;
                    if frac.is_empty() {
                        return None;
                    }
                    let six: String = frac.chars().chain("000000".chars()).take(6).collect();
                    micros = six.parse().ok()?;
                }
            }
        }
        time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
        match b.get(i) {
            None => {}
            Some(b'Z') => i += 1,
            Some(&c @ (b'+' | b'-')) => {
                i += 1;
                let h = num(&mut i, 2, 2)? as i32;
                if b.get(i) == Some(&b':') {
                    i += 1;
                }
                let m = if i < b.len() {
                    num(&mut i, 2, 2)? as i32
                } else {
                    0
                };
                offset = (h * 60 + m) * 60 * if c == b'-' { -1 } else { 1 };
            }
            Some(_) => return None,
        }
        if i != b.len() {
            return None;
        }
    }
    let naive = NaiveDateTime::new(date, time);
    let local = FixedOffset::east_opt(offset)?
        .from_local_datetime(&naive)
        .single()?;
    Some(local.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text() {
        assert_eq!(to_text(&json!(512)), "512");
        assert_eq!(to_text(&json!(1.7)), "1.7");
        assert_eq!(to_text(&json!(3.0)), "3.0");
        assert_eq!(to_text(&json!(1e20)), "1e+20");
        assert_eq!(to_text(&json!(1.5e-7)), "1.5e-07");
        assert_eq!(to_text(&json!(0.0001)), "0.0001");
        assert_eq!(to_text(&json!(-123456.789)), "-123456.789");
        assert_eq!(to_text(&json!(true)), "True");
        assert_eq!(to_text(&json!({"a": 1})), "{\"a\":1}");
        assert_eq!(to_text(&json!(u64::MAX)), "18446744073709551615");
    }

    #[test]
    fn ints() {
        assert_eq!(to_int(&json!("20")), Some(20));
        assert_eq!(to_int(&json!(" -20 ")), Some(-20));
        assert_eq!(to_int(&json!(1.7)), Some(1));
        assert_eq!(to_int(&json!(-1.7)), Some(-1));
        assert_eq!(to_int(&json!(true)), Some(1));
        assert_eq!(to_int(&json!("abc")), None);
        assert_eq!(to_int(&json!("1.5")), None);
        assert_eq!(to_int(&json!(1e300)), None);
        assert_eq!(to_int(&json!([1])), None);
        assert_eq!(convert(&json!(""), TraitType::Int), None);
        assert_eq!(
            convert(&json!(""), TraitType::Text),
            Some(TraitValue::Text(String::new()))
        );
    }

    #[test]
    fn floats() {
        assert_eq!(to_float(&json!("1.5")), Some(1.5));
        assert_eq!(to_float(&json!(2)), Some(2.0));
        assert_eq!(to_float(&json!(false)), Some(0.0));
        assert_eq!(to_float(&json!("inf")), None);
        assert_eq!(to_float(&json!("x")), None);
    }

    #[test]
    fn datetimes() {
        let p = |s| parse_datetime(s).map(|d| crate::event::format_datetime(&d));
        assert_eq!(
            p("2015-02-27 15:27:18.603932").as_deref(),
            Some("2015-02-27T15:27:18.603932Z")
        );
        assert_eq!(
            p("2015-02-27T15:20:00+02:00").as_deref(),
            Some("2015-02-27T13:20:00Z")
        );
        assert_eq!(
            p("2015-02-27T15:27:18-05:00").as_deref(),
            Some("2015-02-27T20:27:18Z")
        );
        assert_eq!(
            p("2015-02-27T15:27:18-0500").as_deref(),
            Some("2015-02-27T20:27:18Z")
        );
        assert_eq!(
            p("2015-02-27T15:27:18Z").as_deref(),
            Some("2015-02-27T15:27:18Z")
        );
        assert_eq!(
            p("2015-02-27T15:27").as_deref(),
            Some("2015-02-27T15:27:00Z")
        );
        assert_eq!(p("2015-02-27").as_deref(), Some("2015-02-27T00:00:00Z"));
        assert_eq!(
            p("20150227T152718").as_deref(),
            Some("2015-02-27T15:27:18Z")
        );
        assert_eq!(
            p("2015-02-27T15:27:18.1234567").as_deref(),
            Some("2015-02-27T15:27:18.123456Z")
        );
        for bad in [
            "",
            "yesterday",
            "2015-13-01",
            "2015-02-27X10:00",
            "2015-02-27T25:00",
            "2015-02-27T10:00:00+",
            "2015-02-27T10:00:00 junk",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
