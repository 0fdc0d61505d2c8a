//! One module per page. Shared here: how values and streams are written.

pub(crate) mod event_types;
pub(crate) mod events;
pub(crate) mod lookup;
pub(crate) mod overview;
pub(crate) mod streams;
pub(crate) mod usage;

use super::time;
use maud::{html, Markup};
use worker::event::TraitValue;
use worker::store::{DistValue, Stream, StreamState};

/// A trait value as text (datetimes in UTC with the offset).
pub(crate) fn trait_value(v: &TraitValue) -> Markup {
    match v {
        TraitValue::Text(s) => html! { code { (s) } },
        TraitValue::Int(i) => html! { (i) },
        TraitValue::Float(f) => html! { (f) },
        TraitValue::Datetime(d) => time::at(*d),
    }
}

/// A distinguishing trait's value (a time range as its two ends).
pub(crate) fn dist_value(v: &DistValue) -> Markup {
    match v {
        DistValue::Text(s) => html! { code { (s) } },
        DistValue::Int(i) => html! { (i) },
        DistValue::Float(f) => html! { (f) },
        DistValue::Datetime(d) => time::at(*d),
        DistValue::Range(r) => html! { (time::at(r.begin)) " – " (time::at(r.end)) },
    }
}

/// A stream's state as a badge.
pub(crate) fn state_badge(s: StreamState) -> Markup {
    html! { span class={"state " (s.name())} { (s.name()) } }
}

/// A table of streams, each linking to its page.
pub(crate) fn streams_table(streams: &[Stream]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th.num scope="col" { "Id" } th scope="col" { "Trigger" } th scope="col" { "State" }
                    th scope="col" { "Distinguishing traits" } th scope="col" { "First event" }
                    th scope="col" { "Last event" } th.num scope="col" { "Events" }
                } }
                tbody {
                    @for s in streams {
                        tr {
                            td.num { a href={"/ui/streams/" (s.id)} { (s.id) } }
                            td { (s.name) }
                            td { (state_badge(s.state)) }
                            td {
                                @for (name, v) in &s.distinguishing_traits {
                                    div { (name) ": " (dist_value(v)) }
                                }
                            }
                            td { (time::at(s.first_event)) }
                            td { (time::at(s.last_event)) }
                            td.num { (s.event_count) }
                        }
                    }
                }
            }
        }
    }
}
