//! Pods, start-up delay, demand between samples, and the oracle's schedule.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::Series;

/// The pods of one simulated Deployment.
///
/// Replicas requested at `t` become ready at `t + startup`. Scaling down
/// removes the newest pods first, as a ReplicaSet deletes not-ready and
/// younger pods before older ones, so a quick reversal cancels pods that
/// were still starting.
#[derive(Debug, Clone, Default)]
pub struct Pods {
    /// Ready time of every pod, oldest first (non-decreasing).
    ready_at: VecDeque<DateTime<Utc>>,
}

impl Pods {
    /// `n` pods that are already ready at `now` (the replay starts warm).
    pub fn warm(n: u32, now: DateTime<Utc>) -> Self {
        Self {
            ready_at: std::iter::repeat_n(now, n as usize).collect(),
        }
    }

    /// Scales to `n` pods at `now`.
    pub fn scale(&mut self, n: u32, now: DateTime<Utc>, startup: TimeDelta) {
        let n = n as usize;
        if n > self.ready_at.len() {
            let ready = now + startup;
            self.ready_at
                .extend(std::iter::repeat_n(ready, n - self.ready_at.len()));
        } else {
            self.ready_at.truncate(n);
        }
    }

    /// Pods that exist (ready or starting): what is paid for.
    pub fn total(&self) -> u32 {
        u32::try_from(self.ready_at.len()).unwrap_or(u32::MAX)
    }

    /// Pods ready at `now`: what serves load.
    pub fn ready(&self, now: DateTime<Utc>) -> u32 {
        let n = self.ready_at.partition_point(|t| *t <= now);
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Demand at `t`: the latest sample at or before `t`, which holds until the
/// next one, as a Prometheus instant query returns it. Interpolating towards
/// the next sample would let every policy see up to one data step into the
/// future. `None` for a missing sample or outside the data.
pub fn demand_at(s: &Series, t: DateTime<Utc>) -> Option<f64> {
    let step = s.step.num_milliseconds().max(1);
    let off = (t - s.start).num_milliseconds();
    if off < 0 {
        return None;
    }
    let i = usize::try_from(off / step).ok()?;
    s.values.get(i).copied().filter(|v| v.is_finite())
}

/// The oracle's pod count at each tick: the fewest pods such that, with the
/// start-up delay, ready capacity meets every tick's demand. A pod needed at
/// `s` must exist from `s - startup`, so the count at tick `k` is the largest
/// requirement over ticks `k..=k + lead` (a sliding-window maximum).
pub fn oracle_schedule(need: &[u32], lead_ticks: usize) -> Vec<u32> {
    let n = need.len();
    let mut out = vec![0; n];
    // Monotone deque of indices with decreasing need, over [k, k + lead].
    let mut q: VecDeque<usize> = VecDeque::new();
    let mut next = 0;
    for (k, slot) in out.iter_mut().enumerate() {
        let hi = (k + lead_ticks).min(n.saturating_sub(1));
        while next <= hi {
            while q.back().is_some_and(|&j| need[j] <= need[next]) {
                q.pop_back();
            }
            q.push_back(next);
            next += 1;
        }
        while q.front().is_some_and(|&j| j < k) {
            q.pop_front();
        }
        *slot = q.front().map_or(0, |&j| need[j]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn pods_become_ready_after_startup_and_newest_go_first() {
        let mut p = Pods::warm(2, at(0));
        p.scale(5, at(10), TimeDelta::seconds(120));
        assert_eq!((p.total(), p.ready(at(10))), (5, 2));
        assert_eq!(p.ready(at(129)), 2);
        assert_eq!(p.ready(at(130)), 5);
        // Scaling down cancels the starting pods first.
        let mut q = Pods::warm(2, at(0));
        q.scale(5, at(10), TimeDelta::seconds(120));
        q.scale(3, at(20), TimeDelta::seconds(120));
        assert_eq!((q.total(), q.ready(at(20))), (3, 2));
        assert_eq!(q.ready(at(130)), 3);
    }

    #[test]
    fn demand_holds_the_latest_sample_and_respects_gaps() {
        let s = Series::new(
            at(0),
            TimeDelta::seconds(60),
            vec![0.0, 60.0, f64::NAN, 10.0],
        );
        assert_eq!(demand_at(&s, at(0)), Some(0.0));
        // Between samples: the earlier one, never a value leaning on the next.
        assert_eq!(demand_at(&s, at(30)), Some(0.0));
        assert_eq!(demand_at(&s, at(59)), Some(0.0));
        assert_eq!(demand_at(&s, at(60)), Some(60.0));
        assert_eq!(demand_at(&s, at(90)), Some(60.0));
        assert_eq!(demand_at(&s, at(120)), None);
        assert_eq!(demand_at(&s, at(179)), None);
        assert_eq!(demand_at(&s, at(180)), Some(10.0));
        assert_eq!(demand_at(&s, at(239)), Some(10.0));
        assert_eq!(demand_at(&s, at(240)), None);
        assert_eq!(demand_at(&s, at(-1)), None);
    }

    #[test]
    fn oracle_starts_pods_ahead_and_drops_them_at_once() {
        // A pod started at step k is ready at k + lead, so the 5 needed at
        // step 3 is started at step 1 and not earlier.
        let need = [1, 1, 1, 5, 2, 2, 2, 1];
        assert_eq!(oracle_schedule(&need, 2), vec![1, 5, 5, 5, 2, 2, 2, 1]);
        assert_eq!(oracle_schedule(&need, 0), need.to_vec());
        assert!(oracle_schedule(&[], 3).is_empty());
    }
}
