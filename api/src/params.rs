//! Query parameters, parsed the way quincy read them but strictly: whatever quincy
//! accepted still works (`details=True`, `name=` for `trigger_name=`, dateutil-style
//! datetimes, `k:v;k:v` traits, hex marks), and whatever it crashed on is a 400 naming
//! the parameter.
//!
//! The query string is decoded here rather than by a framework extractor so that no
//! input, however malformed, can fail before the handler with a non-JSON answer.

use crate::error::ApiError;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use worker::event::TraitValue;
use worker::store::{
    DistMatch, DistValue, EventQuery, EventWindow, Page, StreamQuery, StreamState, TraitMatch,
    TraitOp,
};

/// The decoded query string. Empty values count as absent, as they did in quincy
/// (`if limit:`), and the first of repeated parameters wins.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Paging limits of the server: what one request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items per page when `limit` is absent (the original's 200).
    pub default: u64,
    /// The largest `limit` accepted.
    pub max: u64,
    /// Trait filters (`traits=`, `distinguishing_traits=` items) one request may
    /// give: each is a join in the query.
    pub max_trait_filters: usize,
    /// Events of one stream in an answer with `details` (`events_limit` up to this).
    pub stream_events: u64,
    /// Events of all streams of one listing page with `details`: the page's streams
    /// share it, so `limit=1000&details=true` cannot read a million events.
    pub listing_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default: 200,
            max: 1000,
            max_trait_filters: 16,
            stream_events: 1000,
            listing_events: 20_000,
        }
    }
}

/// A datetime as dateutil read the common forms: `2015-02-27`, `2015-02-27 00:11:16`,
/// `2015-02-27T00:11:16.202`, with `Z` or an offset (`+00:00`, `+0000`); no offset
/// means UTC. A `+` offset that arrived unescaped in a query string (and so decoded
/// to a space) is recognised too.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let mut norm: String = s.to_string();
    // Date and time separated by a space, as Python's str(datetime) writes them.
    if norm.len() > 10 && norm.as_bytes()[10] == b' ' && norm.is_char_boundary(11) {
        norm.replace_range(10..11, "T");
    }
    // `…T00:00:00 00:00`: a `+` decoded to a space.
    if let Some(pos) = norm.rfind(' ') {
        if pos >= 16
            && norm[pos + 1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b':')
        {
            norm.replace_range(pos..pos + 1, "+");
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(&norm) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(d) = DateTime::parse_from_str(&norm, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&norm, fmt) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(&norm, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

fn datetime_param(q: &Query, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    q.get(name)
        .map(|v| {
            parse_datetime(v).ok_or_else(|| {
                ApiError::bad(format!(
                    "{name}: {v:?} is not a datetime (use ISO 8601, e.g. 2015-02-27T00:11:16Z or 2015-02-27 00:11:16)"
                ))
            })
        })
        .transpose()
}

/// `limit`: 1 to the server's maximum; absent means the default.
pub fn limit(q: &Query, limits: Limits) -> Result<u64, ApiError> {
    let Some(v) = q.get("limit") else {
        return Ok(limits.default);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if n >= 1 && n <= limits.max => Ok(n),
        _ => Err(ApiError::bad(format!(
            "limit: {v:?} is not a whole number from 1 to {}",
            limits.max
        ))),
    }
}

/// `mark`: the `_mark` of the last item seen. A `+` prefix pages in ascending id
/// order, `-` or none descending; the rest is the id in hex (may be empty: from the
/// start).
pub fn page(q: &Query, limits: Limits) -> Result<Page, ApiError> {
    let limit = limit(q, limits)?;
    let Some(mark) = q.get("mark") else {
        return Ok(Page {
            after: None,
            ascending: false,
            limit: Some(limit),
        });
    };
    let mark = mark.trim();
    let (ascending, hex) = match mark.as_bytes().first() {
        Some(b'+') => (true, &mark[1..]),
        Some(b'-') => (false, &mark[1..]),
        _ => (false, mark),
    };
    let after = if hex.is_empty() {
        None
    } else if hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(
            i64::from_str_radix(hex, 16)
                .map_err(|_| ApiError::bad(format!("mark: {mark:?} is out of range")))?,
        )
    } else {
        return Err(ApiError::bad(format!(
            "mark: {mark:?} is not a mark (a hex id, optionally prefixed by + or -)"
        )));
    };
    Ok(Page {
        after,
        ascending,
        limit: Some(limit),
    })
}

/// `details`: `true`/`True`/`1`/`yes`/`on` or `false`/`False`/`0`/`no`/`off`.
pub fn details(q: &Query) -> Result<bool, ApiError> {
    match q.get("details").map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ApiError::bad(format!(
                "details: {v:?} is not a boolean (use true or false)"
            ))),
        },
    }
}

/// `state`: a state name (any case, as quince lowered it) or its number 1–8.
pub fn state(q: &Query) -> Result<Option<StreamState>, ApiError> {
    let Some(v) = q.get("state") else {
        return Ok(None);
    };
    let name = v.trim().to_ascii_lowercase();
    StreamState::parse(&name)
        .or_else(|| name.parse::<i16>().ok().and_then(StreamState::from_i16))
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = StreamState::ALL.iter().map(|s| s.name()).collect();
            ApiError::bad(format!(
                "state: {v:?} is not a stream state (one of {})",
                names.join(", ")
            ))
        })
}

/// Splits a trait list into items. `;` separates items, as quincy read them; `,`
/// does too when every comma-separated piece is itself a filter, because klugman
/// joins several traits with commas (quincy then misread them), while a single value
/// containing a comma (`state_description:a, b`) stays whole.
fn trait_items(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for piece in list.split(';') {
        let parts: Vec<&str> = piece.split(',').collect();
        if parts.len() > 1
            && parts
                .iter()
                .all(|p| p.trim().is_empty() || operator_at(p).is_some())
        {
            out.extend(parts);
        } else {
            out.push(piece);
        }
    }
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Where the first operator of a filter item starts, which one, and its length.
fn operator_at(item: &str) -> Option<(usize, TraitOp, usize)> {
    let bytes = item.as_bytes();
    let i = bytes
        .iter()
        .position(|b| matches!(b, b':' | b'=' | b'<' | b'>' | b'!'))?;
    let next = bytes.get(i + 1).copied();
    Some(match (bytes[i], next) {
        (b':', _) => (i, TraitOp::Eq, 1),
        (b'=', Some(b'=')) => (i, TraitOp::Eq, 2),
        (b'=', _) => (i, TraitOp::Eq, 1),
        (b'!', Some(b'=')) => (i, TraitOp::Ne, 2),
        (b'<', Some(b'=')) => (i, TraitOp::Le, 2),
        (b'<', _) => (i, TraitOp::Lt, 1),
        (b'>', Some(b'=')) => (i, TraitOp::Ge, 2),
        (b'>', _) => (i, TraitOp::Gt, 1),
        _ => return None,
    })
}

/// One parsed filter item: name, operator, raw value.
fn split_item<'a>(param: &str, item: &'a str) -> Result<(&'a str, TraitOp, &'a str), ApiError> {
    let (i, op, len) = operator_at(item).ok_or_else(|| {
        ApiError::bad(format!(
            "{param}: {item:?} has no operator (use name:value, or name OP value with OP one of = != < <= > >=)"
        ))
    })?;
    let name = item[..i].trim();
    if name.is_empty() {
        return Err(ApiError::bad(format!(
            "{param}: {item:?} has no trait name"
        )));
    }
    Ok((name, op, item[i + len..].trim()))
}

/// A value in double quotes is text and only text.
fn unquote(value: &str) -> Option<&str> {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|_| value.len() >= 2)
}

/// The numeric readings of a value: an int also compares with floats, and a
/// whole float with ints.
fn numbers(value: &str) -> (Option<i64>, Option<f64>) {
    if let Ok(i) = value.parse::<i64>() {
        return (Some(i), Some(i as f64));
    }
    match value.parse::<f64>() {
        Ok(f) if f.is_finite() => {
            let int = (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64);
            (int, Some(f))
        }
        _ => (None, None),
    }
}

/// A datetime reading only for values that look like dates (`2015-…`), so numbers
/// and words are never taken for one.
fn datetime_reading(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        parse_datetime(value)
    } else {
        None
    }
}

/// Event trait filters (`traits=`): `name:value` (quincy's equality) or
/// `name OP value`. Values are typed the way the store types traits: a value that
/// reads as an int compares with int traits (and float traits), one that reads as a
/// float with float traits, a date with datetime traits; equality also compares it
/// as text (so a text trait `"512"` still matches `:512`), and an ordering compares
/// as text only a value with no other reading. `"…"` forces text.
pub fn trait_matches(list: &str) -> Result<Vec<TraitMatch>, ApiError> {
    let mut out = Vec::new();
    for item in trait_items(list) {
        let (name, op, value) = split_item("traits", item)?;
        let values = if let Some(text) = unquote(value) {
            vec![TraitValue::Text(text.to_string())]
        } else {
            let mut values = Vec::new();
            let (int, float) = numbers(value);
            values.extend(int.map(TraitValue::Int));
            values.extend(float.map(TraitValue::Float));
            values.extend(datetime_reading(value).map(TraitValue::Datetime));
            if matches!(op, TraitOp::Eq | TraitOp::Ne) || values.is_empty() {
                values.push(TraitValue::Text(value.to_string()));
            }
            values
        };
        if value.is_empty() && !matches!(op, TraitOp::Eq | TraitOp::Ne) {
            return Err(ApiError::bad(format!(
                "traits: {item:?} compares with nothing"
            )));
        }
        out.push(TraitMatch {
            name: name.to_string(),
            op,
            values,
        });
    }
    Ok(out)
}

/// Distinguishing-trait filters (`distinguishing_traits=`): `name:value` (or
/// `name=value`) items, equality only. Typed like [`trait_matches`]; a datetime also
/// finds the stream whose time-range trait (`timestamp: day`) holds it.
pub fn dist_matches(list: &str) -> Result<Vec<DistMatch>, ApiError> {
    let mut out = Vec::new();
    for item in trait_items(list) {
        let (name, op, value) = split_item("distinguishing_traits", item)?;
        if op != TraitOp::Eq {
            return Err(ApiError::bad(format!(
                "distinguishing_traits: {item:?}: distinguishing traits are matched by equality only (name:value)"
            )));
        }
        let values = if let Some(text) = unquote(value) {
            vec![DistValue::Text(text.to_string())]
        } else {
            let mut values = vec![DistValue::Text(value.to_string())];
            let (int, float) = numbers(value);
            values.extend(int.map(DistValue::Int));
            values.extend(float.map(DistValue::Float));
            values.extend(datetime_reading(value).map(DistValue::Datetime));
            values
        };
        out.push(DistMatch {
            name: name.to_string(),
            values,
        });
    }
    Ok(out)
}

fn capped<T>(param: &str, items: Vec<T>, limits: Limits) -> Result<Vec<T>, ApiError> {
    if items.len() > limits.max_trait_filters {
        return Err(ApiError::bad(format!(
            "{param}: {} filters; at most {} per request",
            items.len(),
            limits.max_trait_filters
        )));
    }
    Ok(items)
}

/// Which events of each stream an answer with `details` carries: `events_offset`
/// (from 0) and `events_limit`, bounded by the server's per-stream cap and, in a
/// listing of `streams` streams, by the listing's share of its events budget. Without
/// `events_limit` the largest allowed is used; an explicit one above it is a 400.
pub fn event_window(q: &Query, limits: Limits, streams: u64) -> Result<EventWindow, ApiError> {
    let share = (limits.listing_events / streams.max(1)).max(1);
    let allowed = limits.stream_events.min(share);
    let offset = match q.get("events_offset") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::bad(format!("events_offset: {v:?} is not a whole number")))?,
    };
    let limit = match q.get("events_limit") {
        None => allowed,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= 1 && n <= allowed => n,
            _ => {
                return Err(ApiError::bad(if allowed < limits.stream_events {
                    format!(
                        "events_limit: {v:?} is not a whole number from 1 to {allowed} \
                         ({streams} streams share at most {} events per request; ask for \
                         fewer streams with limit, or page one stream's events)",
                        limits.listing_events
                    )
                } else {
                    format!("events_limit: {v:?} is not a whole number from 1 to {allowed}")
                }))
            }
        },
    };
    Ok(EventWindow {
        offset,
        limit: Some(limit),
    })
}

/// The filters of `/v1/streams` and `/v1/streams/count`.
pub fn stream_query(q: &Query, limits: Limits) -> Result<StreamQuery, ApiError> {
    let name = match (q.get("trigger_name"), q.get("name")) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad(format!(
                "trigger_name {a:?} and name {b:?} disagree (name is klugman's spelling of trigger_name)"
            )))
        }
        (Some(a), _) | (None, Some(a)) => Some(a.to_string()),
        (None, None) => None,
    };
    Ok(StreamQuery {
        state: state(q)?,
        older_than: datetime_param(q, "older_than")?,
        younger_than: datetime_param(q, "younger_than")?,
        name,
        dist_matches: capped(
            "distinguishing_traits",
            q.get("distinguishing_traits")
                .map(dist_matches)
                .transpose()?
                .unwrap_or_default(),
            limits,
        )?,
        page: page(q, limits)?,
        ..StreamQuery::default()
    })
}

/// The filters of `/v1/events` and `/v1/events/count`.
pub fn event_query(q: &Query, limits: Limits) -> Result<EventQuery, ApiError> {
    Ok(EventQuery {
        from: datetime_param(q, "from_datetime")?,
        to: datetime_param(q, "to_datetime")?,
        event_type: q.get("event_name").map(str::to_string),
        trait_matches: capped(
            "traits",
            q.get("traits")
                .map(trait_matches)
                .transpose()?
                .unwrap_or_default(),
            limits,
        )?,
        page: page(q, limits)?,
        ..EventQuery::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn datetimes_in_the_forms_dateutil_read() {
        let t = Utc.with_ymd_and_hms(2015, 2, 27, 0, 11, 16).unwrap();
        for s in [
            "2015-02-27T00:11:16",
            "2015-02-27 00:11:16",
            "2015-02-27T00:11:16Z",
            "2015-02-27T00:11:16+00:00",
            "2015-02-27T00:11:16 00:00",
            "2015-02-27T01:11:16+0100",
            "2015-02-27T00:11:16.000",
        ] {
            assert_eq!(parse_datetime(s), Some(t), "{s}");
        }
        assert_eq!(
            parse_datetime("2015-02-27"),
            Some(Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, 0).unwrap())
        );
        for bad in [
            "",
            "yesterday",
            "2015-13-01",
            "2015-02-27T25:00",
            "1'; DROP TABLE event; --",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_and_marks() {
        let l = Limits::default();
        assert_eq!(limit(&q(""), l).unwrap(), 200);
        assert_eq!(limit(&q("limit=5"), l).unwrap(), 5);
        for bad in [
            "limit=-1",
            "limit=abc",
            "limit=0",
            "limit=1001",
            "limit=1.5",
        ] {
            assert!(limit(&q(bad), l).is_err(), "{bad}");
        }
        let p = page(&q("mark=%2Bff"), l).unwrap();
        assert_eq!((p.after, p.ascending), (Some(255), true));
        let p = page(&q("mark=-a"), l).unwrap();
        assert_eq!((p.after, p.ascending), (Some(10), false));
        let p = page(&q("mark=1f"), l).unwrap();
        assert_eq!((p.after, p.ascending), (Some(31), false));
        let p = page(&q("mark=%2B"), l).unwrap();
        assert_eq!((p.after, p.ascending), (None, true));
        for bad in [
            "mark=xyz",
            "mark=%2B-1",
            "mark=ffffffffffffffffffff",
            "mark=1 OR 1=1",
        ] {
            assert!(page(&q(bad), l).is_err(), "{bad}");
        }
    }

    #[test]
    fn details_and_states() {
        for t in ["details=true", "details=True", "details=1"] {
            assert!(details(&q(t)).unwrap(), "{t}");
        }
        assert!(!details(&q("details=False")).unwrap());
        assert!(!details(&q("")).unwrap());
        assert!(details(&q("details=maybe")).is_err());
        assert_eq!(
            state(&q("state=Retry_Fire")).unwrap(),
            Some(StreamState::RetryFire)
        );
        assert_eq!(state(&q("state=4")).unwrap(), Some(StreamState::Error));
        assert!(state(&q("state=bogus")).is_err());
        assert!(state(&q("state=9")).is_err());
    }

    #[test]
    fn trait_filters_with_operators_and_types() {
        let m = trait_matches("memory_mb>512").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].name.as_str(), m[0].op), ("memory_mb", TraitOp::Gt));
        assert_eq!(
            m[0].values,
            vec![TraitValue::Int(512), TraitValue::Float(512.0)]
        );
        let m = trait_matches("host:compute-1;memory_mb>=512").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].values, vec![TraitValue::Text("compute-1".into())]);
        assert_eq!(m[1].op, TraitOp::Ge);
        // klugman's comma-joined list
        let m = trait_matches("a:1,b:x").unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[0].values.contains(&TraitValue::Text("1".into())));
        // a comma inside one value stays
        let m = trait_matches("desc:a, b").unwrap();
        assert_eq!(m[0].values, vec![TraitValue::Text("a, b".into())]);
        let m = trait_matches("when>=2015-02-27T00:00:00").unwrap();
        assert_eq!(
            m[0].values,
            vec![TraitValue::Datetime(
                Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, 0).unwrap()
            )]
        );
        let m = trait_matches("tenant_id:\"123\"").unwrap();
        assert_eq!(m[0].values, vec![TraitValue::Text("123".into())]);
        for op in ["<", "<=", "!=", "=", "=="] {
            assert!(trait_matches(&format!("x{op}1")).is_ok(), "{op}");
        }
        for bad in ["memory_mb", ":5", "x!5", "x>", "a:1;nope"] {
            assert!(trait_matches(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn distinguishing_traits_are_equality_only() {
        let m = dist_matches("instance_id:abc;timestamp:2015-02-27").unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[1]
            .values
            .iter()
            .any(|v| matches!(v, DistValue::Datetime(_))));
        assert!(dist_matches("memory_mb>5").is_err());
        assert!(dist_matches("nothing").is_err());
    }

    #[test]
    fn name_is_trigger_name() {
        let l = Limits::default();
        let s = stream_query(&q("name=usage"), l).unwrap();
        assert_eq!(s.name.as_deref(), Some("usage"));
        assert!(stream_query(&q("name=a&trigger_name=b"), l).is_err());
        assert!(stream_query(&q("older_than=nope"), l).is_err());
    }
}
