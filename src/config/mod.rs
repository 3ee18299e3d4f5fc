//! Configuration: ScaledObject metadata parsing, server settings, durations.
//!
//! Everything a user types is validated here, once, into typed values; the
//! layers downstream never re-check strings.

mod duration;
mod metadata;
mod presets;
mod settings;

pub use duration::{DurationError, parse_duration};
pub use metadata::{IGNORED_KEYS, MetadataError, known_keys, parse_metadata};
pub use presets::{Preset, presets};
pub use settings::{
    LogFormat, PrometheusCredentials, ServeSettings, SettingsError, SourceChoice, TlsFiles,
};
