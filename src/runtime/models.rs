//! The table of trained models, shared by every ScaledObject that asks for
//! the same forecast (same query, window, step, seasonality and quantile).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::RuntimeConfig;
use crate::domain::{ScalerSpec, Seasonality, Series};
use crate::forecast::{TrainSpec, Trained, candidate_steps};

/// How long to wait before retrying a training that failed.
const RETRY_AFTER: TimeDelta = TimeDelta::seconds(60);

/// Identifies one forecast to train.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ModelKey {
    /// The query whose history is fitted.
    pub(crate) query: String,
    /// Sampling step for the history.
    pub(crate) step: TimeDelta,
    /// Training window.
    pub(crate) history: TimeDelta,
    /// Seasonal periods.
    pub(crate) seasonality: Seasonality,
    /// Lead time: the forecast must reach this far past each tick.
    pub(crate) lead_time: TimeDelta,
    /// Upper quantile used by the policy, in thousandths (hashable).
    pub(crate) quantile_permille: u32,
}

impl ModelKey {
    pub(crate) fn new(query: &str, spec: &ScalerSpec) -> Self {
        Self {
            query: query.to_string(),
            step: spec.step,
            history: spec.history,
            seasonality: spec.seasonality.clone(),
            lead_time: spec.lead_time,
            quantile_permille: (spec.forecast_quantile * 1000.0).round() as u32,
        }
    }

    /// What to train on `series` (whose step may differ from the requested one).
    pub(crate) fn train_spec(&self, series: &Series, config: &RuntimeConfig) -> TrainSpec {
        let (periods, detect) = match &self.seasonality {
            Seasonality::Auto => (vec![TimeDelta::days(1), TimeDelta::weeks(1)], true),
            Seasonality::Periods(p) => (p.clone(), false),
        };
        // The forecast must cover every tick until the next retrain, plus the
        // lead time, plus slack for a late retrain.
        let span = to_delta(config.retrain) + self.lead_time + to_delta(config.tick) * 2;
        let step_s = series.step.num_seconds().max(1);
        let horizon = (span.num_seconds() + step_s - 1) / step_s + 1;
        let q = f64::from(self.quantile_permille) / 1000.0;
        TrainSpec {
            periods: candidate_steps(&periods, series.step),
            detect,
            horizon: usize::try_from(horizon).unwrap_or(1),
            // The upper end of a central interval at level 2q - 1 is the q quantile.
            level: (2.0 * q - 1.0).clamp(0.01, 0.999),
        }
    }
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::hours(1))
}

/// Training state of one model.
#[derive(Default)]
struct Slot {
    /// The latest successful training; kept when a retrain fails.
    trained: Option<Arc<Trained>>,
    /// When the last attempt finished, successful or not.
    attempted_at: Option<DateTime<Utc>>,
    /// When the next training is due; `None` means now.
    next_due: Option<DateTime<Utc>>,
    /// A training is running; never start a second one.
    in_flight: bool,
    /// The last failure, for diagnostics.
    last_error: Option<String>,
}

/// All models by key.
#[derive(Default)]
pub(crate) struct ModelTable {
    /// Slots by key.
    slots: HashMap<ModelKey, Slot>,
}

impl ModelTable {
    /// The latest trained model for `key`.
    pub(crate) fn trained(&self, key: &ModelKey) -> Option<&Trained> {
        self.slots.get(key)?.trained.as_deref()
    }

    /// Drops models no ScaledObject needs any more.
    pub(crate) fn retain_only(&mut self, wanted: &HashSet<ModelKey>) {
        self.slots.retain(|k, s| wanted.contains(k) || s.in_flight);
    }

    /// Marks and returns the models whose training is due.
    pub(crate) fn take_due(
        &mut self,
        wanted: &HashSet<ModelKey>,
        now: DateTime<Utc>,
    ) -> Vec<ModelKey> {
        let mut due = Vec::new();
        for key in wanted {
            let slot = self.slots.entry(key.clone()).or_default();
            if !slot.in_flight && slot.next_due.is_none_or(|t| now >= t) {
                slot.in_flight = true;
                due.push(key.clone());
            }
        }
        due
    }

    /// Records the end of a training started at `started`.
    pub(crate) fn finish(
        &mut self,
        key: &ModelKey,
        result: Result<Arc<Trained>, String>,
        started: DateTime<Utc>,
        retrain: Duration,
    ) {
        let slot = self.slots.entry(key.clone()).or_default();
        slot.in_flight = false;
        slot.attempted_at = Some(Utc::now());
        match result {
            Ok(t) => {
                slot.trained = Some(t);
                slot.last_error = None;
                slot.next_due = Some(started + to_delta(retrain));
            }
            Err(e) => {
                slot.last_error = Some(e);
                slot.next_due = Some(started + RETRY_AFTER);
            }
        }
    }

    /// Models that have never finished an attempt.
    pub(crate) fn never_trained(&self) -> usize {
        self.slots
            .values()
            .filter(|s| s.attempted_at.is_none())
            .count()
    }

    /// The last training error of `key`, if its last attempt failed.
    pub(crate) fn last_error(&self, key: &ModelKey) -> Option<&str> {
        self.slots.get(key)?.last_error.as_deref()
    }
}
