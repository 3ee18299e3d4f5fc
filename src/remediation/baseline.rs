//! Pre-deploy baselines from the metric source: the target's p99 latency
//! averaged over the half hour before the deploy, against its value now.
//!
//! Only latency: queue depth, lag and connections follow traffic, so twice
//! as much of them after a deploy says nothing about the deploy, while a
//! latency that doubled at the same traffic does.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;

use super::diagnose::Baseline;
use super::engine::BaselineSource;
use super::incident::Target;
use crate::sources::MetricSource;

/// The window before a deploy its baseline is averaged over.
const WINDOW: TimeDelta = TimeDelta::minutes(30);

/// Baselines read through a metric source.
pub struct SourceBaselines<S> {
    source: S,
}

impl<S: MetricSource> SourceBaselines<S> {
    /// Baselines from `source`, the one the ScaledObjects' queries are for.
    pub fn new(source: S) -> Self {
        Self { source }
    }

    async fn latency(
        &self,
        query: &str,
        deploy_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Baseline> {
        let history = self
            .source
            .history(query, deploy_at - WINDOW, deploy_at, TimeDelta::minutes(1))
            .await
            .map_err(|e| tracing::warn!(error = %e, "no pre-deploy baseline"))
            .ok()?;
        let seen: Vec<f64> = history
            .values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if seen.is_empty() {
            return None;
        }
        let before = seen.iter().sum::<f64>() / seen.len() as f64;
        let after = self.source.current(query, now).await.ok()??;
        Some(Baseline {
            metric: "p99 latency".into(),
            before,
            after,
        })
    }
}

impl<S: MetricSource> BaselineSource for SourceBaselines<S> {
    fn baselines<'a>(
        &'a self,
        _target: &'a Target,
        queries: &'a BTreeMap<String, String>,
        deploy_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<Baseline>> {
        Box::pin(async move {
            match queries.get("p99LatencyQuery") {
                Some(q) => self.latency(q, deploy_at, now).await.into_iter().collect(),
                None => Vec::new(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{FileData, FileSource};

    #[tokio::test]
    async fn latency_before_the_deploy_against_now() {
        // p99 0.1 s for an hour, then 0.5 s from the deploy on.
        let t0 = 1_790_000_000i64;
        let mut csv = String::from("series,timestamp,value\n");
        for i in 0..120i64 {
            let v = if i < 60 { 0.1 } else { 0.5 };
            csv.push_str(&format!("p99,{},{v}\n", t0 + i * 60));
        }
        let (data, _) = FileData::from_csv_bytes("p99.csv", csv.as_bytes()).unwrap();
        let b = SourceBaselines::new(FileSource::new(data));
        let at = |m: i64| DateTime::from_timestamp(t0 + m * 60, 0).unwrap();
        let target = Target {
            namespace: "shop".into(),
            scaled_object: "web".into(),
            deployment: "web".into(),
        };
        let queries: BTreeMap<String, String> =
            [("p99LatencyQuery".to_string(), "p99".to_string())].into();
        let got = b.baselines(&target, &queries, at(59), at(70)).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert!((got[0].before - 0.1).abs() < 1e-9, "{got:?}");
        assert!((got[0].after - 0.5).abs() < 1e-9, "{got:?}");
        // No latency query, no baseline: traffic signals are not compared.
        let queries: BTreeMap<String, String> =
            [("queueDepthQuery".to_string(), "p99".to_string())].into();
        assert!(
            b.baselines(&target, &queries, at(59), at(70))
                .await
                .is_empty()
        );
    }
}
