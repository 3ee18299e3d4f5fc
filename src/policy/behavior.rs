use chrono::TimeDelta;

use crate::domain::{Mode, ScalerSpec};

/// Limits on how fast replicas change, and the bounds; the HPA's defaults
/// for scale-up, and a slower scale-down than the HPA's.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// Lower bound on replicas.
    pub min_replicas: u32,
    /// Upper bound on replicas.
    pub max_replicas: u32,
    /// How predictions take part.
    pub mode: Mode,
    /// Signal value above which the workload counts as active.
    pub activation_threshold: f64,
    /// Scale-up may add this many pods per `scale_up_period`...
    pub scale_up_pods: u32,
    /// ...or this percentage of the replicas at the period's start, whichever is more.
    pub scale_up_percent: u32,
    /// Period over which scale-up limits apply.
    pub scale_up_period: TimeDelta,
    /// Scale-down uses the highest recommendation within this window.
    pub scale_down_window: TimeDelta,
    /// Scale-down may remove at most this many pods per `scale_down_period`.
    pub scale_down_pods: u32,
    /// Period over which scale-down limits apply.
    pub scale_down_period: TimeDelta,
    /// A latency breach may multiply replicas by at most this much per decision.
    pub max_latency_step_ratio: f64,
}

impl Behavior {
    /// The behaviour for a parsed ScaledObject spec, with default rates.
    pub fn from_spec(spec: &ScalerSpec) -> Self {
        Self {
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            mode: spec.mode,
            activation_threshold: spec.activation_threshold,
            scale_up_pods: 4,
            scale_up_percent: 100,
            scale_up_period: TimeDelta::seconds(15),
            scale_down_window: TimeDelta::seconds(300),
            scale_down_pods: 1,
            scale_down_period: TimeDelta::seconds(300),
            max_latency_step_ratio: 2.0,
        }
    }
}
