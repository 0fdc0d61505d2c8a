//! The schema-migration Job. Its spec stays written as JSON: the Job's name is a hash
//! of exactly that JSON text (key order included), and a new name would start a new
//! Job for every region on upgrade. The pod settings come from the typed
//! [`super::pod::pod_settings`], put in the order the hash has always read them.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodSpec;
use kube::ResourceExt;
use serde_json::{json, Map, Value};

use super::pod::{pod_settings, resources};
use super::{
    config_hash, database_url_secret, from_json, image, labels, metadata, Component,
    ENV_DATABASE_URL,
};
use crate::crd::StackTachRegion;
use crate::Result;

/// The image the schema-migration Job runs: the schema version the components may
/// roll to once its migration succeeded (see [`crate::rollout`]).
pub fn migration_image(region: &StackTachRegion) -> String {
    image(region, Component::Migration).0
}

/// The pod-level settings as JSON in the key order the Job's name hash was defined
/// with (each value is the typed field's own JSON, as it always was).
fn hashed_pod_settings(pod: &PodSpec) -> Result<Map<String, Value>> {
    let typed = serde_json::to_value(pod)?;
    let mut m = Map::new();
    for key in [
        "nodeSelector",
        "tolerations",
        "affinity",
        "topologySpreadConstraints",
        "imagePullSecrets",
        "securityContext",
    ] {
        if let Some(v) = typed.get(key) {
            m.insert(key.into(), v.clone());
        }
    }
    Ok(m)
}

/// The schema-migration Job, `<region>-migrate-<hash of its spec>`. A Job's pod template
/// cannot change, so every change of what it runs (the image above all, but also pod
/// settings such as a nodeSelector) is a new Job rather than a refused update.
pub fn migration_job(region: &StackTachRegion) -> Result<Job> {
    let (image, pull) = image(region, Component::Migration);
    let mut pod = hashed_pod_settings(&pod_settings(region, None, None)?)?;
    let (url_secret, url_key) = database_url_secret(region);
    pod.insert("restartPolicy".into(), json!("OnFailure"));
    pod.insert(
        "containers".into(),
        json!([{
            "name": "migrate",
            "image": image,
            "imagePullPolicy": pull,
            // The URL comes from the environment (a Secret), never from the arguments:
            // it is never written into the Job.
            "command": ["stv3", "db", "upgrade"],
            // Wait for a database still starting (a managed MySQL initialises for a
            // minute on its first start) rather than fail and back off.
            "env": [
                { "name": ENV_DATABASE_URL,
                  "valueFrom": { "secretKeyRef": { "name": url_secret, "key": url_key } } },
                { "name": "STV3_DB_WAIT_SECONDS", "value": "300" },
            ],
            "resources": resources(None, Component::Migration),
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"] },
            },
        }]),
    );
    let spec = json!({
        "backoffLimit": 6,
        "ttlSecondsAfterFinished": 86400,
        "template": {
            "metadata": { "labels": labels(region, Component::Migration, None) },
            "spec": pod,
        },
    });
    let version = config_hash([&BTreeMap::from([("spec".to_string(), spec.to_string())])]);
    let name = format!("{}-migrate-{}", region.name_any(), &version[..10]);
    let mut job: Job = from_json(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "spec": spec,
    }))?;
    job.metadata = metadata(region, name, Component::Migration, None)?;
    Ok(job)
}
