//! The reconciler: one `reconcile` over a region, on kube's runtime controller. It
//! resolves and validates the configuration, runs the schema migration of a new
//! version before anything rolls to it ([`crate::rollout`]), then server-side applies
//! what [`crate::desired`] and [`crate::keda`] build (under one field manager, so an
//! unchanged region writes nothing), deletes the objects of removed cells, and writes
//! the status only when it changed. A failed reconcile sets `Degraded=True` and
//! publishes a Warning Event; every reconcile is counted and timed
//! ([`crate::observe::Metrics`]).
//!
//! `reconcile_region` is the list of steps, in order; each step lives in the module
//! named for it and sets the conditions it decides on the status draft (`report.rs`).

mod autoscaling;
mod backup;
mod cells;
mod config;
mod database;
mod disruption_budgets;
mod migration;
mod monitoring;
mod readiness;
mod report;
mod workloads;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use database::quantity_bytes;

use crate::broker_tls;
use crate::crd::StackTachRegion;
use crate::desired::{self, FIELD_MANAGER};
use crate::status::{self, types, ConditionUpdate, Reason};
use crate::{redact, Context, Error, Result};
use report::{report_failure, write_status, Draft};

/// How many cells are applied at once.
const CONCURRENT_APPLIES: usize = 8;

/// How often a region is looked at again when nothing happened.
pub const RESYNC: Duration = Duration::from_secs(300);

/// How soon a region is looked at again while a cell's credentials Secret is missing.
/// The operator watches Secrets (their metadata), so one that appears wakes the region
/// at once; this is the fallback should that watch be down.
pub const RECHECK_CREDENTIALS: Duration = Duration::from_secs(60);

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

/// Retries a failed reconcile after a pause.
pub fn error_policy(region: Arc<StackTachRegion>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(region = %region.name_any(), error = %redact(&error.to_string()), kind = error.metric_label(), "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// The steps of one reconcile, in the order they must run.
async fn reconcile_region(region: &StackTachRegion, ctx: &Context) -> Result<Action> {
    let ns = region
        .namespace()
        .ok_or_else(|| Error::MissingReference("a StackTachRegion must be namespaced".into()))?;
    if region.metadata.deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes what it owned.
        ctx.metrics.forget_region(&ns, &region.name_any());
        ctx.database_probes
            .forget(&format!("{ns}/{}", region.name_any()));
        return Ok(Action::await_change());
    }
    let mut draft = Draft::new(region, Time(Timestamp::now()));

    // Paused for maintenance: nothing but the pause condition is written.
    if status::is_paused(region) {
        draft.set(ConditionUpdate::yes(
            types::RECONCILIATION_PAUSED,
            Reason::AnnotationSet,
            format!(
                "{} is \"true\": nothing is changed until it is removed",
                status::PAUSE_ANNOTATION
            ),
        ));
        write_status(ctx, &ns, region, draft.status).await?;
        return Ok(Action::await_change());
    }
    draft.remove(types::RECONCILIATION_PAUSED);

    // The configuration first: an invalid one changes nothing that runs.
    let Some(files) = config::check(ctx, &ns, region, &mut draft).await? else {
        write_status(ctx, &ns, region, draft.status).await?;
        return Ok(Action::requeue(RESYNC));
    };

    // The database before what connects to it; a volume that cannot grow blocks nothing.
    let (db, storage_problem) = database::reconcile_database(ctx, &ns, region).await?;
    let database_ready = db.status;
    draft.set(db);

    // A new version migrates the schema before anything rolls to it.
    let gate = migration::migrate(ctx, &ns, region, &mut draft.status).await?;

    // The Secrets the pods read, once: their hash rolls pods, and cells check them;
    // the same for the CA bundles TLS cells keep in ConfigMaps.
    let secrets = cells::read_secrets(ctx, &ns, region).await?;
    let ca_bundles = broker_tls::read_ca_config_maps(
        &Api::namespaced(ctx.client.clone(), &ns),
        &region.spec.cells,
    )
    .await?;

    // The Deployments: applied, or while migrating only read, so nothing rolls early.
    let running = if gate.is_open() {
        workloads::apply_workloads(ctx, &ns, region, &files, &secrets, &ca_bundles).await?
    } else {
        workloads::read_workloads(ctx, &ns, region).await?
    };

    // The workers' autoscaler, the API's Service, what removed cells left behind, the
    // disruption budgets and the metrics scraping: applied whatever the gate says.
    autoscaling::reconcile_autoscaling(ctx, &ns, region, &mut draft).await?;
    apply(ctx, &ns, &desired::api_service(region)?).await?;
    cells::prune_removed_cells(ctx, &ns, region).await?;
    disruption_budgets::reconcile_disruption_budgets(ctx, &ns, region).await?;
    monitoring::reconcile_monitoring(ctx, &ns, region).await?;
    backup::reconcile_backup(ctx, &ns, region).await?;

    // The verdict: cells, Ready, Progressing, Degraded, from what the steps found.
    let cell_credentials = cells::cell_credential_problems(&ns, region, &secrets, &ca_bundles);
    readiness::conclude(
        ctx,
        region,
        &mut draft,
        readiness::Found {
            running: &running,
            cell_credentials: &cell_credentials,
            database_ready,
            storage_problem,
            gate: &gate,
        },
    )
    .await;

    // What changed, as Normal Events, then the status (written only if it changed).
    for h in status::happenings(region.status.as_ref(), &draft.status) {
        report::publish(
            ctx,
            region,
            kube::runtime::events::EventType::Normal,
            h.reason,
            h.note,
        )
        .await;
    }
    write_status(ctx, &ns, region, draft.status).await?;
    // A missing credentials Secret is looked for again sooner.
    Ok(Action::requeue(if cell_credentials.is_empty() {
        RESYNC
    } else {
        RECHECK_CREDENTIALS
    }))
}

// ------------------------------------------------------------------ API plumbing

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
