//! `stv3 notigen` end to end: JSON Lines output (deterministic, distills without
//! drops), clear errors, and publishing to the real RabbitMQ
//! (`scripts/services.sh up rabbitmq`; URL from `STV3_TEST_AMQP_URL`).

use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const HINT: &str = "is RabbitMQ running? try `scripts/services.sh up rabbitmq`";

fn amqp_url() -> String {
    std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn stv3(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stv3"))
        .args(args)
        .output()
        .expect("run stv3")
}

/// A directory of this test's own (tests run in parallel and each removes its own).
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stv3-notigen-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn generate_file(path: &Path, seed: &str, count: &str) -> Output {
    let out = stv3(&[
        "notigen",
        "--seed",
        seed,
        "--start",
        "2024-05-01T18:00:00Z",
        "--instances",
        "30",
        "--count",
        count,
        "--output",
        path.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "stv3 notigen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn message_ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}"));
            v["message_id"].as_str().expect("message_id").to_string()
        })
        .collect()
}

#[test]
fn writes_json_lines_deterministically_that_distill_without_drops() {
    let dir = temp_dir("file");
    let a = dir.join("a.jsonl");
    let b = dir.join("b.jsonl");
    let c = dir.join("c.jsonl");
    let out = generate_file(&a, "11", "3000");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("3000 notifications in"),
        "summary line: {summary}"
    );
    generate_file(&b, "11", "3000");
    generate_file(&c, "12", "3000");
    let text_a = std::fs::read_to_string(&a).expect("read a");
    assert_eq!(text_a.lines().count(), 3000);
    assert_eq!(
        text_a,
        std::fs::read_to_string(&b).expect("read b"),
        "same seed, same bytes"
    );
    assert_ne!(text_a, std::fs::read_to_string(&c).expect("read c"));

    let defs = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/event_definitions.yaml");
    let distilled = stv3(&["distill", "--definitions", defs, a.to_str().expect("path")]);
    assert!(distilled.status.success());
    let events = String::from_utf8_lossy(&distilled.stdout);
    assert_eq!(events.lines().count(), 3000);
    assert!(
        !events.contains("\"dropped\""),
        "some notifications dropped"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stdout_and_simulated_duration() {
    let out = stv3(&[
        "notigen",
        "--seed",
        "5",
        "--start",
        "2024-05-01T23:00:00Z",
        "--duration",
        "7200",
        "--output",
        "-",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut last = String::new();
    let mut exists = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        let ts = v["timestamp"].as_str().expect("timestamp").to_string();
        assert!(ts >= last, "time order: {ts} after {last}");
        assert!(
            ts.as_str() < "2024-05-02 01:00:00",
            "{ts} past the duration"
        );
        if v["event_type"] == "compute.instance.exists" {
            exists += 1;
        }
        last = ts;
    }
    // Midnight fell inside the two hours: the end-of-day audit is there.
    assert!(exists >= 50, "{exists} exists");
}

#[test]
fn errors_are_clear_and_exit_1() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "notigen",
                "--count",
                "5",
                "--output",
                "/nonexistent-dir/x.jsonl",
            ],
            "cannot create output file",
        ),
        (
            &[
                "notigen",
                "--count",
                "5",
                "--amqp",
                "http://x",
                "--exchange",
                "e",
                "--queue",
                "q",
            ],
            "bad AMQP URL",
        ),
        (
            &[
                "notigen",
                "--count",
                "5",
                "--amqp",
                "amqp://guest:guest@127.0.0.1:1/%2f",
                "--exchange",
                "e",
                "--queue",
                "q",
            ],
            "cannot connect",
        ),
        (
            &["notigen", "--count", "5"],
            "say where the notifications go",
        ),
    ];
    for (args, expected) in cases {
        let out = stv3(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn publishes_to_rabbitmq_what_it_writes_to_a_file() {
    let tag = format!("stv3.test.notigen.{}", std::process::id());
    let (exchange, queue) = (format!("{tag}.x"), format!("{tag}.q"));
    let dir = temp_dir("amqp");
    let file = dir.join("amqp.jsonl");
    generate_file(&file, "77", "200");
    let expected = message_ids(&std::fs::read_to_string(&file).expect("read file"));

    let out = stv3(&[
        "notigen",
        "--seed",
        "77",
        "--start",
        "2024-05-01T18:00:00Z",
        "--instances",
        "30",
        "--count",
        "200",
        "--amqp",
        &amqp_url(),
        "--exchange",
        &exchange,
        "--queue",
        &queue,
    ]);
    assert!(
        out.status.success(),
        "stv3 notigen --amqp failed ({HINT}): {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let conn = tokio::time::timeout(
        Duration::from_secs(15),
        Connection::connect(&amqp_url(), ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("timed out connecting to RabbitMQ; {HINT}"))
    .unwrap_or_else(|e| panic!("cannot connect to RabbitMQ ({e}); {HINT}"));
    let channel = conn.create_channel().await.expect("channel");
    let mut got = Vec::new();
    let mut idle = 0;
    while got.len() < expected.len() && idle < 50 {
        match channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")
        {
            Some(msg) => {
                let props = &msg.delivery.properties;
                assert_eq!(
                    props.content_type().as_ref().map(|s| s.as_str()),
                    Some("application/json")
                );
                assert_eq!(*props.delivery_mode(), Some(2));
                assert_eq!(msg.delivery.routing_key.as_str(), queue.as_str());
                let v: Value = serde_json::from_slice(&msg.delivery.data).expect("JSON body");
                got.push(v["message_id"].as_str().expect("message_id").to_string());
            }
            None => {
                idle += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(got.len(), 200);
    assert_eq!(got, expected, "same notifications, same order");
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 200);
}
