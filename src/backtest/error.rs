use crate::config::MetadataError;
use crate::sources::SourceError;

/// A backtest could not run. Each variant names what is wrong with the
/// input and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The ScaledObject metadata did not parse.
    #[error("invalid metadata:\n{0}")]
    Metadata(#[from] MetadataError),
    /// The metadata configures a signal the simulator cannot replay.
    #[error("cannot replay {what}: {fix}")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// How to get a replayable configuration.
        fix: String,
    },
    /// A numeric option is out of range.
    #[error("{option} must be {expected}, got {got}")]
    BadOption {
        /// The flag or key.
        option: &'static str,
        /// The allowed range.
        expected: &'static str,
        /// The value given.
        got: String,
    },
    /// The input series cannot be replayed.
    #[error("series {series:?}: {message}")]
    Input {
        /// The series id.
        series: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading training history from the replayed series failed.
    #[error("reading history for training failed: {0}")]
    History(#[from] SourceError),
}
