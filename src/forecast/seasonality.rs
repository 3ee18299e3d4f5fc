//! Choosing seasonal periods, in steps.

use chrono::TimeDelta;

/// Converts calendar periods to whole steps, dropping any that are not at
/// least two steps long.
pub fn candidate_steps(periods: &[TimeDelta], step: TimeDelta) -> Vec<usize> {
    let step_s = step.num_seconds().max(1);
    let mut out: Vec<usize> = periods
        .iter()
        .map(|p| ((p.num_seconds() as f64) / step_s as f64).round() as usize)
        .filter(|&p| p >= 2)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Keeps the candidate periods that the data supports: the autocorrelation
/// of the first differences at that lag must be clearly positive, and a
/// period that is a multiple of one already kept must correlate clearly more
/// than it (a pure daily cycle also repeats every week).
///
/// Differencing first matters: on raw data any slow trend makes every lag
/// look correlated, and augurs' periodogram on raw data misses weekly cycles.
pub fn detect_periods(y: &[f64], candidates: &[usize]) -> Vec<usize> {
    let d: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = candidates.to_vec();
    sorted.sort_unstable();
    let mut kept: Vec<(usize, f64)> = Vec::new();
    for p in sorted {
        if d.len() <= 2 * p {
            continue;
        }
        let r = acf(&d, p);
        let beats_divisors = kept
            .iter()
            .filter(|(q, _)| p % q == 0)
            .all(|(_, rq)| r > rq + 0.05);
        if r > 0.2 && beats_divisors {
            kept.push((p, r));
        }
    }
    kept.into_iter().map(|(p, _)| p).collect()
}

/// Autocorrelation at `lag`, normalised by the number of pairs so that long
/// lags (fewer pairs) are comparable with short ones.
fn acf(x: &[f64], lag: usize) -> f64 {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n as f64;
    let var: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= f64::EPSILON {
        return 0.0;
    }
    let cov: f64 = (lag..n).map(|i| (x[i] - mean) * (x[i - lag] - mean)).sum();
    (cov / (n - lag) as f64) / (var / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_from_calendar_periods() {
        let p = [
            TimeDelta::days(1),
            TimeDelta::weeks(1),
            TimeDelta::seconds(30),
        ];
        assert_eq!(candidate_steps(&p, TimeDelta::minutes(30)), vec![48, 336]);
    }

    #[test]
    fn detects_a_daily_cycle_but_not_a_missing_weekly_one() {
        let y: Vec<f64> = (0..24 * 30)
            .map(|i| 10.0 + (i as f64 * std::f64::consts::TAU / 24.0).sin() * 5.0 + i as f64 * 0.01)
            .collect();
        assert_eq!(detect_periods(&y, &[24, 168]), vec![24]);
    }

    #[test]
    fn detects_a_weekly_cycle_on_top_of_a_daily_one() {
        let y: Vec<f64> = (0..24 * 7 * 5)
            .map(|i| {
                let daily = (i as f64 * std::f64::consts::TAU / 24.0).sin() * 5.0;
                let weekend = if (i / 24) % 7 >= 5 {
                    -8.0 * (daily.abs() / 5.0)
                } else {
                    0.0
                };
                20.0 + daily + weekend
            })
            .collect();
        assert_eq!(detect_periods(&y, &[24, 168]), vec![24, 168]);
    }
}
