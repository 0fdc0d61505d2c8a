//! yagi-event under faults, against the real RabbitMQ and MariaDB: the worker killed
//! with SIGKILL mid-stream and restarted, and RabbitMQ restarted under a running
//! worker (`scripts/services.sh restart rabbitmq`). Nothing is lost, nothing stored
//! twice. One test runs the scenarios in turn: restarting RabbitMQ must not overlap
//! another RabbitMQ test.

mod yagi_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use yagi_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults() {
    let t = Instant::now();
    sigkill_restarts_lose_and_duplicate_nothing().await;
    eprintln!("sigkill scenario: {:?}", t.elapsed());
    let t = Instant::now();
    rabbitmq_restart_is_survived_in_process().await;
    eprintln!("rabbitmq restart scenario: {:?}", t.elapsed());
}

async fn sigkill_restarts_lose_and_duplicate_nothing() {
    const N: usize = 10_000;
    let env = Env::new("kill", 100).await;
    let notes = notifications(4, N);
    let expected = expected_ids(&env.winchester_yaml, &notes);
    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    broker.publish_json(&env, &notes).await;

    let total = expected.len() as u64;
    let mut n = 0;
    // Kill at a quarter, half and three quarters of the stream.
    for quarter in 1..=3u64 {
        let mut child = env.spawn_worker(n);
        n += 1;
        env.wait_stored(total * quarter / 4, Duration::from_secs(60))
            .await;
        // Land the kill at different points of a batch (collecting, storing, or
        // between the commit and the acknowledgement).
        tokio::time::sleep(Duration::from_millis(60 * (quarter - 1))).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let stored = env.stored_count().await;
        eprintln!("killed worker {quarter} with {stored}/{total} stored");
        assert!(stored < total, "the stream ended before the kill");
    }
    let mut child = env.spawn_worker(n);
    env.wait_stored(total, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.depth(&env.queue).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(broker.depth(&env.queue).await, 0, "queue not drained");
    // Redelivered messages were counted as duplicates, not stored again.
    let m = env.metrics().await;
    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");

    let ids = env.stored_ids().await;
    assert_eq!(ids.len() as u64, total, "events stored (no duplicates)");
    let got: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(got, expected, "no event lost");
    eprintln!(
        "last worker: {} received, {} duplicates",
        metric_sum(&m, "yagi_messages_received_total", &[]) as u64,
        metric_sum(&m, "yagi_events_duplicate_total", &[]) as u64
    );
    assert_eq!(
        broker.depth(&env.dead_letter_queue).await as usize,
        N - expected.len(),
        "each dropped notification dead-lettered once"
    );
    broker.close().await;
    env.cleanup().await;
}

fn restart_rabbitmq() {
    let script = repo_root().join("scripts/services.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("restart")
        .arg("rabbitmq")
        .output()
        .expect("run scripts/services.sh");
    assert!(
        out.status.success(),
        "services.sh restart rabbitmq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn rabbitmq_restart_is_survived_in_process() {
    const N: usize = 10_000;
    let env = Env::new("restart", 100).await;
    let notes = notifications(5, N);
    let expected = expected_ids(&env.winchester_yaml, &notes);
    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    broker.publish_json(&env, &notes).await;
    broker.close().await;

    let total = expected.len() as u64;
    let mut child = env.spawn_worker(0);
    env.wait_stored(total / 4, Duration::from_secs(60)).await;
    let t = Instant::now();
    tokio::task::spawn_blocking(restart_rabbitmq)
        .await
        .expect("restart");
    eprintln!(
        "RabbitMQ restarted in {:?} with {}/{total} stored",
        t.elapsed(),
        env.stored_count().await
    );
    env.wait_stored(total, Duration::from_secs(90)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the worker exited instead of reconnecting\n{}",
        env.logs_tail()
    );
    let broker = Broker::connect().await.expect("RabbitMQ after restart");
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.depth(&env.queue).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(broker.depth(&env.queue).await, 0, "queue not drained");
    let m = env.metrics().await;
    assert!(
        metric_sum(&m, "yagi_reconnects_total", &[]) >= 1.0,
        "no reconnect counted\n{m}"
    );
    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let ids = env.stored_ids().await;
    assert_eq!(ids.len() as u64, total);
    let got: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(got, expected, "no event lost");
    broker.close().await;
    env.cleanup().await;
}
