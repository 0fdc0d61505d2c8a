//! `/streams`: list, count, show, delete and reset streams.

use crate::error::ApiError;
use crate::openapi::{
    CountDoc, Details, ErrorDoc, MethodOverride, Paging, StreamDoc, StreamFilters,
};
use crate::params::{self, Query};
use crate::state::AppState;
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
) -> Result<Json<Value>, ApiError> {
    state.auth().check_read(&headers)?;
    let q = Query::parse(raw.as_deref());
    let query = params::stream_query(&q, state.limits())?;
    let details = params::details(&q)?;
    let store = state.store()?;
    let streams = store.find_streams(&query).await?;
    let ascending = query.page.ascending;
    let out = if details {
        // One batch of queries for the whole page, not one per stream.
        let ids: Vec<StreamId> = streams.iter().map(|s| s.id).collect();
        let mut events = store.streams_events(&ids).await?;
        streams
            .iter()
            .map(|s| {
                let evs = events.remove(&s.id).unwrap_or_default();
                wire::stream(s, ascending, Some(&evs))
            })
            .collect()
    } else {
        streams
            .iter()
            .map(|s| wire::stream(s, ascending, None))
            .collect()
    };
    Ok(Json(Value::Array(out)))
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
    let events = if details {
        Some(store.stream_events(id).await?)
    } else {
        None
    };
    Ok(Json(Value::Array(vec![wire::stream(
        &stream,
        false,
        events.as_deref(),
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
