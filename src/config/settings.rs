//! Server settings: defaults, overlaid by an optional TOML file, overlaid by
//! flags and environment (which clap resolves in `cli`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Reading the settings file failed.
    #[error("cannot read settings file {path}: {source}")]
    Read {
        /// The file that was requested.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The settings file is not valid TOML for these settings.
    #[error("invalid settings file {path}: {message}")]
    Parse {
        /// The file that was requested.
        path: PathBuf,
        /// The TOML parser's explanation, with line and column.
        message: String,
    },
    /// Both a Prometheus URL and a metrics file were given.
    #[error(
        "choose one metric source: --prometheus-url and --metrics-file were both set (remove one)"
    )]
    TwoSources,
}

/// Where metrics come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// The real trace bundled into the binary, replayed on the wall clock.
    Embedded,
    /// A long-format CSV or Parquet file, replayed on the wall clock.
    File(PathBuf),
    /// A Prometheus-compatible HTTP API at this base URL.
    Prometheus(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Everything `foresight serve` needs, after defaults, file, env and flags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeSettings {
    /// gRPC listen address for KEDA.
    pub grpc_addr: SocketAddr,
    /// HTTP listen address for health, readiness, metrics and explanations.
    pub http_addr: SocketAddr,
    /// Prometheus base URL; exclusive with `metrics_file`.
    pub prometheus_url: Option<String>,
    /// Long-format metrics file; exclusive with `prometheus_url`.
    pub metrics_file: Option<PathBuf>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax.
    pub log_level: String,
    /// Evaluation period; ticks are aligned to multiples of it on the wall
    /// clock so that replicas of foresight evaluate at the same instants.
    #[serde(with = "humantime_serde_compat")]
    pub evaluation_interval: Duration,
    /// How often models are retrained on fresh history.
    #[serde(with = "humantime_serde_compat")]
    pub retrain_interval: Duration,
    /// How long a call for a ScaledObject never seen before may wait for its
    /// first evaluation; must stay inside KEDA's 3 s budget.
    #[serde(with = "humantime_serde_compat")]
    pub first_answer_timeout: Duration,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            prometheus_url: None,
            metrics_file: None,
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
            evaluation_interval: Duration::from_secs(15),
            retrain_interval: Duration::from_secs(3600),
            first_answer_timeout: Duration::from_millis(2000),
        }
    }
}

impl ServeSettings {
    /// Loads settings from a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The metric source these settings select.
    pub fn source(&self) -> Result<SourceChoice, SettingsError> {
        match (&self.prometheus_url, &self.metrics_file) {
            (Some(_), Some(_)) => Err(SettingsError::TwoSources),
            (Some(url), None) => Ok(SourceChoice::Prometheus(url.clone())),
            (None, Some(path)) => Ok(SourceChoice::File(path.clone())),
            (None, None) => Ok(SourceChoice::Embedded),
        }
    }
}

/// Reads durations in settings files as `"15s"`, `"1h"`, like metadata does.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::config::parse_duration(&text)
            .map_err(serde::de::Error::custom)
            .and_then(|td| td.to_std().map_err(serde::de::Error::custom))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foresight.toml");
        std::fs::write(
            &path,
            "grpc-addr = \"127.0.0.1:7000\"\nevaluation-interval = \"30s\"\n",
        )
        .unwrap();
        let s = ServeSettings::from_file(&path).unwrap();
        assert_eq!(s.grpc_addr.port(), 7000);
        assert_eq!(s.evaluation_interval, Duration::from_secs(30));
        assert_eq!(s.http_addr.port(), 8080);

        std::fs::write(&path, "grpc-adr = \"127.0.0.1:7000\"\n").unwrap();
        let err = ServeSettings::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("grpc-adr"), "{err}");
    }

    #[test]
    fn one_source_only() {
        let s = ServeSettings {
            prometheus_url: Some("http://p:9090".into()),
            metrics_file: Some("m.csv".into()),
            ..ServeSettings::default()
        };
        assert!(matches!(s.source(), Err(SettingsError::TwoSources)));
        assert_eq!(
            ServeSettings::default().source().unwrap(),
            SourceChoice::Embedded
        );
    }
}
