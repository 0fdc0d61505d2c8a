//! The images as users get them, under a real OCI runtime: the node's containerd and
//! runc (e2e/cluster/node.sh), driven with `ctr` on the host network.
//!
//! - The daemonless archives (`./build.sh -p`) hold what the Dockerfiles' final stages
//!   say: paths, user, entrypoint, command, environment, labels.
//! - The `stv3` image migrates the test MariaDB (`stv3 db upgrade`), ingests from the
//!   test RabbitMQ (`yagi-event`, read-only root, uid 65532, config mounted where the
//!   operator mounts it, credentials from the environment), serves the exact distilled
//!   count (`stv3-api`) and fires streams (`pipeline-worker`); the operator image
//!   answers `/healthz` against the test control plane.
//! - Bad input (a missing config file, a wrong database password, an unreachable
//!   broker) makes a container exit or wait with one clear line, never panic.
//! - The test images (pause, MariaDB, RabbitMQ) start and answer.
//!
//! Needs the cluster of `e2e/cluster/up.sh` with its real node, the host's test
//! services (`scripts/services.sh up`) and the release binaries; `./build.sh -t` runs
//! all of it. Every container started here is removed at the end, failed or not.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use stv3_e2e::node::{self, ctr, http_get, quincy_count, release_bin};
use stv3_e2e::operator::{free_port, workspace};

/// The containerd namespace the node's images are in (kubelet's).
const NS: &str = "k8s.io";

// ------------------------------------------------------------------ containers

/// How to run one container.
#[derive(Default, Clone)]
struct Run<'a> {
    image: String,
    args: Vec<&'a str>,
    env: Vec<(String, String)>,
    /// (host path, container path, read-only).
    mounts: Vec<(PathBuf, &'a str, bool)>,
    read_only: bool,
}

/// A detached container on the host network, killed and removed when dropped.
struct Container {
    id: String,
    log: PathBuf,
}

impl Container {
    fn start(id: &str, run: Run) -> Result<Container> {
        let id = format!("stv3-smoke-{id}-{}", std::process::id());
        let log = std::env::temp_dir().join(format!("{id}.log"));
        let _ = std::fs::remove_file(&log);
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--net-host".into()];
        args.push("--log-uri".into());
        args.push(format!("file://{}", log.display()));
        if run.read_only {
            args.push("--read-only".into());
        }
        for (k, v) in &run.env {
            args.push("--env".into());
            args.push(format!("{k}={v}"));
        }
        for (src, dst, ro) in &run.mounts {
            args.push("--mount".into());
            let opts = if *ro { "rbind:ro" } else { "rbind:rw" };
            args.push(format!(
                "type=bind,src={},dst={dst},options={opts}",
                src.display()
            ));
        }
        args.push(run.image.clone());
        args.push(id.clone());
        args.extend(run.args.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let container = Container { id, log };
        ctr(NS, &refs)?;
        Ok(container)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (pid, status) from `ctr task ls`.
    fn task(&self) -> Option<(u32, String)> {
        let out = ctr(NS, &["task", "ls"]).ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == self.id).then_some(())?;
            Some((f.next()?.parse().ok()?, f.next()?.to_string()))
        })
    }

    fn running(&self) -> bool {
        self.task().is_some_and(|(_, s)| s == "RUNNING")
    }

    /// The uid the container's process runs as (from the host's /proc).
    fn uid(&self) -> Result<u32> {
        let (pid, _) = self.task().context("no task")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse().ok())
            .context("no Uid line")
    }

    /// Before a stopped task is deleted: the shim copies the process's output to the
    /// log file on its own, and deleting the task closes that copy, losing what was
    /// still in the pipe. CI lost a failed exit's last line (its error) that way:
    /// waiting after the delete found it missing even 5 s later. So this waits, up to
    /// 5 s, for a non-empty log that ends in an error line (every failed exit of ours
    /// logs one) or holds still for a second.
    fn log_copied(&self) {
        let start = Instant::now();
        let mut last = self.log_text();
        let mut still_since = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.log_text();
            if now != last {
                last = now;
                still_since = Instant::now();
                continue;
            }
            let ends_in_error = now
                .lines()
                .last()
                .is_some_and(|l| l.contains("\"level\":\"ERROR\""));
            if !now.is_empty() && (ends_in_error || still_since.elapsed() >= Duration::from_secs(1))
            {
                return;
            }
        }
    }

    /// Waits for the task to stop; its exit code (containerd reports a non-zero one
    /// when the task is deleted).
    fn wait_exit(&self, timeout: Duration) -> Result<i32> {
        let start = Instant::now();
        while self.running() {
            ensure!(
                start.elapsed() < timeout,
                "{} still runs after {timeout:?}; log:\n{}",
                self.id,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.log_copied();
        let out = Command::new("ctr")
            .arg("--address")
            .arg(node::containerd_socket())
            .args(["--namespace", NS, "task", "rm", &self.id])
            .output()?;
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        Ok(text
            .split("exit code ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let sock = node::containerd_socket();
        let c = |args: &[&str]| {
            let _ = Command::new("ctr")
                .arg("--address")
                .arg(&sock)
                .args(["--namespace", NS])
                .args(args)
                .output();
        };
        c(&["task", "kill", "-s", "SIGKILL", &self.id]);
        for _ in 0..50 {
            if !self.running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        c(&["task", "rm", "-f", &self.id]);
        c(&["container", "rm", &self.id]);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs a container to its end (at most `timeout`): (exit code, output).
///
/// `ctr`'s file log can lose the last line a process writes just before it exits: CI
/// twice saw a failed exit whose log held its start-up line but not the error that
/// followed (run outside a container, the same binary and input print it every time),
/// neither 5 s after the task was deleted nor when the log was left a second to settle
/// before. So a failed exit whose log holds no error line is run again, up to three
/// times in all; a process that never logs one still fails the test.
fn run_to_end(id: &str, run: Run, timeout: Duration) -> Result<(i32, String)> {
    let mut result = (0, String::new());
    for attempt in 1..=3 {
        let c = Container::start(&format!("{id}-{attempt}"), run.clone())?;
        let code = c.wait_exit(timeout)?;
        let log = settled_log(&c, code != 0);
        let complete = code == 0 || log.contains("\"level\":\"ERROR\"");
        if complete {
            return Ok((code, log));
        }
        eprintln!(
            "{id}: exit {code} and no error line in the captured log (attempt {attempt}):\n{log}"
        );
        result = (code, log);
    }
    Ok(result)
}

/// The log of an exited container once the shim has finished copying it: the shim
/// copies the output to the file on its own, and after a quick exit on a loaded
/// machine the file was read still empty (CI saw a one-line error missing), or held
/// the start-up line but not yet the error that followed it. Waits, up to 5 s, for a
/// non-empty log that holds still for 200 ms and, after a failed exit (`failed`),
/// holds an error line (every failed exit of ours logs one; a log without it after
/// 5 s is returned as it is, for the test to fail on).
fn settled_log(c: &Container, failed: bool) -> String {
    let start = Instant::now();
    let mut last = c.log_text();
    while start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        let now = c.log_text();
        let complete = !failed || now.contains("\"level\":\"ERROR\"");
        if !now.is_empty() && now == last && complete {
            return now;
        }
        last = now;
    }
    last
}

/// Polls `probe` every 300 ms until it yields `Some`.
fn poll<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what} (last error: {last})");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs a future on the one runtime of this test binary (so that a kube Client made in
/// one call works in the next); the tests themselves are plain threads.
fn block<F: std::future::Future>(f: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
    .block_on(f)
}

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Result<TempDir> {
        let p = std::env::temp_dir().join(format!("stv3-smoke-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a file or directory readable (and directories listable) by every user: the
/// containers run as 65532.
fn world_readable(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if p.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    if p.is_dir() {
        for e in std::fs::read_dir(p)? {
            world_readable(&e?.path())?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ host services

/// The test MariaDB's URL (scripts/services.sh env), with the database replaced.
fn mysql_url(database: &str) -> Result<String> {
    let url = std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".into());
    let (base, _) = url
        .rsplit_once('/')
        .context("a MySQL URL with a database")?;
    Ok(format!("{base}/{database}"))
}

/// Runs SQL on the test MariaDB with the `mariadb` client, as the test user.
fn sql(database: Option<&str>, statement: &str) -> Result<String> {
    let url = mysql_url("x")?;
    let rest = url.strip_prefix("mysql://").context("mysql:// URL")?;
    let (auth, host) = rest.split_once('@').context("user in the URL")?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, _) = host.split_once('/').unwrap_or((host, ""));
    let (h, p) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let mut cmd = Command::new("mariadb");
    cmd.args(["-h", h, "-P", p, "-u", user, "-N", "-B", "-e", statement])
        .env("MYSQL_PWD", password);
    if let Some(db) = database {
        cmd.arg(db);
    }
    let out = cmd.output().context("running the mariadb client")?;
    ensure!(
        out.status.success(),
        "mariadb -e {statement:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A database of its own on the test MariaDB, dropped when dropped.
struct Database(String);

impl Database {
    fn create(name: &str) -> Result<Database> {
        let db = format!("stv3_smoke_{name}_{}", std::process::id());
        sql(
            None,
            &format!("DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`"),
        )?;
        Ok(Database(db))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = sql(None, &format!("DROP DATABASE IF EXISTS `{}`", self.0));
    }
}

fn amqp_url() -> String {
    std::env::var("STV3_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// (user, password, host, port) of the test RabbitMQ.
fn amqp_parts() -> Result<(String, String, String, u16)> {
    let url = amqp_url();
    let rest = url.strip_prefix("amqp://").context("amqp:// URL")?;
    let (auth, host) = rest
        .split_once('@')
        .context("credentials in the AMQP URL")?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let hostport = host.split('/').next().unwrap_or(host);
    let (h, p) = hostport.split_once(':').unwrap_or((hostport, "5672"));
    Ok((user.into(), password.into(), h.into(), p.parse()?))
}

// ------------------------------------------------------------------ the region's files

/// A one-cell region as the operator renders it: `<dir>/region/winchester.yaml` and
/// `<dir>/cell/yagi.conf`, mounted at /etc/stv3/region and /etc/stv3/cell as the
/// operator's Deployments mount them. The cell consumes `queue` on `exchange`.
fn render_region(dir: &Path, host: &str, port: u16, exchange: &str, queue: &str) -> Result<()> {
    use operator::crd::StackTachRegion;
    let region: StackTachRegion = serde_json::from_value(serde_json::json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "smoke", "namespace": "smoke" },
        "spec": {
            "cells": [{ "name": "cell1",
                        "rabbitmq": { "host": host, "port": port, "credentialsSecretRef": { "name": "x" } },
                        "queues": [{ "name": queue, "exchange": exchange, "routingKey": queue }] }],
            "database": { "managed": {} },
            "pipelineWorkers": { "idleDelaySeconds": 1 }
        }
    }))?;
    std::fs::create_dir_all(dir.join("region"))?;
    std::fs::create_dir_all(dir.join("cell"))?;
    std::fs::write(
        dir.join("region/winchester.yaml"),
        operator::desired::render_winchester_yaml(&region),
    )?;
    std::fs::write(
        dir.join("cell/yagi.conf"),
        operator::desired::render_yagi_conf(&region.spec.cells[0]),
    )?;
    world_readable(dir)
}

/// Notifications as notigen makes them for `seed`, published to the test RabbitMQ,
/// and how many of them the event definitions the image ships keep.
fn publish(seed: u64, count: u64, exchange: &str, queue: &str) -> Result<u64> {
    let stv3 = release_bin("stv3")?;
    let start = "2026-01-01T00:00:00Z";
    let file = std::env::temp_dir().join(format!("stv3-smoke-{}-{seed}.jsonl", std::process::id()));
    let common = |c: &mut Command| {
        c.args([
            "notigen",
            "--seed",
            &seed.to_string(),
            "--count",
            &count.to_string(),
        ])
        .args(["--start", start, "--instances", "20"]);
    };
    let mut gen = Command::new(&stv3);
    common(&mut gen);
    gen.arg("-o").arg(&file);
    ensure!(gen.status()?.success(), "stv3 notigen -o failed");
    let out = Command::new(&stv3)
        .args(["distill", "-d"])
        .arg(workspace().join("etc/event_definitions.yaml"))
        .arg(&file)
        .output()?;
    ensure!(out.status.success(), "stv3 distill failed");
    let kept = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.get("event_type").is_some()))
        .count() as u64;
    let _ = std::fs::remove_file(&file);
    let mut pubr = Command::new(&stv3);
    common(&mut pubr);
    pubr.args([
        "--amqp",
        &amqp_url(),
        "--exchange",
        exchange,
        "--queue",
        queue,
    ]);
    let out = pubr.output()?;
    ensure!(
        out.status.success(),
        "stv3 notigen --amqp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(kept)
}

// ------------------------------------------------------------------ Dockerfiles vs archives

/// What a Dockerfile's final stage declares.
#[derive(Debug, Default)]
struct FinalStage {
    user: String,
    env: Vec<String>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    labels: BTreeMap<String, String>,
    /// Absolute paths of files the stage puts in the image.
    files: Vec<String>,
}

/// Reads the final stage: instructions after the last FROM (continuations joined),
/// `${VERSION}`/`${REVISION}` substituted; the build stage's `cp target/release/X ... /out/`
/// names what `COPY --from=build /out/ DEST` brings.
fn final_stage(dockerfile: &str, version: &str, revision: &str) -> Result<FinalStage> {
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .context("no FROM")?;
    let built: Vec<String> = joined
        .split("target/release/")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next().map(str::to_string))
        .collect();
    let mut st = FinalStage::default();
    for line in &lines[last_from + 1..] {
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest
            .replace("${VERSION}", version)
            .replace("${REVISION}", revision);
        match op {
            "USER" => st.user = rest.trim().to_string(),
            "ENV" => st.env.push(rest.trim().to_string()),
            "ENTRYPOINT" => st.entrypoint = Some(serde_json::from_str(&rest)?),
            "CMD" => st.cmd = Some(serde_json::from_str(&rest)?),
            "LABEL" => {
                // key="value" pairs; values may hold spaces.
                for part in rest.split("\" ").map(|p| p.trim()) {
                    if let Some((k, v)) = part.split_once('=') {
                        st.labels.insert(k.trim().to_string(), v.trim_matches('"').to_string());
                    }
                }
            }
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let (dest, srcs) = words.split_last().context("COPY without a destination")?;
                if srcs.first() == Some(&"--from=build") {
                    for b in &built {
                        st.files.push(format!("{}{b}", dest));
                    }
                } else {
                    for s in srcs {
                        let name = s.rsplit('/').next().unwrap_or(s);
                        st.files.push(format!("{dest}{name}"));
                    }
                }
            }
            "ARG" => {}
            other => bail!("the final stage has {other}: scripts/images.sh only reproduces COPY/ENV/USER/LABEL/ENTRYPOINT/CMD/ARG"),
        }
    }
    Ok(st)
}

/// The image config and the files (path → mode) of an OCI archive's only image.
fn read_archive(path: &Path) -> Result<(Value, BTreeMap<String, u32>)> {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index = Vec::new();
    let file = std::fs::File::open(path)
        .with_context(|| format!("{}: run ./build.sh -p", path.display()))?;
    for entry in tar::Archive::new(file).entries()? {
        let mut e = entry?;
        let name = e
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        if name == "index.json" {
            index = data;
        } else if let Some(d) = name.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{d}"), data);
        }
    }
    let index: Value = serde_json::from_slice(&index)?;
    let blob = |digest: &str| -> Result<&Vec<u8>> {
        blobs
            .get(digest)
            .with_context(|| format!("no blob {digest}"))
    };
    let manifest: Value = serde_json::from_slice(blob(
        index
            .pointer("/manifests/0/digest")
            .and_then(Value::as_str)
            .context("no manifest")?,
    )?)?;
    let config: Value = serde_json::from_slice(blob(
        manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .context("no config")?,
    )?)?;
    let mut files = BTreeMap::new();
    for layer in manifest["layers"].as_array().context("no layers")? {
        let data = blob(layer["digest"].as_str().context("layer digest")?)?;
        let gz = flate2::read::GzDecoder::new(&data[..]);
        for entry in tar::Archive::new(gz).entries()? {
            let e = entry?;
            let p = format!("/{}", e.path()?.to_string_lossy().trim_start_matches("./"));
            files.insert(p.trim_end_matches('/').to_string(), e.header().mode()?);
        }
    }
    Ok((config, files))
}

fn revision() -> String {
    Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(workspace())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn images_dir() -> PathBuf {
    std::env::var_os("STV3_E2E_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("dist/images"))
}

#[test]
#[ignore = "needs ./build.sh -p's images (dist/images); ./build.sh -t runs it with the e2e tests"]
fn the_daemonless_images_are_laid_out_as_the_dockerfiles_say() -> Result<()> {
    let version = node::VERSION;
    for (dockerfile, archive, programs) in [
        (
            "worker/Dockerfile",
            format!("stv3-{version}.oci.tar"),
            vec![
                "stv3",
                "yagi-event",
                "pipeline-worker",
                "stv3-api",
                "klugman",
            ],
        ),
        (
            "operator/Dockerfile",
            format!("stv3-operator-{version}.oci.tar"),
            vec!["stv3-operator"],
        ),
    ] {
        let text = std::fs::read_to_string(workspace().join(dockerfile))?;
        let want = final_stage(&text, version, &revision())?;
        let (config, files) = read_archive(&images_dir().join(&archive))?;
        let c = &config["config"];
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
        };
        assert_eq!(
            c["User"].as_str(),
            Some(want.user.as_str()),
            "{archive}: user"
        );
        assert_eq!(want.user, "65532:65532", "{dockerfile}: uid 65532");
        let env = strings(&c["Env"]).unwrap_or_default();
        for e in &want.env {
            assert!(env.contains(e), "{archive}: ENV {e} missing from {env:?}");
        }
        let entrypoint = strings(&c["Entrypoint"]).unwrap_or_default();
        assert_eq!(
            entrypoint,
            want.entrypoint.clone().unwrap_or_default(),
            "{archive}: entrypoint"
        );
        assert_eq!(strings(&c["Cmd"]), want.cmd, "{archive}: cmd");
        for (k, v) in &want.labels {
            assert_eq!(
                c["Labels"][k].as_str(),
                Some(v.as_str()),
                "{archive}: label {k}"
            );
        }
        for k in ["version", "revision", "source", "licenses"] {
            assert!(
                want.labels
                    .contains_key(&format!("org.opencontainers.image.{k}")),
                "{dockerfile}: no org.opencontainers.image.{k} label"
            );
        }
        assert_eq!(c["Labels"]["org.opencontainers.image.version"], version);
        for f in &want.files {
            assert!(files.contains_key(f), "{archive}: {f} missing");
        }
        for p in &programs {
            let path = format!("/usr/local/bin/{p}");
            let mode = files
                .get(&path)
                .with_context(|| format!("{archive}: no {path}"))?;
            assert!(mode & 0o111 != 0, "{archive}: {path} is not executable");
        }
        assert!(
            files.contains_key("/etc/ssl/certs/ca-certificates.crt"),
            "{archive}: CA certificates"
        );
        assert!(
            !files.contains_key("/bin/sh"),
            "{archive}: no shell is needed"
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ the product's images

#[test]
#[ignore = "needs the test cluster with its real node: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
fn the_stv3_image_runs_a_region_and_the_operator_image_answers() -> Result<()> {
    block(node::require_node(&block(stv3_e2e::admin_client())?))?;
    let image = node::stv3_image();
    let db = Database::create("run")?;
    let url = mysql_url(&db.0)?;
    let (user, password, host, port) = amqp_parts()?;
    let tag = format!("smoke{}", std::process::id());
    let (exchange, queue) = (format!("{tag}.nova"), format!("{tag}.notifications.info"));
    let dir = TempDir::new("region")?;
    render_region(&dir.0, &host, port, &exchange, &queue)?;

    // 1. The migration Job's command migrates the test MariaDB.
    let (code, log) = run_to_end(
        "migrate",
        Run {
            image: image.clone(),
            args: vec!["stv3", "db", "upgrade"],
            env: vec![("STV3_DATABASE_URL".into(), url.clone())],
            read_only: true,
            ..Default::default()
        },
        Duration::from_secs(120),
    )?;
    ensure!(code == 0, "stv3 db upgrade exited {code}:\n{log}");
    let tables = sql(Some(&db.0), "SHOW TABLES")?;
    for t in ["event", "event_trait", "stream"] {
        assert!(
            tables.lines().any(|l| l.trim() == t),
            "no table {t} after db upgrade: {tables}"
        );
    }

    // 2. yagi-event as the operator runs it.
    let yagi_port = free_port()?;
    let yagi_metrics = format!("127.0.0.1:{yagi_port}");
    let yagi = Container::start(
        "yagi",
        Run {
            image: image.clone(),
            args: vec![
                "yagi-event",
                "--config",
                "/etc/stv3/cell/yagi.conf",
                "--metrics-listen",
                &yagi_metrics,
            ],
            env: vec![
                ("STV3_AMQP_USER".into(), user.clone()),
                ("STV3_AMQP_PASSWORD".into(), password.clone()),
                ("STV3_DATABASE_URL".into(), url.clone()),
            ],
            mounts: vec![
                (dir.0.join("region"), "/etc/stv3/region", true),
                (dir.0.join("cell"), "/etc/stv3/cell", true),
            ],
            read_only: true,
        },
    )?;
    poll("yagi-event /readyz", Duration::from_secs(60), || {
        ensure!(yagi.running(), "yagi-event exited:\n{}", yagi.log_text());
        Ok(block(http_get(&yagi_metrics, "/readyz"))
            .ok()
            .filter(|(c, _)| *c == 200))
    })?;
    assert_eq!(yagi.uid()?, 65532, "yagi-event runs as 65532");

    // 3. The API, as the operator runs it.
    let api_addr = format!("127.0.0.1:{}", free_port()?);
    let api = Container::start(
        "api",
        Run {
            image: image.clone(),
            args: vec![
                "stv3-api",
                "--config",
                "/etc/stv3/region/winchester.yaml",
                "--listen",
                &api_addr,
            ],
            env: vec![("STV3_DATABASE_URL".into(), url.clone())],
            mounts: vec![(dir.0.join("region"), "/etc/stv3/region", true)],
            read_only: true,
        },
    )?;
    // 4. Notifications in; exactly the distilled count out of the API.
    let kept = publish(11, 1500, &exchange, &queue)?;
    ensure!(kept > 1000, "the definitions keep {kept} of 1500");
    let counted = poll(
        "the API to count every distilled event",
        Duration::from_secs(120),
        || {
            ensure!(api.running(), "stv3-api exited:\n{}", api.log_text());
            let (code, body) = block(http_get(&api_addr, "/v1/events/count"))?;
            ensure!(code == 200, "{code}: {body}");
            let n = quincy_count(&body)?;
            Ok((n >= kept).then_some(n))
        },
    )?;
    assert_eq!(
        counted, kept,
        "the API counts exactly what the distiller keeps"
    );

    // The pipeline worker starts once the count is checked (its usage handler adds
    // events of its own).
    let worker_metrics = format!("127.0.0.1:{}", free_port()?);
    let worker = Container::start(
        "worker",
        Run {
            image: image.clone(),
            args: vec![
                "pipeline-worker",
                "--config",
                "/etc/stv3/region/winchester.yaml",
                "--metrics-listen",
                &worker_metrics,
            ],
            env: vec![("STV3_DATABASE_URL".into(), url.clone())],
            mounts: vec![(dir.0.join("region"), "/etc/stv3/region", true)],
            read_only: true,
        },
    )?;

    // 5. The pipeline worker fires streams (the seeded day's .exists audits).
    // Completed streams are purged (the region's default), so the worker's own counts
    // and the usage handler's events in the API show what fired and expired.
    poll(
        "streams fired and expired, and usage events",
        Duration::from_secs(120),
        || {
            ensure!(
                worker.running(),
                "pipeline-worker exited:\n{}",
                worker.log_text()
            );
            let (_, m) = block(http_get(&worker_metrics, "/metrics"))?;
            let fired = node::metric_sum(&m, "stv3_pipeline_streams_total", &[("kind", "fire")]);
            let expired =
                node::metric_sum(&m, "stv3_pipeline_streams_total", &[("kind", "expire")]);
            let failed =
                node::metric_sum(&m, "stv3_pipeline_streams_total", &[("result", "error")]);
            ensure!(failed == 0.0, "pipelines failed:\n{m}");
            let (_, body) = block(http_get(
                &api_addr,
                "/v1/events/count?event_name=compute.instance.exists.verified",
            ))?;
            let verified = quincy_count(&body)?;
            Ok((fired > 0.0 && expired > 0.0 && verified > 0).then_some(()))
        },
    )?;
    for c in [&yagi, &api, &worker] {
        let log = c.log_text();
        assert!(!log.contains("panicked"), "{}: {log}", c.id);
        assert!(
            log.lines().all(|l| l.starts_with('{')),
            "{}: JSON log lines only:\n{log}",
            c.id
        );
        // The test services' users and passwords are alike (guest/guest, stv3/stv3):
        // look for them as URL credentials.
        for secret in [
            format!(":{password}@"),
            format!("{user}:{password}"),
            ":stv3@".to_string(),
        ] {
            assert!(
                !log.contains(&secret),
                "{}: a credential ({secret}) in the log:\n{log}",
                c.id
            );
        }
    }

    // 6. The operator image starts against the test control plane and answers /healthz.
    let kube = TempDir::new("kube")?;
    std::fs::copy(stv3_e2e::kubeconfig_path(), kube.0.join("config"))?;
    world_readable(&kube.0)?;
    let client = block(stv3_e2e::admin_client())?;
    let ns = block(stv3_e2e::TestNamespace::create(&client, "smoke"))?;
    let op_addr = format!("127.0.0.1:{}", free_port()?);
    let op = Container::start(
        "operator",
        Run {
            image: node::operator_image(),
            env: vec![
                ("KUBECONFIG".into(), "/kube/config".into()),
                ("METRICS_LISTEN".into(), op_addr.clone()),
                ("WATCH_NAMESPACE".into(), ns.name.clone()),
                ("LEADER_ELECTION_NAMESPACE".into(), ns.name.clone()),
                ("POD_NAME".into(), "smoke".into()),
            ],
            mounts: vec![(kube.0.clone(), "/kube", true)],
            read_only: true,
            ..Default::default()
        },
    )?;
    poll(
        "the operator's /healthz and /readyz",
        Duration::from_secs(60),
        || {
            ensure!(op.running(), "stv3-operator exited:\n{}", op.log_text());
            let (h, _) = block(http_get(&op_addr, "/healthz"))?;
            let (r, _) = block(http_get(&op_addr, "/readyz"))?;
            Ok((h == 200 && r == 200).then_some(()))
        },
    )?;
    assert_eq!(op.uid()?, 65532, "the operator runs as 65532");
    drop(op);
    block(ns.delete())?;
    Ok(())
}

#[test]
#[ignore = "needs the test cluster with its real node: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
fn bad_input_makes_a_container_exit_or_wait_with_one_clear_line() -> Result<()> {
    block(node::require_node(&block(stv3_e2e::admin_client())?))?;
    let image = node::stv3_image();
    let db = Database::create("bad")?;
    let url = mysql_url(&db.0)?;
    let (user, password, host, port) = amqp_parts()?;
    let dir = TempDir::new("bad")?;
    render_region(&dir.0, &host, port, "smoke.bad", "smoke.bad.info")?;
    let empty = TempDir::new("empty")?;
    world_readable(&empty.0)?;
    let yagi = |mounts: Vec<(PathBuf, &'static str, bool)>, env: Vec<(String, String)>| Run {
        image: image.clone(),
        args: vec![
            "yagi-event",
            "--config",
            "/etc/stv3/cell/yagi.conf",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        env,
        mounts,
        read_only: true,
    };
    let creds = |db_url: &str| {
        vec![
            ("STV3_AMQP_USER".to_string(), user.clone()),
            ("STV3_AMQP_PASSWORD".to_string(), password.clone()),
            ("STV3_DATABASE_URL".to_string(), db_url.to_string()),
        ]
    };
    let errors = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("\"level\":\"WARN\""))
            .map(str::to_string)
            .collect()
    };

    // A region config file missing from its read-only mount: exit 2, one line naming it.
    let (code, log) = run_to_end(
        "nofile",
        yagi(
            vec![
                (empty.0.clone(), "/etc/stv3/region", true),
                (dir.0.join("cell"), "/etc/stv3/cell", true),
            ],
            creds(&url),
        ),
        Duration::from_secs(30),
    )?;
    assert_eq!(code, 2, "a missing winchester.yaml: exit 2\n{log}");
    let lines = errors(&log);
    assert_eq!(lines.len(), 1, "one clear line:\n{log}");
    assert!(
        lines[0].contains("/etc/stv3/region/winchester.yaml"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    // A wrong database password: exits with one line saying access was denied, and the
    // password is in no line.
    let wrong = url.replacen(":stv3@", ":not-the-password@", 1);
    ensure!(
        wrong != url,
        "the test URL has no password to replace: {url}"
    );
    let (code, log) = run_to_end(
        "badpw",
        yagi(
            vec![
                (dir.0.join("region"), "/etc/stv3/region", true),
                (dir.0.join("cell"), "/etc/stv3/cell", true),
            ],
            creds(&wrong),
        ),
        Duration::from_secs(60),
    )?;
    assert_ne!(code, 0, "a wrong database password: exit non-zero\n{log}");
    let lines = errors(&log);
    assert_eq!(lines.len(), 1, "one clear line:\n{log}");
    assert!(lines[0].to_lowercase().contains("access denied"), "{log}");
    assert!(
        !log.contains("not-the-password"),
        "the password leaked:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    // An unreachable RabbitMQ: it waits (running, /healthz answering) and says so once.
    let nowhere = TempDir::new("nowhere")?;
    render_region(&nowhere.0, "127.0.0.1", 1, "smoke.bad", "smoke.bad.info")?;
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let mut run = yagi(
        vec![
            (nowhere.0.join("region"), "/etc/stv3/region", true),
            (nowhere.0.join("cell"), "/etc/stv3/cell", true),
        ],
        creds(&url),
    );
    run.args = vec![
        "yagi-event",
        "--config",
        "/etc/stv3/cell/yagi.conf",
        "--metrics-listen",
        &metrics,
    ];
    let c = Container::start("nobroker", run)?;
    poll(
        "a reconnect attempt logged",
        Duration::from_secs(30),
        || Ok(c.log_text().contains("cannot consume").then_some(())),
    )?;
    std::thread::sleep(Duration::from_secs(8));
    assert!(c.running(), "it must wait, not exit:\n{}", c.log_text());
    let (code, _) = block(http_get(&metrics, "/healthz"))?;
    assert_eq!(
        code, 200,
        "/healthz answers while it waits (no liveness restarts)"
    );
    let (code, _) = block(http_get(&metrics, "/readyz"))?;
    assert_eq!(code, 503, "not ready while the broker is away");
    let log = c.log_text();
    let lines = errors(&log);
    assert_eq!(lines.len(), 1, "one clear line while it waits:\n{log}");
    assert!(
        lines[0].contains("127.0.0.1:1") || lines[0].contains("refused"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    Ok(())
}

// ------------------------------------------------------------------ the test images

#[test]
#[ignore = "needs the test cluster with its real node: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
fn the_test_images_start_and_answer() -> Result<()> {
    block(node::require_node(&block(stv3_e2e::admin_client())?))?;

    // The pause image: holds, then exits 0 on SIGTERM.
    let pause = Container::start(
        "pause",
        Run {
            image: "localhost/stv3-e2e/pause:test".into(),
            ..Default::default()
        },
    )?;
    std::thread::sleep(Duration::from_secs(1));
    assert!(pause.running(), "pause exited:\n{}", pause.log_text());
    ctr(NS, &["task", "kill", "-s", "SIGTERM", &pause.id])?;
    assert_eq!(pause.wait_exit(Duration::from_secs(10))?, 0);

    // MariaDB: initialises an empty volume (owned by the uid/gid 999 the operator runs
    // it as) with the database, user and passwords from the environment, once; a
    // second start keeps the data.
    let data = TempDir::new("mariadb")?;
    let chown = Command::new("chown")
        .args(["999:999"])
        .arg(&data.0)
        .status()?;
    ensure!(chown.success(), "chown 999:999 {}", data.0.display());
    let port = free_port()?;
    let env = vec![
        ("MYSQL_TCP_PORT".to_string(), port.to_string()),
        ("MYSQL_DATABASE".to_string(), "stv3".to_string()),
        ("MYSQL_USER".to_string(), "stv3".to_string()),
        ("MYSQL_PASSWORD".to_string(), "user-pw".to_string()),
        ("MYSQL_ROOT_PASSWORD".to_string(), "root-pw".to_string()),
    ];
    let mysql = |user: &str, pw: &str, stmt: &str| -> Result<String> {
        let out = Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "-u",
                user,
                "-N",
                "-B",
                "-e",
                stmt,
            ])
            .env("MYSQL_PWD", pw)
            .output()?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    let start_db = |name: &str| {
        Container::start(
            name,
            Run {
                image: node::MARIADB_IMAGE.into(),
                env: env.clone(),
                mounts: vec![(data.0.clone(), "/var/lib/mysql", false)],
                ..Default::default()
            },
        )
    };
    {
        let db = start_db("mariadb1")?;
        poll(
            "MariaDB to answer the stv3 user",
            Duration::from_secs(120),
            || {
                ensure!(db.running(), "mariadb exited:\n{}", db.log_text());
                Ok(mysql(
                    "stv3",
                    "user-pw",
                    "CREATE TABLE stv3.kept (n INT); INSERT INTO stv3.kept VALUES (7)",
                )
                .ok())
            },
        )?;
        assert_eq!(db.uid()?, 999);
        assert!(
            db.log_text()
                .contains("initialising the empty data directory"),
            "{}",
            db.log_text()
        );
        assert_eq!(
            mysql("root", "root-pw", "SELECT 1")?.trim(),
            "1",
            "root's password"
        );
        assert!(
            mysql("stv3", "wrong", "SELECT 1").is_err(),
            "a wrong password is refused"
        );
    }
    let db = start_db("mariadb2")?;
    let kept = poll(
        "MariaDB to restart on its data",
        Duration::from_secs(120),
        || {
            ensure!(db.running(), "mariadb exited:\n{}", db.log_text());
            Ok(mysql("stv3", "user-pw", "SELECT n FROM stv3.kept").ok())
        },
    )?;
    assert_eq!(kept.trim(), "7", "the data survives a restart");
    assert!(
        db.log_text().contains("already initialised"),
        "no second initialisation:\n{}",
        db.log_text()
    );
    drop(db);

    // RabbitMQ: the user and password from the environment, and nobody else.
    let amqp = free_port()?;
    let dist = free_port()?;
    let rabbit = Container::start(
        "rabbitmq",
        Run {
            image: node::RABBITMQ_IMAGE.into(),
            env: vec![
                ("RABBITMQ_DEFAULT_USER".into(), "cell".into()),
                ("RABBITMQ_DEFAULT_PASS".into(), "cell-pw".into()),
                ("RABBITMQ_NODE_PORT".into(), amqp.to_string()),
                ("RABBITMQ_DIST_PORT".into(), dist.to_string()),
                (
                    "RABBITMQ_NODENAME".into(),
                    format!("smoke{}@localhost", std::process::id()),
                ),
            ],
            ..Default::default()
        },
    )?;
    let stv3 = release_bin("stv3")?;
    let publish_as = |user: &str, pw: &str| -> Result<bool> {
        let out = Command::new(&stv3)
            .args(["notigen", "--seed", "1", "--count", "5"])
            .args([
                "--amqp",
                &format!("amqp://{user}:{pw}@127.0.0.1:{amqp}/%2f"),
            ])
            .args(["--exchange", "smoke", "--queue", "smoke.info"])
            .output()?;
        Ok(out.status.success())
    };
    poll(
        "RabbitMQ to take a publish from its user",
        Duration::from_secs(120),
        || {
            ensure!(rabbit.running(), "rabbitmq exited:\n{}", rabbit.log_text());
            Ok(publish_as("cell", "cell-pw")?.then_some(()))
        },
    )?;
    assert_eq!(rabbit.uid()?, 999);
    assert!(!publish_as("cell", "wrong")?, "a wrong password is refused");
    assert!(!publish_as("guest", "guest")?, "no guest user");
    Ok(())
}
