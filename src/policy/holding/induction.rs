//! The backward induction's arithmetic, in levels of need and count: one
//! slot's decisions for every state, the expected value after a sample
//! lands (a matrix product), and which steps a downstream HPA with a
//! tolerance applies. No model and no time: [`Plan::new`](super::Plan::new)
//! feeds it.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use super::PlanError;

/// Whether the downstream HPA applies a change from `from` to `to` pods,
/// compared in f64 exactly as it does (11 / 10 − 1 is just above 0.1).
pub(super) fn applied(from: usize, to: usize, tolerance: f64) -> bool {
    from == to || ((to + 1) as f64 / (from + 1) as f64 - 1.0).abs() > tolerance
}

/// Direction of the last change: none, up or down (the table's last axis).
pub(super) const NONE: usize = 0;
pub(super) const UP: usize = 1;
pub(super) const DOWN: usize = 2;

pub(super) fn direction(from: usize, to: usize) -> usize {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => UP,
        std::cmp::Ordering::Less => DOWN,
        std::cmp::Ordering::Equal => NONE,
    }
}

/// `out = p × next` for the backward induction: `p` holds the next need's
/// distribution for some rows of (need now, tercile before), row-major with
/// `n` columns (needs); `next` the value at landing for every next need, `n`
/// rows of `3m` (count, direction) every `9m` (the rows of one tercile
/// before); `out` the expected values, `3m` per row.
pub(super) fn product(
    p: &[f64],
    next: &[f64],
    out: &mut [f64],
    n: usize,
    m: usize,
) -> Result<(), PlanError> {
    let rows = p.len() / n.max(1);
    let shape = |e: ndarray::ShapeError| PlanError::Shape(e.to_string());
    let p = ArrayView2::from_shape((rows, n).strides((n, 1)), p).map_err(shape)?;
    let next = ArrayView2::from_shape((n, 3 * m).strides((9 * m, 1)), next).map_err(shape)?;
    let mut out =
        ArrayViewMut2::from_shape((rows, 3 * m).strides((3 * m, 1)), out).map_err(shape)?;
    general_mat_mul(1.0, &p, &next, 0.0, &mut out);
    Ok(())
}

/// The terms of a decision's cost besides the value after it, in
/// pod-minutes: `unit` minutes of the count asked for, `short_now` if the
/// need is above the lower of it and the count in force (what is ready
/// now), `short_later` if it is above the count asked for, and `flap` for a
/// reversal of the last change.
pub(super) struct Costs {
    /// Minutes until the next decision.
    pub(super) unit: f64,
    /// Replicas per level.
    pub(super) per_level: f64,
    /// Price of being short until a rise is ready.
    pub(super) short_now: f64,
    /// Price of being short for the rest of the period.
    pub(super) short_later: f64,
    /// Price of a flap.
    pub(super) flap: f64,
    /// Counts below the need are barred ([`PlanSpec::serve_need`](super::PlanSpec::serve_need)).
    pub(super) serve_need: bool,
}

/// The decision for every state of one slot against `values` (the
/// expected value after it, by (need, tercile before, count, direction),
/// `n` needs and as many counts as `reach` covers):
/// the count with the least cost among those the downstream HPA applies,
/// the lowest of equal ones (`tests::decisions_are_the_argmin_over_every_count`).
///
/// A rise from `p` costs the same for every `p` below it but for the
/// short-now and flap terms, which depend on `p` and the direction only, so
/// the least rise from `p` is the least of a suffix plus those terms; a drop
/// likewise a prefix plus the flap. That makes a slot O(n²) instead of an
/// O(n³) scan, with one running minimum each way. Adding a term after the
/// minimum rounds differently from adding it to every candidate, so a
/// decision may differ from a term-by-term scan between two counts whose
/// costs agree to the last bits; with whole-number costs it is the scan's.
pub(super) fn decisions(values: &[f64], k: &Costs, reach: &Reach, needs: usize) -> Vec<u8> {
    let n = reach.up_from.len();
    let mut out = vec![0u8; needs * 3 * n * 3];
    let unit: Vec<f64> = (0..n)
        .map(|c| k.unit * ((c + 1) as f64 * k.per_level))
        .collect();
    let add = |on: bool, price: f64| if on { price } else { 0.0 };
    let short = k.short_now + k.short_later;
    let barred = |s: usize, c: usize| add(k.serve_need && c < s, f64::INFINITY);
    // The least cost, and its lowest count, of a rise to each count or
    // above, before its short-now and flap terms; of a drop to each count
    // or below, before its flap term.
    let mut rise = vec![(0.0, 0usize); n];
    let mut drop = vec![(0.0, 0usize); n];
    for s in 0..needs {
        for t in 0..3 {
            let row = &values[(s * 3 + t) * n * 3..][..n * 3];
            let mut best = (f64::INFINITY, n);
            for c in (0..n).rev() {
                let v = unit[c] + add(s > c, k.short_later) + row[c * 3 + UP] + barred(s, c);
                // Equal costs go to the lower count, as a scan upwards.
                if v <= best.0 {
                    best = (v, c);
                }
                rise[c] = best;
            }
            let mut best = (f64::INFINITY, n);
            for c in 0..n {
                let v = unit[c] + add(s > c, short) + row[c * 3 + DOWN] + barred(s, c);
                if v < best.0 {
                    best = (v, c);
                }
                drop[c] = best;
            }
            for p in 0..n {
                let stay = unit[p] + add(s > p, short) + row[p * 3 + NONE] + barred(s, p);
                let below = reach.down_to[p].map(|x| drop[x]);
                let above = reach.up_from.get(p).filter(|x| **x < n).map(|x| rise[*x]);
                let short_now = add(s > p, k.short_now);
                for dir in [NONE, UP, DOWN] {
                    let mut best = (f64::INFINITY, p);
                    // A barred drop costs infinity and is never taken.
                    if let Some((v, c)) = below {
                        let v = v + add(dir == UP, k.flap);
                        if v < best.0 {
                            best = (v, c);
                        }
                    }
                    if stay < best.0 {
                        best = (stay, p);
                    }
                    if let Some((v, c)) = above {
                        let v = v + short_now + add(dir == DOWN, k.flap);
                        if v < best.0 {
                            best = (v, c);
                        }
                    }
                    // n ≤ MAX_COUNTS = 255.
                    out[((s * 3 + t) * n + p) * 3 + dir] = best.1 as u8;
                }
            }
        }
    }
    out
}

/// Levels of count a plan holds: at least the `n` modelled needs, and as
/// many more as it takes for a count below the top need to rise past it
/// through a downstream HPA that ignores changes within `tolerance`, but
/// not above `bound` (the levels `maxReplicaCount` allows) nor
/// [`MAX_COUNTS`]. Without a tolerance that is `n`.
pub(super) fn counts_above(n: usize, bound: usize, tolerance: f64) -> usize {
    let top = bound.clamp(n, MAX_COUNTS.max(n));
    (0..n.saturating_sub(1))
        .filter_map(|p| (n - 1..top).find(|c| applied(p, *c, tolerance)))
        .map(|c| c + 1)
        .max()
        .unwrap_or(n)
        .max(n)
}

/// The most levels of count a plan holds: decisions are kept as bytes.
const MAX_COUNTS: usize = 255;

/// The counts each count in force can move to: the downstream HPA applies
/// a rise to `up_from[p]` or more, and a drop to `down_to[p]` or less.
pub(super) struct Reach {
    /// The least count above `p` that is applied (`n` if none).
    up_from: Vec<usize>,
    /// The greatest count below `p` that is applied.
    down_to: Vec<Option<usize>>,
}

impl Reach {
    /// For each of the counts `0..n` in force, the nearest counts above and
    /// below it that a downstream HPA with `tolerance` applies.
    pub(super) fn new(n: usize, tolerance: f64) -> Self {
        Self {
            up_from: (0..n)
                .map(|p| (p + 1..n).find(|c| applied(p, *c, tolerance)).unwrap_or(n))
                .collect(),
            down_to: (0..n)
                .map(|p| (0..p).rev().find(|c| applied(p, *c, tolerance)))
                .collect(),
        }
    }
}

/// The least value over the new count, for each count in force `p` and
/// direction of the last change, into `out[p * 3 + dir]`: rising to any
/// count above `p` that `reach` allows (`up`, plus `up_extra[p]`, what a
/// rise costs while it is not yet ready), staying (`same`), or dropping to
/// any count below it allows (`down`); a reversal of the last change adds
/// `flap`.
#[allow(clippy::too_many_arguments)]
pub(super) fn best(
    up: &mut [f64],
    same: &[f64],
    down: &mut [f64],
    up_extra: &[f64],
    flap: f64,
    reach: &Reach,
    out: &mut [f64],
) {
    let n = up.len();
    // In place, so the plan's inner loop allocates nothing: up[c] becomes
    // the min over c' >= c, down[c] the min over c' <= c.
    for c in (0..n.saturating_sub(1)).rev() {
        up[c] = least(up[c], up[c + 1]);
    }
    for c in 1..n {
        down[c] = least(down[c], down[c - 1]);
    }
    for p in 0..n {
        let rise = up
            .get(reach.up_from[p])
            .map_or(f64::INFINITY, |u| u + up_extra[p]);
        let below = reach.down_to[p].map_or(f64::INFINITY, |c| down[c]);
        out[p * 3 + NONE] = least(least(rise, below), same[p]);
        out[p * 3 + UP] = least(least(rise, below + flap), same[p]);
        out[p * 3 + DOWN] = least(least(rise + flap, below), same[p]);
    }
}

/// The lesser of two costs. Costs are never NaN, so this skips the NaN
/// handling of `f64::min`, which doubles the latency of the running minima
/// that dominate [`best`].
fn least(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cost of moving to count `c` in `state`, summed term by term.
    fn cost(
        values: &[f64],
        k: &Costs,
        n: usize,
        state: (usize, usize, usize, usize),
        c: usize,
    ) -> f64 {
        let (s, t, p, dir) = state;
        let row = &values[(s * 3 + t) * n * 3..][..n * 3];
        let flap = (c < p && dir == UP) || (c > p && dir == DOWN);
        k.unit * ((c + 1) as f64 * k.per_level)
            + if s > c.min(p) { k.short_now } else { 0.0 }
            + if s > c { k.short_later } else { 0.0 }
            + if flap { k.flap } else { 0.0 }
            + row[c * 3 + direction(p, c)]
    }

    /// The decision as a plain argmin over every count the downstream HPA
    /// applies, in ascending order, and its cost.
    fn scan(
        values: &[f64],
        k: &Costs,
        tol: f64,
        n: usize,
        state: (usize, usize, usize, usize),
    ) -> (usize, f64) {
        let (s, p) = (state.0, state.2);
        let mut best = (0, f64::INFINITY);
        let allowed = |c: &usize| applied(p, *c, tol) && !(k.serve_need && *c < s);
        for c in (0..n).filter(allowed) {
            let v = cost(values, k, n, state, c);
            if v < best.1 {
                best = (c, v);
            }
        }
        best
    }

    #[test]
    fn the_matrix_product_is_the_sum_over_next_needs() {
        // Every shape the plan hands it: n needs, m counts (n or more), a
        // run of needs in one tercile (3 rows each), and each tercile's rows
        // of the values.
        for (n, m) in (1..=9usize).flat_map(|n| [(n, n), (n, n + 1), (n, n + 3)]) {
            let u: Vec<f64> = (0..9 * n * m)
                .map(|i| (i * 37 % 101) as f64 * 0.25)
                .collect();
            for run in 1..=n {
                let p: Vec<f64> = (0..3 * run * n)
                    .map(|i| (i * 13 % 17) as f64 / 17.0)
                    .collect();
                for tp in 0..3 {
                    let mut out = vec![f64::NAN; 3 * run * 3 * m];
                    product(&p, &u[tp * 3 * m..], &mut out, n, m).unwrap();
                    for r in 0..3 * run {
                        for j in 0..3 * m {
                            let want: f64 = (0..n)
                                .map(|b| p[r * n + b] * u[(b * 3 + tp) * 3 * m + j])
                                .sum();
                            let got = out[r * 3 * m + j];
                            assert!(
                                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                                "n {n}, m {m}, run {run}, tercile {tp}, ({r}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decisions_are_the_argmin_over_every_count() {
        // Small whole values and prices make ties common, so the lowest of
        // equal counts is checked as well as the least cost; fractional ones
        // check the order of the sums.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for trial in 0..300 {
            // Counts reach up to three levels above the needs, as a plan's
            // do to clear a downstream tolerance.
            let needs = 1 + next(12) as usize;
            let n = needs + next(4) as usize;
            let tol = [0.0, 0.1, 0.3][trial % 3];
            let whole = trial % 2 == 0;
            let mut num = |m: u64| {
                let x = next(m) as f64;
                if whole {
                    x
                } else {
                    x * 0.37 + next(1_000) as f64 * 1e-3
                }
            };
            let values: Vec<f64> = (0..needs * 3 * n * 3).map(|_| num(40)).collect();
            let k = Costs {
                unit: num(4),
                per_level: [1.0, 3.0][trial % 5 / 4],
                short_now: num(6),
                short_later: if trial % 4 < 2 { num(6) } else { 0.0 },
                flap: num(8),
                serve_need: trial % 3 == 1,
            };
            let reach = Reach::new(n, tol);
            let table = decisions(&values, &k, &reach, needs);
            assert_eq!(table.len(), needs * 3 * n * 3);
            for s in 0..needs {
                for t in 0..3 {
                    for p in 0..n {
                        for dir in [NONE, UP, DOWN] {
                            let state = (s, t, p, dir);
                            let got = table[((s * 3 + t) * n + p) * 3 + dir] as usize;
                            let (want, least) = scan(&values, &k, tol, n, state);
                            if least.is_infinite() {
                                // Every count is barred or out of reach (a
                                // plan's counts reach past its top need, these
                                // random ones need not): the count in force.
                                assert_eq!(got, p, "trial {trial}, n {n}, state {state:?}");
                                continue;
                            }
                            if whole {
                                // Whole-number sums are exact in any order.
                                assert_eq!(got, want, "trial {trial}, n {n}, state {state:?}");
                            } else {
                                let cost = cost(&values, &k, n, state, got);
                                assert!(
                                    applied(p, got, tol),
                                    "trial {trial}, n {n}, state {state:?}: {got} is not applied"
                                );
                                assert!(
                                    (cost - least).abs() <= 1e-12 * least.abs().max(1.0),
                                    "trial {trial}, n {n}, state {state:?}: {got} costs {cost}, {want} {least}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
