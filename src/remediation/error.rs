//! Remediation's errors: one enum for the layer; each variant names the
//! operation that failed and the object it was about.

use std::path::PathBuf;

use super::rollout::RevisionError;

/// A remediation operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    /// Opening the audit log for appending failed.
    #[error("cannot open the audit log {path}: {source}")]
    AuditOpen {
        /// The log file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Appending or syncing a record to the audit log failed.
    #[error("cannot append to the audit log {path}: {source}")]
    AuditWrite {
        /// The log file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Reading the audit log failed.
    #[error("cannot read the audit log {path}: {source}")]
    AuditRead {
        /// The log file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Reading a Deployment failed.
    #[error("cannot get Deployment {namespace}/{name}: {source}")]
    GetDeployment {
        /// Namespace.
        namespace: String,
        /// Deployment.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// Listing a Deployment's ReplicaSets failed.
    #[error("cannot list the ReplicaSets of Deployment {namespace}/{name}: {source}")]
    ListReplicaSets {
        /// Namespace.
        namespace: String,
        /// Deployment.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// No revision could be selected for a rollback.
    #[error("cannot roll back Deployment {namespace}/{name}: {source}")]
    Revision {
        /// Namespace.
        namespace: String,
        /// Deployment.
        name: String,
        /// kubectl's reason.
        source: RevisionError,
    },
    /// Patching a Deployment (rollback or restart) failed.
    #[error("cannot patch Deployment {namespace}/{name} ({operation}): {source}")]
    PatchDeployment {
        /// Namespace.
        namespace: String,
        /// Deployment.
        name: String,
        /// `rollback` or `restart`.
        operation: &'static str,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// Reading a ScaledObject failed.
    #[error("cannot get ScaledObject {namespace}/{name}: {source}")]
    GetScaledObject {
        /// Namespace.
        namespace: String,
        /// ScaledObject.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// A ScaledObject lacks what remediation needs.
    #[error("ScaledObject {namespace}/{name} is unusable: {reason}")]
    InvalidScaledObject {
        /// Namespace.
        namespace: String,
        /// ScaledObject.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Patching a ScaledObject (its `maxReplicaCount`, or the
    /// `lastRemediation` stamp on its foresight trigger) failed.
    #[error("cannot patch ScaledObject {namespace}/{name} ({operation}): {source}")]
    PatchScaledObject {
        /// Namespace.
        namespace: String,
        /// ScaledObject.
        name: String,
        /// `raise maxReplicaCount` or `stamp lastRemediation`.
        operation: &'static str,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// Publishing a Kubernetes Event failed.
    #[error("cannot publish Event {reason} on {namespace}/{name}: {source}")]
    PublishEvent {
        /// Namespace.
        namespace: String,
        /// The regarding object.
        name: String,
        /// The Event's reason.
        reason: &'static str,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// Listing the Events foresight published (the actions any replica
    /// took), to restore the guardrails' history on a new leader, failed.
    #[error("cannot list foresight's Events in {scope}: {source}")]
    ListEvents {
        /// The namespace, or "every namespace".
        scope: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// A rollout did not complete.
    #[error("rollout of Deployment {namespace}/{name} failed: {message}")]
    RolloutFailed {
        /// Namespace.
        namespace: String,
        /// Deployment.
        name: String,
        /// kubectl's `rollout status` message.
        message: String,
    },
    /// An action did not finish within its timeout.
    #[error("{action} did not finish within {seconds} s")]
    Timeout {
        /// The action.
        action: String,
        /// The timeout.
        seconds: u64,
    },
    /// Sending a page failed.
    #[error("cannot page through the webhook {url}: {source}")]
    PageSend {
        /// The webhook, without credentials.
        url: String,
        /// The HTTP error.
        source: reqwest::Error,
    },
    /// The webhook refused the page.
    #[error("the webhook {url} refused the page: HTTP {status}")]
    PageRefused {
        /// The webhook, without credentials.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// Joining leader election failed: reading the Lease, or creating it
    /// when it does not exist.
    #[error("cannot join leader election over Lease {namespace}/{name}: {source}")]
    JoinLease {
        /// Namespace.
        namespace: String,
        /// Lease.
        name: String,
        /// The lease manager's error.
        source: Box<kube_lease_manager::LeaseManagerError>,
    },
    /// Validating the leader Lease's durations failed: both must be whole
    /// seconds, the grace at least 1 s and shorter than the Lease.
    #[error(
        "invalid leader Lease durations: lease {duration:?}, grace {grace:?} (whole seconds, 1 s <= grace < lease)"
    )]
    LeaseDurations {
        /// `leaseDurationSeconds`.
        duration: std::time::Duration,
        /// How long before expiry the holder renews.
        grace: std::time::Duration,
    },
}

impl RemediationError {
    /// Whether joining the leader election may succeed if tried again: the
    /// API server out of reach or failing (transport, timeouts, 5xx, 408,
    /// 429), not refusing the request itself (401, 403, a name it rejects),
    /// which no retry fixes and which must stop an enforcing start loudly.
    pub fn is_transient(&self) -> bool {
        match self {
            RemediationError::JoinLease { source, .. } => match source.as_ref() {
                // 409: two replicas starting together both create the Lease.
                kube_lease_manager::LeaseManagerError::KubeError(kube::Error::Api(status)) => {
                    status.code >= 500 || matches!(status.code, 408 | 409 | 429)
                }
                kube_lease_manager::LeaseManagerError::KubeError(_)
                | kube_lease_manager::LeaseManagerError::LeaseAlreadyExists(_)
                | kube_lease_manager::LeaseManagerError::NonexistentLease(_) => true,
                _ => false,
            },
            _ => false,
        }
    }
}
