//! When models are trained and what each training asks for. `serve` and
//! `backtest` both follow this plan, so a replayed decision uses the model a
//! live server would have had at that instant.

use chrono::{DateTime, TimeDelta, Utc};

use super::seasonality::candidate_steps;
use super::{NeedSpec, TrainSpec};
use crate::domain::Seasonality;

/// The training boundary at or before `t`: a multiple of `retrain` since the
/// epoch. Every replica of foresight (and every replay) fits the same windows.
pub fn boundary(t: DateTime<Utc>, retrain: TimeDelta) -> DateTime<Utc> {
    let r = retrain.num_seconds().max(1);
    let s = t.timestamp();
    DateTime::from_timestamp(s - s.rem_euclid(r), 0).unwrap_or(t)
}

/// How long after its boundary a model comes into use: a quarter of the
/// retrain interval, at most 5 minutes. By then every replica has trained it,
/// so none answers with a newer model than another.
pub fn activation_delay(retrain: TimeDelta) -> TimeDelta {
    (retrain / 4).min(TimeDelta::minutes(5))
}

/// The boundary whose full model selection a training at `b` reuses: the
/// latest multiple of `reselect` at or before `b`. Selection validates every
/// candidate model on several windows (about a dozen fits); the trainings in
/// between refit the chosen model once. `reselect` no longer than the
/// retrain interval selects at every boundary.
pub fn selection_boundary(
    b: DateTime<Utc>,
    retrain: TimeDelta,
    reselect: TimeDelta,
) -> DateTime<Utc> {
    boundary(b, reselect.max(retrain))
}

/// What one training fits, given the history's own step.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput<'a> {
    /// The ScaledObject's seasonality setting.
    pub seasonality: &'a Seasonality,
    /// The forecast must reach this far past each tick.
    pub lead_time: TimeDelta,
    /// Upper quantile the policy reads from the forecast.
    pub quantile: f64,
    /// Retrain interval: a model serves until the next boundary's activates.
    pub retrain: TimeDelta,
    /// Step of the history being fitted.
    pub step: TimeDelta,
    /// How values become replica needs, when the policy plans on the next
    /// need's distribution (`mode: holding`).
    pub need: Option<NeedSpec>,
}

/// The training spec for one boundary.
pub fn train_spec(p: &PlanInput<'_>) -> TrainSpec {
    let (periods, detect) = match p.seasonality {
        Seasonality::Auto => (vec![TimeDelta::days(1), TimeDelta::weeks(1)], true),
        Seasonality::Periods(periods) => (periods.clone(), false),
    };
    // The forecast must cover every tick until the next boundary's model is
    // active, plus the lead time and the scale-down lookahead, plus slack for
    // a late retrain.
    let span = p.retrain * 2 + p.lead_time + TimeDelta::minutes(10);
    let step_s = p.step.num_seconds().max(1);
    let horizon = (span.num_seconds() + step_s - 1) / step_s + 1;
    TrainSpec {
        periods: candidate_steps(&periods, p.step),
        detect,
        horizon: usize::try_from(horizon).unwrap_or(1),
        // The upper end of a central interval at level 2q - 1 is the q quantile.
        level: (2.0 * p.quantile - 1.0).clamp(0.01, 0.999),
        // Never in serve or backtest: a live retrain must stay cheap, and
        // Prophet is an opt-in of the CLI's offline commands.
        prophet: false,
        need: p.need,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_align_to_the_retrain_interval() {
        let t = DateTime::from_timestamp(7_200 + 1_799, 0).unwrap();
        assert_eq!(boundary(t, TimeDelta::hours(1)).timestamp(), 7_200);
        assert_eq!(boundary(t, TimeDelta::minutes(30)).timestamp(), 7_200);
    }

    #[test]
    fn selection_happens_on_multiples_of_the_reselect_interval() {
        let b = DateTime::from_timestamp(86_400 * 3 + 7_200, 0).unwrap();
        let day = TimeDelta::days(1);
        assert_eq!(
            selection_boundary(b, TimeDelta::hours(1), day).timestamp(),
            86_400 * 3
        );
        assert_eq!(
            selection_boundary(b, TimeDelta::hours(1), TimeDelta::zero()),
            b
        );
    }

    #[test]
    fn activation_delay_is_a_quarter_capped_at_five_minutes() {
        assert_eq!(
            activation_delay(TimeDelta::minutes(8)),
            TimeDelta::minutes(2)
        );
        assert_eq!(activation_delay(TimeDelta::hours(1)), TimeDelta::minutes(5));
    }

    #[test]
    fn horizon_covers_two_retrains_lead_and_lookahead() {
        let s = Seasonality::Periods(vec![TimeDelta::days(1)]);
        let spec = train_spec(&PlanInput {
            seasonality: &s,
            lead_time: TimeDelta::minutes(2),
            quantile: 0.9,
            retrain: TimeDelta::hours(1),
            step: TimeDelta::minutes(1),
            need: None,
        });
        assert_eq!(spec.horizon, 120 + 2 + 10 + 1);
        assert_eq!(spec.periods, vec![1440]);
        assert!((spec.level - 0.8).abs() < 1e-12);
    }
}
