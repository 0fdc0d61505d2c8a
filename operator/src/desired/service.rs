//! The Services: the API's, and the managed database's headless one.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{api_name, database_name, metadata, selector_labels, Component, MYSQL_PORT};
use crate::crd::{ServiceType, StackTachRegion};
use crate::Result;

/// A port `name` forwarding to the pods' port of the same name.
fn named_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        ..Default::default()
    }
}

/// The Service type as the API spells it.
fn service_type(t: ServiceType) -> String {
    match t {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    }
    .into()
}

/// `<region>-api` Service.
pub fn api_service(region: &StackTachRegion) -> Result<Service> {
    Ok(Service {
        metadata: metadata(region, api_name(region), Component::Api, None)?,
        spec: Some(ServiceSpec {
            type_: Some(service_type(region.spec.api.service_type)),
            selector: Some(selector_labels(region, Component::Api, None)),
            ports: Some(vec![named_port("http", region.spec.api.port)]),
            ..Default::default()
        }),
        ..Default::default()
    })
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

/// `<region>-db` headless Service: the StatefulSet's stable network identity.
pub fn database_service(region: &StackTachRegion) -> Result<Service> {
    Ok(Service {
        metadata: metadata(region, database_name(region), Component::Database, None)?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector_labels(region, Component::Database, None)),
            ports: Some(vec![named_port("mysql", MYSQL_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    })
}
