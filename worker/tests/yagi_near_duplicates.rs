//! Near-duplicate and hostile message ids never block a queue (real RabbitMQ and
//! MariaDB): `"X"` and `"X "` in one batch, `"Y"` and `"Y "` in two batches, a
//! message_id with a NUL byte, a 300-character message_id and a body that is not
//! UTF-8, among ordinary notifications. Each is stored (the ids differ) or
//! dead-lettered with its reason, and everything behind them is stored.

mod yagi_support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use yagi_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_duplicate_ids_never_block_the_queue() {
    let env = Env::new("ids", 10).await;
    let notes = notifications(11, 120);
    let keep = expected_ids(&env.winchester_yaml, &notes);
    // Only distillable notifications, so every one is either stored or refused for
    // its id alone.
    let mut good: Vec<Value> = notes
        .into_iter()
        .filter(|n| n["message_id"].as_str().is_some_and(|id| keep.contains(id)))
        .collect();
    assert!(good.len() >= 60, "{} distillable", good.len());
    let with_id = |n: &Value, id: &str| {
        let mut n = n.clone();
        n["message_id"] = Value::String(id.to_string());
        n
    };
    let long_id = "L".repeat(300);
    let special = [
        (2, "near-dup-X"),
        (3, "near-dup-X "),
        (12, "near-dup-Y"),
        (27, "near-dup-Y "),
        (33, "with-nul-\u{0}-byte"),
        (41, long_id.as_str()),
    ];
    for (at, id) in special {
        good[at] = with_id(&good[at], id);
    }
    let mut bodies: Vec<Vec<u8>> = good
        .iter()
        .map(|n| serde_json::to_vec(n).expect("JSON"))
        .collect();
    // Not UTF-8: a Latin-1 byte inside a string.
    let mut latin1 = serde_json::to_vec(&with_id(&good[50], "latin-1-payload")).expect("JSON");
    let at = latin1
        .windows(13)
        .position(|w| w == b"\"event_type\":")
        .expect("event_type key");
    latin1.splice(at + 14..at + 14, [0xe9]);
    bodies[50] = latin1;

    let expect_stored: BTreeSet<String> = good
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 41 && *i != 50)
        .map(|(_, n)| n["message_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(expect_stored.len(), good.len() - 2, "distinct ids");

    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    broker.publish_bodies(&env, &bodies).await;
    let mut child = env.spawn_worker(0);

    let total = expect_stored.len() as u64;
    let started = Instant::now();
    while env.stored_count().await < total {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} of {total} stored: the queue is blocked\n{}",
            env.stored_count().await,
            env.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.depth(&env.queue).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(broker.depth(&env.queue).await, 0, "queue not drained");
    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");

    let ids = env.stored_ids().await;
    assert_eq!(ids.len() as u64, total, "each id stored once");
    let got: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(got, expect_stored);

    let dead = broker
        .drain(&env.dead_letter_queue, 2, Duration::from_secs(10))
        .await;
    let reasons: BTreeSet<String> = dead
        .iter()
        .map(|(_, h)| h.get("x-stv3-reason").cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        BTreeSet::from(["too_long".to_string(), "not_utf8".to_string()]),
        "{:?}",
        dead.iter().map(|(_, h)| h).collect::<Vec<_>>()
    );
    assert_eq!(broker.depth(&env.dead_letter_queue).await, 0);
    broker.close().await;
    env.cleanup().await;
}
