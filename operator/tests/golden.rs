//! Every desired object of a few representative regions, compared as JSON with the
//! snapshot in `tests/fixtures/desired-golden/`: how the objects are built may change,
//! what they are may not without a deliberate new snapshot (pod-template hashes, the
//! migration Job's name and every field the API server sees depend on it).
//!
//! `DESIRED_GOLDEN_BLESS=1 cargo test -p stv3-operator --test golden` rewrites the
//! snapshot; `DESIRED_GOLDEN_OUT=<dir>` also writes each region's objects there.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use operator::config_check::ConfigFiles;
use operator::crd::StackTachRegion;
use operator::desired::*;
use operator::{disruption, keda, monitoring};
use serde_json::{json, Value};

fn example(file: &str, uid: &str) -> StackTachRegion {
    let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut r: StackTachRegion =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r.metadata.namespace = Some("stacktach".into());
    r.metadata.uid = Some(uid.into());
    r
}

/// `r` with a JSON merge patch (RFC 7386) applied.
fn with(r: &StackTachRegion, patch: Value) -> StackTachRegion {
    fn merge(target: &mut Value, patch: &Value) {
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

/// The multicell example with every optional setting the builders look at.
fn everything() -> StackTachRegion {
    let r = example(
        "region-multicell.yaml",
        "0a1b2c3d-0000-4000-8000-000000000003",
    );
    let mut r = with(
        &r,
        json!({
            "metadata": { "name": "region-all" },
            "spec": {
                "database": { "external": null, "managed": {
                    "storageSize": "20Gi", "storageClassName": "fast", "deletionPolicy": "Delete",
                    "resources": { "requests": { "cpu": "1", "memory": "1Gi" } },
                    "placement": { "nodeSelector": { "disk": "ssd" } } } },
                "pipelineWorkers": {
                    "notabenePasswordSecretRef": { "name": "notabene", "key": "pw" },
                    "placement": { "affinity": { "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                            { "matchExpressions": [{ "key": "pool", "operator": "In", "values": ["workers"] }] }
                        ] } } } } },
                "api": { "protectReads": true, "replicas": 3, "serviceType": "LoadBalancer", "port": 8080,
                    "resources": { "limits": { "memory": "128Mi" } },
                    "placement": { "topologySpreadConstraints": [
                        { "maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule" }
                    ], "tolerations": [{ "key": "api", "operator": "Exists" }] } },
                "pod": {
                    "affinity": { "podAntiAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [
                        { "weight": 10, "podAffinityTerm": { "topologyKey": "kubernetes.io/hostname" } }
                    ] } },
                    "topologySpreadConstraints": [
                        { "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway" }
                    ],
                    "securityContext": null
                },
                "images": { "migration": { "repository": "other/migrate", "tag": "9", "pullPolicy": "Never" },
                            "yagi": { "tag": "y1" } },
            }
        }),
    );
    r.spec.cells[0].shoebox.as_mut().unwrap().volume_size = Some(
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("5Gi".into()),
    );
    let mut cell = serde_json::to_value(&r.spec.cells[1]).unwrap();
    cell["placement"] = json!({
        "affinity": { "nodeAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [
            { "weight": 1, "preference": { "matchExpressions": [{ "key": "cell", "operator": "In", "values": ["b"] }] } }
        ] } },
        "topologySpreadConstraints": []
    });
    cell["resources"] = json!({ "requests": { "cpu": "300m" } });
    r.spec.cells[1] = serde_json::from_value(cell).unwrap();
    // Broker TLS on the last cell: a CA from a ConfigMap, a client certificate, a name.
    let last = r.spec.cells.len() - 1;
    let mut cell = serde_json::to_value(&r.spec.cells[last]).unwrap();
    cell["rabbitmq"]["tls"] = json!(true);
    cell["rabbitmq"]["port"] = json!(5671);
    cell["rabbitmq"]["serverName"] = json!("rabbit.example");
    cell["rabbitmq"]["caBundle"] = json!({ "configMapRef": { "name": "ca" } });
    cell["rabbitmq"]["clientCertificate"] = json!({ "secretName": "client-tls" });
    r.spec.cells[last] = serde_json::from_value(cell).unwrap();
    if let Some(m) = r.spec.database.managed.as_mut() {
        m.backup = serde_json::from_value(json!({
            "schedule": "30 2 * * *", "timeZone": "Etc/UTC", "retention": 14,
            "target": { "persistentVolumeClaim": { "claimName": "dumps" } },
        }))
        .unwrap();
    }
    r
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

fn v<T: serde::Serialize>(o: T) -> Value {
    serde_json::to_value(o).unwrap()
}

/// Every object built for `r`, by a name saying which builder made it.
fn objects(r: &StackTachRegion) -> BTreeMap<String, Value> {
    let files = ConfigFiles {
        event_definitions: Some("- event_type: compute.*\n  traits: {}\n".into()),
        triggers: None,
        pipelines: Some("usage_pipeline:\n  - logger\n".into()),
    };
    let secrets: BTreeMap<String, Secret> = [
        secret("cell-rabbitmq", &[("username", "u"), ("password", "p")]),
        secret("stv3-db", &[("url", "mysql://x")]),
        secret("notabene", &[("pw", "n")]),
    ]
    .into_iter()
    .map(|s| (s.metadata.name.clone().unwrap(), s))
    .collect();
    let resolved = Resolved {
        region_config: region_config_data(r, &files),
        secrets,
        ca_bundles: BTreeMap::from([("ca/ca.crt".to_string(), "PEM".to_string())]),
    };
    let mut out = BTreeMap::new();
    out.insert(
        "region_config_map".into(),
        v(region_config_map(r, &files).unwrap()),
    );
    for cell in &r.spec.cells {
        out.insert(
            format!("cell_config_map/{}", cell.name),
            v(cell_config_map(r, cell).unwrap()),
        );
        out.insert(
            format!("cell_deployment/{}", cell.name),
            v(cell_deployment(r, cell, &resolved).unwrap()),
        );
        out.insert(
            format!("cell_deployment_no_secrets/{}", cell.name),
            v(
                cell_deployment(r, cell, &Resolved::config(resolved.region_config.clone()))
                    .unwrap(),
            ),
        );
    }
    out.insert(
        "pipeline_worker_deployment".into(),
        v(pipeline_worker_deployment(r, &resolved).unwrap()),
    );
    if let Some(c) = backup_cron_job(r).unwrap() {
        out.insert("backup_cron_job".into(), v(c));
    }
    out.insert(
        "pipeline_worker_hpa".into(),
        v(pipeline_worker_hpa(r).unwrap()),
    );
    out.insert(
        "api_deployment".into(),
        v(api_deployment(r, &resolved).unwrap()),
    );
    out.insert("api_service".into(), v(api_service(r).unwrap()));
    out.insert("api_endpoint".into(), v(api_endpoint(r)));
    let passwords = DatabasePasswords {
        user: "user-pw".into(),
        root: "root-pw".into(),
    };
    out.insert(
        "database_secret".into(),
        v(database_secret(r, &passwords).unwrap()),
    );
    out.insert("database_service".into(), v(database_service(r).unwrap()));
    let sts = database_statefulset(r).unwrap();
    out.insert("database_statefulset".into(), v(&sts));
    if let Some(mut existing) = sts {
        let t = &mut existing
            .spec
            .as_mut()
            .unwrap()
            .volume_claim_templates
            .as_mut()
            .unwrap()[0];
        let spec = t.spec.as_mut().unwrap();
        spec.storage_class_name = Some("old-class".into());
        spec.resources
            .as_mut()
            .unwrap()
            .requests
            .as_mut()
            .unwrap()
            .insert(
                "storage".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
            );
        let over: Option<StatefulSet> = database_statefulset_over(r, Some(&existing)).unwrap();
        out.insert("database_statefulset_over".into(), v(over));
    }
    out.insert("migration_image".into(), v(migration_image(r)));
    out.insert("migration_job".into(), v(migration_job(r).unwrap()));
    out.insert(
        "metrics_services".into(),
        v(monitoring::metrics_services(r).unwrap()),
    );
    out.insert(
        "service_monitor".into(),
        v(monitoring::service_monitor(r).unwrap()),
    );
    for w in disruption::wanted(r) {
        out.insert(
            format!("pdb/{}", w.name),
            v(disruption::pod_disruption_budget(r, &w).unwrap()),
        );
    }
    if let Some(b) = keda::backlog(r) {
        out.insert(
            "keda_scaled_object".into(),
            v(keda::scaled_object(r, b).unwrap()),
        );
        out.insert(
            "keda_trigger_authentication".into(),
            v(keda::trigger_authentication(r, b).unwrap()),
        );
    }
    out.insert("referenced_secrets".into(), v(referenced_secrets(r)));
    out.insert(
        "referenced_config_maps".into(),
        v(referenced_config_maps(r)),
    );
    out
}

#[test]
fn desired_objects_match_the_snapshot() {
    let regions = [
        (
            "multicell",
            example(
                "region-multicell.yaml",
                "0a1b2c3d-0000-4000-8000-000000000001",
            ),
        ),
        (
            "minimal",
            example(
                "region-minimal.yaml",
                "0a1b2c3d-0000-4000-8000-000000000002",
            ),
        ),
        ("everything", everything()),
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/desired-golden");
    let bless = std::env::var_os("DESIRED_GOLDEN_BLESS").is_some();
    let out_dir = std::env::var_os("DESIRED_GOLDEN_OUT");
    let mut differ = Vec::new();
    for (name, r) in &regions {
        let got = v(objects(r));
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if let Some(d) = &out_dir {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(std::path::Path::new(d).join(format!("{name}.json")), &text).unwrap();
        }
        let path = format!("{dir}/{name}.json");
        if bless {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // Compared as values: key order is not what the API server sees.
        if want != got {
            differ.push(*name);
        }
    }
    assert!(
        differ.is_empty(),
        "desired objects differ from tests/fixtures/desired-golden for {differ:?} \
         (DESIRED_GOLDEN_OUT=/tmp/x shows them)"
    );
}
