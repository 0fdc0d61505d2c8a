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

/// A refused login (a wrong password) stops a worker at start-up with the reason,
/// while the same refusal during operation (the password rotated under a running
/// worker) is an outage to wait out: the error is transient, and the store works again
/// once the password it has is valid again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_fatal_at_start_up_and_transient_while_running() {
    let db = format!("stv3_t_{}", uuid::Uuid::new_v4().simple());
    admin_exec(&format!("CREATE DATABASE `{db}`")).await;
    let _guard = TestDb(db.clone());
    let user = format!("stv3r{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    for host in ["127.0.0.1", "localhost"] {
        admin_exec(&format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY 'one'"
        ))
        .await;
        admin_exec(&format!(
            "GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}'"
        ))
        .await;
    }
    let base = with_database(&mysql_url(), &db);
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let url = |pw: &str| format!("{scheme}://{user}:{pw}@{host}");

    let never = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let err = match store::open_when_ready(&url("wrong"), &never).await {
        Err(e) => e,
        Ok(_) => panic!("opened with a wrong password"),
    };
    assert!(matches!(err, store::StoreError::AccessDenied(_)), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it waited"
    );
    assert!(
        !err.to_string().contains("wrong"),
        "the password leaked: {err}"
    );

    let store = store::open_when_ready(&url("one"), &never)
        .await
        .expect("open")
        .expect("not cancelled");
    assert!(store.event_types().await.is_ok());
    // Rotate the password and end the store's connections: its next login is refused.
    for h in ["127.0.0.1", "localhost"] {
        admin_exec(&format!("ALTER USER '{user}'@'{h}' IDENTIFIED BY 'two'")).await;
    }
    let mut admin = sqlx::MySqlConnection::connect(&mysql_url()).await.unwrap();
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM information_schema.processlist WHERE user = ?")
            .bind(&user)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    for id in ids {
        let _ = sqlx::raw_sql(&format!("KILL CONNECTION {id}"))
            .execute(&mut admin)
            .await;
    }
    let during = store
        .event_types()
        .await
        .expect_err("refused while rotated");
    assert!(during.is_transient(), "{during:?}");
    // Rotated back (the Secret the pod holds is valid again): the same store works.
    for h in ["127.0.0.1", "localhost"] {
        admin_exec(&format!("ALTER USER '{user}'@'{h}' IDENTIFIED BY 'one'")).await;
    }
    assert!(store.event_types().await.is_ok());
    for h in ["127.0.0.1", "localhost"] {
        admin_exec(&format!("DROP USER '{user}'@'{h}'")).await;
    }
}

/// Workers started together against a new database: one migrates, the others wait
/// for it and find nothing to do (before the lock, all but one failed on a duplicate
/// migration version and exited; the chaos soak found it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_of_a_new_database_all_succeed() {
    let db = format!("stv3_t_{}", uuid::Uuid::new_v4().simple());
    admin_exec(&format!("CREATE DATABASE `{db}`")).await;
    let _guard = TestDb(db.clone());
    let url = with_database(&mysql_url(), &db);
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(store::open(&url).await.expect("open"));
    }
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    for r in runs {
        r.await
            .expect("task")
            .expect("every concurrent migration succeeds");
    }
    assert!(stores[0].event_types().await.expect("schema").is_empty());
}
