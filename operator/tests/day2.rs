//! Day-2 settings of the desired objects: disruption budgets, per-component placement
//! and topology spread, the secrets hash that rolls pods on a rotation, and the check
//! that no `json!` key is lost when an object is typed.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use operator::crd::StackTachRegion;
use operator::desired::*;
use operator::disruption::{self, Budget};
use serde_json::json;

/// `examples/region-multicell.yaml` (three cells, east-a with 2 collectors, API with 2
/// replicas, external database), with namespace and uid as the API server sets them.
fn region() -> StackTachRegion {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/region-multicell.yaml"
    );
    let mut r: StackTachRegion =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r.metadata.namespace = Some("stacktach".into());
    r.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000001".into());
    r
}

/// `r` with a JSON merge patch (RFC 7386, as `kubectl patch --type merge`) applied.
fn with(r: &StackTachRegion, patch: serde_json::Value) -> StackTachRegion {
    fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        match (target.as_object_mut(), patch.as_object()) {
            (Some(t), Some(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(json!({})), v);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }
    let mut v = serde_json::to_value(r).unwrap();
    merge(&mut v, &patch);
    serde_json::from_value(v).unwrap()
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn annotation(d: &Deployment, key: &str) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[key]
        .clone()
}

#[test]
fn budgets_cover_what_runs_more_than_one_pod_and_the_managed_database() {
    let r = region();
    let names: Vec<(String, Budget)> = disruption::wanted(&r)
        .into_iter()
        .map(|w| (w.name, w.budget))
        .collect();
    assert_eq!(
        names,
        vec![
            ("region-east-api".to_string(), Budget::MaxUnavailable(1)),
            (
                "region-east-pipeline-worker".into(),
                Budget::MaxUnavailable(1)
            ),
            // east-b and east-c run one collector each: no budget.
            ("region-east-yagi-east-a".into(), Budget::MaxUnavailable(1)),
        ]
    );

    let managed = with(
        &r,
        json!({ "spec": { "api": { "replicas": 1 }, "cells": [r.spec.cells[1]],
                "database": { "external": null, "managed": {} } } }),
    );
    let names: Vec<String> = disruption::wanted(&managed)
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, vec!["region-east-pipeline-worker", "region-east-db"]);
    let db = disruption::wanted(&managed).pop().unwrap();
    let pdb = disruption::pod_disruption_budget(&managed, &db).unwrap();
    let spec = pdb.spec.unwrap();
    assert_eq!(spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(spec.max_unavailable, None);
    assert_eq!(
        spec.selector.unwrap().match_labels.unwrap(),
        selector_labels(&managed, Component::Database, None)
    );
    assert_eq!(
        pdb.metadata.owner_references.unwrap()[0].uid,
        "0a1b2c3d-0000-4000-8000-000000000001"
    );

    let no_db = with(
        &managed,
        json!({ "spec": { "disruptionBudgets": { "database": false } } }),
    );
    assert_eq!(disruption::wanted(&no_db).len(), 1);
    let off = with(
        &r,
        json!({ "spec": { "disruptionBudgets": { "enabled": false } } }),
    );
    assert!(disruption::wanted(&off).is_empty());
}

#[test]
fn a_collector_budget_selects_exactly_its_cells_pods() {
    let r = region();
    let w = disruption::wanted(&r)
        .into_iter()
        .find(|w| w.cell.as_deref() == Some("east-a"))
        .unwrap();
    let pdb = disruption::pod_disruption_budget(&r, &w).unwrap();
    let d = cell_deployment(&r, &r.spec.cells[0], &Resolved::default()).unwrap();
    assert_eq!(
        pdb.spec.unwrap().selector.unwrap().match_labels,
        d.spec.unwrap().selector.match_labels
    );
}

#[test]
fn deployments_spread_by_node_and_zone_unless_told_otherwise() {
    let r = region();
    let d = api_deployment(&r, &Resolved::default()).unwrap();
    let spread = pod(&d).topology_spread_constraints.clone().unwrap();
    let keys: Vec<&str> = spread.iter().map(|c| c.topology_key.as_str()).collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    assert!(spread
        .iter()
        .all(|c| c.when_unsatisfiable == "ScheduleAnyway"
            && c.max_skew == 1
            && c.label_selector.as_ref().unwrap().match_labels
                == Some(selector_labels(&r, Component::Api, None))));

    // An empty list turns it off for that component only.
    let none = with(
        &r,
        json!({ "spec": { "api": { "placement": { "topologySpreadConstraints": [] } } } }),
    );
    let d = api_deployment(&none, &Resolved::default()).unwrap();
    assert_eq!(pod(&d).topology_spread_constraints, Some(vec![]));
    let w = pipeline_worker_deployment(&none, &Resolved::default()).unwrap();
    assert_eq!(
        pod(&w).topology_spread_constraints.as_ref().unwrap().len(),
        2
    );
}

#[test]
fn a_components_placement_replaces_the_regions_field_by_field() {
    let r = with(
        &region(),
        json!({ "spec": {
            "pod": {
                "nodeSelector": { "pool": "general" },
                "tolerations": [{ "key": "shared", "operator": "Exists" }],
            },
            "pipelineWorkers": { "placement": {
                "nodeSelector": { "pool": "batch" },
                "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{ "matchExpressions": [
                        { "key": "cpu", "operator": "In", "values": ["fast"] }] }] } } },
            } },
        } }),
    );
    let w = pipeline_worker_deployment(&r, &Resolved::default()).unwrap();
    let p = pod(&w);
    assert_eq!(p.node_selector.as_ref().unwrap()["pool"], "batch");
    // Not given by the workers' placement: the region's.
    assert_eq!(
        p.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("shared")
    );
    let terms = &p
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms[0].match_expressions.as_ref().unwrap()[0].key, "cpu");
    // Everything else keeps the region's.
    let a = api_deployment(&r, &Resolved::default()).unwrap();
    assert_eq!(pod(&a).node_selector.as_ref().unwrap()["pool"], "general");
    assert!(pod(&a).affinity.is_none());
}

#[test]
fn a_placement_that_is_not_a_pod_field_names_where_it_is() {
    let r = with(
        &region(),
        json!({ "spec": { "cells": [{ "name": "east-a",
            "rabbitmq": { "host": "h", "credentialsSecretRef": { "name": "s" } },
            "placement": { "affinity": { "nodeAffinity": "fast nodes please" } } }] } }),
    );
    let err = cell_deployment(&r, &r.spec.cells[0], &Resolved::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.cells[east-a].placement.affinity"),
        "{err}"
    );
    let r = with(
        &region(),
        json!({ "spec": { "api": { "placement": { "topologySpreadConstraints": [{ "maxSkew": "one" }] } } } }),
    );
    let err = api_deployment(&r, &Resolved::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.api.placement.topologySpreadConstraints"),
        "{err}"
    );
}

#[test]
fn the_database_keeps_its_own_security_context_and_has_probes() {
    let r = with(
        &region(),
        json!({ "spec": { "database": { "external": null, "managed": {} },
                "pod": { "securityContext": { "runAsUser": 65532, "runAsNonRoot": true } } } }),
    );
    let sts = database_statefulset(&r).unwrap().unwrap();
    let p = sts.spec.unwrap().template.spec.unwrap();
    assert_eq!(p.security_context.unwrap().run_as_user, Some(999));
    let c = &p.containers[0];
    assert!(c.liveness_probe.is_some() && c.startup_probe.is_some());
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn resolved(secrets: &[Secret]) -> Resolved {
    Resolved {
        region_config: BTreeMap::new(),
        secrets: secrets
            .iter()
            .map(|s| (s.metadata.name.clone().unwrap(), s.clone()))
            .collect(),
        ca_bundles: BTreeMap::new(),
    }
}

#[test]
fn a_rotated_password_rolls_exactly_the_pods_that_read_it() {
    let r = with(
        &region(),
        json!({ "spec": { "pipelineWorkers": {
            "notabenePasswordSecretRef": { "name": "notabene", "key": "password" } } } }),
    );
    let db = secret(
        "stv3-db",
        &[("url", "mysql://a"), ("keda-connection-string", "x")],
    );
    let rmq = secret(
        "cell-rabbitmq",
        &[
            ("username", "stv3"),
            ("password", "one"),
            ("user", "u"),
            ("pass", "p"),
        ],
    );
    let nb = secret("notabene", &[("password", "n1")]);
    let before = resolved(&[db.clone(), rmq.clone(), nb.clone()]);
    let hashes = |res: &Resolved| {
        let mut h: Vec<String> = r
            .spec
            .cells
            .iter()
            .map(|c| {
                annotation(
                    &cell_deployment(&r, c, res).unwrap(),
                    SECRETS_HASH_ANNOTATION,
                )
            })
            .collect();
        h.push(annotation(
            &pipeline_worker_deployment(&r, res).unwrap(),
            SECRETS_HASH_ANNOTATION,
        ));
        h.push(annotation(
            &api_deployment(&r, res).unwrap(),
            SECRETS_HASH_ANNOTATION,
        ));
        h
    };
    let h0 = hashes(&before);

    // east-a and east-b read username/password; east-c reads user/pass.
    let rotated = resolved(&[
        db.clone(),
        secret(
            "cell-rabbitmq",
            &[
                ("username", "stv3"),
                ("password", "two"),
                ("user", "u"),
                ("pass", "p"),
            ],
        ),
        nb.clone(),
    ]);
    let h1 = hashes(&rotated);
    let changed: Vec<bool> = h0.iter().zip(&h1).map(|(a, b)| a != b).collect();
    assert_eq!(changed, [true, true, false, false, false]);

    // The notabene password rolls the workers only.
    let nb2 = resolved(&[
        db.clone(),
        rmq.clone(),
        secret("notabene", &[("password", "n2")]),
    ]);
    let changed: Vec<bool> = h0.iter().zip(&hashes(&nb2)).map(|(a, b)| a != b).collect();
    assert_eq!(changed, [false, false, false, true, false]);

    // A key nobody reads changes nothing; the database URL rolls everything.
    let extra = resolved(&[
        secret(
            "stv3-db",
            &[("url", "mysql://a"), ("keda-connection-string", "y")],
        ),
        rmq.clone(),
        nb.clone(),
    ]);
    assert_eq!(hashes(&extra), h0);
    let url = resolved(&[
        secret(
            "stv3-db",
            &[("url", "mysql://b"), ("keda-connection-string", "x")],
        ),
        rmq.clone(),
        nb.clone(),
    ]);
    assert!(hashes(&url).iter().zip(&h0).all(|(a, b)| a != b));

    // A Secret that appears changes the hash too (its pods could not start before).
    let missing = resolved(&[db, nb]);
    assert_ne!(hashes(&missing)[0], h0[0]);

    // And the password itself is never in the object.
    let d =
        serde_json::to_string(&cell_deployment(&r, &r.spec.cells[0], &before).unwrap()).unwrap();
    assert!(!d.contains("\"one\"") && !d.contains("b25l"), "{d}");
    let w = pipeline_worker_deployment(&r, &before).unwrap();
    let env = &pod(&w).containers[0].env.clone().unwrap();
    let e = env
        .iter()
        .find(|e| e.name == ENV_NOTABENE_PASSWORD)
        .unwrap();
    assert!(e.value.is_none());
    assert_eq!(
        e.value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "notabene"
    );
}

#[test]
fn the_watch_finds_every_secret_and_config_map_a_region_reads() {
    let r = with(
        &region(),
        json!({ "spec": {
            "api": { "tokenSecretRef": { "name": "api-token" } },
            "pipelineWorkers": { "notabenePasswordSecretRef": { "name": "notabene" } },
            "config": { "eventDefinitions": { "configMapRef": { "name": "defs", "key": "e.yaml" } } },
        } }),
    );
    let secrets: Vec<String> = referenced_secrets(&r).into_iter().collect();
    assert_eq!(
        secrets,
        ["api-token", "cell-rabbitmq", "notabene", "stv3-db"]
    );
    let cms: Vec<String> = referenced_config_maps(&r).into_iter().collect();
    assert_eq!(cms, ["defs"]);
}

#[test]
fn a_misspelt_key_is_caught_not_dropped() {
    // What from_json checks on every desired object: a key the typed object does not
    // keep is reported with its path.
    let given = json!({ "spec": { "template": { "spec": {
        "containers": [{ "name": "c", "readinesProbe": { "periodSeconds": 5 } }] } } } });
    let typed: Deployment = serde_json::from_value(given.clone()).unwrap();
    let kept = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        dropped_key(&given, &kept, String::new()).as_deref(),
        Some(".spec.template.spec.containers[0].readinesProbe")
    );
    // Spelt right, nothing is lost; empty values may go.
    let given = json!({ "metadata": { "labels": {} }, "spec": { "template": { "spec": {
        "containers": [{ "name": "c", "readinessProbe": { "periodSeconds": 5 } }] } } } });
    let typed: Deployment = serde_json::from_value(given.clone()).unwrap();
    let kept = serde_json::to_value(&typed).unwrap();
    assert_eq!(dropped_key(&given, &kept, String::new()), None);
}

#[test]
fn metrics_services_and_the_service_monitor_find_every_pod() {
    use operator::monitoring;
    let r = region();
    let svcs = monitoring::metrics_services(&r).unwrap();
    let names: Vec<String> = svcs
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "region-east-yagi-metrics",
            "region-east-pipeline-worker-metrics"
        ]
    );
    // Each selects what its Deployments' pods carry, on their named metrics port.
    let yagi = cell_deployment(&r, &r.spec.cells[1], &Resolved::default()).unwrap();
    let pod_labels = yagi
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    let spec = svcs[0].spec.clone().unwrap();
    assert!(spec
        .selector
        .unwrap()
        .iter()
        .all(|(k, v)| pod_labels.get(k) == Some(v)));
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("metrics"), 9102));
    let sm = monitoring::service_monitor(&r).unwrap();
    assert_eq!(sm.metadata.name.as_deref(), Some("region-east"));
    let endpoints: Vec<&str> = sm.data["spec"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["port"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, ["metrics", "http"]);
    // The alert rules group by the cell: its label must reach the series.
    assert!(sm.data["spec"]["podTargetLabels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == CELL_LABEL));
    // The API Service the ServiceMonitor also scrapes matches its selector.
    let api = api_service(&r).unwrap();
    let api_labels = api.metadata.labels.unwrap();
    for (k, v) in sm.data["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(api_labels.get(k).map(String::as_str), v.as_str(), "{k}");
    }
}

#[test]
fn the_deletion_policy_keeps_or_deletes_the_volume_and_secret_together() {
    let pw = DatabasePasswords {
        user: "u".into(),
        root: "r".into(),
    };
    let retain = with(
        &region(),
        json!({ "spec": { "database": { "external": null, "managed": {} } } }),
    );
    let secret = database_secret(&retain, &pw).unwrap();
    assert!(
        secret
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "Retain (the default): the Secret outlives the region, as the volume does"
    );
    let sts = database_statefulset(&retain).unwrap().unwrap();
    let policy = sts
        .spec
        .unwrap()
        .persistent_volume_claim_retention_policy
        .unwrap();
    assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));

    let delete = with(
        &retain,
        json!({ "spec": { "database": { "managed": { "deletionPolicy": "Delete" } } } }),
    );
    let secret = database_secret(&delete, &pw).unwrap();
    assert_eq!(secret.metadata.owner_references.unwrap().len(), 1);
    let sts = database_statefulset(&delete).unwrap().unwrap();
    let policy = sts
        .spec
        .unwrap()
        .persistent_volume_claim_retention_policy
        .unwrap();
    assert_eq!(policy.when_deleted.as_deref(), Some("Delete"));
}

#[test]
fn a_new_storage_size_keeps_the_claim_template_it_was_created_with() {
    let small = with(
        &region(),
        json!({ "spec": { "database": { "external": null, "managed": { "storageSize": "10Gi" } } } }),
    );
    let created = database_statefulset(&small).unwrap().unwrap();
    let bigger = with(
        &small,
        json!({ "spec": { "database": { "managed": { "storageSize": "20Gi" } } } }),
    );
    let size = |s: &k8s_openapi::api::apps::v1::StatefulSet| {
        s.spec
            .as_ref()
            .unwrap()
            .volume_claim_templates
            .as_ref()
            .unwrap()[0]
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0
            .clone()
    };
    assert_eq!(
        size(&database_statefulset(&bigger).unwrap().unwrap()),
        "20Gi"
    );
    // Over the StatefulSet that exists, the immutable template stays as it is (the
    // claim itself is expanded).
    let over = database_statefulset_over(&bigger, Some(&created))
        .unwrap()
        .unwrap();
    assert_eq!(size(&over), "10Gi");
    assert_eq!(database_claim_name(&bigger), "data-region-east-db-0");
}

#[test]
fn quantities_compare_in_bytes() {
    use operator::reconcile::quantity_bytes;
    assert_eq!(quantity_bytes("10Gi"), Some(10.0 * 1024f64.powi(3)));
    assert_eq!(quantity_bytes("500M"), Some(5e8));
    assert_eq!(quantity_bytes("1e9"), Some(1e9));
    assert_eq!(quantity_bytes("1024"), Some(1024.0));
    assert!(quantity_bytes("20Gi") > quantity_bytes("10Gi"));
    assert!(quantity_bytes("11G") > quantity_bytes("10Gi"));
    assert_eq!(quantity_bytes("ten"), None);
    assert_eq!(quantity_bytes("10Xi"), None);
}
