//! Prometheus HTTP API source.
//!
//! History comes from range queries split into chunks below Prometheus'
//! 11,000-points-per-series limit, on a grid aligned to the step so chunks
//! stitch without duplicates. Current values come from instant queries.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use prometheus_http_query::{Client, Error as PromError, response::Data};

use super::{MetricSource, SourceError};
use crate::domain::Series;

/// Prometheus refuses range queries of more than 11,000 points per series;
/// stay safely below it.
const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// Reads metrics from a Prometheus-compatible server.
pub struct PrometheusSource {
    /// The HTTP client, bound to the base URL.
    client: Client,
    /// Base URL, for messages (never contains credentials).
    url: String,
    /// Upper bound on each request, so a hung server cannot stall a tick.
    timeout: Duration,
}

impl PrometheusSource {
    /// Connects lazily to `url`; no request is made here.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SourceError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| SourceError::Unavailable {
                endpoint: url.to_string(),
                message: format!("cannot build HTTP client: {e}"),
            })?;
        let client = Client::from(http, url).map_err(|e| SourceError::Unavailable {
            endpoint: url.to_string(),
            message: format!("invalid Prometheus URL: {e}"),
        })?;
        Ok(Self {
            client,
            url: url.to_string(),
            timeout,
        })
    }

    fn map_err(&self, query: &str, e: PromError) -> SourceError {
        match e {
            PromError::Prometheus(p) => SourceError::QueryRejected {
                query: query.to_string(),
                message: p.message().to_string(),
            },
            other => SourceError::Unavailable {
                endpoint: self.url.clone(),
                message: other.to_string(),
            },
        }
    }
}

/// Checks a result has at most one series, naming the labels when not.
fn single<'a, T>(
    query: &str,
    items: &'a [T],
    labels: impl Fn(&T) -> String,
) -> Result<Option<&'a T>, SourceError> {
    match items {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(SourceError::MultipleSeries {
            query: query.to_string(),
            count: many.len(),
            labels: many
                .iter()
                .take(3)
                .map(labels)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn fmt_labels(m: &std::collections::HashMap<String, String>) -> String {
    let mut kv: Vec<_> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    kv.sort();
    format!("{{{}}}", kv.join(","))
}

impl MetricSource for PrometheusSource {
    fn describe(&self) -> String {
        format!("prometheus at {}", self.url)
    }

    fn check_query(&self, query: &str) -> Result<(), SourceError> {
        if query.trim().is_empty() {
            return Err(SourceError::QueryRejected {
                query: query.to_string(),
                message: "empty query".into(),
            });
        }
        Ok(())
    }

    async fn history(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: TimeDelta,
    ) -> Result<Series, SourceError> {
        let step_s = step.num_seconds().max(1);
        // Align the grid to multiples of the step so every chunk (and every
        // replica of foresight) asks for the same instants.
        let first = start.timestamp().div_euclid(step_s) * step_s + step_s;
        let last = end.timestamp().div_euclid(step_s) * step_s;
        let n = usize::try_from((last - first) / step_s + 1).unwrap_or(0);
        let mut values = vec![f64::NAN; n];
        let mut chunk_start = first;
        while chunk_start <= last {
            let chunk_end = (chunk_start + (MAX_POINTS_PER_QUERY - 1) * step_s).min(last);
            let result = self
                .client
                .query_range(query, chunk_start, chunk_end, step_s as f64)
                .timeout(self.timeout.as_millis() as i64)
                .get()
                .await
                .map_err(|e| self.map_err(query, e))?;
            match result.data() {
                Data::Matrix(m) => {
                    if let Some(rv) = single(query, m, |r| fmt_labels(r.metric()))? {
                        for s in rv.samples() {
                            let idx = (s.timestamp() as i64 - first) / step_s;
                            if let Ok(i) = usize::try_from(idx)
                                && i < n
                                && s.value().is_finite()
                            {
                                values[i] = s.value();
                            }
                        }
                    }
                }
                other => {
                    return Err(SourceError::QueryRejected {
                        query: query.to_string(),
                        message: format!("expected a range vector, got {other:?}"),
                    });
                }
            }
            chunk_start = chunk_end + step_s;
        }
        let start = DateTime::from_timestamp(first, 0).unwrap_or(start);
        Ok(Series::new(start, TimeDelta::seconds(step_s), values))
    }

    async fn current(&self, query: &str, at: DateTime<Utc>) -> Result<Option<f64>, SourceError> {
        let result = self
            .client
            .query(query)
            .at(at.timestamp())
            .timeout(self.timeout.as_millis() as i64)
            .get()
            .await
            .map_err(|e| self.map_err(query, e))?;
        let value = match result.data() {
            Data::Vector(v) => {
                single(query, v, |iv| fmt_labels(iv.metric()))?.map(|iv| iv.sample().value())
            }
            Data::Scalar(s) => Some(s.value()),
            Data::Matrix(_) => {
                return Err(SourceError::QueryRejected {
                    query: query.to_string(),
                    message: "expected an instant vector or scalar, got a range vector".into(),
                });
            }
        };
        Ok(value.filter(|v| v.is_finite()))
    }

    async fn probe(&self) -> Result<(), SourceError> {
        self.client
            .query("vector(1)")
            .get()
            .await
            .map(|_| ())
            .map_err(|e| self.map_err("vector(1)", e))
    }
}
