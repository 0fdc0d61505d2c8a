//! The Deployments that run the region: the region's ConfigMap, the cells' collectors,
//! the pipeline workers and the API, applied; or, while a migration holds the rollout,
//! read as they are.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::cells::apply_cell;
use super::{apply, CONCURRENT_APPLIES};
use crate::config_check::ConfigFiles;
use crate::crd::StackTachRegion;
use crate::desired::{self, Resolved};
use crate::{Context, Result};

/// The region's Deployments as the API server has them, for the status.
pub(super) struct Running {
    /// The cells' collector Deployments that exist.
    pub cells: Vec<Deployment>,
    /// The pipeline workers' Deployment.
    pub workers: Option<Deployment>,
    /// The API's Deployment.
    pub api: Option<Deployment>,
}

/// Applies the region's ConfigMap and every Deployment, with the config files and the
/// Secrets read (their hashes roll exactly the pods that read what changed).
pub(super) async fn apply_workloads(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    files: &ConfigFiles,
    secrets: &BTreeMap<String, Secret>,
    ca_bundles: &BTreeMap<String, String>,
) -> Result<Running> {
    let resolved = Resolved {
        region_config: desired::region_config_data(region, files),
        secrets: secrets.clone(),
        ca_bundles: ca_bundles.clone(),
    };
    apply(ctx, ns, &desired::region_config_map(region, files)?).await?;
    // Cells are independent: apply them a few at a time (a 100-cell region is
    // 200 applies; one after the other they take seconds).
    let resolved = &resolved;
    let applies: Vec<_> = region
        .spec
        .cells
        .iter()
        .map(|cell| apply_cell(ctx, ns, region, cell, resolved))
        .collect();
    let cells = futures::stream::iter(applies)
        .buffered(CONCURRENT_APPLIES)
        .try_collect()
        .await?;
    let workers = apply(
        ctx,
        ns,
        &desired::pipeline_worker_deployment(region, resolved)?,
    )
    .await?;
    let api = apply(ctx, ns, &desired::api_deployment(region, resolved)?).await?;
    Ok(Running {
        cells,
        workers: Some(workers),
        api: Some(api),
    })
}

/// Reads the region's Deployments without changing them: while migrating, what runs
/// stays exactly as it is.
pub(super) async fn read_workloads(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<Running> {
    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let mut cells = Vec::new();
    for cell in &region.spec.cells {
        if let Some(d) = deploys
            .get_opt(&desired::yagi_name(region, &cell.name))
            .await?
        {
            cells.push(d);
        }
    }
    Ok(Running {
        cells,
        workers: deploys
            .get_opt(&desired::pipeline_worker_name(region))
            .await?,
        api: deploys.get_opt(&desired::api_name(region)).await?,
    })
}
