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
/// when it is still above what the new count is sized for and has not
/// fallen since the scale-up.
pub(super) fn not_keeping_up(
    su: &ScaleUp,
    now: DateTime<Utc>,
    observed: impl Fn(MetricKind) -> Option<(f64, f64)>,
) -> Vec<Signal> {
    su.values
        .iter()
        .filter_map(|(kind, then)| {
            let (value_now, target) = observed(*kind)?;
            let still_short = if kind.is_additive() {
                value_now > f64::from(su.to) * target
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
