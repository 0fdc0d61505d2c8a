//! The store conformance tests (tests/common) on the inline SQLite driver
//! (`store::inline`, `stv3 replay`'s in-memory database), each on a fresh database.

mod common;

use std::sync::Arc;
use worker::store::{self, EventQuery, OpenOptions, Store};

async fn fixture() -> (Arc<dyn Store>, ()) {
    let store = store::inline::open_memory(OpenOptions::default()).expect("open inline sqlite");
    store.migrate().await.expect("migrate inline sqlite");
    (store, ())
}

store_conformance!(fixture);

#[tokio::test]
async fn each_database_is_private_and_reports_its_schema() {
    let (a, ()) = fixture().await;
    let (b, ()) = fixture().await;
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
    assert!(a.schema_status().await.unwrap().is_current());
    let fresh = store::inline::open_memory(OpenOptions::default()).unwrap();
    let status = fresh.schema_status().await.unwrap();
    assert_eq!(status.applied, None);
    assert!(status.latest >= 3);
}
