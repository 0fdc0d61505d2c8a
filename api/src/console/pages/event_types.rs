//! `/ui/event-types`: every event type with its count; `?type=<name>` adds that
//! type's traits and their types. Both come from what the store maintains as events
//! are stored (`worker::store::tally`), never from a scan of the events.

use super::super::layout::{self, Nav};
use super::super::session;
use super::super::PageResult;
use crate::params::Query;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use maud::html;

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
    // From the maintained counters: one small query whatever the number of events.
    let counts = store.event_type_counts().await?;
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
