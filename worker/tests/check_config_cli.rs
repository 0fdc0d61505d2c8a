//! `stv3 check-config` end to end: the sandbox configuration sets pass; each bad set
//! fails with exit 1 and messages naming the file, the trigger (or setting) and the
//! reason; several problems are all reported in one run.

use std::path::PathBuf;
use std::process::{Command, Output};

fn config(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(rel)
}

fn check(path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stv3"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run stv3")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a bad set and returns its stderr, checking the exit code.
fn fails(rel: &str) -> String {
    let out = check(&config(rel));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{rel}: {err}");
    assert!(stdout(&out).is_empty(), "{rel}: {}", stdout(&out));
    err
}

fn has(err: &str, needles: &[&str]) {
    assert!(
        err.lines().any(|l| needles.iter().all(|n| l.contains(n))),
        "no line with {needles:?} in:\n{err}"
    );
}

#[test]
fn sandbox_sets_pass() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut sets = vec![
        root.join("../etc/winchester.yaml"),
        config("good/winchester.yaml"),
    ];
    let shared = root.join("../../shared/spec/configs/winchester.yaml");
    if shared.exists() {
        sets.push(shared);
    }
    for set in sets {
        let out = check(&set);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            set.display(),
            stderr(&out)
        );
        let text = stdout(&out);
        assert!(
            text.starts_with("OK: ")
                && text.contains(" event definitions, 1 triggers, 2 pipelines"),
            "{}: {text}",
            set.display()
        );
    }
    let out = check(&config("good/winchester.yaml"));
    assert_eq!(
        stdout(&out).trim(),
        "OK: 6 event definitions, 1 triggers, 2 pipelines"
    );
}

#[test]
fn shared_original_set_warns_about_ignored_settings() {
    let shared =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/configs/winchester.yaml");
    if !shared.exists() {
        return;
    }
    let out = check(&shared);
    let err = stderr(&out);
    has(&err, &["warning:", "logging_config", "ignored"]);
    assert!(
        !err.contains("testpasswd"),
        "the database password leaked: {err}"
    );
}

#[test]
fn unknown_pipeline() {
    let err = fails("bad/winchester-unknown-pipeline.yaml");
    has(
        &err,
        &[
            "triggers-unknown-pipeline.yaml:6:",
            "trigger 'usage_trigger'",
            "expire_pipeline 'no_such_pipeline' is not defined",
        ],
    );
}

#[test]
fn bad_timex_with_position() {
    let err = fails("bad/winchester-bad-timex.yaml");
    has(
        &err,
        &[
            "triggers-bad-timex.yaml:4:",
            "trigger 'usage_trigger'",
            "expiration: invalid timex expression '$last + 1d +'",
            "column 13",
        ],
    );
}

#[test]
fn unknown_handler_class() {
    let err = fails("bad/winchester-unknown-handler.yaml");
    has(
        &err,
        &[
            "winchester-unknown-handler.yaml",
            "pipeline_handlers/atom",
            "unknown handler class 'winchester.pipeline_handler:AtomPubHandler'",
        ],
    );
}

#[test]
fn missing_expiration() {
    let err = fails("bad/winchester-missing-expiration.yaml");
    has(
        &err,
        &[
            "triggers-missing-expiration.yaml:1:",
            "trigger 'usage_trigger'",
            "required field 'expiration' is missing",
        ],
    );
}

#[test]
fn bad_int_operator() {
    let err = fails("bad/winchester-bad-operator.yaml");
    has(
        &err,
        &[
            "triggers-bad-operator.yaml:13:",
            "trigger 'usage_trigger'",
            "fire_criteria[0].traits.memory_mb",
            "unknown operator '>>'",
        ],
    );
}

#[test]
fn yaml_syntax_error_with_line() {
    let err = fails("bad/winchester-syntax-error.yaml");
    has(
        &err,
        &["triggers-syntax-error.yaml:", "invalid YAML syntax", "line"],
    );
    let line = err
        .lines()
        .find(|l| l.contains("invalid YAML syntax"))
        .unwrap_or_default()
        .to_string();
    let after = line
        .split("triggers-syntax-error.yaml:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        after
            .split(':')
            .next()
            .is_some_and(|n| n.parse::<usize>().is_ok()),
        "no line number in {line}"
    );
}

#[test]
fn every_problem_in_one_run() {
    let err = fails("bad/winchester-many.yaml");
    has(
        &err,
        &[
            "pipeline_handlers/custom",
            "unknown handler class 'mycompany.handlers:AuditHandler'",
        ],
    );
    has(
        &err,
        &[
            "triggers-many.yaml:6:",
            "trigger 'first_trigger'",
            "no_such_pipeline",
        ],
    );
    has(
        &err,
        &[
            "triggers-many.yaml:11:",
            "trigger 'second_trigger'",
            "'expiration' is missing",
        ],
    );
    has(
        &err,
        &[
            "triggers-many.yaml:23:",
            "trigger 'third_trigger'",
            "invalid timex expression 'day($last'",
        ],
    );
    has(
        &err,
        &[
            "triggers-many.yaml:31:",
            "trigger 'third_trigger'",
            "unknown operator '~'",
        ],
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        5,
        "{err}"
    );
    assert!(err.contains("5 problems found"), "{err}");
}

#[test]
fn missing_file() {
    let out = check(&config("bad/nope.yaml"));
    assert_eq!(out.status.code(), Some(1));
    has(&stderr(&out), &["nope.yaml", "cannot read"]);
}

/// Definitions the original loaded (`..`, a `|` inside a path, an unknown plugin
/// parameter) load here too, with one warning each naming the file, the line and
/// the meaning; `--strict` refuses them with the same lines.
#[test]
fn lenient_definitions_warn_and_strict_refuses() {
    let set = config("lenient/winchester.yaml");
    let out = check(&set);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        stdout(&out).trim(),
        "OK: 1 event definitions, 1 triggers, 2 pipelines (3 warnings)"
    );
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 3, "{err}");
    let defs = "event_definitions.yaml";
    has(
        &err,
        &[
            "warning: ",
            defs,
            ":8: ",
            "trait 'address'",
            "payload..address",
            "any depth",
        ],
    );
    has(
        &err,
        &[
            "warning: ",
            defs,
            ":11: ",
            "trait 'state'",
            "payload.(state|payload).old_state",
            "[payload.state, payload.old_state]",
        ],
    );
    has(
        &err,
        &[
            "warning: ",
            defs,
            ":18: ",
            "trait 'host'",
            "'maxsplit' ignored",
        ],
    );

    let strict = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .args(["check-config", "--strict"])
        .arg(&set)
        .output()
        .expect("run stv3");
    let strict_err = stderr(&strict);
    assert_eq!(strict.status.code(), Some(1), "{strict_err}");
    assert!(stdout(&strict).is_empty());
    let strict_warnings: Vec<&str> = strict_err
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(strict_warnings, warnings);
    has(&strict_err, &["3 warnings refused by --strict"]);
}
