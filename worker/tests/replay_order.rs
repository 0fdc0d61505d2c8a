//! `stv3 replay` runs the workers before each notification (the original's order):
//! with winchester's own kind of trigger (expiring at `$last + 1h`, fired mid-stream by
//! a `compute.instance.exists`), the notification right after the `.exists` starts the
//! next stream instead of joining the one that became ready.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use worker::store;
use worker::winchester::config::load_config;
use worker::winchester::replay::{replay, ReplayOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The sandbox's definitions with a trigger fired mid-stream by an event.
fn config_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stv3-replay-order-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "event_definitions.yaml",
        "pipelines.yaml",
        "winchester.yaml",
    ] {
        std::fs::copy(root().join("etc").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("triggers.yaml"),
        r#"---
- name: mid_day
  distinguished_by:
  - instance_id
  expiration: "$last + 1h"
  fire_pipeline: test_fire_pipeline
  expire_pipeline: test_expire_pipeline
  match_criteria:
  - event_type:
    - compute.instance.*
    # The usage handler's own output (.exists.verified / .failed) stays out: a
    # stream of it would expire at once and emit more of it, without end.
    - "!compute.instance.exists.*"
  fire_criteria:
  - event_type: compute.instance.exists
"#,
    )
    .unwrap();
    dir
}

fn notification(id: &str, event_type: &str, at: &str) -> Value {
    json!({
        "event_type": event_type,
        "message_id": id,
        "timestamp": at,
        "publisher_id": "compute.host-1",
        "_context_request_id": format!("req-{id}"),
        "payload": {
            "instance_id": "i-1",
            "tenant_id": "t-1",
            "audit_period_beginning": "2015-02-27 00:00:00",
            "audit_period_ending": "2015-02-28 00:00:00",
        },
    })
}

/// How many streams fired, and each stream's events from the input (not the usage
/// handler's, which join streams too).
async fn streams_of(dir: &Path, input: Vec<Value>) -> (u64, Vec<Vec<String>>) {
    let config = load_config(&dir.join("winchester.yaml")).expect("config loads");
    let store = store::inline::open_memory(store::OpenOptions::default()).unwrap();
    store.migrate().await.unwrap();
    let outcome = replay(
        &config,
        store,
        input.into_iter().enumerate().map(|(i, n)| (i + 1, n)),
        ReplayOptions::default(),
    )
    .await
    .expect("replay");
    let streams = outcome.report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .filter(|id| id.len() == 1)
                .collect()
        })
        .collect();
    (outcome.fired, streams)
}

#[tokio::test]
async fn the_notification_after_a_stream_became_ready_starts_the_next_one() {
    let dir = config_dir();
    let input = vec![
        notification("a", "compute.instance.update", "2015-02-27 10:00:00.000000"),
        notification("b", "compute.instance.exists", "2015-02-27 10:05:00.000000"),
        // A second later: live, the workers fired the stream in between.
        notification("c", "compute.instance.update", "2015-02-27 10:05:01.000000"),
    ];
    let (fired, streams) = streams_of(&dir, input).await;
    assert_eq!(fired, 1, "the .exists fires its stream");
    assert_eq!(
        streams,
        vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["c".to_string()]
        ],
        "c starts a new stream"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_notification_of_the_same_instant_still_joins() {
    // A claim takes what is due strictly before the clock: a notification carrying
    // the .exists's own timestamp arrives before any worker could run the stream.
    let dir = config_dir();
    let input = vec![
        notification("a", "compute.instance.update", "2015-02-27 10:00:00.000000"),
        notification("b", "compute.instance.exists", "2015-02-27 10:05:00.000000"),
        notification("c", "compute.instance.update", "2015-02-27 10:05:00.000000"),
    ];
    let (fired, streams) = streams_of(&dir, input).await;
    assert_eq!(
        streams,
        vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]
    );
    assert_eq!(fired, 0, "ready at the last instant: a later poll fires it");
    let _ = std::fs::remove_dir_all(dir);
}

/// Replays `input` with `config` both ways, `--expire` or not: the batched default
/// (into the inline in-memory store `stv3 replay` uses) and the one-at-a-time
/// reference (into sqlx's, the services' driver); the reports must be identical.
async fn same_report_both_ways(config: &Path, input: &[Value]) -> usize {
    let config = load_config(config).expect("config loads");
    let mut streams = 0;
    for expire in [false, true] {
        let mut reports = Vec::new();
        for reference in [false, true] {
            let store = if reference {
                store::open("sqlite::memory:").await.unwrap()
            } else {
                store::inline::open_memory(store::OpenOptions::default()).unwrap()
            };
            store.migrate().await.unwrap();
            let options = ReplayOptions {
                expire,
                reference,
                progress: None,
            };
            // Owned: replay reads its input on a thread of its own.
            let owned: Vec<Value> = input.to_vec();
            let outcome = replay(
                &config,
                store,
                owned.into_iter().enumerate().map(|(i, n)| (i + 1, n)),
                options,
            )
            .await
            .expect("replay");
            if !reference {
                assert!(
                    outcome.timings.batches < outcome.notifications || input.len() < 10,
                    "batched: {} ingests for {} notifications",
                    outcome.timings.batches,
                    outcome.notifications
                );
            }
            reports.push(outcome.report);
        }
        assert_eq!(
            reports[0], reports[1],
            "expire: {expire}: batched and reference differ"
        );
        streams = reports[0]["streams"].as_array().map_or(0, Vec::len);
    }
    streams
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("input")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Two simulated days of a 6-instance notigen region (a few hundred notifications:
/// the reference is slow in a debug build; the bench compares 20,000, `--reference`):
/// streams fire mid-replay
/// (the sandbox's at midnight's `.exists`, the mid-day trigger on any `.exists`) and
/// expire, so the batches are cut where they must be.
fn notigen_days() -> Vec<Value> {
    use worker::notigen::{Generator, GeneratorOptions};
    let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2015, 2, 27, 0, 0, 0).unwrap();
    Generator::new(GeneratorOptions {
        seed: 9,
        instances: 6,
        tenants: 3,
        start,
        end: Some(start + chrono::Duration::days(2)),
        operations_per_instance_per_day: 6.0,
        exists_on_operations: true,
        ..GeneratorOptions::default()
    })
    .expect("notigen options")
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_replay_reports_what_the_reference_does() {
    let sandbox = root().join("etc/winchester.yaml");
    for sample in [
        root().join("etc/sample-notifications.jsonl"),
        root().join("worker/tests/data/notifications-sample.jsonl"),
    ] {
        assert!(same_report_both_ways(&sandbox, &jsonl(&sample)).await > 0);
    }
    let traffic = notigen_days();
    assert!(traffic.len() > 300, "{} notifications", traffic.len());
    assert!(same_report_both_ways(&sandbox, &traffic).await > 6);
    let dir = config_dir();
    assert!(same_report_both_ways(&dir.join("winchester.yaml"), &traffic).await > 6);
    let _ = std::fs::remove_dir_all(dir);
}

/// The input is read on a thread of its own: if reading fails part way (here the
/// iterator panics, as a reader of a broken archive might), the replay says so
/// instead of reporting on the part it got.
#[tokio::test]
async fn a_reader_that_stops_early_fails_the_replay() {
    let config = load_config(&root().join("etc/winchester.yaml")).expect("config loads");
    let store = store::inline::open_memory(store::OpenOptions::default()).unwrap();
    store.migrate().await.unwrap();
    let input = jsonl(&root().join("worker/tests/data/notifications-sample.jsonl"));
    assert!(input.len() > 10);
    let failing = input.into_iter().enumerate().map(|(i, n)| {
        assert!(i < 10, "the archive is damaged after record 10");
        (i + 1, n)
    });
    let err = replay(&config, store, failing, ReplayOptions::default())
        .await
        .expect_err("a reader that stopped must fail the replay");
    assert!(err.to_string().contains("reader"), "{err}");
}
