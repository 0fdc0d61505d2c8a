//! Runs the built `stv3 timex` for its output format and error reporting.

use chrono::{DateTime, Utc};
use std::process::{Command, Output};

fn stv3(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stv3"))
        .arg("timex")
        .args(args)
        .output()
        .expect("running stv3")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn prints_a_timestamp() {
    let out = stv3(&["$last + 2d", "--var", "last=2015-02-27T15:27:18.603932Z"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"timestamp\":\"2015-03-01T15:27:18.603932Z\"}\n"
    );
}

#[test]
fn prints_a_range_without_zero_microseconds() {
    let out = stv3(&["day", "--var", "timestamp=2014-08-01T01:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"range\":{\"begin\":\"2014-08-01T00:00:00Z\",\"end\":\"2014-08-02T00:00:00Z\"}}\n"
    );
}

#[test]
fn several_variables_and_offsets_are_converted_to_utc() {
    let out = stv3(&[
        "$a to $b + 1h",
        "--var",
        "a=2015-01-31T12:00:00+02:00",
        "--var",
        "$b=2015-01-31T12:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"range\":{\"begin\":\"2015-01-31T10:00:00Z\",\"end\":\"2015-01-31T13:00:00Z\"}}\n"
    );
}

#[test]
fn timestamp_defaults_to_now() {
    let before = Utc::now();
    let out = stv3(&["hour"]);
    let after = Utc::now();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON output");
    let field = |name: &str| {
        DateTime::parse_from_rfc3339(json["range"][name].as_str().expect("datetime string"))
            .expect("RFC 3339")
            .with_timezone(&Utc)
    };
    let (begin, end) = (field("begin"), field("end"));
    assert!(begin <= before && after < end + chrono::TimeDelta::hours(1));
    assert_eq!(end - begin, chrono::TimeDelta::hours(1));
}

#[test]
fn parse_errors_show_the_position() {
    let out = stv3(&["$timestamp +"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with("stv3 timex: syntax error at column 13: expected a duration"),
        "{err}"
    );
    assert!(
        err.contains("\n  $timestamp +\n              ^\n"),
        "{err:?}"
    );
}

#[test]
fn lexer_errors_show_the_character() {
    let out = stv3(&["$timestamp + 1.5d"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("stv3 timex: unexpected character '.' at column 15"),
        "{err}"
    );
}

#[test]
fn unknown_variables_are_errors() {
    let out = stv3(&["$missing + 1d", "--var", "timestamp=2015-01-31T12:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "stv3 timex: unknown variable $missing\n");
}

#[test]
fn impossible_dates_are_errors() {
    let out = stv3(&["$t @ 2mo 30d", "--var", "t=2016-02-29T23:59:59.999999Z"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("stv3 timex: invalid date arithmetic: cannot set day to 30"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_var_values_are_usage_errors() {
    for bad in [
        "t",
        "t=yesterday",
        "1t=2015-01-31T12:00:00Z",
        "=2015-01-31T12:00:00Z",
    ] {
        let out = stv3(&["$t", "--var", bad]);
        assert_eq!(out.status.code(), Some(2), "--var {bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--var"),
            "--var {bad}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "");
    }
}
