//! The pipeline worker: claims streams that are ready to fire or expire, runs their
//! pipeline, records the outcome, and stores the events the pipeline emitted.
//!
//! Differences from the original, on purpose:
//! - Streams are *claimed* atomically in the database (several workers never run the
//!   same stream), in small chunks so a claim's lease covers the work in hand.
//! - A claim has a lease: a worker that dies mid-pipeline leaves a stream in firing or
//!   expiring only until the lease runs out, then any worker moves it to retry and it
//!   runs again (the original left it in firing forever).
//! - A stream in hand keeps its claim: a heartbeat renews the lease while its pipeline
//!   runs, and the claim is confirmed again right before the pipeline's side effects
//!   (commits). A worker that lost its claim (it was too slow, or cut off from the
//!   database longer than the lease) rolls back instead of committing, so a stream's
//!   side effects happen once while its worker is alive.
//! - Every handler call has a time limit; a commit that fails in a way that passes (the
//!   broker away) sends the stream to retry_fire / retry_expire, claimed again after
//!   `retry_delay`, rather than dropping what it had to publish.
//! - Shutdown (SIGTERM) is checked between streams: the stream in hand is finished.
//!
//! Replay ([`PipelineWorker::with_chunk_writes`]) trades that per-stream durability for
//! speed: a claimed chunk's events are read in one query, and what its pipelines
//! emitted and how each run ended are written once the chunk is done.

use super::clock::Clock;
use super::debug::DebugManager;
use super::definition::TriggerDefinition;
use super::ingest::TriggerManager;
use super::pipeline::{CommitGate, Pipeline, PipelineError, RunOptions};
use crate::event::Event;
use crate::store::{
    EventWindow, Outcome, ReadyKind, Store, StoreError, StoredEvent, Stream, StreamId,
};
use crate::timex::Expression;
use async_trait::async_trait;
use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Streams claimed per round trip; small so a claim's lease covers the work in hand.
const CLAIM_CHUNK: u32 = 50;

/// The worker's settings (from winchester.yaml).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Streams handled per pass and kind (`pipeline_worker_batch_size`).
    pub batch_size: u32,
    /// Sleep when a pass found nothing to do (`pipeline_worker_delay`).
    pub idle_delay: Duration,
    /// How long a claim lasts before another worker may retry the stream.
    pub lease: Duration,
    pub purge_completed_streams: bool,
    /// `trim_events_age` when `trim_events` is on.
    pub trim_events_age: Option<Expression>,
    pub trim_events_batch_size: u32,
    pub statistics_period: Duration,
    /// Upper bound on each handler call of a pipeline (`pipeline_handler_timeout`).
    pub handler_timeout: Duration,
    /// How long a stream whose commit failed retryably waits before it is claimed
    /// again (`pipeline_retry_delay`).
    pub retry_delay: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            batch_size: 1000,
            idle_delay: Duration::from_secs(10),
            lease: Duration::from_secs(300),
            purge_completed_streams: false,
            trim_events_age: None,
            trim_events_batch_size: 100,
            statistics_period: Duration::from_secs(10),
            handler_timeout: Duration::from_secs(60),
            retry_delay: Duration::from_secs(60),
        }
    }
}

/// A fire or expire pass and how a stream's run ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub kind: String,
    pub result: String,
}

/// Fire or expire.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// Prometheus metrics of a pipeline worker.
#[derive(Clone)]
pub struct WorkerMetrics {
    /// Streams processed, by kind (fire/expire) and result (completed/error/retry/lost).
    pub streams: Family<StreamLabels, Counter>,
    pub pipeline_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub claims_released: Counter,
    pub events_trimmed: Counter,
    pub events_emitted: Counter,
    /// Streams ready to fire or expire that no worker has taken yet (the backlog the
    /// alert rules watch; refreshed at most every [`BACKLOG_REFRESH`]).
    pub ready_streams: Family<KindLabels, Gauge>,
}

/// How often a worker recounts the backlog of ready streams (one COUNT per kind).
pub const BACKLOG_REFRESH: Duration = Duration::from_secs(15);

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerMetrics {
    pub fn new() -> Self {
        WorkerMetrics {
            streams: Family::default(),
            pipeline_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            claims_released: Counter::default(),
            events_trimmed: Counter::default(),
            events_emitted: Counter::default(),
            ready_streams: Family::default(),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "stv3_pipeline_streams",
            "Streams fired or expired, by kind and result",
            self.streams.clone(),
        );
        registry.register(
            "stv3_pipeline_duration_seconds",
            "Time to run a pipeline over one stream",
            self.pipeline_seconds.clone(),
        );
        registry.register(
            "stv3_pipeline_claims_released",
            "Claims that ran out (a worker died mid-pipeline) and were retried",
            self.claims_released.clone(),
        );
        registry.register(
            "stv3_events_trimmed",
            "Events deleted by trim_events",
            self.events_trimmed.clone(),
        );
        registry.register(
            "stv3_pipeline_events_emitted",
            "Events pipelines emitted and the worker stored",
            self.events_emitted.clone(),
        );
        registry.register(
            "stv3_pipeline_ready_streams",
            "Streams ready to fire or expire that no worker has taken yet, by kind",
            self.ready_streams.clone(),
        );
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub fired: u64,
    pub expired: u64,
    pub errors: u64,
    pub trimmed: u64,
    pub released: u64,
    /// Streams sent back to retry (a commit failed retryably).
    pub retried: u64,
    /// Streams whose claim this worker lost before committing (nothing committed).
    pub lost: u64,
}

impl PassReport {
    /// Whether the pass found any work.
    pub fn is_idle(&self) -> bool {
        self.fired
            + self.expired
            + self.errors
            + self.trimmed
            + self.released
            + self.retried
            + self.lost
            == 0
    }
}

/// How one claimed stream's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunEnd {
    Completed,
    Failed,
    /// A commit failed retryably: the stream goes back to retry.
    Retry,
    /// The claim was lost before the side effects: nothing committed, nothing recorded
    /// (the worker that holds the stream now records it).
    Lost,
}

/// The claim on one stream in hand: renews it (the heartbeat) and answers the
/// pipeline's commit gate. Renewals are round trips, so one is skipped while the last
/// confirmation is recent: a claim confirmed less than a third of a lease ago holds
/// for at least two thirds of one more, whatever another worker does (claims are
/// released only after `claim_until`, by wall clock; pods' clocks may differ by far
/// less than a lease).
struct Claim {
    store: Arc<dyn Store>,
    stream_id: StreamId,
    serial: i64,
    lease: Duration,
    confirmed_at: Mutex<Instant>,
    lost: AtomicBool,
}

impl Claim {
    fn new(store: Arc<dyn Store>, stream: &Stream, lease: Duration, claimed_at: Instant) -> Self {
        Claim {
            store,
            stream_id: stream.id,
            serial: stream.state_serial_no,
            lease,
            confirmed_at: Mutex::new(claimed_at),
            lost: AtomicBool::new(false),
        }
    }

    fn fresh(&self) -> bool {
        let at = *self.confirmed_at.lock().unwrap_or_else(|p| p.into_inner());
        at.elapsed() < self.lease / 3
    }

    /// Extends the lease; `Ok(false)` once the claim is lost (it stays lost). The
    /// database's answer is what counts (the serial is unchanged only while nobody
    /// took the stream), so `limit` only bounds how long the caller waits for it.
    async fn renew(&self, limit: Duration) -> Result<bool, StoreError> {
        if self.lost.load(Ordering::Acquire) {
            return Ok(false);
        }
        let asked = Instant::now();
        let until = Utc::now()
            + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(300));
        let renewal = self.store.renew_claim(self.stream_id, self.serial, until);
        let ours = match tokio::time::timeout(limit, renewal).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "renewing the claim took longer than {}s",
                    limit.as_secs_f64()
                )))
            }
        };
        if ours {
            *self.confirmed_at.lock().unwrap_or_else(|p| p.into_inner()) = asked;
        } else {
            self.lost.store(true, Ordering::Release);
        }
        Ok(ours)
    }

    /// The heartbeat's beat: renew, and say so when it fails (the run goes on; the
    /// commit gate decides). A beat waits at most a third of a lease: it holds up the
    /// pipeline it runs beside.
    async fn beat(&self) {
        match self.renew(self.lease / 3).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                stream = self.stream_id,
                "claim lost while the pipeline ran (lease ran out); it will not commit"
            ),
            Err(e) => tracing::warn!(
                stream = self.stream_id,
                error = %e,
                "cannot renew the claim; retrying at the next beat"
            ),
        }
    }

    /// Whether the stream is still ours, with a round trip only when the last
    /// confirmation is not recent. Nothing runs meanwhile, so it waits for the
    /// database's answer (at least 30 s): a slow answer is not a lost claim.
    async fn still_ours(&self) -> Result<bool, StoreError> {
        if self.lost.load(Ordering::Acquire) {
            return Ok(false);
        }
        if self.fresh() {
            return Ok(true);
        }
        self.renew(self.lease.max(Duration::from_secs(30))).await
    }
}

#[async_trait]
impl CommitGate for Claim {
    async fn may_commit(&self) -> Result<(), String> {
        match self.still_ours().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(
                "the stream's claim was lost (its lease ran out and another \
                              worker may hold it)"
                    .into(),
            ),
            Err(e) => Err(format!("cannot confirm the stream's claim: {e}")),
        }
    }
}

/// A claimed chunk's writes, held back until the chunk is done (replay only: see
/// [`PipelineWorker::with_chunk_writes`]).
#[derive(Default)]
struct Held {
    /// The chunk's streams' events, read in one query.
    events: BTreeMap<StreamId, Vec<StoredEvent>>,
    /// What each pipeline emitted, one group per run, in run order.
    emitted: Vec<Vec<Event>>,
    /// How each run ended: (kind label, stream, serial, outcome).
    finishes: Vec<(&'static str, StreamId, i64, Outcome)>,
}

/// One pipeline worker.
pub struct PipelineWorker {
    name: String,
    manager: Arc<TriggerManager>,
    pipelines: HashMap<String, Pipeline>,
    settings: WorkerSettings,
    metrics: WorkerMetrics,
    /// Every event pipelines emitted, when asked to keep them (replay reports).
    emitted_log: Option<Arc<Mutex<Vec<Event>>>>,
    /// Hold a chunk's writes to its end ([`Self::with_chunk_writes`]).
    chunk_writes: bool,
    counts: Mutex<(u64, u64, u64)>,
}

impl PipelineWorker {
    pub fn new(
        name: impl Into<String>,
        manager: Arc<TriggerManager>,
        pipelines: HashMap<String, Pipeline>,
        settings: WorkerSettings,
    ) -> Self {
        PipelineWorker {
            name: name.into(),
            manager,
            pipelines,
            settings,
            metrics: WorkerMetrics::new(),
            emitted_log: None,
            chunk_writes: false,
            counts: Mutex::new((0, 0, 0)),
        }
    }

    pub fn with_metrics(mut self, metrics: WorkerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Keeps a copy of every event the pipelines emit (for `stv3 replay`).
    pub fn with_emitted_log(mut self, log: Arc<Mutex<Vec<Event>>>) -> Self {
        self.emitted_log = Some(log);
        self
    }

    /// Replay's batched passes: each claimed chunk's events are read in one query, and
    /// the events its pipelines emitted and the runs' outcomes are written once the
    /// chunk is done (one ingest, one transaction) instead of stream by stream. The
    /// outcome is the same as one stream at a time: a claimed stream no longer collects
    /// events (its open key is gone), so nothing ingested meanwhile depends on whether
    /// it is finished yet, and emitted events are stored at the clocks they would have
    /// had. What it gives up is durability between streams: a worker that died
    /// mid-chunk would run the chunk's committed pipelines again, which is why live
    /// workers write stream by stream.
    ///
    /// Such a worker is the store's only one and finishes each pass's claims within
    /// the pass, so no claim can be left for it to release: the passes skip that
    /// step (a transaction each).
    pub fn with_chunk_writes(mut self) -> Self {
        self.chunk_writes = true;
        self
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.manager.store()
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        self.manager.clock()
    }

    fn debug(&self) -> &DebugManager {
        self.manager.triggers().debug()
    }

    /// One pass of the original's loop: release dead claims, fire ready streams,
    /// expire ready streams, trim old events. `shutdown` is checked between streams.
    pub async fn run_once(&self, shutdown: &CancellationToken) -> Result<PassReport, StoreError> {
        let mut report = PassReport {
            released: if self.chunk_writes {
                0
            } else {
                self.store().release_expired_claims(Utc::now()).await?
            },
            ..Default::default()
        };
        if report.released > 0 {
            self.metrics.claims_released.inc_by(report.released);
            tracing::warn!(
                worker = %self.name,
                streams = report.released,
                "claims ran out (a worker stopped mid-pipeline); streams will be retried"
            );
        }
        for kind in [ReadyKind::Fire, ReadyKind::Expire] {
            let mut handled = 0u32;
            while handled < self.settings.batch_size && !shutdown.is_cancelled() {
                let chunk = CLAIM_CHUNK.min(self.settings.batch_size - handled);
                let lease = chrono::Duration::from_std(self.settings.lease)
                    .unwrap_or(chrono::Duration::seconds(300));
                let claimed_at = Instant::now();
                let streams = self
                    .store()
                    .claim_ready(kind, self.clock().now(), chunk, Utc::now() + lease)
                    .await?;
                if streams.is_empty() {
                    break;
                }
                handled += streams.len() as u32;
                let mut held = if self.chunk_writes {
                    let ids: Vec<StreamId> = streams.iter().map(|s| s.id).collect();
                    Some(Held {
                        events: self.store().streams_events(&ids, EventWindow::ALL).await?,
                        ..Held::default()
                    })
                } else {
                    None
                };
                let mut streams = streams.into_iter();
                for stream in streams.by_ref() {
                    let claim = Claim::new(
                        self.store().clone(),
                        &stream,
                        self.settings.lease,
                        claimed_at,
                    );
                    match (kind, self.process(kind, &stream, &claim, &mut held).await?) {
                        (ReadyKind::Fire, RunEnd::Completed) => report.fired += 1,
                        (ReadyKind::Expire, RunEnd::Completed) => report.expired += 1,
                        (_, RunEnd::Failed) => report.errors += 1,
                        (_, RunEnd::Retry) => report.retried += 1,
                        (_, RunEnd::Lost) => report.lost += 1,
                    }
                    if shutdown.is_cancelled() {
                        break;
                    }
                }
                // Claimed but not started because of shutdown: the lease releases them
                // to another worker (they were never started, so nothing ran twice).
                for stream in streams {
                    tracing::info!(
                        stream = stream.id,
                        "left claimed at shutdown; its lease will release it"
                    );
                }
                if let Some(held) = held {
                    self.write_held(held).await?;
                }
            }
        }
        if let Some(age) = &self.settings.trim_events_age {
            report.trimmed = self.trim(age).await?;
        }
        Ok(report)
    }

    async fn trim(&self, age: &Expression) -> Result<u64, StoreError> {
        let now = self.clock().now();
        let vars = |name: &str| (name == "timestamp").then_some(now);
        let cutoff = match age.evaluate(&vars) {
            Ok(v) => v.timestamp(),
            Err(e) => {
                tracing::error!(error = %e, "trim_events_age cannot be evaluated; not trimming");
                return Ok(0);
            }
        };
        let n = self
            .store()
            .trim_events(cutoff, self.settings.trim_events_batch_size)
            .await?;
        if n > 0 {
            tracing::debug!(events = n, "trimmed old events");
            self.metrics.events_trimmed.inc_by(n);
        }
        Ok(n)
    }

    /// Runs the fire or expire pipeline of one claimed stream and records the outcome.
    async fn process(
        &self,
        kind: ReadyKind,
        stream: &Stream,
        claim: &Claim,
        held: &mut Option<Held>,
    ) -> Result<RunEnd, StoreError> {
        let (kind_label, counter, fail) = match kind {
            ReadyKind::Fire => ("fire", "Streams fired", Outcome::Error),
            ReadyKind::Expire => ("expire", "Streams expired", Outcome::ExpireError),
        };
        let trigger = self.manager.triggers().get(&stream.name);
        let Some(trigger) = trigger else {
            tracing::error!(stream = stream.id, trigger = %stream.name, "stream has an unknown trigger definition");
            self.debug().bump(
                &stream.name,
                &format!("Unknown trigger def '{}'", stream.name),
                1,
            );
            self.finish(kind_label, stream, fail, held).await?;
            return Ok(RunEnd::Failed);
        };
        // Streams of a chunk wait their turn; one that waited long may have been
        // released to another worker meanwhile.
        if !claim.still_ours().await? {
            tracing::warn!(
                stream = stream.id,
                "claim ran out before the stream's turn; another worker retries it"
            );
            self.count(kind_label, "lost");
            return Ok(RunEnd::Lost);
        }
        let pipeline_name = pipeline_of(trigger, kind);
        let end = match pipeline_name {
            None => {
                tracing::debug!(
                    stream = stream.id,
                    "no {kind_label} pipeline; nothing to do"
                );
                let what = match kind {
                    ReadyKind::Fire => "No fire pipeline for",
                    ReadyKind::Expire => "No expire pipeline for",
                };
                self.debug()
                    .bump(&stream.name, &format!("{what} '{}'", stream.name), 1);
                RunEnd::Completed
            }
            Some(name) => match self.pipelines.get(name) {
                None => {
                    tracing::error!(
                        stream = stream.id,
                        pipeline = name,
                        "trigger names an unknown pipeline"
                    );
                    self.debug()
                        .bump(&stream.name, &format!("Unknown pipeline '{name}'"), 1);
                    RunEnd::Failed
                }
                Some(pipeline) => {
                    self.run_pipeline(kind_label, pipeline, stream, claim, held)
                        .await?
                }
            },
        };
        if end == RunEnd::Lost {
            self.count(kind_label, "lost");
        } else if end == RunEnd::Retry {
            let delay = chrono::Duration::from_std(self.settings.retry_delay)
                .unwrap_or(chrono::Duration::seconds(60));
            let outcome = Outcome::Retry {
                not_before: Utc::now() + delay,
            };
            self.finish(kind_label, stream, outcome, held).await?;
        } else if end == RunEnd::Completed {
            let outcome = if self.settings.purge_completed_streams {
                Outcome::Purge
            } else {
                Outcome::Completed
            };
            self.finish(kind_label, stream, outcome, held).await?;
            self.debug().bump(&stream.name, counter, 1);
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            match kind {
                ReadyKind::Fire => c.0 += 1,
                ReadyKind::Expire => c.1 += 1,
            }
        } else {
            self.finish(kind_label, stream, fail, held).await?;
        }
        Ok(end)
    }

    fn count(&self, kind_label: &str, result: &str) {
        self.metrics
            .streams
            .get_or_create(&StreamLabels {
                kind: kind_label.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    async fn run_pipeline(
        &self,
        kind_label: &str,
        pipeline: &Pipeline,
        stream: &Stream,
        claim: &Claim,
        held: &mut Option<Held>,
    ) -> Result<RunEnd, StoreError> {
        let started = Instant::now();
        let stored = match held {
            Some(h) => h.events.remove(&stream.id).unwrap_or_default(),
            None => self.store().stream_events(stream.id).await?,
        };
        let events: Vec<Event> = stored.into_iter().map(|s| s.event).collect();
        let options = RunOptions {
            handler_timeout: Some(self.settings.handler_timeout),
            gate: Some(claim),
        };
        let run = pipeline.run_with(stream, events, self.debug(), options);
        tokio::pin!(run);
        // The heartbeat: renew the claim every third of a lease while the run goes on,
        // in this task (the run is never cancelled half-way through a commit).
        let period = self.settings.lease / 3;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                _ = heartbeat.tick() => claim.beat().await,
            }
        };
        self.metrics
            .pipeline_seconds
            .get_or_create(&KindLabels {
                kind: kind_label.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(output) => {
                if let Some(h) = held {
                    if !output.new_events.is_empty() {
                        h.emitted.push(output.new_events);
                    }
                } else if !output.new_events.is_empty() {
                    // The pipeline committed: its events must not be lost, so a
                    // database hiccup here is retried rather than failing the stream.
                    self.manager
                        .add_events_retrying(&output.new_events, Duration::from_secs(300))
                        .await?;
                    self.metrics
                        .events_emitted
                        .inc_by(output.new_events.len() as u64);
                    if let Some(log) = &self.emitted_log {
                        log.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(output.new_events);
                    }
                }
                Ok(RunEnd::Completed)
            }
            Err(PipelineError::NotCommitted { reason, .. }) => {
                tracing::warn!(stream = stream.id, pipeline = %pipeline.name(), %reason,
                    "pipeline rolled back before its side effects");
                Ok(RunEnd::Lost)
            }
            Err(e @ PipelineError::Retry { .. }) => {
                tracing::warn!(stream = stream.id, pipeline = %pipeline.name(), error = %e,
                    retry_in_s = self.settings.retry_delay.as_secs(), "stream will be retried");
                Ok(RunEnd::Retry)
            }
            Err(e @ PipelineError::Handler { .. }) => {
                tracing::error!(stream = stream.id, pipeline = %pipeline.name(), error = %e, "pipeline failed");
                Ok(RunEnd::Failed)
            }
        }
    }

    async fn finish(
        &self,
        kind_label: &'static str,
        stream: &Stream,
        outcome: Outcome,
        held: &mut Option<Held>,
    ) -> Result<(), StoreError> {
        if let Some(h) = held {
            h.finishes
                .push((kind_label, stream.id, stream.state_serial_no, outcome));
            return Ok(());
        }
        let ours = self
            .store()
            .finish_stream(stream.id, stream.state_serial_no, outcome)
            .await?;
        self.count_finish(kind_label, stream.id, outcome, ours);
        Ok(())
    }

    /// Writes what a chunk held back: the emitted events in one ingest, each group at
    /// the clock its own ingest would have had (the latest of the clock and its
    /// events), then every run's end in one transaction.
    async fn write_held(&self, held: Held) -> Result<(), StoreError> {
        let mut events = Vec::new();
        let mut times = Vec::new();
        let mut at = self.clock().now();
        for group in held.emitted {
            if let Some(latest) = group.iter().map(|e| e.timestamp).max() {
                at = at.max(latest);
            }
            times.extend(std::iter::repeat_n(at, group.len()));
            events.extend(group);
        }
        let mut done = 0;
        while done < events.len() {
            let (_, consumed) = self
                .manager
                .add_events_timed(&events[done..], &times[done..])
                .await?;
            done += consumed.max(1);
        }
        if !events.is_empty() {
            self.metrics.events_emitted.inc_by(events.len() as u64);
            if let Some(log) = &self.emitted_log {
                log.lock().unwrap_or_else(|p| p.into_inner()).extend(events);
            }
        }
        let runs: Vec<(StreamId, i64, Outcome)> = held
            .finishes
            .iter()
            .map(|&(_, id, serial, outcome)| (id, serial, outcome))
            .collect();
        let ours = self.store().finish_streams(&runs).await?;
        for ((kind_label, id, _, outcome), ours) in held.finishes.into_iter().zip(ours) {
            self.count_finish(kind_label, id, outcome, ours);
        }
        Ok(())
    }

    /// Counts a recorded run's end (`ours`: the stream was still this worker's).
    fn count_finish(&self, kind_label: &str, stream_id: StreamId, outcome: Outcome, ours: bool) {
        let result = if !ours {
            tracing::warn!(
                stream = stream_id,
                "claim was lost (lease ran out); another worker retries it"
            );
            "lost"
        } else {
            match outcome {
                Outcome::Completed | Outcome::Purge => "completed",
                Outcome::Error | Outcome::ExpireError => "error",
                Outcome::Retry { .. } => "retry",
            }
        };
        self.count(kind_label, result);
    }

    /// The original's statistics line, and the debug counters.
    pub fn log_statistics(&self) {
        let (fired, expired, loaded) = {
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *c)
        };
        tracing::info!(worker = %self.name, "Loaded {loaded} streams. Fired {fired}, Expired {expired}.");
        self.debug().dump();
    }

    /// Recounts the ready streams for the backlog gauge; a failure leaves the last
    /// count (the pass that follows reports the database's trouble).
    pub async fn refresh_backlog(&self) {
        let now = self.clock().now();
        for (kind, label) in [(ReadyKind::Fire, "fire"), (ReadyKind::Expire, "expire")] {
            match self.store().count_ready(kind, now).await {
                Ok(n) => {
                    self.metrics
                        .ready_streams
                        .get_or_create(&KindLabels { kind: label.into() })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
                Err(e) => tracing::debug!(error = %e, "counting ready streams failed"),
            }
        }
    }

    /// The worker loop: passes until `shutdown`, sleeping `idle_delay` when a pass found
    /// nothing, waiting and retrying when the database is away.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut last_stats = Instant::now();
        let mut last_backlog: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            if last_backlog.is_none_or(|t| t.elapsed() >= BACKLOG_REFRESH) {
                self.refresh_backlog().await;
                last_backlog = Some(Instant::now());
            }
            let pause = match self.run_once(&shutdown).await {
                Ok(report) => {
                    {
                        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
                        c.2 += report.fired + report.expired + report.errors;
                    }
                    if report.is_idle() {
                        Some(self.settings.idle_delay)
                    } else {
                        None
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "database connection went away; retrying");
                    Some(Duration::from_secs(5))
                }
                Err(e) => {
                    tracing::error!(error = %e, "pipeline worker pass failed; retrying");
                    Some(Duration::from_secs(5))
                }
            };
            if last_stats.elapsed() >= self.settings.statistics_period {
                self.log_statistics();
                last_stats = Instant::now();
            }
            if let Some(pause) = pause {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
        tracing::info!(worker = %self.name, "pipeline worker stopped");
    }
}

fn pipeline_of(trigger: &TriggerDefinition, kind: ReadyKind) -> Option<&str> {
    match kind {
        ReadyKind::Fire => trigger.fire_pipeline.as_deref(),
        ReadyKind::Expire => trigger.expire_pipeline.as_deref(),
    }
}
