use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{MetricKind, Mode};

/// What bounded or shaped the final replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Limiter {
    /// The recommendation passed through unchanged.
    None,
    /// Raised to `minReplicaCount`.
    MinBound,
    /// Cut to `maxReplicaCount`.
    MaxBound,
    /// Scale-up capped by the per-period step limit.
    ScaleUpRate,
    /// Scale-down held by the stabilisation window.
    Stabilization,
    /// Scale-down capped by the per-period step limit.
    ScaleDownRate,
    /// A signal had no fresh data, so the count was held.
    StaleData,
}

impl Limiter {
    /// A stable snake_case label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Limiter::None => "none",
            Limiter::MinBound => "min_bound",
            Limiter::MaxBound => "max_bound",
            Limiter::ScaleUpRate => "scale_up_rate",
            Limiter::Stabilization => "stabilization",
            Limiter::ScaleDownRate => "scale_down_rate",
            Limiter::StaleData => "stale_data",
        }
    }
}

/// One signal's contribution to a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricReading {
    /// Which signal.
    pub kind: MetricKind,
    /// Value read at the evaluation tick; `None` when the source had no data.
    pub observed: Option<f64>,
    /// Maximum forecast upper quantile over `[now, now + leadTime]`, if a
    /// usable forecast exists.
    pub forecast_max: Option<f64>,
    /// Replicas this signal needs now.
    pub reactive: Option<u32>,
    /// Replicas this signal will need within the lead time.
    pub predictive: Option<u32>,
}

/// A replica decision and everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Evaluation tick this decision belongs to (aligned to the wall clock).
    pub at: DateTime<Utc>,
    /// The replica count served to KEDA.
    pub desired_replicas: u32,
    /// Whether the workload should be active (KEDA scales from/to zero on this).
    pub active: bool,
    /// Highest reactive requirement over signals.
    pub reactive: u32,
    /// Highest predictive requirement over signals, when prediction ran.
    pub predictive: Option<u32>,
    /// The signal whose requirement set the recommendation.
    pub driver: Option<MetricKind>,
    /// What bounded the final count.
    pub limiter: Limiter,
    /// Mode the decision was made in.
    pub mode: Mode,
    /// Per-signal detail.
    pub readings: Vec<MetricReading>,
    /// Human-readable notes: why prediction was off, which data was stale.
    pub notes: Vec<String>,
}
