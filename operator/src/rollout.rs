//! The order of a version change: the schema migration Job first, the components
//! after. A region's collectors, pipeline workers and API run against one database
//! schema, so they may roll to a new image only once that image's `stv3 db upgrade`
//! has succeeded; until then what runs is left exactly as it is (its Deployments and
//! the ConfigMaps they mount are not applied at all). Pure: the reconciler hands in
//! the status and the Job it applied, and gets back whether to roll and the conditions
//! to set.

use k8s_openapi::api::batch::v1::Job;

use crate::status::{types, ConditionUpdate, Reason};

/// Where a migration Job is, from its status conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Neither complete nor failed yet (pending, running, retrying).
    Running,
    /// `Complete=True`: the Job controller (which since Kubernetes 1.31 first sets
    /// `SuccessCriteriaMet`) saw its pod succeed.
    Succeeded,
    /// `Failed=True`: out of retries or past its deadline; the Job's own message.
    Failed(String),
}

fn condition_true(job: &Job, type_: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            let reason = c.reason.clone().unwrap_or_default();
            match c.message.as_deref() {
                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                _ => reason,
            }
        })
}

/// The state of a migration Job.
pub fn job_state(job: &Job) -> JobState {
    if let Some(why) = condition_true(job, "Failed") {
        JobState::Failed(why)
    } else if condition_true(job, "Complete").is_some() {
        JobState::Succeeded
    } else {
        JobState::Running
    }
}

/// Whether the migration of `wanted` (the migration image) still has to run: the
/// status remembers the last image whose migration succeeded, so a finished Job that
/// was garbage-collected (`ttlSecondsAfterFinished`) is not run again.
pub fn needs_migration(migrated_image: Option<&str>, wanted: &str) -> bool {
    migrated_image != Some(wanted)
}

/// What the reconciler may do with the components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The schema matches the wanted image: apply everything.
    Open,
    /// The migration Job is running: leave the components as they are.
    Migrating {
        /// The Job's name.
        job: String,
    },
    /// The migration Job failed: leave the components as they are, and say so.
    Failed {
        /// The Job's name.
        job: String,
        /// Why, as the Job says.
        reason: String,
    },
}

impl Gate {
    /// The gate for a migration Job in `state`.
    pub fn from_job(job: &str, state: &JobState) -> Gate {
        match state {
            JobState::Succeeded => Gate::Open,
            JobState::Running => Gate::Migrating { job: job.into() },
            JobState::Failed(reason) => Gate::Failed {
                job: job.into(),
                reason: reason.clone(),
            },
        }
    }

    /// Whether the components may be applied.
    pub fn is_open(&self) -> bool {
        matches!(self, Gate::Open)
    }

    /// The conditions a closed gate sets (`Progressing` and `Degraded`); none when open
    /// (the rollout's own state sets them then).
    pub fn conditions(&self) -> Vec<ConditionUpdate> {
        match self {
            Gate::Open => Vec::new(),
            Gate::Migrating { job } => vec![
                ConditionUpdate::yes(
                    types::PROGRESSING,
                    Reason::MigrationRunning,
                    format!(
                        "schema migration Job {job} is running; the components keep their \
                         current version until it succeeds"
                    ),
                ),
                ConditionUpdate::no(types::DEGRADED, Reason::AsExpected, "no reconcile error"),
            ],
            Gate::Failed { job, reason } => vec![
                ConditionUpdate::no(
                    types::PROGRESSING,
                    Reason::MigrationFailed,
                    format!("schema migration Job {job} failed; nothing rolls"),
                ),
                ConditionUpdate::yes(
                    types::DEGRADED,
                    Reason::MigrationFailed,
                    format!(
                        "schema migration Job {job} failed ({reason}); the components keep \
                         their current version. Fix the cause, then delete the Job to retry"
                    ),
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": { "name": "r-migrate-0123456789" },
            "status": { "conditions": conditions }
        }))
        .unwrap()
    }

    #[test]
    fn a_job_is_succeeded_only_once_complete() {
        assert_eq!(job_state(&job(json!([]))), JobState::Running);
        // The 1.31+ Job controller sets SuccessCriteriaMet before Complete.
        let met = json!([{ "type": "SuccessCriteriaMet", "status": "True" }]);
        assert_eq!(job_state(&job(met)), JobState::Running);
        let done = json!([
            { "type": "SuccessCriteriaMet", "status": "True" },
            { "type": "Complete", "status": "True" }
        ]);
        assert_eq!(job_state(&job(done)), JobState::Succeeded);
        let not_yet = json!([{ "type": "Complete", "status": "False" }]);
        assert_eq!(job_state(&job(not_yet)), JobState::Running);
    }

    #[test]
    fn a_failed_job_says_why() {
        let failed = json!([
            { "type": "FailureTarget", "status": "True" },
            { "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
              "message": "Job has reached the specified backoff limit" }
        ]);
        assert_eq!(
            job_state(&job(failed)),
            JobState::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
    }

    #[test]
    fn migration_is_needed_until_the_wanted_image_is_recorded() {
        assert!(needs_migration(None, "repo:2"));
        assert!(needs_migration(Some("repo:1"), "repo:2"));
        assert!(!needs_migration(Some("repo:2"), "repo:2"));
    }

    #[test]
    fn only_a_succeeded_migration_opens_the_gate() {
        assert!(Gate::from_job("j", &JobState::Succeeded).is_open());
        let running = Gate::from_job("j", &JobState::Running);
        assert!(!running.is_open());
        let cs = running.conditions();
        assert!(cs.iter().any(|c| c.type_ == types::PROGRESSING
            && c.status
            && c.reason == Reason::MigrationRunning));
        let failed = Gate::from_job("j", &JobState::Failed("BackoffLimitExceeded".into()));
        assert!(!failed.is_open());
        let degraded = failed
            .conditions()
            .into_iter()
            .find(|c| c.type_ == types::DEGRADED)
            .unwrap();
        assert!(degraded.status && degraded.reason == Reason::MigrationFailed);
        assert!(degraded.message.contains("Job j") && degraded.message.contains("Backoff"));
        assert!(Gate::Open.conditions().is_empty());
    }
}
