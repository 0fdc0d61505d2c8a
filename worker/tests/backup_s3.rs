//! `worker::backup::upload` against a real S3-compatible server: the Versity S3 Gateway
//! (built from Go modules by e2e/s3gw/build.sh, cached), which checks SigV4 signatures
//! and stores objects as files under a directory, so what was stored can be read back
//! byte for byte. Three backup runs under retention 2 leave the newest two dumps;
//! another region's dump and a partial file are left alone; a dump larger than a part
//! goes up in several parts; a wrong secret key is refused.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use worker::backup::{self, S3Target};

const ACCESS: &str = "stv3-test-access";
const SECRET: &str = "stv3-test-secret-key";

/// The gateway binary: `STV3_S3GW`, else what e2e/s3gw/build.sh builds (or has built).
fn gateway_binary() -> PathBuf {
    if let Ok(p) = std::env::var("STV3_S3GW") {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/s3gw/build.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("running e2e/s3gw/build.sh");
    assert!(out.status.success(), "e2e/s3gw/build.sh failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A gateway on a free loopback port over a fresh directory with one bucket, `dumps`.
struct Gateway {
    child: Child,
    root: PathBuf,
    endpoint: String,
}

impl Gateway {
    fn start(tag: &str) -> Gateway {
        let root = std::env::temp_dir().join(format!("stv3-s3gw-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dumps")).expect("the bucket directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(gateway_binary())
            .args(["--access", ACCESS, "--secret", SECRET, "--port"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("posix")
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting versitygw");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "versitygw did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Gateway {
            child,
            root,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn target(&self, secret: &str) -> S3Target {
        S3Target {
            endpoint: Some(self.endpoint.clone()),
            bucket: "dumps".into(),
            prefix: "stv3/region-one".into(),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: ACCESS.into(),
            secret_access_key: secret.into(),
        }
    }

    /// The dumps stored under the prefix, by file name, with their bytes.
    fn stored(&self) -> Vec<(String, Vec<u8>)> {
        let dir = self.root.join("dumps/stv3/region-one");
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        (name, std::fs::read(e.path()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A directory holding `files` (name, bytes), as the dump step leaves it.
fn dump_dir(tag: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stv3-dumps-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir
}

#[tokio::test]
async fn dumps_go_up_and_the_oldest_beyond_the_retention_go() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gw = Gateway::start("retention");
    let target = gw.target(SECRET);
    // Another region's dump under the same prefix: never counted, never deleted.
    let other = dump_dir("other", &[("region-two-20261201T030000Z.sql.gz", b"two")]);
    backup::upload(&target, &other, "region-two", 1)
        .await
        .unwrap();

    // 20 MiB, more than one 16 MiB part; the bytes vary so that a misplaced part shows.
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let runs: [(&str, &[u8]); 3] = [
        ("region-one-20261204T030000Z.sql.gz", b"first"),
        ("region-one-20261205T030000Z.sql.gz", &big),
        ("region-one-20261206T030000Z.sql.gz", b"third"),
    ];
    let mut removed = Vec::new();
    for (i, (name, bytes)) in runs.iter().enumerate() {
        // The dump step's leftovers: a partial dump is not uploaded.
        let dir = dump_dir(
            &i.to_string(),
            &[
                (name, bytes),
                ("region-one-20261206T040000Z.sql.gz.partial", b"x"),
            ],
        );
        let report = backup::upload(&target, &dir, "region-one", 2)
            .await
            .unwrap();
        assert_eq!(
            report.uploaded,
            vec![(format!("stv3/region-one/{name}"), bytes.len() as u64)]
        );
        removed.extend(report.removed);
    }
    assert_eq!(
        removed,
        vec!["stv3/region-one/region-one-20261204T030000Z.sql.gz".to_string()]
    );
    let stored = gw.stored();
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "region-one-20261205T030000Z.sql.gz",
            "region-one-20261206T030000Z.sql.gz",
            "region-two-20261201T030000Z.sql.gz",
        ]
    );
    assert!(
        stored[0].1 == big,
        "the multipart dump is stored byte for byte"
    );
    assert_eq!(stored[1].1, b"third");
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_and_nothing_is_stored() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gw = Gateway::start("wrong");
    let dir = dump_dir("wrong", &[("region-one-20261206T030000Z.sql.gz", b"dump")]);
    let err = backup::upload(&gw.target("not-the-secret"), &dir, "region-one", 2)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("SignatureDoesNotMatch") || text.contains("403"),
        "the store says why: {text}"
    );
    assert!(gw.stored().is_empty());
}

#[tokio::test]
async fn an_empty_dump_directory_is_an_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gw = Gateway::start("empty");
    let dir = dump_dir("empty", &[("region-one-x.sql.gz.partial", b"half")]);
    let err = backup::upload(&gw.target(SECRET), &dir, "region-one", 2)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrote nothing"), "{err}");
}
