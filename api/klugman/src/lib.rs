//! klugman: the command-line client of the StackTach.v3 API (quincy's and ours).
//!
//! It keeps the original Python klugman's command line
//! (`klugman URL [--version N] [--debug] streams|events [options]`), sends the same
//! requests, and prints the same prettytable layouts, so scripts and habits built on
//! the original keep working. It adds `--json` (the server's JSON, for scripts) and
//! the v2 `archives` command.
//!
//! [`run`] is the whole program minus process exit, so other crates' tests can drive
//! klugman in-process against a real server and compare its output.

pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod pyshow;
pub mod render;
pub mod request;
pub mod table;

use std::ffi::OsString;
use std::io::Write;

use clap::error::ErrorKind;
use clap::Parser;

pub use error::Error;

/// Runs klugman with `args` (the arguments *after* the program name, e.g.
/// `["http://127.0.0.1:8000", "streams", "--count"]`), writing everything a user
/// would see on standard output to `out`.
///
/// `--help` is written to `out` and returns `Ok`. Every failure is an [`Error`] whose
/// `Display` is the message to show and whose [`Error::exit_code`] is the status to
/// exit with.
pub fn run<I, T>(args: I, out: &mut dyn Write) -> Result<(), Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv = std::iter::once(OsString::from("klugman")).chain(args.into_iter().map(Into::into));
    let cli = match cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return commands::emit(out, &e.render().to_string());
        }
        Err(e) => return Err(Error::Usage(e)),
    };
    commands::execute(&cli, out)
}
