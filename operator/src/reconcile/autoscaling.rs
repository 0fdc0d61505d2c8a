//! The pipeline workers' autoscaler: KEDA on the stream backlog, or the CPU
//! HorizontalPodAutoscaler, and the `BacklogAutoscaling` condition.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::DynamicObject;
use kube::Api;

use super::report::Draft;
use super::{apply, apply_dynamic, delete_if_present, kind_served};
use crate::crd::StackTachRegion;
use crate::desired;
use crate::keda;
use crate::status::{types, ConditionUpdate, Reason};
use crate::{Context, Result};

/// Whether KEDA's ScaledObject API is served (its CRD is installed).
async fn keda_installed(ctx: &Context) -> Result<bool> {
    kind_served(ctx, &keda::scaled_object_gvk()).await
}

/// The pipeline workers' autoscaler: KEDA's ScaledObject on the stream backlog when
/// asked for and installed, the CPU HorizontalPodAutoscaler otherwise (never both:
/// two autoscalers on one Deployment fight).
pub(super) async fn reconcile_autoscaling(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    draft: &mut Draft,
) -> Result<()> {
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), ns);
    let Some(backlog) = keda::backlog(region) else {
        apply(ctx, ns, &desired::pipeline_worker_hpa(region)?).await?;
        let had_keda = draft
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == types::BACKLOG_AUTOSCALING && c.status == "True");
        if had_keda {
            // Backlog scaling was turned off: the ScaledObject goes, the HPA is back.
            let name = keda::object_name(region);
            for ar in [
                keda::scaled_object_resource(),
                keda::trigger_authentication_resource(),
            ] {
                let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
                delete_if_present(&api, &name).await?;
            }
        }
        draft.remove(types::BACKLOG_AUTOSCALING);
        return Ok(());
    };
    if keda_installed(ctx).await? {
        apply_dynamic(
            ctx,
            ns,
            &keda::trigger_authentication_resource(),
            &keda::trigger_authentication(region, backlog)?,
        )
        .await?;
        apply_dynamic(
            ctx,
            ns,
            &keda::scaled_object_resource(),
            &keda::scaled_object(region, backlog)?,
        )
        .await?;
        delete_if_present(&hpas, &desired::pipeline_worker_name(region)).await?;
        draft.set(ConditionUpdate::yes(
            types::BACKLOG_AUTOSCALING,
            Reason::KedaScaledObject,
            format!(
                "KEDA scales the pipeline workers on streams ready to fire \
                     (ScaledObject {})",
                keda::object_name(region)
            ),
        ));
    } else {
        apply(ctx, ns, &desired::pipeline_worker_hpa(region)?).await?;
        draft.set(ConditionUpdate::no(
            types::BACKLOG_AUTOSCALING,
            Reason::KedaAbsent,
            format!(
                "pipelineWorkers.autoscaling.backlog is set but KEDA is not installed \
                     (no {} CRD): the CPU HorizontalPodAutoscaler scales the workers",
                keda::SCALED_OBJECT_CRD
            ),
        ));
    }
    Ok(())
}
