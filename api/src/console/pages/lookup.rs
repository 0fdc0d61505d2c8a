//! `/ui/lookup?q=<value>`: "what happened to instance X?". Every event whose
//! instance, request or tenant id is the value, in time order, grouped into
//! operations (a `.start` with its `.end`, and how long it took), and the streams
//! whose distinguishing traits hold the value, with their states. Each key is one
//! indexed query (trait name and value), bounded.

use super::super::layout::{self, Nav};
use super::super::session;
use super::super::time;
use super::super::PageResult;
use super::streams_table;
use crate::params::Query;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use maud::{html, Markup};
use std::collections::BTreeMap;
use worker::event::TraitValue;
use worker::store::{
    DistMatch, DistValue, EventQuery, Page, StoredEvent, StreamQuery, TraitFilter, TraitOp,
};

/// The traits a value is looked up in.
pub(crate) const KEYS: [&str; 3] = ["instance_id", "request_id", "tenant_id"];
/// Events read per key: a tenant can have millions; the page says when it stops.
const EVENTS_PER_KEY: u64 = 1000;
const STREAMS_PER_KEY: u64 = 100;

/// A `.start` event with its `.end` (if one came).
struct Operation<'a> {
    name: String,
    start: &'a StoredEvent,
    end: Option<&'a StoredEvent>,
}

/// Pairs each `X.start` with the first later `X.end` of the same request (when both
/// carry a request_id) that is not paired yet.
fn operations(events: &[StoredEvent]) -> Vec<Operation<'_>> {
    let request = |e: &StoredEvent| match e.event.traits.get("request_id") {
        Some(TraitValue::Text(r)) => Some(r.clone()),
        _ => None,
    };
    let mut used = vec![false; events.len()];
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Some(base) = e.event.event_type.strip_suffix(".start") else {
            continue;
        };
        let end_type = format!("{base}.end");
        let end = events
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(j, x)| {
                !used[*j]
                    && x.event.event_type == end_type
                    && (request(e).is_none() || request(x).is_none() || request(e) == request(x))
            })
            .map(|(j, x)| {
                used[j] = true;
                x
            });
        out.push(Operation {
            name: base.to_string(),
            start: e,
            end,
        });
    }
    out
}

fn event_link(e: &StoredEvent) -> Markup {
    html! { a href={"/ui/events/" (super::streams::urlencode(&e.event.message_id))} { (e.event.event_type) } }
}

/// `GET /ui/lookup?q=…`
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let here = format!("/ui/lookup?{}", raw.as_deref().unwrap_or(""));
    session::check_read(&state, &headers, &here)?;
    let q = Query::parse(raw.as_deref());
    let value = q.get("q").map(str::trim).unwrap_or_default().to_string();
    if value.is_empty() {
        let body = html! {
            h1 { "Look up an instance, a request or a tenant" }
            form method="get" action="/ui/lookup" {
                label for="lookup-q" { "Id " }
                input type="search" id="lookup-q" name="q" autofocus placeholder="e.g. an instance_id";
                " " button type="submit" { "Look up" }
            }
            p.note { "Every event whose " (KEYS.join(", ")) " is the value, in time order, with the operations it went through and its streams." }
        };
        return Ok(layout::page("Lookup", Some(Nav::Lookup), body).into_response());
    }
    let store = state.store()?;
    let mut events: BTreeMap<String, StoredEvent> = BTreeMap::new();
    let mut truncated = Vec::new();
    for key in KEYS {
        let query = EventQuery {
            traits: vec![TraitFilter {
                name: key.into(),
                op: TraitOp::Eq,
                value: TraitValue::Text(value.clone()),
            }],
            page: Page {
                after: None,
                ascending: true,
                limit: Some(EVENTS_PER_KEY),
            },
            ..EventQuery::default()
        };
        let found = store.find_events(&query).await?;
        if found.len() as u64 == EVENTS_PER_KEY {
            truncated.push(key);
        }
        for e in found {
            events.entry(e.event.message_id.clone()).or_insert(e);
        }
    }
    let mut events: Vec<StoredEvent> = events.into_values().collect();
    events.sort_by_key(|e| (e.event.timestamp, e.id));
    let mut streams = BTreeMap::new();
    for key in KEYS {
        let query = StreamQuery {
            dist_matches: vec![DistMatch {
                name: key.into(),
                values: vec![DistValue::Text(value.clone())],
            }],
            page: Page {
                after: None,
                ascending: false,
                limit: Some(STREAMS_PER_KEY),
            },
            ..StreamQuery::default()
        };
        for s in store.find_streams(&query).await? {
            streams.entry(s.id).or_insert(s);
        }
    }
    let streams: Vec<_> = streams.into_values().rev().collect();
    let ops = operations(&events);
    let body = html! {
        h1 { "Lookup: " code { (value) } }
        @if events.is_empty() && streams.is_empty() {
            div.empty {
                p { "No event has " (KEYS.join(", ")) " equal to " code { (value) } "." }
                p { "Check the value (ids are matched exactly), or whether the events are older than the retention." }
            }
        } @else {
            div.cards {
                div.card { div.n { (events.len()) } div.l { "events" } }
                div.card { div.n { (ops.len()) } div.l { "operations" } }
                div.card { div.n { (streams.len()) } div.l { "streams" } }
            }
            @if !truncated.is_empty() {
                p.note { "Only the first " (EVENTS_PER_KEY) " events by " (truncated.join(", ")) " are shown." }
            }
            @if !ops.is_empty() {
                h2 { "Operations" }
                @for op in &ops {
                    div.op {
                        strong { (op.name) } " — "
                        (time::at(op.start.event.timestamp))
                        @if let Some(end) = op.end {
                            " to " (time::at(end.event.timestamp)) ", took "
                            strong { (time::duration(op.start.event.timestamp, end.event.timestamp)) }
                            " (" (event_link(op.start)) ", " (event_link(end)) ")"
                        } @else {
                            " — no end yet (" (event_link(op.start)) ")"
                        }
                    }
                }
            }
            h2 { "Events in time order" }
            ol.timeline {
                @for e in &events {
                    li { (time::at(e.event.timestamp)) " " (event_link(e)) }
                }
            }
            h2 { "Streams" }
            @if streams.is_empty() {
                p.note { "No stream is distinguished by this value." }
            } @else {
                (streams_table(&streams))
            }
        }
    };
    Ok(layout::page(&format!("Lookup {value}"), Some(Nav::Lookup), body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use worker::event::Event;

    fn ev(id: i64, t: &str, s: i64, req: &str) -> StoredEvent {
        let mut traits = std::collections::BTreeMap::new();
        traits.insert("request_id".to_string(), TraitValue::Text(req.into()));
        StoredEvent {
            id,
            event: Event {
                event_type: t.into(),
                message_id: format!("m{id}"),
                timestamp: Utc.timestamp_opt(s, 0).unwrap(),
                traits,
            },
        }
    }

    #[test]
    fn starts_pair_with_their_ends_by_request() {
        let events = vec![
            ev(1, "compute.instance.create.start", 0, "r1"),
            ev(2, "compute.instance.resize.start", 5, "r2"),
            ev(3, "compute.instance.create.end", 10, "r1"),
            ev(4, "compute.instance.update", 11, "r1"),
            ev(5, "compute.instance.delete.start", 20, "r3"),
        ];
        let ops = operations(&events);
        let summary: Vec<(String, Option<i64>)> = ops
            .iter()
            .map(|o| (o.name.clone(), o.end.map(|e| e.id)))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("compute.instance.create".to_string(), Some(3)),
                ("compute.instance.resize".to_string(), None),
                ("compute.instance.delete".to_string(), None),
            ]
        );
    }
}
