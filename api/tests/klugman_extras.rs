//! What our klugman adds to the original (`--json`, `archives`, paging, clear errors),
//! run through its library entry point against the real `stv3-api` on SQLite.

mod common;

use common::{seed, serve, Seeded};
use serde_json::Value;
use std::sync::Arc;
use worker::store::{self, Store, StreamQuery};

/// Runs our klugman; returns its output or its error message.
async fn klugman(base: &str, args: &[&str]) -> Result<String, String> {
    let argv: Vec<String> = std::iter::once(base.to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        klugman::run(argv, &mut out)
            .map(|()| String::from_utf8(out).expect("UTF-8 output"))
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_archives_paging_and_errors_against_the_server() {
    let dir = std::env::temp_dir().join(format!(
        "stv3-api-klugman-extras-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let archives = dir.join("archive");
    std::fs::create_dir_all(&archives).unwrap();
    let archived = b"{\"event_type\":\"compute.instance.exists\"}\n".repeat(100);
    std::fs::write(archives.join("events_2015_02_27-stv3-1.json"), &archived).unwrap();
    let url = format!("sqlite://{}", dir.join("api.db").display());
    let store: Arc<dyn Store> = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let Seeded { streams, .. } = seed(&store).await;
    let mut config = common::config_with_token(Some(common::TOKEN));
    config.archive_dir = Some(archives.clone());
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{}\n", common::TOKEN)).unwrap();
    let token_file = token_file.display().to_string();
    let s = serve(store.clone(), config).await;
    let base = s.base.as_str();

    // --json passes the server's answer through: every stream, as the store has them.
    let out = klugman(base, &["--json", "streams"]).await.unwrap();
    let listed: Value = serde_json::from_str(&out).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len() as u64, streams);
    let mut ids: Vec<i64> = listed.iter().map(|s| s["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    let mut want: Vec<i64> = store
        .find_streams(&StreamQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    want.sort_unstable();
    assert_eq!(ids, want);

    // Paging: --limit 1, then from the first one's mark, covers different streams.
    let first: Value = serde_json::from_str(
        &klugman(base, &["--json", "streams", "--limit", "1"])
            .await
            .unwrap(),
    )
    .unwrap();
    let mark = first[0]["_mark"].as_str().unwrap().to_string();
    let next: Value = serde_json::from_str(
        &klugman(
            base,
            &["--json", "streams", "--limit", "1", "--mark", &mark],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(next.as_array().unwrap().len(), 1);
    assert_ne!(first[0]["id"], next[0]["id"]);

    // archives: they need the token; with it, listed with their size and downloaded
    // byte for byte.
    let err = klugman(base, &["archives"]).await.unwrap_err();
    assert!(err.contains("401"), "{err}");
    let table = klugman(base, &["--token-file", &token_file, "archives"])
        .await
        .unwrap();
    assert!(table.contains("events_2015_02_27-stv3-1.json"), "{table}");
    assert!(table.contains(&archived.len().to_string()), "{table}");
    let saved = dir.join("download.json");
    klugman(
        base,
        &[
            "--token-file",
            &token_file,
            "archives",
            "--get",
            "events_2015_02_27-stv3-1.json",
            "-o",
            saved.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), archived);

    // The server's refusals come back as one-line messages.
    let err = klugman(
        base,
        &[
            "--token-file",
            &token_file,
            "archives",
            "--get",
            "../api.db",
        ],
    )
    .await
    .unwrap_err();
    assert!(err.contains("404"), "{err}");
    let err = klugman(base, &["streams", "--id", "999999"])
        .await
        .unwrap_err();
    assert!(err.contains("404") && !err.contains('\n'), "{err}");
    let err = klugman(base, &["streams", "--from", "not a date"])
        .await
        .unwrap_err();
    assert!(err.contains("400") && err.contains("older_than"), "{err}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
