use std::path::PathBuf;

/// A metric source could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// Opening or decoding a metrics file failed.
    #[error("cannot read metrics file {path}: {message}")]
    FileRead {
        /// The file.
        path: PathBuf,
        /// What went wrong, from the reader.
        message: String,
    },
    /// A metrics file was read but its content is unusable.
    #[error("invalid metrics file {path}: {message}")]
    FileContent {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A query names a series id that the file does not contain.
    #[error("series {query:?} is not in {source_name}; available series: {}", .available.join(", "))]
    UnknownSeries {
        /// The query (a series id for file sources).
        query: String,
        /// Description of the source.
        source_name: String,
        /// Every series id the file has.
        available: Vec<String>,
    },
    /// Prometheus rejected the query, e.g. a PromQL syntax error.
    #[error("prometheus rejected query {query:?}: {message}")]
    QueryRejected {
        /// The PromQL.
        query: String,
        /// Prometheus' own error message.
        message: String,
    },
    /// A query returned several series where one was needed.
    #[error(
        "query {query:?} returned {count} series ({labels}); aggregate it to one series, e.g. sum by () (...)"
    )]
    MultipleSeries {
        /// The PromQL.
        query: String,
        /// How many series came back.
        count: usize,
        /// Label sets of the first few series.
        labels: String,
    },
    /// The source could not be reached or failed to respond.
    #[error("metric source {endpoint} unavailable: {message}")]
    Unavailable {
        /// The endpoint that failed.
        endpoint: String,
        /// The transport or server failure.
        message: String,
    },
    /// Prometheus accepted the query but failed to evaluate it for reasons
    /// of its own (timeout, cancellation, overload, internal error):
    /// retryable, and counted against the endpoint's circuit breaker, never
    /// blamed on the query.
    #[error("prometheus at {endpoint} failed to evaluate query {query:?}: {message}")]
    QueryFailed {
        /// The endpoint that failed.
        endpoint: String,
        /// The PromQL.
        query: String,
        /// Prometheus' `errorType` (e.g. `timeout`) and its own message.
        message: String,
    },
    /// The endpoint's circuit breaker is open after consecutive failures:
    /// the call was refused without I/O, so requests do not pile up behind
    /// a dead server.
    #[error(
        "circuit breaker for {endpoint} is open after {failures} consecutive failures (last: {last_error}); not calling it, retry after {}",
        crate::sources::fmt_wait(*.retry_in)
    )]
    CircuitOpen {
        /// The endpoint being protected.
        endpoint: String,
        /// Consecutive failures so far.
        failures: u32,
        /// The last failure's message.
        last_error: String,
        /// Time until the half-open probe may be sent (zero when a probe is
        /// in flight).
        retry_in: std::time::Duration,
    },
    /// The source's connection settings are unusable (a bad header, CA
    /// file or URL); found at start-up.
    #[error("cannot configure the metric source {endpoint}: {message}")]
    InvalidConfig {
        /// The endpoint being configured.
        endpoint: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl SourceError {
    /// Whether the caller's query or configuration is at fault (so retrying
    /// the same request cannot help), as opposed to the source being down.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            SourceError::UnknownSeries { .. }
                | SourceError::QueryRejected { .. }
                | SourceError::MultipleSeries { .. }
        )
    }

    /// Whether the source itself failed (down, slow, overloaded, refused by
    /// its breaker), so a later retry of the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Unavailable { .. }
                | SourceError::QueryFailed { .. }
                | SourceError::CircuitOpen { .. }
        )
    }
}
