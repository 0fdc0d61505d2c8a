//! Command line → request, for every command and option, against what the original
//! klugman sent (read from its `v1.py`: parameter names, `details=True`, `name=` for
//! trigger names, `older_than` for `--from`, the `/count` paths).

use clap::Parser;
use klugman::cli::{Cli, Command};
use klugman::commands::{archives, events, streams};

/// The request (path and query under `/vN`) the command line would send.
fn sent(args: &[&str]) -> String {
    let argv = std::iter::once("klugman").chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).unwrap();
    match &cli.command {
        Command::Streams(a) => streams::request(a).unwrap().path_and_query(),
        Command::Events(a) => events::request(a).unwrap().path_and_query(),
        Command::Archives(a) => archives::request(a).path_and_query(),
    }
}

const U: &str = "http://api:8000";

#[test]
fn streams_requests() {
    assert_eq!(sent(&[U, "streams"]), "streams");
    assert_eq!(
        sent(&[U, "streams", "--name", "test_trigger"]),
        "streams?name=test_trigger"
    );
    assert_eq!(
        sent(&[
            U,
            "streams",
            "--from",
            "2015-04-22 00:00",
            "--to",
            "2015-04-23T00:00:00"
        ]),
        "streams?older_than=2015-04-22+00%3A00&younger_than=2015-04-23T00%3A00%3A00"
    );
    assert_eq!(sent(&[U, "streams", "--details"]), "streams?details=True");
    assert_eq!(
        sent(&[U, "streams", "--state", "completed"]),
        "streams?state=completed"
    );
    assert_eq!(
        sent(&[U, "streams", "--traits", "instance_id:633fe23b-7c6a"]),
        "streams?distinguishing_traits=instance_id%3A633fe23b-7c6a"
    );
    assert_eq!(
        sent(&[
            U, "streams", "--name", "t", "--from", "a", "--to", "b", "--details", "--state",
            "active", "--traits", "x:1"
        ]),
        "streams?older_than=a&younger_than=b&name=t&details=True&state=active&distinguishing_traits=x%3A1"
    );
    // Two traits: joined with ';', which is what the server splits on.
    assert_eq!(
        sent(&[U, "streams", "--traits", "x:1,y:2"]),
        "streams?distinguishing_traits=x%3A1%3By%3A2"
    );
}

#[test]
fn streams_count_and_id() {
    assert_eq!(sent(&[U, "streams", "--count"]), "streams/count");
    assert_eq!(
        sent(&[U, "streams", "--count", "--state", "completed", "--name", "t", "--from", "a", "--to", "b", "--traits", "x:1"]),
        "streams/count?older_than=a&younger_than=b&name=t&state=completed&distinguishing_traits=x%3A1"
    );
    // --count never sends details, as in the original.
    assert_eq!(
        sent(&[U, "streams", "--count", "--details"]),
        "streams/count"
    );
    assert_eq!(sent(&[U, "streams", "--id", "44171"]), "streams/44171");
    assert_eq!(
        sent(&[U, "streams", "--id", "44171", "--details"]),
        "streams/44171?details=True"
    );
    // --id ignores the list filters, as in the original.
    assert_eq!(
        sent(&[U, "streams", "--id", "7", "--name", "t", "--state", "error"]),
        "streams/7"
    );
}

#[test]
fn argparse_style_abbreviations_work() {
    // The original's README uses `--detail`.
    assert_eq!(
        sent(&[U, "streams", "--id", "44171", "--detail"]),
        "streams/44171?details=True"
    );
    assert_eq!(sent(&[U, "streams", "--cou"]), "streams/count");
    assert_eq!(sent(&[U, "events", "--msg", "m1"]), "events/m1");
}

#[test]
fn streams_paging_extension() {
    assert_eq!(
        sent(&[U, "streams", "--mark", "+acbb", "--limit", "10"]),
        "streams?mark=%2Bacbb&limit=10"
    );
}

#[test]
fn events_requests() {
    assert_eq!(sent(&[U, "events"]), "events");
    assert_eq!(
        sent(&[U, "events", "--name", "compute.instance.create.end"]),
        "events?event_name=compute.instance.create.end"
    );
    assert_eq!(
        sent(&[
            U,
            "events",
            "--from",
            "2015-04-22",
            "--to",
            "2015-04-23",
            "--traits",
            "tenant_id:3334"
        ]),
        "events?from_datetime=2015-04-22&to_datetime=2015-04-23&traits=tenant_id%3A3334"
    );
    assert_eq!(
        sent(&[U, "events", "--name", "x", "--count"]),
        "events/count?event_name=x"
    );
    assert_eq!(
        sent(&[U, "events", "--count", "--from", "a", "--to", "b", "--traits", "k:v"]),
        "events/count?from_datetime=a&to_datetime=b&traits=k%3Av"
    );
    assert_eq!(
        sent(&[
            U,
            "events",
            "--msg_id",
            "047d9d5c-9190",
            "--name",
            "ignored"
        ]),
        "events/047d9d5c-9190"
    );
    assert_eq!(sent(&[U, "events", "--msg-id", "m1"]), "events/m1");
    assert_eq!(
        sent(&[U, "events", "--mark", "6544b", "--limit", "5"]),
        "events?mark=6544b&limit=5"
    );
}

#[test]
fn archives_requests() {
    assert_eq!(sent(&[U, "archives"]), "archives");
    assert_eq!(sent(&[U, "archives", "--get", "a/1"]), "archives/a%2F1");
    assert_eq!(
        sent(&[U, "archives", "--get", "a1", "-o", "/tmp/x"]),
        "archives/a1"
    );
}

#[test]
fn global_options_parse_in_either_place() {
    for argv in [
        &["--version", "2", U, "streams"][..],
        &[U, "--version", "2", "streams"][..],
        &[U, "streams", "--version", "2"][..],
    ] {
        let cli =
            Cli::try_parse_from(std::iter::once("klugman").chain(argv.iter().copied())).unwrap();
        assert_eq!(cli.version, 2);
    }
    let cli = Cli::try_parse_from(["klugman", "--debug", U, "events", "--json"]).unwrap();
    assert!(cli.debug && cli.json);
    assert_eq!(cli.version, 1);
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let bad: [&[&str]; 7] = [
        &[U, "streams", "--count", "--id", "3"],
        &[U, "events", "--count", "--msg_id", "m"],
        &[U, "streams", "--state", "sleeping"],
        &[U, "--version", "3", "streams"],
        &[U, "archives", "-o", "file"],
        &[U, "streams", "--bogus"],
        &[U],
    ];
    for argv in bad {
        let mut out = Vec::new();
        let err = klugman::run(argv.iter().copied(), &mut out).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
    }
    let mut out = Vec::new();
    let err = klugman::run([U, "streams", "--traits", "nocolon"], &mut out).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("name:value"), "{err}");
}
