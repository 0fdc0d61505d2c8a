//! Assembling and serving the API: the versioned routes, `/openapi.json`,
//! `/metrics`, `/healthz`, `/readyz`, JSON for every error the framework itself
//! produces, request metrics and logs, the server's bounds, and graceful shutdown.

use crate::bounds::{self, Guard};
use crate::error::error_body;
use crate::metrics::{self, HttpMetrics};
use crate::openapi::{prefix_operation_ids, ApiDoc};
use crate::routes;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self as mw, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use worker::store::StreamQuery;

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = api_routes().split_for_parts();
    doc
}

fn api_routes() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1", routes::v1())
        .nest("/v2", routes::v2());
    prefix_operation_ids(router.get_openapi_mut());
    router
}

#[derive(Clone)]
struct Extras {
    state: AppState,
    registry: Arc<Registry>,
    openapi: Arc<String>,
}

/// The whole application. `registry` receives the request metrics and is served
/// at `/metrics` (register other metrics into it first).
pub fn app(state: AppState, mut registry: Registry) -> Router {
    let http_metrics = Arc::new(HttpMetrics::default());
    http_metrics.register(&mut registry);
    let (api, doc) = api_routes().split_for_parts();
    let openapi = Arc::new(doc.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialise the OpenAPI document");
        "{}".to_string()
    }));
    let extras = Extras {
        state: state.clone(),
        registry: Arc::new(registry),
        openapi,
    };
    let extra_routes: Router = Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(extras);
    let guard = Arc::new(Guard::new(state.config().bounds));
    api.with_state(state.clone())
        .merge(extra_routes)
        .merge(crate::console::router(state))
        .route_layer(mw::from_fn(metrics::tag_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(mw::from_fn_with_state(guard, bounds::enforce))
        .layer(mw::from_fn(json_errors))
        .layer(mw::from_fn_with_state(http_metrics, metrics::observe))
}

async fn openapi_json(State(extras): State<Extras>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        extras.openapi.as_str().to_owned(),
    )
        .into_response()
}

async fn metrics_text(State(extras): State<Extras>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &extras.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Ready when the database answers a query.
async fn readyz(State(extras): State<Extras>) -> Response {
    let Ok(store) = extras.state.store() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "database not connected yet",
        )
            .into_response();
    };
    let probe = StreamQuery {
        stream_id: Some(-1),
        ..StreamQuery::default()
    };
    match store.count_streams(&probe).await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database query failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(error_body(StatusCode::NOT_FOUND, "no such resource")),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this resource",
        )),
    )
        .into_response()
}

/// Rewrites the framework's plain-text rejections (a path segment that is not UTF-8,
/// …) as the API's JSON errors, so clients only ever parse one error shape. The
/// probes' plain `ok`/`not ready` stay as they are.
async fn json_errors(request: Request, next: Next) -> Response {
    let probe = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
    // The console's pages answer errors as pages, for people.
    let console = request.uri().path().starts_with("/ui");
    let response = next.run(request).await;
    let status = response.status();
    if probe || console || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let body = serde_json::to_vec(&error_body(status, &message)).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets requests in
/// flight finish; headers must arrive within the default bound.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(
        listener,
        app,
        shutdown,
        bounds::Bounds::default().header_read_timeout,
    )
    .await
}

/// [`serve`], with the time a client may take to send a request's headers (hyper's
/// header-read timeout: a client trickling headers byte by byte holds nothing for
/// longer; `axum::serve` cannot set it, hence the loop here).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
    header_read_timeout: std::time::Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: pause, do not spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Binds `addr` and serves `app` in the background; returns the bound address
/// (useful with port 0) and the server task.
pub async fn spawn(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    spawn_with(
        addr,
        app,
        shutdown,
        bounds::Bounds::default().header_read_timeout,
    )
    .await
}

/// [`spawn`] with the header-read timeout of [`serve_with`].
pub async fn spawn_with(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
    header_read_timeout: std::time::Duration,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(serve_with(listener, app, shutdown, header_read_timeout));
    Ok((bound, task))
}
