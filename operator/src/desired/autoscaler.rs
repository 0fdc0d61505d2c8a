//! The pipeline workers' CPU HorizontalPodAutoscaler (KEDA's ScaledObject, when the
//! region scales on the backlog, is built in [`crate::keda`]).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::{metadata, pipeline_worker_name, Component};
use crate::crd::StackTachRegion;
use crate::Result;

/// `<region>-pipeline-worker` autoscaling/v2 HorizontalPodAutoscaler on CPU.
pub fn pipeline_worker_hpa(region: &StackTachRegion) -> Result<HorizontalPodAutoscaler> {
    let p = &region.spec.pipeline_workers;
    Ok(HorizontalPodAutoscaler {
        metadata: metadata(
            region,
            pipeline_worker_name(region),
            Component::PipelineWorker,
            None,
        )?,
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: pipeline_worker_name(region),
            },
            min_replicas: Some(p.min_replicas),
            max_replicas: p.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(p.target_cpu_utilization_percentage),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    })
}
