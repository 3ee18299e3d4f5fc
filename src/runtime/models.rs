//! The table of trained models, shared by every ScaledObject that asks for
//! the same forecast (same query, window, step, seasonality and quantile).
//!
//! Models are trained on history ending at *boundaries*: multiples of the
//! retrain interval since the epoch. Every replica of foresight therefore
//! fits the same window and gets the same model, whenever it started. A
//! decision at tick `t` uses the model of the latest boundary at or before
//! `t`, so the previous boundary's model is kept for replaying ticks that
//! precede the current boundary.
//!
//! A boundary's model is used only from `boundary + activation delay`
//! (a quarter of the retrain interval, at most 5 minutes): by then every
//! replica has trained it, so none answers with a newer model than another.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::RuntimeConfig;
use crate::domain::{ScalerSpec, Seasonality, Series};
use crate::forecast::plan::{self, PlanInput};
use crate::forecast::{NeedSpec, TrainSpec, Trained};

/// How long to wait before retrying a training that failed.
const RETRY_AFTER: TimeDelta = TimeDelta::seconds(60);
/// How long a model is kept after the replay windows stop needing it.
const KEEP_MARGIN: TimeDelta = TimeDelta::minutes(1);

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
    /// `mode: holding`: the need model's per-replica target (as bits, to be
    /// hashable) and replica bounds, since it is learnt on replica needs.
    pub(crate) need: Option<(u64, u32, u32)>,
}

impl ModelKey {
    pub(crate) fn new(query: &str, target: f64, spec: &ScalerSpec) -> Self {
        Self {
            query: query.to_string(),
            step: spec.step,
            history: spec.history,
            seasonality: spec.seasonality.clone(),
            lead_time: spec.lead_time,
            quantile_permille: (spec.forecast_quantile * 1000.0).round() as u32,
            need: NeedSpec::of(spec, target)
                .map(|n| (n.target.to_bits(), n.min_replicas, n.max_replicas)),
        }
    }

    /// What to train on `series` (whose step may differ from the requested one).
    pub(crate) fn train_spec(&self, series: &Series, config: &RuntimeConfig) -> TrainSpec {
        plan::train_spec(&PlanInput {
            seasonality: &self.seasonality,
            lead_time: self.lead_time,
            quantile: f64::from(self.quantile_permille) / 1000.0,
            retrain: to_delta(config.retrain),
            step: series.step,
            need: self
                .need
                .map(|(target, min_replicas, max_replicas)| NeedSpec {
                    target: f64::from_bits(target),
                    min_replicas,
                    max_replicas,
                }),
        })
    }
}

pub(crate) fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::hours(1))
}

/// The training boundary at or before `t`.
pub(crate) fn boundary(t: DateTime<Utc>, retrain: Duration) -> DateTime<Utc> {
    plan::boundary(t, to_delta(retrain))
}

/// Training state of one model key.
#[derive(Default)]
struct Slot {
    /// Trained models by boundary (at most the two latest are kept).
    trained: BTreeMap<DateTime<Utc>, Arc<Trained>>,
    /// Boundaries whose training finished (successfully or not).
    attempted: HashSet<DateTime<Utc>>,
    /// Boundaries being trained now.
    in_flight: HashSet<DateTime<Utc>>,
    /// Failed boundaries and when they may be retried.
    retry_at: HashMap<DateTime<Utc>, DateTime<Utc>>,
    /// The last failure, for explanations.
    last_error: Option<String>,
}

/// The delay between a boundary and the use of its model.
pub(crate) fn activation_delay(retrain: Duration) -> TimeDelta {
    plan::activation_delay(to_delta(retrain))
}

/// All models by key.
pub(crate) struct ModelTable {
    /// Slots by key.
    slots: HashMap<ModelKey, Slot>,
    /// Boundaries fall on multiples of this.
    retrain: Duration,
    /// See [`activation_delay`].
    delay: TimeDelta,
    /// Every (key, boundary) the last scheduling pass wanted, for readiness.
    needed: HashSet<(ModelKey, DateTime<Utc>)>,
}

impl ModelTable {
    pub(crate) fn new(retrain: Duration) -> Self {
        Self {
            slots: HashMap::new(),
            retrain,
            delay: activation_delay(retrain),
            needed: HashSet::new(),
        }
    }

    /// The model in force at `t`: the latest boundary whose activation time
    /// is at or before `t`.
    pub(crate) fn at(&self, key: &ModelKey, t: DateTime<Utc>) -> Option<&Arc<Trained>> {
        self.slots
            .get(key)?
            .trained
            .range(..=t - self.delay)
            .next_back()
            .map(|(_, m)| m)
    }

    /// Drops models no ScaledObject needs any more.
    pub(crate) fn retain_only(&mut self, wanted: &HashMap<ModelKey, TimeDelta>) {
        self.slots
            .retain(|k, s| wanted.contains_key(k) || !s.in_flight.is_empty());
    }

    /// Marks and returns the (key, boundary) trainings due at `now`: for
    /// each wanted key, every boundary whose model some tick of its replay
    /// window (the longest among the ScaledObjects using it) ending now
    /// uses, and the current one, so it is ready when it activates. Models
    /// older than the oldest needed a minute ago are dropped.
    pub(crate) fn take_due(
        &mut self,
        wanted: &HashMap<ModelKey, TimeDelta>,
        now: DateTime<Utc>,
    ) -> Vec<(ModelKey, DateTime<Utc>)> {
        let step = to_delta(self.retrain);
        let current = boundary(now, self.retrain);
        self.needed.clear();
        let mut due = Vec::new();
        for (key, replay) in wanted {
            let oldest = boundary(now - *replay - self.delay, self.retrain);
            // Models are dropped a little later than they stop being
            // needed: an evaluation of a tick just before `now` may still be
            // replaying a window that starts under the previous boundary's
            // model, and dropping it under that replay's feet would leave
            // its first ticks without a forecast on this replica only.
            let keep_from = boundary(now - *replay - self.delay - KEEP_MARGIN, self.retrain);
            let mut boundaries = Vec::new();
            let mut b = current;
            while b >= oldest {
                boundaries.push(b);
                b -= step;
            }
            let slot = self.slots.entry(key.clone()).or_default();
            slot.trained.retain(|b, _| *b >= keep_from);
            slot.attempted.retain(|b| *b >= keep_from);
            slot.retry_at.retain(|b, _| *b >= keep_from);
            for b in &boundaries {
                self.needed.insert((key.clone(), *b));
                let done = slot.trained.contains_key(b);
                let waiting = slot.retry_at.get(b).is_some_and(|t| now < *t);
                if !done && !waiting && !slot.in_flight.contains(b) {
                    slot.in_flight.insert(*b);
                    due.push((key.clone(), *b));
                }
            }
        }
        due
    }

    /// Records the end of a training for `boundary`.
    pub(crate) fn finish(
        &mut self,
        key: &ModelKey,
        boundary: DateTime<Utc>,
        result: Result<Arc<Trained>, String>,
        now: DateTime<Utc>,
    ) {
        let slot = self.slots.entry(key.clone()).or_default();
        slot.in_flight.remove(&boundary);
        slot.attempted.insert(boundary);
        match result {
            Ok(t) => {
                slot.trained.insert(boundary, t);
                slot.retry_at.remove(&boundary);
                slot.last_error = None;
            }
            Err(e) => {
                slot.last_error = Some(e);
                slot.retry_at.insert(boundary, now + RETRY_AFTER);
            }
        }
    }

    /// Needed (key, boundary) trainings that have never finished, among
    /// those active at `now`. The current boundary's model is trained ahead
    /// of its activation; until then no decision uses it, so its training
    /// does not hold readiness (it did, and at every boundary both replicas
    /// trained at once and could both be unready, leaving KEDA's Service
    /// without endpoints for as long as the trainings took).
    pub(crate) fn pending(&self, now: DateTime<Utc>) -> usize {
        self.needed
            .iter()
            .filter(|(k, b)| {
                *b + self.delay <= now
                    && self
                        .slots
                        .get(k)
                        .is_none_or(|s| !s.attempted.contains(b) && !s.trained.contains_key(b))
            })
            .count()
    }

    /// The last training error of `key`, if its last attempt failed.
    pub(crate) fn last_error(&self, key: &ModelKey) -> Option<&str> {
        self.slots.get(key)?.last_error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ModelKey {
        ModelKey {
            query: "q".into(),
            step: TimeDelta::minutes(5),
            history: TimeDelta::days(1),
            seasonality: Seasonality::Auto,
            lead_time: TimeDelta::minutes(2),
            quantile_permille: 900,
            need: None,
        }
    }

    fn trained(k: &ModelKey) -> Arc<Trained> {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let values = (0..288).map(|i| 10.0 + f64::from(i % 12)).collect();
        let s = Series::new(start, k.step, values);
        Arc::new(crate::forecast::train(&s, &k.train_spec(&s, &RuntimeConfig::default())).unwrap())
    }

    #[test]
    fn only_active_models_hold_readiness_and_old_ones_outlive_their_window_by_a_margin() {
        let (k, retrain) = (key(), Duration::from_secs(3_600));
        let wanted = HashMap::from([(k.clone(), TimeDelta::minutes(30))]);
        let mut t = ModelTable::new(retrain);
        let b0 = DateTime::from_timestamp(1_700_006_400, 0).unwrap();
        let previous = b0 - TimeDelta::hours(1);
        let now = b0 + TimeDelta::minutes(2);
        let mut due: Vec<_> = t
            .take_due(&wanted, now)
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        due.sort();
        assert_eq!(due, vec![previous, b0]);
        // The current boundary activates 5 minutes after it: not pending yet.
        assert_eq!(t.pending(now), 1);
        let m = trained(&k);
        t.finish(&k, previous, Ok(Arc::clone(&m)), now);
        assert_eq!(
            t.pending(now),
            0,
            "the current model does not hold readiness"
        );
        assert_eq!(
            t.pending(b0 + TimeDelta::minutes(5)),
            1,
            "once active, it does"
        );
        t.finish(&k, b0, Ok(Arc::clone(&m)), now);
        assert_eq!(t.pending(b0 + TimeDelta::minutes(5)), 0);

        // A window starting just under `b0`'s activation still finds the
        // previous model for a minute after the training loop stops needing it.
        let before_b0 = b0 + TimeDelta::minutes(4);
        let now = b0 + TimeDelta::minutes(35) + TimeDelta::seconds(30);
        t.take_due(&wanted, now);
        assert!(
            t.at(&k, before_b0).is_some(),
            "dropped under a replay's feet"
        );
        let now = b0 + TimeDelta::minutes(36) + TimeDelta::seconds(1);
        t.take_due(&wanted, now);
        assert!(t.at(&k, before_b0).is_none(), "kept past its margin");
        assert!(t.at(&k, b0 + TimeDelta::minutes(5)).is_some());
    }

    #[test]
    fn each_model_trains_for_its_own_longest_window() {
        let short = key();
        let long = ModelKey {
            query: "other".into(),
            ..key()
        };
        let wanted = HashMap::from([
            (short.clone(), TimeDelta::minutes(30)),
            (long.clone(), TimeDelta::hours(2)),
        ]);
        let mut t = ModelTable::new(Duration::from_secs(3_600));
        let b0 = DateTime::from_timestamp(1_700_006_400, 0).unwrap();
        let due = t.take_due(&wanted, b0 + TimeDelta::minutes(2));
        let count = |k: &ModelKey| due.iter().filter(|(d, _)| d == k).count();
        // 30 minutes (and the 5-minute activation delay) reach back into
        // the previous hour; two hours into the hour three before.
        assert_eq!(count(&short), 2, "{due:?}");
        assert_eq!(count(&long), 4, "{due:?}");
    }
}
