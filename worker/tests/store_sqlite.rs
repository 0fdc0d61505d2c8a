//! The store conformance tests (tests/common) on SQLite, each on a fresh database
//! file, plus SQLite-only checks (in-memory databases, file creation).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use worker::store::{self, EventQuery, Store};

/// Removes the database file (and its WAL and shared-memory files) when dropped.
pub struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!("stv3-store-{}.db", uuid::Uuid::new_v4().simple()))
}

async fn fixture() -> (Arc<dyn Store>, TempDb) {
    let path = temp_path();
    let guard = TempDb(path.clone());
    let store = store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    (store, guard)
}

store_conformance!(fixture);

#[tokio::test]
async fn in_memory_database_works_and_is_private() {
    let a = store::open("sqlite::memory:").await.unwrap();
    let b = store::open("sqlite::memory:").await.unwrap();
    a.migrate().await.unwrap();
    b.migrate().await.unwrap();
    let rules = common::TestRules::default();
    a.ingest(
        &[common::inst("m", "i-1", common::secs(0))],
        &rules,
        common::secs(0),
    )
    .await
    .unwrap();
    assert_eq!(a.count_events(&EventQuery::default()).await.unwrap(), 1);
    assert_eq!(b.count_events(&EventQuery::default()).await.unwrap(), 0);
    assert_eq!(a.backend(), "sqlite");
}

#[tokio::test]
async fn file_is_created_and_reopened() {
    let path = temp_path();
    let _guard = TempDb(path.clone());
    assert!(!path.exists());
    let url = format!("sqlite://{}", path.display());
    {
        let s = store::open(&url).await.unwrap();
        s.migrate().await.unwrap();
        s.ingest(
            &[common::every_type_event("e")],
            &common::TestRules::default(),
            common::secs(0),
        )
        .await
        .unwrap();
    }
    assert!(path.exists());
    let s = store::open(&url).await.unwrap();
    s.migrate().await.unwrap();
    assert_eq!(
        s.get_event("e").await.unwrap().unwrap().event,
        common::every_type_event("e")
    );
}

#[tokio::test]
async fn bad_urls_are_refused() {
    assert!(matches!(
        store::open("postgres://x/y").await,
        Err(store::StoreError::BadUrl { .. })
    ));
}
