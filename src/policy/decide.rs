use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::Behavior;
use super::holding::Plan;
use super::memory::{DEMAND_TREND_WINDOW, PolicyState, ScaleUp, trim};
use super::requirements::Requirements;
use super::signals::{due, not_keeping_up, responds_to_replicas};
use crate::domain::{Anchor, Decision, Forecast, Limiter, MetricKind, Mode, ScalingRules, Signal};
use crate::forecast::{NeedModel, Trained};

/// A forecast and what is known about its accuracy.
#[derive(Debug, Clone, Copy)]
pub struct ForecastInput<'a> {
    /// The forecast, starting at or before the tick.
    pub forecast: &'a Forecast,
    /// The MASE denominator of its training data (in-sample seasonal-naive
    /// mean absolute error), to scale live errors.
    pub scale: f64,
    /// Holdout MASE at training; `None` when the history was too short to
    /// validate, which keeps the confidence gate closed.
    pub validation_mase: Option<f64>,
    /// How the forecast's error persists; with it, the predictive
    /// requirement corrects the forecast by the observation at the tick.
    pub anchor: Option<&'a Anchor>,
    /// The next need's distribution learnt with the forecast, for
    /// `mode: holding`.
    pub need: Option<&'a NeedModel>,
    /// The holding plan [`holding_plan`](crate::policy::holding_plan) built
    /// for this forecast under the same behaviour, if the caller kept one:
    /// `serve` replays its window at every evaluation and would otherwise
    /// rebuild every model's plan each time. `None` builds it.
    pub plan: Option<&'a Arc<Plan>>,
}

impl<'a> ForecastInput<'a> {
    /// What the policy reads of a trained model, with no kept plan: `serve`
    /// and the backtest build it alike, and add a plan where they keep one.
    pub fn from_trained(tr: &'a Trained) -> Self {
        Self {
            forecast: &tr.forecast,
            scale: tr.mase_scale,
            validation_mase: tr.validation_mase,
            anchor: tr.anchor.as_ref(),
            need: tr.need.as_ref(),
            plan: None,
        }
    }
}

/// One signal's inputs at an evaluation tick.
#[derive(Debug, Clone)]
pub struct MetricInput<'a> {
    /// Which signal.
    pub kind: MetricKind,
    /// Per-replica target (additive kinds) or latency objective.
    pub target: f64,
    /// Value at the tick; `None` when the source had no fresh data.
    pub observed: Option<f64>,
    /// The forecast for this signal, if one exists.
    pub forecast: Option<ForecastInput<'a>>,
    /// Why there is no forecast, for the explanation.
    pub forecast_note: Option<String>,
}

/// Everything the policy sees at one tick.
#[derive(Debug, Clone, Default)]
pub struct Observation<'a> {
    /// One entry per configured signal.
    pub metrics: Vec<MetricInput<'a>>,
    /// The last remediation action on this target, for the cooldown.
    pub last_remediation: Option<DateTime<Utc>>,
}

/// The policy cannot produce a first decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No signal has data and there is no earlier decision to hold; serving
    /// any number here could scale a running workload down.
    #[error("no data for any signal yet and no earlier decision to hold")]
    NoData,
}

/// Decides the replica count at `now` from the observation and the state.
pub fn decide(
    b: &Behavior,
    obs: &Observation<'_>,
    state: &PolicyState,
    now: DateTime<Utc>,
) -> Result<(Decision, PolicyState), PolicyError> {
    let rules = &b.rules;
    if state.current.is_none() && obs.metrics.iter().all(|m| m.observed.is_none()) {
        return Err(PolicyError::NoData);
    }
    let mut next = state.clone();
    let current = state.current;

    // 1. What each signal asks for.
    let mut req = Requirements::default();
    for m in &obs.metrics {
        req.add(b, m, next.metrics.entry(m.kind).or_default(), current, now);
    }
    let prediction = req.prediction(b.mode);
    let used = req.used;
    if !used && matches!(b.mode, Mode::Predictive | Mode::Holding) {
        req.notes.push("prediction not used: reactive only".into());
    }
    let Requirements {
        readings,
        mut notes,
        mut signals,
        reactive_max,
        predictive_max,
        recommendation,
        ahead_max,
        planned,
        ..
    } = req;
    let driver = recommendation.map(|(_, kind)| kind);
    // The plan prices flaps and short minutes itself: rate limits and the
    // stabilisation window would only move it off its counts. Only its
    // own counts, though: a count another signal drives (latency, or a
    // signal without a plan) keeps the limits, which applying to every
    // signal once any had a plan let it skip.
    let holding = b.mode == Mode::Holding && driver.is_some_and(|k| planned.contains(&k));

    // Missing or stale data lowers nothing, and going inactive is the
    // lowest step of all: with `minReplicaCount: 0` KEDA scales the
    // workload to zero once it has been inactive for its cooldown. So while
    // any signal is missing, a workload holding replicas stays active.
    let stale = obs.metrics.iter().any(|m| m.observed.is_none());
    let active = obs.metrics.iter().zip(&readings).any(|(m, r)| {
        m.observed.is_some_and(|v| v > b.activation_threshold)
            || (used && r.forecast_max.is_some_and(|f| f > b.activation_threshold))
    }) || (stale && current.is_some_and(|c| c > 0));

    // 2. The highest requirement, within the bounds. With no opinion at all
    // (e.g. only latency, under target), hold.
    let raw = recommendation.map_or(current.unwrap_or(b.min_replicas), |(r, _)| r);
    let rising = next
        .demand
        .front()
        .is_some_and(|(t, d)| now - *t >= DEMAND_TREND_WINDOW / 2 && raw > *d)
        && next.demand.back().is_none_or(|(_, d)| raw >= *d);
    next.demand.push_back((now, raw));
    trim(&mut next.demand, now, DEMAND_TREND_WINDOW);
    let (clamped, mut limiter) = if raw < b.min_replicas {
        (b.min_replicas, Limiter::MinBound)
    } else if raw > b.max_replicas {
        if rising {
            signals.push(Signal::AtCeiling {
                at: now,
                max_replicas: b.max_replicas,
                demand_replicas: raw,
            });
        }
        (b.max_replicas, Limiter::MaxBound)
    } else {
        (raw, Limiter::None)
    };

    next.recommendations.push_back((now, clamped));
    trim(
        &mut next.recommendations,
        now,
        rules.scale_down_stabilization,
    );
    let period = rules.scale_up_period.max(rules.scale_down_period);
    trim(&mut next.changes, now, period);

    // 3. The asymmetric limits.
    let cooling = obs
        .last_remediation
        .is_some_and(|t| now >= t && now - t < rules.cooldown);
    let step = match current {
        None => Limited::to(clamped),
        Some(c) if holding => {
            if clamped < c && stale {
                limiter = Limiter::StaleData;
                Limited::to(c)
            } else if clamped < c && cooling {
                limiter = Limiter::Cooldown;
                Limited::to(c)
            } else {
                Limited::to(clamped)
            }
        }
        Some(c) => limit(
            b,
            &next,
            c,
            clamped,
            Hold {
                stale,
                cooling,
                ahead: ahead_max,
            },
            now,
            &mut limiter,
        ),
    };
    // Periods a step wider than one period's allowance uses up, when the
    // HPA's tolerance made it necessary.
    let mut paced = None::<i32>;
    let desired = match current {
        Some(_) if holding => step.desired,
        Some(c) => {
            let (d, n) =
                pass_hpa_tolerance(b, c, step.desired, step.down_to, &next, now, &mut limiter);
            paced = n;
            d
        }
        None => step.desired,
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

    // Counted from the served count: a rate limit or the downstream HPA's
    // tolerance may have held back part of what the release allowed.
    let released_early = match current {
        Some(c) if step.released && desired < c => Some(c - desired),
        _ => None,
    };
    if let Some(n) = released_early {
        notes.push(format!(
            "a surplus of {n} pods is released after {}s, not the full stabilisation window",
            rules.scale_down_release_stabilization.num_seconds()
        ));
    }

    // A count held above the recommendation by a limiter that lets go in
    // time (stabilisation, the scale-down rate, a peak ahead, cooldown,
    // missing data) is a descent still under way. Inactive, KEDA would skip
    // it: with `minReplicaCount: 0` it scales the workload to zero once
    // inactive for its cooldownPeriod, whatever this serves. A hold that
    // never ends (scale-down switched off, a step the HPA's tolerance never
    // lets through) must not keep it active for ever.
    let descending = matches!(
        limiter,
        Limiter::Stabilization
            | Limiter::ScaleDownRate
            | Limiter::PeakAhead
            | Limiter::Cooldown
            | Limiter::StaleData
    ) && (rules.scale_down_pods > 0 || rules.scale_down_percent > 0)
        // Under the HPA's tolerance: a widened step taken now, or a wait
        // for one towards a recommendation the HPA would apply (a wait
        // for the rate to allow the step, or for the stabilisation window
        // to let go), is part of a descent. A recommendation within the
        // tolerance of the count is a hold that never ends.
        || (limiter == Limiter::HpaTolerance
            && current.is_some_and(|c| {
                c > desired || 1.0 - f64::from(clamped) / f64::from(c) > rules.hpa_tolerance
            }));
    let active = active || (desired > clamped && descending);

    if stale && current == Some(desired) && limiter == Limiter::None {
        // Holding for want of data is worth saying even when nothing else
        // would have changed.
        limiter = Limiter::StaleData;
    }

    // 4. Whether earlier scale-ups helped, and what this one changes.
    record(
        b,
        obs,
        &mut next,
        current,
        desired,
        paced,
        now,
        &mut signals,
        &mut notes,
    );

    Ok((
        Decision {
            at: now,
            desired_replicas: desired,
            active,
            reactive: reactive_max,
            predictive: predictive_max,
            recommendation: clamped,
            driver,
            limiter,
            released_early,
            mode: b.mode,
            prediction,
            forecast_quantile: b.forecast_quantile,
            readings,
            signals,
            notes,
        },
        next,
    ))
}

/// Where the limits leave a change.
struct Limited {
    /// The count they allow.
    desired: u32,
    /// The lowest count scale-down would reach without its rate limit, for
    /// [`pass_hpa_tolerance`]; `None` unless scaling down.
    down_to: Option<u32>,
    /// Whether scale-down followed the shorter release window
    /// (`scaleDownReleaseSurplus`), for the decision's note.
    released: bool,
}

impl Limited {
    /// A count no scale-down limit shaped.
    fn to(desired: u32) -> Self {
        Self {
            desired,
            down_to: None,
            released: false,
        }
    }
}

/// What holds the count in force whatever the requirements say.
struct Hold {
    /// A signal has no fresh data: never scale down on it.
    stale: bool,
    /// A remediation action's cooldown is running.
    cooling: bool,
    /// The highest forecast peak within the scale-down lookahead.
    ahead: Option<u32>,
}

/// The predictive and reactive modes' limits on a change from `c` to the
/// clamped recommendation: scale-up at most the rate allows; scale-down only
/// when the stabilisation window's highest recommendation, the peak ahead,
/// fresh data and the cooldown all allow it, then at the configured rate.
/// Sets `limiter` to what held the change back.
fn limit(
    b: &Behavior,
    next: &PolicyState,
    c: u32,
    clamped: u32,
    hold: Hold,
    now: DateTime<Utc>,
    limiter: &mut Limiter,
) -> Limited {
    let rules = &b.rules;
    if clamped > c {
        let limit = scale_up_limit(b, c, next, now);
        if clamped > limit {
            *limiter = Limiter::ScaleUpRate;
            return Limited::to(limit);
        }
        return Limited::to(clamped);
    }
    if clamped == c {
        return Limited::to(c);
    }
    let ahead = hold.ahead.unwrap_or(0).min(b.max_replicas);
    let release = released(rules, next, c, ahead, now);
    let stabilized = release
        .or_else(|| window_max(next, now, rules.scale_down_stabilization))
        .unwrap_or(clamped);
    if hold.stale {
        *limiter = Limiter::StaleData;
        return Limited::to(c);
    }
    if hold.cooling {
        *limiter = Limiter::Cooldown;
        return Limited::to(c);
    }
    if stabilized >= c {
        *limiter = Limiter::Stabilization;
        return Limited::to(c);
    }
    if ahead >= c {
        *limiter = Limiter::PeakAhead;
        return Limited::to(c);
    }
    let wanted = stabilized.max(ahead);
    let floor = scale_down_floor(b, c, next, now);
    let desired = if wanted < floor {
        *limiter = Limiter::ScaleDownRate;
        floor
    } else {
        if wanted > clamped {
            *limiter = if ahead > stabilized {
                Limiter::PeakAhead
            } else {
                Limiter::Stabilization
            };
        }
        wanted
    };
    Limited {
        desired,
        down_to: Some(wanted),
        released: release.is_some(),
    }
}

/// The bookkeeping after a decision of `desired` (from `current`): scale-ups due for their
/// check raise `NotKeepingUp` when the signal did not respond; a change is
/// recorded for the rate limits and its pacing (with a note when the
/// downstream HPA's tolerance widened it to `paced` periods); a scale-up is
/// remembered for its own check. Sets the count in force.
#[allow(clippy::too_many_arguments)]
fn record(
    b: &Behavior,
    obs: &Observation<'_>,
    next: &mut PolicyState,
    current: Option<u32>,
    desired: u32,
    paced: Option<i32>,
    now: DateTime<Utc>,
    signals: &mut Vec<Signal>,
    notes: &mut Vec<String>,
) {
    let rules = &b.rules;
    let observed = |kind: MetricKind| {
        obs.metrics
            .iter()
            .find(|m| m.kind == kind)
            .and_then(|m| m.observed.map(|v| (v, m.target)))
    };
    while next
        .scale_ups
        .front()
        .is_some_and(|su| due(su, now, b.lead_time))
    {
        if let Some(su) = next.scale_ups.pop_front() {
            let in_force = current.unwrap_or(su.to);
            signals.extend(not_keeping_up(&su, now, in_force, observed));
        }
    }
    if let Some(c) = current {
        let delta = i64::from(desired) - i64::from(c);
        if delta != 0 {
            next.changes.push_back((now, delta));
            let (pace, period) = if delta > 0 {
                (&mut next.up_pace, rules.scale_up_period)
            } else {
                (&mut next.down_pace, rules.scale_down_period)
            };
            pace.last = Some(now);
            if let Some(n) = paced {
                let held = period.checked_mul(n).unwrap_or(TimeDelta::MAX);
                pace.hold_until = now.checked_add_signed(held);
                notes.push(format!(
                    "the HPA ignores smaller steps, so {} pods change at once and this direction holds for {}s ({n} periods) to keep the configured rate on average",
                    delta.unsigned_abs(),
                    held.num_seconds()
                ));
            }
        }
        if delta > 0 {
            let values: Vec<(MetricKind, f64)> = obs
                .metrics
                .iter()
                .filter(|m| responds_to_replicas(m.kind))
                .filter_map(|m| m.observed.map(|v| (m.kind, v)))
                .collect();
            if !values.is_empty() {
                next.scale_ups.push_back(ScaleUp {
                    at: now,
                    from: c,
                    to: desired,
                    values,
                });
            }
        }
    }
    next.current = Some(desired);
}

/// Makes a change survive the HPA that sits between foresight and the
/// Deployment: with a target of 1 it still ignores counts within
/// `hpaTolerance` of the current one. A scale-up it would ignore is widened
/// to the smallest one it applies (a pod short is the costlier error); a
/// scale-down it would ignore becomes the smallest step it applies when the
/// policy wants at least that much lower anyway, and waits otherwise.
///
/// The widened step still keeps the configured rate: if it is larger than
/// what the period has left (one pod per period at ten or more replicas), it
/// waits until the direction has been quiet for as many periods as the step
/// needs, and returns that number so that the caller holds the direction as
/// long after it. So `scaleDownPods: 1` per 5m at 12 replicas removes 2 pods
/// every 10m rather than never, or 2 every 5m.
fn pass_hpa_tolerance(
    b: &Behavior,
    c: u32,
    desired: u32,
    down_to: Option<u32>,
    state: &PolicyState,
    now: DateTime<Utc>,
    limiter: &mut Limiter,
) -> (u32, Option<i32>) {
    let tol = b.rules.hpa_tolerance;
    if c == 0 || tol <= 0.0 || desired == c {
        return (desired, None);
    }
    let r = &b.rules;
    let ratio = f64::from(desired) / f64::from(c);
    if desired > c && ratio - 1.0 <= tol {
        let widened = ((f64::from(c) * (1.0 + tol)).floor() as u32)
            .saturating_add(1)
            .min(b.max_replicas);
        if widened > c {
            // Past what the signals asked for: said, as every limiter is
            // (not when the ceiling cut the widening back to the ask).
            if widened > desired {
                *limiter = Limiter::HpaTolerance;
            }
            if widened <= scale_up_limit(b, c, state, now) {
                return (widened, None);
            }
            let per_period = scale_up_allowance(r, c);
            if let Some(n) = paced(
                state.up_pace,
                now,
                r.scale_up_period,
                per_period,
                widened - c,
            ) {
                return (widened, Some(n));
            }
        }
        *limiter = Limiter::HpaTolerance;
        return (c, None);
    }
    if desired < c && 1.0 - ratio <= tol {
        // The largest count below c that the HPA applies.
        let step = ((f64::from(c) * (1.0 - tol)).ceil() as u32).saturating_sub(1);
        if down_to.is_some_and(|w| w <= step) && step >= b.min_replicas {
            *limiter = Limiter::HpaTolerance;
            if step >= scale_down_floor(b, c, state, now) {
                return (step, None);
            }
            let per_period = scale_down_allowance(r, c);
            if let Some(n) = paced(
                state.down_pace,
                now,
                r.scale_down_period,
                per_period,
                c - step,
            ) {
                return (step, Some(n));
            }
        }
        *limiter = Limiter::HpaTolerance;
        return (c, None);
    }
    (desired, None)
}

/// How many periods a step of `size`, wider than what is left of this
/// period's allowance, needs at `per_period` pods each, when the direction
/// has been quiet that long (so the step keeps the configured rate on
/// average); `None` while it has not, or when the rate allows no change.
fn paced(
    pace: super::memory::Pace,
    now: DateTime<Utc>,
    period: TimeDelta,
    per_period: u32,
    size: u32,
) -> Option<i32> {
    if per_period == 0 {
        return None;
    }
    let n = i32::try_from(size.div_ceil(per_period)).ok()?;
    let span = period.checked_mul(n)?;
    let quiet = pace.last.is_none_or(|t| now - t >= span);
    let free = pace.hold_until.is_none_or(|t| now >= t);
    (quiet && free).then_some(n)
}

/// The highest recommendation within `span` before `now`.
fn window_max(state: &PolicyState, now: DateTime<Utc>, span: TimeDelta) -> Option<u32> {
    state
        .recommendations
        .iter()
        .filter(|(t, _)| now - *t <= span)
        .map(|(_, r)| *r)
        .max()
}

/// The short window's highest recommendation, when the surplus over it (and
/// over the peak ahead) is large enough to release early: at least
/// `scaleDownReleaseSurplus` of the current count `c`.
fn released(
    rules: &ScalingRules,
    state: &PolicyState,
    c: u32,
    ahead: u32,
    now: DateTime<Utc>,
) -> Option<u32> {
    if rules.scale_down_release_surplus <= 0.0 {
        return None;
    }
    let to = window_max(state, now, rules.scale_down_release_stabilization)?;
    let surplus = f64::from(c.saturating_sub(to.max(ahead)));
    (surplus >= rules.scale_down_release_surplus * f64::from(c)).then_some(to)
}

/// Sum of changes of one sign within `period` before `now`.
fn changed_within(state: &PolicyState, now: DateTime<Utc>, period: TimeDelta, up: bool) -> i64 {
    state
        .changes
        .iter()
        .filter(|(t, d)| now - *t < period && (*d > 0) == up)
        .map(|(_, d)| *d)
        .sum()
}

/// The HPA's scale-up rule with `selectPolicy: Max`: relative to the count at
/// the start of the period, allow the larger of +pods and +percent.
fn scale_up_limit(b: &Behavior, current: u32, state: &PolicyState, now: DateTime<Utc>) -> u32 {
    let r = &b.rules;
    if state.up_pace.hold_until.is_some_and(|t| now < t) {
        return current;
    }
    let start = (i64::from(current) - changed_within(state, now, r.scale_up_period, true)).max(0);
    let start = u32::try_from(start).unwrap_or(u32::MAX);
    start
        .saturating_add(scale_up_allowance(r, start))
        .max(current)
}

/// The lowest count scale-down may reach now: at most the larger of
/// `scaleDownPods` and `scaleDownPercent` removed per period, counted from
/// the count at the period's start.
fn scale_down_floor(b: &Behavior, current: u32, state: &PolicyState, now: DateTime<Utc>) -> u32 {
    let r = &b.rules;
    if state.down_pace.hold_until.is_some_and(|t| now < t) {
        return current;
    }
    let start = i64::from(current) - changed_within(state, now, r.scale_down_period, false);
    let start = u32::try_from(start).unwrap_or(u32::MAX);
    start
        .saturating_sub(scale_down_allowance(r, start))
        .min(current)
}

/// Pods one fresh scale-up period allows from `c` (`selectPolicy: Max`).
fn scale_up_allowance(r: &ScalingRules, c: u32) -> u32 {
    let by_percent = (f64::from(c) * (1.0 + f64::from(r.scale_up_percent) / 100.0)).ceil() as u32;
    r.scale_up_pods.max(by_percent.saturating_sub(c))
}

/// Pods one fresh scale-down period allows from `c` (`selectPolicy: Max`).
fn scale_down_allowance(r: &ScalingRules, c: u32) -> u32 {
    let by_percent = (f64::from(c) * f64::from(r.scale_down_percent) / 100.0).floor() as u32;
    r.scale_down_pods.max(by_percent)
}
