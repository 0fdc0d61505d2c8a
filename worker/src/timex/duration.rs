//! Durations and the calendar arithmetic they drive.
//!
//! A duration keeps one optional count per unit (`1d 2h` is day 1, hour 2) rather
//! than a total length, because `+ 1mo` and `@ 3d` mean calendar steps and
//! component replacement, not a number of seconds. A bare number (`day @ 2`) has no
//! unit until it meets a range, whose length chooses one ([`Duration::resolve`]).
//!
//! Adding follows the original order: the day-and-smaller part is added as a fixed
//! length, then months, then years. Where the original raised an error because the
//! day did not exist in the target month (Jan 31 + 1mo), we clamp to the month's
//! last day (Feb 28), as calendars usually do; `$last + 1mo` in an expiration
//! should not fail on the 31st. Replacing components (`@`) with a combination that
//! is not a date (`@ 30d` in February) stays an error: there is no obvious intent.
//! Dates are kept within years 1 to 9999, the range the original (and RFC 3339)
//! can represent.

use super::error::TimexError;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};
use std::fmt;

/// A duration unit, largest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Microsecond,
}

impl Unit {
    /// All units, largest first.
    pub const ALL: [Unit; 7] = [
        Unit::Year,
        Unit::Month,
        Unit::Day,
        Unit::Hour,
        Unit::Minute,
        Unit::Second,
        Unit::Microsecond,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The unit a reserved word of the language names, if any.
    pub fn from_word(word: &str) -> Option<Unit> {
        Some(match word {
            "us" => Unit::Microsecond,
            "s" | "sec" => Unit::Second,
            "m" | "min" => Unit::Minute,
            "h" | "hr" => Unit::Hour,
            "d" => Unit::Day,
            "mo" => Unit::Month,
            "y" | "yr" => Unit::Year,
            _ => return None,
        })
    }

    /// The canonical suffix written after a number.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Year => "y",
            Unit::Month => "mo",
            Unit::Day => "d",
            Unit::Hour => "h",
            Unit::Minute => "m",
            Unit::Second => "s",
            Unit::Microsecond => "us",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Year => "year",
            Unit::Month => "month",
            Unit::Day => "day",
            Unit::Hour => "hour",
            Unit::Minute => "minute",
            Unit::Second => "second",
            Unit::Microsecond => "microsecond",
        }
    }

    /// Microseconds in one unit, for the fixed-length units.
    fn fixed_micros(self) -> Option<i128> {
        Some(match self {
            Unit::Year | Unit::Month => return None,
            Unit::Day => 86_400_000_000,
            Unit::Hour => 3_600_000_000,
            Unit::Minute => 60_000_000,
            Unit::Second => 1_000_000,
            Unit::Microsecond => 1,
        })
    }
}

/// Counts per unit, plus an optional count whose unit is not yet known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Duration {
    parts: [Option<i64>; 7],
    unitless: Option<i64>,
}

impl Duration {
    /// `count` of `unit`.
    pub fn of(unit: Unit, count: i64) -> Duration {
        let mut d = Duration::default();
        d.parts[unit.index()] = Some(count);
        d
    }

    /// A bare number, whose unit a range will choose.
    pub fn unitless(count: i64) -> Duration {
        Duration {
            unitless: Some(count),
            ..Duration::default()
        }
    }

    pub fn get(&self, unit: Unit) -> Option<i64> {
        self.parts[unit.index()]
    }

    /// True when a bare number is part of this duration.
    pub fn is_ambiguous(&self) -> bool {
        self.unitless.is_some()
    }

    /// The sum of two durations, unit by unit (`None` on overflow).
    pub fn checked_add(&self, other: &Duration) -> Option<Duration> {
        fn add(a: Option<i64>, b: Option<i64>) -> Option<Option<i64>> {
            match (a, b) {
                (Some(a), Some(b)) => a.checked_add(b).map(Some),
                (a, b) => Some(a.or(b)),
            }
        }
        let mut sum = *self;
        for unit in Unit::ALL {
            sum.parts[unit.index()] = add(self.get(unit), other.get(unit))?;
        }
        sum.unitless = add(self.unitless, other.unitless)?;
        Some(sum)
    }

    /// Gives a bare number the unit one step finer than the range it applies to:
    /// months for a range of a year or more, days for a month (28 days) or more,
    /// then hours, minutes, seconds, and microseconds for ranges under a minute.
    pub fn resolve(&self, range_micros: i128) -> Result<Duration, TimexError> {
        let Some(count) = self.unitless else {
            return Ok(*self);
        };
        const DAY: i128 = 86_400_000_000;
        let length = range_micros.abs();
        let unit = if length >= 365 * DAY {
            Unit::Month
        } else if length >= 28 * DAY {
            Unit::Day
        } else if length >= DAY {
            Unit::Hour
        } else if length >= 3_600_000_000 {
            Unit::Minute
        } else if length >= 60_000_000 {
            Unit::Second
        } else {
            Unit::Microsecond
        };
        let mut resolved = *self;
        resolved.unitless = None;
        resolved.parts[unit.index()] = match self.get(unit) {
            Some(existing) => Some(
                existing
                    .checked_add(count)
                    .ok_or_else(|| out_of_range("duration"))?,
            ),
            None => Some(count),
        };
        Ok(resolved)
    }

    /// The original's "is this shift smaller than one `unit`" test, which decides
    /// whether a pinned range keeps its pin. It compares by the largest unit
    /// present, not by length: `30h` counts as less than `1d`, `1d 2h` does not.
    /// A bare number counts as smaller.
    pub fn is_less_than_one(&self, unit: Unit) -> bool {
        for larger in Unit::ALL.iter().take_while(|u| **u < unit) {
            if self.get(*larger).is_some() {
                return false;
            }
        }
        self.get(unit).is_none_or(|count| count < 1)
    }

    /// The day-and-smaller part as a signed number of microseconds.
    fn fixed_micros(&self) -> Option<i128> {
        let mut total: i128 = 0;
        for unit in Unit::ALL {
            if let (Some(count), Some(size)) = (self.get(unit), unit.fixed_micros()) {
                total = total.checked_add(i128::from(count).checked_mul(size)?)?;
            }
        }
        Some(total)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for unit in Unit::ALL {
            if let Some(count) = self.get(unit) {
                write!(f, "{sep}{count}{}", unit.suffix())?;
                sep = " ";
            }
        }
        if let Some(count) = self.unitless {
            write!(f, "{sep}{count}")?;
        }
        Ok(())
    }
}

fn out_of_range(what: &str) -> TimexError {
    TimexError::InvalidDate(format!("{what} out of range (years 1 to 9999)"))
}

fn check_year(dt: NaiveDateTime) -> Result<NaiveDateTime, TimexError> {
    if (1..=9999).contains(&dt.year()) {
        Ok(dt)
    } else {
        Err(out_of_range("date"))
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Moves `dt` to `year`/`month` (month 1 to 12), clamping the day to the month.
fn with_year_month(dt: NaiveDateTime, year: i64, month: u32) -> Result<NaiveDateTime, TimexError> {
    let year = i32::try_from(year)
        .ok()
        .filter(|y| (1..=9999).contains(y))
        .ok_or_else(|| out_of_range("date"))?;
    let day = dt.day().min(days_in_month(year, month));
    NaiveDate::from_ymd_opt(year, month, day)
        .map(|date| date.and_time(dt.time()))
        .ok_or_else(|| out_of_range("date"))
}

/// `dt` plus (`negate` false) or minus (`negate` true) a duration with units.
pub fn shift(dt: NaiveDateTime, d: &Duration, negate: bool) -> Result<NaiveDateTime, TimexError> {
    let sign: i128 = if negate { -1 } else { 1 };
    let mut dt = dt;
    let micros = d
        .fixed_micros()
        .and_then(|m| i64::try_from(m * sign).ok())
        .ok_or_else(|| out_of_range("duration"))?;
    if micros != 0 {
        dt = dt
            .checked_add_signed(TimeDelta::microseconds(micros))
            .ok_or_else(|| out_of_range("date"))
            .and_then(check_year)?;
    }
    if let Some(months) = d.get(Unit::Month).filter(|m| *m != 0) {
        let index =
            i128::from(dt.year()) * 12 + i128::from(dt.month0()) + i128::from(months) * sign;
        let year = i64::try_from(index.div_euclid(12)).map_err(|_| out_of_range("date"))?;
        let month = (index.rem_euclid(12) + 1) as u32;
        dt = with_year_month(dt, year, month)?;
    }
    if let Some(years) = d.get(Unit::Year).filter(|y| *y != 0) {
        let year = i128::from(dt.year()) + i128::from(years) * sign;
        let year = i64::try_from(year).map_err(|_| out_of_range("date"))?;
        dt = with_year_month(dt, year, dt.month())?;
    }
    Ok(dt)
}

/// `dt` with the components named in the duration replaced by its counts, like
/// Python's `datetime.replace`: every component must be valid for the final date.
pub fn replace(dt: NaiveDateTime, d: &Duration) -> Result<NaiveDateTime, TimexError> {
    fn component(
        d: &Duration,
        unit: Unit,
        current: u32,
        low: i64,
        high: i64,
    ) -> Result<u32, TimexError> {
        match d.get(unit) {
            None => Ok(current),
            Some(value) if (low..=high).contains(&value) => Ok(value as u32),
            Some(value) => Err(TimexError::InvalidDate(format!(
                "cannot set {} to {value} (must be {low} to {high})",
                unit.name()
            ))),
        }
    }
    let year = component(d, Unit::Year, dt.year().max(0) as u32, 1, 9999)? as i32;
    let month = component(d, Unit::Month, dt.month(), 1, 12)?;
    let day = match d.get(Unit::Day) {
        None => dt.day(),
        Some(value) => {
            let last = days_in_month(year, month);
            if (1..=i64::from(last)).contains(&value) {
                value as u32
            } else {
                return Err(TimexError::InvalidDate(format!(
                    "cannot set day to {value}: {year:04}-{month:02} has {last} days"
                )));
            }
        }
    };
    if d.get(Unit::Day).is_none() && day > days_in_month(year, month) {
        return Err(TimexError::InvalidDate(format!(
            "day {day} does not exist in {year:04}-{month:02}"
        )));
    }
    let hour = component(d, Unit::Hour, dt.hour(), 0, 23)?;
    let minute = component(d, Unit::Minute, dt.minute(), 0, 59)?;
    let second = component(d, Unit::Second, dt.second(), 0, 59)?;
    let micro = component(d, Unit::Microsecond, dt.nanosecond() / 1000, 0, 999_999)?;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| out_of_range("date"))?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micro)
        .ok_or_else(|| TimexError::InvalidDate("invalid time of day".to_string()))?;
    Ok(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
    }

    fn dur(parts: &[(Unit, i64)]) -> Duration {
        parts
            .iter()
            .map(|(u, n)| Duration::of(*u, *n))
            .fold(Duration::default(), |a, b| a.checked_add(&b).unwrap())
    }

    #[test]
    fn add_applies_fixed_part_then_months_then_years() {
        let d = dur(&[
            (Unit::Year, 1),
            (Unit::Month, 2),
            (Unit::Day, 3),
            (Unit::Hour, 4),
            (Unit::Minute, 5),
            (Unit::Second, 6),
            (Unit::Microsecond, 7),
        ]);
        assert_eq!(
            shift(dt("2015-01-31T12:00:00"), &d, false).unwrap(),
            dt("2016-04-03T16:05:06.000007")
        );
        assert_eq!(
            shift(dt("2015-01-31T12:00:00"), &d, true).unwrap(),
            dt("2013-11-28T07:54:53.999993")
        );
    }

    #[test]
    fn month_steps_clamp_to_the_end_of_the_month() {
        let month = Duration::of(Unit::Month, 1);
        assert_eq!(
            shift(dt("2015-01-31T12:00:00"), &month, false).unwrap(),
            dt("2015-02-28T12:00:00")
        );
        assert_eq!(
            shift(dt("2016-03-31T00:00:00"), &month, true).unwrap(),
            dt("2016-02-29T00:00:00")
        );
        assert_eq!(
            shift(
                dt("2016-02-29T00:00:00"),
                &Duration::of(Unit::Year, 1),
                false
            )
            .unwrap(),
            dt("2017-02-28T00:00:00")
        );
        assert_eq!(
            shift(
                dt("2014-03-09T02:30:00"),
                &Duration::of(Unit::Month, 13),
                false
            )
            .unwrap(),
            dt("2015-04-09T02:30:00")
        );
        assert_eq!(
            shift(
                dt("2014-03-09T02:30:00"),
                &Duration::of(Unit::Month, 15),
                true
            )
            .unwrap(),
            dt("2012-12-09T02:30:00")
        );
    }

    #[test]
    fn replace_checks_every_component() {
        let t = dt("2016-02-29T23:59:59.999999");
        assert_eq!(
            replace(
                t,
                &dur(&[(Unit::Hour, 0), (Unit::Minute, 0), (Unit::Second, 0)])
            )
            .unwrap(),
            dt("2016-02-29T00:00:00.999999")
        );
        assert!(replace(t, &dur(&[(Unit::Month, 2), (Unit::Day, 30)])).is_err());
        assert!(replace(t, &Duration::of(Unit::Year, 2015)).is_err());
        assert!(replace(t, &Duration::of(Unit::Hour, 24)).is_err());
        assert!(replace(t, &Duration::of(Unit::Month, 0)).is_err());
        assert!(replace(t, &Duration::of(Unit::Year, 0)).is_err());
        assert_eq!(
            replace(t, &Duration::of(Unit::Microsecond, 1)).unwrap(),
            dt("2016-02-29T23:59:59.000001")
        );
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        let t = dt("2015-01-01T00:00:00");
        for unit in Unit::ALL {
            for count in [i64::MAX, i64::MIN, 10_000_000] {
                let d = Duration::of(unit, count);
                let _ = shift(t, &d, false);
                let _ = shift(t, &d, true);
                let _ = replace(t, &d);
            }
        }
        assert!(shift(t, &Duration::of(Unit::Year, 8000), false).is_err());
        assert!(shift(t, &Duration::of(Unit::Day, i64::MAX), false).is_err());
    }

    #[test]
    fn resolving_a_bare_number() {
        const DAY: i128 = 86_400_000_000;
        let two = Duration::unitless(2);
        assert_eq!(two.resolve(DAY).unwrap(), Duration::of(Unit::Hour, 2));
        assert_eq!(two.resolve(-DAY).unwrap(), Duration::of(Unit::Hour, 2));
        assert_eq!(two.resolve(31 * DAY).unwrap(), Duration::of(Unit::Day, 2));
        assert_eq!(
            two.resolve(366 * DAY).unwrap(),
            Duration::of(Unit::Month, 2)
        );
        assert_eq!(
            two.resolve(3_600_000_000).unwrap(),
            Duration::of(Unit::Minute, 2)
        );
        assert_eq!(
            two.resolve(60_000_000).unwrap(),
            Duration::of(Unit::Second, 2)
        );
        assert_eq!(two.resolve(0).unwrap(), Duration::of(Unit::Microsecond, 2));
        let mixed = Duration::of(Unit::Hour, 1).checked_add(&two).unwrap();
        assert_eq!(mixed.resolve(DAY).unwrap(), Duration::of(Unit::Hour, 3));
    }

    #[test]
    fn less_than_one_compares_by_largest_unit() {
        assert!(Duration::of(Unit::Hour, 30).is_less_than_one(Unit::Day));
        assert!(Duration::of(Unit::Day, 40).is_less_than_one(Unit::Month));
        assert!(Duration::of(Unit::Day, 0).is_less_than_one(Unit::Day));
        assert!(Duration::unitless(5).is_less_than_one(Unit::Hour));
        assert!(!Duration::of(Unit::Day, 1).is_less_than_one(Unit::Day));
        assert!(!dur(&[(Unit::Day, 1), (Unit::Hour, 2)]).is_less_than_one(Unit::Day));
        assert!(!Duration::of(Unit::Year, 2015).is_less_than_one(Unit::Hour));
    }

    #[test]
    fn display_lists_units_largest_first() {
        let d = dur(&[(Unit::Hour, 2), (Unit::Day, 1)])
            .checked_add(&Duration::unitless(3))
            .unwrap();
        assert_eq!(d.to_string(), "1d 2h 3");
    }
}
