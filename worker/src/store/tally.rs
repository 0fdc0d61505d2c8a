//! Maintained counters: what the console shows at a glance without scanning the event
//! or stream tables per page view (issue 16).
//!
//! - `event_type_total` and `event_type_day`: events stored per type, and per type and
//!   UTC day of `generated`;
//! - `event_minute`: events stored per minute of `generated`;
//! - `event_type_trait`: every (type, trait name, trait type) ever stored;
//! - `stream_tally`: pipeline runs finished per minute (wall clock), by outcome;
//! - `collector_seen`: when each collector (yagi-event of a cell) last stored a batch.
//!
//! The event counters are written in the ingest transaction (one multi-row upsert
//! per table and batch, whatever its size) and taken back by the trim, so they equal
//! what is stored. Writers on MySQL spread over [`Backend::TALLY_SHARDS`] rows per
//! key (picked per transaction) so concurrent ingesters of the same minute do not
//! queue on one row lock; readers add the shards up.

use super::rows::{micros, trait_type, type_code};
use super::sql::{values_statements, Arg, Backend, Conn, DbRow, Sql};
use super::StoreError;
use crate::event::{Event, TraitType};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Microseconds in a minute and a day.
pub(crate) const MINUTE: i64 = 60_000_000;
pub(crate) const DAY: i64 = 86_400 * 1_000_000;

/// Start of the bucket of `width` microseconds that holds `t`.
pub(crate) fn bucket(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

/// How a pipeline run on a stream ended, as `stream_tally` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunOutcome {
    /// A firing stream's pipeline completed.
    Fired,
    /// An expiring stream's pipeline completed.
    Expired,
    /// A firing stream's pipeline failed (state `error`).
    FireError,
    /// An expiring stream's pipeline failed (state `expire_error`).
    ExpireError,
    /// The pipeline asked to be retried later.
    Retried,
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 5] = [
        RunOutcome::Fired,
        RunOutcome::Expired,
        RunOutcome::FireError,
        RunOutcome::ExpireError,
        RunOutcome::Retried,
    ];

    pub(crate) fn code(self) -> i64 {
        match self {
            RunOutcome::Fired => 1,
            RunOutcome::Expired => 2,
            RunOutcome::FireError => 3,
            RunOutcome::ExpireError => 4,
            RunOutcome::Retried => 5,
        }
    }

    fn from_code(code: i64) -> Result<Self, StoreError> {
        RunOutcome::ALL
            .into_iter()
            .find(|o| o.code() == code)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run outcome {code}")))
    }

    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Fired => "fired",
            RunOutcome::Expired => "expired",
            RunOutcome::FireError => "fire error",
            RunOutcome::ExpireError => "expire error",
            RunOutcome::Retried => "retried",
        }
    }
}

/// Pipeline runs that ended in one minute, by outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMinute {
    pub minute: DateTime<Utc>,
    pub outcome: RunOutcome,
    pub runs: u64,
}

/// When a collector last stored a batch, and the newest event it stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorSeen {
    pub name: String,
    pub last_seen: DateTime<Utc>,
    pub last_generated: DateTime<Utc>,
}

/// Changes to the event counters, keyed for a deterministic write order (rows are
/// locked in key order, so two writers never wait on each other crosswise).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct EventTally {
    by_type: BTreeMap<i64, i64>,
    by_type_day: BTreeMap<(i64, i64), i64>,
    by_minute: BTreeMap<i64, i64>,
}

impl EventTally {
    /// Counts `delta` events of type `type_id` generated at `generated` (µs).
    pub(crate) fn add(&mut self, type_id: i64, generated: i64, delta: i64) {
        *self.by_type.entry(type_id).or_default() += delta;
        *self
            .by_type_day
            .entry((type_id, bucket(generated, DAY)))
            .or_default() += delta;
        *self.by_minute.entry(bucket(generated, MINUTE)).or_default() += delta;
    }

    /// The three upserts (empty when nothing was counted).
    pub(crate) async fn write<B: Backend>(
        &self,
        conn: &mut B::Conn,
        shard: i64,
    ) -> Result<(), StoreError> {
        let mut args = Vec::new();
        for (&t, &n) in &self.by_type {
            args.extend([Arg::Int(t), Arg::Int(shard), Arg::Int(n)]);
        }
        let tail = B::add_tail("event_type_id, shard", "events");
        let head = "INSERT INTO event_type_total (event_type_id, shard, events)";
        conn.execute_all(&values_statements(head, &tail, 3, args, B::LIMITS))
            .await?;

        let mut args = Vec::new();
        for (&(t, day), &n) in &self.by_type_day {
            args.extend([Arg::Int(t), Arg::Int(day), Arg::Int(shard), Arg::Int(n)]);
        }
        let tail = B::add_tail("event_type_id, day, shard", "events");
        let head = "INSERT INTO event_type_day (event_type_id, day, shard, events)";
        conn.execute_all(&values_statements(head, &tail, 4, args, B::LIMITS))
            .await?;

        let mut args = Vec::new();
        for (&m, &n) in &self.by_minute {
            args.extend([Arg::Int(m), Arg::Int(shard), Arg::Int(n)]);
        }
        let tail = B::add_tail("minute, shard", "events");
        let head = "INSERT INTO event_minute (minute, shard, events)";
        conn.execute_all(&values_statements(head, &tail, 3, args, B::LIMITS))
            .await?;
        Ok(())
    }
}

/// A trait signature: (event type id, trait name, trait type code).
pub(crate) type TraitSig = (i64, String, i64);

/// The signatures of `events` (their type ids alongside) not in `known`.
pub(crate) fn new_signatures(
    events: &[&Event],
    type_ids: &[i64],
    known: &std::collections::HashSet<TraitSig>,
) -> Vec<TraitSig> {
    let mut out = std::collections::BTreeSet::new();
    for (e, &t) in events.iter().zip(type_ids) {
        for (name, value) in &e.traits {
            let sig = (t, name.clone(), type_code(value.trait_type()));
            if !known.contains(&sig) {
                out.insert(sig);
            }
        }
    }
    out.into_iter().collect()
}

/// Records trait signatures (already recorded ones are left alone).
pub(crate) async fn write_signatures<B: Backend>(
    conn: &mut B::Conn,
    sigs: &[TraitSig],
) -> Result<(), StoreError> {
    let mut args = Vec::with_capacity(sigs.len() * 3);
    for (t, name, ty) in sigs {
        args.extend([Arg::Int(*t), name.as_str().into(), Arg::Int(*ty)]);
    }
    let tail = B::upsert_tail("event_type_id, name, type", &["type"]);
    conn.execute_all(&values_statements(
        "INSERT INTO event_type_trait (event_type_id, name, type)",
        &tail,
        3,
        args,
        B::LIMITS,
    ))
    .await?;
    Ok(())
}

/// Counts `runs` finished pipeline runs with `outcome` at `now`.
pub(crate) async fn count_runs<B: Backend>(
    conn: &mut B::Conn,
    outcome: RunOutcome,
    now: DateTime<Utc>,
    shard: i64,
    runs: i64,
) -> Result<(), StoreError> {
    let mut sql = Sql::new("INSERT INTO stream_tally (minute, outcome, shard, runs) VALUES ");
    sql.bind_tuple([
        Arg::Int(bucket(micros(now), MINUTE)),
        Arg::Int(outcome.code()),
        Arg::Int(shard),
        Arg::Int(runs),
    ])
    .push(&B::add_tail("minute, outcome, shard", "runs"));
    conn.execute(&sql).await?;
    Ok(())
}

/// Event counts per type id (types without events are left out).
pub(crate) async fn type_totals<B: Backend>(
    conn: &mut B::Conn,
) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = conn
        .fetch(&Sql::new(
            "SELECT et.name, CAST(COALESCE(SUM(t.events), 0) AS SIGNED) FROM event_type et \
             LEFT JOIN event_type_total t ON t.event_type_id = et.id \
             GROUP BY et.id, et.name ORDER BY et.name",
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.text(0)?, non_negative(r.int(1)?))))
        .collect()
}

/// Events of `event_type` per UTC day in `[from, to)` (days without events left out).
pub(crate) async fn type_days<B: Backend>(
    conn: &mut B::Conn,
    event_type: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError> {
    let mut sql = Sql::new(
        "SELECT d.day, CAST(SUM(d.events) AS SIGNED) FROM event_type_day d \
         JOIN event_type et ON et.id = d.event_type_id WHERE et.name = ",
    );
    sql.bind(event_type)
        .push(" AND d.day >= ")
        .bind(bucket(micros(from), DAY))
        .push(" AND d.day < ")
        .bind(micros(to))
        .push(" GROUP BY d.day HAVING SUM(d.events) > 0 ORDER BY d.day");
    buckets(&conn.fetch(&sql).await?)
}

/// Events per minute of `generated` in `[from, to)` (minutes without events left out).
pub(crate) async fn minutes<B: Backend>(
    conn: &mut B::Conn,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError> {
    let mut sql =
        Sql::new("SELECT minute, CAST(SUM(events) AS SIGNED) FROM event_minute WHERE minute >= ");
    sql.bind(bucket(micros(from), MINUTE))
        .push(" AND minute < ")
        .bind(micros(to))
        .push(" GROUP BY minute HAVING SUM(events) > 0 ORDER BY minute");
    buckets(&conn.fetch(&sql).await?)
}

/// Pipeline runs per minute and outcome in `[from, to)`.
pub(crate) async fn runs<B: Backend>(
    conn: &mut B::Conn,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RunMinute>, StoreError> {
    let mut sql = Sql::new(
        "SELECT minute, outcome, CAST(SUM(runs) AS SIGNED) FROM stream_tally WHERE minute >= ",
    );
    sql.bind(bucket(micros(from), MINUTE))
        .push(" AND minute < ")
        .bind(micros(to))
        .push(" GROUP BY minute, outcome ORDER BY minute, outcome");
    conn.fetch(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(RunMinute {
                minute: super::rows::from_micros(r.int(0)?)?,
                outcome: RunOutcome::from_code(r.int(1)?)?,
                runs: non_negative(r.int(2)?),
            })
        })
        .collect()
}

/// The trait names and types recorded for `event_type`.
pub(crate) async fn signatures<B: Backend>(
    conn: &mut B::Conn,
    event_type: &str,
) -> Result<Vec<(String, TraitType)>, StoreError> {
    let mut sql = Sql::new(
        "SELECT s.name, s.type FROM event_type_trait s \
         JOIN event_type et ON et.id = s.event_type_id WHERE et.name = ",
    );
    sql.bind(event_type).push(" ORDER BY s.name, s.type");
    conn.fetch(&sql)
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, trait_type(r.int(1)?)?)))
        .collect()
}

/// Records that collector `name` stored a batch at `seen`, the newest of its events
/// generated at `generated`.
pub(crate) async fn mark_collector<B: Backend>(
    conn: &mut B::Conn,
    name: &str,
    seen: DateTime<Utc>,
    generated: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new("INSERT INTO collector_seen (name, last_seen, last_generated) VALUES ");
    sql.bind_tuple([
        name.into(),
        Arg::Int(micros(seen)),
        Arg::Int(micros(generated)),
    ])
    .push(&B::collector_tail());
    conn.execute(&sql).await?;
    Ok(())
}

/// Every collector that ever stored a batch, by name.
pub(crate) async fn collectors<B: Backend>(
    conn: &mut B::Conn,
) -> Result<Vec<CollectorSeen>, StoreError> {
    let rows = conn
        .fetch(&Sql::new(
            "SELECT name, last_seen, last_generated FROM collector_seen ORDER BY name",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CollectorSeen {
                name: r.text(0)?,
                last_seen: super::rows::from_micros(r.int(1)?)?,
                last_generated: super::rows::from_micros(r.int(2)?)?,
            })
        })
        .collect()
}

/// Drops the minute and day rows a trim emptied: those before the oldest event left
/// (a trim takes events back from shard 0, so a bucket's rows only add up to zero
/// together; what lies before every stored event is surely empty).
pub(crate) async fn drop_trimmed<B: Backend>(conn: &mut B::Conn) -> Result<(), StoreError> {
    let oldest = conn
        .fetch(&Sql::new("SELECT MIN(generated) FROM event"))
        .await?
        .first()
        .map(|r| r.opt_int(0))
        .transpose()?
        .flatten();
    let (minute, day) = match oldest {
        Some(t) => (bucket(t, MINUTE), bucket(t, DAY)),
        None => (i64::MAX, i64::MAX),
    };
    let mut sql = Sql::new("DELETE FROM event_minute WHERE minute < ");
    sql.bind(minute);
    conn.execute(&sql).await?;
    let mut sql = Sql::new("DELETE FROM event_type_day WHERE day < ");
    sql.bind(day);
    conn.execute(&sql).await?;
    Ok(())
}

fn buckets<R: DbRow>(rows: &[R]) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok((
                super::rows::from_micros(r.int(0)?)?,
                non_negative(r.int(1)?),
            ))
        })
        .collect()
}

/// Sums of shards are never negative unless a counter was changed by hand. (The
/// sums are cast to integers: MySQL sums BIGINTs as DECIMAL.)
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_at_the_minute_and_the_day() {
        assert_eq!(bucket(61_000_000, MINUTE), MINUTE);
        assert_eq!(bucket(-1, MINUTE), -MINUTE);
        assert_eq!(bucket(DAY + 5, DAY), DAY);
    }

    #[test]
    fn a_tally_adds_up_per_type_day_and_minute() {
        let mut t = EventTally::default();
        t.add(1, 10, 1);
        t.add(1, MINUTE + 10, 1);
        t.add(2, DAY + 10, 1);
        t.add(1, 20, -1);
        assert_eq!(t.by_type, BTreeMap::from([(1, 1), (2, 1)]));
        assert_eq!(t.by_type_day, BTreeMap::from([((1, 0), 1), ((2, DAY), 1)]));
        assert_eq!(t.by_minute, BTreeMap::from([(0, 0), (MINUTE, 1), (DAY, 1)]));
    }

    #[test]
    fn run_outcome_codes_round_trip() {
        for o in RunOutcome::ALL {
            assert_eq!(RunOutcome::from_code(o.code()).ok(), Some(o));
        }
        assert!(RunOutcome::from_code(9).is_err());
    }
}
