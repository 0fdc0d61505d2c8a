//! `/ui/usage`: the usage audit's failures by code (U0–U8, with what each means) per
//! UTC day, and the latest failures, each linking to its stream (whose timeline holds
//! the `.exists` that failed) and to the failure event. One bounded query: the
//! window's `.failed` events, grouped here.

use super::super::layout::{self, Nav};
use super::super::session;
use super::super::time;
use super::super::PageResult;
use crate::error::ApiError;
use crate::params::Query;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::{Duration, DurationRound, Utc};
use maud::html;
use std::collections::BTreeMap;
use worker::event::TraitValue;
use worker::store::{EventQuery, Page};

use super::overview::FAILED;
/// Failure events read for one page: the page says when a window has more.
const MAX_FAILURES: u64 = 5000;

/// What each code means (the usage handler's checks).
pub(crate) const CODES: [(&str, &str); 9] = [
    (
        "U0",
        "notifications after the last .exists: no .exists for them",
    ),
    ("U1", "an active instance's .exists has no launched_at"),
    (
        "U2",
        "the .exists disagrees with the last rebuild/resize/rescue .end, or with the delete",
    ),
    ("U3", "deleted_at is set but the state is not deleted"),
    (
        "U4",
        "deleted_at is before launched_at (and no delete event)",
    ),
    (
        "U5",
        "deleted_at inside the audit period, but no delete event",
    ),
    ("U6", ".delete.end events, but no deleted_at"),
    ("U7", "several .delete.end events"),
    (
        "U8",
        "launched inside the audit period, but no notification before the .exists",
    ),
];

fn text<'a>(e: &'a worker::event::Event, name: &str) -> Option<&'a str> {
    match e.traits.get(name) {
        Some(TraitValue::Text(s)) => Some(s),
        _ => None,
    }
}

/// `GET /ui/usage[?days=N]` (1 to 31, default 7).
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let here = format!("/ui/usage?{}", raw.as_deref().unwrap_or(""));
    session::check_read(&state, &headers, &here)?;
    let q = Query::parse(raw.as_deref());
    let days: i64 = match q.get("days") {
        None => 7,
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|d| (1..=31).contains(d))
            .ok_or_else(|| {
                ApiError::bad(format!("days: {v:?} is not a whole number from 1 to 31"))
            })?,
    };
    let now = Utc::now();
    let today = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    let from = today - Duration::days(days - 1);
    let failures = state
        .store()?
        .find_events(&EventQuery {
            from: Some(from),
            event_type: Some(FAILED.into()),
            page: Page {
                after: None,
                ascending: false,
                limit: Some(MAX_FAILURES),
            },
            ..EventQuery::default()
        })
        .await?;
    let day_names: Vec<String> = (0..days)
        .map(|i| (from + Duration::days(i)).format("%Y-%m-%d").to_string())
        .collect();
    // code → day → count
    let mut grid: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for f in &failures {
        let code = text(&f.event, "error_code").unwrap_or("?");
        let code = CODES
            .iter()
            .map(|(c, _)| *c)
            .find(|c| *c == code)
            .unwrap_or("?");
        let day = f.event.timestamp.format("%Y-%m-%d").to_string();
        *grid.entry(code).or_default().entry(day).or_default() += 1;
    }
    let body = html! {
        h1 { "Usage audit" }
        form method="get" action="/ui/usage" {
            label for="days" { "Days " }
            input type="number" id="days" name="days" min="1" max="31" value=(days);
            " " button type="submit" { "Show" }
        }
        @if failures.is_empty() {
            div.empty { p { "No usage failure in the last " (days) " days (UTC): every audited .exists was verified, or the usage pipeline has not run yet." } }
        } @else {
            @if failures.len() as u64 == MAX_FAILURES {
                p.note { "Only the latest " (MAX_FAILURES) " failures are counted: narrow the window." }
            }
            h2 { "Failures by code and day" }
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { "Code" } th scope="col" { "Meaning" }
                    @for d in &day_names { th.num scope="col" { (&d[5..]) } }
                } }
                tbody {
                    @for (code, meaning) in CODES {
                        @if let Some(by_day) = grid.get(code) {
                            tr {
                                th scope="row" { (code) } td { (meaning) }
                                @for d in &day_names { td.num { (by_day.get(d).copied().unwrap_or(0)) } }
                            }
                        }
                    }
                }
            } }
            h2 { "Latest failures" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Code" } th scope="col" { "Instance" } th scope="col" { "Why" } th scope="col" { "Stream" } } }
                tbody {
                    @for f in failures.iter().take(100) {
                        tr {
                            td { a href={"/ui/events/" (super::streams::urlencode(&f.event.message_id))} { (time::at(f.event.timestamp)) } }
                            td { (text(&f.event, "error_code").unwrap_or("?")) }
                            td { @if let Some(i) = text(&f.event, "instance_id") {
                                a href={"/ui/lookup?q=" (super::streams::urlencode(i))} { code { (i) } }
                            } }
                            td { (text(&f.event, "error").unwrap_or("")) }
                            td { @if let Some(TraitValue::Int(s)) = f.event.traits.get("stream_id") {
                                a href={"/ui/streams/" (s)} { (s) }
                            } }
                        }
                    }
                }
            } }
        }
        h2 { "The codes" }
        dl { @for (code, meaning) in CODES { dt { (code) } dd { (meaning) } } }
    };
    Ok(layout::page("Usage audit", Some(Nav::Usage), body).into_response())
}
