//! Region → the objects it owns. Pure: these functions take the region (and the
//! already-resolved config file texts) and return the objects the reconciler applies
//! with server-side apply; no I/O, no clock. Each object carries the region as its
//! controlling owner and the `app.kubernetes.io/*` labels.
//!
//! Credentials never appear in what is built here: the yagi config names no user or
//! password, `winchester.yaml` carries no database URL; the containers get them as
//! environment variables from Secret references ([`ENV_AMQP_USER`],
//! [`ENV_AMQP_PASSWORD`], [`ENV_DATABASE_URL`]).
//!
//! One file per kind: `deployment.rs` (collectors, pipeline workers, API),
//! `configmap.rs` (and the config files they hold), `service.rs`, `statefulset.rs`
//! (the managed MySQL), `secret.rs`, `job.rs` (the schema migration),
//! `autoscaler.rs`; what pods and containers share (pod settings and placement,
//! resources, probes, env vars from Secrets) is in `pod.rs`, the Secrets and config the
//! pods read and the hashes that roll them in `inputs.rs`. They build typed
//! k8s-openapi objects, so a misspelt field does not compile; what is still written as
//! JSON (the migration Job, whose name hashes that JSON) goes through `from_json`
//! (`json.rs`), which refuses a key the typed object would drop.

mod autoscaler;
mod configmap;
mod cronjob;
mod deployment;
mod inputs;
mod job;
mod json;
mod pod;
mod secret;
mod service;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::{ImageOverride, PullPolicy, StackTachRegion};
use crate::{Error, Result};

pub use autoscaler::pipeline_worker_hpa;
pub use configmap::{
    cell_config_data, cell_config_map, region_config_data, region_config_map,
    render_winchester_yaml, render_yagi_conf,
};
pub use cronjob::{backup_cron_job, backup_cron_job_name, BACKUP_DIR};
pub use deployment::{
    api_deployment, cell_deployment, pipeline_worker_deployment, API_CONTAINER_PORT,
};
pub use inputs::{
    config_hash, referenced_config_maps, referenced_secrets, secret_uses, secrets_hash, Resolved,
    SecretUse,
};
pub use job::{migration_image, migration_job};
pub use json::dropped_key;
use json::from_json;
pub use secret::{database_secret, DatabasePasswords};
pub use service::{api_endpoint, api_service, database_service};
pub use statefulset::{database_statefulset, database_statefulset_over};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "stv3-operator";
/// The pod-template annotation holding the hash of the config a pod runs with; a
/// config change changes it and so rolls exactly the Deployments using that config.
pub const CONFIG_HASH_ANNOTATION: &str = "stacktach.io/config-hash";
/// The pod-template annotation holding the hash of the Secret keys a pod reads: a
/// rotated password (or a Secret that appears) changes it and so rolls exactly the
/// Deployments reading it. (A hash of the values, as Helm's `checksum/secret`
/// convention; never the values.)
pub const SECRETS_HASH_ANNOTATION: &str = "stacktach.io/secrets-hash";
/// The notabene publisher's password, from `spec.pipelineWorkers.notabenePasswordSecretRef`.
pub const ENV_NOTABENE_PASSWORD: &str = "STV3_NOTABENE_PASSWORD";
/// The label naming a collector's cell.
pub const CELL_LABEL: &str = "stacktach.io/cell";
/// RabbitMQ user name, from the cell's credentials Secret.
pub const ENV_AMQP_USER: &str = "STV3_AMQP_USER";
/// RabbitMQ password, from the cell's credentials Secret.
pub const ENV_AMQP_PASSWORD: &str = "STV3_AMQP_PASSWORD";
/// The database URL, from the database Secret.
pub const ENV_DATABASE_URL: &str = "STV3_DATABASE_URL";
/// The API's bearer token, from `spec.api.tokenSecretRef`.
pub const ENV_API_TOKEN: &str = "STV3_API_TOKEN";
/// Where the region's config files are mounted.
pub const REGION_CONFIG_DIR: &str = "/etc/stv3/region";
/// Where the image keeps the default event definitions, triggers and pipelines (the
/// repository's `etc/`), used for any file a region does not give.
pub const DEFAULTS_CONFIG_DIR: &str = "/etc/stv3/defaults";
/// Where a cell's `yagi.conf` is mounted.
pub const CELL_CONFIG_DIR: &str = "/etc/stv3/cell";
/// The image tag used when the region names none.
pub const DEFAULT_TAG: &str = env!("CARGO_PKG_VERSION");

/// The components of a region, as in the `app.kubernetes.io/component` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A cell's yagi collectors.
    Yagi,
    /// The pipeline workers.
    PipelineWorker,
    /// The query API.
    Api,
    /// The managed MySQL.
    Database,
    /// The schema-migration Job.
    Migration,
    /// The managed database's scheduled dumps.
    Backup,
    /// The region-wide configuration.
    Config,
}

impl Component {
    /// The CPU and memory a container of this component requests when the region sets
    /// no `resources` for it: room the scheduler reserves, and for the pipeline
    /// workers the CPU request their autoscaler takes its percentage of (without one
    /// a HorizontalPodAutoscaler cannot compute utilisation). Measured figures and
    /// the table are in docs/operations.md. `None` for what runs no container.
    pub fn default_requests(self) -> Option<(&'static str, &'static str)> {
        match self {
            Component::Yagi => Some(("100m", "64Mi")),
            Component::PipelineWorker => Some(("100m", "64Mi")),
            Component::Api => Some(("50m", "64Mi")),
            Component::Database => Some(("250m", "256Mi")),
            Component::Migration => Some(("50m", "32Mi")),
            Component::Backup => Some(("100m", "64Mi")),
            Component::Config => None,
        }
    }

    /// The label value (and object-name part).
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Yagi => "yagi",
            Component::PipelineWorker => "pipeline-worker",
            Component::Api => "api",
            Component::Database => "database",
            Component::Migration => "migration",
            Component::Backup => "backup",
            Component::Config => "config",
        }
    }
}

// ------------------------------------------------------------------ names

/// `<region>-yagi-<cell>`: a cell's ConfigMap and Deployment.
pub fn yagi_name(region: &StackTachRegion, cell: &str) -> String {
    format!("{}-yagi-{cell}", region.name_any())
}

/// `<region>-config`: the region's shared config files.
pub fn config_name(region: &StackTachRegion) -> String {
    format!("{}-config", region.name_any())
}

/// `<region>-pipeline-worker`.
pub fn pipeline_worker_name(region: &StackTachRegion) -> String {
    format!("{}-pipeline-worker", region.name_any())
}

/// `<region>-api`: the API Deployment and Service.
pub fn api_name(region: &StackTachRegion) -> String {
    format!("{}-api", region.name_any())
}

/// `<region>-db`: the managed database's StatefulSet, Service and generated Secret.
pub fn database_name(region: &StackTachRegion) -> String {
    format!("{}-db", region.name_any())
}

// ------------------------------------------------------------------ common parts

/// The labels of every object of `component`; the selector labels are the same
/// minus `app.kubernetes.io/managed-by` and `part-of`.
pub fn labels(
    region: &StackTachRegion,
    component: Component,
    cell: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l = selector_labels(region, component, cell);
    l.insert("app.kubernetes.io/part-of".into(), "stacktach".into());
    l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    l
}

/// The labels a component's selector matches.
pub fn selector_labels(
    region: &StackTachRegion,
    component: Component,
    cell: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "stacktach".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), region.name_any()),
        (
            "app.kubernetes.io/component".to_string(),
            component.as_str().to_string(),
        ),
    ]);
    if let Some(cell) = cell {
        l.insert(CELL_LABEL.into(), cell.into());
    }
    l
}

/// The region as the controlling owner of what it owns (garbage collection deletes
/// them with it). Fails when the region has no uid yet (it was never stored).
pub fn owner_reference(region: &StackTachRegion) -> Result<OwnerReference> {
    region
        .controller_owner_ref(&())
        .ok_or_else(|| Error::MissingReference(format!("region {} has no uid", region.name_any())))
}

/// The metadata of every object the region owns: its name, the region's namespace,
/// the component's labels and the region as controlling owner.
fn metadata(
    region: &StackTachRegion,
    name: String,
    component: Component,
    cell: Option<&str>,
) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: region.namespace(),
        labels: Some(labels(region, component, cell)),
        owner_references: Some(vec![owner_reference(region)?]),
        ..Default::default()
    })
}

/// The image and pull policy of a component: its override, else the region's.
pub fn image(region: &StackTachRegion, component: Component) -> (String, PullPolicy) {
    let images = &region.spec.images;
    let none = ImageOverride::default();
    let o = match component {
        Component::Yagi => images.yagi.as_ref(),
        Component::PipelineWorker => images.pipeline_worker.as_ref(),
        Component::Api => images.api.as_ref(),
        Component::Migration => images.migration.as_ref(),
        Component::Database | Component::Backup | Component::Config => None,
    }
    .unwrap_or(&none);
    let repo = o.repository.as_deref().unwrap_or(&images.repository);
    let tag = o
        .tag
        .as_deref()
        .or(images.tag.as_deref())
        .unwrap_or(DEFAULT_TAG);
    (
        format!("{repo}:{tag}"),
        o.pull_policy.unwrap_or(images.pull_policy),
    )
}

// ------------------------------------------------------------------ database

/// The MySQL port.
pub const MYSQL_PORT: i32 = 3306;
/// The database and user the region's components use.
pub const DATABASE_NAME: &str = "stv3";

/// The in-cluster host of the managed database (its headless Service's first pod).
pub fn database_host(region: &StackTachRegion) -> String {
    let name = database_name(region);
    format!(
        "{name}-0.{name}.{}.svc",
        region.namespace().unwrap_or_default()
    )
}

/// The Secret key holding the database URL: the generated Secret of a managed
/// database, or the one the region references.
pub fn database_url_secret(region: &StackTachRegion) -> (String, String) {
    match &region.spec.database.external {
        Some(ext) => (
            ext.url_secret_ref.name.clone(),
            ext.url_secret_ref.key.clone(),
        ),
        None => (database_name(region), "url".into()),
    }
}

/// Whether the managed database's volume and Secret go with it
/// (`deletionPolicy: Delete`).
pub fn deletes_database(region: &StackTachRegion) -> bool {
    region
        .spec
        .database
        .managed
        .as_ref()
        .is_some_and(|m| m.deletion_policy == crate::crd::DeletionPolicy::Delete)
}

/// The `data` volume claim of the managed database's one pod.
pub fn database_claim_name(region: &StackTachRegion) -> String {
    format!("data-{}-0", database_name(region))
}
