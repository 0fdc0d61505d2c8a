//! The Helm chart `charts/stacktach-operator` on the real control plane: `helm lint
//! --strict`, `helm install` puts the CRD and the operator's objects in place, the real
//! operator (`target/debug/stv3-operator`, a local process) reconciles a region with a
//! token of the chart's ServiceAccount (so a missing RBAC rule fails the test), calls
//! outside the role are refused with 403, and `helm uninstall` removes the objects.
//!
//! Needs the cluster from `e2e/cluster/up.sh` and the operator binary
//! (`cargo build -p stv3-operator`), or its path in `STV3_OPERATOR_BIN`. `#[ignore]`d
//! in a plain `cargo test`.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::AuthInfo;
use kube::{Api, Client};
use operator::crd::StackTachRegion;
use serde_json::json;
use stv3_e2e::operator::{OperatorOptions, OperatorProcess};
use stv3_e2e::{
    admin_client, api_error, has_kwok_node, helm, kubeconfig, logs_hint, state_dir, token_client,
    wait_for, TestNamespace, WAIT,
};

const CRD_NAME: &str = "stacktachregions.stacktach.io";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    workspace().join("charts/stacktach-operator")
}

/// The operator process with its own kubeconfig (which holds a token): removed with it.
struct Operator {
    process: OperatorProcess,
    kubeconfig: PathBuf,
}

impl Operator {
    /// Watching every namespace (what the ClusterRoleBinding grants), holding its Lease
    /// in the release namespace (what the Role grants).
    fn start(kubeconfig: &Path, release_ns: &str) -> Result<Operator> {
        let mut opts = OperatorOptions::in_namespace(release_ns, "chart");
        opts.kubeconfig = kubeconfig.to_path_buf();
        opts.watch_namespace = None;
        Ok(Operator {
            process: OperatorProcess::start(&opts)?,
            kubeconfig: kubeconfig.to_path_buf(),
        })
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// Mints a token for a ServiceAccount through the TokenRequest API.
async fn mint_token(admin: &Client, ns: &str, sa: &str) -> Result<String> {
    let tr: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 900}
    }))?;
    let minted = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &tr)
        .await
        .with_context(|| format!("TokenRequest for {ns}/{sa} failed; {}", logs_hint()))?;
    minted
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("TokenRequest returned no token")
}

/// Writes the test cluster's kubeconfig with every user replaced by `token`.
fn write_token_kubeconfig(token: &str, path: &Path) -> Result<()> {
    let mut kc = kubeconfig()?;
    let auth: AuthInfo = serde_json::from_value(json!({ "token": token }))?;
    for user in &mut kc.auth_infos {
        user.auth_info = Some(auth.clone());
    }
    // JSON is YAML: kube reads it back as a kubeconfig.
    std::fs::write(path, serde_json::to_vec(&kc)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Whether `result` is the API server's 403.
fn forbidden<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> Result<()> {
    match result {
        Err(e) if api_error(&e).is_some_and(|(c, _, _)| c == 403) => Ok(()),
        other => bail!("{what} should be refused with 403, got {other:?}"),
    }
}

fn condition(r: &StackTachRegion, type_: &str) -> Option<(String, String)> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn chart_installs_and_its_rbac_runs_the_operator() -> Result<()> {
    let admin = admin_client().await?;
    let chart = chart();
    let chart = chart.to_str().context("non-UTF-8 chart path")?.to_string();

    // Lint with the defaults and with every optional template on.
    for extra in [&[][..], &["--set", "metrics.service.enabled=true"][..]] {
        let mut args = vec!["lint", "--strict", &chart];
        args.extend_from_slice(extra);
        let lint = helm(&args)?;
        let out = String::from_utf8_lossy(&lint.stdout);
        ensure!(
            out.contains("0 chart(s) failed"),
            "unexpected helm lint output: {out}"
        );
    }
    // Several replicas are fine (leader election); nonsense is refused by the schema.
    helm(&["lint", "--strict", &chart, "--set", "replicaCount=2"])?;
    ensure!(
        helm(&["lint", "--strict", &chart, "--set", "replicaCount=-1"]).is_err(),
        "values.schema.json should refuse replicaCount=-1"
    );

    let ns = TestNamespace::create(&admin, "chart").await?;
    let n = ns.name.clone();
    // The release is named after the namespace, so its cluster-scoped objects (the
    // ClusterRole and its binding) never collide with another run's leftovers.
    let release = n.clone();
    // The chart's full name: every object it creates.
    let fullname = format!("{release}-stacktach-operator");
    let fullname = fullname.as_str();
    // kwok's fake node runs the pod (and marks it Ready), so `--wait` is meaningful.
    let wait = has_kwok_node(&admin).await?;
    let (c, nn, rel) = (chart.clone(), n.clone(), release.clone());
    tokio::task::spawn_blocking(move || {
        let mut args = vec![
            "install",
            &rel,
            &c,
            "--namespace",
            &nn,
            "--set",
            "image.repository=registry.invalid/stv3-operator",
            "--set",
            "metrics.service.enabled=true",
            "--timeout",
            "60s",
        ];
        if wait {
            args.push("--wait");
        }
        helm(&args)
    })
    .await??;

    // The CRD (from the chart's crds/, or already there) and the operator's objects.
    let crd = Api::<CustomResourceDefinition>::all(admin.clone())
        .get(CRD_NAME)
        .await
        .context("the CRD is not installed")?;
    ensure!(crd.spec.group == "stacktach.io");
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &n);
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let deploys: Api<Deployment> = Api::namespaced(admin.clone(), &n);
    let svcs: Api<Service> = Api::namespaced(admin.clone(), &n);
    sas.get(fullname).await.context("no ServiceAccount")?;
    roles.get(fullname).await.context("no ClusterRole")?;
    let binding = bindings
        .get(fullname)
        .await
        .context("no ClusterRoleBinding")?;
    ensure!(
        binding
            .subjects
            .unwrap_or_default()
            .iter()
            .any(|s| s.kind == "ServiceAccount"
                && s.name == fullname
                && s.namespace.as_deref() == Some(&n[..])),
        "the ClusterRoleBinding does not bind the chart's ServiceAccount"
    );
    let d = deploys.get(fullname).await.context("no Deployment")?;
    let pod = d
        .spec
        .and_then(|s| s.template.spec)
        .context("no pod spec")?;
    ensure!(pod.service_account_name.as_deref() == Some(fullname));
    let container = &pod.containers[0];
    ensure!(container.name == "stv3-operator");
    ensure!(container.image.as_deref() == Some("registry.invalid/stv3-operator:0.1.0"));
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    ensure!(
        probe_path(&container.readiness_probe).as_deref() == Some("/readyz")
            && probe_path(&container.liveness_probe).as_deref() == Some("/healthz"),
        "the operator container's probes: {:?} {:?}",
        container.readiness_probe,
        container.liveness_probe
    );
    let sc = container.security_context.clone().unwrap_or_default();
    ensure!(sc.read_only_root_filesystem == Some(true) && sc.run_as_non_root == Some(true));
    svcs.get(&format!("{fullname}-metrics"))
        .await
        .context("no metrics Service")?;

    // Scale the in-cluster operator down: its image does not exist, and the local one
    // below is the operator under test.
    deploys
        .patch(
            fullname,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await?;

    // (a) The real operator, with a token of the chart's ServiceAccount.
    let token = mint_token(&admin, &n, fullname).await?;
    let sa_client = token_client(&token).await?;
    // RBAC caches are eventually consistent: wait until the binding is seen.
    let sa_regions: Api<StackTachRegion> = Api::all(sa_client.clone());
    wait_for("the ServiceAccount to list regions", WAIT, || async {
        Ok(Some(sa_regions.list(&ListParams::default()).await?))
    })
    .await?;
    let kc_path = state_dir().join(format!("{n}-operator.kubeconfig"));
    write_token_kubeconfig(&token, &kc_path)?;
    let operator = Operator::start(&kc_path, &n)?;

    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &n);
    secrets
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": { "name": "cell1-rabbitmq" }, "stringData": { "username": "u", "password": "p-secret" }
        }))?)
        .await?;
    let text = std::fs::read_to_string(workspace().join("examples/region-minimal.yaml"))?;
    let region: StackTachRegion = serde_saphyr::from_str(&text)?;
    let name = region
        .metadata
        .name
        .clone()
        .context("example has no name")?;
    let regions: Api<StackTachRegion> = Api::namespaced(admin.clone(), &n);
    regions.create(&PostParams::default(), &region).await?;

    // Everything owned appears (server-side apply of Deployments, ConfigMaps,
    // Services, the StatefulSet, the HPA, the Job; the generated Secret is created).
    for d in ["yagi-cell1", "pipeline-worker", "api"] {
        let d = format!("{name}-{d}");
        wait_for(&format!("Deployment {d}"), WAIT, || async {
            Ok(deploys.get_opt(&d).await?.map(|_| ()))
        })
        .await
        .with_context(|| format!("operator log:\n{}", operator.log_text()))?;
    }
    let db = format!("{name}-db");
    Api::<StatefulSet>::namespaced(admin.clone(), &n)
        .get(&db)
        .await
        .context("no database StatefulSet")?;
    secrets
        .get(&db)
        .await
        .context("no generated database Secret")?;
    // The status subresource is patched.
    wait_for(
        "status.observedGeneration and ConfigValid=True",
        WAIT,
        || async {
            let r = regions.get(&name).await?;
            let observed = r.status.as_ref().and_then(|s| s.observed_generation);
            let valid = condition(&r, "ConfigValid").is_some_and(|(s, _)| s == "True");
            Ok((observed == r.metadata.generation && valid).then_some(()))
        },
    )
    .await
    .with_context(|| format!("operator log:\n{}", operator.log_text()))?;

    // Removing a cell lists and deletes its objects.
    let cells = |names: &[&str]| -> serde_json::Value {
        json!({"spec": {"cells": names.iter().map(|c| json!({
            "name": c, "rabbitmq": { "host": "rabbitmq.invalid", "credentialsSecretRef": { "name": "cell1-rabbitmq" } }
        })).collect::<Vec<_>>()}})
    };
    regions
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(cells(&["cell1", "cell2"])),
        )
        .await?;
    let cell2 = format!("{name}-yagi-cell2");
    wait_for("the added cell's Deployment", WAIT, || async {
        Ok(deploys.get_opt(&cell2).await?.map(|_| ()))
    })
    .await?;
    regions
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(cells(&["cell1"])),
        )
        .await?;
    wait_for(
        "the removed cell's Deployment to be deleted",
        WAIT,
        || async { Ok(deploys.get_opt(&cell2).await?.is_none().then_some(())) },
    )
    .await
    .with_context(|| format!("operator log:\n{}", operator.log_text()))?;

    // A new image: its migration Job runs (kwok completes it), the old Job is deleted and
    // the Deployments roll; with the chart's role, so the Job and Deployment verbs this
    // takes (jobs delete, deployments get) are checked too.
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &n);
    let job_lp = ListParams::default().labels("app.kubernetes.io/component=migration");
    let old_jobs: Vec<String> = jobs
        .list(&job_lp)
        .await?
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    ensure!(old_jobs.len() == 1, "migration Jobs: {old_jobs:?}");
    regions
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"images": {"tag": "0.1.1-e2e"}}})),
        )
        .await?;
    let api_deploy = format!("{name}-api");
    wait_for(
        "the new version's migration, then the API Deployment rolling",
        WAIT,
        || async {
            let d = deploys.get(&api_deploy).await?;
            let image = d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|p| p.containers.into_iter().next())
                .and_then(|c| c.image);
            let rolled = image.is_some_and(|i| i.ends_with(":0.1.1-e2e"));
            let old_gone = jobs.get_opt(&old_jobs[0]).await?.is_none();
            Ok((rolled && old_gone).then_some(()))
        },
    )
    .await
    .with_context(|| format!("operator log:\n{}", operator.log_text()))?;

    // A missing ConfigMap reference: the ConfigMap is read (get), the condition says
    // why, and a Warning Event is published.
    let broken: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "broken" },
        "spec": {
            "cells": [{ "name": "c", "rabbitmq": { "host": "h", "credentialsSecretRef": { "name": "cell1-rabbitmq" } } }],
            "database": { "external": { "urlSecretRef": { "name": "db-url" } } },
            "config": { "triggers": { "configMapRef": { "name": "absent", "key": "triggers.yaml" } } }
        }
    }))?;
    regions.create(&PostParams::default(), &broken).await?;
    wait_for("ConfigValid=False MissingReference", WAIT, || async {
        let r = regions.get("broken").await?;
        Ok(condition(&r, "ConfigValid")
            .is_some_and(|(s, reason)| s == "False" && reason == "MissingReference")
            .then_some(()))
    })
    .await?;
    let events: Api<Event> = Api::namespaced(admin.clone(), &n);
    wait_for("the MissingReference Event", WAIT, || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("MissingReference")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
            })
            .then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", operator.log_text()))?;

    // Leader election ran on the chart's Role: the Lease in the release namespace names
    // the operator as its holder.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &n);
    wait_for("the leader Lease held by the operator", WAIT, || async {
        let holder = leases
            .get_opt("stv3-operator-leader")
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        Ok((holder.as_deref() == Some("chart")).then_some(()))
    })
    .await?;

    // A Forbidden for want of a permission fails the test. The operator watches every
    // namespace, so it also sees other tests' regions while their namespaces are being
    // deleted, where every write is refused as Forbidden with NamespaceTerminating:
    // those lines are no RBAC problem.
    let log = operator.log_text();
    let rbac: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .filter(|l| {
            !l.contains("NamespaceTerminating") && !l.contains("because it is being terminated")
        })
        .collect();
    ensure!(
        rbac.is_empty(),
        "the operator hit a Forbidden with the chart's RBAC:\n{}",
        rbac.join("\n")
    );
    drop(operator);

    // (b) Least privilege: calls outside the role are refused.
    let pp = PostParams::default();
    let cr: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": format!("{n}-escalate") },
        "rules": [{ "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"] }]
    }))?;
    forbidden(
        "creating a ClusterRole",
        Api::<ClusterRole>::all(sa_client.clone())
            .create(&pp, &cr)
            .await,
    )?;
    // (Listing Secrets is in the role since the operator watches the Secrets regions
    // reference, metadata only; deleting a StatefulSet and patching a Secret are too:
    // a database made external is pruned, and the generated Secret's owner follows
    // deletionPolicy. Data volumes are never the operator's to delete.)
    forbidden(
        "deleting a PersistentVolumeClaim",
        Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(sa_client.clone(), &n)
            .delete(&format!("data-{db}-0"), &Default::default())
            .await,
    )?;
    forbidden(
        "listing Pods",
        Api::<k8s_openapi::api::core::v1::Pod>::all(sa_client.clone())
            .list(&ListParams::default())
            .await,
    )?;
    forbidden(
        "deleting a region",
        Api::<StackTachRegion>::namespaced(sa_client.clone(), &n)
            .delete("broken", &Default::default())
            .await,
    )?;
    forbidden(
        "patching a region's spec",
        Api::<StackTachRegion>::namespaced(sa_client.clone(), &n)
            .patch(
                "broken",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await,
    )?;

    forbidden(
        "deleting the leader Lease",
        Api::<Lease>::namespaced(sa_client.clone(), &n)
            .delete("stv3-operator-leader", &Default::default())
            .await,
    )?;
    forbidden(
        "reading a Lease in another namespace",
        Api::<Lease>::namespaced(sa_client.clone(), "kube-system")
            .get("kube-controller-manager")
            .await,
    )?;

    // Uninstall removes the chart's objects (Helm leaves CRDs in place by design).
    let (nn, rel) = (n.clone(), release.clone());
    tokio::task::spawn_blocking(move || {
        helm(&[
            "uninstall",
            &rel,
            "--namespace",
            &nn,
            "--wait",
            "--timeout",
            "60s",
        ])
    })
    .await??;
    wait_for(
        "helm uninstall to remove the chart's objects",
        WAIT,
        || async {
            let gone = sas.get_opt(fullname).await?.is_none()
                && roles.get_opt(fullname).await?.is_none()
                && bindings.get_opt(fullname).await?.is_none()
                && deploys.get_opt(fullname).await?.is_none()
                && svcs
                    .get_opt(&format!("{fullname}-metrics"))
                    .await?
                    .is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    Api::<CustomResourceDefinition>::all(admin.clone())
        .get(CRD_NAME)
        .await
        .context("helm uninstall must leave the CRD (and every region) in place")?;

    ns.delete().await
}
