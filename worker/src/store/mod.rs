//! Storage: one interface ([`Store`]) over the embedded default (SQLite) and production
//! (MySQL/MariaDB) databases.
//!
//! The engine never writes SQL: it asks the store to ingest a batch, claim ready streams,
//! read a stream's events and record a pipeline's outcome. Every call is one transaction,
//! so a batch of notifications is either wholly stored (events, traits, stream
//! membership, stream bookkeeping) or not at all, which is what lets a consumer ack only
//! after the commit.
//!
//! The store does not know trigger definitions. Inside the ingest transaction it asks a
//! [`StreamRules`] (implemented by `winchester`) where each newly stored event goes and
//! how a stream's bookkeeping changes, so the rules stay pure and testable while the
//! store keeps the transaction.
//!
//! Design notes (see `docs/architecture.md` for the schema):
//! - Datetimes are stored as microseconds since the Unix epoch (BIGINT) in both
//!   databases: exact, compact, index-friendly, and free of driver time-zone handling.
//! - At most one *open* stream exists per trigger and distinguishing traits; the database
//!   enforces it with a unique `open_key` (NULL once the stream stops collecting), so two
//!   ingest workers racing on the same key cannot both create one.
//! - Fire criteria are counted incrementally (`fire_counts`), so adding an event never
//!   reloads a stream's events.

pub mod bookkeeping;
pub mod engine;
mod ingest;
pub mod inline;
pub mod mysql;
mod rows;
pub mod sql;
pub mod sqlite;
pub mod tally;

use crate::event::{Event, TraitType};
use crate::timex::TimeRange;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use bookkeeping::StreamBookkeeping;

/// Database id of a stored event.
pub type EventId = i64;
/// Database id of a stream.
pub type StreamId = i64;

/// Errors from a store. `Unavailable` is the one callers retry (after a back-off):
/// the database went away or a transaction lost a deadlock/serialization race.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("unsupported database URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("no stream with id {0}")]
    NoSuchStream(StreamId),
    #[error("stream {id} cannot be reset from state {state}")]
    NotResettable { id: StreamId, state: StreamState },
    #[error("stream rules failed: {0}")]
    Rules(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database refused the account itself (a wrong or rotated password, a user
    /// that does not exist). Transient while running (a password rotation reaches
    /// every pod in time: keep the batch and retry), fatal at start-up (a wrong
    /// password is a configuration error, and a container that exits says so).
    #[error("database access denied: {0}")]
    AccessDenied(String),
    /// A statement ran past the statement timeout of [`OpenOptions`].
    #[error("the query ran past the statement timeout: {0}")]
    Timeout(String),
}

/// Which of a stream's events to read: positions `offset..offset + limit` in time
/// order (all from `offset` when `limit` is `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventWindow {
    pub offset: u64,
    pub limit: Option<u64>,
}

impl EventWindow {
    /// Every event.
    pub const ALL: EventWindow = EventWindow {
        offset: 0,
        limit: None,
    };

    /// The window of an in-memory list.
    pub fn apply<T>(&self, items: Vec<T>) -> Vec<T> {
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let take = self
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        items.into_iter().skip(skip).take(take).collect()
    }
}

/// How a store's connections are set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Abort any statement running longer than this (MariaDB `max_statement_time`,
    /// MySQL `max_execution_time`, SQLite a progress handler): the API sets it so one
    /// request cannot hold the database; workers do not.
    pub statement_timeout: Option<std::time::Duration>,
}

impl StoreError {
    /// True for errors worth retrying after a pause (connection lost, deadlock).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::AccessDenied(_)
        )
    }
}

/// Stream states, with the integers the original stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Active = 1,
    Firing = 2,
    Expiring = 3,
    Error = 4,
    ExpireError = 5,
    Completed = 6,
    RetryFire = 7,
    RetryExpire = 8,
}

impl StreamState {
    pub const ALL: [StreamState; 8] = [
        StreamState::Active,
        StreamState::Firing,
        StreamState::Expiring,
        StreamState::Error,
        StreamState::ExpireError,
        StreamState::Completed,
        StreamState::RetryFire,
        StreamState::RetryExpire,
    ];

    pub fn as_i16(self) -> i16 {
        self as i16
    }

    pub fn from_i16(v: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_i16() == v)
    }

    /// The state's name as the original API printed it (`active`, `retry_fire`, …).
    pub fn name(self) -> &'static str {
        match self {
            StreamState::Active => "active",
            StreamState::Firing => "firing",
            StreamState::Expiring => "expiring",
            StreamState::Error => "error",
            StreamState::ExpireError => "expire_error",
            StreamState::Completed => "completed",
            StreamState::RetryFire => "retry_fire",
            StreamState::RetryExpire => "retry_expire",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The value of one distinguishing trait: a trait's value, or a time range when the
/// trigger maps the trait through a timex expression (`timestamp: day`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum DistValue {
    Text(String),
    Int(i64),
    Float(f64),
    Datetime(DateTime<Utc>),
    Range(TimeRange),
}

/// Distinguishing traits of a stream, by name (ordered, so their key is canonical).
pub type DistinguishingTraits = BTreeMap<String, DistValue>;

/// The canonical key of a trigger's stream for these distinguishing traits: a hex
/// SHA-256 of the trigger name and the typed values, so it fits a fixed-width unique
/// index whatever the traits are.
pub fn stream_key(trigger_name: &str, traits: &DistinguishingTraits) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(trigger_name.as_bytes());
    for (name, value) in traits {
        h.update([0u8]);
        h.update(name.as_bytes());
        h.update([0u8]);
        match value {
            DistValue::Text(s) => {
                h.update(b"s");
                h.update(s.as_bytes());
            }
            DistValue::Int(i) => {
                h.update(b"i");
                h.update(i.to_le_bytes());
            }
            DistValue::Float(f) => {
                h.update(b"f");
                h.update(f.to_bits().to_le_bytes());
            }
            DistValue::Datetime(d) => {
                h.update(b"d");
                h.update(d.timestamp_micros().to_le_bytes());
            }
            DistValue::Range(r) => {
                h.update(b"r");
                h.update(r.begin.timestamp_micros().to_le_bytes());
                h.update(r.end.timestamp_micros().to_le_bytes());
            }
        }
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A stored event with its database id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: EventId,
    pub event: Event,
}

/// A stream as the engine and the API see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub id: StreamId,
    /// The trigger definition's name (the original's `stream.name`).
    pub name: String,
    pub state: StreamState,
    /// Bumped on every state change: the compare-and-set guard between workers.
    pub state_serial_no: i64,
    pub first_event: DateTime<Utc>,
    pub last_event: DateTime<Utc>,
    pub expire_timestamp: Option<DateTime<Utc>>,
    pub fire_timestamp: Option<DateTime<Utc>>,
    pub distinguishing_traits: DistinguishingTraits,
    /// Events matched per fire criterion, in the trigger's criteria order.
    pub fire_counts: Vec<u32>,
    /// How many events the stream holds.
    pub event_count: u64,
    /// Until when a worker's claim (state firing/expiring) holds; after it, any
    /// worker moves the stream to retry_fire/retry_expire.
    pub claim_until: Option<DateTime<Utc>>,
}

/// Where a newly stored event goes: one entry per trigger whose match criteria it
/// passes. Produced by [`StreamRules::route`].
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub trigger_name: Arc<str>,
    pub distinguishing_traits: DistinguishingTraits,
    /// `stream_key(trigger_name, distinguishing_traits)`.
    pub key: String,
    /// For each fire criterion of the trigger, whether this event matches it.
    pub fire_matches: Vec<bool>,
}

/// The trigger rules the store consults inside an ingest transaction.
pub trait StreamRules: Send + Sync {
    /// The streams a newly stored event joins (none when no trigger matches).
    fn route(&self, event: &Event) -> Vec<Route>;

    /// Folds appended events into a stream's bookkeeping: first/last event,
    /// expire timestamp, fire counts and, once every fire criterion is met, the fire
    /// timestamp (`now + fire_delay`). `appended` holds each event's timestamp and
    /// fire-criterion matches, in arrival order. Infallible by design: a failure here
    /// would fail the whole batch and block the queue, so the rules fall back to a sane
    /// value (and log) instead.
    fn update(
        &self,
        trigger_name: &str,
        stream: &mut StreamBookkeeping,
        appended: &[(DateTime<Utc>, &[bool])],
        now: DateTime<Utc>,
    );
}

/// What one ingest call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Events stored by this call.
    pub stored: u64,
    /// Events skipped because their message_id was already stored.
    pub duplicates: u64,
    /// Streams created.
    pub streams_created: u64,
    /// Stream memberships added (an event in two streams counts twice).
    pub stream_events: u64,
    /// Streams that became ready to fire in this call.
    pub streams_ready: u64,
    /// Per trigger: events added and streams created (for debug counters).
    pub per_trigger: BTreeMap<String, TriggerCounts>,
    /// The earliest fire or expire timestamp among the streams this call wrote: when
    /// a pipeline worker could next find one of them ready (replay uses it to run the
    /// workers only when something can be due).
    pub earliest_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerCounts {
    pub added_events: u64,
    pub new_streams: u64,
    pub ready_to_fire: u64,
}

/// Fire or expire: which ready streams a pipeline worker claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyKind {
    /// state active or retry_fire and `fire_timestamp < now` → firing.
    Fire,
    /// state active or retry_expire and `expire_timestamp < now` → expiring.
    Expire,
}

/// How a pipeline run ended, recorded with [`Store::finish_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// The run could not finish for a reason that passes (a broker away): back to
    /// retry_fire / retry_expire, not claimed again before `not_before` (wall time).
    Retry {
        not_before: DateTime<Utc>,
    },
    /// Delete the stream (and its memberships), for `purge_completed_streams`.
    Purge,
    /// Fire pipeline failed.
    Error,
    /// Expire pipeline failed.
    ExpireError,
}

/// Filters for listing streams (the API's `/v1/streams`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamQuery {
    pub stream_id: Option<StreamId>,
    pub state: Option<StreamState>,
    /// `first_event < older_than`
    pub older_than: Option<DateTime<Utc>>,
    /// `last_event > younger_than`
    pub younger_than: Option<DateTime<Utc>>,
    pub name: Option<String>,
    /// Equality on distinguishing traits; a range matches a range with equal bounds.
    pub distinguishing_traits: Vec<(String, DistValue)>,
    /// Distinguishing traits given as untyped text (the API's `name:value`): each
    /// entry matches a stream that has the trait equal to any of the typed readings,
    /// and a datetime reading also matches a time range containing it.
    pub dist_matches: Vec<DistMatch>,
    pub page: Page,
}

/// One distinguishing-trait filter with several typed readings of one value (see
/// [`StreamQuery::dist_matches`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DistMatch {
    pub name: String,
    /// The readings; no reading matches nothing.
    pub values: Vec<DistValue>,
}

/// Keyset pagination by id, as the original's `_mark`: descending (newest first) from
/// below `after` by default, ascending from above it when `ascending`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub after: Option<i64>,
    pub ascending: bool,
    pub limit: Option<u64>,
}

/// Comparison operators of event trait filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraitOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One trait filter of `/v1/events`.
#[derive(Debug, Clone, PartialEq)]
pub struct TraitFilter {
    pub name: String,
    pub op: TraitOp,
    pub value: crate::event::TraitValue,
}

/// A trait filter whose value came as untyped text (the API's `traits=memory_mb>512`):
/// the event has the trait and its value, compared in its own type's column,
/// satisfies `op` against any of the typed readings `values`. A trait of another type
/// than every reading never matches (not even `!=`).
#[derive(Debug, Clone, PartialEq)]
pub struct TraitMatch {
    pub name: String,
    pub op: TraitOp,
    /// The readings; no reading matches nothing.
    pub values: Vec<crate::event::TraitValue>,
}

/// Filters for listing events (the API's `/v1/events`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// `generated > from`
    pub from: Option<DateTime<Utc>>,
    /// `generated <= to`
    pub to: Option<DateTime<Utc>>,
    pub event_type: Option<String>,
    pub traits: Vec<TraitFilter>,
    /// Filters with several typed readings of one value, see [`TraitMatch`].
    pub trait_matches: Vec<TraitMatch>,
    pub page: Page,
}

/// The one storage interface. Implementations: [`sqlite::SqliteStore`] and
/// [`mysql::MySqlStore`]; [`open`] picks one from a URL.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which backend this is (`sqlite`, `mysql`), for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Applies pending schema migrations (idempotent).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Which migration the database has applied, against the newest this build knows:
    /// what "the schema is migrated" means to a reader that must not migrate itself
    /// (the operator, for an external database).
    async fn schema_status(&self) -> Result<SchemaStatus, StoreError>;

    /// Drops the indexes that only the API's and the console's queries read (trait
    /// values, distinguishing-trait values, event types, stream times), keeping every
    /// one the engine itself reads (message ids, open keys, due times, memberships,
    /// event times for the trim).
    /// For a scratch store nothing will query afterwards, such as a replay's default
    /// in-memory SQLite: each row stored then writes two or three index entries
    /// instead of up to seven. A no-op on MySQL, whose databases are never scratch.
    async fn drop_query_indexes(&self) -> Result<(), StoreError>;

    /// Stores a batch of events in one transaction: events whose message_id is
    /// already stored are skipped (counted as duplicates, not an error); every new
    /// event is routed by `rules` into its streams — joining the open stream of the
    /// same trigger and distinguishing traits when its `expire_timestamp > now`, else
    /// closing that stream for collection and creating a new one — and each touched
    /// stream's bookkeeping is updated once for all its new events. Multi-row
    /// statements throughout: the number of round trips does not grow with the batch.
    async fn ingest(
        &self,
        events: &[Event],
        rules: &dyn StreamRules,
        now: DateTime<Utc>,
    ) -> Result<IngestReport, StoreError>;

    /// Replay's batched ingest: like [`Store::ingest`], each event with its own
    /// "now" (`times[i]`, the replayed clock when it arrived, non-decreasing), and
    /// stopping before the first event that a pipeline pass would have had to
    /// precede, one at a time (a stream this batch writes due at or before that
    /// event's time). Returns the report and how many events were consumed (at least
    /// one of a non-empty batch). The caller ends the batch before any event at or
    /// past [`Store::next_due`].
    async fn ingest_timed(
        &self,
        events: &[Event],
        rules: &dyn StreamRules,
        times: &[DateTime<Utc>],
    ) -> Result<(IngestReport, usize), StoreError>;
    /// Atomically claims up to `limit` ready streams for one worker: moves them to
    /// firing/expiring, bumps their serial number, stops them collecting events and
    /// sets `claim_until`. Two workers never claim the same stream. A retry_* stream
    /// whose `claim_until` (its not-before time, see [`Outcome::Retry`]) is still in the
    /// future (wall clock) is left alone.
    async fn claim_ready(
        &self,
        kind: ReadyKind,
        now: DateTime<Utc>,
        limit: u32,
        claim_until: DateTime<Utc>,
    ) -> Result<Vec<Stream>, StoreError>;

    /// Extends a claim that is still ours (the stream is still firing/expiring at
    /// `serial`) to `claim_until`; false when the claim was lost. Pipeline workers call
    /// it while a stream is in hand (a heartbeat) and right before side effects.
    async fn renew_claim(
        &self,
        stream_id: StreamId,
        serial: i64,
        claim_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Moves streams whose claim ran out (a worker died mid-pipeline) back to
    /// retry_fire / retry_expire. Returns how many were released.
    async fn release_expired_claims(&self, wall_now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// The stream's events in time order (then by id).
    async fn stream_events(&self, stream_id: StreamId) -> Result<Vec<StoredEvent>, StoreError>;
    /// The message ids of the events of `streams`, each stream's in time order (as
    /// [`Store::stream_events`]), without their traits: one query per thousand streams.
    async fn stream_message_ids(
        &self,
        streams: &[StreamId],
    ) -> Result<BTreeMap<StreamId, Vec<String>>, StoreError>;

    /// Records a pipeline outcome if the stream is still at `serial` (the claim is
    /// still ours); returns false when another worker took it over.
    async fn finish_stream(
        &self,
        stream_id: StreamId,
        serial: i64,
        outcome: Outcome,
    ) -> Result<bool, StoreError>;

    /// [`Store::finish_stream`] for many `(stream, serial, outcome)` runs in one
    /// transaction (replay's batched passes); whether each was still ours, in order.
    async fn finish_streams(
        &self,
        runs: &[(StreamId, i64, Outcome)],
    ) -> Result<Vec<bool>, StoreError>;

    /// Deletes up to `limit` events generated before `older_than` (with their traits
    /// and stream memberships); returns how many.
    async fn trim_events(&self, older_than: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    // --- reading (API, replay reports) ---------------------------------------

    async fn get_stream(&self, id: StreamId) -> Result<Option<Stream>, StoreError>;
    async fn find_streams(&self, query: &StreamQuery) -> Result<Vec<Stream>, StoreError>;
    /// The events of each of `ids` in time order (then by id), keyed by stream id
    /// (streams without events are absent). The API's stream listing with details uses
    /// it so a page of streams costs a fixed number of queries, not one per stream.
    ///
    /// `window` bounds what is read per stream (the API's cap on events per stream):
    /// the events from position `offset` (0-based, in that order), at most `limit`.
    async fn streams_events(
        &self,
        ids: &[StreamId],
        window: EventWindow,
    ) -> Result<BTreeMap<StreamId, Vec<StoredEvent>>, StoreError> {
        let mut out = BTreeMap::new();
        for &id in ids {
            let events: Vec<StoredEvent> = window.apply(self.stream_events(id).await?);
            if !events.is_empty() {
                out.insert(id, events);
            }
        }
        Ok(out)
    }
    async fn count_streams(&self, query: &StreamQuery) -> Result<u64, StoreError>;
    /// Streams ready for `kind` at `now` that no live claim holds: the backlog the
    /// pipeline workers have yet to take (one COUNT, for the backlog gauge).
    async fn count_ready(&self, kind: ReadyKind, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The earliest time at which a claim could find a stream ready: the least fire
    /// or expire timestamp of the active streams; `DateTime::MIN_UTC` when a stream
    /// waits for a retry (its turn is wall-clock time); `None` when nothing is pending.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Deletes a stream (not its events). False when there was none.
    async fn delete_stream(&self, id: StreamId) -> Result<bool, StoreError>;
    /// error → retry_fire, expire_error → retry_expire; other states are refused.
    async fn reset_stream(&self, id: StreamId) -> Result<Stream, StoreError>;

    async fn get_event(&self, message_id: &str) -> Result<Option<StoredEvent>, StoreError>;
    async fn find_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    async fn count_events(&self, query: &EventQuery) -> Result<u64, StoreError>;
    /// Every event type stored, sorted.
    async fn event_types(&self) -> Result<Vec<String>, StoreError>;
    /// Names and types of the traits seen on events of a type, sorted by name (the
    /// signatures [`tally`] records as events are stored).
    async fn trait_names(&self, event_type: &str) -> Result<Vec<(String, TraitType)>, StoreError>;

    // What the console shows at a glance; each is one bounded query (see [`tally`]).

    /// Streams in each state, every state listed (one grouped query).
    async fn stream_state_counts(&self) -> Result<Vec<(StreamState, u64)>, StoreError>;
    /// Events stored per event type, sorted by name.
    async fn event_type_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Events per minute of `generated` in `[from, to)`; minutes without events are
    /// left out.
    async fn events_per_minute(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError>;
    /// Events of `event_type` per UTC day in `[from, to)`; days without events are
    /// left out.
    async fn events_per_day(
        &self,
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError>;
    /// Pipeline runs finished per minute and outcome in `[from, to)`.
    async fn pipeline_runs(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<tally::RunMinute>, StoreError>;
    /// Records that collector `name` stored events at `seen`, the newest generated at
    /// `generated` (the later times win over what is recorded).
    async fn mark_collector(
        &self,
        name: &str,
        seen: DateTime<Utc>,
        generated: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Every collector that ever stored events, by name.
    async fn collectors(&self) -> Result<Vec<tally::CollectorSeen>, StoreError>;
}

/// Opens the store a database URL names: `sqlite://path` / `sqlite::memory:` or
/// `mysql://user:pass@host[:port]/db` (also the original's SQLAlchemy spellings
/// `mysql+pymysql://…` and `mysql+mysqldb://…`). Does not migrate.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, OpenOptions::default()).await
}

/// [`open`] with connection settings.
pub async fn open_with(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    let (scheme, _) = url.split_once(':').ok_or_else(|| StoreError::BadUrl {
        url: redact_url(url),
        reason: "no scheme".into(),
    })?;
    match scheme {
        "sqlite" => sqlite::open_store(url, options).await,
        "mysql" | "mysql+pymysql" | "mysql+mysqldb" | "mariadb" => {
            let normalized = format!("mysql:{}", &url[scheme.len() + 1..]);
            mysql::open_store(&normalized, options).await
        }
        other => Err(StoreError::BadUrl {
            url: redact_url(url),
            reason: format!("unknown scheme {other:?} (use sqlite:// or mysql://)"),
        }),
    }
}

/// A database's schema version against this build's newest migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest migration applied successfully (`None`: never migrated).
    pub applied: Option<i64>,
    /// The newest migration this build has.
    pub latest: i64,
}

impl SchemaStatus {
    /// Migrated to this build's schema or a newer one (a newer schema serves older
    /// binaries: migrations only add).
    pub fn is_current(&self) -> bool {
        self.applied.is_some_and(|a| a >= self.latest)
    }
}

/// Opens and migrates the store at `url`, waiting (and logging) while the database is
/// unreachable instead of failing, so a worker started before its database does not
/// crash-loop. `None` when `shutdown` is cancelled first.
pub async fn open_when_ready(
    url: &str,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Option<Arc<dyn Store>>, StoreError> {
    open_when_ready_with(url, OpenOptions::default(), shutdown).await
}

/// [`open_when_ready`] with connection settings.
pub async fn open_when_ready_with(
    url: &str,
    options: OpenOptions,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Option<Arc<dyn Store>>, StoreError> {
    // One warning while the database stays away the same way (repeats at debug).
    let mut last_error: Option<String> = None;
    loop {
        let opened = match open_with(url, options).await {
            Ok(s) => s.migrate().await.map(|()| s),
            Err(e) => Err(e),
        };
        match opened {
            Ok(s) => {
                if last_error.is_some() {
                    tracing::info!(database = %redact_url(url), "database reachable");
                }
                return Ok(Some(s));
            }
            // At start-up a refused login is a configuration error: say so and stop.
            Err(e @ StoreError::AccessDenied(_)) => return Err(e),
            Err(e) if e.is_transient() => {
                let text = e.to_string();
                if last_error.as_deref() == Some(text.as_str()) {
                    tracing::debug!(database = %redact_url(url), error = %e, "database not reachable yet; retrying in 5s");
                } else {
                    tracing::warn!(database = %redact_url(url), error = %e,
                        "database not reachable yet; retrying every 5s (repeats at debug)");
                    last_error = Some(text);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// A URL with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in StreamState::ALL {
            assert_eq!(StreamState::from_i16(s.as_i16()), Some(s));
            assert_eq!(StreamState::parse(s.name()), Some(s));
        }
        assert_eq!(StreamState::RetryExpire.as_i16(), 8);
        assert_eq!(StreamState::from_i16(9), None);
    }

    #[test]
    fn stream_key_depends_on_type_and_value() {
        let mut a = DistinguishingTraits::new();
        a.insert("instance_id".into(), DistValue::Text("1".into()));
        let mut b = DistinguishingTraits::new();
        b.insert("instance_id".into(), DistValue::Int(1));
        assert_ne!(stream_key("t", &a), stream_key("t", &b));
        assert_ne!(stream_key("t", &a), stream_key("u", &a));
        assert_eq!(stream_key("t", &a), stream_key("t", &a.clone()));
        assert_eq!(stream_key("t", &a).len(), 64);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("mysql://winchester:testpasswd@localhost/winchester"),
            "mysql://winchester:***@localhost/winchester"
        );
        assert_eq!(redact_url("sqlite://data/w.db"), "sqlite://data/w.db");
    }
}
