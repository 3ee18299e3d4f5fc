//! Step 1 of a decision: what each signal asks for at one tick. The
//! reactive requirement from its observed value, the predictive one from
//! its forecast (behind the confidence gate), or `mode: holding`'s planned
//! count, gathered over the signals into [`Requirements`] with the notes
//! and remediation signals they raise. [`decide`](super::decide) combines
//! them and applies the limits.

use chrono::{DateTime, TimeDelta, Utc};

use super::Behavior;
use super::decide::{ForecastInput, MetricInput};
use super::holding;
use super::memory::{
    GATE_REOPEN_FRACTION, LAG_TREND_WINDOW, LIVE_ERROR_WINDOW, MetricMemory, trim,
};
use crate::domain::{Between, MetricKind, MetricReading, Mode, Prediction, ScalingRules, Signal};

/// The HPA's rule for one metric: `ceil(value / target)`, unless the usage
/// ratio against the current count is within the tolerance of its
/// direction, in which case the count stays.
pub(super) fn requirement(
    value: f64,
    target: f64,
    current: Option<u32>,
    rules: &ScalingRules,
) -> u32 {
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

pub(super) fn ceil_div(value: f64, target: f64) -> u32 {
    let r = (value / target).ceil();
    // A quotient past f64's range (a tiny target) wants the most there is,
    // not none; a NaN wants nothing.
    if r > 0.0 {
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

/// The signals' requirements at one tick, gathered one signal at a time.
#[derive(Debug, Default)]
pub(super) struct Requirements {
    /// One per signal, in the order configured, for the decision.
    pub(super) readings: Vec<MetricReading>,
    /// The explanation so far, in the order found.
    pub(super) notes: Vec<String>,
    /// Remediation signals raised by the signals' own checks (a sustained
    /// latency breach, a forecast peak above capacity).
    pub(super) signals: Vec<Signal>,
    /// The highest reactive requirement; 0 when no signal has one.
    pub(super) reactive_max: u32,
    /// The highest predictive requirement, served or not (the decision
    /// records what `forecastOnly` would have asked for).
    pub(super) predictive_max: Option<u32>,
    /// The highest requirement served, and the signal that asked for it;
    /// `None` when no signal has an opinion (only latency, under target).
    pub(super) recommendation: Option<(u32, MetricKind)>,
    /// The highest forecast peak within the scale-down lookahead, of the
    /// signals whose prediction is served: scale-down waits for it.
    pub(super) ahead_max: Option<u32>,
    /// Whether any signal's prediction or holding plan was served.
    pub(super) used: bool,
    /// The signals whose requirement is `mode: holding`'s planned count.
    pub(super) planned: Vec<MetricKind>,
    /// Per signal, why the confidence gate kept its prediction out.
    gated: Vec<String>,
    /// Per signal, why it had no prediction or plan.
    unavailable: Vec<String>,
}

impl Requirements {
    /// Gathers signal `m`'s requirements at `now`, updating its memory
    /// `mem`; `current` is the count in force, if any.
    pub(super) fn add(
        &mut self,
        b: &Behavior,
        m: &MetricInput<'_>,
        mem: &mut MetricMemory,
        current: Option<u32>,
        now: DateTime<Utc>,
    ) {
        let use_prediction = b.mode == Mode::Predictive;
        let live = track(mem, m, b, current, now);
        let (reactive, lag_drain) = self.reactive(b, m, mem, current, now);

        // Predictive requirement.
        let predicted = match (
            &m.forecast,
            b.mode != Mode::Reactive && m.kind.is_additive(),
        ) {
            (Some(f), true) => Some(predict(b, m, f, live, current, now, &mut self.signals)),
            (None, true) => {
                self.unavailable.push(format!(
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
                (Some(why), _) => self.gated.push(format!("{}: {why}", m.kind)),
                (None, None) => self.unavailable.push(format!(
                    "{}: forecast does not reach now + leadTime (retraining overdue)",
                    m.kind
                )),
                (None, Some(_)) if use_prediction => {
                    self.used = true;
                    self.ahead_max = self.ahead_max.max(p.ahead);
                    if p.anchored {
                        self.notes.push(format!(
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
                        self.used = true;
                        self.planned.push(m.kind);
                        self.notes.push(format!("{}: {note}", m.kind));
                    }
                    Err(why) => self.unavailable.push(format!("{}: {why}", m.kind)),
                },
                None => self.unavailable.push(format!(
                    "{}: {}",
                    m.kind,
                    m.forecast_note.as_deref().unwrap_or("no forecast")
                )),
            }
        }

        self.reactive_max = self.reactive_max.max(reactive.unwrap_or(0));
        if let Some(p) = predictive {
            self.predictive_max = Some(self.predictive_max.unwrap_or(0).max(p));
        }
        let need = match (held, reactive, served_prediction) {
            (Some(h), _, _) => Some(h),
            (None, Some(r), Some(p)) => Some(r.max(p)),
            (None, r, p) => r.or(p),
        };
        if let Some(n) = need
            && self.recommendation.is_none_or(|(r, _)| n > r)
        {
            self.recommendation = Some((n, m.kind));
        }
        self.readings.push(MetricReading {
            kind: m.kind,
            observed: m.observed,
            forecast_max: predicted.as_ref().and_then(|p| p.window_max),
            reactive,
            predictive,
            lag_drain,
            live_mase: live.0,
        });
    }

    /// Signal `m`'s reactive requirement, and the extra replicas for
    /// draining a growing consumer lag; `None` without fresh data (it holds)
    /// or for latency under target (no opinion).
    fn reactive(
        &mut self,
        b: &Behavior,
        m: &MetricInput<'_>,
        mem: &mut MetricMemory,
        current: Option<u32>,
        now: DateTime<Utc>,
    ) -> (Option<u32>, Option<u32>) {
        let rules = &b.rules;
        let base = current.unwrap_or(b.min_replicas).max(1);
        match (m.kind, m.observed) {
            (_, None) => {
                self.notes
                    .push(format!("{}: no fresh data, holding", m.kind));
                (None, None)
            }
            (MetricKind::P99Latency, Some(v)) => {
                if v > m.target {
                    let since = *mem.breach_since.get_or_insert(now);
                    if now - since >= rules.latency_breach_duration {
                        self.signals.push(Signal::LatencySloBreach {
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
                let r = if ratio > 1.0 + rules.tolerance {
                    Some((f64::from(base) * ratio.min(b.max_latency_step_ratio)).ceil() as u32)
                } else if ratio > 1.0 {
                    Some(base)
                } else {
                    None
                };
                (r, None)
            }
            (MetricKind::ConsumerLag, Some(v)) => {
                let plain = requirement(v, m.target, current, rules);
                match mem.growth_per_second() {
                    Some(growth) => {
                        // Capacity to stop the growth and drain the backlog
                        // within lagDrainTime, on top of what ran while the
                        // growth was measured: the fewest in force over the
                        // trend window and the start-up before it (see
                        // [`counts_window`]). Not the count in force now, which
                        // holds pods asked for at the last ticks and still
                        // starting: adding the drain to it at every tick
                        // compounded a noisy lag up to maxReplicaCount.
                        // Without an observed drain rate, assume one replica
                        // works off its target's worth of lag per
                        // lagDrainTime.
                        let drain_s = rules.lag_drain_time.num_seconds().max(1) as f64;
                        let per_replica = mem
                            .drain_per_replica
                            .filter(|r| *r > 0.0)
                            .unwrap_or(m.target / drain_s);
                        let extra = ((growth + v / drain_s) / per_replica).ceil().max(1.0) as u32;
                        let ran = mem
                            .counts
                            .iter()
                            .map(|(_, c)| *c)
                            .min()
                            .unwrap_or(base)
                            .max(1);
                        (Some(plain.max(ran.saturating_add(extra))), Some(extra))
                    }
                    None => (Some(plain), None),
                }
            }
            (_, Some(v)) => (Some(requirement(v, m.target, current, rules)), None),
        }
    }

    /// What the decision says of prediction under `mode`, once every signal
    /// is gathered.
    pub(super) fn prediction(&self, mode: Mode) -> Prediction {
        match mode {
            Mode::Reactive => Prediction::Off,
            Mode::ForecastOnly => Prediction::RecordedOnly,
            Mode::Holding if self.used => Prediction::Used,
            Mode::Holding => Prediction::Unavailable {
                reason: if self.unavailable.is_empty() {
                    "no fresh data to plan on".into()
                } else {
                    self.unavailable.join("; ")
                },
            },
            Mode::Predictive if self.used => Prediction::Used,
            Mode::Predictive if !self.gated.is_empty() => Prediction::Gated {
                reason: self.gated.join("; "),
            },
            Mode::Predictive if !self.unavailable.is_empty() => Prediction::Unavailable {
                reason: self.unavailable.join("; "),
            },
            Mode::Predictive => Prediction::Unavailable {
                reason: "p99 latency is never forecast: it is not additive".into(),
            },
        }
    }
}

/// How long the counts in force are kept for the lag drain: the trend
/// window plus the lead time. The growth over the trend window was
/// measured against the pods that were ready in it, and a pod asked for up
/// to a lead time before the window began (which must cover start-up) may
/// still have been starting then. Over the trend window alone, pods still
/// starting after it were counted as running, and every two minutes the
/// drain was added again on top of pods that had not yet served. Longer
/// than this would hold a needed second step back for pods that did start.
pub(crate) fn counts_window(lead_time: TimeDelta) -> TimeDelta {
    LAG_TREND_WINDOW + lead_time
}

/// Updates signal `m`'s memory with the tick's observation: the lag drain
/// per replica, the recent values, the forecast's live error and the
/// confidence gate. Returns the live MASE and whether the gate is closed.
fn track(
    mem: &mut MetricMemory,
    m: &MetricInput<'_>,
    b: &Behavior,
    current: Option<u32>,
    now: DateTime<Utc>,
) -> (Option<f64>, bool) {
    let rules = &b.rules;
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
    if let Some(c) = current {
        mem.counts.push_back((now, c));
    }
    trim(&mut mem.counts, now, counts_window(b.lead_time));
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
    (live_mase, mem.live_gate_closed)
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
                max_replicas: b.max_replicas,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quotient_past_the_range_of_f64_wants_the_most() {
        assert_eq!(ceil_div(10.0, 1e-320), u32::MAX);
        assert_eq!(ceil_div(10.0, 4.0), 3);
        assert_eq!(ceil_div(0.0, 4.0), 0);
        assert_eq!(ceil_div(f64::NAN, 4.0), 0);
    }
}
