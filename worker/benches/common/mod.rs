//! Shared by the benchmarks: throw-away databases and the bare-insert floor.
#![allow(dead_code)]

use sqlx::{Connection, QueryBuilder};
use std::path::PathBuf;
use std::time::Instant;
use worker::event::{Event, TraitValue};
use worker::store;

pub const BATCH: usize = 100;

pub struct Db {
    pub url: String,
    mysql_name: Option<String>,
    _dir: Option<PathBuf>,
}

pub async fn fresh_db(kind: &str) -> Db {
    if kind == "sqlite" {
        let dir =
            std::env::temp_dir().join(format!("stv3-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        return Db {
            url: format!("sqlite://{}/bench.db", dir.display()),
            mysql_name: None,
            _dir: Some(dir),
        };
    }
    let base = std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string());
    let name = format!("stv3_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::MySqlConnection::connect(&base)
        .await
        .expect("MariaDB");
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("database in URL");
    Db {
        url: format!("{prefix}/{name}"),
        mysql_name: Some(name),
        _dir: None,
    }
}

pub async fn drop_db(db: Db) {
    if let Some(name) = db.mysql_name {
        let base = std::env::var("STV3_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string());
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&base).await {
            let _ = sqlx::query(&format!("DROP DATABASE `{name}`"))
                .execute(&mut conn)
                .await;
        }
    }
    if let Some(dir) = db._dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The floor: the same events' rows (event + event_trait) with bare multi-row
/// INSERTs, one transaction per batch of 100, ids assigned by the client.
pub async fn bench_floor(kind: &str, events: &[Event]) -> f64 {
    let db = fresh_db(kind).await;
    let store = store::open(&db.url).await.expect("open");
    store.migrate().await.expect("migrate");
    drop(store);
    let started;
    macro_rules! floor {
        ($conn:expr) => {{
            let conn = &mut $conn;
            sqlx::query("INSERT INTO event_type (id, name) VALUES (1, 'bench')")
                .execute(&mut *conn)
                .await
                .expect("event type");
            started = Instant::now();
            let mut next_id = 1i64;
            for batch in events.chunks(BATCH) {
                let mut tx = conn.begin().await.expect("begin");
                let mut q = QueryBuilder::new("INSERT INTO event (id, message_id, event_type_id, generated) ");
                let first = next_id;
                q.push_values(batch.iter().enumerate(), |mut b, (i, e)| {
                    b.push_bind(first + i as i64)
                        .push_bind(e.message_id.as_str())
                        .push_bind(1i64)
                        .push_bind(e.timestamp.timestamp_micros());
                });
                q.build().execute(&mut *tx).await.expect("insert events");
                let rows: Vec<(i64, &String, &TraitValue)> = batch
                    .iter()
                    .enumerate()
                    .flat_map(|(i, e)| e.traits.iter().map(move |(k, v)| (first + i as i64, k, v)))
                    .collect();
                let mut q = QueryBuilder::new(
                    "INSERT INTO event_trait (event_id, name, type, t_string, t_int, t_float, t_datetime) ",
                );
                q.push_values(rows, |mut b, (id, name, v)| {
                    let (ty, s, i, f, d): (i16, Option<&str>, Option<i64>, Option<f64>, Option<i64>) = match v {
                        TraitValue::Text(s) => (1, Some(s.as_str()), None, None, None),
                        TraitValue::Int(i) => (2, None, Some(*i), None, None),
                        TraitValue::Float(f) => (3, None, None, Some(*f), None),
                        TraitValue::Datetime(d) => (4, None, None, None, Some(d.timestamp_micros())),
                    };
                    b.push_bind(id)
                        .push_bind(name.as_str())
                        .push_bind(ty)
                        .push_bind(s)
                        .push_bind(i)
                        .push_bind(f)
                        .push_bind(d);
                });
                q.build().execute(&mut *tx).await.expect("insert traits");
                tx.commit().await.expect("commit");
                next_id += batch.len() as i64;
            }
        }};
    }
    if kind == "sqlite" {
        let opts: sqlx::sqlite::SqliteConnectOptions = db.url.parse().expect("url");
        let mut conn = sqlx::SqliteConnection::connect_with(
            &opts
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
        )
        .await
        .expect("sqlite");
        floor!(conn);
    } else {
        let mut conn = sqlx::MySqlConnection::connect(&db.url)
            .await
            .expect("mysql");
        floor!(conn);
    }
    let secs = started.elapsed().as_secs_f64();
    drop_db(db).await;
    secs
}
