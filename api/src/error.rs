//! Every error the API answers with: a status and a JSON body
//! `{"error": "<kind>", "message": "<what to fix>"}`. The original answered bad input
//! with a 500 and a Python traceback; here bad input is always a 4xx naming the
//! parameter, and only a failing database is a 5xx.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use worker::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is malformed or out of range.
    #[error("{0}")]
    BadRequest(String),
    /// No bearer token, or the wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// The call is refused whatever the token (mutations with no token configured).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The stream is not in a state the call applies to.
    #[error("{0}")]
    Conflict(String),
    /// The database is not reachable (yet): worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; the details are logged, not returned.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The JSON error body for `status` (also used to rewrite the framework's own
/// plain-text rejections, see `server`).
pub fn error_body(status: StatusCode, message: &str) -> serde_json::Value {
    let kind = status
        .canonical_reason()
        .unwrap_or("Error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    json!({ "error": kind, "message": message })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = axum::Json(error_body(status, &self.to_string()));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchStream(id) => ApiError::NotFound(format!("no stream with id {id}")),
            StoreError::NotResettable { id, state } => ApiError::Conflict(format!(
                "stream {id} is {state}: only streams in error or expire_error can be reset"
            )),
            StoreError::Unavailable(reason) | StoreError::AccessDenied(reason) => {
                tracing::warn!(error = %reason, "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry later".into())
            }
            StoreError::Timeout(reason) => {
                tracing::warn!(error = %reason, "query stopped by the statement timeout");
                ApiError::Unavailable(
                    "the query ran past the server's statement timeout; narrow the filters \
                     (a time range, a trait) or ask for a smaller page"
                        .into(),
                )
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::Internal(
                    "internal error reading the database (see the server log)".into(),
                )
            }
        }
    }
}
