//! The Deployments: a cell's yagi collectors, the pipeline workers and the API. Each
//! pod template carries the hashes of the config and Secret keys its pods read, so a
//! change of either rolls exactly the Deployments that read it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, PodSpec, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::inputs::{config_hash, secret_uses, secrets_hash, Resolved};
use super::pod::{
    config_map_volume, container_port, container_security_context, database_url_env, http_probe,
    mount, pod_settings, pull_policy, resources, rolling_update, secret_env,
};
use super::{
    api_name, config_name, image, labels, metadata, pipeline_worker_name, selector_labels,
    yagi_name, Component, CELL_CONFIG_DIR, CONFIG_HASH_ANNOTATION, ENV_AMQP_PASSWORD,
    ENV_AMQP_USER, ENV_API_TOKEN, ENV_NOTABENE_PASSWORD, REGION_CONFIG_DIR,
    SECRETS_HASH_ANNOTATION,
};
use crate::crd::{Cell, StackTachRegion};
use crate::Result;

/// The API's container port.
pub const API_CONTAINER_PORT: i32 = 8000;

/// What the three Deployments have in common: rolling updates that keep every pod
/// serving, and a pod template labelled as `component` (of `cell`) and annotated with
/// its config and secrets hashes.
struct Template<'a> {
    region: &'a StackTachRegion,
    component: Component,
    cell: Option<&'a str>,
    name: String,
    /// `None` where an autoscaler owns the count (applying one would fight it).
    replicas: Option<i32>,
    config_hash: String,
    secrets_hash: String,
    pod: PodSpec,
}

impl Template<'_> {
    fn deployment(self) -> Result<Deployment> {
        let Template {
            region,
            component,
            cell,
            ..
        } = self;
        Ok(Deployment {
            metadata: metadata(region, self.name, component, cell)?,
            spec: Some(DeploymentSpec {
                replicas: self.replicas,
                selector: LabelSelector {
                    match_labels: Some(selector_labels(region, component, cell)),
                    ..Default::default()
                },
                strategy: Some(rolling_update()),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(region, component, cell)),
                        annotations: Some(BTreeMap::from([
                            (CONFIG_HASH_ANNOTATION.to_string(), self.config_hash),
                            (SECRETS_HASH_ANNOTATION.to_string(), self.secrets_hash),
                        ])),
                        ..Default::default()
                    }),
                    spec: Some(self.pod),
                },
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

/// `<region>-yagi-<cell>` Deployment: the cell's collectors. `region_config` is the
/// data of the region's ConfigMap; it and the cell's config make the config hash.
pub fn cell_deployment(
    region: &StackTachRegion,
    cell: &Cell,
    resolved: &Resolved,
) -> Result<Deployment> {
    let region_config = &resolved.region_config;
    let name = yagi_name(region, &cell.name);
    let (image, pull) = image(region, Component::Yagi);
    let creds = &cell.rabbitmq.credentials_secret_ref;
    let mut volumes = vec![
        config_map_volume("region-config", config_name(region)),
        config_map_volume("cell-config", name.clone()),
    ];
    let mut mounts = vec![
        mount("region-config", REGION_CONFIG_DIR, true),
        mount("cell-config", CELL_CONFIG_DIR, true),
    ];
    if let Some(s) = &cell.shoebox {
        volumes.push(Volume {
            name: "shoebox".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: s.volume_size.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount("shoebox", &s.path, false));
    }
    volumes.extend(crate::broker_tls::volumes(cell));
    mounts.extend(crate::broker_tls::mounts(cell));
    // The CA bundle joins the hash only when there is one: a cell without TLS keeps the
    // hash it had (an operator upgrade rolls no collector).
    let cell_config = super::cell_config_data(cell);
    let ca = crate::broker_tls::ca_hash_input(&resolved.ca_bundles, cell);
    let mut hashed = vec![region_config, &cell_config];
    if !ca.is_empty() {
        hashed.push(&ca);
    }
    let hash = config_hash(hashed);
    let secrets = secrets_hash(
        &resolved.secrets,
        &secret_uses(region, Component::Yagi, Some(cell)),
    );
    let selector = selector_labels(region, Component::Yagi, Some(&cell.name));
    let path = format!("spec.cells[{}].placement", cell.name);
    let placement = cell.placement.as_ref().map(|p| (p, path.as_str()));
    let container = Container {
        name: "yagi".into(),
        image: Some(image),
        image_pull_policy: Some(pull_policy(pull)),
        command: Some(vec![
            "yagi-event".into(),
            "--config".into(),
            format!("{CELL_CONFIG_DIR}/yagi.conf"),
            "--metrics-listen".into(),
            "0.0.0.0:9102".into(),
            "--collector-name".into(),
            cell.name.clone(),
        ]),
        env: Some(vec![
            secret_env(ENV_AMQP_USER, &creds.name, &creds.username_key),
            secret_env(ENV_AMQP_PASSWORD, &creds.name, &creds.password_key),
            database_url_env(region),
        ]),
        ports: Some(vec![container_port("metrics", 9102)]),
        readiness_probe: Some(http_probe("/readyz", "metrics", 10)),
        liveness_probe: Some(http_probe("/healthz", "metrics", 20)),
        volume_mounts: Some(mounts),
        resources: Some(resources(cell.resources.as_ref(), Component::Yagi)),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        ..pod_settings(region, placement, Some(&selector))?
    };
    Template {
        region,
        component: Component::Yagi,
        cell: Some(&cell.name),
        name,
        replicas: Some(cell.yagi_replicas),
        config_hash: hash,
        secrets_hash: secrets,
        pod,
    }
    .deployment()
}

/// `<region>-pipeline-worker` Deployment. It has no `replicas`: the
/// HorizontalPodAutoscaler owns the count, and applying one would fight it.
pub fn pipeline_worker_deployment(
    region: &StackTachRegion,
    resolved: &Resolved,
) -> Result<Deployment> {
    let region_config = &resolved.region_config;
    let (image, pull) = image(region, Component::PipelineWorker);
    let workers = &region.spec.pipeline_workers;
    let mut env = vec![database_url_env(region)];
    if let Some(r) = &workers.notabene_password_secret_ref {
        env.push(secret_env(ENV_NOTABENE_PASSWORD, &r.name, &r.key));
    }
    let secrets = secrets_hash(
        &resolved.secrets,
        &secret_uses(region, Component::PipelineWorker, None),
    );
    let selector = selector_labels(region, Component::PipelineWorker, None);
    let container = Container {
        name: "pipeline-worker".into(),
        image: Some(image),
        image_pull_policy: Some(pull_policy(pull)),
        command: Some(vec![
            "pipeline-worker".into(),
            "--config".into(),
            format!("{REGION_CONFIG_DIR}/winchester.yaml"),
            "--metrics-listen".into(),
            "0.0.0.0:9101".into(),
        ]),
        env: Some(env),
        ports: Some(vec![container_port("metrics", 9101)]),
        readiness_probe: Some(http_probe("/readyz", "metrics", 10)),
        liveness_probe: Some(http_probe("/healthz", "metrics", 20)),
        volume_mounts: Some(vec![mount("region-config", REGION_CONFIG_DIR, true)]),
        resources: Some(resources(
            workers.resources.as_ref(),
            Component::PipelineWorker,
        )),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    let placement = workers
        .placement
        .as_ref()
        .map(|p| (p, "spec.pipelineWorkers.placement"));
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![config_map_volume(
            "region-config",
            config_name(region),
        )]),
        ..pod_settings(region, placement, Some(&selector))?
    };
    Template {
        region,
        component: Component::PipelineWorker,
        cell: None,
        name: pipeline_worker_name(region),
        replicas: None,
        config_hash: config_hash([region_config]),
        secrets_hash: secrets,
        pod,
    }
    .deployment()
}

/// Of the region's config files, those the API reads: `winchester.yaml` (its settings
/// and the database); it loads no definitions, triggers or pipelines, so a change to
/// those does not roll it.
fn api_config(region_config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    region_config
        .iter()
        .filter(|(k, _)| k.as_str() == "winchester.yaml")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `<region>-api` Deployment.
pub fn api_deployment(region: &StackTachRegion, resolved: &Resolved) -> Result<Deployment> {
    let region_config = &resolved.region_config;
    let (image, pull) = image(region, Component::Api);
    let api = &region.spec.api;
    let mut command = vec![
        "stv3-api".to_string(),
        "--config".into(),
        format!("{REGION_CONFIG_DIR}/winchester.yaml"),
        "--listen".into(),
        format!("0.0.0.0:{API_CONTAINER_PORT}"),
    ];
    let mut env = vec![database_url_env(region)];
    if let Some(token) = &api.token_secret_ref {
        env.push(secret_env(ENV_API_TOKEN, &token.name, &token.key));
        if api.protect_reads {
            command.push("--protect-reads".into());
        }
    }
    let container = Container {
        name: "api".into(),
        image: Some(image),
        image_pull_policy: Some(pull_policy(pull)),
        command: Some(command),
        env: Some(env),
        ports: Some(vec![container_port("http", API_CONTAINER_PORT)]),
        readiness_probe: Some(http_probe("/readyz", "http", 10)),
        liveness_probe: Some(http_probe("/healthz", "http", 20)),
        volume_mounts: Some(vec![mount("region-config", REGION_CONFIG_DIR, true)]),
        resources: Some(resources(api.resources.as_ref(), Component::Api)),
        security_context: Some(container_security_context()),
        ..Default::default()
    };
    let selector = selector_labels(region, Component::Api, None);
    let secrets = secrets_hash(
        &resolved.secrets,
        &secret_uses(region, Component::Api, None),
    );
    let placement = api.placement.as_ref().map(|p| (p, "spec.api.placement"));
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![config_map_volume(
            "region-config",
            config_name(region),
        )]),
        ..pod_settings(region, placement, Some(&selector))?
    };
    Template {
        region,
        component: Component::Api,
        cell: None,
        name: api_name(region),
        replicas: Some(api.replicas),
        config_hash: config_hash([&api_config(region_config)]),
        secrets_hash: secrets,
        pod,
    }
    .deployment()
}
