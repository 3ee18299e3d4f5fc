//! The replay loop: foresight, the same policy fed the recorded future,
//! the HPA emulation and the oracle step through the same ticks, each
//! serving the demand with its own pods ([`Lane`]), and their scores make
//! the report.

use chrono::{DateTime, TimeDelta, Utc};

use super::lane::{Lane, Tick};
use super::score::score_forecasts;
use super::training::PlansAhead;
use super::{
    Backtest, BacktestError, DecisionStats, Hpa, HpaConfig, InputInfo, Models, Outcome, Pods,
    Policies, Progress, Report, Timeline, TrainingStats, demand_at, downstream_tolerance,
    oracle_schedule, timeline,
};
use crate::domain::{Forecast, MetricKind, Mode, Prediction, Series};
use crate::policy::{Behavior, ForecastInput, MetricInput, Observation, PolicyState, decide};

/// The longest default tick: the HPA syncs every 15 s and `serve` evaluates
/// every 15 s by default, and the HPA's scale-up limits are per 15 s. A
/// one-minute tick, as the first versions used, let every scaler climb a
/// burst a quarter as fast as it would in a cluster.
const DEFAULT_TICK: TimeDelta = TimeDelta::seconds(15);

fn ceil_div(v: f64, target: f64) -> u32 {
    let r = (v / target).ceil();
    if r.is_finite() && r > 0.0 {
        r.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

impl Backtest<'_> {
    /// Replays the series with `models`, which [`train_all`](super::train_all) trained for
    /// this backtest's training key, as the signal and target
    /// [`Backtest::validate`] returned.
    pub(super) fn replay(
        &self,
        models: &Models,
        (kind, target): (MetricKind, f64),
        progress: &dyn Progress,
        keep_timeline: bool,
    ) -> Result<Outcome, BacktestError> {
        let s = self.series;
        let queue = matches!(kind, MetricKind::QueueDepth | MetricKind::ConsumerLag);
        let tick = self
            .tick
            .unwrap_or_else(|| s.step.min(DEFAULT_TICK).max(TimeDelta::seconds(1)));
        let (from, to) = self.span();
        let n_ticks =
            usize::try_from((to - from).num_seconds() / tick.num_seconds() + 1).unwrap_or(0);
        let scored_from = from + self.warmup;
        if scored_from > to {
            return Err(BacktestError::Input {
                series: self.id.to_string(),
                message: format!(
                    "the series spans {}, which the {} warm-up leaves nothing of; shorten --warmup",
                    fmt_span(to - from),
                    fmt_span(self.warmup)
                ),
            });
        }
        let mut notes = Vec::new();
        let two_seasons = match &self.spec.seasonality {
            crate::domain::Seasonality::Periods(p) => p.iter().max().map(|p| *p * 2),
            crate::domain::Seasonality::Auto => Some(TimeDelta::weeks(2)),
        };
        if let Some(need) = two_seasons {
            let enough_at = from + need;
            if need > self.spec.history.min(to - from) {
                notes.push(format!(
                    "the longest season needs {} of history and {} is available: models fall back to the shorter seasons (or seasonal naive, or naive) until then",
                    fmt_span(need),
                    fmt_span(self.spec.history.min(to - from))
                ));
            } else if enough_at > scored_from {
                // The file is long enough, but its early trainings are not.
                let short = enough_at - scored_from;
                notes.push(format!(
                    "the longest season needs {} of history: trainings before {} have less and fall back to the shorter seasons (or seasonal naive, or naive), the first {} ({:.0}%) of the scored span",
                    fmt_span(need),
                    enough_at.to_rfc3339(),
                    fmt_span(short),
                    100.0 * short.num_seconds() as f64 / (to - scored_from).num_seconds().max(1) as f64
                ));
            }
        }
        if models.attempted == 0 && self.spec.mode != crate::domain::Mode::Reactive {
            notes.push(format!(
                "no training boundary falls within the replayed {} (--retrain {}): foresight replayed without a forecast, as reactive; use a --retrain shorter than the data",
                fmt_span(to - from),
                fmt_span(self.retrain)
            ));
        }

        if let Some((b, e)) = models.failures.first() {
            // A model serves from its boundary to the next one: a failure
            // whose span ends before scoring starts changed no scored tick.
            let unscored = models
                .failures
                .iter()
                .filter(|(b, _)| *b + self.retrain <= scored_from)
                .count();
            let when = match unscored {
                0 => String::new(),
                n if n == models.failures.len() => {
                    " (all in the warm-up, so no scored decision lacked a model for it)".into()
                }
                n => format!(" ({n} of them in the warm-up, changing no scored decision)"),
            };
            notes.push(format!(
                "{} of {} trainings failed and kept the previous model (the policy is reactive where none exists){when}; first, at {}: {e}",
                models.failures.len(),
                models.attempted,
                b.to_rfc3339()
            ));
        }

        let behavior = Behavior::from_spec(&self.spec);
        let tick_s = tick.num_milliseconds() as f64 / 1000.0;
        let fraction = (tick_s / (s.step.num_milliseconds() as f64 / 1000.0).max(tick_s)).min(1.0);
        let lead_ticks = usize::try_from(
            (self.startup.num_milliseconds() + tick.num_milliseconds() - 1)
                / tick.num_milliseconds(),
        )
        .unwrap_or(0);

        // The oracle knows every tick's requirement in advance.
        let mut last_need = self.spec.min_replicas;
        let need: Vec<u32> = (0..n_ticks)
            .map(|k| {
                let t = from + tick * i32::try_from(k).unwrap_or(i32::MAX);
                if let Some(d) = demand_at(s, t) {
                    last_need =
                        ceil_div(d, target).clamp(self.spec.min_replicas, self.spec.max_replicas);
                }
                last_need
            })
            .collect();
        let oracle_counts = oracle_schedule(&need, lead_ticks);

        let mut hpa = Hpa::new(HpaConfig::kubernetes_default(
            target,
            self.spec.min_replicas,
            self.spec.max_replicas,
        ));
        let (mut fs, mut hp, mut or) = (Lane::default(), Lane::default(), Lane::default());
        let mut pf = Lane::default();
        let mut state = PolicyState::default();
        let mut pf_state = PolicyState::default();
        let horizon = behavior.lead_time.max(behavior.rules.scale_down_lookahead);
        let mut stats = DecisionStats::default();
        let mut plans = PlansAhead::default();
        // A sweep scores its runs and draws none: at 120 bytes a tick, a
        // replay of months would hold a timeline of 150 MB for nothing.
        let mut timeline = Timeline::with_capacity(if keep_timeline { n_ticks } else { 0 });
        let mut started = false;

        for (k, &o_count) in oracle_counts.iter().enumerate() {
            let t = from + tick * i32::try_from(k).unwrap_or(i32::MAX);
            let demand = demand_at(s, t);
            let scored = t >= scored_from;

            // foresight.
            let entry = models.entry_at(t);
            let model = entry.map(|(_, m)| m);
            let plan = match entry {
                Some((b, _)) if behavior.mode == Mode::Holding => plans.get(&behavior, models, b),
                _ => None,
            };
            let observation = one_signal(
                kind,
                target,
                fs.load(demand),
                model.map(|m| ForecastInput {
                    plan,
                    ..ForecastInput::from_trained(m)
                }),
                model
                    .is_none()
                    .then(|| "no model trained yet (too little history)".to_string()),
                self.spec.last_remediation,
            );
            let f_count = steer(
                &behavior,
                &observation,
                &mut state,
                t,
                fs.pods.total(),
                started.then_some(self.downstream_tolerance),
                scored.then_some(&mut stats),
            );
            // The same policy, fed the recorded future (as far ahead as the
            // policy looks) instead.
            let perfect = recorded_future(s, t, horizon);
            let pf_observation = one_signal(
                kind,
                target,
                pf.load(demand),
                perfect.as_ref().map(|f| ForecastInput {
                    forecast: f,
                    scale: 1.0,
                    validation_mase: Some(0.0),
                    anchor: None,
                    need: None,
                    plan: None,
                }),
                None,
                self.spec.last_remediation,
            );
            let pf_count = steer(
                &behavior,
                &pf_observation,
                &mut pf_state,
                t,
                pf.pods.total(),
                started.then_some(self.downstream_tolerance),
                None,
            );
            let h_count = hpa.sync(hp.load(demand), t);
            if !started {
                // Every Deployment starts warm at its scaler's first answer.
                fs.pods = Pods::warm(f_count, t);
                pf.pods = Pods::warm(pf_count, t);
                hp.pods = Pods::warm(h_count, t);
                or.pods = Pods::warm(o_count, t);
                started = true;
            }
            let tk = Tick {
                t,
                startup: self.startup,
                demand,
                target,
                queue,
                scored,
                seconds: tick_s,
                fraction,
            };
            let (fr, fready) = fs.serve(f_count, &tk);
            let (hr, hready) = hp.serve(h_count, &tk);
            let (orr, oready) = or.serve(o_count, &tk);
            pf.serve(pf_count, &tk);

            if keep_timeline {
                let seen = models.at(t - behavior.lead_time).and_then(|m| {
                    let f = &m.forecast;
                    let (slot, p) = f.slot_at(t)?;
                    let i = usize::try_from(
                        (slot - f.start).num_seconds() / f.step.num_seconds().max(1),
                    )
                    .ok()?;
                    Some((p, f.lower[i], f.upper[i]))
                });
                timeline.push(timeline::Row {
                    t,
                    demand,
                    forecast: seen,
                    foresight: (fr, fready, fs.backlog),
                    hpa: (hr, hready, hp.backlog),
                    oracle: (orr, oready, or.backlog),
                });
            }
            if k % 4096 == 0 || k + 1 == n_ticks {
                progress.replay(k + 1, n_ticks);
            }
        }

        let forecast = score_forecasts(s, models, behavior.lead_time, scored_from, to);
        let mut training = TrainingStats {
            attempted: models.attempted,
            failed: models.failures.len(),
            ..TrainingStats::default()
        };
        for (_, m) in models.iter() {
            *training.models.entry(m.model.to_string()).or_default() += 1;
        }
        // Ticks before `scored_from` are not scored: a warm-up that is not
        // a whole number of ticks ends inside one, which is not scored.
        let unscored = u64::try_from((scored_from - from).num_milliseconds())
            .unwrap_or(0)
            .div_ceil(u64::try_from(tick.num_milliseconds()).unwrap_or(1).max(1));
        let steps = n_ticks - usize::try_from(unscored).unwrap_or(n_ticks).min(n_ticks);
        let report = Report {
            input: InputInfo {
                source: self.source.clone(),
                series: self.id.to_string(),
                signal: kind.to_string(),
                target_per_pod: target,
                startup_seconds: self.startup.num_seconds(),
                retrain_seconds: self.retrain.num_seconds(),
                history_seconds: self.spec.history.num_seconds(),
                data_step_seconds: s.step.num_seconds(),
                from: from.to_rfc3339(),
                scored_from: scored_from.to_rfc3339(),
                to: to.to_rfc3339(),
                metadata: self.metadata.clone(),
                downstream_tolerance: self.downstream_tolerance,
            },
            steps,
            step_seconds: tick_s,
            policies: Policies {
                foresight: fs.score(),
                hpa: hp.score(),
                oracle: or.score(),
                perfect_forecast: pf.score(),
            },
            forecast,
            decisions: stats,
            training,
            notes,
        };
        Ok(Outcome { report, timeline })
    }
}

/// What the policy sees of the replayed signal at one tick.
fn one_signal<'a>(
    kind: MetricKind,
    target: f64,
    observed: Option<f64>,
    forecast: Option<ForecastInput<'a>>,
    forecast_note: Option<String>,
    last_remediation: Option<DateTime<Utc>>,
) -> Observation<'a> {
    Observation {
        metrics: vec![MetricInput {
            kind,
            target,
            observed,
            forecast,
            forecast_note,
        }],
        last_remediation,
    }
}

/// One foresight decision at `t`, as the Deployment receives it: through
/// the downstream HPA's tolerance once the replay has started (`tolerance`),
/// holding the current count if the policy cannot decide. Counts the
/// decision into `stats` when the tick is scored.
fn steer(
    behavior: &Behavior,
    observation: &Observation<'_>,
    state: &mut PolicyState,
    t: DateTime<Utc>,
    current: u32,
    tolerance: Option<f64>,
    stats: Option<&mut DecisionStats>,
) -> u32 {
    let Ok((d, next)) = decide(behavior, observation, state, t) else {
        return current.max(behavior.min_replicas);
    };
    *state = next;
    let applied = tolerance.map_or(d.desired_replicas, |tol| {
        downstream_tolerance(d.desired_replicas, current, tol)
    });
    if let Some(stats) = stats {
        let p = match &d.prediction {
            Prediction::Used => "used",
            Prediction::Off => "off",
            Prediction::RecordedOnly => "recordedOnly",
            Prediction::Gated { .. } => "gated",
            Prediction::Unavailable { .. } => "unavailable",
        };
        *stats.prediction.entry(p.into()).or_default() += 1;
        *stats.limiter.entry(d.limiter.label().into()).or_default() += 1;
        if applied != d.desired_replicas {
            stats.swallowed_by_hpa_tolerance += 1;
        }
    }
    applied
}

/// A forecast that is the recorded data itself from the slot in force at
/// `t` to one slot past `t + horizon`, with no band: the perfect forecaster.
/// `None` where the data ends before the window does.
fn recorded_future(s: &Series, t: DateTime<Utc>, horizon: TimeDelta) -> Option<Forecast> {
    let step = s.step.num_milliseconds().max(1);
    let i0 = usize::try_from((t - s.start).num_milliseconds().div_euclid(step)).ok()?;
    // The slot in force, every slot the window reaches into, and the one
    // after the last, which a linear reading leans on: a window that ends
    // part-way into a slot needs that slot's end as well.
    let n = usize::try_from((horizon.num_milliseconds().max(0) + step - 1) / step + 2).ok()?;
    let values = s.values.get(i0..(i0 + n).min(s.values.len()))?.to_vec();
    (values.len() >= 2).then(|| Forecast {
        start: s.timestamp(i0),
        step: s.step,
        point: values.clone(),
        lower: values.clone(),
        upper: values,
        level: 0.0,
    })
}

/// A span for messages, in the largest whole unit.
fn fmt_span(d: TimeDelta) -> String {
    crate::domain::format_delta(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Between;

    #[test]
    fn the_recorded_future_covers_the_whole_window_from_any_tick() {
        // 5-minute samples, a 2-minute window: from the last minutes of a
        // slot the window ends inside the next one, so the recorded future
        // must reach the slot after it. It used not to, and the perfect
        // forecast went blind (reactive) for the last 2 minutes of every
        // slot, releasing the pods just bought for the next sample.
        let s = Series::new(
            DateTime::from_timestamp(0, 0).unwrap(),
            TimeDelta::minutes(5),
            vec![1.0, 5.0, 2.0, 8.0, 3.0],
        );
        for secs in (0..=600).step_by(15) {
            let t = s.start + TimeDelta::seconds(secs);
            for horizon in [TimeDelta::minutes(2), TimeDelta::minutes(10)] {
                let f = recorded_future(&s, t, horizon).unwrap();
                let w = f.window_max_upper(t, t + horizon, Between::Linear);
                assert!(w.is_some(), "blind at {secs}s over {horizon}");
            }
        }
        // Linear between samples: 4 minutes into the first slot the window
        // ends 1 minute into the second, 5 + (2 − 5) × 1/5 = 4.4, after
        // the 5 at 300 s.
        let f =
            recorded_future(&s, s.start + TimeDelta::minutes(4), TimeDelta::minutes(2)).unwrap();
        let t = s.start + TimeDelta::minutes(4);
        assert_eq!(
            f.window_max_upper(t, t + TimeDelta::minutes(2), Between::Linear),
            Some(5.0)
        );
    }
}
