//! Configuration: ScaledObject metadata parsing, server settings, durations,
//! and ScaledObject manifests (read for backtests, written with a sweep's pick).
//!
//! Everything a user types is validated here, once, into typed values; the
//! layers downstream never re-check strings.

mod duration;
mod manifest;
mod metadata;
mod presets;
mod settings;

pub use duration::{DurationError, parse_duration, parse_duration_or_zero};
pub use manifest::{ManifestError, external_metadata, with_external_metadata};
pub(crate) use metadata::DEFAULT_MAX_REPLICAS;
pub use metadata::{IGNORED_KEYS, MetadataError, known_keys, parse_metadata};
pub use presets::{Preset, presets};
pub use settings::{
    LogFormat, PrometheusCredentials, ServeSettings, SettingsError, SourceChoice, TlsFiles,
};
