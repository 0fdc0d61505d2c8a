//! The `StackTachRegion` custom resource (`stacktach.io/v1alpha1`): one StackTach.v3
//! region, declared. The doc comments on every field become the CRD's descriptions, so
//! `kubectl explain stacktachregion.spec.cells` reads them; the `x_kube(validation)`
//! rules become CEL rules the API server enforces before anything reaches a pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every resource this operator defines.
pub const GROUP: &str = "stacktach.io";
/// The served (and stored) version.
pub const VERSION: &str = "v1alpha1";

/// A DNS-1123 label: what a cell name must be, since it ends up in object names.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The desired state of one StackTach.v3 region: its cells (one yagi collector
/// Deployment each, consuming notifications from that cell's RabbitMQ), the pipeline
/// workers, the query API, the database, and the winchester configuration they share.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "stacktach.io",
    version = "v1alpha1",
    kind = "StackTachRegion",
    plural = "stacktachregions",
    singular = "stacktachregion",
    shortname = "stregion",
    namespaced,
    status = "StackTachRegionStatus",
    doc = "A StackTach.v3 region: its cells' collectors, pipeline workers, query API and database, reconciled by the stacktach operator.",
    printcolumn = r#"{"name":"Cells","type":"string","jsonPath":".status.cellsReady","description":"Cells whose collectors are all ready, over cells in the spec"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"The Ready condition"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StackTachRegionSpec {
    /// The cells of the region: each is one RabbitMQ endpoint whose notifications a
    /// yagi collector Deployment (`<region>-yagi-<cell>`) consumes. Adding a cell adds
    /// its objects, removing one deletes exactly that cell's objects, renaming is a
    /// remove plus an add. Names must be unique.
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.all(c, self.exists_one(d, d.name == c.name))").message("cell names must be unique"))]
    pub cells: Vec<Cell>,

    /// The pipeline workers, which fire ready streams through their pipelines. A
    /// HorizontalPodAutoscaler owns their replica count.
    #[serde(default)]
    pub pipeline_workers: PipelineWorkers,

    /// The query API (the StackTach REST API that klugman and the UI talk to).
    #[serde(default)]
    pub api: ApiServer,

    /// Where events and streams are stored: exactly one of `managed` (the operator runs
    /// MySQL) or `external` (a Secret holds the URL of a database you run).
    pub database: Database,

    /// The event definitions, triggers, pipelines and winchester settings every
    /// component of the region shares.
    #[serde(default)]
    pub config: RegionConfig,

    /// The container images; each component may override the region's default.
    #[serde(default)]
    pub images: Images,

    /// Scheduling and security settings applied to every pod the operator creates (a
    /// component's own `placement` overrides the scheduling ones, field by field).
    #[serde(default)]
    pub pod: PodSettings,

    /// PodDisruptionBudgets: how many pods of each component a node drain may evict at
    /// once.
    #[serde(default)]
    pub disruption_budgets: DisruptionBudgets,

    /// Prometheus wiring: the metrics Services always; a ServiceMonitor when the
    /// Prometheus Operator is installed.
    #[serde(default)]
    pub monitoring: Monitoring,
}

/// How the region is wired to Prometheus.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Create a ServiceMonitor (`<region>`) over the collectors, pipeline workers and
    /// API when the cluster serves `servicemonitors.monitoring.coreos.com` (checked at
    /// every reconcile); false deletes it.
    #[serde(default = "default_true")]
    pub service_monitor: bool,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            service_monitor: true,
        }
    }
}

// ------------------------------------------------------------------ placement and disruption

/// Where one component's pods run. Each field given replaces the region's `spec.pod`
/// field of the same name for this component only (an empty list or map clears it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Node labels the component's nodes must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the component's pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node and pod affinity and anti-affinity, as in a pod's `affinity`. (Not spelled
    /// out in the schema: five copies of the Affinity schema would triple the CRD's
    /// size; the operator checks it and names the field when it is not an Affinity.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub affinity: Option<serde_json::Value>,
    /// How the component's pods spread over nodes and zones, as in a pod's
    /// `topologySpreadConstraints` (checked by the operator, like `affinity`). Absent:
    /// `spec.pod`'s, else the collectors, pipeline workers and API spread by node and by
    /// zone (maxSkew 1, ScheduleAnyway); an empty list: no constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_objects")]
    pub topology_spread_constraints: Option<Vec<serde_json::Value>>,
}

/// The PodDisruptionBudgets the operator keeps: `maxUnavailable: 1` for the API and
/// the pipeline workers, and for each cell's collectors when it runs more than one
/// replica; `minAvailable: 1` for the managed database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgets {
    /// Keep the budgets (false deletes them).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Keep the managed database's budget too. With one MySQL pod it makes a node drain
    /// wait rather than stop the region's database; set false (for a maintenance
    /// window) to let the drain take it.
    #[serde(default = "default_true")]
    pub database: bool,
}

impl Default for DisruptionBudgets {
    fn default() -> Self {
        DisruptionBudgets {
            enabled: true,
            database: true,
        }
    }
}

// ------------------------------------------------------------------ cells

/// One cell: a RabbitMQ endpoint and the queues a yagi collector consumes from it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// The cell's name, a DNS label (lowercase letters, digits and '-', at most 40
    /// characters): it becomes part of object names such as `<region>-yagi-<name>`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The cell's RabbitMQ endpoint.
    pub rabbitmq: RabbitMq,

    /// The queues to consume, each bound to an exchange. Defaults to nova's
    /// `notifications.info` on the `nova` topic exchange.
    #[serde(default = "default_queues")]
    #[schemars(length(min = 1, max = 32))]
    pub queues: Vec<Queue>,

    /// How many yagi collector pods consume this cell's queues.
    #[serde(default = "default_yagi_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub yagi_replicas: i32,

    /// Archive every raw notification of this cell with shoebox (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shoebox: Option<Shoebox>,

    /// CPU and memory requests and limits of a collector container (absent: the
    /// defaults in docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Where this cell's collectors run (over `spec.pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// A RabbitMQ endpoint. Credentials are never written here: they come from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.tls || (!has(self.caBundle) && !has(self.clientCertificate) && !has(self.serverName))").message("caBundle, clientCertificate and serverName need tls: true"))]
pub struct RabbitMq {
    /// The broker's host name or IP address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,

    /// The broker's AMQP port (5672, or 5671 with TLS).
    #[serde(default = "default_amqp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// The virtual host.
    #[serde(default = "default_vhost")]
    pub vhost: String,

    /// Connect with TLS (amqps).
    #[serde(default)]
    pub tls: bool,

    /// The Secret (in the region's namespace) holding the user name and password; they
    /// reach the collector only as environment variables.
    pub credentials_secret_ref: CredentialsSecretRef,

    /// The CA certificates (PEM) the broker's certificate is verified against, in
    /// addition to the image's trust store: the usual case for a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundle>,

    /// A client certificate for brokers that ask for one (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,

    /// The name the broker's certificate is verified against (and sent as SNI), when
    /// it is not `host`: say the certificate names `rabbit.cell1.example` and the
    /// collectors dial a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_name: Option<String>,
}

/// Where a CA bundle is: a key of a ConfigMap or of a Secret. Set exactly one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMapRef) != has(self.secretRef)").message("set exactly one of configMapRef or secretRef"))]
pub struct CaBundle {
    /// A key of a ConfigMap holding PEM certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<BundleKeyRef>,
    /// A key of a Secret holding PEM certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<BundleKeyRef>,
}

/// A key of a ConfigMap or Secret in the region's namespace holding PEM certificates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleKeyRef {
    /// The object's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key (default `ca.crt`, as cert-manager and trust-manager write it).
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_string()
}

/// A client certificate and key from a Secret of type `kubernetes.io/tls` (keys
/// `tls.crt` and `tls.key`, as cert-manager writes them).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificate {
    /// The Secret's name, in the region's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// A reference to a Secret holding a user name and a password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// The Secret's name, in the region's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key of the user name in the Secret.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// The key of the password in the Secret.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

/// A queue consumed by yagi, and how it is bound.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    /// The queue's name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// The exchange the queue is bound to.
    #[schemars(length(min = 1, max = 255))]
    pub exchange: String,
    /// The exchange's type.
    #[serde(default)]
    pub exchange_type: ExchangeType,
    /// The binding's routing key.
    #[serde(default)]
    pub routing_key: String,
    /// Declare the queue (and exchange) durable.
    #[serde(default = "default_true")]
    pub durable: bool,
    /// Messages yagi takes from the queue per batch (the original's `max_messages`).
    #[serde(default = "default_max_messages")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_messages: i32,
}

/// An AMQP exchange type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    /// Routing by pattern on the routing key (what OpenStack services publish to).
    #[default]
    Topic,
    /// Routing by exact routing key.
    Direct,
    /// Every bound queue gets every message.
    Fanout,
    /// Routing by message headers.
    Headers,
}

/// Shoebox archiving of a cell's raw notifications.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shoebox {
    /// Where archives are written (a directory in the collector pod).
    #[serde(default = "default_shoebox_path")]
    pub path: String,
    /// An archive is rolled over once it reaches this many megabytes.
    #[serde(default = "default_shoebox_roll_mb")]
    #[schemars(range(min = 1))]
    pub roll_size_mb: i32,
    /// The size of the volume holding the archives (an emptyDir limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Quantity>,
}

// ------------------------------------------------------------------ pipeline workers

/// The pipeline workers and their autoscaling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("pipelineWorkers.minReplicas must not exceed pipelineWorkers.maxReplicas"))]
pub struct PipelineWorkers {
    /// The fewest pipeline worker pods the autoscaler keeps.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// The most pipeline worker pods the autoscaler may run.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// The average CPU utilization (percent of requests) the autoscaler aims for.
    #[serde(
        rename = "targetCPUUtilizationPercentage",
        default = "default_cpu_target"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
    /// Streams a worker takes at a time (winchester's `pipeline_worker_batch_size`).
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: i32,
    /// How long an idle worker sleeps, in seconds (`pipeline_worker_delay`).
    #[serde(default = "default_idle_delay")]
    #[schemars(range(min = 0, max = 3600))]
    pub idle_delay_seconds: i32,
    /// CPU and memory requests and limits of a worker container (absent: the defaults
    /// in docs/operations.md). The autoscaler's target is a percentage of the CPU
    /// request, so keep one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Other ways to scale the workers than CPU (absent: the CPU autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Where the workers run (over `spec.pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The Secret key holding the password of the notabene publisher (the pipelines'
    /// `notabene` handler): it reaches the workers as the environment variable
    /// `STV3_NOTABENE_PASSWORD`, which `pipelines.yaml` names with
    /// `password_env: STV3_NOTABENE_PASSWORD`. A change rolls the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notabene_password_secret_ref: Option<PasswordSecretRef>,
}

/// How the pipeline workers are scaled, beyond the CPU autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Scale on the backlog of streams ready to fire, with a KEDA ScaledObject, when KEDA
    /// is installed (the `scaledobjects.keda.sh` CRD exists); without KEDA the CPU
    /// autoscaler stays and the `BacklogAutoscaling` condition says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<BacklogAutoscaling>,
}

/// Scaling the pipeline workers on the count of streams ready to fire (KEDA's mysql
/// scaler querying the region's database).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BacklogAutoscaling {
    /// Ready-to-fire streams per worker replica: KEDA runs backlog / this many workers,
    /// between minReplicas and maxReplicas.
    #[serde(default = "default_streams_per_replica")]
    #[schemars(range(min = 1, max = 1000000))]
    pub target_streams_per_replica: i32,
    /// How often KEDA counts the backlog, in seconds.
    #[serde(default = "default_polling_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub polling_interval_seconds: i32,
    /// External database only: the key, in the database URL's Secret, holding the
    /// connection string KEDA's mysql scaler reads, in the Go MySQL driver's form
    /// (`user:password@tcp(host:3306)/stv3`). A managed database needs nothing: its
    /// generated Secret is used.
    #[serde(default = "default_connection_string_key")]
    #[schemars(length(min = 1, max = 253))]
    pub connection_string_key: String,
}

impl Default for PipelineWorkers {
    fn default() -> Self {
        PipelineWorkers {
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_cpu_utilization_percentage: default_cpu_target(),
            batch_size: default_batch_size(),
            idle_delay_seconds: default_idle_delay(),
            resources: None,
            autoscaling: None,
            placement: None,
            notabene_password_secret_ref: None,
        }
    }
}

// ------------------------------------------------------------------ API

/// The query API Deployment and its Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.protectReads) || !self.protectReads || has(self.tokenSecretRef)").message("api.protectReads needs api.tokenSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct ApiServer {
    /// How many API pods run.
    #[serde(default = "default_api_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// The type of the API's Service.
    #[serde(default)]
    pub service_type: ServiceType,
    /// The port the API's Service exposes.
    #[serde(default = "default_api_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// CPU and memory requests and limits of an API container (absent: the defaults in
    /// docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The Secret key holding the bearer token that `DELETE` and `PUT` (deleting and
    /// resetting streams) require. Without it the API refuses those calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<TokenSecretRef>,
    /// Require the token for read-only calls too (needs `tokenSecretRef`).
    #[serde(default)]
    pub protect_reads: bool,
    /// Where the API pods run (over `spec.pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Default for ApiServer {
    fn default() -> Self {
        ApiServer {
            replicas: default_api_replicas(),
            service_type: ServiceType::default(),
            port: default_api_port(),
            resources: None,
            token_secret_ref: None,
            protect_reads: false,
            placement: None,
        }
    }
}

/// The key of a Secret, in the region's namespace, holding the API's bearer token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the Secret.
    #[serde(default = "default_token_key")]
    pub key: String,
}

/// A Kubernetes Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

// ------------------------------------------------------------------ database

/// The region's database: set exactly one of `managed` and `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("database: set exactly one of managed or external"))]
pub struct Database {
    /// The operator runs MySQL as a StatefulSet, with a generated credentials Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// A database you run; a Secret holds its URL (`mysql://user:password@host/db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

/// A MySQL the operator runs for the region.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.storageSize) || quantity(string(self.storageSize)).compareTo(quantity(string(oldSelf.storageSize))) >= 0").message("database.managed.storageSize cannot shrink: a volume only grows (to start smaller, back up, create a new region and restore into it)"))]
pub struct ManagedDatabase {
    /// The MySQL image.
    #[serde(default = "default_mysql_image")]
    pub image: String,
    /// The size of the data volume.
    #[serde(default = "default_storage_size")]
    pub storage_size: Quantity,
    /// The StorageClass of the data volume (the cluster's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// CPU and memory requests and limits of the MySQL container (absent: the
    /// defaults in docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where the MySQL pod runs (over `spec.pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// What happens to the data volume and the generated credentials Secret when the
    /// region is deleted or its database made external: `Retain` keeps both (a region
    /// re-created with the same name finds its data and the passwords that open it),
    /// `Delete` deletes both. Never one without the other.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Scheduled logical dumps of the database (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<DatabaseBackup>,
}

/// Logical dumps on a schedule, run as a CronJob with the database's own image (its
/// `mariadb-dump`/`mysqldump`): one gzipped SQL file per run, consistent without
/// locking (`--single-transaction`), restorable into any region (docs/operations.md).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseBackup {
    /// When to dump, in cron syntax (`0 3 * * *`: at 03:00 every day), in `timeZone`.
    #[schemars(length(min = 9, max = 100))]
    pub schedule: String,
    /// The time zone of `schedule` (an IANA name such as `Etc/UTC`; the controller
    /// manager's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// How many dumps to keep: after each successful dump the oldest beyond this go.
    #[serde(default = "default_backup_retention")]
    #[schemars(range(min = 1, max = 1000))]
    pub retention: i32,
    /// Stop scheduling dumps, keeping the schedule and the dumps.
    #[serde(default)]
    pub suspend: bool,
    /// Where the dumps are written.
    pub target: BackupTarget,
}

fn default_backup_retention() -> i32 {
    7
}

/// Where dumps go.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.persistentVolumeClaim) != has(self.s3)").message("set exactly one of persistentVolumeClaim or s3"))]
pub struct BackupTarget {
    /// A PersistentVolumeClaim in the region's namespace, created by you (so that it
    /// outlives the region and its deletion policy): dumps are files at its root,
    /// `<region>-<UTC time>.sql.gz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<BackupClaim>,
    /// An S3-compatible bucket (AWS, MinIO, Ceph RGW, …): dumps are objects
    /// `<prefix>/<region>-<UTC time>.sql.gz`, uploaded by `stv3 backup upload` from
    /// the region's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Target>,
}

/// An S3-compatible bucket and the Secret with its keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Target {
    /// The store's URL (`https://minio.example:9000`); AWS S3 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// The bucket (it must exist).
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// A key prefix ("directory") inside the bucket; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The region the bucket is in (`us-east-1` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Address the bucket in the path (`endpoint/bucket/key`), as MinIO and most
    /// non-AWS stores expect; `false` for virtual-hosted style (`bucket.endpoint`).
    #[serde(default = "default_true")]
    pub force_path_style: bool,
    /// The Secret (in the region's namespace) with the access key; it reaches the
    /// upload only as environment variables.
    pub credentials_secret_ref: S3Credentials,
}

/// The keys of an S3 access key in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// The key holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".into()
}

fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

/// A PersistentVolumeClaim by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupClaim {
    /// The claim's name.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
}

/// What is kept of a managed database when it goes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the data volume and the credentials Secret.
    #[default]
    Retain,
    /// Delete the data volume and the credentials Secret.
    Delete,
}

/// A database run outside the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// The Secret key holding the database URL.
    pub url_secret_ref: SecretKeyRef,
}

/// A key of a Secret in the region's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the Secret.
    #[serde(default = "default_url_key")]
    pub key: String,
}

/// A key of a Secret in the region's namespace holding a password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the Secret.
    #[serde(default = "default_password_key")]
    pub key: String,
}

// ------------------------------------------------------------------ config

/// The winchester configuration the region's components share.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionConfig {
    /// The distiller's event definitions (`event_definitions.yaml`); the image's
    /// defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_definitions: Option<ConfigSource>,
    /// The trigger definitions (`triggers.yaml`); the image's defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<ConfigSource>,
    /// The pipelines (`pipelines.yaml`); the image's defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<ConfigSource>,
    /// The winchester settings (`winchester.yaml`).
    #[serde(default)]
    pub winchester: WinchesterSettings,
}

/// One configuration file: inline YAML, or a key of a ConfigMap. Set exactly one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.inline) != has(self.configMapRef)").message("set exactly one of inline or configMapRef"))]
pub struct ConfigSource {
    /// The file's YAML text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// A key of a ConfigMap in the region's namespace holding the file's YAML text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// A key of a ConfigMap in the region's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Winchester's settings, as in `winchester.yaml`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WinchesterSettings {
    /// Delete streams whose pipeline succeeded instead of marking them completed
    /// (`purge_completed_streams`).
    #[serde(default = "default_true")]
    pub purge_completed_streams: bool,
    /// Delete events older than `trimEventsAge` (`trim_events`).
    #[serde(default)]
    pub trim_events: bool,
    /// How old an event must be to be trimmed, a timex expression (`trim_events_age`).
    #[serde(default = "default_trim_age")]
    pub trim_events_age: String,
    /// How often statistics are logged, in seconds (`statistics_period`).
    #[serde(default = "default_statistics_period")]
    #[schemars(range(min = 1, max = 86400))]
    pub statistics_period_seconds: i32,
}

impl Default for WinchesterSettings {
    fn default() -> Self {
        WinchesterSettings {
            purge_completed_streams: true,
            trim_events: false,
            trim_events_age: default_trim_age(),
            statistics_period_seconds: default_statistics_period(),
        }
    }
}

// ------------------------------------------------------------------ images and pods

/// The container images of the region's components.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Images {
    /// The image repository of the StackTach.v3 binaries.
    #[serde(default = "default_repository")]
    pub repository: String,
    /// The image tag (the operator's own version when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// When the kubelet pulls the image.
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// Overrides for the yagi collectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yagi: Option<ImageOverride>,
    /// Overrides for the pipeline workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_worker: Option<ImageOverride>,
    /// Overrides for the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ImageOverride>,
    /// Overrides for the schema-migration Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<ImageOverride>,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            repository: default_repository(),
            tag: None,
            pull_policy: PullPolicy::default(),
            yagi: None,
            pipeline_worker: None,
            api: None,
            migration: None,
        }
    }
}

/// A component's image settings; absent fields fall back to the region's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverride {
    /// The image repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The image tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// When the kubelet pulls the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
}

/// A container image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node does not have the image.
    #[default]
    IfNotPresent,
    /// Never pull.
    Never,
}

/// Pod settings applied to every pod the operator creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// Node labels a pod's node must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node and pod affinity and anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How pods spread over nodes and zones (see `Placement`; absent: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// The pod-level security context. The operator's default runs as non-root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Secrets used to pull the images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
}

// ------------------------------------------------------------------ status

/// The observed state of a region, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackTachRegionStatus {
    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The standard conditions: Ready, ConfigValid, DatabaseReady, Progressing,
    /// Degraded, ReconciliationPaused and BacklogAutoscaling, each with a reason and a
    /// message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Cells whose collectors are all ready, over cells in the spec (`2/3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells_ready: Option<String>,
    /// Each cell's collector replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<CellStatus>,
    /// The pipeline workers' replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_workers: Option<ReplicaStatus>,
    /// The API's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ReplicaStatus>,
    /// Where the API is reached (`http://<service>.<namespace>.svc:<port>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
    /// The image whose schema migration (`stv3 db upgrade`) last succeeded: the
    /// collectors, workers and API roll to a new image only once its migration has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_image: Option<String>,
}

/// One cell's collectors.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellStatus {
    /// The cell's name.
    pub name: String,
    /// Collector pods wanted.
    pub replicas: i32,
    /// Collector pods ready.
    pub ready_replicas: i32,
    /// The cell's own `Ready` condition: whether its collectors run, and if not why
    /// (`CredentialsSecretMissing`, `CredentialsKeyMissing`, `TlsMaterialMissing`,
    /// `CollectorsNotReady`). One
    /// cell's problem leaves the other cells running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Replica counts of a Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Pods wanted (by the autoscaler, for the pipeline workers).
    pub replicas: i32,
    /// Pods ready.
    pub ready_replicas: i32,
}

// ------------------------------------------------------------------ defaults

/// The schema of a list of objects the API server keeps as given (checked by the
/// operator).
fn any_objects(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
    })
}

/// The schema of an object the API server keeps as given (checked by the operator).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

fn default_queues() -> Vec<Queue> {
    vec![Queue {
        name: "notifications.info".into(),
        exchange: "nova".into(),
        exchange_type: ExchangeType::Topic,
        routing_key: "notifications.info".into(),
        durable: true,
        max_messages: default_max_messages(),
    }]
}
fn default_streams_per_replica() -> i32 {
    100
}
fn default_polling_interval() -> i32 {
    30
}
fn default_connection_string_key() -> String {
    "keda-connection-string".into()
}
fn default_yagi_replicas() -> i32 {
    1
}
fn default_amqp_port() -> i32 {
    5672
}
fn default_vhost() -> String {
    "/".into()
}
fn default_username_key() -> String {
    "username".into()
}
fn default_password_key() -> String {
    "password".into()
}
fn default_true() -> bool {
    true
}
fn default_max_messages() -> i32 {
    100
}
fn default_shoebox_path() -> String {
    "/var/lib/stv3/shoebox".into()
}
fn default_shoebox_roll_mb() -> i32 {
    100
}
fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    4
}
fn default_cpu_target() -> i32 {
    75
}
fn default_batch_size() -> i32 {
    1000
}
fn default_idle_delay() -> i32 {
    10
}
fn default_api_replicas() -> i32 {
    1
}
fn default_api_port() -> i32 {
    8000
}
fn default_mysql_image() -> String {
    "mysql:8.4".into()
}
fn default_storage_size() -> Quantity {
    Quantity("10Gi".into())
}
fn default_token_key() -> String {
    "token".into()
}
fn default_url_key() -> String {
    "url".into()
}
fn default_trim_age() -> String {
    "$timestamp - 14d".into()
}
fn default_statistics_period() -> i32 {
    10
}
fn default_repository() -> String {
    "ghcr.io/stacktach/stv3".into()
}
