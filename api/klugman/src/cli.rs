//! The command line, shaped like the original argparse one:
//! `klugman [--version N] [--debug] URL {streams,events} [options]`, plus `--json`
//! and the v2 `archives` command.
//!
//! Long options may be abbreviated to any unique prefix (`--detail`, `--cou`), because
//! argparse allowed it and the original README itself uses `--detail`.

use clap::{ArgGroup, Args, Parser, Subcommand};

/// The stream states the server knows (winchester's `StreamState` names); the
/// original offered exactly these as `--state` choices.
pub const STREAM_STATES: [&str; 8] = [
    "active",
    "firing",
    "expiring",
    "error",
    "expire_error",
    "completed",
    "retry_fire",
    "retry_expire",
];

/// Klugman cmdline tool
#[derive(Debug, Parser)]
#[command(
    name = "klugman",
    about = "Klugman cmdline tool: the StackTach.v3 API from the command line",
    disable_version_flag = true,
    infer_long_args = true
)]
pub struct Cli {
    /// The API endpoint url (http:// or https://, without the /vN suffix)
    #[arg(value_name = "url")]
    pub url: String,

    /// Which api version to use.
    #[arg(
        long,
        value_name = "version",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=2),
        global = true,
        display_order = 100
    )]
    pub version: u32,

    /// Enable debugging: print each request's URL and parameters first.
    #[arg(long, global = true, display_order = 100)]
    pub debug: bool,

    /// Print the server's JSON as received instead of tables (for scripts).
    #[arg(long, global = true, display_order = 100)]
    pub json: bool,

    /// File holding the API's bearer token, for a server that protects reads and for
    /// archives (else the environment variable STV3_API_TOKEN, if set).
    #[arg(long, value_name = "PATH", global = true, display_order = 100)]
    pub token_file: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The API resources klugman talks to.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Streams: list, count, or show one (optionally with its events).
    #[command(infer_long_args = true)]
    Streams(StreamsArgs),
    /// Events: list, count, or show one by message id.
    #[command(infer_long_args = true)]
    Events(EventsArgs),
    /// Archives (API v2): list them, or download one with --get.
    #[command(infer_long_args = true)]
    Archives(ArchivesArgs),
}

/// Options of `streams`; names, metavars and help follow the original.
#[derive(Debug, Default, Args)]
#[command(group(ArgGroup::new("streams_mode").args(["count", "stream_id"])))]
pub struct StreamsArgs {
    /// Return streams of type trigger_name.
    #[arg(long, value_name = "trigger_name")]
    pub name: Option<String>,
    /// Return streams last updated after datetime
    #[arg(long = "from", value_name = "datetime")]
    pub from: Option<String>,
    /// Return streams last updated before datetime
    #[arg(long, value_name = "datetime")]
    pub to: Option<String>,
    /// Return streams with specific distinguishing traits (name:value,name:value).
    #[arg(long, value_name = "trait_list")]
    pub traits: Option<String>,
    /// Return full event details.
    #[arg(long)]
    pub details: bool,
    /// Only return streams in this state.
    #[arg(long, value_name = "state", value_parser = STREAM_STATES)]
    pub state: Option<String>,
    /// Return a count of streams matching filter criteria.
    #[arg(long)]
    pub count: bool,
    /// Return a single specific stream by id.
    #[arg(long = "id", value_name = "stream_id")]
    pub stream_id: Option<String>,
    /// Page from this _mark (not in the original klugman).
    #[arg(long, value_name = "mark")]
    pub mark: Option<String>,
    /// At most this many streams; the server's default is 200 (not in the original).
    #[arg(long, value_name = "limit")]
    pub limit: Option<u32>,
}

/// Options of `events`; names, metavars and help follow the original.
#[derive(Debug, Default, Args)]
#[command(group(ArgGroup::new("events_mode").args(["count", "msg_id"])))]
pub struct EventsArgs {
    /// Return events of type event_name.
    #[arg(long, value_name = "event_name")]
    pub name: Option<String>,
    /// Return events generated after datetime
    #[arg(long = "from", value_name = "datetime")]
    pub from: Option<String>,
    /// Return events generated before datetime
    #[arg(long, value_name = "datetime")]
    pub to: Option<String>,
    /// Return events with specific traits (name:value,name:value).
    #[arg(long, value_name = "trait_list")]
    pub traits: Option<String>,
    /// Return a count of events matching filter criteria.
    #[arg(long)]
    pub count: bool,
    /// Return a single specific event by message id.
    #[arg(long = "msg_id", alias = "msg-id", value_name = "message_id")]
    pub msg_id: Option<String>,
    /// Page from this _mark (not in the original klugman).
    #[arg(long, value_name = "mark")]
    pub mark: Option<String>,
    /// At most this many events; the server's default is 200 (not in the original).
    #[arg(long, value_name = "limit")]
    pub limit: Option<u32>,
}

/// Options of `archives` (v2 only; the original dropped its draft of this command).
#[derive(Debug, Default, Args)]
pub struct ArchivesArgs {
    /// Download the archive with this id instead of listing archives.
    #[arg(long, value_name = "archive_id")]
    pub get: Option<String>,
    /// Write the download to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "file", requires = "get")]
    pub output: Option<std::path::PathBuf>,
}
