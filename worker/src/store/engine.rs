//! [`SqlStore`]: the [`Store`] written once over a [`Backend`]. The backends
//! ([`super::sqlite`], [`super::mysql`]) supply connections, migrations and a few
//! dialect bits; every query and algorithm lives here and in [`super::ingest`].

use super::rows::{
    dist_condition, events_with_traits, from_micros, micros, stream_from_row, streams_from_rows,
    trait_args, trait_from_row, traits_from_json_row, EVENT_COLS, STREAM_COLS, TRAITS_JSON,
    TRAITS_JSON_TAIL, TRAIT_COLS,
};
use super::sql::{in_statements, is_conflict, Arg, Backend, Conn, DbRow, Sql};
use super::tally::{self, TraitSig};
use super::{
    DistValue, EventQuery, EventWindow, IngestReport, Outcome, Page, ReadyKind, Store, StoreError,
    StoredEvent, Stream, StreamId, StreamQuery, StreamRules, StreamState, TraitOp,
};
use crate::event::{Event, TraitType, TraitValue};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// A [`Store`] over one SQL backend.
pub struct SqlStore<B: Backend> {
    pub(crate) backend: B,
    /// Event type name → id, filled after commits (never with uncommitted ids).
    pub(crate) type_ids: Mutex<HashMap<String, i64>>,
    /// Trait signatures known to be recorded (see [`super::tally`]), filled after
    /// commits, so a batch writes only the new ones.
    pub(crate) trait_sigs: Mutex<HashSet<TraitSig>>,
}

impl<B: Backend> SqlStore<B> {
    pub fn new(backend: B) -> Self {
        SqlStore {
            backend,
            type_ids: Mutex::new(HashMap::new()),
            trait_sigs: Mutex::new(HashSet::new()),
        }
    }

    pub fn backend_ref(&self) -> &B {
        &self.backend
    }

    /// Caches what a committed ingest learned.
    fn learn(&self, learned: super::ingest::Learned) {
        if !learned.types.is_empty() {
            if let Ok(mut cache) = self.type_ids.lock() {
                cache.extend(learned.types);
            }
        }
        if !learned.traits.is_empty() {
            if let Ok(mut cache) = self.trait_sigs.lock() {
                cache.extend(learned.traits);
            }
        }
    }
}

/// Attempts of a transaction that keeps losing races (deadlock, busy, unique key).
const ATTEMPTS: u32 = 8;

/// Runs `op` again (after a jittered, growing pause) while it loses races; a
/// database that went away is reported at once (the caller backs off).
pub(crate) async fn retrying<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if is_conflict(&e) && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::debug!(attempt, error = %e, "retrying store transaction");
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Half fixed, half random: 5 ms doubling per attempt, capped at 400 ms.
fn backoff(attempt: u32) -> Duration {
    let base = (5u64 << attempt.min(7)).min(400);
    let random = (uuid::Uuid::new_v4().as_u128() % 1000) as u64;
    Duration::from_micros(base * 500 + base * random / 2)
}

fn limit_arg(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// ` AND id < after ORDER BY id DESC LIMIT n` (or ascending from above `after`).
fn push_page<'a>(sql: &mut Sql<'a>, page: &Page, id_col: &str) {
    if let Some(after) = page.after {
        sql.push(&format!(
            " AND {id_col} {} ",
            if page.ascending { ">" } else { "<" }
        ))
        .bind(after);
    }
    sql.push(&format!(
        " ORDER BY {id_col} {}",
        if page.ascending { "ASC" } else { "DESC" }
    ));
    if let Some(limit) = page.limit {
        sql.push(" LIMIT ").bind(limit_arg(limit));
    }
}

/// `eq_as_in`: see [`Backend::TRAIT_EQUALITY_AS_IN`]; a distinguishing trait's
/// equality is then `id IN (SELECT stream_id …)`, which SQLite answers from the
/// (name, value) index instead of probing every stream (50 ms at 15,000 streams for a
/// value no stream has).
fn push_stream_filters<'a>(sql: &mut Sql<'a>, q: &'a StreamQuery, eq_as_in: bool) {
    sql.push(" WHERE 1 = 1");
    if let Some(id) = q.stream_id {
        sql.push(" AND id = ").bind(id);
    }
    if let Some(state) = q.state {
        sql.push(" AND state = ").bind(state.as_i16());
    }
    if let Some(t) = q.older_than {
        sql.push(" AND first_event < ").bind(micros(t));
    }
    if let Some(t) = q.younger_than {
        sql.push(" AND last_event > ").bind(micros(t));
    }
    if let Some(name) = &q.name {
        sql.push(" AND name = ").bind(name.as_str());
    }
    for (name, value) in &q.distinguishing_traits {
        if eq_as_in {
            sql.push(" AND id IN (SELECT d.stream_id FROM stream_dist_trait d WHERE d.name = ");
        } else {
            sql.push(
                " AND EXISTS (SELECT 1 FROM stream_dist_trait d WHERE d.stream_id = stream.id \
                 AND d.name = ",
            );
        }
        sql.bind(name.as_str()).push(" AND ");
        dist_condition(value, sql);
        sql.push(")");
    }
    for m in &q.dist_matches {
        if eq_as_in {
            sql.push(" AND id IN (SELECT d.stream_id FROM stream_dist_trait d WHERE d.name = ");
        } else {
            sql.push(
                " AND EXISTS (SELECT 1 FROM stream_dist_trait d WHERE d.stream_id = stream.id \
                 AND d.name = ",
            );
        }
        // No `1 = 0 OR …` lead: with it SQLite scans the table instead of taking
        // one index per alternative.
        sql.bind(m.name.as_str()).push(" AND (");
        if m.values.is_empty() {
            sql.push("1 = 0");
        }
        for (i, value) in m.values.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { " OR (" });
            if let DistValue::Datetime(t) = value {
                // A datetime also finds the stream of the time range holding it.
                sql.push("d.dt_datetime = ")
                    .bind(micros(*t))
                    .push(" OR (d.dt_begin <= ")
                    .bind(micros(*t))
                    .push(" AND d.dt_end > ")
                    .bind(micros(*t))
                    .push(")");
            } else {
                dist_condition(value, sql);
            }
            sql.push(")");
        }
        sql.push("))");
    }
}

fn op_sql(op: TraitOp) -> &'static str {
    match op {
        TraitOp::Eq => "=",
        TraitOp::Ne => "<>",
        TraitOp::Lt => "<",
        TraitOp::Le => "<=",
        TraitOp::Gt => ">",
        TraitOp::Ge => ">=",
    }
}

/// FROM and WHERE of an event listing (aliases `e`, `et`).
///
/// `LEFT JOIN`, although every event has its type: with an inner join MariaDB starts
/// from the small `event_type` table and reads every event of every type, then sorts
/// them all for `ORDER BY e.id DESC LIMIT n` (a whole-table sort per page at a
/// million events); the outer join makes it walk `event` in id order and stop after
/// `n`. A filter on `et.name` turns it back into an inner join, where starting from
/// the one type is right. See `docs/query-plans.md`.
/// `eq_as_in`: [`Backend::TRAIT_EQUALITY_AS_IN`].
fn push_event_filters<'a>(sql: &mut Sql<'a>, q: &'a EventQuery, eq_as_in: bool) {
    sql.push(" FROM event e LEFT JOIN event_type et ON et.id = e.event_type_id WHERE 1 = 1");
    if let Some(t) = q.from {
        sql.push(" AND e.generated > ").bind(micros(t));
    }
    if let Some(t) = q.to {
        sql.push(" AND e.generated <= ").bind(micros(t));
    }
    if let Some(name) = &q.event_type {
        sql.push(" AND et.name = ").bind(name.as_str());
    }
    // The start of one trait filter's subquery; the caller adds `t.name = ?` and the
    // value comparison, then the closing parenthesis.
    let open = |sql: &mut Sql<'a>, op: TraitOp| {
        if eq_as_in && op == TraitOp::Eq {
            sql.push(" AND e.id IN (SELECT t.event_id FROM event_trait t WHERE t.name = ");
        } else {
            sql.push(
                " AND EXISTS (SELECT 1 FROM event_trait t WHERE t.event_id = e.id AND t.name = ",
            );
        }
    };
    for f in &q.traits {
        let (col, arg) = trait_column(&f.value);
        open(sql, f.op);
        sql.bind(f.name.as_str())
            .push(&format!(" AND t.{col} {} ", op_sql(f.op)))
            .bind(arg)
            .push(")");
    }
    for m in &q.trait_matches {
        open(sql, m.op);
        sql.bind(m.name.as_str());
        match m.values.as_slice() {
            // No reading: nothing matches.
            [] => {
                sql.push(" AND 1 = 0)");
            }
            // The common case (`instance_id:…`): a plain comparison the index serves.
            [value] => {
                let (col, arg) = trait_column(value);
                sql.push(&format!(" AND t.{col} {} ", op_sql(m.op)))
                    .bind(arg)
                    .push(")");
            }
            values => {
                sql.push(" AND (1 = 0");
                for value in values {
                    let (col, arg) = trait_column(value);
                    sql.push(&format!(" OR t.{col} {} ", op_sql(m.op)))
                        .bind(arg);
                }
                sql.push("))");
            }
        }
    }
}

/// The `event_trait` column holding values of `value`'s type, and `value` bound for it.
fn trait_column(value: &TraitValue) -> (&'static str, Arg<'_>) {
    match value {
        TraitValue::Text(s) => ("t_string", s.as_str().into()),
        TraitValue::Int(i) => ("t_int", Arg::Int(*i)),
        TraitValue::Float(v) => ("t_float", Arg::Float(*v)),
        TraitValue::Datetime(d) => ("t_datetime", Arg::Int(micros(*d))),
    }
}

fn count_from<R: DbRow>(rows: &[R]) -> Result<u64, StoreError> {
    let n = match rows.first() {
        Some(r) => r.int(0)?,
        None => 0,
    };
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}

impl<B: Backend> SqlStore<B> {
    /// `q` with each untyped trait filter ([`super::TraitMatch`]) reduced to the
    /// readings whose typed column holds values of that trait at all, or `None` when
    /// no filter has readings in two columns. `memory_mb<1024` reads as int and
    /// float, but `memory_mb` is only ever stored as an int: left as
    /// `t_int < ? OR t_float < ?`, MariaDB merges both indexes' ranges (every
    /// `memory_mb` row below 1024, both columns) and sorts them, 5 s a page at a
    /// million events, where `t_int < ?` alone walks the events in id order and stops
    /// after a page (30 ms). One statement of index probes, whatever the filters.
    async fn stored_readings(
        conn: &mut B::Conn,
        q: &EventQuery,
    ) -> Result<Option<EventQuery>, StoreError> {
        let columns = |m: &super::TraitMatch| {
            let mut cols: Vec<&'static str> = m.values.iter().map(|v| trait_column(v).0).collect();
            cols.sort_unstable();
            cols.dedup();
            cols
        };
        if q.trait_matches.iter().all(|m| columns(m).len() < 2) {
            return Ok(None);
        }
        let mut probe = Sql::new("SELECT 1");
        let mut probed: Vec<(usize, &'static str)> = Vec::new();
        for (i, m) in q.trait_matches.iter().enumerate() {
            let cols = columns(m);
            if cols.len() < 2 {
                continue;
            }
            for col in cols {
                probe
                    .push(", EXISTS (SELECT 1 FROM event_trait WHERE name = ")
                    .bind(m.name.as_str())
                    .push(&format!(" AND {col} IS NOT NULL)"));
                probed.push((i, col));
            }
        }
        let rows = conn.fetch(&probe).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Database("trait type probe returned no row".into()))?;
        let mut stored = std::collections::HashSet::new();
        for (n, key) in probed.into_iter().enumerate() {
            if row.int(n + 1)? != 0 {
                stored.insert(key);
            }
        }
        let mut typed = q.clone();
        for (i, m) in typed.trait_matches.iter_mut().enumerate() {
            if columns(m).len() >= 2 {
                // None left: the trait is stored in none of the readings' columns, so
                // nothing matches, which an empty list says (`1 = 0`).
                m.values
                    .retain(|v| stored.contains(&(i, trait_column(v).0)));
            }
        }
        Ok(Some(typed))
    }

    /// Loads the traits of the events `heads` names and assembles them.
    async fn load_events(
        conn: &mut B::Conn,
        heads: Vec<<B::Conn as Conn>::Row>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let ids = heads
            .iter()
            .map(|r| r.int(0).map(Arg::Int))
            .collect::<Result<Vec<_>, _>>()?;
        let traits = Self::load_traits(conn, ids).await?;
        events_with_traits(&heads, traits)
    }

    /// The traits of the events `ids`, as (event id, name, value): one row per trait,
    /// or per event on a backend that aggregates them ([`Backend::TRAITS_AS_JSON`]).
    async fn load_traits(
        conn: &mut B::Conn,
        ids: Vec<Arg<'_>>,
    ) -> Result<Vec<(i64, String, TraitValue)>, StoreError> {
        let mut out = Vec::new();
        if B::TRAITS_AS_JSON {
            let prefix = Sql::new(TRAITS_JSON);
            for r in conn
                .fetch_all(&in_statements(&prefix, TRAITS_JSON_TAIL, ids, B::LIMITS))
                .await?
            {
                traits_from_json_row(&r, &mut out)?;
            }
        } else {
            let prefix = Sql::new(format!(
                "SELECT {TRAIT_COLS} FROM event_trait WHERE event_id IN "
            ));
            for r in conn
                .fetch_all(&in_statements(&prefix, "", ids, B::LIMITS))
                .await?
            {
                out.push(trait_from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// Deletes a stream and its memberships and distinguishing traits, if it is
    /// still at `serial` (when given). True when there was such a stream.
    async fn delete_stream_tx(
        &self,
        id: StreamId,
        serial: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.backend.begin_write().await?;
        if !Self::delete_stream_in(&mut conn, id, serial).await? {
            return Ok(false);
        }
        conn.commit().await?;
        Ok(true)
    }

    /// [`Self::delete_stream_tx`]'s statements, in the caller's transaction.
    async fn delete_stream_in(
        conn: &mut B::Conn,
        id: StreamId,
        serial: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut del = Sql::new("DELETE FROM stream WHERE id = ");
        del.bind(id);
        if let Some(serial) = serial {
            del.push(" AND state_serial_no = ").bind(serial);
        }
        if conn.execute(&del).await? == 0 {
            return Ok(false);
        }
        for table in ["stream_event", "stream_dist_trait"] {
            let mut sql = Sql::new(format!("DELETE FROM {table} WHERE stream_id = "));
            sql.bind(id);
            conn.execute(&sql).await?;
        }
        Ok(true)
    }

    /// One attempt at [`Store::finish_stream`]: the stream's new state (or its
    /// deletion) and the run counted in `stream_tally`, in one transaction. The state
    /// the run found (firing or expiring) tells a fire from an expiry.
    async fn finish_once(
        &self,
        stream_id: StreamId,
        serial: i64,
        outcome: Outcome,
    ) -> Result<bool, StoreError> {
        let mut conn = self.backend.begin_write().await?;
        let mut sel = Sql::new("SELECT state FROM stream WHERE id = ");
        sel.bind(stream_id)
            .push(" AND state_serial_no = ")
            .bind(serial)
            .push(B::FOR_UPDATE);
        let Some(row) = conn.fetch(&sel).await?.into_iter().next() else {
            conn.commit().await?;
            return Ok(false);
        };
        let counted = run_outcome(row.int(0)?, &outcome);
        let changed = match outcome {
            Outcome::Purge => Self::delete_stream_in(&mut conn, stream_id, Some(serial)).await?,
            _ => {
                conn.execute(&finish_update(stream_id, serial, outcome))
                    .await?
                    == 1
            }
        };
        if changed {
            let shard = stream_id.rem_euclid(B::TALLY_SHARDS.max(1));
            tally::count_runs::<B>(&mut conn, counted, Utc::now(), shard, 1).await?;
        }
        conn.commit().await?;
        Ok(changed)
    }

    /// [`Self::finish_once`] for many runs in one transaction: one read of their
    /// states, one update per resulting state, one count per outcome.
    async fn finish_many_once(
        &self,
        runs: &[(StreamId, i64, Outcome)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut conn = self.backend.begin_write().await?;
        let ids: Vec<Arg<'_>> = runs.iter().map(|r| Arg::Int(r.0)).collect();
        let select = Sql::new("SELECT id, state_serial_no, state FROM stream WHERE id IN ");
        let mut found: HashMap<StreamId, (i64, i64)> = HashMap::with_capacity(runs.len());
        for r in conn
            .fetch_all(&in_statements(&select, B::FOR_UPDATE, ids, B::LIMITS))
            .await?
        {
            found.insert(r.int(0)?, (r.int(1)?, r.int(2)?));
        }
        let mut ours = Vec::with_capacity(runs.len());
        let mut to_state: BTreeMap<i16, Vec<Arg<'_>>> = BTreeMap::new();
        let mut counted: BTreeMap<tally::RunOutcome, i64> = BTreeMap::new();
        for &(id, serial, outcome) in runs {
            // Taken out once: a stream named twice is finished once.
            let Some((at, state)) = found.remove(&id) else {
                ours.push(false);
                continue;
            };
            if at != serial {
                ours.push(false);
                continue;
            }
            let run = run_outcome(state, &outcome);
            let changed = match outcome {
                Outcome::Purge => Self::delete_stream_in(&mut conn, id, Some(serial)).await?,
                Outcome::Retry { .. } => {
                    conn.execute(&finish_update(id, serial, outcome)).await? == 1
                }
                Outcome::Completed => push_to(&mut to_state, StreamState::Completed, id),
                Outcome::Error => push_to(&mut to_state, StreamState::Error, id),
                Outcome::ExpireError => push_to(&mut to_state, StreamState::ExpireError, id),
            };
            if changed {
                *counted.entry(run).or_default() += 1;
            }
            ours.push(changed);
        }
        for (state, ids) in to_state {
            // The serials were checked above, under the rows' locks.
            let mut update = Sql::new("UPDATE stream SET state = ");
            update
                .bind(state)
                .push(", state_serial_no = state_serial_no + 1, claim_until = NULL WHERE id IN ");
            conn.execute_all(&in_statements(&update, "", ids, B::LIMITS))
                .await?;
        }
        let shard = runs
            .first()
            .map_or(0, |r| r.0.rem_euclid(B::TALLY_SHARDS.max(1)));
        let now = Utc::now();
        for (run, n) in counted {
            tally::count_runs::<B>(&mut conn, run, now, shard, n).await?;
        }
        conn.commit().await?;
        Ok(ours)
    }

    /// One statement in its own write transaction (retried while it loses races);
    /// the rows it changed.
    async fn write_one(&self, sql: &Sql<'_>) -> Result<u64, StoreError> {
        retrying(move || async move {
            let mut conn = self.backend.begin_write().await?;
            let n = conn.execute(sql).await?;
            conn.commit().await?;
            Ok(n)
        })
        .await
    }

    async fn claim_once(
        &self,
        kind: ReadyKind,
        now: DateTime<Utc>,
        limit: u32,
        claim_until: DateTime<Utc>,
    ) -> Result<Vec<Stream>, StoreError> {
        let (states, col, to) = match kind {
            ReadyKind::Fire => (
                [StreamState::Active, StreamState::RetryFire],
                "fire_timestamp",
                StreamState::Firing,
            ),
            ReadyKind::Expire => (
                [StreamState::Active, StreamState::RetryExpire],
                "expire_timestamp",
                StreamState::Expiring,
            ),
        };
        let mut conn = self.backend.begin_write().await?;
        let mut select = Sql::new("SELECT id FROM stream WHERE state IN ");
        select
            .bind_tuple(states.map(|s| Arg::from(s.as_i16())))
            .push(&format!(" AND {col} < "))
            .bind(micros(now))
            .push(" AND (claim_until IS NULL OR claim_until < ")
            .bind(micros(Utc::now()))
            .push(") LIMIT ")
            .bind(i64::from(limit))
            .push(B::FOR_UPDATE_SKIP_LOCKED);
        let ids = conn
            .fetch(&select)
            .await?
            .iter()
            .map(|r| r.int(0).map(Arg::Int))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            conn.commit().await?;
            return Ok(Vec::new());
        }
        let mut update = Sql::new("UPDATE stream SET state = ");
        update
            .bind(to.as_i16())
            .push(", state_serial_no = state_serial_no + 1, open_key = NULL, claim_until = ")
            .bind(micros(claim_until))
            .push(" WHERE id IN ");
        conn.execute_all(&in_statements(&update, "", ids.clone(), B::LIMITS))
            .await?;
        let prefix = Sql::new(format!("SELECT {STREAM_COLS} FROM stream WHERE id IN "));
        let rows = conn
            .fetch_all(&in_statements(&prefix, "", ids, B::LIMITS))
            .await?;
        let mut streams = streams_from_rows(&rows)?;
        conn.commit().await?;
        streams.sort_by_key(|s| {
            let t = match kind {
                ReadyKind::Fire => s.fire_timestamp,
                ReadyKind::Expire => s.expire_timestamp,
            };
            (t, s.id)
        });
        Ok(streams)
    }

    async fn reset_once(&self, id: StreamId) -> Result<Stream, StoreError> {
        let mut conn = self.backend.begin_write().await?;
        let mut select = Sql::new(format!("SELECT {STREAM_COLS} FROM stream WHERE id = "));
        select.bind(id).push(B::FOR_UPDATE);
        let rows = conn.fetch(&select).await?;
        let mut stream = match rows.first() {
            Some(r) => stream_from_row(r)?.stream,
            None => return Err(StoreError::NoSuchStream(id)),
        };
        let to = match stream.state {
            StreamState::Error => StreamState::RetryFire,
            StreamState::ExpireError => StreamState::RetryExpire,
            state => return Err(StoreError::NotResettable { id, state }),
        };
        let mut update = Sql::new("UPDATE stream SET state = ");
        update
            .bind(to.as_i16())
            .push(", state_serial_no = state_serial_no + 1 WHERE id = ")
            .bind(id);
        conn.execute(&update).await?;
        conn.commit().await?;
        stream.state = to;
        stream.state_serial_no += 1;
        Ok(stream)
    }

    async fn trim_once(&self, older_than: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut conn = self.backend.begin_write().await?;
        let mut select =
            Sql::new("SELECT id, event_type_id, generated FROM event WHERE generated < ");
        select
            .bind(micros(older_than))
            .push(" ORDER BY generated, id LIMIT ")
            .bind(i64::from(limit))
            .push(B::FOR_UPDATE);
        let rows = conn.fetch(&select).await?;
        if rows.is_empty() {
            conn.commit().await?;
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut counts = tally::EventTally::default();
        for r in &rows {
            ids.push(Arg::Int(r.int(0)?));
            counts.add(r.int(1)?, r.int(2)?, -1);
        }
        counts.write::<B>(&mut conn, 0).await?;
        for (table, col) in [
            ("stream_event", "event_id"),
            ("event_trait", "event_id"),
            ("event", "id"),
        ] {
            let prefix = Sql::new(format!("DELETE FROM {table} WHERE {col} IN "));
            conn.execute_all(&in_statements(&prefix, "", ids.clone(), B::LIMITS))
                .await?;
        }
        tally::drop_trimmed::<B>(&mut conn).await?;
        conn.commit().await?;
        Ok(ids.len() as u64)
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.backend.migrate().await
    }

    async fn schema_status(&self) -> Result<super::SchemaStatus, StoreError> {
        self.backend.schema_status().await
    }

    async fn drop_query_indexes(&self) -> Result<(), StoreError> {
        if B::NAME != "sqlite" {
            return Ok(());
        }
        let mut conn = self.backend.begin_write().await?;
        for index in QUERY_INDEXES {
            conn.execute(&Sql::new(format!("DROP INDEX IF EXISTS {index}")))
                .await?;
        }
        conn.commit().await
    }

    async fn ingest(
        &self,
        events: &[Event],
        rules: &dyn StreamRules,
        now: DateTime<Utc>,
    ) -> Result<IngestReport, StoreError> {
        if events.is_empty() {
            return Ok(IngestReport::default());
        }
        let clocks = super::ingest::Clocks::At(now);
        let (report, learned, _) =
            retrying(move || super::ingest::ingest_once(self, events, rules, clocks)).await?;
        self.learn(learned);
        Ok(report)
    }

    async fn ingest_timed(
        &self,
        events: &[Event],
        rules: &dyn StreamRules,
        times: &[DateTime<Utc>],
    ) -> Result<(IngestReport, usize), StoreError> {
        if events.is_empty() {
            return Ok((IngestReport::default(), 0));
        }
        if times.len() != events.len() {
            return Err(StoreError::Rules(format!(
                "{} events and {} clocks",
                events.len(),
                times.len()
            )));
        }
        let clocks = super::ingest::Clocks::PerEvent(times);
        let (report, learned, consumed) =
            retrying(move || super::ingest::ingest_once(self, events, rules, clocks)).await?;
        self.learn(learned);
        Ok((report, consumed))
    }

    async fn claim_ready(
        &self,
        kind: ReadyKind,
        now: DateTime<Utc>,
        limit: u32,
        claim_until: DateTime<Utc>,
    ) -> Result<Vec<Stream>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        retrying(move || self.claim_once(kind, now, limit, claim_until)).await
    }

    async fn renew_claim(
        &self,
        stream_id: StreamId,
        serial: i64,
        claim_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut sql = Sql::new("UPDATE stream SET claim_until = ");
        sql.bind(micros(claim_until))
            .push(" WHERE id = ")
            .bind(stream_id)
            .push(" AND state_serial_no = ")
            .bind(serial)
            .push(" AND state IN ")
            .bind_tuple([
                Arg::from(StreamState::Firing.as_i16()),
                Arg::from(StreamState::Expiring.as_i16()),
            ]);
        Ok(self.write_one(&sql).await? == 1)
    }

    async fn release_expired_claims(&self, wall_now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut sql = Sql::new("UPDATE stream SET state = CASE state WHEN ");
        sql.bind(StreamState::Firing.as_i16())
            .push(" THEN ")
            .bind(StreamState::RetryFire.as_i16())
            .push(" ELSE ")
            .bind(StreamState::RetryExpire.as_i16())
            .push(
                " END, state_serial_no = state_serial_no + 1, claim_until = NULL \
                 WHERE state IN ",
            )
            .bind_tuple([
                Arg::from(StreamState::Firing.as_i16()),
                Arg::from(StreamState::Expiring.as_i16()),
            ])
            .push(" AND claim_until < ")
            .bind(micros(wall_now));
        self.write_one(&sql).await
    }

    async fn stream_events(&self, stream_id: StreamId) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.backend.read().await?;
        let mut heads = Sql::new(format!(
            "SELECT {EVENT_COLS} FROM stream_event se JOIN event e ON e.id = se.event_id \
             JOIN event_type et ON et.id = e.event_type_id WHERE se.stream_id = "
        ));
        heads
            .bind(stream_id)
            .push(" ORDER BY se.generated, se.event_id");
        let heads = conn.fetch(&heads).await?;
        Self::load_events(&mut conn, heads).await
    }

    async fn stream_message_ids(
        &self,
        streams: &[StreamId],
    ) -> Result<BTreeMap<StreamId, Vec<String>>, StoreError> {
        let mut out: BTreeMap<StreamId, Vec<String>> = BTreeMap::new();
        let mut conn = self.backend.read().await?;
        for chunk in streams.chunks(1000) {
            let mut sql = Sql::new(
                "SELECT se.stream_id, e.message_id FROM stream_event se \
                 JOIN event e ON e.id = se.event_id WHERE se.stream_id IN ",
            );
            sql.bind_tuple(chunk.iter().map(|id| Arg::Int(*id)))
                .push(" ORDER BY se.stream_id, se.generated, se.event_id");
            for r in conn.fetch(&sql).await? {
                out.entry(r.int(0)?).or_default().push(r.text(1)?);
            }
        }
        Ok(out)
    }

    async fn finish_stream(
        &self,
        stream_id: StreamId,
        serial: i64,
        outcome: Outcome,
    ) -> Result<bool, StoreError> {
        retrying(move || self.finish_once(stream_id, serial, outcome)).await
    }

    async fn finish_streams(
        &self,
        runs: &[(StreamId, i64, Outcome)],
    ) -> Result<Vec<bool>, StoreError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        retrying(move || self.finish_many_once(runs)).await
    }

    async fn trim_events(&self, older_than: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        retrying(move || self.trim_once(older_than, limit)).await
    }

    async fn get_stream(&self, id: StreamId) -> Result<Option<Stream>, StoreError> {
        let mut conn = self.backend.read().await?;
        let mut sql = Sql::new(format!("SELECT {STREAM_COLS} FROM stream WHERE id = "));
        sql.bind(id);
        let rows = conn.fetch(&sql).await?;
        rows.first()
            .map(|r| stream_from_row(r).map(|s| s.stream))
            .transpose()
    }

    async fn find_streams(&self, query: &StreamQuery) -> Result<Vec<Stream>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {STREAM_COLS} FROM stream"));
        push_stream_filters(&mut sql, query, B::TRAIT_EQUALITY_AS_IN);
        push_page(&mut sql, &query.page, "id");
        let mut conn = self.backend.read().await?;
        streams_from_rows(&conn.fetch(&sql).await?)
    }

    async fn streams_events(
        &self,
        ids: &[StreamId],
        window: EventWindow,
    ) -> Result<BTreeMap<StreamId, Vec<StoredEvent>>, StoreError> {
        if ids.is_empty() || window.limit == Some(0) {
            return Ok(BTreeMap::new());
        }
        let args: Vec<Arg<'_>> = ids.iter().map(|&id| Arg::Int(id)).collect();
        let mut conn = self.backend.read().await?;
        // Memberships in stream time order, then the events and their traits, each
        // once however many of the streams hold them. A window numbers each stream's
        // memberships in the database (ROW_NUMBER, MariaDB ≥ 10.2, SQLite ≥ 3.25) so
        // only the rows asked for leave it. Its bounds are integers, written inline.
        let (members, tail) = if window == EventWindow::ALL {
            (
                Sql::new("SELECT stream_id, event_id FROM stream_event WHERE stream_id IN "),
                " ORDER BY stream_id, generated, event_id".to_string(),
            )
        } else {
            let upper = match window.limit {
                Some(limit) => format!(" AND rn <= {}", window.offset.saturating_add(limit)),
                None => String::new(),
            };
            (
                Sql::new(
                    "SELECT stream_id, event_id FROM (SELECT stream_id, event_id, generated, \
                     ROW_NUMBER() OVER (PARTITION BY stream_id ORDER BY generated, event_id) \
                     AS rn FROM stream_event WHERE stream_id IN ",
                ),
                format!(
                    ") w WHERE rn > {}{upper} ORDER BY stream_id, generated, event_id",
                    window.offset
                ),
            )
        };
        let members = conn
            .fetch_all(&in_statements(&members, &tail, args, B::LIMITS))
            .await?;
        let mut order: Vec<(StreamId, i64)> = Vec::with_capacity(members.len());
        let mut event_ids: Vec<i64> = Vec::with_capacity(members.len());
        for r in &members {
            let (stream_id, event_id) = (r.int(0)?, r.int(1)?);
            order.push((stream_id, event_id));
            event_ids.push(event_id);
        }
        event_ids.sort_unstable();
        event_ids.dedup();
        let ids_args: Vec<Arg<'_>> = event_ids.iter().map(|&id| Arg::Int(id)).collect();
        let heads = Sql::new(format!(
            "SELECT {EVENT_COLS} FROM event e JOIN event_type et ON et.id = e.event_type_id \
             WHERE e.id IN "
        ));
        let heads = conn
            .fetch_all(&in_statements(&heads, "", ids_args, B::LIMITS))
            .await?;
        let mut by_id: HashMap<i64, StoredEvent> = Self::load_events(&mut conn, heads)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        // An event is moved into the last stream that holds it and cloned for the
        // others (most events are in one stream).
        let mut uses: HashMap<i64, usize> = HashMap::with_capacity(by_id.len());
        for (_, event_id) in &order {
            *uses.entry(*event_id).or_default() += 1;
        }
        let mut out: BTreeMap<StreamId, Vec<StoredEvent>> = BTreeMap::new();
        for (stream_id, event_id) in order {
            let left = uses.get_mut(&event_id).map(|n| {
                *n -= 1;
                *n
            });
            let event = if left == Some(0) {
                by_id.remove(&event_id)
            } else {
                by_id.get(&event_id).cloned()
            };
            if let Some(e) = event {
                out.entry(stream_id).or_default().push(e);
            }
        }
        Ok(out)
    }

    async fn count_ready(&self, kind: ReadyKind, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let (states, col) = match kind {
            ReadyKind::Fire => (
                [StreamState::Active, StreamState::RetryFire],
                "fire_timestamp",
            ),
            ReadyKind::Expire => (
                [StreamState::Active, StreamState::RetryExpire],
                "expire_timestamp",
            ),
        };
        let mut sql = Sql::new("SELECT COUNT(*) FROM stream WHERE state IN ");
        sql.bind_tuple(states.map(|s| Arg::from(s.as_i16())))
            .push(&format!(" AND {col} < "))
            .bind(micros(now))
            .push(" AND (claim_until IS NULL OR claim_until < ")
            .bind(micros(Utc::now()))
            .push(")");
        let mut conn = self.backend.read().await?;
        count_from(&conn.fetch(&sql).await?)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // Three index seeks in one statement: (state, fire_timestamp),
        // (state, expire_timestamp), and whether any stream waits for a retry.
        let active = i64::from(StreamState::Active.as_i16());
        let mut sql = Sql::new("SELECT (SELECT fire_timestamp FROM stream WHERE state = ");
        sql.bind(active)
            .push(
                " AND fire_timestamp IS NOT NULL ORDER BY fire_timestamp LIMIT 1), \
                 (SELECT expire_timestamp FROM stream WHERE state = ",
            )
            .bind(active)
            .push(
                " AND expire_timestamp IS NOT NULL ORDER BY expire_timestamp LIMIT 1), \
                 (SELECT COUNT(*) FROM (SELECT 1 FROM stream WHERE state IN ",
            )
            .bind_tuple(
                [StreamState::RetryFire, StreamState::RetryExpire].map(|s| Arg::from(s.as_i16())),
            )
            .push(" LIMIT 1) r)");
        let mut conn = self.backend.read().await?;
        let rows = conn.fetch(&sql).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        if row.opt_int(2)?.unwrap_or(0) > 0 {
            return Ok(Some(DateTime::<Utc>::MIN_UTC));
        }
        let fire = row.opt_int(0)?.map(from_micros).transpose()?;
        let expire = row.opt_int(1)?.map(from_micros).transpose()?;
        Ok([fire, expire].into_iter().flatten().min())
    }

    async fn count_streams(&self, query: &StreamQuery) -> Result<u64, StoreError> {
        let mut sql = Sql::new("SELECT COUNT(*) FROM stream");
        push_stream_filters(&mut sql, query, B::TRAIT_EQUALITY_AS_IN);
        let mut conn = self.backend.read().await?;
        count_from(&conn.fetch(&sql).await?)
    }

    async fn delete_stream(&self, id: StreamId) -> Result<bool, StoreError> {
        retrying(move || self.delete_stream_tx(id, None)).await
    }

    async fn reset_stream(&self, id: StreamId) -> Result<Stream, StoreError> {
        retrying(move || self.reset_once(id)).await
    }

    async fn get_event(&self, message_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let mut sql = Sql::new(format!(
            "SELECT {EVENT_COLS} FROM event e JOIN event_type et ON et.id = e.event_type_id \
             WHERE e.message_id = "
        ));
        sql.bind(message_id);
        let mut conn = self.backend.read().await?;
        let heads = conn.fetch(&sql).await?;
        Ok(Self::load_events(&mut conn, heads)
            .await?
            .into_iter()
            .next())
    }

    async fn find_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.backend.read().await?;
        let typed = Self::stored_readings(&mut conn, query).await?;
        let query = typed.as_ref().unwrap_or(query);
        let mut sql = Sql::new(format!("SELECT {EVENT_COLS}"));
        push_event_filters(&mut sql, query, B::TRAIT_EQUALITY_AS_IN);
        push_page(&mut sql, &query.page, "e.id");
        let heads = conn.fetch(&sql).await?;
        Self::load_events(&mut conn, heads).await
    }

    async fn count_events(&self, query: &EventQuery) -> Result<u64, StoreError> {
        let mut conn = self.backend.read().await?;
        let typed = Self::stored_readings(&mut conn, query).await?;
        let query = typed.as_ref().unwrap_or(query);
        let mut sql = Sql::new("SELECT COUNT(*)");
        push_event_filters(&mut sql, query, B::TRAIT_EQUALITY_AS_IN);
        count_from(&conn.fetch(&sql).await?)
    }

    async fn event_types(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.backend.read().await?;
        let rows = conn
            .fetch(&Sql::new("SELECT name FROM event_type ORDER BY name"))
            .await?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    async fn trait_names(&self, event_type: &str) -> Result<Vec<(String, TraitType)>, StoreError> {
        let mut conn = self.backend.read().await?;
        tally::signatures::<B>(&mut conn, event_type).await
    }

    async fn stream_state_counts(&self) -> Result<Vec<(StreamState, u64)>, StoreError> {
        let mut conn = self.backend.read().await?;
        let rows = conn
            .fetch(&Sql::new(
                "SELECT state, COUNT(*) FROM stream GROUP BY state",
            ))
            .await?;
        let mut counts: Vec<(StreamState, u64)> =
            StreamState::ALL.iter().map(|&s| (s, 0)).collect();
        for r in &rows {
            let code = r.int(0)?;
            let n = u64::try_from(r.int(1)?).unwrap_or(0);
            match counts
                .iter_mut()
                .find(|(s, _)| i64::from(s.as_i16()) == code)
            {
                Some(slot) => slot.1 = n,
                None => return Err(StoreError::Corrupt(format!("unknown stream state {code}"))),
            }
        }
        Ok(counts)
    }

    async fn event_type_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut conn = self.backend.read().await?;
        tally::type_totals::<B>(&mut conn).await
    }

    async fn events_per_minute(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError> {
        let mut conn = self.backend.read().await?;
        tally::minutes::<B>(&mut conn, from, to).await
    }

    async fn events_per_day(
        &self,
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError> {
        let mut conn = self.backend.read().await?;
        tally::type_days::<B>(&mut conn, event_type, from, to).await
    }

    async fn pipeline_runs(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<tally::RunMinute>, StoreError> {
        let mut conn = self.backend.read().await?;
        tally::runs::<B>(&mut conn, from, to).await
    }

    async fn mark_collector(
        &self,
        name: &str,
        seen: DateTime<Utc>,
        generated: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        retrying(move || async move {
            let mut conn = self.backend.begin_write().await?;
            tally::mark_collector::<B>(&mut conn, name, seen, generated).await?;
            conn.commit().await
        })
        .await
    }

    async fn collectors(&self) -> Result<Vec<tally::CollectorSeen>, StoreError> {
        let mut conn = self.backend.read().await?;
        tally::collectors::<B>(&mut conn).await
    }
}

/// How a run that ended with `outcome` on a stream in `state` (its stored code) is
/// counted: completing an expiring stream is an expiry, any other a firing.
fn run_outcome(state: i64, outcome: &Outcome) -> tally::RunOutcome {
    let expiring = state == i64::from(StreamState::Expiring.as_i16())
        || state == i64::from(StreamState::RetryExpire.as_i16());
    match outcome {
        Outcome::Completed | Outcome::Purge if expiring => tally::RunOutcome::Expired,
        Outcome::Completed | Outcome::Purge => tally::RunOutcome::Fired,
        Outcome::Error => tally::RunOutcome::FireError,
        Outcome::ExpireError => tally::RunOutcome::ExpireError,
        Outcome::Retry { .. } => tally::RunOutcome::Retried,
    }
}

/// The UPDATE that records how a run on stream `id` (at `serial`) ended; `Purge`
/// deletes instead (see [`SqlStore::finish_once`]).
/// The SQLite indexes [`Store::drop_query_indexes`] drops: read by the API's and the
/// console's filters only (the migrations create them). `ix_event_generated` stays:
/// the trim reads it.
const QUERY_INDEXES: [&str; 14] = [
    "ix_event_type_generated",
    "ix_event_type_id",
    "ix_event_trait_string",
    "ix_event_trait_int",
    "ix_event_trait_float",
    "ix_event_trait_datetime",
    "ix_stream_name_state",
    "ix_stream_first_event",
    "ix_stream_last_event",
    "ix_stream_dist_string",
    "ix_stream_dist_int",
    "ix_stream_dist_float",
    "ix_stream_dist_datetime",
    "ix_stream_dist_range",
];

/// Adds `id` to the streams moving to `state`; true (the serial was checked).
fn push_to(to_state: &mut BTreeMap<i16, Vec<Arg<'_>>>, state: StreamState, id: StreamId) -> bool {
    to_state
        .entry(state.as_i16())
        .or_default()
        .push(Arg::Int(id));
    true
}

fn finish_update(id: StreamId, serial: i64, outcome: Outcome) -> Sql<'static> {
    let mut sql = Sql::new("UPDATE stream SET state = ");
    let state = match outcome {
        Outcome::Completed | Outcome::Purge => StreamState::Completed,
        Outcome::Error => StreamState::Error,
        Outcome::ExpireError => StreamState::ExpireError,
        Outcome::Retry { not_before } => {
            sql.push("CASE state WHEN ")
                .bind(StreamState::Expiring.as_i16())
                .push(" THEN ")
                .bind(StreamState::RetryExpire.as_i16())
                .push(" ELSE ")
                .bind(StreamState::RetryFire.as_i16())
                .push(" END, state_serial_no = state_serial_no + 1, claim_until = ")
                .bind(micros(not_before));
            StreamState::RetryFire
        }
    };
    if !matches!(outcome, Outcome::Retry { .. }) {
        sql.bind(state.as_i16())
            .push(", state_serial_no = state_serial_no + 1, claim_until = NULL");
    }
    sql.push(" WHERE id = ")
        .bind(id)
        .push(" AND state_serial_no = ")
        .bind(serial);
    sql
}

/// Trait rows `(event_id, name, type, t_string, t_int, t_float, t_datetime)` of an
/// event, appended to `args` (for the ingest's multi-row insert).
pub(crate) fn push_trait_rows<'a>(args: &mut Vec<Arg<'a>>, event_id: i64, event: &'a Event) {
    for (name, value) in &event.traits {
        args.push(Arg::Int(event_id));
        args.push(name.as_str().into());
        args.extend(trait_args(value));
    }
}
