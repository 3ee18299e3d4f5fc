//! Metric sources: the only module that reads metrics.
//!
//! One trait, [`MetricSource`], with three implementations: a long-format
//! file replayed on the wall clock ([`FileSource`], read with polars), the
//! same over a trace bundled into the binary ([`FileSource::embedded`]), and
//! Prometheus ([`PrometheusSource`]). [`AnySource`] picks one at run time.

mod error;
mod export;
mod file;
mod prometheus;
mod wide;

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};

pub use error::SourceError;
pub use export::{load_range_export, series_id};
pub use file::{FileData, FileSource, LoadOptions, LoadReport};
pub use prometheus::PrometheusSource;
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

    /// History of `query` over `[start, end]`, on a regular grid.
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

    /// Checks that the source is reachable, for readiness.
    fn probe(&self) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// The source chosen by configuration.
pub enum AnySource {
    /// A file or the embedded trace.
    File(FileSource),
    /// A Prometheus server.
    Prometheus(PrometheusSource),
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

    async fn probe(&self) -> Result<(), SourceError> {
        match self {
            AnySource::File(s) => s.probe().await,
            AnySource::Prometheus(s) => s.probe().await,
        }
    }
}
