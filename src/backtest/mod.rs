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
//! * [`replay`]: the tick loop that runs every policy over the same demand;
//!   [`lane`]: one policy's pods, backlog and scores; [`score`]: the
//!   forecasts' accuracy at the lead time.
//! * [`report`]: the fixed `report.json` schema and the terminal table.
//! * [`timeline`]: the per-tick Parquet file; [`plot`] draws it.
//! * [`sweep`]: one replay per combination of metadata values, checked
//!   against goals; [`deploy`]: which of its picks is fit to write into a
//!   ScaledObject.
//!
//! The replay steps through ticks (the data step, at most one minute).
//! A sample holds until the next one (as a Prometheus instant query returns
//! the latest sample), and every policy observes the demand at the tick, so
//! nothing it sees comes from after the tick. foresight runs
//! the same `policy::decide` as `serve`, with its state carried from tick to
//! tick, and its count passes through the HPA's tolerance on the way to the
//! Deployment, as it does in a cluster.

mod capacity;
mod deploy;
mod error;
mod hpa;
mod lane;
mod plot;
mod replay;
mod report;
mod score;
pub mod sweep;
mod timeline;
mod training;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

pub use capacity::{Pods, demand_at, oracle_schedule};
pub use deploy::{Deployable, NotDeployable, PickKind, deployable};
pub use error::BacktestError;
pub use hpa::{Hpa, HpaConfig, downstream_tolerance};
pub use plot::plot;
pub use report::{
    DecisionStats, ForecastScore, InputInfo, Policies, PolicyScore, Report, TrainingStats,
};
pub use timeline::{Timeline, write_timeline};
pub use training::{Models, TrainingPlan, train_all};

use crate::domain::{MetricKind, ScalerSpec, Series};

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
}
