//! Scaling the pipeline workers on their backlog with KEDA, when the cluster has it.
//! CPU is a poor signal for pipeline workers (a worker waiting on the database is
//! idle yet behind), so `pipelineWorkers.autoscaling.backlog` asks for a KEDA
//! ScaledObject counting the streams ready to fire instead of the CPU
//! HorizontalPodAutoscaler. KEDA is optional: the operator does not depend on its
//! types, it builds the objects as [`DynamicObject`]s and the reconciler applies them
//! only when discovery finds `scaledobjects.keda.sh`. Pure.
//!
//! The database password never appears here: the TriggerAuthentication references the
//! database Secret by name and key.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::ResourceExt;
use serde_json::json;

use crate::crd::{BacklogAutoscaling, StackTachRegion};
use crate::desired::{self, Component};
use crate::Result;

/// KEDA's API group.
pub const GROUP: &str = "keda.sh";
/// The KEDA API version the operator writes.
pub const VERSION: &str = "v1alpha1";
/// The CRD whose presence means KEDA is installed.
pub const SCALED_OBJECT_CRD: &str = "scaledobjects.keda.sh";

/// The ScaledObject's group, version and kind (for discovery).
pub fn scaled_object_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk(GROUP, VERSION, "ScaledObject")
}

/// The ScaledObject resource.
pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&scaled_object_gvk(), "scaledobjects")
}

/// The TriggerAuthentication resource.
pub fn trigger_authentication_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "TriggerAuthentication"),
        "triggerauthentications",
    )
}

/// Counts the streams ready to fire: active or waiting for a retry, with a fire time in
/// the past (`stream.state` 1 = active, 7 = retry_fire; timestamps are microseconds
/// since the epoch, as `worker::store` writes them).
pub const BACKLOG_QUERY: &str = "SELECT COUNT(*) FROM stream WHERE state IN (1, 7) \
     AND fire_timestamp IS NOT NULL AND fire_timestamp < UNIX_TIMESTAMP(NOW(6)) * 1000000";

fn metadata(region: &StackTachRegion) -> Result<serde_json::Value> {
    Ok(json!({
        "name": desired::pipeline_worker_name(region),
        "namespace": region.namespace(),
        "labels": desired::labels(region, Component::PipelineWorker, None),
        "ownerReferences": [desired::owner_reference(region)?],
    }))
}

/// The TriggerAuthentication giving KEDA the database credentials by Secret reference:
/// the managed database's generated password, or the external database's connection
/// string key.
pub fn trigger_authentication(
    region: &StackTachRegion,
    backlog: &BacklogAutoscaling,
) -> Result<DynamicObject> {
    let target = match &region.spec.database.external {
        Some(ext) => json!({
            "parameter": "connectionString",
            "name": ext.url_secret_ref.name,
            "key": backlog.connection_string_key,
        }),
        None => json!({
            "parameter": "password",
            "name": desired::database_name(region),
            "key": "password",
        }),
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "TriggerAuthentication",
        "metadata": metadata(region)?,
        "spec": { "secretTargetRef": [target] },
    }))?)
}

/// The ScaledObject scaling `<region>-pipeline-worker` between the region's min and max
/// replicas on [`BACKLOG_QUERY`] (KEDA creates and owns the HorizontalPodAutoscaler).
pub fn scaled_object(
    region: &StackTachRegion,
    backlog: &BacklogAutoscaling,
) -> Result<DynamicObject> {
    let p = &region.spec.pipeline_workers;
    let mut trigger_metadata = json!({
        "query": BACKLOG_QUERY,
        "queryValue": backlog.target_streams_per_replica.to_string(),
    });
    if region.spec.database.external.is_none() {
        trigger_metadata["host"] = json!(desired::database_host(region));
        trigger_metadata["port"] = json!(desired::MYSQL_PORT.to_string());
        trigger_metadata["username"] = json!(desired::DATABASE_NAME);
        trigger_metadata["dbName"] = json!(desired::DATABASE_NAME);
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "ScaledObject",
        "metadata": metadata(region)?,
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "name": desired::pipeline_worker_name(region),
            },
            "minReplicaCount": p.min_replicas,
            "maxReplicaCount": p.max_replicas,
            "pollingInterval": backlog.polling_interval_seconds,
            "triggers": [{
                "type": "mysql",
                "metadata": trigger_metadata,
                "authenticationRef": { "name": desired::pipeline_worker_name(region) },
            }],
        },
    }))?)
}

/// The backlog settings when the region asks for backlog scaling.
pub fn backlog(region: &StackTachRegion) -> Option<&BacklogAutoscaling> {
    region
        .spec
        .pipeline_workers
        .autoscaling
        .as_ref()?
        .backlog
        .as_ref()
}

/// The name of both KEDA objects of a region.
pub fn object_name(region: &StackTachRegion) -> String {
    desired::pipeline_worker_name(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(database: serde_json::Value) -> StackTachRegion {
        serde_json::from_value(json!({
            "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
            "metadata": { "name": "r", "namespace": "ns", "uid": "u-1" },
            "spec": {
                "cells": [],
                "pipelineWorkers": { "minReplicas": 2, "maxReplicas": 9,
                    "autoscaling": { "backlog": { "targetStreamsPerReplica": 50 } } },
                "database": database
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_managed_database_scales_on_the_backlog_with_its_generated_password() {
        let r = region(json!({ "managed": {} }));
        let b = backlog(&r).unwrap().clone();
        assert_eq!(b.polling_interval_seconds, 30, "the default");
        let so = scaled_object(&r, &b).unwrap();
        assert_eq!(so.name_any(), "r-pipeline-worker");
        let spec = &so.data["spec"];
        assert_eq!(spec["scaleTargetRef"]["name"], "r-pipeline-worker");
        assert_eq!(
            (&spec["minReplicaCount"], &spec["maxReplicaCount"]),
            (&json!(2), &json!(9))
        );
        let t = &spec["triggers"][0];
        assert_eq!(t["type"], "mysql");
        assert_eq!(t["metadata"]["queryValue"], "50");
        assert_eq!(t["metadata"]["host"], "r-db-0.r-db.ns.svc");
        assert!(t["metadata"]["query"]
            .as_str()
            .unwrap()
            .contains("state IN (1, 7)"));
        assert_eq!(t["authenticationRef"]["name"], "r-pipeline-worker");
        let owner = &so.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("StackTachRegion", Some(true))
        );

        let ta = trigger_authentication(&r, &b).unwrap();
        assert_eq!(
            ta.data["spec"]["secretTargetRef"][0],
            json!({ "parameter": "password", "name": "r-db", "key": "password" })
        );
    }

    #[test]
    fn an_external_database_gives_keda_its_connection_string_key() {
        let r = region(json!({ "external": { "urlSecretRef": { "name": "db" } } }));
        let b = backlog(&r).unwrap().clone();
        let ta = trigger_authentication(&r, &b).unwrap();
        assert_eq!(
            ta.data["spec"]["secretTargetRef"][0],
            json!({ "parameter": "connectionString", "name": "db", "key": "keda-connection-string" })
        );
        let so = scaled_object(&r, &b).unwrap();
        assert!(so.data["spec"]["triggers"][0]["metadata"]
            .get("host")
            .is_none());
    }
}
