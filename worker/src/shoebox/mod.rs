//! Shoebox: archiving raw notifications to rolling files, and reading them back.
//!
//! The successor of StackTach's shoebox with its JSON roll manager:
//!
//! - [`Archiver`] appends one notification per line (JSON Lines) to a file in the
//!   working directory, named by the `filename_template` (see [`template`]). The file
//!   rolls when it reaches the size limit, when it is older than `roll_minutes` (checked
//!   on [`Archiver::append`] and [`Archiver::flush`]), and on [`Archiver::close`]. Rolling
//!   resolves `[[CRC]]` and moves the file to the destination folder, gzipped unless
//!   `compress` is off. [`Archiver::flush`] makes everything appended so far durable.
//!   A file left in the working directory by a crash is finished by [`Archiver::open`].
//! - [`read_notifications`] streams notifications from a JSON Lines file, a finished
//!   archive (plain or gzip, recognised by its magic bytes), an archive in the original
//!   binary format of shoebox's `WritingRollManager`, a directory of any of these (read in
//!   file name order) or standard input (`-`).
//!
//! Everything here is blocking file I/O: async callers use `spawn_blocking`.

mod reader;
mod settings;
pub mod template;
mod writer;

pub use reader::{Location, NotificationReader};
pub use settings::ShoeboxSettings;
pub use writer::Archiver;

use std::path::{Path, PathBuf};

/// What went wrong, naming the file (and line) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ShoeboxError {
    /// A `[shoebox]` setting is unusable.
    #[error("[shoebox] {key}: {reason}")]
    Config { key: String, reason: String },
    /// A file-system operation failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// One record of an archive is not a notification; reading goes on.
    #[error("{}: line {line}: {reason}", path.display())]
    Record {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// A file is not readable as an archive past some point.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

impl ShoeboxError {
    pub(crate) fn io(path: &Path, op: &'static str, source: std::io::Error) -> ShoeboxError {
        ShoeboxError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

/// Streams the notifications of `path`: a file (JSON Lines, shoebox archive, gzipped or
/// not), a directory of such files (read in file name order, hidden files skipped), or
/// `-` for standard input. Unreadable records come as `Err` items naming the file and
/// line, and iteration goes on with the next record or file.
pub fn read_notifications(path: &Path) -> Result<NotificationReader, ShoeboxError> {
    NotificationReader::open(path)
}
