//! Pre-deploy baselines from the metric source: the target's p99 latency
//! and, when its ScaledObject names one with `errorRateQuery`, its error
//! rate, each averaged over the half hour before the deploy, against its
//! value now.
//!
//! Only latency and errors: queue depth, lag and connections follow
//! traffic, so twice as much of them after a deploy says nothing about the
//! deploy, while a latency or an error rate that doubled does.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;

use super::diagnose::Baseline;
use super::engine::BaselineSource;
use super::incident::Target;
use crate::sources::MetricSource;

/// The window before a deploy its baseline is averaged over.
const WINDOW: TimeDelta = TimeDelta::minutes(30);

/// The trigger metadata keys compared before and after a deploy, what
/// each measures, and the floor its ratio is taken against (see
/// [`Baseline::floor`]). Error rates are fractions of requests (as
/// `errorRateQuery` is documented): under 0.5% a clean half hour would
/// make the first failed request an infinite regression. Latency has no
/// floor, as its unit is the query's own; a p99 of 0 is no traffic, which
/// the query's NaN already leaves out.
const BASELINE_QUERIES: [(&str, &str, f64); 2] = [
    ("p99LatencyQuery", "p99 latency", 0.0),
    ("errorRateQuery", "error rate", 0.005),
];

/// Baselines read through a metric source.
pub struct SourceBaselines<S> {
    source: S,
}

impl<S: MetricSource> SourceBaselines<S> {
    /// Baselines from `source`, the one the ScaledObjects' queries are for.
    pub fn new(source: S) -> Self {
        Self { source }
    }

    async fn measure(
        &self,
        metric: &str,
        query: &str,
        floor: f64,
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
            metric: metric.into(),
            before,
            after,
            floor,
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
            let mut out = Vec::new();
            for (key, metric, floor) in BASELINE_QUERIES {
                if let Some(q) = queries.get(key)
                    && let Some(b) = self.measure(metric, q, floor, deploy_at, now).await
                {
                    out.push(b);
                }
            }
            out
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
        // An error rate named by errorRateQuery is compared the same way:
        // 0.1% before the deploy, 5% after.
        let mut csv = String::from("series,timestamp,value\n");
        for i in 0..120i64 {
            let v = if i < 60 { 0.001 } else { 0.05 };
            csv.push_str(&format!("errors,{},{v}\n", t0 + i * 60));
            csv.push_str(&format!("p99,{},0.1\n", t0 + i * 60));
        }
        let (data, _) = FileData::from_csv_bytes("both.csv", csv.as_bytes()).unwrap();
        let b2 = SourceBaselines::new(FileSource::new(data));
        let queries: BTreeMap<String, String> = [
            ("p99LatencyQuery".to_string(), "p99".to_string()),
            ("errorRateQuery".to_string(), "errors".to_string()),
        ]
        .into();
        let got = b2.baselines(&target, &queries, at(59), at(70)).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].metric, "p99 latency");
        assert!((got[0].after - 0.1).abs() < 1e-9, "{got:?}");
        assert_eq!(got[1].metric, "error rate");
        assert!((got[1].before - 0.001).abs() < 1e-12, "{got:?}");
        assert!((got[1].after - 0.05).abs() < 1e-12, "{got:?}");
        assert_eq!((got[0].floor, got[1].floor), (0.0, 0.005));
        // No latency or error query, no baseline: traffic signals are not
        // compared.
        let queries: BTreeMap<String, String> =
            [("queueDepthQuery".to_string(), "p99".to_string())].into();
        assert!(
            b.baselines(&target, &queries, at(59), at(70))
                .await
                .is_empty()
        );
    }
}
