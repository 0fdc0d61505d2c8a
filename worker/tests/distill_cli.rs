//! `stv3 distill` end to end: the sample through the binary matches the original's
//! output, bad lines give a clear `dropped` reason without stopping the run, and a
//! bad definitions file or missing input exits non-zero with the reason on stderr.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn stv3(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stv3");
    // stv3 may exit (bad definitions) before reading: a broken pipe is fine here.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("wait stv3")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("output line {l:?}: {e}")))
        .collect()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stv3-distill-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

#[test]
fn sample_through_cli_matches_expected() {
    let defs = data("event_definitions.yaml");
    let input = data("notifications-sample.jsonl");
    let out = stv3(
        &[
            "distill",
            "--definitions",
            defs.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    let want: Vec<Value> = std::fs::read_to_string(data("notifications-sample.distilled.jsonl"))
        .expect("expected file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("expected line"))
        .collect();
    assert_eq!(got.len(), want.len());
    // The sample has no floats and its datetimes print in the same form, so the
    // JSON is equal as data (distill_sample.rs compares with tolerances).
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
}

#[test]
fn bad_lines_are_reported_and_the_rest_processed() {
    let defs = data("event_definitions.yaml");
    let sample = std::fs::read_to_string(data("notifications-sample.jsonl")).expect("sample");
    let first = sample.lines().next().expect("a sample line");
    let stdin =
        format!("{first}\n{{not json\n\n{{\"message_id\": \"m-2\", \"payload\": {{}}}}\n{first}\n");
    let out = stv3(
        &["distill", "--definitions", defs.to_str().unwrap(), "-"],
        &stdin,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(got.len(), 4, "one output line per non-empty input line");
    assert_eq!(got[0]["event_type"], "compute.instance.update");
    let bad = got[1]["dropped"].as_str().expect("dropped reason");
    assert!(bad.starts_with("line 2: invalid JSON: "), "{bad}");
    assert_eq!(got[2]["dropped"], "missing event_type");
    assert_eq!(got[3], got[0]);
}

#[test]
fn catch_all_flag() {
    let defs = data("event_definitions.yaml");
    let n = r#"{"event_type": "image.upload", "message_id": "m-9", "publisher_id": "glance.host", "timestamp": "2015-02-27 00:10:00"}"#;
    let out = stv3(&["distill", "-d", defs.to_str().unwrap()], n);
    let got = lines(&out);
    assert!(got[0]["dropped"]
        .as_str()
        .unwrap_or("")
        .contains("no matching definition"));
    let out = stv3(&["distill", "-d", defs.to_str().unwrap(), "--catch-all"], n);
    let got = lines(&out);
    assert_eq!(got[0]["event_type"], "image.upload");
    assert_eq!(got[0]["timestamp"], "2015-02-27T00:10:00Z");
    assert_eq!(got[0]["traits"]["service"]["value"], "glance.host");
}

#[test]
fn bad_definitions_fail_with_the_reason() {
    let cases = [
        (
            "bad_path.yaml",
            "- event_type: compute.*\n  traits:\n    host: {fields: 'payload.host & payload.h'}\n",
            &["bad_path.yaml:3: ", "definition 0", "trait 'host'", "'&'", "never"][..],
        ),
        (
            "bad_plugin.yaml",
            "- event_type: compute.*\n  traits:\n    host: {fields: publisher_id, plugin: splitter}\n",
            &["definition 0", "trait 'host'", "no plugin named 'splitter'"][..],
        ),
        (
            "bad_yaml.yaml",
            "- event_type: compute.*\n  traits: [\n",
            &["invalid YAML", "line 2"][..],
        ),
    ];
    for (name, yaml, wants) in cases {
        let p = temp_file(name, yaml);
        let out = stv3(&["distill", "-d", p.to_str().unwrap()], "{}\n");
        assert!(!out.status.success(), "{name} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{err}");
        for want in wants {
            assert!(err.contains(want), "{name}: {err} should contain {want}");
        }
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn unreadable_input_fails() {
    let defs = data("event_definitions.yaml");
    let out = stv3(
        &[
            "distill",
            "-d",
            defs.to_str().unwrap(),
            "/nonexistent/input.jsonl",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/input.jsonl"));
}

/// Definitions the original loaded with things it ignored: distilled, and each
/// warning on stderr with the file and line.
#[test]
fn lenient_definitions_distill_with_warnings() {
    let p = temp_file(
        "lenient.yaml",
        "- event_type: compute.*\n  traits:\n    ip: {fields: 'payload..address', note: x}\n",
    );
    let out = stv3(
        &["distill", "-d", p.to_str().unwrap()],
        "{\"event_type\":\"compute.a\",\"message_id\":\"m\",\"payload\":{\"ips\":[{\"address\":\"10.0.0.9\"}]}}\n",
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings.iter().all(|w| w.contains("lenient.yaml:3: ")),
        "{err}"
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one event");
    assert_eq!(got["traits"]["ip"]["value"], "10.0.0.9");
}
