//! `stv3 db upgrade` as the operator's migration Job runs it: with
//! `STV3_DB_WAIT_SECONDS` it waits for a database that is not up yet (a MySQL still
//! initialising) and migrates as soon as it answers; it gives up, saying so, when the
//! wait runs out; without it, it fails at once.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn the_wait_gives_up_with_a_clear_message_and_none_fails_at_once() {
    let url = format!("mysql://stv3:secret@127.0.0.1:{}/stv3", closed_port());
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .args(["db", "upgrade", "--database", &url])
        .env("STV3_DB_WAIT_SECONDS", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("did not answer within 2 s"), "{err}");
    assert!(!err.contains("secret"), "the password in: {err}");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "gave up before the wait"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .args(["db", "upgrade", "--database", &url])
        .env_remove("STV3_DB_WAIT_SECONDS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot open"), "{err}");
}

#[test]
fn the_wait_ends_when_the_database_answers() {
    let dir = std::env::temp_dir().join(format!("stv3-db-wait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/w.db", dir.display());
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_stv3"))
        .args(["db", "upgrade", "--database", &url, "--wait", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is up to date"));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "waited for nothing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
