//! Consuming one queue: connect, declare, batch, hand to the apps, dead-letter the
//! poison, acknowledge after the commit; reconnect on failure.
//!
//! A batch is the deliveries that arrive within `batch_timeout` of its first one, up
//! to `max_messages`. It is acknowledged (one `basic.ack` with `multiple`) only once
//! every app has handled it (the store's transaction committed, the archive flushed)
//! and its poison messages are confirmed in the dead-letter queue. Until then nothing
//! is acknowledged: a crash means RabbitMQ redelivers the batch, and the store skips
//! message_ids it already holds.

use super::apps::{AppChain, AppError, AppReport};
use super::config::{BrokerConfig, ConsumerConfig};
use super::metrics::{queue_label, reason_labels, YagiMetrics};
use crate::amqp::BoundQueue;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Longest pause between retries of a batch the store (or archive) refused.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(10);
/// After this many failures of a batch with the same error, its notifications are
/// tried one at a time (see [`isolate`]).
const SAME_FAILURES_BEFORE_ISOLATING: u32 = 5;
/// How long opening a connection and declaring the topology may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message is poison: a metric label / header value and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    pub reason: &'static str,
    pub detail: String,
}

/// Parses a message body: a notification as JSON, or the oslo.messaging 2.0 envelope
/// `{"oslo.version": "2.0", "oslo.message": "<notification as a JSON string>"}`.
pub fn parse_body(data: &[u8]) -> Result<Value, Poison> {
    let text = std::str::from_utf8(data).map_err(|e| Poison {
        reason: "not_utf8",
        detail: format!("body is not UTF-8: {e}"),
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| Poison {
        reason: "invalid_json",
        detail: format!("body is not JSON: {e}"),
    })?;
    let value = match value {
        Value::Object(mut map) if map.contains_key("oslo.message") => {
            let inner = match map.remove("oslo.message") {
                Some(Value::String(s)) => s,
                _ => {
                    return Err(Poison {
                        reason: "invalid_envelope",
                        detail: "oslo.message is not a string".into(),
                    })
                }
            };
            serde_json::from_str(&inner).map_err(|e| Poison {
                reason: "invalid_envelope",
                detail: format!("oslo.message is not JSON: {e}"),
            })?
        }
        other => other,
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(Poison {
            reason: "not_an_object",
            detail: "notification is not a JSON object".into(),
        })
    }
}

/// Connection state shared with the readiness probe.
#[derive(Debug)]
pub struct Readiness {
    queues: Vec<AtomicBool>,
    store_ok: AtomicBool,
    health: crate::observe::Health,
}

impl Readiness {
    pub fn new(queues: usize, health: crate::observe::Health) -> Self {
        Readiness {
            queues: (0..queues).map(|_| AtomicBool::new(false)).collect(),
            store_ok: AtomicBool::new(true),
            health,
        }
    }

    fn update(&self) {
        let ready = self.store_ok.load(Ordering::SeqCst)
            && self.queues.iter().all(|q| q.load(Ordering::SeqCst));
        self.health.set_ready(ready);
    }

    pub fn set_connected(&self, queue: usize, connected: bool) {
        if let Some(q) = self.queues.get(queue) {
            q.store(connected, Ordering::SeqCst);
        }
        self.update();
    }

    pub fn set_store_ok(&self, ok: bool) {
        self.store_ok.store(ok, Ordering::SeqCst);
        self.update();
    }
}

/// Everything one queue's consumer task shares with the rest of the process.
pub struct QueueContext {
    pub index: usize,
    pub broker: BrokerConfig,
    pub consumer: ConsumerConfig,
    pub chain: AppChain,
    pub metrics: YagiMetrics,
    pub readiness: Arc<Readiness>,
    /// Messages received since the last statistics line.
    pub received_since: Arc<AtomicU64>,
}

/// An error that ends a session (the task reconnects).
#[derive(Debug)]
struct SessionError(String);

impl<E: std::fmt::Display> From<E> for SessionError {
    fn from(e: E) -> Self {
        SessionError(e.to_string())
    }
}

struct Session {
    connection: Connection,
    channel: Channel,
    dead_letter: Channel,
    consumer: Consumer,
    consumer_tag: String,
}

async fn open_session(ctx: &QueueContext) -> Result<Session, SessionError> {
    let c = &ctx.consumer;
    let uri = ctx.broker.params.to_string();
    let connection = crate::amqp::connect(
        &ctx.broker.params,
        &ctx.broker.tls,
        ConnectionProperties::default()
            .with_connection_name(format!("yagi-event {}", c.queue).into()),
    )
    .await
    .map_err(|e| SessionError(format!("cannot connect to {uri}: {e}")))?;
    let channel = connection.create_channel().await?;
    // The original (carrot) declared the queue, then the exchange, then the binding.
    // A headers exchange takes the routing key as arguments (as the original): not
    // supported beyond an empty key here.
    BoundQueue {
        queue: &c.queue,
        queue_durable: c.durable,
        queue_auto_delete: c.auto_delete,
        exchange: &c.exchange,
        exchange_type: &c.exchange_type,
        exchange_durable: c.exchange_is_durable(),
        exchange_auto_delete: c.exchange_is_auto_delete(),
        routing_key: &c.routing_key,
    }
    .declare(&channel)
    .await?;

    let mut dead_letter = connection.create_channel().await?;
    dead_letter
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    dead_letter
        .exchange_declare(
            c.dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            SessionError(format!(
                "cannot declare dead-letter exchange '{}': {e}",
                c.dead_letter_exchange
            ))
        })?;
    let declared = dead_letter
        .queue_declare(
            c.dead_letter_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            dead_letter_arguments(c),
        )
        .await;
    let depth = match declared {
        Ok(q) => q.message_count(),
        Err(e) => {
            // Declared before with other arguments (an older version, a policy-less
            // bound): the broker closed the channel. Use the queue as it is, and say
            // how to bound it.
            tracing::warn!(queue = %c.queue, dead_letter_queue = %c.dead_letter_queue,
                error = %e,
                "the dead-letter queue exists with other arguments: its bound is not applied \
                 (drain and delete it to have it redeclared, or bound it with a RabbitMQ \
                 policy: max-length / message-ttl)");
            dead_letter = connection.create_channel().await?;
            dead_letter
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            dead_letter
                .queue_declare(
                    c.dead_letter_queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?
                .message_count()
        }
    };
    ctx.metrics
        .dead_letter_depth
        .get_or_create(&queue_label(&c.queue))
        .set(i64::from(depth));
    dead_letter
        .queue_bind(
            c.dead_letter_queue.as_str().into(),
            c.dead_letter_exchange.as_str().into(),
            c.dead_letter_queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let prefetch = u16::try_from(c.max_messages.saturating_mul(2)).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer_tag = format!("yagi-event-{}-{}", std::process::id(), c.queue);
    let consumer = channel
        .basic_consume(
            c.queue.as_str().into(),
            consumer_tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Session {
        connection,
        channel,
        dead_letter,
        consumer,
        consumer_tag,
    })
}

/// How often an idle consumer reads its dead-letter queue's depth.
const DEPTH_REFRESH: Duration = Duration::from_secs(30);

/// The dead-letter queue's bound: `x-max-length` (oldest dropped first) and
/// `x-message-ttl`, as configured; a queue nobody drains must not fill the broker.
fn dead_letter_arguments(c: &ConsumerConfig) -> FieldTable {
    let mut args = FieldTable::default();
    if c.dead_letter_max_length > 0 {
        let max = i64::try_from(c.dead_letter_max_length).unwrap_or(i64::MAX);
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(max));
    }
    if let Some(ttl) = c.dead_letter_ttl {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
    }
    args
}

/// Asks the broker how many messages wait in the dead-letter queue and sets the gauge.
/// A failure here only leaves the gauge as it was.
async fn refresh_dead_letter_depth(ctx: &QueueContext, session: &Session) {
    let c = &ctx.consumer;
    let asked = session
        .dead_letter
        .queue_declare(
            c.dead_letter_queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match asked {
        Ok(q) => {
            ctx.metrics
                .dead_letter_depth
                .get_or_create(&queue_label(&c.queue))
                .set(i64::from(q.message_count()));
        }
        Err(e) => {
            tracing::debug!(queue = %c.queue, error = %e, "cannot read the dead-letter queue's depth")
        }
    }
}

impl Session {
    fn alive(&self) -> bool {
        self.connection.status().connected()
            && self.channel.status().connected()
            && self.dead_letter.status().connected()
    }

    async fn close(self) {
        let closing = async {
            if self.channel.status().connected() {
                let _ = self
                    .channel
                    .basic_cancel(
                        self.consumer_tag.as_str().into(),
                        BasicCancelOptions::default(),
                    )
                    .await;
            }
            if self.connection.status().connected() {
                let _ = self.connection.close(200, "bye".into()).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), closing).await;
    }

    /// The next delivery; `Ok(None)` when `stop` fired first.
    async fn next(&mut self, stop: impl std::future::Future<Output = ()>) -> NextDelivery {
        // The liveness check's first tick is a second away: awaiting an immediate first
        // tick would cost a timer-wheel millisecond on every delivery.
        let period = Duration::from_secs(1);
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                d = self.consumer.next() => {
                    return match d {
                        Some(Ok(d)) => NextDelivery::Delivery(Box::new(d)),
                        Some(Err(e)) => NextDelivery::Failed(format!("consumer failed: {e}")),
                        None => NextDelivery::Failed("the broker cancelled the consumer".into()),
                    }
                }
                _ = &mut stop => return NextDelivery::Stopped,
                _ = check.tick() => {
                    if !self.alive() {
                        return NextDelivery::Failed("connection lost".into());
                    }
                }
            }
        }
    }
}

enum NextDelivery {
    Delivery(Box<Delivery>),
    Stopped,
    Failed(String),
}

/// Consumes one queue until `shutdown`, reconnecting (with back-off) on failure.
pub async fn consume_queue(ctx: QueueContext, shutdown: CancellationToken) {
    let queue = ctx.consumer.queue.clone();
    let first_pause = Duration::from_millis(500).min(ctx.broker.reconnect_delay);
    let max_pause = ctx.broker.reconnect_delay.max(first_pause);
    let mut pause = first_pause;
    let mut failed_before = false;
    // The last failure logged: a broker that stays away is one error line, not one per
    // retry; a different failure (or the connection coming back) is logged again.
    let mut last_error: Option<String> = None;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let opened = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = tokio::time::timeout(CONNECT_TIMEOUT, open_session(&ctx)) => {
                r.unwrap_or_else(|_| Err(SessionError(format!(
                    "connecting to {} timed out after {CONNECT_TIMEOUT:?}", ctx.broker.params
                ))))
            }
        };
        let mut session = match opened {
            Ok(s) => s,
            Err(e) => {
                if last_error.as_deref() == Some(e.0.as_str()) {
                    tracing::debug!(%queue, error = %e.0, retry_in = ?pause,
                        "cannot consume; reconnecting");
                } else {
                    tracing::error!(%queue, error = %e.0, retry_in = ?pause,
                        "cannot consume; reconnecting (repeats of this error are logged at debug)");
                    last_error = Some(e.0);
                }
                failed_before = true;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(max_pause);
                continue;
            }
        };
        if failed_before {
            ctx.metrics
                .reconnects
                .get_or_create(&queue_label(&queue))
                .inc();
        }
        tracing::info!(%queue, broker = %ctx.broker.params, exchange = %ctx.consumer.exchange,
            routing_key = %ctx.consumer.routing_key, "connection established");
        ctx.readiness.set_connected(ctx.index, true);
        pause = first_pause;
        last_error = None;
        let outcome = run_session(&ctx, &mut session, &shutdown).await;
        ctx.readiness.set_connected(ctx.index, false);
        session.close().await;
        match outcome {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(%queue, error = %e.0, "RabbitMQ connection lost; reconnecting");
                failed_before = true;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    tracing::info!(%queue, "consumer stopped");
}

/// Batches until `shutdown` (Ok) or a broken connection (Err).
async fn run_session(
    ctx: &QueueContext,
    session: &mut Session,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let max = ctx.consumer.max_messages;
    let mut depth_read = Instant::now();
    loop {
        // While idle, the dead-letter queue's depth is read every so often (someone
        // may be draining it).
        if depth_read.elapsed() >= DEPTH_REFRESH {
            refresh_dead_letter_depth(ctx, session).await;
            depth_read = Instant::now();
        }
        let wake = async {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(DEPTH_REFRESH) => {}
            }
        };
        let first = match session.next(wake).await {
            NextDelivery::Delivery(d) => d,
            NextDelivery::Stopped if shutdown.is_cancelled() => return Ok(()),
            NextDelivery::Stopped => continue,
            NextDelivery::Failed(e) => return Err(SessionError(e)),
        };
        let started = Instant::now();
        let mut batch = vec![*first];
        let deadline = tokio::time::Instant::now() + ctx.consumer.batch_timeout;
        while batch.len() < max && !shutdown.is_cancelled() {
            let stop = async {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = shutdown.cancelled() => {}
                }
            };
            match session.next(stop).await {
                NextDelivery::Delivery(d) => batch.push(*d),
                NextDelivery::Stopped => break,
                NextDelivery::Failed(e) => return Err(SessionError(e)),
            }
        }
        process_batch(ctx, session, batch, started, shutdown).await?;
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Handles one batch and acknowledges it. Returns Err when the connection broke (the
/// batch is then redelivered by RabbitMQ).
async fn process_batch(
    ctx: &QueueContext,
    session: &Session,
    batch: Vec<Delivery>,
    started: Instant,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let queue = &ctx.consumer.queue;
    let labels = queue_label(queue);
    let n = batch.len() as u64;
    ctx.metrics.received.get_or_create(&labels).inc_by(n);
    ctx.received_since.fetch_add(n, Ordering::Relaxed);

    // Poison per delivery index (first reason wins).
    let mut poison: Vec<Option<Poison>> = vec![None; batch.len()];
    let mut good: Vec<Value> = Vec::with_capacity(batch.len());
    let mut good_index: Vec<usize> = Vec::with_capacity(batch.len());
    for (i, d) in batch.iter().enumerate() {
        match parse_body(&d.data) {
            Ok(v) => {
                good.push(v);
                good_index.push(i);
            }
            Err(p) => poison[i] = Some(p),
        }
    }

    if !good.is_empty() {
        let reports = run_apps(ctx, session, &good, shutdown).await?;
        let reports = match reports {
            Some(r) => r,
            // Shut down while the store was away: leave the batch unacknowledged.
            None => return Ok(()),
        };
        for report in reports {
            if report.stored > 0 {
                ctx.metrics
                    .stored
                    .get_or_create(&labels)
                    .inc_by(report.stored);
            }
            if report.duplicates > 0 {
                ctx.metrics
                    .duplicates
                    .get_or_create(&labels)
                    .inc_by(report.duplicates);
            }
            for r in report.rejected {
                if let Some(&i) = good_index.get(r.index) {
                    if poison[i].is_none() {
                        poison[i] = Some(Poison {
                            reason: r.reason,
                            detail: r.detail,
                        });
                    }
                }
            }
        }
    }

    dead_letter(ctx, session, &batch, &poison).await?;

    if let Some(last) = batch.last() {
        session
            .channel
            .basic_ack(last.delivery_tag, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| SessionError(format!("cannot acknowledge: {e}")))?;
    }
    ctx.metrics.batches.get_or_create(&labels).inc();
    ctx.metrics
        .batch_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(%queue, messages = n, "batch acknowledged");
    Ok(())
}

/// Runs every app of the chain over `good`, retrying transient failures with back-off
/// (an app that already succeeded is not run again). `Ok(None)`: shut down while
/// retrying.
async fn run_apps(
    ctx: &QueueContext,
    session: &Session,
    good: &[Value],
    shutdown: &CancellationToken,
) -> Result<Option<Vec<AppReport>>, SessionError> {
    let queue = &ctx.consumer.queue;
    let apps = &ctx.chain.apps;
    let mut reports: Vec<Option<AppReport>> = vec![None; apps.len()];
    let mut pause = Duration::from_millis(200);
    // The last failure (app, message) and how many times in a row it happened.
    let mut last: Option<(usize, String)> = None;
    let mut same = 0u32;
    loop {
        let mut failure: Option<(usize, String)> = None;
        for (i, app) in apps.iter().enumerate() {
            if reports[i].is_some() {
                continue;
            }
            match handle_with_fallback(app.as_ref(), good).await {
                Ok(r) => {
                    reports[i] = Some(r);
                    if app.kind() == super::config::AppKind::Winchester {
                        ctx.readiness.set_store_ok(true);
                    }
                }
                Err(e) => {
                    if app.kind() == super::config::AppKind::Winchester {
                        ctx.readiness.set_store_ok(false);
                    }
                    failure = Some((i, format!("{}: {e}", app.kind().class_name())));
                    break;
                }
            }
        }
        let Some((failed, why)) = failure else {
            return Ok(Some(reports.into_iter().flatten().collect()));
        };
        same = if last.as_ref() == Some(&(failed, why.clone())) {
            same + 1
        } else {
            1
        };
        last = Some((failed, why.clone()));
        if same >= SAME_FAILURES_BEFORE_ISOLATING {
            // Once every few failures only: during an outage each attempt costs a
            // round trip per notification.
            same = 0;
            if let Some(report) = isolate(apps[failed].as_ref(), good).await {
                tracing::error!(%queue, error = %why, rejected = report.rejected.len(),
                    "the same failure again and again while other notifications were \
                     stored: the ones that fail are dead-lettered");
                if apps[failed].kind() == super::config::AppKind::Winchester {
                    ctx.readiness.set_store_ok(true);
                }
                reports[failed] = Some(report);
                last = None;
                continue;
            }
        }
        ctx.metrics.retries.get_or_create(&queue_label(queue)).inc();
        tracing::warn!(%queue, error = %why, retry_in = ?pause,
            "batch not handled; keeping it and retrying");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
        if !session.alive() {
            return Err(SessionError(
                "connection lost while retrying a batch".into(),
            ));
        }
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
}

/// The last resort for a batch that keeps failing the same way: each notification
/// alone. When some of them are stored, the database evidently takes writes, so the
/// ones that still lose a race every time (a key the database holds and the engine
/// cannot see) are the cause and are rejected (`retries_exhausted`, with the error).
/// An error about the database itself (rights, read-only, disk, connection) is never
/// blamed on a notification, and when nothing is stored (duplicates and refusals
/// prove nothing about writes), `None` keeps the batch for later.
async fn isolate(app: &dyn super::apps::App, good: &[Value]) -> Option<AppReport> {
    match one_by_one(app, good, true).await {
        Ok(total) => (total.stored > 0).then_some(total),
        Err(_) => None,
    }
}

/// Runs an app over the batch; on a permanent failure, over each notification alone,
/// so that only the culprits are rejected (reason `app_error`). Transient failures
/// are returned for the caller to retry.
async fn handle_with_fallback(
    app: &dyn super::apps::App,
    good: &[Value],
) -> Result<AppReport, AppError> {
    match app.handle(good).await {
        Err(AppError::Permanent(e)) => {
            tracing::error!(app = app.kind().class_name(), error = %e,
                "batch refused; handling its notifications one by one");
            one_by_one(app, good, false).await
        }
        other => other,
    }
}

/// Hands the app each notification alone and adds up the reports. A permanent failure
/// rejects that notification (`app_error`); so does a lost race when
/// `conflicts_reject` (`retries_exhausted`, for [`isolate`]); any other failure ends
/// the run and is returned.
async fn one_by_one(
    app: &dyn super::apps::App,
    good: &[Value],
    conflicts_reject: bool,
) -> Result<AppReport, AppError> {
    let mut total = AppReport::default();
    for (i, n) in good.iter().enumerate() {
        let rejected = |reason, detail| super::apps::Rejected {
            index: i,
            reason,
            detail,
        };
        match app.handle(std::slice::from_ref(n)).await {
            Ok(r) => {
                total.stored += r.stored;
                total.duplicates += r.duplicates;
                total.rejected.extend(r.rejected.into_iter().map(|mut x| {
                    x.index = i;
                    x
                }));
            }
            Err(AppError::Permanent(e)) => total.rejected.push(rejected("app_error", e)),
            Err(AppError::Conflict(e)) if conflicts_reject => {
                total.rejected.push(rejected("retries_exhausted", e))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Republishes the poison messages (with publisher confirms) before the batch is
/// acknowledged.
async fn dead_letter(
    ctx: &QueueContext,
    session: &Session,
    batch: &[Delivery],
    poison: &[Option<Poison>],
) -> Result<(), SessionError> {
    let c = &ctx.consumer;
    let mut confirms = Vec::new();
    for (d, p) in batch.iter().zip(poison) {
        let Some(p) = p else { continue };
        tracing::debug!(queue = %c.queue, reason = p.reason, detail = %p.detail,
            dead_letter_queue = %c.dead_letter_queue, "poison message dead-lettered");
        let mut headers = FieldTable::default();
        headers.insert(
            "x-stv3-reason".into(),
            AMQPValue::LongString(p.reason.into()),
        );
        headers.insert(
            "x-stv3-detail".into(),
            AMQPValue::LongString(p.detail.as_str().into()),
        );
        headers.insert(
            "x-stv3-original-queue".into(),
            AMQPValue::LongString(c.queue.as_str().into()),
        );
        headers.insert(
            "x-stv3-original-exchange".into(),
            AMQPValue::LongString(d.exchange.as_str().into()),
        );
        headers.insert(
            "x-stv3-original-routing-key".into(),
            AMQPValue::LongString(d.routing_key.as_str().into()),
        );
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        if let Some(ct) = d.properties.content_type() {
            props = props.with_content_type(ct.clone());
        }
        if let Some(ce) = d.properties.content_encoding() {
            props = props.with_content_encoding(ce.clone());
        }
        let confirm = session
            .dead_letter
            .basic_publish(
                c.dead_letter_exchange.as_str().into(),
                c.dead_letter_queue.as_str().into(),
                BasicPublishOptions::default(),
                &d.data,
                props,
            )
            .await
            .map_err(|e| SessionError(format!("cannot dead-letter: {e}")))?;
        confirms.push((confirm, p.reason));
    }
    if let Some(first) = poison.iter().flatten().next() {
        tracing::warn!(queue = %c.queue, count = confirms.len(), first_reason = first.reason,
            first_detail = %first.detail, dead_letter_queue = %c.dead_letter_queue,
            "poison messages dead-lettered");
    }
    for (confirm, reason) in confirms {
        let confirmation = confirm
            .await
            .map_err(|e| SessionError(format!("dead-letter not confirmed: {e}")))?;
        if !confirmation.is_ack() {
            return Err(SessionError(
                "the broker refused a dead-lettered message".into(),
            ));
        }
        ctx.metrics
            .dead_lettered
            .get_or_create(&reason_labels(&c.queue, reason))
            .inc();
    }
    refresh_dead_letter_depth(ctx, session).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yagi::apps::App;
    use crate::yagi::config::AppKind;
    use async_trait::async_trait;

    /// Fails every batch holding a notification marked `bad` with a transient error
    /// (as a unique-key clash the database keeps reporting would); with `down`, fails
    /// everything (an outage).
    struct Picky {
        down: bool,
        /// The bad notification's failure is about the database (a revoked grant),
        /// not a race.
        health: bool,
    }

    #[async_trait]
    impl App for Picky {
        fn kind(&self) -> AppKind {
            AppKind::Winchester
        }
        async fn handle(&self, batch: &[Value]) -> Result<AppReport, AppError> {
            if self.down || batch.iter().any(|n| n["bad"] == true) {
                if self.health {
                    return Err(AppError::Transient("INSERT command denied".into()));
                }
                return Err(AppError::Conflict("duplicate key".into()));
            }
            Ok(AppReport {
                stored: batch.len() as u64,
                ..AppReport::default()
            })
        }
    }

    #[tokio::test]
    async fn isolating_rejects_only_the_culprit_and_never_during_an_outage() {
        let batch = vec![
            serde_json::json!({"n": 0}),
            serde_json::json!({"n": 1, "bad": true}),
            serde_json::json!({"n": 2}),
        ];
        let picky = |down, health| Picky { down, health };
        let r = isolate(&picky(false, false), &batch)
            .await
            .expect("isolated");
        assert_eq!(r.stored, 2);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(
            (r.rejected[0].index, r.rejected[0].reason),
            (1, "retries_exhausted")
        );
        assert!(isolate(&picky(true, false), &batch).await.is_none());
        // An error about the database is never blamed on a notification.
        assert!(isolate(&picky(false, true), &batch).await.is_none());
        let all_bad = vec![serde_json::json!({"bad": true})];
        assert!(isolate(&picky(false, false), &all_bad).await.is_none());
        // Duplicates prove nothing about writes: still an outage.
        struct DupOrDown;
        #[async_trait]
        impl App for DupOrDown {
            fn kind(&self) -> AppKind {
                AppKind::Winchester
            }
            async fn handle(&self, batch: &[Value]) -> Result<AppReport, AppError> {
                if batch.iter().all(|n| n["dup"] == true) {
                    return Ok(AppReport {
                        duplicates: batch.len() as u64,
                        ..AppReport::default()
                    });
                }
                Err(AppError::Transient("INSERT command denied".into()))
            }
        }
        let mixed = vec![
            serde_json::json!({"dup": true}),
            serde_json::json!({"n": 1}),
        ];
        assert!(isolate(&DupOrDown, &mixed).await.is_none());
    }

    #[test]
    fn bodies() {
        let plain = br#"{"event_type": "a", "message_id": "m"}"#;
        assert_eq!(parse_body(plain).unwrap()["message_id"], "m");
        let inner = r#"{"event_type": "a", "message_id": "m2"}"#;
        let env = serde_json::json!({"oslo.version": "2.0", "oslo.message": inner}).to_string();
        assert_eq!(parse_body(env.as_bytes()).unwrap()["message_id"], "m2");
        assert_eq!(parse_body(b"not json").unwrap_err().reason, "invalid_json");
        assert_eq!(parse_body(b"[1,2]").unwrap_err().reason, "not_an_object");
        assert_eq!(parse_body(b"\xff\xfe").unwrap_err().reason, "not_utf8");
        assert_eq!(
            parse_body(br#"{"oslo.version": "2.0", "oslo.message": 5}"#)
                .unwrap_err()
                .reason,
            "invalid_envelope"
        );
        assert_eq!(
            parse_body(br#"{"oslo.version": "2.0", "oslo.message": "[1]"}"#)
                .unwrap_err()
                .reason,
            "not_an_object"
        );
    }
}
