//! Every clap type, in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

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
    /// Measure forecast accuracy on held-out data (sMAPE, MASE, OWA against
    /// M4's Naive2, interval coverage) for foresight and two baselines.
    Eval(EvalArgs),
    /// Explain the latest decision a running `foresight serve` made for a
    /// ScaledObject: requirements, forecast, limiter, signals.
    Explain(ExplainArgs),
}

/// Flags of `foresight explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The ScaledObject, as NAMESPACE/NAME.
    #[arg(long, value_name = "NS/NAME")]
    pub scaled_object: String,

    /// Base URL of the server's HTTP port.
    #[arg(
        long,
        env = "FORESIGHT_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,

    /// Print the decision as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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

/// Input layouts `eval` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Long format: columns series,timestamp,value; .csv or .parquet.
    Long,
    /// The M4 competition's wide CSV: one series per row, first cell the id.
    M4,
}

/// Flags of `foresight eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Series to evaluate.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    /// Values hidden at the end of every series, then forecast and scored.
    #[arg(long, value_name = "H", value_parser = parse_positive)]
    pub holdout: usize,

    /// Seasonal period in steps (24 for hourly data with a daily cycle):
    /// seasonal naive's and Naive2's season and the MASE scale's lag.
    #[arg(long, value_name = "M", value_parser = parse_positive)]
    pub season: usize,

    /// Layout of the input file.
    #[arg(long, value_enum, default_value_t = InputFormat::Long)]
    pub format: InputFormat,

    /// Nominal coverage of foresight's prediction interval.
    #[arg(long, value_name = "P", default_value_t = 0.95, value_parser = parse_level)]
    pub level: f64,

    /// Also write the results as JSON to this file (atomically).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!(
            "expected a whole number of steps, at least 1, got {s:?}"
        )),
    }
}

fn parse_level(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "expected a coverage strictly between 0 and 1, e.g. 0.95, got {s:?}"
        )),
    }
}
