use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::Behavior;
use super::holding::{self, Plan};
use super::memory::{
    DEMAND_TREND_WINDOW, GATE_REOPEN_FRACTION, LAG_TREND_WINDOW, LIVE_ERROR_WINDOW, PolicyState,
    ScaleUp, trim,
};
use super::signals::{due, not_keeping_up, responds_to_replicas};
use crate::domain::{
    Anchor, Between, Decision, Forecast, Limiter, MetricKind, MetricReading, Mode, Prediction,
    ScalingRules, Signal,
};
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

/// The HPA's rule for one metric: `ceil(value / target)`, unless the usage
/// ratio against the current count is within the tolerance of its
/// direction, in which case the count stays.
fn requirement(value: f64, target: f64, current: Option<u32>, rules: &ScalingRules) -> u32 {
    if let Some(c) = current.filter(|c| *c > 0) {
        let ratio = value / (target * f64::from(c));
        let within = if ratio >= 1.0 {
            ratio - 1.0 <= rules.scale_up_tolerance
        } else {
            1.0 - ratio <= rules.tolerance
        };
        if within {
            return c;
        }
    }
    ceil_div(value, target)
}

fn ceil_div(value: f64, target: f64) -> u32 {
    let r = (value / target).ceil();
    if r.is_finite() && r > 0.0 {
        r.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// What the forecast contributes for one signal.
struct Predicted {
    /// Forecast maximum over `[now, now + leadTime]`.
    window_max: Option<f64>,
    /// Replicas for that maximum.
    replicas: Option<u32>,
    /// Replicas for the peak within the scale-down lookahead.
    ahead: Option<u32>,
    /// Why the confidence gate is closed, if it is.
    gated: Option<String>,
    /// Whether `window_max` was corrected by the observation at the tick.
    anchored: bool,
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
    let base = current.unwrap_or(b.min_replicas).max(1);
    let use_prediction = b.mode == Mode::Predictive;

    let mut notes = Vec::new();
    let mut signals = Vec::new();
    let mut readings = Vec::with_capacity(obs.metrics.len());
    let (mut reactive_max, mut predictive_max) = (0u32, None::<u32>);
    let (mut recommendation, mut driver) = (None::<u32>, None::<MetricKind>);
    let mut ahead_max = None::<u32>;
    let (mut used, mut gated, mut unavailable) = (false, Vec::new(), Vec::new());

    for m in &obs.metrics {
        let mem = next.metrics.entry(m.kind).or_default();
        // Lag drained between ticks at a steady count tells us how much one
        // replica can work off (a lower bound, since arrivals continue).
        if m.kind == MetricKind::ConsumerLag
            && let (Some(v), Some((t_prev, v_prev)), Some(c)) =
                (m.observed, mem.values.back().copied(), current)
        {
            let dt = (now - t_prev).num_milliseconds() as f64 / 1000.0;
            if dt > 0.0 && v < v_prev && c > 0 {
                let rate = (v_prev - v) / dt / f64::from(c);
                mem.drain_per_replica = Some(mem.drain_per_replica.map_or(rate, |r| r.max(rate)));
            }
        }
        if let Some(v) = m.observed {
            mem.values.push_back((now, v));
        }
        trim(&mut mem.values, now, LAG_TREND_WINDOW);
        if let (Some(v), Some(f)) = (m.observed, &m.forecast)
            && let Some((slot, p)) = f.forecast.slot_at(now)
            && f.scale > 0.0
            && mem.last_scored_slot != Some(slot)
        {
            mem.last_scored_slot = Some(slot);
            mem.errors.push_back((now, (v - p).abs() / f.scale));
        }
        trim(&mut mem.errors, now, LIVE_ERROR_WINDOW);
        let live_mase = mem.live_mase();
        let max_mase = rules.max_forecast_mase;
        mem.live_gate_closed = match live_mase {
            Some(l) if l > max_mase => true,
            Some(l) => mem.live_gate_closed && l > max_mase * GATE_REOPEN_FRACTION,
            None => false,
        };
        let live_closed = mem.live_gate_closed;

        // Reactive requirement.
        let mut lag_drain = None;
        let reactive = match (m.kind, m.observed) {
            (_, None) => {
                notes.push(format!("{}: no fresh data, holding", m.kind));
                None
            }
            (MetricKind::P99Latency, Some(v)) => {
                if v > m.target {
                    let since = *mem.breach_since.get_or_insert(now);
                    if now - since >= rules.latency_breach_duration {
                        signals.push(Signal::LatencySloBreach {
                            at: now,
                            since,
                            p99: v,
                            target: m.target,
                        });
                    }
                } else {
                    mem.breach_since = None;
                }
                // Not additive: beyond the tolerance, scale by the breach
                // ratio as the HPA does for utilisation, bounded per
                // decision; within it, hold (a breach must not let other
                // signals scale down); under target, no opinion, so latency
                // never scales down on its own.
                let ratio = v / m.target;
                if ratio > 1.0 + rules.tolerance {
                    Some((f64::from(base) * ratio.min(b.max_latency_step_ratio)).ceil() as u32)
                } else if ratio > 1.0 {
                    Some(base)
                } else {
                    None
                }
            }
            (MetricKind::ConsumerLag, Some(v)) => {
                let plain = requirement(v, m.target, current, rules);
                match mem.growth_per_second() {
                    Some(growth) => {
                        // Capacity to stop the growth and drain the backlog
                        // within lagDrainTime, on top of what runs now. Without
                        // an observed drain rate, assume one replica works off
                        // its target's worth of lag per lagDrainTime.
                        let drain_s = rules.lag_drain_time.num_seconds().max(1) as f64;
                        let per_replica = mem
                            .drain_per_replica
                            .filter(|r| *r > 0.0)
                            .unwrap_or(m.target / drain_s);
                        let extra = ((growth + v / drain_s) / per_replica).ceil().max(1.0) as u32;
                        lag_drain = Some(extra);
                        Some(plain.max(base.saturating_add(extra)))
                    }
                    None => Some(plain),
                }
            }
            (_, Some(v)) => Some(requirement(v, m.target, current, rules)),
        };

        // Predictive requirement.
        let predicted = match (
            &m.forecast,
            b.mode != Mode::Reactive && m.kind.is_additive(),
        ) {
            (Some(f), true) => Some(predict(
                b,
                m,
                f,
                (live_mase, live_closed),
                current,
                now,
                &mut signals,
            )),
            (None, true) => {
                unavailable.push(format!(
                    "{}: {}",
                    m.kind,
                    m.forecast_note.as_deref().unwrap_or("no forecast")
                ));
                None
            }
            (_, false) => None,
        };
        let mut predictive = None;
        if let Some(p) = &predicted {
            predictive = p.replicas;
            match (&p.gated, p.replicas) {
                (Some(why), _) => gated.push(format!("{}: {why}", m.kind)),
                (None, None) => unavailable.push(format!(
                    "{}: forecast does not reach now + leadTime (retraining overdue)",
                    m.kind
                )),
                (None, Some(_)) if use_prediction => {
                    used = true;
                    ahead_max = ahead_max.max(p.ahead);
                    if p.anchored {
                        notes.push(format!(
                            "{}: forecast corrected by the latest observation",
                            m.kind
                        ));
                    }
                }
                (None, Some(_)) => {}
            }
        }
        let served_prediction = predicted
            .as_ref()
            .filter(|p| use_prediction && p.gated.is_none())
            .and_then(|p| p.replicas);
        // `mode: holding` serves its plan's count instead of the reactive and
        // predictive requirements, and falls back to them without one.
        let mut held = None;
        if b.mode == Mode::Holding
            && m.kind.is_additive()
            && let Some(v) = m.observed
        {
            match &m.forecast {
                Some(f) => match holding::hold(&mut mem.holding, b, f, m.target, v, current, now) {
                    Ok((h, note)) => {
                        held = Some(h);
                        used = true;
                        notes.push(format!("{}: {note}", m.kind));
                    }
                    Err(why) => unavailable.push(format!("{}: {why}", m.kind)),
                },
                None => unavailable.push(format!(
                    "{}: {}",
                    m.kind,
                    m.forecast_note.as_deref().unwrap_or("no forecast")
                )),
            }
        }

        reactive_max = reactive_max.max(reactive.unwrap_or(0));
        if let Some(p) = predictive {
            predictive_max = Some(predictive_max.unwrap_or(0).max(p));
        }
        let need = match (held, reactive, served_prediction) {
            (Some(h), _, _) => Some(h),
            (None, Some(r), Some(p)) => Some(r.max(p)),
            (None, r, p) => r.or(p),
        };
        if let Some(n) = need
            && recommendation.is_none_or(|r| n > r)
        {
            recommendation = Some(n);
            driver = Some(m.kind);
        }
        readings.push(MetricReading {
            kind: m.kind,
            observed: m.observed,
            forecast_max: predicted.as_ref().and_then(|p| p.window_max),
            reactive,
            predictive,
            lag_drain,
            live_mase,
        });
    }

    let prediction = match b.mode {
        Mode::Reactive => Prediction::Off,
        Mode::ForecastOnly => Prediction::RecordedOnly,
        Mode::Holding if used => Prediction::Used,
        Mode::Holding => Prediction::Unavailable {
            reason: if unavailable.is_empty() {
                "no fresh data to plan on".into()
            } else {
                unavailable.join("; ")
            },
        },
        Mode::Predictive if used => Prediction::Used,
        Mode::Predictive if !gated.is_empty() => Prediction::Gated {
            reason: gated.join("; "),
        },
        Mode::Predictive if !unavailable.is_empty() => Prediction::Unavailable {
            reason: unavailable.join("; "),
        },
        Mode::Predictive => Prediction::Unavailable {
            reason: "p99 latency is never forecast: it is not additive".into(),
        },
    };
    if !used && matches!(b.mode, Mode::Predictive | Mode::Holding) {
        notes.push("prediction not used: reactive only".into());
    }
    // The plan prices flaps and short minutes itself: rate limits and the
    // stabilisation window would only move it off its counts.
    let holding = b.mode == Mode::Holding && used;

    let active = obs.metrics.iter().zip(&readings).any(|(m, r)| {
        m.observed.is_some_and(|v| v > b.activation_threshold)
            || (used && r.forecast_max.is_some_and(|f| f > b.activation_threshold))
    });

    // With no opinion at all (e.g. only latency, under target), hold.
    let raw = recommendation.unwrap_or(current.unwrap_or(b.min_replicas));
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

    let stale = obs.metrics.iter().any(|m| m.observed.is_none());
    let cooling = obs
        .last_remediation
        .is_some_and(|t| now >= t && now - t < rules.cooldown);
    // The lowest count scale-down would reach without its rate limit.
    let mut down_to = None::<u32>;
    // Whether scale-down followed the shorter release window.
    let mut release_applied = false;
    let desired = match current {
        None => clamped,
        Some(c) if holding => {
            if clamped < c && stale {
                limiter = Limiter::StaleData;
                c
            } else if clamped < c && cooling {
                limiter = Limiter::Cooldown;
                c
            } else {
                clamped
            }
        }
        Some(c) if clamped > c => {
            let limit = scale_up_limit(b, c, &next, now);
            if clamped > limit {
                limiter = Limiter::ScaleUpRate;
                limit
            } else {
                clamped
            }
        }
        Some(c) if clamped < c => {
            let ahead = ahead_max.unwrap_or(0).min(b.max_replicas);
            let release = released(rules, &next, c, ahead, now);
            let stabilized = release
                .or_else(|| window_max(&next, now, rules.scale_down_stabilization))
                .unwrap_or(clamped);
            if stale {
                limiter = Limiter::StaleData;
                c
            } else if cooling {
                limiter = Limiter::Cooldown;
                c
            } else if stabilized >= c {
                limiter = Limiter::Stabilization;
                c
            } else if ahead >= c {
                limiter = Limiter::PeakAhead;
                c
            } else {
                let wanted = stabilized.max(ahead);
                down_to = Some(wanted);
                release_applied = release.is_some();
                let floor = scale_down_floor(b, c, &next, now);
                if wanted < floor {
                    limiter = Limiter::ScaleDownRate;
                    floor
                } else {
                    if wanted > clamped {
                        limiter = if ahead > stabilized {
                            Limiter::PeakAhead
                        } else {
                            Limiter::Stabilization
                        };
                    }
                    wanted
                }
            }
        }
        Some(c) => c,
    };
    // Periods a step wider than one period's allowance uses up, when the
    // HPA's tolerance made it necessary.
    let mut paced = None::<i32>;
    let desired = match current {
        Some(_) if holding => desired,
        Some(c) => {
            let (d, n) = pass_hpa_tolerance(b, c, desired, down_to, &next, now, &mut limiter);
            paced = n;
            d
        }
        None => desired,
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
        Some(c) if release_applied && desired < c => Some(c - desired),
        _ => None,
    };
    if let Some(n) = released_early {
        notes.push(format!(
            "a surplus of {n} pods is released after {}s, not the full stabilisation window",
            rules.scale_down_release_stabilization.num_seconds()
        ));
    }

    if stale && current == Some(desired) && limiter == Limiter::None {
        // Holding for want of data is worth saying even when nothing else
        // would have changed.
        limiter = Limiter::StaleData;
    }

    // Did earlier scale-ups help?
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
            signals.extend(not_keeping_up(&su, now, observed));
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

/// The forecast's part for one additive signal, with the confidence gate.
fn predict(
    b: &Behavior,
    m: &MetricInput<'_>,
    f: &ForecastInput<'_>,
    (live_mase, live_closed): (Option<f64>, bool),
    current: Option<u32>,
    now: DateTime<Utc>,
    signals: &mut Vec<Signal>,
) -> Predicted {
    let max = b.rules.max_forecast_mase;
    let gated = match (f.validation_mase, live_mase) {
        (None, _) => Some("too little history to validate the forecaster".to_string()),
        (Some(v), _) if v > max => Some(format!("validation MASE {v:.2} > maxForecastMase {max}")),
        (_, Some(l)) if l > max => Some(format!("live MASE {l:.2} > maxForecastMase {max}")),
        (_, Some(l)) if live_closed => Some(format!(
            "live MASE {l:.2} has not fallen below {:.2} ({GATE_REOPEN_FRACTION} x maxForecastMase {max}) since it exceeded it",
            max * GATE_REOPEN_FRACTION
        )),
        _ => None,
    };
    let between = b.forecast_between;
    let anchor = f.anchor.filter(|_| b.forecast_anchor);
    // The highest bound over [now, to], and whether the anchor gave it.
    // Corrected by what is observed now where the errors persist (narrower
    // than the plain band, which must also cover how far off the forecast
    // may be at this moment); under held samples the one in force has been
    // observed and only the slots still to come need the band; the plain
    // band otherwise.
    let bound = |to: DateTime<Utc>| {
        let anchored = match (anchor, m.observed) {
            (Some(a), Some(v)) => f.forecast.anchored_window_max(a, v, now, to, between),
            _ => None,
        };
        let max = anchored
            .or_else(|| match (between, m.observed) {
                (Between::Hold, Some(v)) => f.forecast.observed_window_max(v, now, to, between),
                _ => None,
            })
            .or_else(|| f.forecast.window_max_upper(now, to, between));
        (max, anchored.is_some())
    };
    let (window_max, anchored) = bound(now + b.lead_time);
    // The peak ahead is read the way the requirement is: judged by the plain
    // band while the requirement used the anchored one, a release looked
    // safe whenever demand ran above the forecast, and was undone at the
    // next tick when the anchored bound crossed the count again.
    let ahead = (b.rules.scale_down_lookahead > TimeDelta::zero())
        .then(|| {
            let last = f.forecast.last_timestamp()?;
            bound((now + b.rules.scale_down_lookahead).min(last)).0
        })
        .flatten()
        .map(|v| ceil_div(v, m.target));
    if gated.is_none() {
        let capacity = f64::from(b.max_replicas) * m.target;
        if let Some((breach_at, peak)) = f.forecast.first_above(now, capacity) {
            signals.push(Signal::CapacityExhaustionPredicted {
                at: now,
                kind: m.kind,
                breach_at,
                peak,
                capacity,
            });
        }
    }
    Predicted {
        window_max,
        replicas: window_max.map(|v| requirement(v, m.target, current, &b.rules)),
        ahead,
        gated,
        anchored,
    }
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
