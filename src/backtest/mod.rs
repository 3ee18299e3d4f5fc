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

/// Models kept from one run for the next (see [`Backtest::run_cached`]).
#[derive(Default)]
pub struct ModelCache {
    /// Per training key: the samples the models were trained on (the
    /// longest series seen with that key), and every training done on them
    /// so far, over any span.
    entries: Vec<(String, Vec<f64>, Models)>,
    /// Whether models of other keys stay when a new key is trained. A
    /// sweep replays its settings grouped by key, so one entry is enough;
    /// a sweep that replays them again over a longer span (`--holdout`,
    /// `--folds`) keeps all, at the memory of one run's models per key.
    keep_all: bool,
}

impl ModelCache {
    /// A cache that keeps every training key's models for later runs.
    pub fn keeping_all() -> Self {
        Self {
            entries: Vec::new(),
            keep_all: true,
        }
    }
}

/// Whether two series agree on every sample both have (bit for bit, so
/// missing samples match): models trained on one's head are the other's.
fn same_head(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
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

    /// As [`Backtest::run`], but takes from `cache` the models trained
    /// from the same settings on the same samples, trains only the rest,
    /// and leaves this run's models there. A sweep over policy settings
    /// (which the models do not depend on) then trains once, and a replay
    /// of a longer span of the same series trains only the boundaries past
    /// the shorter one's. The outcome is the same as [`Backtest::run`]'s.
    pub fn run_cached(
        &self,
        cache: &mut ModelCache,
        progress: &dyn Progress,
    ) -> Result<Outcome, BacktestError> {
        let models = self.train_cached(cache, progress)?;
        self.replay_with(&models, progress)
    }

    /// The first half of [`Backtest::run_cached`]: the models this replay
    /// uses, taken from `cache` or trained and left there. Every backtest
    /// with the same [training key](Self::training_key) over the same
    /// series can replay on them ([`Backtest::replay_with`]), so a sweep
    /// trains once and replays its settings side by side.
    pub fn train_cached(
        &self,
        cache: &mut ModelCache,
        progress: &dyn Progress,
    ) -> Result<Arc<Models>, BacktestError> {
        self.validate()?;
        let key = self.training_key();
        let values = &self.series.values;
        let at = cache
            .entries
            .iter()
            .position(|(k, v, _)| *k == key && same_head(v, values));
        let (from, to) = self.span();
        let models = Arc::new(train_all(
            &TrainingPlan {
                series: self.series,
                id: self.id,
                spec: &self.spec,
                retrain: self.retrain,
                reselect: self.reselect,
                from,
                to,
            },
            at.map(|i| &cache.entries[i].2),
            &|d, t| progress.training(d, t),
        ));
        match at {
            Some(i) => {
                let (_, seen, kept) = &mut cache.entries[i];
                kept.absorb(&models);
                if values.len() > seen.len() {
                    seen.clone_from(values);
                }
            }
            None => {
                if !cache.keep_all {
                    cache.entries.clear();
                }
                cache
                    .entries
                    .push((key, values.clone(), Models::clone(&models)));
            }
        }
        Ok(models)
    }

    /// The second half of [`Backtest::run_cached`]: the replay on `models`,
    /// which [`Backtest::train_cached`] gave for a backtest with the same
    /// training key over the same series.
    pub fn replay_with(
        &self,
        models: &Models,
        progress: &dyn Progress,
    ) -> Result<Outcome, BacktestError> {
        let validated = self.validate()?;
        self.replay(models, validated, progress, true)
    }

    /// As [`Backtest::replay_with`], for the report alone: no timeline is
    /// kept, which is what a replay of months holds most of.
    pub fn score_with(
        &self,
        models: &Models,
        progress: &dyn Progress,
    ) -> Result<Report, BacktestError> {
        let validated = self.validate()?;
        Ok(self.replay(models, validated, progress, false)?.report)
    }

    /// Everything [`train_all`] reads but the samples: runs with equal keys
    /// on samples that agree get identical models at every boundary both
    /// reach ([`ModelCache`] compares the samples).
    pub(crate) fn training_key(&self) -> String {
        let s = &self.spec;
        format!(
            "{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}",
            self.id,
            self.series.start,
            self.series.step,
            s.history,
            s.step,
            s.seasonality,
            s.lead_time,
            s.forecast_quantile.to_bits(),
            self.retrain,
            self.reselect,
            // `mode: holding` trains a need model as well, for this target
            // and these bounds; other modes train none.
            s.metrics
                .first()
                .and_then(|m| crate::forecast::NeedSpec::of(s, m.target))
        )
    }

    /// First and last replayed instants.
    fn span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let s = self.series;
        (s.start, s.timestamp(s.len().saturating_sub(1)))
    }
}
