//! Prometheus metrics of yagi-event, labelled by queue (and dead-letter reason).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The consumed queue a series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

/// A consumed queue and why a message was dead-lettered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub queue: String,
    pub reason: String,
}

type Labels = QueueLabels;

/// Counters and histograms; cheap to clone (shared handles).
#[derive(Clone)]
pub struct YagiMetrics {
    /// Messages delivered by RabbitMQ (redeliveries included).
    pub received: Family<Labels, Counter>,
    /// Events stored.
    pub stored: Family<Labels, Counter>,
    /// Events skipped because their message_id was already stored (redeliveries).
    pub duplicates: Family<Labels, Counter>,
    /// Messages republished to the dead-letter queue, by reason.
    pub dead_lettered: Family<ReasonLabels, Counter>,
    /// Batches committed and acknowledged.
    pub batches: Family<Labels, Counter>,
    /// From the first message of a batch to its acknowledgement.
    pub batch_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Connections to RabbitMQ (re)opened after a failure.
    pub reconnects: Family<Labels, Counter>,
    /// Batches retried after a transient store (or archive) error.
    pub retries: Family<Labels, Counter>,
    /// Messages waiting in the dead-letter queue, as the broker last said.
    pub dead_letter_depth: Family<Labels, Gauge>,
}

impl Default for YagiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl YagiMetrics {
    pub fn new() -> Self {
        YagiMetrics {
            received: Family::default(),
            stored: Family::default(),
            duplicates: Family::default(),
            dead_lettered: Family::default(),
            batches: Family::default(),
            batch_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            reconnects: Family::default(),
            retries: Family::default(),
            dead_letter_depth: Family::default(),
        }
    }

    /// Registers everything under the `yagi_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("yagi");
        r.register(
            "messages_received",
            "Messages delivered by RabbitMQ",
            self.received.clone(),
        );
        r.register("events_stored", "Events stored", self.stored.clone());
        r.register(
            "events_duplicate",
            "Events already stored (redelivered messages)",
            self.duplicates.clone(),
        );
        r.register(
            "messages_dead_lettered",
            "Messages republished to the dead-letter queue, by reason",
            self.dead_lettered.clone(),
        );
        r.register(
            "batches",
            "Batches committed and acknowledged",
            self.batches.clone(),
        );
        r.register(
            "batch_duration_seconds",
            "Time from a batch's first message to its acknowledgement",
            self.batch_seconds.clone(),
        );
        r.register(
            "reconnects",
            "Connections to RabbitMQ reopened after a failure",
            self.reconnects.clone(),
        );
        r.register(
            "batch_retries",
            "Batches retried after a transient store or archive error",
            self.retries.clone(),
        );
        r.register(
            "dead_letter_depth",
            "Messages waiting in the dead-letter queue (refreshed after dead-lettering and every 30 s)",
            self.dead_letter_depth.clone(),
        );
    }
}

pub fn queue_label(queue: &str) -> QueueLabels {
    QueueLabels {
        queue: queue.to_string(),
    }
}

pub fn reason_labels(queue: &str, reason: &str) -> ReasonLabels {
    ReasonLabels {
        queue: queue.to_string(),
        reason: reason.to_string(),
    }
}
