//! The API cannot be made to exhaust the server: each bound of `stv3-api`, asserted
//! against the real server over a real database (SQLite, and MariaDB where the bound
//! is the database's).
//!
//! - events per stream with `details` are capped and paged (`events_limit`,
//!   `events_offset`, `_events_next_offset`), and a listing's streams share a budget;
//! - trait filters per request are capped;
//! - made-up HTTP methods share one metric label;
//! - headers must arrive within the header-read timeout;
//! - requests beyond the concurrency limit get a 503 at once, and a request past its
//!   time limit a 503 (a table locked in MariaDB holds the request);
//! - a statement past the statement timeout is stopped by the database (MariaDB
//!   `max_statement_time`, SQLite's progress handler): a 503 with a message.

mod common;

use common::{items, seed, serve};
use prometheus_client::registry::Registry;
use serde_json::Value;
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use worker::store::{self, OpenOptions, Store};

/// Removes the test's folder when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A seeded SQLite database; its URL and folder.
async fn seeded_sqlite() -> (String, Arc<dyn Store>, TempDir) {
    let dir = std::env::temp_dir().join(format!("stv3-bounds-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("api.db").display());
    let store = store::open(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate");
    seed(&store).await;
    (url, store, TempDir(dir))
}

fn mysql_url() -> String {
    std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string())
}

/// A MariaDB database of the test's own, dropped when this is dropped.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn new() -> TestDb {
        let name = format!("stv3_bounds_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::MySqlConnection::connect(&mysql_url())
            .await
            .expect("MariaDB must run (scripts/services.sh up)");
        sqlx::raw_sql(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let base = mysql_url();
        let (server, _) = base.rsplit_once('/').expect("URL with a database");
        TestDb {
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::MySqlConnection::connect(&mysql_url()).await {
                        let _ = sqlx::raw_sql(&sql).execute(&mut c).await;
                    }
                });
            }
        })
        .join();
    }
}

async fn seeded_mysql() -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new().await;
    let store = store::open(&db.url).await.expect("open mysql");
    store.migrate().await.expect("migrate");
    seed(&store).await;
    (db, store)
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_are_capped_per_stream_and_paged() {
    let (_url, store, _dir) = seeded_sqlite().await;
    let config = api::ApiConfig {
        limits: api::Limits {
            stream_events: 3,
            listing_events: 10,
            ..api::Limits::default()
        },
        ..api::ApiConfig::default()
    };
    let s = serve(store.clone(), config).await;
    // The stream with the most events.
    let streams = s.ok("/v1/streams?limit=1000").await;
    let mut biggest = (0i64, 0u64);
    for st in items(&streams) {
        let id = st["id"].as_i64().expect("id");
        let n = store
            .get_stream(id)
            .await
            .expect("get")
            .expect("stream")
            .event_count;
        if n > biggest.1 {
            biggest = (id, n);
        }
    }
    let (id, total) = biggest;
    assert!(total > 3, "the sample has a stream of more than 3 events");
    let all: Vec<String> = store
        .stream_events(id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event.message_id)
        .collect();

    // One stream: three at a time, and the way to the next three, to the end.
    let mut seen = Vec::new();
    let mut offset = 0u64;
    loop {
        let body = s
            .ok(&format!(
                "/v1/streams/{id}?details=true&events_offset={offset}"
            ))
            .await;
        let st = &items(&body)[0];
        let events = st["events"].as_array().expect("events");
        assert!(events.len() <= 3, "{}", events.len());
        seen.extend(
            events
                .iter()
                .map(|e| e["message_id"].as_str().unwrap_or_default().to_string()),
        );
        match st.get("_events_next_offset").and_then(Value::as_u64) {
            Some(next) => {
                assert_eq!(next, offset + events.len() as u64);
                offset = next;
            }
            None => break,
        }
    }
    assert_eq!(
        seen, all,
        "paging a stream's events gives each once, in order"
    );
    let (status, body) = s
        .get(&format!("/v1/streams/{id}?details=true&events_limit=4"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("from 1 to 3"), "{body}");

    // A listing: a page of four streams shares ten events, two each; asking for more
    // is a 400 that says why.
    let body = s.ok("/v1/streams?details=true&limit=4").await;
    assert!(items(&body).len() >= 2, "{body}");
    let mut capped = 0;
    for st in items(&body) {
        let shown = st["events"].as_array().expect("events").len();
        assert!(shown <= 2, "{st}");
        if st.get("_events_next_offset").is_some() {
            capped += 1;
        }
    }
    assert!(capped >= 1, "no stream of the page was cut: {body}");
    let (status, body) = s
        .get("/v1/streams?details=true&limit=4&events_limit=3")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("share at most 10 events"), "{body}");
    let (status, body) = s.get("/v1/streams/1?details=true&events_offset=-1").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trait_filters_per_request_are_capped() {
    let (_url, store, _dir) = seeded_sqlite().await;
    let config = api::ApiConfig {
        limits: api::Limits {
            max_trait_filters: 4,
            ..api::Limits::default()
        },
        ..api::ApiConfig::default()
    };
    let s = serve(store, config).await;
    let filters = |n: usize| {
        (0..n)
            .map(|i| format!("t{i}:x"))
            .collect::<Vec<_>>()
            .join(";")
    };
    let (status, _) = s.get(&format!("/v1/events?traits={}", filters(4))).await;
    assert_eq!(status, 200);
    let (status, body) = s.get(&format!("/v1/events?traits={}", filters(5))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(message(&body), "traits: 5 filters; at most 4 per request");
    let (status, body) = s
        .get(&format!("/v1/streams?distinguishing_traits={}", filters(5)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).starts_with("distinguishing_traits: 5 filters"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_metric_label() {
    let (_url, store, _dir) = seeded_sqlite().await;
    let s = serve(store, api::ApiConfig::default()).await;
    for i in 0..25 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).expect("token");
        let r = s
            .client
            .request(method, s.url("/v1/streams"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 405);
    }
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(!metrics.contains("MADEUP"), "made-up methods became labels");
    let other: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("stv3_api_requests_total{") && l.contains("method=\"other\""))
        .collect();
    assert_eq!(other.len(), 1, "{other:?}");
    assert!(other[0].ends_with(" 25"), "{other:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_must_arrive_in_time() {
    let (_url, store, _dir) = seeded_sqlite().await;
    let state = api::AppState::with_store(api::ApiConfig::default(), store);
    let app = api::app(state, Registry::default());
    let shutdown = CancellationToken::new();
    let limit = Duration::from_millis(800);
    let (addr, _task) =
        api::spawn_with("127.0.0.1:0".parse().unwrap(), app, shutdown.clone(), limit)
            .await
            .expect("bind");
    // Half a request line and a header, then nothing: the connection is closed.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /v1/streams HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf)).await;
    let waited = started.elapsed();
    assert!(
        read.is_ok(),
        "the server kept a connection whose headers never came"
    );
    assert!(
        waited >= Duration::from_millis(700),
        "cut too early: {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "answered: {text}"
    );
    // A complete request on a fresh connection is answered as usual.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    shutdown.cancel();
}

/// MariaDB: another session holds `LOCK TABLES stream WRITE`, so a stream listing
/// waits. One such request takes the only permit: the next gets 503 at once (probes
/// still answer), and the waiting one a 503 when its time is up. Then the lock goes
/// and all is well again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_slow_requests_get_a_503() {
    let (db, store) = seeded_mysql().await;
    let config = api::ApiConfig {
        bounds: api::Bounds {
            max_concurrent: 1,
            request_timeout: Duration::from_secs(2),
            ..api::Bounds::default()
        },
        ..api::ApiConfig::default()
    };
    let s = Arc::new(serve(store, config).await);
    let mut locker = sqlx::MySqlConnection::connect(&db.url)
        .await
        .expect("connect");
    sqlx::raw_sql("LOCK TABLES stream WRITE")
        .execute(&mut locker)
        .await
        .expect("lock");
    let held = {
        let s = s.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let (status, body) = s.get("/v1/streams").await;
            (status, body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = s.get("/v1/event_types").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        message(&body).contains("answering 1 requests already"),
        "{body}"
    );
    let health = s
        .client
        .get(s.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200, "probes are exempt");

    let (status, body, took) = held.await.expect("held request");
    assert_eq!(status, 503, "{body}");
    assert!(message(&body).contains("took longer than 2s"), "{body}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    sqlx::raw_sql("UNLOCK TABLES")
        .execute(&mut locker)
        .await
        .expect("unlock");
    let _ = locker.close().await;
    assert_eq!(s.get("/v1/streams").await.0, 200);
}

/// MariaDB's `max_statement_time` ends a statement that waits on a lock past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_statements_past_the_timeout_are_stopped() {
    let (db, _seeded) = seeded_mysql().await;
    let store = store::open_with(
        &db.url,
        OpenOptions {
            statement_timeout: Some(Duration::from_millis(500)),
        },
    )
    .await
    .expect("open with a statement timeout");
    let s = serve(store, api::ApiConfig::default()).await;
    assert_eq!(
        s.get("/v1/streams").await.0,
        200,
        "a quick query is untouched"
    );
    let mut locker = sqlx::MySqlConnection::connect(&db.url)
        .await
        .expect("connect");
    sqlx::raw_sql("LOCK TABLES stream WRITE")
        .execute(&mut locker)
        .await
        .expect("lock");
    let started = Instant::now();
    let (status, body) = s.get("/v1/streams").await;
    let took = started.elapsed();
    sqlx::raw_sql("UNLOCK TABLES")
        .execute(&mut locker)
        .await
        .expect("unlock");
    assert_eq!(status, 503, "{body}");
    assert!(message(&body).contains("statement timeout"), "{body}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(s.get("/v1/streams").await.0, 200);
}

/// SQLite has no statement timeout; the progress handler interrupts a statement past
/// its deadline. With a deadline of a microsecond every real query runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_statements_past_the_timeout_are_stopped() {
    let (url, _seeded, _dir) = seeded_sqlite().await;
    let store = store::open_with(
        &url,
        OpenOptions {
            statement_timeout: Some(Duration::from_micros(1)),
        },
    )
    .await
    .expect("open with a statement timeout");
    let s = serve(store, api::ApiConfig::default()).await;
    let (status, body) = s.get("/v1/events?limit=1000").await;
    assert_eq!(status, 503, "{body}");
    assert!(message(&body).contains("statement timeout"), "{body}");

    // A generous one changes nothing.
    let store = store::open_with(
        &url,
        OpenOptions {
            statement_timeout: Some(Duration::from_secs(30)),
        },
    )
    .await
    .expect("open");
    let s = serve(store, api::ApiConfig::default()).await;
    let all = items(&s.ok("/v1/events?limit=1000").await).len() as u64;
    assert_eq!(all, s.count("/v1/events/count").await);
    assert!(all > 0);
}
