//! A database outage makes the engine wait and retry, not crash or lose events.
//!
//! The outage is real: the store talks to MariaDB through a TCP relay on loopback that
//! the test cuts (every open connection dropped, new ones refused) and restores.

use chrono::{TimeZone, Utc};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use worker::event::{Event, TraitValue};
use worker::store::{self, StreamQuery, StreamState};
use worker::winchester::clock::SystemClock;
use worker::winchester::debug::DebugManager;
use worker::winchester::definition::load_triggers;
use worker::winchester::handlers::{build_factory, HandlerContext};
use worker::winchester::ingest::TriggerManager;
use worker::winchester::pipeline::Pipeline;
use worker::winchester::triggers::TriggerSet;
use worker::winchester::worker::{PipelineWorker, WorkerSettings};

fn mysql_base_url() -> String {
    std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string())
}

/// A TCP relay to MariaDB that can be cut and restored.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // refused: the database is "down"
                    continue;
                }
                let target = target.clone();
                conns2.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.conns.lock().unwrap().abort_all();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

const TRIGGERS: &str = r#"
- name: per_instance
  distinguished_by: [instance_id]
  expiration: "$last + 1d"
  fire_pipeline: log
  match_criteria:
    - event_type: compute.instance.*
  fire_criteria:
    - event_type: compute.instance.create.end
"#;

fn event(n: u32) -> Event {
    let mut traits = BTreeMap::new();
    traits.insert(
        "instance_id".to_string(),
        TraitValue::Text(format!("i-{n}")),
    );
    Event {
        event_type: "compute.instance.create.end".into(),
        message_id: format!("outage-{n}"),
        timestamp: Utc.with_ymd_and_hms(2015, 2, 27, 0, 0, n).unwrap(),
        traits,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_workers_ride_out_a_database_outage() {
    // A database of our own, reached directly (for checking) and through the relay.
    let base = mysql_base_url();
    let name = format!("stv3_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::MySqlConnection::connect(&base)
        .await
        .expect("connect");
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut admin)
        .await
        .expect("create db");
    let (prefix, _) = base.rsplit_once('/').expect("db in URL");
    let direct_url = format!("{prefix}/{name}");
    let (userinfo, hostpart) = prefix.rsplit_once('@').expect("userinfo");
    let target = hostpart.to_string();
    let relay = Relay::start(target).await;
    let relayed_url = format!("{userinfo}@127.0.0.1:{}/{name}", relay.port);

    let direct = store::open(&direct_url).await.expect("open direct");
    direct.migrate().await.expect("migrate");
    let relayed = store::open(&relayed_url).await.expect("open relayed");

    let triggers = load_triggers(TRIGGERS, "t.yaml", None).expect("triggers");
    let debug = Arc::new(DebugManager::new(
        triggers.iter().map(|t| (t.name.clone(), t.debug_level)),
    ));
    let manager = Arc::new(TriggerManager::new(
        relayed.clone(),
        None,
        Arc::new(TriggerSet::new(triggers, debug)),
        Arc::new(SystemClock),
    ));

    // 1. Ingest while the database is away: the call waits, then stores everything.
    manager.add_events(&[event(1)]).await.expect("first batch");
    relay.cut();
    let m = manager.clone();
    let pending = tokio::spawn(async move {
        m.add_events_retrying(&[event(2), event(3)], Duration::from_secs(60))
            .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!pending.is_finished(), "ingest gave up instead of waiting");
    relay.restore();
    let report = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("ingest finished after the outage")
        .expect("task")
        .expect("ingest succeeded");
    assert_eq!(report.stored, 2);
    assert_eq!(
        direct
            .count_streams(&StreamQuery::default())
            .await
            .expect("count"),
        3,
        "no event lost"
    );

    // 2. A pipeline worker loop survives an outage and fires the streams afterwards.
    let ctx = HandlerContext {
        publisher: Arc::new(worker::notabene::RecordingSink::default()),
    };
    let logger = build_factory("logger", &serde_json::Map::new(), &ctx).expect("logger");
    let mut pipelines = std::collections::HashMap::new();
    pipelines.insert(
        "log".to_string(),
        Pipeline::new("log".to_string(), vec![logger]),
    );
    let w = PipelineWorker::new(
        "outage",
        manager.clone(),
        pipelines,
        WorkerSettings {
            idle_delay: Duration::from_millis(100),
            ..WorkerSettings::default()
        },
    );
    relay.cut();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let running = tokio::spawn(async move { w.run(stop).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !running.is_finished(),
        "the worker stopped during the outage"
    );
    relay.restore();
    let mut completed = 0;
    for _ in 0..200 {
        completed = direct
            .count_streams(&StreamQuery {
                state: Some(StreamState::Completed),
                ..Default::default()
            })
            .await
            .expect("count");
        if completed == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(completed, 3, "streams fired after the database came back");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("worker stopped on shutdown")
        .expect("worker task");

    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&mut admin)
        .await;
}
