//! The API's tests (tests/common) over the real MariaDB of `scripts/services.sh up`
//! (URL from `STV3_TEST_MYSQL_URL`). Each test gets a database of its own,
//! `stv3_api_<uuid>` (the test user may create `stv3_*` databases), dropped
//! afterwards, so these run alongside the worker's tests.

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
    let db = format!("stv3_api_{}", uuid::Uuid::new_v4().simple());
    admin_exec(&format!("CREATE DATABASE `{db}`")).await;
    let guard = TestDb(db.clone());
    let store = store::open(&with_database(&mysql_url(), &db))
        .await
        .expect("open mysql");
    store.migrate().await.expect("migrate mysql");
    (store, guard)
}

api_conformance!(fixture);
