//! The cells: their credentials Secrets read and checked, their ConfigMaps and
//! Deployments applied, and the objects of removed cells deleted.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};

use super::{apply, CONCURRENT_APPLIES};
use crate::crd::StackTachRegion;
use crate::desired::{self, Component, Resolved, CELL_LABEL};
use crate::status::{self, types, ConditionUpdate, Reason};
use crate::{Context, Error, Result};

/// The Secrets the region's pods reference ([`desired::referenced_secrets`]) that
/// exist, by name, each read once: what the pod templates' secrets hash covers and
/// what the cells' credential checks look at.
pub(super) async fn read_secrets(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<BTreeMap<String, Secret>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let reads: Vec<_> = desired::referenced_secrets(region)
        .into_iter()
        .map(|name| {
            let secrets = secrets.clone();
            async move {
                let secret = secrets.get_opt(&name).await?;
                Ok::<_, Error>(secret.map(|s| (name, s)))
            }
        })
        .collect();
    let found: Vec<Option<(String, Secret)>> = futures::stream::iter(reads)
        .buffered(CONCURRENT_APPLIES)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// What keeps cells from running that their Deployments do not show: a credentials
/// Secret that does not exist or lacks a key, or a TLS cell's CA bundle or client
/// certificate missing. By cell name; cells without a problem
/// are absent.
pub(super) fn cell_credential_problems(
    ns: &str,
    region: &StackTachRegion,
    found: &BTreeMap<String, Secret>,
    ca_bundles: &BTreeMap<String, String>,
) -> BTreeMap<String, ConditionUpdate> {
    let mut problems = BTreeMap::new();
    for cell in &region.spec.cells {
        if let Some(message) = crate::broker_tls::missing_material(ns, cell, found, ca_bundles) {
            problems.insert(
                cell.name.clone(),
                ConditionUpdate::no(types::READY, Reason::TlsMaterialMissing, message),
            );
            continue;
        }
        let r = &cell.rabbitmq.credentials_secret_ref;
        let update = match found.get(&r.name) {
            Some(secret) => {
                let has = |key: &str| {
                    secret.data.as_ref().is_some_and(|d| d.contains_key(key))
                        || secret
                            .string_data
                            .as_ref()
                            .is_some_and(|d| d.contains_key(key))
                };
                let missing: Vec<&str> = [r.username_key.as_str(), r.password_key.as_str()]
                    .into_iter()
                    .filter(|k| !has(k))
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                ConditionUpdate::no(
                    types::READY,
                    Reason::CredentialsKeyMissing,
                    format!(
                        "Secret {ns}/{} has no key {}: the collectors cannot start until it does",
                        r.name,
                        missing.join(" or ")
                    ),
                )
            }
            _ => ConditionUpdate::no(
                types::READY,
                Reason::CredentialsSecretMissing,
                format!(
                    "Secret {ns}/{} (keys {} and {}) not found: create it with the cell's \
                     RabbitMQ user and password; the collectors start once it exists",
                    r.name, r.username_key, r.password_key
                ),
            ),
        };
        problems.insert(cell.name.clone(), update);
    }
    problems
}

/// Deletes the ConfigMaps and Deployments of cells no longer in the spec.
pub(super) async fn prune_removed_cells(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<()> {
    let selector = format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/component={}",
        region.name_any(),
        Component::Yagi.as_str()
    );
    let lp = ListParams::default().labels(&selector);
    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let uid = region.uid();
    let owned = |meta: &kube::api::ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref())
    };
    let cell_of = |meta: &kube::api::ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(CELL_LABEL))
            .cloned()
    };
    let deployments: Vec<_> = deploys.list(&lp).await?.items;
    let configmaps: Vec<_> = cms.list(&lp).await?.items;
    let found: BTreeSet<String> = deployments
        .iter()
        .map(|d| &d.metadata)
        .chain(configmaps.iter().map(|c| &c.metadata))
        .filter(|m| owned(m))
        .filter_map(cell_of)
        .collect();
    for cell in status::removed_cells(region, found.iter().map(String::as_str)) {
        let name = desired::yagi_name(region, &cell);
        tracing::info!(region = %region.name_any(), %cell, "deleting a removed cell's objects");
        for result in [
            deploys
                .delete(&name, &DeleteParams::background())
                .await
                .map(|_| ()),
            cms.delete(&name, &DeleteParams::background())
                .await
                .map(|_| ()),
        ] {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Applies one cell's ConfigMap, then its Deployment.
pub(super) async fn apply_cell(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    cell: &crate::crd::Cell,
    resolved: &Resolved,
) -> Result<Deployment> {
    apply(ctx, ns, &desired::cell_config_map(region, cell)?).await?;
    apply(ctx, ns, &desired::cell_deployment(region, cell, resolved)?).await
}
