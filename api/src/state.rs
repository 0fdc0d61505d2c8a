//! What every handler shares: the store (set once the database answers), paging
//! limits, authorisation and the archive folder.

use crate::auth::Auth;
use crate::bounds::Bounds;
use crate::collectors::{CollectorTarget, Collectors};
use crate::error::ApiError;
use crate::params::Limits;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use worker::store::Store;

/// The server's settings.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    pub limits: Limits,
    pub auth: Auth,
    /// Where shoebox writes finished archives (`/v2/archives`); none: no archives.
    pub archive_dir: Option<PathBuf>,
    /// Concurrency and time bounds of requests.
    pub bounds: Bounds,
    /// yagi-event metrics addresses the console samples (`--collector`).
    pub collectors: Vec<CollectorTarget>,
    /// How often they are sampled (`None`: [`crate::collectors::SAMPLE_EVERY`]).
    pub collector_interval: Option<std::time::Duration>,
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: OnceLock<Arc<dyn Store>>,
    config: ApiConfig,
    collectors: Arc<Collectors>,
}

impl AppState {
    /// A state whose store is set later with [`AppState::set_store`] (the server
    /// answers, with 503 for data calls, while the database is still unreachable).
    pub fn new(config: ApiConfig) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store: OnceLock::new(),
                collectors: Collectors::new(
                    config.collectors.clone(),
                    config
                        .collector_interval
                        .unwrap_or(crate::collectors::SAMPLE_EVERY),
                ),
                config,
            }),
        }
    }

    pub fn with_store(config: ApiConfig, store: Arc<dyn Store>) -> AppState {
        let state = AppState::new(config);
        state.set_store(store);
        state
    }

    /// Sets the store once; later calls are ignored.
    pub fn set_store(&self, store: Arc<dyn Store>) {
        let _ = self.inner.store.set(store);
    }

    pub fn store(&self) -> Result<&Arc<dyn Store>, ApiError> {
        self.inner.store.get().ok_or_else(|| {
            ApiError::Unavailable("the database is not reachable yet; retry later".into())
        })
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    pub fn limits(&self) -> Limits {
        self.inner.config.limits
    }

    /// The sampled collectors (start sampling with [`Collectors::spawn`]).
    pub fn collectors(&self) -> &Arc<Collectors> {
        &self.inner.collectors
    }

    pub fn auth(&self) -> &Auth {
        &self.inner.config.auth
    }
}
