//! How the console writes times: UTC with the offset visible, to the second (the
//! microseconds are in the title, for whoever needs them).

use chrono::{DateTime, Utc};
use maud::{html, Markup};

/// `2026-12-06 10:15:02 +00:00`, with the full RFC 3339 value as a tooltip and in a
/// `<time>` element for machines.
pub(crate) fn at(t: DateTime<Utc>) -> Markup {
    let full = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    html! {
        time datetime=(full) title=(full) { (t.format("%Y-%m-%d %H:%M:%S +00:00")) }
    }
}

/// A duration between two times, as people say it: `850 ms`, `42 s`, `3 min 5 s`,
/// `2 h 4 min`.
pub(crate) fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = (to - from).num_milliseconds().max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations_read_as_people_say_them() {
        let t = |s: i64, ms: u32| Utc.timestamp_opt(s, ms * 1_000_000).unwrap();
        assert_eq!(duration(t(0, 0), t(0, 850)), "850 ms");
        assert_eq!(duration(t(0, 0), t(42, 0)), "42 s");
        assert_eq!(duration(t(0, 0), t(185, 0)), "3 min 5 s");
        assert_eq!(duration(t(0, 0), t(7440, 0)), "2 h 4 min");
        assert_eq!(duration(t(10, 0), t(0, 0)), "0 ms", "never negative");
    }

    #[test]
    fn times_show_their_offset() {
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 10, 15, 2).unwrap();
        let s = at(t).into_string();
        assert!(s.contains("2026-12-06 10:15:02 +00:00"), "{s}");
        assert!(
            s.contains("datetime=\"2026-12-06T10:15:02.000000Z\""),
            "{s}"
        );
    }
}
