//! `/ui/event-types`: every event type with its count; `?type=<name>` adds that
//! type's traits and their types.

use super::super::layout::{self, Nav};
use super::super::session;
use super::super::PageResult;
use crate::params::Query;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use maud::html;
use worker::store::EventQuery;

/// `GET /ui/event-types[?type=…]`
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let here = format!("/ui/event-types?{}", raw.as_deref().unwrap_or(""));
    session::check_read(&state, &headers, &here)?;
    let q = Query::parse(raw.as_deref());
    let chosen = q.get("type").map(str::to_string);
    let store = state.store()?;
    let types = store.event_types().await?;
    let mut counts = Vec::with_capacity(types.len());
    for t in &types {
        let n = store
            .count_events(&EventQuery {
                event_type: Some(t.clone()),
                ..EventQuery::default()
            })
            .await?;
        counts.push((t.clone(), n));
    }
    let traits = match &chosen {
        Some(t) => Some(store.trait_names(t).await?),
        None => None,
    };
    let body = html! {
        h1 { "Event types" }
        @if counts.is_empty() {
            div.empty { p { "No events are stored yet. Point yagi-event at a cell's RabbitMQ, or run the sandbox (./build.sh), then come back." } }
        } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Event type" } th.num scope="col" { "Events" } th scope="col" { "" } } }
                tbody {
                    @for (t, n) in &counts {
                        tr {
                            td { a href={"/ui/event-types?type=" (super::streams::urlencode(t))} { (t) } }
                            td.num { (n) }
                            td { a href={"/v1/events?event_name=" (super::streams::urlencode(t)) "&limit=20"} { "latest as JSON" } }
                        }
                    }
                }
            } }
        }
        @if let (Some(t), Some(traits)) = (&chosen, &traits) {
            h2 id="traits" { "Traits of " code { (t) } }
            @if traits.is_empty() {
                p.note { "No event of this type is stored." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Trait" } th scope="col" { "Type" } } }
                    tbody {
                        @for (name, ty) in traits {
                            tr { td { (name) } td { (ty.as_str()) } }
                        }
                    }
                } }
            }
        }
    };
    Ok(layout::page("Event types", Some(Nav::EventTypes), body).into_response())
}
