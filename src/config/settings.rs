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
    /// Only one of the TLS certificate and key was given.
    #[error(
        "gRPC TLS needs both a certificate and its key: {given} was set without {missing} (set both, or neither for plaintext)"
    )]
    TlsHalfPair {
        /// The flag that was set.
        given: &'static str,
        /// The flag that is missing.
        missing: &'static str,
    },
    /// A client CA was given without a server certificate.
    #[error(
        "--tls-client-ca requires client certificates over TLS, but TLS is off: set --tls-cert and --tls-key as well"
    )]
    ClientCaWithoutTls,
    /// Both a bearer token and basic auth were configured for Prometheus.
    #[error(
        "choose one way to authenticate to Prometheus: a bearer token ({token}) and basic auth (--prometheus-basic-auth-user) were both set"
    )]
    PrometheusAuthConflict {
        /// Where the token came from.
        token: &'static str,
    },
    /// Only one half of Prometheus basic auth was given.
    #[error(
        "Prometheus basic auth needs a user and a password file: {given} was set without {missing}"
    )]
    PrometheusBasicAuthHalf {
        /// The flag that was set.
        given: &'static str,
        /// The flag that is missing.
        missing: &'static str,
    },
}

/// How `foresight serve` authenticates to Prometheus, after checking that
/// the settings name at most one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrometheusCredentials {
    /// No credentials.
    None,
    /// A bearer token in the environment (`FORESIGHT_PROMETHEUS_BEARER_TOKEN`).
    BearerFromEnv,
    /// A bearer token in this file, re-read on every request.
    BearerFile(PathBuf),
    /// Basic auth with the password in a file, re-read on every request.
    Basic {
        /// The user name.
        user: String,
        /// The password file.
        password_file: PathBuf,
    },
}

/// Files of the gRPC server's TLS identity, checked to come as a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain the server presents, leaf first.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA bundle that client certificates must chain to; `Some` makes
    /// client certificates mandatory (mutual TLS).
    pub client_ca: Option<PathBuf>,
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
    /// How often a full model selection runs; retrains in between refit
    /// the chosen model, which costs one fit instead of a dozen.
    #[serde(with = "humantime_serde_compat")]
    pub reselect_interval: Duration,
    /// How long a call for a ScaledObject never seen before may wait for its
    /// first evaluation; must stay inside KEDA's 3 s budget.
    #[serde(with = "humantime_serde_compat")]
    pub first_answer_timeout: Duration,
    /// After SIGTERM, how long the servers keep answering (with `/readyz`
    /// at 503) before they close: kube-proxy on every node and the
    /// EndpointSlice controller take a moment to stop sending this pod new
    /// connections, and KEDA's reconnection after the GOAWAY must not land
    /// on a closed port. A second signal stops at once. Ctrl-C does not wait.
    #[serde(deserialize_with = "humantime_serde_compat::deserialize_or_zero")]
    pub shutdown_delay: Duration,
    /// PEM certificate chain for gRPC TLS; with `tls_key`, turns TLS on.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, gRPC clients must present a certificate
    /// signed by it (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Directory for state kept across restarts (model selections); none
    /// keeps it in memory only.
    pub state_dir: Option<PathBuf>,
    /// Upper bound on each Prometheus request; a hung server must not stall
    /// a tick for longer.
    #[serde(with = "humantime_serde_compat")]
    pub prometheus_timeout: Duration,
    /// File holding a bearer token for Prometheus, re-read on every request
    /// so rotated tokens are picked up.
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// User for Prometheus basic auth; needs `prometheus_basic_auth_password_file`.
    pub prometheus_basic_auth_user: Option<String>,
    /// File holding the basic-auth password (never the password itself, so
    /// settings files hold no secrets).
    pub prometheus_basic_auth_password_file: Option<PathBuf>,
    /// PEM CA bundle trusted for an `https` Prometheus URL, besides the
    /// system's, for servers with a private CA.
    pub prometheus_ca_file: Option<PathBuf>,
    /// Extra headers on every Prometheus request, e.g. `X-Scope-OrgID` for
    /// Mimir, Cortex and Thanos tenants.
    pub prometheus_headers: std::collections::BTreeMap<String, String>,
    /// What remediation does with the policy's signals.
    pub remediation: crate::remediation::RemediationSetting,
    /// Namespaces remediation may act in; empty means every namespace.
    pub remediation_namespaces: Vec<String>,
    /// The remediation leader Lease's name; `None`: `foresight-remediation`.
    pub lease_name: Option<String>,
    /// The remediation audit log (JSON lines, fsync'd). Without it incidents
    /// are only logged, so enforcing requires it: no action without a
    /// durable record.
    pub audit_log: Option<PathBuf>,
    /// The audit log's live file rotates past this many MiB (to
    /// `PATH.1`, ...); 0 never rotates, and the log grows until its volume
    /// is full and every append, so every enforced action, fails.
    pub audit_log_rotate_mib: u64,
    /// Rotated audit-log segments kept (at least 1); older ones are deleted.
    pub audit_log_keep: u32,
    /// The body of pages sent to the webhook.
    pub page_format: crate::remediation::PageFormat,
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
            reselect_interval: Duration::from_secs(86_400),
            first_answer_timeout: Duration::from_millis(2000),
            shutdown_delay: Duration::from_secs(5),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            state_dir: None,
            prometheus_timeout: Duration::from_secs(10),
            prometheus_bearer_token_file: None,
            prometheus_basic_auth_user: None,
            prometheus_basic_auth_password_file: None,
            prometheus_ca_file: None,
            prometheus_headers: std::collections::BTreeMap::new(),
            remediation: crate::remediation::RemediationSetting::DryRun,
            remediation_namespaces: Vec::new(),
            lease_name: None,
            audit_log: None,
            audit_log_rotate_mib: 16,
            audit_log_keep: 4,
            page_format: crate::remediation::PageFormat::Slack,
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

    /// How to authenticate to Prometheus; `env_token` says whether
    /// `FORESIGHT_PROMETHEUS_BEARER_TOKEN` is set. At most one way may be
    /// configured, and basic auth needs both its halves.
    pub fn prometheus_credentials(
        &self,
        env_token: bool,
    ) -> Result<PrometheusCredentials, SettingsError> {
        let basic = match (
            &self.prometheus_basic_auth_user,
            &self.prometheus_basic_auth_password_file,
        ) {
            (Some(user), Some(file)) => Some(PrometheusCredentials::Basic {
                user: user.clone(),
                password_file: file.clone(),
            }),
            (Some(_), None) => {
                return Err(SettingsError::PrometheusBasicAuthHalf {
                    given: "--prometheus-basic-auth-user",
                    missing: "--prometheus-basic-auth-password-file",
                });
            }
            (None, Some(_)) => {
                return Err(SettingsError::PrometheusBasicAuthHalf {
                    given: "--prometheus-basic-auth-password-file",
                    missing: "--prometheus-basic-auth-user",
                });
            }
            (None, None) => None,
        };
        let bearer = match (&self.prometheus_bearer_token_file, env_token) {
            (Some(_), true) => {
                return Err(SettingsError::PrometheusAuthConflict {
                    token: "--prometheus-bearer-token-file and FORESIGHT_PROMETHEUS_BEARER_TOKEN",
                });
            }
            (Some(file), false) => Some((
                "--prometheus-bearer-token-file",
                PrometheusCredentials::BearerFile(file.clone()),
            )),
            (None, true) => Some((
                "FORESIGHT_PROMETHEUS_BEARER_TOKEN",
                PrometheusCredentials::BearerFromEnv,
            )),
            (None, false) => None,
        };
        match (bearer, basic) {
            (Some((token, _)), Some(_)) => Err(SettingsError::PrometheusAuthConflict { token }),
            (Some((_, c)), None) | (None, Some(c)) => Ok(c),
            (None, None) => Ok(PrometheusCredentials::None),
        }
    }

    /// The gRPC TLS files, `None` for plaintext. Checks only that they come
    /// in a consistent combination; the gRPC layer reads and validates them.
    pub fn tls(&self) -> Result<Option<TlsFiles>, SettingsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            })),
            (Some(_), None) => Err(SettingsError::TlsHalfPair {
                given: "--tls-cert",
                missing: "--tls-key",
            }),
            (None, Some(_)) => Err(SettingsError::TlsHalfPair {
                given: "--tls-key",
                missing: "--tls-cert",
            }),
            (None, None) if self.tls_client_ca.is_some() => Err(SettingsError::ClientCaWithoutTls),
            (None, None) => Ok(None),
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

    /// As [`deserialize`], where zero is meaningful (`0s`: no delay).
    pub(super) fn deserialize_or_zero<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::config::parse_duration_or_zero(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_shutdown_delay_means_none_where_other_zeros_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foresight.toml");
        std::fs::write(&path, "shutdown-delay = \"0s\"\n").unwrap();
        let s = ServeSettings::from_file(&path).unwrap();
        assert_eq!(s.shutdown_delay, Duration::ZERO);
        assert_eq!(
            ServeSettings::default().shutdown_delay,
            Duration::from_secs(5)
        );
        std::fs::write(&path, "evaluation-interval = \"0s\"\n").unwrap();
        let err = ServeSettings::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("greater than zero"), "{err}");
        std::fs::write(&path, "shutdown-delay = \"soon\"\n").unwrap();
        assert!(ServeSettings::from_file(&path).is_err());
    }

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foresight.toml");
        std::fs::write(
            &path,
            "grpc-addr = \"127.0.0.1:7000\"\nevaluation-interval = \"30s\"\npage-format = \"generic\"\n",
        )
        .unwrap();
        let s = ServeSettings::from_file(&path).unwrap();
        assert_eq!(s.grpc_addr.port(), 7000);
        assert_eq!(s.evaluation_interval, Duration::from_secs(30));
        assert_eq!(s.http_addr.port(), 8080);
        assert_eq!(s.page_format, crate::remediation::PageFormat::Generic);
        assert_eq!(
            ServeSettings::default().page_format,
            crate::remediation::PageFormat::Slack
        );

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

    #[test]
    fn prometheus_connection_settings_from_a_file_and_their_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foresight.toml");
        std::fs::write(
            &path,
            "prometheus-url = \"https://mimir:8080/prometheus\"\n\
             prometheus-timeout = \"30s\"\n\
             prometheus-ca-file = \"/ca/ca.crt\"\n\
             prometheus-basic-auth-user = \"foresight\"\n\
             prometheus-basic-auth-password-file = \"/secrets/password\"\n\
             [prometheus-headers]\n\
             X-Scope-OrgID = \"tenant-a\"\n",
        )
        .unwrap();
        let s = ServeSettings::from_file(&path).unwrap();
        assert_eq!(s.prometheus_timeout, Duration::from_secs(30));
        assert_eq!(s.prometheus_ca_file, Some(PathBuf::from("/ca/ca.crt")));
        assert_eq!(s.prometheus_headers["X-Scope-OrgID"], "tenant-a");
        assert_eq!(
            s.prometheus_credentials(false).unwrap(),
            PrometheusCredentials::Basic {
                user: "foresight".into(),
                password_file: "/secrets/password".into()
            }
        );
        let err = s.prometheus_credentials(true).unwrap_err().to_string();
        assert!(err.contains("FORESIGHT_PROMETHEUS_BEARER_TOKEN"), "{err}");
        assert_eq!(
            ServeSettings::default().prometheus_timeout,
            Duration::from_secs(10)
        );

        // A secret itself is not a settings key: only files are.
        std::fs::write(&path, "prometheus-bearer-token = \"abc\"\n").unwrap();
        let err = ServeSettings::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("prometheus-bearer-token"), "{err}");

        let half = ServeSettings {
            prometheus_basic_auth_user: Some("u".into()),
            ..ServeSettings::default()
        };
        let err = half.prometheus_credentials(false).unwrap_err().to_string();
        assert!(
            err.contains(
                "--prometheus-basic-auth-user was set without --prometheus-basic-auth-password-file"
            ),
            "{err}"
        );
        let both = ServeSettings {
            prometheus_bearer_token_file: Some("/t".into()),
            ..ServeSettings::default()
        };
        assert!(both.prometheus_credentials(true).is_err());
        assert_eq!(
            both.prometheus_credentials(false).unwrap(),
            PrometheusCredentials::BearerFile("/t".into())
        );
        assert_eq!(
            ServeSettings::default()
                .prometheus_credentials(true)
                .unwrap(),
            PrometheusCredentials::BearerFromEnv
        );
    }

    #[test]
    fn tls_cert_and_key_come_together() {
        assert_eq!(ServeSettings::default().tls().unwrap(), None);
        let half = ServeSettings {
            tls_cert: Some("tls.crt".into()),
            ..ServeSettings::default()
        };
        let err = half.tls().unwrap_err().to_string();
        assert!(
            err.contains("--tls-cert was set without --tls-key"),
            "{err}"
        );
        let ca_only = ServeSettings {
            tls_client_ca: Some("ca.crt".into()),
            ..ServeSettings::default()
        };
        assert!(matches!(
            ca_only.tls(),
            Err(SettingsError::ClientCaWithoutTls)
        ));
        let full = ServeSettings {
            tls_cert: Some("tls.crt".into()),
            tls_key: Some("tls.key".into()),
            tls_client_ca: Some("ca.crt".into()),
            ..ServeSettings::default()
        };
        let files = full.tls().unwrap().unwrap();
        assert_eq!(files.client_ca, Some(PathBuf::from("ca.crt")));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foresight.toml");
        std::fs::write(
            &path,
            "tls-cert = \"/tls/tls.crt\"\ntls-key = \"/tls/tls.key\"\ntls-client-ca = \"/tls/ca.crt\"\n",
        )
        .unwrap();
        let s = ServeSettings::from_file(&path).unwrap();
        assert_eq!(s.tls_key, Some(PathBuf::from("/tls/tls.key")));
    }
}
