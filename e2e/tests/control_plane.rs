//! Proves the test control plane is real: CRD structural schema + CEL validation,
//! controller-manager (ReplicaSets, garbage collection), server-side apply conflicts,
//! RBAC with a TokenRequest-minted ServiceAccount token, and helm install/uninstall.
//!
//! These need the cluster from `e2e/cluster/up.sh`, so they are `#[ignore]`d in a plain
//! `cargo test`; `./build.sh -t` runs them with `cargo test -p stv3-e2e -- --include-ignored`.
//! Run by hand without a cluster they fail and say how to start one.

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use serde_json::json;
use stv3_e2e::{
    admin_client, api_error, has_kwok_node, helm, logs_hint, token_client, wait_for, TestNamespace,
    WAIT,
};

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

// ------------------------------------------------------------------ CRD + CEL

const CRD_GROUP: &str = "e2e.stv3.dev";
const CRD_NAME: &str = "widgets.e2e.stv3.dev";

fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": CRD_NAME },
        "spec": {
            "group": CRD_GROUP,
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size", "minReplicas", "maxReplicas"],
                            "properties": {
                                "size": { "type": "string", "enum": ["small", "large"] },
                                "minReplicas": { "type": "integer", "minimum": 0 },
                                "maxReplicas": { "type": "integer", "maximum": 10 }
                            },
                            "x-kubernetes-validations": [{
                                "rule": "self.minReplicas <= self.maxReplicas",
                                "message": "minReplicas must not exceed maxReplicas"
                            }]
                        }
                    }
                }}
            }]
        }
    })
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn crd_structural_schema_and_cel_rule_are_enforced() -> Result<()> {
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "crd").await?;

    // Server-side apply keeps this idempotent across runs against the same cluster.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = from_json(widget_crd())?;
    crds.patch(
        CRD_NAME,
        &PatchParams::apply("stv3-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("the server refused the CRD; {}", logs_hint()))?;
    wait_for("CRD widgets to be Established", WAIT, || async {
        let c = crds.get(CRD_NAME).await?;
        let est = c
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(est.then_some(()))
    })
    .await?;

    let gvk = GroupVersionKind::gvk(CRD_GROUP, "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let widget = |name: &str, spec: serde_json::Value| -> Result<DynamicObject> {
        from_json(json!({
            "apiVersion": format!("{CRD_GROUP}/v1"), "kind": "Widget",
            "metadata": { "name": name }, "spec": spec
        }))
    };

    // A valid one is accepted (right after Established the discovery may lag: retry).
    let ok = widget(
        "ok",
        json!({"size": "small", "minReplicas": 1, "maxReplicas": 3}),
    )?;
    wait_for("a valid Widget to be accepted", WAIT, || async {
        match widgets.create(&PostParams::default(), &ok).await {
            Ok(_) => Ok(Some(())),
            // An earlier attempt got through after all.
            Err(e) if api_error(&e).is_some_and(|(c, _, _)| c == 409) => Ok(Some(())),
            Err(e) => Err(e.into()),
        }
    })
    .await?;

    // Schema violations: enum and maximum.
    let bad_schema = widget(
        "bad-schema",
        json!({"size": "huge", "minReplicas": 1, "maxReplicas": 11}),
    )?;
    let err = widgets
        .create(&PostParams::default(), &bad_schema)
        .await
        .err()
        .context("a Widget violating the schema (enum, maximum) was accepted")?;
    let (code, _, msg) = api_error(&err).with_context(|| format!("not an API error: {err}"))?;
    ensure!(code == 422, "expected 422 Invalid, got {code}: {msg}");
    ensure!(
        msg.contains("spec.size") && msg.contains("Unsupported value: \"huge\""),
        "server message does not name the enum violation: {msg}"
    );
    ensure!(
        msg.contains("spec.maxReplicas"),
        "server message does not name the maximum violation: {msg}"
    );

    // The CEL rule.
    let bad_rule = widget(
        "bad-rule",
        json!({"size": "large", "minReplicas": 5, "maxReplicas": 2}),
    )?;
    let err = widgets
        .create(&PostParams::default(), &bad_rule)
        .await
        .err()
        .context("a Widget violating the CEL rule (minReplicas > maxReplicas) was accepted")?;
    let (code, _, msg) = api_error(&err).with_context(|| format!("not an API error: {err}"))?;
    ensure!(code == 422, "expected 422 Invalid, got {code}: {msg}");
    ensure!(
        msg.contains("minReplicas must not exceed maxReplicas"),
        "server message does not carry the CEL rule's message: {msg}"
    );

    // A missing required field.
    let err = widgets
        .create(
            &PostParams::default(),
            &widget("bad-required", json!({"size": "small"}))?,
        )
        .await
        .err()
        .context("a Widget missing required fields was accepted")?;
    let (_, _, msg) = api_error(&err).with_context(|| format!("not an API error: {err}"))?;
    ensure!(msg.contains("Required value"), "unexpected message: {msg}");

    ns.delete().await
}

// ------------------------------------------------------------------ controllers + GC

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn deployment_gets_replicaset_and_owner_deletion_collects_dependents() -> Result<()> {
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "gc").await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);

    let deploy: Deployment = from_json(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.invalid/web:1" }] }
            }
        }
    }))?;
    let created = deploys.create(&PostParams::default(), &deploy).await?;
    let uid = created.metadata.uid.context("deployment without uid")?;

    let lp = ListParams::default().labels("app=web");
    let rs_name = wait_for(
        "kube-controller-manager to create a ReplicaSet owned by the Deployment",
        WAIT,
        || async {
            let list = rss.list(&lp).await?;
            Ok(list.items.into_iter().find_map(|rs| {
                let owned = rs
                    .metadata
                    .owner_references
                    .as_ref()?
                    .iter()
                    .any(|o| o.uid == uid && o.kind == "Deployment");
                owned.then(|| rs.metadata.name.clone().unwrap_or_default())
            }))
        },
    )
    .await?;

    wait_for("the ReplicaSet to create 2 pods", WAIT, || async {
        Ok((pods.list(&lp).await?.items.len() == 2).then_some(()))
    })
    .await?;

    if has_kwok_node(&client).await? {
        // kwok plays the kubelet: pods become Running/Ready, the Deployment available.
        wait_for(
            "the Deployment to report 2 available replicas (kube-scheduler + kwok)",
            WAIT,
            || async {
                let d = deploys.get("web").await?;
                let avail = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
                Ok((avail == 2).then_some(()))
            },
        )
        .await?;
    } else {
        eprintln!("no kwok node: not checking that the Deployment becomes available");
    }

    // Deleting the owner: the garbage collector deletes the ReplicaSet and its pods.
    deploys.delete("web", &DeleteParams::background()).await?;
    wait_for(
        &format!("the garbage collector to delete ReplicaSet {rs_name}"),
        WAIT,
        || async { Ok(rss.get_opt(&rs_name).await?.is_none().then_some(())) },
    )
    .await?;
    wait_for("the garbage collector to delete the pods", WAIT, || async {
        Ok(pods.list(&lp).await?.items.is_empty().then_some(()))
    })
    .await?;

    // An explicit ownerReference between plain objects is collected too.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let owner = cms
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "owner"}, "data": {"k": "v"}}))?,
        )
        .await?;
    let owner_uid = owner.metadata.uid.context("configmap without uid")?;
    secrets
        .create(
            &PostParams::default(),
            &from_json(json!({
                "metadata": {
                    "name": "dependent",
                    "ownerReferences": [{
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "name": "owner", "uid": owner_uid
                    }]
                },
                "stringData": { "k": "v" }
            }))?,
        )
        .await?;
    cms.delete("owner", &DeleteParams::background()).await?;
    wait_for(
        "the garbage collector to delete Secret dependent (owner ConfigMap deleted)",
        WAIT,
        || async { Ok(secrets.get_opt("dependent").await?.is_none().then_some(())) },
    )
    .await?;

    ns.delete().await
}

// ------------------------------------------------------------------ server-side apply

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn server_side_apply_conflict_is_refused_unless_forced() -> Result<()> {
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "ssa").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm = |v: &str| -> Result<ConfigMap> {
        from_json(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "shared" },
            "data": { "color": v }
        }))
    };

    cms.patch(
        "shared",
        &PatchParams::apply("manager-alpha"),
        &Patch::Apply(&cm("red")?),
    )
    .await?;

    let err = cms
        .patch(
            "shared",
            &PatchParams::apply("manager-beta"),
            &Patch::Apply(&cm("blue")?),
        )
        .await
        .err()
        .context("a conflicting apply by a second field manager was accepted")?;
    let (code, reason, msg) =
        api_error(&err).with_context(|| format!("not an API error: {err}"))?;
    ensure!(
        code == 409 && reason == "Conflict",
        "expected 409 Conflict, got {code} {reason}: {msg}"
    );
    ensure!(
        msg.contains("manager-alpha") && msg.contains(".data.color"),
        "conflict message names neither the owner nor the field: {msg}"
    );
    let now = cms.get("shared").await?;
    ensure!(
        now.data
            .as_ref()
            .and_then(|d| d.get("color"))
            .map(String::as_str)
            == Some("red"),
        "a refused apply changed the object: {now:?}"
    );

    let forced = cms
        .patch(
            "shared",
            &PatchParams::apply("manager-beta").force(),
            &Patch::Apply(&cm("blue")?),
        )
        .await
        .context("a forced apply was refused")?;
    ensure!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("color"))
            .map(String::as_str)
            == Some("blue"),
        "forced apply did not take: {forced:?}"
    );
    let owners: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:data/f:color").is_some())
        })
        .filter_map(|m| m.manager)
        .collect();
    ensure!(
        owners == ["manager-beta"],
        "after forcing, .data.color should be owned by manager-beta alone: {owners:?}"
    );

    ns.delete().await
}

// ------------------------------------------------------------------ RBAC + TokenRequest

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn serviceaccount_token_is_limited_by_rbac() -> Result<()> {
    let admin = admin_client().await?;
    let ns = TestNamespace::create(&admin, "rbac").await?;
    let n = ns.name.as_str();
    let pp = PostParams::default();

    Api::<ServiceAccount>::namespaced(admin.clone(), n)
        .create(&pp, &from_json(json!({"metadata": {"name": "reader"}}))?)
        .await?;
    Api::<Role>::namespaced(admin.clone(), n)
        .create(
            &pp,
            &from_json(json!({
                "metadata": {"name": "configmap-getter"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
            }))?,
        )
        .await?;
    Api::<RoleBinding>::namespaced(admin.clone(), n)
        .create(
            &pp,
            &from_json(json!({
                "metadata": {"name": "reader-gets-configmaps"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-getter"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": n}]
            }))?,
        )
        .await?;
    Api::<ConfigMap>::namespaced(admin.clone(), n)
        .create(
            &pp,
            &from_json(json!({"metadata": {"name": "visible"}, "data": {"k": "v"}}))?,
        )
        .await?;

    // Mint a token through the TokenRequest API (serviceaccounts/token subresource).
    let tr: TokenRequest = from_json(json!({
        "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 600}
    }))?;
    let minted = Api::<ServiceAccount>::namespaced(admin.clone(), n)
        .create_token_request("reader", &pp, &tr)
        .await
        .with_context(|| format!("TokenRequest failed; {}", logs_hint()))?;
    let token = minted
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("TokenRequest returned no token")?;

    let sa_client: Client = token_client(&token).await?;
    let sa_cms: Api<ConfigMap> = Api::namespaced(sa_client, n);

    // RBAC caches are eventually consistent: allow the binding a moment to be seen.
    let got = wait_for(
        "the ServiceAccount token to be allowed to get the ConfigMap",
        WAIT,
        || async { Ok(Some(sa_cms.get("visible").await?)) },
    )
    .await?;
    ensure!(got.data.and_then(|d| d.get("k").cloned()).as_deref() == Some("v"));

    let err = sa_cms
        .create(
            &pp,
            &from_json(json!({"metadata": {"name": "forbidden"}, "data": {"k": "v"}}))?,
        )
        .await
        .err()
        .context("the ServiceAccount could create a ConfigMap without RBAC permission")?;
    let (code, reason, msg) =
        api_error(&err).with_context(|| format!("not an API error: {err}"))?;
    ensure!(
        code == 403 && reason == "Forbidden",
        "expected 403 Forbidden, got {code} {reason}: {msg}"
    );
    ensure!(
        msg.contains(&format!("system:serviceaccount:{n}:reader")),
        "403 does not name the ServiceAccount user: {msg}"
    );
    // `list` is not granted either: only `get`.
    match sa_cms.list(&ListParams::default()).await {
        Err(e) if api_error(&e).is_some_and(|(c, _, _)| c == 403) => {}
        other => bail!("list with a get-only Role should be 403, got {other:?}"),
    }

    ns.delete().await
}

// ------------------------------------------------------------------ helm

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn helm_lint_install_uninstall_fixture_chart() -> Result<()> {
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "helm").await?;
    let n = ns.name.clone();
    let chart = stv3_e2e::fixture_chart();
    let chart = chart.to_str().context("non-UTF-8 chart path")?;

    let lint = helm(&["lint", "--strict", chart])?;
    let lint_out = String::from_utf8_lossy(&lint.stdout);
    ensure!(
        lint_out.contains("0 chart(s) failed"),
        "unexpected helm lint output: {lint_out}"
    );

    // helm calls are blocking processes: keep them off the async runtime's workers.
    // With kwok's fake node the chart's Deployment becomes ready, so `--wait` proves it.
    let wait = has_kwok_node(&client).await?;
    let (c, nn) = (chart.to_string(), n.clone());
    tokio::task::spawn_blocking(move || {
        let mut args = vec![
            "install",
            "fixture",
            &c,
            "--namespace",
            &nn,
            "--timeout",
            "60s",
        ];
        if wait {
            args.push("--wait");
        }
        helm(&args)
    })
    .await??;

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &n);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let cm = cms
        .get("fixture-config")
        .await
        .context("helm install did not create ConfigMap fixture-config")?;
    ensure!(
        cm.data.and_then(|d| d.get("greeting").cloned()).as_deref()
            == Some("hello from the fixture chart")
    );
    svcs.get("fixture-svc")
        .await
        .context("helm install did not create Service fixture-svc")?;
    deploys
        .get("fixture-app")
        .await
        .context("helm install did not create Deployment fixture-app")?;
    let status = helm(&["status", "fixture", "--namespace", &n])?;
    ensure!(String::from_utf8_lossy(&status.stdout).contains("STATUS: deployed"));

    let nn = n.clone();
    tokio::task::spawn_blocking(move || {
        helm(&[
            "uninstall",
            "fixture",
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
            let gone = cms.get_opt("fixture-config").await?.is_none()
                && svcs.get_opt("fixture-svc").await?.is_none()
                && deploys.get_opt("fixture-app").await?.is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    // helm keeps its release record in Secrets; uninstall removes those too.
    let releases = Api::<Secret>::namespaced(client.clone(), &n)
        .list(&ListParams::default().labels("owner=helm"))
        .await?;
    ensure!(
        releases.items.is_empty(),
        "helm release secrets left after uninstall: {:?}",
        releases
            .items
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect::<Vec<_>>()
    );

    ns.delete().await
}
