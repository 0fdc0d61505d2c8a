//! Assembling the engine from a loaded configuration: the trigger set, the pipelines
//! with their handler factories, the trigger manager and pipeline workers. Shared by
//! the `pipeline-worker` binary, yagi-event, `stv3 replay` and the sandbox, so each
//! wires the same pieces the same way.

use super::clock::{Clock, FollowingClock};
use super::config::LoadedConfig;
use super::debug::DebugManager;
use super::handlers::{build_factory, HandlerContext};
use super::ingest::TriggerManager;
use super::pipeline::{HandlerFactory, Pipeline};
use super::triggers::TriggerSet;
use super::worker::{PipelineWorker, WorkerSettings};
use crate::notabene::NotificationSink;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why the engine could not be assembled (a handler's parameters, mostly).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("pipeline {pipeline:?}, handler {handler:?}: {message}")]
    Handler {
        pipeline: String,
        handler: String,
        message: String,
    },
}

/// The engine's shared parts.
pub struct Engine {
    pub manager: Arc<TriggerManager>,
    pipelines: HashMap<String, Pipeline>,
    pub settings: WorkerSettings,
}

impl Engine {
    /// Builds the engine over `store` with `clock`; notabene handlers publish to `sink`.
    pub fn new(
        config: &LoadedConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn NotificationSink>,
    ) -> Result<Engine, EngineError> {
        Self::build(config, store, clock, None, sink)
    }

    /// The engine of a live worker process: the database the configuration names
    /// (migrated, and waited for while unreachable), the system clock, and notabene
    /// handlers publishing to RabbitMQ. `None` when `shutdown` comes first.
    pub async fn live(
        config: &LoadedConfig,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<Engine>, EngineError> {
        let url = &config.settings.database.url;
        let Some(store) = crate::store::open_when_ready(url, shutdown).await? else {
            return Ok(None);
        };
        let engine = Engine::new(
            config,
            store,
            Arc::new(super::clock::SystemClock),
            Arc::new(crate::notabene::AmqpPublisher::default()),
        )?;
        Ok(Some(engine))
    }

    /// Like [`Engine::new`] with a clock that follows the ingested events (replays, the
    /// sandbox): ingest moves it to each batch's latest timestamp.
    pub fn following(
        config: &LoadedConfig,
        store: Arc<dyn Store>,
        clock: Arc<FollowingClock>,
        sink: Arc<dyn NotificationSink>,
    ) -> Result<Engine, EngineError> {
        Self::build(config, store, clock.clone(), Some(clock), sink)
    }

    fn build(
        config: &LoadedConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        time_sync: Option<Arc<FollowingClock>>,
        sink: Arc<dyn NotificationSink>,
    ) -> Result<Engine, EngineError> {
        let debug = Arc::new(DebugManager::new(
            config
                .triggers
                .iter()
                .map(|t| (t.name.clone(), t.debug_level)),
        ));
        let triggers = Arc::new(TriggerSet::new(config.triggers.clone(), debug));
        let distiller = config.distiller.clone().map(Arc::new);
        let mut manager = TriggerManager::new(store, distiller, triggers, clock);
        if let Some(sync) = time_sync {
            manager = manager.with_time_sync(sync);
        }
        let manager = Arc::new(manager);

        let ctx = HandlerContext { publisher: sink };
        let mut pipelines = HashMap::new();
        for (name, specs) in &config.pipelines.pipelines {
            let mut factories: Vec<Arc<dyn HandlerFactory>> = Vec::with_capacity(specs.len());
            for spec in specs {
                let kind = config.handlers.get(&spec.name).copied().ok_or_else(|| {
                    EngineError::Handler {
                        pipeline: name.clone(),
                        handler: spec.name.clone(),
                        message: "not listed in pipeline_handlers".into(),
                    }
                })?;
                let factory = build_factory(kind.name(), &spec.params, &ctx).map_err(|e| {
                    EngineError::Handler {
                        pipeline: name.clone(),
                        handler: spec.name.clone(),
                        message: e.to_string(),
                    }
                })?;
                factories.push(factory);
            }
            pipelines.insert(name.clone(), Pipeline::new(name.clone(), factories));
        }

        let s = &config.settings;
        let settings = WorkerSettings {
            batch_size: u32::try_from(s.pipeline_worker_batch_size.max(1)).unwrap_or(u32::MAX),
            idle_delay: s.pipeline_worker_delay,
            lease: s.pipeline_worker_lease.max(Duration::from_secs(1)),
            purge_completed_streams: s.purge_completed_streams,
            trim_events_age: s.trim_events.then(|| s.trim_events_age.clone()),
            trim_events_batch_size: u32::try_from(s.trim_events_batch_size.max(1))
                .unwrap_or(u32::MAX),
            statistics_period: s.statistics_period.max(Duration::from_secs(1)),
            handler_timeout: s.pipeline_handler_timeout.max(Duration::from_millis(100)),
            retry_delay: s.pipeline_retry_delay,
        };
        Ok(Engine {
            manager,
            pipelines,
            settings,
        })
    }

    /// A pipeline worker over this engine (several may run in one process).
    pub fn worker(&self, name: impl Into<String>) -> PipelineWorker {
        PipelineWorker::new(
            name,
            self.manager.clone(),
            self.pipelines.clone(),
            self.settings.clone(),
        )
    }
}
