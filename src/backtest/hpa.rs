//! A reactive Horizontal Pod Autoscaler, written independently of
//! foresight's policy so the comparison is not foresight against itself.
//!
//! It follows the controller's algorithm (`pkg/controller/podautoscaler`:
//! `GetExternalPerPodMetricReplicas`, `stabilizeRecommendationWithBehaviors`,
//! `calculateScaleUpLimitWithScalingRules`,
//! `calculateScaleDownLimitWithBehaviors`) with the default `behavior`:
//! scale-up stabilisation 0 s and the larger of +100% and +4 pods per 15 s;
//! scale-down stabilisation 300 s and -100% per 15 s.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

/// The HPA's knobs, defaulting to Kubernetes' own.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaConfig {
    /// Per-pod target (`AverageValue`).
    pub target: f64,
    /// Usage ratios within this of 1 change nothing.
    pub tolerance: f64,
    /// Lower bound (KEDA's `minReplicaCount`).
    pub min_replicas: u32,
    /// Upper bound (KEDA's `maxReplicaCount`).
    pub max_replicas: u32,
    /// Scale-up policy: pods per period.
    pub up_pods: u32,
    /// Scale-up policy: percent per period.
    pub up_percent: u32,
    /// Period of both scale-up policies.
    pub up_period: TimeDelta,
    /// Scale-up stabilisation window (the lowest recommendation in it wins).
    pub up_window: TimeDelta,
    /// Scale-down stabilisation window (the highest recommendation wins).
    pub down_window: TimeDelta,
    /// Scale-down policy: percent per period.
    pub down_percent: u32,
    /// Period of the scale-down policy.
    pub down_period: TimeDelta,
}

impl HpaConfig {
    /// Kubernetes' default behaviour for an `AverageValue` target.
    pub fn kubernetes_default(target: f64, min_replicas: u32, max_replicas: u32) -> Self {
        Self {
            target,
            tolerance: 0.1,
            min_replicas,
            max_replicas,
            up_pods: 4,
            up_percent: 100,
            up_period: TimeDelta::seconds(15),
            up_window: TimeDelta::zero(),
            down_window: TimeDelta::seconds(300),
            down_percent: 100,
            down_period: TimeDelta::seconds(15),
        }
    }
}

/// The emulated controller's memory.
#[derive(Debug, Clone)]
pub struct Hpa {
    /// Its configuration.
    config: HpaConfig,
    /// Scale target's replica count; `None` before the first sync.
    current: Option<u32>,
    /// Recent recommendations, for the stabilisation windows.
    recommendations: VecDeque<(DateTime<Utc>, u32)>,
    /// Recent replica changes, for the rate policies.
    events: VecDeque<(DateTime<Utc>, i64)>,
}

impl Hpa {
    /// A controller that has not synced yet.
    pub fn new(config: HpaConfig) -> Self {
        Self {
            config,
            current: None,
            recommendations: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// One sync at `now` with the metric `value` (`None`: the metric is
    /// unavailable and the controller leaves the scale alone). Returns the
    /// replica count it sets.
    pub fn sync(&mut self, value: Option<f64>, now: DateTime<Utc>) -> u32 {
        let c = &self.config;
        let Some(value) = value else {
            return self.current.unwrap_or(c.min_replicas);
        };
        let raw = ((value / c.target).ceil().max(0.0)).min(f64::from(u32::MAX)) as u32;
        let Some(current) = self.current else {
            // The first sync adopts the requirement, as a Deployment created at
            // that size would have.
            let first = raw.clamp(c.min_replicas, c.max_replicas);
            self.current = Some(first);
            self.recommendations.push_back((now, first));
            return first;
        };
        let desired = if current > 0 {
            let ratio = value / (c.target * f64::from(current));
            if (ratio - 1.0).abs() <= c.tolerance {
                current
            } else {
                raw
            }
        } else {
            raw
        };

        // Stabilisation: the lowest recommendation of the up window and the
        // highest of the down window bound the change, the new one included.
        let longest = c.up_window.max(c.down_window);
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now - *t > longest)
        {
            self.recommendations.pop_front();
        }
        let (mut up_rec, mut down_rec) = (desired, desired);
        for (t, r) in &self.recommendations {
            if now - *t < c.up_window {
                up_rec = up_rec.min(*r);
            }
            if now - *t < c.down_window {
                down_rec = down_rec.max(*r);
            }
        }
        self.recommendations.push_back((now, desired));
        let stabilized = current.max(up_rec).min(down_rec);

        // Rate policies relative to the count at the start of each period.
        let period = c.up_period.max(c.down_period);
        while self.events.front().is_some_and(|(t, _)| now - *t >= period) {
            self.events.pop_front();
        }
        let moved = |p: TimeDelta, up: bool| -> i64 {
            self.events
                .iter()
                .filter(|(t, d)| now - *t < p && (*d > 0) == up)
                .map(|(_, d)| d.abs())
                .sum()
        };
        let cur = i64::from(current);
        let next = if stabilized > current {
            let start = cur - moved(c.up_period, true);
            let by_pods = start + i64::from(c.up_pods);
            let by_percent = (start as f64 * (1.0 + f64::from(c.up_percent) / 100.0)).ceil() as i64;
            let limit = by_pods.max(by_percent).min(i64::from(c.max_replicas));
            i64::from(stabilized).min(limit)
        } else if stabilized < current {
            let start = cur + moved(c.down_period, false);
            let limit = (start as f64 * (1.0 - f64::from(c.down_percent) / 100.0)).ceil() as i64;
            i64::from(stabilized).max(limit.max(i64::from(c.min_replicas)))
        } else {
            cur
        };
        let next = u32::try_from(next.clamp(
            i64::from(c.min_replicas),
            i64::from(c.max_replicas.max(c.min_replicas)),
        ))
        .unwrap_or(c.min_replicas);
        if next != current {
            self.events.push_back((now, i64::from(next) - cur));
        }
        self.current = Some(next);
        next
    }
}

/// What the HPA does to a count it is handed by a replica-authority scaler
/// (target 1 per pod, permissive `behavior`): only its tolerance remains.
pub fn downstream_tolerance(requested: u32, current: u32, tolerance: f64) -> u32 {
    if current > 0 && (f64::from(requested) / f64::from(current) - 1.0).abs() <= tolerance {
        current
    } else {
        requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn hpa() -> Hpa {
        Hpa::new(HpaConfig::kubernetes_default(10.0, 1, 100))
    }

    #[test]
    fn tolerance_keeps_the_count() {
        let mut h = hpa();
        assert_eq!(h.sync(Some(100.0), at(0)), 10);
        // 109 / (10 * 10) = 1.09: within 10%.
        assert_eq!(h.sync(Some(109.0), at(15)), 10);
        assert_eq!(h.sync(Some(111.0), at(30)), 12);
    }

    #[test]
    fn scale_up_is_limited_to_double_or_four_pods_per_period() {
        let mut h = hpa();
        assert_eq!(h.sync(Some(10.0), at(0)), 1);
        // Wants 50: max(1 + 4, 2 * 1) = 5.
        assert_eq!(h.sync(Some(500.0), at(15)), 5);
        // A new period: max(5 + 4, 10) = 10.
        assert_eq!(h.sync(Some(500.0), at(30)), 10);
        // Within the same period nothing more.
        assert_eq!(h.sync(Some(500.0), at(40)), 10);
        assert_eq!(h.sync(Some(500.0), at(45)), 20);
    }

    #[test]
    fn scale_down_waits_for_the_window_then_drops_at_once() {
        let mut h = hpa();
        assert_eq!(h.sync(Some(200.0), at(0)), 20);
        for s in (15..300).step_by(15) {
            assert_eq!(h.sync(Some(50.0), at(s)), 20, "at {s}");
        }
        // The 20 recommendation at t=0 leaves the 300 s window.
        assert_eq!(h.sync(Some(50.0), at(300)), 5);
    }

    #[test]
    fn missing_metrics_hold_and_bounds_apply() {
        let mut h = Hpa::new(HpaConfig::kubernetes_default(10.0, 2, 8));
        assert_eq!(h.sync(Some(0.0), at(0)), 2);
        assert_eq!(h.sync(None, at(15)), 2);
        assert_eq!(h.sync(Some(1e6), at(30)), 6);
        assert_eq!(h.sync(Some(1e6), at(45)), 8);
    }

    #[test]
    fn downstream_tolerance_swallows_small_steps() {
        assert_eq!(downstream_tolerance(105, 100, 0.1), 100);
        // Like the HPA controller, the comparison is in f64: 11/10 - 1 is
        // 0.10000000000000009, just outside a 0.1 tolerance.
        assert_eq!(downstream_tolerance(11, 10, 0.1), 11);
        assert_eq!(downstream_tolerance(12, 10, 0.1), 12);
        assert_eq!(downstream_tolerance(3, 0, 0.1), 3);
        assert_eq!(downstream_tolerance(9, 10, 0.1), 10);
        assert_eq!(downstream_tolerance(9, 10, 0.0), 9);
    }
}
