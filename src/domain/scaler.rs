use chrono::TimeDelta;
use serde::Serialize;

use super::MetricKind;
use super::forecast::Between;

/// Identifies a ScaledObject: KEDA sends both parts on every call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ScaledObjectKey {
    /// Kubernetes namespace of the ScaledObject.
    pub namespace: String,
    /// Name of the ScaledObject.
    pub name: String,
}

impl ScaledObjectKey {
    /// Builds a key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ScaledObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How predictions take part in decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Replicas are the maximum of the reactive and the predictive requirement.
    Predictive,
    /// Prediction is switched off entirely.
    Reactive,
    /// Serve the reactive answer but compute and record the predictive one, so
    /// operators can compare before trusting it.
    ForecastOnly,
    /// Hold levels chosen by backward induction over a learnt model of the
    /// next sample's need, trading pod-minutes against priced short minutes
    /// and flaps (for series sampled less often than the lead time).
    Holding,
}

impl Mode {
    /// The metadata spelling of each mode, in documentation order.
    pub const NAMES: [&'static str; 4] = ["predictive", "reactive", "forecastOnly", "holding"];

    /// The metadata spelling of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Predictive => "predictive",
            Mode::Reactive => "reactive",
            Mode::ForecastOnly => "forecastOnly",
            Mode::Holding => "holding",
        }
    }
}

/// Which seasonal periods the forecaster models.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Seasonality {
    /// Test candidate calendar periods (1 day, 1 week) against the history.
    Auto,
    /// Exactly these periods, in wall-clock time.
    Periods(#[serde(with = "serde_delta_vec")] Vec<TimeDelta>),
}

/// One signal that drives scaling: where to read it and what one replica carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Which of the four signals this is.
    pub kind: MetricKind,
    /// Source-specific query: PromQL, or a series id for file sources.
    pub query: String,
    /// Value one replica can carry (additive kinds) or the latency objective.
    pub target: f64,
}

/// The typed form of a ScaledObject's `scalerMetadata`.
///
/// Built only by `config::parse_metadata`, which guarantees the invariants
/// documented on each field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalerSpec {
    /// At least one, at most one per kind, in `MetricKind::ALL` order.
    pub metrics: Vec<MetricSpec>,
    /// Lower replica bound; `<= max_replicas`.
    pub min_replicas: u32,
    /// Upper replica bound; `>= 1`.
    pub max_replicas: u32,
    /// How far ahead replicas must be requested: pod start-up plus KEDA's sync.
    #[serde(with = "serde_delta")]
    pub lead_time: TimeDelta,
    /// Training window for the forecaster.
    #[serde(with = "serde_delta")]
    pub history: TimeDelta,
    /// Sampling step for range queries; file sources use their own step.
    #[serde(with = "serde_delta")]
    pub step: TimeDelta,
    /// Seasonal periods to model.
    pub seasonality: Seasonality,
    /// How predictions take part in decisions.
    pub mode: Mode,
    /// A signal value above which the workload counts as active.
    pub activation_threshold: f64,
    /// Upper quantile of the forecast used for the predictive requirement.
    pub forecast_quantile: f64,
    /// Whether the predictive requirement corrects the forecast by the
    /// latest observation where the forecast's errors persist
    /// (`forecastAnchor: latest`, the default; `off` uses the plain band).
    pub forecast_anchor: bool,
    /// How the forecast is read between its grid points
    /// (`forecastBetweenSamples`: `linear`, the default, or `hold`).
    pub forecast_between: Between,
    /// How fast replicas may change, and the guards around scale-down.
    pub rules: ScalingRules,
    /// How long decisions keep being served while the source fails: within
    /// it the policy holds on missing data; beyond it foresight answers
    /// `Unavailable`, so the HPA keeps the current replica count.
    #[serde(with = "serde_delta")]
    pub max_staleness: TimeDelta,
    /// When remediation last acted on this target (`lastRemediation`,
    /// stamped on the trigger by foresight's remediation engine): carried
    /// in the metadata so every replica of foresight, and a backtest,
    /// holds the same `cooldown` after it.
    pub last_remediation: Option<chrono::DateTime<chrono::Utc>>,
}

/// Rate limits and guards of the asymmetric policy. Defaults follow the
/// HPA's for scale-up and are slower than the HPA's for scale-down.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Scale-down ignores usage ratios (`value / (target × current)`)
    /// within this of 1, as the HPA does.
    pub tolerance: f64,
    /// Scale-up ignores usage ratios within this above 1. The HPA uses its
    /// tolerance both ways; foresight defaults to 0, because a workload a
    /// pod short is worse than one with a pod spare.
    pub scale_up_tolerance: f64,
    /// The tolerance of the HPA between foresight and the Deployment: with
    /// foresight as the replica authority (target 1), the HPA still ignores
    /// changes within this ratio of the current count. Scale-ups are widened
    /// to the smallest change it applies; scale-downs it would ignore wait
    /// until the smallest applied step is allowed. A widened step larger
    /// than one period's rate allowance waits for, and then holds, the
    /// periods it needs, so the rates hold on average.
    pub hpa_tolerance: f64,
    /// Scale-up may add this many pods per `scale_up_period`...
    pub scale_up_pods: u32,
    /// ...or this percentage of the count at the period's start, whichever is more.
    pub scale_up_percent: u32,
    /// Period of the scale-up limit.
    #[serde(with = "serde_delta")]
    pub scale_up_period: TimeDelta,
    /// Scale-down follows the highest recommendation within this window.
    #[serde(with = "serde_delta")]
    pub scale_down_stabilization: TimeDelta,
    /// Scale-down may remove this many pods per `scale_down_period`...
    pub scale_down_pods: u32,
    /// ...or this percentage, whichever is more (0 = pods only).
    pub scale_down_percent: u32,
    /// Period of the scale-down limit.
    #[serde(with = "serde_delta")]
    pub scale_down_period: TimeDelta,
    /// No scale-down while the forecast within this span needs the current
    /// count (0 disables).
    #[serde(with = "serde_delta")]
    pub scale_down_lookahead: TimeDelta,
    /// A surplus of at least this fraction of the current count is released
    /// after `scale_down_release_stabilization` instead of the full window
    /// (0 disables). Pre-provisioned pods that the load did not need are the
    /// costliest to hold, while holding small surpluses avoids flapping.
    pub scale_down_release_surplus: f64,
    /// The shorter stabilisation window that large surpluses follow.
    #[serde(with = "serde_delta")]
    pub scale_down_release_stabilization: TimeDelta,
    /// No scale-down for this long after a remediation action (0 disables).
    #[serde(with = "serde_delta")]
    pub cooldown: TimeDelta,
    /// Growing consumer lag gets the capacity to drain it within this time.
    #[serde(with = "serde_delta")]
    pub lag_drain_time: TimeDelta,
    /// A p99 breach lasting this long raises `LatencySloBreach`.
    #[serde(with = "serde_delta")]
    pub latency_breach_duration: TimeDelta,
    /// The confidence gate closes when the forecaster's validation or live
    /// MASE exceeds this.
    pub max_forecast_mase: f64,
    /// `mode: holding`: what one minute with fewer ready pods than the need
    /// costs, in minutes of the average need (the mean replica need over
    /// the training history): 4 means as much as running the average fleet
    /// for 4 minutes.
    pub short_minute_price: f64,
    /// `mode: holding`: what one flap (a change reversed less than a sample
    /// period later) costs, in the same unit. The default, 64, is where the
    /// plan stopped flapping on the eight real traces (at 4 it flapped up
    /// to 159 times where the HPA never did), for at most 0.005× more of
    /// the HPA's under-provisioned minutes and 0.007× of its replica-hours
    /// than at 4 (benches/README.md, Results on the real traces).
    pub flap_price: f64,
}

impl Default for ScalingRules {
    fn default() -> Self {
        Self {
            tolerance: 0.1,
            scale_up_tolerance: 0.0,
            hpa_tolerance: 0.1,
            scale_up_pods: 4,
            scale_up_percent: 100,
            scale_up_period: TimeDelta::seconds(15),
            scale_down_stabilization: TimeDelta::seconds(300),
            scale_down_pods: 1,
            scale_down_percent: 0,
            scale_down_period: TimeDelta::seconds(300),
            scale_down_lookahead: TimeDelta::minutes(10),
            scale_down_release_surplus: 0.0,
            scale_down_release_stabilization: TimeDelta::seconds(60),
            cooldown: TimeDelta::minutes(10),
            lag_drain_time: TimeDelta::minutes(5),
            latency_breach_duration: TimeDelta::minutes(5),
            max_forecast_mase: 1.5,
            short_minute_price: 4.0,
            flap_price: 64.0,
        }
    }
}

/// Serializes `TimeDelta` as a human duration string such as `"2m"`.
pub(crate) mod serde_delta {
    use chrono::TimeDelta;
    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_delta(*d))
    }

    /// Formats a duration in the largest unit that divides it exactly.
    pub(crate) fn format_delta(d: TimeDelta) -> String {
        let secs = d.num_seconds();
        for (unit, len) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if secs != 0 && secs % len == 0 {
                return format!("{}{unit}", secs / len);
            }
        }
        format!("{secs}s")
    }
}

mod serde_delta_vec {
    use chrono::TimeDelta;
    use serde::Serializer;
    use serde::ser::SerializeSeq;

    pub(super) fn serialize<S: Serializer>(v: &[TimeDelta], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for d in v {
            seq.serialize_element(&super::serde_delta::format_delta(*d))?;
        }
        seq.end()
    }
}
