//! Day-2 operations on the test cluster (kwok's node plays the kubelet): a drain
//! respects the region's PodDisruptionBudgets, budgets follow the spec, and a Secret or
//! ConfigMap a region reads that appears or changes is noticed in seconds (the watch,
//! not the 300 s resync), rolling exactly the Deployments that read it.
//!
//! Needs the cluster from `e2e/cluster/up.sh` and the operator binary. `#[ignore]`d in
//! a plain `cargo test`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use operator::crd::StackTachRegion;
use operator::desired::{CONFIG_HASH_ANNOTATION, SECRETS_HASH_ANNOTATION};
use serde_json::json;
use stv3_e2e::operator::{
    cell, condition, create_secret, install_crds, OperatorOptions, OperatorProcess,
};
use stv3_e2e::{
    admin_client, admin_client_without_retries, api_error, has_kwok_node, wait_for, TestNamespace,
    WAIT,
};

/// What "noticed in seconds" means here: well under the operator's 60 s recheck of a
/// missing Secret and its 300 s resync, so only the watch can explain it.
const NOTICED: Duration = Duration::from_secs(12);

async fn create_region(client: &Client, ns: &str, spec: serde_json::Value) -> Result<()> {
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), ns);
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "r" }, "spec": spec,
    }))?;
    regions.create(&PostParams::default(), &region).await?;
    Ok(())
}

fn annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A fake node of this test's own, managed by kwok (its annotation), that only this
/// test's API pods go to (a label they select and a taint they tolerate): draining it
/// touches no other test's pods.
async fn own_node(client: &Client, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": { "node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake" },
            "labels": { "kubernetes.io/hostname": name, "type": "kwok", "stv3.dev/drain-test": name },
        },
        "spec": { "taints": [{ "key": "stv3.dev/drain-test", "value": name, "effect": "NoSchedule" }] },
        "status": {
            "allocatable": { "cpu": "32", "memory": "256Gi", "pods": "110" },
            "capacity": { "cpu": "32", "memory": "256Gi", "pods": "110" },
        },
    }))?;
    nodes.create(&PostParams::default(), &node).await?;
    wait_for(&format!("node {name} Ready"), WAIT, || async {
        let ready = nodes
            .get(name)
            .await?
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Ok(ready.then_some(()))
    })
    .await
}

async fn set_unschedulable(client: &Client, name: &str, cordoned: bool) -> Result<()> {
    Api::<Node>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "unschedulable": cordoned } })),
        )
        .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn a_drain_respects_the_disruption_budgets() -> Result<()> {
    let client = admin_client().await?;
    if !has_kwok_node(&client).await? {
        bail!("this test needs kwok (e2e/cluster/up.sh builds it)");
    }
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "drain").await?;
    let n = ns.name.clone();
    let node = format!("kwok-{n}");
    own_node(&client, &node).await?;
    let result = drain_scenario(&client, &n, &node).await;
    let _ = Api::<Node>::all(client.clone())
        .delete(&node, &Default::default())
        .await;
    result?;
    ns.delete().await
}

async fn drain_scenario(client: &Client, n: &str, node: &str) -> Result<()> {
    create_secret(client, n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    create_secret(
        client,
        n,
        "db",
        &[("url", stv3_e2e::external_database_url()?.as_str())],
    )
    .await?;
    let op = OperatorProcess::start(&OperatorOptions::in_namespace(n, "drain"))?;
    let mut two = cell("b");
    two["yagiReplicas"] = json!(2);
    create_region(
        client,
        n,
        json!({
            "cells": [cell("a"), two],
            "api": { "replicas": 3, "placement": {
                "nodeSelector": { "stv3.dev/drain-test": node },
                "tolerations": [{ "key": "stv3.dev/drain-test", "operator": "Equal", "value": node, "effect": "NoSchedule" }],
                "topologySpreadConstraints": [],
            } },
            "database": { "external": { "urlSecretRef": { "name": "db" } } },
        }),
    )
    .await?;

    // The budgets: API (3 replicas), workers (up to 4), cell b (2 collectors); not
    // cell a (one collector: a budget would change nothing).
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), n);
    let wanted: BTreeSet<String> = ["r-api", "r-pipeline-worker", "r-yagi-b"]
        .map(String::from)
        .into();
    wait_for("the region's PodDisruptionBudgets", WAIT, || async {
        let names: BTreeSet<String> = pdbs
            .list(&ListParams::default())
            .await?
            .into_iter()
            .map(|p| p.name_any())
            .collect();
        Ok((names == wanted).then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;

    // Three API pods ready on the test's node, and one disruption allowed. (Evictions
    // go through a client that reports a 429 rather than retrying it for minutes.)
    let pods: Api<Pod> = Api::namespaced(admin_client_without_retries().await?, n);
    let api_pods = ListParams::default().labels("app.kubernetes.io/component=api");
    let originals: Vec<String> = wait_for("three ready API pods", WAIT, || async {
        let ready: Vec<String> = pods
            .list(&api_pods)
            .await?
            .into_iter()
            .filter(ready)
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .map(|p| p.name_any())
            .collect();
        Ok((ready.len() == 3).then_some(ready))
    })
    .await?;
    wait_for("r-api to allow one disruption", WAIT, || async {
        let allowed = pdbs
            .get("r-api")
            .await?
            .status
            .map(|s| (s.disruptions_allowed, s.current_healthy));
        Ok((allowed == Some((Some(1), Some(3)))).then_some(()))
    })
    .await?;

    // `kubectl drain`: cordon, then evict every pod of the node. The first eviction goes
    // through; its replacement cannot be scheduled (the node is cordoned and no other
    // fits), so the other two are refused (429) by the budget.
    set_unschedulable(client, node, true).await?;
    eprintln!("drain: {node} cordoned");
    let mut refused = 0;
    let mut evicted = Vec::new();
    for name in &originals {
        match pods.evict(name, &EvictParams::default()).await {
            Ok(_) => evicted.push(name.clone()),
            Err(e) if api_error(&e).is_some_and(|(code, _, _)| code == 429) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    ensure!(
        evicted.len() == 1 && refused == 2,
        "evicting all three API pods of a cordoned node: {} evicted, {refused} refused",
        evicted.len()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused_again = pods.evict(&originals[1], &EvictParams::default()).await;
    ensure!(
        refused_again
            .as_ref()
            .err()
            .and_then(api_error)
            .is_some_and(|(code, _, _)| code == 429),
        "a second API pod was evicted while the first had no ready replacement"
    );

    // Room elsewhere (uncordoned here, as a new node would give): the drain, retrying,
    // finishes one pod at a time, never with fewer than two API pods ready.
    set_unschedulable(client, node, false).await?;
    let start = Instant::now();
    while evicted.len() < originals.len() {
        ensure!(
            start.elapsed() < WAIT,
            "the drain did not finish: evicted {evicted:?}"
        );
        let left: Vec<String> = originals
            .iter()
            .filter(|p| !evicted.contains(p))
            .cloned()
            .collect();
        for name in &left {
            match pods.evict(name, &EvictParams::default()).await {
                Ok(_) => {
                    // The evicted pod is going: the other two must still serve.
                    let ready_after = pods
                        .list(&api_pods)
                        .await?
                        .into_iter()
                        .filter(ready)
                        .count();
                    ensure!(
                        ready_after >= 2,
                        "an eviction left {ready_after} API pods ready (the budget allows one down)"
                    );
                    eprintln!("drain: evicted {name} after {:?}", start.elapsed());
                    evicted.push(name.clone());
                }
                Err(e) if api_error(&e).is_some_and(|(code, _, _)| code == 429) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Budgets follow the spec: cell b down to one collector loses its budget; turned
    // off, they all go.
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), n);
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "cells": [cell("a"), cell("b")] } })),
        )
        .await?;
    wait_for("r-yagi-b's budget to go", WAIT, || async {
        Ok(pdbs.get_opt("r-yagi-b").await?.is_none().then_some(()))
    })
    .await?;
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "disruptionBudgets": { "enabled": false } } })),
        )
        .await?;
    wait_for("every budget to go", WAIT, || async {
        Ok(pdbs
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    drop(op);
    Ok(())
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn a_secret_or_config_map_that_appears_or_changes_is_noticed_in_seconds() -> Result<()> {
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "rotate").await?;
    let n = ns.name.clone();
    create_secret(
        &client,
        &n,
        "rmq",
        &[("username", "u"), ("password", "one")],
    )
    .await?;
    create_secret(
        &client,
        &n,
        "db",
        &[("url", stv3_e2e::external_database_url()?.as_str())],
    )
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": { "name": "defs" },
            "data": { "triggers.yaml": "- name: t\n  distinguished_by: [instance_id]\n  expiration: \"$last + 1h\"\n  fire_pipeline: p\n  expire_pipeline: p\n  match_criteria: [{event_type: compute.instance.*}]\n  fire_criteria: [{event_type: compute.instance.exists}]\n" }
        }))?,
    )
    .await?;
    let op = OperatorProcess::start(&OperatorOptions::in_namespace(&n, "rotate"))?;
    let mut other = cell("b");
    other["rabbitmq"]["credentialsSecretRef"]["name"] = json!("rmq-b");
    create_region(
        &client,
        &n,
        json!({
            "cells": [cell("a"), other],
            "database": { "external": { "urlSecretRef": { "name": "db" } } },
            "config": {
                "triggers": { "configMapRef": { "name": "defs", "key": "triggers.yaml" } },
                "pipelines": { "inline": "p:\n  - logger\n" },
            },
        }),
    )
    .await?;
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let cell_reason = |r: &StackTachRegion, name: &str| {
        r.status
            .as_ref()
            .and_then(|s| s.cells.iter().find(|c| c.name == name))
            .and_then(|c| c.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.reason.clone())
    };
    wait_for("cell b to say its Secret is missing", WAIT, || async {
        let r = regions.get("r").await?;
        Ok((cell_reason(&r, "b").as_deref() == Some("CredentialsSecretMissing")).then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    for name in ["r-yagi-a", "r-yagi-b", "r-pipeline-worker", "r-api"] {
        wait_for(&format!("Deployment {name}"), WAIT, || async {
            Ok(deploys.get_opt(name).await?.map(|_| ()))
        })
        .await
        .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    }
    let hashes = || async {
        let mut out = Vec::new();
        for name in ["r-yagi-a", "r-yagi-b", "r-pipeline-worker", "r-api"] {
            let d = deploys.get(name).await?;
            out.push((
                annotation(&d, SECRETS_HASH_ANNOTATION).context("no secrets hash")?,
                annotation(&d, CONFIG_HASH_ANNOTATION).context("no config hash")?,
            ));
        }
        Ok::<_, anyhow::Error>(out)
    };
    let before = hashes().await?;

    // The missing Secret appears: cell b's condition clears and its collectors' pods
    // roll (they could not start without it); nothing else changes.
    create_secret(
        &client,
        &n,
        "rmq-b",
        &[("username", "u"), ("password", "b")],
    )
    .await?;
    let appeared = Instant::now();
    wait_for("cell b to see its new Secret", NOTICED, || async {
        let r = regions.get("r").await?;
        Ok((cell_reason(&r, "b").as_deref() != Some("CredentialsSecretMissing")).then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    let after = hashes().await?;
    ensure!(
        after[1].0 != before[1].0,
        "r-yagi-b's secrets hash did not change"
    );
    ensure!(
        after[0] == before[0] && after[2] == before[2] && after[3] == before[3],
        "a Deployment not reading rmq-b changed: {before:?} → {after:?}"
    );
    eprintln!("a new Secret noticed in {:?}", appeared.elapsed());

    // A rotated password rolls the collectors that read it, in seconds.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &n);
    secrets
        .patch(
            "rmq",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "password": "two" } })),
        )
        .await?;
    let rotated = wait_for(
        "r-yagi-a to roll on the rotated password",
        NOTICED,
        || async {
            let now = hashes().await?;
            Ok((now[0].0 != after[0].0).then_some(now))
        },
    )
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    ensure!(
        rotated[1] == after[1] && rotated[2] == after[2] && rotated[3] == after[3],
        "a Deployment not reading rmq changed: {after:?} → {rotated:?}"
    );

    // A changed ConfigMap file rolls the workers (and the collectors, which distill
    // with the region's files) but not the API, which reads no triggers.
    cms.patch(
        "defs",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "triggers.yaml": "- name: t2\n  distinguished_by: [instance_id]\n  expiration: \"$last + 2h\"\n  fire_pipeline: p\n  expire_pipeline: p\n  match_criteria: [{event_type: compute.instance.*}]\n  fire_criteria: [{event_type: compute.instance.exists}]\n" } })),
    )
    .await?;
    let changed = wait_for(
        "the workers to roll on the new triggers",
        NOTICED,
        || async {
            let now = hashes().await?;
            Ok((now[2].1 != rotated[2].1).then_some(now))
        },
    )
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    ensure!(
        changed[3] == rotated[3],
        "the API rolled on a triggers change: {rotated:?} → {changed:?}"
    );
    let r = regions.get("r").await?;
    ensure!(
        condition(&r, "ConfigValid").is_some_and(|(s, _, _)| s == "True"),
        "ConfigValid: {:?}",
        condition(&r, "ConfigValid")
    );
    drop(op);
    ns.delete().await
}

/// `kubectl get stacktachregion` as a user runs it: the row of region `r`, as
/// (cells, ready).
fn kubectl_row(ns: &str) -> Result<(String, String)> {
    let out = stv3_e2e::node::kubectl(&["get", "stacktachregion", "r", "-n", ns, "--no-headers"])?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let cols: Vec<&str> = text.split_whitespace().collect();
    ensure!(
        cols.len() >= 4,
        "kubectl get stacktachregion printed {text:?}"
    );
    Ok((cols[1].to_string(), cols[2].to_string()))
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn kubectl_get_shows_a_truthful_ready_during_a_rollout() -> Result<()> {
    let client = admin_client().await?;
    if !has_kwok_node(&client).await? {
        bail!("this test needs kwok's node (e2e/cluster/up.sh builds it)");
    }
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "ready").await?;
    let n = ns.name.clone();
    create_secret(&client, &n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    create_secret(
        &client,
        &n,
        "db",
        &[("url", stv3_e2e::external_database_url()?.as_str())],
    )
    .await?;
    let op = OperatorProcess::start(&OperatorOptions::in_namespace(&n, "ready"))?;
    create_region(
        &client,
        &n,
        json!({
            "cells": [cell("a")],
            "database": { "external": { "urlSecretRef": { "name": "db" } } },
        }),
    )
    .await?;
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let nn = n.clone();
    wait_for("kubectl to show the region Ready", WAIT, || async {
        Ok((kubectl_row(&nn)? == ("1/1".to_string(), "True".to_string())).then_some(()))
    })
    .await
    .with_context(|| format!("operator log:\n{}", op.log_text()))?;

    // A rollout that cannot finish (the API's new pod fits no node): the old pod still
    // serves, but the region is not Ready until every component runs the current spec.
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "api": { "placement": {
                "nodeSelector": { "stv3.dev/no-such-node": "true" } } } } })),
        )
        .await?;
    wait_for(
        "kubectl to show Ready False during the rollout",
        WAIT,
        || async { Ok((kubectl_row(&nn)?.1 == "False").then_some(())) },
    )
    .await?;
    let old_api_ready = deploys
        .get("r-api")
        .await?
        .status
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    ensure!(
        old_api_ready >= 1,
        "the old API pod should still serve during the rollout"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        kubectl_row(&n)?.1 == "False",
        "Ready came back while the API's new pod cannot run"
    );
    let r = regions.get("r").await?;
    let (p, reason, message) = condition(&r, "Progressing").context("no Progressing")?;
    ensure!(
        p == "True" && reason == "WaitingForPods" && message.contains("API ready: false"),
        "Progressing: {p} {reason} {message}"
    );

    // The placement removed, the rollout completes: Ready again, and at that moment
    // every Deployment has rolled out.
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "api": { "placement": null } } })),
        )
        .await?;
    wait_for(
        "kubectl to show Ready True after the rollout",
        WAIT,
        || async { Ok((kubectl_row(&nn)?.1 == "True").then_some(())) },
    )
    .await?;
    for name in ["r-yagi-a", "r-pipeline-worker", "r-api"] {
        let d = deploys.get(name).await?;
        ensure!(
            operator::status::rolled_out(&d),
            "{name} is not rolled out while the region says Ready: {:?}",
            d.status
        );
    }

    // What the operator did, as Normal Events on the region.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &n);
    let reasons: BTreeSet<String> = wait_for("the Normal Events", WAIT, || async {
        let reasons: BTreeSet<String> = events
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Normal"))
            .filter_map(|e| e.reason)
            .collect();
        Ok(["Created", "RollingOut", "RolledOut", "Ready"]
            .iter()
            .all(|r| reasons.contains(*r))
            .then_some(reasons))
    })
    .await?;
    eprintln!("Normal events: {reasons:?}");
    drop(op);
    ns.delete().await
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn an_operator_watches_the_namespaces_of_its_list_and_no_other() -> Result<()> {
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let mut spaces = Vec::new();
    for prefix in ["list-a", "list-b", "list-c"] {
        let ns = TestNamespace::create(&client, prefix).await?;
        create_secret(
            &client,
            &ns.name,
            "rmq",
            &[("username", "u"), ("password", "p")],
        )
        .await?;
        create_secret(
            &client,
            &ns.name,
            "db",
            &[("url", stv3_e2e::external_database_url()?.as_str())],
        )
        .await?;
        create_region(
            &client,
            &ns.name,
            json!({
                "cells": [cell("a")],
                "database": { "external": { "urlSecretRef": { "name": "db" } } },
            }),
        )
        .await?;
        spaces.push(ns);
    }
    let mut opts = OperatorOptions::in_namespace(&spaces[0].name, "list");
    opts.watch_namespace = Some(format!("{}, {}", spaces[0].name, spaces[1].name));
    let op = OperatorProcess::start(&opts)?;
    for ns in &spaces[..2] {
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
        wait_for(&format!("r-api in {}", ns.name), WAIT, || async {
            Ok(deploys.get_opt("r-api").await?.map(|_| ()))
        })
        .await
        .with_context(|| format!("operator log:\n{}", op.log_text()))?;
    }
    // The third namespace's region is not the operator's: nothing appears there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let third: Api<Deployment> = Api::namespaced(client.clone(), &spaces[2].name);
    ensure!(
        third.list(&ListParams::default()).await?.items.is_empty(),
        "the operator reconciled a namespace not in its list"
    );
    let r: StackTachRegion = Api::namespaced(client.clone(), &spaces[2].name)
        .get("r")
        .await?;
    ensure!(
        r.status.is_none(),
        "status written outside the list: {:?}",
        r.status
    );
    // Its per-region gauges name both regions.
    let (_, metrics) = op.http_get("/metrics").await?;
    for ns in &spaces[..2] {
        ensure!(
            metrics.contains(&format!(
                "stv3_operator_region_cells{{namespace=\"{}\",region=\"r\"}} 1",
                ns.name
            )),
            "no region gauge for {}:\n{metrics}",
            ns.name
        );
    }
    drop(op);
    for ns in spaces {
        ns.delete().await?;
    }
    Ok(())
}
