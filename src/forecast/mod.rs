//! Forecasting: synchronous, pure CPU, no I/O.
//!
//! Our own [`Model`]/[`Fitted`] traits wrap augurs so that augurs types never
//! leave this module. [`train`] is the entry point: it prepares the history
//! ([`prep`]), picks seasonal periods ([`seasonality`]), chooses a model by
//! holdout validation ([`select`]) and calibrates an empirical prediction
//! interval from the holdout errors ([`interval`]), because augurs' MSTL intervals come from
//! the trend model alone and ignore seasonal uncertainty. For `mode: holding`
//! it also learns [`NeedModel`], the distribution of the next sample's
//! replica need, from the same history.

mod error;
mod interval;
mod metrics;
mod models;
mod naive2;
mod need;
pub mod plan;
mod prep;
#[cfg(feature = "prophet")]
mod prophet;
mod seasonality;
mod select;

pub use error::ForecastError;
pub(crate) use metrics::{EvalSpec, evaluate};
pub use metrics::{
    Method, MethodSummary, Scores, SeriesEval, Summary, coverage, mase, mase_scale, owa, smape,
    summarise,
};
pub(crate) use models::prophet_available;
pub use models::{Combine, Fitted, Model, ModelKind};
pub use naive2::{
    Naive2, SeasonalityTest, naive2, seasonal_indices, seasonal_naive, seasonality_test,
};
pub use need::{MAX_MODELLED, NeedModel, NeedSpec, NeedTable, TIME_BINS, time_bin};
pub use prep::prepare;
pub use seasonality::{candidate_steps, detect_periods};
pub use select::{Choice, TrainSpec, Trained, refit, train};
