//! Errors: [`LoadError`] for a definitions file that cannot be used, [`Dropped`] for
//! a notification that gives no event.

use std::fmt;

/// Why a definitions file could not be loaded.
///
/// Every variant names the file, so a message on its own tells the operator where
/// to look; definition problems also carry the definition's position (0-based, in
/// file order), its `event_type` as written, and the trait concerned.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read event definitions: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid YAML syntax{}: {message}", position(*line, *column, message))]
    Yaml {
        file: String,
        /// 1-based, when the parser knows it.
        line: Option<u64>,
        /// 1-based, when the parser knows it.
        column: Option<u64>,
        message: String,
    },
    #[error("{file}: {reason}")]
    Structure { file: String, reason: String },
    #[error(
        "{file}: definition {index} (event_type {event_type}){}: {reason}",
        trait_name.as_deref().map(|t| format!(", trait '{t}'")).unwrap_or_default()
    )]
    Definition {
        file: String,
        index: usize,
        /// The definition's `event_type` value as written (JSON form).
        event_type: String,
        trait_name: Option<String>,
        reason: String,
    },
}

/// " at line L, column C", unless the parser's message already says where.
fn position(line: Option<u64>, column: Option<u64>, message: &str) -> String {
    if message.contains("line ") {
        return String::new();
    }
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

/// Why a notification produced no event. `Display` gives the human-readable reason
/// that `stv3 distill` prints as `{"dropped": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// The input bytes are not JSON (from [`super::Distiller::distill_slice`]).
    InvalidJson(String),
    /// The notification is not a JSON object.
    NotAnObject,
    /// A required envelope field is absent or null.
    Missing(&'static str),
    /// A required envelope field is not a string.
    NotAString(&'static str),
    /// No definition's event_type patterns match (and catch-all is off).
    NoMatchingDefinition { event_type: String },
    /// The envelope timestamp is present but is not an ISO 8601 date-time.
    InvalidTimestamp { field: &'static str, value: String },
    /// The matching definition extracted no trait at all.
    NoTraits { event_type: String },
    /// An envelope field longer than the stores accept.
    TooLong { field: &'static str, len: usize },
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dropped::InvalidJson(msg) => write!(f, "invalid JSON: {msg}"),
            Dropped::NotAnObject => f.write_str("notification is not a JSON object"),
            Dropped::Missing(field) => write!(f, "missing {field}"),
            Dropped::NotAString(field) => write!(f, "{field} is not a string"),
            Dropped::NoMatchingDefinition { event_type } => {
                write!(f, "no matching definition for event_type '{event_type}'")
            }
            Dropped::InvalidTimestamp { field, value } => {
                write!(f, "invalid {field} '{value}': not an ISO 8601 date-time")
            }
            Dropped::NoTraits { event_type } => {
                write!(f, "no traits extracted for event_type '{event_type}'")
            }
            Dropped::TooLong { field, len } => write!(
                f,
                "{field} is {len} characters long (at most {} are accepted)",
                super::MAX_ENVELOPE_CHARS
            ),
        }
    }
}

impl std::error::Error for Dropped {}
