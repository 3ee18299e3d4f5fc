//! The shared vocabulary: plain data types with no I/O, no tonic and no kube.
//!
//! Every other layer speaks in these types; adapters (`grpc`, `http`, `cli`)
//! convert them at their edge.

mod decision;
mod forecast;
mod metric;
mod scaler;
mod series;

pub use decision::{Decision, Limiter, MetricReading};
pub use forecast::Forecast;
pub use metric::MetricKind;
pub use scaler::{MetricSpec, Mode, ScaledObjectKey, ScalerSpec, Seasonality};
pub use series::Series;
