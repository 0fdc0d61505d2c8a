//! `/ui/`: the region at a glance. Streams by state, events stored in the last hour
//! and day, the usage audit's verifications of the last seven days, and the streams
//! that need someone (error, expire_error). Each number is one bounded, indexed query.

use super::super::layout::{self, Nav};
use super::super::session;
use super::super::PageResult;
use super::streams_table;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::{Duration, DurationRound, Utc};
use maud::{html, Markup};
use worker::store::{EventQuery, Page, StreamQuery, StreamState};

/// The usage audit's outcome event types (the usage handler adds them).
const VERIFIED: &str = "compute.instance.exists.verified";
const FAILED: &str = "compute.instance.exists.failed";

/// Two bars per day (verified, failed), as inline SVG: no script, no library.
fn usage_chart(days: &[(String, u64, u64)]) -> Markup {
    let max = days
        .iter()
        .map(|(_, v, f)| v.max(f))
        .max()
        .copied()
        .unwrap_or(0)
        .max(1);
    let h = 80.0;
    let w = 36.0;
    html! {
        svg.bars role="img" aria-label="Usage verifications per day" width=(w * days.len() as f64) height=(h + 14.0) {
            @for (i, (day, v, f)) in days.iter().enumerate() {
                @let x = i as f64 * w;
                @let hv = h * (*v as f64) / (max as f64);
                @let hf = h * (*f as f64) / (max as f64);
                rect x=(x + 4.0) y=(h - hv) width="12" height=(hv) { title { (day) ": " (v) " verified" } }
                rect x=(x + 18.0) y=(h - hf) width="12" height=(hf) style="fill: #cf222e" { title { (day) ": " (f) " failed" } }
                text x=(x + 4.0) y=(h + 12.0) { (&day[5..]) }
            }
        }
    }
}

/// `GET /ui/`
pub(crate) async fn page(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    session::check_read(&state, &headers, "/ui/")?;
    let store = state.store()?;
    let mut by_state = Vec::new();
    for s in StreamState::ALL {
        let n = store
            .count_streams(&StreamQuery {
                state: Some(s),
                ..StreamQuery::default()
            })
            .await?;
        by_state.push((s, n));
    }
    let now = Utc::now();
    let since = |d: Duration| EventQuery {
        from: Some(now - d),
        ..EventQuery::default()
    };
    let last_hour = store.count_events(&since(Duration::hours(1))).await?;
    let last_day = store.count_events(&since(Duration::days(1))).await?;
    let today = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    let mut days = Vec::new();
    for back in (0..7).rev() {
        let from = today - Duration::days(back);
        let to = from + Duration::days(1);
        let count = |t: &str| EventQuery {
            from: Some(from),
            to: Some(to),
            event_type: Some(t.into()),
            ..EventQuery::default()
        };
        let v = store.count_events(&count(VERIFIED)).await?;
        let f = store.count_events(&count(FAILED)).await?;
        days.push((from.format("%Y-%m-%d").to_string(), v, f));
    }
    let problems = store
        .find_streams(&StreamQuery {
            state: Some(StreamState::Error),
            page: Page {
                after: None,
                ascending: false,
                limit: Some(10),
            },
            ..StreamQuery::default()
        })
        .await?;
    let total_streams: u64 = by_state.iter().map(|(_, n)| n).sum();
    let body = html! {
        h1 { "Overview" }
        div.cards {
            div.card { div.n { (last_hour) } div.l { "events stored, last hour" } }
            div.card { div.n { (last_day) } div.l { "events stored, last 24 h" } }
            div.card { div.n { (total_streams) } div.l { "streams" } }
        }
        h2 { "Streams by state" }
        div.cards {
            @for (s, n) in &by_state {
                div.card {
                    div.n { a href={"/ui/streams?state=" (s.name())} { (n) } }
                    div.l { (s.name()) }
                }
            }
        }
        h2 { "Usage audit, last 7 days (UTC days)" }
        @if days.iter().all(|(_, v, f)| *v == 0 && *f == 0) {
            div.empty { p { "No usage verification yet: the usage pipeline writes "
                code { (VERIFIED) } " and " code { (FAILED) } " events when its streams fire." } }
        } @else {
            (usage_chart(&days))
            div.table-wrap { table {
                thead { tr { th scope="col" { "Day" } th.num scope="col" { "Verified" } th.num scope="col" { "Failed" } } }
                tbody { @for (d, v, f) in &days { tr { td { (d) } td.num { (v) } td.num { (f) } } } }
            } }
        }
        h2 { "Streams in error" }
        @if problems.is_empty() {
            p.note { "None: no stream's pipeline failed." }
        } @else {
            (streams_table(&problems))
        }
    };
    Ok(layout::page("Overview", Some(Nav::Overview), body).into_response())
}
