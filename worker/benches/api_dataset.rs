//! The API benchmark's dataset (issue 7): fills a database with at least `--events`
//! events (default 1,000,000) and `--streams` streams (default 100,000) the way
//! production fills it: `notigen` Nova traffic, distilled and stored through the
//! engine's `TriggerManager` (`Store::ingest`, batches of `--batch`), with a pipeline
//! worker running alongside on the same following clock, so streams fire, expire and
//! complete (the sandbox's logger + usage pipelines; notabene publishes to nowhere).
//!
//! ```sh
//! cargo bench -p stv3-worker --bench api_dataset -- \
//!     [--database mysql://stv3:stv3@127.0.0.1:3306/stv3_bench_api] \
//!     [--events 1000000] [--streams 100000] [--ids-out target/api-bench/ids]
//! cargo bench -p stv3-worker --bench api_dataset -- --dry-run 100000
//! ```
//!
//! Idempotent and resumable: a database that already holds the targets is left
//! alone (only the id lists are written); a partial one (an interrupted run) is
//! continued from its newest notigen event, the same seeded notigen regenerating the
//! stream and `Store::ingest` dropping the overlap as duplicates. `--dry-run N` only
//! generates and distils N notifications and prints events per stream, to size the
//! notigen population.
//!
//! `--ids-out DIR` writes what the load generator varies its requests over:
//! `instance_ids` (instance ids of stored events, shuffled), `event_names`,
//! `trigger_names`, one per line.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Connection;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use worker::event::TraitValue;
use worker::notabene::{NotificationSink, PublishError, PublishTarget};
use worker::notigen::{Generator, GeneratorOptions};
use worker::store::{self, EventQuery, Page, Store, StreamQuery, StreamState};
use worker::winchester::clock::FollowingClock;
use worker::winchester::config::{load_config, LoadedConfig};
use worker::winchester::engine::Engine;

const DEFAULT_URL: &str = "mysql://stv3:stv3@127.0.0.1:3306/stv3_bench_api";

/// Notigen's population, sized so that the event target comes with about a tenth as
/// many streams: the sandbox trigger makes one stream per instance and day, and at
/// one operation per instance and day the streams hold about 9 events each (measured
/// with `--dry-run 300000`: 8.9), so 1,000,000 events come with ~110,000 streams:
/// 5,000 instances over ~20 simulated days.
const INSTANCES: usize = 5_000;
const OPS_PER_DAY: f64 = 1.0;
const SEED: u64 = 7;

struct Args {
    url: String,
    events: u64,
    streams: u64,
    batch: usize,
    ids_out: Option<PathBuf>,
    dry_run: Option<usize>,
    /// notigen's operations per instance and day (events per stream follow it).
    ops_per_day: f64,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: u64| {
        value(name).map_or(default, |v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"))
        })
    };
    Args {
        url: value("--database")
            .or_else(|| std::env::var("STV3_BENCH_API_DATABASE").ok())
            .unwrap_or_else(|| DEFAULT_URL.to_string()),
        events: number("--events", 1_000_000),
        streams: number("--streams", 100_000),
        batch: number("--batch", 1_000) as usize,
        ids_out: value("--ids-out").map(PathBuf::from),
        dry_run: value("--dry-run").map(|v| v.parse().expect("--dry-run N")),
        ops_per_day: value("--ops-per-day")
            .map_or(OPS_PER_DAY, |v| v.parse().expect("--ops-per-day X")),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn config() -> LoadedConfig {
    load_config(&root().join("etc/winchester.yaml")).expect("etc/winchester.yaml loads")
}

fn generator(ops_per_day: f64) -> Generator {
    Generator::new(GeneratorOptions {
        seed: SEED,
        instances: INSTANCES,
        tenants: 500,
        operations_per_instance_per_day: ops_per_day,
        ..GeneratorOptions::default()
    })
    .expect("notigen options")
}

/// Notabene's destination in the benchmark: nothing (the published notifications are
/// not what is measured, and keeping them would grow without bound).
struct Discard;

#[async_trait]
impl NotificationSink for Discard {
    async fn publish(&self, _: &PublishTarget, _: &Value) -> Result<(), PublishError> {
        Ok(())
    }
}

/// Creates the MariaDB database the URL names if it is missing (the test user may
/// create `stv3_*` databases), connecting through the server's test database.
async fn ensure_mysql_database(url: &str) {
    let (prefix, name) = url.rsplit_once('/').expect("database name in the URL");
    let name = name.split('?').next().unwrap_or(name);
    let base = format!("{prefix}/stv3_test");
    let mut conn = sqlx::MySqlConnection::connect(&base)
        .await
        .expect("MariaDB answers (scripts/services.sh up)");
    sqlx::query(&format!("CREATE DATABASE IF NOT EXISTS `{name}`"))
        .execute(&mut conn)
        .await
        .expect("create database");
}

/// Simulated time of the newest stored notigen event (the usage pipeline's
/// `.verified`/`.failed`/`.warnings` events are not notigen's), to resume from.
async fn newest_notigen_event(url: &str) -> Option<DateTime<Utc>> {
    const SQL: &str = "SELECT MAX(e.generated) FROM event e JOIN event_type et \
         ON et.id = e.event_type_id WHERE et.name NOT LIKE 'compute.instance.exists.%'";
    let micros: Option<i64> = if url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
        sqlx::query_scalar(SQL)
            .fetch_one(&mut conn)
            .await
            .expect("newest event")
    } else {
        let mut conn = sqlx::MySqlConnection::connect(url).await.expect("mysql");
        sqlx::query_scalar(SQL)
            .fetch_one(&mut conn)
            .await
            .expect("newest event")
    };
    micros.and_then(DateTime::from_timestamp_micros)
}

async fn counts(store: &dyn Store) -> (u64, u64) {
    let events = store
        .count_events(&EventQuery::default())
        .await
        .expect("count events");
    let streams = store
        .count_streams(&StreamQuery::default())
        .await
        .expect("count streams");
    (events, streams)
}

/// Generates and distils `n` notifications without storing them: events, stream
/// keys (instance and day, as the sandbox trigger distinguishes) and the simulated span.
fn dry_run(n: usize, ops_per_day: f64) {
    let cfg = config();
    let distiller = cfg.distiller.as_ref().expect("distiller");
    let mut keys = HashSet::new();
    let mut events = 0u64;
    let mut first = None;
    let mut last = None;
    for (t, notification) in std::iter::from_fn({
        let mut g = generator(ops_per_day);
        move || g.next_timed()
    })
    .take(n)
    {
        first.get_or_insert(t);
        last = Some(t);
        let Ok(e) = distiller.distill_at(&notification, t) else {
            continue;
        };
        events += 1;
        if let Some(TraitValue::Text(id)) = e.traits.get("instance_id") {
            keys.insert((id.clone(), e.timestamp.date_naive()));
        }
    }
    let days = match (first, last) {
        (Some(a), Some(b)) => (b - a).num_seconds() as f64 / 86_400.0,
        _ => 0.0,
    };
    println!(
        "{n} notifications → {events} events, ~{} streams (instance × day), {:.1} events/stream, {days:.1} simulated days",
        keys.len(),
        events as f64 / keys.len().max(1) as f64
    );
}

/// Loads until the targets are met. Returns (notifications ingested, seconds).
async fn load(
    args: &Args,
    store: Arc<dyn Store>,
    resume_from: Option<DateTime<Utc>>,
) -> (u64, f64) {
    let cfg = config();
    let mut generator = generator(args.ops_per_day);
    let start = resume_from.unwrap_or(generator.options().start);
    let clock = Arc::new(FollowingClock::new(start));
    let engine = Arc::new(
        Engine::following(&cfg, store.clone(), clock.clone(), Arc::new(Discard)).expect("engine"),
    );

    // Skip what an interrupted run stored already (equal timestamps are ingested
    // again and recognised as duplicates).
    let mut skipped = 0u64;
    let mut pending: Option<Value> = None;
    if let Some(from) = resume_from {
        while let Some((t, n)) = generator.next_timed() {
            if t >= from {
                pending = Some(n);
                break;
            }
            skipped += 1;
        }
        println!("resuming after {skipped} notifications already stored (up to {from})");
    }

    // The pipeline worker runs alongside, as in production: streams fire on their
    // `.exists` and expire two simulated days after their last event.
    let stop = CancellationToken::new();
    let ingest_done = Arc::new(AtomicBool::new(false));
    let streams_done = Arc::new(AtomicU64::new(0));
    let worker = {
        let engine = engine.clone();
        let stop = stop.clone();
        let ingest_done = ingest_done.clone();
        let streams_done = streams_done.clone();
        tokio::spawn(async move {
            let worker = engine.worker("api-bench");
            loop {
                match worker.run_once(&stop).await {
                    Ok(r) => {
                        streams_done.fetch_add(r.fired + r.expired + r.errors, Ordering::Relaxed);
                        if r.is_idle() {
                            if ingest_done.load(Ordering::Relaxed) {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    Err(e) => {
                        eprintln!("pipeline pass failed (retrying): {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    };

    let started = Instant::now();
    let mut ingested = 0u64;
    let mut stored = 0u64;
    let mut last_report = Instant::now();
    let mut batch: Vec<Value> = Vec::with_capacity(args.batch);
    batch.extend(pending);
    let (mut events, mut streams) = counts(store.as_ref()).await;
    'load: loop {
        while batch.len() < args.batch {
            match generator.next_notification() {
                Some(n) => batch.push(n),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let mut tries = 0;
        let out = loop {
            match engine.manager.add_notifications(&batch).await {
                Ok(out) => break out,
                Err(e) if e.is_transient() && tries < 10 => {
                    tries += 1;
                    eprintln!("ingest failed (retrying): {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => panic!("ingest failed: {e}"),
            }
        };
        ingested += batch.len() as u64;
        stored += out.report.stored;
        events += out.report.stored;
        streams += out.report.streams_created;
        batch.clear();
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{:>6.0} s: {events} events (target {}), {streams} streams (target {}), {} streams run, {:.0} events/s, simulated {}",
                secs,
                args.events,
                args.streams,
                streams_done.load(Ordering::Relaxed),
                stored as f64 / secs,
                engine.manager.clock().now().format("%Y-%m-%d %H:%M")
            );
        }
        if events >= args.events && streams >= args.streams {
            break 'load;
        }
    }
    ingest_done.store(true, Ordering::Relaxed);
    worker.await.expect("pipeline worker");
    drop(stop);
    (ingested, started.elapsed().as_secs_f64())
}

/// Writes the id lists the load generator draws from (see the module comment).
async fn write_ids(store: &dyn Store, dir: &Path) {
    std::fs::create_dir_all(dir).expect("ids directory");
    // Instance ids from a spread of pages of `compute.instance.update`s, newest and
    // oldest, so requests hit the whole table rather than its hot end.
    let mut ids: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for ascending in [false, true] {
        let mut after = None;
        for _ in 0..5 {
            let page = store
                .find_events(&EventQuery {
                    event_type: Some("compute.instance.create.end".into()),
                    page: Page {
                        after,
                        ascending,
                        limit: Some(1000),
                    },
                    ..EventQuery::default()
                })
                .await
                .expect("events");
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for e in &page {
                if let Some(TraitValue::Text(id)) = e.event.traits.get("instance_id") {
                    if seen.insert(id.clone()) {
                        ids.push(id.clone());
                    }
                }
            }
        }
    }
    // A deterministic shuffle (xorshift), so consecutive requests are unrelated.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..ids.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids.swap(i, (x % (i as u64 + 1)) as usize);
    }
    std::fs::write(dir.join("instance_ids"), ids.join("\n") + "\n").expect("write instance_ids");
    let names = store.event_types().await.expect("event types");
    std::fs::write(dir.join("event_names"), names.join("\n") + "\n").expect("write event_names");
    let cfg = config();
    let triggers: Vec<&str> = cfg.triggers.iter().map(|t| t.name.as_str()).collect();
    std::fs::write(dir.join("trigger_names"), triggers.join("\n") + "\n")
        .expect("write trigger_names");
    println!(
        "wrote {} instance ids, {} event names, {} trigger names to {}",
        ids.len(),
        names.len(),
        triggers.len(),
        dir.display()
    );
}

fn main() {
    let args = parse_args();
    if let Some(n) = args.dry_run {
        dry_run(n, args.ops_per_day);
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        if !args.url.starts_with("sqlite") {
            ensure_mysql_database(&args.url).await;
        }
        let label = store::redact_url(&args.url);
        let store = store::open(&args.url).await.expect("open the database");
        store.migrate().await.expect("migrate");
        let (events, streams) = counts(store.as_ref()).await;
        if events >= args.events && streams >= args.streams {
            println!("{label}: {events} events, {streams} streams already stored; nothing to load");
        } else {
            let resume_from = if events > 0 {
                newest_notigen_event(&args.url).await
            } else {
                None
            };
            println!(
                "{label}: {events} events, {streams} streams stored; loading to {} events and {} streams",
                args.events, args.streams
            );
            let (ingested, secs) = load(&args, store.clone(), resume_from).await;
            println!(
                "ingested {ingested} notifications in {secs:.0} s ({:.0}/s)",
                ingested as f64 / secs
            );
        }
        let (events, streams) = counts(store.as_ref()).await;
        let mut by_state = Vec::new();
        for state in StreamState::ALL {
            let n = store
                .count_streams(&StreamQuery {
                    state: Some(state),
                    ..StreamQuery::default()
                })
                .await
                .expect("count streams");
            if n > 0 {
                by_state.push(format!("{state} {n}"));
            }
        }
        println!("dataset: {events} events, {streams} streams ({})", by_state.join(", "));
        if let Some(dir) = &args.ids_out {
            write_ids(store.as_ref(), dir).await;
        }
    });
}
