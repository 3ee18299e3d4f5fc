//! The models, behind our own traits. Separate unfitted and fitted types, as
//! augurs does, so a model cannot be asked to predict before it is fitted.

use std::panic::{AssertUnwindSafe, catch_unwind};

use augurs::ets::AutoETS;
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
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelKind::Mstl { periods } => write!(f, "mstl{periods:?}+autoets"),
            ModelKind::SeasonalNaive { period } => write!(f, "seasonal_naive[{period}]"),
            ModelKind::Naive => f.write_str("naive"),
        }
    }
}

/// A fitted [`ModelKind`].
pub enum FittedKind {
    /// Boxed because augurs' fitted MSTL is large.
    Mstl(Box<FittedMSTLModel>),
    /// The season to repeat.
    SeasonalNaive(Vec<f64>),
    /// The value to repeat.
    Naive(f64),
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
                    // Non-seasonal AutoETS only: seasonal AutoETS is
                    // `unimplemented!` in augurs, and MSTL removes seasonality
                    // before the trend model sees the data anyway.
                    let trend = AutoETS::non_seasonal().into_trend_model();
                    let model = MSTLModel::new(periods.clone(), trend);
                    model.fit(y).map(Box::new).map_err(|e| e.to_string())
                })
                .map(FittedKind::Mstl)
            }
        }
    }
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
                if point.len() != horizon || point.iter().any(|v| !v.is_finite()) {
                    return Err(ForecastError::Model {
                        model: kind.to_string(),
                        message: "produced non-finite forecasts".into(),
                    });
                }
                Ok(point)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let f = ModelKind::SeasonalNaive { period: 3 }
            .fit(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap();
        assert_eq!(f.predict(5).unwrap(), vec![4.0, 5.0, 6.0, 4.0, 5.0]);
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
}
