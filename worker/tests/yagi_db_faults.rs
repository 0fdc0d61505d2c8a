//! yagi-event when the database itself fails, against the real RabbitMQ, MariaDB and
//! SQLite: the worker's INSERT privilege revoked for 20 s in the middle of a stream,
//! the MariaDB server switched read-only for 20 s, and the disk under the SQLite file
//! full for 20 s (a small tmpfs the test mounts and fills: root, as for the e2e
//! node; a read-only file cannot be simulated for a running process, whose open
//! descriptors stay writable). Each is an outage, not poison: the worker stops
//! acknowledging, reports not-ready, retries, and once the database is back every
//! distillable notification is stored exactly once and nothing distillable is
//! dead-lettered.
//!
//! One test runs the scenarios in turn: `read_only` is server-wide and must not
//! overlap another test of this binary.

mod yagi_support;

use sqlx::Connection;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use yagi_support::*;

const N: usize = 600;
const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_faults_are_outages_not_poison() {
    for (name, fault) in [
        ("revoked INSERT", Fault::RevokeInsert),
        ("read-only server", Fault::ReadOnlyServer),
        ("SQLite disk full", Fault::SqliteDiskFull),
    ] {
        // STV3_DB_FAULTS=sqlite (or revoke, readonly) runs one scenario.
        if std::env::var("STV3_DB_FAULTS").is_ok_and(|only| !name.contains(only.as_str())) {
            continue;
        }
        let t = Instant::now();
        run(fault).await;
        eprintln!("{name}: {:?}", t.elapsed());
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    RevokeInsert,
    ReadOnlyServer,
    SqliteDiskFull,
}

async fn admin() -> sqlx::MySqlConnection {
    sqlx::MySqlConnection::connect(&mysql_base_url())
        .await
        .expect("connect to MariaDB as the test user")
}

async fn exec(sql: &str) {
    let mut c = admin().await;
    sqlx::query(sql)
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Ends every connection of `user`, so privilege changes reach the worker's pool
/// (MariaDB caches database-level privileges per connection).
async fn kill_connections(user: &str) {
    let mut c = admin().await;
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM information_schema.processlist WHERE user = ?")
            .bind(user)
            .fetch_all(&mut c)
            .await
            .expect("processlist");
    for id in ids {
        let _ = sqlx::query(&format!("KILL CONNECTION {id}"))
            .execute(&mut c)
            .await;
    }
}

/// Puts the server back to read-write even when the test fails half-way.
struct ReadWriteAgain;

impl Drop for ReadWriteAgain {
    fn drop(&mut self) {
        let _ = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut c = sqlx::MySqlConnection::connect(&mysql_base_url())
                    .await
                    .ok()?;
                sqlx::query("SET GLOBAL read_only = 0")
                    .execute(&mut c)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A small tmpfs for the SQLite file, filled up to make the disk full; unmounted
/// when dropped.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "stv3-test-disk"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount a tmpfs at {}: the SQLite disk-full scenario needs root \
             (CAP_SYS_ADMIN), as the e2e node does",
            dir.display()
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    fn filler(&self) -> std::path::PathBuf {
        self.dir.join("filler")
    }

    /// Writes until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).expect("filler");
        let block = vec![0u8; 1 << 16];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

async fn sqlite_ids(db: &Path) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let Ok(mut c) = sqlx::SqliteConnection::connect(&url).await else {
        return Vec::new();
    };
    sqlx::query_scalar::<_, String>("SELECT message_id FROM event")
        .fetch_all(&mut c)
        .await
        .unwrap_or_default()
}

async fn run(fault: Fault) {
    let tag = match fault {
        Fault::RevokeInsert => "revoke",
        Fault::ReadOnlyServer => "readonly",
        Fault::SqliteDiskFull => "sqlite-full",
    };
    let env = Env::new(tag, 20).await;
    let notes = notifications(7, N);
    let expected = expected_ids(&env.winchester_yaml, &notes);
    let total = expected.len() as u64;

    // The worker's own database account (or file), which the fault takes away.
    let worker_user = format!("stv3w_{}", &env.db_name[7..19]);
    let disk = (fault == Fault::SqliteDiskFull).then(|| SmallDisk::mount(&env.dir.join("disk")));
    let sqlite_db = env.dir.join("disk").join("winchester.db");
    let worker_url = match fault {
        Fault::SqliteDiskFull => format!("sqlite://{}", sqlite_db.display()),
        _ => {
            for host in ["127.0.0.1", "localhost"] {
                exec(&format!(
                    "CREATE USER '{worker_user}'@'{host}' IDENTIFIED BY 'w'"
                ))
                .await;
                exec(&format!(
                    "GRANT ALL PRIVILEGES ON `{}`.* TO '{worker_user}'@'{host}'",
                    env.db_name
                ))
                .await;
            }
            env.db_url
                .replacen("stv3:stv3@", &format!("{worker_user}:w@"), 1)
        }
    };
    assert!(worker_url.contains(&worker_user) || fault == Fault::SqliteDiskFull);
    let yaml = std::fs::read_to_string(&env.winchester_yaml).expect("winchester.yaml");
    std::fs::write(&env.winchester_yaml, yaml.replace(&env.db_url, &worker_url))
        .expect("write winchester.yaml");
    let stored = || async {
        match fault {
            Fault::SqliteDiskFull => sqlite_ids(&sqlite_db).await.len() as u64,
            _ => env.stored_count().await,
        }
    };

    let broker = Broker::connect().await.expect("RabbitMQ");
    broker.declare(&env).await;
    broker.publish_json(&env, &notes).await;
    let mut child = env.spawn_worker(0);

    // Let a sixth of the stream in, then take the database away.
    let started = Instant::now();
    while stored().await < total / 6 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing stored\n{}",
            env.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _read_write = ReadWriteAgain;
    match fault {
        Fault::RevokeInsert => {
            for host in ["127.0.0.1", "localhost"] {
                exec(&format!(
                    "REVOKE INSERT ON `{}`.* FROM '{worker_user}'@'{host}'",
                    env.db_name
                ))
                .await;
            }
            kill_connections(&worker_user).await;
        }
        Fault::ReadOnlyServer => exec("SET GLOBAL read_only = 1").await,
        Fault::SqliteDiskFull => disk.as_ref().expect("disk").fill(),
    }
    let during = stored().await;
    eprintln!("{tag}: database taken away with {during}/{total} stored");

    // While it is away: nothing more is stored, nothing distillable is
    // dead-lettered, and the worker says it is not ready.
    let away = Instant::now();
    let mut saw_not_ready = false;
    while away.elapsed() < OUTAGE {
        saw_not_ready |= http_get(env.metrics_port, "/readyz").await.is_none()
            && http_get(env.metrics_port, "/healthz").await.is_some();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let dead_during = broker.depth(&env.dead_letter_queue).await as usize;
    assert!(
        dead_during <= N - expected.len(),
        "{tag}: {dead_during} dead-lettered during the outage, but only {} are undistillable\n{}",
        N - expected.len(),
        env.logs_tail()
    );
    assert!(
        saw_not_ready,
        "{tag}: /readyz never said not-ready during the outage"
    );
    assert!(
        stored().await <= during + 20,
        "{tag}: events were stored while the database was away"
    );

    // Back: everything is stored once, the queue drains, only the undistillable
    // notifications are in the dead-letter queue.
    match fault {
        Fault::RevokeInsert => {
            for host in ["127.0.0.1", "localhost"] {
                exec(&format!(
                    "GRANT INSERT ON `{}`.* TO '{worker_user}'@'{host}'",
                    env.db_name
                ))
                .await;
            }
            kill_connections(&worker_user).await;
        }
        Fault::ReadOnlyServer => exec("SET GLOBAL read_only = 0").await,
        Fault::SqliteDiskFull => disk.as_ref().expect("disk").free(),
    }
    let back = Instant::now();
    while stored().await < total {
        assert!(
            back.elapsed() < Duration::from_secs(90),
            "{tag}: only {} of {total} stored after the database came back\n{}",
            stored().await,
            env.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while broker.depth(&env.queue).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        broker.depth(&env.queue).await,
        0,
        "{tag}: queue not drained"
    );
    let m = env.metrics().await;
    let status = terminate(&mut child, Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{tag}: {status:?}");
    assert!(
        metric_sum(&m, "yagi_batch_retries_total", &[]) >= 1.0,
        "{tag}: no batch was retried"
    );

    let ids = match fault {
        Fault::SqliteDiskFull => sqlite_ids(&sqlite_db).await,
        _ => env.stored_ids().await,
    };
    assert_eq!(
        ids.len() as u64,
        total,
        "{tag}: events stored (no duplicates)"
    );
    let got: BTreeSet<String> = ids.into_iter().collect();
    assert_eq!(got, expected, "{tag}: no event lost");
    assert_eq!(
        broker.depth(&env.dead_letter_queue).await as usize,
        N - expected.len(),
        "{tag}: only undistillable notifications dead-lettered"
    );
    broker.close().await;
    if fault != Fault::SqliteDiskFull {
        for host in ["127.0.0.1", "localhost"] {
            exec(&format!("DROP USER IF EXISTS '{worker_user}'@'{host}'")).await;
        }
    }
    drop(disk);
    env.cleanup().await;
}
