//! klugman: the command-line client of the StackTach.v3 API.
//!
//! All the work is in the library's `run`; this only maps its error to one message on
//! standard error and an exit status.

use std::process::ExitCode;

fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match klugman::run(std::env::args_os().skip(1), &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // `klugman … | head`: the reader left; nothing to say.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(klugman::Error::Usage(e)) => {
            // clap's own rendering: usage line, hint, and its exit status (2).
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
        Err(e) => {
            eprintln!("klugman: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
