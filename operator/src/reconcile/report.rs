//! What a reconcile tells: the status it writes (only when it changed), the Events it
//! publishes, and the `Degraded` mark of a failed reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use crate::crd::{StackTachRegion, StackTachRegionStatus};
use crate::status::{self, types, ConditionUpdate};
use crate::{redact, Context, Error, Result};

/// The status a reconcile is computing: the region's own, with every condition set at
/// the region's generation and this reconcile's time (so a condition that does not
/// flip keeps its `lastTransitionTime`).
pub(super) struct Draft {
    /// The status to write.
    pub status: StackTachRegionStatus,
    generation: Option<i64>,
    /// When this reconcile looked.
    pub now: Time,
}

impl Draft {
    /// The region's status, now observing its current generation.
    pub fn new(region: &StackTachRegion, now: Time) -> Draft {
        let generation = region.metadata.generation;
        let mut status = region.status.clone().unwrap_or_default();
        status.observed_generation = generation;
        Draft {
            status,
            generation,
            now,
        }
    }

    /// Sets one condition (see [`status::set_condition`]).
    pub fn set(&mut self, update: ConditionUpdate) {
        status::set_condition(
            &mut self.status.conditions,
            update,
            self.generation,
            &self.now,
        )
    }

    /// Removes one condition.
    pub fn remove(&mut self, type_: &str) {
        status::remove_condition(&mut self.status.conditions, type_)
    }
}

/// Publishes an Event about the region. The note goes through [`redact`]: an Event
/// never carries a credential.
pub(super) async fn publish(
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
pub(super) async fn write_status(
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

/// `Degraded=True` with the error's reason, and a Warning Event, for a failed
/// reconcile. Best effort: the API server may be what failed.
pub(super) async fn report_failure(ctx: &Context, region: &StackTachRegion, error: &Error) {
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
    publish(
        ctx,
        region,
        EventType::Warning,
        error.reason().as_str(),
        message,
    )
    .await;
}
