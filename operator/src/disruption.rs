//! The region's PodDisruptionBudgets: how many pods of each component a voluntary
//! disruption (a node drain, a cluster autoscaler's scale-down) may take at once.
//! Pure, like [`crate::desired`], and built from typed k8s-openapi structs so that a
//! misspelt field is a compile error rather than a key the API server drops.
//!
//! - API and pipeline workers: `maxUnavailable: 1` when they can run more than one pod
//!   (a drain takes them one at a time, the others keep serving);
//! - a cell's collectors: `maxUnavailable: 1` when the cell runs more than one;
//! - the managed database: `minAvailable: 1` (its one pod: a drain waits, as
//!   CloudNativePG does for a primary, until `spec.disruptionBudgets.database` is
//!   turned off for the maintenance).
//!
//! A single-replica Deployment gets no budget: `maxUnavailable: 1` would allow what
//! happens anyway, and `minAvailable: 1` would block every drain for good.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::StackTachRegion;
use crate::desired::{self, Component};
use crate::Result;

/// How much of a component a disruption may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// At most this many pods unavailable.
    MaxUnavailable(i32),
    /// At least this many pods available.
    MinAvailable(i32),
}

/// One budget the region should have: the object's name, its component, its cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The PodDisruptionBudget's name (the same as the component's workload).
    pub name: String,
    /// Whose pods it covers.
    pub component: Component,
    /// The cell, for collectors.
    pub cell: Option<String>,
    /// The budget.
    pub budget: Budget,
}

/// The budgets the region's spec asks for (none when they are turned off).
pub fn wanted(region: &StackTachRegion) -> Vec<Wanted> {
    let spec = &region.spec;
    let settings = &spec.disruption_budgets;
    if !settings.enabled {
        return Vec::new();
    }
    let one_at_a_time = Budget::MaxUnavailable(1);
    let mut out = Vec::new();
    if spec.api.replicas > 1 {
        out.push(Wanted {
            name: desired::api_name(region),
            component: Component::Api,
            cell: None,
            budget: one_at_a_time,
        });
    }
    if spec.pipeline_workers.max_replicas > 1 {
        out.push(Wanted {
            name: desired::pipeline_worker_name(region),
            component: Component::PipelineWorker,
            cell: None,
            budget: one_at_a_time,
        });
    }
    for cell in spec.cells.iter().filter(|c| c.yagi_replicas > 1) {
        out.push(Wanted {
            name: desired::yagi_name(region, &cell.name),
            component: Component::Yagi,
            cell: Some(cell.name.clone()),
            budget: one_at_a_time,
        });
    }
    if settings.database && spec.database.managed.is_some() {
        out.push(Wanted {
            name: desired::database_name(region),
            component: Component::Database,
            cell: None,
            budget: Budget::MinAvailable(1),
        });
    }
    out
}

/// The PodDisruptionBudget object of one wanted budget.
pub fn pod_disruption_budget(region: &StackTachRegion, w: &Wanted) -> Result<PodDisruptionBudget> {
    let cell = w.cell.as_deref();
    let (max_unavailable, min_available) = match w.budget {
        Budget::MaxUnavailable(n) => (Some(IntOrString::Int(n)), None),
        Budget::MinAvailable(n) => (None, Some(IntOrString::Int(n))),
    };
    Ok(PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(w.name.clone()),
            namespace: region.namespace(),
            labels: Some(desired::labels(region, w.component, cell)),
            owner_references: Some(vec![desired::owner_reference(region)?]),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(desired::selector_labels(region, w.component, cell)),
                ..LabelSelector::default()
            }),
            max_unavailable,
            min_available,
            // A pod that is not ready yet (crash-looping, say) may always be evicted:
            // otherwise one broken pod would block every drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
        }),
        status: None,
    })
}
