//! Every metric the alert rules and the Grafana dashboard name is one the processes
//! export: the same registries yagi-event, pipeline-worker and the operator serve on
//! `/metrics`, encoded as they are served. A renamed metric would otherwise leave an
//! alert that can never fire. (promtool checks the rules' syntax and behaviour:
//! `./build.sh -t` runs `promtool test rules e2e/promtool/alerts_test.yaml`.)
#![cfg(feature = "config-check")]

use std::collections::BTreeSet;

use prometheus_client::registry::Registry;

fn workspace_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample names the processes export: each `# TYPE` of their registries, with
/// the suffixes its samples carry.
fn exported() -> BTreeSet<String> {
    use worker::winchester::worker::{KindLabels, StreamLabels, WorkerMetrics};
    use worker::yagi::metrics::{queue_label, reason_labels, YagiMetrics};
    let mut registry = Registry::default();
    // A family shows on /metrics once it has a series: give each one, as a little
    // traffic does in the processes.
    let yagi = YagiMetrics::new();
    yagi.register(&mut registry);
    let q = queue_label("notifications.info");
    for f in [
        &yagi.received,
        &yagi.stored,
        &yagi.duplicates,
        &yagi.batches,
        &yagi.reconnects,
        &yagi.retries,
    ] {
        f.get_or_create(&q).inc();
    }
    yagi.dead_lettered
        .get_or_create(&reason_labels("notifications.info", "undistillable"))
        .inc();
    yagi.batch_seconds.get_or_create(&q).observe(0.01);
    yagi.dead_letter_depth.get_or_create(&q).set(0);
    let workers = WorkerMetrics::new();
    workers.register(&mut registry);
    let kind = KindLabels {
        kind: "fire".into(),
    };
    workers
        .streams
        .get_or_create(&StreamLabels {
            kind: "fire".into(),
            result: "error".into(),
        })
        .inc();
    workers.pipeline_seconds.get_or_create(&kind).observe(0.1);
    workers.ready_streams.get_or_create(&kind).set(1);
    let op = operator::observe::Metrics::register(&mut registry);
    op.record(std::time::Duration::from_millis(5), Some("kube"));
    let status: operator::crd::StackTachRegionStatus = serde_json::from_value(serde_json::json!({
        "conditions": [{ "type": "Ready", "status": "True", "reason": "AllReady", "message": "",
                         "lastTransitionTime": "2026-01-01T00:00:00Z" }]
    }))
    .unwrap();
    op.set_region("ns", "r", &status);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() != Some("#") || parts.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    names
}

/// The metric names used in `text`: identifiers of the project's prefixes.
fn used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = ["yagi_", "stv3_"].iter().any(|p| rest.starts_with(p))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_string());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn every_metric_in_the_alerts_and_the_dashboard_is_exported() {
    let exported = exported();
    assert!(
        exported.contains("yagi_events_stored_total")
            && exported.contains("stv3_pipeline_ready_streams")
            && exported.contains("stv3_operator_region_condition"),
        "the registries: {exported:?}"
    );
    for file in [
        "charts/stacktach-operator/files/alerts.yaml",
        "charts/stacktach-operator/files/dashboard.json",
    ] {
        let names = used(&workspace_file(file));
        assert!(names.len() >= 5, "{file}: only {names:?}");
        let missing: Vec<&String> = names.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics nobody exports: {missing:?}"
        );
    }
}

#[test]
fn a_misspelt_metric_would_be_caught() {
    let names = used("rate(yagi_events_stord_total[5m]) > stv3_pipeline_ready_streams");
    assert!(names.contains("yagi_events_stord_total"));
    assert!(!exported().contains("yagi_events_stord_total"));
}
