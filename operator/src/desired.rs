//! Region → the objects it owns. Pure: these functions take the region (and the
//! already-resolved config file texts) and return the objects the reconciler applies
//! with server-side apply; no I/O, no clock. Each object carries the region as its
//! controlling owner and the `app.kubernetes.io/*` labels.
//!
//! Credentials never appear in what is built here: the yagi config names no user or
//! password, `winchester.yaml` carries no database URL; the containers get them as
//! environment variables from Secret references ([`ENV_AMQP_USER`],
//! [`ENV_AMQP_PASSWORD`], [`ENV_DATABASE_URL`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ResourceRequirements, Secret, Service, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

use crate::config_check::{ConfigFiles, EVENT_DEFINITIONS_FILE, PIPELINES_FILE, TRIGGERS_FILE};
use crate::crd::{Cell, ExchangeType, ImageOverride, Placement, PullPolicy, StackTachRegion};
use crate::{Error, Result};

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

pub(crate) fn metadata(
    region: &StackTachRegion,
    name: String,
    component: Component,
    cell: Option<&str>,
) -> Result<Value> {
    Ok(json!({
        "name": name,
        "namespace": region.namespace(),
        "labels": labels(region, component, cell),
        "ownerReferences": [owner_reference(region)?],
    }))
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

/// The pod-level settings of a component's pods: the region's `spec.pod`, each
/// scheduling field replaced by the component's `placement` when it gives one, and a
/// non-root security context when the region sets none. `spread` is the selector of a
/// Deployment's pods, which spread by node and zone unless told otherwise.
///
/// `placement` comes with its field path, named in the error when its affinity is not
/// one (the CRD's schema leaves that field unchecked).
pub(crate) fn pod_settings(
    region: &StackTachRegion,
    placement: Option<(&Placement, &str)>,
    spread: Option<&BTreeMap<String, String>>,
) -> Result<serde_json::Map<String, Value>> {
    let pod = &region.spec.pod;
    let none = Placement::default();
    let own = placement.map_or(&none, |(p, _)| p);
    let mut m = serde_json::Map::new();
    if let Some(v) = own.node_selector.as_ref().or(pod.node_selector.as_ref()) {
        m.insert("nodeSelector".into(), json!(v));
    }
    if let Some(v) = own.tolerations.as_ref().or(pod.tolerations.as_ref()) {
        m.insert("tolerations".into(), json!(v));
    }
    match (&own.affinity, placement) {
        (Some(v), Some((_, path))) => {
            let affinity: Affinity = serde_json::from_value(v.clone()).map_err(|e| {
                Error::InvalidSpec(format!("{path}.affinity is not a pod affinity: {e}"))
            })?;
            m.insert("affinity".into(), json!(affinity));
        }
        _ => {
            if let Some(v) = &pod.affinity {
                m.insert("affinity".into(), json!(v));
            }
        }
    }
    let own_spread = match (&own.topology_spread_constraints, placement) {
        (Some(v), Some((_, path))) => Some(
            serde_json::from_value::<Vec<TopologySpreadConstraint>>(json!(v)).map_err(|e| {
                Error::InvalidSpec(format!(
                    "{path}.topologySpreadConstraints is not a list of topology spread \
                     constraints: {e}"
                ))
            })?,
        ),
        _ => None,
    };
    match own_spread
        .as_ref()
        .or(pod.topology_spread_constraints.as_ref())
    {
        Some(v) => {
            m.insert("topologySpreadConstraints".into(), json!(v));
        }
        None => {
            if let Some(selector) = spread {
                m.insert("topologySpreadConstraints".into(), default_spread(selector));
            }
        }
    }
    if let Some(v) = &pod.image_pull_secrets {
        m.insert("imagePullSecrets".into(), json!(v));
    }
    let sc = match &pod.security_context {
        Some(sc) => json!(sc),
        None => json!({ "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } }),
    };
    m.insert("securityContext".into(), sc);
    Ok(m)
}

/// Spread a Deployment's pods one apart across nodes and across zones, as a preference
/// (`ScheduleAnyway`: a one-node or one-zone cluster still runs them all). Only pods of
/// the same revision count (`pod-template-hash`), so a rollout does not skew it.
fn default_spread(selector: &BTreeMap<String, String>) -> Value {
    let constraint = |key: &str| {
        json!({
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": selector },
            "matchLabelKeys": ["pod-template-hash"],
        })
    };
    json!([
        constraint("kubernetes.io/hostname"),
        constraint("topology.kubernetes.io/zone")
    ])
}

/// A container's `resources`: what the region gives, else `component`'s default
/// requests (no limits: a default limit would throttle or kill a busy collector).
pub(crate) fn resources(given: Option<&ResourceRequirements>, component: Component) -> Value {
    match (given, component.default_requests()) {
        (Some(r), _) => json!(r),
        (None, Some((cpu, memory))) => json!({ "requests": { "cpu": cpu, "memory": memory } }),
        (None, None) => json!({}),
    }
}

fn container_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": { "drop": ["ALL"] },
    })
}

/// How the collectors, workers and API roll (a new config, image or credential): a
/// new pod is ready before an old one goes (`maxUnavailable: 0`), up to a quarter more
/// pods at a time. A collector never stops consuming during a roll, and an API with
/// one replica keeps serving.
fn rolling_update() -> Value {
    json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": 0 } })
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

fn database_url_env(region: &StackTachRegion) -> Value {
    let (name, key) = database_url_secret(region);
    json!({ "name": ENV_DATABASE_URL, "valueFrom": { "secretKeyRef": { "name": name, "key": key } } })
}

/// What the reconciler read for the desired objects: the region's config files (the
/// data of its ConfigMap) and the Secrets its pods reference that exist, by name.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The data of the region's ConfigMap ([`region_config_data`]).
    pub region_config: BTreeMap<String, String>,
    /// The referenced Secrets ([`referenced_secrets`]) that exist.
    pub secrets: BTreeMap<String, Secret>,
    /// The cells' CA bundles kept in ConfigMaps
    /// ([`crate::broker_tls::read_ca_config_maps`]).
    pub ca_bundles: BTreeMap<String, String>,
}

impl Resolved {
    /// Only config data (no Secret read yet).
    pub fn config(region_config: BTreeMap<String, String>) -> Resolved {
        Resolved {
            region_config,
            secrets: BTreeMap::new(),
            ca_bundles: BTreeMap::new(),
        }
    }
}

/// A Secret key a component's containers read (as an environment variable).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretUse {
    /// The Secret's name, in the region's namespace.
    pub name: String,
    /// The key within it.
    pub key: String,
}

fn secret_use(name: &str, key: &str) -> SecretUse {
    SecretUse {
        name: name.into(),
        key: key.into(),
    }
}

/// The Secret keys the pods of `component` (of `cell`, for collectors) read: what
/// their hash covers, and what the operator watches for them.
pub fn secret_uses(
    region: &StackTachRegion,
    component: Component,
    cell: Option<&Cell>,
) -> Vec<SecretUse> {
    let (db_name, db_key) = database_url_secret(region);
    let mut uses = vec![secret_use(&db_name, &db_key)];
    match component {
        Component::Yagi => {
            if let Some(cell) = cell {
                let c = &cell.rabbitmq.credentials_secret_ref;
                uses.push(secret_use(&c.name, &c.username_key));
                uses.push(secret_use(&c.name, &c.password_key));
                for (name, key) in crate::broker_tls::secret_keys(cell) {
                    uses.push(secret_use(&name, &key));
                }
            }
        }
        Component::PipelineWorker => {
            if let Some(r) = &region.spec.pipeline_workers.notabene_password_secret_ref {
                uses.push(secret_use(&r.name, &r.key));
            }
        }
        Component::Api => {
            if let Some(t) = &region.spec.api.token_secret_ref {
                uses.push(secret_use(&t.name, &t.key));
            }
        }
        Component::Database | Component::Migration | Component::Backup | Component::Config => {}
    }
    uses
}

/// Every Secret the region's pods read, by name: what the reconciler reads to hash,
/// and what a change of wakes the region.
pub fn referenced_secrets(region: &StackTachRegion) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [Component::PipelineWorker, Component::Api]
        .into_iter()
        .flat_map(|c| secret_uses(region, c, None))
        .map(|u| u.name)
        .collect();
    for cell in &region.spec.cells {
        names.extend(
            secret_uses(region, Component::Yagi, Some(cell))
                .into_iter()
                .map(|u| u.name),
        );
    }
    names
}

/// Every ConfigMap the region's config files and cells' CA bundles reference, by name.
pub fn referenced_config_maps(region: &StackTachRegion) -> BTreeSet<String> {
    let c = &region.spec.config;
    [&c.event_definitions, &c.triggers, &c.pipelines]
        .into_iter()
        .flatten()
        .filter_map(|src| src.config_map_ref.as_ref())
        .map(|r| r.name.clone())
        .chain(
            region
                .spec
                .cells
                .iter()
                .filter_map(crate::broker_tls::config_map_key)
                .map(|(name, _)| name.to_string()),
        )
        .collect()
}

/// The hash of the values of `uses` in `secrets`, as put in [`SECRETS_HASH_ANNOTATION`];
/// a missing Secret or key hashes as absent, so its appearing rolls the pods too.
pub fn secrets_hash(secrets: &BTreeMap<String, Secret>, uses: &[SecretUse]) -> String {
    let mut sorted: Vec<&SecretUse> = uses.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut h = Sha256::new();
    for u in sorted {
        let secret = secrets.get(&u.name);
        let value = secret
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(&u.key))
            .map(|v| v.0.as_slice())
            .or_else(|| {
                secret
                    .and_then(|s| s.string_data.as_ref())
                    .and_then(|d| d.get(&u.key))
                    .map(|v| v.as_bytes())
            });
        for part in [u.name.as_bytes(), u.key.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        match value {
            Some(v) => {
                h.update(b"present");
                h.update((v.len() as u64).to_le_bytes());
                h.update(v);
            }
            None => h.update(b"absent"),
        }
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of config data, as put in [`CONFIG_HASH_ANNOTATION`].
pub fn config_hash<'a>(data: impl IntoIterator<Item = &'a BTreeMap<String, String>>) -> String {
    let mut h = Sha256::new();
    for map in data {
        for (k, v) in map {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        h.update(b"\x00map");
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The typed object `v` describes. k8s-openapi's types skip keys they do not know, so
/// a misspelt key in a `json!` block would vanish without a word (a probe that is
/// never set, a limit never applied): the typed object is written back and every key
/// of `v` must still be there, or this fails naming the first one lost.
fn from_json<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> Result<T> {
    let typed: T = serde_json::from_value(v.clone())?;
    let back = serde_json::to_value(&typed)?;
    match dropped_key(&v, &back, String::new()) {
        Some(path) => Err(Error::DroppedField(path)),
        None => Ok(typed),
    }
}

/// The path of the first key of `given` (recursively) that `kept` lacks; nulls and
/// empty objects or lists given may be dropped (they mean "absent" to the API server).
pub fn dropped_key(given: &Value, kept: &Value, path: String) -> Option<String> {
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => g.iter().find_map(|(key, gv)| {
            let here = format!("{path}.{key}");
            match k.get(key) {
                Some(kv) => dropped_key(gv, kv, here),
                None if is_empty(gv) => None,
                None => Some(here),
            }
        }),
        (Value::Array(g), Value::Array(k)) => g
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (gv, kv))| dropped_key(gv, kv, format!("{path}[{i}]")))
            .or_else(|| (g.len() > k.len()).then(|| format!("{path}[{}]", k.len()))),
        _ => None,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

// ------------------------------------------------------------------ region config

/// `winchester.yaml` for the region: the settings, the three files looked up in
/// [`REGION_CONFIG_DIR`] and then [`DEFAULTS_CONFIG_DIR`], and no database URL (it
/// comes from [`ENV_DATABASE_URL`]).
pub fn render_winchester_yaml(region: &StackTachRegion) -> String {
    let spec = &region.spec;
    let w = &spec.config.winchester;
    let p = &spec.pipeline_workers;
    let mut out = String::from(
        "# Rendered by stv3-operator; the database URL comes from $STV3_DATABASE_URL.\n",
    );
    // The region's files first, then the defaults baked into the image (worker/Dockerfile).
    out.push_str(&format!(
        "config_path:\n    - {REGION_CONFIG_DIR}\n    - {DEFAULTS_CONFIG_DIR}\n"
    ));
    out.push_str(&format!(
        "statistics_period: {}\n",
        w.statistics_period_seconds
    ));
    out.push_str(&format!("pipeline_worker_batch_size: {}\n", p.batch_size));
    out.push_str(&format!(
        "pipeline_worker_delay: {}\n",
        p.idle_delay_seconds
    ));
    out.push_str(&format!(
        "purge_completed_streams: {}\n",
        w.purge_completed_streams
    ));
    out.push_str(&format!("trim_events: {}\n", w.trim_events));
    out.push_str(&format!(
        "trim_events_age: {}\n",
        serde_json::to_string(&w.trim_events_age).expect("a string serializes")
    ));
    // Always named: a file the region gives is found in its ConfigMap, any other in the
    // image's defaults.
    for (key, file) in [
        ("distiller_config", EVENT_DEFINITIONS_FILE),
        ("trigger_definitions", TRIGGERS_FILE),
        ("pipeline_config", PIPELINES_FILE),
    ] {
        out.push_str(&format!("{key}: {file}\n"));
    }
    out.push_str(
        "pipeline_handlers:\n    logger: winchester.pipeline_handler:LoggingHandler\n    \
         usage: winchester.pipeline_handler:UsageHandler\n    \
         notabene: winchester.pipeline_handler:NotabeneHandler\n",
    );
    out
}

/// The data of the region's ConfigMap: `winchester.yaml` and the given files.
pub fn region_config_data(
    region: &StackTachRegion,
    files: &ConfigFiles,
) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([(
        "winchester.yaml".to_string(),
        render_winchester_yaml(region),
    )]);
    for (name, text) in [
        (EVENT_DEFINITIONS_FILE, &files.event_definitions),
        (TRIGGERS_FILE, &files.triggers),
        (PIPELINES_FILE, &files.pipelines),
    ] {
        if let Some(text) = text {
            data.insert(name.to_string(), text.clone());
        }
    }
    data
}

/// `<region>-config`: the region's config files, mounted by every component.
pub fn region_config_map(region: &StackTachRegion, files: &ConfigFiles) -> Result<ConfigMap> {
    from_json(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(region, config_name(region), Component::Config, None)?,
        "data": region_config_data(region, files),
    }))
}

// ------------------------------------------------------------------ cells

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn exchange_type(t: ExchangeType) -> &'static str {
    match t {
        ExchangeType::Topic => "topic",
        ExchangeType::Direct => "direct",
        ExchangeType::Fanout => "fanout",
        ExchangeType::Headers => "headers",
    }
}

/// A cell's `yagi.conf`: the broker (without credentials), its queues and apps.
pub fn render_yagi_conf(cell: &Cell) -> String {
    let r = &cell.rabbitmq;
    let mut apps = vec!["winchester.yagi_handler.WinchesterHandler"];
    if cell.shoebox.is_some() {
        apps.push("yagi.handler.shoebox_handler.ShoeboxHandler");
    }
    let mut out = format!(
        "# Rendered by stv3-operator for cell {name}. The RabbitMQ user and password come\n\
         # from ${ENV_AMQP_USER} and ${ENV_AMQP_PASSWORD}.\n\
         [global]\nupdate_timer = 10\n\n\
         [rabbit_broker]\nhost = {host}\nport = {port}\nvhost = {vhost}\nssl = {ssl}\npoll_delay = 0.5\n{tls}\n\
         [consumers]\nqueues = {queues}\n\n\
         [winchester]\nconfig_file = {REGION_CONFIG_DIR}/winchester.yaml\n",
        name = cell.name,
        host = r.host,
        port = r.port,
        vhost = r.vhost,
        ssl = py_bool(r.tls),
        tls = crate::broker_tls::yagi_conf_lines(r),
        queues = cell
            .queues
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    if let Some(s) = &cell.shoebox {
        out.push_str(&format!(
            "\n[shoebox]\nworking_directory = {p}/working\ndestination_folder = {p}/archive\n\
             filename_template = %Y%m%d-[[TIMESTAMP]]-stv3-[[CRC]].json\n\
             roll_manager = shoebox.roll_manager:WritingJSONRollManager\nroll_size_mb = {mb}\n",
            p = s.path,
            mb = s.roll_size_mb
        ));
    }
    for q in &cell.queues {
        out.push_str(&format!(
            "\n[consumer:{name}]\napps = {apps}\nexchange = {ex}\nexchange_type = {et}\n\
             routing_key = {rk}\ndurable = {d}\nmax_messages = {mm}\n",
            name = q.name,
            apps = apps.join(", "),
            ex = q.exchange,
            et = exchange_type(q.exchange_type),
            rk = q.routing_key,
            d = py_bool(q.durable),
            mm = q.max_messages,
        ));
    }
    out
}

/// The data of a cell's ConfigMap.
pub fn cell_config_data(cell: &Cell) -> BTreeMap<String, String> {
    BTreeMap::from([("yagi.conf".to_string(), render_yagi_conf(cell))])
}

/// `<region>-yagi-<cell>` ConfigMap: the cell's `yagi.conf`.
pub fn cell_config_map(region: &StackTachRegion, cell: &Cell) -> Result<ConfigMap> {
    from_json(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(region, yagi_name(region, &cell.name), Component::Yagi, Some(&cell.name))?,
        "data": cell_config_data(cell),
    }))
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
    let secret_env = |env: &str, key: &str| json!({ "name": env, "valueFrom": { "secretKeyRef": { "name": creds.name, "key": key } } });
    let mut volumes = vec![
        json!({ "name": "region-config", "configMap": { "name": config_name(region) } }),
        json!({ "name": "cell-config", "configMap": { "name": name } }),
    ];
    let mut mounts = vec![
        json!({ "name": "region-config", "mountPath": REGION_CONFIG_DIR, "readOnly": true }),
        json!({ "name": "cell-config", "mountPath": CELL_CONFIG_DIR, "readOnly": true }),
    ];
    for v in crate::broker_tls::volumes(cell) {
        volumes.push(serde_json::to_value(v)?);
    }
    for m in crate::broker_tls::mounts(cell) {
        mounts.push(serde_json::to_value(m)?);
    }
    if let Some(s) = &cell.shoebox {
        let mut dir = json!({});
        if let Some(size) = &s.volume_size {
            dir["sizeLimit"] = json!(size);
        }
        volumes.push(json!({ "name": "shoebox", "emptyDir": dir }));
        mounts.push(json!({ "name": "shoebox", "mountPath": s.path }));
    }
    let hash = config_hash([
        region_config,
        &cell_config_data(cell),
        &crate::broker_tls::ca_hash_input(&resolved.ca_bundles, cell),
    ]);
    let secrets = secrets_hash(
        &resolved.secrets,
        &secret_uses(region, Component::Yagi, Some(cell)),
    );
    let selector = selector_labels(region, Component::Yagi, Some(&cell.name));
    let path = format!("spec.cells[{}].placement", cell.name);
    let placement = cell.placement.as_ref().map(|p| (p, path.as_str()));
    let mut pod = pod_settings(region, placement, Some(&selector))?;
    pod.insert(
        "containers".into(),
        json!([{
            "name": "yagi",
            "image": image,
            "imagePullPolicy": pull,
            "command": ["yagi-event", "--config", format!("{CELL_CONFIG_DIR}/yagi.conf"),
                        "--metrics-listen", "0.0.0.0:9102"],
            "env": [
                secret_env(ENV_AMQP_USER, &creds.username_key),
                secret_env(ENV_AMQP_PASSWORD, &creds.password_key),
                database_url_env(region),
            ],
            "ports": [{ "name": "metrics", "containerPort": 9102 }],
            "readinessProbe": { "httpGet": { "path": "/readyz", "port": "metrics" }, "periodSeconds": 10 },
            "livenessProbe": { "httpGet": { "path": "/healthz", "port": "metrics" }, "periodSeconds": 20 },
            "volumeMounts": mounts,
            "resources": resources(cell.resources.as_ref(), Component::Yagi),
            "securityContext": container_security_context(),
        }]),
    );
    pod.insert("volumes".into(), json!(volumes));
    from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata(region, name, Component::Yagi, Some(&cell.name))?,
        "spec": {
            "replicas": cell.yagi_replicas,
            "strategy": rolling_update(),
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": {
                    "labels": labels(region, Component::Yagi, Some(&cell.name)),
                    "annotations": { CONFIG_HASH_ANNOTATION: hash, SECRETS_HASH_ANNOTATION: secrets },
                },
                "spec": pod,
            },
        },
    }))
}

// ------------------------------------------------------------------ pipeline workers

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
        env.push(json!({ "name": ENV_NOTABENE_PASSWORD,
            "valueFrom": { "secretKeyRef": { "name": r.name, "key": r.key } } }));
    }
    let secrets = secrets_hash(
        &resolved.secrets,
        &secret_uses(region, Component::PipelineWorker, None),
    );
    let selector = selector_labels(region, Component::PipelineWorker, None);
    let container = json!({
        "name": "pipeline-worker",
        "image": image,
        "imagePullPolicy": pull,
        "command": ["pipeline-worker", "--config", format!("{REGION_CONFIG_DIR}/winchester.yaml"),
                    "--metrics-listen", "0.0.0.0:9101"],
        "env": env,
        "ports": [{ "name": "metrics", "containerPort": 9101 }],
        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "metrics" }, "periodSeconds": 10 },
        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "metrics" }, "periodSeconds": 20 },
        "volumeMounts": [{ "name": "region-config", "mountPath": REGION_CONFIG_DIR, "readOnly": true }],
        "resources": resources(region.spec.pipeline_workers.resources.as_ref(), Component::PipelineWorker),
        "securityContext": container_security_context(),
    });
    let placement = workers
        .placement
        .as_ref()
        .map(|p| (p, "spec.pipelineWorkers.placement"));
    let mut pod = pod_settings(region, placement, Some(&selector))?;
    pod.insert("containers".into(), json!([container]));
    pod.insert(
        "volumes".into(),
        json!([{ "name": "region-config", "configMap": { "name": config_name(region) } }]),
    );
    from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata(region, pipeline_worker_name(region), Component::PipelineWorker, None)?,
        "spec": {
            "selector": { "matchLabels": selector },
            "strategy": rolling_update(),
            "template": {
                "metadata": {
                    "labels": labels(region, Component::PipelineWorker, None),
                    "annotations": {
                        CONFIG_HASH_ANNOTATION: config_hash([region_config]),
                        SECRETS_HASH_ANNOTATION: secrets,
                    },
                },
                "spec": pod,
            },
        },
    }))
}

/// `<region>-pipeline-worker` autoscaling/v2 HorizontalPodAutoscaler on CPU.
pub fn pipeline_worker_hpa(region: &StackTachRegion) -> Result<HorizontalPodAutoscaler> {
    let p = &region.spec.pipeline_workers;
    from_json(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(region, pipeline_worker_name(region), Component::PipelineWorker, None)?,
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1", "kind": "Deployment", "name": pipeline_worker_name(region),
            },
            "minReplicas": p.min_replicas,
            "maxReplicas": p.max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": { "type": "Utilization", "averageUtilization": p.target_cpu_utilization_percentage },
                },
            }],
        },
    }))
}

// ------------------------------------------------------------------ API

/// The API's container port.
pub const API_CONTAINER_PORT: i32 = 8000;

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
        env.push(json!({ "name": ENV_API_TOKEN,
            "valueFrom": { "secretKeyRef": { "name": token.name, "key": token.key } } }));
        if api.protect_reads {
            command.push("--protect-reads".into());
        }
    }
    let container = json!({
        "name": "api",
        "image": image,
        "imagePullPolicy": pull,
        "command": command,
        "env": env,
        "ports": [{ "name": "http", "containerPort": API_CONTAINER_PORT }],
        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "http" }, "periodSeconds": 10 },
        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 20 },
        "volumeMounts": [{ "name": "region-config", "mountPath": REGION_CONFIG_DIR, "readOnly": true }],
        "resources": resources(region.spec.api.resources.as_ref(), Component::Api),
        "securityContext": container_security_context(),
    });
    let selector = selector_labels(region, Component::Api, None);
    let secrets = secrets_hash(
        &resolved.secrets,
        &secret_uses(region, Component::Api, None),
    );
    let placement = api.placement.as_ref().map(|p| (p, "spec.api.placement"));
    let mut pod = pod_settings(region, placement, Some(&selector))?;
    pod.insert("containers".into(), json!([container]));
    pod.insert(
        "volumes".into(),
        json!([{ "name": "region-config", "configMap": { "name": config_name(region) } }]),
    );
    from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata(region, api_name(region), Component::Api, None)?,
        "spec": {
            "replicas": region.spec.api.replicas,
            "selector": { "matchLabels": selector },
            "strategy": rolling_update(),
            "template": {
                "metadata": {
                    "labels": labels(region, Component::Api, None),
                    "annotations": {
                        CONFIG_HASH_ANNOTATION: config_hash([&api_config(region_config)]),
                        SECRETS_HASH_ANNOTATION: secrets,
                    },
                },
                "spec": pod,
            },
        },
    }))
}

/// `<region>-api` Service.
pub fn api_service(region: &StackTachRegion) -> Result<Service> {
    from_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(region, api_name(region), Component::Api, None)?,
        "spec": {
            "type": region.spec.api.service_type,
            "selector": selector_labels(region, Component::Api, None),
            "ports": [{ "name": "http", "port": region.spec.api.port, "targetPort": "http" }],
        },
    }))
}

/// Where the API is reached from inside the cluster, for the status.
pub fn api_endpoint(region: &StackTachRegion) -> String {
    format!(
        "http://{}.{}.svc:{}",
        api_name(region),
        region.namespace().unwrap_or_default(),
        region.spec.api.port
    )
}

// ------------------------------------------------------------------ database

/// The MySQL port.
pub const MYSQL_PORT: i32 = 3306;
/// The database and user the region's components use.
pub const DATABASE_NAME: &str = "stv3";

/// The generated passwords of a managed database. The reconciler makes them once, when
/// the Secret does not exist, and never overwrites the Secret afterwards.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabasePasswords {
    /// The `stv3` user's password.
    pub user: String,
    /// MySQL's root password.
    pub root: String,
}

impl std::fmt::Debug for DatabasePasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabasePasswords(<redacted>)")
    }
}

/// The in-cluster host of the managed database (its headless Service's first pod).
pub fn database_host(region: &StackTachRegion) -> String {
    let name = database_name(region);
    format!(
        "{name}-0.{name}.{}.svc",
        region.namespace().unwrap_or_default()
    )
}

/// `<region>-db` Secret: the managed database's credentials and the URL the
/// components read ([`ENV_DATABASE_URL`]).
pub fn database_secret(region: &StackTachRegion, passwords: &DatabasePasswords) -> Result<Secret> {
    let url = format!(
        "mysql://{DATABASE_NAME}:{}@{}:{MYSQL_PORT}/{DATABASE_NAME}",
        passwords.user,
        database_host(region)
    );
    let mut meta = metadata(region, database_name(region), Component::Database, None)?;
    if !deletes_database(region) {
        // Retain: the Secret outlives the region, as the data volume does, so that a
        // region re-created with the same name opens its data with the same passwords.
        meta["ownerReferences"] = json!([]);
    }
    from_json(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": {
            "username": DATABASE_NAME,
            "password": passwords.user,
            "root-password": passwords.root,
            "url": url,
        },
    }))
}

/// `<region>-db` headless Service: the StatefulSet's stable network identity.
pub fn database_service(region: &StackTachRegion) -> Result<Service> {
    from_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(region, database_name(region), Component::Database, None)?,
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(region, Component::Database, None),
            "ports": [{ "name": "mysql", "port": MYSQL_PORT, "targetPort": "mysql" }],
        },
    }))
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
    let secret = |env: &str, key: &str| json!({ "name": env, "valueFrom": { "secretKeyRef": { "name": name, "key": key } } });
    let container = json!({
        "name": "mysql",
        "image": m.image,
        "env": [
            { "name": "MYSQL_DATABASE", "value": DATABASE_NAME },
            { "name": "MYSQL_USER", "value": DATABASE_NAME },
            secret("MYSQL_PASSWORD", "password"),
            secret("MYSQL_ROOT_PASSWORD", "root-password"),
        ],
        "ports": [{ "name": "mysql", "containerPort": MYSQL_PORT }],
        "readinessProbe": { "tcpSocket": { "port": "mysql" }, "periodSeconds": 5 },
        // A first start initialises the data directory before it listens: up to five
        // minutes of startup, then a MySQL that stops answering is restarted.
        "startupProbe": { "tcpSocket": { "port": "mysql" }, "periodSeconds": 5, "failureThreshold": 60 },
        "livenessProbe": { "tcpSocket": { "port": "mysql" }, "periodSeconds": 20, "failureThreshold": 3 },
        "volumeMounts": [{ "name": "data", "mountPath": "/var/lib/mysql" }],
        "resources": resources(m.resources.as_ref(), Component::Database),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
        },
    });
    let placement = m
        .placement
        .as_ref()
        .map(|p| (p, "spec.database.managed.placement"));
    let mut pod = pod_settings(region, placement, None)?;
    // Always the official MySQL image's `mysql` user, whatever `spec.pod` says: the
    // data volume's files belong to it, and a region-wide securityContext meant for
    // the StackTach containers (user 65532) would leave MySQL unable to read its data.
    pod.insert(
        "securityContext".into(),
        json!({ "runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                "seccompProfile": { "type": "RuntimeDefault" } }),
    );
    pod.insert("containers".into(), json!([container]));
    let mut pvc = json!({
        "metadata": { "name": "data" },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": m.storage_size } },
        },
    });
    if let Some(class) = &m.storage_class_name {
        pvc["spec"]["storageClassName"] = json!(class);
    }
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
            pvc["spec"]["resources"]["requests"]["storage"] = json!(size);
        }
        if let Some(class) = template
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_ref())
        {
            pvc["spec"]["storageClassName"] = json!(class);
        }
    }
    let when_deleted = if deletes_database(region) {
        "Delete"
    } else {
        "Retain"
    };
    from_json(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata(region, name.clone(), Component::Database, None)?,
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": { "matchLabels": selector_labels(region, Component::Database, None) },
            "template": {
                "metadata": { "labels": labels(region, Component::Database, None) },
                "spec": pod,
            },
            "volumeClaimTemplates": [pvc],
            "persistentVolumeClaimRetentionPolicy": { "whenDeleted": when_deleted, "whenScaled": "Retain" },
        },
    }))
    .map(Some)
}

/// The image the schema-migration Job runs: the schema version the components may
/// roll to once its migration succeeded (see [`crate::rollout`]).
pub fn migration_image(region: &StackTachRegion) -> String {
    image(region, Component::Migration).0
}

/// The schema-migration Job, `<region>-migrate-<hash of its spec>`. A Job's pod template
/// cannot change, so every change of what it runs (the image above all, but also pod
/// settings such as a nodeSelector) is a new Job rather than a refused update.
pub fn migration_job(region: &StackTachRegion) -> Result<Job> {
    let (image, pull) = image(region, Component::Migration);
    let mut pod = pod_settings(region, None, None)?;
    pod.insert("restartPolicy".into(), json!("OnFailure"));
    pod.insert(
        "containers".into(),
        json!([{
            "name": "migrate",
            "image": image,
            "imagePullPolicy": pull,
            // The kubelet expands $(VAR) from the container's environment: the URL is
            // never written into the Job.
            // The URL comes from the environment (a Secret), never from the arguments.
            "command": ["stv3", "db", "upgrade"],
            // Wait for a database still starting (a managed MySQL initialises for a
            // minute on its first start) rather than fail and back off.
            "env": [database_url_env(region), { "name": "STV3_DB_WAIT_SECONDS", "value": "300" }],
            "resources": resources(None, Component::Migration),
            "securityContext": container_security_context(),
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
    from_json(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": metadata(region, name, Component::Migration, None)?,
        "spec": spec,
    }))
}
