//! The StackTach.v3 Kubernetes operator: the `StackTachRegion` custom resource
//! ([`crd`]), the pure mapping of a region to the objects it owns ([`desired`]), and
//! the validation of a region's configuration with the worker's own parsers
//! ([`config_check`]), the order of a version change ([`rollout`]), backlog
//! autoscaling with KEDA ([`keda`]), leader election ([`leader`]) and the operator's
//! metrics and probes ([`observe`]).

pub mod broker_tls;
pub mod config_check;
pub mod crd;
pub mod desired;
pub mod disruption;
pub mod keda;
pub mod leader;
pub mod monitoring;
pub mod observe;
pub mod reason;
#[cfg(feature = "config-check")]
pub mod reconcile;
pub mod rollout;
pub mod status;

use kube::CustomResourceExt;

/// Everything that can go wrong while reconciling a region. The variant names are the
/// `error` label of the reconcile-error metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// The region's configuration does not parse; the running config stays in place.
    #[error("invalid configuration: {0}")]
    InvalidConfig(#[from] config_check::ConfigProblem),

    /// The region references something that is not there (a Secret, a ConfigMap key).
    #[error("missing reference: {0}")]
    MissingReference(String),

    /// A field of the spec that the CRD's schema leaves unchecked is not what it must
    /// be (the message names it).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// A desired object lost a field when typed: a key its builder misspelt (a bug in
    /// the operator, caught before anything is applied).
    #[error("a desired object lost the field {0} when typed (a misspelt key)")]
    DroppedField(String),

    /// An object could not be (de)serialized.
    #[error("serialization failed: {0}")]
    Serialization(#[from] serde_json::Error),
}

impl Error {
    /// The metric label of this error.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::InvalidConfig(_) => "invalid_config",
            Error::MissingReference(_) => "missing_reference",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::DroppedField(_) => "dropped_field",
            Error::Serialization(_) => "serialization",
        }
    }

    /// The reason of the `Degraded` condition and the Warning Event.
    pub fn reason(&self) -> reason::Reason {
        use reason::Reason;
        match self {
            Error::Kube(_) => Reason::KubernetesApiError,
            Error::InvalidConfig(_) => Reason::InvalidConfig,
            Error::MissingReference(_) => Reason::MissingReference,
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::DroppedField(_) => Reason::DroppedField,
            Error::Serialization(_) => Reason::SerializationFailed,
        }
    }
}

/// The longest message put in a condition or an Event.
pub const MAX_MESSAGE: usize = 1024;

/// A message fit for a condition, an Event or a log line: any `scheme://user:password@`
/// in it loses its user and password (an API server error may quote a value), and it is
/// cut at [`MAX_MESSAGE`] bytes.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    let mut rest = message;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote; credentials are
        // whatever precedes its last '@'.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("<redacted>");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// The operator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every reconcile needs.
#[derive(Clone)]
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// Publishes Kubernetes Events about regions.
    pub recorder: kube::runtime::events::Recorder,
    /// Counts and times reconciles.
    pub metrics: observe::Metrics,
    /// The last probe of each region's external database (see
    /// `reconcile::database`): a reconcile reuses a recent one instead of connecting.
    pub database_probes: DatabaseProbes,
}

/// One probe: when, of which URL (a fingerprint), and what it found.
type Probe = (std::time::Instant, String, status::ConditionUpdate);

/// Recent external-database probes by region (`<namespace>/<name>`), each with a
/// fingerprint of the URL it probed (a changed URL is probed again at once).
#[derive(Clone, Default)]
pub struct DatabaseProbes {
    last: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Probe>>>,
}

impl DatabaseProbes {
    /// The probe of `region` for `fingerprint`, if younger than `ttl`.
    pub fn fresh(
        &self,
        region: &str,
        fingerprint: &str,
        ttl: std::time::Duration,
    ) -> Option<status::ConditionUpdate> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.get(region)
            .filter(|(at, f, _)| f == fingerprint && at.elapsed() < ttl)
            .map(|(_, _, u)| u.clone())
    }

    /// Records a probe.
    pub fn record(&self, region: String, fingerprint: String, update: status::ConditionUpdate) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(region, (std::time::Instant::now(), fingerprint, update));
    }

    /// Forgets a deleted region.
    pub fn forget(&self, region: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.remove(region);
    }
}

/// The file `crdgen` writes and `crds/` holds, relative to the workspace root.
pub const CRD_FILE: &str = "crds/stacktach.io_stacktachregions.yaml";

/// The CRD of [`crd::StackTachRegion`] as YAML, exactly as committed under `crds/`.
pub fn crd_yaml() -> String {
    let crd = crd::StackTachRegion::crd();
    let yaml = serde_saphyr::to_string(&crd).expect("a CRD serializes to YAML");
    format!(
        "# Generated by `cargo run -p stv3-operator --bin crdgen > {CRD_FILE}`; do not edit.\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_url_credentials_and_keeps_the_rest() {
        assert_eq!(
            redact("cannot reach mysql://stv3:s3cr3t@db-0.db.ns.svc:3306/stv3 (refused)"),
            "cannot reach mysql://<redacted>@db-0.db.ns.svc:3306/stv3 (refused)"
        );
        assert_eq!(
            redact("a://u:p@h and b://x@y and http://plain/path"),
            "a://<redacted>@h and b://<redacted>@y and http://plain/path"
        );
        assert_eq!(redact("nothing here"), "nothing here");
        let long = "é".repeat(MAX_MESSAGE);
        assert!(redact(&long).len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
