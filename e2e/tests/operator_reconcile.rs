//! The operator (`target/debug/stv3-operator`, run as a local process against the test
//! control plane) reconciling a region: owned objects appear with status; editing the
//! cell list adds and removes exactly those cells' objects; an invalid trigger file
//! sets `ConfigValid=False` and changes nothing that runs, fixing it rolls the
//! Deployments; deleting the region collects everything.
//!
//! Needs the cluster from `e2e/cluster/up.sh` and the operator binary
//! (`cargo build -p stv3-operator`; `cargo test --workspace` builds it too), or its path
//! in `STV3_OPERATOR_BIN`. `#[ignore]`d in a plain `cargo test`.

use anyhow::{bail, ensure, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator::crd::StackTachRegion;
use serde_json::json;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::events::v1::Event;
use stv3_e2e::operator::{
    resource_versions, wait_settled, workspace, OperatorOptions, OperatorProcess,
};
use stv3_e2e::{admin_client, wait_for, TestNamespace, WAIT};

const CRD_NAME: &str = "stacktachregions.stacktach.io";

async fn install_crd(client: &Client) -> Result<()> {
    let text =
        std::fs::read_to_string(workspace().join("crds/stacktach.io_stacktachregions.yaml"))?;
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        CRD_NAME,
        &PatchParams::apply("stv3-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    wait_for("CRD stacktachregions to be Established", WAIT, || async {
        let c = crds.get(CRD_NAME).await?;
        Ok(c.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(()))
    })
    .await
}

fn cell(name: &str) -> serde_json::Value {
    json!({ "name": name, "rabbitmq": { "host": "rabbit.invalid", "credentialsSecretRef": { "name": "rmq" } } })
}

const PIPELINES: &str = "usage_pipeline:\n  - logger\n";
const TRIGGERS: &str = "- name: usage\n  distinguished_by: [instance_id]\n  expiration: \"$last + 1h\"\n  fire_pipeline: usage_pipeline\n  expire_pipeline: usage_pipeline\n  match_criteria:\n    - event_type: compute.instance.*\n  fire_criteria:\n    - event_type: compute.instance.exists\n";

fn condition(r: &StackTachRegion, type_: &str) -> Option<(String, String)> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone()))
}

fn config_hash(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(operator::desired::CONFIG_HASH_ANNOTATION)
        .cloned()
}

/// For each object the operator applied in `ns`: its generation (when it has one) or
/// resourceVersion, and when the operator's field manager last wrote it.
async fn owned_writes(client: &Client, ns: &str) -> Result<Vec<String>> {
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=stv3-operator");
    let mut out = Vec::new();
    let mut record = |kind: &str, m: &kube::api::ObjectMeta| {
        let ours = m
            .managed_fields
            .iter()
            .flatten()
            .find(|f| f.manager.as_deref() == Some(operator::desired::FIELD_MANAGER))
            .and_then(|f| f.time.as_ref())
            .map(|t| t.0.to_string());
        let version = match m.generation {
            Some(g) => format!("generation {g}"),
            None => format!("resourceVersion {:?}", m.resource_version),
        };
        out.push(format!("{kind} {:?}: {version}, written {ours:?}", m.name));
    };
    for d in Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
    {
        record("Deployment", &d.metadata);
    }
    for c in Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
    {
        record("ConfigMap", &c.metadata);
    }
    out.sort();
    Ok(out)
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn operator_reconciles_cells_config_and_deletion() -> Result<()> {
    let client = admin_client().await?;
    install_crd(&client).await?;
    let ns = TestNamespace::create(&client, "operator").await?;
    let n = ns.name.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &n);
    secrets
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": { "name": "rmq" }, "stringData": { "username": "u", "password": "p-secret" }
        }))?)
        .await?;
    let opts = OperatorOptions::in_namespace(&n, "reconcile");
    let operator = OperatorProcess::start(&opts)?;

    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "r" },
        "spec": {
            "cells": [cell("a"), cell("b")],
            "database": { "managed": {} },
            "config": { "triggers": { "inline": TRIGGERS }, "pipelines": { "inline": PIPELINES } }
        }
    }))?;
    wait_for("the region to be created", WAIT, || async {
        Ok(Some(regions.create(&PostParams::default(), &region).await?))
    })
    .await?;

    // Everything owned appears, and the status says which generation it describes.
    for name in ["r-yagi-a", "r-yagi-b", "r-pipeline-worker", "r-api"] {
        wait_for(&format!("Deployment {name}"), WAIT, || async {
            Ok(deploys.get_opt(name).await?.map(|_| ()))
        })
        .await?;
    }
    let r = wait_for(
        "status.observedGeneration and ConfigValid=True",
        WAIT,
        || async {
            let r = regions.get("r").await?;
            let observed = r.status.as_ref().and_then(|s| s.observed_generation);
            let valid = condition(&r, "ConfigValid").is_some_and(|(s, _)| s == "True");
            Ok((observed == r.metadata.generation && valid).then_some(r))
        },
    )
    .await?;
    let status = r.status.clone().unwrap();
    ensure!(status.cells.len() == 2, "per-cell status: {status:?}");
    ensure!(
        status.api_endpoint.as_deref() == Some(&format!("http://r-api.{n}.svc:8000")[..]),
        "apiEndpoint: {:?}",
        status.api_endpoint
    );
    ensure!(
        condition(&r, "Ready").is_some(),
        "no Ready condition: {status:?}"
    );
    let pw = deploys.get("r-pipeline-worker").await?;
    ensure!(
        pw.spec.as_ref().unwrap().replicas.is_some(),
        "the server defaults replicas"
    );

    // Settled, the operator is quiet: its status writes do not wake it (generation
    // predicate), so the reconcile counter stays flat and nothing, the region included,
    // gets a new resourceVersion.
    // (The HPA controller's first sync writes the HPA's status, an owned object, which
    // rightly triggers a reconcile: wait for it first.)
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &n);
    wait_for("the HPA controller to sync the HPA", WAIT, || async {
        let hpa = hpas.get("r-pipeline-worker").await?;
        Ok(hpa
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|c| !c.is_empty())
            .then_some(()))
    })
    .await?;
    let settled = wait_settled(&operator, Duration::from_secs(3), WAIT).await?;
    ensure!(settled >= 1.0, "no reconcile counted: {settled}");
    let versions = resource_versions(&client, &n, "r").await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let counter = operator.metric("stv3_operator_reconciles_total").await?;
    ensure!(
        counter == settled,
        "the operator reconciled a settled region again ({settled} → {counter} reconciles)"
    );
    let again = resource_versions(&client, &n, "r").await?;
    ensure!(
        versions == again,
        "a settled region's objects changed:\n{versions:#?}\nthen\n{again:#?}"
    );
    let (code, _) = operator.http_get("/readyz").await?;
    ensure!(code == 200, "/readyz answered {code}");
    // A status write alone (as the operator's own are) does not wake the operator: the
    // region watch passes on generation and annotation changes only.
    regions
        .patch_status(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "cellsReady": "status-only write" } })),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counter = operator.metric("stv3_operator_reconciles_total").await?;
    ensure!(
        counter == settled,
        "a status-only change triggered a reconcile ({settled} → {counter})"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    for cm in cms.list(&ListParams::default()).await? {
        ensure!(
            !serde_json::to_string(&cm.data)?.contains("p-secret"),
            "a credential in ConfigMap {:?}",
            cm.metadata.name
        );
    }

    // Cells: remove a, add c and d. b's Deployment is not rewritten.
    let b_before = deploys.get("r-yagi-b").await?;
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "cells": [cell("b"), cell("c"), cell("d")] }
            })),
        )
        .await?;
    wait_for(
        "r-yagi-a to go and r-yagi-c, r-yagi-d to appear",
        WAIT,
        || async {
            let a = deploys.get_opt("r-yagi-a").await?.is_some();
            let a_cm = cms.get_opt("r-yagi-a").await?.is_some();
            let c = deploys.get_opt("r-yagi-c").await?.is_some();
            let d = deploys.get_opt("r-yagi-d").await?.is_some();
            Ok((!a && !a_cm && c && d).then_some(()))
        },
    )
    .await?;
    let b_after = deploys.get("r-yagi-b").await?;
    ensure!(
        b_before.metadata.generation == b_after.metadata.generation
            && config_hash(&b_before) == config_hash(&b_after),
        "editing other cells changed r-yagi-b"
    );

    // An invalid trigger file: ConfigValid=False naming the file, nothing rolls.
    let hash_before = config_hash(&b_after);
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "config": { "triggers": { "inline": "- name: [unclosed\n" } } }
            })),
        )
        .await?;
    let message = wait_for("ConfigValid=False", WAIT, || async {
        let r = regions.get("r").await?;
        Ok(condition(&r, "ConfigValid").and_then(|(s, m)| (s == "False").then_some(m)))
    })
    .await?;
    ensure!(
        message.contains("triggers.yaml"),
        "the message does not name the file: {message}"
    );
    // Degraded says why, and a Warning Event with the reason exists.
    let r = regions.get("r").await?;
    let degraded = r
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
        .map(|c| (c.status.clone(), c.reason.clone()));
    ensure!(
        degraded == Some(("True".into(), "InvalidConfig".into())),
        "Degraded: {degraded:?}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &n);
    let note = wait_for("the InvalidConfig Warning Event", WAIT, || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list.items.into_iter().find_map(|e| {
            (e.reason.as_deref() == Some("InvalidConfig")
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("r"))
            .then(|| e.note.unwrap_or_default())
        }))
    })
    .await?;
    ensure!(note.contains("triggers.yaml"), "Event note: {note}");
    ensure!(!note.contains("p-secret"), "a credential in an Event");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    ensure!(
        config_hash(&deploys.get("r-yagi-b").await?) == hash_before,
        "an invalid config rolled r-yagi-b"
    );

    // Fixed (and changed): ConfigValid=True and the Deployments roll.
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "config": { "triggers": { "inline": TRIGGERS.replace("1h", "2h") } } }
            })),
        )
        .await?;
    wait_for("r-yagi-b to roll to the fixed config", WAIT, || async {
        let r = regions.get("r").await?;
        let valid = condition(&r, "ConfigValid").is_some_and(|(s, _)| s == "True");
        let rolled = config_hash(&deploys.get("r-yagi-b").await?) != hash_before;
        Ok((valid && rolled).then_some(()))
    })
    .await?;

    // Definitions the original loaded, with a key it ignored and a `..` path: not
    // refused. ConfigValid=True says ParsedWithWarnings and names the line, and the
    // new definitions roll out like any change.
    let hash_fixed = config_hash(&deploys.get("r-yagi-b").await?);
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "config": { "eventDefinitions": { "inline":
                    "- event_type: compute.*\n  traits:\n    host: {fields: 'payload..host', note: x}\n"
                } } }
            })),
        )
        .await?;
    let warned = wait_for(
        "ConfigValid=True ParsedWithWarnings and a roll",
        WAIT,
        || async {
            let r = regions.get("r").await?;
            let c = r
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "ConfigValid"))
                .cloned();
            let rolled = config_hash(&deploys.get("r-yagi-b").await?) != hash_fixed;
            Ok(c.filter(|c| c.status == "True" && c.reason == "ParsedWithWarnings" && rolled))
        },
    )
    .await?;
    for needle in [
        "2 warnings",
        "event_definitions.yaml:3: ",
        "unknown trait key 'note'",
        "any depth",
    ] {
        ensure!(
            warned.message.contains(needle),
            "ConfigValid message: {}",
            warned.message
        );
    }

    // Restarting the operator writes nothing to what the region owns. (A pause first:
    // managed-fields times have one-second resolution.)
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before = owned_writes(&client, &n).await?;
    // SIGTERM: the operator releases its Lease, so the new one leads at once.
    let mut operator = operator;
    let status = operator.terminate()?;
    ensure!(
        status.success(),
        "SIGTERM: the operator exited with {status}"
    );
    let operator = OperatorProcess::start(&opts)?;
    let log = operator.log.clone();
    wait_for(
        "the restarted operator to reconcile the region",
        WAIT,
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text.contains("reconciled").then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = owned_writes(&client, &n).await?;
    ensure!(
        before == after,
        "restarting the operator wrote to owned objects:\n{before:#?}\nthen\n{after:#?}"
    );
    drop(operator);

    // Deleting the region collects everything it owned.
    regions.delete("r", &Default::default()).await?;
    wait_for("the region's Deployments to be collected", WAIT, || async {
        let lp = ListParams::default().labels("app.kubernetes.io/instance=r");
        Ok(deploys.list(&lp).await?.items.is_empty().then_some(()))
    })
    .await?;
    if let Err(e) = ns.delete().await {
        bail!("{e:#}");
    }
    Ok(())
}
