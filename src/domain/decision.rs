use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MetricKind, Mode, Signal};

/// What bounded or shaped the final replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Scale-down held because the forecast shows a peak still ahead.
    PeakAhead,
    /// Scale-down held after a remediation action on this target.
    Cooldown,
    /// A signal had no fresh data, so the count was held.
    StaleData,
    /// The change was smaller than the HPA downstream would apply (see
    /// `hpaTolerance`): a scale-up widened to the smallest step it applies,
    /// a scale-down taken as that step when wanted anyway, or the change
    /// held until a larger step is due.
    HpaTolerance,
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
            Limiter::PeakAhead => "peak_ahead",
            Limiter::Cooldown => "cooldown",
            Limiter::StaleData => "stale_data",
            Limiter::HpaTolerance => "hpa_tolerance",
        }
    }
}

/// Whether and how the forecast took part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Prediction {
    /// The predictive requirement took part.
    Used,
    /// `mode: reactive`: prediction is switched off.
    Off,
    /// `mode: forecastOnly`: computed and recorded, not served.
    RecordedOnly,
    /// The confidence gate closed: the forecaster has been inaccurate.
    Gated {
        /// Why, with the numbers.
        reason: String,
    },
    /// No usable forecast exists for any additive signal.
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// One signal's contribution to a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricReading {
    /// Which signal.
    pub kind: MetricKind,
    /// Value read at the evaluation tick; `None` when the source had no data.
    pub observed: Option<f64>,
    /// Maximum forecast upper quantile over `[now, now + leadTime]`.
    pub forecast_max: Option<f64>,
    /// Replicas this signal needs now.
    pub reactive: Option<u32>,
    /// Replicas this signal will need within the lead time.
    pub predictive: Option<u32>,
    /// Extra replicas to drain growing consumer lag within `lagDrainTime`.
    pub lag_drain: Option<u32>,
    /// Rolling MASE of the forecast against what was then observed.
    pub live_mase: Option<f64>,
}

/// A replica decision and everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Evaluation tick this decision belongs to (aligned to the wall clock).
    pub at: DateTime<Utc>,
    /// The replica count served to KEDA.
    pub desired_replicas: u32,
    /// Whether the workload should be active (KEDA scales from/to zero on this).
    pub active: bool,
    /// Highest reactive requirement over signals (lag drain included).
    pub reactive: u32,
    /// Highest predictive requirement over signals, when a forecast existed.
    pub predictive: Option<u32>,
    /// The requirement that was served, clamped to the bounds, before rate
    /// limits and stabilisation.
    pub recommendation: u32,
    /// The signal whose requirement set the recommendation.
    pub driver: Option<MetricKind>,
    /// What bounded the final count.
    pub limiter: Limiter,
    /// Pods the policy let go before the full stabilisation window because
    /// the surplus reached `scaleDownReleaseSurplus`. A field rather than
    /// only a note, so `/metrics` can count early releases: each is a
    /// scale-down a rise may undo.
    #[serde(default)]
    pub released_early: Option<u32>,
    /// Mode the decision was made in.
    pub mode: Mode,
    /// Whether the forecast took part, and if not, why.
    pub prediction: Prediction,
    /// Upper quantile of the forecast used for predictive requirements.
    pub forecast_quantile: f64,
    /// Per-signal detail.
    pub readings: Vec<MetricReading>,
    /// Signals raised for remediation at this tick.
    pub signals: Vec<Signal>,
    /// Human-readable notes: stale data, forecast problems.
    pub notes: Vec<String>,
}
