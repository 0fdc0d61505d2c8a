//! `/streams`: list, count, show, delete and reset streams.

use crate::error::ApiError;
use crate::openapi::{
    CountDoc, Details, ErrorDoc, MethodOverride, Paging, StreamDoc, StreamFilters,
};
use crate::params::{self, Query};
use crate::state::AppState;
use crate::streaming;
use crate::wire;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;
use worker::store::StreamId;

fn stream_id(raw: &str) -> Result<StreamId, ApiError> {
    raw.trim()
        .parse::<StreamId>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            ApiError::bad(format!(
                "stream id {raw:?} is not a stream id (a whole number)"
            ))
        })
}

/// List streams, newest first (or oldest first from a `+` mark).
#[utoipa::path(
    get,
    path = "/streams",
    tag = "streams",
    params(StreamFilters, Paging, Details),
    responses(
        (status = 200, description = "The streams, one page", body = Vec<StreamDoc>),
        (status = 400, description = "A parameter is malformed", body = ErrorDoc),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn list_streams(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<axum::response::Response, ApiError> {
    state.auth().check_read(&headers)?;
    let q = Query::parse(raw.as_deref());
    let query = params::stream_query(&q, state.limits())?;
    let details = params::details(&q)?;
    let window = details
        .then(|| params::event_window(&q, state.limits(), query.page.limit.unwrap_or(1)))
        .transpose()?;
    let store = state.store()?;
    let streams = store.find_streams(&query).await?;
    let ascending = query.page.ascending;
    // One batch of queries for the whole page, not one per stream; each stream's events
    // within the window (the page shares a bounded budget of them).
    let mut events = match window {
        Some(window) => {
            let ids: Vec<StreamId> = streams.iter().map(|s| s.id).collect();
            Some(store.streams_events(&ids, window).await?)
        }
        None => None,
    };
    let offset = window.map_or(0, |w| w.offset);
    // Written out stream by stream as the client reads.
    let items = streams.into_iter().map(move |s| {
        let shown = events
            .as_mut()
            .map(|by_stream| by_stream.remove(&s.id).unwrap_or_default());
        let shown = shown
            .as_deref()
            .map(|events| wire::ShownEvents { events, offset });
        wire::stream(&s, ascending, shown)
    });
    Ok(streaming::json_array(items))
}

/// Count the streams the filters select (a list of one `{"count": n}`).
#[utoipa::path(
    get,
    path = "/streams/count",
    tag = "streams",
    params(StreamFilters, Paging),
    responses(
        (status = 200, description = "The count", body = Vec<CountDoc>),
        (status = 400, description = "A parameter is malformed", body = ErrorDoc),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn count_streams(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_read(&headers)?;
    let q = Query::parse(raw.as_deref());
    let query = params::stream_query(&q, state.limits())?;
    let n = state.store()?.count_streams(&query).await?;
    Ok(Json(wire::count(n)))
}

/// One stream, as a list of one (as quincy answered), with its events when
/// `details` is set. The id `count` (any case) counts instead, as in quincy.
#[utoipa::path(
    get,
    path = "/streams/{stream_id}",
    tag = "streams",
    params(("stream_id" = i64, Path, description = "The stream's id", minimum = 0), Details),
    responses(
        (status = 200, description = "The stream", body = Vec<StreamDoc>),
        (status = 400, description = "The id or a parameter is malformed", body = ErrorDoc),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 404, description = "No such stream", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn get_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    if id.eq_ignore_ascii_case("count") {
        return count_streams(State(state), headers, RawQuery(raw)).await;
    }
    state.auth().check_read(&headers)?;
    let id = stream_id(&id)?;
    let q = Query::parse(raw.as_deref());
    let details = params::details(&q)?;
    let store = state.store()?;
    let stream = store
        .get_stream(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no stream with id {id}")))?;
    let (events, offset) = if details {
        let window = params::event_window(&q, state.limits(), 1)?;
        let mut by_stream = store.streams_events(&[id], window).await?;
        (
            Some(by_stream.remove(&id).unwrap_or_default()),
            window.offset,
        )
    } else {
        (None, 0)
    };
    let shown = events
        .as_deref()
        .map(|events| wire::ShownEvents { events, offset });
    Ok(Json(Value::Array(vec![wire::stream(
        &stream, false, shown,
    )])))
}

/// Delete a stream (its events stay). Needs the bearer token.
#[utoipa::path(
    delete,
    path = "/streams/{stream_id}",
    tag = "streams",
    params(("stream_id" = i64, Path, description = "The stream's id", minimum = 0)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted"),
        (status = 400, description = "The id is malformed", body = ErrorDoc),
        (status = 401, description = "The token is missing or wrong", body = ErrorDoc),
        (status = 403, description = "The server has no token: changes are disabled", body = ErrorDoc),
        (status = 404, description = "No such stream", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn delete_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_write(&headers)?;
    let id = stream_id(&id)?;
    if state.store()?.delete_stream(id).await? {
        tracing::info!(stream_id = id, "stream deleted");
        Ok(Json(serde_json::json!({ "id": id, "deleted": true })))
    } else {
        Err(ApiError::NotFound(format!("no stream with id {id}")))
    }
}

/// Reset a failed stream: error → retry_fire, expire_error → retry_expire, so a
/// pipeline worker runs it again. Needs the bearer token. Answers the stream.
#[utoipa::path(
    put,
    path = "/streams/{stream_id}",
    tag = "streams",
    params(("stream_id" = i64, Path, description = "The stream's id", minimum = 0)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stream after the reset", body = StreamDoc),
        (status = 400, description = "The id is malformed", body = ErrorDoc),
        (status = 401, description = "The token is missing or wrong", body = ErrorDoc),
        (status = 403, description = "The server has no token: changes are disabled", body = ErrorDoc),
        (status = 404, description = "No such stream", body = ErrorDoc),
        (status = 409, description = "The stream is not in error or expire_error", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn reset_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_write(&headers)?;
    let id = stream_id(&id)?;
    let stream = state.store()?.reset_stream(id).await?;
    tracing::info!(stream_id = id, state = %stream.state, "stream reset");
    Ok(Json(wire::stream(&stream, false, None)))
}

/// `PUT` for clients that can only `POST`: `X-HTTP-Method-Override: PUT`.
#[utoipa::path(
    post,
    path = "/streams/{stream_id}",
    tag = "streams",
    params(
        ("stream_id" = i64, Path, description = "The stream's id", minimum = 0),
        ("X-HTTP-Method-Override" = MethodOverride, Header, description = "Must be PUT"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stream after the reset", body = StreamDoc),
        (status = 400, description = "The id is malformed", body = ErrorDoc),
        (status = 401, description = "The token is missing or wrong", body = ErrorDoc),
        (status = 403, description = "The server has no token: changes are disabled", body = ErrorDoc),
        (status = 404, description = "No such stream", body = ErrorDoc),
        (status = 405, description = "No X-HTTP-Method-Override: PUT header", body = ErrorDoc),
        (status = 409, description = "The stream is not in error or expire_error", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn post_stream(
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
) -> Result<Json<Value>, ApiError> {
    let wants_put = headers
        .get("x-http-method-override")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("PUT"));
    if !wants_put {
        return Err(ApiError::MethodNotAllowed(
            "POST on a stream needs the header X-HTTP-Method-Override: PUT".into(),
        ));
    }
    reset_stream(state, headers, id).await
}
