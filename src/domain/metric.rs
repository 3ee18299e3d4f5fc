use serde::{Deserialize, Serialize};

/// The four kinds of signal foresight scales on.
///
/// Each kind has its own pair of ScaledObject metadata keys and its own way of
/// turning a value into a replica requirement (see `policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricKind {
    /// Messages waiting in a queue; additive across replicas.
    QueueDepth,
    /// Consumer-group lag in messages; additive, and grows when under-provisioned.
    ConsumerLag,
    /// Open connections; additive across replicas.
    Connections,
    /// 99th-percentile latency; not additive, so it only ever acts reactively.
    P99Latency,
}

impl MetricKind {
    /// Every kind, in the order metadata keys are documented and validated.
    pub const ALL: [MetricKind; 4] = [
        MetricKind::QueueDepth,
        MetricKind::ConsumerLag,
        MetricKind::Connections,
        MetricKind::P99Latency,
    ];

    /// The camelCase prefix of this kind's metadata keys.
    pub fn key_prefix(self) -> &'static str {
        match self {
            MetricKind::QueueDepth => "queueDepth",
            MetricKind::ConsumerLag => "consumerLag",
            MetricKind::Connections => "connections",
            MetricKind::P99Latency => "p99Latency",
        }
    }

    /// The metadata key holding this kind's query.
    pub fn query_key(self) -> &'static str {
        match self {
            MetricKind::QueueDepth => "queueDepthQuery",
            MetricKind::ConsumerLag => "consumerLagQuery",
            MetricKind::Connections => "connectionsQuery",
            MetricKind::P99Latency => "p99LatencyQuery",
        }
    }

    /// The metadata key holding this kind's per-replica target.
    pub fn target_key(self) -> &'static str {
        match self {
            MetricKind::QueueDepth => "queueDepthTarget",
            MetricKind::ConsumerLag => "consumerLagTarget",
            MetricKind::Connections => "connectionsTarget",
            MetricKind::P99Latency => "p99LatencyTarget",
        }
    }

    /// Whether load of this kind splits evenly across replicas, so that
    /// `ceil(value / target)` replicas carry it. Latency does not.
    pub fn is_additive(self) -> bool {
        !matches!(self, MetricKind::P99Latency)
    }

    /// A stable snake_case label for logs and Prometheus labels.
    pub fn label(self) -> &'static str {
        match self {
            MetricKind::QueueDepth => "queue_depth",
            MetricKind::ConsumerLag => "consumer_lag",
            MetricKind::Connections => "connections",
            MetricKind::P99Latency => "p99_latency",
        }
    }
}

impl std::fmt::Display for MetricKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key_prefix())
    }
}
