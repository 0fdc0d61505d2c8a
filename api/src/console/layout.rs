//! The page shell every console page shares: the navigation (each page one keystroke
//! of Tab away, the current one marked for screen readers), the lookup box, and a
//! note that times are UTC.

use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The console's sections, for marking the current one in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Streams,
    Lookup,
    Usage,
    EventTypes,
}

const SECTIONS: [(Nav, &str, &str); 5] = [
    (Nav::Overview, "/ui/", "Overview"),
    (Nav::Streams, "/ui/streams", "Streams"),
    (Nav::Lookup, "/ui/lookup", "Lookup"),
    (Nav::Usage, "/ui/usage", "Usage audit"),
    (Nav::EventTypes, "/ui/event-types", "Event types"),
];

/// A whole page: `title` in the tab, `current` marked in the navigation.
pub(crate) fn page(title: &str, current: Option<Nav>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · StackTach" }
                link rel="stylesheet" href="/ui/assets/console.css";
                link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "StackTach" }
                    nav aria-label="Sections" {
                        @for (nav, href, label) in SECTIONS {
                            @if Some(nav) == current {
                                a href=(href) aria-current="page" { (label) } " "
                            } @else {
                                a href=(href) { (label) } " "
                            }
                        }
                    }
                    form method="get" action="/ui/lookup" role="search" {
                        label.skip for="q" { "Look up an instance, request or tenant id" }
                        input type="search" id="q" name="q" placeholder="instance, request or tenant id";
                        button type="submit" { "Look up" }
                    }
                }
                main id="main" { (content) }
                footer.note style="padding: 8px 16px" {
                    "Times are UTC (+00:00). "
                    a href="/openapi.json" { "API" }
                    (PreEscaped(" · "))
                    a href="/metrics" { "metrics" }
                }
            }
        }
    }
}
