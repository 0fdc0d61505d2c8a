//! The ways a klugman command fails, each with a message fit to show a user as is.

use std::io;

/// A failed klugman command. `Display` is the whole message for the user: no
/// backtraces, no debug structs, because klugman's users are operators at a shell.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line did not parse; clap renders its own usage text.
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// The command line parsed, but a value in it cannot be used.
    #[error("{0}")]
    BadArgument(String),
    /// The server could not be reached (DNS, refused, TLS, timeout …).
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The server answered with a 4xx or 5xx status.
    #[error("GET {url} failed: {status}: {message}")]
    Status {
        url: String,
        status: String,
        message: String,
    },
    /// The server answered 2xx, but not with the JSON klugman needs.
    #[error("GET {url}: the server's answer is not usable: {reason}")]
    BadResponse { url: String, reason: String },
    /// Writing the output (stdout or a download file) failed.
    #[error("{what}: {source}")]
    Output {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The process exit status for this error: 2 for usage errors (as argparse and
    /// clap do), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(e) => e.exit_code(),
            Error::BadArgument(_) => 2,
            _ => 1,
        }
    }

    /// True when the reader of our output went away (`klugman … | head`): not worth
    /// a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn output(what: impl Into<String>, source: io::Error) -> Self {
        Error::Output {
            what: what.into(),
            source,
        }
    }
}
