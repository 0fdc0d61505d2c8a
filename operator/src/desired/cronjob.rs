//! The managed database's scheduled dumps: a CronJob `<region>-db-backup` running the
//! database's own image (so the dump tool always matches the server), writing one
//! gzipped SQL file per run to a claim the user owns, then deleting the oldest beyond
//! `retention`. A dump is written under a temporary name and renamed when complete, so
//! a failed run never leaves a file that looks like a backup, and never counts towards
//! retention.
//!
//! Restoring is the reverse with the same image (docs/operations.md, "Backups and
//! restore"), and e2e/tests/region_real.rs restores a dump into a new region.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::pod::{drop_all_capabilities, pod_settings, resources, secret_env};
use super::{database_host, database_name, labels, metadata, Component, DATABASE_NAME, MYSQL_PORT};
use crate::crd::{S3Target, StackTachRegion};
use crate::Result;

/// Where the claim is mounted in the dump's pod.
pub const BACKUP_DIR: &str = "/backup";

/// `<region>-db-backup`.
pub fn backup_cron_job_name(region: &StackTachRegion) -> String {
    format!("{}-db-backup", region.name_any())
}

/// The script the dump's container runs (bash, from the database image). Its inputs
/// come from the environment: nothing about the database is in the arguments.
const SCRIPT: &str = r#"set -euo pipefail
umask 077
dump=$(command -v mariadb-dump || command -v mysqldump) || { echo "no mariadb-dump or mysqldump in this image" >&2; exit 1; }
file="$BACKUP_DIR/$BACKUP_PREFIX-$(date -u +%Y%m%dT%H%M%SZ).sql.gz"
"$dump" --host="$DB_HOST" --port="$DB_PORT" --user=root --single-transaction --quick \
  --routines --events --databases "$DB_NAME" | gzip -6 >"$file.partial"
mv "$file.partial" "$file"
echo "wrote $file ($(stat -c %s "$file") bytes)"
ls -1 "$BACKUP_DIR/$BACKUP_PREFIX-"*.sql.gz | sort | head -n "-$BACKUP_RETENTION" | while read -r old; do
  rm -f -- "$old"
  echo "removed $old (retention $BACKUP_RETENTION)"
done
"#;

/// The CronJob for `spec.database.managed.backup`, or `None` when the region has no
/// managed database or no backup (the reconciler then deletes one it made before).
pub fn backup_cron_job(region: &StackTachRegion) -> Result<Option<CronJob>> {
    let Some(managed) = &region.spec.database.managed else {
        return Ok(None);
    };
    let Some(backup) = &managed.backup else {
        return Ok(None);
    };
    let s3 = backup.target.s3.as_ref();
    let env = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let container = Container {
        name: "dump".into(),
        image: Some(managed.image.clone()),
        command: Some(vec!["bash".into(), "-c".into(), SCRIPT.into()]),
        env: Some(vec![
            env("DB_HOST", database_host(region)),
            env("DB_PORT", MYSQL_PORT.to_string()),
            env("DB_NAME", DATABASE_NAME.into()),
            env("BACKUP_DIR", BACKUP_DIR.into()),
            env("BACKUP_PREFIX", region.name_any()),
            // On a claim the dump step keeps `retention` files; for S3 it writes into a
            // scratch directory the upload step empties, and the bucket keeps them.
            env(
                "BACKUP_RETENTION",
                if s3.is_some() { 1 } else { backup.retention }.to_string(),
            ),
            // The client reads the password from MYSQL_PWD: never in the arguments
            // (visible in the process list) nor in the object.
            secret_env("MYSQL_PWD", &database_name(region), "root-password"),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: "backup".into(),
            mount_path: BACKUP_DIR.into(),
            ..Default::default()
        }]),
        resources: Some(resources(None, Component::Backup)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(drop_all_capabilities()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let placement = managed
        .placement
        .as_ref()
        .map(|p| (p, "spec.database.managed.placement"));
    let mut pod: PodSpec = pod_settings(region, placement, None)?;
    // The database image's user, as the database's own pod: the files it writes on the
    // claim belong to the same user whatever `spec.pod` says.
    pod.security_context = Some(PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(999),
        run_as_group: Some(999),
        fs_group: Some(999),
        seccomp_profile: Some(super::pod::runtime_default_seccomp()),
        ..Default::default()
    });
    pod.restart_policy = Some("Never".into());
    let volume = Volume {
        name: "backup".into(),
        ..Default::default()
    };
    match (s3, &backup.target.persistent_volume_claim) {
        (Some(s3), _) => {
            // Dump into a scratch volume first (the database image has the dump
            // tool), then upload from the region's image (it has `stv3`).
            pod.init_containers = Some(vec![container]);
            pod.containers = vec![upload_container(region, s3, backup.retention)];
            pod.volumes = Some(vec![Volume {
                empty_dir: Some(Default::default()),
                ..volume
            }]);
        }
        (None, Some(claim)) => {
            pod.containers = vec![container];
            pod.volumes = Some(vec![Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.claim_name.clone(),
                    read_only: None,
                }),
                ..volume
            }]);
        }
        (None, None) => {
            return Err(crate::Error::InvalidSpec(
                "database.managed.backup.target: set persistentVolumeClaim or s3".into(),
            ))
        }
    }
    let labels: BTreeMap<String, String> = labels(region, Component::Backup, None);
    let metadata = metadata(
        region,
        backup_cron_job_name(region),
        Component::Backup,
        None,
    )?;
    Ok(Some(CronJob {
        metadata,
        spec: CronJobSpec {
            schedule: backup.schedule.clone(),
            time_zone: backup.time_zone.clone(),
            suspend: Some(backup.suspend),
            // A dump still running when the next is due: the next waits its turn.
            concurrency_policy: Some("Forbid".into()),
            // A controller down at the time runs a missed dump within the hour.
            starting_deadline_seconds: Some(3600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..Default::default()
                        }),
                        spec: Some(pod),
                    },
                    ..Default::default()
                }),
            },
        },
        status: None,
    }))
}

/// The upload step for an S3 target: `stv3 backup upload` from the region's image,
/// the bucket from the environment and the access key from the Secret.
fn upload_container(region: &StackTachRegion, s3: &S3Target, retention: i32) -> Container {
    let (image, pull) = super::image(region, Component::Migration);
    let literal = |name: &str, value: &str| super::pod::literal_env(name, value);
    let mut env = vec![
        literal("STV3_S3_BUCKET", &s3.bucket),
        literal(
            "STV3_S3_PATH_STYLE",
            if s3.force_path_style { "true" } else { "false" },
        ),
        secret_env(
            "AWS_ACCESS_KEY_ID",
            &s3.credentials_secret_ref.name,
            &s3.credentials_secret_ref.access_key_id_key,
        ),
        secret_env(
            "AWS_SECRET_ACCESS_KEY",
            &s3.credentials_secret_ref.name,
            &s3.credentials_secret_ref.secret_access_key_key,
        ),
    ];
    for (name, value) in [
        ("STV3_S3_ENDPOINT", &s3.endpoint),
        ("STV3_S3_PREFIX", &s3.prefix),
        ("STV3_S3_REGION", &s3.region),
    ] {
        if let Some(v) = value {
            env.push(literal(name, v));
        }
    }
    Container {
        name: "upload".into(),
        image: Some(image),
        image_pull_policy: Some(super::pod::pull_policy(pull)),
        command: Some(vec![
            "stv3".into(),
            "backup".into(),
            "upload".into(),
            "--from".into(),
            BACKUP_DIR.into(),
            "--name".into(),
            region.name_any(),
            "--retention".into(),
            retention.to_string(),
        ]),
        env: Some(env),
        volume_mounts: Some(vec![VolumeMount {
            name: "backup".into(),
            mount_path: BACKUP_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        resources: Some(resources(None, Component::Backup)),
        security_context: Some(super::pod::container_security_context()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn region(backup: serde_json::Value) -> StackTachRegion {
        let mut r: StackTachRegion = serde_json::from_value(json!({
            "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
            "metadata": { "name": "r1", "namespace": "ns", "uid": "u-1" },
            "spec": {
                "cells": [{ "name": "c1", "rabbitmq": { "host": "h", "credentialsSecretRef": { "name": "s" } } }],
                "database": { "managed": { "backup": backup } },
            },
        }))
        .expect("a region");
        if backup.is_null() {
            if let Some(m) = r.spec.database.managed.as_mut() {
                m.backup = None;
            }
        }
        r
    }

    #[test]
    fn no_backup_no_cron_job() {
        assert!(backup_cron_job(&region(serde_json::Value::Null))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_dump_per_schedule_to_the_claim_with_the_secret_password() {
        let r = region(json!({
            "schedule": "0 3 * * *", "retention": 5,
            "target": { "persistentVolumeClaim": { "claimName": "dumps" } },
        }));
        let c = backup_cron_job(&r).unwrap().unwrap();
        assert_eq!(c.metadata.name.as_deref(), Some("r1-db-backup"));
        let spec = c.spec;
        assert_eq!(spec.schedule, "0 3 * * *");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        let pod = spec.job_template.spec.unwrap().template.spec.unwrap();
        let claim = pod.volumes.unwrap()[0]
            .persistent_volume_claim
            .clone()
            .unwrap();
        assert_eq!(claim.claim_name, "dumps");
        let env = pod.containers[0].env.clone().unwrap();
        let get = |n: &str| env.iter().find(|e| e.name == n).cloned().unwrap();
        assert_eq!(get("BACKUP_RETENTION").value.as_deref(), Some("5"));
        assert_eq!(
            get("DB_HOST").value.as_deref(),
            Some("r1-db-0.r1-db.ns.svc")
        );
        let pwd = get("MYSQL_PWD").value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (pwd.name.as_str(), pwd.key.as_str()),
            ("r1-db", "root-password")
        );
        let text = serde_json::to_string(&pod.containers[0]).unwrap();
        assert!(!text.contains("password\":\""), "no password in the object");
    }

    #[test]
    fn an_s3_target_dumps_to_scratch_then_uploads_with_the_secret_keys() {
        let r = region(json!({
            "schedule": "0 3 * * *", "retention": 9,
            "target": { "s3": {
                "endpoint": "https://minio.example:9000", "bucket": "dumps", "prefix": "stv3",
                "credentialsSecretRef": { "name": "s3-keys" } } },
        }));
        let c = backup_cron_job(&r).unwrap().unwrap();
        let pod = c.spec.job_template.spec.unwrap().template.spec.unwrap();
        let dump = &pod.init_containers.as_ref().unwrap()[0];
        let env = |c: &Container, n: &str| {
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.name == n)
                .cloned()
                .unwrap()
        };
        assert_eq!(env(dump, "BACKUP_RETENTION").value.as_deref(), Some("1"));
        let upload = &pod.containers[0];
        let cmd = upload.command.clone().unwrap().join(" ");
        assert_eq!(
            cmd,
            "stv3 backup upload --from /backup --name r1 --retention 9"
        );
        assert_eq!(
            env(upload, "STV3_S3_ENDPOINT").value.as_deref(),
            Some("https://minio.example:9000")
        );
        let key = env(upload, "AWS_SECRET_ACCESS_KEY")
            .value_from
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(
            (key.name.as_str(), key.key.as_str()),
            ("s3-keys", "AWS_SECRET_ACCESS_KEY")
        );
        assert!(
            pod.volumes.unwrap()[0].empty_dir.is_some(),
            "no claim for S3"
        );
    }
}
