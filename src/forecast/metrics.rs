//! Forecast accuracy on a holdout, measured the way the M4 competition does,
//! so that numbers can be set beside the published M4 results.
//!
//! [`evaluate`] hides the last `holdout` values of one series, forecasts them
//! with foresight ([`super::train`]), seasonal naive and Naive2, and scores
//! all three on the same values; [`summarise`] aggregates many series.
//! Every metric is a plain function so it can be checked against an
//! independent reference.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::naive2::{naive2, seasonal_naive};
use super::prep::prepare;
use super::select::{TrainSpec, train};
use super::{ForecastError, ModelKind};
use crate::domain::Series;

/// sMAPE in percent, `mean(200 |y - f| / (|y| + |f|))`, over the pairs whose
/// actual and forecast are both finite (a missing actual is not an error of
/// the forecast).
///
/// A pair with `y = f = 0` scores 0: the forecast is exact, and M4's formula
/// would divide zero by zero. Returns `None` when no pair is scorable.
pub fn smape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    mean(pairs(actual, forecast).map(|(y, f)| {
        let denom = y.abs() + f.abs();
        if denom == 0.0 {
            0.0
        } else {
            200.0 * (y - f).abs() / denom
        }
    }))
}

/// The MASE denominator: the in-sample mean absolute difference at lag `m`
/// (the in-sample error of seasonal naive), over finite pairs.
///
/// Returns `None` when there is no such pair (`m == 0` or at most `m`
/// values). A constant history gives `Some(0.0)`; [`mase`] then refuses it.
pub fn mase_scale(insample: &[f64], m: usize) -> Option<f64> {
    if m == 0 {
        return None;
    }
    mean(
        insample
            .iter()
            .skip(m)
            .zip(insample)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| (a - b).abs()),
    )
}

/// MASE: `mean |y - f| / scale`, with `scale` from [`mase_scale`].
///
/// Returns `None` when `scale` is not a positive finite number (a constant
/// history: no error of the forecast can be scaled by it) or no pair is
/// scorable.
pub fn mase(actual: &[f64], forecast: &[f64], scale: f64) -> Option<f64> {
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    mean(pairs(actual, forecast).map(|(y, f)| (y - f).abs())).map(|mae| mae / scale)
}

/// Share of finite actuals inside `[lower, upper]`, in `[0, 1]`.
pub fn coverage(actual: &[f64], lower: &[f64], upper: &[f64]) -> Option<f64> {
    let (inside, points) = interval_hits(actual, lower, upper);
    (points > 0).then(|| inside as f64 / points as f64)
}

/// M4's Overall Weighted Average: the method's sMAPE and MASE relative to
/// Naive2's, averaged. Computed on dataset-level means, as M4 does, not per
/// series. `None` when a Naive2 mean is zero or any input is not finite.
pub fn owa(smape: f64, mase: f64, naive2_smape: f64, naive2_mase: f64) -> Option<f64> {
    let v = (smape / naive2_smape + mase / naive2_mase) / 2.0;
    let ok = naive2_smape > 0.0 && naive2_mase > 0.0 && v.is_finite();
    ok.then_some(v)
}

/// Pairs of finite (actual, forecast), index by index.
fn pairs<'a>(actual: &'a [f64], forecast: &'a [f64]) -> impl Iterator<Item = (f64, f64)> + 'a {
    actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| (*y, *f))
        .filter(|(y, f)| y.is_finite() && f.is_finite())
}

/// (actuals inside the interval, finite actuals).
fn interval_hits(actual: &[f64], lower: &[f64], upper: &[f64]) -> (usize, usize) {
    let mut inside = 0;
    let mut points = 0;
    for ((y, lo), hi) in actual.iter().zip(lower).zip(upper) {
        if y.is_finite() {
            points += 1;
            if lo <= y && y <= hi {
                inside += 1;
            }
        }
    }
    (inside, points)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The methods every evaluation compares, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Method {
    /// foresight's own forecaster, [`super::train`].
    #[serde(rename = "foresight")]
    Foresight,
    /// Seasonal naive at the evaluation's season.
    #[serde(rename = "sNaive")]
    SeasonalNaive,
    /// M4's Naive2, the OWA reference.
    #[serde(rename = "Naive2")]
    Naive2,
}

impl Method {
    /// Every method, in report order; [`SeriesEval::scores`] is indexed the
    /// same way.
    pub const ALL: [Method; 3] = [Method::Foresight, Method::SeasonalNaive, Method::Naive2];

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The M4 papers' names, so tables line up with published results.
        f.write_str(match self {
            Method::Foresight => "foresight",
            Method::SeasonalNaive => "sNaive",
            Method::Naive2 => "Naive2",
        })
    }
}

/// One series could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum EvalError {
    /// Splitting off the holdout left no history to train on.
    #[error("series has {length} values; need more than the holdout of {holdout}")]
    TooShort {
        /// Values in the series, missing ones included.
        length: usize,
        /// Values to hold out.
        holdout: usize,
    },
    /// Scoring found no observed value in the holdout.
    #[error("the last {holdout} values are all missing; nothing to score")]
    NoActuals {
        /// Values held out.
        holdout: usize,
    },
    /// Forecasting the holdout with one method failed.
    #[error("{method} could not forecast: {source}")]
    Forecast {
        /// The method that failed.
        method: Method,
        /// Why.
        source: ForecastError,
    },
}

/// How to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EvalSpec {
    /// Values hidden at the end of every series and forecast.
    pub(crate) holdout: usize,
    /// Seasonal period in steps: seasonal naive's, Naive2's and the MASE
    /// scale's lag, and foresight's shortest period.
    pub(crate) season: usize,
    /// Nominal coverage of foresight's interval, in (0, 1).
    pub(crate) level: f64,
    /// Whether foresight's selection also validates Prophet.
    pub(crate) prophet: bool,
}

/// One method's errors on one series' holdout.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// sMAPE in percent.
    pub smape: f64,
    /// MASE; `None` when the series' scale is zero or undefined.
    pub mase: Option<f64>,
    /// Actuals inside the method's interval; `None` for methods without one.
    pub inside: Option<usize>,
    /// Observed values in the holdout.
    pub points: usize,
}

/// All methods' results on one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesEval {
    /// Indexed like [`Method::ALL`].
    pub scores: [Scores; 3],
    /// The model foresight chose.
    pub model: ModelKind,
    /// Time foresight took to train and forecast.
    pub fit_time: Duration,
    /// Whether Naive2 found the series seasonal.
    pub naive2_seasonal: bool,
}

impl SeriesEval {
    /// One method's scores.
    pub fn scores(&self, method: Method) -> &Scores {
        &self.scores[method.index()]
    }
}

/// Evaluates all [`Method::ALL`] on the last `spec.holdout` values of
/// `series`.
///
/// Every method sees the same history, cleaned by [`prepare`]. When the
/// history ends in missing values, every method forecasts from its last
/// observation and the forecast is aligned with the holdout, so the
/// comparison stays on the same timestamps.
pub(crate) fn evaluate(series: &Series, spec: &EvalSpec) -> Result<SeriesEval, EvalError> {
    let h = spec.holdout;
    let m = spec.season;
    let length = series.len();
    if h == 0 || length <= h {
        return Err(EvalError::TooShort { length, holdout: h });
    }
    let split = length - h;
    let (history, actual) = series.values.split_at(split);
    if actual.iter().all(|v| !v.is_finite()) {
        return Err(EvalError::NoActuals { holdout: h });
    }
    let fail = |method| move |source| EvalError::Forecast { method, source };

    let (y, dropped) = prepare(history).map_err(fail(Method::Foresight))?;
    // Missing values trimmed off the end of the history: forecasts start
    // after the last observation, that many steps before the holdout.
    let lag = split - dropped - y.len();
    let steps = h + lag;

    let mut periods = vec![m];
    // Weekly on top of daily, when MSTL could use it (two full weeks, plus
    // the validation window train() holds out).
    if y.len() > 2 * 7 * m + steps {
        periods.push(7 * m);
    }
    let train_spec = TrainSpec {
        periods,
        detect: false,
        horizon: steps,
        level: spec.level,
        prophet: spec.prophet,
        need: None,
    };
    let history_series = Series::new(series.start, series.step, history.to_vec());
    let started = Instant::now();
    let trained = train(&history_series, &train_spec).map_err(fail(Method::Foresight))?;
    let fit_time = started.elapsed();
    let fc = &trained.forecast;
    let tail = |v: &[f64]| v.get(lag..).map(<[f64]>::to_vec).unwrap_or_default();
    let foresight = (tail(&fc.point), tail(&fc.lower), tail(&fc.upper));

    let snaive = seasonal_naive(&y, m, steps).map_err(fail(Method::SeasonalNaive))?;
    let n2 = naive2(&y, m, steps).map_err(fail(Method::Naive2))?;

    let scale = mase_scale(history, m);
    let score = |point: &[f64], interval: Option<(&[f64], &[f64])>| {
        let (inside, points) = match interval {
            Some((lo, hi)) => {
                let (inside, points) = interval_hits(actual, lo, hi);
                (Some(inside), points)
            }
            None => (None, actual.iter().filter(|v| v.is_finite()).count()),
        };
        Scores {
            // Non-empty: the holdout has an observed value, and every
            // method's forecast is finite over the full holdout.
            smape: smape(actual, point).unwrap_or(f64::NAN),
            mase: scale.and_then(|s| mase(actual, point, s)),
            inside,
            points,
        }
    };
    let scores = [
        score(&foresight.0, Some((&foresight.1, &foresight.2))),
        score(&tail(&snaive), None),
        score(&tail(&n2.point), None),
    ];
    if scores.iter().any(|s| !s.smape.is_finite()) {
        // A forecast shorter than the holdout or not finite where the
        // actuals are: no method may be scored on fewer points than another.
        return Err(EvalError::NoActuals { holdout: h });
    }
    Ok(SeriesEval {
        scores,
        model: trained.model,
        fit_time,
        naive2_seasonal: n2.seasonal,
    })
}

/// One method's dataset-level accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodSummary {
    /// Which method.
    pub method: Method,
    /// Mean sMAPE across series, in percent.
    pub smape: f64,
    /// Mean MASE across the series whose scale is defined.
    pub mase: Option<f64>,
    /// OWA against Naive2's means.
    pub owa: Option<f64>,
    /// Share of all observed holdout values inside the interval, for methods
    /// that have one.
    pub coverage: Option<f64>,
    /// Series scored.
    pub series: usize,
}

/// Accuracy of every method over a set of series.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// In [`Method::ALL`] order.
    pub methods: Vec<MethodSummary>,
    /// Series scored (the same for every method).
    pub series: usize,
    /// Series left out of the MASE means because their in-sample scale is
    /// zero (a constant history) or undefined (shorter than one season).
    pub mase_excluded: usize,
    /// How many series foresight fitted with each model.
    pub models: BTreeMap<String, usize>,
    /// Series Naive2 deseasonalised.
    pub naive2_seasonal: usize,
    /// Mean time foresight took per series, in seconds.
    pub mean_fit_seconds: f64,
}

impl Summary {
    /// One method's summary.
    pub fn method(&self, method: Method) -> Option<&MethodSummary> {
        self.methods.iter().find(|s| s.method == method)
    }
}

/// Aggregates per-series results as M4 does: sMAPE and MASE are averaged
/// across series first, and OWA is computed from those averages. `None`
/// when `evals` is empty.
pub fn summarise(evals: &[SeriesEval]) -> Option<Summary> {
    if evals.is_empty() {
        return None;
    }
    let per_method = |method: Method| {
        let scores = || evals.iter().map(move |e| e.scores(method));
        let smape = mean(scores().map(|s| s.smape)).unwrap_or(f64::NAN);
        let mase = mean(scores().filter_map(|s| s.mase));
        let (inside, points) = scores().fold((None, 0), |(inside, points), s| {
            let inside = match (inside, s.inside) {
                (acc, Some(i)) => Some(acc.unwrap_or(0) + i),
                (acc, None) => acc,
            };
            (inside, points + s.points)
        });
        let coverage = inside
            .filter(|_| points > 0)
            .map(|i: usize| i as f64 / points as f64);
        (smape, mase, coverage)
    };
    let (n2_smape, n2_mase, _) = per_method(Method::Naive2);
    let methods = Method::ALL
        .iter()
        .map(|&method| {
            let (smape, mase, coverage) = per_method(method);
            let owa = match (mase, n2_mase) {
                (Some(m), Some(n2m)) => owa(smape, m, n2_smape, n2m),
                _ => None,
            };
            MethodSummary {
                method,
                smape,
                mase,
                owa,
                coverage,
                series: evals.len(),
            }
        })
        .collect();
    let mut models = BTreeMap::new();
    for e in evals {
        *models.entry(e.model.to_string()).or_insert(0) += 1;
    }
    let fit: Duration = evals.iter().map(|e| e.fit_time).sum();
    Some(Summary {
        methods,
        series: evals.len(),
        mase_excluded: evals
            .iter()
            .filter(|e| e.scores(Method::Naive2).mase.is_none())
            .count(),
        models,
        naive2_seasonal: evals.iter().filter(|e| e.naive2_seasonal).count(),
        mean_fit_seconds: fit.as_secs_f64() / evals.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta};

    use super::*;

    fn series(values: Vec<f64>) -> Series {
        Series::new(
            DateTime::from_timestamp(0, 0).unwrap_or_default(),
            TimeDelta::hours(1),
            values,
        )
    }

    fn spec() -> EvalSpec {
        EvalSpec {
            holdout: 24,
            season: 24,
            level: 0.9,
            prophet: false,
        }
    }

    fn daily(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 100.0 + 30.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin())
            .collect()
    }

    #[test]
    fn a_repeating_cycle_is_exact_for_seasonal_naive_and_has_no_mase_scale() {
        let v: Vec<f64> = (0..24 * 12).map(|i| (10 + i % 24) as f64).collect();
        let e = evaluate(&series(v), &spec()).unwrap();
        let s = e.scores(Method::SeasonalNaive);
        assert_eq!(s.smape, 0.0);
        // Every in-sample seasonal difference is zero: MASE is undefined.
        assert_eq!(s.mase, None);
        assert_eq!(s.points, 24);
    }

    #[test]
    fn trailing_gaps_keep_forecasts_aligned_with_the_holdout() {
        let mut v = daily(24 * 12);
        let n = v.len();
        // Three missing values just before the holdout, one inside it.
        for slot in &mut v[n - 27..n - 24] {
            *slot = f64::NAN;
        }
        v[n - 5] = f64::NAN;
        let e = evaluate(&series(v), &spec()).unwrap();
        // Seasonal naive is still exact only if aligned.
        assert!(e.scores(Method::SeasonalNaive).smape < 1e-9);
        assert_eq!(e.scores(Method::Foresight).points, 23);
    }

    #[test]
    fn unscorable_series_are_errors() {
        assert!(matches!(
            evaluate(&series(vec![1.0; 10]), &spec()),
            Err(EvalError::TooShort { .. })
        ));
        let mut v = daily(100);
        for slot in &mut v[76..] {
            *slot = f64::NAN;
        }
        assert!(matches!(
            evaluate(&series(v), &spec()),
            Err(EvalError::NoActuals { .. })
        ));
    }

    #[test]
    fn summary_owa_of_naive2_is_one() {
        let evals: Vec<SeriesEval> = (0..3)
            .map(|k| {
                let v: Vec<f64> = daily(24 * 10)
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x + (i * (k + 1) % 7) as f64)
                    .collect();
                evaluate(&series(v), &spec()).unwrap()
            })
            .collect();
        let s = summarise(&evals).unwrap();
        assert_eq!(s.method(Method::Naive2).unwrap().owa, Some(1.0));
        assert_eq!(s.series, 3);
        assert!(s.method(Method::Foresight).unwrap().coverage.is_some());
        assert!(s.method(Method::Naive2).unwrap().coverage.is_none());
    }
}
