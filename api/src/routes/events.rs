//! `/events`: list, count and show stored events; `/event_types`: what is stored.

use crate::error::ApiError;
use crate::openapi::{CountDoc, ErrorDoc, EventDoc, EventFilters, Paging, TraitInfoDoc};
use crate::params::{self, Query};
use crate::state::AppState;
use crate::wire;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

/// List events, newest first (or oldest first from a `+` mark).
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(EventFilters, Paging),
    responses(
        (status = 200, description = "The events, one page", body = Vec<EventDoc>),
        (status = 400, description = "A parameter is malformed", body = ErrorDoc),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_read(&headers)?;
    let q = Query::parse(raw.as_deref());
    let query = params::event_query(&q, state.limits())?;
    let events = state.store()?.find_events(&query).await?;
    let ascending = query.page.ascending;
    Ok(Json(Value::Array(
        events
            .iter()
            .map(|e| wire::listed_event(e, ascending))
            .collect(),
    )))
}

/// Count the events the filters select (a list of one `{"count": n}`).
#[utoipa::path(
    get,
    path = "/events/count",
    tag = "events",
    params(EventFilters, Paging),
    responses(
        (status = 200, description = "The count", body = Vec<CountDoc>),
        (status = 400, description = "A parameter is malformed", body = ErrorDoc),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn count_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_read(&headers)?;
    let q = Query::parse(raw.as_deref());
    let query = params::event_query(&q, state.limits())?;
    let n = state.store()?.count_events(&query).await?;
    Ok(Json(wire::count(n)))
}

/// One event by message id (an object, as quincy answered). The id `count` (any
/// case) counts instead, as in quincy.
#[utoipa::path(
    get,
    path = "/events/{message_id}",
    tag = "events",
    params(("message_id" = String, Path, description = "The event's message_id")),
    responses(
        (status = 200, description = "The event", body = EventDoc),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 404, description = "No such event", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn get_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(message_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    if message_id.eq_ignore_ascii_case("count") {
        return count_events(State(state), headers, RawQuery(raw)).await;
    }
    state.auth().check_read(&headers)?;
    let event = state
        .store()?
        .get_event(&message_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with message_id {message_id:?}")))?;
    Ok(Json(Value::Object(wire::event(&event))))
}

/// Every event type stored, sorted (Panko's `/v2/event_types`).
#[utoipa::path(
    get,
    path = "/event_types",
    tag = "event_types",
    responses(
        (status = 200, description = "Event type names", body = Vec<String>),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn event_types(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_read(&headers)?;
    let types = state.store()?.event_types().await?;
    Ok(Json(json!(types)))
}

/// The traits seen on events of a type, with their types, sorted by name (a name
/// stored with two types is listed twice).
#[utoipa::path(
    get,
    path = "/event_types/{event_type}/traits",
    tag = "event_types",
    params(("event_type" = String, Path, description = "An event type, e.g. compute.instance.create.end")),
    responses(
        (status = 200, description = "Trait names and types", body = Vec<TraitInfoDoc>),
        (status = 401, description = "Reads are protected and the token is missing or wrong", body = ErrorDoc),
        (status = 404, description = "No event of this type is stored", body = ErrorDoc),
        (status = 503, description = "The database is unavailable", body = ErrorDoc),
    )
)]
pub async fn event_type_traits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_type): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth().check_read(&headers)?;
    let store = state.store()?;
    let traits = store.trait_names(&event_type).await?;
    if traits.is_empty() && !store.event_types().await?.contains(&event_type) {
        return Err(ApiError::NotFound(format!(
            "no event of type {event_type:?} is stored"
        )));
    }
    Ok(Json(Value::Array(
        traits
            .iter()
            .map(|(name, t)| json!({ "name": name, "type": t.as_str() }))
            .collect(),
    )))
}
