//! A new image migrates the schema before anything rolls to it: while the migration
//! Job of the new version cannot finish, the region says `Progressing=True
//! MigrationRunning` and the Deployments keep running the old version untouched; when
//! it fails, `Degraded=True MigrationFailed` names it (and a Warning Event), still
//! nothing rolls; once a Job of the new version completes, they roll, and the failed
//! Job is deleted.
//!
//! kwok plays the kubelet and completes Job pods (its `pod-complete` stage), so the
//! Job controller marks a schedulable migration Job Complete by itself; a nodeSelector
//! matching no node keeps one pending, which stands for a migration that takes long.
//!
//! Needs the cluster from `e2e/cluster/up.sh` and the operator binary. `#[ignore]`d in
//! a plain `cargo test`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use operator::crd::StackTachRegion;
use serde_json::json;
use stv3_e2e::operator::{
    cell, condition, create_secret, install_crds, OperatorOptions, OperatorProcess,
};
use stv3_e2e::{admin_client, wait_for, TestNamespace, WAIT};

const REPO: &str = "registry.invalid/stv3";

fn image(d: &Deployment) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn migration_completes_before_the_components_roll() -> Result<()> {
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "rollout").await?;
    let n = ns.name.clone();
    create_secret(&client, &n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    create_secret(
        &client,
        &n,
        "db",
        &[("url", stv3_e2e::external_database_url()?.as_str())],
    )
    .await?;
    let op = OperatorProcess::start(&OperatorOptions::in_namespace(&n, "rollout"))?;

    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &n);
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "r" },
        "spec": {
            "cells": [cell("a")],
            "database": { "external": { "urlSecretRef": { "name": "db" } } },
            "images": { "repository": REPO, "tag": "v1" }
        }
    }))?;
    regions.create(&PostParams::default(), &region).await?;

    // Version 1: its migration completes, then the components appear with it.
    let components = ["r-yagi-a", "r-pipeline-worker", "r-api"];
    let v1 = format!("{REPO}:v1");
    for name in components {
        wait_for(&format!("{name} at v1"), WAIT, || async {
            Ok(deploys
                .get_opt(name)
                .await?
                .filter(|d| image(d).as_deref() == Some(v1.as_str()))
                .map(|_| ()))
        })
        .await
        .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    }
    // (The status is written at the end of the reconcile that applied them.)
    wait_for("status.migratedImage v1", WAIT, || async {
        let r = regions.get("r").await?;
        Ok(
            (r.status.as_ref().and_then(|s| s.migrated_image.as_deref()) == Some(v1.as_str()))
                .then_some(()),
        )
    })
    .await?;
    let before: Vec<Option<i64>> = {
        let mut v = Vec::new();
        for name in components {
            v.push(deploys.get(name).await?.metadata.generation);
        }
        v
    };

    // Version 2 whose migration cannot run (no node matches): the components stay.
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": {
                "images": { "tag": "v2" },
                "pod": { "nodeSelector": { "stv3.dev/no-such-node": "true" } }
            } })),
        )
        .await?;
    let message = wait_for("Progressing=True MigrationRunning", WAIT, || async {
        let r = regions.get("r").await?;
        Ok(condition(&r, "Progressing")
            .filter(|(s, reason, _)| s == "True" && reason == "MigrationRunning")
            .map(|(_, _, m)| m))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    let lp = ListParams::default().labels("app.kubernetes.io/component=migration");
    let pending: Vec<String> = jobs
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|j| {
            j.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers[0].image.as_deref())
                == Some(&format!("{REPO}:v2")[..])
        })
        .filter_map(|j| j.metadata.name)
        .collect();
    ensure!(pending.len() == 1, "v2 migration Jobs: {pending:?}");
    ensure!(
        message.contains(&pending[0]),
        "the condition does not name the Job: {message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, generation) in components.iter().zip(&before) {
        let d = deploys.get(name).await?;
        ensure!(
            d.metadata.generation == *generation && image(&d).as_deref() == Some(v1.as_str()),
            "{name} changed while the migration runs: generation {:?}, image {:?}",
            d.metadata.generation,
            image(&d)
        );
    }

    // The migration fails: `FailureTarget` patched into the Job's status stands for
    // its pod running out of retries; the Job controller (1.31+) then adds `Failed`
    // itself. Degraded names the Job, a Warning Event says so, nothing rolls.
    let now = MicroTime(Timestamp::now());
    jobs.patch_status(
        &pending[0],
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "conditions": [{
            "type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "lastProbeTime": now, "lastTransitionTime": now,
        }] } })),
    )
    .await?;
    let degraded = wait_for("Degraded=True MigrationFailed", WAIT, || async {
        let r = regions.get("r").await?;
        Ok(condition(&r, "Degraded")
            .filter(|(s, reason, _)| s == "True" && reason == "MigrationFailed")
            .map(|(_, _, m)| m))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    ensure!(
        degraded.contains(&pending[0]) && degraded.contains("BackoffLimitExceeded"),
        "Degraded message: {degraded}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &n);
    wait_for("the MigrationFailed Warning Event", WAIT, || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("MigrationFailed")
                    && e.type_.as_deref() == Some("Warning")
                    && e.note.as_deref().is_some_and(|n| n.contains(&pending[0]))
            })
            .then_some(()))
    })
    .await?;
    for (name, generation) in components.iter().zip(&before) {
        let d = deploys.get(name).await?;
        ensure!(
            d.metadata.generation == *generation && image(&d).as_deref() == Some(v1.as_str()),
            "{name} changed after the migration failed"
        );
    }

    // The cause fixed: a new Job of v2 completes, the components roll, the stuck Job goes.
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "pod": { "nodeSelector": null } } })),
        )
        .await?;
    let v2 = format!("{REPO}:v2");
    for name in components {
        wait_for(&format!("{name} to roll to v2"), WAIT, || async {
            Ok(deploys
                .get_opt(name)
                .await?
                .filter(|d| image(d).as_deref() == Some(v2.as_str()))
                .map(|_| ()))
        })
        .await
        .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    }
    wait_for("the failed migration Job to be deleted", WAIT, || async {
        Ok(jobs.get_opt(&pending[0]).await?.is_none().then_some(()))
    })
    .await?;
    let r = wait_for("status.migratedImage v2", WAIT, || async {
        let r = regions.get("r").await?;
        Ok(
            (r.status.as_ref().and_then(|s| s.migrated_image.as_deref()) == Some(v2.as_str()))
                .then_some(r),
        )
    })
    .await?;
    ensure!(
        condition(&r, "Degraded").is_some_and(|(s, _, _)| s == "False"),
        "Degraded: {:?}",
        condition(&r, "Degraded")
    );
    ns.delete().await
}
