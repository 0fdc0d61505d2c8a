//! `/ui/events/{message_id}`: one event, all its traits, and the streams whose
//! distinguishing traits it shares (where a trigger has collected it).

use super::super::layout::{self, Nav};
use super::super::session;
use super::super::time;
use super::super::PageResult;
use super::trait_value;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use maud::html;

/// `GET /ui/events/{message_id}`
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(message_id): Path<String>,
) -> PageResult {
    session::check_read(
        &state,
        &headers,
        &format!("/ui/events/{}", super::streams::urlencode(&message_id)),
    )?;
    let stored = state
        .store()?
        .get_event(&message_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with message_id {message_id:?}")))?;
    let e = &stored.event;
    let lookups: Vec<(&str, String)> = super::lookup::KEYS
        .iter()
        .filter_map(|k| match e.traits.get(*k) {
            Some(worker::event::TraitValue::Text(v)) => Some((*k, v.clone())),
            _ => None,
        })
        .collect();
    let body = html! {
        h1 { (e.event_type) }
        p { (time::at(e.timestamp)) " · message id " code { (e.message_id) } }
        @if !lookups.is_empty() {
            p { "Everything about its "
                @for (i, (k, v)) in lookups.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href={"/ui/lookup?q=" (super::streams::urlencode(v))} { (k) }
                }
            }
        }
        h2 { "Traits (" (e.traits.len()) ")" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Trait" } th scope="col" { "Type" } th scope="col" { "Value" } } }
            tbody {
                @for (name, v) in &e.traits {
                    tr { td { (name) } td { (v.trait_type().as_str()) } td { (trait_value(v)) } }
                }
            }
        } }
    };
    Ok(layout::page(&e.event_type, Some(Nav::Lookup), body).into_response())
}
