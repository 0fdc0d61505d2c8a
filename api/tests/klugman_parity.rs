//! Our klugman and the ORIGINAL one (PyPI 0.5.dev25, Python 2), run with the same
//! command lines against the same `stv3-api`, must print the same thing. This is what
//! "the same table layout" means, checked on real answers of the real server rather
//! than on recorded JSON. The few deliberate differences are normalised away below,
//! each with its reason.

mod common;

use common::{original_klugman_path, seed, serve, Seeded};
use std::process::Command;
use std::sync::Arc;
use worker::store::{self, Store};

/// The original's output of `klugman <base> args…` (it must succeed).
fn original(bin: &str, base: &str, args: &[String]) -> String {
    let out = Command::new(bin)
        .arg(base)
        .args(args)
        .output()
        .expect("run the original klugman");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "original klugman {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Ours, in-process through the library entry point.
fn ours(base: &str, args: &[String]) -> String {
    let mut out = Vec::new();
    let argv = std::iter::once(base.to_string()).chain(args.iter().cloned());
    if let Err(e) = klugman::run(argv, &mut out) {
        panic!("our klugman {args:?} failed: {e}");
    }
    String::from_utf8(out).expect("UTF-8 output")
}

/// The original's `streams --count` first prints the raw response as a Python list
/// (`[{u'count': 7}]`), debugging output left in; ours prints only the table.
fn normalise(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("[{u'"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_klugman_prints_what_the_original_prints() {
    let Some(bin) = original_klugman_path() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "stv3-api-klugman-parity-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("api.db").display());
    let store: Arc<dyn Store> = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let Seeded { error_stream, .. } = seed(&store).await;
    let s = serve(store.clone(), common::config_with_token(None)).await;
    let base = s.base.clone();

    let some_event = store
        .find_events(&worker::store::EventQuery::default())
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("seeded events");
    let msg_id = some_event.event.message_id.clone();
    let event_type = some_event.event.event_type.clone();
    let id = error_stream.to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["streams"],
        vec!["streams", "--details"],
        vec!["streams", "--count"],
        vec!["streams", "--count", "--state", "error"],
        vec!["streams", "--state", "expire_error", "--details"],
        vec!["streams", "--name", "test_trigger"],
        vec!["streams", "--from", "2015-03-01", "--to", "2015-02-01"],
        vec!["streams", "--id", &id],
        vec!["streams", "--id", &id, "--details"],
        vec!["--version", "2", "streams", "--id", &id],
        vec!["--debug", "streams", "--state", "error"],
        vec!["events"],
        vec!["events", "--count"],
        vec!["events", "--name", &event_type],
        vec!["events", "--count", "--name", &event_type],
        vec!["events", "--msg_id", &msg_id],
        vec!["events", "--from", "2015-02-01", "--to", "2015-03-01"],
    ];
    let mut compared = 0;
    for args in commands {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let theirs = {
            let (bin, base, args) = (bin.clone(), base.clone(), args.clone());
            tokio::task::spawn_blocking(move || original(&bin, &base, &args))
                .await
                .unwrap()
        };
        let mine = {
            let (base, args) = (base.clone(), args.clone());
            tokio::task::spawn_blocking(move || ours(&base, &args))
                .await
                .unwrap()
        };
        assert!(
            mine.lines().count() > 1,
            "klugman {args:?} printed almost nothing:\n{mine}"
        );
        assert_eq!(
            normalise(&mine),
            normalise(&theirs),
            "klugman {args:?}: ours (left) and the original (right) differ"
        );
        compared += 1;
    }
    assert_eq!(compared, 17);
    let _ = std::fs::remove_dir_all(&dir);
}
