//! The shared vocabulary: plain data types with no I/O, no tonic and no kube:
//! `Series`, `Forecast`, `Decision`, `Signal`, the typed ScaledObject spec,
//! and what counts as a flap.
//!
//! Every other layer speaks in these types; adapters (`grpc`, `http`, `cli`)
//! convert them at their edge.

mod changes;
mod decision;
mod forecast;
mod metric;
mod scaler;
mod series;
mod signal;

pub use changes::{Change, ChangeTracker, FLAP_WINDOW};
pub use decision::{Decision, Limiter, MetricReading, Prediction};
pub use forecast::{Anchor, Between, Forecast};
pub use metric::MetricKind;
pub(crate) use scaler::serde_delta::format_delta;
pub use scaler::{MetricSpec, Mode, ScaledObjectKey, ScalerSpec, ScalingRules, Seasonality};
pub use series::Series;
pub use signal::Signal;
