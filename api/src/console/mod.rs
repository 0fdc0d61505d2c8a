//! The web console at `/ui/`: server-rendered pages (maud) over the same store and
//! the same filters as the REST API, with every asset embedded in the binary, so it
//! works in an air-gapped cluster with nothing else to deploy. No JavaScript is needed
//! to use it: forms and links do the work, and the charts are inline SVG.
//!
//! Authentication is the API's: with `--protect-reads` the console asks for the token
//! once ([`session`]) and keeps it in an HttpOnly, SameSite=Strict cookie scoped to
//! `/ui`; the reset action needs the token whatever `--protect-reads` says, as
//! `PUT /v1/streams/{id}/reset` does.

mod chart;
mod layout;
mod pages;
mod session;
mod time;

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

/// The stylesheet and the icon, embedded.
const CSS: &str = include_str!("../../assets/console.css");
const ICON: &str = include_str!("../../assets/favicon.svg");

/// The console's routes, to merge into the application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(pages::overview::page))
        .route("/ui/streams", get(pages::streams::list))
        .route("/ui/streams/{id}", get(pages::streams::show))
        .route("/ui/streams/{id}/reset", post(pages::streams::reset))
        .route("/ui/lookup", get(pages::lookup::page))
        .route("/ui/events/{message_id}", get(pages::events::show))
        .route("/ui/event-types", get(pages::event_types::page))
        .route("/ui/usage", get(pages::usage::page))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/console.css", get(css))
        .route("/ui/assets/favicon.svg", get(icon))
        // Browsers ask for it whatever the page says.
        .route("/favicon.ico", get(icon))
        .with_state(state)
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// What a page handler fails with: shown as a page that says what went wrong (and,
/// for a missing or wrong token, sends the reader to the login form).
#[derive(Debug)]
pub(crate) enum PageError {
    /// The token is needed (reads protected) or was refused: to the login form.
    Login { next: String },
    /// Anything the API would answer with an error status.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::Api(e)
    }
}

impl From<worker::store::StoreError> for PageError {
    fn from(e: worker::store::StoreError) -> Self {
        PageError::Api(ApiError::from(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Login { next } => {
                let target = format!(
                    "/ui/login?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Redirect::to(&target).into_response()
            }
            PageError::Api(e) => {
                let status = e.status();
                let (title, hint) = match status {
                    StatusCode::BAD_REQUEST => (
                        "That request does not work",
                        "Check the form's values: the message says which one is wrong.",
                    ),
                    StatusCode::NOT_FOUND => (
                        "Not found",
                        "It may have been deleted or trimmed by the retention, or the link is wrong.",
                    ),
                    StatusCode::CONFLICT => (
                        "Not possible in this state",
                        "Reload the page: the stream may have changed meanwhile.",
                    ),
                    StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => (
                        "Not allowed",
                        "This needs the API token: sign in with it.",
                    ),
                    StatusCode::SERVICE_UNAVAILABLE => (
                        "The database is not answering",
                        "Try again in a moment; /readyz says when the API can reach it.",
                    ),
                    _ => (
                        "Something went wrong",
                        "The API's log has the details.",
                    ),
                };
                let body = layout::page(
                    title,
                    None,
                    maud::html! {
                        h1 { (title) }
                        div.problem role="alert" {
                            p { (e.to_string()) }
                        }
                        p.note { (hint) }
                    },
                );
                (status, body).into_response()
            }
        }
    }
}

/// A page's result.
pub(crate) type PageResult = Result<Response, PageError>;
