//! Dry-running trigger and pipeline definitions over recorded notifications
//! (`stv3 replay`): the original had no way to do it.
//!
//! Notifications are replayed in the original's order: the [`FollowingClock`] moves to
//! each notification's timestamp, the pipeline worker runs until nothing is ready, and
//! then the notification is stored. Streams fire and expire when the replayed time
//! passes their fire or expire timestamp, before the next notification arrives, as
//! they would have live with workers that poll often (docs/architecture.md, "Time"). With `expire`, the clock is finally moved past every
//! expiration and the worker runs again. Notabene handlers record what they would have
//! published instead of publishing.

use super::clock::{Clock, FollowingClock};
use super::config::LoadedConfig;
use super::engine::{Engine, EngineError};
use super::ingest::TriggerManager;
use crate::event::{format_datetime, Event};
use crate::notabene::RecordingSink;
use crate::store::{DistValue, Page, Store, StoreError, StreamQuery};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread reading and distilling the input could not start or stopped early.
    #[error("reading the notifications: {0}")]
    Reader(String),
}

/// What a long replay reports as it goes (see [`ReplayOptions::progress`]).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Notifications read so far.
    pub notifications: u64,
    /// Events stored so far.
    pub stored: u64,
    /// The replayed clock: the latest notification time so far.
    pub simulated: DateTime<Utc>,
}

/// Called with the progress every [`PROGRESS_EVERY`] notifications and at the end.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How often (in notifications) the progress callback is called.
pub const PROGRESS_EVERY: u64 = 1000;

/// Notifications distilled ahead of the store: the largest batch replay ingests.
const READ_AHEAD: usize = 1000;
/// Notifications per chunk the reader thread hands over, and chunks in flight.
const READ_CHUNK: usize = 256;
const READ_CHUNKS_AHEAD: usize = 8;
/// The smallest batch offered after a cut.
const MIN_OFFER: usize = 16;

/// Options of a replay.
#[derive(Clone, Default)]
pub struct ReplayOptions {
    /// After the input, move the clock past every expiration and run again.
    pub expire: bool,
    /// Run the workers before every notification, even when nothing can be due: the
    /// plain reading of the original's order, kept as the reference the faster path
    /// is tested against.
    pub reference: bool,
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for ReplayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayOptions")
            .field("expire", &self.expire)
            .field("reference", &self.reference)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Where a replay's time went (wall clock).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayTimings {
    /// Reading notifications from the input and turning them into events, on the
    /// reader thread, alongside the rest ([`spawn_reader`]).
    pub distill: std::time::Duration,
    /// Storing events and sorting them into streams.
    pub ingest: std::time::Duration,
    /// The pipeline worker's passes (claims, pipelines, their emitted events).
    pub passes: std::time::Duration,
    /// Ingest calls (one per notification for the reference).
    pub batches: u64,
    /// Passes run, and those skipped because nothing could be due.
    pub passes_run: u64,
    pub passes_skipped: u64,
    /// Reading the streams back for the report.
    pub report: std::time::Duration,
}

impl std::fmt::Display for ReplayTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read and distil {:.2} s (alongside), ingest {:.2} s ({} batches), \
             pipeline passes {:.2} s ({} run, {} skipped: nothing due), report {:.2} s",
            self.distill.as_secs_f64(),
            self.ingest.as_secs_f64(),
            self.batches,
            self.passes.as_secs_f64(),
            self.passes_run,
            self.passes_skipped,
            self.report.as_secs_f64()
        )
    }
}

/// What a replay did, and the report `--report json` prints.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    pub notifications: u64,
    pub stored: u64,
    pub duplicates: u64,
    /// (line number, reason) of notifications the distiller dropped.
    pub dropped: Vec<(usize, String)>,
    pub fired: u64,
    pub expired: u64,
    pub errors: u64,
    pub report: Value,
    pub timings: ReplayTimings,
}

/// Replays `notifications` (with their 1-based line numbers) through the engine.
pub async fn replay<I>(
    config: &LoadedConfig,
    store: Arc<dyn Store>,
    notifications: I,
    options: ReplayOptions,
) -> Result<ReplayOutcome, ReplayError>
where
    I: IntoIterator<Item = (usize, Value)>,
    I::IntoIter: Send + 'static,
{
    let clock = Arc::new(FollowingClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let sink = Arc::new(RecordingSink::default());
    let engine = Engine::following(config, store.clone(), clock.clone(), sink.clone())?;
    let emitted = Arc::new(Mutex::new(Vec::<Event>::new()));
    let mut worker = engine.worker("replay").with_emitted_log(emitted.clone());
    if !options.reference {
        worker = worker.with_chunk_writes();
    }
    let manager = engine.manager.clone();
    let workers = Workers {
        worker,
        store: store.as_ref(),
        clock: &clock,
        reference: options.reference,
        never: CancellationToken::new(),
    };
    let mut out = ReplayOutcome::default();

    // When a pass could next find something: a pass before a notification at time t
    // does nothing unless some stream is due before t (claims take what is strictly
    // before the clock), so it is skipped; this is tracked from the store after each
    // pass and from what each ingest wrote.
    let mut due = store.next_due().await?;
    let report_progress = |out: &ReplayOutcome| {
        if let Some(p) = &options.progress {
            p(&Progress {
                notifications: out.notifications,
                stored: out.stored,
                simulated: clock.now(),
            });
        }
    };
    // Read ahead: distilled events with their clocks (the running latest time), from
    // `start` on (the consumed ones are dropped now and then, not one by one).
    let (mut input, reader) = spawn_reader(manager.clone(), notifications, clock.now())?;
    let mut reader = Some(reader);
    let mut events: Vec<Event> = Vec::with_capacity(2 * READ_AHEAD);
    let mut clocks: Vec<DateTime<Utc>> = Vec::with_capacity(2 * READ_AHEAD);
    let mut start = 0;
    let mut ended = false;
    // The batch offered to the store: grows while batches go through whole, shrinks
    // to what went through when the store cut one (each offer costs planning it).
    let mut offer = READ_AHEAD;
    loop {
        if start >= READ_AHEAD {
            events.drain(..start);
            clocks.drain(..start);
            start = 0;
        }
        while !ended && events.len() - start < READ_AHEAD {
            let Some(chunk) = input.recv().await else {
                ended = true;
                // The reader hung up: at the end of the input, or because it failed.
                if reader.take().is_some_and(|r| r.join().is_err()) {
                    return Err(ReplayError::Reader(
                        "the reader thread stopped before the end of the input".into(),
                    ));
                }
                break;
            };
            let before = out.notifications;
            out.notifications += chunk.notifications;
            out.timings.distill += chunk.took;
            for (e, at) in chunk.events {
                events.push(e);
                clocks.push(at);
            }
            out.dropped.extend(chunk.dropped);
            if before / PROGRESS_EVERY != out.notifications / PROGRESS_EVERY {
                report_progress(&out);
            }
        }
        let Some(&first_clock) = clocks.get(start) else {
            break;
        };
        // The original's order: the clock reaches the notification's time, the
        // workers run until nothing is ready (live they poll on their own, so what
        // became due before this notification is fired or expired before it
        // arrives), and only then is the notification stored.
        clock.advance_to(first_clock);
        // (Events a pipeline emitted may have moved the clock further.)
        let now = clock.now();
        if options.reference || due.is_some_and(|d| d < now) {
            due = workers.passes(&mut out).await?;
        } else {
            out.timings.passes_skipped += 1;
        }
        let started = std::time::Instant::now();
        let (report, consumed) = if options.reference {
            let one = std::slice::from_ref(&events[start]);
            (manager.add_events(one).await?, 1)
        } else {
            // The first event, and the next ones before anything stored is due; the
            // store cuts the batch where a stream it writes becomes due.
            let n = 1 + clocks[start + 1..]
                .iter()
                .take(offer.saturating_sub(1))
                .take_while(|c| due.is_none_or(|d| **c < d))
                .count();
            let times: Vec<DateTime<Utc>> = clocks[start..start + n]
                .iter()
                .map(|c| (*c).max(now))
                .collect();
            let (report, consumed) = manager
                .add_events_timed(&events[start..start + n], &times)
                .await?;
            offer = if consumed < n {
                (consumed * 2).max(MIN_OFFER)
            } else {
                (offer * 2).min(READ_AHEAD)
            };
            (report, consumed)
        };
        out.timings.ingest += started.elapsed();
        out.timings.batches += 1;
        start += consumed.max(1);
        out.stored += report.stored;
        out.duplicates += report.duplicates;
        due = [due, report.earliest_due].into_iter().flatten().min();
    }
    // The workers' last poll, at the last notification's time.
    workers.passes(&mut out).await?;
    if options.expire {
        // Past every expiration, then run until quiet (expire pipelines may emit
        // events that open streams which expire in turn; bounded for safety).
        for _ in 0..16 {
            let latest = latest_expiration(store.as_ref()).await?;
            let Some(latest) = latest else { break };
            if latest < clock.now() {
                break;
            }
            clock.advance_to(latest + chrono::Duration::microseconds(1));
            workers.passes(&mut out).await?;
        }
    }
    report_progress(&out);

    let started = std::time::Instant::now();
    let emitted_events = emitted.lock().map(|v| v.clone()).unwrap_or_default();
    out.report = build_report(store.as_ref(), &emitted_events, &sink).await?;
    out.timings.report = started.elapsed();
    Ok(out)
}

/// Notifications read and distilled, in input order.
#[derive(Default)]
struct ReadChunk {
    /// How many notifications this covers (events and dropped ones).
    notifications: u64,
    /// The events, each with the replay's clock when it arrives: the latest
    /// timestamp so far.
    events: Vec<(Event, DateTime<Utc>)>,
    /// (line number, reason) of the notifications the distiller dropped.
    dropped: Vec<(usize, String)>,
    /// Time spent reading and distilling them.
    took: std::time::Duration,
}

/// Reads and distils the input on a thread of its own, a chunk at a time, ahead of
/// the store: parsing and distilling are a sixth of a replay, and independent of
/// everything after them, so the second core takes them. The order is the input's;
/// the chunks in flight are bounded. The thread stops at the end of the input, or
/// when the replay drops the receiver (it stopped at an error).
fn spawn_reader<I>(
    manager: Arc<TriggerManager>,
    notifications: I,
    start: DateTime<Utc>,
) -> Result<(mpsc::Receiver<ReadChunk>, std::thread::JoinHandle<()>), ReplayError>
where
    I: IntoIterator<Item = (usize, Value)>,
    I::IntoIter: Send + 'static,
{
    let (tx, rx) = mpsc::channel(READ_CHUNKS_AHEAD);
    let mut input = notifications.into_iter();
    let reader = move || {
        let mut clock = start;
        loop {
            let started = std::time::Instant::now();
            let mut chunk = ReadChunk::default();
            for (line, notification) in input.by_ref().take(READ_CHUNK) {
                chunk.notifications += 1;
                // A notification without a timestamp gets the clock as it stood.
                match manager.distill_at(&notification, clock) {
                    Ok(e) => {
                        clock = clock.max(e.timestamp);
                        chunk.events.push((e, clock));
                    }
                    Err(reason) => chunk.dropped.push((line, reason.to_string())),
                }
            }
            chunk.took = started.elapsed();
            if chunk.notifications == 0 || tx.blocking_send(chunk).is_err() {
                return;
            }
        }
    };
    let handle = std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(reader)
        .map_err(|e| ReplayError::Reader(format!("cannot start the reader thread: {e}")))?;
    Ok((rx, handle))
}

/// The replay's pipeline worker, and how it runs.
struct Workers<'a> {
    worker: super::worker::PipelineWorker,
    store: &'a dyn Store,
    clock: &'a FollowingClock,
    reference: bool,
    never: CancellationToken,
}

impl Workers<'_> {
    /// Runs the worker's passes until one finds nothing to do, and returns when a
    /// pass could next find something. The reference runs that last, idle pass; the
    /// batched replay asks the store instead (one read instead of a pass's claims),
    /// which tells the same: a pass claims only streams due before the clock.
    async fn passes(&self, out: &mut ReplayOutcome) -> Result<Option<DateTime<Utc>>, ReplayError> {
        let started = std::time::Instant::now();
        let due = loop {
            let r = self.worker.run_once(&self.never).await?;
            out.fired += r.fired;
            out.expired += r.expired;
            out.errors += r.errors;
            out.timings.passes_run += 1;
            if r.is_idle() {
                break self.store.next_due().await?;
            }
            if !self.reference {
                let due = self.store.next_due().await?;
                if due.is_none_or(|d| d >= self.clock.now()) {
                    break due;
                }
            }
        };
        out.timings.passes += started.elapsed();
        Ok(due)
    }
}

/// The latest expire timestamp of streams still collecting or waiting to expire.
async fn latest_expiration(store: &dyn Store) -> Result<Option<DateTime<Utc>>, StoreError> {
    let streams = all_streams(store).await?;
    Ok(streams
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                crate::store::StreamState::Active | crate::store::StreamState::RetryExpire
            )
        })
        .filter_map(|s| s.expire_timestamp)
        .max())
}

async fn all_streams(store: &dyn Store) -> Result<Vec<crate::store::Stream>, StoreError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .find_streams(&StreamQuery {
                page: Page {
                    after,
                    ascending: true,
                    limit: Some(1000),
                },
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let n = page.len();
        out.extend(page);
        if n < 1000 {
            break;
        }
    }
    Ok(out)
}

fn dist_json(v: &DistValue) -> Value {
    match v {
        DistValue::Text(s) => json!(s),
        DistValue::Int(i) => json!(i),
        DistValue::Float(f) => json!(f),
        DistValue::Datetime(d) => json!(format_datetime(d)),
        DistValue::Range(r) => {
            json!({"begin": format_datetime(&r.begin), "end": format_datetime(&r.end)})
        }
    }
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| json!(format_datetime(&t))).unwrap_or(Value::Null)
}

/// An event as a flat notification-like object (the original handlers' dicts):
/// envelope fields plus every trait by name.
pub fn event_as_flat_json(e: &Event) -> Value {
    let mut m = Map::new();
    m.insert("event_type".into(), json!(e.event_type));
    m.insert("message_id".into(), json!(e.message_id));
    m.insert("timestamp".into(), json!(format_datetime(&e.timestamp)));
    for (k, v) in &e.traits {
        let value = v.to_json();
        m.insert(
            k.clone(),
            value.get("value").cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

async fn build_report(
    store: &dyn Store,
    emitted: &[Event],
    sink: &RecordingSink,
) -> Result<Value, StoreError> {
    let mut streams = Vec::new();
    let all = all_streams(store).await?;
    let ids: Vec<_> = all.iter().map(|s| s.id).collect();
    let mut members = store.stream_message_ids(&ids).await?;
    for s in all {
        let events = members.remove(&s.id).unwrap_or_default();
        let traits: Map<String, Value> = s
            .distinguishing_traits
            .iter()
            .map(|(k, v)| (k.clone(), dist_json(v)))
            .collect();
        streams.push(json!({
            "id": s.id,
            "name": s.name,
            "state": s.state.name(),
            "distinguishing_traits": traits,
            "first_event": format_datetime(&s.first_event),
            "last_event": format_datetime(&s.last_event),
            "fire_timestamp": opt_time(s.fire_timestamp),
            "expire_timestamp": opt_time(s.expire_timestamp),
            "events": events,
        }));
    }
    let mut out: Vec<Value> = emitted.iter().map(event_as_flat_json).collect();
    out.extend(sink.published().into_iter().map(|(_, n)| n));
    Ok(json!({ "streams": streams, "emitted": out }))
}
