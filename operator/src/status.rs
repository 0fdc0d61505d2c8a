//! The region's status, computed: conditions whose `lastTransitionTime` moves only when
//! their status changes, per-cell replica counts, and which owned cell objects are left
//! over after a cell was removed. Pure: `now` is an argument.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{CellStatus, ReplicaStatus, StackTachRegion};
use crate::desired::yagi_name;

/// The condition types the operator sets.
pub mod types {
    /// Every component is running with the current spec.
    pub const READY: &str = "Ready";
    /// The event definitions, triggers and pipelines parse.
    pub const CONFIG_VALID: &str = "ConfigValid";
    /// The database is reachable (managed: its pod is ready; external: its Secret exists).
    pub const DATABASE_READY: &str = "DatabaseReady";
    /// A rollout is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// Something keeps the region from working; the reason says what.
    pub const DEGRADED: &str = "Degraded";
    /// The `stacktach.io/pause-reconciliation` annotation is set.
    pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";
    /// `pipelineWorkers.autoscaling.backlog` is set: whether KEDA scales the workers
    /// (`KedaScaledObject`) or, KEDA being absent, the CPU autoscaler does (`KedaAbsent`).
    pub const BACKLOG_AUTOSCALING: &str = "BacklogAutoscaling";
}

/// What of a region triggers a reconcile when it changes: its generation (the spec)
/// and its annotations (the pause annotation). Not its status: the operator's own
/// status writes must not wake it up again (kube's `predicate_filter` compares this
/// hash between watch events).
pub fn reconcile_trigger(region: &StackTachRegion) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    region.metadata.generation.hash(&mut h);
    region.metadata.annotations.hash(&mut h);
    Some(h.finish())
}

/// The annotation that pauses reconciling a region, for maintenance.
pub const PAUSE_ANNOTATION: &str = "stacktach.io/pause-reconciliation";

/// Whether the region's reconciliation is paused.
pub fn is_paused(region: &StackTachRegion) -> bool {
    region
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSE_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// A condition to set: its type, whether it holds, why (a CamelCase reason) and a
/// human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// The condition type.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For humans.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition that holds.
    pub fn yes(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_,
            status: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_,
            status: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Sets a condition in `conditions`. `lastTransitionTime` becomes `now` only when the
/// condition is new or its status flips; reason, message and observedGeneration are
/// always brought up to date.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if update.status { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(c) => {
            if c.status != status {
                c.status = status;
                c.last_transition_time = now.clone();
            }
            c.reason = update.reason;
            c.message = update.message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: update.type_.to_string(),
            status,
            reason: update.reason,
            message: update.message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        }),
    }
}

/// Removes a condition (the pause condition once the annotation is gone).
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Each cell's collector replicas, from the Deployments that exist (a missing one
/// counts as nothing ready), its `Ready` condition, and the `ready/total` summary.
/// `problems` holds what keeps a cell from running that its replicas do not show
/// (its credentials Secret missing), by cell name; `previous` is the status the region
/// had, so that a cell's `lastTransitionTime` moves only when its condition flips.
pub fn cell_statuses(
    region: &StackTachRegion,
    deployments: &[Deployment],
    problems: &BTreeMap<String, ConditionUpdate>,
    previous: &[CellStatus],
    now: &Time,
) -> (Vec<CellStatus>, String) {
    let mut ready_cells = 0;
    let cells: Vec<CellStatus> = region
        .spec
        .cells
        .iter()
        .map(|cell| {
            let name = yagi_name(region, &cell.name);
            let deployment = deployments
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(name.as_str()));
            let ready = deployment
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            let current = deployment.is_some_and(rolled_out);
            let update = match problems.get(&cell.name) {
                Some(problem) => problem.clone(),
                None if ready >= cell.yagi_replicas && current => ConditionUpdate::yes(
                    types::READY,
                    "CollectorsReady",
                    format!("{ready}/{} collectors ready", cell.yagi_replicas),
                ),
                None => ConditionUpdate::no(
                    types::READY,
                    "CollectorsNotReady",
                    if ready >= cell.yagi_replicas {
                        format!(
                            "{ready}/{} collectors ready, rolling out",
                            cell.yagi_replicas
                        )
                    } else {
                        format!("{ready}/{} collectors ready", cell.yagi_replicas)
                    },
                ),
            };
            if update.status {
                ready_cells += 1;
            }
            let mut conditions = previous
                .iter()
                .find(|p| p.name == cell.name)
                .map(|p| p.conditions.clone())
                .unwrap_or_default();
            set_condition(&mut conditions, update, region.metadata.generation, now);
            CellStatus {
                name: cell.name.clone(),
                replicas: cell.yagi_replicas,
                ready_replicas: ready,
                conditions,
            }
        })
        .collect();
    let summary = format!("{ready_cells}/{}", cells.len());
    (cells, summary)
}

/// Whether a cell's own `Ready` condition holds.
pub fn cell_ready(cell: &CellStatus) -> bool {
    cell.conditions
        .iter()
        .any(|c| c.type_ == types::READY && c.status == "True")
}

/// The messages of the cells whose `Ready` condition is false for a reason other than
/// pods still starting, as `cell <name>: <message>` (for the region's own conditions).
pub fn cell_problems(cells: &[CellStatus]) -> Vec<String> {
    cells
        .iter()
        .flat_map(|c| {
            c.conditions
                .iter()
                .filter(|k| k.type_ == types::READY && k.status == "False")
                .filter(|k| k.reason != "CollectorsNotReady")
                .map(move |k| format!("cell {}: {}", c.name, k.message))
        })
        .collect()
}

/// Whether a Deployment runs its current pod template everywhere: its controller has
/// seen the latest spec, every wanted replica is of that template and ready, and no pod
/// of an older template is left. Ready replicas alone would call a rollout done while
/// the old pods still serve.
pub fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    let updated = s.updated_replicas.unwrap_or(0);
    s.observed_generation >= d.metadata.generation
        && updated >= want
        && s.replicas.unwrap_or(0) <= updated
        && s.ready_replicas.unwrap_or(0) >= want
}

/// A Deployment's replica counts.
pub fn replica_status(d: &Deployment) -> ReplicaStatus {
    let s = d.status.as_ref();
    ReplicaStatus {
        replicas: s.and_then(|s| s.replicas).unwrap_or(0),
        ready_replicas: s.and_then(|s| s.ready_replicas).unwrap_or(0),
    }
}

/// Of the cell names found on owned objects, those no longer in the spec: their
/// objects are to be deleted (a rename is a remove plus an add).
pub fn removed_cells<'a>(
    region: &StackTachRegion,
    found: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<String> {
    let wanted: BTreeSet<&str> = region.spec.cells.iter().map(|c| c.name.as_str()).collect();
    found
        .into_iter()
        .filter(|c| !wanted.contains(c))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn region() -> StackTachRegion {
        serde_json::from_value(json!({
            "apiVersion": "stacktach.io/v1alpha1", "kind": "StackTachRegion",
            "metadata": { "name": "r", "namespace": "ns" },
            "spec": {
                "cells": [
                    { "name": "a", "rabbitmq": { "host": "h", "credentialsSecretRef": { "name": "s" } } },
                    { "name": "b", "yagiReplicas": 2,
                      "rabbitmq": { "host": "h", "credentialsSecretRef": { "name": "s" } } }
                ],
                "database": { "managed": {} }
            }
        }))
        .unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut cs = Vec::new();
        set_condition(
            &mut cs,
            ConditionUpdate::yes(types::READY, "AllReady", "ok"),
            Some(1),
            &at(100),
        );
        set_condition(
            &mut cs,
            ConditionUpdate::yes(types::READY, "AllReady", "still ok"),
            Some(2),
            &at(200),
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(
            cs[0].last_transition_time,
            at(100),
            "same status: unchanged"
        );
        assert_eq!(
            (cs[0].message.as_str(), cs[0].observed_generation),
            ("still ok", Some(2))
        );
        set_condition(
            &mut cs,
            ConditionUpdate::no(types::READY, "CellsNotReady", "1/2"),
            Some(2),
            &at(300),
        );
        assert_eq!(
            (cs[0].status.as_str(), cs[0].last_transition_time.clone()),
            ("False", at(300))
        );
        remove_condition(&mut cs, types::READY);
        assert!(cs.is_empty());
    }

    #[test]
    fn cells_count_ready_when_all_their_replicas_are() {
        let r = region();
        let deploy = |name: &str, ready: i32| -> Deployment {
            serde_json::from_value(json!({
                "metadata": { "name": name, "generation": 2 },
                "spec": { "replicas": ready, "selector": {}, "template": {} },
                "status": { "readyReplicas": ready, "replicas": ready, "updatedReplicas": ready,
                            "observedGeneration": 2 }
            }))
            .unwrap()
        };
        let none = BTreeMap::new();
        let (cells, summary) = cell_statuses(
            &r,
            &[deploy("r-yagi-a", 1), deploy("r-yagi-b", 1)],
            &none,
            &[],
            &at(100),
        );
        assert_eq!(summary, "1/2");
        assert_eq!(
            (
                cells[1].name.as_str(),
                cells[1].replicas,
                cells[1].ready_replicas
            ),
            ("b", 2, 1)
        );
        let ready = |c: &CellStatus| {
            let k = &c.conditions[0];
            (k.type_.clone(), k.status.clone(), k.reason.clone())
        };
        assert_eq!(
            ready(&cells[0]),
            ("Ready".into(), "True".into(), "CollectorsReady".into())
        );
        assert_eq!(
            ready(&cells[1]),
            ("Ready".into(), "False".into(), "CollectorsNotReady".into())
        );
        assert!(
            cell_problems(&cells).is_empty(),
            "pods starting is no problem"
        );
        assert!(cell_ready(&cells[0]) && !cell_ready(&cells[1]));
        let (_, summary) = cell_statuses(&r, &[], &none, &[], &at(100));
        assert_eq!(summary, "0/2", "no Deployment yet: nothing ready");
    }

    #[test]
    fn a_cell_with_a_problem_says_so_and_the_others_keep_their_state() {
        let r = region();
        let deploy = |name: &str, ready: i32| -> Deployment {
            serde_json::from_value(json!({
                "metadata": { "name": name, "generation": 1 },
                "spec": { "replicas": ready, "selector": {}, "template": {} },
                "status": { "readyReplicas": ready, "replicas": ready, "updatedReplicas": ready,
                            "observedGeneration": 1 }
            }))
            .unwrap()
        };
        let deployments = [deploy("r-yagi-a", 1), deploy("r-yagi-b", 2)];
        let (before, _) = cell_statuses(&r, &deployments, &BTreeMap::new(), &[], &at(100));
        let problems = BTreeMap::from([(
            "b".to_string(),
            ConditionUpdate::no(
                types::READY,
                "CredentialsSecretMissing",
                "Secret s not found",
            ),
        )]);
        let (cells, summary) = cell_statuses(&r, &deployments, &problems, &before, &at(200));
        assert_eq!(summary, "1/2");
        assert_eq!(
            cells[0].conditions, before[0].conditions,
            "cell a unchanged"
        );
        assert_eq!(cells[1].conditions[0].reason, "CredentialsSecretMissing");
        assert_eq!(cells[1].conditions[0].last_transition_time, at(200));
        assert_eq!(cell_problems(&cells), ["cell b: Secret s not found"]);
    }

    #[test]
    fn a_rollout_is_done_when_no_old_pod_is_left() {
        let d = |generation: i64,
                 observed: i64,
                 replicas: i32,
                 updated: i32,
                 ready: i32|
         -> Deployment {
            serde_json::from_value(json!({
                "metadata": { "name": "d", "generation": generation },
                "spec": { "replicas": 1, "selector": {}, "template": {} },
                "status": { "observedGeneration": observed, "replicas": replicas,
                            "updatedReplicas": updated, "readyReplicas": ready }
            }))
            .unwrap()
        };
        assert!(rolled_out(&d(3, 3, 1, 1, 1)));
        assert!(!rolled_out(&d(3, 2, 1, 1, 1)), "the new spec not seen yet");
        assert!(
            !rolled_out(&d(3, 3, 2, 1, 2)),
            "an old pod still runs beside the new one"
        );
        assert!(!rolled_out(&d(3, 3, 1, 1, 0)), "the new pod is not ready");
    }

    #[test]
    fn removed_cells_are_those_not_in_the_spec() {
        let r = region();
        let gone = removed_cells(&r, ["a", "b", "c", "old"]);
        assert_eq!(gone.into_iter().collect::<Vec<_>>(), ["c", "old"]);
    }

    #[test]
    fn status_writes_do_not_trigger_a_reconcile() {
        let mut r = region();
        r.metadata.generation = Some(3);
        let before = reconcile_trigger(&r);
        r.status = Some(Default::default());
        r.metadata.resource_version = Some("42".into());
        assert_eq!(reconcile_trigger(&r), before, "status and resourceVersion");
        r.metadata.generation = Some(4);
        let spec_changed = reconcile_trigger(&r);
        assert_ne!(spec_changed, before, "a spec change");
        r.metadata.annotations = Some([(PAUSE_ANNOTATION.to_string(), "true".to_string())].into());
        assert_ne!(reconcile_trigger(&r), spec_changed, "the pause annotation");
    }

    #[test]
    fn the_pause_annotation_must_say_true() {
        let mut r = region();
        assert!(!is_paused(&r));
        r.metadata.annotations = Some([(PAUSE_ANNOTATION.to_string(), "true".to_string())].into());
        assert!(is_paused(&r));
        r.metadata.annotations = Some([(PAUSE_ANNOTATION.to_string(), "no".to_string())].into());
        assert!(!is_paused(&r));
    }
}
