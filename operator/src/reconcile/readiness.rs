//! The region's verdict once every step ran: the cells' statuses, and `Ready`,
//! `Progressing` and `Degraded` from what the steps found (Warning Events for new
//! problems).

use std::collections::BTreeMap;

use kube::runtime::events::EventType;

use super::report::{publish, Draft};
use super::workloads::Running;
use crate::crd::StackTachRegion;
use crate::desired;
use crate::rollout::Gate;
use crate::status::{self, types, ConditionUpdate, Reason};
use crate::Context;

/// What the steps before found that the verdict weighs.
pub(super) struct Found<'a> {
    /// The Deployments as applied or read.
    pub running: &'a Running,
    /// What keeps cells from running that their Deployments do not show, by cell.
    pub cell_credentials: &'a BTreeMap<String, ConditionUpdate>,
    /// Whether `DatabaseReady` holds.
    pub database_ready: bool,
    /// A database volume that cannot grow (blocks nothing else).
    pub storage_problem: Option<String>,
    /// The migration gate.
    pub gate: &'a Gate,
}

/// Sets the replica counts, the cells' statuses and `Ready`; with the gate open,
/// `Progressing` and `Degraded` (publishing a Warning Event for a new problem);
/// with it closed, the gate's conditions (and a Warning Event for a failed
/// migration, once).
pub(super) async fn conclude(
    ctx: &Context,
    region: &StackTachRegion,
    draft: &mut Draft,
    found: Found<'_>,
) {
    let Running {
        cells: cell_deployments,
        workers,
        api,
    } = found.running;
    let db_ready = found.database_ready;
    let previous_cells = std::mem::take(&mut draft.status.cells);
    let (cells, summary) = status::cell_statuses(
        region,
        cell_deployments,
        found.cell_credentials,
        &previous_cells,
        &draft.now,
    );
    // A cell is ready when its own condition says so: replicas ready, rolled out, and
    // nothing (such as a missing Secret) wrong with it.
    let cells_ready = cells.iter().all(status::cell_ready);
    let cell_problems = status::cell_problems(&cells);
    let api_status = api.as_ref().map(status::replica_status).unwrap_or_default();
    let api_ready = api_status.ready_replicas >= region.spec.api.replicas
        && api.as_ref().is_some_and(status::rolled_out);
    let workers_ready = workers.as_ref().is_some_and(status::rolled_out);
    let st = &mut draft.status;
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
        draft.set(ConditionUpdate::yes(
            types::READY,
            Reason::AllReady,
            "every component is ready",
        ));
    } else {
        draft.set(ConditionUpdate::no(
            types::READY,
            Reason::ComponentsNotReady,
            message.clone(),
        ));
    }
    if found.gate.is_open() {
        if ready {
            draft.set(ConditionUpdate::no(
                types::PROGRESSING,
                Reason::RolledOut,
                "every component runs the current spec",
            ));
        } else {
            draft.set(ConditionUpdate::yes(
                types::PROGRESSING,
                Reason::WaitingForPods,
                message,
            ));
        }
        degraded(ctx, region, draft, cell_problems, found.storage_problem).await;
    } else {
        if let Gate::Failed { job, reason } = found.gate {
            let already = draft.status.conditions.iter().any(|c| {
                c.type_ == types::DEGRADED && c.reason.parse() == Ok(Reason::MigrationFailed)
            });
            if !already {
                publish(
                    ctx,
                    region,
                    EventType::Warning,
                    Reason::MigrationFailed.as_str(),
                    format!("schema migration Job {job} failed: {reason}"),
                )
                .await;
            }
        }
        for u in found.gate.conditions() {
            draft.set(u);
        }
    }
}

/// `Degraded` from what is wrong but blocks nothing else: cells without their
/// credentials, a volume that cannot grow. A new problem publishes a Warning Event.
async fn degraded(
    ctx: &Context,
    region: &StackTachRegion,
    draft: &mut Draft,
    cell_problems: Vec<String>,
    storage_problem: Option<String>,
) {
    let reason = if cell_problems.is_empty() {
        Reason::VolumeNotExpanded
    } else {
        Reason::CellCredentials
    };
    let mut problems_found = cell_problems;
    problems_found.extend(storage_problem);
    if problems_found.is_empty() {
        draft.set(ConditionUpdate::no(
            types::DEGRADED,
            Reason::AsExpected,
            "no reconcile error",
        ));
    } else {
        let message = problems_found.join("; ");
        let already = draft
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == types::DEGRADED && c.status == "True" && c.message == message);
        if !already {
            publish(
                ctx,
                region,
                EventType::Warning,
                reason.as_str(),
                message.clone(),
            )
            .await;
        }
        draft.set(ConditionUpdate::yes(types::DEGRADED, reason, message));
    }
}
