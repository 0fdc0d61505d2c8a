//! Monitoring wiring: a headless metrics Service for the collectors and one for the
//! pipeline workers (so Prometheus, with or without its operator, finds every pod of a
//! region), and a ServiceMonitor over them and the API when the cluster runs the
//! Prometheus Operator (its `servicemonitors.monitoring.coreos.com` CRD is served; the
//! reconciler detects it as it detects KEDA). Pure.
//!
//! The ServiceMonitor keeps the pods' `stacktach.io/cell` and component labels on
//! every series (`podTargetLabels`), so alert rules can say which cell went quiet; the
//! chart's PrometheusRule (`charts/stacktach-operator/files/alerts.yaml`) relies on
//! them.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::ResourceExt;
use serde_json::json;

use crate::crd::StackTachRegion;
use crate::desired::{self, Component, CELL_LABEL};
use crate::Result;

/// The Prometheus Operator's API group.
pub const GROUP: &str = "monitoring.coreos.com";
/// The version the operator writes.
pub const VERSION: &str = "v1";
/// The CRD whose presence means the Prometheus Operator is installed.
pub const SERVICE_MONITOR_CRD: &str = "servicemonitors.monitoring.coreos.com";
/// The label every Service the ServiceMonitor scrapes carries.
pub const METRICS_LABEL: &str = "stacktach.io/metrics";
/// The collectors' metrics port (yagi-event `--metrics-listen`).
pub const YAGI_METRICS_PORT: i32 = 9102;
/// The pipeline workers' metrics port.
pub const WORKER_METRICS_PORT: i32 = 9101;

/// The ServiceMonitor's group, version and kind (for discovery).
pub fn service_monitor_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk(GROUP, VERSION, "ServiceMonitor")
}

/// The ServiceMonitor resource.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&service_monitor_gvk(), "servicemonitors")
}

/// `<region>-yagi-metrics`: every collector of every cell, and `<region>-pipeline-worker-metrics`.
pub fn metrics_service_name(region: &StackTachRegion, component: Component) -> String {
    format!("{}-{}-metrics", region.name_any(), component.as_str())
}

/// The headless metrics Services of the collectors and of the pipeline workers.
pub fn metrics_services(region: &StackTachRegion) -> Result<Vec<Service>> {
    [
        (Component::Yagi, YAGI_METRICS_PORT),
        (Component::PipelineWorker, WORKER_METRICS_PORT),
    ]
    .into_iter()
    .map(|(component, port)| {
        let mut labels = desired::labels(region, component, None);
        labels.insert(METRICS_LABEL.into(), "true".into());
        Ok(Service {
            metadata: ObjectMeta {
                name: Some(metrics_service_name(region, component)),
                namespace: region.namespace(),
                labels: Some(labels),
                owner_references: Some(vec![desired::owner_reference(region)?]),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                // Headless: Prometheus scrapes each pod, not one behind a virtual IP.
                cluster_ip: Some("None".into()),
                selector: Some(desired::selector_labels(region, component, None)),
                ports: Some(vec![ServicePort {
                    name: Some("metrics".into()),
                    port,
                    target_port: Some(IntOrString::String("metrics".into())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        })
    })
    .collect()
}

/// The region's ServiceMonitor, `<region>`: its two metrics Services (port `metrics`)
/// and the API Service (port `http`, whose `/metrics` needs no token), every 30 s.
pub fn service_monitor(region: &StackTachRegion) -> Result<DynamicObject> {
    let mut metadata_labels = desired::labels(region, Component::Config, None);
    metadata_labels.remove("app.kubernetes.io/component");
    Ok(serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "ServiceMonitor",
        "metadata": {
            "name": region.name_any(),
            "namespace": region.namespace(),
            "labels": metadata_labels,
            "ownerReferences": [desired::owner_reference(region)?],
        },
        "spec": {
            "selector": { "matchLabels": { "app.kubernetes.io/instance": region.name_any(),
                                           "app.kubernetes.io/name": "stacktach" } },
            "endpoints": [
                { "port": "metrics", "path": "/metrics", "interval": "30s" },
                { "port": "http", "path": "/metrics", "interval": "30s" },
            ],
            "podTargetLabels": [CELL_LABEL, "app.kubernetes.io/component", "app.kubernetes.io/instance"],
        },
    }))?)
}
