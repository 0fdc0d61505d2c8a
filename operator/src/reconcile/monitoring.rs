//! The metrics Services and the Prometheus Operator's ServiceMonitor
//! ([`crate::monitoring`]).

use kube::api::DynamicObject;
use kube::{Api, ResourceExt};

use super::{apply, apply_dynamic, delete_if_present, kind_served};
use crate::crd::StackTachRegion;
use crate::monitoring;
use crate::{Context, Result};

/// Applies the metrics Services, and the ServiceMonitor when the Prometheus Operator is
/// installed and the region wants it (deleting it when the region no longer does).
pub(super) async fn reconcile_monitoring(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<()> {
    for svc in monitoring::metrics_services(region)? {
        apply(ctx, ns, &svc).await?;
    }
    if !kind_served(ctx, &monitoring::service_monitor_gvk()).await? {
        return Ok(());
    }
    let ar = monitoring::service_monitor_resource();
    if region.spec.monitoring.service_monitor {
        apply_dynamic(ctx, ns, &ar, &monitoring::service_monitor(region)?).await?;
    } else {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
        delete_if_present(&api, &region.name_any()).await?;
    }
    Ok(())
}
