//! "Now" for the engine.
//!
//! Everything that compares against the current time (is a stream still open, is it
//! ready to fire or expire, trim age) asks a [`Clock`] instead of the system, so a
//! replay of yesterday's notifications behaves as it did yesterday. The original did
//! this with a time-sync HTTP service that yagi published each notification's
//! timestamp to; in one process the [`FollowingClock`] does the same without it.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now".
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock, for real-time traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that follows the notifications being replayed: ingest advances it to each
/// notification's timestamp, and it never goes backwards (notifications arrive slightly
/// out of order; time running back would reopen expired streams).
#[derive(Debug)]
pub struct FollowingClock {
    micros: AtomicI64,
}

impl FollowingClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        FollowingClock {
            micros: AtomicI64::new(start.timestamp_micros()),
        }
    }

    /// Moves the clock forward to `t` (no-op when `t` is not later).
    pub fn advance_to(&self, t: DateTime<Utc>) {
        self.micros
            .fetch_max(t.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for FollowingClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn following_clock_never_goes_back() {
        let t0 = Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, 0).unwrap();
        let c = FollowingClock::new(t0);
        c.advance_to(t0 + chrono::Duration::hours(2));
        c.advance_to(t0 + chrono::Duration::hours(1));
        assert_eq!(c.now(), t0 + chrono::Duration::hours(2));
    }
}
