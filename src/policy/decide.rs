use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

use super::Behavior;
use crate::domain::{Decision, Limiter, MetricKind, MetricReading, Mode};

/// One signal's inputs at an evaluation tick.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInput {
    /// Which signal.
    pub kind: MetricKind,
    /// Per-replica target (additive kinds) or latency objective.
    pub target: f64,
    /// Value at the tick; `None` when the source had no fresh data.
    pub observed: Option<f64>,
    /// Highest forecast upper quantile over `[now, now + leadTime]`; `None`
    /// when no usable forecast exists.
    pub forecast_max: Option<f64>,
}

/// The policy cannot produce a first decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No signal has data and there is no earlier decision to hold; serving
    /// any number here could scale a running workload down.
    #[error("no data for any signal yet and no earlier decision to hold")]
    NoData,
}

/// Memory between decisions. A value type: `decide` returns the next state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyState {
    /// The count served by the last decision.
    current: Option<u32>,
    /// Clamped recommendations within the scale-down window, oldest first.
    recommendations: VecDeque<(DateTime<Utc>, u32)>,
    /// Replica changes with their times, for per-period rate limits.
    changes: VecDeque<(DateTime<Utc>, i64)>,
}

impl PolicyState {
    /// The count served by the last decision.
    pub fn current(&self) -> Option<u32> {
        self.current
    }
}

fn ceil_div(value: f64, target: f64) -> u32 {
    let r = (value / target).ceil();
    if r.is_finite() && r > 0.0 {
        r.min(u32::MAX as f64) as u32
    } else {
        0
    }
}

/// Decides the replica count at `now` from the signals and the state.
pub fn decide(
    b: &Behavior,
    inputs: &[MetricInput],
    state: &PolicyState,
    now: DateTime<Utc>,
) -> Result<(Decision, PolicyState), PolicyError> {
    let mut notes = Vec::new();
    let any_data = inputs.iter().any(|i| i.observed.is_some());
    let stale = inputs.iter().any(|i| i.observed.is_none());
    if !any_data && state.current.is_none() {
        return Err(PolicyError::NoData);
    }
    let base = state.current.unwrap_or(b.min_replicas).max(1);
    let use_prediction = b.mode == Mode::Predictive;

    let mut readings = Vec::with_capacity(inputs.len());
    let (mut reactive_max, mut predictive_max) = (0u32, None::<u32>);
    let (mut recommendation, mut driver) = (None::<u32>, None);
    for i in inputs {
        let reactive = match (i.kind.is_additive(), i.observed) {
            (_, None) => None,
            (true, Some(v)) => Some(ceil_div(v, i.target)),
            // Latency is not additive: scale by the breach ratio, like the
            // HPA does for utilisation, bounded per step. Under target it has
            // no opinion, so it never scales down on its own.
            (false, Some(v)) if v > i.target => {
                let ratio = (v / i.target).min(b.max_latency_step_ratio);
                Some((f64::from(base) * ratio).ceil() as u32)
            }
            (false, Some(_)) => None,
        };
        let predictive = if b.mode != Mode::Reactive && i.kind.is_additive() {
            i.forecast_max.map(|f| ceil_div(f, i.target))
        } else {
            None
        };
        if i.observed.is_none() {
            notes.push(format!("{}: no fresh data, holding", i.kind));
        }
        if b.mode != Mode::Reactive && i.kind.is_additive() && i.forecast_max.is_none() {
            notes.push(format!("{}: no usable forecast, reactive only", i.kind));
        }
        reactive_max = reactive_max.max(reactive.unwrap_or(0));
        if let Some(p) = predictive {
            predictive_max = Some(predictive_max.unwrap_or(0).max(p));
        }
        let need = match (reactive, predictive.filter(|_| use_prediction)) {
            (Some(r), Some(p)) => Some(r.max(p)),
            (r, p) => r.or(p),
        };
        if let Some(n) = need
            && recommendation.is_none_or(|r| n > r)
        {
            recommendation = Some(n);
            driver = Some(i.kind);
        }
        readings.push(MetricReading {
            kind: i.kind,
            observed: i.observed,
            forecast_max: i.forecast_max,
            reactive,
            predictive,
        });
    }
    if b.mode == Mode::ForecastOnly {
        notes.push("forecastOnly: serving the reactive count; predictive recorded only".into());
    }

    let active = inputs.iter().any(|i| {
        i.observed.is_some_and(|v| v > b.activation_threshold)
            || (use_prediction && i.forecast_max.is_some_and(|f| f > b.activation_threshold))
    });

    // No opinion at all (e.g. latency under target only): hold.
    let raw = recommendation.unwrap_or(state.current.unwrap_or(b.min_replicas));
    let (clamped, mut limiter) = if raw < b.min_replicas {
        (b.min_replicas, Limiter::MinBound)
    } else if raw > b.max_replicas {
        (b.max_replicas, Limiter::MaxBound)
    } else {
        (raw, Limiter::None)
    };

    let mut next = state.clone();
    next.recommendations
        .retain(|(t, _)| now - *t < b.scale_down_window);
    next.recommendations.push_back((now, clamped));
    let horizon = b.scale_up_period.max(b.scale_down_period);
    next.changes.retain(|(t, _)| now - *t < horizon);

    let desired = match state.current {
        None => clamped,
        Some(current) if clamped > current => {
            let limit = scale_up_limit(b, current, &next.changes, now);
            if clamped > limit {
                limiter = Limiter::ScaleUpRate;
                limit
            } else {
                clamped
            }
        }
        Some(current) if clamped < current => {
            // Highest recommendation in the window (includes this one).
            let stabilized = next
                .recommendations
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(clamped);
            if stale {
                limiter = Limiter::StaleData;
                current
            } else if stabilized >= current {
                limiter = Limiter::Stabilization;
                current
            } else {
                let floor = scale_down_floor(b, current, &next.changes, now);
                if stabilized < floor {
                    limiter = Limiter::ScaleDownRate;
                    floor
                } else {
                    if stabilized > clamped {
                        limiter = Limiter::Stabilization;
                    }
                    stabilized
                }
            }
        }
        Some(current) => current,
    };

    // Bounds win over rate limits and stabilisation, as in the HPA: a lowered
    // maxReplicaCount applies at once.
    let desired = if desired > b.max_replicas {
        limiter = Limiter::MaxBound;
        b.max_replicas
    } else if desired < b.min_replicas {
        limiter = Limiter::MinBound;
        b.min_replicas
    } else {
        desired
    };

    if let Some(current) = state.current {
        let delta = i64::from(desired) - i64::from(current);
        if delta != 0 {
            next.changes.push_back((now, delta));
        }
    }
    next.current = Some(desired);

    Ok((
        Decision {
            at: now,
            desired_replicas: desired,
            active,
            reactive: reactive_max,
            predictive: predictive_max,
            driver,
            limiter,
            mode: b.mode,
            readings,
            notes,
        },
        next,
    ))
}

/// Sum of changes of one sign within `period` before `now`.
fn changed_within(
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
    period: TimeDelta,
    up: bool,
) -> i64 {
    changes
        .iter()
        .filter(|(t, d)| now - *t < period && (*d > 0) == up)
        .map(|(_, d)| *d)
        .sum()
}

/// The HPA's scale-up rule with `selectPolicy: Max`: relative to the count at
/// the start of the period, allow the larger of +pods and +percent.
fn scale_up_limit(
    b: &Behavior,
    current: u32,
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
) -> u32 {
    let start = (i64::from(current) - changed_within(changes, now, b.scale_up_period, true)).max(0);
    let by_pods = start + i64::from(b.scale_up_pods);
    let by_percent = (start as f64 * (1.0 + f64::from(b.scale_up_percent) / 100.0)).ceil() as i64;
    let limit = by_pods.max(by_percent).max(i64::from(current));
    u32::try_from(limit).unwrap_or(u32::MAX)
}

/// The lowest count scale-down may reach now: at most `scale_down_pods`
/// removed per period, counted from the period's start.
fn scale_down_floor(
    b: &Behavior,
    current: u32,
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
) -> u32 {
    let start = i64::from(current) - changed_within(changes, now, b.scale_down_period, false);
    let floor = (start - i64::from(b.scale_down_pods)).max(0);
    u32::try_from(floor.min(i64::from(current))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behavior() -> Behavior {
        Behavior {
            min_replicas: 1,
            max_replicas: 50,
            mode: Mode::Predictive,
            activation_threshold: 0.0,
            scale_up_pods: 4,
            scale_up_percent: 100,
            scale_up_period: TimeDelta::seconds(15),
            scale_down_window: TimeDelta::seconds(300),
            scale_down_pods: 1,
            scale_down_period: TimeDelta::seconds(300),
            max_latency_step_ratio: 2.0,
        }
    }

    fn queue(observed: Option<f64>, forecast: Option<f64>) -> Vec<MetricInput> {
        vec![MetricInput {
            kind: MetricKind::QueueDepth,
            target: 10.0,
            observed,
            forecast_max: forecast,
        }]
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn predictive_requirement_leads_reactive() {
        let (d, _) = decide(
            &behavior(),
            &queue(Some(30.0), Some(75.0)),
            &PolicyState::default(),
            t(0),
        )
        .unwrap();
        assert_eq!(
            (d.reactive, d.predictive, d.desired_replicas),
            (3, Some(8), 8)
        );
        assert_eq!(d.driver, Some(MetricKind::QueueDepth));
    }

    #[test]
    fn forecast_only_serves_reactive_but_records_prediction() {
        let b = Behavior {
            mode: Mode::ForecastOnly,
            ..behavior()
        };
        let (d, _) = decide(
            &b,
            &queue(Some(30.0), Some(75.0)),
            &PolicyState::default(),
            t(0),
        )
        .unwrap();
        assert_eq!((d.desired_replicas, d.predictive), (3, Some(8)));
    }

    #[test]
    fn scale_up_is_rate_limited_like_the_hpa() {
        let b = behavior();
        let (_, s) = decide(&b, &queue(Some(20.0), None), &PolicyState::default(), t(0)).unwrap();
        // From 2: max(2 + 4, 2 * 2) = 6.
        let (d, s) = decide(&b, &queue(Some(1000.0), None), &s, t(15)).unwrap();
        assert_eq!((d.desired_replicas, d.limiter), (6, Limiter::ScaleUpRate));
        // Next period, from 6: max(10, 12) = 12.
        let (d, _) = decide(&b, &queue(Some(1000.0), None), &s, t(30)).unwrap();
        assert_eq!(d.desired_replicas, 12);
    }

    #[test]
    fn scale_down_waits_for_the_window_then_steps_one_pod() {
        let b = behavior();
        let (_, mut s) =
            decide(&b, &queue(Some(100.0), None), &PolicyState::default(), t(0)).unwrap();
        for k in 1..20 {
            let (d, next) = decide(&b, &queue(Some(10.0), None), &s, t(k * 15)).unwrap();
            assert_eq!(d.desired_replicas, 10, "tick {k}");
            assert_eq!(d.limiter, Limiter::Stabilization);
            s = next;
        }
        let (d, s) = decide(&b, &queue(Some(10.0), None), &s, t(300)).unwrap();
        assert_eq!((d.desired_replicas, d.limiter), (9, Limiter::ScaleDownRate));
        let (d, _) = decide(&b, &queue(Some(10.0), None), &s, t(315)).unwrap();
        assert_eq!(d.desired_replicas, 9);
    }

    #[test]
    fn missing_data_holds_and_never_lowers() {
        let b = behavior();
        let (_, s) = decide(&b, &queue(Some(100.0), None), &PolicyState::default(), t(0)).unwrap();
        let (d, _) = decide(&b, &queue(None, None), &s, t(900)).unwrap();
        assert_eq!(d.desired_replicas, 10);
        assert!(d.notes.iter().any(|n| n.contains("no fresh data")));
        assert_eq!(
            decide(&b, &queue(None, None), &PolicyState::default(), t(0)),
            Err(PolicyError::NoData)
        );
    }

    #[test]
    fn latency_scales_by_ratio_and_never_down_alone() {
        let b = behavior();
        let lat = |v| {
            vec![MetricInput {
                kind: MetricKind::P99Latency,
                target: 200.0,
                observed: Some(v),
                forecast_max: Some(1e9),
            }]
        };
        let (_, s) = decide(&b, &queue(Some(40.0), None), &PolicyState::default(), t(0)).unwrap();
        let (d, s) = decide(&b, &lat(300.0), &s, t(15)).unwrap();
        assert_eq!(d.desired_replicas, 6); // 4 * 1.5
        assert_eq!(d.predictive, None, "latency is never predicted");
        let (d, _) = decide(&b, &lat(50.0), &s, t(1000)).unwrap();
        assert_eq!(d.desired_replicas, 6);
    }

    #[test]
    fn a_lowered_maximum_applies_at_once() {
        let b = behavior();
        let (_, s) = decide(&b, &queue(Some(200.0), None), &PolicyState::default(), t(0)).unwrap();
        let tight = Behavior {
            max_replicas: 3,
            ..behavior()
        };
        let (d, _) = decide(&tight, &queue(Some(200.0), None), &s, t(15)).unwrap();
        assert_eq!((d.desired_replicas, d.limiter), (3, Limiter::MaxBound));
    }

    #[test]
    fn bounds_apply() {
        let b = behavior();
        let (d, _) = decide(&b, &queue(Some(0.0), None), &PolicyState::default(), t(0)).unwrap();
        assert_eq!(
            (d.desired_replicas, d.limiter, d.active),
            (1, Limiter::MinBound, false)
        );
        let (d, _) = decide(&b, &queue(Some(1e6), None), &PolicyState::default(), t(0)).unwrap();
        assert_eq!((d.desired_replicas, d.limiter), (50, Limiter::MaxBound));
    }
}
