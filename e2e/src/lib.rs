//! Helpers for the end-to-end tests that run against the real test control plane
//! (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) started by
//! `e2e/cluster/up.sh`.
//!
//! The kubeconfig is read from `STV3_E2E_KUBECONFIG`, else from
//! `e2e/cluster/.state/kubeconfig`. Every error names the component logs in
//! `e2e/cluster/.state/logs/` so a failure can be traced to the server side.

pub mod node;
pub mod operator;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

/// Environment variable naming the kubeconfig of the running test cluster.
pub const KUBECONFIG_ENV: &str = "STV3_E2E_KUBECONFIG";

/// Default bounded wait for something the control plane does asynchronously.
pub const WAIT: Duration = Duration::from_secs(60);

/// `e2e/cluster/` in the source tree.
pub fn cluster_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster")
}

/// The kubeconfig the tests use.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os(KUBECONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => cluster_dir().join(".state").join("kubeconfig"),
    }
}

/// The cluster's state directory (where up.sh wrote the kubeconfig, pids and logs).
pub fn state_dir() -> PathBuf {
    kubeconfig_path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cluster_dir().join(".state"))
}

/// A hint naming the control-plane logs, appended to every failure.
pub fn logs_hint() -> String {
    let logs = state_dir().join("logs");
    let mut files: Vec<String> = std::fs::read_dir(&logs)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .filter(|p| p.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        format!(
            "no control-plane logs in {} (is the cluster up?)",
            logs.display()
        )
    } else {
        format!("control-plane logs: {}", files.join(", "))
    }
}

fn not_running_msg(path: &Path) -> String {
    format!(
        "no test cluster kubeconfig at {} — start the cluster with e2e/cluster/up.sh \
         (after e2e/cluster/build-bins.sh), or set {KUBECONFIG_ENV}; \
         ./build.sh -t does all of it",
        path.display()
    )
}

/// The admin kubeconfig as written by up.sh.
pub fn kubeconfig() -> Result<Kubeconfig> {
    let path = kubeconfig_path();
    if !path.is_file() {
        bail!(not_running_msg(&path));
    }
    Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))
}

async fn client_from(kc: Kubeconfig) -> Result<Client> {
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .context("building a kube Config from the test kubeconfig")?;
    Client::try_from(config).context("building a kube Client")
}

/// An admin (system:masters) client; checks the server answers before returning.
pub async fn admin_client() -> Result<Client> {
    let client = client_from(kubeconfig()?).await?;
    client.apiserver_version().await.with_context(|| {
        format!(
            "kube-apiserver at {} does not answer — is the cluster up \
             (e2e/cluster/up.sh)? {}",
            kubeconfig_path().display(),
            logs_hint()
        )
    })?;
    Ok(client)
}

/// An admin client that does not retry answers 429/503/504 itself (kube's default
/// client retries them with back-off for up to 15 attempts, which turns an eviction
/// refused by a PodDisruptionBudget into a call that waits for minutes).
pub async fn admin_client_without_retries() -> Result<Client> {
    let mut config = Config::from_custom_kubeconfig(kubeconfig()?, &KubeConfigOptions::default())
        .await
        .context("building a kube Config from the test kubeconfig")?;
    config.default_retry = false;
    Client::try_from(config).context("building a kube Client")
}

/// A client for the same server that authenticates with a bearer token only.
pub async fn token_client(token: &str) -> Result<Client> {
    let mut kc = kubeconfig()?;
    let auth: AuthInfo = serde_json::from_value(json!({ "token": token }))?;
    for user in &mut kc.auth_infos {
        user.auth_info = Some(auth.clone());
    }
    client_from(kc).await
}

/// A namespace of its own for one test, so tests can run in parallel.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<unique suffix>`.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("e2e-{prefix}-{:x}{:x}", std::process::id(), nanos);
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { "stv3.dev/e2e": "true" } }
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}; {}", logs_hint()))?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    /// Deletes the namespace (does not wait for it to go away).
    pub async fn delete(self) -> Result<()> {
        Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting namespace {}", self.name))?;
        Ok(())
    }
}

/// Polls `probe` every 250 ms until it yields `Some`, failing after `timeout` with a
/// message that names `what` and the component logs.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > timeout {
            let last = last_err
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!(
                "timed out after {}s waiting for {what}{last}; {}",
                timeout.as_secs(),
                logs_hint()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The API server's rejection of a request: (HTTP code, reason, message).
pub fn api_error(err: &kube::Error) -> Option<(u16, String, String)> {
    match err {
        kube::Error::Api(status) => {
            Some((status.code, status.reason.clone(), status.message.clone()))
        }
        _ => None,
    }
}

/// Whether the fake kwok node exists (up.sh creates it when kwok was built).
pub async fn has_kwok_node(client: &Client) -> Result<bool> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    Ok(nodes.get_opt("kwok-node-0").await?.is_some())
}

/// The helm binary built by build-bins.sh: `STV3_E2E_HELM`, else `<bin dir>/helm` where
/// up.sh recorded the bin dir in `.state/bin-dir`.
pub fn helm_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STV3_E2E_HELM") {
        return Ok(PathBuf::from(p));
    }
    let rec = state_dir().join("bin-dir");
    let dir = std::fs::read_to_string(&rec).with_context(|| {
        format!(
            "reading {} (written by e2e/cluster/up.sh) to find helm",
            rec.display()
        )
    })?;
    let helm = PathBuf::from(dir.trim()).join("helm");
    if !helm.is_file() {
        bail!(
            "{} is missing: run e2e/cluster/build-bins.sh",
            helm.display()
        );
    }
    Ok(helm)
}

/// The fixture chart shipped with the tests.
pub fn fixture_chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("chart")
}

/// Runs helm against the test cluster with hermetic helm home directories.
/// Returns the output; fails (with stdout/stderr) on a non-zero exit.
pub fn helm(args: &[&str]) -> Result<Output> {
    let helm = helm_bin()?;
    let home = std::env::temp_dir().join(format!("stv3-e2e-helm-{}", std::process::id()));
    let out = Command::new(&helm)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .with_context(|| format!("running {}", helm.display()))?;
    if !out.status.success() {
        bail!(
            "`helm {}` failed ({}):\nstdout:\n{}\nstderr:\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            logs_hint()
        );
    }
    Ok(out)
}

/// The URL of a migrated database on the host's MariaDB (scripts/services.sh), for
/// regions with an external database: the operator probes it (`DatabaseReady` of an
/// external database means a real connection and a migrated schema), and the operator
/// under test runs on the host. The server and user are those of
/// `STV3_TEST_MYSQL_URL`; the database is `stv3_e2e_external`, created and migrated
/// (`stv3 db upgrade` from target/release or target/debug) once per test process.
pub fn external_database_url() -> Result<String> {
    static URL: std::sync::OnceLock<std::result::Result<String, String>> =
        std::sync::OnceLock::new();
    URL.get_or_init(|| prepare_external_database().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn prepare_external_database() -> Result<String> {
    const DB: &str = "stv3_e2e_external";
    let base = std::env::var("STV3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://stv3:stv3@127.0.0.1:3306/stv3_test".into());
    let rest = base
        .strip_prefix("mysql://")
        .with_context(|| format!("STV3_TEST_MYSQL_URL is not mysql://: {base}"))?;
    let (userinfo, hostpath) = rest
        .split_once('@')
        .context("no user in STV3_TEST_MYSQL_URL")?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let hostport = hostpath.split('/').next().unwrap_or(hostpath);
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let created = Command::new("mariadb")
        .args(["--protocol=tcp", "-h", host, "-P", port, "-u", user])
        .arg("-e")
        .arg(format!("CREATE DATABASE IF NOT EXISTS `{DB}`"))
        .env("MYSQL_PWD", password)
        .output()
        .context("running mariadb (scripts/services.sh installs it)")?;
    ensure!(
        created.status.success(),
        "creating {DB}: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let url = format!("mysql://{userinfo}@{hostport}/{DB}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| operator::workspace().join("target"));
    let stv3 = ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("stv3"))
        .find(|p| p.exists())
        .context("no stv3 binary in target/release or target/debug: cargo build --bins")?;
    let migrated = Command::new(&stv3)
        .args(["db", "upgrade"])
        .env("STV3_DATABASE_URL", &url)
        .output()
        .with_context(|| format!("running {}", stv3.display()))?;
    ensure!(
        migrated.status.success(),
        "stv3 db upgrade of {DB}: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    Ok(url)
}
