//! Decisions as a pure function of tick-aligned data: the policy is replayed
//! from a fresh state over the ticks of the replay window, so the decision at
//! a tick depends only on the observations and models of that window, never
//! on when this process started or which calls it received. Two replicas of
//! foresight with the same data therefore give the same answer, and a
//! restart loses no stabilisation or rate-limit state.

use chrono::{DateTime, TimeDelta, Utc};

use super::models::ModelTable;
use super::observations::ObservationCache;
use super::registry::Configured;
use crate::domain::Decision;
use crate::policy::{ForecastInput, MetricInput, Observation, PolicyError, PolicyState, decide};

/// The tick-aligned instants of `[to - span, to]`.
pub(crate) fn ticks(
    to: DateTime<Utc>,
    span: TimeDelta,
    tick: TimeDelta,
) -> impl Iterator<Item = DateTime<Utc>> {
    let n = (span.num_milliseconds() / tick.num_milliseconds().max(1)).max(0);
    (0..=n)
        .rev()
        .map(move |k| to - tick * i32::try_from(k).unwrap_or(0))
}

/// Replays the policy over the window ending at `at` and returns the
/// decision at `at`.
pub(crate) fn replay(
    cfg: &Configured,
    at: DateTime<Utc>,
    tick: TimeDelta,
    cache: &ObservationCache,
    models: &ModelTable,
) -> Result<Decision, PolicyError> {
    let mut state = PolicyState::default();
    let mut last = Err(PolicyError::NoData);
    for t in ticks(at, cfg.replay, tick) {
        let is_now = t == at;
        let metrics: Vec<MetricInput<'_>> = cfg
            .spec
            .metrics
            .iter()
            .zip(&cfg.model_keys)
            .map(|(m, key)| {
                let trained = key.as_ref().and_then(|k| models.at(k, t));
                let forecast_note = match (key, trained, is_now) {
                    (Some(k), None, true) => Some(format!(
                        "forecast unavailable ({})",
                        models.last_error(k).unwrap_or("first training pending")
                    )),
                    _ => None,
                };
                MetricInput {
                    kind: m.kind,
                    target: m.target,
                    observed: cache.value(&m.query, t),
                    forecast: trained.map(|tr| ForecastInput {
                        forecast: &tr.forecast,
                        scale: tr.mase_scale,
                        validation_mase: tr.validation_mase,
                        anchor: tr.anchor.as_ref(),
                        need: tr.need.as_ref(),
                    }),
                    forecast_note,
                }
            })
            .collect();
        let obs = Observation {
            metrics,
            last_remediation: None,
        };
        match decide(&cfg.behavior, &obs, &state, t) {
            Ok((d, next)) => {
                state = next;
                last = Ok(d);
            }
            Err(e) => last = Err(e),
        }
    }
    let mut d = last?;
    for m in &cfg.spec.metrics {
        if let Some(e) = cache.error(&m.query, at) {
            d.notes.push(format!("{}: {e}", m.kind));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_window_oldest_first() {
        let to = DateTime::from_timestamp(1_000, 0).unwrap();
        let t: Vec<i64> = ticks(to, TimeDelta::seconds(45), TimeDelta::seconds(15))
            .map(|t| t.timestamp())
            .collect();
        assert_eq!(t, vec![955, 970, 985, 1_000]);
    }
}
