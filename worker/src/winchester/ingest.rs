//! The trigger manager: notifications and events into the store.
//!
//! A batch of notifications is distilled in memory and stored in one call to
//! [`Store::ingest`], which also sorts the new events into streams through the
//! [`TriggerSet`]: one transaction per batch, so a consumer acks only after the
//! commit and a redelivered batch stores nothing twice.

use super::clock::{Clock, FollowingClock};
use super::triggers::TriggerSet;
use crate::distiller::{Distiller, Dropped};
use crate::event::Event;
use crate::store::{IngestReport, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a collector records that it is still storing events
/// ([`Store::mark_collector`]): one small write per interval, not per batch.
const COLLECTOR_MARK_EVERY: Duration = Duration::from_secs(5);

/// Counts since the last statistics line.
#[derive(Debug, Default)]
struct Stats {
    received: AtomicU64,
    saved: AtomicU64,
}

/// Distils and stores notifications; stores events (such as those pipelines emit).
pub struct TriggerManager {
    store: Arc<dyn Store>,
    distiller: Option<Arc<Distiller>>,
    triggers: Arc<TriggerSet>,
    clock: Arc<dyn Clock>,
    /// Replays and the sandbox: the clock follows the stored events (the original's
    /// time-sync service, which yagi published each notification's timestamp to).
    time_sync: Option<Arc<FollowingClock>>,
    stats: Stats,
    /// The collector's name (a cell), when this manager stores a collector's
    /// notifications; the console shows when each was last seen.
    collector: OnceLock<String>,
    last_mark: Mutex<Option<Instant>>,
}

/// The result of ingesting a batch of notifications.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub report: IngestReport,
    /// Index in the batch and the reason, for every notification not turned into an
    /// event (the caller dead-letters or reports them).
    pub dropped: Vec<(usize, Dropped)>,
}

impl TriggerManager {
    pub fn new(
        store: Arc<dyn Store>,
        distiller: Option<Arc<Distiller>>,
        triggers: Arc<TriggerSet>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        TriggerManager {
            store,
            distiller,
            triggers,
            clock,
            time_sync: None,
            stats: Stats::default(),
            collector: OnceLock::new(),
            last_mark: Mutex::new(None),
        }
    }

    /// Makes ingest move `clock` forward to the latest timestamp of each batch before
    /// storing it, so "now" follows replayed or simulated traffic.
    pub fn with_time_sync(mut self, clock: Arc<FollowingClock>) -> Self {
        self.time_sync = Some(clock);
        self
    }

    /// Names the collector whose notifications this manager stores (set once; later
    /// calls are ignored).
    pub fn set_collector(&self, name: &str) {
        if !name.is_empty() {
            let _ = self.collector.set(name.to_string());
        }
    }

    /// Records, at most every [`COLLECTOR_MARK_EVERY`], that the collector stored
    /// `events`. Best effort: a failure is logged and the batch stays acked-able.
    async fn mark_collector(&self, events: &[Event]) {
        let Some(name) = self.collector.get() else {
            return;
        };
        let Some(newest) = events.iter().map(|e| e.timestamp).max() else {
            return;
        };
        {
            let mut last = self.last_mark.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < COLLECTOR_MARK_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self
            .store
            .mark_collector(name, chrono::Utc::now(), newest)
            .await
        {
            tracing::warn!(collector = %name, error = %e, "could not record the collector as seen");
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn triggers(&self) -> &Arc<TriggerSet> {
        &self.triggers
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Distils one notification (no distiller configured: everything is dropped).
    pub fn distill(&self, notification: &Value) -> Result<Event, Dropped> {
        self.distill_at(notification, self.clock.now())
    }

    /// [`Self::distill`] with `now` (the time given to a notification without one).
    pub fn distill_at(&self, notification: &Value, now: DateTime<Utc>) -> Result<Event, Dropped> {
        match &self.distiller {
            Some(d) => d.distill_at(notification, now),
            None => Err(Dropped::NoMatchingDefinition {
                event_type: notification
                    .get("event_type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }),
        }
    }

    /// Distils a batch and stores its events in one transaction.
    pub async fn add_notifications(
        &self,
        notifications: &[Value],
    ) -> Result<BatchOutcome, StoreError> {
        let mut events = Vec::with_capacity(notifications.len());
        let mut dropped = Vec::new();
        for (i, n) in notifications.iter().enumerate() {
            match self.distill(n) {
                Ok(e) => events.push(e),
                Err(reason) => dropped.push((i, reason)),
            }
        }
        self.stats
            .received
            .fetch_add(notifications.len() as u64, Ordering::Relaxed);
        let report = self.add_events(&events).await?;
        Ok(BatchOutcome { report, dropped })
    }

    /// Stores events (already distilled) in one transaction and sorts them into streams.
    pub async fn add_events(&self, events: &[Event]) -> Result<IngestReport, StoreError> {
        if events.is_empty() {
            return Ok(IngestReport::default());
        }
        if let Some(sync) = &self.time_sync {
            if let Some(latest) = events.iter().map(|e| e.timestamp).max() {
                sync.advance_to(latest);
            }
        }
        let report = self
            .store
            .ingest(events, self.triggers.as_ref(), self.clock.now())
            .await?;
        self.stats.saved.fetch_add(report.stored, Ordering::Relaxed);
        self.mark_collector(events).await;
        if report.duplicates > 0 {
            tracing::info!(duplicates = report.duplicates, "skipped duplicate events");
        }
        Ok(report)
    }

    /// Replay's batched ingest ([`Store::ingest_timed`]): each event stored at its own
    /// replayed time, up to the first that a pipeline pass would have had to precede;
    /// the clock follows the events consumed. Returns the report and how many.
    pub async fn add_events_timed(
        &self,
        events: &[Event],
        times: &[DateTime<Utc>],
    ) -> Result<(IngestReport, usize), StoreError> {
        let (report, consumed) = self
            .store
            .ingest_timed(events, self.triggers.as_ref(), times)
            .await?;
        if let (Some(sync), Some(latest)) = (&self.time_sync, times[..consumed].iter().max()) {
            sync.advance_to(*latest);
        }
        self.stats.saved.fetch_add(report.stored, Ordering::Relaxed);
        Ok((report, consumed))
    }

    /// Like [`Self::add_events`], retrying transient store errors (database away,
    /// deadlock) with back-off until `give_up_after`; events are never dropped silently.
    pub async fn add_events_retrying(
        &self,
        events: &[Event],
        give_up_after: Duration,
    ) -> Result<IngestReport, StoreError> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            match self.add_events(events).await {
                Err(e) if e.is_transient() && started.elapsed() < give_up_after => {
                    tracing::warn!(error = %e, retry_in = ?pause, "storing events failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                other => return other,
            }
        }
    }

    /// The original's statistics line, then the triggers' debug counters.
    pub fn log_statistics(&self) {
        let received = self.stats.received.swap(0, Ordering::Relaxed);
        let saved = self.stats.saved.swap(0, Ordering::Relaxed);
        tracing::info!("Received {received} notifications. Saved {saved} events.");
        self.triggers.debug().dump();
    }
}
