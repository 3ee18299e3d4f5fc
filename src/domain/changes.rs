//! Changes of a replica count, and flaps among them. The backtest scores
//! them and `serve` counts them on `/metrics`, by this one rule, so a flap
//! on a dashboard is the flap a backtest promised.

use chrono::{DateTime, TimeDelta, Utc};

/// A change that undoes the previous one sooner than this is a flap: the
/// HPA's default scale-down stabilisation, the span it exists to damp.
pub const FLAP_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// One change of the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Whether it went up.
    pub up: bool,
    /// Whether it reversed the previous change less than [`FLAP_WINDOW`]
    /// after it: a pod started or stopped for nothing.
    pub flap: bool,
}

/// What the next change is judged against: the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeTracker {
    /// When the last change happened, and whether it went up.
    last: Option<(DateTime<Utc>, bool)>,
}

impl ChangeTracker {
    /// The count went from `before` to `after` at `t`: the change, if it
    /// is one. A slow walk down in single pods is many changes and no flap.
    pub fn record(&mut self, t: DateTime<Utc>, before: u32, after: u32) -> Option<Change> {
        if before == after {
            return None;
        }
        let up = after > before;
        let flap = self
            .last
            .is_some_and(|(at, was_up)| was_up != up && t - at < FLAP_WINDOW);
        self.last = Some((t, up));
        Some(Change { up, flap })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversal_within_the_window_is_a_flap_and_nothing_else_is() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |m: i64| t0 + TimeDelta::minutes(m);
        let mut c = ChangeTracker::default();
        let change = |up, flap| Some(Change { up, flap });
        assert_eq!(c.record(at(0), 3, 3), None);
        assert_eq!(c.record(at(0), 3, 5), change(true, false));
        // Further up: the same direction, never a flap.
        assert_eq!(c.record(at(1), 5, 6), change(true, false));
        // Down 4 minutes 59 later: a flap; at exactly 5 it would not be.
        assert_eq!(
            c.record(at(1) + FLAP_WINDOW - TimeDelta::seconds(1), 6, 4),
            change(false, true)
        );
        assert_eq!(c.record(at(20), 4, 7), change(true, false));
        assert_eq!(c.record(at(25), 7, 6), change(false, false));
    }
}
