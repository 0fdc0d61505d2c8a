//! Autoscaling that works, on the real node: a backlog of ready streams makes the
//! pipeline workers busy, metrics-server reports their CPU, the
//! HorizontalPodAutoscaler the operator made scales them up (real pods start), and
//! once the backlog has drained it scales them back down to `minReplicas`.
//!
//! The test cluster shortens the HPA's scale-down stabilisation to 30 s
//! (e2e/cluster/up.sh; Kubernetes' default is 5 minutes).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::PostParams;
use kube::Api;
use operator::crd::StackTachRegion;
use serde_json::json;
use stv3_e2e::node::{self, container, pin, run_job, wait_pods_ready};
use stv3_e2e::{admin_client, helm, wait_for, TestNamespace};

const REGION: &str = "scaled";

#[tokio::test]
#[ignore = "needs the test cluster with its real node: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn a_backlog_scales_the_pipeline_workers_up_and_then_down() -> Result<()> {
    let client = admin_client().await?;
    node::require_node(&client).await?;
    let ns = TestNamespace::create(&client, "scale").await?;
    let n = ns.name.clone();
    let result = scenario(&client, &n).await;
    if result.is_err() {
        let _ = node::kubectl(&["get", "pods,hpa", "-n", &n, "-o", "wide"])
            .map(|o| eprintln!("{}", String::from_utf8_lossy(&o.stdout)));
        let _ = node::kubectl(&["describe", "hpa", "-n", &n])
            .map(|o| eprintln!("{}", String::from_utf8_lossy(&o.stdout)));
        if std::env::var_os("STV3_E2E_KEEP").is_some() {
            return result;
        }
    }
    ns.delete().await?;
    result
}

async fn scenario(client: &kube::Client, ns: &str) -> Result<()> {
    // The operator as a pod, and the cell's RabbitMQ.
    let chart = stv3_e2e::operator::workspace().join("charts/stacktach-operator");
    let chart = chart.to_str().context("chart path")?.to_string();
    let pin = pin();
    let (n, tolerations, selector) = (
        ns.to_string(),
        pin["tolerations"].to_string(),
        pin["nodeSelector"].to_string(),
    );
    tokio::task::spawn_blocking(move || {
        helm(&[
            "install",
            &n,
            &chart,
            "--namespace",
            &n,
            "--set",
            &format!("watchNamespace={n}"),
            "--set-json",
            &format!("tolerations={tolerations}"),
            "--set-json",
            &format!("nodeSelector={selector}"),
            "--wait",
            "--timeout",
            "120s",
        ])
    })
    .await??;
    let fixture = std::fs::read_to_string(
        stv3_e2e::operator::workspace().join("e2e/fixtures/cell-rabbitmq.yaml"),
    )?;
    node::apply_yaml(ns, &fixture)?;
    wait_pods_ready(
        client,
        ns,
        "app.kubernetes.io/name=rabbitmq",
        1,
        Duration::from_secs(120),
    )
    .await?;

    // Workers request little CPU, so a busy one is far above the 50 % target; at most 3.
    let region: StackTachRegion = serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": REGION, "namespace": ns },
        "spec": {
            "cells": [{ "name": "cell1", "rabbitmq": { "host": "rabbitmq", "credentialsSecretRef": { "name": "cell1-rabbitmq" } } }],
            "database": { "managed": { "image": node::MARIADB_IMAGE, "storageSize": "1Gi" } },
            "pipelineWorkers": {
                "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50,
                "idleDelaySeconds": 1,
                "resources": { "requests": { "cpu": "20m", "memory": "64Mi" } },
            },
            "pod": { "nodeSelector": pin["nodeSelector"], "tolerations": pin["tolerations"] },
        }
    }))?;
    let regions: Api<StackTachRegion> = Api::namespaced(client.clone(), ns);
    regions.create(&PostParams::default(), &region).await?;
    let workers_sel =
        format!("app.kubernetes.io/instance={REGION},app.kubernetes.io/component=pipeline-worker");
    wait_pods_ready(client, ns, &workers_sel, 1, Duration::from_secs(300)).await?;
    wait_pods_ready(
        client,
        ns,
        &format!("app.kubernetes.io/instance={REGION},app.kubernetes.io/component=yagi"),
        1,
        Duration::from_secs(120),
    )
    .await?;

    // The HPA reads the workers' CPU from metrics-server before any load.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let hpa_name = format!("{REGION}-pipeline-worker");
    wait_for(
        "the HPA to read the workers' CPU (metrics.k8s.io)",
        Duration::from_secs(120),
        || async {
            let h = hpas.get(&hpa_name).await?;
            let cpu = h
                .status
                .and_then(|s| s.current_metrics)
                .unwrap_or_default()
                .iter()
                .find_map(|m| {
                    m.resource
                        .as_ref()
                        .and_then(|r| r.current.average_utilization)
                });
            Ok(cpu.map(|_| ()))
        },
    )
    .await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let replicas = |d: Deployment| d.spec.and_then(|s| s.replicas).unwrap_or(0);
    ensure!(
        replicas(deploys.get(&hpa_name).await?) == 1,
        "one worker before the backlog"
    );

    // The backlog: a simulated day of 5000 instances four days ago, so every stream is
    // ready to fire (its .exists came) or expire (last + 2 days is past) on arrival.
    let start = node::days_ago_midnight(4);
    let args = [
        "stv3",
        "notigen",
        "--seed",
        "42",
        "--instances",
        "5000",
        "--ops-per-day",
        "0.2",
        "--duration",
        "90000",
        "--start",
        &start,
        "--amqp",
        "amqp://$(AMQP_USER):$(AMQP_PASSWORD)@rabbitmq:5672/%2f",
        "--exchange",
        "nova",
        "--queue",
        "notifications.info",
    ];
    let env = json!([
        { "name": "AMQP_USER", "valueFrom": { "secretKeyRef": { "name": "cell1-rabbitmq", "key": "username" } } },
        { "name": "AMQP_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "cell1-rabbitmq", "key": "password" } } },
    ]);
    let published = Instant::now();
    run_job(
        client,
        ns,
        "backlog",
        container("notigen", &node::stv3_image(), &args, env),
        Duration::from_secs(180),
    )
    .await?;

    // Scale up: real pods, Ready on the node.
    let peak = wait_for(
        "the HPA to add pipeline workers",
        Duration::from_secs(240),
        || async {
            let r = replicas(deploys.get(&hpa_name).await?);
            Ok((r > 1).then_some(r))
        },
    )
    .await?;
    let up_after = published.elapsed();
    wait_pods_ready(
        client,
        ns,
        &workers_sel,
        peak as usize,
        Duration::from_secs(120),
    )
    .await
    .context("the added workers did not become Ready")?;
    eprintln!(
        "scaled up to {peak} workers {:.0} s after the backlog started",
        up_after.as_secs_f64()
    );

    // The backlog drains; the HPA scales back to minReplicas.
    let down = wait_for(
        "the HPA to scale the workers back to 1",
        Duration::from_secs(420),
        || async {
            let r = replicas(deploys.get(&hpa_name).await?);
            Ok((r == 1).then_some(()))
        },
    )
    .await;
    down?;
    eprintln!(
        "back to 1 worker {:.0} s after the backlog started",
        published.elapsed().as_secs_f64()
    );
    Ok(())
}
