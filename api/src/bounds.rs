//! What one client can make the server do: how many requests run at once and how long
//! one may take. Past either bound the answer is a 503 with a message and
//! `Retry-After`, never an unbounded queue or a request that holds the database for
//! ever. (Headers that arrive too slowly are cut by the server loop, see
//! [`crate::server::serve_with`]; statements that run too long by the database, see
//! `worker::store::OpenOptions`.) The probes and `/metrics` are exempt: a busy server
//! is still alive and still observable.

use crate::error::error_body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The server's bounds (flags of `stv3-api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Requests answered at once; more are refused (503) rather than queued.
    pub max_concurrent: usize,
    /// Time to produce an answer (its status and headers; a streamed body then flows
    /// at the client's pace).
    pub request_timeout: Duration,
    /// Time a client may take to send a request's headers.
    pub header_read_timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_concurrent: 256,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// The shared state of [`enforce`].
pub struct Guard {
    bounds: Bounds,
    permits: Arc<Semaphore>,
}

impl Guard {
    pub fn new(bounds: Bounds) -> Self {
        Guard {
            bounds,
            permits: Arc::new(Semaphore::new(bounds.max_concurrent.max(1))),
        }
    }
}

fn refuse(message: String) -> Response {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut response = (status, axum::Json(error_body(status, &message))).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Middleware: a permit per request (none left: 503 at once), and the request's time
/// limit (run out: 503; the handler is dropped, which ends its database calls).
pub async fn enforce(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let Ok(_permit) = guard.permits.clone().try_acquire_owned() else {
        return refuse(format!(
            "the server is answering {} requests already (its limit); retry shortly",
            guard.bounds.max_concurrent
        ));
    };
    let limit = guard.bounds.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refuse(format!(
            "the request took longer than {}s; narrow the filters (a time range, a \
             trait) or ask for a smaller page",
            limit.as_secs_f64()
        )),
    }
}
