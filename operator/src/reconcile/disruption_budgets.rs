//! The PodDisruptionBudgets the region wants ([`crate::disruption`]).

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::{apply, delete_if_present};
use crate::crd::StackTachRegion;
use crate::desired::FIELD_MANAGER;
use crate::disruption;
use crate::{Context, Result};

/// Applies the PodDisruptionBudgets the region wants ([`disruption::wanted`]) and
/// deletes the ones it owns and no longer wants (turned off, a cell removed or down to
/// one replica, the database made external).
pub(super) async fn reconcile_disruption_budgets(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<()> {
    let wanted = disruption::wanted(region);
    for w in &wanted {
        apply(ctx, ns, &disruption::pod_disruption_budget(region, w)?).await?;
    }
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={FIELD_MANAGER}",
        region.name_any()
    );
    let uid = region.uid();
    for pdb in api.list(&ListParams::default().labels(&selector)).await? {
        let owned = pdb
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref());
        let name = pdb.name_any();
        if owned && !wanted.iter().any(|w| w.name == name) {
            tracing::info!(region = %region.name_any(), pdb = %name, "deleting a PodDisruptionBudget no longer wanted");
            delete_if_present(&api, &name).await?;
        }
    }
    Ok(())
}
