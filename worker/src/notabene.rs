//! Publishing notifications to RabbitMQ the way StackTach's notabene did.
//!
//! Each notification goes out as its JSON body with `content_type application/json`,
//! `content_encoding utf-8`, delivery mode 2 (persistent) and no headers, to a durable
//! exchange (topic by default) with the queue name as routing key. The queue is declared
//! durable and not auto-deleted and bound to the exchange with that routing key, so
//! nothing published is lost while no consumer listens.
//!
//! [`AmqpPublisher`] keeps one connection and one channel (with publisher confirms) per
//! set of connection parameters, as the original's connection manager pooled them, and
//! declares each (exchange, queue) pair once per connection. A broken connection is
//! dropped and reopened on the next publish (and a publish that fails on a reused
//! connection is retried once on a fresh one).
//!
//! [`RecordingSink`] collects notifications in memory instead: `stv3 replay` reports
//! them, and tests read them back.

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::amqp::AmqpParams;
use crate::amqp::BoundQueue;

/// Where one notification goes: a broker, an exchange and a queue (whose name is also
/// the routing key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublishTarget {
    pub connection: AmqpParams,
    pub exchange: String,
    /// `topic` (the default), `direct`, `fanout`, `headers` or a plugin's type.
    pub exchange_type: String,
    pub queue_name: String,
}

/// Why a notification was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("cannot declare exchange '{exchange}' / queue '{queue}' on {target}: {reason}")]
    Declare {
        target: String,
        exchange: String,
        queue: String,
        reason: String,
    },
    #[error("cannot publish to exchange '{exchange}' on {target}: {reason}")]
    Publish {
        target: String,
        exchange: String,
        reason: String,
    },
    #[error("the broker did not confirm the message published to exchange '{exchange}'")]
    NotConfirmed { exchange: String },
    #[error("the broker did not answer the message published to exchange '{exchange}' within {seconds}s")]
    ConfirmTimeout { exchange: String, seconds: u64 },
    #[error("cannot encode the notification as JSON: {0}")]
    Encode(String),
}

/// Something notifications can be published to.
#[async_trait]
pub trait NotificationSink: Send + Sync {
    async fn publish(
        &self,
        target: &PublishTarget,
        notification: &Value,
    ) -> Result<(), PublishError>;
}

/// Collects published notifications in memory, in order.
#[derive(Debug, Default)]
pub struct RecordingSink {
    published: Mutex<Vec<(PublishTarget, Value)>>,
}

impl RecordingSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything published so far.
    pub fn published(&self) -> Vec<(PublishTarget, Value)> {
        self.lock().clone()
    }

    /// Everything published so far, emptying the record.
    pub fn take(&self) -> Vec<(PublishTarget, Value)> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PublishTarget, Value)>> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl NotificationSink for RecordingSink {
    async fn publish(
        &self,
        target: &PublishTarget,
        notification: &Value,
    ) -> Result<(), PublishError> {
        self.lock().push((target.clone(), notification.clone()));
        Ok(())
    }
}

/// One open connection with its publishing channel.
struct Pooled {
    connection: Connection,
    channel: Channel,
    /// (exchange, exchange_type, queue) already declared on this connection.
    declared: HashSet<(String, String, String)>,
}

impl Pooled {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Pooled>>>;

/// Publishes to RabbitMQ with lapin, one pooled connection per connection parameters.
pub struct AmqpPublisher {
    slots: Mutex<HashMap<AmqpParams, Slot>>,
    connections_opened: AtomicU64,
    connect_timeout: Duration,
    confirm_timeout: Duration,
}

impl Default for AmqpPublisher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AmqpPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpPublisher")
            .field("connections_opened", &self.connections_opened())
            .finish_non_exhaustive()
    }
}

impl AmqpPublisher {
    pub fn new() -> Self {
        AmqpPublisher {
            slots: Mutex::new(HashMap::new()),
            connections_opened: AtomicU64::new(0),
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(30),
        }
    }

    /// How long a publish waits for the broker's confirm; 30 s by default. A broker
    /// under memory or disk alarm blocks publishers: waiting for ever would hold the
    /// stream (and its worker) with it.
    pub fn with_confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// How long opening a connection (and its channel) may take; 10 s by default.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many connections this publisher has opened (reconnections included).
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened.load(Ordering::Relaxed)
    }

    /// Closes every pooled connection (the next publish reopens one).
    pub async fn close(&self) {
        let slots: Vec<Slot> = {
            let map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            map.values().cloned().collect()
        };
        for slot in slots {
            let mut guard = slot.lock().await;
            if let Some(pooled) = guard.take() {
                close_quietly(pooled).await;
            }
        }
    }

    fn slot(&self, params: &AmqpParams) -> Slot {
        let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(params.clone()).or_default().clone()
    }

    async fn open(&self, params: &AmqpParams) -> Result<Pooled, PublishError> {
        let connect_err = |reason: String| PublishError::Connect {
            target: params.to_string(),
            reason,
        };
        let opening = async {
            let connection =
                Connection::connect_uri(params.to_uri(), ConnectionProperties::default())
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
            self.connections_opened.fetch_add(1, Ordering::Relaxed);
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| connect_err(format!("cannot open a channel: {e}")))?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| connect_err(format!("cannot enable publisher confirms: {e}")))?;
            Ok::<_, PublishError>(Pooled {
                connection,
                channel,
                declared: HashSet::new(),
            })
        };
        match tokio::time::timeout(self.connect_timeout, opening).await {
            Ok(result) => {
                if result.is_ok() {
                    tracing::info!("notabene: connected to {params}");
                }
                result
            }
            Err(_) => Err(connect_err(format!(
                "timed out after {:?}",
                self.connect_timeout
            ))),
        }
    }

    async fn declare(pooled: &mut Pooled, target: &PublishTarget) -> Result<(), PublishError> {
        let key = (
            target.exchange.clone(),
            target.exchange_type.clone(),
            target.queue_name.clone(),
        );
        if pooled.declared.contains(&key) {
            return Ok(());
        }
        let topology = BoundQueue {
            queue: &target.queue_name,
            queue_durable: true,
            queue_auto_delete: false,
            exchange: &target.exchange,
            exchange_type: &target.exchange_type,
            exchange_durable: true,
            exchange_auto_delete: false,
            routing_key: &target.queue_name,
        };
        topology
            .declare(&pooled.channel)
            .await
            .map_err(|e| PublishError::Declare {
                target: target.connection.to_string(),
                exchange: target.exchange.clone(),
                queue: target.queue_name.clone(),
                reason: e.to_string(),
            })?;
        pooled.declared.insert(key);
        Ok(())
    }

    async fn send(
        pooled: &Pooled,
        target: &PublishTarget,
        body: &[u8],
        confirm_timeout: Duration,
    ) -> Result<(), PublishError> {
        let publish_err = |reason: String| PublishError::Publish {
            target: target.connection.to_string(),
            exchange: target.exchange.clone(),
            reason,
        };
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2);
        let publishing = async {
            pooled
                .channel
                .basic_publish(
                    target.exchange.as_str().into(),
                    target.queue_name.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    properties,
                )
                .await
                .map_err(|e| publish_err(e.to_string()))?
                .await
                .map_err(|e| publish_err(e.to_string()))
        };
        let confirm = tokio::time::timeout(confirm_timeout, publishing)
            .await
            .map_err(|_| PublishError::ConfirmTimeout {
                exchange: target.exchange.clone(),
                seconds: confirm_timeout.as_secs(),
            })??;
        if confirm.is_ack() {
            Ok(())
        } else {
            Err(PublishError::NotConfirmed {
                exchange: target.exchange.clone(),
            })
        }
    }

    /// Declares (once) and publishes on the pooled connection, opening one if needed.
    /// Returns whether a reused connection was used, with the outcome.
    async fn attempt(
        &self,
        slot: &mut Option<Pooled>,
        target: &PublishTarget,
        body: &[u8],
    ) -> (bool, Result<(), PublishError>) {
        let mut reused = true;
        if let Some(pooled) = slot.take() {
            if pooled.usable() {
                *slot = Some(pooled);
            } else {
                tracing::warn!("notabene: connection to {} lost", target.connection);
                close_quietly(pooled).await;
            }
        }
        let pooled = match slot {
            Some(pooled) => pooled,
            None => {
                reused = false;
                match self.open(&target.connection).await {
                    Ok(pooled) => slot.insert(pooled),
                    Err(e) => return (false, Err(e)),
                }
            }
        };
        let result = match Self::declare(pooled, target).await {
            Ok(()) => Self::send(pooled, target, body, self.confirm_timeout).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // The channel may be closed by the broker (or the link broken): start
            // afresh next time.
            if let Some(pooled) = slot.take() {
                close_quietly(pooled).await;
            }
        }
        (reused, result)
    }
}

#[async_trait]
impl NotificationSink for AmqpPublisher {
    async fn publish(
        &self,
        target: &PublishTarget,
        notification: &Value,
    ) -> Result<(), PublishError> {
        let body =
            serde_json::to_vec(notification).map_err(|e| PublishError::Encode(e.to_string()))?;
        let slot = self.slot(&target.connection);
        let mut guard = slot.lock().await;
        let (reused, result) = self.attempt(&mut guard, target, &body).await;
        match result {
            Err(e) if reused => {
                tracing::warn!("notabene: {e}; reconnecting and retrying once");
                self.attempt(&mut guard, target, &body).await.1
            }
            other => other,
        }
    }
}

async fn close_quietly(pooled: Pooled) {
    let closing = pooled.connection.close(200, "bye".into());
    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_password() {
        let p = AmqpParams {
            password: "s3cret-pw".to_string(),
            ..Default::default()
        };
        let target = PublishTarget {
            connection: p.clone(),
            exchange: "nova".to_string(),
            exchange_type: "topic".to_string(),
            queue_name: "monitor.info".to_string(),
        };
        for shown in [format!("{p:?}"), format!("{p}"), format!("{target:?}")] {
            assert!(!shown.contains("s3cret-pw"), "{shown}");
        }
        assert!(format!("{p:?}").contains("<redacted>"));
    }

    #[tokio::test]
    async fn recording_sink_keeps_order() {
        let sink = RecordingSink::new();
        let target = PublishTarget {
            connection: AmqpParams::default(),
            exchange: "e".to_string(),
            exchange_type: "topic".to_string(),
            queue_name: "q".to_string(),
        };
        sink.publish(&target, &serde_json::json!({"n": 1}))
            .await
            .unwrap();
        sink.publish(&target, &serde_json::json!({"n": 2}))
            .await
            .unwrap();
        let got: Vec<Value> = sink.take().into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            got,
            vec![serde_json::json!({"n": 1}), serde_json::json!({"n": 2})]
        );
        assert!(sink.published().is_empty());
    }
}
