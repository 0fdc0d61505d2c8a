//! Dry-running trigger and pipeline definitions over recorded notifications
//! (`stv3 replay`): the original had no way to do it.
//!
//! Notifications are ingested one at a time with a [`FollowingClock`] set to each
//! notification's timestamp, and after each one the pipeline worker runs until nothing
//! is ready, so streams fire when the replayed time passes their fire timestamp, as
//! they would have live. With `expire`, the clock is finally moved past every
//! expiration and the worker runs again. Notabene handlers record what they would have
//! published instead of publishing.

use super::clock::{Clock, FollowingClock};
use super::config::LoadedConfig;
use super::engine::{Engine, EngineError};
use crate::event::{format_datetime, Event};
use crate::notabene::RecordingSink;
use crate::store::{DistValue, Page, Store, StoreError, StreamQuery};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Options of a replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// After the input, move the clock past every expiration and run again.
    pub expire: bool,
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
}

/// Replays `notifications` (with their 1-based line numbers) through the engine.
pub async fn replay(
    config: &LoadedConfig,
    store: Arc<dyn Store>,
    notifications: impl IntoIterator<Item = (usize, Value)>,
    options: ReplayOptions,
) -> Result<ReplayOutcome, ReplayError> {
    let clock = Arc::new(FollowingClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let sink = Arc::new(RecordingSink::default());
    let engine = Engine::following(config, store.clone(), clock.clone(), sink.clone())?;
    let emitted = Arc::new(Mutex::new(Vec::<Event>::new()));
    let worker = engine.worker("replay").with_emitted_log(emitted.clone());
    let manager = engine.manager.clone();
    let never = CancellationToken::new();
    let mut out = ReplayOutcome::default();

    let drain = |out: &mut ReplayOutcome, r: super::worker::PassReport| {
        out.fired += r.fired;
        out.expired += r.expired;
        out.errors += r.errors;
    };

    for (line, notification) in notifications {
        out.notifications += 1;
        let event = match manager.distill(&notification) {
            Ok(e) => e,
            Err(reason) => {
                out.dropped.push((line, reason.to_string()));
                continue;
            }
        };
        let report = manager.add_events(std::slice::from_ref(&event)).await?;
        out.stored += report.stored;
        out.duplicates += report.duplicates;
        loop {
            let pass = worker.run_once(&never).await?;
            drain(&mut out, pass);
            if pass.is_idle() {
                break;
            }
        }
    }
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
            loop {
                let pass = worker.run_once(&never).await?;
                drain(&mut out, pass);
                if pass.is_idle() {
                    break;
                }
            }
        }
    }

    let emitted_events = emitted.lock().map(|v| v.clone()).unwrap_or_default();
    out.report = build_report(store.as_ref(), &emitted_events, &sink).await?;
    Ok(out)
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
    for s in all_streams(store).await? {
        let events = store.stream_events(s.id).await?;
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
            "events": events.iter().map(|e| e.event.message_id.clone()).collect::<Vec<_>>(),
        }));
    }
    let mut out: Vec<Value> = emitted.iter().map(event_as_flat_json).collect();
    out.extend(sink.published().into_iter().map(|(_, n)| n));
    Ok(json!({ "streams": streams, "emitted": out }))
}
