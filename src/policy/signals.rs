//! Detecting when scaling alone cannot keep up.

use chrono::{DateTime, TimeDelta, Utc};

use super::memory::ScaleUp;
use crate::domain::{MetricKind, Signal};

/// Signals whose response to more replicas is checked after a scale-up:
/// backlogs should shrink, latency should fall. Connection counts are
/// external load and do not respond to replicas, so they are not checked.
pub(super) fn responds_to_replicas(kind: MetricKind) -> bool {
    !matches!(kind, MetricKind::Connections)
}

/// Checks a scale-up `2 × leadTime` after it: the signal "did not respond"
/// when it is still above what the count in force is sized for and has not
/// fallen since the scale-up. The count in force, `in_force`, not the
/// scale-up's own: a ramp of several steps has grown past each step by the
/// time that step is checked, and a step taken ahead of a forecast rise
/// meets the rise it was taken for.
pub(super) fn not_keeping_up(
    su: &ScaleUp,
    now: DateTime<Utc>,
    in_force: u32,
    observed: impl Fn(MetricKind) -> Option<(f64, f64)>,
) -> Vec<Signal> {
    let sized_for = su.to.max(in_force);
    su.values
        .iter()
        .filter_map(|(kind, then)| {
            let (value_now, target) = observed(*kind)?;
            let still_short = if kind.is_additive() {
                value_now > f64::from(sized_for) * target
            } else {
                value_now > target
            };
            (still_short && value_now >= *then).then_some(Signal::NotKeepingUp {
                at: now,
                kind: *kind,
                scaled_up_at: su.at,
                from_replicas: su.from,
                to_replicas: su.to,
                value_then: *then,
                value_now,
            })
        })
        .collect()
}

/// Whether a scale-up is due for its response check.
pub(super) fn due(su: &ScaleUp, now: DateTime<Utc>, lead: TimeDelta) -> bool {
    now - su.at >= lead * 2
}
