//! Metric sources: the only module that reads metrics.
//!
//! One trait, [`MetricSource`], with three implementations: a long-format
//! file replayed on the wall clock ([`FileSource`], read with polars), the
//! same over a trace bundled into the binary ([`FileSource::embedded`]), and
//! Prometheus ([`PrometheusSource`]). [`AnySource`] picks one at run time.

mod breaker;
mod error;
mod export;
mod file;
mod incremental;
mod prometheus;
mod wide;

use std::future::Future;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

pub use breaker::{BreakerConfig, BreakerState};
pub use error::SourceError;
pub use export::{load_range_export, series_id};
pub use file::{Duplicates, FileData, FileSource, LoadOptions, LoadReport};
pub use incremental::{HistoryCache, HistoryFetch};
pub use prometheus::{Credential, PrometheusAuth, PrometheusOptions, PrometheusSource, Secret};
pub(crate) use wide::load_wide;

use crate::domain::Series;

/// Reads history and current values for queries.
///
/// Implementations must be cheap to share: the runtime calls them from many
/// tasks at once.
pub trait MetricSource: Send + Sync + 'static {
    /// A short description for logs and readiness output.
    fn describe(&self) -> String;

    /// Rejects a query that can never succeed, without I/O. Called when a
    /// ScaledObject registers, so mistakes surface as `InvalidArgument` at once.
    fn check_query(&self, query: &str) -> Result<(), SourceError>;

    /// History of `query` over `(start, end]`, on a regular grid aligned to
    /// multiples of the step: consecutive windows share no sample, so a
    /// window ending at a training boundary never repeats the previous one's
    /// last point.
    ///
    /// `step` is a hint: sources with a native step (files) use their own.
    fn history(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: TimeDelta,
    ) -> impl Future<Output = Result<Series, SourceError>> + Send;

    /// The value of `query` at `at`; `None` when there is no data, which is
    /// never the same as zero.
    fn current(
        &self,
        query: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send;

    /// The reads of `query` at `from`, `from + step`, ... up to `to`, in
    /// order: each exactly what [`current`](Self::current) would return at
    /// that instant (the value, no data, or the error).
    ///
    /// This is how past ticks are backfilled. A replica that read a tick
    /// live and one that backfills it must hold the same value, so a source
    /// may batch these reads (Prometheus answers them with one range query)
    /// but never change what they return. The default reads each instant.
    fn instants(
        &self,
        query: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: TimeDelta,
    ) -> impl Future<Output = Vec<Result<Option<f64>, SourceError>>> + Send {
        each_instant(self, query, from, to, step)
    }

    /// Checks that the source is reachable, for readiness.
    fn probe(&self) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// The connection's state, for readiness, metrics and explanations.
    /// Sources without a remote endpoint have no breaker.
    fn health(&self) -> SourceHealth {
        SourceHealth {
            endpoint: self.describe(),
            ..SourceHealth::default()
        }
    }
}

/// [`MetricSource::instants`] one [`current`](MetricSource::current) read
/// at a time.
async fn each_instant<S: MetricSource + ?Sized>(
    source: &S,
    query: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: TimeDelta,
) -> Vec<Result<Option<f64>, SourceError>> {
    let mut out = Vec::new();
    if step <= TimeDelta::zero() {
        return out;
    }
    let mut t = from;
    while t <= to {
        out.push(source.current(query, t).await);
        t += step;
    }
    out
}

/// A source's connection state; see [`MetricSource::health`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceHealth {
    /// The endpoint, without credentials.
    pub endpoint: String,
    /// The endpoint's circuit breaker, for remote sources.
    pub breaker: Option<BreakerStatus>,
    /// Calls that failed (transport, timeout, server-side error).
    pub failures_total: u64,
    /// NaN or infinite samples dropped as missing.
    pub dropped_samples: u64,
}

/// A circuit breaker's state, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerStatus {
    /// Closed, open or half-open.
    pub state: BreakerState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Times the breaker has opened.
    pub opened_total: u64,
    /// While open: time until the half-open probe.
    pub retry_in: Option<Duration>,
    /// The last failure's message.
    pub last_error: Option<String>,
}

/// A wait for people: `850ms`, `4.0s`, `2m05s`.
pub(crate) fn fmt_wait(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1_000)
    }
}

/// The source chosen by configuration.
pub enum AnySource {
    /// A file or the embedded trace.
    File(FileSource),
    /// A Prometheus server (boxed: its client and breaker dwarf a file
    /// source's handle).
    Prometheus(Box<PrometheusSource>),
}

impl MetricSource for AnySource {
    fn describe(&self) -> String {
        match self {
            AnySource::File(s) => s.describe(),
            AnySource::Prometheus(s) => s.describe(),
        }
    }

    fn check_query(&self, query: &str) -> Result<(), SourceError> {
        match self {
            AnySource::File(s) => s.check_query(query),
            AnySource::Prometheus(s) => s.check_query(query),
        }
    }

    async fn history(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: TimeDelta,
    ) -> Result<Series, SourceError> {
        match self {
            AnySource::File(s) => s.history(query, start, end, step).await,
            AnySource::Prometheus(s) => s.history(query, start, end, step).await,
        }
    }

    async fn current(&self, query: &str, at: DateTime<Utc>) -> Result<Option<f64>, SourceError> {
        match self {
            AnySource::File(s) => s.current(query, at).await,
            AnySource::Prometheus(s) => s.current(query, at).await,
        }
    }

    async fn instants(
        &self,
        query: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: TimeDelta,
    ) -> Vec<Result<Option<f64>, SourceError>> {
        match self {
            AnySource::File(s) => s.instants(query, from, to, step).await,
            AnySource::Prometheus(s) => s.instants(query, from, to, step).await,
        }
    }

    async fn probe(&self) -> Result<(), SourceError> {
        match self {
            AnySource::File(s) => s.probe().await,
            AnySource::Prometheus(s) => s.probe().await,
        }
    }

    fn health(&self) -> SourceHealth {
        match self {
            AnySource::File(s) => s.health(),
            AnySource::Prometheus(s) => s.health(),
        }
    }
}
