//! What the region's pods and containers share: the pod-level settings (the region's
//! `spec.pod`, a component's `placement`, the default spread and security context),
//! container resources and security context, probes, volumes, the rolling update, and
//! environment variables from Secret keys.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{database_url_secret, Component, ENV_DATABASE_URL};
use crate::crd::{Placement, PullPolicy, StackTachRegion};
use crate::{Error, Result};

/// The pod-level settings of a component's pods: the region's `spec.pod`, each
/// scheduling field replaced by the component's `placement` when it gives one, and a
/// non-root security context when the region sets none. `spread` is the selector of a
/// Deployment's pods, which spread by node and zone unless told otherwise.
///
/// `placement` comes with its field path, named in the error when its affinity is not
/// one (the CRD's schema leaves that field unchecked).
pub(super) fn pod_settings(
    region: &StackTachRegion,
    placement: Option<(&Placement, &str)>,
    spread: Option<&BTreeMap<String, String>>,
) -> Result<PodSpec> {
    let pod = &region.spec.pod;
    let none = Placement::default();
    let own = placement.map_or(&none, |(p, _)| p);
    let affinity = match (&own.affinity, placement) {
        (Some(v), Some((_, path))) => {
            Some(serde_json::from_value::<Affinity>(v.clone()).map_err(|e| {
                Error::InvalidSpec(format!("{path}.affinity is not a pod affinity: {e}"))
            })?)
        }
        _ => pod.affinity.clone(),
    };
    let own_spread = match (&own.topology_spread_constraints, placement) {
        (Some(v), Some((_, path))) => Some(
            serde_json::from_value::<Vec<TopologySpreadConstraint>>(serde_json::json!(v)).map_err(
                |e| {
                    Error::InvalidSpec(format!(
                        "{path}.topologySpreadConstraints is not a list of topology spread \
                         constraints: {e}"
                    ))
                },
            )?,
        ),
        _ => None,
    };
    let topology_spread_constraints = own_spread
        .or_else(|| pod.topology_spread_constraints.clone())
        .or_else(|| spread.map(default_spread));
    Ok(PodSpec {
        node_selector: own
            .node_selector
            .as_ref()
            .or(pod.node_selector.as_ref())
            .cloned(),
        tolerations: own
            .tolerations
            .as_ref()
            .or(pod.tolerations.as_ref())
            .cloned(),
        affinity,
        topology_spread_constraints,
        image_pull_secrets: pod.image_pull_secrets.clone(),
        security_context: Some(
            pod.security_context
                .clone()
                .unwrap_or_else(default_pod_security_context),
        ),
        ..Default::default()
    })
}

/// Non-root with the runtime's default seccomp profile: what the restricted Pod
/// Security Standard asks, for a region that sets no security context.
fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

/// The container runtime's default seccomp profile.
pub(super) fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// Spread a Deployment's pods one apart across nodes and across zones, as a preference
/// (`ScheduleAnyway`: a one-node or one-zone cluster still runs them all). Only pods of
/// the same revision count (`pod-template-hash`), so a rollout does not skew it.
fn default_spread(selector: &BTreeMap<String, String>) -> Vec<TopologySpreadConstraint> {
    let constraint = |key: &str| TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector.clone()),
            ..Default::default()
        }),
        match_label_keys: Some(vec!["pod-template-hash".into()]),
        ..Default::default()
    };
    vec![
        constraint("kubernetes.io/hostname"),
        constraint("topology.kubernetes.io/zone"),
    ]
}

/// A container's `resources`: what the region gives, else `component`'s default
/// requests (no limits: a default limit would throttle or kill a busy collector).
pub(super) fn resources(
    given: Option<&ResourceRequirements>,
    component: Component,
) -> ResourceRequirements {
    match (given, component.default_requests()) {
        (Some(r), _) => r.clone(),
        (None, Some((cpu, memory))) => ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(cpu.into())),
                ("memory".to_string(), Quantity(memory.into())),
            ])),
            ..Default::default()
        },
        (None, None) => ResourceRequirements::default(),
    }
}

/// The StackTach containers' security context: no privilege escalation, a read-only
/// root filesystem, no capabilities.
pub(super) fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(drop_all_capabilities()),
        ..Default::default()
    }
}

/// Every Linux capability dropped.
pub(super) fn drop_all_capabilities() -> Capabilities {
    Capabilities {
        drop: Some(vec!["ALL".into()]),
        ..Default::default()
    }
}

/// How the collectors, workers and API roll (a new config, image or credential): a
/// new pod is ready before an old one goes (`maxUnavailable: 0`), up to a quarter more
/// pods at a time. A collector never stops consuming during a roll, and an API with
/// one replica keeps serving.
pub(super) fn rolling_update() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::String("25%".into())),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    }
}

/// The pull policy as the API spells it.
pub(super) fn pull_policy(p: PullPolicy) -> String {
    match p {
        PullPolicy::Always => "Always",
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Never => "Never",
    }
    .into()
}

/// The environment variable `env` from key `key` of Secret `secret`.
pub(super) fn secret_env(env: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: env.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The environment variable `env` set to `value`.
pub(super) fn literal_env(env: &str, value: &str) -> EnvVar {
    EnvVar {
        name: env.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// [`ENV_DATABASE_URL`] from the database URL's Secret key.
pub(super) fn database_url_env(region: &StackTachRegion) -> EnvVar {
    let (name, key) = database_url_secret(region);
    secret_env(ENV_DATABASE_URL, &name, &key)
}

/// A named container port.
pub(super) fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..Default::default()
    }
}

/// An HTTP GET probe of `path` on the named port, every `period` seconds.
pub(super) fn http_probe(path: &str, port: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

/// A volume of ConfigMap `config_map`.
pub(super) fn config_map_volume(name: &str, config_map: String) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Volume `name` mounted at `path`, read-only when `read_only`.
pub(super) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}
