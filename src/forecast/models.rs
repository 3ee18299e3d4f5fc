//! The models, behind our own traits. Separate unfitted and fitted types, as
//! augurs does, so a model cannot be asked to predict before it is fitted.

use std::panic::{AssertUnwindSafe, catch_unwind};

use augurs::ets::{AutoETS, FittedAutoETS};
use augurs::mstl::{FittedMSTLModel, MSTLModel};
use augurs::prelude::{Fit, Predict};
use serde::Serialize;

use super::ForecastError;

/// An unfitted forecasting model.
pub trait Model {
    /// What fitting produces.
    type Fitted: Fitted;
    /// Fits on finite values (see [`super::prepare`]).
    fn fit(&self, y: &[f64]) -> Result<Self::Fitted, ForecastError>;
}

/// A fitted model that produces point forecasts.
pub trait Fitted {
    /// Point forecasts for the next `horizon` steps.
    fn predict(&self, horizon: usize) -> Result<Vec<f64>, ForecastError>;
}

/// The model families foresight chooses between.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "camelCase")]
pub enum ModelKind {
    /// MSTL decomposition over these periods (steps) with an AutoETS trend.
    Mstl {
        /// Seasonal periods, in steps, ascending.
        periods: Vec<usize>,
    },
    /// Repeat the last full season.
    SeasonalNaive {
        /// Season length in steps.
        period: usize,
    },
    /// Repeat the last value.
    Naive,
    /// Exponential smoothing with no season (AutoETS over no trend, a
    /// linear trend and a damped one, additive errors), fitted on the recent
    /// end of the history like MSTL's trend model. The candidate for series
    /// with no season to model: on a noisy one a smoothed level forecasts
    /// the next values better than the last value does, which is all
    /// [`ModelKind::Naive`] can offer.
    Ets,
    /// Prophet (piecewise-linear trend plus Fourier seasonalities), one
    /// seasonality per period. Always part of the enum, since it is stored
    /// in the state dir and shown in outputs; fitting it needs the `prophet`
    /// cargo feature.
    Prophet {
        /// Seasonal periods, in steps, ascending.
        periods: Vec<usize>,
    },
    /// The step-by-step mean or median of several models' forecasts.
    /// Validation scores it from its members' forecasts at no extra fit,
    /// and it often beats each member: their errors partly cancel.
    Ensemble {
        /// How the members' forecasts are combined.
        combine: Combine,
        /// The member models; never an ensemble themselves.
        members: Vec<ModelKind>,
    },
}

/// How an [`ModelKind::Ensemble`] combines its members' forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Combine {
    /// The arithmetic mean at each step.
    Mean,
    /// The median at each step (the mean of the middle two for an even
    /// count): robust to one member going astray.
    Median,
}

impl Combine {
    /// Combines one value per member.
    pub fn apply(self, values: &mut [f64]) -> f64 {
        if values.is_empty() {
            return f64::NAN;
        }
        match self {
            Combine::Mean => values.iter().sum::<f64>() / values.len() as f64,
            Combine::Median => {
                values.sort_by(f64::total_cmp);
                let k = values.len();
                if k % 2 == 1 {
                    values[k / 2]
                } else {
                    (values[k / 2 - 1] + values[k / 2]) / 2.0
                }
            }
        }
    }
}

impl ModelKind {
    /// The seasonal periods (steps) the model uses, ascending, without
    /// repeats.
    pub fn periods(&self) -> Vec<usize> {
        let mut out = match self {
            ModelKind::Mstl { periods } => periods.clone(),
            ModelKind::SeasonalNaive { period } => vec![*period],
            ModelKind::Naive | ModelKind::Ets => Vec::new(),
            ModelKind::Prophet { periods } => periods.clone(),
            ModelKind::Ensemble { members, .. } => {
                members.iter().flat_map(ModelKind::periods).collect()
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether `n` finite observations are enough to fit the model.
    pub fn fits_history(&self, n: usize) -> bool {
        match self {
            ModelKind::Mstl { periods } => !periods.is_empty() && periods.iter().all(|p| n > 2 * p),
            ModelKind::SeasonalNaive { period } => *period > 0 && n >= *period,
            ModelKind::Naive => n > 0,
            ModelKind::Ets => n >= ETS_MIN_HISTORY,
            // Two full seasons, as for MSTL: with less, a seasonality's
            // Fourier terms are fitted on one cycle and repeat its noise.
            ModelKind::Prophet { periods } => n >= 2 && periods.iter().all(|p| n > 2 * p),
            ModelKind::Ensemble { members, .. } => {
                !members.is_empty() && members.iter().all(|m| m.fits_history(n))
            }
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelKind::Mstl { periods } => write!(f, "mstl{periods:?}+ets"),
            ModelKind::SeasonalNaive { period } => write!(f, "seasonal_naive[{period}]"),
            ModelKind::Naive => f.write_str("naive"),
            ModelKind::Ets => f.write_str("ets"),
            ModelKind::Prophet { periods } => write!(f, "prophet{periods:?}"),
            ModelKind::Ensemble { combine, members } => {
                f.write_str(match combine {
                    Combine::Mean => "mean(",
                    Combine::Median => "median(",
                })?;
                for (i, m) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{m}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A fitted [`ModelKind`].
pub enum FittedKind {
    /// Boxed because augurs' fitted MSTL is large.
    Mstl(Box<FittedMSTLModel>),
    /// The chosen exponential smoothing model.
    Ets(Box<FittedAutoETS>),
    /// The season to repeat.
    SeasonalNaive(Vec<f64>),
    /// The value to repeat.
    Naive(f64),
    /// Fitted members and how to combine them.
    Ensemble(Combine, Vec<FittedKind>),
    /// Boxed because augurs' fitted Prophet carries its features and
    /// parameters.
    #[cfg(feature = "prophet")]
    Prophet(Box<super::prophet::FittedProphet>),
}

/// Runs augurs code, turning a panic into an error: nothing inside the
/// forecast boundary may take the process down.
fn guarded<T>(
    model: &ModelKind,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, ForecastError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(message)) => Err(ForecastError::Model {
            model: model.to_string(),
            message,
        }),
        Err(payload) => Err(ForecastError::Panicked {
            model: model.to_string(),
            message: payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into()),
        }),
    }
}

impl Model for ModelKind {
    type Fitted = FittedKind;

    fn fit(&self, y: &[f64]) -> Result<FittedKind, ForecastError> {
        let last = *y.last().ok_or(ForecastError::InsufficientHistory {
            observed: 0,
            needed: 1,
        })?;
        match self {
            ModelKind::Naive => Ok(FittedKind::Naive(last)),
            ModelKind::SeasonalNaive { period } => {
                if *period == 0 || y.len() < *period {
                    return Err(ForecastError::InsufficientHistory {
                        observed: y.len(),
                        needed: *period,
                    });
                }
                Ok(FittedKind::SeasonalNaive(y[y.len() - period..].to_vec()))
            }
            ModelKind::Mstl { periods } => {
                // stlrs fails below two full periods; callers filter, but a
                // model must not trust its caller with a panic at stake.
                if periods.is_empty() || periods.iter().any(|p| y.len() < 2 * p + 1) {
                    return Err(ForecastError::InsufficientHistory {
                        observed: y.len(),
                        needed: 2 * periods.iter().max().copied().unwrap_or(1) + 1,
                    });
                }
                guarded(self, || {
                    let trend = RecentTrend {
                        inner: trend_model().map_err(|e| e.to_string())?,
                        tail: trend_tail(periods),
                    };
                    let model = MSTLModel::new(periods.clone(), trend);
                    model.fit(y).map(Box::new).map_err(|e| e.to_string())
                })
                .map(FittedKind::Mstl)
            }
            ModelKind::Ets => {
                if y.len() < ETS_MIN_HISTORY {
                    return Err(ForecastError::InsufficientHistory {
                        observed: y.len(),
                        needed: ETS_MIN_HISTORY,
                    });
                }
                guarded(self, || {
                    let tail = &y[y.len().saturating_sub(MIN_TREND_TAIL)..];
                    non_seasonal_ets()
                        .and_then(|m| m.fit(tail))
                        .map(Box::new)
                        .map_err(|e| e.to_string())
                })
                .map(FittedKind::Ets)
            }
            ModelKind::Prophet { periods } => fit_prophet(self, periods, y),
            ModelKind::Ensemble { combine, members } => {
                if members.is_empty() {
                    return Err(ForecastError::Model {
                        model: self.to_string(),
                        message: "an ensemble needs at least one member".into(),
                    });
                }
                members
                    .iter()
                    .map(|m| m.fit(y))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|fitted| FittedKind::Ensemble(*combine, fitted))
            }
        }
    }
}

/// Fits Prophet, with every panic inside augurs or wasmtime caught.
#[cfg(feature = "prophet")]
fn fit_prophet(
    kind: &ModelKind,
    periods: &[usize],
    y: &[f64],
) -> Result<FittedKind, ForecastError> {
    if !kind.fits_history(y.len()) {
        return Err(ForecastError::InsufficientHistory {
            observed: y.len(),
            needed: (2 * periods.iter().max().copied().unwrap_or(0) + 1).max(2),
        });
    }
    guarded(kind, || super::prophet::fit(periods, y)).map(|f| FittedKind::Prophet(Box::new(f)))
}

/// Without the `prophet` feature there is no Prophet to fit: say which
/// feature compiles it in rather than fail obscurely (a stored choice of
/// Prophet then falls back to a full selection, see [`super::refit`]).
#[cfg(not(feature = "prophet"))]
fn fit_prophet(kind: &ModelKind, _: &[usize], _: &[f64]) -> Result<FittedKind, ForecastError> {
    Err(prophet_not_built(kind))
}

/// The error for asking for Prophet in a build without it.
#[cfg(not(feature = "prophet"))]
fn prophet_not_built(kind: &ModelKind) -> ForecastError {
    ForecastError::NotBuilt {
        model: kind.to_string(),
        feature: "prophet",
    }
}

/// Whether this binary can fit Prophet; the error names the feature to
/// build with when it cannot.
pub(crate) fn prophet_available() -> Result<(), ForecastError> {
    if cfg!(feature = "prophet") {
        Ok(())
    } else {
        Err(ForecastError::NotBuilt {
            model: "prophet".into(),
            feature: "prophet",
        })
    }
}

/// The ETS that MSTL forecasts its deseasonalised series with, and that
/// [`ModelKind::Ets`] fits alone: additive errors, choosing by AICc between
/// no trend, a linear trend and a damped one.
///
/// Never a seasonal spec: seasonal AutoETS is `unimplemented!` in augurs,
/// and MSTL has removed the seasonality before the trend model sees the
/// data. Not augurs' full `ZZN` search either: its multiplicative-error
/// models triple the fit time (28 ms against 9 ms per M4 Hourly series)
/// and, measured on the M4 Hourly holdout through the whole selection,
/// gained nothing (OWA 0.469 both ways).
fn non_seasonal_ets() -> Result<AutoETS, augurs::ets::Error> {
    AutoETS::new(1, "AZN")
}

/// [`non_seasonal_ets`] as MSTL's trend model.
fn trend_model() -> Result<augurs::ets::trend::AutoETSTrendModel, augurs::ets::Error> {
    Ok(non_seasonal_ets()?.into_trend_model())
}

impl Fitted for FittedKind {
    fn predict(&self, horizon: usize) -> Result<Vec<f64>, ForecastError> {
        match self {
            FittedKind::Naive(v) => Ok(vec![*v; horizon]),
            FittedKind::SeasonalNaive(season) => {
                Ok((0..horizon).map(|h| season[h % season.len()]).collect())
            }
            FittedKind::Mstl(fit) => {
                let kind = ModelKind::Mstl { periods: vec![] };
                let point = guarded(&kind, || {
                    fit.predict(horizon, None)
                        .map(|f| f.point)
                        .map_err(|e| e.to_string())
                })?;
                finite(&kind, point, horizon)
            }
            FittedKind::Ets(fit) => {
                let point = guarded(&ModelKind::Ets, || {
                    fit.predict(horizon, None)
                        .map(|f| f.point)
                        .map_err(|e| e.to_string())
                })?;
                finite(&ModelKind::Ets, point, horizon)
            }
            #[cfg(feature = "prophet")]
            FittedKind::Prophet(fit) => {
                let kind = ModelKind::Prophet { periods: vec![] };
                let point = guarded(&kind, || fit.predict(horizon))?;
                finite(&kind, point, horizon)
            }
            FittedKind::Ensemble(combine, members) => {
                let forecasts = members
                    .iter()
                    .map(|m| m.predict(horizon))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(combine_forecasts(*combine, &forecasts, horizon))
            }
        }
    }
}

/// The fewest values [`ModelKind::Ets`] is fitted on: augurs refuses fewer
/// than its parameters plus five, and a trended model has four (the
/// smoothing of level and slope and their initial values).
const ETS_MIN_HISTORY: usize = 9;

/// The fewest of the newest values ETS is fitted on, alone or as MSTL's
/// trend model.
const MIN_TREND_TAIL: usize = 200;

/// How much of the deseasonalised history the trend model is fitted on:
/// three of the shortest season, at least [`MIN_TREND_TAIL`] values.
fn trend_tail(periods: &[usize]) -> usize {
    periods
        .iter()
        .min()
        .map_or(0, |p| p.saturating_mul(3))
        .max(MIN_TREND_TAIL)
}

/// A trend model fitted on the recent end of the deseasonalised series only.
///
/// MSTL needs the whole history to estimate the seasons, but the trend model
/// only extrapolates the level and slope over the next horizon, which the
/// recent past decides; ETS's fit cost grows with the length it is given.
/// On the M4 Hourly holdout, fitting on the last 200 values instead of all
/// 650–960 left OWA at 0.469 and coverage at 93.4% and cut fit time by about
/// half. `predict_in_sample` then covers the tail only; foresight never asks
/// for in-sample predictions.
#[derive(Debug)]
struct RecentTrend<T> {
    /// The trend model proper.
    inner: T,
    /// How many of the newest values it is fitted on.
    tail: usize,
}

impl<T: augurs::mstl::TrendModel> augurs::mstl::TrendModel for RecentTrend<T> {
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.inner.name()
    }

    fn fit(
        &self,
        y: &[f64],
    ) -> Result<
        Box<dyn augurs::mstl::FittedTrendModel + Sync + Send>,
        Box<dyn std::error::Error + Send + Sync + 'static>,
    > {
        self.inner.fit(&y[y.len().saturating_sub(self.tail)..])
    }
}

/// `point` if it is `horizon` finite values: a library's forecast is not
/// trusted to be either.
fn finite(kind: &ModelKind, point: Vec<f64>, horizon: usize) -> Result<Vec<f64>, ForecastError> {
    if point.len() != horizon || point.iter().any(|v| !v.is_finite()) {
        return Err(ForecastError::Model {
            model: kind.to_string(),
            message: "produced non-finite forecasts".into(),
        });
    }
    Ok(point)
}

/// Combines equal-length member forecasts step by step.
pub(crate) fn combine_forecasts(
    combine: Combine,
    forecasts: &[Vec<f64>],
    horizon: usize,
) -> Vec<f64> {
    let mut column = Vec::with_capacity(forecasts.len());
    (0..horizon)
        .map(|h| {
            column.clear();
            column.extend(forecasts.iter().filter_map(|f| f.get(h).copied()));
            combine.apply(&mut column)
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let f = ModelKind::SeasonalNaive { period: 3 }
            .fit(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap();
        assert_eq!(f.predict(5).unwrap(), vec![4.0, 5.0, 6.0, 4.0, 5.0]);
    }

    #[test]
    fn ensembles_combine_their_members_step_by_step() {
        let y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let members = vec![
            ModelKind::Naive,
            ModelKind::SeasonalNaive { period: 3 },
            ModelKind::SeasonalNaive { period: 2 },
        ];
        let mean = ModelKind::Ensemble {
            combine: Combine::Mean,
            members: members.clone(),
        };
        // naive 6,6; snaive[3] 4,5; snaive[2] 5,6.
        assert_eq!(
            mean.fit(&y).unwrap().predict(2).unwrap(),
            vec![5.0, 17.0 / 3.0]
        );
        let median = ModelKind::Ensemble {
            combine: Combine::Median,
            members,
        };
        assert_eq!(median.fit(&y).unwrap().predict(2).unwrap(), vec![5.0, 6.0]);
        assert_eq!(median.periods(), vec![2, 3]);
        assert!(median.fits_history(3) && !median.fits_history(2));
        assert_eq!(
            mean.to_string(),
            "mean(naive, seasonal_naive[3], seasonal_naive[2])"
        );
    }

    #[test]
    fn mstl_refuses_short_history_instead_of_panicking() {
        let err = ModelKind::Mstl { periods: vec![24] }
            .fit(&[1.0; 30])
            .err()
            .unwrap();
        assert!(matches!(err, ForecastError::InsufficientHistory { .. }));
    }

    #[test]
    fn mstl_fits_a_seasonal_series() {
        let y: Vec<f64> = (0..24 * 10)
            .map(|i| 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin())
            .collect();
        let f = ModelKind::Mstl { periods: vec![24] }.fit(&y).unwrap();
        let p = f.predict(24).unwrap();
        let truth: Vec<f64> = (240..264)
            .map(|i| 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin())
            .collect();
        let mae = p
            .iter()
            .zip(&truth)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / 24.0;
        assert!(mae < 1.0, "mae {mae}");
    }

    /// A level of 100 with noise in [-20, 20) from a fixed LCG seeded with
    /// `seed`.
    pub(in crate::forecast) fn noisy_level(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                100.0 + ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 40.0
            })
            .collect()
    }

    #[test]
    fn ets_smooths_a_noisy_level_where_naive_repeats_the_last_value() {
        let mut y = noisy_level(300, 11);
        // A last value far from the level: naive carries it forward, a
        // smoothed level mostly does not.
        y.push(140.0);
        let f = ModelKind::Ets.fit(&y).unwrap().predict(12).unwrap();
        assert_eq!(f.len(), 12);
        for v in &f {
            assert!((*v - 100.0).abs() < 10.0, "ets forecast {v}, level 100");
        }
        assert_eq!(
            ModelKind::Naive.fit(&y).unwrap().predict(1).unwrap(),
            [140.0]
        );
        assert_eq!(ModelKind::Ets.to_string(), "ets");
        assert!(ModelKind::Ets.periods().is_empty());
    }

    #[test]
    fn ets_refuses_too_short_a_history_instead_of_failing_inside_augurs() {
        assert!(!ModelKind::Ets.fits_history(ETS_MIN_HISTORY - 1));
        assert!(ModelKind::Ets.fits_history(ETS_MIN_HISTORY));
        let err = ModelKind::Ets
            .fit(&noisy_level(ETS_MIN_HISTORY - 1, 11))
            .err()
            .unwrap();
        assert!(matches!(
            err,
            ForecastError::InsufficientHistory {
                observed: 8,
                needed: 9
            }
        ));
        let f = ModelKind::Ets
            .fit(&noisy_level(ETS_MIN_HISTORY, 11))
            .unwrap();
        assert!(f.predict(3).unwrap().iter().all(|v| v.is_finite()));
    }
}
