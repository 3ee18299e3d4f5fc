//! Every clap type, in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// foresight: a predictive autoscaler served as a KEDA external scaler.
#[derive(Debug, Parser)]
#[command(name = "foresight", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve KEDA's external-scaler gRPC API, plus health, readiness and
    /// metrics over HTTP. With no source flag, replays a bundled real trace.
    Serve(ServeArgs),
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `foresight serve`. Each also reads an environment variable; both
/// override the settings file, which overrides the defaults.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML settings file; keys are the flag names without dashes-prefix,
    /// e.g. `grpc-addr = "0.0.0.0:9090"`.
    #[arg(long, env = "FORESIGHT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// gRPC listen address for KEDA [default: 0.0.0.0:9090].
    #[arg(long, env = "FORESIGHT_GRPC_ADDR", value_name = "ADDR")]
    pub grpc_addr: Option<SocketAddr>,

    /// HTTP listen address for /healthz, /readyz, /metrics [default: 0.0.0.0:8080].
    #[arg(long, env = "FORESIGHT_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// Read metrics from this Prometheus-compatible base URL.
    #[arg(
        long,
        env = "FORESIGHT_PROMETHEUS_URL",
        value_name = "URL",
        conflicts_with = "metrics_file"
    )]
    pub prometheus_url: Option<String>,

    /// Replay this long-format file (series,timestamp,value; .csv or .parquet).
    #[arg(long, env = "FORESIGHT_METRICS_FILE", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Log format [default: text].
    #[arg(long, env = "FORESIGHT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormatArg>,

    /// Log filter, RUST_LOG syntax [default: info].
    #[arg(long, env = "FORESIGHT_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Evaluation period; ticks align to multiples of it [default: 15s].
    #[arg(long, env = "FORESIGHT_EVALUATION_INTERVAL", value_parser = parse_std_duration, value_name = "DURATION")]
    pub evaluation_interval: Option<Duration>,

    /// How often models retrain on fresh history [default: 1h].
    #[arg(long, env = "FORESIGHT_RETRAIN_INTERVAL", value_parser = parse_std_duration, value_name = "DURATION")]
    pub retrain_interval: Option<Duration>,
}

fn parse_std_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
        .map_err(|e| e.to_string())
        .and_then(|d| d.to_std().map_err(|e| e.to_string()))
}
