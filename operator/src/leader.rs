//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one reconciles. The Lease is held with kube-lease-manager
//! (server-side apply, so two candidates racing for a free Lease conflict instead of
//! both winning). A replica that loses the Lease stops reconciling and exits; the
//! kubelet restarts it as a candidate. On SIGTERM the leader releases the Lease, so a
//! rolling update hands over at once rather than after the Lease runs out.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The default Lease name.
pub const DEFAULT_LEASE_NAME: &str = "stv3-operator-leader";

/// Where the Lease is and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// The Lease's name (`LEADER_ELECTION_LEASE_NAME`).
    pub lease_name: String,
    /// The Lease's namespace (`LEADER_ELECTION_NAMESPACE`, else `POD_NAMESPACE`, else
    /// `default`): the operator's own namespace in a cluster.
    pub namespace: String,
    /// This replica's identity in the Lease (`POD_NAME`, else the host name and pid).
    pub identity: String,
    /// How long a Lease not renewed stays held (`LEADER_ELECTION_LEASE_SECONDS`,
    /// default 15): at most this long without a leader after one dies.
    pub lease_seconds: u64,
    /// How long before expiry the holder renews (`LEADER_ELECTION_RENEW_GRACE_SECONDS`,
    /// default 5); also the clock skew tolerated between replicas.
    pub grace_seconds: u64,
}

/// A setting that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not a whole number of seconds")]
pub struct BadSetting {
    name: &'static str,
    value: String,
}

fn seconds(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, BadSetting> {
    match env(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or(BadSetting { name, value }),
    }
}

impl LeaderConfig {
    /// Reads the settings from `env` (the process environment in `main`).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<LeaderConfig, BadSetting> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        let lease_seconds = seconds(&get, "LEADER_ELECTION_LEASE_SECONDS", 15)?;
        let grace_seconds = seconds(&get, "LEADER_ELECTION_RENEW_GRACE_SECONDS", 5)?;
        if grace_seconds >= lease_seconds {
            return Err(BadSetting {
                name: "LEADER_ELECTION_RENEW_GRACE_SECONDS",
                value: format!("{grace_seconds} (must be below the lease's {lease_seconds})"),
            });
        }
        let identity = get("POD_NAME").unwrap_or_else(|| {
            let host = get("HOSTNAME").unwrap_or_else(|| "stv3-operator".into());
            format!("{host}-{}", std::process::id())
        });
        Ok(LeaderConfig {
            lease_name: get("LEADER_ELECTION_LEASE_NAME").unwrap_or(DEFAULT_LEASE_NAME.into()),
            namespace: get("LEADER_ELECTION_NAMESPACE")
                .or_else(|| get("POD_NAMESPACE"))
                .unwrap_or_else(|| "default".into()),
            identity,
            lease_seconds,
            grace_seconds,
        })
    }
}

/// Leadership, once held.
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// How waiting for the Lease ended.
pub enum Election {
    /// This replica holds the Lease.
    Leader(Leadership),
    /// Shutdown was requested first.
    ShutDown,
}

/// Stands as a candidate until this replica holds the Lease (or `shutdown` fires).
/// `on_known` runs once the Lease has been read (or created): from then on the replica
/// knows its part, leader or standby, which is what readiness means for it.
pub async fn acquire(
    client: Client,
    cfg: &LeaderConfig,
    shutdown: &CancellationToken,
    on_known: impl FnOnce(),
) -> Result<Election, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, &cfg.lease_name)
        .with_namespace(&cfg.namespace)
        .with_identity(&cfg.identity)
        .with_duration(cfg.lease_seconds)
        .with_grace(cfg.grace_seconds)
        .with_field_manager(format!("stv3-operator-lease/{}", cfg.identity))
        .build()
        .await?;
    on_known();
    let (mut state, task) = manager.watch().await;
    loop {
        if *state.borrow_and_update() {
            return Ok(Election::Leader(Leadership { state, task }));
        }
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    // The manager's task ended: surface its error.
                    return match task.await {
                        Ok(Err(e)) => Err(e),
                        _ => Err(LeaseManagerError::ControlChannelError(
                            watch::error::SendError(false))),
                    };
                }
            }
            _ = shutdown.cancelled() => {
                drop(state);
                let _ = task.await;
                return Ok(Election::ShutDown);
            }
        }
    }
}

impl Leadership {
    /// Resolves when the Lease is lost (another replica took it, or it could not be
    /// renewed in time).
    pub async fn lost(&mut self) {
        loop {
            if !*self.state.borrow_and_update() {
                return;
            }
            if self.state.changed().await.is_err() {
                return;
            }
        }
    }

    /// Releases the Lease (when shutting down as the leader), bounded so a dead API
    /// server cannot hold up the exit.
    pub async fn release(self) {
        drop(self.state);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the leader Lease failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the Lease task failed"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_and_the_pod_identity() {
        let c =
            LeaderConfig::from_env(env(&[("POD_NAME", "op-0"), ("POD_NAMESPACE", "sys")])).unwrap();
        assert_eq!(
            c,
            LeaderConfig {
                lease_name: DEFAULT_LEASE_NAME.into(),
                namespace: "sys".into(),
                identity: "op-0".into(),
                lease_seconds: 15,
                grace_seconds: 5,
            }
        );
    }

    #[test]
    fn explicit_settings_win() {
        let c = LeaderConfig::from_env(env(&[
            ("LEADER_ELECTION_LEASE_NAME", "l"),
            ("LEADER_ELECTION_NAMESPACE", "ns"),
            ("POD_NAMESPACE", "other"),
            ("LEADER_ELECTION_LEASE_SECONDS", "6"),
            ("LEADER_ELECTION_RENEW_GRACE_SECONDS", "2"),
        ]))
        .unwrap();
        assert_eq!((c.lease_name.as_str(), c.namespace.as_str()), ("l", "ns"));
        assert_eq!((c.lease_seconds, c.grace_seconds), (6, 2));
        assert!(!c.identity.is_empty());
    }

    #[test]
    fn nonsense_durations_are_refused() {
        assert!(LeaderConfig::from_env(env(&[("LEADER_ELECTION_LEASE_SECONDS", "soon")])).is_err());
        assert!(LeaderConfig::from_env(env(&[("LEADER_ELECTION_LEASE_SECONDS", "0")])).is_err());
        assert!(LeaderConfig::from_env(env(&[
            ("LEADER_ELECTION_LEASE_SECONDS", "5"),
            ("LEADER_ELECTION_RENEW_GRACE_SECONDS", "5"),
        ]))
        .is_err());
    }
}
