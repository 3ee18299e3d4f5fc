use chrono::TimeDelta;

use crate::domain::{Between, Mode, ScalerSpec, ScalingRules};

/// Everything about a ScaledObject that shapes decisions, but not its queries.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// Lower replica bound.
    pub min_replicas: u32,
    /// Upper replica bound.
    pub max_replicas: u32,
    /// How predictions take part.
    pub mode: Mode,
    /// Signal value above which the workload counts as active.
    pub activation_threshold: f64,
    /// Predictive requirements look this far ahead.
    pub lead_time: TimeDelta,
    /// Upper quantile of the forecast that predictive requirements use.
    pub forecast_quantile: f64,
    /// Correct the forecast by the observation at the tick, where the
    /// forecast carries an anchor.
    pub forecast_anchor: bool,
    /// How the forecast is read between grid points: `Hold` lets a series
    /// sampled every few minutes buy capacity for the next sample only
    /// when it comes within the lead time.
    pub forecast_between: Between,
    /// Rate limits and guards.
    pub rules: ScalingRules,
    /// A latency breach may multiply replicas by at most this much per decision.
    pub max_latency_step_ratio: f64,
}

impl Behavior {
    /// The behaviour of a parsed ScaledObject spec.
    pub fn from_spec(spec: &ScalerSpec) -> Self {
        Self {
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            mode: spec.mode,
            activation_threshold: spec.activation_threshold,
            lead_time: spec.lead_time,
            forecast_quantile: spec.forecast_quantile,
            forecast_anchor: spec.forecast_anchor,
            forecast_between: spec.forecast_between,
            rules: spec.rules.clone(),
            max_latency_step_ratio: 2.0,
        }
    }
}
