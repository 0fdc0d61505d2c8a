//! Pipeline workers on real databases: several workers fire each stream exactly once,
//! a worker that dies mid-pipeline leaves a claim that runs out and the stream is
//! retried, a worker slower than its lease keeps its claim (heartbeat) so nothing runs
//! twice, and a worker that lost its claim rolls back instead of committing.

use async_trait::async_trait;
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use sqlx::Connection;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use worker::event::{Event, TraitValue};
use worker::store::{self, Store, StreamQuery, StreamState};
use worker::winchester::clock::{Clock, SystemClock};
use worker::winchester::debug::DebugManager;
use worker::winchester::definition::load_triggers;
use worker::winchester::ingest::TriggerManager;
use worker::winchester::pipeline::{Handler, HandlerError, HandlerFactory, Pipeline, PipelineEnv};
use worker::winchester::triggers::TriggerSet;
use worker::winchester::worker::{PipelineWorker, WorkerSettings};

const TRIGGERS: &str = r#"
- name: per_instance
  distinguished_by: [instance_id]
  expiration: "$last + 1d"
  fire_pipeline: count
  expire_pipeline: count
  match_criteria:
    - event_type: compute.instance.*
  fire_criteria:
    - event_type: compute.instance.create.end
"#;

fn mysql_base_url() -> String {
    std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string())
}

/// A throw-away MariaDB database for one test, dropped by [`drop_mysql_db`].
async fn fresh_mysql_db() -> (String, String) {
    let base = mysql_base_url();
    let name = format!("stv3_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::MySqlConnection::connect(&base)
        .await
        .expect("connect to MariaDB (scripts/services.sh up)");
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
    (format!("{prefix}/{name}"), name)
}

async fn drop_mysql_db(name: &str) {
    if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql_base_url()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute(&mut conn)
            .await;
    }
}

/// Counts commits per stream: the proof that a stream ran exactly once.
#[derive(Default)]
struct Commits {
    by_stream: Mutex<BTreeMap<i64, u32>>,
}

struct CountingFactory {
    commits: Arc<Commits>,
    /// When set, handle_events never returns: a worker "dies" mid-pipeline.
    hang: bool,
    /// How long handle_events takes (a slow but alive pipeline).
    slow: Duration,
}

struct CountingHandler {
    commits: Arc<Commits>,
    hang: bool,
    slow: Duration,
    stream: Option<i64>,
}

#[async_trait]
impl Handler for CountingHandler {
    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.slow).await;
        self.stream = Some(env.stream_id);
        Ok(events)
    }
    async fn commit(&mut self, _env: &PipelineEnv) -> Result<(), HandlerError> {
        if let Some(id) = self.stream {
            *self
                .commits
                .by_stream
                .lock()
                .unwrap()
                .entry(id)
                .or_default() += 1;
        }
        Ok(())
    }
    async fn rollback(&mut self) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl HandlerFactory for CountingFactory {
    fn name(&self) -> &str {
        "counting"
    }
    fn create(&self) -> Box<dyn Handler> {
        Box::new(CountingHandler {
            commits: self.commits.clone(),
            hang: self.hang,
            slow: self.slow,
            stream: None,
        })
    }
}

fn manager(store: Arc<dyn Store>) -> Arc<TriggerManager> {
    let triggers = load_triggers(TRIGGERS, "test-triggers.yaml", None).expect("triggers load");
    let debug = Arc::new(DebugManager::new(
        triggers.iter().map(|t| (t.name.clone(), t.debug_level)),
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Arc::new(TriggerManager::new(
        store,
        None,
        Arc::new(TriggerSet::new(triggers, debug)),
        clock,
    ))
}

fn worker(
    name: &str,
    manager: &Arc<TriggerManager>,
    commits: &Arc<Commits>,
    hang: bool,
    lease: Duration,
) -> PipelineWorker {
    slow_worker(name, manager, commits, hang, lease, Duration::ZERO)
}

fn slow_worker(
    name: &str,
    manager: &Arc<TriggerManager>,
    commits: &Arc<Commits>,
    hang: bool,
    lease: Duration,
    slow: Duration,
) -> PipelineWorker {
    let factory: Arc<dyn HandlerFactory> = Arc::new(CountingFactory {
        commits: commits.clone(),
        hang,
        slow,
    });
    let mut pipelines = HashMap::new();
    pipelines.insert(
        "count".to_string(),
        Pipeline::new("count".to_string(), vec![factory]),
    );
    PipelineWorker::new(
        name,
        manager.clone(),
        pipelines,
        WorkerSettings {
            batch_size: 100,
            idle_delay: Duration::from_millis(10),
            lease,
            ..WorkerSettings::default()
        },
    )
}

fn create_end(instance: usize) -> Event {
    let mut traits = BTreeMap::new();
    traits.insert(
        "instance_id".to_string(),
        TraitValue::Text(format!("inst-{instance:05}")),
    );
    Event {
        event_type: "compute.instance.create.end".into(),
        message_id: format!("msg-{instance:05}"),
        timestamp: Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, 0).unwrap()
            + ChronoDuration::seconds(instance as i64),
        traits,
    }
}

/// 1,000 streams ready to fire, four workers racing: every stream committed once.
async fn four_workers_fire_each_stream_once(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let manager = manager(store.clone());
    let events: Vec<Event> = (0..1000).map(create_end).collect();
    for chunk in events.chunks(200) {
        manager.add_events(chunk).await.expect("ingest");
    }
    assert_eq!(
        store
            .count_streams(&StreamQuery::default())
            .await
            .expect("count"),
        1000
    );
    tokio::time::sleep(Duration::from_millis(20)).await; // fire_timestamp < now

    let commits = Arc::new(Commits::default());
    let passes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let w = worker(
            &format!("w{i}"),
            &manager,
            &commits,
            false,
            Duration::from_secs(300),
        );
        let passes = passes.clone();
        tasks.push(tokio::spawn(async move {
            let never = CancellationToken::new();
            loop {
                let r = w.run_once(&never).await.expect("pass");
                passes.fetch_add(1, Ordering::Relaxed);
                if r.is_idle() {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker task");
    }
    let by_stream = commits.by_stream.lock().unwrap().clone();
    assert_eq!(by_stream.len(), 1000, "every stream fired");
    let twice: Vec<_> = by_stream.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "streams committed more than once: {twice:?}"
    );
    let completed = store
        .count_streams(&StreamQuery {
            state: Some(StreamState::Completed),
            ..Default::default()
        })
        .await
        .expect("count");
    assert_eq!(completed, 1000);
}

/// A worker dies mid-pipeline: after the lease the stream is retried by another.
async fn dead_worker_claim_is_retried(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let manager = manager(store.clone());
    manager.add_events(&[create_end(1)]).await.expect("ingest");
    tokio::time::sleep(Duration::from_millis(20)).await;

    let commits = Arc::new(Commits::default());
    let doomed = worker("doomed", &manager, &commits, true, Duration::from_secs(1));
    let task = tokio::spawn(async move {
        let never = CancellationToken::new();
        let _ = doomed.run_once(&never).await;
    });
    // Wait until the doomed worker holds the claim, then kill it.
    let mut claimed = false;
    for _ in 0..100 {
        let firing = store
            .count_streams(&StreamQuery {
                state: Some(StreamState::Firing),
                ..Default::default()
            })
            .await
            .expect("count");
        if firing == 1 {
            claimed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(claimed, "the doomed worker never claimed the stream");
    task.abort();

    // Before the lease runs out nobody else may take it.
    let rescuer = worker(
        "rescuer",
        &manager,
        &commits,
        false,
        Duration::from_secs(300),
    );
    let never = CancellationToken::new();
    let early = rescuer.run_once(&never).await.expect("pass");
    assert_eq!(early.fired, 0, "stream taken while the claim still held");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut fired = 0;
    for _ in 0..3 {
        let r = rescuer.run_once(&never).await.expect("pass");
        fired += r.fired;
    }
    assert_eq!(fired, 1, "the stream was retried after the lease");
    assert_eq!(commits.by_stream.lock().unwrap().values().sum::<u32>(), 1);
    let streams = store
        .find_streams(&StreamQuery::default())
        .await
        .expect("find");
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].state, StreamState::Completed);
}

async fn count_in(store: &Arc<dyn Store>, state: StreamState) -> u64 {
    store
        .count_streams(&StreamQuery {
            state: Some(state),
            ..Default::default()
        })
        .await
        .expect("count")
}

/// Two workers, pipelines three times slower than the lease: the worker in hand keeps
/// renewing its claim, so no stream is taken over and run again (before the heartbeat
/// every stream was committed twice). Streams claimed in the same chunk wait their
/// turn; those whose lease ran out meanwhile go to the other worker, and the first
/// one skips them.
async fn slow_pipelines_run_once_with_two_workers(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let manager = manager(store.clone());
    let events: Vec<Event> = (0..3).map(create_end).collect();
    manager.add_events(&events).await.expect("ingest");
    tokio::time::sleep(Duration::from_millis(20)).await;

    let commits = Arc::new(Commits::default());
    let lease = Duration::from_secs(1);
    let slow = Duration::from_millis(2500);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..2 {
        let w = slow_worker(&format!("w{i}"), &manager, &commits, false, lease, slow);
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let never = CancellationToken::new();
            let mut lost = 0;
            while count_in(&store, StreamState::Completed).await < 3 {
                assert!(
                    started.elapsed() < Duration::from_secs(90),
                    "streams never completed"
                );
                lost += w.run_once(&never).await.expect("pass").lost;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            lost
        }));
    }
    let mut lost = 0;
    for t in tasks {
        lost += t.await.expect("worker task");
    }
    let by_stream = commits.by_stream.lock().unwrap().clone();
    assert_eq!(by_stream.len(), 3, "every stream fired: {by_stream:?}");
    assert!(
        by_stream.values().all(|n| *n == 1),
        "a stream's side effects ran more than once: {by_stream:?}"
    );
    eprintln!(
        "3 slow streams, two workers: done in {:?}, {lost} claims skipped as lost",
        started.elapsed()
    );
}

/// A claim taken from a worker while its pipeline runs (as when the worker was cut off
/// from the database for longer than the lease): its heartbeat notices, the commit
/// gate refuses, nothing is committed; the worker that holds the stream now fires it.
async fn a_worker_that_lost_its_claim_does_not_commit(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    let manager = manager(store.clone());
    manager.add_events(&[create_end(7)]).await.expect("ingest");
    tokio::time::sleep(Duration::from_millis(20)).await;

    let commits = Arc::new(Commits::default());
    let lease = Duration::from_secs(1);
    let w = slow_worker(
        "slow",
        &manager,
        &commits,
        false,
        lease,
        Duration::from_secs(2),
    );
    let task = tokio::spawn(async move {
        let never = CancellationToken::new();
        w.run_once(&never).await.expect("pass")
    });
    let mut claimed = false;
    for _ in 0..100 {
        if count_in(&store, StreamState::Firing).await == 1 {
            claimed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(claimed, "the slow worker never claimed the stream");
    // Take the claim away, as a release after a long cut-off would.
    let taken = store
        .release_expired_claims(Utc::now() + ChronoDuration::hours(1))
        .await
        .expect("release");
    assert_eq!(taken, 1);
    let report = task.await.expect("slow worker");
    // The run under the lost claim rolled back; the same pass then claimed the stream
    // afresh (it was back in retry_fire) and fired it: one commit in all.
    assert_eq!(report.lost, 1, "{report:?}");
    assert_eq!(report.fired, 1, "{report:?}");
    assert_eq!(
        commits.by_stream.lock().unwrap().values().sum::<u32>(),
        1,
        "committed under a lost claim"
    );
    assert_eq!(count_in(&store, StreamState::Completed).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_slow_pipelines_run_once_with_two_workers() {
    let (url, name) = fresh_mysql_db().await;
    let store = store::open(&url).await.expect("open");
    slow_pipelines_run_once_with_two_workers(store).await;
    drop_mysql_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_slow_pipelines_run_once_with_two_workers() {
    let dir = tempdir();
    let url = format!("sqlite://{}/w.db", dir.display());
    let store = store::open(&url).await.expect("open");
    slow_pipelines_run_once_with_two_workers(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_a_worker_that_lost_its_claim_does_not_commit() {
    let (url, name) = fresh_mysql_db().await;
    let store = store::open(&url).await.expect("open");
    a_worker_that_lost_its_claim_does_not_commit(store).await;
    drop_mysql_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_worker_that_lost_its_claim_does_not_commit() {
    let dir = tempdir();
    let url = format!("sqlite://{}/w.db", dir.display());
    let store = store::open(&url).await.expect("open");
    a_worker_that_lost_its_claim_does_not_commit(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_four_workers_fire_each_stream_once() {
    let (url, name) = fresh_mysql_db().await;
    let store = store::open(&url).await.expect("open");
    four_workers_fire_each_stream_once(store).await;
    drop_mysql_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_dead_worker_claim_is_retried() {
    let (url, name) = fresh_mysql_db().await;
    let store = store::open(&url).await.expect("open");
    dead_worker_claim_is_retried(store).await;
    drop_mysql_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_four_workers_fire_each_stream_once() {
    let dir = tempdir();
    let url = format!("sqlite://{}/w.db", dir.display());
    let store = store::open(&url).await.expect("open");
    four_workers_fire_each_stream_once(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_dead_worker_claim_is_retried() {
    let dir = tempdir();
    let url = format!("sqlite://{}/w.db", dir.display());
    let store = store::open(&url).await.expect("open");
    dead_worker_claim_is_retried(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stv3-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
