//! The incident record: what happened, what foresight concluded, what it did.
//! Plain serde types; the audit log stores them as JSON lines.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::guardrails::Verdict;
use crate::domain::Signal;

/// The workload an incident is about: the ScaledObject that raised the
/// signal and the Deployment it scales.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Namespace of both objects.
    pub namespace: String,
    /// The ScaledObject's name.
    pub scaled_object: String,
    /// The Deployment in its `scaleTargetRef`.
    pub deployment: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.deployment)
    }
}

/// Root cause of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cause {
    /// A regression that started within the deploy window of a new revision.
    BadDeploy,
    /// At the replica ceiling, demand still rising, no recent deploy.
    CapacityCeiling,
    /// The newest ReplicaSet's pods are not becoming ready, or the rollout
    /// exceeded its progress deadline.
    CrashLoop,
    /// A latency breach that added replicas did not fix, with no deploy.
    DependencyFailure,
    /// Nothing above fits well enough.
    Unknown,
}

impl Cause {
    /// The cause as a metric label, e.g. `bad_deploy`.
    pub fn label(self) -> &'static str {
        match self {
            Cause::BadDeploy => "bad_deploy",
            Cause::CapacityCeiling => "capacity_ceiling",
            Cause::CrashLoop => "crash_loop",
            Cause::DependencyFailure => "dependency_failure",
            Cause::Unknown => "unknown",
        }
    }
}

/// One fact a diagnosis rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// When the fact was observed or happened.
    pub at: Option<DateTime<Utc>>,
    /// Where it comes from: `signal`, `rollout`, `baseline`, `replicas`.
    pub source: String,
    /// The fact, for a person.
    pub detail: String,
}

impl Evidence {
    pub(crate) fn new(at: Option<DateTime<Utc>>, source: &str, detail: impl Into<String>) -> Self {
        Self {
            at,
            source: source.to_string(),
            detail: detail.into(),
        }
    }
}

/// What foresight concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// The root cause.
    pub cause: Cause,
    /// 0 to 1: how sure the diagnosis is.
    pub confidence: f64,
    /// The facts it rests on, in the order they were weighed.
    pub evidence: Vec<Evidence>,
    /// The action the cause calls for, if any (acted on only above the
    /// confidence threshold and within the guardrails).
    pub action: Option<Action>,
}

/// The kind of an action, for circuit breakers, metrics and Event reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ActionKind {
    /// `kubectl rollout undo`.
    Rollback,
    /// `kubectl rollout restart`.
    Restart,
    /// Raise the ScaledObject's `maxReplicaCount`.
    RaiseCeiling,
}

impl ActionKind {
    /// The Kubernetes Event reason: distinct per action, because the event
    /// recorder folds repeats of one reason within 6 minutes into a series.
    pub fn event_reason(self) -> &'static str {
        match self {
            ActionKind::Rollback => "ForesightRollback",
            ActionKind::Restart => "ForesightRestart",
            ActionKind::RaiseCeiling => "ForesightRaiseCeiling",
        }
    }

    /// The action an Event reason stands for, if it is one of ours.
    pub fn from_event_reason(reason: &str) -> Option<Self> {
        [Self::Rollback, Self::Restart, Self::RaiseCeiling]
            .into_iter()
            .find(|k| k.event_reason() == reason)
    }
}

/// A bounded change to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// Roll the Deployment back, as `kubectl rollout undo` does.
    #[serde(rename_all = "camelCase")]
    Rollback {
        /// Namespace.
        namespace: String,
        /// Deployment.
        deployment: String,
        /// The revision to restore; `None` is the previous one.
        to_revision: Option<u64>,
    },
    /// Restart the Deployment's pods, as `kubectl rollout restart` does.
    #[serde(rename_all = "camelCase")]
    Restart {
        /// Namespace.
        namespace: String,
        /// Deployment.
        deployment: String,
    },
    /// Raise a ScaledObject's `maxReplicaCount`.
    #[serde(rename_all = "camelCase")]
    RaiseCeiling {
        /// Namespace.
        namespace: String,
        /// ScaledObject.
        scaled_object: String,
        /// The ceiling now.
        from: u32,
        /// The new ceiling.
        to: u32,
    },
}

impl Action {
    /// The action's kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Rollback { .. } => ActionKind::Rollback,
            Action::Restart { .. } => ActionKind::Restart,
            Action::RaiseCeiling { .. } => ActionKind::RaiseCeiling,
        }
    }

    /// The namespace acted in.
    pub fn namespace(&self) -> &str {
        match self {
            Action::Rollback { namespace, .. }
            | Action::Restart { namespace, .. }
            | Action::RaiseCeiling { namespace, .. } => namespace,
        }
    }

    /// `NAMESPACE/NAME` of the object acted on: the circuit breaker's and
    /// the blast radius' unit.
    pub fn object(&self) -> String {
        match self {
            Action::Rollback {
                namespace,
                deployment,
                ..
            }
            | Action::Restart {
                namespace,
                deployment,
            } => format!("{namespace}/{deployment}"),
            Action::RaiseCeiling {
                namespace,
                scaled_object,
                ..
            } => format!("{namespace}/{scaled_object}"),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Rollback {
                to_revision: Some(r),
                ..
            } => write!(f, "rollback {} to revision {r}", self.object()),
            Action::Rollback { .. } => {
                write!(f, "rollback {} to the previous revision", self.object())
            }
            Action::Restart { .. } => write!(f, "restart {}", self.object()),
            Action::RaiseCeiling { from, to, .. } => {
                write!(
                    f,
                    "raise maxReplicaCount of {} from {from} to {to}",
                    self.object()
                )
            }
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum ActionOutcome {
    /// The change was made (and, for Deployments, rolled out).
    #[serde(rename_all = "camelCase")]
    Done {
        /// What was done, e.g. `rolled back to revision 6`.
        message: String,
    },
    /// Nothing needed doing (e.g. the template already matches the
    /// revision); running an action twice ends here.
    #[serde(rename_all = "camelCase")]
    Skipped {
        /// Why.
        message: String,
    },
    /// The action was refused before any change (e.g. a paused Deployment).
    #[serde(rename_all = "camelCase")]
    Refused {
        /// Why.
        message: String,
    },
    /// Dry run: what would have been done; nothing was changed.
    #[serde(rename_all = "camelCase")]
    DryRun {
        /// What would have been done.
        message: String,
    },
    /// The action failed or timed out.
    #[serde(rename_all = "camelCase")]
    Failed {
        /// The error.
        message: String,
    },
}

impl ActionOutcome {
    /// The outcome's message.
    pub fn message(&self) -> &str {
        match self {
            ActionOutcome::Done { message }
            | ActionOutcome::Skipped { message }
            | ActionOutcome::Refused { message }
            | ActionOutcome::DryRun { message }
            | ActionOutcome::Failed { message } => message,
        }
    }
}

/// A diagnosed incident with the engine's verdict, as opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Unique, sortable id: `YYYYMMDDTHHMMSSZ-namespace-deployment-n`.
    pub id: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// The workload.
    pub target: Target,
    /// The signal that opened it, as the policy raised it.
    pub signal: Option<Signal>,
    /// What foresight concluded.
    pub diagnosis: Diagnosis,
    /// What the guardrails allowed.
    pub verdict: Verdict,
}
