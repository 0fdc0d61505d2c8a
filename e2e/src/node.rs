//! The test cluster's real node, `stv3-node-0` (e2e/cluster/node.sh): pinning pods to it,
//! running one-off pods and Jobs from the project's images, reading their logs, talking
//! to pods and Services from the host (the host routes the pod network and, through
//! kube-proxy, Service IPs), and `ctr` against the node's containerd.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{ListParams, LogParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{logs_hint, state_dir, wait_for};

/// The real node's name.
pub const NODE: &str = "stv3-node-0";
/// The real node's label (`"true"`) and, beside kwok's fake node, its taint.
pub const NODE_KEY: &str = "stv3.io/real-node";
/// The version the images are tagged with (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `ghcr.io/stacktach/stv3:<version>`, as `./build.sh -p` builds it.
pub fn stv3_image() -> String {
    format!("ghcr.io/stacktach/stv3:{VERSION}")
}

/// `ghcr.io/stacktach/stv3-operator:<version>`.
pub fn operator_image() -> String {
    format!("ghcr.io/stacktach/stv3-operator:{VERSION}")
}

/// The e2e MariaDB image (e2e/images/mariadb).
pub const MARIADB_IMAGE: &str = "localhost/stv3-e2e/mariadb:test";
/// The e2e RabbitMQ image (e2e/images/rabbitmq).
pub const RABBITMQ_IMAGE: &str = "localhost/stv3-e2e/rabbitmq:test";

/// What a pod spec needs to run on the real node: its label, and its taint tolerated.
pub fn pin() -> Value {
    json!({
        "nodeSelector": { NODE_KEY: "true" },
        "tolerations": [{ "key": NODE_KEY, "operator": "Exists", "effect": "NoSchedule" }],
    })
}

/// Fails unless the real node is registered and Ready (up.sh without
/// `STV3_E2E_NO_NODE`).
pub async fn require_node(client: &Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get_opt(NODE).await?.with_context(|| {
        format!(
            "node {NODE} is not registered: start the cluster with e2e/cluster/up.sh as root \
             (without STV3_E2E_NO_NODE); {}",
            logs_hint()
        )
    })?;
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ensure!(ready, "node {NODE} is not Ready; {}", logs_hint());
    Ok(())
}

/// The cluster's bin dir (build-bins.sh), as up.sh recorded it.
pub fn bin_dir() -> Result<PathBuf> {
    let rec = state_dir().join("bin-dir");
    let dir = std::fs::read_to_string(&rec)
        .with_context(|| format!("reading {} (written by up.sh)", rec.display()))?;
    Ok(PathBuf::from(dir.trim()))
}

fn run(mut cmd: Command, what: &str) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The node's containerd socket.
pub fn containerd_socket() -> PathBuf {
    state_dir().join("node/containerd/containerd.sock")
}

/// `ctr` against the node's containerd in `namespace`; fails on a non-zero exit.
pub fn ctr(namespace: &str, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address")
        .arg(containerd_socket())
        .args(["--namespace", namespace])
        .args(args);
    run(cmd, &format!("ctr -n {namespace} {}", args.join(" ")))
}

/// The cluster's kubectl with the admin kubeconfig; fails on a non-zero exit.
pub fn kubectl(args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(bin_dir()?.join("kubectl"));
    cmd.arg("--kubeconfig")
        .arg(crate::kubeconfig_path())
        .args(args);
    run(cmd, &format!("kubectl {}", args.join(" ")))
}

/// `kubectl apply -n ns -f -` of YAML text.
pub fn apply_yaml(ns: &str, yaml: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(bin_dir()?.join("kubectl"))
        .arg("--kubeconfig")
        .arg(crate::kubeconfig_path())
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running kubectl apply")?;
    child
        .stdin
        .take()
        .context("kubectl's stdin")?
        .write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kubectl apply -n {ns} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A release binary of the workspace (`./build.sh -p` and `./build.sh -t` build them),
/// for computing on the host what the pods should arrive at.
pub fn release_bin(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::operator::workspace().join("target"));
    let bin = target.join("release").join(name);
    ensure!(
        bin.is_file(),
        "{} is missing: build the release binaries (./build.sh -p)",
        bin.display()
    );
    Ok(bin)
}

/// Every pod matching `selector` in `ns`.
pub async fn pods(client: &Client, ns: &str, selector: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// Whether a pod is Ready.
pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod's containers' restarts, summed.
pub fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// Pod name → (uid, restarts) of every pod in `ns` matching `selector`: what a step
/// that must not disturb them compares before and after.
pub async fn pod_identities(
    client: &Client,
    ns: &str,
    selector: &str,
) -> Result<BTreeMap<String, (String, i32)>> {
    Ok(pods(client, ns, selector)
        .await?
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                (p.metadata.uid.clone().unwrap_or_default(), restarts(p)),
            )
        })
        .collect())
}

/// Waits until `want` pods match `selector`, all Ready and on the real node.
pub async fn wait_pods_ready(
    client: &Client,
    ns: &str,
    selector: &str,
    want: usize,
    timeout: Duration,
) -> Result<Vec<Pod>> {
    wait_for(
        &format!("{want} Ready pod(s) {selector} in {ns} on {NODE}"),
        timeout,
        || async {
            let ps: Vec<Pod> = pods(client, ns, selector)
                .await?
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ok = ps.len() == want
                && ps.iter().all(|p| {
                    pod_ready(p)
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE)
                });
            Ok(ok.then_some(ps))
        },
    )
    .await
}

/// A pod's log (its only container's).
pub async fn pod_log(client: &Client, ns: &str, pod: &str) -> Result<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(api.logs(pod, &LogParams::default()).await?)
}

/// A container of a one-off pod or Job: `image` running `command` with `env` (a JSON
/// list of EnvVar), as uid 65532 on a read-only root.
pub fn container(name: &str, image: &str, command: &[&str], env: Value) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "resources": { "requests": { "cpu": "20m", "memory": "32Mi" } },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": { "drop": ["ALL"] },
        },
    })
}

/// Creates a Job of one container on the real node (no retries: a failure is the
/// test's to see).
pub async fn start_job(client: &Client, ns: &str, name: &str, container: Value) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let mut spec = pin();
    spec["restartPolicy"] = json!("Never");
    spec["containers"] = json!([container]);
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": name },
        "spec": { "backoffLimit": 0, "template": { "metadata": { "labels": { "job-name": name } }, "spec": spec } },
    }))?;
    jobs.create(&PostParams::default(), &job)
        .await
        .with_context(|| format!("creating Job {ns}/{name}"))?;
    Ok(())
}

/// Waits for a Job to succeed and returns its pod's log; a failed Job is an error
/// carrying that log.
pub async fn wait_job(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let outcome = wait_for(&format!("Job {ns}/{name} to finish"), timeout, || async {
        let s = jobs.get(name).await?.status.unwrap_or_default();
        Ok(if s.succeeded.unwrap_or(0) > 0 {
            Some(true)
        } else if s.failed.unwrap_or(0) > 0 {
            Some(false)
        } else {
            None
        })
    })
    .await?;
    let pod = pods(client, ns, &format!("job-name={name}"))
        .await?
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .with_context(|| format!("Job {name} has no pod"))?;
    let log = pod_log(client, ns, &pod).await?;
    ensure!(outcome, "Job {ns}/{name} failed; its log:\n{log}");
    Ok(log)
}

/// [`start_job`], then [`wait_job`].
pub async fn run_job(
    client: &Client,
    ns: &str,
    name: &str,
    container: Value,
    timeout: Duration,
) -> Result<String> {
    start_job(client, ns, name, container).await?;
    wait_job(client, ns, name, timeout).await
}

/// A Service's `<cluster IP>:<port>`, reachable from the host through kube-proxy.
pub async fn service_addr(client: &Client, ns: &str, name: &str) -> Result<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = api.get(name).await?;
    let spec = svc.spec.context("Service without spec")?;
    let ip = spec.cluster_ip.context("Service without cluster IP")?;
    let port = spec
        .ports
        .and_then(|p| p.first().map(|p| p.port))
        .context("Service without ports")?;
    Ok(format!("{ip}:{port}"))
}

/// HTTP/1.0 GET of `path` at `addr` (`host:port`): (status code, body).
pub async fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}: timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut out))
        .await
        .with_context(|| format!("GET {addr}{path}: no answer in 30 s"))??;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {addr}{path}: no HTTP status line in {out:?}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// The value of a Prometheus counter or gauge in a `/metrics` text, summed over the
/// label sets that carry every `name="value"` of `labels`; 0 when absent.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `[{"count": n}]` of a quincy count call, as n.
pub fn quincy_count(body: &str) -> Result<u64> {
    let v: Value = serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?;
    v.pointer("/0/count")
        .and_then(Value::as_u64)
        .with_context(|| format!("no count in {body}"))
}

/// Midnight UTC `days` days ago, as RFC 3339: a simulated start for notigen old enough
/// that every stream of its first day is ready at once (fired by its .exists, or expired
/// at last + 2 days).
pub fn days_ago_midnight(days: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let day = (now / 86400).saturating_sub(days) as i64;
    // The civil date of a day number (Howard Hinnant's days-to-civil).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
}
