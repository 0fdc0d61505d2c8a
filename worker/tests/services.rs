//! Proves the services `scripts/services.sh up` starts really answer: a real MariaDB
//! connection through sqlx and a real RabbitMQ round trip through lapin.
//!
//! The URLs come from `STV3_TEST_MYSQL_URL` / `STV3_TEST_AMQP_URL` (what
//! `scripts/services.sh env` prints; `./build.sh -t` exports them), with the same
//! defaults, so a plain `cargo test` works once the services are up.

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::Row;
use std::time::Duration;

fn mysql_url() -> String {
    std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string())
}

fn amqp_url() -> String {
    std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

const HINT: &str = "is it running? start it with `scripts/services.sh up`";

#[tokio::test]
async fn mariadb_answers_through_sqlx() {
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&mysql_url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to MariaDB ({e}); {HINT}"));

    let row = sqlx::query("SELECT VERSION() AS v, DATABASE() AS db")
        .fetch_one(&pool)
        .await
        .expect("SELECT VERSION()");
    let version: String = row.get("v");
    let db: String = row.get("db");
    assert!(
        version.to_lowercase().contains("mariadb"),
        "expected a MariaDB server, got version {version}"
    );
    assert!(db.starts_with("stv3"), "connected to database {db}");

    // The test user can create and use tables in its database.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("CREATE TEMPORARY TABLE svc_probe (id INT PRIMARY KEY, note VARCHAR(32))")
        .execute(&mut *tx)
        .await
        .expect("create temporary table");
    sqlx::query("INSERT INTO svc_probe VALUES (1, 'one'), (2, 'two')")
        .execute(&mut *tx)
        .await
        .expect("insert");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM svc_probe")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(n, 2);
    tx.rollback().await.expect("rollback");
    pool.close().await;
}

#[tokio::test]
async fn rabbitmq_answers_through_lapin() {
    let conn = tokio::time::timeout(
        Duration::from_secs(15),
        Connection::connect(&amqp_url(), ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("timed out connecting to RabbitMQ; {HINT}"))
    .unwrap_or_else(|e| panic!("cannot connect to RabbitMQ ({e}); {HINT}"));
    let channel = conn.create_channel().await.expect("channel");

    let queue = format!("stv3.services-test.{}", std::process::id());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue_declare");

    let body = br#"{"event_type":"svc.probe","message_id":"probe-1"}"#;
    channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await
        .expect("publish")
        .await
        .expect("publisher confirm");

    // The message is routed through the default exchange; poll until it arrives.
    let mut got = None;
    for _ in 0..50 {
        if let Some(msg) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")
        {
            got = Some(msg.delivery.data.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got.as_deref(),
        Some(&body[..]),
        "message did not round-trip"
    );

    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue_delete");
    conn.close(200, "bye".into()).await.expect("close");
}
