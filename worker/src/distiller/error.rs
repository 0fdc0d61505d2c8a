//! Errors: [`LoadError`] for a definitions file that cannot be used, [`Dropped`] for
//! a notification that gives no event.

use std::fmt;

/// Why a definitions file could not be loaded.
///
/// Every variant names the file, and the line when the parser knows it, so a
/// message on its own tells the operator where to look; definition problems also
/// name the definition (its position, 0-based in file order, and its `event_type`
/// as written) and the trait concerned.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read event definitions: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}{}: invalid YAML syntax: {message}", at(*line))]
    Yaml {
        file: String,
        /// 1-based, when the parser knows it.
        line: Option<usize>,
        message: String,
    },
    #[error("{file}{}: {reason}", at(*line))]
    Structure {
        file: String,
        line: Option<usize>,
        reason: String,
    },
    #[error("{file}{}: {context}: {reason}", at(*line))]
    Definition {
        file: String,
        line: Option<usize>,
        /// `definition N (event_type …)`, and the trait when there is one.
        context: String,
        reason: String,
    },
}

impl LoadError {
    /// The 1-based line concerned, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            LoadError::Io { .. } => None,
            LoadError::Yaml { line, .. }
            | LoadError::Structure { line, .. }
            | LoadError::Definition { line, .. } => *line,
        }
    }
}

/// Something a definitions file says that loads, but deserves a word: what the
/// original ignored, or a path that may not mean what it seems.
/// `Display`: `file:line: context: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {context}: {message}", at(*line))]
pub struct LoadWarning {
    pub file: String,
    /// 1-based, when known.
    pub line: Option<usize>,
    /// `definition N (event_type …)`, and the trait when there is one.
    pub context: String,
    pub message: String,
}

/// ":L" when the line is known.
fn at(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
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
