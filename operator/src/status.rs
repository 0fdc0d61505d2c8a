//! The region's status, computed: conditions whose `lastTransitionTime` moves only when
//! their status changes, per-cell replica counts, and which owned cell objects are left
//! over after a cell was removed. Pure: `now` is an argument.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{CellStatus, ReplicaStatus, StackTachRegion, StackTachRegionStatus};
use crate::desired::yagi_name;
pub use crate::reason::Reason;

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
    /// Every type above.
    pub const ALL: [&str; 7] = [
        READY,
        CONFIG_VALID,
        DATABASE_READY,
        PROGRESSING,
        DEGRADED,
        RECONCILIATION_PAUSED,
        BACKLOG_AUTOSCALING,
    ];
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
    /// Why.
    pub reason: Reason,
    /// For humans.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition that holds.
    pub fn yes(type_: &'static str, reason: Reason, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(type_: &'static str, reason: Reason, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_,
            status: false,
            reason,
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
            c.reason = update.reason.as_str().to_string();
            c.message = update.message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: update.type_.to_string(),
            status,
            reason: update.reason.as_str().to_string(),
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
                    Reason::CollectorsReady,
                    format!("{ready}/{} collectors ready", cell.yagi_replicas),
                ),
                None => ConditionUpdate::no(
                    types::READY,
                    Reason::CollectorsNotReady,
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
                .filter(|k| k.reason.parse() != Ok(Reason::CollectorsNotReady))
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
        && s.available_replicas.unwrap_or(0) >= want
}

/// The status as a merge patch: every field of the status, with `null` for those now
/// empty, so that a field that became empty (the last cell removed, the API endpoint
/// of a region whose Deployments are gone) is cleared instead of left as it was.
pub fn status_patch(status: &StackTachRegionStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_else(|_| serde_json::json!({}));
    let empty = serde_json::to_value(StackTachRegionStatus {
        observed_generation: Some(0),
        conditions: vec![Condition {
            type_: String::new(),
            status: String::new(),
            reason: String::new(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }],
        cells_ready: Some(String::new()),
        cells: vec![CellStatus::default()],
        pipeline_workers: Some(ReplicaStatus::default()),
        api: Some(ReplicaStatus::default()),
        api_endpoint: Some(String::new()),
        migrated_image: Some(String::new()),
    })
    .unwrap_or_else(|_| serde_json::json!({}));
    if let (Some(out), Some(all)) = (v.as_object_mut(), empty.as_object()) {
        for key in all.keys() {
            out.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "status": v })
}

/// A Normal Event: what the operator did or saw happen, for `kubectl describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happened {
    /// CamelCase reason.
    pub reason: &'static str,
    /// For humans.
    pub note: String,
}

fn happened(reason: &'static str, note: impl Into<String>) -> Happened {
    Happened {
        reason,
        note: note.into(),
    }
}

fn condition_status<'a>(st: &'a StackTachRegionStatus, type_: &str) -> Option<&'a str> {
    st.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// What changed between the status a region had and the one just computed, as Normal
/// Events: the region's objects created, cells added or removed, collectors or API
/// scaled, a schema migrated, a rollout started and finished, the region Ready again.
/// Pure, and only about transitions: a settled region publishes nothing.
pub fn happenings(
    previous: Option<&StackTachRegionStatus>,
    next: &StackTachRegionStatus,
) -> Vec<Happened> {
    let mut out = Vec::new();
    let Some(prev) = previous.filter(|p| p.observed_generation.is_some()) else {
        out.push(happened(
            "Created",
            format!(
                "created the region's objects: {} cell(s), pipeline workers, API",
                next.cells.len()
            ),
        ));
        return out;
    };
    if next.migrated_image.is_some() && next.migrated_image != prev.migrated_image {
        out.push(happened(
            "Migrated",
            format!(
                "the schema is migrated for {}",
                next.migrated_image.as_deref().unwrap_or_default()
            ),
        ));
    }
    for cell in &next.cells {
        match prev.cells.iter().find(|p| p.name == cell.name) {
            None => out.push(happened(
                "CellAdded",
                format!("cell {}: {} collector(s) created", cell.name, cell.replicas),
            )),
            Some(p) if p.replicas != cell.replicas => out.push(happened(
                "Scaled",
                format!(
                    "cell {} collectors scaled from {} to {}",
                    cell.name, p.replicas, cell.replicas
                ),
            )),
            Some(_) => {}
        }
    }
    for p in &prev.cells {
        if !next.cells.iter().any(|c| c.name == p.name) {
            out.push(happened(
                "CellRemoved",
                format!("cell {}: its collectors and config deleted", p.name),
            ));
        }
    }
    if let (Some(a), Some(b)) = (&prev.api, &next.api) {
        if a.replicas != b.replicas {
            out.push(happened(
                "Scaled",
                format!("API scaled from {} to {} replicas", a.replicas, b.replicas),
            ));
        }
    }
    let was = condition_status(prev, types::PROGRESSING);
    let is = condition_status(next, types::PROGRESSING);
    if is == Some("True") && was != Some("True") {
        out.push(happened("RollingOut", "rolling out the current spec"));
    }
    let rolled_out = next.conditions.iter().any(|c| {
        c.type_ == types::PROGRESSING
            && c.status == "False"
            && c.reason.parse() == Ok(Reason::RolledOut)
    });
    if rolled_out && was == Some("True") {
        out.push(happened(
            "RolledOut",
            "every component runs the current spec",
        ));
    }
    if condition_status(next, types::READY) == Some("True")
        && condition_status(prev, types::READY) != Some("True")
    {
        out.push(happened("Ready", "every component is ready"));
    }
    out
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
            ConditionUpdate::yes(types::READY, Reason::AllReady, "ok"),
            Some(1),
            &at(100),
        );
        set_condition(
            &mut cs,
            ConditionUpdate::yes(types::READY, Reason::AllReady, "still ok"),
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
            ConditionUpdate::no(types::READY, Reason::ComponentsNotReady, "1/2"),
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
                "status": { "readyReplicas": ready, "availableReplicas": ready, "replicas": ready, "updatedReplicas": ready,
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
            (
                "Ready".into(),
                "True".into(),
                Reason::CollectorsReady.into()
            )
        );
        assert_eq!(
            ready(&cells[1]),
            (
                "Ready".into(),
                "False".into(),
                Reason::CollectorsNotReady.into()
            )
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
                "status": { "readyReplicas": ready, "availableReplicas": ready, "replicas": ready, "updatedReplicas": ready,
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
                Reason::CredentialsSecretMissing,
                "Secret s not found",
            ),
        )]);
        let (cells, summary) = cell_statuses(&r, &deployments, &problems, &before, &at(200));
        assert_eq!(summary, "1/2");
        assert_eq!(
            cells[0].conditions, before[0].conditions,
            "cell a unchanged"
        );
        assert_eq!(
            cells[1].conditions[0].reason.parse(),
            Ok(Reason::CredentialsSecretMissing)
        );
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
                            "updatedReplicas": updated, "readyReplicas": ready,
                            "availableReplicas": ready.min(1) }
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
        let mut ready_not_available = d(3, 3, 1, 1, 1);
        if let Some(s) = ready_not_available.status.as_mut() {
            s.available_replicas = Some(0);
        }
        assert!(
            !rolled_out(&ready_not_available),
            "ready but not yet available (minReadySeconds)"
        );
    }

    #[test]
    fn an_emptied_status_field_is_cleared() {
        let st = StackTachRegionStatus {
            observed_generation: Some(3),
            ..Default::default()
        };
        let patch = status_patch(&st);
        let s = &patch["status"];
        assert_eq!(s["observedGeneration"], 3);
        for key in [
            "cells",
            "cellsReady",
            "conditions",
            "pipelineWorkers",
            "api",
            "apiEndpoint",
            "migratedImage",
        ] {
            assert!(
                s[key].is_null() && s.as_object().unwrap().contains_key(key),
                "{key}: {s}"
            );
        }
    }

    fn with_condition(
        mut st: StackTachRegionStatus,
        type_: &str,
        status: &str,
    ) -> StackTachRegionStatus {
        st.conditions.retain(|c| c.type_ != type_);
        st.conditions.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: if type_ == types::PROGRESSING && status == "False" {
                Reason::RolledOut.into()
            } else {
                "R".into()
            },
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(1),
        });
        st
    }

    #[test]
    fn normal_events_say_what_changed_and_nothing_when_settled() {
        let cell = |name: &str, replicas: i32| CellStatus {
            name: name.into(),
            replicas,
            ..Default::default()
        };
        let before = with_condition(
            with_condition(
                StackTachRegionStatus {
                    observed_generation: Some(1),
                    cells: vec![cell("a", 1), cell("b", 1)],
                    api: Some(ReplicaStatus {
                        replicas: 1,
                        ready_replicas: 1,
                    }),
                    migrated_image: Some("stv3:v1".into()),
                    ..Default::default()
                },
                types::READY,
                "True",
            ),
            types::PROGRESSING,
            "False",
        );
        assert_eq!(
            happenings(Some(&before), &before),
            vec![],
            "settled: nothing"
        );
        assert_eq!(happenings(None, &before)[0].reason, "Created");

        let mut next = with_condition(
            with_condition(before.clone(), types::READY, "False"),
            types::PROGRESSING,
            "True",
        );
        next.observed_generation = Some(2);
        next.cells = vec![cell("a", 3), cell("c", 1)];
        next.api = Some(ReplicaStatus {
            replicas: 2,
            ready_replicas: 1,
        });
        next.migrated_image = Some("stv3:v2".into());
        let reasons: Vec<(&str, String)> = happenings(Some(&before), &next)
            .into_iter()
            .map(|h| (h.reason, h.note))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("Migrated", "the schema is migrated for stv3:v2".to_string()),
                ("Scaled", "cell a collectors scaled from 1 to 3".into()),
                ("CellAdded", "cell c: 1 collector(s) created".into()),
                (
                    "CellRemoved",
                    "cell b: its collectors and config deleted".into()
                ),
                ("Scaled", "API scaled from 1 to 2 replicas".into()),
                ("RollingOut", "rolling out the current spec".into()),
            ]
        );
        let done = with_condition(
            with_condition(next.clone(), types::READY, "True"),
            types::PROGRESSING,
            "False",
        );
        let reasons: Vec<&str> = happenings(Some(&next), &done)
            .iter()
            .map(|h| h.reason)
            .collect();
        assert_eq!(reasons, ["RolledOut", "Ready"]);
        // Progressing going False because a migration failed is no rollout done.
        let mut failed = done.clone();
        for c in failed.conditions.iter_mut() {
            if c.type_ == types::PROGRESSING {
                c.reason = Reason::MigrationFailed.into();
            }
            if c.type_ == types::READY {
                c.status = "False".into();
            }
        }
        assert_eq!(happenings(Some(&next), &failed), vec![]);
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
