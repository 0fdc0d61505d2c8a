//! "A region really runs": the product as users get it, on the test cluster's real node
//! (`stv3-node-0`, e2e/cluster/node.sh) with the images of `./build.sh -p`.
//!
//! `helm install` runs the operator as a pod (the chart's ServiceAccount, RBAC and
//! leader Lease); a two-cell region with a managed MariaDB (the e2e image) and a
//! RabbitMQ per cell (e2e/fixtures/cell-rabbitmq.yaml) comes up, migration first;
//! notifications published by a Job from the stv3 image arrive exactly once (the count
//! the host's `stv3 distill` keeps of the same notifications, read by klugman from the
//! image); streams fire and expire and the usage handler's events appear. Then day-2
//! changes and faults, each checked against every other pod of the region: a cell
//! added and removed, a yagi pod and the database pod deleted mid-publish, a cell whose
//! Secret is missing, a RabbitMQ password rotated, a cell behind mutual TLS with a CA
//! the test makes, triggers changed (and broken), and a new image tag.
//!
//! One scenario in order (each step builds on the last); about ten minutes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator::crd::StackTachRegion;
use serde_json::{json, Value};
use stv3_e2e::node::{
    self, container, http_get, pin, pod_identities, pod_ready, pods, quincy_count, run_job,
    wait_pods_ready, NODE,
};
use stv3_e2e::operator::condition;
use stv3_e2e::{admin_client, helm, wait_for, TestNamespace};

const REGION: &str = "real";
/// Every pod the region owns.
const REGION_PODS: &str = "app.kubernetes.io/instance=real";
/// The event types the usage handler adds (not distilled from notifications).
const HANDLER_EVENTS: [&str; 3] = [
    "compute.instance.exists.verified",
    "compute.instance.exists.failed",
    "compute.instance.exists.warnings",
];

struct Scenario {
    client: Client,
    ns: String,
    /// Notifications' simulated start (midnight some days ago; see the first publish).
    start: String,
    /// Distilled events published so far (the count the API must reach).
    expected: u64,
}

fn cell_spec(name: &str, host: &str) -> Value {
    json!({ "name": name, "rabbitmq": { "host": host, "credentialsSecretRef": { "name": format!("{name}-rabbitmq") } } })
}

/// The cell's RabbitMQ Service name.
fn rabbitmq_host(cell: &str) -> String {
    if cell == "cell1" {
        "rabbitmq".into()
    } else {
        format!("rabbitmq-{cell}")
    }
}

impl Scenario {
    fn regions(&self) -> Api<StackTachRegion> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn region(&self) -> Result<StackTachRegion> {
        Ok(self.regions().get(REGION).await?)
    }

    async fn patch_spec(&self, spec: Value) -> Result<()> {
        self.regions()
            .patch(
                REGION,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    /// A cell's RabbitMQ from the fixture: cell1 as it is, other cells renamed.
    fn deploy_rabbitmq(&self, cell: &str) -> Result<()> {
        let path = stv3_e2e::operator::workspace().join("e2e/fixtures/cell-rabbitmq.yaml");
        let mut yaml = std::fs::read_to_string(&path)?;
        if cell != "cell1" {
            yaml = yaml
                .replace("cell1-rabbitmq", &format!("{cell}-rabbitmq"))
                .replace(
                    "stacktach.io/cell: cell1",
                    &format!("stacktach.io/cell: {cell}"),
                )
                .replace(
                    "name: rabbitmq\n",
                    &format!("name: {}\n", rabbitmq_host(cell)),
                )
                .replace("e2e-cell1-secret", &format!("e2e-{cell}-secret"));
        }
        node::apply_yaml(&self.ns, &yaml)
    }

    async fn wait_rabbitmq(&self, cell: &str) -> Result<()> {
        wait_pods_ready(
            &self.client,
            &self.ns,
            &format!("app.kubernetes.io/name=rabbitmq,stacktach.io/cell={cell}"),
            1,
            Duration::from_secs(120),
        )
        .await?;
        Ok(())
    }

    /// Waits until the region is Ready and rolled out (`Progressing=False`: a migration
    /// under way keeps the old pods Ready meanwhile), and returns it.
    async fn wait_ready(&self, what: &str, timeout: Duration) -> Result<StackTachRegion> {
        wait_for(what, timeout, || async {
            let r = self.region().await?;
            let ready = condition(&r, "Ready").is_some_and(|(s, _, _)| s == "True")
                && condition(&r, "Progressing").is_some_and(|(s, _, _)| s == "False");
            let current =
                r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation;
            Ok((ready && current).then_some(r))
        })
        .await
    }

    /// The API Service's address, reached from the host through kube-proxy.
    async fn api(&self) -> Result<String> {
        node::service_addr(&self.client, &self.ns, &format!("{REGION}-api")).await
    }

    async fn api_count(&self, query: &str) -> Result<u64> {
        let (code, body) = http_get(&self.api().await?, query).await?;
        ensure!(code == 200, "GET {query}: {code} {body}");
        quincy_count(&body)
    }

    /// Events distilled from notifications: the counts of every stored event type but
    /// the usage handler's. (Type by type: the workers add handler events meanwhile, so
    /// "all minus the handler's" would race.)
    async fn distilled_stored(&self) -> Result<u64> {
        let (code, body) = http_get(&self.api().await?, "/v1/event_types").await?;
        ensure!(code == 200, "GET /v1/event_types: {code} {body}");
        let types: Vec<String> =
            serde_json::from_str(&body).with_context(|| format!("event types: {body}"))?;
        let mut n = 0;
        for t in types
            .iter()
            .filter(|t| !HANDLER_EVENTS.contains(&t.as_str()))
        {
            n += self
                .api_count(&format!("/v1/events/count?event_name={t}"))
                .await?;
        }
        Ok(n)
    }

    /// Waits until the API stores exactly `self.expected` distilled events, and stays
    /// there (more would be a duplicate).
    async fn wait_count(&self, what: &str, timeout: Duration) -> Result<()> {
        let want = self.expected;
        let got = wait_for(what, timeout, || async {
            let n = self.distilled_stored().await?;
            Ok((n >= want).then_some(n))
        })
        .await?;
        ensure!(
            got == want,
            "{what}: {got} events stored, {want} distilled (duplicates?)"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let again = self.distilled_stored().await?;
        ensure!(
            again == want,
            "{what}: {again} events stored a moment later, {want} distilled"
        );
        Ok(())
    }

    /// Notigen's arguments for one batch of notifications.
    fn notigen_args(&self, seed: u64, instances: u32, rate: Option<u32>) -> Vec<String> {
        let mut a: Vec<String> = [
            "notigen",
            "--seed",
            &seed.to_string(),
            "--instances",
            &instances.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend([
            "--duration".into(),
            "90000".into(),
            "--start".into(),
            self.start.clone(),
        ]);
        if let Some(r) = rate {
            a.extend(["--rate".into(), r.to_string()]);
        }
        a
    }

    /// How many of the notifications of `args` the image's event definitions keep,
    /// computed on the host with the release `stv3` (notigen is deterministic per seed).
    fn distilled(&self, args: &[String]) -> Result<u64> {
        let stv3 = node::release_bin("stv3")?;
        let file = std::env::temp_dir().join(format!(
            "stv3-real-{}-{}.jsonl",
            std::process::id(),
            args[2]
        ));
        let st = std::process::Command::new(&stv3)
            .args(args)
            .arg("-o")
            .arg(&file)
            .output()?;
        ensure!(
            st.status.success(),
            "stv3 notigen -o: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let out = std::process::Command::new(&stv3)
            .args(["distill", "-d"])
            .arg(stv3_e2e::operator::workspace().join("etc/event_definitions.yaml"))
            .arg(&file)
            .output()?;
        let _ = std::fs::remove_file(&file);
        ensure!(out.status.success(), "stv3 distill failed");
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| v.get("event_type").is_some())
            })
            .count() as u64)
    }

    /// A Job from the stv3 image publishing notigen's notifications to a cell's
    /// RabbitMQ, with the cell's credentials from its Secret. Returns the Job's name and
    /// how many events they distil into.
    async fn start_publish(
        &mut self,
        cell: &str,
        seed: u64,
        instances: u32,
        rate: Option<u32>,
    ) -> Result<(String, u64)> {
        let mut args = self.notigen_args(seed, instances, rate);
        let kept = self.distilled(&args)?;
        let host = rabbitmq_host(cell);
        args.extend([
            "--amqp".into(),
            format!("amqp://$(AMQP_USER):$(AMQP_PASSWORD)@{host}:5672/%2f"),
            "--exchange".into(),
            "nova".into(),
            "--queue".into(),
            "notifications.info".into(),
        ]);
        let secret = format!("{cell}-rabbitmq");
        let env = json!([
            { "name": "AMQP_USER", "valueFrom": { "secretKeyRef": { "name": secret, "key": "username" } } },
            { "name": "AMQP_PASSWORD", "valueFrom": { "secretKeyRef": { "name": secret, "key": "password" } } },
        ]);
        let mut command = vec!["stv3"];
        command.extend(args.iter().map(String::as_str));
        let name = format!("publish-{cell}-{seed}");
        let c = container("notigen", &node::stv3_image(), &command, env);
        node::start_job(&self.client, &self.ns, &name, c).await?;
        self.expected += kept;
        Ok((name, kept))
    }

    async fn wait_job(&self, name: &str, timeout: Duration) -> Result<()> {
        node::wait_job(&self.client, &self.ns, name, timeout)
            .await
            .map(|_| ())
    }

    async fn publish(&mut self, cell: &str, seed: u64, instances: u32) -> Result<u64> {
        let (name, kept) = self.start_publish(cell, seed, instances, None).await?;
        self.wait_job(&name, Duration::from_secs(120)).await?;
        Ok(kept)
    }

    /// The region's pods other than `except` (a label selector's extra clause).
    async fn other_pods(
        &self,
        except_cell: Option<&str>,
    ) -> Result<BTreeMap<String, (String, i32)>> {
        let mut all = pod_identities(&self.client, &self.ns, REGION_PODS).await?;
        if let Some(cell) = except_cell {
            let theirs = pod_identities(
                &self.client,
                &self.ns,
                &format!("{REGION_PODS},stacktach.io/cell={cell}"),
            )
            .await?;
            all.retain(|k, _| !theirs.contains_key(k));
        }
        // Migration Job pods come and go by design.
        let jobs = pod_identities(
            &self.client,
            &self.ns,
            &format!("{REGION_PODS},app.kubernetes.io/component=migration"),
        )
        .await?;
        all.retain(|k, _| !jobs.contains_key(k));
        Ok(all)
    }

    /// Sums a yagi metric over the region's collector pods (scraped from the host at
    /// each pod's IP).
    async fn yagi_metric(&self, name: &str) -> Result<f64> {
        let mut sum = 0.0;
        for p in pods(
            &self.client,
            &self.ns,
            &format!("{REGION_PODS},app.kubernetes.io/component=yagi"),
        )
        .await?
        {
            if !pod_ready(&p) {
                continue;
            }
            let ip = p
                .status
                .and_then(|s| s.pod_ip)
                .context("a yagi pod without an IP")?;
            let (_, text) = http_get(&format!("{ip}:9102"), "/metrics").await?;
            sum += node::metric_sum(&text, name, &[]);
        }
        Ok(sum)
    }
}

fn cell_condition(r: &StackTachRegion, cell: &str) -> Option<(String, String, String)> {
    r.status
        .as_ref()?
        .cells
        .iter()
        .find(|c| c.name == cell)?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A certificate and its key, PEM.
struct Issued {
    cert: String,
    key: String,
}

/// A CA the test makes, and the certificates it signs (the server's under one DNS
/// name, the client's for mutual TLS).
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> Result<TestCa> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key)?.pem();
        Ok(TestCa { params, key, pem })
    }

    fn issue(&self, name: &str, usage: rcgen::ExtendedKeyUsagePurpose) -> Result<Issued> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        Ok(Issued {
            cert: params.signed_by(&key, &issuer)?.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Creates or replaces a Secret or ConfigMap from `object` (server-side apply).
async fn put<K>(client: &Client, ns: &str, object: Value) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let name = object["metadata"]["name"]
        .as_str()
        .context("an object needs a name")?
        .to_string();
    Api::<K>::namespaced(client.clone(), ns)
        .patch(
            &name,
            &PatchParams::apply("stv3-e2e").force(),
            &Patch::Apply(object),
        )
        .await?;
    Ok(())
}

/// Whether any pod matching `selector` logged `needle` (its current container).
async fn pods_logged(client: &Client, ns: &str, selector: &str, needle: &str) -> Result<bool> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    for pod in pods(client, ns, selector).await? {
        let name = pod.metadata.name.unwrap_or_default();
        let logs = api
            .logs(&name, &kube::api::LogParams::default())
            .await
            .unwrap_or_default();
        if logs.contains(needle) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A cell whose broker takes only TLS with client certificates, signed by a CA the
/// test makes, and presents a certificate for a name the collectors do not dial
/// (`serverName`). First the cell's CA bundle (a ConfigMap) holds another CA: the
/// collectors refuse the broker ("UnknownIssuer") and store nothing of what is published
/// meanwhile. Then the ConfigMap
/// gets the right CA: the operator notices it, the collectors roll (the CA is in their
/// pod template's hash), verify the broker, present their certificate, and the cell's
/// notifications arrive once.
async fn a_tls_cell_trusts_only_its_ca(s: &mut Scenario) -> Result<()> {
    const SERVER_NAME: &str = "rabbit.cell5.stv3.test";
    let ca = TestCa::new("stv3 e2e cell5 CA")?;
    let other_ca = TestCa::new("stv3 e2e some other CA")?;
    let server = ca.issue(SERVER_NAME, rcgen::ExtendedKeyUsagePurpose::ServerAuth)?;
    let client_cert = ca.issue("yagi-cell5", rcgen::ExtendedKeyUsagePurpose::ClientAuth)?;
    let c = &s.client;
    let ns = s.ns.as_str();
    put::<Secret>(
        c,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "cell5-rabbitmq" },
            "stringData": { "username": "stv3", "password": "e2e-cell5-secret" },
        }),
    )
    .await?;
    put::<Secret>(
        c,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "cell5-broker-tls" },
            "stringData": { "tls.crt": server.cert, "tls.key": server.key, "ca.crt": ca.pem },
        }),
    )
    .await?;
    put::<Secret>(
        c,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": { "name": "cell5-client" },
            "stringData": { "tls.crt": client_cert.cert, "tls.key": client_cert.key },
        }),
    )
    .await?;
    let ca_map = |pem: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cell5-ca" },
            "data": { "ca.crt": pem },
        })
    };
    put::<ConfigMap>(c, ns, ca_map(&other_ca.pem)).await?;
    let path = stv3_e2e::operator::workspace().join("e2e/fixtures/cell-rabbitmq-tls.yaml");
    node::apply_yaml(ns, &std::fs::read_to_string(&path)?)?;
    s.wait_rabbitmq("cell5").await?;

    let mut cells = s
        .region()
        .await?
        .spec
        .cells
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let mut cell5 = cell_spec("cell5", "rabbitmq-cell5");
    cell5["rabbitmq"]["tls"] = json!(true);
    cell5["rabbitmq"]["port"] = json!(5671);
    cell5["rabbitmq"]["serverName"] = json!(SERVER_NAME);
    cell5["rabbitmq"]["caBundle"] = json!({ "configMapRef": { "name": "cell5-ca" } });
    cell5["rabbitmq"]["clientCertificate"] = json!({ "secretName": "cell5-client" });
    cells.push(cell5);
    s.patch_spec(json!({ "cells": cells })).await?;
    let cell5_pods = format!("{REGION_PODS},stacktach.io/cell=cell5");
    wait_for(
        "cell5's collectors to refuse a broker their CA did not sign",
        Duration::from_secs(120),
        || async {
            Ok(pods_logged(&s.client, &s.ns, &cell5_pods, "UnknownIssuer")
                .await?
                .then_some(()))
        },
    )
    .await?;
    // The cell says so: its collectors are not ready (they consume nothing).
    wait_for(
        "cell5's condition to say its collectors are not ready",
        Duration::from_secs(60),
        || async {
            let r = s.region().await?;
            Ok(cell_condition(&r, "cell5").filter(|(st, _, _)| st == "False"))
        },
    )
    .await?;
    // Published now, the notifications wait in the broker's queue: none may be stored
    // while the collectors cannot verify it.
    let stored_before = s.distilled_stored().await?;
    s.publish("cell5", 8, 10).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    ensure!(
        s.distilled_stored().await? == stored_before,
        "nothing arrives through a broker the collectors could not verify"
    );

    put::<ConfigMap>(&s.client, &s.ns, ca_map(&ca.pem)).await?;
    s.wait_count("the TLS cell's events", Duration::from_secs(180))
        .await?;
    wait_pods_ready(&s.client, &s.ns, &cell5_pods, 1, Duration::from_secs(60)).await?;
    ensure!(
        !pods_logged(&s.client, &s.ns, &cell5_pods, "UnknownIssuer").await?,
        "the rolled collectors trust the new CA"
    );

    cells.pop();
    s.patch_spec(json!({ "cells": cells })).await?;
    s.wait_ready(
        "the region Ready again without cell5",
        Duration::from_secs(90),
    )
    .await?;
    Ok(())
}

/// The distilled events' counts by type at the API `addr` (the usage handler's
/// events left out: pipeline workers may add them at any time).
async fn distilled_counts(addr: &str) -> Result<BTreeMap<String, u64>> {
    let (code, body) = http_get(addr, "/v1/event_types").await?;
    ensure!(code == 200, "GET /v1/event_types: {code} {body}");
    let types: Vec<String> =
        serde_json::from_str(&body).with_context(|| format!("event types: {body}"))?;
    let mut out = BTreeMap::new();
    for t in types
        .into_iter()
        .filter(|t| !HANDLER_EVENTS.contains(&t.as_str()))
    {
        let (code, body) = http_get(addr, &format!("/v1/events/count?event_name={t}")).await?;
        ensure!(code == 200, "GET count of {t}: {code} {body}");
        out.insert(t, quincy_count(&body)?);
    }
    Ok(out)
}

/// Backups as a platform team runs them: `database.managed.backup` makes a CronJob; a
/// run (started by hand, as `kubectl create job --from=cronjob/...` does) writes a
/// gzipped dump to the claim. A new region then gets the dump restored the way
/// docs/operations.md shows, and its API serves the same counts as the original's.
async fn a_backup_restores_into_a_new_region(s: &mut Scenario) -> Result<()> {
    let pin = pin();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(s.client.clone(), &s.ns);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "real-dumps" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }))?;
    pvcs.create(&PostParams::default(), &claim).await?;
    s.patch_spec(json!({ "database": { "managed": { "backup": {
        "schedule": "0 3 * * *", "retention": 2,
        "target": { "persistentVolumeClaim": { "claimName": "real-dumps" } },
    } } } }))
    .await?;
    let cron_jobs: Api<CronJob> = Api::namespaced(s.client.clone(), &s.ns);
    let cron = wait_for("the backup CronJob", Duration::from_secs(30), || async {
        cron_jobs
            .get_opt(&format!("{REGION}-db-backup"))
            .await
            .map_err(Into::into)
    })
    .await?;
    let original = distilled_counts(&s.api().await?).await?;
    ensure!(!original.is_empty(), "the region has events to back up");

    // Three runs with retention 2: the oldest dump goes.
    let jobs: Api<Job> = Api::namespaced(s.client.clone(), &s.ns);
    let template = cron.spec.job_template.clone();
    for run in 1..=3 {
        let name = format!("{REGION}-db-backup-manual-{run}");
        let job = Job {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        jobs.create(&PostParams::default(), &job).await?;
        let log = node::wait_job(&s.client, &s.ns, &name, Duration::from_secs(180)).await?;
        ensure!(log.contains("wrote /backup/real-"), "the dump's log: {log}");
        if run == 3 {
            ensure!(
                log.contains("removed /backup/real-"),
                "retention 2 after 3 dumps: {log}"
            );
        }
        // Dump file names have a one-second resolution.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }

    let restored: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "restored", "namespace": s.ns },
        "spec": {
            "cells": [{ "name": "cell1", "yagiReplicas": 0, "rabbitmq": { "host": "rabbitmq", "credentialsSecretRef": { "name": "cell1-rabbitmq" } } }],
            "database": { "managed": { "image": node::MARIADB_IMAGE, "storageSize": "1Gi", "deletionPolicy": "Delete" } },
            "pipelineWorkers": { "minReplicas": 1, "maxReplicas": 1 },
            "pod": { "nodeSelector": pin["nodeSelector"], "tolerations": pin["tolerations"] },
        }
    }))?;
    s.regions()
        .create(&PostParams::default(), &restored)
        .await?;
    wait_for("the new region Ready", Duration::from_secs(300), || async {
        let r = s.regions().get("restored").await?;
        Ok(condition(&r, "Ready")
            .is_some_and(|(st, _, _)| st == "True")
            .then_some(()))
    })
    .await?;

    // The restore of docs/operations.md: the newest dump, piped into the new region's
    // database with its root password, from the database image.
    let restore = format!(
        "set -euo pipefail; f=$(ls -1 /backup/real-*.sql.gz | sort | tail -n 1); \
         echo \"restoring $f\"; gunzip -c \"$f\" | mariadb --host=restored-db-0.restored-db.{ns}.svc --user=root; \
         echo restored",
        ns = s.ns
    );
    let mut spec = pin.clone();
    spec["restartPolicy"] = json!("Never");
    spec["securityContext"] =
        json!({ "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "runAsNonRoot": true });
    spec["volumes"] =
        json!([{ "name": "backup", "persistentVolumeClaim": { "claimName": "real-dumps" } }]);
    spec["containers"] = json!([{
        "name": "restore", "image": node::MARIADB_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["bash", "-c", restore],
        "env": [{ "name": "MYSQL_PWD", "valueFrom": { "secretKeyRef": { "name": "restored-db", "key": "root-password" } } }],
        "volumeMounts": [{ "name": "backup", "mountPath": "/backup", "readOnly": true }],
    }]);
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "restore-real" },
        "spec": { "backoffLimit": 0, "template": { "spec": spec } },
    }))?;
    jobs.create(&PostParams::default(), &job).await?;
    let log = node::wait_job(&s.client, &s.ns, "restore-real", Duration::from_secs(180)).await?;
    ensure!(log.contains("restored"), "the restore's log: {log}");

    let addr = node::service_addr(&s.client, &s.ns, "restored-api").await?;
    let counts = distilled_counts(&addr).await?;
    ensure!(
        counts == original,
        "the restored region serves other counts:\n  original {original:?}\n  restored {counts:?}"
    );
    Ok(())
}

/// Deployments' pod-template images, by name.
async fn deployment_images(client: &Client, ns: &str) -> Result<BTreeMap<String, String>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeMap::new();
    for d in api
        .list(&kube::api::ListParams::default().labels(REGION_PODS))
        .await?
    {
        let image = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
            .unwrap_or_default();
        out.insert(d.metadata.name.unwrap_or_default(), image);
    }
    Ok(out)
}

#[tokio::test]
#[ignore = "needs the test cluster with its real node: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn a_region_really_runs() -> Result<()> {
    let client = admin_client().await?;
    node::require_node(&client).await?;
    let ns = TestNamespace::create(&client, "real").await?;
    let mut s = Scenario {
        client: client.clone(),
        ns: ns.name.clone(),
        start: node::days_ago_midnight(4),
        expected: 0,
    };
    let result = run(&mut s).await;
    if result.is_err() {
        // What the pods said, for the failure's reader.
        let _ = node::kubectl(&["get", "pods,jobs,pvc", "-n", &s.ns, "-o", "wide"])
            .map(|o| eprintln!("{}", String::from_utf8_lossy(&o.stdout)));
        if let Ok(r) = s.region().await {
            eprintln!(
                "region status: {}",
                serde_json::to_string_pretty(&r.status).unwrap_or_default()
            );
        }
        if std::env::var_os("STV3_E2E_KEEP").is_some() {
            eprintln!("STV3_E2E_KEEP: namespace {} left for inspection", s.ns);
            return result;
        }
    }
    // Where everything ran, kept in the logs for the record (the namespace goes).
    let listing: Vec<String> = [
        &["get", "nodes", "-o", "wide"][..],
        &["get", "pods", "-A", "-o", "wide"][..],
    ]
    .iter()
    .filter_map(|args| node::kubectl(args).ok())
    .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
    .collect();
    let _ = std::fs::write(
        stv3_e2e::state_dir().join("logs/region-real-pods.txt"),
        listing.join("\n"),
    );
    // The namespace goes either way: its pods hold the real node's CPU requests.
    ns.delete().await?;
    result
}

async fn run(s: &mut Scenario) -> Result<()> {
    install_operator(s).await?;
    bring_up_region(s).await?;
    notifications_arrive_once_and_streams_fire(s).await?;
    a_yagi_pod_deleted_mid_publish_loses_nothing(s).await?;
    the_database_pod_deleted_mid_publish_loses_nothing(s).await?;
    a_cell_added_and_removed_touches_no_other_pod(s).await?;
    a_cell_without_its_secret_says_so_and_the_others_run(s).await?;
    a_rotated_rabbitmq_password_reaches_the_collectors_and_loses_nothing(s).await?;
    a_tls_cell_trusts_only_its_ca(s).await?;
    triggers_roll_only_their_readers_and_a_broken_file_rolls_nothing(s).await?;
    a_new_image_migrates_then_rolls(s).await?;
    a_backup_restores_into_a_new_region(s).await?;
    Ok(())
}

/// `helm install` the chart: the operator runs as a pod on the real node with the
/// chart's ServiceAccount, and holds the leader Lease.
async fn install_operator(s: &mut Scenario) -> Result<()> {
    let chart = stv3_e2e::operator::workspace().join("charts/stacktach-operator");
    let chart = chart.to_str().context("chart path")?.to_string();
    let ns = s.ns.clone();
    let pin = pin();
    let tolerations = pin["tolerations"].to_string();
    let node_selector = pin["nodeSelector"].to_string();
    tokio::task::spawn_blocking(move || {
        helm(&[
            "install",
            &ns,
            &chart,
            "--namespace",
            &ns,
            "--set",
            &format!("watchNamespace={ns}"),
            "--set-json",
            &format!("tolerations={tolerations}"),
            "--set-json",
            &format!("nodeSelector={node_selector}"),
            "--wait",
            "--timeout",
            "120s",
        ])
    })
    .await??;
    let pods = wait_pods_ready(
        &s.client,
        &s.ns,
        "app.kubernetes.io/name=stacktach-operator",
        1,
        Duration::from_secs(60),
    )
    .await?;
    let pod = &pods[0];
    let spec = pod.spec.as_ref().context("pod spec")?;
    ensure!(
        spec.service_account_name.as_deref() == Some(&format!("{}-stacktach-operator", s.ns)[..]),
        "the chart's ServiceAccount: {:?}",
        spec.service_account_name
    );
    ensure!(spec.containers[0].image.as_deref() == Some(&node::operator_image()[..]));
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.ns);
    let name = pod.metadata.name.clone().unwrap_or_default();
    wait_for(
        "the operator pod to hold the leader Lease",
        Duration::from_secs(60),
        || async {
            let held = leases
                .list(&Default::default())
                .await?
                .items
                .iter()
                .any(|l| {
                    l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(&name[..])
                });
            Ok(held.then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// Two cells, each with its RabbitMQ, and a managed MariaDB: every pod Ready on the real
/// node, the migration Job done before any component started.
async fn bring_up_region(s: &mut Scenario) -> Result<()> {
    for cell in ["cell1", "cell2"] {
        s.deploy_rabbitmq(cell)?;
    }
    for cell in ["cell1", "cell2"] {
        s.wait_rabbitmq(cell).await?;
    }
    let pin = pin();
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": REGION, "namespace": s.ns },
        "spec": {
            "cells": [cell_spec("cell1", "rabbitmq"), cell_spec("cell2", "rabbitmq-cell2")],
            "database": { "managed": { "image": node::MARIADB_IMAGE, "storageSize": "1Gi" } },
            "pipelineWorkers": { "minReplicas": 1, "maxReplicas": 2, "idleDelaySeconds": 1 },
            "pod": { "nodeSelector": pin["nodeSelector"], "tolerations": pin["tolerations"] },
        }
    }))?;
    s.regions().create(&PostParams::default(), &region).await?;
    s.wait_ready(
        "the region Ready (database, migration, cells, workers, API)",
        Duration::from_secs(300),
    )
    .await?;
    // db + yagi×2 + pipeline worker + API, all on the real node.
    let running = pods(&s.client, &s.ns, REGION_PODS).await?;
    let long_lived: Vec<&Pod> = running
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/component"))
                .map(String::as_str)
                != Some("migration")
        })
        .collect();
    ensure!(
        long_lived.len() == 5,
        "5 pods expected, found {}",
        long_lived.len()
    );
    for p in &long_lived {
        ensure!(pod_ready(p), "{:?} not Ready", p.metadata.name);
        ensure!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE),
            "{:?} not on {NODE}",
            p.metadata.name
        );
    }
    // The migration Job finished before the components' Deployments existed.
    let jobs: Api<Job> = Api::namespaced(s.client.clone(), &s.ns);
    let job = jobs
        .list(&kube::api::ListParams::default().labels(&format!(
            "{REGION_PODS},app.kubernetes.io/component=migration"
        )))
        .await?
        .items
        .into_iter()
        .next()
        .context("no migration Job")?;
    let done = job
        .status
        .and_then(|s| s.completion_time)
        .context("the migration Job has not completed")?;
    let deploys: Api<Deployment> = Api::namespaced(s.client.clone(), &s.ns);
    for d in deploys
        .list(&kube::api::ListParams::default().labels(REGION_PODS))
        .await?
    {
        let created = d
            .metadata
            .creation_timestamp
            .clone()
            .context("creation time")?;
        ensure!(
            created.0 >= done.0,
            "{:?} created at {:?}, before the migration finished at {:?}",
            d.metadata.name,
            created,
            done
        );
    }
    Ok(())
}

async fn notifications_arrive_once_and_streams_fire(s: &mut Scenario) -> Result<()> {
    // Cell 1's day began yesterday: its streams fire on the .exists audits of
    // midnight, and cannot expire first (last + 2 days is ahead). Cell 2's began four
    // days ago: its streams without an audit (the second day's hour) expire at once.
    s.start = node::days_ago_midnight(1);
    let (a, _) = s.start_publish("cell1", 1, 20, None).await?;
    s.start = node::days_ago_midnight(4);
    let (b, _) = s.start_publish("cell2", 2, 20, None).await?;
    s.wait_job(&a, Duration::from_secs(120)).await?;
    s.wait_job(&b, Duration::from_secs(120)).await?;
    s.wait_count(
        "every distilled event of both cells",
        Duration::from_secs(180),
    )
    .await?;
    // Streams fire (the .exists audits) and expire (last + 2d is past); the usage handler
    // adds its events. Completed streams are purged (the default), so the handler's
    // events and the workers' counters show it.
    wait_for(
        "usage events from fired streams",
        Duration::from_secs(180),
        || async {
            Ok((s
                .api_count(&format!(
                    "/v1/events/count?event_name={}",
                    HANDLER_EVENTS[0]
                ))
                .await?
                > 0)
            .then_some(()))
        },
    )
    .await?;
    let workers = format!("{REGION_PODS},app.kubernetes.io/component=pipeline-worker");
    let (fired, expired) = wait_for(
        "streams fired and expired",
        Duration::from_secs(120),
        || async {
            // Listed each time: the autoscaler may have added a worker.
            let (mut f, mut e, mut err) = (0.0, 0.0, 0.0);
            for p in pods(&s.client, &s.ns, &workers).await? {
                let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
                    continue;
                };
                let (_, m) = http_get(&format!("{ip}:9101"), "/metrics").await?;
                f += node::metric_sum(
                    &m,
                    "stv3_pipeline_streams_total",
                    &[("kind", "fire"), ("result", "completed")],
                );
                e += node::metric_sum(
                    &m,
                    "stv3_pipeline_streams_total",
                    &[("kind", "expire"), ("result", "completed")],
                );
                err += node::metric_sum(&m, "stv3_pipeline_streams_total", &[("result", "error")]);
            }
            ensure!(err == 0.0, "{err} pipelines failed");
            ensure!(f > 0.0 && e > 0.0, "so far fired {f}, expired {e}");
            Ok(Some((f, e)))
        },
    )
    .await?;
    eprintln!("streams fired {fired}, expired {expired}");
    // klugman from the image, as a pod, through the API's Service name.
    let url = format!("http://{REGION}-api.{}.svc:8000", s.ns);
    let total = s.api_count("/v1/events/count").await?;
    let log = run_job(
        &s.client,
        &s.ns,
        "klugman-count",
        container(
            "klugman",
            &node::stv3_image(),
            &["klugman", "--json", &url, "events", "--count"],
            json!([]),
        ),
        Duration::from_secs(60),
    )
    .await?;
    let counted = quincy_count(log.trim()).with_context(|| format!("klugman's output: {log}"))?;
    ensure!(
        counted == total,
        "klugman counts {counted}, the API {total}"
    );
    ensure!(s.distilled_stored().await? == s.expected);
    the_console_sees_both_cells(s).await
}

/// The console over the region's MariaDB, written by several collectors and
/// pipeline workers at once: each cell's yagi-event recorded itself under its cell's
/// name, and the maintained per-type counters equal the API's counts.
async fn the_console_sees_both_cells(s: &mut Scenario) -> Result<()> {
    let api = s.api().await?;
    let (code, overview) = http_get(&api, "/ui/").await?;
    ensure!(code == 200, "GET /ui/: {code} {overview}");
    let collectors = overview
        .split("id=\"collectors\"")
        .nth(1)
        .context("the overview's collectors table")?;
    for cell in ["cell1", "cell2"] {
        ensure!(
            collectors.contains(&format!(">{cell}<")),
            "{cell} is not among the collectors: {collectors}"
        );
    }
    // The publishing is over, so the distilled types' counts hold still.
    let (code, page) = http_get(&api, "/ui/event-types").await?;
    ensure!(code == 200, "GET /ui/event-types: {code} {page}");
    let mut checked = 0;
    for row in page.split("<tr>").skip(2) {
        let Some(name) = row.split("?type=").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        if HANDLER_EVENTS.contains(&name) {
            continue; // the pipeline workers may still be adding these
        }
        let shown: u64 = row
            .split("<td class=\"num\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .context("a count")?
            .parse()?;
        let api_n = s
            .api_count(&format!("/v1/events/count?event_name={name}"))
            .await?;
        ensure!(
            shown == api_n,
            "{name}: the console counts {shown}, the API {api_n}"
        );
        checked += 1;
    }
    ensure!(
        checked >= 5,
        "only {checked} event types on the console's page"
    );
    Ok(())
}

/// Publishes a rate-limited batch into `cell` and deletes `victim` (a pod, by name or,
/// with a `=`, the first pod of that label selector) while it runs; then waits for the
/// pods of `replaced` to be Ready again and for every event, exactly once.
async fn publish_while_deleting(
    s: &mut Scenario,
    cell: &str,
    seed: u64,
    victim: &str,
    replaced: &str,
    what: &str,
) -> Result<()> {
    // About 1,700 notifications at 300/s: the deletion lands a few seconds into them.
    let (job, _) = s.start_publish(cell, seed, 40, Some(300)).await?;
    wait_for(
        "the publishing pod to run",
        Duration::from_secs(60),
        || async {
            let running = pods(&s.client, &s.ns, &format!("job-name={job}"))
                .await?
                .iter()
                .any(|p| p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running"));
            Ok(running.then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = if victim.contains('=') {
        pods(&s.client, &s.ns, victim)
            .await?
            .first()
            .and_then(|p| p.metadata.name.clone())
            .with_context(|| format!("no pod {victim}"))?
    } else {
        victim.to_string()
    };
    Api::<Pod>::namespaced(s.client.clone(), &s.ns)
        .delete(&victim, &DeleteParams::default())
        .await?;
    s.wait_job(&job, Duration::from_secs(120)).await?;
    wait_pods_ready(&s.client, &s.ns, replaced, 1, Duration::from_secs(180)).await?;
    s.wait_count(what, Duration::from_secs(180)).await
}

async fn a_yagi_pod_deleted_mid_publish_loses_nothing(s: &mut Scenario) -> Result<()> {
    let cell1 = format!("{REGION_PODS},stacktach.io/cell=cell1");
    publish_while_deleting(
        s,
        "cell1",
        3,
        &cell1,
        &cell1,
        "every event after a yagi pod was deleted mid-publish",
    )
    .await
}

async fn the_database_pod_deleted_mid_publish_loses_nothing(s: &mut Scenario) -> Result<()> {
    let yagi_sel = format!("{REGION_PODS},app.kubernetes.io/component=yagi");
    let before = pod_identities(&s.client, &s.ns, &yagi_sel).await?;
    let dead_before = s.yagi_metric("yagi_messages_dead_lettered_total").await?;
    publish_while_deleting(
        s,
        "cell2",
        4,
        &format!("{REGION}-db-0"),
        &format!("{REGION_PODS},app.kubernetes.io/component=database"),
        "every event after the database pod was deleted mid-publish",
    )
    .await?;
    ensure!(
        s.yagi_metric("yagi_messages_dead_lettered_total").await? == dead_before,
        "messages were dead-lettered while the database was away"
    );
    ensure!(
        pod_identities(&s.client, &s.ns, &yagi_sel).await? == before,
        "the collectors restarted instead of waiting"
    );
    Ok(())
}

async fn a_cell_added_and_removed_touches_no_other_pod(s: &mut Scenario) -> Result<()> {
    s.deploy_rabbitmq("cell3")?;
    s.wait_rabbitmq("cell3").await?;
    let before = s.other_pods(None).await?;
    let mut cells = s
        .region()
        .await?
        .spec
        .cells
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    cells.push(cell_spec("cell3", "rabbitmq-cell3"));
    s.patch_spec(json!({ "cells": cells })).await?;
    wait_pods_ready(
        &s.client,
        &s.ns,
        &format!("{REGION_PODS},stacktach.io/cell=cell3"),
        1,
        Duration::from_secs(90),
    )
    .await?;
    s.publish("cell3", 5, 10).await?;
    s.wait_count("the new cell's events", Duration::from_secs(120))
        .await?;
    ensure!(
        s.other_pods(Some("cell3")).await? == before,
        "adding a cell disturbed other pods"
    );

    cells.pop();
    s.patch_spec(json!({ "cells": cells })).await?;
    let deploys: Api<Deployment> = Api::namespaced(s.client.clone(), &s.ns);
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), &s.ns);
    let name = format!("{REGION}-yagi-cell3");
    wait_for(
        "the removed cell's Deployment, ConfigMap and pod to go",
        Duration::from_secs(90),
        || async {
            let gone = deploys.get_opt(&name).await?.is_none()
                && cms.get_opt(&name).await?.is_none()
                && pods(
                    &s.client,
                    &s.ns,
                    &format!("{REGION_PODS},stacktach.io/cell=cell3"),
                )
                .await?
                .is_empty();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    ensure!(
        s.other_pods(Some("cell3")).await? == before,
        "removing a cell disturbed other pods"
    );
    Ok(())
}

async fn a_cell_without_its_secret_says_so_and_the_others_run(s: &mut Scenario) -> Result<()> {
    let before = s.other_pods(None).await?;
    let mut cells = s
        .region()
        .await?
        .spec
        .cells
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    cells.push(cell_spec("cell4", "rabbitmq-cell4"));
    s.patch_spec(json!({ "cells": cells })).await?;
    let r = wait_for(
        "cell4's condition to name its missing Secret",
        Duration::from_secs(60),
        || async {
            let r = s.region().await?;
            Ok(cell_condition(&r, "cell4")
                .filter(|(st, reason, _)| st == "False" && reason == "CredentialsSecretMissing")
                .map(|_| r))
        },
    )
    .await?;
    let (_, _, message) = cell_condition(&r, "cell4").context("cell4 condition")?;
    ensure!(
        message.contains("cell4-rabbitmq"),
        "the message names the Secret: {message}"
    );
    for cell in ["cell1", "cell2"] {
        let (st, _, _) = cell_condition(&r, cell).context("a cell condition")?;
        ensure!(
            st == "True",
            "{cell} stays ready: {:?}",
            cell_condition(&r, cell)
        );
    }
    let (_, reason, msg) = condition(&r, "Degraded").context("Degraded")?;
    ensure!(
        reason == "CellCredentials" && msg.contains("cell4"),
        "Degraded says which cell: {reason} {msg}"
    );
    ensure!(
        s.other_pods(Some("cell4")).await? == before,
        "a cell without its Secret disturbed other pods"
    );
    cells.pop();
    s.patch_spec(json!({ "cells": cells })).await?;
    s.wait_ready(
        "the region Ready again without cell4",
        Duration::from_secs(90),
    )
    .await?;
    Ok(())
}

/// A password rotation as a platform team does it: the broker's password changes
/// (connections already open stay open), then the Secret. The operator notices the
/// Secret in seconds and rolls cell1's collectors (their pod template carries a hash of
/// what they read); the new pods log in with the new password, the old ones finish and
/// go. Meanwhile a publish to the cell goes on: every notification is stored once.
/// Nothing else in the region restarts.
async fn a_rotated_rabbitmq_password_reaches_the_collectors_and_loses_nothing(
    s: &mut Scenario,
) -> Result<()> {
    let cell1 = format!("{REGION_PODS},stacktach.io/cell=cell1");
    let collectors_before = pod_identities(&s.client, &s.ns, &cell1).await?;
    let others_before = s.other_pods(Some("cell1")).await?;
    let deploys: Api<Deployment> = Api::namespaced(s.client.clone(), &s.ns);
    let yagi = format!("{REGION}-yagi-cell1");
    let template_hash = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(operator::desired::SECRETS_HASH_ANNOTATION).cloned())
    };
    let hash_before = template_hash(&deploys.get(&yagi).await?);
    ensure!(hash_before.is_some(), "{yagi} has no secrets hash");

    // About 1,700 notifications at 300/s, published with the old password.
    let (job, _) = s.start_publish("cell1", 21, 40, Some(300)).await?;
    wait_for(
        "the publishing pod to run",
        Duration::from_secs(60),
        || async {
            let running = pods(&s.client, &s.ns, &format!("job-name={job}"))
                .await?
                .iter()
                .any(|p| p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running"));
            Ok(running.then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new_password = "e2e-cell1-rotated";
    let ns = s.ns.clone();
    tokio::task::spawn_blocking(move || {
        node::kubectl(&[
            "exec",
            "-n",
            &ns,
            "deploy/rabbitmq",
            "--",
            "rabbitmqctl",
            "-n",
            "rabbit@localhost",
            "change_password",
            "stv3",
            new_password,
        ])
    })
    .await??;
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(s.client.clone(), &s.ns)
        .patch(
            "cell1-rabbitmq",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "password": new_password } })),
        )
        .await?;
    let rotated = std::time::Instant::now();
    wait_for(
        "the operator to roll cell1's collectors on the new password",
        Duration::from_secs(15),
        || async {
            let h = template_hash(&deploys.get(&yagi).await?);
            Ok((h != hash_before).then_some(()))
        },
    )
    .await?;
    eprintln!(
        "the rotated Secret reached {yagi}'s template in {:?}",
        rotated.elapsed()
    );
    s.wait_job(&job, Duration::from_secs(180)).await?;
    let fresh = wait_for(
        "cell1's collectors replaced and ready",
        Duration::from_secs(180),
        || async {
            let now = wait_pods_ready(&s.client, &s.ns, &cell1, 1, Duration::from_secs(5))
                .await
                .ok();
            Ok(now.filter(|ps| {
                ps.iter().all(|p| {
                    !collectors_before.contains_key(p.metadata.name.as_deref().unwrap_or(""))
                })
            }))
        },
    )
    .await?;
    s.wait_count(
        "every event published across the password rotation",
        Duration::from_secs(180),
    )
    .await?;
    // The new collector logged in with the new password (the old one no longer works),
    // and nothing restarted it.
    ensure!(
        fresh.iter().all(|p| node::restarts(p) == 0),
        "the new collectors restarted: {:?}",
        pod_identities(&s.client, &s.ns, &cell1).await?
    );
    ensure!(
        s.other_pods(Some("cell1")).await? == others_before,
        "a pod not reading cell1's Secret restarted on its rotation"
    );
    Ok(())
}

async fn triggers_roll_only_their_readers_and_a_broken_file_rolls_nothing(
    s: &mut Scenario,
) -> Result<()> {
    let triggers =
        std::fs::read_to_string(stv3_e2e::operator::workspace().join("etc/triggers.yaml"))?;
    let changed = triggers.replace("$last + 2d", "$last + 3d");
    ensure!(
        changed != triggers,
        "the default triggers.yaml changed shape"
    );
    let sel = |c: &str| format!("{REGION_PODS},app.kubernetes.io/component={c}");
    let yagi_before = pod_identities(&s.client, &s.ns, &sel("yagi")).await?;
    let workers_before = pod_identities(&s.client, &s.ns, &sel("pipeline-worker")).await?;
    let steady_before = {
        let mut m = pod_identities(&s.client, &s.ns, &sel("api")).await?;
        m.extend(pod_identities(&s.client, &s.ns, &sel("database")).await?);
        m
    };
    s.patch_spec(json!({ "config": { "triggers": { "inline": changed } } }))
        .await?;
    wait_for(
        "the collectors and workers to roll onto the new triggers",
        Duration::from_secs(180),
        || async {
            let y = pod_identities(&s.client, &s.ns, &sel("yagi")).await?;
            let w = pod_identities(&s.client, &s.ns, &sel("pipeline-worker")).await?;
            let rolled = y.len() == 2
                && !w.is_empty()
                && y.keys().all(|k| !yagi_before.contains_key(k))
                && w.keys().all(|k| !workers_before.contains_key(k));
            Ok(rolled.then_some(()))
        },
    )
    .await?;
    s.wait_ready(
        "the region Ready on the new triggers",
        Duration::from_secs(120),
    )
    .await?;
    let mut steady_after = pod_identities(&s.client, &s.ns, &sel("api")).await?;
    steady_after.extend(pod_identities(&s.client, &s.ns, &sel("database")).await?);
    ensure!(
        steady_after == steady_before,
        "the API and database do not read triggers.yaml and must not roll"
    );

    // A broken triggers.yaml: ConfigValid=False, and nothing rolls.
    let running = s.other_pods(None).await?;
    let cm_before = Api::<ConfigMap>::namespaced(s.client.clone(), &s.ns)
        .get(&format!("{REGION}-config"))
        .await?
        .data;
    s.patch_spec(json!({ "config": { "triggers": { "inline": "- name: broken\n  expiration: \"$last + \"\n" } } })).await?;
    wait_for(
        "ConfigValid=False for a broken triggers.yaml",
        Duration::from_secs(60),
        || async {
            let r = s.region().await?;
            Ok(condition(&r, "ConfigValid")
                .filter(|(st, _, _)| st == "False")
                .map(|_| ()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        s.other_pods(None).await? == running,
        "a broken triggers.yaml rolled pods"
    );
    let cm_after = Api::<ConfigMap>::namespaced(s.client.clone(), &s.ns)
        .get(&format!("{REGION}-config"))
        .await?
        .data;
    ensure!(
        cm_after == cm_before,
        "a broken triggers.yaml reached the region's ConfigMap"
    );
    s.patch_spec(json!({ "config": { "triggers": { "inline": changed } } }))
        .await?;
    s.wait_ready(
        "the region Ready once the triggers are fixed",
        Duration::from_secs(60),
    )
    .await?;
    ensure!(
        s.other_pods(None).await? == running,
        "restoring the same triggers rolled pods"
    );
    Ok(())
}

async fn a_new_image_migrates_then_rolls(s: &mut Scenario) -> Result<()> {
    let tag = format!("{}-e2e-retag", node::VERSION);
    let retagged = format!("ghcr.io/stacktach/stv3:{tag}");
    // The same image under a second name, as a registry would serve a new tag.
    let _ = node::ctr("k8s.io", &["images", "rm", &retagged]);
    node::ctr("k8s.io", &["images", "tag", &node::stv3_image(), &retagged])?;
    let jobs: Api<Job> = Api::namespaced(s.client.clone(), &s.ns);
    let job_sel = format!("{REGION_PODS},app.kubernetes.io/component=migration");
    let old_jobs: Vec<String> = jobs
        .list(&kube::api::ListParams::default().labels(&job_sel))
        .await?
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    s.patch_spec(json!({ "images": { "tag": tag } })).await?;
    let job = wait_for(
        "a new migration Job to complete",
        Duration::from_secs(120),
        || async {
            let new = jobs
                .list(&kube::api::ListParams::default().labels(&job_sel))
                .await?
                .items
                .into_iter()
                .find(|j| {
                    j.metadata
                        .name
                        .as_ref()
                        .is_some_and(|n| !old_jobs.contains(n))
                });
            Ok(new.filter(|j| {
                j.status
                    .as_ref()
                    .and_then(|s| s.completion_time.as_ref())
                    .is_some()
            }))
        },
    )
    .await?;
    let image = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers[0].image.clone());
    ensure!(
        image.as_deref() == Some(&retagged[..]),
        "the migration runs the new image: {image:?}"
    );
    let done = job
        .status
        .and_then(|s| s.completion_time)
        .context("completion")?;
    s.wait_ready(
        "the region Ready on the new image",
        Duration::from_secs(180),
    )
    .await?;
    for (name, image) in deployment_images(&s.client, &s.ns).await? {
        ensure!(image == retagged, "{name} runs {image}, not {retagged}");
    }
    for p in pods(&s.client, &s.ns, REGION_PODS).await? {
        let component = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/component"))
            .cloned()
            .unwrap_or_default();
        if component == "database"
            || component == "migration"
            || p.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let created = p.metadata.creation_timestamp.clone().context("creation")?;
        ensure!(
            created.0 >= done.0,
            "{:?} started before the migration finished",
            p.metadata.name
        );
        ensure!(
            pod_ready(&p),
            "{:?} not Ready on the new image",
            p.metadata.name
        );
    }
    s.wait_count(
        "every event still there after the upgrade",
        Duration::from_secs(30),
    )
    .await
}
