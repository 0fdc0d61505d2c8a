//! The Helm chart ships the same CRD as `crds/` (Helm installs a chart's `crds/` as is).

use operator::CRD_FILE;
use std::path::PathBuf;

/// The chart's copy of the CRD, relative to the workspace root.
const CHART_CRD_FILE: &str = "charts/stacktach-operator/crds/stacktach.io_stacktachregions.yaml";

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn chart_crd_is_identical_to_crds() {
    assert!(
        read(CHART_CRD_FILE) == read(CRD_FILE),
        "{CHART_CRD_FILE} differs from {CRD_FILE}; copy it:\n  cp {CRD_FILE} {CHART_CRD_FILE}"
    );
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart = read("charts/stacktach-operator/Chart.yaml");
    let want = format!("appVersion: \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        chart.lines().any(|l| l.trim() == want),
        "charts/stacktach-operator/Chart.yaml has no `{want}`"
    );
}
