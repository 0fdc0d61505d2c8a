//! The quincy-compatible REST API over the winchester store (`stv3-api`).
//!
//! quincy defined the routes and quince implemented them over winchester's database;
//! this crate is both, over [`worker::store::Store`], answering with the same JSON
//! (see [`wire`]) so the original klugman works unchanged. Beyond the original: bad
//! input is a 4xx with a JSON message, never a 500; listings have a maximum page
//! size; deleting and resetting streams need a bearer token; there is an OpenAPI
//! document, Prometheus metrics, probes, trait filters with comparison operators,
//! Panko-style event type listings, and real shoebox archives under `/v2/archives`.

pub mod auth;
pub mod bounds;
pub mod collectors;
pub mod console;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod server;
pub mod state;
pub mod streaming;
pub mod wire;

pub use auth::Auth;
pub use bounds::Bounds;
pub use error::ApiError;
pub use params::Limits;
pub use server::{app, openapi, serve, serve_with, spawn, spawn_with};
pub use state::{ApiConfig, AppState};
