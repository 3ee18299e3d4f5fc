//! Every model the replay needs, trained ahead of the replay.
//!
//! A model depends only on the history ending at its boundary, never on
//! decisions, so all boundaries can be trained in parallel before the
//! sequential replay without any peeking: the replay uses the boundary's
//! model only from `boundary + activation delay`, exactly as `serve` does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use rayon::prelude::*;

use crate::domain::{ScalerSpec, Series};
use crate::forecast::plan::{self, PlanInput};
use crate::forecast::{NeedSpec, Trained, refit, train};
use crate::policy::{Behavior, ForecastInput, Plan, holding_plan};
use crate::sources::{FileData, FileSource, MetricSource};

/// Trained models by boundary, and the trainings that failed.
#[derive(Debug, Default, Clone)]
pub struct Models {
    /// Successful trainings by boundary.
    trained: BTreeMap<DateTime<Utc>, Arc<Trained>>,
    /// Failed trainings, oldest first, for the report's notes.
    pub failures: Vec<(DateTime<Utc>, String)>,
    /// See [`plan::activation_delay`].
    delay: TimeDelta,
    /// How many trainings ran.
    pub attempted: usize,
}

impl Models {
    /// The model a live server would use at `t`.
    pub fn at(&self, t: DateTime<Utc>) -> Option<&Arc<Trained>> {
        self.trained
            .range(..=t - self.delay)
            .next_back()
            .map(|(_, m)| m)
    }

    /// All successful trainings, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&DateTime<Utc>, &Arc<Trained>)> {
        self.trained.iter()
    }

    /// As [`Models::at`], with the boundary the model was trained for.
    pub(crate) fn entry_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, &Arc<Trained>)> {
        self.trained
            .range(..=t - self.delay)
            .next_back()
            .map(|(b, m)| (*b, m))
    }

    /// The successful trainings from `boundary` on, oldest first.
    pub(crate) fn from(
        &self,
        boundary: DateTime<Utc>,
    ) -> impl Iterator<Item = (&DateTime<Utc>, &Arc<Trained>)> {
        self.trained.range(boundary..)
    }
}

/// `mode: holding`'s plans, built a few models ahead of the replay and in
/// parallel: the replay is sequential, and building each plan at its
/// model's first tick left the other cores idle (a plan is a few
/// milliseconds, and a replay of months has thousands). Only the batch the
/// replay is in is kept, so memory stays a few plans.
#[derive(Default)]
pub(crate) struct PlansAhead {
    /// Plans of the current batch by boundary; `None` where the plan could
    /// not be built (the policy then builds it itself and says why).
    built: BTreeMap<DateTime<Utc>, Option<Arc<Plan>>>,
}

impl PlansAhead {
    /// Models per batch: a few per core.
    const BATCH: usize = 16;

    /// The plan of the model trained for `boundary` under `behavior`.
    pub(crate) fn get(
        &mut self,
        behavior: &Behavior,
        models: &Models,
        boundary: DateTime<Utc>,
    ) -> Option<&Arc<Plan>> {
        if !self.built.contains_key(&boundary) {
            // The replay only moves forward: nothing before this is needed.
            let batch: Vec<(DateTime<Utc>, &Arc<Trained>)> = models
                .from(boundary)
                .take(Self::BATCH)
                .map(|(b, m)| (*b, m))
                .collect();
            self.built = batch
                .par_iter()
                .map(|(b, m)| {
                    (
                        *b,
                        holding_plan(behavior, &ForecastInput::from_trained(m))
                            .ok()
                            .map(Arc::new),
                    )
                })
                .collect();
        }
        self.built.get(&boundary)?.as_ref()
    }
}

/// What to train and over which span.
pub struct TrainingPlan<'a> {
    /// The replayed series, in full; each training sees only its window.
    pub series: &'a Series,
    /// Its id, used as the query.
    pub id: &'a str,
    /// The parsed metadata (history, step, seasonality, quantile, lead).
    pub spec: &'a ScalerSpec,
    /// Retrain interval.
    pub retrain: TimeDelta,
    /// Full model selection happens on multiples of this; the trainings in
    /// between refit the chosen model (see [`plan::selection_boundary`]).
    pub reselect: TimeDelta,
    /// First and last replayed instants.
    pub from: DateTime<Utc>,
    /// See `from`.
    pub to: DateTime<Utc>,
}

/// The boundaries a replay of `[from, to]` trains: every retrain boundary
/// whose model it uses, and the selection boundaries (full validation)
/// whose choice the others refit.
fn schedule(p: &TrainingPlan<'_>) -> (Vec<DateTime<Utc>>, BTreeSet<DateTime<Utc>>) {
    // The first model that can exist is the first boundary after the data
    // starts; the last one the replay uses is at or before `to`.
    let mut boundaries = Vec::new();
    let mut b = plan::boundary(p.from, p.retrain);
    if b < p.from {
        b += p.retrain;
    }
    while b <= p.to {
        boundaries.push(b);
        b += p.retrain;
    }
    let selections = boundaries
        .iter()
        .map(|b| plan::selection_boundary(*b, p.retrain, p.reselect))
        .collect();
    (boundaries, selections)
}

/// Trains every boundary whose model the replay of `[from, to]` uses, in
/// parallel: first the selection boundaries (full validation), then the
/// boundaries in between (refits of the choice). `progress(done, total)` is
/// called after each training.
///
/// Boundaries `have` already holds (trained or failed) are taken from it
/// instead: a training reads only the history ending at its boundary, so
/// models trained on the same samples, for the same settings, over a longer
/// or shorter span are these same models. The caller ([`ModelCache`](super::ModelCache))
/// checks that. The result holds exactly the boundaries of `[from, to]`, as
/// if all were trained here.
pub fn train_all(
    p: &TrainingPlan<'_>,
    have: Option<&Models>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Models {
    let delay = plan::activation_delay(p.retrain);
    let (boundaries, selections) = schedule(p);
    let failed: BTreeMap<DateTime<Utc>, &String> = have
        .map(|h| h.failures.iter().map(|(b, e)| (*b, e)).collect())
        .unwrap_or_default();
    let known = |b: &DateTime<Utc>| {
        failed.contains_key(b) || have.is_some_and(|h| h.trained.contains_key(b))
    };
    let new_selections: Vec<DateTime<Utc>> =
        selections.iter().copied().filter(|b| !known(b)).collect();
    let new_refits: Vec<DateTime<Utc>> = boundaries
        .iter()
        .copied()
        .filter(|b| !selections.contains(b) && !known(b))
        .collect();
    let total = new_selections.len() + new_refits.len();
    let source = FileSource::new(FileData::from_series(
        "the replayed series",
        p.id,
        p.series.clone(),
    ));
    let done = AtomicUsize::new(0);
    // Never read before the first sample: the file source loops, and a loop
    // would hand early trainings the end of the trace.
    let earliest = p.series.start - p.series.step;
    let fit = |b: DateTime<Utc>, chosen: Option<&Trained>| -> Result<Trained, String> {
        let start = (b - p.spec.history).max(earliest);
        let history = futures::executor::block_on(source.history(p.id, start, b, p.spec.step))
            .map_err(|e| e.to_string())?;
        let spec = plan::train_spec(&PlanInput {
            seasonality: &p.spec.seasonality,
            lead_time: p.spec.lead_time,
            quantile: p.spec.forecast_quantile,
            retrain: p.retrain,
            step: history.step,
            need: p
                .spec
                .metrics
                .first()
                .and_then(|m| NeedSpec::of(p.spec, m.target)),
        });
        let r = match chosen {
            Some(c) => refit(&history, &spec, &c.choice()),
            None => train(&history, &spec),
        };
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        r.map_err(|e| e.to_string())
    };
    let selected: BTreeMap<DateTime<Utc>, Result<Trained, String>> = new_selections
        .par_iter()
        .map(|&s| (s, fit(s, None)))
        .collect();
    let refits: Vec<(DateTime<Utc>, Result<Trained, String>)> = new_refits
        .par_iter()
        .map(|&b| {
            let s = plan::selection_boundary(b, p.retrain, p.reselect);
            let chosen = match selected.get(&s) {
                Some(r) => r.as_ref().ok(),
                None => have.and_then(|h| h.trained.get(&s)).map(|m| &**m),
            };
            (b, fit(b, chosen))
        })
        .collect();
    // Every boundary the span trains, selections and refits alike.
    let wanted: BTreeSet<DateTime<Utc>> = selections.iter().chain(&boundaries).copied().collect();
    let mut models = Models {
        delay,
        attempted: wanted.len(),
        ..Models::default()
    };
    if let Some(h) = have {
        for b in &wanted {
            if let Some(m) = h.trained.get(b) {
                models.trained.insert(*b, Arc::clone(m));
            } else if let Some(e) = failed.get(b) {
                models.failures.push((*b, (*e).clone()));
            }
        }
    }
    for (b, r) in selected.into_iter().chain(refits) {
        match r {
            Ok(t) => {
                models.trained.insert(b, Arc::new(t));
            }
            Err(e) => models.failures.push((b, e)),
        }
    }
    models.failures.sort_by_key(|(b, _)| *b);
    models
}

impl Models {
    /// Adds `other`'s trainings to these, for a later run to take from.
    pub(crate) fn absorb(&mut self, other: &Models) {
        for (b, m) in &other.trained {
            self.trained.entry(*b).or_insert_with(|| Arc::clone(m));
        }
        for (b, e) in &other.failures {
            if !self.failures.iter().any(|(f, _)| f == b) {
                self.failures.push((*b, e.clone()));
            }
        }
        self.delay = other.delay;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::parse_metadata;

    /// A week and a day of 5-minute samples with a daily cycle and noise,
    /// replayed in `mode: holding`.
    fn setup() -> (Series, ScalerSpec) {
        let start = DateTime::from_timestamp(1_700_438_400, 0).unwrap();
        let values = (0..2_304)
            .map(|i| {
                let day = (f64::from(i % 288) / 288.0 * std::f64::consts::TAU).sin();
                60.0 + 30.0 * day + f64::from((i * 7_919) % 23)
            })
            .collect();
        let series = Series::new(start, TimeDelta::minutes(5), values);
        let meta: HashMap<String, String> = [
            ("queueDepthQuery", "s"),
            ("queueDepthTarget", "10"),
            ("mode", "holding"),
            ("step", "5m"),
            ("history", "7d"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        (series, parse_metadata(&meta).unwrap())
    }

    #[test]
    fn plans_built_ahead_are_the_plans_the_policy_would_build() {
        let (series, spec) = setup();
        let from = series.start + TimeDelta::days(7);
        let models = train_all(
            &TrainingPlan {
                series: &series,
                id: "s",
                spec: &spec,
                retrain: TimeDelta::hours(1),
                reselect: TimeDelta::days(1),
                from,
                to: series.timestamp(series.len() - 1),
            },
            None,
            &|_, _| {},
        );
        let boundaries: Vec<DateTime<Utc>> = models.iter().map(|(b, _)| *b).collect();
        assert!(boundaries.len() > PlansAhead::BATCH, "{}", boundaries.len());
        let behavior = Behavior::from_spec(&spec);
        let mut ahead = PlansAhead::default();
        for (b, m) in models.iter() {
            let want = holding_plan(&behavior, &ForecastInput::from_trained(m)).unwrap();
            let got = ahead.get(&behavior, &models, *b).unwrap();
            assert_eq!(**got, want, "boundary {b}");
            assert!(ahead.built.len() <= PlansAhead::BATCH);
            // The replay finds each model where a live server would.
            let t = *b + plan::activation_delay(TimeDelta::hours(1));
            assert_eq!(models.entry_at(t).map(|(k, _)| k), Some(*b));
        }
    }
}
