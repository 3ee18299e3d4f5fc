//! What the policy remembers between ticks. A value type: `decide` takes the
//! previous state and returns the next, so a sequence of decisions is a pure
//! function of the inputs (and replicas of foresight can replay it).

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::MetricKind;

/// Live forecast errors needed before they can close the confidence gate.
pub(super) const MIN_LIVE_SAMPLES: usize = 8;
/// Span of the rolling live-error window.
pub(super) const LIVE_ERROR_WINDOW: TimeDelta = TimeDelta::hours(1);
/// Once the live MASE has closed the confidence gate, it reopens only below
/// this share of `maxForecastMase`. Without the margin the gate chattered as
/// single errors entered and left the hour's window, and a reopening a tick
/// after a reactive release bought the released pods back.
pub(super) const GATE_REOPEN_FRACTION: f64 = 0.8;
/// Span over which consumer-lag growth is measured.
pub(super) const LAG_TREND_WINDOW: TimeDelta = TimeDelta::minutes(2);
/// Span over which "demand kept rising" is judged for `AtCeiling`.
pub(super) const DEMAND_TREND_WINDOW: TimeDelta = TimeDelta::minutes(1);

/// Per-signal memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct MetricMemory {
    /// Recent observations, for lag growth; oldest first.
    pub(super) values: VecDeque<(DateTime<Utc>, f64)>,
    /// The count in force at each tick of the trend window and of the
    /// start-up before it: the fewest is what ran while the growth was
    /// measured (pods asked for since may still be starting; see
    /// `requirements::counts_window`).
    pub(super) counts: VecDeque<(DateTime<Utc>, u32)>,
    /// Absolute forecast errors scaled by the in-sample MASE denominator,
    /// one per forecast slot.
    pub(super) errors: VecDeque<(DateTime<Utc>, f64)>,
    /// The forecast slot last scored, so each slot is scored once: at the
    /// first tick inside it, like-for-like with how training data is
    /// sampled (ticks within a slot carry variation the forecast's
    /// resolution cannot see).
    pub(super) last_scored_slot: Option<DateTime<Utc>>,
    /// First tick of the current unbroken latency breach.
    pub(super) breach_since: Option<DateTime<Utc>>,
    /// Fastest observed lag drain per replica, in units per second.
    pub(super) drain_per_replica: Option<f64>,
    /// Whether the live error closed the confidence gate and has not yet
    /// fallen far enough to reopen it (see [`GATE_REOPEN_FRACTION`]).
    pub(super) live_gate_closed: bool,
    /// `mode: holding`: the plan and the count it holds.
    pub(super) holding: super::holding::HoldMemory,
}

impl MetricMemory {
    /// Rolling MASE, once enough samples exist.
    pub(super) fn live_mase(&self) -> Option<f64> {
        (self.errors.len() >= MIN_LIVE_SAMPLES)
            .then(|| self.errors.iter().map(|(_, e)| e).sum::<f64>() / self.errors.len() as f64)
    }

    /// Least-squares slope of recent values, in units per second, when the
    /// series "keeps growing": positive slope and no drop over the last
    /// three observations.
    pub(super) fn growth_per_second(&self) -> Option<f64> {
        let n = self.values.len();
        if n < 3 {
            return None;
        }
        let last3: Vec<f64> = self.values.iter().skip(n - 3).map(|(_, v)| *v).collect();
        if !(last3[0] <= last3[1] && last3[1] <= last3[2] && last3[0] < last3[2]) {
            return None;
        }
        let t0 = self.values[0].0;
        let xs: Vec<f64> = self
            .values
            .iter()
            .map(|(t, _)| (*t - t0).num_milliseconds() as f64 / 1000.0)
            .collect();
        let ys: Vec<f64> = self.values.iter().map(|(_, v)| *v).collect();
        let (mx, my) = (
            xs.iter().sum::<f64>() / n as f64,
            ys.iter().sum::<f64>() / n as f64,
        );
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let slope = sxy / sxx;
        (slope > 0.0).then_some(slope)
    }
}

/// A scale-up whose effect is checked `2 × leadTime` later (`NotKeepingUp`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScaleUp {
    /// When replicas went up.
    pub(super) at: DateTime<Utc>,
    /// Replicas before.
    pub(super) from: u32,
    /// Replicas after.
    pub(super) to: u32,
    /// Backlog-like signals' values at that moment.
    pub(super) values: Vec<(MetricKind, f64)>,
}

/// Memory between decisions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyState {
    /// The count served by the last decision.
    pub(super) current: Option<u32>,
    /// Clamped recommendations within the stabilisation window, oldest first.
    pub(super) recommendations: VecDeque<(DateTime<Utc>, u32)>,
    /// Replica changes with their times, for per-period rate limits.
    pub(super) changes: VecDeque<(DateTime<Utc>, i64)>,
    /// Scale-up's pacing beyond the single period `changes` covers.
    pub(super) up_pace: Pace,
    /// Scale-down's pacing beyond the single period `changes` covers.
    pub(super) down_pace: Pace,
    /// Unclamped demand over the last minute, for `AtCeiling`.
    pub(super) demand: VecDeque<(DateTime<Utc>, u32)>,
    /// Scale-ups awaiting their response check.
    pub(super) scale_ups: VecDeque<ScaleUp>,
    /// Per-signal memory.
    pub(super) metrics: BTreeMap<MetricKind, MetricMemory>,
}

impl PolicyState {
    /// The count served by the last decision.
    pub fn current(&self) -> Option<u32> {
        self.current
    }
}

/// When the last change in one direction happened, and until when a step
/// wider than one period's allowance holds further changes. The HPA ignores
/// steps within its tolerance (one pod of ten or more), so a step of the
/// smallest size it applies may exceed what one period allows; it is then
/// taken only when it fits the configured *average* rate, and the periods it
/// used up are kept here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pace {
    /// The last change in this direction, to find how many periods were free.
    pub(super) last: Option<DateTime<Utc>>,
    /// A widened step at `t` spanning `n` periods holds the direction until
    /// `t + n × period`.
    pub(super) hold_until: Option<DateTime<Utc>>,
}

/// Drops entries older than `span` before `now`.
pub(super) fn trim<T>(q: &mut VecDeque<(DateTime<Utc>, T)>, now: DateTime<Utc>, span: TimeDelta) {
    while q.front().is_some_and(|(t, _)| now - *t > span) {
        q.pop_front();
    }
}
