//! Winchester: events sorted into streams by trigger definitions, and pipelines run on
//! streams that fire or expire.
//!
//! - [`definition`]: trigger definitions and their criteria (pure).
//! - [`pipelines`]: `pipelines.yaml` and the handler names of `winchester.yaml`.
//! - [`config`]: `winchester.yaml` and loading the whole configuration set.
//! - [`triggers`]: the trigger set as the store's [`crate::store::StreamRules`].
//! - [`ingest`]: notifications and events into the store (the trigger manager).
//! - [`pipeline`]: the handler contract and running one pipeline over a stream.
//! - [`handlers`]: the stock handlers (logger, usage, notabene).
//! - [`engine`]: assembling the parts from a loaded configuration.
//! - [`worker`]: the pipeline worker loop (claim, run, finish, trim, statistics).
//! - [`clock`]: "now", real or following replayed notifications.
//! - [`debug`]: per-trigger debug counters.
//! - [`replay`]: dry-running definitions over recorded notifications.

pub mod clock;
pub mod config;
pub mod debug;
pub mod definition;
pub mod engine;
pub mod handlers;
pub mod ingest;
pub mod pipeline;
pub mod pipelines;
pub mod replay;
pub mod triggers;
pub mod worker;
