//! Engine benchmark: ingest (distill + store + streams) on SQLite and MariaDB next to
//! the floor of bare multi-row inserts of the same rows into the same database; streams
//! expired per second through the sandbox pipeline (logger, usage, notabene); and the
//! per-event cost of joining a stream of 10, 1,000 and 10,000 events.
//!
//! `cargo bench -p stv3-worker --bench engine [-- --notifications N] [-- --no-mysql]`
//! MariaDB comes from `STV3_TEST_MYSQL_URL` (`scripts/services.sh up`); each run makes
//! its own `stv3_bench_*` databases and drops them.

mod common;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::{bench_floor, drop_db, fresh_db, BATCH};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use worker::event::{Event, TraitValue};
use worker::notabene::RecordingSink;
use worker::store::{self, Store};
use worker::winchester::clock::{Clock, FollowingClock};
use worker::winchester::config::{load_config, LoadedConfig};
use worker::winchester::debug::DebugManager;
use worker::winchester::definition::load_triggers;
use worker::winchester::engine::Engine;
use worker::winchester::ingest::TriggerManager;
use worker::winchester::triggers::TriggerSet;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `copies` of the 40-notification Nova sample, each copy with its own message ids
/// and instance ids (so its own streams), in the sample's time order.
fn notifications(count: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("worker/tests/data/notifications-sample.jsonl"))
        .expect("sample notifications");
    let sample: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut out = Vec::with_capacity(count);
    let mut copy = 0usize;
    while out.len() < count {
        for (i, n) in sample.iter().enumerate() {
            if out.len() == count {
                break;
            }
            let mut n = n.clone();
            n["message_id"] = Value::String(format!("{copy:08x}-0000-4000-8000-{i:012x}"));
            if let Some(id) = n["payload"]["instance_id"].as_str() {
                n["payload"]["instance_id"] = Value::String(format!("{id}-{copy}"));
            }
            out.push(n);
        }
        copy += 1;
    }
    out
}

fn config() -> LoadedConfig {
    load_config(&root().join("etc/winchester.yaml")).expect("etc/winchester.yaml loads")
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:.0}", n as f64 / secs)
}

/// Ingest through the engine (distill + store + streams), batches of 100.
async fn bench_ingest(kind: &str, input: &[Value]) -> (f64, usize) {
    let db = fresh_db(kind).await;
    let store = store::open(&db.url).await.expect("open");
    store.migrate().await.expect("migrate");
    let cfg = config();
    let clock = Arc::new(FollowingClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let engine = Engine::new(
        &cfg,
        store.clone(),
        clock.clone(),
        Arc::new(RecordingSink::default()),
    )
    .expect("engine");
    let started = Instant::now();
    let mut stored = 0usize;
    for batch in input.chunks(BATCH) {
        if let Some(latest) = batch
            .iter()
            .filter_map(|n| engine.manager.distill(n).ok())
            .map(|e| e.timestamp)
            .max()
        {
            clock.advance_to(latest);
        }
        let out = engine
            .manager
            .add_notifications(batch)
            .await
            .expect("ingest");
        stored += out.report.stored as usize;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(engine);
    drop(store);
    drop_db(db).await;
    (secs, stored)
}

/// Streams expired per second through the sandbox's expire pipeline (logger, usage,
/// notabene into a recording sink), after ingesting `input`.
async fn bench_expire(kind: &str, input: &[Value]) -> (f64, u64) {
    let db = fresh_db(kind).await;
    let store = store::open(&db.url).await.expect("open");
    store.migrate().await.expect("migrate");
    let cfg = config();
    let clock = Arc::new(FollowingClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let engine = Engine::new(
        &cfg,
        store.clone(),
        clock.clone(),
        Arc::new(RecordingSink::default()),
    )
    .expect("engine");
    let mut latest = DateTime::<Utc>::UNIX_EPOCH;
    for batch in input.chunks(BATCH) {
        for n in batch {
            if let Ok(e) = engine.manager.distill(n) {
                latest = latest.max(e.timestamp);
            }
        }
        clock.advance_to(latest);
        engine
            .manager
            .add_notifications(batch)
            .await
            .expect("ingest");
    }
    clock.advance_to(latest + ChronoDuration::days(30));
    let worker = engine.worker("bench");
    let never = CancellationToken::new();
    let started = Instant::now();
    let mut done = 0;
    loop {
        let r = worker.run_once(&never).await.expect("pass");
        done += r.fired + r.expired + r.errors;
        if r.is_idle() {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    drop(worker);
    drop(engine);
    drop(store);
    drop_db(db).await;
    (secs, done)
}

const ONE_STREAM: &str = r#"
- name: one_stream
  distinguished_by: [instance_id]
  expiration: "$last + 30d"
  fire_pipeline: p
  match_criteria:
    - event_type: compute.instance.*
  fire_criteria:
    - event_type: compute.instance.exists
      number: 1000000000
"#;

fn stream_event(i: usize, t0: DateTime<Utc>) -> Event {
    let mut traits = BTreeMap::new();
    traits.insert(
        "instance_id".into(),
        TraitValue::Text("the-instance".into()),
    );
    traits.insert("tenant_id".into(), TraitValue::Text("tenant".into()));
    traits.insert("memory_mb".into(), TraitValue::Int(512));
    traits.insert("state".into(), TraitValue::Text("active".into()));
    Event {
        event_type: "compute.instance.update".into(),
        message_id: format!("s-{i:09}"),
        timestamp: t0 + ChronoDuration::seconds(i as i64),
        traits,
    }
}

/// µs per event appended to one stream that already holds `prefill` events.
async fn bench_stream_length(kind: &str, prefill: usize) -> f64 {
    let db = fresh_db(kind).await;
    let store: Arc<dyn Store> = store::open(&db.url).await.expect("open");
    store.migrate().await.expect("migrate");
    let triggers = load_triggers(ONE_STREAM, "bench.yaml", None).expect("trigger");
    let debug = Arc::new(DebugManager::new([("one_stream".to_string(), 0u8)]));
    let t0 = DateTime::parse_from_rfc3339("2015-02-27T00:00:00Z")
        .expect("t0")
        .with_timezone(&Utc);
    let clock = Arc::new(FollowingClock::new(t0));
    let manager = TriggerManager::new(
        store.clone(),
        None,
        Arc::new(TriggerSet::new(triggers, debug)),
        clock.clone() as Arc<dyn Clock>,
    );
    let events: Vec<Event> = (0..prefill + 1000).map(|i| stream_event(i, t0)).collect();
    for chunk in events[..prefill].chunks(500) {
        manager.add_events(chunk).await.expect("prefill");
    }
    let started = Instant::now();
    for chunk in events[prefill..].chunks(BATCH) {
        manager.add_events(chunk).await.expect("append");
    }
    let per_event = started.elapsed().as_secs_f64() * 1e6 / 1000.0;
    let streams = store
        .count_streams(&Default::default())
        .await
        .expect("count");
    assert_eq!(streams, 1, "everything joined one stream");
    drop(manager);
    drop(store);
    drop_db(db).await;
    per_event
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = args
        .iter()
        .position(|a| a == "--notifications")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000usize);
    let with_mysql = !args.iter().any(|a| a == "--no-mysql");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let input = notifications(count);
        let cfg = config();
        let distiller = cfg.distiller.as_ref().expect("distiller");
        let events: Vec<Event> = input
            .iter()
            .filter_map(|n| distiller.distill_at(n, Utc::now()).ok())
            .collect();
        println!("{count} notifications ({} events), batches of {BATCH}\n", events.len());
        println!("| database | ingest (distill + store + streams) | floor (bare multi-row inserts) | ratio | streams expired/s (logger+usage+notabene) |");
        println!("|---|---|---|---|---|");
        let mut kinds = vec!["sqlite"];
        if with_mysql {
            kinds.push("mysql");
        }
        for kind in &kinds {
            let (ingest_secs, stored) = bench_ingest(kind, &input).await;
            let floor_secs = bench_floor(kind, &events).await;
            let (expire_secs, streams) = bench_expire(kind, &input).await;
            println!(
                "| {kind} | {} events/s ({stored} in {ingest_secs:.2} s) | {} events/s ({floor_secs:.2} s) | {:.2} | {} streams/s ({streams} in {expire_secs:.2} s) |",
                rate(stored, ingest_secs),
                rate(events.len(), floor_secs),
                floor_secs / ingest_secs,
                rate(streams as usize, expire_secs),
            );
        }
        println!("\n| database | stream of 10 | stream of 1,000 | stream of 10,000 |");
        println!("|---|---|---|---|");
        for kind in &kinds {
            let mut cells = Vec::new();
            for prefill in [10, 1_000, 10_000] {
                cells.push(format!("{:.1} µs/event", bench_stream_length(kind, prefill).await));
            }
            println!("| {kind} | {} |", cells.join(" | "));
        }
    });
}
