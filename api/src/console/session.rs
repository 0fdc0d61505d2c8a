//! Who may look: the API's token, given once on a form and kept in a cookie
//! (HttpOnly: no script reads it; SameSite=Strict: no other site's page can make the
//! browser send it, which is what guards the reset form; Path=/ui: the REST API never
//! sees it, and keeps asking for `Authorization: Bearer`). The token is checked by the
//! API's own [`crate::auth::Auth`], so the console grants nothing the API would not.

use super::layout;
use super::PageError;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

const COOKIE: &str = "stv3_console_token";

/// The token from the console's cookie, if any.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| {
            form_urlencoded::parse(format!("t={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .filter(|t| !t.is_empty())
}

/// The request's headers as the API's checks read them: the cookie's token as a
/// bearer token.
fn as_bearer(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(token) = cookie_token(headers) {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            out.insert(header::AUTHORIZATION, v);
        }
    }
    out
}

/// Whether the reader may see pages: always, unless reads are protected; then with
/// the token (else to the login form, back to `here` after).
pub(crate) fn check_read(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<(), PageError> {
    match state.auth().check_read(&as_bearer(headers)) {
        Ok(()) => Ok(()),
        Err(ApiError::Unauthorized(_)) => Err(PageError::Login { next: here.into() }),
        Err(e) => Err(e.into()),
    }
}

/// Whether the reader may change streams: with the token only, as the API's `PUT`.
pub(crate) fn check_write(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    state.auth().check_write(&as_bearer(headers))
}

/// Whether a form post comes from a page of this server: a browser sends `Origin` on
/// every POST, and another site's page would name itself there.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Where to go after signing in: a console page, never another site.
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/ui/")
        .to_string()
}

fn form(next: &str, problem: Option<&str>, has_token: bool) -> maud::Markup {
    layout::page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in with the API token" }
            @if !has_token {
                div.problem role="alert" {
                    p { "This server has no API token: start stv3-api with --token-file or STV3_API_TOKEN to protect it or to reset streams." }
                }
            }
            @if let Some(p) = problem {
                div.problem role="alert" { p { (p) } }
            }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                p {
                    label for="token" { "Token " }
                    input type="password" id="token" name="token" autocomplete="current-password" required autofocus;
                    " "
                    button type="submit" { "Sign in" }
                }
            }
            p.note { "The token is kept in a cookie for this console only (HttpOnly, SameSite=Strict) until you sign out or close the browser." }
        },
    )
}

/// `GET /ui/login?next=…`
pub(crate) async fn login_form(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let q = crate::params::Query::parse(raw.as_deref());
    form(&safe_next(q.get("next")), None, state.auth().has_token()).into_response()
}

/// `POST /ui/login` (form: token, next): the token is checked, then kept.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let q = crate::params::Query::parse(Some(&body));
    let next = safe_next(q.get("next"));
    if !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            form(
                &next,
                Some("This form was sent from another site."),
                state.auth().has_token(),
            ),
        )
            .into_response();
    }
    let token = q.get("token").unwrap_or_default().trim().to_string();
    let mut bearer = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        bearer.insert(header::AUTHORIZATION, v);
    }
    if let Err(e) = state.auth().check_write(&bearer) {
        return (
            e.status(),
            form(&next, Some(&e.to_string()), state.auth().has_token()),
        )
            .into_response();
    }
    let value: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let cookie = format!("{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    match HeaderValue::from_str(&cookie) {
        Ok(v) => ([(header::SET_COOKIE, v)], Redirect::to(&next)).into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            form(
                &next,
                Some("The token has characters a cookie cannot hold."),
                true,
            ),
        )
            .into_response(),
    }
}

/// `POST /ui/logout`: the cookie goes.
pub(crate) async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "stv3_console_token=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
            ),
        )],
        Redirect::to("/ui/"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; stv3_console_token=s%3Bcr%20et; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("s;cr et"));
        assert_eq!(
            as_bearer(&h).get(header::AUTHORIZATION).unwrap(),
            "Bearer s;cr et"
        );
    }

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(
            safe_next(Some("/ui/streams?state=error")),
            "/ui/streams?state=error"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("//evil.example/ui")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn a_post_from_another_site_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("stv3.example:8000"));
        assert!(same_origin(&h), "no Origin: a non-browser client");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://stv3.example:8000"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}
