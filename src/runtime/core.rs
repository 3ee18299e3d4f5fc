//! What the adapters (`grpc`, `http`) need from the core, as a trait, so they
//! stay thin and testable against other implementations.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use super::Telemetry;
use crate::config::MetadataError;
use crate::domain::{Decision, ScaledObjectKey, Signal};
use crate::sources::SourceError;

/// The one metric foresight reports per ScaledObject. Its value is the
/// desired replica count and its target is 1, so the HPA's AverageValue
/// arithmetic, `ceil(value / target)`, yields exactly that count.
pub const METRIC_NAME: &str = "foresight-desired-replicas";

/// The metric spec served to KEDA.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTarget {
    /// Metric name KEDA will ask for in `GetMetrics`.
    pub name: String,
    /// Per-replica target value.
    pub target: f64,
}

/// One foresight trigger's latest decision, for explanations.
#[derive(Debug, Clone)]
pub struct TriggerDecision {
    /// The trigger's short name: its metadata's fingerprint, as in the
    /// `trigger` label on `/metrics` (KEDA does not send trigger names).
    pub trigger: String,
    /// Its latest decision.
    pub decision: Arc<Decision>,
}

/// Of a ScaledObject's triggers' decisions (highest count first, as
/// [`ScalerCore::explain`] gives them), the one that raised `signal`: the
/// one that carries it exactly, else (a tick has passed since) the first
/// that carries a signal of its kind, else the one the HPA follows. The
/// remediation engine's evidence.
pub fn raised_by(found: &[TriggerDecision], signal: &Signal) -> Option<Arc<Decision>> {
    found
        .iter()
        .find(|t| t.decision.signals.contains(signal))
        .or_else(|| {
            found
                .iter()
                .find(|t| t.decision.signals.iter().any(|s| s.name() == signal.name()))
        })
        .or_else(|| found.first())
        .map(|t| Arc::clone(&t.decision))
}

/// A request the core could not serve.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The ScaledObject's metadata is invalid.
    #[error("invalid scalerMetadata for ScaledObject {key}:\n{source}")]
    InvalidMetadata {
        /// The ScaledObject.
        key: ScaledObjectKey,
        /// Every problem found.
        source: MetadataError,
    },
    /// A query can never succeed against the configured source.
    #[error("invalid query for ScaledObject {key}: {source}")]
    InvalidQuery {
        /// The ScaledObject.
        key: ScaledObjectKey,
        /// The source's explanation (boxed: it is large, and errors travel
        /// by value on the hot path).
        source: Box<SourceError>,
    },
    /// The request named a ScaledObject without a namespace or name.
    #[error("ScaledObjectRef must have a name and a namespace")]
    MissingIdentity,
    /// No decision exists yet for this ScaledObject.
    #[error("no decision yet for ScaledObject {key}: {reason}")]
    NotReady {
        /// The ScaledObject.
        key: ScaledObjectKey,
        /// Why: warming up, no data, source down.
        reason: String,
    },
    /// The ScaledObject's data is older than its `maxStaleness`: the source
    /// has been failing, and serving the last decision any longer could
    /// hold a count the load no longer needs. `Unavailable`, so the HPA
    /// keeps the current replica count.
    #[error(
        "data for ScaledObject {key} is {} old, beyond maxStaleness {}; not serving a decision, so the HPA keeps the current replica count (source: {cause})",
        crate::sources::fmt_wait(age.to_std().unwrap_or_default()),
        crate::sources::fmt_wait(max.to_std().unwrap_or_default())
    )]
    Stale {
        /// The ScaledObject.
        key: ScaledObjectKey,
        /// Age of its stalest signal's newest successful read.
        age: chrono::TimeDelta,
        /// Its `maxStaleness`.
        max: chrono::TimeDelta,
        /// The source's last error.
        cause: String,
    },
    /// `GetMetrics` asked for a metric this scaler does not serve.
    #[error("unknown metric {requested:?}; this scaler serves {expected:?}")]
    UnknownMetric {
        /// What was asked for.
        requested: String,
        /// What is served.
        expected: &'static str,
    },
}

/// Readiness, with the reasons when not ready.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Whether the server should receive traffic.
    pub ready: bool,
    /// SIGTERM was received: the server still answers for its shutdown
    /// delay, but is not ready, so new connections go to its peers.
    pub shutting_down: bool,
    /// The metric source, described.
    pub source: String,
    /// Whether the source answered its last probe.
    pub source_ok: bool,
    /// The last probe's error, if it failed.
    pub source_error: Option<String>,
    /// ScaledObjects registered.
    pub scaled_objects: usize,
    /// ScaledObjects still waiting for their first decision.
    pub awaiting_decision: Vec<String>,
    /// Models never trained yet.
    pub models_pending: usize,
    /// The source's circuit breaker (`closed`, `open`, `half_open`); `None`
    /// for sources without one.
    pub breaker: Option<&'static str>,
    /// The source's failures since its last success.
    pub consecutive_failures: u32,
    /// While the breaker is open: seconds until its next probe.
    pub retry_in_seconds: Option<f64>,
    /// ScaledObjects whose data is stale, with its age (served while within
    /// `maxStaleness`).
    pub stale: Vec<String>,
    /// ScaledObjects with a query the source rejected; they do not hold
    /// readiness (one bad ScaledObject must not take the replica out of
    /// service for the others).
    pub invalid: Vec<String>,
    /// ScaledObjects evaluated without a decision (no data for any signal
    /// yet), with why; like `invalid`, they do not hold readiness: every
    /// replica answers them `Unavailable` alike.
    pub no_data: Vec<String>,
}

/// The operations the gRPC and HTTP adapters call.
pub trait ScalerCore: Send + Sync + 'static {
    /// Validates `metadata` and registers the ScaledObject's trigger it
    /// describes (metadata not seen before for this ScaledObject is another
    /// trigger, or an edit). No I/O.
    fn metric_target(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<MetricTarget, CoreError>;

    /// The current decision, from precomputed state. For a ScaledObject seen
    /// for the first time, waits a bounded time for its first evaluation.
    fn decision(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> impl Future<Output = Result<Arc<Decision>, CoreError>> + Send;

    /// Decisions as they change.
    fn watch_decisions(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<watch::Receiver<Option<Arc<Decision>>>, CoreError>;

    /// The metric spec as it changes (it changes only with the metadata).
    fn watch_target(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<watch::Receiver<MetricTarget>, CoreError>;

    /// The latest decision of each of a registered ScaledObject's foresight
    /// triggers KEDA still asks about, without registering: the one the
    /// HPA follows (the highest count) first. Empty when none has one.
    fn explain(&self, key: &ScaledObjectKey) -> Vec<TriggerDecision>;

    /// The registered ScaledObjects.
    fn scaled_objects(&self) -> Vec<ScaledObjectKey>;

    /// Readiness for `/readyz`.
    fn readiness(&self) -> Readiness;

    /// Metrics sink.
    fn telemetry(&self) -> &Telemetry;

    /// The `/metrics` exposition, refreshed from live state first.
    fn metrics_text(&self) -> String {
        self.telemetry().render()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::{DateTime, TimeDelta};

    use super::*;
    use crate::config::parse_metadata;
    use crate::domain::MetricKind;
    use crate::policy::{Behavior, MetricInput, Observation, PolicyState, decide};

    /// A decision for a queue of `depth` at 100 per pod, carrying `signals`.
    fn decision(depth: f64, signals: Vec<Signal>) -> TriggerDecision {
        let meta: HashMap<String, String> = [("queueDepthQuery", "q"), ("queueDepthTarget", "100")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b = Behavior::from_spec(&parse_metadata(&meta).unwrap());
        let obs = Observation {
            metrics: vec![MetricInput {
                kind: MetricKind::QueueDepth,
                target: 100.0,
                observed: Some(depth),
                forecast: None,
                forecast_note: None,
            }],
            last_remediation: None,
        };
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (mut d, _) = decide(&b, &obs, &PolicyState::default(), at).unwrap();
        d.signals = signals;
        TriggerDecision {
            trigger: format!("{depth}"),
            decision: Arc::new(d),
        }
    }

    #[test]
    fn the_evidence_is_the_decision_of_the_trigger_that_raised_the_signal() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ceiling = |at: DateTime<chrono::Utc>, max| Signal::AtCeiling {
            at,
            max_replicas: max,
            demand_replicas: 9,
        };
        // Highest count first, as `explain` orders them; both at a ceiling.
        let found = [
            decision(700.0, vec![ceiling(t0, 7)]),
            decision(200.0, vec![ceiling(t0, 2)]),
        ];
        let by = |s: &Signal| raised_by(&found, s).map(|d| d.desired_replicas);
        // The exact signal names its trigger, even when another trigger
        // raised one of the same kind.
        assert_eq!(by(&ceiling(t0, 2)), Some(2));
        assert_eq!(by(&ceiling(t0, 7)), Some(7));
        // A tick later the signal differs: the first trigger with one of
        // its kind, then the one the HPA follows.
        assert_eq!(by(&ceiling(t0 + TimeDelta::seconds(15), 2)), Some(7));
        let breach = Signal::LatencySloBreach {
            at: t0,
            since: t0,
            p99: 1.0,
            target: 0.3,
        };
        assert_eq!(by(&breach), Some(7));
        assert_eq!(raised_by(&[], &breach), None);
    }
}
