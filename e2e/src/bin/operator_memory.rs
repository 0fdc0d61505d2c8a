//! `operator-memory`: the operator's resident memory in a cluster full of Deployments
//! that are not its own, against the test control plane.
//!
//! A cluster-wide operator watches Deployments, ConfigMaps, Services … of every
//! namespace; filtered by its `managed-by` label, those watches stream only its own
//! objects. This starts the operator (every namespace) with one region, reads its RSS
//! once it has settled, creates `--deployments` unrelated Deployments (default 10,000;
//! replicas 0, so no pods) in another namespace, lets it settle again and reads the RSS
//! again. Prints a Markdown table; exits non-zero if the operator did not stay up.
//!
//! ```sh
//! e2e/cluster/up.sh
//! cargo build -p stv3-operator && cargo run -p stv3-e2e --bin operator-memory -- --deployments 10000
//! e2e/cluster/down.sh
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, PostParams};
use kube::Api;
use operator::crd::StackTachRegion;
use serde_json::json;
use stv3_e2e::operator::{
    cell, create_secret, install_crds, wait_settled, OperatorOptions, OperatorProcess,
};
use stv3_e2e::{admin_client, wait_for, TestNamespace, WAIT};

fn deployments_arg() -> Result<usize> {
    let mut args = std::env::args().skip(1);
    let mut n = 10_000;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--deployments" => {
                n = args
                    .next()
                    .context("--deployments needs a number")?
                    .parse()
                    .context("--deployments needs a number")?
            }
            "-h" | "--help" => {
                println!(
                    "operator-memory [--deployments N]   (default 10000; needs e2e/cluster/up.sh)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!(
        (1..=100_000).contains(&n),
        "--deployments must be 1..=100000"
    );
    Ok(n)
}

/// The resident set of a process, in MiB (Linux `/proc/<pid>/status`).
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let n = deployments_arg()?;
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let home = TestNamespace::create(&client, "mem").await?;
    let crowd = TestNamespace::create(&client, "mem-crowd").await?;
    let h = home.name.clone();
    create_secret(&client, &h, "rmq", &[("username", "u"), ("password", "p")]).await?;
    create_secret(&client, &h, "db", &[("url", "mysql://u:p@db.invalid/stv3")]).await?;
    let mut opts = OperatorOptions::in_namespace(&h, "memory");
    opts.watch_namespace = None;
    let mut op = OperatorProcess::start(&opts)?;
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "mem" },
        "spec": {
            "cells": [cell("a"), cell("b")],
            "database": { "external": { "urlSecretRef": { "name": "db" } } },
        },
    }))?;
    Api::<StackTachRegion>::namespaced(client.clone(), &h)
        .create(&PostParams::default(), &region)
        .await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &h);
    wait_for("the region's Deployments", WAIT, || async {
        Ok(deploys.get_opt("mem-api").await?.map(|_| ()))
    })
    .await?;
    wait_settled(&op, Duration::from_secs(5), Duration::from_secs(300)).await?;
    let before = rss_mib(op.pid())?;

    // The crowd: Deployments of nobody's, 32 creations at a time.
    let crowd_api: Api<Deployment> = Api::namespaced(client.clone(), &crowd.name);
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = crowd_api.clone();
            async move {
                let d: Deployment = serde_json::from_value(json!({
                    "metadata": { "name": format!("other-{i}"), "labels": { "app": "other" } },
                    "spec": {
                        "replicas": 0,
                        "selector": { "matchLabels": { "app": "other", "i": i.to_string() } },
                        "template": {
                            "metadata": { "labels": { "app": "other", "i": i.to_string() } },
                            "spec": { "containers": [{ "name": "c", "image": "registry.invalid/other:1" }] },
                        },
                    },
                }))?;
                api.create(&PostParams::default(), &d).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    let created = start.elapsed();
    let listed = crowd_api
        .list_metadata(&ListParams::default().limit(1))
        .await?;
    eprintln!(
        "created {n} Deployments in {:.0?} (list says more: {:?})",
        created, listed.metadata.remaining_item_count
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    wait_settled(&op, Duration::from_secs(5), Duration::from_secs(300)).await?;
    let after = rss_mib(op.pid())?;
    ensure!(op.exited()?.is_none(), "the operator exited");
    op.kill();

    println!("| unrelated Deployments in the cluster | operator RSS |");
    println!("|---|---|");
    println!("| 0 | {before:.1} MiB |");
    println!("| {n} | {after:.1} MiB |");
    crowd.delete().await?;
    home.delete().await?;
    Ok(())
}
