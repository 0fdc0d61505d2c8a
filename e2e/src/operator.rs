//! Running the real `stv3-operator` binary as a local process against the test control
//! plane, the way the e2e tests and the operator benchmark do: each run gets its own
//! Lease (in the test's namespace, so parallel tests never stand by for each other),
//! its own metrics port, and a log file under `.state/logs/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use anyhow::{bail, ensure, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::state_dir;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn newest_mtime(dir: &Path) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let t = if entry.file_type()?.is_dir() {
            newest_mtime(&entry.path())?
        } else {
            entry.metadata()?.modified()?
        };
        newest = newest.max(t);
    }
    Ok(newest)
}

/// The operator binary: `STV3_OPERATOR_BIN`, else `$CARGO_TARGET_DIR/debug/stv3-operator`,
/// else `target/debug/stv3-operator`; refusing one older than the operator's sources.
pub fn operator_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("STV3_OPERATOR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let bin = target.join("debug/stv3-operator");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .with_context(|| {
            format!(
                "{} not found: run `cargo build -p stv3-operator` first (or set STV3_OPERATOR_BIN)",
                bin.display()
            )
        })?;
    let src = newest_mtime(&workspace().join("operator/src"))?;
    ensure!(
        built >= src,
        "{} is older than operator/src: run `cargo build -p stv3-operator`",
        bin.display()
    );
    Ok(bin)
}

/// A free loopback port (bound, then released for the operator to take).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// How to start one operator process.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// The kubeconfig it uses (`KUBECONFIG`).
    pub kubeconfig: PathBuf,
    /// `WATCH_NAMESPACE`; `None`: every namespace.
    pub watch_namespace: Option<String>,
    /// Where its Lease lives (`LEADER_ELECTION_NAMESPACE`).
    pub lease_namespace: String,
    /// The Lease's name.
    pub lease_name: String,
    /// Its identity in the Lease (`POD_NAME`).
    pub identity: String,
    /// `LEADER_ELECTION_LEASE_SECONDS` (the operator's default when `None`).
    pub lease_seconds: Option<u64>,
    /// The log file's name under `.state/logs/`.
    pub log_name: String,
}

impl OperatorOptions {
    /// Admin kubeconfig, watching and leasing in `ns`, identity `name`.
    pub fn in_namespace(ns: &str, name: &str) -> OperatorOptions {
        OperatorOptions {
            kubeconfig: crate::kubeconfig_path(),
            watch_namespace: Some(ns.to_string()),
            lease_namespace: ns.to_string(),
            lease_name: "stv3-operator-leader".into(),
            identity: name.to_string(),
            lease_seconds: None,
            log_name: format!("stv3-operator-{name}.log"),
        }
    }
}

/// One operator process; killed when dropped.
pub struct OperatorProcess {
    child: Child,
    /// Its identity in the Lease.
    pub identity: String,
    /// Its log file.
    pub log: PathBuf,
    /// Where it serves `/metrics`, `/healthz`, `/readyz`.
    pub metrics_port: u16,
}

impl OperatorProcess {
    /// Starts the operator.
    pub fn start(opts: &OperatorOptions) -> Result<OperatorProcess> {
        let log = state_dir().join("logs").join(&opts.log_name);
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let out = std::fs::File::create(&log)?;
        let port = free_port()?;
        let mut cmd = Command::new(operator_bin()?);
        cmd.env("KUBECONFIG", &opts.kubeconfig)
            .env("RUST_LOG", "info,stv3_operator=debug,operator=debug")
            .env("METRICS_LISTEN", format!("127.0.0.1:{port}"))
            .env("LEADER_ELECTION_NAMESPACE", &opts.lease_namespace)
            .env("LEADER_ELECTION_LEASE_NAME", &opts.lease_name)
            .env("POD_NAME", &opts.identity)
            .env_remove("POD_NAMESPACE")
            .env_remove("LEADER_ELECTION_LEASE_SECONDS")
            .env_remove("LEADER_ELECTION_RENEW_GRACE_SECONDS")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out));
        match &opts.watch_namespace {
            Some(ns) => cmd.env("WATCH_NAMESPACE", ns),
            None => cmd.env_remove("WATCH_NAMESPACE"),
        };
        if let Some(s) = opts.lease_seconds {
            cmd.env("LEADER_ELECTION_LEASE_SECONDS", s.to_string()).env(
                "LEADER_ELECTION_RENEW_GRACE_SECONDS",
                (s / 3).max(1).to_string(),
            );
        }
        let child = cmd.spawn().context("starting stv3-operator")?;
        Ok(OperatorProcess {
            child,
            identity: opts.identity.clone(),
            log,
            metrics_port: port,
        })
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// SIGKILL: a crash, leaving its Lease to run out.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: a graceful stop (the kubelet's), waited for.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        ensure!(status.success(), "kill -TERM failed");
        Ok(self.child.wait()?)
    }

    /// GET `path` from its metrics server: (status code, body).
    pub async fn http_get(&self, path: &str) -> Result<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port))
            .await
            .with_context(|| format!("connecting to the operator's port {}", self.metrics_port))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("no HTTP status line")?;
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// The sum of a metric's samples whose line starts with `prefix` (such as
    /// `stv3_operator_reconciles_total`).
    pub async fn metric(&self, prefix: &str) -> Result<f64> {
        let (code, body) = self.http_get("/metrics").await?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        // Folded from +0.0: an empty `sum()` of floats is -0.0.
        Ok(body
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The resourceVersion of the region `name` and of every object labelled as managed by
/// the operator in `ns` (Deployments, ConfigMaps, Services, StatefulSets, HPAs, Jobs),
/// sorted: equal snapshots mean nothing was written in between.
pub async fn resource_versions(
    client: &kube::Client,
    ns: &str,
    region: &str,
) -> Result<Vec<String>> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
    use kube::api::{ListParams, ObjectMeta};
    use kube::{Api, Resource};

    async fn of<K>(client: &kube::Client, ns: &str, out: &mut Vec<String>) -> Result<()>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let lp = ListParams::default().labels("app.kubernetes.io/managed-by=stv3-operator");
        for o in Api::<K>::namespaced(client.clone(), ns).list(&lp).await? {
            let m: &ObjectMeta = o.meta();
            out.push(format!(
                "{} {}: {}",
                K::kind(&()),
                m.name.clone().unwrap_or_default(),
                m.resource_version.clone().unwrap_or_default()
            ));
        }
        Ok(())
    }
    let mut out = Vec::new();
    of::<Deployment>(client, ns, &mut out).await?;
    of::<ConfigMap>(client, ns, &mut out).await?;
    of::<Service>(client, ns, &mut out).await?;
    of::<StatefulSet>(client, ns, &mut out).await?;
    of::<HorizontalPodAutoscaler>(client, ns, &mut out).await?;
    of::<Job>(client, ns, &mut out).await?;
    of::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(client, ns, &mut out).await?;
    let regions: kube::Api<operator::crd::StackTachRegion> =
        kube::Api::namespaced(client.clone(), ns);
    let r = regions.get(region).await?;
    out.push(format!(
        "StackTachRegion {region}: {}",
        r.metadata.resource_version.unwrap_or_default()
    ));
    out.sort();
    Ok(out)
}

/// Waits until the operator's reconcile counter stays put for `quiet`, bounded by
/// `timeout`; returns the counter.
pub async fn wait_settled(
    op: &OperatorProcess,
    quiet: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<f64> {
    let start = std::time::Instant::now();
    let mut last = op.metric("stv3_operator_reconciles_total").await?;
    loop {
        tokio::time::sleep(quiet).await;
        let now = op.metric("stv3_operator_reconciles_total").await?;
        if now == last {
            return Ok(now);
        }
        if start.elapsed() > timeout {
            bail!(
                "the operator kept reconciling for {}s (counter {last} → {now}); {}",
                timeout.as_secs(),
                crate::logs_hint()
            );
        }
        last = now;
    }
}

/// The StackTachRegion CRD's name.
pub const REGION_CRD: &str = "stacktachregions.stacktach.io";

/// Applies CRDs from a YAML file of the workspace (one or more documents) and waits until
/// each is Established.
pub async fn install_crds(client: &kube::Client, rel: &str) -> Result<Vec<String>> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    let text =
        std::fs::read_to_string(workspace().join(rel)).with_context(|| format!("reading {rel}"))?;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let mut names = Vec::new();
    for doc in text.split("\n---\n") {
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(doc).with_context(|| format!("parsing {rel}"))?;
        let name = crd.metadata.name.clone().context("a CRD without a name")?;
        crds.patch(
            &name,
            &PatchParams::apply("stv3-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        names.push(name);
    }
    for name in &names {
        crate::wait_for(
            &format!("CRD {name} to be Established"),
            crate::WAIT,
            || async {
                let c = crds.get(name).await?;
                Ok(c.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(()))
            },
        )
        .await?;
    }
    Ok(names)
}

/// Creates a Secret with string data.
pub async fn create_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
) -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    let data: std::collections::BTreeMap<&str, &str> = data.iter().copied().collect();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name }, "stringData": data
    }))?;
    kube::Api::<Secret>::namespaced(client.clone(), ns)
        .create(&Default::default(), &secret)
        .await?;
    Ok(())
}

/// A cell of a test region, reading RabbitMQ credentials from Secret `rmq`.
pub fn cell(name: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "rabbitmq": { "host": "rabbit.invalid", "credentialsSecretRef": { "name": "rmq" } } })
}

/// A condition of a region: (status, reason, message).
pub fn condition(
    r: &operator::crd::StackTachRegion,
    type_: &str,
) -> Option<(String, String, String)> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}
