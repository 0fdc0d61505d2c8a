//! The managed database's StatefulSet: one MySQL pod and its data volume.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodTemplateSpec, Probe, SecurityContext, TCPSocketAction, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod::{
    container_port, drop_all_capabilities, literal_env, pod_settings, resources,
    runtime_default_seccomp, secret_env,
};
use super::{
    database_name, deletes_database, labels, metadata, selector_labels, Component, DATABASE_NAME,
    MYSQL_PORT,
};
use crate::crd::StackTachRegion;
use crate::Result;

/// The official MySQL image's `mysql` user and group.
const MYSQL_UID: i64 = 999;

/// A TCP probe of the `mysql` port every `period` seconds, failing after `failures`.
fn mysql_probe(period: i32, failures: Option<i32>) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("mysql".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: failures,
        ..Default::default()
    }
}

/// `<region>-db` StatefulSet (one MySQL pod and its data volume); `None` for an
/// external database.
pub fn database_statefulset(region: &StackTachRegion) -> Result<Option<StatefulSet>> {
    database_statefulset_over(region, None)
}

/// [`database_statefulset`], keeping the volume claim template of the StatefulSet that
/// exists: that template cannot change (an apply changing it is refused, and would
/// block every later change), so a new `storageSize` is applied to the claim itself
/// (see the reconciler) and the template keeps the size it was created with.
pub fn database_statefulset_over(
    region: &StackTachRegion,
    existing: Option<&StatefulSet>,
) -> Result<Option<StatefulSet>> {
    let Some(m) = &region.spec.database.managed else {
        return Ok(None);
    };
    let name = database_name(region);
    let container = Container {
        name: "mysql".into(),
        image: Some(m.image.clone()),
        env: Some(vec![
            literal_env("MYSQL_DATABASE", DATABASE_NAME),
            literal_env("MYSQL_USER", DATABASE_NAME),
            secret_env("MYSQL_PASSWORD", &name, "password"),
            secret_env("MYSQL_ROOT_PASSWORD", &name, "root-password"),
        ]),
        ports: Some(vec![container_port("mysql", MYSQL_PORT)]),
        readiness_probe: Some(mysql_probe(5, None)),
        // A first start initialises the data directory before it listens: up to five
        // minutes of startup, then a MySQL that stops answering is restarted.
        startup_probe: Some(mysql_probe(5, Some(60))),
        liveness_probe: Some(mysql_probe(20, Some(3))),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/var/lib/mysql".into(),
            ..Default::default()
        }]),
        resources: Some(resources(m.resources.as_ref(), Component::Database)),
        // Not read-only: MySQL writes outside its data directory (sockets, temp files).
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(drop_all_capabilities()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let placement = m
        .placement
        .as_ref()
        .map(|p| (p, "spec.database.managed.placement"));
    let mut pod = pod_settings(region, placement, None)?;
    // Always the official MySQL image's `mysql` user, whatever `spec.pod` says: the
    // data volume's files belong to it, and a region-wide securityContext meant for
    // the StackTach containers (user 65532) would leave MySQL unable to read its data.
    pod.security_context = Some(PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(MYSQL_UID),
        run_as_group: Some(MYSQL_UID),
        fs_group: Some(MYSQL_UID),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    });
    pod.containers = vec![container];
    let mut claim = PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                m.storage_size.clone(),
            )])),
            ..Default::default()
        }),
        storage_class_name: m.storage_class_name.clone(),
        ..Default::default()
    };
    if let Some(template) = existing
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|t| t.first())
    {
        if let Some(size) = template
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
        {
            claim.resources = Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size.clone())])),
                ..Default::default()
            });
        }
        if let Some(class) = template
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_ref())
        {
            claim.storage_class_name = Some(class.clone());
        }
    }
    let when_deleted = if deletes_database(region) {
        "Delete"
    } else {
        "Retain"
    };
    Ok(Some(StatefulSet {
        metadata: metadata(region, name.clone(), Component::Database, None)?,
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name),
            selector: LabelSelector {
                match_labels: Some(selector_labels(region, Component::Database, None)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(region, Component::Database, None)),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    ..Default::default()
                },
                spec: Some(claim),
                ..Default::default()
            }]),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(when_deleted.into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
