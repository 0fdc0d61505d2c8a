//! Errors of the timex language.
//!
//! Syntax errors carry the character offset where the problem was found so callers
//! (the CLI, configuration loaders) can point at it; evaluation errors name the
//! variable or the date computation that failed. Nothing in timex panics on input.

use thiserror::Error;

/// Everything that can go wrong while compiling or evaluating a timex expression.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimexError {
    /// The expression contains a character that is not part of the language.
    #[error("unexpected character {found:?} at column {}", offset + 1)]
    UnexpectedCharacter {
        /// 0-based character offset into the expression.
        offset: usize,
        found: char,
    },
    /// The tokens do not form an expression.
    #[error("syntax error at column {}: expected {expected}, found {found}", offset + 1)]
    Syntax {
        /// 0-based character offset into the expression.
        offset: usize,
        /// What the grammar allowed here.
        expected: String,
        /// What was there instead.
        found: String,
    },
    /// The expression is well formed but uses an operation the language forbids,
    /// e.g. a unitless number on a timestamp or `to` between ranges.
    #[error("invalid expression at column {}: {message}", offset + 1)]
    Invalid {
        /// 0-based character offset into the expression.
        offset: usize,
        message: String,
    },
    /// The expression refers to a variable the caller did not supply.
    #[error("unknown variable ${0}")]
    UnknownVariable(String),
    /// A range function other than hour, day, month or year.
    #[error("unknown range `{0}`; expected hour, day, month or year")]
    UnknownRange(String),
    /// A date computation has no answer (a component out of range, such as
    /// `@ 30d` in February, or a date outside years 1 to 9999).
    #[error("invalid date arithmetic: {0}")]
    InvalidDate(String),
}

impl TimexError {
    /// The 0-based character offset of a compile-time error, for pointing at it.
    pub fn offset(&self) -> Option<usize> {
        match self {
            TimexError::UnexpectedCharacter { offset, .. }
            | TimexError::Syntax { offset, .. }
            | TimexError::Invalid { offset, .. } => Some(*offset),
            TimexError::UnknownVariable(_)
            | TimexError::UnknownRange(_)
            | TimexError::InvalidDate(_) => None,
        }
    }

    /// True when the error was found while compiling (parsing) the expression,
    /// false when it comes from evaluating it against variables.
    pub fn is_parse_error(&self) -> bool {
        self.offset().is_some()
    }
}
