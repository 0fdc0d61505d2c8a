//! `operator-bench`: the operator on a 100-cell region, against the test control plane.
//!
//! Measures (1) the time from creating a region of `--cells` cells (default 100) to
//! every object it owns existing (the migration Job, which kwok completes, is part of
//! it: the components wait for it), and (2) the writes of a steady-state reconcile:
//! resourceVersions of every owned object (and the region) before and after a
//! reconcile forced by an annotation (which passes the operator's generation/annotation
//! predicate without changing the spec), and before and after restarting the operator.
//! Both must show zero writes. Prints a Markdown table.
//!
//! ```sh
//! e2e/cluster/up.sh
//! cargo build -p stv3-operator && cargo run -p stv3-e2e --bin operator-bench -- --cells 100
//! e2e/cluster/down.sh
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use operator::crd::StackTachRegion;
use serde_json::json;
use stv3_e2e::operator::{
    cell, create_secret, install_crds, resource_versions, wait_settled, OperatorOptions,
    OperatorProcess,
};
use stv3_e2e::{admin_client, TestNamespace};

const LONG: Duration = Duration::from_secs(600);

fn cells_arg() -> Result<usize> {
    let mut args = std::env::args().skip(1);
    let mut cells = 100;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cells" => {
                cells = args
                    .next()
                    .context("--cells needs a number")?
                    .parse()
                    .context("--cells needs a number")?
            }
            "-h" | "--help" => {
                println!("operator-bench [--cells N]   (default 100; needs e2e/cluster/up.sh)");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!((1..=256).contains(&cells), "--cells must be 1..=256");
    Ok(cells)
}

/// Counts the owned objects that exist: (Deployments, ConfigMaps, Services, HPAs).
async fn owned(client: &kube::Client, ns: &str) -> Result<(usize, usize, usize, usize)> {
    let lp = ListParams::default().labels("app.kubernetes.io/instance=bench");
    Ok((
        Api::<Deployment>::namespaced(client.clone(), ns)
            .list(&lp)
            .await?
            .items
            .len(),
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .list(&lp)
            .await?
            .items
            .len(),
        Api::<Service>::namespaced(client.clone(), ns)
            .list(&lp)
            .await?
            .items
            .len(),
        Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
            .list(&lp)
            .await?
            .items
            .len(),
    ))
}

fn changed(before: &[String], after: &[String]) -> Vec<String> {
    after
        .iter()
        .filter(|a| !before.contains(a))
        .filter(|a| !a.starts_with("StackTachRegion "))
        .cloned()
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let cells = cells_arg()?;
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "bench").await?;
    let n = ns.name.clone();
    create_secret(&client, &n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    create_secret(&client, &n, "db", &[("url", "mysql://u:p@db.invalid/stv3")]).await?;
    let opts = OperatorOptions::in_namespace(&n, "bench");
    let op = OperatorProcess::start(&opts)?;
    // Wait for it to lead before starting the clock.
    stv3_e2e::wait_for("the operator to lead", stv3_e2e::WAIT, || async {
        Ok((op.metric("stv3_operator_leader").await.unwrap_or(0.0) == 1.0).then_some(()))
    })
    .await?;

    let names: Vec<String> = (0..cells).map(|i| format!("c{i:03}")).collect();
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "bench" },
        "spec": {
            "cells": names.iter().map(|c| cell(c)).collect::<Vec<_>>(),
            "database": { "external": { "urlSecretRef": { "name": "db" } } }
        }
    }))?;
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    // Deployments: one per cell + pipeline workers + API; ConfigMaps: one per cell +
    // the region's; Services: the API's; HPAs: one.
    let want = (cells + 2, cells + 1, 1, 1);
    let t0 = Instant::now();
    regions.create(&PostParams::default(), &region).await?;
    loop {
        let have = owned(&client, &n).await?;
        if have == want {
            break;
        }
        if t0.elapsed() > LONG {
            bail!("after {:?}: {have:?} of {want:?}", t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_exist = t0.elapsed();

    // Let the cluster's own controllers finish (kwok readying 100+ pods, the deployment
    // controller writing Deployment status, the HPA controller's first sync): their
    // writes are not the operator's.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &n);
    let lp = ListParams::default().labels("app.kubernetes.io/instance=bench");
    stv3_e2e::wait_for(
        "every Deployment available and the HPA synced",
        LONG,
        || async {
            let ready = deploys.list(&lp).await?.items.iter().all(|d| {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = d.status.clone().unwrap_or_default();
                st.observed_generation == d.metadata.generation
                    && st.ready_replicas.unwrap_or(0) == want
                    && st.updated_replicas.unwrap_or(0) == want
            });
            let synced = hpas.list(&lp).await?.items.iter().all(|h| {
                h.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| !c.is_empty())
            });
            Ok((ready && synced).then_some(()))
        },
    )
    .await?;
    let all_ready = t0.elapsed();

    let settled = wait_settled(&op, Duration::from_secs(3), LONG).await?;
    let settle_time = t0.elapsed();
    let duration_sum = op
        .metric("stv3_operator_reconcile_duration_seconds_sum")
        .await?;
    let duration_count = op
        .metric("stv3_operator_reconcile_duration_seconds_count")
        .await?;

    // A forced reconcile of the unchanged region.
    let before = resource_versions(&client, &n, "bench").await?;
    regions
        .patch(
            "bench",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "bench.stv3.dev/poke": "1" } } })),
        )
        .await?;
    let t1 = Instant::now();
    stv3_e2e::wait_for("the forced reconcile", stv3_e2e::WAIT, || async {
        Ok((op.metric("stv3_operator_reconciles_total").await? > settled).then_some(()))
    })
    .await?;
    let after_poke = wait_settled(&op, Duration::from_secs(3), LONG).await?;
    let forced_time = t1.elapsed();
    let forced_sum = op
        .metric("stv3_operator_reconcile_duration_seconds_sum")
        .await?;
    let after = resource_versions(&client, &n, "bench").await?;
    let forced_writes = changed(&before, &after);

    // A restart: the new process reconciles everything once.
    let mut op = op;
    op.terminate()?;
    let op = OperatorProcess::start(&opts)?;
    stv3_e2e::wait_for("the restarted operator to reconcile", LONG, || async {
        Ok((op
            .metric("stv3_operator_reconciles_total")
            .await
            .unwrap_or(0.0)
            >= 1.0)
            .then_some(()))
    })
    .await?;
    wait_settled(&op, Duration::from_secs(3), LONG).await?;
    let restarted = resource_versions(&client, &n, "bench").await?;
    let restart_writes = changed(&after, &restarted);

    let owned_objects = before.len() - 1;
    println!("| measure | {cells} cells |");
    println!("|---|---|");
    println!(
        "| create → every owned object exists ({} Deployments, {} ConfigMaps, Service, HPA; migration Job first) | {:.1} s |",
        want.0, want.1, all_exist.as_secs_f64()
    );
    println!(
        "| create → every Deployment available (kwok) and the HPA synced | {:.1} s |",
        all_ready.as_secs_f64()
    );
    println!(
        "| create → operator quiet (no reconcile for 3 s; includes those 3 s) | {:.1} s |",
        settle_time.as_secs_f64()
    );
    println!(
        "| reconciles until quiet | {settled} (mean {:.0} ms each) |",
        1000.0 * duration_sum / duration_count.max(1.0)
    );
    println!(
        "| forced steady-state reconcile: reconciles / time in reconcile | {} / {:.0} ms (quiet after {:.1} s) |",
        after_poke - settled,
        1000.0 * (forced_sum - duration_sum),
        forced_time.as_secs_f64()
    );
    println!(
        "| writes to the {owned_objects} owned objects in that reconcile | {} |",
        forced_writes.len()
    );
    println!(
        "| writes to the owned objects after an operator restart | {} |",
        restart_writes.len()
    );
    drop(op);
    ns.delete().await?;
    ensure!(
        forced_writes.is_empty() && restart_writes.is_empty(),
        "a steady-state reconcile wrote: {forced_writes:?} {restart_writes:?}"
    );
    Ok(())
}
