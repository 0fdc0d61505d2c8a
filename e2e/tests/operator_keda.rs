//! Backlog autoscaling: a region with `pipelineWorkers.autoscaling.backlog` keeps the
//! CPU HorizontalPodAutoscaler while KEDA is absent (and says so in the
//! `BacklogAutoscaling` condition); once KEDA's CRDs exist (a minimal copy,
//! `e2e/fixtures/keda-crds.yaml`), the operator creates a ScaledObject and its
//! TriggerAuthentication and deletes its HPA.
//!
//! The KEDA CRDs are cluster-wide: this test removes them first (a cluster left from an
//! earlier run) and at the end. Other tests' regions do not ask for backlog scaling, so
//! they are unaffected. Needs the cluster from `e2e/cluster/up.sh` and the operator
//! binary. `#[ignore]`d in a plain `cargo test`.

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator::crd::StackTachRegion;
use operator::keda;
use serde_json::json;
use stv3_e2e::operator::{
    cell, condition, create_secret, install_crds, OperatorOptions, OperatorProcess,
};
use stv3_e2e::{admin_client, wait_for, TestNamespace, WAIT};

const KEDA_CRDS: [&str; 2] = ["scaledobjects.keda.sh", "triggerauthentications.keda.sh"];

async fn remove_keda(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in KEDA_CRDS {
        if crds.get_opt(name).await?.is_some() {
            crds.delete(name, &Default::default()).await?;
        }
    }
    wait_for("the KEDA CRDs to be gone", WAIT, || async {
        for name in KEDA_CRDS {
            if crds.get_opt(name).await?.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn backlog_scaling_uses_keda_only_when_installed() -> Result<()> {
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    remove_keda(&client).await?;
    let ns = TestNamespace::create(&client, "keda").await?;
    let n = ns.name.clone();
    create_secret(&client, &n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    create_secret(
        &client,
        &n,
        "db",
        &[
            ("url", stv3_e2e::external_database_url()?.as_str()),
            ("keda-connection-string", "u:p@tcp(db.invalid:3306)/stv3"),
        ],
    )
    .await?;
    let op = OperatorProcess::start(&OperatorOptions::in_namespace(&n, "keda"))?;

    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &n);
    let sos: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &n, &keda::scaled_object_resource());
    let tas: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &n, &keda::trigger_authentication_resource());
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "r" },
        "spec": {
            "cells": [cell("a")],
            "pipelineWorkers": { "minReplicas": 1, "maxReplicas": 6,
                "autoscaling": { "backlog": { "targetStreamsPerReplica": 200 } } },
            "database": { "external": { "urlSecretRef": { "name": "db" } } }
        }
    }))?;
    regions.create(&PostParams::default(), &region).await?;

    // No KEDA: the CPU autoscaler, and a condition saying why.
    let message = wait_for("BacklogAutoscaling=False KedaAbsent", WAIT, || async {
        let r = regions.get("r").await?;
        Ok(condition(&r, "BacklogAutoscaling")
            .filter(|(s, reason, _)| s == "False" && reason == "KedaAbsent")
            .map(|(_, _, m)| m))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    ensure!(message.contains("scaledobjects.keda.sh"), "{message}");
    ensure!(
        hpas.get_opt("r-pipeline-worker").await?.is_some(),
        "no HPA without KEDA"
    );

    // KEDA installed; the next reconcile (any change; here an annotation) switches.
    install_crds(&client, "e2e/fixtures/keda-crds.yaml").await?;
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "e2e.stv3.dev/poke": "1" } } })),
        )
        .await?;
    let so = wait_for("the ScaledObject", WAIT, || async {
        Ok(sos.get_opt("r-pipeline-worker").await?)
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    let spec = &so.data["spec"];
    ensure!(
        spec["scaleTargetRef"]["name"] == "r-pipeline-worker",
        "{spec}"
    );
    ensure!(spec["maxReplicaCount"] == 6, "{spec}");
    ensure!(spec["triggers"][0]["type"] == "mysql", "{spec}");
    ensure!(
        spec["triggers"][0]["metadata"]["queryValue"] == "200",
        "{spec}"
    );
    let ta = tas
        .get("r-pipeline-worker")
        .await
        .context("no TriggerAuthentication")?;
    let target = &ta.data["spec"]["secretTargetRef"][0];
    ensure!(
        target["name"] == "db" && target["key"] == "keda-connection-string",
        "{target}"
    );
    ensure!(
        !serde_json::to_string(&ta.data)?.contains("u:p@"),
        "a credential in the TriggerAuthentication"
    );
    wait_for("the HPA to be deleted", WAIT, || async {
        Ok(hpas
            .get_opt("r-pipeline-worker")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let r = regions.get("r").await?;
    ensure!(
        condition(&r, "BacklogAutoscaling")
            .is_some_and(|(s, reason, _)| s == "True" && reason == "KedaScaledObject"),
        "{:?}",
        condition(&r, "BacklogAutoscaling")
    );

    drop(op);
    ns.delete().await?;
    remove_keda(&client).await
}
