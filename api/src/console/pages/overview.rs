//! `/ui/`: the region at a glance. Events per minute, pipeline runs (fires, expiries,
//! failures), streams by state, the usage audit's last seven days, when each collector
//! was last seen, and the streams that need someone. Every number comes from a
//! maintained counter or one bounded query (see `worker::store::tally`), so the page
//! costs the same on a day-old sandbox and on a region of a billion events.

use super::super::chart::{self, Series};
use super::super::layout::{self, Nav};
use super::super::session;
use super::super::time;
use super::super::PageResult;
use super::streams_table;
use crate::collectors::CollectorView;
use crate::params::Query;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{html, Markup};
use std::collections::BTreeMap;
use worker::store::tally::{CollectorSeen, RunOutcome};
use worker::store::{Page, StreamQuery, StreamState};

/// The usage audit's outcome event types (the usage handler adds them).
pub(crate) const VERIFIED: &str = "compute.instance.exists.verified";
pub(crate) const FAILED: &str = "compute.instance.exists.failed";

/// A collector that stored nothing for this long is flagged.
const QUIET_AFTER: Duration = Duration::minutes(10);

/// The time window the charts show.
#[derive(Clone, Copy, PartialEq)]
enum Range {
    Hour,
    Day,
}

impl Range {
    fn span(self) -> Duration {
        match self {
            Range::Hour => Duration::hours(1),
            Range::Day => Duration::days(1),
        }
    }
    /// One bar per minute for the hour, per ten minutes for the day.
    fn bucket(self) -> Duration {
        match self {
            Range::Hour => Duration::minutes(1),
            Range::Day => Duration::minutes(10),
        }
    }
    fn label_every(self) -> usize {
        match self {
            Range::Hour => 10,
            Range::Day => 18,
        }
    }
}

/// `GET /ui/[?range=hour|day]`
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    session::check_read(&state, &headers, "/ui/")?;
    let q = Query::parse(raw.as_deref());
    let range = match q.get("range") {
        Some("day") => Range::Day,
        _ => Range::Hour,
    };
    let store = state.store()?;
    let now = Utc::now();
    // Whole minutes, the current one included: [to - span, to).
    let to = now.duration_trunc(Duration::minutes(1)).unwrap_or(now) + Duration::minutes(1);
    let day_from = to - Duration::days(1);
    let from = to - range.span();

    let minutes = store.events_per_minute(day_from, to).await?;
    let last_hour: u64 = minutes
        .iter()
        .filter(|(t, _)| *t >= to - Duration::hours(1))
        .map(|(_, n)| n)
        .sum();
    let last_day: u64 = minutes.iter().map(|(_, n)| n).sum();
    let events = chart::fill(
        from,
        to,
        range.bucket(),
        1,
        minutes.iter().map(|(t, n)| (*t, 0, *n)),
    );

    let runs = store.pipeline_runs(from, to).await?;
    let mut run_totals: BTreeMap<RunOutcome, u64> = BTreeMap::new();
    for r in &runs {
        *run_totals.entry(r.outcome).or_default() += r.runs;
    }
    let run_series = |o: RunOutcome| match o {
        RunOutcome::Fired => 0,
        RunOutcome::Expired => 1,
        RunOutcome::FireError | RunOutcome::ExpireError => 2,
        RunOutcome::Retried => 3,
    };
    let run_chart = chart::fill(
        from,
        to,
        range.bucket(),
        4,
        runs.iter()
            .map(|r| (r.minute, run_series(r.outcome), r.runs)),
    );

    let by_state = store.stream_state_counts().await?;
    let total_streams: u64 = by_state.iter().map(|(_, n)| n).sum();

    let today = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    let week_from = today - Duration::days(6);
    let week_to = today + Duration::days(1);
    let verified = store.events_per_day(VERIFIED, week_from, week_to).await?;
    let failed = store.events_per_day(FAILED, week_from, week_to).await?;
    let days = chart::fill(
        week_from,
        week_to,
        Duration::days(1),
        2,
        verified
            .iter()
            .map(|(t, n)| (*t, 0, *n))
            .chain(failed.iter().map(|(t, n)| (*t, 1, *n))),
    );

    let seen = store.collectors().await?;
    let sampled = state.collectors().views();

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

    let per_min = |n: u64| format!("{:.1}", n as f64 / range.span().num_minutes() as f64);
    let span_name = match range {
        Range::Hour => "last hour",
        Range::Day => "last 24 h",
    };
    let hhmm = |t: DateTime<Utc>| t.format("%H:%M").to_string();
    let body = html! {
        h1 { "Overview" }
        p.note { "Times are UTC (+00:00). The charts cover the " (span_name) " in whole minutes, up to "
            (time::at(to)) ". "
            @if range == Range::Hour { a href="/ui/?range=day" { "Show the last 24 hours" } }
            @else { a href="/ui/?range=hour" { "Show the last hour" } }
        }
        div.cards {
            div.card { div.n id="events-hour" { (last_hour) } div.l { "events stored, last hour" } }
            div.card { div.n id="events-day" { (last_day) } div.l { "events stored, last 24 h" } }
            div.card { div.n id="streams-total" { (total_streams) } div.l { "streams" } }
            div.card { div.n { (per_min(run_totals.get(&RunOutcome::Fired).copied().unwrap_or(0))) } div.l { "fires per minute, " (span_name) } }
            div.card { div.n { (per_min(run_totals.get(&RunOutcome::Expired).copied().unwrap_or(0))) } div.l { "expiries per minute, " (span_name) } }
            div.card { div.n { (run_totals.get(&RunOutcome::FireError).copied().unwrap_or(0) + run_totals.get(&RunOutcome::ExpireError).copied().unwrap_or(0)) } div.l { "pipeline failures, " (span_name) } }
        }
        h2 { "Events stored per " (if range == Range::Hour { "minute" } else { "10 minutes" }) }
        @if last_day == 0 {
            div.empty { p { "No event generated in the last 24 hours is stored. Point yagi-event at a cell's RabbitMQ, or run the sandbox (./build.sh); events count by the time their notification was generated." } }
        } @else {
            (chart::bars(&format!("Events stored, {span_name}"), &[Series { name: "events", class: "s1" }], &events, range.label_every(), hhmm))
        }
        h2 { "Pipeline runs" }
        @if runs.is_empty() {
            p.note { "No pipeline run finished in the " (span_name) ". Streams fire or expire when their trigger says so; pipeline-workers run them." }
        } @else {
            (chart::bars(&format!("Pipeline runs, {span_name}"),
                &[Series { name: "fired", class: "s1" }, Series { name: "expired", class: "s2" },
                  Series { name: "failed", class: "s3" }, Series { name: "retried", class: "s4" }],
                &run_chart, range.label_every(), hhmm))
            div.table-wrap { table {
                thead { tr { th scope="col" { "Outcome" } th.num scope="col" { "Runs, " (span_name) } th.num scope="col" { "Per minute" } } }
                tbody { @for o in RunOutcome::ALL {
                    @let n = run_totals.get(&o).copied().unwrap_or(0);
                    tr { th scope="row" { (o.name()) } td.num { (n) } td.num { (per_min(n)) } }
                } }
            } }
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
        h2 { "Collectors" }
        (collectors(&seen, &sampled, now))
        h2 { "Usage audit, last 7 days (UTC days)" }
        @if days.iter().all(|(_, v)| v.iter().all(|n| *n == 0)) {
            div.empty { p { "No usage verification yet: the usage pipeline writes "
                code { (VERIFIED) } " and " code { (FAILED) } " events when its streams fire." } }
        } @else {
            (chart::bars("Usage verifications per day",
                &[Series { name: "verified", class: "s1" }, Series { name: "failed", class: "s3" }],
                &days, 1, |t| t.format("%m-%d").to_string()))
            div.table-wrap { table {
                thead { tr { th scope="col" { "Day" } th.num scope="col" { "Verified" } th.num scope="col" { "Failed" } } }
                tbody { @for (d, v) in &days { tr {
                    td { (d.format("%Y-%m-%d")) }
                    td.num { (v[0]) }
                    td.num { @if v[1] > 0 { a href={"/ui/usage"} { (v[1]) } } @else { "0" } }
                } } }
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

/// Each collector: when it last stored events (from the store) and, when `stv3-api`
/// samples its metrics, what it received.
fn collectors(seen: &[CollectorSeen], sampled: &[CollectorView], now: DateTime<Utc>) -> Markup {
    let mut names: Vec<&str> = seen.iter().map(|c| c.name.as_str()).collect();
    for v in sampled {
        if !names.contains(&v.name.as_str()) {
            names.push(&v.name);
        }
    }
    names.sort_unstable();
    if names.is_empty() {
        return html! { div.empty { p { "No collector has stored events yet. Each cell's yagi-event records itself here as it stores (the operator names it after the cell). Give stv3-api "
        code { "--collector NAME=URL" } " to also see what each receives, from its metrics." } } };
    }
    html! {
        div.table-wrap { table id="collectors" {
            thead { tr {
                th scope="col" { "Collector" } th scope="col" { "Last stored events" }
                th scope="col" { "Newest event generated" } th scope="col" { "Metrics" }
                th.num scope="col" { "Received per minute" } th.num scope="col" { "Dead-lettered" }
            } }
            tbody {
                @for name in names {
                    @let stored = seen.iter().find(|c| c.name == name);
                    @let view = sampled.iter().find(|v| v.name == name);
                    tr {
                        th scope="row" { (name) }
                        td {
                            @match stored {
                                Some(c) => {
                                    (time::at(c.last_seen)) br;
                                    @if now - c.last_seen > QUIET_AFTER {
                                        strong.warn { "quiet for " (time::duration(c.last_seen, now)) }
                                    } @else {
                                        span.muted { (time::duration(c.last_seen, now)) " ago" }
                                    }
                                }
                                None => span.muted { "never" },
                            }
                        }
                        td { @if let Some(c) = stored { (time::at(c.last_generated)) } }
                        td {
                            @match view {
                                None => span.muted { "not sampled" },
                                Some(v) => {
                                    @if let Some((at, e)) = &v.failing {
                                        strong.warn { "not answering" } " since " (time::at(*at)) ": " (e)
                                    } @else if let Some((at, _)) = &v.last_answer {
                                        "answered " (time::duration(*at, now)) " ago"
                                    } @else {
                                        span.muted { "not sampled yet" }
                                    }
                                }
                            }
                        }
                        td.num { @if let Some(v) = view { @if let Some((_, n)) = v.received_per_minute.last() { (format!("{n:.0}")) } } }
                        td.num { @if let Some((_, t)) = view.and_then(|v| v.last_answer) { (format!("{:.0}", t.dead_lettered)) } }
                    }
                }
            }
        } }
    }
}
