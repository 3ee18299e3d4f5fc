//! The M4 competition's benchmarks: seasonal naive, Naive2 and the
//! seasonality test that decides whether Naive2 deseasonalises.
//!
//! These follow the M4 organisers' R code (`M4-methods`, `Benchmarks and
//! Evaluation.R`) so that OWA computed against our Naive2 means what OWA
//! means in the M4 papers. They are evaluation baselines, not candidates for
//! serving: [`super::train`] never uses them.

use super::ForecastError;
use super::models::{Fitted, Model, ModelKind};

/// One-sided 90% critical value M4 uses for the seasonality test.
const TCRIT: f64 = 1.645;

/// The outcome of M4's seasonality test on one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeasonalityTest {
    /// Autocorrelation at lag `m`.
    pub acf: f64,
    /// The 90% limit `acf` must exceed in absolute value.
    pub limit: f64,
    /// Whether `|acf| > limit`.
    pub seasonal: bool,
}

/// M4's `SeasonalityTest`: is the autocorrelation at lag `m` significant?
///
/// `limit = 1.645 * sqrt((1 + 2 * sum_{k<m} acf_k^2) / n)`, Bartlett's
/// standard error under the hypothesis that autocorrelation stops before `m`.
///
/// Returns `None` when the test does not apply, which M4 reads as "not
/// seasonal": `m < 2`, fewer than `3m` values, a non-finite value, or a
/// constant series (its autocorrelation is undefined).
///
/// One deliberate difference from the R code: R's `acf` computes only
/// `floor(10 * log10(n))` lags by default, so for `3m <= n < 10^(m/10)` its
/// `xacf[m]` is `NA` and the series silently counts as non-seasonal (for
/// hourly data, `72 <= n < 252`). We apply the formula as stated. M4's own
/// Hourly series are all longer than that, so its numbers are unaffected.
pub fn seasonality_test(y: &[f64], m: usize) -> Option<SeasonalityTest> {
    let n = y.len();
    if m < 2 || n < 3 * m || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let acf = autocorrelations(y, m)?;
    let sum_sq: f64 = acf[..m - 1].iter().map(|r| r * r).sum();
    let limit = TCRIT * ((1.0 + 2.0 * sum_sq) / n as f64).sqrt();
    let at_m = acf[m - 1];
    Some(SeasonalityTest {
        acf: at_m,
        limit,
        seasonal: at_m.abs() > limit,
    })
}

/// Sample autocorrelations at lags `1..=max_lag`, as R's `acf` computes them:
/// both sums over `n`, so long lags shrink towards zero. `None` for a
/// constant series.
fn autocorrelations(y: &[f64], max_lag: usize) -> Option<Vec<f64>> {
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let denom: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if denom <= f64::EPSILON * mean.abs().max(1.0) {
        return None;
    }
    Some(
        (1..=max_lag.min(n.saturating_sub(1)))
            .map(|k| {
                (k..n)
                    .map(|t| (y[t] - mean) * (y[t - k] - mean))
                    .sum::<f64>()
                    / denom
            })
            .collect(),
    )
}

/// Seasonal indices of classical multiplicative decomposition (R's
/// `decompose(type = "multiplicative")`), normalised to average 1.
///
/// The trend is a centred moving average of order `m` (for even `m`, a
/// `2 x m` average with half weights at both ends); each index is the mean
/// ratio of value to trend at that position of the cycle, counted from
/// `y[0]`. Returns `None` when the decomposition is undefined: fewer than
/// two full cycles (`2m` values, R's own limit), or a non-positive trend or index (multiplicative
/// seasonality needs positive data).
pub fn seasonal_indices(y: &[f64], m: usize) -> Option<Vec<f64>> {
    let n = y.len();
    if m < 2 || n < 2 * m || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let half = m / 2;
    let weights: Vec<f64> = if m.is_multiple_of(2) {
        (0..=m)
            .map(|i| if i == 0 || i == m { 0.5 } else { 1.0 } / m as f64)
            .collect()
    } else {
        vec![1.0 / m as f64; m]
    };
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for t in half..n - half {
        let trend: f64 = weights
            .iter()
            .enumerate()
            .map(|(i, w)| w * y[t + i - half])
            .sum();
        if trend <= 0.0 {
            return None;
        }
        sums[t % m] += y[t] / trend;
        counts[t % m] += 1;
    }
    // n >= 2m guarantees every position of the cycle has a ratio.
    let raw: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| s / (*c).max(1) as f64)
        .collect();
    let mean = raw.iter().sum::<f64>() / m as f64;
    if mean <= 0.0 {
        return None;
    }
    let indices: Vec<f64> = raw.iter().map(|r| r / mean).collect();
    indices
        .iter()
        .all(|i| i.is_finite() && *i > 0.0)
        .then_some(indices)
}

/// A Naive2 forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Naive2 {
    /// Point forecasts for the next steps.
    pub point: Vec<f64>,
    /// Whether the series passed the seasonality test and was
    /// deseasonalised.
    pub seasonal: bool,
}

/// M4's Naive2: when [`seasonality_test`] finds a season of `m` steps (and
/// the multiplicative indices exist), divides the series by its seasonal
/// indices, repeats the last deseasonalised value and multiplies the
/// continuing indices back in; otherwise repeats the last value.
///
/// `y` must hold finite values (see [`super::prepare`]).
pub fn naive2(y: &[f64], m: usize, horizon: usize) -> Result<Naive2, ForecastError> {
    let n = y.len();
    let last = *y.last().ok_or(ForecastError::InsufficientHistory {
        observed: 0,
        needed: 1,
    })?;
    let indices = seasonality_test(y, m)
        .filter(|t| t.seasonal)
        .and_then(|_| seasonal_indices(y, m));
    Ok(match indices {
        Some(si) => {
            let level = last / si[(n - 1) % m];
            Naive2 {
                point: (0..horizon).map(|h| level * si[(n + h) % m]).collect(),
                seasonal: true,
            }
        }
        None => Naive2 {
            point: vec![last; horizon],
            seasonal: false,
        },
    })
}

/// Seasonal naive: repeats the last `m` values.
pub fn seasonal_naive(y: &[f64], m: usize, horizon: usize) -> Result<Vec<f64>, ForecastError> {
    ModelKind::SeasonalNaive { period: m }
        .fit(y)?
        .predict(horizon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_seasonal_naive2_is_naive() {
        let y = [3.0, 1.0, 4.0, 1.0, 5.0];
        let f = naive2(&y, 2, 3).unwrap();
        assert!(!f.seasonal);
        assert_eq!(f.point, vec![5.0; 3]);
    }

    #[test]
    fn indices_of_a_pure_multiplicative_cycle() {
        let cycle = [0.5, 1.5, 1.0, 1.0];
        let y: Vec<f64> = (0..40).map(|t| 10.0 * cycle[t % 4]).collect();
        let si = seasonal_indices(&y, 4).unwrap();
        for (a, b) in si.iter().zip(cycle) {
            assert!((a - b).abs() < 1e-12, "{si:?}");
        }
        let f = naive2(&y, 4, 6).unwrap();
        assert!(f.seasonal);
        for (h, v) in f.point.iter().enumerate() {
            assert!((v - y[(40 + h) % 4]).abs() < 1e-9);
        }
    }

    #[test]
    fn empty_history_is_an_error_not_a_panic() {
        assert!(naive2(&[], 24, 48).is_err());
        assert!(seasonal_naive(&[1.0; 10], 24, 48).is_err());
    }
}
