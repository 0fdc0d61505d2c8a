//! `stv3 replay` against `stv3 distill` on the same input (issue 17): notigen Nova
//! traffic (seed 17, 2,000 instances, 4 operations per instance and day) as JSON Lines
//! in memory; distill parses and distils every line (what `stv3 distill` does); replay
//! parses them and replays them with the sandbox configuration (`etc/`) into an
//! in-memory SQLite, `--expire` included, and builds its report. Prints both rates,
//! the ratio and where replay's time went.
//!
//! ```sh
//! cargo bench -p stv3-worker --bench replay -- [--count 200000] [--reference] [--sqlx]
//! ```
//!
//! `--sqlx` replays into sqlx's in-memory SQLite instead of the inline driver
//! `stv3 replay` uses (`store::inline`), to compare the two.
//!
//! `--reference` also times the one-at-a-time reference path (a pass before every
//! notification, one event per ingest) on the first 20,000 notifications and checks
//! that both reports are identical there.

use serde_json::Value;
use std::path::PathBuf;
use std::time::Instant;
use worker::notigen::{Generator, GeneratorOptions};
use worker::store;
use worker::winchester::config::load_config;
use worker::winchester::replay::{replay, ReplayOptions, ReplayOutcome};

/// The allocator `stv3` uses, so both rates are the command's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn run_replay(lines: &[String], reference: bool) -> (ReplayOutcome, f64) {
    let config = load_config(&root().join("etc/winchester.yaml")).expect("etc config");
    // `stv3 replay`'s default store, or the services' driver on the same database.
    let store = if std::env::args().any(|a| a == "--sqlx") {
        store::open("sqlite::memory:").await.expect("sqlite")
    } else {
        store::inline::open_memory(store::OpenOptions::default()).expect("sqlite")
    };
    store.migrate().await.expect("migrate");
    // As `stv3 replay` does with its default in-memory store.
    store
        .drop_query_indexes()
        .await
        .expect("drop query indexes");
    // Parsed as they are read (on replay's reader thread), as distil parses them.
    let lines = lines.to_vec();
    let started = Instant::now();
    let input = lines.into_iter().enumerate().map(|(i, l)| {
        let v: Value = serde_json::from_str(&l).expect("JSON line");
        (i + 1, v)
    });
    let options = ReplayOptions {
        expire: true,
        reference,
        progress: None,
    };
    let outcome = replay(&config, store, input, options)
        .await
        .expect("replay");
    (outcome, started.elapsed().as_secs_f64())
}

fn main() {
    let count: usize = arg("--count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(200_000);
    let generator = Generator::new(GeneratorOptions {
        seed: 17,
        instances: 2_000,
        operations_per_instance_per_day: 4.0,
        ..GeneratorOptions::default()
    })
    .expect("notigen options");
    let lines: Vec<String> = generator.take(count).map(|v| v.to_string()).collect();
    let bytes: usize = lines.iter().map(String::len).sum();
    println!(
        "input: {count} notigen notifications, {:.1} MB of JSON Lines",
        bytes as f64 / 1e6
    );

    // Distil: parse and distil every line, as `stv3 distill` does.
    let config = load_config(&root().join("etc/winchester.yaml")).expect("etc config");
    let distiller = config.distiller.clone().expect("a distiller");
    let now = chrono::Utc::now();
    let started = Instant::now();
    let mut kept = 0usize;
    for l in &lines {
        if distiller.distill_slice(l.as_bytes(), now).is_ok() {
            kept += 1;
        }
    }
    let distill_s = started.elapsed().as_secs_f64();
    let distill_rate = count as f64 / distill_s;
    println!("distill: {kept} events in {distill_s:.2} s: {distill_rate:.0} notifications/s");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (outcome, replay_s) = runtime.block_on(run_replay(&lines, false));
    let replay_rate = count as f64 / replay_s;
    println!(
        "replay: {} stored, {} fired, {} expired in {replay_s:.2} s: {replay_rate:.0} notifications/s ({})",
        outcome.stored, outcome.fired, outcome.expired, outcome.timings
    );
    println!(
        "ratio: replay runs at 1/{:.1} of distill's rate (goal: at least 1/6)",
        distill_rate / replay_rate
    );

    if std::env::args().any(|a| a == "--reference") {
        let first = &lines[..lines.len().min(20_000)];
        let (fast, fast_s) = runtime.block_on(run_replay(first, false));
        let (slow, slow_s) = runtime.block_on(run_replay(first, true));
        assert_eq!(fast.report, slow.report, "the reports differ");
        println!(
            "reference on the first {}: {:.0}/s one at a time, {:.0}/s batched; reports identical",
            first.len(),
            first.len() as f64 / slow_s,
            first.len() as f64 / fast_s
        );
    }
}
