//! RabbitMQ stopped while pipeline workers publish with notabene: the streams whose
//! publish failed go to retry_fire (none is completed without its notification), wait
//! their retry delay, and once RabbitMQ is back each notification is published exactly
//! once. Before, the failed publish was a logged "commit error" and the stream
//! completed: the notification was gone.
//!
//! RabbitMQ is really stopped and started (`scripts/services.sh down|up rabbitmq`), so
//! this is the only test of its binary: no other test shares the broker meanwhile.

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use lapin::options::{BasicGetOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use worker::event::{Event, TraitValue};
use worker::notabene::{AmqpParams, AmqpPublisher};
use worker::store::{self, Store, StreamQuery, StreamState};
use worker::winchester::clock::{Clock, SystemClock};
use worker::winchester::debug::DebugManager;
use worker::winchester::definition::load_triggers;
use worker::winchester::handlers::{build_factory, HandlerContext};
use worker::winchester::ingest::TriggerManager;
use worker::winchester::pipeline::{Handler, HandlerError, HandlerFactory, Pipeline, PipelineEnv};
use worker::winchester::triggers::TriggerSet;
use worker::winchester::worker::{PipelineWorker, WorkerSettings};

const TRIGGERS: &str = r#"
- name: announce
  distinguished_by: [instance_id]
  expiration: "$last + 1d"
  fire_pipeline: publish
  match_criteria:
    - event_type: compute.instance.*
  fire_criteria:
    - event_type: compute.instance.create.end
"#;

fn amqp_url() -> String {
    std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn services(action: &str) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .join("scripts/services.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([action, "rabbitmq"])
        .output()
        .map_err(|e| format!("cannot run scripts/services.sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "services.sh {action} rabbitmq failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Starts RabbitMQ again when dropped, so a failing assertion while it is down does
/// not leave it down for the tests that follow.
struct BrokerComesBack;

impl Drop for BrokerComesBack {
    fn drop(&mut self) {
        if let Err(e) = services("up") {
            eprintln!("{e}");
        }
    }
}

/// Puts one notification per event under `announcements`, with an id derived from the
/// event's (as pipelines make ids), for notabene to publish.
struct Announcer;

#[async_trait]
impl Handler for Announcer {
    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError> {
        let list = env
            .notifications
            .entry("announcements".to_string())
            .or_default();
        for e in events.iter().filter(|e| e.event_type.ends_with(".end")) {
            list.push(json!({
                "event_type": "stv3.test.announced",
                "message_id": format!("announce-{}", e.message_id),
                "payload": {"stream_id": env.stream_id},
            }));
        }
        Ok(events)
    }
    async fn commit(&mut self, _env: &PipelineEnv) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn rollback(&mut self) -> Result<(), HandlerError> {
        Ok(())
    }
}

struct AnnouncerFactory;

impl HandlerFactory for AnnouncerFactory {
    fn name(&self) -> &str {
        "announcer"
    }
    fn create(&self) -> Box<dyn Handler> {
        Box::new(Announcer)
    }
}

fn create_end(n: usize) -> Event {
    let mut traits = BTreeMap::new();
    traits.insert(
        "instance_id".to_string(),
        TraitValue::Text(format!("inst-{n}")),
    );
    Event {
        event_type: "compute.instance.create.end".into(),
        message_id: format!("msg-{n}"),
        timestamp: Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, n as u32).unwrap(),
        traits,
    }
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

/// Every message waiting in `queue` (after RabbitMQ is back), by message_id.
async fn drain(queue: &str) -> Vec<String> {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    let mut ids = Vec::new();
    while let Some(msg) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic_get")
    {
        let body: Value = serde_json::from_slice(&msg.delivery.data).expect("JSON");
        ids.push(body["message_id"].as_str().unwrap_or_default().to_string());
    }
    let _ = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_stopped_during_publishing_delays_but_never_drops() {
    services("up").expect("RabbitMQ up");
    let dir = std::env::temp_dir().join(format!("stv3-outage-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = store::open(&format!("sqlite://{}/o.db", dir.display()))
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    let triggers = load_triggers(TRIGGERS, "outage-triggers.yaml", None).expect("triggers");
    let debug = Arc::new(DebugManager::new(
        triggers.iter().map(|t| (t.name.clone(), t.debug_level)),
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let manager = Arc::new(TriggerManager::new(
        store.clone(),
        None,
        Arc::new(TriggerSet::new(triggers, debug)),
        clock,
    ));

    let queue = format!("stv3.test.outage.{}", std::process::id());
    let p = AmqpParams::from_url(&amqp_url()).expect("STV3_TEST_AMQP_URL");
    let params: Map<String, Value> = match json!({
        "host": p.host, "port": p.port, "user": p.user, "password": p.password,
        "vhost": p.vhost, "exchange": "stv3.test.outage", "queue_name": queue,
        "env_keys": ["announcements"],
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let publisher = Arc::new(
        AmqpPublisher::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_confirm_timeout(Duration::from_secs(5)),
    );
    let ctx = HandlerContext {
        publisher: publisher.clone(),
    };
    let notabene = build_factory("notabene", &params, &ctx).expect("notabene params");
    let announcer: Arc<dyn HandlerFactory> = Arc::new(AnnouncerFactory);
    let mut pipelines = HashMap::new();
    pipelines.insert(
        "publish".to_string(),
        Pipeline::new("publish", vec![announcer, notabene]),
    );
    let retry_delay = Duration::from_secs(2);
    let worker = PipelineWorker::new(
        "outage",
        manager.clone(),
        pipelines,
        WorkerSettings {
            idle_delay: Duration::from_millis(50),
            handler_timeout: Duration::from_secs(10),
            retry_delay,
            ..WorkerSettings::default()
        },
    );
    let never = CancellationToken::new();

    // One stream published while RabbitMQ is up (the publisher now holds a connection).
    manager.add_events(&[create_end(0)]).await.expect("ingest");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = worker.run_once(&never).await.expect("pass");
    assert_eq!(r.fired, 1, "{r:?}");

    // RabbitMQ goes away; three more streams become ready.
    let comes_back = BrokerComesBack;
    services("down").expect("RabbitMQ down");
    let events: Vec<Event> = (1..4).map(create_end).collect();
    manager.add_events(&events).await.expect("ingest");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = worker.run_once(&never).await.expect("pass");
    assert_eq!((r.fired, r.retried), (0, 3), "{r:?}");
    assert_eq!(count_in(&store, StreamState::RetryFire).await, 3);
    assert_eq!(count_in(&store, StreamState::Completed).await, 1);
    // Not claimed again before the retry delay: no busy loop against a dead broker.
    let r = worker.run_once(&never).await.expect("pass");
    assert!(r.is_idle(), "retried at once: {r:?}");

    // While it is still down, a retry fails again and waits again.
    tokio::time::sleep(retry_delay + Duration::from_millis(200)).await;
    let r = worker.run_once(&never).await.expect("pass");
    assert_eq!(r.retried, 3, "{r:?}");

    drop(comes_back);
    let started = Instant::now();
    while count_in(&store, StreamState::Completed).await < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "streams not completed after RabbitMQ came back"
        );
        worker.run_once(&never).await.expect("pass");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count_in(&store, StreamState::RetryFire).await, 0);

    let mut ids = drain(&queue).await;
    ids.sort();
    let expected: Vec<String> = (0..4).map(|n| format!("announce-msg-{n}")).collect();
    assert_eq!(ids, expected, "each notification published exactly once");

    publisher.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
