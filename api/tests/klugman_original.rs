//! The ORIGINAL klugman (PyPI `klugman` 0.5.dev25, Python 2) against our server:
//! every command and option it has, checking its printed tables hold the right data.
//! `scripts/python-tools.sh` installs it (idempotent); set `STV3_SKIP_PYTHON=1` to
//! skip this test on a machine without Python.

mod common;

use common::{original_klugman_path, seed, serve, Seeded};
use std::process::Command;
use std::sync::Arc;
use worker::store::{self, EventQuery, Store, StreamQuery};

/// Runs `klugman <base> args…` and returns its standard output (it must succeed).
async fn klugman(bin: &str, base: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(bin);
    cmd.arg(base).args(args);
    let shown = format!("klugman {}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run klugman");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{shown} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `count` row of klugman's table.
fn count_of(table: &str) -> u64 {
    table
        .lines()
        .find(|l| l.contains(" count "))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in:\n{table}"))
}

/// Stream ids in klugman's stream tables.
fn stream_ids(out: &str) -> Vec<i64> {
    out.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            match cells.as_slice() {
                ["", "Stream", "id", v, ""] => v.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_klugman_reads_our_api() {
    let Some(bin) = original_klugman_path() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "stv3-api-klugman-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("api.db").display());
    let store: Arc<dyn Store> = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let Seeded {
        events,
        streams,
        error_stream,
        ..
    } = seed(&store).await;
    let s = serve(store.clone(), common::config_with_token(None)).await;
    let base = s.base.clone();

    // streams
    let out = klugman(&bin, &base, &["streams"]).await;
    let mut listed = stream_ids(&out);
    listed.sort_unstable();
    let mut all: Vec<i64> = store
        .find_streams(&StreamQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|st| st.id)
        .collect();
    all.sort_unstable();
    assert_eq!(listed, all, "{out}");
    assert!(out.contains("test_trigger"));
    assert!(out.contains("D.Trait |   instance_id"), "{out}");
    assert!(
        out.contains("TimeRange from datetime.datetime(2015, 2"),
        "{out}"
    );
    assert_eq!(
        count_of(&klugman(&bin, &base, &["streams", "--count"]).await),
        streams
    );
    assert_eq!(
        count_of(
            &klugman(
                &bin,
                &base,
                &["streams", "--count", "--name", "test_trigger"]
            )
            .await
        ),
        streams
    );
    assert_eq!(
        count_of(&klugman(&bin, &base, &["streams", "--count", "--name", "nothing"]).await),
        0
    );
    let out = klugman(&bin, &base, &["streams", "--state", "error"]).await;
    assert_eq!(stream_ids(&out), vec![error_stream], "{out}");
    assert_eq!(
        count_of(
            &klugman(
                &bin,
                &base,
                &["streams", "--count", "--state", "expire_error"]
            )
            .await
        ),
        1
    );
    // --from is sent as older_than, --to as younger_than
    assert_eq!(
        count_of(
            &klugman(
                &bin,
                &base,
                &["streams", "--count", "--from", "2015-02-26 00:00:00"]
            )
            .await
        ),
        store
            .count_streams(&StreamQuery {
                older_than: Some(
                    chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2015, 2, 26, 0, 0, 0).unwrap()
                ),
                ..StreamQuery::default()
            })
            .await
            .unwrap()
    );
    assert_eq!(
        count_of(&klugman(&bin, &base, &["streams", "--count", "--from", "2015-03-01"]).await),
        streams
    );
    assert_eq!(
        count_of(&klugman(&bin, &base, &["streams", "--count", "--to", "2015-02-26"]).await),
        streams
    );
    assert_eq!(
        count_of(&klugman(&bin, &base, &["streams", "--count", "--to", "2015-03-02"]).await),
        0
    );
    // one stream, with details (klugman sends details=True)
    let id = error_stream.to_string();
    let id = id.as_str();
    let out = klugman(&bin, &base, &["streams", "--id", id, "--details"]).await;
    assert_eq!(stream_ids(&out), vec![error_stream]);
    assert!(out.contains("Events:"), "{out}");
    for e in store.stream_events(error_stream).await.unwrap() {
        assert!(out.contains(&e.event.message_id), "{out}");
    }
    let out = klugman(&bin, &base, &["--debug", "streams", "--id", id]).await;
    assert!(!out.contains("Events:"));
    assert!(out.contains("URL: "), "{out}");
    // distinguishing traits
    let inst = match store
        .get_stream(error_stream)
        .await
        .unwrap()
        .unwrap()
        .distinguishing_traits
        .get("instance_id")
    {
        Some(worker::store::DistValue::Text(t)) => t.clone(),
        other => panic!("{other:?}"),
    };
    let traits = format!("instance_id:{inst}");
    let traits = traits.as_str();
    let out = klugman(&bin, &base, &["streams", "--traits", traits]).await;
    assert!(stream_ids(&out).contains(&error_stream), "{out}");
    assert!(out
        .lines()
        .filter(|l| l.contains("instance_id"))
        .all(|l| l.contains(&inst)));

    // events
    let out = klugman(&bin, &base, &["events"]).await;
    let all_events = store.find_events(&EventQuery::default()).await.unwrap();
    assert_eq!(all_events.len() as u64, events);
    for e in &all_events {
        assert!(out.contains(&e.event.message_id), "{}", e.event.message_id);
    }
    assert_eq!(
        count_of(&klugman(&bin, &base, &["events", "--count"]).await),
        events
    );
    let exists = store
        .count_events(&EventQuery {
            event_type: Some("compute.instance.exists".into()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        count_of(
            &klugman(
                &bin,
                &base,
                &["events", "--count", "--name", "compute.instance.exists"]
            )
            .await
        ),
        exists
    );
    let out = klugman(
        &bin,
        &base,
        &["events", "--name", "compute.instance.exists"],
    )
    .await;
    assert!(out.contains("audit_period_beginning"));
    assert!(out.contains("2015-02-26 22:49:16.151000"), "{out}");
    assert!(
        out.contains("|       memory_mb        |                   1024"),
        "{out}"
    );
    let out = klugman(
        &bin,
        &base,
        &["events", "--msg_id", "d0718c1a-fdd9-478d-98df-f3934223aa56"],
    )
    .await;
    assert!(out.contains("compute.instance.exists"), "{out}");
    assert!(!out.contains("_mark"));
    let with_512 = all_events
        .iter()
        .filter(|e| {
            matches!(
                e.event.traits.get("memory_mb"),
                Some(worker::event::TraitValue::Int(512))
            )
        })
        .count() as u64;
    assert!(with_512 > 0);
    assert_eq!(
        count_of(
            &klugman(
                &bin,
                &base,
                &["events", "--count", "--traits", "memory_mb:512"]
            )
            .await
        ),
        with_512
    );
    let out = klugman(&bin, &base, &["events", "--traits", "memory_mb:512"]).await;
    let rows = out
        .lines()
        .filter(|l| l.split('|').nth(1).map(str::trim) == Some("message_id"))
        .count() as u64;
    assert_eq!(rows, with_512, "{out}");
    let window = all_events
        .iter()
        .filter(|e| {
            let t = e.event.timestamp.naive_utc().to_string();
            t.as_str() > "2015-02-27 00:20:00" && t.as_str() <= "2015-02-27 00:30:00"
        })
        .count() as u64;
    assert_eq!(
        count_of(
            &klugman(
                &bin,
                &base,
                &[
                    "events",
                    "--count",
                    "--from",
                    "2015-02-27 00:20:00",
                    "--to",
                    "2015-02-27 00:30:00"
                ]
            )
            .await
        ),
        window
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
