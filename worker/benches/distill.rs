//! Distiller throughput on a realistic Nova mix (the 40-notification sample, lines of
//! 2.2–5 KB) with the shared `event_definitions.yaml`.
//!
//! - `distill/parse_only`: `serde_json` parse of the bytes into a `Value` (the floor);
//! - `distill/parse_distill`: the same parse plus distilling, same input, same run;
//! - `jsonpath/*`: the field-path evaluation alone, for every trait path of the
//!   definitions over every parsed notification: the compiled step walk used by the
//!   distiller versus the same paths translated to RFC 9535 and run by
//!   `serde_json_path` (first non-null match in union order).
//!
//! Run: `cargo bench -p stv3-worker --bench distill`.

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;
use std::hint::black_box;
use std::time::Duration;
use worker::distiller::{Distiller, FieldPath};

fn data(name: &str) -> String {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn sample() -> Vec<Vec<u8>> {
    data("notifications-sample.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

/// Every trait's `fields` in the definitions file, compiled both ways.
fn trait_paths(yaml: &str) -> Vec<(FieldPath, Vec<serde_json_path::JsonPath>)> {
    let doc: Value = serde_saphyr::from_str(yaml).expect("yaml");
    let mut out = Vec::new();
    for def in doc.as_array().expect("list") {
        for cfg in def["traits"].as_object().expect("traits").values() {
            let fp = match &cfg["fields"] {
                Value::String(s) => FieldPath::parse(s),
                Value::Array(list) => {
                    let specs: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                    FieldPath::parse_list(&specs)
                }
                other => panic!("fields {other}"),
            }
            .expect("path");
            let rfc = fp
                .to_rfc9535()
                .expect("the shipped definitions use plain paths")
                .iter()
                .map(|q| serde_json_path::JsonPath::parse(q).expect("rfc 9535"))
                .collect();
            out.push((fp, rfc));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let lines = sample();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let yaml = data("event_definitions.yaml");
    let distiller = Distiller::from_yaml(&yaml, "event_definitions.yaml").expect("definitions");
    let now: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000, 0).expect("clock");
    eprintln!(
        "sample: {} notifications, {} bytes, mean {} bytes",
        lines.len(),
        bytes,
        bytes / lines.len()
    );

    let mut g = c.benchmark_group("distill");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_only", |b| {
        b.iter(|| {
            for l in &lines {
                let v: Value = serde_json::from_slice(black_box(l)).expect("json");
                black_box(v);
            }
        })
    });
    g.bench_function("parse_distill", |b| {
        b.iter(|| {
            for l in &lines {
                let e = distiller.distill_slice(black_box(l), now);
                black_box(e.is_ok());
            }
        })
    });
    g.finish();

    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect();
    let paths = trait_paths(&yaml);
    let mut g = c.benchmark_group("jsonpath");
    g.throughput(Throughput::Elements(parsed.len() as u64));
    g.bench_function("step_walk", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for n in &parsed {
                for (fp, _) in &paths {
                    found += usize::from(fp.first(black_box(n)).is_some());
                }
            }
            found
        })
    });
    g.bench_function("serde_json_path", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for n in &parsed {
                for (_, rfc) in &paths {
                    let hit = rfc.iter().find_map(|p| {
                        p.query_located(black_box(n))
                            .into_iter()
                            .find(|m| !m.node().is_null())
                            .map(|m| m.node())
                    });
                    found += usize::from(hit.is_some());
                }
            }
            found
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
