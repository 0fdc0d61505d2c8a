//! The handler chain of a consumer: the built-in apps the original class names in
//! `apps` stand for.
//!
//! As in yagi, the apps run in the order listed, each over the whole batch. An app
//! reports notifications it rejected (the consumer dead-letters them) and fails with
//! an [`AppError`]: transient errors make the consumer keep the batch and retry it
//! after a pause, permanent ones make it retry the notifications one at a time so
//! that only the culprit is dead-lettered.

use crate::distiller::Dropped;
use crate::winchester::ingest::TriggerManager;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::config::AppKind;

/// A notification an app would not take, with a short machine-readable reason (the
/// metric label and dead-letter header) and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index in the slice the app was given.
    pub index: usize,
    pub reason: &'static str,
    pub detail: String,
}

/// What an app did with a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AppReport {
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Worth retrying the same batch after a pause (database away, read-only, rights
    /// taken away, disk).
    #[error("{0}")]
    Transient(String),
    /// A lost race (deadlock, lock timeout, a unique key taken meanwhile): worth
    /// retrying too; when it keeps happening to one notification while others are
    /// stored, that notification is the cause (see the consumer's isolation).
    #[error("{0}")]
    Conflict(String),
    /// Retrying the same batch would fail the same way.
    #[error("{0}")]
    Permanent(String),
}

impl AppError {
    pub fn is_transient(&self) -> bool {
        matches!(self, AppError::Transient(_) | AppError::Conflict(_))
    }
}

/// One app of the chain.
#[async_trait]
pub trait App: Send + Sync {
    fn kind(&self) -> AppKind;
    /// Handles a batch of notifications (JSON objects).
    async fn handle(&self, notifications: &[Value]) -> Result<AppReport, AppError>;
    /// The periodic statistics (the original's `on_idle`).
    fn log_statistics(&self) {}
    /// Flushes and closes whatever the app holds (at shutdown).
    fn close(&self) {}
}

/// The machine-readable reason for a distiller drop.
pub fn dropped_reason(d: &Dropped) -> &'static str {
    match d {
        Dropped::InvalidJson(_) => "invalid_json",
        Dropped::NotAnObject => "not_an_object",
        Dropped::Missing(_) | Dropped::NotAString(_) => "not_a_notification",
        Dropped::NoMatchingDefinition { .. } => "no_matching_definition",
        Dropped::InvalidTimestamp { .. } => "invalid_timestamp",
        Dropped::NoTraits { .. } => "no_traits",
        Dropped::TooLong { .. } => "too_long",
    }
}

/// `winchester.yagi_handler.WinchesterHandler`: distils the batch and stores the
/// events in one transaction through the trigger manager.
pub struct WinchesterApp {
    manager: Arc<TriggerManager>,
}

impl WinchesterApp {
    pub fn new(manager: Arc<TriggerManager>) -> Self {
        WinchesterApp { manager }
    }
}

#[async_trait]
impl App for WinchesterApp {
    fn kind(&self) -> AppKind {
        AppKind::Winchester
    }

    async fn handle(&self, notifications: &[Value]) -> Result<AppReport, AppError> {
        match self.manager.add_notifications(notifications).await {
            Ok(outcome) => Ok(AppReport {
                stored: outcome.report.stored,
                duplicates: outcome.report.duplicates,
                rejected: outcome
                    .dropped
                    .into_iter()
                    .map(|(index, d)| Rejected {
                        index,
                        reason: dropped_reason(&d),
                        detail: d.to_string(),
                    })
                    .collect(),
            }),
            Err(e) if crate::store::sql::is_conflict(&e) => Err(AppError::Conflict(e.to_string())),
            Err(e) if e.is_transient() => Err(AppError::Transient(e.to_string())),
            Err(e) => Err(AppError::Permanent(e.to_string())),
        }
    }

    fn log_statistics(&self) {
        self.manager.log_statistics();
    }
}

/// What the shoebox app needs of an archiver (see [`open_archive`]).
pub trait Archive: Send {
    fn append(&mut self, notification: &Value) -> Result<(), String>;
    /// Durable on return.
    fn flush(&mut self) -> Result<(), String>;
    fn close(&mut self);
}

/// Opens the shoebox archiver the `[shoebox]` keys describe.
pub fn open_archive(section: &BTreeMap<String, String>) -> Result<Box<dyn Archive>, String> {
    super::shoebox_adapter::open(section)
}

/// `yagi.handler.shoebox_handler.ShoeboxHandler`: archives every notification of
/// the batch (including those the distiller drops) and flushes before the batch is
/// acknowledged.
pub struct ShoeboxApp {
    archive: Arc<Mutex<Box<dyn Archive>>>,
}

impl ShoeboxApp {
    pub fn new(archive: Box<dyn Archive>) -> Self {
        ShoeboxApp {
            archive: Arc::new(Mutex::new(archive)),
        }
    }

    /// Opens the archive from the `[shoebox]` keys.
    pub fn open(section: &BTreeMap<String, String>) -> Result<Self, String> {
        open_archive(section).map(Self::new)
    }
}

#[async_trait]
impl App for ShoeboxApp {
    fn kind(&self) -> AppKind {
        AppKind::Shoebox
    }

    async fn handle(&self, notifications: &[Value]) -> Result<AppReport, AppError> {
        let archive = self.archive.clone();
        let work = move || {
            let mut a = archive.lock().unwrap_or_else(|p| p.into_inner());
            for n in notifications {
                a.append(n).map_err(AppError::Transient)?;
            }
            a.flush().map_err(AppError::Transient)?;
            Ok(AppReport::default())
        };
        // File I/O (and fsync) off the async workers when the runtime allows it.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
            _ => work(),
        }
    }

    fn close(&self) {
        let mut a = self.archive.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = a.flush() {
            tracing::error!(error = %e, "shoebox: final flush failed");
        }
        a.close();
    }
}

/// The apps of one consumer, in order.
#[derive(Clone, Default)]
pub struct AppChain {
    pub apps: Vec<Arc<dyn App>>,
}

impl AppChain {
    pub fn new(apps: Vec<Arc<dyn App>>) -> Self {
        AppChain { apps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_labels() {
        assert_eq!(
            dropped_reason(&Dropped::Missing("event_type")),
            "not_a_notification"
        );
        assert_eq!(
            dropped_reason(&Dropped::NoMatchingDefinition {
                event_type: "x".into()
            }),
            "no_matching_definition"
        );
    }

    struct Memory(Arc<Mutex<Vec<Value>>>, Arc<Mutex<usize>>);

    impl Archive for Memory {
        fn append(&mut self, n: &Value) -> Result<(), String> {
            self.0.lock().unwrap().push(n.clone());
            Ok(())
        }
        fn flush(&mut self) -> Result<(), String> {
            *self.1.lock().unwrap() += 1;
            Ok(())
        }
        fn close(&mut self) {}
    }

    #[tokio::test]
    async fn shoebox_app_appends_then_flushes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flushes = Arc::new(Mutex::new(0));
        let app = ShoeboxApp::new(Box::new(Memory(seen.clone(), flushes.clone())));
        let batch = vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})];
        let r = app.handle(&batch).await.unwrap();
        assert!(r.rejected.is_empty());
        assert_eq!(*seen.lock().unwrap(), batch);
        assert_eq!(*flushes.lock().unwrap(), 1);
    }
}
