//! The batched ingest transaction, written once for both backends.
//!
//! One transaction and a fixed number of statements per batch, whatever its size
//! (statements only split at the backend's bind/packet limits):
//! 1. which message_ids are already stored (`SELECT … IN`); duplicates within the
//!    batch are dropped first (the first occurrence wins);
//! 2. event type ids (cached per store; unknown names inserted-or-skipped, then
//!    selected);
//! 3. the new events (multi-row INSERT), their ids (`RETURNING`, or selected back by
//!    message_id: auto-increment ids are not assumed consecutive);
//! 4. their traits (multi-row INSERT);
//! 5. routing by the [`StreamRules`], grouped by stream key;
//! 6. the open streams of those keys (one SELECT, `FOR UPDATE` on MySQL); an open
//!    stream whose `expire_timestamp <= now` is closed for collection and replaced;
//! 7. bookkeeping folded in by the rules, written back in one upsert (closings too),
//!    then the new streams inserted (the unique `open_key` makes a racing creator
//!    fail, and the caller's retry joins the winner's stream);
//! 8. stream memberships and the new streams' distinguishing traits (multi-row).

use super::bookkeeping::{encode_counts, StreamBookkeeping};
use super::engine::{push_trait_rows, SqlStore};
use super::rows::{dist_args, micros, stream_from_row, StreamRow, STREAM_COLS};
use super::sql::{in_statements, values_statements, Arg, Backend, Conn, DbRow, Sql};
use super::tally::{self, EventTally, TraitSig};
use super::{DistinguishingTraits, IngestReport, StoreError, StreamId, StreamRules, StreamState};
use crate::event::Event;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What a transaction learned, to cache once it commits.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    /// Event type name → id.
    pub(crate) types: Vec<(String, i64)>,
    /// Trait signatures recorded.
    pub(crate) traits: Vec<TraitSig>,
}

/// Columns of a stream row as the ingest writes them.
const STREAM_WRITE_COLS: &str = "name, state, state_serial_no, first_event, last_event, \
     expire_timestamp, fire_timestamp, open_key, dist_traits, fire_counts, event_count";
/// What the write-back of an existing stream changes.
const STREAM_UPDATED_COLS: [&str; 7] = [
    "first_event",
    "last_event",
    "expire_timestamp",
    "fire_timestamp",
    "open_key",
    "fire_counts",
    "event_count",
];

/// The new events of one stream key.
#[derive(Debug)]
struct Group {
    trigger: Arc<str>,
    dist: DistinguishingTraits,
    key: String,
    /// Index into the fresh events, and that event's fire-criterion matches.
    members: Vec<(usize, Vec<bool>)>,
}

/// One stream row to write: an existing one (upserted by id) or a new one.
#[derive(Debug, Clone, PartialEq)]
struct StreamWrite {
    name: String,
    serial: i64,
    open_key: Option<String>,
    dist_json: String,
    bk: StreamBookkeeping,
}

impl StreamWrite {
    fn push_args(self, args: &mut Vec<Arg<'_>>) -> Result<(), StoreError> {
        let first = self.bk.first_event.map(micros).unwrap_or_default();
        let last = self.bk.last_event.map(micros).unwrap_or(first);
        args.push(self.name.into());
        args.push(StreamState::Active.as_i16().into());
        args.push(Arg::Int(self.serial));
        args.push(Arg::Int(first));
        args.push(Arg::Int(last));
        args.push(self.bk.expire_timestamp.map(micros).into());
        args.push(self.bk.fire_timestamp.map(micros).into());
        args.push(self.open_key.into());
        args.push(self.dist_json.into());
        args.push(encode_counts(&self.bk.fire_counts).into());
        args.push(Arg::Int(i64::try_from(self.bk.event_count).map_err(
            |_| StoreError::Rules(format!("event count {} out of range", self.bk.event_count)),
        )?));
        Ok(())
    }
}

/// What step 7 decided, before anything is written: the rows to write back (joined
/// streams, and open streams closed because they expired), the streams to create
/// (by group), and for each group the stream it joins when that is already known.
#[derive(Debug, Default)]
struct StreamPlan {
    updates: Vec<(StreamId, StreamWrite)>,
    creates: Vec<(usize, StreamWrite)>,
    targets: Vec<Option<StreamId>>,
}

fn bookkeeping_of(row: &StreamRow, fire_len: usize) -> StreamBookkeeping {
    let s = &row.stream;
    let mut fire_counts = s.fire_counts.clone();
    // A trigger whose fire criteria changed since the stream was created.
    fire_counts.resize(fire_len, 0);
    StreamBookkeeping {
        first_event: Some(s.first_event),
        last_event: Some(s.last_event),
        expire_timestamp: s.expire_timestamp,
        fire_timestamp: s.fire_timestamp,
        fire_counts,
        event_count: s.event_count,
    }
}

/// Inserts rows into `table` and returns `key_col → id` for them.
async fn insert_returning_ids<'a, B: Backend>(
    conn: &mut B::Conn,
    table: &str,
    cols: &str,
    width: usize,
    args: Vec<Arg<'a>>,
    key_col: &str,
    keys: Vec<Arg<'a>>,
) -> Result<HashMap<String, i64>, StoreError> {
    let head = format!("INSERT INTO {table} ({cols})");
    let rows = if B::RETURNING {
        let tail = format!(" RETURNING id, {key_col}");
        conn.fetch_all(&values_statements(&head, &tail, width, args, B::LIMITS))
            .await?
    } else {
        conn.execute_all(&values_statements(&head, "", width, args, B::LIMITS))
            .await?;
        let prefix = Sql::new(format!(
            "SELECT id, {key_col} FROM {table} WHERE {key_col} IN "
        ));
        conn.fetch_all(&in_statements(&prefix, "", keys, B::LIMITS))
            .await?
    };
    rows.iter().map(|r| Ok((r.text(1)?, r.int(0)?))).collect()
}

/// Event type ids for `names`, from the cache or the database.
async fn event_type_ids<B: Backend>(
    store: &SqlStore<B>,
    conn: &mut B::Conn,
    names: HashSet<&str>,
) -> Result<(HashMap<String, i64>, Vec<(String, i64)>), StoreError> {
    let mut ids = HashMap::with_capacity(names.len());
    let mut missing = Vec::new();
    {
        let cache = store.type_ids.lock().ok();
        for name in names {
            match cache.as_ref().and_then(|c| c.get(name)) {
                Some(&id) => {
                    ids.insert(name.to_string(), id);
                }
                None => missing.push(name),
            }
        }
    }
    if missing.is_empty() {
        return Ok((ids, Vec::new()));
    }
    let args: Vec<Arg> = missing.iter().map(|n| Arg::from(*n)).collect();
    let insert = values_statements(
        "INSERT INTO event_type (name)",
        B::ON_CONFLICT_SKIP,
        1,
        args.clone(),
        B::LIMITS,
    );
    conn.execute_all(&insert).await?;
    let prefix = Sql::new("SELECT id, name FROM event_type WHERE name IN ");
    let rows = conn
        .fetch_all(&in_statements(&prefix, "", args, B::LIMITS))
        .await?;
    let mut learned = Vec::with_capacity(rows.len());
    for r in &rows {
        learned.push((r.text(1)?, r.int(0)?));
    }
    ids.extend(learned.iter().cloned());
    if let Some(name) = missing.iter().find(|n| !ids.contains_key(**n)) {
        return Err(StoreError::Database(format!(
            "event type {name:?} was not stored"
        )));
    }
    Ok((ids, learned))
}

/// "Now" for an ingest: one instant for the whole batch (live), or each event's own
/// (a replay's clock when that event arrived, non-decreasing).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clocks<'a> {
    At(DateTime<Utc>),
    PerEvent(&'a [DateTime<Utc>]),
}

/// One attempt at the ingest transaction (the caller retries transient failures):
/// the steps of the module's documentation, in order. Returns the report, what was
/// learned, and how many of `events` were consumed: all of them, except with
/// per-event clocks, where the batch stops before the first event that a pipeline
/// pass would have had to precede ([`replay_cut`]).
pub(crate) async fn ingest_once<B: Backend>(
    store: &SqlStore<B>,
    events: &[Event],
    rules: &dyn StreamRules,
    clocks: Clocks<'_>,
) -> Result<(IngestReport, Learned, usize), StoreError> {
    let mut report = IngestReport::default();
    let batch = first_occurrences(events);
    let mut conn = store.backend.begin_write().await?;

    let mut fresh = not_yet_stored::<B>(&mut conn, batch).await?;
    let mut consumed = events.len();
    let mut times = Vec::new();
    // The cut routed the batch and read its open streams already: nothing was
    // written since, so what it read holds for the part that goes through.
    let mut routed = None;
    if let Clocks::PerEvent(per_event) = clocks {
        let (cut, fresh_times, groups, open) =
            replay_cut::<B>(&mut conn, events, &fresh, per_event, rules).await?;
        consumed = cut.consumed;
        fresh.truncate(cut.fresh);
        times = fresh_times;
        times.truncate(cut.fresh);
        routed = Some((members_before(groups, cut.fresh), open));
    }
    let now_of = |i: usize| match clocks {
        Clocks::At(now) => now,
        Clocks::PerEvent(_) => times[i],
    };
    report.duplicates = (consumed - fresh.len()) as u64;
    report.stored = fresh.len() as u64;
    if fresh.is_empty() {
        conn.commit().await?;
        return Ok((report, Learned::default(), consumed));
    }
    let (event_ids, type_of, types) = insert_events(store, &mut conn, &fresh).await?;

    let (groups, open) = match routed {
        Some(known) => known,
        None => {
            let groups = route(&fresh, rules);
            let open = if groups.is_empty() {
                HashMap::new()
            } else {
                lock_open_streams::<B>(&mut conn, &groups).await?
            };
            (groups, open)
        }
    };
    if !groups.is_empty() {
        let plan = plan_streams(&groups, open, &fresh, rules, &now_of, &mut report)?;
        let (targets, created) = write_streams::<B>(&mut conn, &groups, plan).await?;
        insert_memberships::<B>(
            &mut conn,
            &groups,
            &targets,
            &fresh,
            &event_ids,
            &mut report,
        )
        .await?;
        insert_dist_traits::<B>(&mut conn, &groups, &targets, &created).await?;
    }
    let traits = count_events(store, &mut conn, &fresh, &type_of).await?;

    conn.commit().await?;
    Ok((report, Learned { types, traits }, consumed))
}

/// Where a replay batch stops: after `consumed` input events, of which the first
/// `fresh` fresh ones are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    consumed: usize,
    fresh: usize,
}

/// The replay's batch boundary. Replayed one at a time, every notification is
/// preceded by a pipeline pass at its clock, which runs the streams due strictly
/// before it (a due stream at the same instant is not claimed, but the ingest closes
/// an open stream whose expiry is at or before its clock). A batch is exact while
/// no stream it writes becomes due at or before a later event's clock: the stream
/// bookkeeping is planned event by event (each with its own clock) without writing,
/// and the batch stops before the first event that sees such a stream. The first
/// event is always taken (the caller ran the passes due before it), and the caller
/// stops the batch before any event at or past the earliest due stream already
/// stored. Returns the cut, the clocks of the fresh events, and their routing and
/// open streams (for all of them: [`members_before`] keeps the part cut to).
async fn replay_cut<B: Backend>(
    conn: &mut B::Conn,
    events: &[Event],
    fresh: &[&Event],
    per_event: &[DateTime<Utc>],
    rules: &dyn StreamRules,
) -> Result<CutRead, StoreError> {
    // Fresh events are first occurrences in input order: their input positions.
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        position.entry(e.message_id.as_str()).or_insert(i);
    }
    let at: Vec<usize> = fresh
        .iter()
        .map(|e| position.get(e.message_id.as_str()).copied().unwrap_or(0))
        .collect();
    let times: Vec<DateTime<Utc>> = at
        .iter()
        .map(|&i| {
            per_event
                .get(i)
                .copied()
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        })
        .collect();
    let groups = route(fresh, rules);
    let mut cut = fresh.len();
    let mut open = HashMap::new();
    if !groups.is_empty() {
        open = lock_open_streams::<B>(conn, &groups).await?;
        let mut scratch = IngestReport::default();
        let mut due_after = |fresh_index: usize, due: DateTime<Utc>| {
            let later = &times[fresh_index + 1..];
            cut = cut.min(fresh_index + 1 + later.partition_point(|t| *t < due));
        };
        plan_streams_watching(
            &groups,
            open.clone(),
            fresh,
            rules,
            &|i| times[i],
            &mut scratch,
            Some(&mut due_after),
        )?;
    }
    let consumed = match at.get(cut) {
        Some(&input) => input,
        None => events.len(),
    };
    Ok((
        Cut {
            consumed: consumed.max(1),
            fresh: cut,
        },
        times,
        groups,
        open,
    ))
}

/// What [`replay_cut`] returns.
type CutRead = (
    Cut,
    Vec<DateTime<Utc>>,
    Vec<Group>,
    HashMap<String, StreamRow>,
);

/// `groups` as [`route`] makes them for the first `n` fresh events: routing is per
/// event and groups come in the order of their first member, so dropping the later
/// members (and the groups left empty) is the same as routing the prefix.
fn members_before(groups: Vec<Group>, n: usize) -> Vec<Group> {
    groups
        .into_iter()
        .filter_map(|mut g| {
            g.members.retain(|(i, _)| *i < n);
            (!g.members.is_empty()).then_some(g)
        })
        .collect()
}

/// Step 9, last so that its hot counter rows are locked for the shortest time: the
/// console's counters and trait signatures ([`super::tally`]). Returns the signatures
/// recorded.
async fn count_events<B: Backend>(
    store: &SqlStore<B>,
    conn: &mut B::Conn,
    fresh: &[&Event],
    type_of: &[i64],
) -> Result<Vec<TraitSig>, StoreError> {
    let mut counts = EventTally::default();
    for (e, &t) in fresh.iter().zip(type_of) {
        counts.add(t, micros(e.timestamp), 1);
    }
    counts.write::<B>(conn, shard_of::<B>(fresh)).await?;
    let sigs = match store.trait_sigs.lock() {
        Ok(known) => tally::new_signatures(fresh, type_of, &known),
        Err(_) => tally::new_signatures(fresh, type_of, &Default::default()),
    };
    tally::write_signatures::<B>(conn, &sigs).await?;
    Ok(sigs)
}

/// The counter shard a batch writes to: from its first message id, so concurrent
/// batches spread without a random number generator.
pub(crate) fn shard_of<B: Backend>(fresh: &[&Event]) -> i64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Some(e) = fresh.first() {
        e.message_id.hash(&mut h);
    }
    (h.finish() % B::TALLY_SHARDS.max(1) as u64) as i64
}

/// The batch without repeated message_ids (the first occurrence wins).
fn first_occurrences(events: &[Event]) -> Vec<&Event> {
    let mut seen = HashSet::with_capacity(events.len());
    events
        .iter()
        .filter(|e| seen.insert(e.message_id.as_str()))
        .collect()
}

/// Step 1: the events whose message_id is not stored yet.
async fn not_yet_stored<'e, B: Backend>(
    conn: &mut B::Conn,
    batch: Vec<&'e Event>,
) -> Result<Vec<&'e Event>, StoreError> {
    let prefix = Sql::new("SELECT message_id FROM event WHERE message_id IN ");
    let keys: Vec<Arg> = batch.iter().map(|e| e.message_id.as_str().into()).collect();
    let existing = conn
        .fetch_all(&in_statements(&prefix, "", keys, B::LIMITS))
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<HashSet<String>, _>>()?;
    Ok(batch
        .into_iter()
        .filter(|e| !existing.contains(&e.message_id))
        .collect())
}

/// Steps 2 to 4: event types, the events and traits. Returns the events' ids and
/// type ids (in `fresh` order) and the event types learned.
async fn insert_events<B: Backend>(
    store: &SqlStore<B>,
    conn: &mut B::Conn,
    fresh: &[&Event],
) -> Result<(Vec<i64>, Vec<i64>, Vec<(String, i64)>), StoreError> {
    let names = fresh.iter().map(|e| e.event_type.as_str()).collect();
    let (type_ids, learned) = event_type_ids(store, conn, names).await?;

    let mut args = Vec::with_capacity(fresh.len() * 3);
    let mut keys = Vec::with_capacity(fresh.len());
    let mut type_of = Vec::with_capacity(fresh.len());
    for e in fresh {
        let type_id = type_ids.get(&e.event_type).copied().unwrap_or_default();
        type_of.push(type_id);
        args.push(e.message_id.as_str().into());
        args.push(Arg::Int(type_id));
        args.push(Arg::Int(micros(e.timestamp)));
        keys.push(e.message_id.as_str().into());
    }
    let by_message = insert_returning_ids::<B>(
        conn,
        "event",
        "message_id, event_type_id, generated",
        3,
        args,
        "message_id",
        keys,
    )
    .await?;
    let event_ids = fresh
        .iter()
        .map(|e| {
            by_message.get(&e.message_id).copied().ok_or_else(|| {
                StoreError::Database(format!("event {:?} was not stored", e.message_id))
            })
        })
        .collect::<Result<Vec<i64>, _>>()?;

    let mut args = Vec::new();
    for (e, &id) in fresh.iter().zip(&event_ids) {
        push_trait_rows(&mut args, id, e);
    }
    conn.execute_all(&values_statements(
        "INSERT INTO event_trait (event_id, name, type, t_string, t_int, t_float, t_datetime)",
        "",
        7,
        args,
        B::LIMITS,
    ))
    .await?;
    Ok((event_ids, type_of, learned))
}

/// Step 5: the fresh events grouped by the stream key the rules route them to, in
/// order of first appearance.
fn route(fresh: &[&Event], rules: &dyn StreamRules) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (i, e) in fresh.iter().enumerate() {
        for route in rules.route(e) {
            match by_key.get(&route.key) {
                Some(&g) => groups[g].members.push((i, route.fire_matches)),
                None => {
                    by_key.insert(route.key.clone(), groups.len());
                    groups.push(Group {
                        trigger: route.trigger_name,
                        dist: route.distinguishing_traits,
                        key: route.key,
                        members: vec![(i, route.fire_matches)],
                    });
                }
            }
        }
    }
    groups
}

/// Step 6: the open streams of the groups' keys, by key (locked on MySQL).
async fn lock_open_streams<B: Backend>(
    conn: &mut B::Conn,
    groups: &[Group],
) -> Result<HashMap<String, StreamRow>, StoreError> {
    let prefix = Sql::new(format!(
        "SELECT {STREAM_COLS} FROM stream WHERE open_key IN "
    ));
    let keys: Vec<Arg> = groups.iter().map(|g| g.key.as_str().into()).collect();
    let mut open = HashMap::new();
    for r in conn
        .fetch_all(&in_statements(&prefix, B::FOR_UPDATE, keys, B::LIMITS))
        .await?
    {
        let row = stream_from_row(&r)?;
        if let Some(key) = row.open_key.clone() {
            open.insert(key, row);
        }
    }
    Ok(open)
}

/// Step 7, the stream bookkeeping, without the database: each group joins its open
/// stream unless that one's expiry has passed (then it is closed for collection and
/// a new stream is created), the rules fold the group's events in, and the report
/// counts new and newly ready streams. `now_of(i)` is "now" for fresh event `i`.
fn plan_streams(
    groups: &[Group],
    open: HashMap<String, StreamRow>,
    fresh: &[&Event],
    rules: &dyn StreamRules,
    now_of: &dyn Fn(usize) -> DateTime<Utc>,
    report: &mut IngestReport,
) -> Result<StreamPlan, StoreError> {
    plan_streams_watching(groups, open, fresh, rules, now_of, report, None)
}

/// A stream's earliest due time after an event, told to the replay's cut.
type DueWatcher<'a> = &'a mut dyn FnMut(usize, DateTime<Utc>);

/// [`plan_streams`]; with a watcher, the events are folded in one at a time (each
/// with its own now) and the watcher hears, after each, the fresh index and the
/// stream's earliest fire or expire time.
fn plan_streams_watching(
    groups: &[Group],
    mut open: HashMap<String, StreamRow>,
    fresh: &[&Event],
    rules: &dyn StreamRules,
    now_of: &dyn Fn(usize) -> DateTime<Utc>,
    report: &mut IngestReport,
    mut watch: Option<DueWatcher<'_>>,
) -> Result<StreamPlan, StoreError> {
    let mut plan = StreamPlan {
        targets: vec![None; groups.len()],
        ..StreamPlan::default()
    };
    let mut closed = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let appended: Vec<(DateTime<Utc>, &[bool])> = g
            .members
            .iter()
            .map(|(i, m)| (fresh[*i].timestamp, m.as_slice()))
            .collect();
        let first = g.members.first().map(|(i, _)| *i).unwrap_or_default();
        let now = now_of(first);
        let fire_len = g.members.first().map_or(0, |(_, m)| m.len());
        let counts = report.per_trigger.entry(g.trigger.to_string()).or_default();
        counts.added_events += g.members.len() as u64;
        let joined = match open.remove(&g.key) {
            Some(row) if row.stream.expire_timestamp.is_none_or(|t| t > now) => Some(row),
            Some(row) => {
                closed.push(row);
                None
            }
            None => None,
        };
        let (mut bk, dist_json, serial) = match &joined {
            Some(row) => (
                bookkeeping_of(row, fire_len),
                row.dist_json.clone(),
                row.stream.state_serial_no,
            ),
            None => (
                StreamBookkeeping {
                    fire_counts: vec![0; fire_len],
                    ..StreamBookkeeping::default()
                },
                serde_json::to_string(&g.dist)
                    .map_err(|e| StoreError::Rules(format!("distinguishing traits: {e}")))?,
                0,
            ),
        };
        let was_ready = bk.fire_timestamp.is_some();
        let per_event = watch.is_some() || g.members.iter().any(|(i, _)| now_of(*i) != now);
        if per_event {
            for ((i, _), one) in g.members.iter().zip(appended.chunks(1)) {
                rules.update(&g.trigger, &mut bk, one, now_of(*i));
                if let (Some(w), Some(due)) = (
                    watch.as_mut(),
                    [bk.fire_timestamp, bk.expire_timestamp]
                        .into_iter()
                        .flatten()
                        .min(),
                ) {
                    w(*i, due);
                }
            }
        } else {
            rules.update(&g.trigger, &mut bk, &appended, now);
        }
        if bk.first_event.is_none() {
            bk.first_event = appended.iter().map(|a| a.0).min();
        }
        if bk.last_event.is_none() {
            bk.last_event = appended.iter().map(|a| a.0).max();
        }
        if !was_ready && bk.fire_timestamp.is_some() {
            counts.ready_to_fire += 1;
            report.streams_ready += 1;
        }
        report.earliest_due = earliest(report.earliest_due, &bk);
        let write = StreamWrite {
            name: g.trigger.to_string(),
            serial,
            open_key: Some(g.key.clone()),
            dist_json,
            bk,
        };
        match joined {
            Some(row) => {
                plan.targets[gi] = Some(row.stream.id);
                plan.updates.push((row.stream.id, write));
            }
            None => {
                counts.new_streams += 1;
                report.streams_created += 1;
                plan.creates.push((gi, write));
            }
        }
    }
    for row in closed {
        let bk = bookkeeping_of(&row, row.stream.fire_counts.len());
        report.earliest_due = earliest(report.earliest_due, &bk);
        plan.updates.push((
            row.stream.id,
            StreamWrite {
                name: row.stream.name,
                serial: row.stream.state_serial_no,
                open_key: None,
                dist_json: row.dist_json,
                bk,
            },
        ));
    }
    Ok(plan)
}

/// The least of `so_far` and a stream's fire and expire timestamps.
fn earliest(so_far: Option<DateTime<Utc>>, bk: &StreamBookkeeping) -> Option<DateTime<Utc>> {
    [so_far, bk.fire_timestamp, bk.expire_timestamp]
        .into_iter()
        .flatten()
        .min()
}

/// The plan written: joined and closed streams upserted (before the inserts, which
/// may reuse a closed stream's open_key), then the new streams inserted. Returns the
/// stream each group's events go to, and the groups whose stream was created.
async fn write_streams<B: Backend>(
    conn: &mut B::Conn,
    groups: &[Group],
    plan: StreamPlan,
) -> Result<(Vec<Option<StreamId>>, Vec<usize>), StoreError> {
    let StreamPlan {
        updates,
        creates,
        mut targets,
    } = plan;
    if !updates.is_empty() {
        let mut args = Vec::with_capacity(updates.len() * 13);
        for (id, write) in updates {
            args.push(Arg::Int(id));
            write.push_args(&mut args)?;
            args.push(Arg::Null); // claim_until
        }
        let head = format!("INSERT INTO stream (id, {STREAM_WRITE_COLS}, claim_until)");
        let tail = B::upsert_tail("id", &STREAM_UPDATED_COLS);
        conn.execute_all(&values_statements(&head, &tail, 13, args, B::LIMITS))
            .await?;
    }
    let mut created = Vec::with_capacity(creates.len());
    if !creates.is_empty() {
        let mut args = Vec::with_capacity(creates.len() * 11);
        let mut keys = Vec::with_capacity(creates.len());
        for (gi, write) in creates {
            keys.push(groups[gi].key.as_str().into());
            created.push(gi);
            write.push_args(&mut args)?;
        }
        let ids = insert_returning_ids::<B>(
            conn,
            "stream",
            STREAM_WRITE_COLS,
            11,
            args,
            "open_key",
            keys,
        )
        .await?;
        for &gi in &created {
            let id = ids.get(&groups[gi].key).copied().ok_or_else(|| {
                StoreError::Database(format!("stream {} was not stored", groups[gi].key))
            })?;
            targets[gi] = Some(id);
        }
    }
    Ok((targets, created))
}

/// Step 8: stream memberships.
async fn insert_memberships<B: Backend>(
    conn: &mut B::Conn,
    groups: &[Group],
    targets: &[Option<StreamId>],
    fresh: &[&Event],
    event_ids: &[i64],
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    let mut args = Vec::new();
    for (g, target) in groups.iter().zip(targets) {
        let Some(stream_id) = *target else { continue };
        for (i, _) in &g.members {
            args.push(Arg::Int(stream_id));
            args.push(Arg::Int(event_ids[*i]));
            args.push(Arg::Int(micros(fresh[*i].timestamp)));
            report.stream_events += 1;
        }
    }
    conn.execute_all(&values_statements(
        "INSERT INTO stream_event (stream_id, event_id, generated)",
        "",
        3,
        args,
        B::LIMITS,
    ))
    .await?;
    Ok(())
}

/// Step 8, continued: the distinguishing traits of the streams just created.
async fn insert_dist_traits<B: Backend>(
    conn: &mut B::Conn,
    groups: &[Group],
    targets: &[Option<StreamId>],
    created: &[usize],
) -> Result<(), StoreError> {
    let mut args = Vec::new();
    for &gi in created {
        let Some(stream_id) = targets[gi] else {
            continue;
        };
        for (name, value) in &groups[gi].dist {
            args.push(Arg::Int(stream_id));
            args.push(name.as_str().into());
            args.extend(dist_args(value));
        }
    }
    conn.execute_all(&values_statements(
        "INSERT INTO stream_dist_trait \
         (stream_id, name, type, dt_string, dt_int, dt_float, dt_datetime, dt_begin, dt_end)",
        "",
        9,
        args,
        B::LIMITS,
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TraitValue;
    use crate::store::{DistValue, Route, Stream};
    use chrono::{Duration, TimeZone};
    use std::collections::BTreeMap;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    /// Counts events, fires at two matches of the first criterion (at `now`), expires
    /// an hour after the last event.
    struct Rules;

    impl StreamRules for Rules {
        fn route(&self, _event: &Event) -> Vec<Route> {
            Vec::new()
        }
        fn update(
            &self,
            _trigger: &str,
            bk: &mut StreamBookkeeping,
            appended: &[(DateTime<Utc>, &[bool])],
            now: DateTime<Utc>,
        ) {
            for (t, matches) in appended {
                bk.first_event = Some(bk.first_event.map_or(*t, |f| f.min(*t)));
                bk.last_event = Some(bk.last_event.map_or(*t, |l| l.max(*t)));
                bk.event_count += 1;
                for (c, m) in bk.fire_counts.iter_mut().zip(matches.iter()) {
                    *c += u32::from(*m);
                }
            }
            bk.expire_timestamp = bk.last_event.map(|l| l + Duration::hours(1));
            if bk.fire_timestamp.is_none() && bk.fire_counts.first().is_some_and(|c| *c >= 2) {
                bk.fire_timestamp = Some(now);
            }
        }
    }

    fn event(id: &str, s: i64) -> Event {
        let mut traits = BTreeMap::new();
        traits.insert("instance_id".into(), TraitValue::Text("i-1".into()));
        Event {
            event_type: "compute.instance.update".into(),
            message_id: id.into(),
            timestamp: at(s),
            traits,
        }
    }

    fn group(key: &str, members: &[(usize, bool)]) -> Group {
        let mut dist = DistinguishingTraits::new();
        dist.insert("instance_id".into(), DistValue::Text("i-1".into()));
        Group {
            trigger: Arc::from("test"),
            dist,
            key: key.into(),
            members: members.iter().map(|(i, m)| (*i, vec![*m])).collect(),
        }
    }

    fn open_row(id: StreamId, key: &str, last: i64, count: u64, fired: u32) -> StreamRow {
        StreamRow {
            stream: Stream {
                id,
                name: "test".into(),
                state: StreamState::Active,
                state_serial_no: 3,
                first_event: at(0),
                last_event: at(last),
                expire_timestamp: Some(at(last) + Duration::hours(1)),
                fire_timestamp: None,
                distinguishing_traits: Default::default(),
                fire_counts: vec![fired],
                event_count: count,
                claim_until: None,
            },
            dist_json: r#"{"instance_id":"i-1"}"#.into(),
            open_key: Some(key.into()),
        }
    }

    #[test]
    fn a_group_without_an_open_stream_creates_one() {
        let events = [event("a", 10), event("b", 5)];
        let fresh: Vec<&Event> = events.iter().collect();
        let groups = [group("k1", &[(0, false), (1, false)])];
        let mut report = IngestReport::default();
        let plan = plan_streams(
            &groups,
            HashMap::new(),
            &fresh,
            &Rules,
            &|_| at(20),
            &mut report,
        )
        .unwrap();
        assert!(plan.updates.is_empty());
        assert_eq!(plan.targets, vec![None]);
        let (gi, write) = &plan.creates[0];
        assert_eq!(*gi, 0);
        assert_eq!(write.open_key.as_deref(), Some("k1"));
        assert_eq!((write.serial, write.bk.event_count), (0, 2));
        assert_eq!(
            (write.bk.first_event, write.bk.last_event),
            (Some(at(5)), Some(at(10)))
        );
        let dist: DistinguishingTraits = serde_json::from_str(&write.dist_json).unwrap();
        assert_eq!(
            dist, groups[0].dist,
            "the group's distinguishing traits, as JSON"
        );
        assert_eq!(report.streams_created, 1);
        assert_eq!(report.per_trigger["test"].new_streams, 1);
        assert_eq!(report.per_trigger["test"].added_events, 2);
        assert_eq!(report.streams_ready, 0);
    }

    #[test]
    fn a_group_joins_its_open_stream_and_may_make_it_ready() {
        let events = [event("c", 30)];
        let fresh: Vec<&Event> = events.iter().collect();
        let groups = [group("k1", &[(0, true)])];
        let mut open = HashMap::new();
        open.insert("k1".to_string(), open_row(7, "k1", 20, 4, 1));
        let mut report = IngestReport::default();
        let plan = plan_streams(&groups, open, &fresh, &Rules, &|_| at(40), &mut report).unwrap();
        assert!(plan.creates.is_empty());
        assert_eq!(plan.targets, vec![Some(7)]);
        let (id, write) = &plan.updates[0];
        assert_eq!(*id, 7);
        assert_eq!(write.serial, 3, "the row's serial, unchanged");
        assert_eq!(write.bk.event_count, 5);
        assert_eq!(write.bk.fire_counts, vec![2]);
        assert_eq!(write.bk.fire_timestamp, Some(at(40)));
        assert_eq!(write.open_key.as_deref(), Some("k1"));
        assert_eq!((report.streams_ready, report.streams_created), (1, 0));
        assert_eq!(report.per_trigger["test"].ready_to_fire, 1);
    }

    #[test]
    fn an_expired_open_stream_is_closed_and_replaced() {
        let events = [event("d", 9000)];
        let fresh: Vec<&Event> = events.iter().collect();
        let groups = [group("k1", &[(0, false)])];
        let mut open = HashMap::new();
        // Last event at 20 s: it expired at 1 h 20 s; now is 2.5 h.
        open.insert("k1".to_string(), open_row(7, "k1", 20, 4, 0));
        let mut report = IngestReport::default();
        let plan = plan_streams(&groups, open, &fresh, &Rules, &|_| at(9000), &mut report).unwrap();
        assert_eq!(
            plan.targets,
            vec![None],
            "the new stream's id comes from the insert"
        );
        let (id, closed) = &plan.updates[0];
        assert_eq!(*id, 7);
        assert_eq!(closed.open_key, None, "closed for collection");
        assert_eq!(closed.bk.event_count, 4, "unchanged");
        let (gi, created) = &plan.creates[0];
        assert_eq!(*gi, 0);
        assert_eq!(created.open_key.as_deref(), Some("k1"));
        assert_eq!(created.bk.event_count, 1);
        assert_eq!(report.streams_created, 1);
    }

    #[test]
    fn repeated_message_ids_keep_the_first() {
        let events = [event("a", 1), event("b", 2), event("a", 3)];
        let kept: Vec<i64> = first_occurrences(&events)
            .iter()
            .map(|e| e.timestamp.timestamp() - at(0).timestamp())
            .collect();
        assert_eq!(kept, vec![1, 2]);
    }
}
