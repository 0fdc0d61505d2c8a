//! Why a condition is what it is: the CamelCase `reason` of every condition the
//! operator sets (also the reason of the Warning Events about them). An enum, so a
//! misspelt reason is a compile error rather than a condition no test, alert or user
//! recognises. Each variant's name is exactly the string the API server stores, and
//! must stay so: the e2e tests, the docs and users' alerts read these strings.

use std::fmt;
use std::str::FromStr;

/// Defines [`Reason`] with its string, the list of all reasons, and parsing; the
/// string of a variant is its name, so the two cannot drift apart.
macro_rules! reasons {
    ($( $(#[doc = $doc:literal])* $name:ident, )*) => {
        /// The `reason` of a condition the operator sets (see the module doc).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[doc = $doc])* $name, )*
        }

        impl Reason {
            /// Every reason.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The reason as stored in `status.conditions[].reason`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Reason::$name => stringify!($name), )*
                }
            }
        }
    };
}

reasons! {
    // ConfigValid
    /// The config files parse.
    Parsed,
    /// The config files parse, with warnings (the message lists them).
    ParsedWithWarnings,
    // DatabaseReady
    /// The managed MySQL's pod is ready.
    MySQLReady,
    /// The managed MySQL's pod is not ready yet.
    MySQLStarting,
    /// The external database answered and its schema is migrated.
    ExternalSchemaMigrated,
    /// The external database answered, and no migration has been applied to it.
    ExternalSchemaNotMigrated,
    /// The external database did not answer (or refused the credentials).
    ExternalUnreachable,
    /// The external database's URL Secret or key is missing.
    ExternalSecretMissing,
    // ReconciliationPaused
    /// The pause annotation is set.
    AnnotationSet,
    // BacklogAutoscaling
    /// KEDA scales the pipeline workers on the backlog.
    KedaScaledObject,
    /// Backlog scaling is asked for but KEDA is not installed.
    KedaAbsent,
    // Ready (the region's and a cell's)
    /// Every component is ready.
    AllReady,
    /// Some component is not ready (the message says which).
    ComponentsNotReady,
    /// A cell's collectors are ready and rolled out.
    CollectorsReady,
    /// A cell's collectors are starting or rolling out.
    CollectorsNotReady,
    /// A cell's credentials Secret does not exist.
    CredentialsSecretMissing,
    /// A cell's credentials Secret lacks a key.
    CredentialsKeyMissing,
    /// A TLS cell's CA bundle or client certificate is missing.
    TlsMaterialMissing,
    // Progressing
    /// Every component runs the current spec.
    RolledOut,
    /// Pods of the current spec are not all ready yet.
    WaitingForPods,
    /// The schema migration Job of a new version runs.
    MigrationRunning,
    // Degraded
    /// Nothing is wrong.
    AsExpected,
    /// The schema migration Job failed; nothing rolls.
    MigrationFailed,
    /// Cells lack their credentials.
    CellCredentials,
    /// The database volume cannot grow to the new `storageSize`.
    VolumeNotExpanded,
    // Degraded (and ConfigValid, Ready) after a failed reconcile: [`crate::Error::reason`].
    /// A Kubernetes API call failed.
    KubernetesApiError,
    /// The configuration does not parse.
    InvalidConfig,
    /// The region references something that is not there.
    MissingReference,
    /// A spec field the CRD's schema leaves unchecked is wrong.
    InvalidSpec,
    /// A desired object lost a field when typed (an operator bug).
    DroppedField,
    /// An object could not be (de)serialized.
    SerializationFailed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `reason` string that is none of [`Reason`]'s (one set by someone else, or by a
/// later operator version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown condition reason {0:?}")]
pub struct UnknownReason(pub String);

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.as_str().to_string()
    }
}

impl FromStr for Reason {
    type Err = UnknownReason;

    /// The reason a condition read from the API server carries.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_itself_and_keeps_its_string() {
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(*r));
        }
        // What the e2e tests, the docs and alerts read: these strings never change.
        assert_eq!(Reason::MySQLReady.as_str(), "MySQLReady");
        assert_eq!(Reason::ParsedWithWarnings.as_str(), "ParsedWithWarnings");
        assert_eq!(Reason::KubernetesApiError.to_string(), "KubernetesApiError");
        assert_eq!("Nope".parse::<Reason>(), Err(UnknownReason("Nope".into())));
    }
}
