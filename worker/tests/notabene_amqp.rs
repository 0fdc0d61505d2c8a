//! The notabene publisher and handler against the real RabbitMQ
//! (`scripts/services.sh up rabbitmq`; URL from `STV3_TEST_AMQP_URL`).

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use worker::event::Event;
use worker::notabene::{AmqpParams, AmqpPublisher, NotificationSink, PublishError, PublishTarget};
use worker::store::{Stream, StreamState};
use worker::winchester::debug::DebugManager;
use worker::winchester::handlers::{build_factory, HandlerContext};
use worker::winchester::pipeline::{
    Handler, HandlerError, HandlerFactory, Pipeline, PipelineEnv, PipelineError,
};

const HINT: &str = "is RabbitMQ running? try `scripts/services.sh up rabbitmq`";

fn amqp_url() -> String {
    std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn params() -> AmqpParams {
    AmqpParams::from_url(&amqp_url()).expect("STV3_TEST_AMQP_URL")
}

/// Names unique to this test process and call.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "stv3.test.notabene.{what}.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn target(exchange: &str, queue: &str) -> PublishTarget {
    PublishTarget {
        connection: params(),
        exchange: exchange.to_string(),
        exchange_type: "topic".to_string(),
        queue_name: queue.to_string(),
    }
}

/// A separate connection to look at what was published.
struct Observer {
    conn: Connection,
    channel: Channel,
}

impl Observer {
    async fn new() -> Self {
        let conn = tokio::time::timeout(
            Duration::from_secs(15),
            Connection::connect(&amqp_url(), ConnectionProperties::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out connecting to RabbitMQ; {HINT}"))
        .unwrap_or_else(|e| panic!("cannot connect to RabbitMQ ({e}); {HINT}"));
        let channel = conn.create_channel().await.expect("channel");
        Observer { conn, channel }
    }

    /// The next message of `queue`, waiting up to 5 s.
    async fn get(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        for _ in 0..50 {
            if let Some(msg) = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic_get")
            {
                return Some(msg);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Messages waiting in `queue` (declaring it passively).
    async fn count(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive queue_declare")
            .message_count()
    }

    async fn cleanup(self, exchange: &str, queues: &[&str]) {
        for q in queues {
            let _ = self
                .channel
                .queue_delete((*q).into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

#[tokio::test]
async fn publishes_json_persistently_with_the_queue_as_routing_key() {
    let exchange = unique("exchange");
    let queue = unique("queue");
    let publisher = AmqpPublisher::new();
    let notification = json!({
        "event_type": "compute.instance.exists.verified",
        "message_id": "519b0130-8b4f-5287-8eca-3637e648b9df",
        "payload": {"instance_id": "inst", "bandwidth_in": 0, "note": "ünïcode"},
        "timestamp": "2015-01-02 03:00:00"
    });
    publisher
        .publish(&target(&exchange, &queue), &notification)
        .await
        .unwrap_or_else(|e| panic!("publish: {e}; {HINT}"));

    let obs = Observer::new().await;
    let msg = obs
        .get(&queue)
        .await
        .expect("the message reached the queue");
    let body: Value = serde_json::from_slice(&msg.delivery.data).expect("JSON body");
    assert_eq!(body, notification);
    let props = &msg.delivery.properties;
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        props.content_encoding().as_ref().map(|s| s.as_str()),
        Some("utf-8")
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    assert!(
        props
            .headers()
            .as_ref()
            .is_none_or(|h| h.inner().is_empty()),
        "no headers: {:?}",
        props.headers()
    );
    assert_eq!(msg.delivery.routing_key.as_str(), queue);
    assert_eq!(msg.delivery.exchange.as_str(), exchange);

    // The exchange is a durable topic exchange and the queue durable, not auto-deleted:
    // declaring them again with those attributes succeeds (a mismatch would close the
    // channel with PRECONDITION_FAILED).
    obs.channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange is durable topic");
    obs.channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                auto_delete: false,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue is durable, not auto-delete");

    publisher.close().await;
    obs.cleanup(&exchange, &[&queue]).await;
}

#[tokio::test]
async fn one_connection_per_connection_params_reopened_when_closed() {
    let exchange = unique("exchange");
    let q1 = unique("queue");
    let q2 = unique("queue");
    let publisher = AmqpPublisher::new();
    for (q, n) in [(&q1, 1), (&q1, 2), (&q2, 3)] {
        publisher
            .publish(&target(&exchange, q), &json!({"n": n}))
            .await
            .unwrap_or_else(|e| panic!("publish: {e}; {HINT}"));
    }
    assert_eq!(publisher.connections_opened(), 1, "one pooled connection");

    let obs = Observer::new().await;
    assert_eq!(obs.count(&q1).await, 2);
    assert_eq!(obs.count(&q2).await, 1);

    // A closed connection is replaced on the next publish.
    publisher.close().await;
    publisher
        .publish(&target(&exchange, &q1), &json!({"n": 4}))
        .await
        .expect("publish after close");
    assert_eq!(publisher.connections_opened(), 2);
    assert_eq!(obs.count(&q1).await, 3);

    publisher.close().await;
    obs.cleanup(&exchange, &[&q1, &q2]).await;
}

#[tokio::test]
async fn recovers_after_the_broker_closes_the_channel() {
    let exchange = unique("exchange");
    let queue = unique("queue");
    let publisher = AmqpPublisher::new();
    let good = target(&exchange, &queue);
    publisher
        .publish(&good, &json!({"n": 1}))
        .await
        .unwrap_or_else(|e| panic!("publish: {e}; {HINT}"));
    // Redeclaring the exchange with another type makes the broker close the channel
    // (PRECONDITION_FAILED): an error, retried once on a fresh connection.
    let mut conflicting = good.clone();
    conflicting.exchange_type = "fanout".to_string();
    let err = publisher
        .publish(&conflicting, &json!({"n": 2}))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Declare { .. }), "{err}");
    assert_eq!(publisher.connections_opened(), 2);
    // The next publish reconnects and goes through.
    publisher
        .publish(&good, &json!({"n": 3}))
        .await
        .expect("publish after a channel error");
    assert_eq!(publisher.connections_opened(), 3);

    let obs = Observer::new().await;
    assert_eq!(obs.count(&queue).await, 2);
    publisher.close().await;
    obs.cleanup(&exchange, &[&queue]).await;
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_not_a_hang() {
    let publisher = AmqpPublisher::new().with_connect_timeout(Duration::from_secs(5));
    let mut t = target("e", "q");
    t.connection.host = "127.0.0.1".to_string();
    t.connection.port = 1;
    t.connection.password = "s3cret-pw".to_string();
    let err = publisher.publish(&t, &json!({})).await.unwrap_err();
    assert!(matches!(err, PublishError::Connect { .. }), "{err}");
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
}

// ---- the notabene handler in a pipeline -------------------------------------------

/// Puts notifications under `usage_notifications` in the env, as a usage-like handler
/// upstream of notabene would.
struct Emitter;
/// Fails `handle_events` when asked.
struct Gate(bool);

struct Factory<F: Fn() -> Box<dyn Handler> + Send + Sync>(&'static str, F);

impl<F: Fn() -> Box<dyn Handler> + Send + Sync> HandlerFactory for Factory<F> {
    fn name(&self) -> &str {
        self.0
    }
    fn create(&self) -> Box<dyn Handler> {
        (self.1)()
    }
}

#[async_trait]
impl Handler for Emitter {
    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError> {
        let list = env
            .notifications
            .entry("usage_notifications".to_string())
            .or_default();
        for e in &events {
            list.push(json!({"event_type": e.event_type, "message_id": e.message_id, "stream_id": env.stream_id}));
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

#[async_trait]
impl Handler for Gate {
    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        _env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError> {
        if self.0 {
            Err(HandlerError::new("gate closed"))
        } else {
            Ok(events)
        }
    }
    async fn commit(&mut self, _env: &PipelineEnv) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn rollback(&mut self) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn stream() -> Stream {
    let t = Utc.with_ymd_and_hms(2015, 1, 2, 0, 0, 0).unwrap();
    Stream {
        id: 7,
        name: "test_trigger".to_string(),
        state: StreamState::Firing,
        state_serial_no: 1,
        first_event: t,
        last_event: t,
        expire_timestamp: None,
        fire_timestamp: Some(t),
        distinguishing_traits: Default::default(),
        fire_counts: vec![],
        event_count: 2,
        claim_until: None,
    }
}

fn events() -> Vec<Event> {
    let t = Utc.with_ymd_and_hms(2015, 1, 2, 0, 0, 0).unwrap();
    ["compute.instance.create.end", "compute.instance.exists"]
        .iter()
        .enumerate()
        .map(|(i, et)| Event {
            event_type: et.to_string(),
            message_id: format!("m{i}"),
            timestamp: t,
            traits: Default::default(),
        })
        .collect()
}

fn notabene_params(exchange: &str, queue: &str) -> Map<String, Value> {
    let p = params();
    let v = json!({
        "host": p.host, "port": p.port, "user": p.user, "password": p.password,
        "vhost": p.vhost, "library": "librabbitmq", "exchange": exchange,
        "exchange_type": "topic", "queue_name": queue,
        "env_keys": ["usage_notifications"]
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn notabene_handler_publishes_env_notifications_on_commit_only() {
    let exchange = unique("exchange");
    let queue = unique("queue");
    let publisher = Arc::new(AmqpPublisher::new());
    let ctx = HandlerContext {
        publisher: publisher.clone(),
    };
    let notabene = build_factory("notabene", &notabene_params(&exchange, &queue), &ctx)
        .expect("notabene params");
    let emitter: Arc<dyn HandlerFactory> =
        Arc::new(Factory("emitter", || Box::new(Emitter) as Box<dyn Handler>));
    let debug = DebugManager::new([]);

    // A handler after notabene fails: rollback, nothing published.
    let failing: Arc<dyn HandlerFactory> =
        Arc::new(Factory("gate", || Box::new(Gate(true)) as Box<dyn Handler>));
    let p = Pipeline::new("fail", vec![emitter.clone(), notabene.clone(), failing]);
    assert!(p.run(&stream(), events(), &debug).await.is_err());
    assert_eq!(publisher.connections_opened(), 0, "no publish on rollback");

    // All handlers succeed: every notification is published, in order.
    let passing: Arc<dyn HandlerFactory> = Arc::new(Factory("gate", || {
        Box::new(Gate(false)) as Box<dyn Handler>
    }));
    let p = Pipeline::new("ok", vec![emitter, notabene, passing]);
    p.run(&stream(), events(), &debug)
        .await
        .unwrap_or_else(|e| panic!("pipeline: {e}"));

    let obs = Observer::new().await;
    for (i, et) in ["compute.instance.create.end", "compute.instance.exists"]
        .iter()
        .enumerate()
    {
        let msg = obs.get(&queue).await.expect("published notification");
        let body: Value = serde_json::from_slice(&msg.delivery.data).expect("JSON");
        assert_eq!(
            body,
            json!({"event_type": et, "message_id": format!("m{i}"), "stream_id": 7})
        );
    }
    assert_eq!(obs.count(&queue).await, 0, "exactly two were published");
    let counts = debug.take();
    assert_eq!(counts["test_trigger"].counters["Commit successful"], 3);
    assert!(!counts["test_trigger"].counters.contains_key("Commit error"));

    publisher.close().await;
    obs.cleanup(&exchange, &[&queue]).await;
}

/// A broker that cannot be reached fails the commit retryably: the pipeline reports
/// a retry (the worker puts the stream back), it does not complete without publishing.
#[tokio::test]
async fn a_publish_failure_sends_the_stream_to_retry() {
    let publisher = Arc::new(AmqpPublisher::new().with_connect_timeout(Duration::from_secs(5)));
    let ctx = HandlerContext {
        publisher: publisher.clone(),
    };
    let mut params = notabene_params("e", "q");
    params.insert("host".into(), json!("127.0.0.1"));
    params.insert("port".into(), json!(1));
    let notabene = build_factory("notabene", &params, &ctx).expect("params");
    let emitter: Arc<dyn HandlerFactory> =
        Arc::new(Factory("emitter", || Box::new(Emitter) as Box<dyn Handler>));
    let debug = DebugManager::new([]);
    let p = Pipeline::new("p", vec![emitter, notabene]);
    let err = p
        .run(&stream(), events(), &debug)
        .await
        .expect_err("a publish that failed must not complete the stream");
    assert!(
        matches!(&err, PipelineError::Retry { handler, position: 2, .. } if handler == "notabene"),
        "{err:?}"
    );
    let counts = debug.take();
    assert_eq!(counts["test_trigger"].counters["Commit error"], 1);
    assert_eq!(counts["test_trigger"].counters["Commit successful"], 1);
}
