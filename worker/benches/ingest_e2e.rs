//! End-to-end ingest: notifications from RabbitMQ into MariaDB through one `yagi-event`
//! process, next to two floors measured in the same run on the same messages — bare
//! lapin consume + ack, and bare multi-row inserts of the same events — plus the
//! worker's resident memory while it runs.
//!
//! `cargo bench -p stv3-worker --bench ingest_e2e [-- --notifications N]`
//! Needs `scripts/services.sh up` (MariaDB and RabbitMQ).

mod common;
#[path = "../tests/yagi_support/mod.rs"]
mod support;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::time::{Duration, Instant};
use support::{Broker, Env};
use worker::event::Event;
use worker::notigen::{Generator, GeneratorOptions};

/// Resident memory of a process in KiB (current and peak), from /proc.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Floor 1: consume and ack the messages with lapin alone (prefetch 200, acks with
/// `multiple` every 100, as yagi-event does), nothing else.
async fn consume_floor(broker: &Broker, env: &Env, n: usize) -> f64 {
    let ch = broker.conn.create_channel().await.expect("channel");
    ch.basic_qos(200, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            env.queue.as_str().into(),
            "floor".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let started = Instant::now();
    let mut got = 0usize;
    while got < n {
        let Some(Ok(d)) = consumer.next().await else {
            break;
        };
        got += 1;
        if got.is_multiple_of(100) || got == n {
            d.acker
                .ack(BasicAckOptions { multiple: true })
                .await
                .expect("ack");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = ch.close(200, "bye".into()).await;
    assert_eq!(got, n, "consumed everything");
    secs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--notifications")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000usize);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        // Live traffic: timestamps around now, as yagi-event (on the system clock) sees
        // it in production. Replayed 2015 traffic would make every stream look long
        // expired, which is a different workload (that is what `stv3 replay` is for).
        let mut generator = Generator::new(GeneratorOptions {
            seed: 42,
            instances: 300,
            start: chrono::Utc::now() - chrono::Duration::days(1),
            ..GeneratorOptions::default()
        })
        .expect("notigen options");
        let notifications: Vec<serde_json::Value> = generator.by_ref().take(n).collect();
        let broker = Broker::connect().await.expect("RabbitMQ");

        // Floor 1: bare lapin consume + ack of the same messages.
        let floor_env = Env::new("benchfloor", 100).await;
        broker.declare(&floor_env).await;
        broker.publish_json(&floor_env, &notifications).await;
        let consume_secs = consume_floor(&broker, &floor_env, n).await;
        floor_env.cleanup().await;

        // Floor 2: bare multi-row inserts of the same events into MariaDB.
        let config = worker::winchester::config::load_config(
            &support::repo_root().join("etc/winchester.yaml"),
        )
        .expect("etc/winchester.yaml");
        let distiller = config.distiller.as_ref().expect("distiller");
        let events: Vec<Event> = notifications
            .iter()
            .filter_map(|m| distiller.distill(m).ok())
            .collect();
        let insert_secs = common::bench_floor("mysql", &events).await;

        // End to end: one yagi-event draining the same messages into MariaDB.
        let env = Env::new("bench", 100).await;
        broker.declare(&env).await;
        broker.publish_json(&env, &notifications).await;
        let mut child = env.spawn_worker(0);
        let pid = child.id();
        let started = Instant::now();
        let mut first_stored = None;
        let mut peak = (0u64, 0u64);
        loop {
            // The worker's own counter (a COUNT(*) every poll would compete with it).
            let stored = support::metric_sum(&env.metrics().await, "yagi_events_stored_total", &[]) as usize;
            if stored > 0 && first_stored.is_none() {
                first_stored = Some(started.elapsed());
            }
            if let Some(r) = rss_kib(pid) {
                peak = (peak.0.max(r.0), peak.1.max(r.1));
            }
            if stored >= events.len() {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                panic!("only {stored} of {} stored\n{}", events.len(), env.logs_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let total = started.elapsed();
        assert_eq!(env.stored_count().await as usize, events.len(), "every event stored");
        let e2e_secs = (total - first_stored.unwrap_or_default()).as_secs_f64();
        let metrics = env.metrics().await;
        let batches = support::metric_sum(&metrics, "yagi_batches_total", &[]);
        let batch_secs = support::metric_sum(&metrics, "yagi_batch_duration_seconds_sum", &[]);
        let _ = support::terminate(&mut child, Duration::from_secs(30));
        env.cleanup().await;
        broker.close().await;

        let rate = |secs: f64| n as f64 / secs;
        let lower = rate(consume_secs).min(rate(insert_secs));
        println!("{n} notigen notifications ({} events), batches of 100\n", events.len());
        println!("| measurement | notifications/s |");
        println!("|---|---|");
        println!(
            "| floor: bare lapin consume + ack | {:.0} ({consume_secs:.2} s) |",
            rate(consume_secs)
        );
        println!(
            "| floor: bare multi-row inserts (event + traits) | {:.0} ({insert_secs:.2} s) |",
            rate(insert_secs)
        );
        println!(
            "| yagi-event: RabbitMQ → distill → MariaDB (events, traits, streams) | {:.0} ({e2e_secs:.2} s from first commit; {:.2} s with start-up) |",
            rate(e2e_secs),
            total.as_secs_f64()
        );
        println!(
            "\n{batches:.0} batches, {:.1} ms each on average in the worker",
            1000.0 * batch_secs / batches.max(1.0)
        );
        println!(
            "end to end = {:.0} % of the lower floor; yagi-event resident memory: {:.1} MiB at the end, peak {:.1} MiB",
            100.0 * rate(e2e_secs) / lower,
            peak.0 as f64 / 1024.0,
            peak.1 as f64 / 1024.0
        );
    });
}
