use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::MetricKind;

/// What the policy tells remediation when scaling alone cannot keep up.
///
/// Emitted with the decision of the tick that observed it; the remediation
/// engine (not the policy) decides whether and how to act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Signal {
    /// The recommendation was clamped at `maxReplicaCount` while demand kept
    /// rising over the last ticks.
    #[serde(rename_all = "camelCase")]
    AtCeiling {
        /// The tick.
        at: DateTime<Utc>,
        /// The ceiling that clamped.
        max_replicas: u32,
        /// Replicas demand would need now, unclamped.
        demand_replicas: u32,
    },
    /// The forecast peak within the horizon needs more than `maxReplicaCount`
    /// can carry.
    #[serde(rename_all = "camelCase")]
    CapacityExhaustionPredicted {
        /// The tick.
        at: DateTime<Utc>,
        /// The signal whose forecast breaches.
        kind: MetricKind,
        /// First forecast instant whose upper quantile exceeds capacity.
        breach_at: DateTime<Utc>,
        /// Forecast peak (upper quantile) within the horizon.
        peak: f64,
        /// What `maxReplicaCount` replicas carry: `maxReplicaCount × target`.
        capacity: f64,
        /// The trigger's `maxReplicaCount`, so remediation can tell a
        /// trigger capped below its ScaledObject from the ScaledObject's
        /// ceiling; 0 in records written before it was recorded.
        #[serde(default)]
        max_replicas: u32,
    },
    /// Replicas went up but the signal did not respond within `2 × leadTime`.
    #[serde(rename_all = "camelCase")]
    NotKeepingUp {
        /// The tick.
        at: DateTime<Utc>,
        /// The signal that did not respond.
        kind: MetricKind,
        /// When the scale-up happened.
        scaled_up_at: DateTime<Utc>,
        /// Replicas before the scale-up.
        from_replicas: u32,
        /// Replicas after the scale-up.
        to_replicas: u32,
        /// The signal's value at the scale-up.
        value_then: f64,
        /// The signal's value now.
        value_now: f64,
    },
    /// p99 latency has stayed above its objective for the configured duration.
    #[serde(rename_all = "camelCase")]
    LatencySloBreach {
        /// The tick.
        at: DateTime<Utc>,
        /// First tick of the unbroken breach.
        since: DateTime<Utc>,
        /// p99 now.
        p99: f64,
        /// The objective.
        target: f64,
    },
}

impl Signal {
    /// A stable snake_case name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Signal::AtCeiling { .. } => "at_ceiling",
            Signal::CapacityExhaustionPredicted { .. } => "capacity_exhaustion_predicted",
            Signal::NotKeepingUp { .. } => "not_keeping_up",
            Signal::LatencySloBreach { .. } => "latency_slo_breach",
        }
    }

    /// Whether it says the count is (or will be) held at `maxReplicaCount`:
    /// a matter of the bound, where the others are about the workload.
    pub fn is_about_the_ceiling(&self) -> bool {
        matches!(
            self,
            Signal::AtCeiling { .. } | Signal::CapacityExhaustionPredicted { .. }
        )
    }
}
