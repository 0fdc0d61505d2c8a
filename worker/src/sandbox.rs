//! The sandbox: the whole system in one process, on the embedded default.
//!
//! notigen → ingest → store → two pipeline workers, with a live view of what happens.
//! Like the original sandbox (which ran notigen against a time-sync service), time
//! follows the generated notifications: a simulated day passes in seconds, so streams
//! fire on end-of-day `.exists` audits and expire two simulated days later while you
//! watch. Data lives in `./data/` and survives restarts (`--reset` clears it); on a
//! restart the simulation resumes from the latest stored event's time.
//!
//! Long-running parts are [`Service`]s spawned from one [`SandboxContext`]: the
//! generator, the ingest path (in-process, or through RabbitMQ and the yagi consumer),
//! the pipeline workers, the live view. The API server joins the list when it lands.

use crate::event::Event;
use crate::notabene::{AmqpParams, AmqpPublisher, NotificationSink, PublishTarget};
use crate::notigen::{Generator, GeneratorOptions};
use crate::store::{self, EventQuery, Page, Store, StreamQuery, StreamState};
use crate::winchester::clock::{Clock, FollowingClock};
use crate::winchester::config::LoadedConfig;
use crate::winchester::engine::Engine;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How the sandbox runs (`stv3 sandbox --help`).
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub config: LoadedConfig,
    /// Database URL; default `sqlite://<data_dir>/winchester.db`.
    pub database: Option<String>,
    pub data_dir: PathBuf,
    /// Delete the data directory first.
    pub reset: bool,
    /// Generated notifications per real second.
    pub rate: f64,
    pub instances: usize,
    pub seed: u64,
    /// Publish to RabbitMQ and ingest through the yagi consumer (this URL), instead of
    /// in-process.
    pub amqp: Option<String>,
    /// yagi.conf describing the queues (with `amqp`).
    pub yagi_config: Option<PathBuf>,
    pub workers: usize,
    /// Stop after this long (tests, demos); None runs until Ctrl-C.
    pub run_for: Option<Duration>,
    /// Where the REST API serving this sandbox's database listens (`./build.sh` starts
    /// `stv3-api` beside it), shown in the live view with a klugman command to try.
    pub api_url: Option<String>,
}

/// Counters the services share with the live view.
#[derive(Debug, Default)]
pub struct Counters {
    pub generated: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub dropped: AtomicU64,
    pub fired: AtomicU64,
    pub expired: AtomicU64,
    pub pipeline_errors: AtomicU64,
}

/// What every sandbox service gets.
#[derive(Clone)]
pub struct SandboxContext {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub clock: Arc<FollowingClock>,
    pub counters: Arc<Counters>,
    pub shutdown: CancellationToken,
    pub database_label: String,
    /// See [`SandboxOptions::api_url`].
    pub api_url: Option<String>,
}

/// A long-running part of the sandbox.
pub type Service = tokio::task::JoinHandle<()>;

/// Runs the sandbox until Ctrl-C / SIGTERM (or `run_for`). Returns the final counts.
pub async fn run(options: SandboxOptions, shutdown: CancellationToken) -> Result<Arc<Counters>> {
    if options.reset && options.data_dir.exists() {
        std::fs::remove_dir_all(&options.data_dir)
            .with_context(|| format!("cannot clear {}", options.data_dir.display()))?;
    }
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create {}", options.data_dir.display()))?;
    let log = options.data_dir.join("sandbox.log");
    crate::observe::init_logging_to_file(&log)
        .with_context(|| format!("cannot write {}", log.display()))?;
    let url = options
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/winchester.db", options.data_dir.display()));
    let database_label = store::redact_url(&url);
    let store = store::open(&url)
        .await
        .with_context(|| format!("opening {database_label}"))?;
    store.migrate().await.context("migrating the database")?;

    // Resume the simulation where the stored data ends.
    let latest = latest_event_time(store.as_ref()).await?;
    let start = latest.unwrap_or_else(|| {
        Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_else(Utc::now)
            - chrono::Duration::days(7)
    });
    let clock = Arc::new(FollowingClock::new(start));
    let publisher: Arc<dyn NotificationSink> = Arc::new(AmqpPublisher::new());
    let mut config = options.config.clone();
    // Lively: idle workers look again every second rather than every ten.
    config.settings.pipeline_worker_delay = Duration::from_secs(1);
    let engine = Arc::new(
        Engine::following(&config, store.clone(), clock.clone(), publisher)
            .context("assembling the engine")?,
    );
    let ctx = SandboxContext {
        store,
        engine,
        clock,
        counters: Arc::new(Counters::default()),
        shutdown: shutdown.clone(),
        database_label,
        api_url: options.api_url.clone(),
    };

    let generator = Generator::new(GeneratorOptions {
        seed: options.seed ^ start.timestamp() as u64,
        instances: options.instances,
        start: start + chrono::Duration::seconds(1),
        ..GeneratorOptions::default()
    })
    .map_err(|e| anyhow::anyhow!("notigen: {e}"))?;

    let mut services: Vec<Service> = Vec::new();
    let (tx, rx) = mpsc::channel::<Vec<Value>>(16);
    services.push(spawn_generator(&ctx, generator, options.rate, tx));
    match &options.amqp {
        None => services.push(spawn_ingest(&ctx, rx)),
        Some(url) => services.extend(spawn_amqp_ingest(&ctx, rx, url, &options)?),
    }
    for i in 0..options.workers.max(1) {
        services.push(spawn_worker(&ctx, i + 1));
    }
    services.push(spawn_view(&ctx));

    if let Some(d) = options.run_for {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            s.cancel();
        });
    }
    for s in services {
        let _ = s.await;
    }
    Ok(ctx.counters)
}

async fn latest_event_time(store: &dyn Store) -> Result<Option<DateTime<Utc>>> {
    let newest = store
        .find_events(&EventQuery {
            page: Page {
                limit: Some(1),
                ..Default::default()
            },
            ..Default::default()
        })
        .await?;
    Ok(newest.first().map(|e| e.event.timestamp))
}

/// notigen at `rate` notifications per real second, in batches every 100 ms.
fn spawn_generator(
    ctx: &SandboxContext,
    mut generator: Generator,
    rate: f64,
    tx: mpsc::Sender<Vec<Value>>,
) -> Service {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let tick = Duration::from_millis(100);
        let per_tick = (rate * tick.as_secs_f64()).max(1.0);
        let mut owed = 0.0;
        let mut interval = tokio::time::interval(tick);
        loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            owed += per_tick;
            let n = owed.floor() as usize;
            owed -= n as f64;
            let batch: Vec<Value> = generator.by_ref().take(n).collect();
            if batch.is_empty() {
                break;
            }
            ctx.counters
                .generated
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if tx.send(batch).await.is_err() {
                break;
            }
        }
    })
}

/// In-process ingest: each batch distilled and stored in one transaction; the clock
/// follows the notifications (the original sandbox's time sync).
fn spawn_ingest(ctx: &SandboxContext, mut rx: mpsc::Receiver<Vec<Value>>) -> Service {
    let ctx = ctx.clone();
    ctx.engine.manager.set_collector("sandbox");
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            let mut events: Vec<Event> = Vec::with_capacity(batch.len());
            for n in &batch {
                match ctx.engine.manager.distill(n) {
                    Ok(e) => events.push(e),
                    Err(_) => {
                        ctx.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            match ctx
                .engine
                .manager
                .add_events_retrying(&events, Duration::from_secs(3600))
                .await
            {
                Ok(r) => {
                    ctx.counters.stored.fetch_add(r.stored, Ordering::Relaxed);
                    ctx.counters
                        .duplicates
                        .fetch_add(r.duplicates, Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "ingest failed; batch skipped"),
            }
            // On shutdown the generator stops and closes the channel; what it already
            // handed over is still stored, so nothing generated is lost.
        }
    })
}

/// Ingest through RabbitMQ: the generated notifications are published (as the
/// original notabene did) and the yagi consumer, in-process, stores them (moving the
/// clock as it goes, as the original's yagi published times to its time sync).
fn spawn_amqp_ingest(
    ctx: &SandboxContext,
    mut rx: mpsc::Receiver<Vec<Value>>,
    url: &str,
    options: &SandboxOptions,
) -> Result<Vec<Service>> {
    let params = AmqpParams::from_url(url).map_err(|e| anyhow::anyhow!("--amqp: {e}"))?;
    let yagi_path = options
        .yagi_config
        .clone()
        .context("--amqp needs a yagi.conf (--yagi-config)")?;
    let mut yagi =
        crate::yagi::config::load_yagi_config(&yagi_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    yagi.broker.params = params.clone();
    let consumer = yagi
        .consumers
        .first()
        .cloned()
        .context("the yagi.conf names no queue")?;
    let target = PublishTarget {
        connection: params,
        exchange: consumer.exchange.clone(),
        exchange_type: consumer.exchange_type.clone(),
        queue_name: consumer.queue.clone(),
    };
    let publisher = Arc::new(AmqpPublisher::new());
    let publishing = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            for n in &batch {
                if let Err(e) = publisher.publish(&target, n).await {
                    tracing::warn!(error = %e, "publishing to RabbitMQ failed");
                }
            }
        }
        publisher.close().await;
    });
    let cctx = ctx.clone();
    let consuming = tokio::spawn(async move {
        cctx.engine.manager.set_collector("sandbox");
        let parts = crate::yagi::EngineParts {
            manager: Some(cctx.engine.manager.clone()),
            shoebox: None,
        };
        let result = crate::yagi::run_consumer(
            yagi,
            parts,
            crate::yagi::metrics::YagiMetrics::new(),
            crate::observe::Health::default(),
            cctx.shutdown.clone(),
        )
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "yagi consumer stopped");
            cctx.shutdown.cancel();
        }
    });
    Ok(vec![publishing, consuming])
}

fn spawn_worker(ctx: &SandboxContext, n: usize) -> Service {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let worker = ctx.engine.worker(format!("pipeline-worker-{n}"));
        let idle = Duration::from_secs(1);
        while !ctx.shutdown.is_cancelled() {
            let pause = match worker.run_once(&ctx.shutdown).await {
                Ok(r) => {
                    ctx.counters.fired.fetch_add(r.fired, Ordering::Relaxed);
                    ctx.counters.expired.fetch_add(r.expired, Ordering::Relaxed);
                    ctx.counters
                        .pipeline_errors
                        .fetch_add(r.errors, Ordering::Relaxed);
                    r.is_idle().then_some(idle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pipeline pass failed; retrying");
                    Some(Duration::from_secs(2))
                }
            };
            if let Some(p) = pause {
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(p) => {}
                }
            }
        }
    })
}

/// The numbers the live view shows, read from the database.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub events: u64,
    pub states: Vec<(StreamState, u64)>,
    pub verified: u64,
    pub failed: u64,
    pub warnings: u64,
}

pub async fn snapshot(store: &dyn Store) -> Result<Snapshot> {
    let mut s = Snapshot {
        events: store.count_events(&EventQuery::default()).await?,
        ..Default::default()
    };
    for state in StreamState::ALL {
        let n = store
            .count_streams(&StreamQuery {
                state: Some(state),
                ..Default::default()
            })
            .await?;
        s.states.push((state, n));
    }
    let count = |t: &'static str| EventQuery {
        event_type: Some(t.to_string()),
        ..Default::default()
    };
    s.verified = store
        .count_events(&count("compute.instance.exists.verified"))
        .await?;
    s.failed = store
        .count_events(&count("compute.instance.exists.failed"))
        .await?;
    s.warnings = store
        .count_events(&count("compute.instance.exists.warnings"))
        .await?;
    Ok(s)
}

fn spawn_view(ctx: &SandboxContext) -> Service {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let tty = std::io::stdout().is_terminal();
        let every = if tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        let started = Instant::now();
        let mut last = (Instant::now(), 0u64);
        loop {
            let stop = tokio::select! {
                _ = ctx.shutdown.cancelled() => true,
                _ = tokio::time::sleep(every) => false,
            };
            let generated = ctx.counters.generated.load(Ordering::Relaxed);
            let rate = (generated - last.1) as f64 / last.0.elapsed().as_secs_f64().max(0.001);
            last = (Instant::now(), generated);
            let snap = snapshot(ctx.store.as_ref()).await.unwrap_or_default();
            let text = render(&ctx, &snap, rate, started.elapsed(), stop);
            let mut out = std::io::stdout().lock();
            if tty && !stop {
                // Clear the screen and draw from the top.
                let _ = write!(out, "\x1b[2J\x1b[H{text}");
            } else {
                let _ = writeln!(out, "{text}");
            }
            let _ = out.flush();
            if stop {
                break;
            }
        }
    })
}

fn render(
    ctx: &SandboxContext,
    snap: &Snapshot,
    rate: f64,
    uptime: Duration,
    final_view: bool,
) -> String {
    let c = &ctx.counters;
    let states: Vec<String> = snap
        .states
        .iter()
        .filter(|(s, n)| *n > 0 || matches!(s, StreamState::Active | StreamState::Completed))
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    format!(
        "StackTach.v3 sandbox{} — {} — up {}s\n\
         simulated time   {}\n\
         notifications    {} generated ({:.0}/s), {} events stored, {} duplicates, {} dropped\n\
         streams          {}\n\
         pipelines        {} fired, {} expired, {} errors\n\
         usage            {} verified, {} failed, {} warnings\n{}{}",
        if final_view { " (stopped)" } else { "" },
        ctx.database_label,
        uptime.as_secs(),
        ctx.clock.now().format("%Y-%m-%d %H:%M:%S UTC"),
        c.generated.load(Ordering::Relaxed),
        rate,
        snap.events,
        c.duplicates.load(Ordering::Relaxed),
        c.dropped.load(Ordering::Relaxed),
        states.join(", "),
        c.fired.load(Ordering::Relaxed),
        c.expired.load(Ordering::Relaxed),
        c.pipeline_errors.load(Ordering::Relaxed),
        snap.verified,
        snap.failed,
        snap.warnings,
        match &ctx.api_url {
            Some(url) => format!(
                "console          {url}/ui/\n\
                 api              {url}  (try: ./target/release/klugman {url} streams --state completed)\n"
            ),
            None => String::new(),
        },
        if final_view {
            ""
        } else {
            "Ctrl-C stops everything cleanly.\n"
        },
    )
}
