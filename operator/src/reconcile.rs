//! The reconciler: one `reconcile` over a region, on kube's runtime controller. It
//! resolves and validates the configuration, runs the schema migration of a new
//! version before anything rolls to it ([`crate::rollout`]), then server-side applies
//! what [`crate::desired`] and [`crate::keda`] build (under one field manager, so an
//! unchanged region writes nothing), deletes the objects of removed cells, and writes
//! the status only when it changed. A failed reconcile sets `Degraded=True` and
//! publishes a Warning Event; every reconcile is counted and timed
//! ([`crate::observe::Metrics`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config_check::{self, ConfigFiles};
use crate::crd::{ConfigSource, StackTachRegion, StackTachRegionStatus};
use crate::desired::{self, Component, DatabasePasswords, Resolved, CELL_LABEL, FIELD_MANAGER};
use crate::rollout::{self, Gate};
use crate::status::{self, types, ConditionUpdate};
use crate::{disruption, keda, monitoring, redact, Context, Error, Result};

/// How many cells are applied at once.
const CONCURRENT_APPLIES: usize = 8;

/// How often a region is looked at again when nothing happened.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How soon a region is looked at again while a cell's credentials Secret is missing.
/// The operator watches Secrets (their metadata), so one that appears wakes the region
/// at once; this is the fallback should that watch be down.
pub const RECHECK_CREDENTIALS: Duration = Duration::from_secs(60);

/// Server-side applies `obj` (forcing: the operator owns what it applies).
async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// The text of one config file: inline, or the ConfigMap key it references.
async fn resolve(ctx: &Context, ns: &str, src: &Option<ConfigSource>) -> Result<Option<String>> {
    let Some(src) = src else { return Ok(None) };
    if let Some(text) = &src.inline {
        return Ok(Some(text.clone()));
    }
    let Some(r) = &src.config_map_ref else {
        return Ok(None);
    };
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = cms
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| Error::MissingReference(format!("ConfigMap {ns}/{} not found", r.name)))?;
    cm.data
        .and_then(|mut d| d.remove(&r.key))
        .map(Some)
        .ok_or_else(|| {
            Error::MissingReference(format!("ConfigMap {ns}/{} has no key {:?}", r.name, r.key))
        })
}

async fn resolve_files(ctx: &Context, ns: &str, region: &StackTachRegion) -> Result<ConfigFiles> {
    let c = &region.spec.config;
    Ok(ConfigFiles {
        event_definitions: resolve(ctx, ns, &c.event_definitions).await?,
        triggers: resolve(ctx, ns, &c.triggers).await?,
        pipelines: resolve(ctx, ns, &c.pipelines).await?,
    })
}

/// Makes a random password (never logged).
fn password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

/// The managed database: its Secret is created once and never overwritten (its owner
/// follows `deletionPolicy`), the Service and StatefulSet are applied (the volume claim
/// template as it was created), and a larger `storageSize` expands the claim. An
/// external database: what a managed one left is pruned (the StatefulSet and Service;
/// the Secret and volume as the policy said). Returns `DatabaseReady`, and a problem
/// for `Degraded` (a volume that cannot grow) that blocks nothing else.
async fn reconcile_database(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
) -> Result<(ConditionUpdate, Option<String>)> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    let name = desired::database_name(region);
    let Some(managed) = &region.spec.database.managed else {
        prune_managed_database(ctx, ns, region).await?;
        return Ok((external_database_ready(&secrets, region).await?, None));
    };
    match secrets.get_opt(&name).await? {
        None => {
            let passwords = DatabasePasswords {
                user: password(),
                root: password(),
            };
            let secret = desired::database_secret(region, &passwords)?;
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => {}
                // Created meanwhile (another replica or an earlier attempt): keep it.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(secret) => align_secret_owner(&secrets, region, &secret).await?,
    }
    apply(ctx, ns, &desired::database_service(region)?).await?;
    let existing = statefulsets.get_opt(&name).await?;
    let wanted =
        desired::database_statefulset_over(region, existing.as_ref())?.ok_or_else(|| {
            Error::MissingReference("a managed database without a StatefulSet".into())
        })?;
    let sts = apply(ctx, ns, &wanted).await?;
    let problem = expand_volume(ctx, ns, region, &managed.storage_size).await?;
    let ready = sts.status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let update = if ready >= 1 {
        ConditionUpdate::yes(
            types::DATABASE_READY,
            "MySQLReady",
            "the managed MySQL is ready",
        )
    } else {
        ConditionUpdate::no(
            types::DATABASE_READY,
            "MySQLStarting",
            "the managed MySQL is not ready yet",
        )
    };
    Ok((update, problem))
}

/// The generated Secret's owner as `deletionPolicy` says: the region (Delete: garbage
/// collected with it) or none (Retain: it stays with the volume). A Secret made by an
/// older operator, always owned, is brought in line here.
async fn align_secret_owner(
    secrets: &Api<Secret>,
    region: &StackTachRegion,
    secret: &Secret,
) -> Result<()> {
    let uid = region.uid();
    let refs = secret.metadata.owner_references.clone().unwrap_or_default();
    let owned = refs.iter().any(|o| Some(&o.uid) == uid.as_ref());
    let want_owned = desired::deletes_database(region);
    if owned == want_owned {
        return Ok(());
    }
    let mut new_refs: Vec<_> = refs
        .into_iter()
        .filter(|o| Some(&o.uid) != uid.as_ref())
        .collect();
    if want_owned {
        new_refs.push(desired::owner_reference(region)?);
    }
    secrets
        .patch(
            &secret.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "metadata": { "ownerReferences": new_refs } })),
        )
        .await?;
    Ok(())
}

/// A larger `storageSize` than the data claim has: the claim is patched (the storage
/// driver grows the volume); refused (its StorageClass does not allow expansion), the
/// message says so and the volume keeps its size. A smaller one never gets here: the
/// CRD's schema refuses it.
async fn expand_volume(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    size: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> Result<Option<String>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let claim = desired::database_claim_name(region);
    let Some(pvc) = claims.get_opt(&claim).await? else {
        return Ok(None);
    };
    let current = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    let grows = match (&current, quantity_bytes(&size.0)) {
        (Some(c), Some(want)) => quantity_bytes(&c.0).is_some_and(|have| want > have),
        _ => false,
    };
    if !grows {
        return Ok(None);
    }
    let patch = serde_json::json!({ "spec": { "resources": { "requests": { "storage": size } } } });
    match claims
        .patch(&claim, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {
            tracing::info!(region = %region.name_any(), %claim, size = %size.0, "expanding the database volume");
            publish(
                ctx,
                region,
                EventType::Normal,
                "VolumeExpanding",
                format!("expanding PersistentVolumeClaim {claim} to {}", size.0),
            )
            .await;
            Ok(None)
        }
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => Ok(Some(format!(
            "database.managed.storageSize {} cannot be applied: PersistentVolumeClaim {claim} \
             stays {} because the API server refused to expand it ({}); use a StorageClass \
             with allowVolumeExpansion, or set storageSize back",
            size.0,
            current.map(|c| c.0).unwrap_or_default(),
            s.message
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The size of a Kubernetes quantity in bytes (`10Gi`, `500M`, `1e9`, `1024`); `None`
/// for what does not parse.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "m" => 1e-3,
        _ => return None,
    };
    Some(n * factor)
}

/// `DatabaseReady` of an external database: its URL Secret and key exist.
async fn external_database_ready(
    secrets: &Api<Secret>,
    region: &StackTachRegion,
) -> Result<ConditionUpdate> {
    let (name, key) = desired::database_url_secret(region);
    let has_key = secrets
        .get_opt(&name)
        .await?
        .and_then(|s| s.data)
        .is_some_and(|d| d.contains_key(&key));
    Ok(if has_key {
        ConditionUpdate::yes(
            types::DATABASE_READY,
            "ExternalSecretFound",
            format!("the URL is in Secret {name}"),
        )
    } else {
        ConditionUpdate::no(
            types::DATABASE_READY,
            "ExternalSecretMissing",
            format!("Secret {name} with key {key:?} not found: create it with the database URL"),
        )
    })
}

/// After a switch from a managed to an external database: the StatefulSet and its
/// Service go (the volume goes with the StatefulSet only if its retention policy, set
/// from `deletionPolicy`, says Delete), and the generated Secret goes if the region
/// owns it (Delete) and stays otherwise.
async fn prune_managed_database(ctx: &Context, ns: &str, region: &StackTachRegion) -> Result<()> {
    let name = desired::database_name(region);
    let uid = region.uid();
    let owned = |m: &kube::api::ObjectMeta| {
        m.owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref())
    };
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(sts) = statefulsets.get_opt(&name).await? {
        if owned(&sts.metadata) {
            tracing::info!(region = %region.name_any(), "the database is external now: deleting the managed MySQL");
            delete_if_present(&statefulsets, &name).await?;
            let services: Api<k8s_openapi::api::core::v1::Service> =
                Api::namespaced(ctx.client.clone(), ns);
            delete_if_present(&services, &name).await?;
        }
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(secret) = secrets.get_opt(&name).await? {
        if owned(&secret.metadata) {
            delete_if_present(&secrets, &name).await?;
        }
    }
    Ok(())
}

/// The Secrets the region's pods reference ([`desired::referenced_secrets`]) that
/// exist, by name, each read once: what the pod templates' secrets hash covers and
/// what the cells' credential checks look at.
async fn read_secrets(
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
/// Secret that does not exist or lacks a key. By cell name; cells without a problem
/// are absent.
fn cell_credential_problems(
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
                ConditionUpdate::no(types::READY, "TlsMaterialMissing", message),
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
                    "CredentialsKeyMissing",
                    format!(
                        "Secret {ns}/{} has no key {}: the collectors cannot start until it does",
                        r.name,
                        missing.join(" or ")
                    ),
                )
            }
            _ => ConditionUpdate::no(
                types::READY,
                "CredentialsSecretMissing",
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

/// Applies the PodDisruptionBudgets the region wants ([`disruption::wanted`]) and
/// deletes the ones it owns and no longer wants (turned off, a cell removed or down to
/// one replica, the database made external).
async fn reconcile_disruption_budgets(
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

/// Deletes the ConfigMaps and Deployments of cells no longer in the spec.
async fn prune_removed_cells(ctx: &Context, ns: &str, region: &StackTachRegion) -> Result<()> {
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
async fn apply_cell(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    cell: &crate::crd::Cell,
    resolved: &Resolved,
) -> Result<Deployment> {
    apply(ctx, ns, &desired::cell_config_map(region, cell)?).await?;
    apply(ctx, ns, &desired::cell_deployment(region, cell, resolved)?).await
}

/// Server-side applies an object of a kind the operator has no types for (KEDA's).
async fn apply_dynamic(
    ctx: &Context,
    ns: &str,
    ar: &ApiResource,
    obj: &DynamicObject,
) -> Result<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, ar);
    Ok(api
        .patch(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// Deletes an object, taking "not there" (404, also when its kind does not exist) as
/// done. A DELETE answered 404 writes nothing.
async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether KEDA's ScaledObject API is served (its CRD is installed).
async fn keda_installed(ctx: &Context) -> Result<bool> {
    kind_served(ctx, &keda::scaled_object_gvk()).await
}

/// Applies the metrics Services, and the ServiceMonitor when the Prometheus Operator is
/// installed and the region wants it (deleting it when the region no longer does).
/// The managed database's backup CronJob ([`crate::backup`]): applied when the region
/// asks for dumps, deleted when it no longer does (the dumps stay on their claim).
async fn reconcile_backup(ctx: &Context, ns: &str, region: &StackTachRegion) -> Result<()> {
    match crate::backup::cron_job(region)? {
        Some(c) => {
            apply(ctx, ns, &c).await?;
        }
        None => {
            let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), ns);
            delete_if_present(&api, &crate::backup::cron_job_name(region)).await?;
        }
    }
    Ok(())
}

async fn reconcile_monitoring(ctx: &Context, ns: &str, region: &StackTachRegion) -> Result<()> {
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

/// Whether the API server serves `gvk` (its CRD is installed).
async fn kind_served(ctx: &Context, gvk: &kube::api::GroupVersionKind) -> Result<bool> {
    use kube::error::DiscoveryError;
    match kube::discovery::pinned_kind(&ctx.client, gvk).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(kube::Error::Discovery(
            DiscoveryError::MissingKind(_) | DiscoveryError::MissingApiGroup(_),
        )) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The pipeline workers' autoscaler: KEDA's ScaledObject on the stream backlog when
/// asked for and installed, the CPU HorizontalPodAutoscaler otherwise (never both:
/// two autoscalers on one Deployment fight).
async fn reconcile_autoscaling(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    st: &mut StackTachRegionStatus,
    now: &Time,
) -> Result<()> {
    let generation = region.metadata.generation;
    let set = |st: &mut StackTachRegionStatus, u: ConditionUpdate| {
        status::set_condition(&mut st.conditions, u, generation, now)
    };
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), ns);
    let Some(backlog) = keda::backlog(region) else {
        apply(ctx, ns, &desired::pipeline_worker_hpa(region)?).await?;
        let had_keda = st
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
        status::remove_condition(&mut st.conditions, types::BACKLOG_AUTOSCALING);
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
        set(
            st,
            ConditionUpdate::yes(
                types::BACKLOG_AUTOSCALING,
                "KedaScaledObject",
                format!(
                    "KEDA scales the pipeline workers on streams ready to fire \
                     (ScaledObject {})",
                    keda::object_name(region)
                ),
            ),
        );
    } else {
        apply(ctx, ns, &desired::pipeline_worker_hpa(region)?).await?;
        set(
            st,
            ConditionUpdate::no(
                types::BACKLOG_AUTOSCALING,
                "KedaAbsent",
                format!(
                    "pipelineWorkers.autoscaling.backlog is set but KEDA is not installed \
                     (no {} CRD): the CPU HorizontalPodAutoscaler scales the workers",
                    keda::SCALED_OBJECT_CRD
                ),
            ),
        );
    }
    Ok(())
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

/// Publishes an Event about the region. The note goes through [`redact`]: an Event
/// never carries a credential.
async fn publish(
    ctx: &Context,
    region: &StackTachRegion,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(redact(&note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &region.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}

/// Writes the status when it differs from what the region has.
async fn write_status(
    ctx: &Context,
    ns: &str,
    region: &StackTachRegion,
    status: StackTachRegionStatus,
) -> Result<()> {
    ctx.metrics.set_region(ns, &region.name_any(), &status);
    if region.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<StackTachRegion> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .patch_status(
            &region.name_any(),
            &PatchParams::default(),
            &Patch::Merge(status::status_patch(&status)),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: there is no status to write.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Brings one region's owned objects and status in line with its spec; counts and
/// times it, and on failure marks the region `Degraded` and publishes a Warning Event.
pub async fn reconcile(region: Arc<StackTachRegion>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let result = reconcile_region(&region, &ctx).await;
    ctx.metrics.record(
        start.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    if let Err(e) = &result {
        report_failure(&ctx, &region, e).await;
    }
    result
}

/// `Degraded=True` with the error's reason, and a Warning Event, for a failed
/// reconcile. Best effort: the API server may be what failed.
async fn report_failure(ctx: &Context, region: &StackTachRegion, error: &Error) {
    let Some(ns) = region.namespace() else { return };
    let message = redact(&error.to_string());
    let mut st = region.status.clone().unwrap_or_default();
    status::set_condition(
        &mut st.conditions,
        ConditionUpdate::yes(types::DEGRADED, error.reason(), message.clone()),
        region.metadata.generation,
        &Time(Timestamp::now()),
    );
    if let Err(e) = write_status(ctx, &ns, region, st).await {
        tracing::warn!(region = %region.name_any(), error = %e, "could not mark the region Degraded");
    }
    publish(ctx, region, EventType::Warning, error.reason(), message).await;
}

async fn reconcile_region(region: &StackTachRegion, ctx: &Context) -> Result<Action> {
    let ns = region
        .namespace()
        .ok_or_else(|| Error::MissingReference("a StackTachRegion must be namespaced".into()))?;
    if region.metadata.deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes what it owned.
        ctx.metrics.forget_region(&ns, &region.name_any());
        return Ok(Action::await_change());
    }
    let generation = region.metadata.generation;
    let now = Time(Timestamp::now());
    let mut st = region.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    let set = |st: &mut StackTachRegionStatus, u: ConditionUpdate| {
        status::set_condition(&mut st.conditions, u, generation, &now)
    };

    if status::is_paused(region) {
        set(
            &mut st,
            ConditionUpdate::yes(
                types::RECONCILIATION_PAUSED,
                "AnnotationSet",
                format!(
                    "{} is \"true\": nothing is changed until it is removed",
                    status::PAUSE_ANNOTATION
                ),
            ),
        );
        write_status(ctx, &ns, region, st).await?;
        return Ok(Action::await_change());
    }
    status::remove_condition(&mut st.conditions, types::RECONCILIATION_PAUSED);

    // The configuration first: an invalid one changes nothing that runs.
    let checked = match resolve_files(ctx, &ns, region).await {
        Ok(files) => config_check::check(&files)
            .map(|warnings| (files, warnings))
            .map_err(Error::from),
        Err(e) => Err(e),
    };
    let files = match checked {
        Ok((files, warnings)) => {
            let reason = if warnings.is_empty() {
                "Parsed"
            } else {
                "ParsedWithWarnings"
            };
            set(
                &mut st,
                ConditionUpdate::yes(
                    types::CONFIG_VALID,
                    reason,
                    redact(&config_check::valid_message(&warnings)),
                ),
            );
            files
        }
        Err(e @ (Error::InvalidConfig(_) | Error::MissingReference(_))) => {
            let reason = e.reason();
            let message = match &e {
                Error::InvalidConfig(p) => redact(&p.to_string()),
                _ => redact(&e.to_string()),
            };
            let already = st.conditions.iter().any(|c| {
                c.type_ == types::CONFIG_VALID && c.status == "False" && c.message == message
            });
            set(
                &mut st,
                ConditionUpdate::no(types::CONFIG_VALID, reason, message.clone()),
            );
            set(
                &mut st,
                ConditionUpdate::no(
                    types::READY,
                    reason,
                    "the configuration is invalid; the running configuration stays in place",
                ),
            );
            set(
                &mut st,
                ConditionUpdate::yes(types::DEGRADED, reason, message.clone()),
            );
            if !already {
                publish(ctx, region, EventType::Warning, reason, message).await;
            }
            write_status(ctx, &ns, region, st).await?;
            return Ok(Action::requeue(RESYNC));
        }
        Err(e) => return Err(e),
    };

    let (db, storage_problem) = reconcile_database(ctx, &ns, region).await?;
    let db_ready = db.status;
    set(&mut st, db);

    // A new version migrates the schema before anything rolls to it.
    let wanted = desired::migration_image(region);
    let job = desired::migration_job(region)?;
    let job_name = job.name_any();
    let gate = if rollout::needs_migration(st.migrated_image.as_deref(), &wanted) {
        let applied = apply(ctx, &ns, &job).await?;
        let gate = Gate::from_job(&job_name, &rollout::job_state(&applied));
        if gate.is_open() {
            tracing::info!(region = %region.name_any(), image = %wanted, "schema migrated");
            st.migrated_image = Some(wanted);
        }
        gate
    } else {
        Gate::Open
    };
    prune_old_migration_jobs(ctx, &ns, region, &job_name).await?;

    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets = read_secrets(ctx, &ns, region).await?;
    let ca_bundles = crate::broker_tls::read_ca_config_maps(
        &Api::namespaced(ctx.client.clone(), &ns),
        &region.spec.cells,
    )
    .await?;
    let mut cell_deployments = Vec::new();
    let (workers, api) = if gate.is_open() {
        let resolved = Resolved {
            region_config: desired::region_config_data(region, &files),
            secrets: secrets.clone(),
            ca_bundles: ca_bundles.clone(),
        };
        apply(ctx, &ns, &desired::region_config_map(region, &files)?).await?;
        // Cells are independent: apply them a few at a time (a 100-cell region is
        // 200 applies; one after the other they take seconds).
        let ns = ns.as_str();
        let resolved = &resolved;
        let applies: Vec<_> = region
            .spec
            .cells
            .iter()
            .map(|cell| apply_cell(ctx, ns, region, cell, resolved))
            .collect();
        cell_deployments = futures::stream::iter(applies)
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
        (Some(workers), Some(api))
    } else {
        // Migrating: what runs stays exactly as it is; only read it for the status.
        for cell in &region.spec.cells {
            if let Some(d) = deploys
                .get_opt(&desired::yagi_name(region, &cell.name))
                .await?
            {
                cell_deployments.push(d);
            }
        }
        (
            deploys
                .get_opt(&desired::pipeline_worker_name(region))
                .await?,
            deploys.get_opt(&desired::api_name(region)).await?,
        )
    };
    reconcile_autoscaling(ctx, &ns, region, &mut st, &now).await?;
    apply(ctx, &ns, &desired::api_service(region)?).await?;
    prune_removed_cells(ctx, &ns, region).await?;
    reconcile_disruption_budgets(ctx, &ns, region).await?;
    reconcile_monitoring(ctx, &ns, region).await?;
    reconcile_backup(ctx, &ns, region).await?;

    let problems = cell_credential_problems(&ns, region, &secrets, &ca_bundles);
    let previous_cells = std::mem::take(&mut st.cells);
    let (cells, summary) =
        status::cell_statuses(region, &cell_deployments, &problems, &previous_cells, &now);
    // A cell is ready when its own condition says so: replicas ready, rolled out, and
    // nothing (such as a missing Secret) wrong with it.
    let cells_ready = cells.iter().all(status::cell_ready);
    let cell_problems = status::cell_problems(&cells);
    let api_status = api.as_ref().map(status::replica_status).unwrap_or_default();
    let api_ready = api_status.ready_replicas >= region.spec.api.replicas
        && api.as_ref().is_some_and(status::rolled_out);
    let workers_ready = workers.as_ref().is_some_and(status::rolled_out);
    st.cells = cells;
    st.cells_ready = Some(summary.clone());
    st.pipeline_workers = Some(
        workers
            .as_ref()
            .map(status::replica_status)
            .unwrap_or_default(),
    );
    // Wanted replicas from the spec (not the live count, which a rolling update's
    // surge pod inflates), ready ones from the Deployment.
    st.api = api.as_ref().map(|d| crate::crd::ReplicaStatus {
        replicas: region.spec.api.replicas,
        ready_replicas: status::replica_status(d).ready_replicas,
    });
    st.api_endpoint = Some(desired::api_endpoint(region));
    let ready = cells_ready && api_ready && db_ready && workers_ready;
    let mut message = format!(
        "cells ready {summary}, API ready: {api_ready}, pipeline workers ready: {workers_ready}, \
         database ready: {db_ready}"
    );
    for p in &cell_problems {
        message.push_str("; ");
        message.push_str(p);
    }
    if ready {
        set(
            &mut st,
            ConditionUpdate::yes(types::READY, "AllReady", "every component is ready"),
        );
    } else {
        set(
            &mut st,
            ConditionUpdate::no(types::READY, "ComponentsNotReady", message.clone()),
        );
    }
    if gate.is_open() {
        if ready {
            set(
                &mut st,
                ConditionUpdate::no(
                    types::PROGRESSING,
                    "RolledOut",
                    "every component runs the current spec",
                ),
            );
        } else {
            set(
                &mut st,
                ConditionUpdate::yes(types::PROGRESSING, "WaitingForPods", message),
            );
        }
        // What is wrong but blocks nothing else: cells without their credentials, a
        // volume that cannot grow.
        let reason = if cell_problems.is_empty() {
            "VolumeNotExpanded"
        } else {
            "CellCredentials"
        };
        let mut problems_found = cell_problems.clone();
        problems_found.extend(storage_problem);
        if problems_found.is_empty() {
            set(
                &mut st,
                ConditionUpdate::no(types::DEGRADED, "AsExpected", "no reconcile error"),
            );
        } else {
            let message = problems_found.join("; ");
            let already = st
                .conditions
                .iter()
                .any(|c| c.type_ == types::DEGRADED && c.status == "True" && c.message == message);
            if !already {
                publish(ctx, region, EventType::Warning, reason, message.clone()).await;
            }
            set(
                &mut st,
                ConditionUpdate::yes(types::DEGRADED, reason, message),
            );
        }
    } else {
        if let Gate::Failed { job, reason } = &gate {
            let already = st
                .conditions
                .iter()
                .any(|c| c.type_ == types::DEGRADED && c.reason == "MigrationFailed");
            if !already {
                publish(
                    ctx,
                    region,
                    EventType::Warning,
                    "MigrationFailed",
                    format!("schema migration Job {job} failed: {reason}"),
                )
                .await;
            }
        }
        for u in gate.conditions() {
            set(&mut st, u);
        }
    }
    for h in status::happenings(region.status.as_ref(), &st) {
        publish(ctx, region, EventType::Normal, h.reason, h.note).await;
    }
    write_status(ctx, &ns, region, st).await?;
    Ok(Action::requeue(if problems.is_empty() {
        RESYNC
    } else {
        RECHECK_CREDENTIALS
    }))
}

/// Retries a failed reconcile after a pause.
pub fn error_policy(region: Arc<StackTachRegion>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(region = %region.name_any(), error = %redact(&error.to_string()), kind = error.metric_label(), "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}
