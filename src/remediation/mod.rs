//! Remediation: what foresight does when scaling alone cannot keep up.
//!
//! The policy raises signals (`AtCeiling`, `CapacityExhaustionPredicted`,
//! `NotKeepingUp`, `LatencySloBreach`); this module turns them into diagnosed
//! incidents and bounded actions:
//!
//! * [`diagnose`](diagnose()) (pure): root cause, confidence and evidence from
//!   the signal, the target's last rollout and the pre-deploy baseline.
//! * [`Guardrails`] (pure): confidence threshold, dry-run, namespace
//!   allow-list, per-(action, target) circuit breaker, blast radius.
//! * `rollout` (pure): `kubectl rollout undo` / `restart` / `status` rules
//!   over k8s-openapi types: which ReplicaSet, which patch, done or not.
//! * [`kube`](self::kube): the only file that talks to the Kubernetes API,
//!   leader election over a Lease included.
//! * [`AuditLog`]: durable JSON lines, written before and after every action.
//! * [`Pager`]: the webhook a human is paged through.
//! * [`Engine`]: ties them together for `serve` and the operator commands.
//!
//! Time is always passed in: nothing below `engine` and `kube` reads a clock.

mod alerts;
mod audit;
mod baseline;
mod diagnose;
mod engine;
mod error;
mod guardrails;
mod incident;
pub mod kube;
mod page;
mod quantity;
mod rollout;

pub use alerts::{AlertmanagerAlert, AlertmanagerPayload, alerts_router};
pub use audit::{
    ActionTrail, AuditLog, AuditRecord, IncidentSummary, Rotation, SkippedLine, orphaned, summarize,
};
pub use baseline::SourceBaselines;
pub use diagnose::{AlertTrigger, Baseline, RolloutContext, Situation, diagnose};
pub use engine::{
    BaselineSource, DecisionLookup, Engine, EngineOptions, Handled, IncidentCounter, Leadership,
    TargetCount, incident_counter,
};
pub use error::RemediationError;
pub use guardrails::{Guardrails, PageReason, RemediationMode, Verdict};
pub use incident::{
    Action, ActionKind, ActionOutcome, Cause, Diagnosis, Evidence, Incident, Target,
};
pub use page::{PageFormat, Pager};
pub use rollout::{
    CHANGE_CAUSE_ANNOTATION, RESTARTED_AT_ANNOTATION, REVISION_ANNOTATION, RevisionError,
    RollbackPlan, RolloutStatus, restart_patch, rollback_patch, rollout_status, select_revision,
    templates_equal_ignoring_hash,
};

use chrono::TimeDelta;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// Remediation settings. Defaults are the issue's: dry-run, 15-minute deploy
/// window, 0.85 confidence threshold, 3 actions per hour per target, 25% of
/// targets per 10 minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct RemediationConfig {
    /// Dry-run records what would be done; enforce does it.
    pub mode: RemediationMode,
    /// A regression starting within this long after a new revision points at
    /// that revision.
    pub deploy_window: TimeDelta,
    /// Diagnoses below this confidence page a human instead of acting.
    pub confidence_threshold: f64,
    /// Namespaces where actions may run; `None` means every namespace.
    pub allowed_namespaces: Option<BTreeSet<String>>,
    /// The same action on the same target at most this many times ...
    pub breaker_max: usize,
    /// ... within this window; past it the engine escalates instead.
    pub breaker_window: TimeDelta,
    /// At most this share of the remediation-enabled targets is touched ...
    pub blast_radius: f64,
    /// ... within this window.
    pub blast_window: TimeDelta,
    /// Upper bound on every action, including its rollout watch.
    pub action_timeout: Duration,
    /// `RaiseCeiling` never sets `maxReplicaCount` above this.
    pub hard_cap: u32,
    /// `RaiseCeiling` raises `maxReplicaCount` by at most this much at once.
    pub max_ceiling_step: u32,
    /// A signal repeating on every tick opens one incident per this window
    /// and target, not one per tick.
    pub dedupe_window: TimeDelta,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            mode: RemediationMode::DryRun,
            deploy_window: TimeDelta::minutes(15),
            confidence_threshold: 0.85,
            allowed_namespaces: None,
            breaker_max: 3,
            breaker_window: TimeDelta::hours(1),
            blast_radius: 0.25,
            blast_window: TimeDelta::minutes(10),
            action_timeout: Duration::from_secs(300),
            hard_cap: 200,
            max_ceiling_step: 10,
            dedupe_window: TimeDelta::minutes(10),
        }
    }
}

/// Whether `foresight serve` runs the remediation engine, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RemediationSetting {
    /// No remediation engine.
    Off,
    /// Diagnose and record what would be done; change nothing.
    #[default]
    DryRun,
    /// Act within the guardrails.
    Enforce,
}
