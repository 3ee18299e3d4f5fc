use chrono::{DateTime, TimeDelta, Utc};

/// A regularly spaced series of observations.
///
/// Missing observations are `NaN`; every consumer must cope with them.
/// Regular spacing is an invariant that sources establish (by resampling), so
/// forecasting and policy code can index by step instead of searching.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Timestamp of `values[0]`.
    pub start: DateTime<Utc>,
    /// Spacing between consecutive values; always positive.
    pub step: TimeDelta,
    /// Observations, `NaN` where missing.
    pub values: Vec<f64>,
}

impl Series {
    /// Builds a series; `step` must be positive.
    pub fn new(start: DateTime<Utc>, step: TimeDelta, values: Vec<f64>) -> Self {
        debug_assert!(step > TimeDelta::zero(), "series step must be positive");
        Self {
            start,
            step,
            values,
        }
    }

    /// Number of slots, including missing ones.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the series has no slots at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Timestamp of slot `i`.
    pub fn timestamp(&self, i: usize) -> DateTime<Utc> {
        self.start + self.step * i32::try_from(i).unwrap_or(i32::MAX)
    }

    /// Timestamp one step past the last slot: where a forecast starts.
    pub fn end(&self) -> DateTime<Utc> {
        self.timestamp(self.values.len())
    }

    /// Number of finite observations.
    pub fn observed(&self) -> usize {
        self.values.iter().filter(|v| v.is_finite()).count()
    }

    /// The last finite observation and its timestamp.
    pub fn last_observed(&self) -> Option<(DateTime<Utc>, f64)> {
        self.values
            .iter()
            .enumerate()
            .rev()
            .find(|(_, v)| v.is_finite())
            .map(|(i, v)| (self.timestamp(i), *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_the_step() {
        let start = DateTime::from_timestamp(1_000, 0).unwrap();
        let s = Series::new(start, TimeDelta::seconds(60), vec![1.0, f64::NAN, 3.0]);
        assert_eq!(s.timestamp(2).timestamp(), 1_120);
        assert_eq!(s.end().timestamp(), 1_180);
        assert_eq!(s.observed(), 2);
        assert_eq!(s.last_observed().unwrap().1, 3.0);
    }
}
