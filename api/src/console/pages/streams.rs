//! `/ui/streams`: the API's stream filters as a form, paged the API's way (the same
//! parameters, so a filtered page and `GET /v1/streams` with the same query list the
//! same streams); `/ui/streams/{id}`: one stream, its events as a timeline, and the
//! reset action for streams in `error` or `expire_error`.

use super::super::layout::{self, Nav};
use super::super::session;
use super::super::time;
use super::super::{PageError, PageResult};
use super::{dist_value, state_badge, streams_table};
use crate::error::ApiError;
use crate::params::{self, Query};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use maud::html;
use worker::store::{StreamId, StreamState};

fn stream_id(raw: &str) -> Result<StreamId, ApiError> {
    raw.trim()
        .parse::<StreamId>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::bad(format!("{raw:?} is not a stream id (a whole number)")))
}

/// `GET /ui/streams?state=…&name=…&distinguishing_traits=…&older_than=…&younger_than=…&limit=…&mark=…`
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let here = format!("/ui/streams?{}", raw.as_deref().unwrap_or(""));
    session::check_read(&state, &headers, &here)?;
    let q = Query::parse(raw.as_deref());
    let mut query = params::stream_query(&q, state.limits())?;
    if q.get("limit").is_none() {
        query.page.limit = Some(50);
    }
    let limit = query.page.limit.unwrap_or(50);
    let streams = state.store()?.find_streams(&query).await?;
    let value = |name: &str| q.get(name).unwrap_or_default().to_string();
    let selected = value("state");
    // The next page: the same filters, from the last stream shown.
    let next = streams
        .last()
        .filter(|_| streams.len() as u64 == limit)
        .map(|last| {
            let mut pairs = form_urlencoded::Serializer::new(String::new());
            for name in [
                "state",
                "name",
                "distinguishing_traits",
                "older_than",
                "younger_than",
                "limit",
            ] {
                if let Some(v) = q.get(name) {
                    pairs.append_pair(name, v);
                }
            }
            pairs.append_pair("mark", &crate::wire::mark(last.id, query.page.ascending));
            format!("/ui/streams?{}", pairs.finish())
        });
    let body = html! {
        h1 { "Streams" }
        form.filters method="get" action="/ui/streams" aria-label="Filter streams" {
            label { "State"
                select name="state" {
                    option value="" selected[selected.is_empty()] { "any" }
                    @for s in StreamState::ALL {
                        option value=(s.name()) selected[selected == s.name()] { (s.name()) }
                    }
                }
            }
            label { "Trigger" input name="name" value=(value("name")) placeholder="e.g. request_id_stream"; }
            label { "Distinguishing traits" input name="distinguishing_traits" value=(value("distinguishing_traits")) placeholder="instance_id:…;request_id:…"; }
            label { "First event before" input name="older_than" value=(value("older_than")) placeholder="2026-12-06T10:00:00"; }
            label { "Last event after" input name="younger_than" value=(value("younger_than")) placeholder="2026-12-05T00:00:00"; }
            label { "Per page" input name="limit" type="number" min="1" value=(limit); }
            div { button type="submit" { "Filter" } " " a href="/ui/streams" { "Clear" } }
        }
        p.note { "The same query on the API: " code { "GET /v1/streams?" (raw.as_deref().unwrap_or("")) } }
        @if streams.is_empty() {
            div.empty { p { "No stream matches these filters. Widen them (any state, no trigger), or check that the pipeline workers and triggers are running." } }
        } @else {
            (streams_table(&streams))
            div.pager {
                @if let Some(n) = &next { a href=(n) rel="next" { "Next page →" } }
            }
        }
    };
    Ok(layout::page("Streams", Some(Nav::Streams), body).into_response())
}

/// `GET /ui/streams/{id}`
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> PageResult {
    session::check_read(&state, &headers, &format!("/ui/streams/{raw}"))?;
    let id = stream_id(&raw)?;
    let store = state.store()?;
    let stream = store
        .get_stream(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no stream {id}")))?;
    let events = store.stream_events(id).await?;
    let resettable = matches!(stream.state, StreamState::Error | StreamState::ExpireError);
    let body = html! {
        h1 { "Stream " (stream.id) " " (state_badge(stream.state)) }
        div.cards {
            div.card { div.n { (stream.name) } div.l { "trigger" } }
            div.card { div.n { (stream.event_count) } div.l { "events" } }
            div.card { div.n { (time::duration(stream.first_event, stream.last_event)) } div.l { "first to last event" } }
        }
        h2 { "Distinguishing traits" }
        div.table-wrap { table {
            tbody {
                @for (name, v) in &stream.distinguishing_traits {
                    tr { th scope="row" { (name) } td { (dist_value(v)) } }
                }
            }
        } }
        h2 { "Times" }
        div.table-wrap { table { tbody {
            tr { th scope="row" { "First event" } td { (time::at(stream.first_event)) } }
            tr { th scope="row" { "Last event" } td { (time::at(stream.last_event)) } }
            @if let Some(t) = stream.fire_timestamp { tr { th scope="row" { "Fires at" } td { (time::at(t)) } } }
            @if let Some(t) = stream.expire_timestamp { tr { th scope="row" { "Expires at" } td { (time::at(t)) } } }
        } } }
        @if resettable {
            h2 { "Reset" }
            p { "A stream in " (stream.state.name()) " is reset to be fired or expired again by a pipeline worker. This needs the API token." }
            form method="post" action={"/ui/streams/" (stream.id) "/reset"} {
                button.danger type="submit" { "Reset stream " (stream.id) }
            }
        }
        h2 { "Events (" (events.len()) ")" }
        @if events.is_empty() {
            div.empty { p { "This stream holds no events (they may have been trimmed by the retention)." } }
        } @else {
            ol.timeline {
                @for e in &events {
                    li {
                        (time::at(e.event.timestamp)) " "
                        a href={"/ui/events/" (urlencode(&e.event.message_id))} { (e.event.event_type) }
                    }
                }
            }
        }
    };
    Ok(layout::page(&format!("Stream {id}"), Some(Nav::Streams), body).into_response())
}

/// `POST /ui/streams/{id}/reset`: with the token (from the console's cookie), from a
/// page of this server.
pub(crate) async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> PageResult {
    let id = stream_id(&raw)?;
    if !session::same_origin(&headers) {
        return Err(ApiError::Forbidden("this form was sent from another site".into()).into());
    }
    match session::check_write(&state, &headers) {
        Ok(()) => {}
        Err(ApiError::Unauthorized(_)) => {
            return Err(PageError::Login {
                next: format!("/ui/streams/{id}"),
            })
        }
        Err(e) => return Err(e.into()),
    }
    let stream = state.store()?.reset_stream(id).await?;
    tracing::info!(stream_id = id, state = %stream.state, "stream reset from the console");
    Ok(Redirect::to(&format!("/ui/streams/{id}")).into_response())
}

/// A message id as a path segment: unreserved characters as they are, the rest
/// percent-encoded (a space is `%20` here, not the query string's `+`).
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
