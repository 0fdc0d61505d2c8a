//! Where the behaviour reference's test vectors are read from.
//!
//! The reference lives next to the project (`../shared/spec/vectors`, or wherever
//! `STV3_SPEC_DIR` points); when it is there, the tests read it directly, so a case
//! added to it is run without anyone copying it. A clone without it (a CI machine)
//! falls back to the copy in `tests/data/spec`, and `vendored_copy_is_current`
//! fails whenever that copy and the reference differ, so the copy cannot go stale
//! unnoticed on a machine that has both.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

/// The reference's `vectors` directory, if this machine has it.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("STV3_SPEC_DIR") {
        Some(d) => PathBuf::from(d).join("vectors"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/spec/vectors"
        )),
    };
    dir.is_dir().then_some(dir)
}

/// The project's copy of the vectors.
pub fn vendored_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/spec"))
}

/// Every case of one vector file (`distiller.json`, …) and the path it came from.
pub fn cases(file: &str) -> (PathBuf, Vec<Value>) {
    let path = reference_dir()
        .map(|d| d.join(file))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| vendored_dir().join(file));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let cases: Vec<Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    assert!(!cases.is_empty(), "{} has no cases", path.display());
    (path, cases)
}

/// Fails when the reference is present and the vendored copy of `file` differs.
pub fn assert_vendored_current(file: &str) {
    let Some(reference) = reference_dir() else {
        eprintln!("no reference vectors on this machine; using tests/data/spec");
        return;
    };
    let theirs = std::fs::read(reference.join(file)).unwrap_or_default();
    let ours = std::fs::read(vendored_dir().join(file)).unwrap_or_default();
    assert!(
        theirs == ours,
        "tests/data/spec/{file} differs from {}: copy it (cp {}/{file} worker/tests/data/spec/)",
        reference.display(),
        reference.display()
    );
}
