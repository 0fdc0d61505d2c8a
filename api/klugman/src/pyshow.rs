//! How the original klugman showed one JSON value in a table cell.
//!
//! The original decoded type hints into Python objects (`datetime`, `timex.TimeRange`,
//! `timex.Timestamp`) and prettytable printed `str()` of each, under Python 2. This
//! module reproduces those strings, so the same JSON prints the same table:
//!
//! * `null` → `None`, booleans → `True`/`False`;
//! * floats as Python 2's `str(float)` (12 significant digits, `.0` kept);
//! * `{"__type__":"datetime"}` → `str(datetime)`: `2015-04-22 21:06:09.400561`, with
//!   `+00:00` when the string carried a zone, and `n/a` when absent;
//! * `timex.TimeRange` → `TimeRange from datetime.datetime(2015, 4, 22, 0, 0) to …`;
//! * `timex.Timestamp` → `Timestamp for datetime.datetime(…)`.
//!
//! Where the original crashed (an unknown `__type__`, an unparsable datetime) we show
//! the raw value instead. Plain nested objects and arrays are shown as compact JSON
//! (the original showed a Python repr).

use serde_json::{Map, Value};

/// The cell text for `v`.
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => py2_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("__type__").and_then(Value::as_str) {
            Some(hint) => show_hinted(hint, o).unwrap_or_else(|| v.to_string()),
            None => v.to_string(),
        },
        Value::Array(_) => v.to_string(),
    }
}

/// A type-hinted value, or `None` when the hint is unknown or malformed.
fn show_hinted(hint: &str, o: &Map<String, Value>) -> Option<String> {
    match hint {
        "datetime" => Some(match present(o, "datetime") {
            None => "n/a".to_string(),
            Some(s) => PyDateTime::parse(s).map_or_else(|| s.to_string(), |d| d.to_str()),
        }),
        "timex.TimeRange" => {
            let end = |key| match present(o, key) {
                None => Some("'n/a'".to_string()),
                Some(s) => PyDateTime::parse(s).map(|d| d.repr()),
            };
            Some(format!(
                "TimeRange from {} to {}",
                end("begin")?,
                end("end")?
            ))
        }
        "timex.Timestamp" => Some(match present(o, "timestamp") {
            None => "n/a".to_string(),
            Some(s) => format!("Timestamp for {}", PyDateTime::parse(s)?.repr()),
        }),
        _ => None,
    }
}

/// The string under `key` unless missing, null or the text `None` (the original's
/// `_present` test).
fn present<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    match o.get(key) {
        Some(Value::String(s)) if s != "None" => Some(s),
        _ => None,
    }
}

/// Python 2's `str(float)`: `%.12g`, plus `.0` when that looks like an integer.
pub fn py2_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let s = format_g(f, 12);
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// C's `%.{precision}g`.
fn format_g(f: f64, precision: usize) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Round to `precision` significant digits first; the exponent after rounding
    // decides between fixed and scientific notation.
    let sci = format!("{:.*e}", precision - 1, f);
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, f)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A datetime as `iso8601.parse_date(s, default_timezone=None)` returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PyDateTime {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micro: u32,
    zone: Zone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Zone {
    /// No zone in the string: a naive datetime.
    Naive,
    /// `Z`: iso8601's UTC object.
    Utc,
    /// `±HH[:MM]`: iso8601's FixedOffset, by its description and signed minutes.
    Fixed(String, i32),
}

impl PyDateTime {
    /// Parses the ISO 8601 forms servers send: `YYYY-MM-DD`, optionally followed by
    /// `T` or a space, `HH[:MM[:SS[.fraction]]]` and `Z` or `±HH[:MM]`.
    fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let mut p = Cursor { b, i: 0 };
        let year = p.digits(4, 4)?;
        p.eat(b'-').then_some(())?;
        let month = p.digits(1, 2)?;
        p.eat(b'-').then_some(())?;
        let day = p.digits(1, 2)?;
        let (mut hour, mut minute, mut second, mut micro) = (0, 0, 0, 0);
        let mut zone = Zone::Naive;
        if !p.done() {
            if !(p.eat(b'T') || p.eat(b' ')) {
                return None;
            }
            hour = p.digits(2, 2)?;
            if p.eat(b':') {
                minute = p.digits(2, 2)?;
                if p.eat(b':') {
                    second = p.digits(1, 2)?;
                    if p.eat(b'.') {
                        let start = p.i;
                        while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                            p.i += 1;
                        }
                        let frac = s.get(start..p.i).filter(|f| !f.is_empty())?;
                        // Truncated to microseconds, as Decimal("0.f") * 1e6 → int did.
                        let six: String = frac.chars().chain("000000".chars()).take(6).collect();
                        micro = six.parse().ok()?;
                    }
                }
            }
            if p.eat(b'Z') {
                zone = Zone::Utc;
            } else if let Some(sign) = p.peek().filter(|c| *c == b'+' || *c == b'-') {
                p.i += 1;
                let h = p.digits(2, 2)?;
                p.eat(b':');
                let m = if p.done() { 0 } else { p.digits(2, 2)? };
                let sign_char = sign as char;
                let minutes = (h * 60 + m) as i32;
                let signed = if sign == b'-' { -minutes } else { minutes };
                zone = Zone::Fixed(format!("{sign_char}{h:02}:{m:02}"), signed);
            }
            if !p.done() {
                return None;
            }
        }
        let valid = (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60
            && year >= 1;
        valid.then_some(PyDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micro,
            zone,
        })
    }

    /// `str(datetime)`: `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]`.
    fn to_str(&self) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.micro != 0 {
            s.push_str(&format!(".{:06}", self.micro));
        }
        match &self.zone {
            Zone::Naive => {}
            Zone::Utc => s.push_str("+00:00"),
            Zone::Fixed(_, minutes) => {
                let sign = if *minutes < 0 { '-' } else { '+' };
                let m = minutes.abs();
                s.push_str(&format!("{sign}{:02}:{:02}", m / 60, m % 60));
            }
        }
        s
    }

    /// Python 2's `repr(datetime)`: trailing zero microseconds and seconds dropped.
    ///
    /// For `Z` the original printed iso8601's `Utc` object by its default repr, which
    /// contains a memory address; we print it without the address.
    fn repr(&self) -> String {
        let mut fields = vec![
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.micro,
        ];
        for _ in 0..2 {
            if fields.last() == Some(&0) {
                fields.pop();
            }
        }
        let mut args: Vec<String> = fields.iter().map(u32::to_string).collect();
        match &self.zone {
            Zone::Naive => {}
            Zone::Utc => args.push("tzinfo=<iso8601.iso8601.Utc object>".to_string()),
            Zone::Fixed(name, minutes) => args.push(format!(
                "tzinfo=<FixedOffset '{name}' {}>",
                py2_timedelta(*minutes)
            )),
        }
        format!("datetime.datetime({})", args.join(", "))
    }
}

/// Python 2's `repr(timedelta(minutes=m))`: `datetime.timedelta(days, seconds)`.
fn py2_timedelta(minutes: i32) -> String {
    let total = i64::from(minutes) * 60;
    let days = total.div_euclid(86_400);
    let secs = total.rem_euclid(86_400);
    if secs == 0 {
        format!("datetime.timedelta({days})")
    } else {
        format!("datetime.timedelta({days}, {secs})")
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Between `min` and `max` ASCII digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i - start < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_show_as_python_did() {
        assert_eq!(show(&json!(null)), "None");
        assert_eq!(show(&json!(true)), "True");
        assert_eq!(show(&json!(false)), "False");
        assert_eq!(show(&json!(1024)), "1024");
        assert_eq!(show(&json!(-3)), "-3");
        assert_eq!(show(&json!("x y")), "x y");
    }

    #[test]
    fn floats_follow_python2_str() {
        // Values from Python 2.7's str(float).
        assert_eq!(py2_float(0.5), "0.5");
        assert_eq!(py2_float(1.0), "1.0");
        assert_eq!(py2_float(1.0 / 3.0), "0.333333333333");
        assert_eq!(py2_float(1e20), "1e+20");
        assert_eq!(py2_float(123456789012345.0), "1.23456789012e+14");
        assert_eq!(py2_float(100000000000.0), "100000000000.0");
        assert_eq!(py2_float(0.0001), "0.0001");
        assert_eq!(py2_float(0.00001), "1e-05");
        assert_eq!(py2_float(-2.5), "-2.5");
        assert_eq!(py2_float(0.0), "0.0");
        assert_eq!(py2_float(2.675), "2.675");
    }

    #[test]
    fn datetimes_show_as_str_datetime() {
        let dt = |s: &str| show(&json!({"__type__": "datetime", "datetime": s}));
        assert_eq!(
            dt("2015-04-22T21:06:09.400561"),
            "2015-04-22 21:06:09.400561"
        );
        assert_eq!(dt("2015-04-22 21:07:17"), "2015-04-22 21:07:17");
        assert_eq!(dt("2015-04-22T21:07:17.000000"), "2015-04-22 21:07:17");
        assert_eq!(
            dt("2015-04-22T21:07:17.1234569"),
            "2015-04-22 21:07:17.123456"
        );
        assert_eq!(dt("2015-04-22T21:07"), "2015-04-22 21:07:00");
        assert_eq!(dt("2015-04-22"), "2015-04-22 00:00:00");
        assert_eq!(
            dt("2015-04-24T21:07:17.317974Z"),
            "2015-04-24 21:07:17.317974+00:00"
        );
        assert_eq!(dt("2015-04-24T21:07:17-05:30"), "2015-04-24 21:07:17-05:30");
        assert_eq!(dt("None"), "n/a");
        assert_eq!(
            show(&json!({"__type__": "datetime", "datetime": null})),
            "n/a"
        );
        assert_eq!(show(&json!({"__type__": "datetime"})), "n/a");
        // The original crashed here; we show what the server sent.
        assert_eq!(dt("yesterday"), "yesterday");
        assert_eq!(dt("2015-02-30T00:00:00"), "2015-02-30T00:00:00");
    }

    #[test]
    fn time_ranges_show_as_timex_repr() {
        let tr = json!({"__type__": "timex.TimeRange",
                        "begin": "2015-04-22T00:00:00", "end": "2015-04-23 00:00:00"});
        assert_eq!(
            show(&tr),
            "TimeRange from datetime.datetime(2015, 4, 22, 0, 0) to datetime.datetime(2015, 4, 23, 0, 0)"
        );
        let tr = json!({"__type__": "timex.TimeRange",
                        "begin": "2015-04-22T10:11:12.5", "end": null});
        assert_eq!(
            show(&tr),
            "TimeRange from datetime.datetime(2015, 4, 22, 10, 11, 12, 500000) to 'n/a'"
        );
        let tr = json!({"__type__": "timex.TimeRange",
                        "begin": "2015-04-22T00:00:00+02:00", "end": "2015-04-23T00:00:00-02:00"});
        assert_eq!(
            show(&tr),
            "TimeRange from datetime.datetime(2015, 4, 22, 0, 0, tzinfo=<FixedOffset '+02:00' datetime.timedelta(0, 7200)>) \
             to datetime.datetime(2015, 4, 23, 0, 0, tzinfo=<FixedOffset '-02:00' datetime.timedelta(-1, 79200)>)"
        );
    }

    #[test]
    fn timestamps_and_unknown_hints() {
        let ts = json!({"__type__": "timex.Timestamp", "timestamp": "2015-04-22T21:06:09"});
        assert_eq!(
            show(&ts),
            "Timestamp for datetime.datetime(2015, 4, 22, 21, 6, 9)"
        );
        let odd = json!({"__type__": "mystery", "x": 1});
        assert_eq!(show(&odd), r#"{"__type__":"mystery","x":1}"#);
        assert_eq!(show(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
    }
}
