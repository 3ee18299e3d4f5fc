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
use crate::sources::{FileData, FileSource, MetricSource};

/// Trained models by boundary, and the trainings that failed.
#[derive(Debug, Default)]
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

/// Trains every boundary whose model the replay of `[from, to]` uses, in
/// parallel: first the selection boundaries (full validation), then the
/// boundaries in between (refits of the choice). `progress(done, total)` is
/// called after each training.
pub fn train_all(p: &TrainingPlan<'_>, progress: &(dyn Fn(usize, usize) + Sync)) -> Models {
    let delay = plan::activation_delay(p.retrain);
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
    let selections: BTreeSet<DateTime<Utc>> = boundaries
        .iter()
        .map(|b| plan::selection_boundary(*b, p.retrain, p.reselect))
        .collect();
    let total = selections.len()
        + boundaries
            .iter()
            .filter(|b| !selections.contains(b))
            .count();
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
    let selected: BTreeMap<DateTime<Utc>, Result<Trained, String>> =
        selections.par_iter().map(|&s| (s, fit(s, None))).collect();
    let refits: Vec<(DateTime<Utc>, Result<Trained, String>)> = boundaries
        .par_iter()
        .filter(|b| !selections.contains(b))
        .map(|&b| {
            let s = plan::selection_boundary(b, p.retrain, p.reselect);
            let chosen = selected.get(&s).and_then(|r| r.as_ref().ok());
            (b, fit(b, chosen))
        })
        .collect();
    let mut models = Models {
        delay,
        attempted: total,
        ..Models::default()
    };
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
