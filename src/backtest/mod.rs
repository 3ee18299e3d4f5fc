//! Offline replay: foresight's policy, a reactive HPA and a perfect-foresight
//! oracle run over the same recorded demand, and are scored the same way.
//!
//! * [`training`]: every model the replay needs, trained in parallel from
//!   the history ending at each boundary (no peeking: a model sees only the
//!   data before its boundary and is used only after its activation delay,
//!   as in `serve`).
//! * [`capacity`]: pods with a start-up delay, demand between samples, and
//!   the oracle's schedule.
//! * [`hpa`]: an independent emulation of the Kubernetes HPA.
//! * [`report`]: the fixed `report.json` schema and the terminal table.
//! * [`timeline`]: the per-tick Parquet file; [`plot`] draws it.
//! * [`sweep`]: one replay per combination of metadata values, checked
//!   against goals.
//!
//! The replay steps through ticks (the data step, at most one minute).
//! A sample holds until the next one (as a Prometheus instant query returns
//! the latest sample), and every policy observes the demand at the tick, so
//! nothing it sees comes from after the tick. foresight runs
//! the same `policy::decide` as `serve`, with its state carried from tick to
//! tick, and its count passes through the HPA's tolerance on the way to the
//! Deployment, as it does in a cluster.

mod capacity;
mod error;
mod hpa;
mod plot;
mod report;
pub mod sweep;
mod timeline;
mod training;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

pub use capacity::{Pods, demand_at, oracle_schedule};
pub use error::BacktestError;
pub use hpa::{Hpa, HpaConfig, downstream_tolerance};
pub use plot::plot;
pub use report::{
    DecisionStats, ForecastScore, InputInfo, Policies, PolicyScore, Report, TrainingStats,
};
pub use timeline::{Timeline, write_timeline};
use training::PlansAhead;
pub use training::{Models, TrainingPlan, train_all};

use crate::domain::{Forecast, MetricKind, Mode, Prediction, ScalerSpec, Series};
use crate::forecast::Trained;
use crate::policy::{Behavior, ForecastInput, MetricInput, Observation, PolicyState, decide};

/// A change that undoes the previous one sooner than this is a flap: the
/// HPA's default scale-down stabilisation, the span it exists to damp.
const FLAP_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// The longest default tick: the HPA syncs every 15 s and `serve` evaluates
/// every 15 s by default, and the HPA's scale-up limits are per 15 s. A
/// one-minute tick, as the first versions used, let every scaler climb a
/// burst a quarter as fast as it would in a cluster.
const DEFAULT_TICK: TimeDelta = TimeDelta::seconds(15);

/// Everything one replay needs.
pub struct Backtest<'a> {
    /// The recorded demand.
    pub series: &'a Series,
    /// Its id (the query the metadata names).
    pub id: &'a str,
    /// Where it came from, for the report.
    pub source: String,
    /// The parsed metadata: exactly one additive signal.
    pub spec: ScalerSpec,
    /// The metadata as given, for the report.
    pub metadata: BTreeMap<String, String>,
    /// Pod start-up delay.
    pub startup: TimeDelta,
    /// Retrain interval.
    pub retrain: TimeDelta,
    /// Full model selection interval; trainings in between refit the choice.
    pub reselect: TimeDelta,
    /// Replayed but not scored at the start, so every policy is scored on
    /// the same settled span.
    pub warmup: TimeDelta,
    /// The HPA tolerance between foresight's count and the Deployment (0.1
    /// in Kubernetes; lower with `HPAConfigurableTolerance`).
    pub downstream_tolerance: f64,
    /// How often every scaler decides (`None`: the data step, at most 15 s,
    /// the HPA's sync period and `serve`'s default evaluation interval).
    /// Scale-up limits are per 15 s, so a longer tick lets a burst climb
    /// one step per tick where the HPA and `serve` would take several.
    pub tick: Option<TimeDelta>,
}

/// Progress of the two phases, for a progress bar.
pub trait Progress: Sync {
    /// `done` of `total` trainings finished.
    fn training(&self, done: usize, total: usize);
    /// `done` of `total` ticks replayed.
    fn replay(&self, done: usize, total: usize);
}

/// No progress reporting.
pub struct Quiet;

impl Progress for Quiet {
    fn training(&self, _: usize, _: usize) {}
    fn replay(&self, _: usize, _: usize) {}
}

/// The models of the last run, kept for the next one (see
/// [`Backtest::run_cached`]).
#[derive(Default)]
pub struct ModelCache {
    /// The training key they were trained for, and the models.
    entry: Option<(String, Arc<Models>)>,
}

/// A replay's report and its per-tick timeline.
pub struct Outcome {
    /// The scores.
    pub report: Report,
    /// Every tick, scored or not.
    pub timeline: Timeline,
}

/// What every lane needs to serve one tick.
#[derive(Clone, Copy)]
struct Tick {
    /// The instant.
    t: DateTime<Utc>,
    /// Pod start-up delay.
    startup: TimeDelta,
    /// Recorded demand, `None` in a gap.
    demand: Option<f64>,
    /// Per-pod capacity.
    target: f64,
    /// Whether unserved work carries over.
    queue: bool,
    /// Whether the tick counts towards the score.
    scored: bool,
    /// Tick length in seconds.
    seconds: f64,
}

/// One policy's simulated Deployment and running score.
#[derive(Default)]
struct Lane {
    /// Its pods.
    pods: Pods,
    /// Work carried over (queue-like signals only).
    backlog: f64,
    /// Seconds under-provisioned.
    under_s: f64,
    /// Pod-seconds paid for.
    pod_s: f64,
    /// Count changes.
    events: u32,
    /// Count changes that reversed the previous one within [`FLAP_WINDOW`].
    flaps: u32,
    /// The previous change: when, and whether it went up.
    last_change: Option<(DateTime<Utc>, bool)>,
    /// Largest count.
    max: u32,
    /// Unserved work at each scored tick, for the percentile.
    unserved: Vec<f64>,
}

impl Lane {
    /// What this lane's scaler observes: demand, plus its own backlog for a
    /// queue-like signal.
    fn load(&self, demand: Option<f64>) -> Option<f64> {
        demand.map(|d| d + self.backlog)
    }

    /// Applies the count chosen at the tick, serves the tick and scores it.
    /// Returns the count and the ready pods.
    fn serve(&mut self, count: u32, k: &Tick) -> (u32, u32) {
        let Tick {
            t,
            startup,
            demand,
            target,
            queue,
            scored,
            seconds: tick_s,
        } = *k;
        let before = self.pods.total();
        if count != before {
            let up = count > before;
            if scored {
                self.events += 1;
                if self
                    .last_change
                    .is_some_and(|(at, was_up)| was_up != up && t - at < FLAP_WINDOW)
                {
                    self.flaps += 1;
                }
            }
            self.last_change = Some((t, up));
        }
        self.pods.scale(count, t, startup);
        let ready = self.pods.ready(t);
        let Some(load) = self.load(demand) else {
            if scored {
                self.pod_s += f64::from(count) * tick_s;
            }
            return (count, ready);
        };
        let capacity = f64::from(ready) * target;
        let short = (load - capacity).max(0.0);
        if queue {
            self.backlog = short;
        }
        if scored {
            // A shortfall below a millionth of the load is float noise.
            if short > 1e-6 * load.max(1.0) {
                self.under_s += tick_s;
            }
            self.pod_s += f64::from(count) * tick_s;
            self.max = self.max.max(count);
            self.unserved.push(short);
        }
        (count, ready)
    }

    fn score(&self) -> PolicyScore {
        PolicyScore {
            under_provisioned_minutes: self.under_s / 60.0,
            replica_hours: self.pod_s / 3600.0,
            scale_events: self.events,
            flaps: self.flaps,
            max_replicas: self.max,
            p95_backlog: percentile(&self.unserved, 0.95),
        }
    }
}

fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((s.len() as f64) * q).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn ceil_div(v: f64, target: f64) -> u32 {
    let r = (v / target).ceil();
    if r.is_finite() && r > 0.0 {
        r.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

impl Backtest<'_> {
    fn validate(&self) -> Result<(MetricKind, f64), BacktestError> {
        let [m] = self.spec.metrics.as_slice() else {
            return Err(BacktestError::Unsupported {
                what: format!("{} signals at once", self.spec.metrics.len()),
                fix: "a backtest replays one series: keep one query/target pair in the metadata"
                    .into(),
            });
        };
        if !m.kind.is_additive() {
            return Err(BacktestError::Unsupported {
                what: "p99 latency".into(),
                fix: "latency is not additive, so capacity cannot be simulated from it; replay a queue depth, consumer lag or connections series".into(),
            });
        }
        if !(m.target.is_finite() && m.target > 0.0) {
            return Err(BacktestError::BadOption {
                option: "--target-per-pod",
                expected: "a positive number",
                got: m.target.to_string(),
            });
        }
        if self.startup < TimeDelta::zero() {
            return Err(BacktestError::BadOption {
                option: "--startup",
                expected: "zero or more",
                got: format!("{}s", self.startup.num_seconds()),
            });
        }
        if self.retrain < TimeDelta::minutes(1) {
            return Err(BacktestError::BadOption {
                option: "--retrain",
                expected: "at least 1m",
                got: format!("{}s", self.retrain.num_seconds()),
            });
        }
        if let Some(tick) = self.tick
            && (tick < TimeDelta::seconds(1) || tick > self.series.step)
        {
            return Err(BacktestError::BadOption {
                option: "--tick",
                expected: "between 1s and the data step, so that every sample is seen",
                got: format!(
                    "{}s with a data step of {}s",
                    tick.num_seconds(),
                    self.series.step.num_seconds()
                ),
            });
        }
        if !(0.0..1.0).contains(&self.downstream_tolerance) {
            return Err(BacktestError::BadOption {
                option: "--hpa-tolerance",
                expected: "in [0, 1)",
                got: self.downstream_tolerance.to_string(),
            });
        }
        if self.series.observed() < 2 {
            return Err(BacktestError::Input {
                series: self.id.to_string(),
                message: "fewer than two samples; nothing to replay".into(),
            });
        }
        Ok((m.kind, m.target))
    }

    /// Trains every model the replay needs, then replays.
    pub fn run(&self, progress: &dyn Progress) -> Result<Outcome, BacktestError> {
        self.run_cached(&mut ModelCache::default(), progress)
    }

    /// As [`Backtest::run`], but reuses the models in `cache` when they were
    /// trained from the same inputs, and leaves this run's models there. A
    /// sweep over policy settings (which the models do not depend on) then
    /// trains once.
    pub fn run_cached(
        &self,
        cache: &mut ModelCache,
        progress: &dyn Progress,
    ) -> Result<Outcome, BacktestError> {
        let validated = self.validate()?;
        let key = self.training_key();
        let models = match cache.entry.take() {
            Some((k, m)) if k == key => m,
            _ => {
                let (from, to) = self.span();
                Arc::new(train_all(
                    &TrainingPlan {
                        series: self.series,
                        id: self.id,
                        spec: &self.spec,
                        retrain: self.retrain,
                        reselect: self.reselect,
                        from,
                        to,
                    },
                    &|d, t| progress.training(d, t),
                ))
            }
        };
        let out = self.replay(&models, validated, progress);
        cache.entry = Some((key, models));
        out
    }

    /// Everything [`train_all`] reads: runs with equal keys get identical
    /// models. The series is named by identity as well as shape, so a cache
    /// handed a different series of the same length trains again.
    pub(crate) fn training_key(&self) -> String {
        let s = &self.spec;
        format!(
            "{}|{:p}|{}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
            self.id,
            self.series,
            self.series.start,
            self.series.step,
            self.series.len(),
            s.history,
            s.step,
            s.seasonality,
            s.lead_time,
            s.forecast_quantile.to_bits(),
            self.retrain,
            self.reselect
        )
    }

    /// First and last replayed instants.
    fn span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let s = self.series;
        (s.start, s.timestamp(s.len().saturating_sub(1)))
    }

    /// Replays the series with `models`, which [`train_all`] trained for
    /// this backtest's training key, as the signal and target
    /// [`Backtest::validate`] returned.
    fn replay(
        &self,
        models: &Models,
        (kind, target): (MetricKind, f64),
        progress: &dyn Progress,
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
        if let Some(need) = two_seasons
            && need > self.spec.history.min(to - from)
        {
            notes.push(format!(
                "the longest season needs {} of history and {} is available: models fall back to the shorter seasons (or seasonal naive, or naive) until then",
                fmt_span(need),
                fmt_span(self.spec.history.min(to - from))
            ));
        }

        if let Some((b, e)) = models.failures.first() {
            notes.push(format!(
                "{} of {} trainings failed and kept the previous model (the policy is reactive where none exists); first, at {}: {e}",
                models.failures.len(),
                models.attempted,
                b.to_rfc3339()
            ));
        }

        let behavior = Behavior::from_spec(&self.spec);
        let tick_s = tick.num_milliseconds() as f64 / 1000.0;
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
        let mut timeline = Timeline::with_capacity(n_ticks);
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
            };
            let (fr, fready) = fs.serve(f_count, &tk);
            let (hr, hready) = hp.serve(h_count, &tk);
            let (orr, oready) = or.serve(o_count, &tk);
            pf.serve(pf_count, &tk);

            let seen = models.at(t - behavior.lead_time).and_then(|m| {
                let f = &m.forecast;
                let (slot, p) = f.slot_at(t)?;
                let i =
                    usize::try_from((slot - f.start).num_seconds() / f.step.num_seconds().max(1))
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
        let steps = n_ticks
            - usize::try_from((scored_from - from).num_seconds() / tick.num_seconds().max(1))
                .unwrap_or(0)
                .min(n_ticks);
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
) -> Observation<'a> {
    Observation {
        metrics: vec![MetricInput {
            kind,
            target,
            observed,
            forecast,
            forecast_note,
        }],
        last_remediation: None,
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

/// Scores, at every data point in the scored span, the forecast the policy
/// saw for it: the model in force `lead` earlier.
fn score_forecasts(
    s: &Series,
    models: &Models,
    lead: TimeDelta,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ForecastScore {
    let (mut abs_scaled, mut smape, mut inside, mut n) = (0.0, 0.0, 0usize, 0usize);
    let (mut anchored_inside, mut anchored_n) = (0usize, 0usize);
    let mut level = None;
    for (i, y) in s.values.iter().enumerate() {
        let t = s.timestamp(i);
        if t < from || t > to || !y.is_finite() {
            continue;
        }
        let Some(m) = models.at(t - lead) else {
            continue;
        };
        let f = &m.forecast;
        let Some((slot, p)) = f.slot_at(t) else {
            continue;
        };
        let Ok(j) = usize::try_from((slot - f.start).num_seconds() / f.step.num_seconds().max(1))
        else {
            continue;
        };
        level = Some(f.level);
        abs_scaled += (y - p).abs() / m.mase_scale.max(1e-12);
        let denom = y.abs() + p.abs();
        if denom > 0.0 {
            smape += 200.0 * (y - p).abs() / denom;
        }
        if f.lower[j] <= *y && *y <= f.upper[j] {
            inside += 1;
        }
        n += 1;
        if let Some(hit) = anchored_hit(s, m, t - lead, j, *y) {
            anchored_n += 1;
            anchored_inside += usize::from(hit);
        }
    }
    let mean = |x: f64| (n > 0).then(|| x / n as f64);
    ForecastScore {
        mase: mean(abs_scaled),
        smape: mean(smape),
        interval_coverage: mean(inside as f64),
        interval_level: level.unwrap_or(0.0),
        points: n,
        anchored_coverage: (anchored_n > 0).then(|| anchored_inside as f64 / anchored_n as f64),
        anchored_points: anchored_n,
    }
}

/// Whether `y`, the value at forecast slot `j`, falls inside the anchored
/// interval as the policy computed it at `seen` (the value observed then,
/// carried `h` slots ahead). `None` without an anchor, without an
/// observation at `seen`, or when `j` is the slot observed then (`h = 0`)
/// or beyond the anchor's calibrated steps.
fn anchored_hit(s: &Series, m: &Trained, seen: DateTime<Utc>, j: usize, y: f64) -> Option<bool> {
    let a = m.anchor.as_ref()?;
    let f = &m.forecast;
    let observed = demand_at(s, seen)?;
    let (_, p0) = f.slot_at(seen)?;
    let step = f.step.num_milliseconds().max(1);
    let i0 = usize::try_from((seen - f.start).num_milliseconds().div_euclid(step)).ok()?;
    let (center, w) = f.anchored_at(a, observed - p0, i0, j)?;
    Some((y - center).abs() <= w)
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

    #[test]
    fn a_change_undone_within_five_minutes_is_a_flap() {
        let t0 = DateTime::from_timestamp(0, 0).unwrap();
        let tick = |m: i64| Tick {
            t: t0 + TimeDelta::minutes(m),
            startup: TimeDelta::minutes(2),
            demand: Some(100.0),
            target: 100.0,
            queue: false,
            scored: true,
            seconds: 60.0,
        };
        let mut lane = Lane {
            pods: Pods::warm(2, t0),
            ..Lane::default()
        };
        // Up, then down a minute later: a flap. Down again: same direction.
        // Up eight minutes after the last change: not a flap; down a minute
        // after that: a flap. Holding is no change at all.
        for (m, n) in [(1, 5), (2, 3), (3, 2), (11, 4), (12, 3), (13, 3)] {
            lane.serve(n, &tick(m));
        }
        let score = lane.score();
        assert_eq!((score.scale_events, score.flaps), (5, 2));
    }
}
