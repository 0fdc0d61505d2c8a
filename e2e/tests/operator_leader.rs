//! Two operator processes, one Lease: exactly one reconciles (the Lease names it), the
//! other stands by ready; SIGKILL the leader and the other takes over within the lease
//! duration and reconciles what changed meanwhile.
//!
//! The reconciling is read from each process's own counter, since the chart test's
//! operator watches every namespace and may reconcile this test's region too.
//!
//! Needs the cluster from `e2e/cluster/up.sh` and the operator binary (see
//! `stv3_e2e::operator::operator_bin`). `#[ignore]`d in a plain `cargo test`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use operator::crd::StackTachRegion;
use serde_json::json;
use stv3_e2e::operator::{cell, create_secret, install_crds, OperatorOptions, OperatorProcess};
use stv3_e2e::{admin_client, wait_for, TestNamespace, WAIT};

const LEASE_SECONDS: u64 = 6;

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn one_of_two_operators_leads_and_the_other_takes_over() -> Result<()> {
    let client = admin_client().await?;
    install_crds(&client, "crds/stacktach.io_stacktachregions.yaml").await?;
    let ns = TestNamespace::create(&client, "leader").await?;
    let n = ns.name.clone();
    create_secret(&client, &n, "rmq", &[("username", "u"), ("password", "p")]).await?;
    create_secret(
        &client,
        &n,
        "db",
        &[("url", stv3_e2e::external_database_url()?.as_str())],
    )
    .await?;

    let start = |name: &str| {
        let mut o = OperatorOptions::in_namespace(&n, name);
        o.log_name = format!("stv3-operator-leader-{name}.log");
        o.lease_seconds = Some(LEASE_SECONDS);
        OperatorProcess::start(&o)
    };
    let mut ops = [start("op-a")?, start("op-b")?];

    let leases: Api<Lease> = Api::namespaced(client.clone(), &n);
    let holder = || async {
        Ok::<_, anyhow::Error>(
            leases
                .get_opt("stv3-operator-leader")
                .await?
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity),
        )
    };
    let first = wait_for("a holder of the Lease", WAIT, || async { holder().await })
        .await
        .with_context(|| format!("logs:\n{}\n{}", ops[0].log_text(), ops[1].log_text()))?;
    let (li, si) = if first == ops[0].identity {
        (0, 1)
    } else {
        (1, 0)
    };
    ensure!(first == ops[li].identity, "unknown holder {first}");

    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), &n);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": "r" },
        "spec": {
            "cells": [cell("a")],
            "database": { "external": { "urlSecretRef": { "name": "db" } } }
        }
    }))?;
    regions.create(&PostParams::default(), &region).await?;
    wait_for("the leader to create r-yagi-a", WAIT, || async {
        Ok(deploys.get_opt("r-yagi-a").await?.map(|_| ()))
    })
    .await
    .with_context(|| format!("leader log:\n{}", ops[li].log_text()))?;

    // Exactly one reconciles; both are ready (the standby knows its part).
    let leader_count = ops[li].metric("stv3_operator_reconciles_total").await?;
    let standby_count = ops[si].metric("stv3_operator_reconciles_total").await?;
    ensure!(
        leader_count >= 1.0 && standby_count == 0.0,
        "reconciles: leader {leader_count}, standby {standby_count}"
    );
    ensure!(ops[li].metric("stv3_operator_leader").await? == 1.0);
    ensure!(ops[si].metric("stv3_operator_leader").await? == 0.0);
    for op in &ops {
        let (code, _) = op.http_get("/readyz").await?;
        ensure!(code == 200, "{} /readyz answered {code}", op.identity);
    }

    // The leader dies without releasing the Lease; the standby takes over once it runs
    // out, and reconciles what changed meanwhile.
    ops[li].kill();
    let killed = Instant::now();
    regions
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "cells": [cell("a"), cell("b")] } })),
        )
        .await?;
    let standby_id = ops[si].identity.clone();
    wait_for("the standby to hold the Lease", WAIT, || async {
        Ok((holder().await?.as_deref() == Some(standby_id.as_str())).then_some(()))
    })
    .await
    .with_context(|| format!("standby log:\n{}", ops[si].log_text()))?;
    let took_over = killed.elapsed();
    // The lease duration, plus the standby's polling and the renew grace.
    ensure!(
        took_over <= Duration::from_secs(LEASE_SECONDS + 4),
        "the standby took {took_over:?} to take over a {LEASE_SECONDS}s Lease"
    );
    wait_for("the new leader to create r-yagi-b", WAIT, || async {
        Ok(deploys.get_opt("r-yagi-b").await?.map(|_| ()))
    })
    .await
    .with_context(|| format!("new leader log:\n{}", ops[si].log_text()))?;
    // (Another test's operator may watch every namespace: the Deployment alone does
    // not prove who reconciled, the new leader's own counter does.)
    let new_leader = &ops[si];
    wait_for("the new leader to count a reconcile", WAIT, || async {
        Ok((new_leader.metric("stv3_operator_reconciles_total").await? >= 1.0).then_some(()))
    })
    .await?;
    eprintln!("takeover after SIGKILL of the leader: {took_over:?}");

    // SIGTERM: the leader releases the Lease and exits 0.
    let status = ops[si].terminate()?;
    ensure!(status.success(), "SIGTERM: exit status {status}");
    let released = holder().await?;
    ensure!(
        released.as_deref() != Some(ops[si].identity.as_str()),
        "the Lease still names the stopped leader: {released:?}"
    );

    // A leader that finds the Lease taken (another holder renewed it) stops at once:
    // it exits 1, rather than reconcile as a second leader.
    let mut op_c = start("op-c")?;
    wait_for("op-c to hold the Lease", WAIT, || async {
        Ok((holder().await?.as_deref() == Some("op-c")).then_some(()))
    })
    .await
    .with_context(|| format!("op-c log:\n{}", op_c.log_text()))?;
    let taken: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "stv3-operator-leader" },
        "spec": {
            "holderIdentity": "intruder",
            "leaseDurationSeconds": 3600,
            "renewTime": MicroTime(Timestamp::now()),
            "acquireTime": MicroTime(Timestamp::now()),
        }
    }))?;
    leases
        .patch(
            "stv3-operator-leader",
            &PatchParams::apply("e2e-intruder").force(),
            &Patch::Apply(&taken),
        )
        .await?;
    let lost_at = Instant::now();
    let exit = loop {
        if let Some(exit) = op_c.exited()? {
            break exit;
        }
        ensure!(
            lost_at.elapsed() < WAIT,
            "op-c still runs {WAIT:?} after losing the Lease; log:\n{}",
            op_c.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("exit after the Lease was taken: {:?}", lost_at.elapsed());
    ensure!(
        exit.code() == Some(1),
        "op-c exited with {exit} after losing the Lease"
    );
    ensure!(
        op_c.log_text().contains("lost the leader Lease"),
        "op-c log:\n{}",
        op_c.log_text()
    );
    ns.delete().await
}
