//! One policy's replica count meeting the recorded demand, tick by tick:
//! the pods it runs, the work they leave unserved, and the scores the
//! report gives it.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Pods, PolicyScore};
use crate::domain::ChangeTracker;

/// What every lane needs to serve one tick.
#[derive(Clone, Copy)]
pub(super) struct Tick {
    /// The instant.
    pub(super) t: DateTime<Utc>,
    /// Pod start-up delay.
    pub(super) startup: TimeDelta,
    /// Recorded demand, `None` in a gap.
    pub(super) demand: Option<f64>,
    /// Per-pod capacity.
    pub(super) target: f64,
    /// Whether unserved work carries over.
    pub(super) queue: bool,
    /// Whether the tick counts towards the score.
    pub(super) scored: bool,
    /// Tick length in seconds.
    pub(super) seconds: f64,
    /// The tick's share of the data step (at most 1): demand and capacity
    /// are per data step, and a queue receives and serves this share of
    /// them in one tick.
    pub(super) fraction: f64,
}

/// One policy's simulated Deployment and running score.
#[derive(Default)]
pub(super) struct Lane {
    /// Its pods.
    pub(super) pods: Pods,
    /// Work carried over (queue-like signals only).
    pub(super) backlog: f64,
    /// Seconds under-provisioned.
    under_s: f64,
    /// Pod-seconds paid for.
    pod_s: f64,
    /// Count changes.
    events: u32,
    /// Count changes that reversed the previous one within
    /// [`FLAP_WINDOW`](crate::domain::FLAP_WINDOW).
    flaps: u32,
    /// The previous change, which the next is judged against (also in the
    /// warm-up, so the first scored change is judged as `serve` would).
    changes: ChangeTracker,
    /// Largest count.
    max: u32,
    /// Unserved work at each scored tick, for the percentile.
    unserved: Vec<f64>,
}

impl Lane {
    /// What this lane's scaler observes: demand, plus its own backlog for a
    /// queue-like signal.
    pub(super) fn load(&self, demand: Option<f64>) -> Option<f64> {
        demand.map(|d| d + self.backlog)
    }

    /// Applies the count chosen at the tick, serves the tick and scores it.
    /// Returns the count and the ready pods.
    pub(super) fn serve(&mut self, count: u32, k: &Tick) -> (u32, u32) {
        let Tick {
            t,
            startup,
            demand,
            target,
            queue,
            scored,
            seconds: tick_s,
            fraction,
        } = *k;
        if let Some(change) = self.changes.record(t, self.pods.total(), count)
            && scored
        {
            self.events += 1;
            self.flaps += u32::from(change.flap);
        }
        self.pods.scale(count, t, startup);
        let ready = self.pods.ready(t);
        let (Some(d), Some(load)) = (demand, self.load(demand)) else {
            if scored {
                self.pod_s += f64::from(count) * tick_s;
            }
            return (count, ready);
        };
        let capacity = f64::from(ready) * target;
        let short = if queue {
            // A sample holds for every tick of its step: adding all of it at
            // each tick would count the step's work once per tick (20 times
            // at 15 s ticks of 5-minute data). The backlog grows by the
            // step's shortfall once per step, whatever the tick.
            (self.backlog + (d - capacity) * fraction).max(0.0)
        } else {
            (load - capacity).max(0.0)
        };
        if queue {
            self.backlog = short;
        }
        if scored {
            // A shortfall below a millionth of the load is float noise.
            if short > 1e-6 * load.max(1.0) {
                self.under_s += tick_s;
            }
            self.pod_s += f64::from(count) * tick_s;
            self.max = self.max.max(count);
            self.unserved.push(short);
        }
        (count, ready)
    }

    pub(super) fn score(&self) -> PolicyScore {
        PolicyScore {
            under_provisioned_minutes: self.under_s / 60.0,
            replica_hours: self.pod_s / 3600.0,
            scale_events: self.events,
            flaps: self.flaps,
            max_replicas: self.max,
            p95_backlog: percentile(&self.unserved, 0.95),
        }
    }
}

fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((s.len() as f64) * q).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_undone_within_five_minutes_is_a_flap() {
        let t0 = DateTime::from_timestamp(0, 0).unwrap();
        let tick = |m: i64| Tick {
            t: t0 + TimeDelta::minutes(m),
            startup: TimeDelta::minutes(2),
            demand: Some(100.0),
            target: 100.0,
            queue: false,
            scored: true,
            seconds: 60.0,
            fraction: 1.0,
        };
        let mut lane = Lane {
            pods: Pods::warm(2, t0),
            ..Lane::default()
        };
        // Up, then down a minute later: a flap. Down again: same direction.
        // Up eight minutes after the last change: not a flap; down a minute
        // after that: a flap. Holding is no change at all.
        for (m, n) in [(1, 5), (2, 3), (3, 2), (11, 4), (12, 3), (13, 3)] {
            lane.serve(n, &tick(m));
        }
        let score = lane.score();
        assert_eq!((score.scale_events, score.flaps), (5, 2));
    }

    #[test]
    fn a_queue_backlog_does_not_depend_on_the_tick() {
        // 5-minute samples: 200 messages per step, one pod serving 100 per
        // step. After two steps 200 are left over, in 1 tick per step or 20.
        let t0 = DateTime::from_timestamp(0, 0).unwrap();
        for per_step in [1, 20] {
            let mut lane = Lane {
                pods: Pods::warm(1, t0),
                ..Lane::default()
            };
            let seconds = 300.0 / f64::from(per_step);
            for i in 0..2 * per_step {
                let tick = Tick {
                    t: t0 + TimeDelta::milliseconds((f64::from(i) * seconds * 1000.0) as i64),
                    startup: TimeDelta::minutes(2),
                    demand: Some(200.0),
                    target: 100.0,
                    queue: true,
                    scored: true,
                    seconds,
                    fraction: 1.0 / f64::from(per_step),
                };
                lane.serve(1, &tick);
            }
            assert!(
                (lane.backlog - 200.0).abs() < 1e-9,
                "{per_step} ticks per step: backlog {}",
                lane.backlog
            );
            // Short the whole 10 minutes either way.
            assert!((lane.score().under_provisioned_minutes - 10.0).abs() < 1e-9);
        }
    }
}
