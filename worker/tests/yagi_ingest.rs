//! yagi-event against the real RabbitMQ and MariaDB (`scripts/services.sh up`):
//! a 20,000-notification run, poison messages, the original wire formats, and
//! start-up refusal of bad configuration.

mod yagi_support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use worker::notabene::{AmqpParams, AmqpPublisher, NotificationSink, PublishTarget};
use worker::observe::Health;
use worker::yagi::metrics::YagiMetrics;
use worker::yagi::{load_yagi_config, run_consumer, EngineParts};
use yagi_support::*;

/// 20,000 notigen notifications through one yagi-event: the stored events are exactly
/// those the distiller makes of them; the rest are dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_notifications_are_stored_exactly() {
    const N: usize = 20_000;
    let env = Env::new("bulk", 100).await;
    let notes = notifications(1, N);
    let expected = expected_ids(&env.winchester_yaml, &notes);
    assert!(
        expected.len() > N / 2,
        "the distiller keeps most notifications"
    );

    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    let t = Instant::now();
    broker.publish_json(&env, &notes).await;
    eprintln!("published {N} in {:?}", t.elapsed());

    let mut child = env.spawn_worker(0);
    wait_ready(&env, Duration::from_secs(30)).await;
    let started = Instant::now();
    let took = env
        .wait_stored(expected.len() as u64, Duration::from_secs(120))
        .await;
    // Everything acknowledged: the queue drains.
    let drain_deadline = Instant::now() + Duration::from_secs(20);
    while broker.depth(&env.queue).await > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().max(took);
    eprintln!(
        "yagi-event: {N} notifications ({} events) in {elapsed:?}: {:.0} notifications/s",
        expected.len(),
        N as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(broker.depth(&env.queue).await, 0, "queue not drained");

    let ids = env.stored_ids().await;
    assert_eq!(ids.len(), expected.len(), "event count");
    let got: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(
        got, expected,
        "stored message_ids differ from the distiller's"
    );

    let m = env.metrics().await;
    let batches = metric_sum(&m, "yagi_batch_duration_seconds_count", &[]);
    eprintln!(
        "{batches} batches, mean batch latency {:.1} ms",
        1000.0 * metric_sum(&m, "yagi_batch_duration_seconds_sum", &[]) / batches.max(1.0)
    );
    assert_eq!(
        metric_sum(&m, "yagi_messages_received_total", &[]) as usize,
        N,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "yagi_events_stored_total", &[]) as usize,
        expected.len()
    );
    let dropped = N - expected.len();
    assert_eq!(
        metric_sum(&m, "yagi_messages_dead_lettered_total", &[]) as usize,
        dropped
    );
    assert_eq!(broker.depth(&env.dead_letter_queue).await as usize, dropped);
    assert!(metric_sum(&m, "yagi_batches_total", &[]) >= (N / 100) as f64);

    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM must exit 0: {status:?}\n{}",
        env.logs_tail()
    );
    let log = std::fs::read_to_string(env.log_path(0)).unwrap_or_default();
    assert!(
        log.contains("Messages per second"),
        "statistics line missing"
    );
    assert!(!log.contains("password = guest") && !log.contains(":guest@"));
    broker.close().await;
    env.cleanup().await;
}

/// 1,000 malformed messages among good ones: the good ones are stored, the bad ones
/// end in the dead-letter queue with their reason, counted, and the worker never
/// restarts or reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_dead_lettered() {
    let env = Env::new("poison", 50).await;
    let good = notifications(2, 3_000);
    let expected = expected_ids(&env.winchester_yaml, &good);

    let mut bad: Vec<Vec<u8>> = Vec::new();
    for i in 0..1_000 {
        let body = match i % 6 {
            0 => format!("not json at all #{i}").into_bytes(),
            1 => format!("[{i}, \"a JSON array\"]").into_bytes(),
            2 => json!({"no": "event_type", "bad": i})
                .to_string()
                .into_bytes(),
            3 => {
                let mut b = vec![0xff, 0xfe];
                b.extend(format!("bad utf-8 {i}").into_bytes());
                b
            }
            4 => json!({"oslo.version": "2.0", "oslo.message": format!("{{broken {i}")})
                .to_string()
                .into_bytes(),
            _ => json!({"event_type": "compute.instance.create.end",
                        "message_id": format!("bad-ts-{i}"),
                        "timestamp": "not a time", "payload": {}})
            .to_string()
            .into_bytes(),
        };
        bad.push(body);
    }
    // Interleave: one bad message every third.
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut bad_iter = bad.iter();
    for (i, n) in good.iter().enumerate() {
        bodies.push(serde_json::to_vec(n).expect("JSON"));
        if i % 3 == 0 {
            if let Some(b) = bad_iter.next() {
                bodies.push(b.clone());
            }
        }
    }
    bodies.extend(bad_iter.cloned());

    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    let mut child = env.spawn_worker(0);
    wait_ready(&env, Duration::from_secs(30)).await;
    broker.publish_bodies(&env, &bodies).await;

    env.wait_stored(expected.len() as u64, Duration::from_secs(60))
        .await;
    let want_dead = 1_000 + (good.len() - expected.len());
    let dead = broker
        .drain(&env.dead_letter_queue, want_dead, Duration::from_secs(30))
        .await;
    assert_eq!(dead.len(), want_dead, "dead-lettered messages");
    let dead_bodies: BTreeSet<&Vec<u8>> = dead.iter().map(|(b, _)| b).collect();
    for b in &bad {
        assert!(
            dead_bodies.contains(b),
            "bad message not dead-lettered: {:?}",
            String::from_utf8_lossy(b)
        );
    }
    for (_, h) in &dead {
        assert_eq!(h.get("x-stv3-original-queue"), Some(&env.queue));
        assert!(h.contains_key("x-stv3-reason") && h.contains_key("x-stv3-detail"));
    }
    let reasons: BTreeSet<&str> = dead
        .iter()
        .filter_map(|(_, h)| h.get("x-stv3-reason").map(String::as_str))
        .collect();
    for r in [
        "invalid_json",
        "not_an_object",
        "not_a_notification",
        "not_utf8",
        "invalid_envelope",
        "invalid_timestamp",
    ] {
        assert!(reasons.contains(r), "no {r} among {reasons:?}");
    }

    let got: BTreeSet<String> = env.stored_ids().await.into_iter().collect();
    assert_eq!(got, expected);
    let m = env.metrics().await;
    assert_eq!(
        metric_sum(&m, "yagi_messages_dead_lettered_total", &[]) as usize,
        want_dead,
        "{m}"
    );
    assert_eq!(
        metric_sum(
            &m,
            "yagi_messages_dead_lettered_total",
            &["reason=\"invalid_json\""]
        ) as usize,
        167
    );
    assert_eq!(metric_sum(&m, "yagi_reconnects_total", &[]), 0.0);
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the worker died\n{}",
        env.logs_tail()
    );
    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let log = std::fs::read_to_string(env.log_path(0)).unwrap_or_default();
    assert_eq!(
        log.matches("connection established").count(),
        1,
        "the worker reconnected\n{}",
        env.logs_tail()
    );
    broker.close().await;
    env.cleanup().await;
}

/// What a Python kombu/notabene publisher sends, and Nova's oslo.messaging 2.0
/// envelope, are both consumed (by the in-process consumer, the sandbox's way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kombu_and_oslo_envelope_wire_formats() {
    let env = Env::new("wire", 10).await;
    let notes = notifications(3, 40);
    let plain: Vec<&Value> = notes.iter().collect();
    let expected = expected_ids(&env.winchester_yaml, &notes);

    // In-process consumer over the library API.
    let config = load_yagi_config(&env.yagi_conf).expect("yagi.conf");
    let wconfig = worker::winchester::config::load_config(
        config.winchester_config.as_deref().expect("winchester app"),
    )
    .expect("winchester.yaml");
    let store = worker::store::open(&env.db_url).await.expect("open store");
    store.migrate().await.expect("migrate");
    let engine = worker::winchester::engine::Engine::new(
        &wconfig,
        store,
        Arc::new(worker::winchester::clock::SystemClock),
        Arc::new(worker::notabene::RecordingSink::new()),
    )
    .expect("engine");
    let metrics = YagiMetrics::new();
    let health = Health::default();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        config,
        EngineParts {
            manager: Some(engine.manager.clone()),
            shoebox: None,
        },
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    let started = Instant::now();
    while !health.is_ready() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "consumer not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Half through notabene (the kombu wire format)...
    let publisher = AmqpPublisher::new();
    let target = PublishTarget {
        connection: AmqpParams::from_url(&amqp_url()).expect("URL"),
        exchange: env.exchange.clone(),
        exchange_type: "topic".into(),
        queue_name: env.queue.clone(),
    };
    for n in plain.iter().take(20) {
        publisher
            .publish(&target, n)
            .await
            .expect("notabene publish");
    }
    publisher.close().await;
    // ...half wrapped as oslo.messaging 2.0 does.
    let broker = Broker::connect().await.expect("RabbitMQ");
    let wrapped: Vec<Value> = plain
        .iter()
        .skip(20)
        .map(|n| json!({"oslo.version": "2.0", "oslo.message": n.to_string()}))
        .collect();
    broker.publish_json(&env, &wrapped).await;

    env.wait_stored(expected.len() as u64, Duration::from_secs(30))
        .await;
    let got: BTreeSet<String> = env.stored_ids().await.into_iter().collect();
    assert_eq!(got, expected);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run_consumer returns on shutdown")
        .expect("task")
        .expect("run_consumer");
    assert!(!health.is_ready());
    broker.close().await;
    env.cleanup().await;
}

/// A bad yagi.conf is refused at start-up (exit 2) naming file, section and key; an
/// unknown app is named.
#[test]
fn bad_configuration_is_refused_at_start_up() {
    let dir = std::env::temp_dir().join(format!("stv3-yagi-badconf-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let common = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/yagi/yagi.conf"),
    )
    .expect("fixture");
    let cases = [
        (
            common.replace("max_messages = 100", "max_messages = many"),
            vec!["consumer:monitor.info", "max_messages", "many"],
        ),
        (
            common.replace(
                "yagi.handler.shoebox_handler.ShoeboxHandler",
                "yagi.handler.redis_handler.RedisHandler",
            ),
            vec!["apps", "yagi.handler.redis_handler.RedisHandler"],
        ),
    ];
    for (text, needles) in cases {
        let path = dir.join("yagi.conf");
        std::fs::write(&path, text).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_yagi-event"))
            .arg("--config")
            .arg(&path)
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
            .output()
            .expect("run yagi-event");
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&path.display().to_string()), "{err}");
        for n in needles {
            assert!(err.contains(n), "{n} not in {err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An app of the chain that fails: transiently for its first calls (the batch is kept
/// and retried, nothing acknowledged meanwhile), permanently on a batch holding a
/// "poison" notification (the batch is retried one by one and only the culprit is
/// dead-lettered with reason `app_error`).
struct Flaky {
    transient_left: std::sync::atomic::AtomicU32,
    seen: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl worker::yagi::apps::App for Flaky {
    fn kind(&self) -> worker::yagi::config::AppKind {
        worker::yagi::config::AppKind::Winchester
    }

    async fn handle(
        &self,
        notifications: &[Value],
    ) -> Result<worker::yagi::apps::AppReport, worker::yagi::apps::AppError> {
        use std::sync::atomic::Ordering;
        use worker::yagi::apps::AppError;
        if self
            .transient_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(AppError::Transient("database away".into()));
        }
        if notifications.iter().any(|n| n["poison"] == true) {
            return Err(AppError::Permanent("cannot store this".into()));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for n in notifications {
            seen.push(n["message_id"].as_str().unwrap_or("").to_string());
        }
        Ok(worker::yagi::apps::AppReport {
            stored: notifications.len() as u64,
            ..Default::default()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_apps_keep_or_isolate_the_batch() {
    use std::sync::atomic::{AtomicU32, AtomicU64};
    use worker::yagi::apps::AppChain;
    use worker::yagi::consumer::{consume_queue, QueueContext, Readiness};

    let env = Env::new("flaky", 20).await;
    let config = load_yagi_config(&env.yagi_conf).expect("yagi.conf");
    let flaky = Arc::new(Flaky {
        transient_left: AtomicU32::new(3),
        seen: Default::default(),
    });
    let metrics = YagiMetrics::new();
    let health = Health::default();
    let ctx = QueueContext {
        index: 0,
        broker: config.broker.clone(),
        consumer: config.consumers[0].clone(),
        chain: AppChain::new(vec![flaky.clone()]),
        metrics: metrics.clone(),
        readiness: Arc::new(Readiness::new(1, health.clone())),
        received_since: Arc::new(AtomicU64::new(0)),
    };
    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    let mut notes: Vec<Value> = (0..10)
        .map(|i| json!({"message_id": format!("m{i}"), "event_type": "x"}))
        .collect();
    notes[4]["poison"] = json!(true);
    broker.publish_json(&env, &notes).await;

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consume_queue(ctx, shutdown.clone()));
    // Three transient failures: 200 + 400 + 800 ms of back-off, nothing acknowledged.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(flaky.seen.lock().expect("lock").is_empty());
    assert!(!health.is_ready(), "not ready while the store fails");
    let started = Instant::now();
    loop {
        let n = flaky.seen.lock().expect("lock").len();
        if n == 9 && broker.depth(&env.dead_letter_queue).await == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {n} handled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(health.is_ready());
    let dead = broker
        .drain(&env.dead_letter_queue, 1, Duration::from_secs(5))
        .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].1.get("x-stv3-reason").map(String::as_str),
        Some("app_error")
    );
    let body: Value = serde_json::from_slice(&dead[0].0).expect("JSON body");
    assert_eq!(body["message_id"], "m4");
    let mut seen = flaky.seen.lock().expect("lock").clone();
    seen.sort();
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m5", "m6", "m7", "m8", "m9"]);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("consumer stops")
        .expect("task");
    assert_eq!(broker.depth(&env.queue).await, 0, "all acknowledged");
    broker.close().await;
    env.cleanup().await;
}

/// The dead-letter queue is bounded (`dead_letter_max_length`: the oldest go first)
/// and its depth is a metric. A dead-letter queue declared earlier without the bound
/// (an older version) does not stop the worker: it is used as it is, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_queues_are_bounded_and_measured() {
    let env = Env::new("dlqbound", 10).await;
    let conf = std::fs::read_to_string(&env.yagi_conf).expect("yagi.conf");
    let conf = conf.replace(
        "max_messages = 10",
        "max_messages = 10\ndead_letter_max_length = 5",
    );
    assert!(conf.contains("dead_letter_max_length = 5"), "{conf}");
    std::fs::write(&env.yagi_conf, conf).expect("write yagi.conf");
    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    let mut child = env.spawn_worker(0);
    wait_ready(&env, Duration::from_secs(30)).await;
    let bad: Vec<Vec<u8>> = (0..12)
        .map(|i| format!("not json #{i}").into_bytes())
        .collect();
    broker.publish_bodies(&env, &bad).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut m = env.metrics().await;
    while metric_sum(&m, "yagi_messages_dead_lettered_total", &[]) < 12.0 {
        assert!(Instant::now() < deadline, "not all dead-lettered\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        m = env.metrics().await;
    }
    assert_eq!(
        broker.depth(&env.dead_letter_queue).await,
        5,
        "bounded at 5"
    );
    assert_eq!(metric_sum(&m, "yagi_dead_letter_depth", &[]), 5.0, "{m}");
    // The newest five stayed.
    let kept = broker
        .drain(&env.dead_letter_queue, 5, Duration::from_secs(10))
        .await;
    let kept: Vec<String> = kept
        .iter()
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(
        kept,
        (7..12)
            .map(|i| format!("not json #{i}"))
            .collect::<Vec<_>>()
    );
    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");

    // An unbounded dead-letter queue from before: the worker still consumes.
    broker
        .channel
        .queue_delete(env.dead_letter_queue.as_str().into(), Default::default())
        .await
        .expect("delete");
    broker
        .channel
        .queue_declare(
            env.dead_letter_queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare without a bound");
    let mut child = env.spawn_worker(1);
    wait_ready(&env, Duration::from_secs(30)).await;
    broker.publish_bodies(&env, &bad[..3]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.depth(&env.dead_letter_queue).await < 3 {
        assert!(
            Instant::now() < deadline,
            "not dead-lettered\n{}",
            env.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(env.log_path(1)).unwrap_or_default();
    assert!(log.contains("its bound is not applied"), "{log}");
    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    broker.close().await;
    env.cleanup().await;
}
