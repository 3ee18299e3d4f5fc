use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// A forecast: point values and a prediction interval on a regular grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Timestamp of the first forecast value (one step after the history).
    pub start: DateTime<Utc>,
    /// Spacing of forecast values, equal to the history's step.
    #[serde(with = "crate::domain::scaler::serde_delta")]
    pub step: TimeDelta,
    /// Point forecast.
    pub point: Vec<f64>,
    /// Lower bound of the interval at `level`.
    pub lower: Vec<f64>,
    /// Upper bound of the interval at `level`.
    pub upper: Vec<f64>,
    /// Nominal coverage of `[lower, upper]`, e.g. 0.9.
    pub level: f64,
}

/// How the signal moves between two grid points of a forecast, and so how
/// the policy reads the forecast's bound inside its lead-time window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Between {
    /// A continuous signal moves from one grid point's value to the next:
    /// right for gauges sampled as often as the forecast's step is short.
    #[default]
    Linear,
    /// Each sample holds until the next one arrives, as an instant query
    /// returns the latest sample: right for a series sampled every few
    /// minutes, whose value changes only when a sample lands. Within the
    /// slot in force, demand is what was observed; the forecast only
    /// matters from the next grid point on, so capacity for it is bought
    /// when that point comes within the lead time and not earlier.
    Hold,
}

impl Between {
    /// The metadata spellings, in the order the README lists them.
    pub const NAMES: [&'static str; 2] = ["linear", "hold"];
}

/// How a forecast's error persists from one step to the next, so the policy
/// can correct the forecast by what it observes now: if demand runs 20%
/// above the forecast at this step, it will probably still run above it two
/// minutes later. Calibrated on the same validation windows as the interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    /// Share of the current error expected to remain one step later: the
    /// lag-1 autocorrelation of the validation errors, in (0, 1).
    pub phi: f64,
    /// Half-width of the anchored forecast's interval at the forecast's
    /// level, per step ahead (index 0 is one step ahead). The anchored
    /// forecast `h` steps ahead is `point + phi^h × (observed − point now)`.
    pub half_width: Vec<f64>,
}

impl Forecast {
    /// Timestamp of value `i`.
    pub fn timestamp(&self, i: usize) -> DateTime<Utc> {
        self.start + self.step * i32::try_from(i).unwrap_or(i32::MAX)
    }

    /// Timestamp one step past the last value: the forecast is blind after it.
    pub fn end(&self) -> DateTime<Utc> {
        self.timestamp(self.point.len())
    }

    /// The point forecast for the slot in force at `t` (the last grid point at
    /// or before `t`), matching how sources report the value at `t`.
    pub fn point_at(&self, t: DateTime<Utc>) -> Option<f64> {
        self.slot_at(t).map(|(_, p)| p)
    }

    /// The grid point in force at `t` and its point forecast.
    pub fn slot_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, f64)> {
        let i = self.index_at(t)?;
        self.point.get(i).map(|p| (self.timestamp(i), *p))
    }

    /// Index of the grid point in force at `t`; `None` before the forecast.
    fn index_at(&self, t: DateTime<Utc>) -> Option<usize> {
        let step = self.step.num_milliseconds().max(1);
        usize::try_from((t - self.start).num_milliseconds().div_euclid(step)).ok()
    }

    /// Timestamp of the last value; `None` for an empty forecast.
    pub fn last_timestamp(&self) -> Option<DateTime<Utc>> {
        self.point.len().checked_sub(1).map(|i| self.timestamp(i))
    }

    /// The first instant in `[from, end)` whose upper bound exceeds
    /// `threshold`, with the peak upper bound over that span.
    pub fn first_above(&self, from: DateTime<Utc>, threshold: f64) -> Option<(DateTime<Utc>, f64)> {
        let lo = self.index_at(from).unwrap_or(0);
        let tail = self.upper.get(lo..)?;
        let i = tail.iter().position(|v| *v > threshold)?;
        let peak = tail
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(f64::max)?;
        Some((self.timestamp(lo + i), peak))
    }

    /// The largest upper bound over `[from, to]`, reading the bound
    /// between grid points as `between` says.
    ///
    /// The forecast gives the signal's value at each grid point; in between,
    /// a continuous signal moves from one to the next (`Linear`), so the
    /// maximum over the window is at one of its ends (interpolated) or at a
    /// grid point inside it. Taking the whole next slot instead would ask for
    /// a full step's worth of the coming rise early: with 30-minute data,
    /// capacity for the next half hour for the whole of this one. Under
    /// `Hold` the value at any instant is its slot's, so the maximum is over
    /// the slots the window touches. Returns `None` when the forecast does
    /// not reach `to`.
    pub fn window_max_upper(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        between: Between,
    ) -> Option<f64> {
        self.window_max_by(from, to, between, |i| self.upper.get(i).copied())
    }

    /// Like [`Self::window_max_upper`] with the slot in force at `from`
    /// replaced by `observed`: under `Hold` that slot's sample has arrived
    /// and holds until the next, so the band only covers the slots still to
    /// come. `None` when `observed` is not finite, `from` is before the
    /// forecast, or the window reaches past it.
    pub fn observed_window_max(
        &self,
        observed: f64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        between: Between,
    ) -> Option<f64> {
        let i0 = self.index_at(from).filter(|_| observed.is_finite())?;
        self.window_max_by(from, to, between, |i| {
            if i == i0 {
                return Some(observed);
            }
            self.upper.get(i).copied()
        })
    }

    /// Like [`Self::window_max_upper`], for the forecast corrected by the
    /// value `observed` at `from`: the slot in force at `from` is the
    /// observation itself, and `h` slots later the bound is
    /// `point + phi^h × (observed − point at from) + half_width[h − 1]`.
    /// `None` when `from` is before the forecast, the window reaches past
    /// the anchor's calibrated steps, or past the forecast.
    pub fn anchored_window_max(
        &self,
        anchor: &Anchor,
        observed: f64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        between: Between,
    ) -> Option<f64> {
        let i0 = self.index_at(from).filter(|_| observed.is_finite())?;
        let now = *self.point.get(i0)?;
        let step = self.step.num_milliseconds().max(1);
        // The furthest grid point the window's end leans on.
        let last = usize::try_from((to - self.start).num_milliseconds().max(0) + step - 1).ok()?
            / usize::try_from(step).ok()?;
        if last.saturating_sub(i0) > anchor.half_width.len() {
            return None;
        }
        self.window_max_by(from, to, between, |i| {
            if i == i0 {
                return Some(observed);
            }
            let (center, w) = self.anchored_at(anchor, observed - now, i0, i)?;
            Some(center + w)
        })
    }

    /// The anchored forecast for grid point `i`, seen from grid point `i0`
    /// where the observation ran `residual` above the point forecast: its
    /// center `point[i] + phi^h × residual` and half-width, `h = i − i0`
    /// steps ahead. `None` for `h = 0` (that slot is observed) or beyond
    /// the calibrated steps.
    pub fn anchored_at(
        &self,
        anchor: &Anchor,
        residual: f64,
        i0: usize,
        i: usize,
    ) -> Option<(f64, f64)> {
        let h = i.checked_sub(i0).filter(|h| *h > 0)?;
        let w = *anchor.half_width.get(h - 1)?;
        let decay = anchor.phi.powi(i32::try_from(h).ok()?);
        Some((self.point.get(i)? + decay * residual, w))
    }

    /// The maximum over `[from, to]` of the curve through `value(i)` at grid
    /// point `i`, linear or held in between: at the ends or at a grid point
    /// inside.
    fn window_max_by(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        between: Between,
        value: impl Fn(usize) -> Option<f64>,
    ) -> Option<f64> {
        if self.upper.is_empty() || to > self.timestamp(self.upper.len() - 1) || from > to {
            return None;
        }
        let step = self.step.num_milliseconds().max(1);
        let off = |t: DateTime<Utc>| (t - self.start).num_milliseconds().max(0);
        let at = |t: DateTime<Utc>| {
            let o = off(t);
            let i = usize::try_from(o.div_euclid(step)).ok()?;
            let a = value(i)?;
            let frac = o.rem_euclid(step) as f64 / step as f64;
            if frac == 0.0 || between == Between::Hold {
                return Some(a);
            }
            let b = value(i + 1)?;
            Some(a + (b - a) * frac)
        };
        // Grid points strictly inside the window.
        let first = usize::try_from(off(from).div_euclid(step) + 1).unwrap_or(usize::MAX);
        let last = usize::try_from((off(to) - 1).max(0).div_euclid(step)).unwrap_or(0);
        let inside = (first..=last.min(self.upper.len() - 1)).filter_map(&value);
        [at(from), at(to)]
            .into_iter()
            .flatten()
            .chain(inside)
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Between = Between::Linear;
    const H: Between = Between::Hold;

    fn fc() -> Forecast {
        Forecast {
            start: DateTime::from_timestamp(600, 0).unwrap(),
            step: TimeDelta::seconds(60),
            point: vec![1.0, 2.0, 3.0, 4.0],
            lower: vec![0.0, 1.0, 2.0, 3.0],
            upper: vec![2.0, 9.0, 4.0, 5.0],
            level: 0.9,
        }
    }

    /// Half the error persists per step; half-widths 1 and 2.
    fn anchor() -> Anchor {
        Anchor {
            phi: 0.5,
            half_width: vec![1.0, 2.0],
        }
    }

    #[test]
    fn window_max_reads_the_bound_as_linear_between_grid_points() {
        let f = fc();
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        // Halfway from slot 0 (2 at 600) to slot 1 (9 at 660): 5.5, not 9.
        assert_eq!(f.window_max_upper(t(600), t(630), L), Some(5.5));
        // A grid point inside the window counts in full.
        assert_eq!(f.window_max_upper(t(630), t(690), L), Some(9.0));
        assert_eq!(f.window_max_upper(t(660), t(660), L), Some(9.0));
        assert_eq!(f.window_max_upper(t(720), t(780), L), Some(5.0));
        // Before the first grid point the bound is the first one's.
        assert_eq!(f.window_max_upper(t(500), t(600), L), Some(2.0));
        // Past the end the forecast is blind.
        assert_eq!(f.window_max_upper(t(720), t(900), L), None);
        assert_eq!(f.window_max_upper(t(700), t(690), L), None);
        // Clipped to the last value, as the peak ahead is.
        assert_eq!(f.last_timestamp(), Some(t(780)));
        assert_eq!(f.window_max_upper(t(720), t(780), L), Some(5.0));
    }

    #[test]
    fn anchored_window_carries_the_current_error_forward() {
        let f = fc();
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let a = anchor();
        // At 600 the forecast says 1 and 5 is observed (r = 4). One step on,
        // 2 + 0.5 × 4 + 1 = 5; two steps on, 3 + 0.25 × 4 + 2 = 6.
        assert_eq!(f.anchored_window_max(&a, 5.0, t(600), t(660), L), Some(5.0));
        assert_eq!(f.anchored_window_max(&a, 5.0, t(600), t(720), L), Some(6.0));
        // Halfway to the next step: between the observation and 5.
        assert_eq!(f.anchored_window_max(&a, 5.0, t(600), t(630), L), Some(5.0));
        assert_eq!(f.anchored_window_max(&a, 1.0, t(600), t(630), L), Some(2.0));
        // Demand under the forecast lowers the bound below the plain one (9).
        assert_eq!(f.anchored_window_max(&a, 0.0, t(600), t(660), L), Some(2.5));
        // Beyond the calibrated steps, before the forecast, or no value: none.
        assert_eq!(f.anchored_window_max(&a, 5.0, t(600), t(780), L), None);
        assert_eq!(f.anchored_window_max(&a, 5.0, t(599), t(660), L), None);
        assert_eq!(f.anchored_window_max(&a, f64::NAN, t(600), t(660), L), None);
    }

    #[test]
    fn held_reading_takes_each_slot_whole_and_the_observed_one_as_seen() {
        let f = fc();
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        // Held: until 660 the value is slot 0's (2), not part-way to 9.
        assert_eq!(f.window_max_upper(t(600), t(630), H), Some(2.0));
        assert_eq!(f.window_max_upper(t(600), t(659), H), Some(2.0));
        assert_eq!(f.window_max_upper(t(630), t(660), H), Some(9.0));
        assert_eq!(f.window_max_upper(t(700), t(750), H), Some(9.0));
        assert_eq!(f.window_max_upper(t(720), t(900), H), None);
        assert_eq!(f.window_max_upper(t(720), t(780), H), Some(5.0));
        // With the slot in force observed: the observation until the next
        // grid point enters the window, then the larger of the two.
        assert_eq!(f.observed_window_max(3.0, t(600), t(650), H), Some(3.0));
        assert_eq!(f.observed_window_max(3.0, t(630), t(660), H), Some(9.0));
        assert_eq!(f.observed_window_max(3.0, t(660), t(700), H), Some(3.0));
        assert_eq!(f.observed_window_max(6.0, t(680), t(720), H), Some(6.0));
        // Linear leans towards the next point: 3 + (9 − 3) × 50/60 = 8.
        assert_eq!(f.observed_window_max(3.0, t(600), t(650), L), Some(8.0));
        assert_eq!(f.observed_window_max(3.0, t(599), t(650), H), None);
        assert_eq!(f.observed_window_max(f64::NAN, t(600), t(650), H), None);
        // The anchored forecast held: the observation, then 5 at 660.
        let a = anchor();
        assert_eq!(f.anchored_window_max(&a, 1.0, t(600), t(630), H), Some(1.0));
        assert_eq!(f.anchored_window_max(&a, 1.0, t(600), t(660), H), Some(3.0));
    }

    #[test]
    fn point_at_and_first_above() {
        let f = fc();
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(f.point_at(t(599)), None);
        assert_eq!(f.point_at(t(659)), Some(1.0));
        assert_eq!(f.point_at(t(660)), Some(2.0));
        assert_eq!(f.point_at(t(900)), None);
        assert_eq!(f.first_above(t(600), 4.5), Some((t(660), 9.0)));
        assert_eq!(f.first_above(t(720), 4.5), Some((t(780), 5.0)));
        assert_eq!(f.first_above(t(600), 10.0), None);
    }
}
