//! The operator's `StackTachRegion` CRD, as committed under `crds/`, on the real API
//! server: it is structural and accepted, the examples are accepted with the schema's
//! defaults filled in, the CEL and pattern rules reject the classic mistakes with the
//! server's own message, and the field descriptions (what `kubectl explain` shows) are
//! served.
//!
//! Needs the cluster from `e2e/cluster/up.sh`, so `#[ignore]`d in a plain `cargo test`;
//! `./build.sh -t` runs it with `cargo test -p stv3-e2e -- --include-ignored`.

use anyhow::{ensure, Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use stv3_e2e::{admin_client, api_error, logs_hint, wait_for, TestNamespace, WAIT};

const CRD_NAME: &str = "stacktachregions.stacktach.io";
const CRD_FILE: &str = "crds/stacktach.io_stacktachregions.yaml";

fn workspace_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn read_yaml<T: serde::de::DeserializeOwned>(rel: &str) -> Result<T> {
    let path = workspace_file(rel);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Applies the committed CRD and waits until it is Established.
async fn install_crd(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = read_yaml(CRD_FILE)?;
    crds.patch(
        CRD_NAME,
        &PatchParams::apply("stv3-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("the server refused {CRD_FILE}; {}", logs_hint()))?;
    wait_for("CRD stacktachregions to be Established", WAIT, || async {
        let c = crds.get(CRD_NAME).await?;
        let conditions = c.status.and_then(|s| s.conditions).unwrap_or_default();
        if let Some(bad) = conditions
            .iter()
            .find(|c| c.type_ == "NonStructuralSchema" && c.status == "True")
        {
            anyhow::bail!("the CRD's schema is not structural: {:?}", bad.message);
        }
        let est = conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(est.then_some(()))
    })
    .await
}

fn regions(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("stacktach.io", "v1alpha1", "StackTachRegion");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "stacktachregions");
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn region(name: &str, spec: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
        "metadata": { "name": name }, "spec": spec
    }))?)
}

fn cell(name: &str) -> Value {
    json!({ "name": name, "rabbitmq": { "host": "rabbit", "credentialsSecretRef": { "name": "rmq" } } })
}

fn managed_db() -> Value {
    json!({ "managed": {} })
}

/// Creates `obj`, expecting a 422 whose message contains every one of `expected`.
async fn expect_rejected(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
    what: &str,
    expected: &[&str],
) -> Result<()> {
    let err = api
        .create(&PostParams::default(), obj)
        .await
        .err()
        .with_context(|| format!("a region with {what} was accepted"))?;
    let (code, _, msg) = api_error(&err).with_context(|| format!("not an API error: {err}"))?;
    ensure!(
        code == 422,
        "{what}: expected 422 Invalid, got {code}: {msg}"
    );
    for e in expected {
        ensure!(
            msg.contains(e),
            "{what}: the server's message lacks {e:?}: {msg}"
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn region_crd_is_accepted_and_enforces_its_rules() -> Result<()> {
    let client = admin_client().await?;
    install_crd(&client).await?;
    let ns = TestNamespace::create(&client, "region-crd").await?;
    let api = regions(&client, &ns.name);

    // The minimal example is accepted (discovery may lag right after Established:
    // retry), and the server fills in the schema's defaults.
    let mut minimal: DynamicObject = read_yaml("examples/region-minimal.yaml")?;
    minimal.metadata.namespace = Some(ns.name.clone());
    let created = wait_for(
        "the minimal example region to be accepted",
        WAIT,
        || async {
            match api.create(&PostParams::default(), &minimal).await {
                Ok(o) => Ok(Some(o)),
                Err(e) if api_error(&e).is_some_and(|(c, _, _)| c == 422) => Err(anyhow::anyhow!(
                    "the server refused the minimal example: {e}"
                )),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await?;
    let spec = &created.data["spec"];
    ensure!(
        spec["cells"][0]["yagiReplicas"] == json!(1),
        "the default yagiReplicas was not applied: {spec}"
    );
    ensure!(
        spec["cells"][0]["queues"][0]["name"] == json!("notifications.info"),
        "the default queue was not applied: {spec}"
    );
    ensure!(
        spec["pipelineWorkers"]["minReplicas"] == json!(1)
            && spec["pipelineWorkers"]["maxReplicas"] == json!(4),
        "the pipelineWorkers defaults were not applied: {spec}"
    );
    ensure!(
        spec["database"]["managed"]["image"] == json!("mysql:8.4"),
        "the managed database defaults were not applied: {spec}"
    );

    // The multi-cell example is accepted too.
    let mut multi: DynamicObject = read_yaml("examples/region-multicell.yaml")?;
    multi.metadata.namespace = Some(ns.name.clone());
    api.create(&PostParams::default(), &multi)
        .await
        .context("the server refused examples/region-multicell.yaml")?;

    // Each classic mistake is refused with the server's message.
    expect_rejected(
        &api,
        &region(
            "dup-cells",
            json!({ "cells": [cell("a"), cell("b"), cell("a")], "database": managed_db() }),
        )?,
        "duplicate cell names",
        &["spec.cells", "cell names must be unique"],
    )
    .await?;
    expect_rejected(
        &api,
        &region(
            "min-over-max",
            json!({ "cells": [cell("a")], "database": managed_db(),
                    "pipelineWorkers": { "minReplicas": 5, "maxReplicas": 2 } }),
        )?,
        "minReplicas > maxReplicas",
        &[
            "spec.pipelineWorkers",
            "pipelineWorkers.minReplicas must not exceed pipelineWorkers.maxReplicas",
        ],
    )
    .await?;
    expect_rejected(
        &api,
        &region(
            "two-databases",
            json!({ "cells": [cell("a")], "database": {
                "managed": {}, "external": { "urlSecretRef": { "name": "db" } } } }),
        )?,
        "both database modes",
        &["spec.database", "set exactly one of managed or external"],
    )
    .await?;
    expect_rejected(
        &api,
        &region(
            "open-reads-protected",
            json!({ "cells": [cell("a")], "database": managed_db(),
                    "api": { "protectReads": true } }),
        )?,
        "protectReads without a token",
        &["spec.api", "api.protectReads needs api.tokenSecretRef"],
    )
    .await?;
    expect_rejected(
        &api,
        &region(
            "no-database",
            json!({ "cells": [cell("a")], "database": {} }),
        )?,
        "no database mode",
        &["set exactly one of managed or external"],
    )
    .await?;
    expect_rejected(
        &api,
        &region(
            "bad-cell-name",
            json!({ "cells": [cell("Cell_1")], "database": managed_db() }),
        )?,
        "a cell name that is not a DNS label",
        &["spec.cells[0].name", "should match"],
    )
    .await?;
    expect_rejected(
        &api,
        &region(
            "two-sources",
            json!({ "cells": [cell("a")], "database": managed_db(),
                    "config": { "triggers": { "inline": "[]",
                        "configMapRef": { "name": "c", "key": "k" } } } }),
        )?,
        "a config file both inline and from a ConfigMap",
        &[
            "spec.config.triggers",
            "set exactly one of inline or configMapRef",
        ],
    )
    .await?;

    // What `kubectl explain stacktachregion.spec.cells` shows: the descriptions are
    // served with the CRD.
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(CRD_NAME)
        .await?;
    let schema = serde_json::to_value(&crd.spec.versions[0].schema)?;
    let cells = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["cells"];
    let describe = |v: &Value| v["description"].as_str().unwrap_or("").to_string();
    ensure!(
        describe(cells).contains("The cells of the region"),
        "spec.cells has no description: {cells}"
    );
    ensure!(
        describe(&cells["items"]["properties"]["rabbitmq"]["properties"]["credentialsSecretRef"])
            .contains("Secret"),
        "spec.cells[].rabbitmq.credentialsSecretRef has no description"
    );

    ns.delete().await
}

// ------------------------------------------------------------------ desired objects

/// Server-side applies `obj` under the operator's field manager; returns what shows
/// whether the apply wrote anything: the resourceVersion of objects no controller
/// writes to (ConfigMaps, Services), else the generation (controllers write the status
/// of Deployments, HPAs and Jobs, which moves their resourceVersion but not this) and
/// the time of the operator's managed-fields entry.
async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<String>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().context("object without a name")?;
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(operator::desired::FIELD_MANAGER),
            &Patch::Apply(obj),
        )
        .await
        .with_context(|| format!("the server refused {} {name}", K::kind(&())))?;
    let m = applied.meta();
    let kind = K::kind(&());
    Ok(match m.generation {
        Some(g) => {
            let ours = m
                .managed_fields
                .iter()
                .flatten()
                .find(|f| f.manager.as_deref() == Some(operator::desired::FIELD_MANAGER))
                .and_then(|f| f.time.as_ref())
                .map(|t| t.0.to_string());
            format!("{kind} {name}: generation {g}, applied at {ours:?}")
        }
        None => format!("{kind} {name}: resourceVersion {:?}", m.resource_version),
    })
}

/// Everything `operator::desired` builds for the minimal example is accepted by the
/// real API server, applying it again writes nothing (same resourceVersions), and
/// deleting the region lets the garbage collector take what it owned.
#[tokio::test]
#[ignore = "needs the test cluster: e2e/cluster/up.sh, then cargo test -p stv3-e2e -- --include-ignored"]
async fn desired_objects_are_accepted_and_reapplying_them_writes_nothing() -> Result<()> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
    use operator::config_check::ConfigFiles;
    use operator::crd::StackTachRegion;
    use operator::desired::*;

    let client = admin_client().await?;
    install_crd(&client).await?;
    let ns = TestNamespace::create(&client, "region-desired").await?;
    let typed: Api<StackTachRegion> = Api::namespaced(client.clone(), &ns.name);
    let mut example: StackTachRegion = read_yaml("examples/region-minimal.yaml")?;
    example.metadata.namespace = Some(ns.name.clone());
    let region = wait_for("the minimal example region to be created", WAIT, || async {
        Ok(Some(typed.create(&PostParams::default(), &example).await?))
    })
    .await?;

    let files = ConfigFiles {
        triggers: Some("[]".into()),
        ..ConfigFiles::default()
    };
    let region_cfg = region_config_data(&region, &files);
    let cell = &region.spec.cells[0];
    let passwords = DatabasePasswords {
        user: "e2e-user-pw".into(),
        root: "e2e-root-pw".into(),
    };
    let c = &client;
    let n = ns.name.as_str();
    let sts = database_statefulset(&region)?.context("the minimal example is managed")?;
    apply(c, n, &database_secret(&region, &passwords)?).await?;

    // Apply everything twice, a second apart (managed-fields times have one-second
    // resolution); the second pass must write nothing.
    let mut passes = Vec::new();
    for pass in 0..2 {
        if pass > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        passes.push(vec![
            apply(c, n, &region_config_map(&region, &files)?).await?,
            apply(c, n, &cell_config_map(&region, cell)?).await?,
            apply(
                c,
                n,
                &cell_deployment(&region, cell, &Resolved::config(region_cfg.clone()))?,
            )
            .await?,
            apply(
                c,
                n,
                &pipeline_worker_deployment(&region, &Resolved::config(region_cfg.clone()))?,
            )
            .await?,
            apply(c, n, &pipeline_worker_hpa(&region)?).await?,
            apply(
                c,
                n,
                &api_deployment(&region, &Resolved::config(region_cfg.clone()))?,
            )
            .await?,
            apply(c, n, &api_service(&region)?).await?,
            apply(c, n, &database_service(&region)?).await?,
            apply(c, n, &sts).await?,
            apply(c, n, &migration_job(&region)?).await?,
        ]);
    }
    ensure!(
        passes[0] == passes[1],
        "re-applying unchanged objects wrote to the API server:\n{:#?}\nthen\n{:#?}",
        passes[0],
        passes[1]
    );

    // The worker Deployment's replicas belong to the HPA, not to the operator.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), n);
    let pw = deploys.get(&pipeline_worker_name(&region)).await?;
    let owns_replicas = pw.metadata.managed_fields.iter().flatten().any(|f| {
        f.manager.as_deref() == Some(FIELD_MANAGER)
            && f.fields_v1
                .as_ref()
                .is_some_and(|v| v.0.to_string().contains("f:replicas"))
    });
    ensure!(
        !owns_replicas,
        "the operator's field manager owns the pipeline workers' replicas"
    );

    // Credentials are in no ConfigMap.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), n);
    for cm in cms.list(&Default::default()).await? {
        let text = serde_json::to_string(&cm.data)?;
        ensure!(
            !text.contains("e2e-user-pw") && !text.contains("e2e-root-pw"),
            "a password in ConfigMap {:?}",
            cm.metadata.name
        );
    }

    // Deleting the region collects everything it owned; the database's generated
    // Secret stays with its volume (deletionPolicy Retain, the default).
    typed
        .delete(&region.metadata.name.clone().unwrap(), &Default::default())
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let services: Api<Service> = Api::namespaced(client.clone(), n);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), n);
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), n);
    let jobs: Api<Job> = Api::namespaced(client.clone(), n);
    let sel = "app.kubernetes.io/managed-by=stv3-operator";
    wait_for(
        "the garbage collector to delete the region's objects",
        WAIT,
        || async {
            let lp = kube::api::ListParams::default().labels(sel);
            let left = deploys.list(&lp).await?.items.len()
                + cms.list(&lp).await?.items.len()
                + secrets
                    .list(&lp)
                    .await?
                    .items
                    .iter()
                    .filter(|s| {
                        s.metadata
                            .owner_references
                            .as_ref()
                            .is_some_and(|o| !o.is_empty())
                    })
                    .count()
                + services.list(&lp).await?.items.len()
                + hpas.list(&lp).await?.items.len()
                + stss.list(&lp).await?.items.len()
                + jobs.list(&lp).await?.items.len();
            Ok((left == 0).then_some(()))
        },
    )
    .await?;

    ns.delete().await
}
