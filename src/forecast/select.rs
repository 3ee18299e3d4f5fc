//! Model selection by rolling-origin validation; the intervals it
//! calibrates from the validation errors are [`interval`](super::interval)'s.

use serde::Serialize;

use super::ForecastError;
use super::interval::{anchor_of, interval_width};
use super::models::{Combine, Fitted, Model, ModelKind, combine_forecasts, prophet_available};
use super::need::{NeedModel, NeedSpec};
use super::prep::{MIN_OBSERVATIONS, prepare};
use super::seasonality::detect_periods;
use crate::domain::{Anchor, Forecast, Series};

/// Rolling origins used for validation; more gives steadier choices and
/// intervals, at one extra fit per candidate each. On the M4 Hourly holdout
/// going from 3 to 4 raised interval coverage from 89.9% to 91.2% before
/// widening (OWA unchanged); 5 cost a fit more for less.
const ORIGINS: usize = 4;

/// What to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    /// Candidate seasonal periods, in steps.
    pub periods: Vec<usize>,
    /// Test the candidates against the data (`seasonality: auto`) instead of
    /// using every one that the history is long enough for.
    pub detect: bool,
    /// Steps to forecast past the end of the history.
    pub horizon: usize,
    /// Nominal coverage of the central interval, in (0, 1).
    pub level: f64,
    /// Also validate Prophet over the same periods as MSTL. Off unless
    /// asked for: a Prophet fit costs about ten times an MSTL fit (80 ms
    /// against 7 on 500 values) and selection fits it once per validation
    /// window and once more on the whole history, and it needs the
    /// `prophet` cargo feature (without it, [`train`] returns
    /// [`ForecastError::NotBuilt`]).
    pub prophet: bool,
    /// Also learn the distribution of the next sample's replica need, for
    /// `mode: holding` (see [`NeedModel`]); `None` otherwise.
    pub need: Option<NeedSpec>,
}

/// A trained forecast and how trustworthy it looked on held-out data.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trained {
    /// The chosen model.
    pub model: ModelKind,
    /// Forecast from just after the last observation.
    pub forecast: Forecast,
    /// Mean absolute scaled error of the chosen model on the validation
    /// windows; `None` when the history was too short to validate.
    pub validation_mase: Option<f64>,
    /// Finite observations the model was fitted on.
    pub observations: usize,
    /// The MASE denominator of the training data (in-sample mean absolute
    /// seasonal difference), so live errors can be scaled the same way.
    pub mase_scale: f64,
    /// The interval's half-width in units of `mase_scale`, so a [`refit`]
    /// on newer data can reuse the calibration at the new scale.
    pub width_per_scale: f64,
    /// The seasonal lag `mase_scale` was computed at, so a refit scales the
    /// same way whatever model was chosen.
    pub scale_lag: usize,
    /// How the forecast's error persists, for a policy that corrects the
    /// forecast by the latest observation; `None` when the validation errors
    /// do not persist (or there were none).
    pub anchor: Option<Anchor>,
    /// The next need's distribution, when the spec asked for it and the
    /// history held transitions to learn from.
    pub need: Option<NeedModel>,
}

/// What a refit reuses from a full selection: the chosen model and its
/// calibration, in units of the training data's scale. Small and plain, so
/// it can be stored and restored across restarts (augurs' fitted models
/// cannot be serialised; a refit from this costs one fit, not a dozen).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    /// The model selection chose.
    pub model: ModelKind,
    /// Its validation MASE.
    pub validation_mase: Option<f64>,
    /// The interval half-width in units of the MASE scale.
    pub width_per_scale: f64,
    /// The seasonal lag of the MASE scale.
    pub scale_lag: usize,
    /// The anchor's persistence; `None` without one (and in state files
    /// written before anchors existed).
    #[serde(default)]
    pub anchor_phi: Option<f64>,
    /// The anchor's half-widths per step ahead, in units of the MASE scale.
    #[serde(default)]
    pub anchor_width_per_scale: Vec<f64>,
}

impl Trained {
    /// What a [`refit`] needs of this selection.
    pub fn choice(&self) -> Choice {
        Choice {
            model: self.model.clone(),
            validation_mase: self.validation_mase,
            width_per_scale: self.width_per_scale,
            scale_lag: self.scale_lag,
            anchor_phi: self.anchor.as_ref().map(|a| a.phi),
            anchor_width_per_scale: self.anchor.as_ref().map_or_else(Vec::new, |a| {
                a.half_width
                    .iter()
                    .map(|w| w / self.mase_scale.max(1e-12))
                    .collect()
            }),
        }
    }
}

/// Trains on `series` and forecasts `spec.horizon` steps past its last
/// observation.
pub fn train(series: &Series, spec: &TrainSpec) -> Result<Trained, ForecastError> {
    // Refuse rather than quietly select without the model that was asked for.
    if spec.prophet {
        prophet_available()?;
    }
    let (y, dropped) = prepare(&series.values)?;
    let n = y.len();
    let start = series.timestamp(dropped + n);
    let horizon = spec.horizon.max(1);

    let (min, max) = y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let candidates = if max - min <= 1e-9 * max.abs().max(1.0) {
        // A constant series: every model agrees, and MSTL/ETS can misbehave.
        vec![ModelKind::Naive]
    } else {
        candidates(&y, spec, horizon)
    };

    let lag = scale_lag(&y, &candidates);
    let mase_scale = mase_scale(&y, lag);
    let (model, mase, errors, anchor) = match validate(&y, &candidates, horizon, mase_scale) {
        Some(v) => {
            let anchor = anchor_of(&v.sequences, spec.level);
            (v.model, Some(v.mase), v.calibration, anchor)
        }
        None => (candidates[0].clone(), None, Vec::new(), None),
    };

    // Fit on everything; if the chosen model fails on the full history,
    // fall back in order rather than serve nothing.
    let mut last_err = None;
    let mut fitted = None;
    for kind in std::iter::once(&model).chain(candidates.iter()) {
        match kind.fit(&y).and_then(|f| f.predict(horizon)) {
            Ok(point) => {
                fitted = Some((kind.clone(), point));
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let (model, point) = match fitted {
        Some(f) => f,
        None => {
            return Err(last_err.unwrap_or(ForecastError::InsufficientHistory {
                observed: n,
                needed: MIN_OBSERVATIONS,
            }));
        }
    };

    let width = interval_width(&errors, spec.level, &y);
    Ok(assemble(
        series,
        spec,
        model,
        point,
        width,
        Fit {
            start,
            observations: n,
            mase_scale,
            scale_lag: lag,
            validation_mase: mase,
            anchor,
        },
    ))
}

/// Facts about one fit that end up in [`Trained`].
struct Fit {
    /// Timestamp of the first forecast value.
    start: chrono::DateTime<chrono::Utc>,
    /// Finite observations fitted.
    observations: usize,
    /// MASE denominator of the fitted data.
    mase_scale: f64,
    /// Its seasonal lag.
    scale_lag: usize,
    /// Validation MASE of the chosen model.
    validation_mase: Option<f64>,
    /// The error's persistence, in the fitted data's units.
    anchor: Option<Anchor>,
}

fn assemble(
    series: &Series,
    spec: &TrainSpec,
    model: ModelKind,
    point: Vec<f64>,
    width: f64,
    fit: Fit,
) -> Trained {
    let point: Vec<f64> = point.into_iter().map(|v| v.max(0.0)).collect();
    let lower = point.iter().map(|p| (p - width).max(0.0)).collect();
    let upper = point.iter().map(|p| p + width).collect();
    Trained {
        model,
        forecast: Forecast {
            start: fit.start,
            step: series.step,
            point,
            lower,
            upper,
            level: spec.level,
        },
        validation_mase: fit.validation_mase,
        observations: fit.observations,
        mase_scale: fit.mase_scale,
        width_per_scale: width / fit.mase_scale.max(1e-12),
        scale_lag: fit.scale_lag,
        anchor: fit.anchor,
        need: spec.need.as_ref().and_then(|n| NeedModel::fit(series, n)),
    }
}

/// Refits the model an earlier [`train`] chose, on newer history, and
/// reuses its validation (MASE and interval calibration, rescaled to the new
/// data's scale) instead of validating every candidate again: one fit
/// instead of one per candidate per validation window. Falls back to a full
/// [`train`] when the chosen model cannot be fitted on the new history, or
/// the earlier choice used seasonal periods the new history cannot hold.
pub fn refit(series: &Series, spec: &TrainSpec, chosen: &Choice) -> Result<Trained, ForecastError> {
    let (y, dropped) = prepare(&series.values)?;
    let n = y.len();
    let horizon = spec.horizon.max(1);
    if !chosen.model.fits_history(n) {
        return train(series, spec);
    }
    let Ok(point) = chosen.model.fit(&y).and_then(|f| f.predict(horizon)) else {
        return train(series, spec);
    };
    let mase_scale = mase_scale(&y, chosen.scale_lag);
    let width = chosen.width_per_scale * mase_scale;
    Ok(assemble(
        series,
        spec,
        chosen.model.clone(),
        point,
        width,
        Fit {
            start: series.timestamp(dropped + n),
            observations: n,
            mase_scale,
            scale_lag: chosen.scale_lag,
            validation_mase: chosen.validation_mase,
            anchor: chosen.anchor_phi.map(|phi| Anchor {
                phi,
                half_width: chosen
                    .anchor_width_per_scale
                    .iter()
                    .map(|w| w * mase_scale)
                    .collect(),
            }),
        },
    ))
}

fn candidates(y: &[f64], spec: &TrainSpec, horizon: usize) -> Vec<ModelKind> {
    let n = y.len();
    // Periods MSTL can use even after holding out the validation windows.
    let fits = |p: &usize| *p >= 2 && n >= 2 * p + 1 + horizon;
    let mut periods: Vec<usize> = spec.periods.iter().copied().filter(fits).collect();
    // `auto`: keep the periods the autocorrelation shows. When it shows
    // none, the test is not evidence of no season: noise drowns a smooth
    // cycle in the first differences (the noisy NAB traces, whose daily
    // MSTL forecast beats exponential smoothing by 0.1-0.9 MASE, score
    // 0.01-0.05 against the 0.2 threshold). So the seasonal and the
    // non-seasonal models then compete on held-out data instead.
    let mut undetected = false;
    if spec.detect {
        let found = detect_periods(y, &periods);
        undetected = found.is_empty();
        if !undetected {
            periods = found;
        }
    }
    let seasonal = !periods.is_empty();
    let mut out = Vec::new();
    if seasonal {
        out.push(ModelKind::Mstl {
            periods: periods.clone(),
        });
    }
    // Seasonal naive needs one season plus the holdout.
    let mut naive_periods: Vec<usize> = if spec.detect {
        periods.clone()
    } else {
        spec.periods
            .iter()
            .copied()
            .filter(|p| *p >= 2 && n >= p + horizon)
            .collect()
    };
    naive_periods.sort_unstable();
    naive_periods.dedup();
    let naives: Vec<ModelKind> = naive_periods
        .into_iter()
        .map(|period| ModelKind::SeasonalNaive { period })
        .collect();
    // Ensembles of MSTL with seasonal naive: scored from their members'
    // validation forecasts, so they cost no fit unless chosen. On the M4
    // Hourly holdout they took OWA from 0.495 to 0.469; seasonal naive keeps
    // the last season's shape where MSTL's smoothing flattens it.
    if let Some(mstl) = out.first().cloned() {
        for naive in &naives {
            out.push(ModelKind::Ensemble {
                combine: Combine::Mean,
                members: vec![mstl.clone(), naive.clone()],
            });
        }
        if naives.len() >= 2 {
            let all: Vec<ModelKind> = std::iter::once(mstl)
                .chain(naives.iter().cloned())
                .collect();
            for combine in [Combine::Mean, Combine::Median] {
                out.push(ModelKind::Ensemble {
                    combine,
                    members: all.clone(),
                });
            }
        }
    }
    // Prophet over the same periods, after MSTL and its ensembles so that
    // it never becomes the unvalidated fallback (`candidates[0]`), and only
    // with a season to model, like MSTL.
    if spec.prophet && !periods.is_empty() {
        out.push(ModelKind::Prophet { periods });
    }
    // With no seasonal model to fit, exponential smoothing stands in for
    // MSTL: without it naive alone would be left, and on a noisy series the
    // last value is a poor guess at the next ones (the noisy NAB traces,
    // forecast with no season, chose naive every time and the confidence
    // gate then shut prediction off most of the time). Where
    // a seasonal naive fits, the pool already has a model of the season,
    // unless detection found none: then ETS is the no-season hypothesis.
    if ((!seasonal && naives.is_empty()) || undetected) && ModelKind::Ets.fits_history(n) {
        // First when no season was detected: the unvalidated fallback
        // (`candidates[0]`) should not model a season nothing confirmed.
        let at = if undetected { 0 } else { out.len() };
        out.insert(at, ModelKind::Ets);
    }
    out.extend(naives);
    out.push(ModelKind::Naive);
    out
}

/// What validation found.
struct Validation {
    /// The candidate with the lowest MASE over the validation windows.
    model: ModelKind,
    /// That MASE.
    mase: f64,
    /// Absolute errors to calibrate the interval on: on each window, those
    /// of the candidate that selection picks from the *other* windows. They
    /// are errors of the selection procedure on data it did not choose on,
    /// where the winner's own errors are flattered by having won on them
    /// (coverage 88.7% against 90.2% with the same windows on M4 Hourly).
    calibration: Vec<f64>,
    /// The same errors, signed and in order, one sequence per window: how
    /// an error carries over from one step to the next.
    sequences: Vec<Vec<f64>>,
}

/// Rolling-origin validation: every candidate forecasts `ORIGINS`
/// consecutive windows of one horizon (at most a fifth of the history) at
/// the end of the history, from the data before each. Ensembles are
/// scored from their members' forecasts. `None` if nothing could be
/// validated.
fn validate(y: &[f64], candidates: &[ModelKind], horizon: usize, scale: f64) -> Option<Validation> {
    let n = y.len();
    let v = horizon.min(n / 5).max(1);
    // errors[c][w]: candidate c's errors (actual − forecast) on window w,
    // newest window first; `None` where it could not be fitted.
    let mut errors: Vec<Vec<Option<Vec<f64>>>> = vec![Vec::new(); candidates.len()];
    for o in 1..=ORIGINS {
        let Some(origin) = n.checked_sub(o * v) else {
            break;
        };
        if origin < MIN_OBSERVATIONS {
            break;
        }
        let actual = &y[origin..origin + v];
        let mut base: Vec<(&ModelKind, Option<Vec<f64>>)> = Vec::new();
        for kind in candidates {
            if !matches!(kind, ModelKind::Ensemble { .. }) {
                let point = kind.fit(&y[..origin]).and_then(|f| f.predict(v)).ok();
                base.push((kind, point));
            }
        }
        let forecast_of = |k: &ModelKind| {
            base.iter()
                .find(|(b, _)| *b == k)
                .and_then(|(_, p)| p.clone())
        };
        for (c, kind) in candidates.iter().enumerate() {
            let point = match kind {
                ModelKind::Ensemble { combine, members } => members
                    .iter()
                    .map(forecast_of)
                    .collect::<Option<Vec<_>>>()
                    .map(|fs| combine_forecasts(*combine, &fs, v)),
                _ => forecast_of(kind),
            };
            errors[c]
                .push(point.map(|p| actual.iter().zip(&p).map(|(a, f)| a - f.max(0.0)).collect()));
        }
    }
    // Compare like with like: candidates that forecast the newest window,
    // scored on the windows every one of them forecast.
    let eligible: Vec<usize> = (0..candidates.len())
        .filter(|c| matches!(errors[*c].first(), Some(Some(_))))
        .collect();
    let windows: Vec<usize> = (0..errors.first().map_or(0, Vec::len))
        .filter(|w| eligible.iter().all(|c| errors[*c][*w].is_some()))
        .collect();
    let total = |c: usize, skip: Option<usize>| -> f64 {
        windows
            .iter()
            .filter(|w| Some(**w) != skip)
            .filter_map(|w| errors[c][*w].as_ref())
            .flatten()
            .map(|e| e.abs())
            .sum()
    };
    // Candidates come simplest-last; strict `<` keeps the richer model on
    // ties, and a NaN score never wins.
    let best_without = |skip: Option<usize>| -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for &c in &eligible {
            let t = total(c, skip);
            if best.is_none_or(|(_, b)| t < b) {
                best = Some((c, t));
            }
        }
        best.map(|(c, _)| c)
    };
    let best = best_without(None)?;
    let count = windows.len() * v;
    let mase = total(best, None) / count.max(1) as f64 / scale;
    let sequences: Vec<Vec<f64>> = if windows.len() < 2 {
        windows
            .iter()
            .filter_map(|w| errors[best][*w].clone())
            .collect()
    } else {
        windows
            .iter()
            .filter_map(|w| {
                let pick = best_without(Some(*w))?;
                errors[pick][*w].clone()
            })
            .collect()
    };
    let calibration = sequences.iter().flatten().map(|e| e.abs()).collect();
    Some(Validation {
        model: candidates[best].clone(),
        mase,
        calibration,
        sequences,
    })
}

/// The seasonal lag of the MASE denominator: the shortest seasonal period
/// among the candidates, or 1.
fn scale_lag(y: &[f64], candidates: &[ModelKind]) -> usize {
    candidates
        .iter()
        .filter_map(|c| c.periods().first().copied())
        .min()
        .filter(|m| *m < y.len())
        .unwrap_or(1)
}

/// In-sample mean absolute seasonal difference at lag `m`, the MASE
/// denominator.
fn mase_scale(y: &[f64], m: usize) -> f64 {
    let mean_abs_diff = |lag: usize| {
        let d: Vec<f64> = (lag..y.len()).map(|i| (y[i] - y[i - lag]).abs()).collect();
        d.iter().sum::<f64>() / d.len().max(1) as f64
    };
    let level = y.iter().map(|v| v.abs()).sum::<f64>() / y.len().max(1) as f64;
    // An exactly periodic history has no seasonal-naive error; fall back to
    // the one-step naive error, then to 1% of the level, so that a tiny
    // deviation does not read as an enormous scaled error.
    [
        mean_abs_diff(m.min(y.len().saturating_sub(1)).max(1)),
        mean_abs_diff(1),
        level * 0.01,
    ]
    .into_iter()
    .find(|s| *s > 1e-12)
    .unwrap_or(1e-9)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta};

    use super::*;

    fn series(values: Vec<f64>) -> Series {
        Series::new(
            DateTime::from_timestamp(0, 0).unwrap(),
            TimeDelta::hours(1),
            values,
        )
    }

    fn spec(periods: Vec<usize>) -> TrainSpec {
        TrainSpec {
            periods,
            detect: false,
            horizon: 24,
            level: 0.8,
            prophet: false,
            need: None,
        }
    }

    #[test]
    fn constant_series_forecasts_the_constant() {
        let t = train(&series(vec![7.0; 100]), &spec(vec![24])).unwrap();
        assert_eq!(t.model, ModelKind::Naive);
        assert!(t.forecast.point.iter().all(|v| *v == 7.0));
        assert!(t.forecast.upper.iter().all(|v| *v == 7.0));
    }

    #[test]
    fn seasonal_series_chooses_a_seasonal_model_with_ordered_bands() {
        let y: Vec<f64> = (0..24 * 21)
            .map(|i| {
                100.0 + 40.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin() + (i % 7) as f64
            })
            .collect();
        let t = train(&series(y), &spec(vec![24, 168])).unwrap();
        assert_ne!(t.model, ModelKind::Naive, "{:?}", t.model);
        assert!(t.validation_mase.unwrap() < 1.0);
        assert_eq!(t.forecast.point.len(), 24);
        assert_eq!(t.forecast.start.timestamp(), 24 * 21 * 3600);
        for i in 0..24 {
            let f = &t.forecast;
            assert!(f.lower[i] <= f.point[i] && f.point[i] <= f.upper[i]);
        }
    }

    #[test]
    fn zeros_and_spikes_do_not_break_training() {
        let mut y = vec![0.0; 300];
        y[150] = 1e6;
        let t = train(&series(y), &spec(vec![24])).unwrap();
        assert!(t.forecast.point.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn prophet_is_a_candidate_only_when_asked_for_and_seasonal() {
        let y: Vec<f64> = (0..24 * 10).map(|i| f64::from(i % 24)).collect();
        let prophet = ModelKind::Prophet { periods: vec![24] };
        let mut s = spec(vec![24]);
        assert!(!candidates(&y, &s, 24).contains(&prophet));
        s.prophet = true;
        let c = candidates(&y, &s, 24);
        // After MSTL (the unvalidated fallback) and its ensemble, before the
        // simpler seasonal naive and naive.
        assert_eq!(
            c.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "mstl[24]+ets",
                "mean(mstl[24]+ets, seasonal_naive[24])",
                "prophet[24]",
                "seasonal_naive[24]",
                "naive"
            ]
        );
        // No season to model: no Prophet, as no MSTL.
        s.periods = Vec::new();
        assert!(
            !candidates(&y, &s, 24)
                .iter()
                .any(|c| matches!(c, ModelKind::Prophet { .. }))
        );
    }

    #[test]
    fn with_no_season_to_model_exponential_smoothing_stands_in_for_mstl() {
        let y: Vec<f64> = (0..24 * 10).map(|i| f64::from(i % 24)).collect();
        let names = |s: &TrainSpec| {
            candidates(&y, s, 24)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        // No periods asked for, or none that fit the history: ETS first (the
        // unvalidated fallback), naive last.
        assert_eq!(names(&spec(Vec::new())), ["ets", "naive"]);
        assert_eq!(names(&spec(vec![480])), ["ets", "naive"]);
        // A season too long for MSTL but not for seasonal naive: that models
        // it, and ETS stays out (the golden tests rely on this pool).
        assert_eq!(names(&spec(vec![168])), ["seasonal_naive[168]", "naive"]);
        // Detection that finds no season: the season still competes with
        // ETS (first, the unvalidated fallback) on held-out data.
        let mut detect = spec(vec![7]);
        detect.detect = true;
        assert_eq!(
            names(&detect),
            [
                "ets",
                "mstl[7]+ets",
                "mean(mstl[7]+ets, seasonal_naive[7])",
                "seasonal_naive[7]",
                "naive"
            ]
        );
        // Detection that finds one: that season alone, and no ETS.
        detect.periods = vec![24];
        assert_eq!(
            names(&detect),
            [
                "mstl[24]+ets",
                "mean(mstl[24]+ets, seasonal_naive[24])",
                "seasonal_naive[24]",
                "naive"
            ]
        );
        // A season to model: MSTL, never ETS alone.
        assert!(!names(&spec(vec![24])).contains(&"ets".to_string()));
        // Too short for ETS: naive alone, as before.
        assert_eq!(
            candidates(&y[..8], &spec(Vec::new()), 1)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["naive"]
        );
    }

    #[test]
    fn a_noisy_level_with_no_season_is_forecast_by_ets_not_naive() {
        // Level 100, noise in [-20, 20): validation prefers the smoothed
        // level, and the forecast stays near 100 whatever the last value.
        let y = crate::forecast::models::tests::noisy_level(400, 3);
        let t = train(&series(y), &spec(Vec::new())).unwrap();
        assert_eq!(t.model, ModelKind::Ets);
        assert!(t.validation_mase.unwrap() < 1.0, "{:?}", t.validation_mase);
        assert!(t.forecast.point.iter().all(|v| (v - 100.0).abs() < 5.0));
    }

    #[test]
    fn a_season_the_autocorrelation_misses_is_still_found_by_validation() {
        // A smooth daily cycle at 15-minute steps under heavy noise: the
        // first differences are almost all noise, so the autocorrelation
        // test finds nothing, yet modelling the cycle forecasts far better.
        let day = 96;
        let n = 10 * day;
        let cycle = |i: usize| 30.0 * (i as f64 * std::f64::consts::TAU / day as f64).sin();
        let y: Vec<f64> = crate::forecast::models::tests::noisy_level(n, 5)
            .into_iter()
            .enumerate()
            .map(|(i, v)| v + cycle(i))
            .collect();
        assert!(detect_periods(&y, &[day]).is_empty());
        let auto = TrainSpec {
            periods: vec![day],
            detect: true,
            ..spec(Vec::new())
        };
        let t = train(&series(y.clone()), &auto).unwrap();
        assert!(
            t.model.periods().contains(&day),
            "auto should keep the daily season, chose {}",
            t.model
        );
        let without = train(&series(y), &spec(Vec::new())).unwrap();
        assert_eq!(without.model, ModelKind::Ets);
        // Against the noise-free signal over the next 24 steps (a quarter of
        // the cycle, where it matters most whether it is modelled).
        let mae = |f: &[f64]| {
            f.iter()
                .enumerate()
                .map(|(h, p)| (p - 100.0 - cycle(n + h)).abs())
                .sum::<f64>()
                / f.len() as f64
        };
        let (with, none) = (mae(&t.forecast.point), mae(&without.forecast.point));
        assert!(
            with < 0.5 * none,
            "MAE {with:.2} with the season, {none:.2} without"
        );
    }
}

#[cfg(test)]
mod refit_tests {
    use chrono::{DateTime, TimeDelta};

    use super::*;

    /// Hourly data with a daily season, a day's horizon, an 80% interval.
    fn hourly_daily_spec() -> TrainSpec {
        TrainSpec {
            periods: vec![24],
            detect: false,
            horizon: 24,
            level: 0.8,
            prophet: false,
            need: None,
        }
    }

    #[test]
    fn refit_keeps_the_choice_and_rescales_the_interval() {
        let wave = |i: usize, amp: f64| {
            100.0 + amp * (i as f64 * std::f64::consts::TAU / 24.0).sin() + (i % 5) as f64
        };
        let s1 = Series::new(
            DateTime::from_timestamp(0, 0).unwrap(),
            TimeDelta::hours(1),
            (0..24 * 14).map(|i| wave(i, 40.0)).collect(),
        );
        let spec = hourly_daily_spec();
        let chosen = train(&s1, &spec).unwrap();
        // A day later, with twice the amplitude: same model, wider interval.
        let s2 = Series::new(
            DateTime::from_timestamp(86_400, 0).unwrap(),
            TimeDelta::hours(1),
            (24..24 * 15).map(|i| wave(i, 80.0)).collect(),
        );
        let r = refit(&s2, &spec, &chosen.choice()).unwrap();
        assert_eq!(r.model, chosen.model);
        assert_eq!(r.validation_mase, chosen.validation_mase);
        assert!((r.width_per_scale - chosen.width_per_scale).abs() < 1e-9);
        assert!(r.mase_scale > chosen.mase_scale);
        assert_eq!(r.forecast.start.timestamp(), 15 * 86_400);
        // Too short for the chosen period: falls back to a full training.
        let short = Series::new(s2.start, s2.step, s2.values[..30].to_vec());
        let f = refit(&short, &spec, &chosen.choice()).unwrap();
        assert!(!matches!(f.model, ModelKind::Mstl { .. }));
    }

    #[test]
    fn refit_keeps_the_anchor_at_the_new_scale() {
        // A daily wave plus slowly wandering noise: errors persist.
        let mut state: u64 = 3;
        let mut drift = 0.0;
        let values: Vec<f64> = (0..24 * 14)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                drift = 0.9 * drift + ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 20.0;
                200.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin() + drift
            })
            .collect();
        let start = DateTime::from_timestamp(0, 0).unwrap();
        let spec = hourly_daily_spec();
        let chosen = train(
            &Series::new(start, TimeDelta::hours(1), values.clone()),
            &spec,
        )
        .unwrap();
        let a = chosen
            .anchor
            .clone()
            .expect("persistent errors give an anchor");
        assert!(a.phi > 0.3, "phi {}", a.phi);
        // The same history three times larger: same persistence, widths ×3.
        let tripled = Series::new(
            start,
            TimeDelta::hours(1),
            values.iter().map(|v| v * 3.0).collect(),
        );
        let r = refit(&tripled, &spec, &chosen.choice()).unwrap();
        let b = r.anchor.expect("a refit keeps the anchor");
        assert_eq!(b.phi, a.phi);
        assert_eq!(b.half_width.len(), a.half_width.len());
        for (x, y) in a.half_width.iter().zip(&b.half_width) {
            assert!((y - 3.0 * x).abs() < 1e-9 * y.max(1.0), "{y} vs 3 × {x}");
        }
    }
}
