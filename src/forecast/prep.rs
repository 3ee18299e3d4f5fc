//! Makes a history safe to hand to augurs: MSTL ignores `impute(true)` and a
//! single NaN fails the fit, so gaps are interpolated and NaN ends trimmed.

use super::ForecastError;

/// The fewest observations any model is fitted on.
pub(crate) const MIN_OBSERVATIONS: usize = 8;

/// Trims missing values at both ends and linearly interpolates interior gaps.
///
/// Returns the cleaned values and how many leading slots were dropped (so
/// callers can keep timestamps aligned). Fails when fewer than
/// [`MIN_OBSERVATIONS`] finite values remain.
pub fn prepare(values: &[f64]) -> Result<(Vec<f64>, usize), ForecastError> {
    let first = values.iter().position(|v| v.is_finite());
    let last = values.iter().rposition(|v| v.is_finite());
    let (Some(first), Some(last)) = (first, last) else {
        return Err(ForecastError::InsufficientHistory {
            observed: 0,
            needed: MIN_OBSERVATIONS,
        });
    };
    let mut y = values[first..=last].to_vec();
    let observed = y.iter().filter(|v| v.is_finite()).count();
    if observed < MIN_OBSERVATIONS {
        return Err(ForecastError::InsufficientHistory {
            observed,
            needed: MIN_OBSERVATIONS,
        });
    }
    let mut i = 0;
    while i < y.len() {
        if y[i].is_finite() {
            i += 1;
            continue;
        }
        // y[i - 1] is finite (ends are finite); find the next finite value.
        let j = (i..y.len())
            .find(|&j| y[j].is_finite())
            .unwrap_or(y.len() - 1);
        let (a, b) = (y[i - 1], y[j]);
        let span = (j - i + 1) as f64;
        for (k, slot) in y[i..j].iter_mut().enumerate() {
            *slot = a + (b - a) * (k + 1) as f64 / span;
        }
        i = j;
    }
    Ok((y, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_interpolates() {
        let nan = f64::NAN;
        let v = [nan, 1.0, 2.0, nan, nan, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, nan];
        let (y, dropped) = prepare(&v).unwrap();
        assert_eq!(dropped, 1);
        assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
    }

    #[test]
    fn too_short_is_an_error() {
        assert!(matches!(
            prepare(&[1.0, f64::NAN, 2.0]),
            Err(ForecastError::InsufficientHistory { observed: 2, .. })
        ));
        assert!(prepare(&[f64::NAN; 20]).is_err());
        assert!(prepare(&[]).is_err());
    }
}
