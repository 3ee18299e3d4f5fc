//! A model of the next sample's replica need, for the holding policy.
//!
//! A point forecast with an upper quantile says little about a series whose
//! samples jump from one period to the next: what a scaler holding a level
//! needs is the *distribution* of the next need given what it knows now. This
//! model conditions on the last need, the tercile of the need before it and
//! the time of day and week of the next sample, learnt as counts from the
//! training history. Sparse cells are shrunk towards coarser ones (the last
//! need and the time bin; the last need alone; the history's distribution of
//! sample-to-sample changes) by a few pseudo-samples each, because on a
//! fortnight of history most fine cells hold a handful of samples and an
//! unshrunk table is overconfident (`notebooks/goal_feasibility.ipynb`
//! measured it: the goal was out of reach at any price without shrinkage).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

use crate::domain::{Mode, ScalerSpec, Series};

/// Time bins: six 4-hour bins of the day, on weekdays and at weekends.
pub const TIME_BINS: usize = 12;
/// At most this many levels of need are modelled (the state space grows
/// with the square, the plan with the cube). Larger workloads are modelled
/// in levels of several replicas ([`NeedModel::unit`]).
pub const MAX_MODELLED: u32 = 64;
/// Pseudo-samples by which each cell is shrunk towards the coarser one.
const ALPHA: f64 = 5.0;
/// The share of needs at or below the highest modelled one: needs above it
/// are rare spikes served when they land, not planned for.
const MODELLED_QUANTILE: f64 = 0.995;

/// What a need model is learnt for: how values become replica needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeedSpec {
    /// Value one replica serves (`ceil(value / target)` replicas).
    pub target: f64,
    /// Needs are clamped to the replica bounds, as the policy's counts are.
    pub min_replicas: u32,
    /// See `min_replicas`.
    pub max_replicas: u32,
}

impl NeedSpec {
    /// The spec a ScaledObject's trainings learn a need model for: one in
    /// `mode: holding` only, for the signal whose per-replica target is
    /// `target`.
    pub fn of(spec: &ScalerSpec, target: f64) -> Option<Self> {
        (spec.mode == Mode::Holding).then_some(Self {
            target,
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
        })
    }

    /// The replica need of `value`, within the bounds (at least one).
    pub fn need(&self, value: f64) -> u32 {
        let lo = self.min_replicas.max(1);
        let hi = self.max_replicas.max(lo);
        let r = (value / self.target).ceil();
        if r.is_finite() && r > f64::from(lo) {
            r.min(f64::from(hi)) as u32
        } else {
            lo
        }
    }
}

/// P(next need | last need, tercile of the need before, time bin of the next
/// sample), learnt from one training window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NeedModel {
    /// Replicas per modelled level: 1 while the history's 99.5th percentile
    /// need is at most [`MAX_MODELLED`], else the fewest that bring it
    /// within. Level `l` stands for the needs `(l - 1) × unit + 1 ..= l ×
    /// unit`, so a count of `l × unit` is short exactly when the need's
    /// level is above `l`; a workload of 200 replicas is planned in steps of
    /// 4, finer than a downstream HPA's 10% tolerance, instead of served as
    /// each sample lands.
    pub unit: u32,
    /// The highest modelled level; levels are capped to it in the table.
    pub n_max: u32,
    /// Tercile edges of the (capped) levels in the history.
    pub edges: [f64; 2],
    /// Transitions the counts were learnt from.
    pub transitions: usize,
    /// The mean need over the history: the unit the policy's prices are
    /// given in, so one setting means the same at 5 replicas and at 50.
    pub mean_need: f64,
    /// The transitions seen, as (cell, count) sorted by cell, where a cell
    /// is an index into [`NeedTable`]'s `[bin][last - 1][tercile][next - 1]`.
    /// Kept sparse because a replay keeps every training's model: the dense
    /// table is `12 × 3 × n_max²` values (1.2 MB at 64 needs) against a few
    /// hundred distinct cells, and a 7-month holding backtest held 1.3 GB of
    /// them. [`NeedModel::table`] builds the table when a plan needs it.
    /// Not serialised: it is derived from the history.
    #[serde(skip)]
    counts: Vec<(u32, u32)>,
}

/// The probabilities of a [`NeedModel`], built from its counts by
/// [`NeedModel::table`]: dense, for the plan's backward induction, and
/// dropped once the plan is made.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedTable {
    /// See [`NeedModel::n_max`].
    n_max: u32,
    /// Probabilities, indexed `[bin][last - 1][tercile][next - 1]`; each row
    /// over `next` sums to one.
    probs: Vec<f64>,
}

/// The time bin of a sample at `t`: its 4-hour bin of the day, and whether
/// it falls on a Saturday or Sunday (UTC).
pub fn time_bin(t: DateTime<Utc>) -> usize {
    let weekend = t.weekday().number_from_monday() >= 6;
    (t.hour() / 4) as usize + if weekend { 6 } else { 0 }
}

/// The `q` quantile of sorted values, interpolated linearly between order
/// statistics (numpy's default, which the notebook uses).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + (next - sorted[i]) * frac,
        None => sorted[i],
    }
}

impl NeedModel {
    /// Learns the model from `series` (values, `NaN` where missing); `None`
    /// when it holds fewer than two consecutive transitions to learn from.
    pub fn fit(series: &Series, spec: &NeedSpec) -> Option<Self> {
        let needs: Vec<Option<u32>> = series
            .values
            .iter()
            .map(|v| v.is_finite().then(|| spec.need(*v)))
            .collect();
        let mut seen: Vec<f64> = needs.iter().flatten().map(|n| f64::from(*n)).collect();
        if seen.len() < 3 {
            return None;
        }
        seen.sort_by(f64::total_cmp);
        let mean_need = seen.iter().sum::<f64>() / seen.len() as f64;
        let top = quantile(&seen, MODELLED_QUANTILE);
        let unit = ((top / f64::from(MAX_MODELLED)).ceil() as u32).max(1);
        let level = |need: u32| need.div_ceil(unit);
        let needs: Vec<Option<u32>> = needs.into_iter().map(|n| n.map(level)).collect();
        let seen: Vec<f64> = seen.iter().map(|n| f64::from(level(*n as u32))).collect();
        // The level that holds the 99.5th-percentile need (in whole
        // replicas, as the notebook takes it at one replica per level).
        // Dividing the fractional quantile by the unit and rounding down
        // would model up to a level less, and serve a need at the quantile
        // only as it lands. `top <= 64 × unit`, so this is at most 64.
        let n_max = level(top as u32).clamp(1, MAX_MODELLED);
        let capped: Vec<f64> = seen.iter().map(|n| n.min(f64::from(n_max))).collect();
        let edges = [quantile(&capped, 1.0 / 3.0), quantile(&capped, 2.0 / 3.0)];
        let n = n_max as usize;
        let mut model = Self {
            unit,
            n_max,
            edges,
            transitions: 0,
            mean_need,
            counts: Vec::new(),
        };

        let mut cells = Vec::new();
        for k in 1..needs.len().saturating_sub(1) {
            let (Some(before), Some(a), Some(b)) = (needs[k - 1], needs[k], needs[k + 1]) else {
                continue;
            };
            let (a, b) = (a.min(n_max) as usize - 1, b.min(n_max) as usize - 1);
            let bin = time_bin(series.timestamp(k + 1));
            // At most 12 × 3 × 64² cells, well inside a u32.
            cells.push((((bin * n + a) * 3 + model.tercile(before)) * n + b) as u32);
            model.transitions += 1;
        }
        if model.transitions == 0 {
            return None;
        }
        cells.sort_unstable();
        for cell in cells {
            match model.counts.last_mut() {
                Some((c, k)) if *c == cell => *k += 1,
                _ => model.counts.push((cell, 1)),
            }
        }
        Some(model)
    }

    /// The dense probabilities the plan reads, shrunk as the module's
    /// documentation says. The counts are whole numbers, so the sums below
    /// are exact in any order and the table is the same at every call.
    pub fn table(&self) -> NeedTable {
        let n = self.n_max as usize;
        let mut fine = vec![0.0; TIME_BINS * n * 3 * n];
        let mut change = vec![0.0; 2 * n - 1];
        for &(cell, k) in &self.counts {
            let cell = cell as usize;
            let (a, b) = ((cell / (3 * n)) % n, cell % n);
            fine[cell] += f64::from(k);
            change[b + n - 1 - a] += f64::from(k);
        }
        let total = (self.transitions as f64).max(1.0);
        change.iter_mut().for_each(|c| *c /= total);

        // The coarsest level: the last need's own transitions, shrunk towards
        // the history's distribution of changes from it.
        let mut top = vec![0.0; n * n];
        let mut coarse = vec![0.0; TIME_BINS * n * n];
        for bin in 0..TIME_BINS {
            for a in 0..n {
                for t in 0..3 {
                    for b in 0..n {
                        let v = fine[((bin * n + a) * 3 + t) * n + b];
                        top[a * n + b] += v;
                        coarse[(bin * n + a) * n + b] += v;
                    }
                }
            }
        }
        for a in 0..n {
            let kernel: Vec<f64> = (0..n).map(|b| change[b + n - 1 - a]).collect();
            let ksum = kernel.iter().sum::<f64>().max(1e-12);
            shrink(&mut top[a * n..(a + 1) * n], |b| kernel[b] / ksum);
        }
        for bin in 0..TIME_BINS {
            for a in 0..n {
                let row = (bin * n + a) * n;
                shrink(&mut coarse[row..row + n], |b| top[a * n + b]);
                for t in 0..3 {
                    let at = ((bin * n + a) * 3 + t) * n;
                    shrink(&mut fine[at..at + n], |b| coarse[row + b]);
                }
            }
        }
        // A row that nothing reached (no change from this need was ever seen
        // in range) stays where it is rather than vanish from the plan.
        for (r, row) in fine.chunks_mut(n).enumerate() {
            if row.iter().sum::<f64>() <= 0.0 {
                row[(r / 3) % n] = 1.0;
            }
        }
        NeedTable {
            n_max: self.n_max,
            probs: fine,
        }
    }

    /// The level of a need of `need` replicas (see [`NeedModel::unit`]),
    /// not capped.
    pub fn level(&self, need: u32) -> u32 {
        need.div_ceil(self.unit.max(1))
    }

    /// The tercile (0, 1 or 2) of a level, by the history's edges.
    pub fn tercile(&self, level: u32) -> usize {
        let x = f64::from(level.min(self.n_max));
        self.edges.iter().filter(|e| **e < x).count().min(2)
    }

    /// Distinct cells the model stores: what it costs to keep.
    pub fn cells(&self) -> usize {
        self.counts.len()
    }
}

impl NeedTable {
    /// The distribution of the next need (index `next - 1`) for a sample in
    /// time bin `bin`, after a sample of need `last` (capped) whose
    /// predecessor was in tercile `tercile`.
    pub fn next(&self, bin: usize, last: u32, tercile: usize) -> &[f64] {
        let n = self.n_max as usize;
        let a = last.clamp(1, self.n_max) as usize - 1;
        let at = ((bin.min(TIME_BINS - 1) * n + a) * 3 + tercile.min(2)) * n;
        &self.probs[at..at + n]
    }

    /// The rows of [`NeedTable::next`] for time bin `bin` and the last
    /// needs `first..=last` (capped), every tercile of each, in one
    /// row-major block of `3 × (last − first + 1)` rows of `n_max`: the
    /// plan multiplies them by its values as one matrix.
    pub fn rows(&self, bin: usize, first: u32, last: u32) -> &[f64] {
        let n = self.n_max as usize;
        let row = |need: u32| {
            (bin.min(TIME_BINS - 1) * n + need.clamp(1, self.n_max) as usize - 1) * 3 * n
        };
        let (from, to) = (row(first), row(last) + 3 * n);
        &self.probs[from..to.max(from)]
    }
}

/// Shrinks the counts in `row` towards the distribution `prior` by
/// [`ALPHA`] pseudo-samples, in place, giving probabilities.
fn shrink(row: &mut [f64], prior: impl Fn(usize) -> f64) {
    let total = row.iter().sum::<f64>() + ALPHA;
    for (b, v) in row.iter_mut().enumerate() {
        *v = (*v + ALPHA * prior(b)) / total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn series(values: Vec<f64>) -> Series {
        // A Monday at midnight.
        let start = DateTime::from_timestamp(1_700_438_400, 0).unwrap();
        Series::new(start, TimeDelta::minutes(5), values)
    }

    /// Needs of one replica per 10, up to 100.
    fn ten_per_replica() -> NeedSpec {
        NeedSpec {
            target: 10.0,
            min_replicas: 1,
            max_replicas: 100,
        }
    }

    #[test]
    fn needs_are_clamped_to_the_bounds() {
        let s = NeedSpec {
            target: 10.0,
            min_replicas: 0,
            max_replicas: 5,
        };
        assert_eq!(
            [0.0, 1.0, 10.0, 10.5, 1e9, -3.0].map(|v| s.need(v)),
            [1, 1, 1, 2, 5, 1]
        );
    }

    #[test]
    fn time_bins_split_the_day_and_the_weekend() {
        let monday = DateTime::from_timestamp(1_700_438_400, 0).unwrap();
        assert_eq!(time_bin(monday), 0);
        assert_eq!(time_bin(monday + TimeDelta::hours(23)), 5);
        assert_eq!(time_bin(monday + TimeDelta::days(5)), 6);
        assert_eq!(
            time_bin(monday + TimeDelta::days(6) + TimeDelta::hours(9)),
            8
        );
    }

    #[test]
    fn rows_are_distributions_and_follow_the_history() {
        // Needs alternate 1, 3, 1, 3...: after a 1 comes a 3.
        let values = (0..2_000)
            .map(|i| if i % 2 == 0 { 5.0 } else { 25.0 })
            .collect();
        let spec = ten_per_replica();
        let m = NeedModel::fit(&series(values), &spec).unwrap();
        assert_eq!(m.n_max, 3);
        let table = m.table();
        for bin in 0..TIME_BINS {
            for last in 1..=3 {
                for t in 0..3 {
                    let row = table.next(bin, last, t);
                    assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{row:?}");
                }
            }
        }
        let after_one = table.next(0, 1, m.tercile(3));
        assert!(after_one[2] > 0.95, "{after_one:?}");
        let after_three = table.next(0, 3, m.tercile(1));
        assert!(after_three[0] > 0.95, "{after_three:?}");
    }

    #[test]
    fn a_model_keeps_its_transitions_not_the_dense_table() {
        // A week of 5-minute needs wandering over 1..=64: the dense table
        // would be 12 × 3 × 64² values, the model keeps one count per cell
        // seen.
        let values: Vec<f64> = (0..2_016)
            .map(|i| f64::from((i * 37 % 635) as u32) + 5.0)
            .collect();
        let spec = ten_per_replica();
        let m = NeedModel::fit(&series(values), &spec).unwrap();
        assert_eq!(m.n_max, 64);
        assert!(m.cells() <= m.transitions, "{} cells", m.cells());
        let dense = TIME_BINS * 3 * 64 * 64;
        assert!(m.cells() * 50 < dense, "{} cells of {dense}", m.cells());
        let table = m.table();
        assert_eq!(table, m.table(), "the table is a function of the counts");
        // Each stored cell lands where the table reads it: the row of the
        // most frequent transition puts most of its weight on its next need.
        let &(cell, k) = m.counts.iter().max_by_key(|(_, k)| *k).unwrap();
        let (cell, n) = (cell as usize, 64);
        let (bin, a, t, b) = (
            cell / (3 * n * n),
            (cell / (3 * n)) % n,
            (cell / n) % 3,
            cell % n,
        );
        assert!(k >= 5, "{k}");
        let row = table.next(bin, a as u32 + 1, t);
        let argmax = (0..n).max_by(|x, y| row[*x].total_cmp(&row[*y])).unwrap();
        assert_eq!(argmax, b, "{row:?}");
        assert!(row[b] > 0.5, "{row:?}");
    }

    #[test]
    fn large_needs_are_modelled_in_levels_of_several_replicas() {
        // Needs alternate 150 and 250 replicas: the 99.5th percentile is
        // 250, so levels of 4 replicas (250 / 64 rounded up), and 63 levels
        // modelled: the 63rd (249..=252 replicas) holds 250.
        let values = (0..2_000)
            .map(|i| if i % 2 == 0 { 1_500.0 } else { 2_500.0 })
            .collect();
        let spec = NeedSpec {
            target: 10.0,
            min_replicas: 1,
            max_replicas: 1_000,
        };
        let m = NeedModel::fit(&series(values), &spec).unwrap();
        assert_eq!((m.unit, m.n_max), (4, 63));
        assert_eq!((m.level(150), m.level(250)), (38, 63));
        assert_eq!((m.level(148), m.level(149)), (37, 38));
        assert!(
            (m.mean_need - 200.0).abs() < 1e-9,
            "prices stay in replicas"
        );
        // 250 is modelled in its own level, not capped to the one below.
        let table = m.table();
        let after_low = table.next(0, 38, m.tercile(63));
        assert!(after_low[62] > 0.95, "{after_low:?}");
        let after_high = table.next(0, 63, m.tercile(38));
        assert!(after_high[37] > 0.95, "{after_high:?}");
        // Up to 64 replicas, one level is one replica, as before levels.
        let small = NeedModel::fit(
            &series((0..2_000).map(|i| f64::from(i % 64 + 1) * 10.0).collect()),
            &spec,
        )
        .unwrap();
        assert_eq!((small.unit, small.n_max), (1, 64));
    }

    #[test]
    fn too_little_history_gives_no_model() {
        let spec = NeedSpec {
            target: 1.0,
            min_replicas: 1,
            max_replicas: 10,
        };
        assert!(NeedModel::fit(&series(vec![1.0, f64::NAN, 2.0, f64::NAN]), &spec).is_none());
    }
}
