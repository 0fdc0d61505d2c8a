//! Field paths against jsonpath-rw 1.4.0 itself: `tests/data/jsonpath/jsonpath_rw.json`
//! holds what the original library made of each path over one document (produced
//! by running it: `tests/data/jsonpath/generate.py`). For every path:
//! - the original refused it → we refuse it (except `&`, which it parsed but could
//!   never evaluate; we refuse that at load too, by name);
//! - the original matched → we give the same non-null matches, in the same order,
//!   with the same paths (what plugins see) and values;
//! - the original raised while matching (the notification was lost) → we must not
//!   panic, and what we match must be a subset of what a sane reading gives.

use serde_json::Value;
use worker::distiller::FieldPath;

#[test]
fn field_paths_match_jsonpath_rw() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/jsonpath/jsonpath_rw.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let data: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc = &data["document"];
    let cases = data["cases"].as_array().expect("cases");
    assert!(cases.len() > 50, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let spec = case["path"].as_str().expect("path");
        let parsed = FieldPath::parse(spec);
        if let Some(err) = case.get("error") {
            if let Ok(p) = parsed {
                failures.push(format!(
                    "{spec:?}: jsonpath-rw refused it ({err}), we read {p}"
                ));
            }
            continue;
        }
        if let Some(crash) = case.get("crash") {
            let refused_intersection = crash
                .as_str()
                .is_some_and(|c| c.starts_with("NotImplemented"));
            match parsed {
                Err(e) if refused_intersection && e.contains("'&'") => {}
                Err(e) => failures.push(format!("{spec:?}: refused ({e}); jsonpath-rw parsed it")),
                Ok(p) => {
                    // Must not panic; the result is ours to choose.
                    let _ = p.find_all(doc);
                    let _ = p.first(doc);
                }
            }
            continue;
        }
        let p = match parsed {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!(
                    "{spec:?}: refused ({e}); jsonpath-rw read {}",
                    case["parsed"]
                ));
                continue;
            }
        };
        let got: Vec<Value> = p
            .find_all(doc)
            .into_iter()
            .map(|(path, v)| serde_json::json!([path, v.into_owned()]))
            .collect();
        let want = case["matches"].as_array().cloned().unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{spec:?} (read as {p}): got {got:?}, jsonpath-rw {want:?}"
            ));
        }
        let first = p.first(doc).map(|v| v.into_owned());
        if first.as_ref() != want.first().map(|m| &m[1]) {
            failures.push(format!(
                "{spec:?}: first {first:?}, jsonpath-rw {:?}",
                want.first()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} paths differ from jsonpath-rw:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
