//! The schema migration of a new version ([`crate::rollout`]): its Job, the gate
//! that holds every rollout until it succeeded, and the Jobs of earlier versions.

use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::{apply, delete_if_present};
use crate::crd::{StackTachRegion, StackTachRegionStatus};
use crate::desired::{self, Component};
use crate::rollout::{self, Gate};
use crate::{Context, Result};

/// Runs the schema migration when the region's version changed (recording the
/// migrated image once it succeeded) and returns the gate the rollout waits on;
/// deletes the migration Jobs of earlier versions.
pub(super) async fn migrate(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    st: &mut StackTachRegionStatus,
) -> Result<Gate> {
    let wanted = desired::migration_image(region);
    let job = desired::migration_job(region)?;
    let job_name = job.name_any();
    let gate = if rollout::needs_migration(st.migrated_image.as_deref(), &wanted) {
        let applied = apply(ctx, ns, &job).await?;
        let gate = Gate::from_job(&job_name, &rollout::job_state(&applied));
        if gate.is_open() {
            tracing::info!(region = %region.name_any(), image = %wanted, "schema migrated");
            st.migrated_image = Some(wanted);
        }
        gate
    } else {
        Gate::Open
    };
    prune_old_migration_jobs(ctx, ns, region, &job_name).await?;
    Ok(gate)
}

/// Deletes the region's migration Jobs other than `current` (those of earlier versions
/// or pod settings; a finished one also goes by its `ttlSecondsAfterFinished`).
async fn prune_old_migration_jobs(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    current: &str,
) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/component={}",
        region.name_any(),
        Component::Migration.as_str()
    );
    let uid = region.uid();
    for job in jobs.list(&ListParams::default().labels(&selector)).await? {
        let owned = job
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref());
        let name = job.name_any();
        if owned && name != current && job.metadata.deletion_timestamp.is_none() {
            tracing::info!(region = %region.name_any(), job = %name, "deleting an old migration Job");
            delete_if_present(&jobs, &name).await?;
        }
    }
    Ok(())
}
