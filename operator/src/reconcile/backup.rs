//! The managed database's backup CronJob ([`crate::desired::backup_cron_job`]).

use k8s_openapi::api::batch::v1::CronJob;
use kube::Api;

use super::{apply, delete_if_present};
use crate::crd::StackTachRegion;
use crate::desired;
use crate::{Context, Result};

/// Applies the CronJob when the region asks for dumps and deletes it when it no longer
/// does (the dumps stay on their claim, which is the user's).
pub(super) async fn reconcile_backup(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<()> {
    match desired::backup_cron_job(region)? {
        Some(c) => {
            apply(ctx, ns, &c).await?;
        }
        None => {
            let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), ns);
            delete_if_present(&api, &desired::backup_cron_job_name(region)).await?;
        }
    }
    Ok(())
}
