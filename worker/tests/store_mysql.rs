//! The store conformance tests (tests/common) on the real MariaDB of
//! `scripts/services.sh up` (URL from `STV3_TEST_MYSQL_URL`). Each test runs in a
//! database of its own, `stv3_t_<uuid>`, dropped afterwards.

mod common;

use sqlx::Connection;
use std::sync::Arc;
use worker::store::{self, Store};

fn mysql_url() -> String {
    std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".to_string())
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let server = match base.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && !server.ends_with('/') => server,
        _ => base.trim_end_matches('/'),
    };
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

async fn admin_exec(sql: &str) {
    let mut conn = sqlx::MySqlConnection::connect(&mysql_url())
        .await
        .expect("MariaDB must run (scripts/services.sh up)");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    let _ = conn.close().await;
}

/// Drops the test database when dropped (also after a failed test).
pub struct TestDb(String);

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.0);
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(admin_exec(&sql));
            }
        })
        .join();
    }
}

async fn fixture() -> (Arc<dyn Store>, TestDb) {
    let db = format!("stv3_t_{}", uuid::Uuid::new_v4().simple());
    admin_exec(&format!("CREATE DATABASE `{db}`")).await;
    let guard = TestDb(db.clone());
    let store = store::open(&with_database(&mysql_url(), &db))
        .await
        .expect("open mysql");
    store.migrate().await.expect("migrate mysql");
    (store, guard)
}

store_conformance!(fixture);

#[test]
fn database_names_are_replaced() {
    assert_eq!(with_database("mysql://u:p@h:1/a", "b"), "mysql://u:p@h:1/b");
    assert_eq!(
        with_database("mysql://u:p@h/a?x=1", "b"),
        "mysql://u:p@h/b?x=1"
    );
    assert_eq!(with_database("mysql://u:p@h", "b"), "mysql://u:p@h/b");
}

#[tokio::test]
async fn original_url_spellings_open() {
    let url = mysql_url().replacen("mysql://", "mysql+pymysql://", 1);
    let s = store::open(&url).await.unwrap();
    assert_eq!(s.backend(), "mysql");
}
