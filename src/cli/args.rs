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
    /// Replay recorded demand through foresight's policy, a reactive HPA and a
    /// perfect-foresight oracle, and score all three on the same data.
    Backtest(BacktestArgs),
    /// Forecast every series of a file (point and interval, in parallel), or
    /// `inspect` one series: its model, accuracy and a chart.
    Forecast(ForecastArgs),
    /// Roll a Deployment back as `kubectl rollout undo` does, then wait for
    /// the rollout (credentials: KUBECONFIG, then in-cluster).
    Rollback(RollbackArgs),
    /// Restart a Deployment's pods as `kubectl rollout restart` does, then
    /// wait for the rollout.
    Restart(RestartArgs),
    /// List or show remediation incidents from the audit log.
    Incidents(IncidentsArgs),
}

/// Flags of `foresight rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The Deployment, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/DEPLOYMENT")]
    pub target: String,

    /// The revision to restore [default: the previous one].
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u64>,

    /// Print the patch that would be sent; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Give up waiting for the rollout after this long.
    #[arg(long, value_parser = parse_std_duration, default_value = "5m", value_name = "DURATION")]
    pub timeout: Duration,
}

/// Flags of `foresight restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The Deployment, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/DEPLOYMENT")]
    pub target: String,

    /// Print the patch that would be sent; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Give up waiting for the rollout after this long.
    #[arg(long, value_parser = parse_std_duration, default_value = "5m", value_name = "DURATION")]
    pub timeout: Duration,
}

/// Flags of `foresight incidents`.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// `list` (the default) or `show`.
    #[command(subcommand)]
    pub command: Option<IncidentsCommand>,

    /// The audit log `foresight serve` writes [default: as serve's dry
    /// run, foresight-audit.jsonl in the temporary directory].
    #[arg(long, global = true, env = "FORESIGHT_AUDIT_LOG", value_name = "PATH")]
    pub audit_log: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands of `foresight incidents`.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// One line per incident, oldest first.
    List,
    /// Everything recorded about one incident.
    Show {
        /// The incident id, as `list` prints it.
        id: String,
    },
}

/// Signals a backtest can replay (latency is not additive, so capacity
/// cannot be simulated from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignalArg {
    /// Open connections: demand above capacity is not served.
    Connections,
    /// Queue depth: unserved work waits as a backlog.
    QueueDepth,
    /// Consumer lag: unserved work waits as a backlog.
    ConsumerLag,
}

/// What `--duplicates` keeps of samples sharing a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DuplicatesArg {
    /// Refuse the file, naming the first duplicate.
    Error,
    /// Keep the first sample at each timestamp.
    First,
    /// Keep the last sample at each timestamp.
    Last,
}

impl DuplicatesArg {
    /// The loader's setting.
    pub(crate) fn to_source(self) -> crate::sources::Duplicates {
        match self {
            DuplicatesArg::Error => crate::sources::Duplicates::Error,
            DuplicatesArg::First => crate::sources::Duplicates::First,
            DuplicatesArg::Last => crate::sources::Duplicates::Last,
        }
    }

    /// The flag's spelling, for notes.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DuplicatesArg::Error => "error",
            DuplicatesArg::First => "first",
            DuplicatesArg::Last => "last",
        }
    }
}

/// Input layouts `backtest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    /// By extension: .json is a Prometheus export, .csv/.parquet a table.
    Auto,
    /// A table: long format (series,timestamp,value), or timestamp plus a
    /// value column for a single series.
    Table,
    /// The JSON body of /api/v1/query_range, as saved by curl.
    Prometheus,
}

/// Flags of `foresight backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Recorded series: CSV or Parquet (long format, or timestamp plus a
    /// value column), or a saved Prometheus query_range answer (.json).
    #[arg(long, value_name = "FILE", required_unless_present = "prometheus_url")]
    pub input: Option<PathBuf>,

    /// Layout of --input.
    #[arg(long, value_enum, default_value_t = BacktestFormat::Auto)]
    pub format: BacktestFormat,

    /// Series id to replay; may be omitted when the input holds one series.
    #[arg(long, value_name = "ID")]
    pub series: Option<String>,

    /// How a table file is read, as for `forecast`.
    #[command(flatten)]
    pub file: FileInputArgs,

    /// Pull the series live from this Prometheus instead of a file
    /// (with --query, --start, --end).
    #[arg(long, value_name = "URL", conflicts_with = "input", requires_all = ["query", "start", "end"])]
    pub prometheus_url: Option<String>,

    /// PromQL for --prometheus-url; must return one series.
    #[arg(long, value_name = "PROMQL")]
    pub query: Option<String>,

    /// Start of the live pull (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,

    /// End of the live pull (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,

    /// Sampling step of the live pull [default: the metadata's step, 1m].
    #[arg(long, value_parser = parse_delta, value_name = "DURATION")]
    pub step: Option<chrono::TimeDelta>,

    /// What one replica carries, in the series' unit (sets the signal's
    /// target key in the metadata).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub target_per_pod: Option<f64>,

    /// Which signal the series is [default: the one the metadata names, else
    /// connections].
    #[arg(long, value_enum)]
    pub signal: Option<SignalArg>,

    /// Pod start-up delay: replicas requested at t serve from t + startup
    /// (0s: at once).
    #[arg(long, value_parser = parse_delta_or_zero, default_value = "2m", value_name = "DURATION")]
    pub startup: chrono::TimeDelta,

    /// Retrain interval.
    #[arg(long, value_parser = parse_delta, default_value = "1h", value_name = "DURATION")]
    pub retrain: chrono::TimeDelta,

    /// How often every replayed scaler decides [default: the data step, at
    /// most 15s: the HPA's sync period and serve's --evaluation-interval].
    /// 1m replays as earlier versions did.
    #[arg(long, value_parser = parse_delta, value_name = "DURATION")]
    pub tick: Option<chrono::TimeDelta>,

    /// Full model selection (every candidate validated) happens on multiples
    /// of this; the trainings in between refit the chosen model.
    #[arg(long, value_parser = parse_delta, default_value = "1d", value_name = "DURATION")]
    pub reselect: chrono::TimeDelta,

    /// Training window [default: the metadata's history, 21d].
    #[arg(long, value_parser = parse_delta, value_name = "DURATION")]
    pub history: Option<chrono::TimeDelta>,

    /// Replayed but not scored at the start (0s: score from the first tick).
    #[arg(long, value_parser = parse_delta_or_zero, default_value = "1d", value_name = "DURATION")]
    pub warmup: chrono::TimeDelta,

    /// The HPA's tolerance between foresight's count and the Deployment
    /// (Kubernetes' default 0.1; lower with HPAConfigurableTolerance).
    #[arg(long, default_value_t = 0.1, value_name = "RATIO")]
    pub hpa_tolerance: f64,

    /// ScaledObject metadata: `key=value` (repeatable), or a ScaledObject
    /// YAML file whose external trigger's metadata is used.
    #[arg(long, value_name = "KEY=VALUE|FILE")]
    pub metadata: Vec<String>,

    /// Write the report as JSON (atomically).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write the per-tick timeline as Parquet (atomically).
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,

    /// Draw demand against each policy's capacity as a PNG (atomically).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,

    /// Replay once per combination of metadata values and print one row
    /// each (repeatable: every pairing of the lists is run), e.g.
    /// `--sweep forecastQuantile=0.6,0.75,0.9 --sweep
    /// scaleDownStabilization=60s,300s`. Models are trained once per
    /// distinct training setting; --output then writes every run's report.
    #[arg(long, value_name = "KEY=V1,V2,...", conflicts_with_all = ["timeline", "png"])]
    pub sweep: Vec<String>,

    /// With --sweep: the largest acceptable ratio of foresight's
    /// under-provisioned minutes to the HPA's.
    #[arg(long, default_value_t = 0.2, value_name = "RATIO", requires = "sweep")]
    pub goal_under_provisioned: f64,

    /// With --sweep: the largest acceptable ratio of foresight's
    /// replica-hours to the HPA's.
    #[arg(long, default_value_t = 1.1, value_name = "RATIO", requires = "sweep")]
    pub goal_replica_hours: f64,

    /// With --sweep: also require foresight's flaps to be at most this
    /// multiple of the HPA's (1: no more flapping than the HPA, issue #4's
    /// bar). Unset, flaps are shown but not a goal.
    #[arg(long, value_name = "RATIO", requires = "sweep")]
    pub goal_flaps: Option<f64>,

    /// With --sweep: hold out this fraction of the scored span, e.g. 0.5.
    /// The sweep runs on the part before it; the cheapest and the calmest
    /// settings that meet the goals there (or the nearest, when none does)
    /// and the rest of the front are then replayed over the whole series
    /// and scored on the held-out part alone.
    #[arg(long, value_name = "FRACTION", requires = "sweep")]
    pub holdout: Option<f64>,

    /// With --holdout: split the held-out part into this many consecutive
    /// folds, each picked on everything before it (the sweep runs again)
    /// and scored on itself alone: several out-of-sample checks instead of
    /// one, at the cost of a sweep per fold.
    #[arg(long, default_value_t = 1, value_name = "K", requires = "holdout")]
    pub folds: usize,

    /// With --sweep: write the ScaledObject given with --metadata FILE to
    /// this file (atomically), its external trigger's metadata set to the
    /// pick (--pick): the setting picked before the last held-out part that
    /// still met the goals on it, or without --holdout the sweep's own pick.
    /// Nothing is written, and the command fails, when no pick qualifies.
    #[arg(long, value_name = "FILE", requires = "sweep")]
    pub write_pick: Option<PathBuf>,

    /// With --write-pick: which pick to write.
    #[arg(long, value_enum, default_value_t = PickArg::Calmest, requires = "write_pick")]
    pub pick: PickArg,
}

/// Which of a sweep's picks `--write-pick` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PickArg {
    /// The fewest flaps among the settings meeting the goals, then the
    /// fewest replica-hours.
    Calmest,
    /// The fewest replica-hours among the settings meeting the goals.
    Cheapest,
}

impl From<PickArg> for crate::backtest::PickKind {
    fn from(p: PickArg) -> Self {
        match p {
            PickArg::Calmest => Self::Calmest,
            PickArg::Cheapest => Self::Cheapest,
        }
    }
}

fn parse_delta(s: &str) -> Result<chrono::TimeDelta, String> {
    crate::config::parse_duration(s).map_err(|e| e.to_string())
}

/// A duration that may be zero: pods ready at once, nothing unscored.
fn parse_delta_or_zero(s: &str) -> Result<chrono::TimeDelta, String> {
    match crate::config::parse_duration(s) {
        Err(crate::config::DurationError::Zero { .. }) => Ok(chrono::TimeDelta::zero()),
        other => other.map_err(|e| e.to_string()),
    }
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

    /// After SIGTERM, keep serving (readiness off) this long before closing,
    /// while Kubernetes stops routing to the pod; a second signal stops at
    /// once [default: 5s].
    #[arg(long, env = "FORESIGHT_SHUTDOWN_DELAY", value_parser = parse_std_duration_or_zero, value_name = "DURATION")]
    pub shutdown_delay: Option<Duration>,

    /// How often models retrain on fresh history [default: 1h].
    #[arg(long, env = "FORESIGHT_RETRAIN_INTERVAL", value_parser = parse_std_duration, value_name = "DURATION")]
    pub retrain_interval: Option<Duration>,

    /// How often a full model selection runs; the retrains in between refit
    /// the chosen model [default: 1d].
    #[arg(long, env = "FORESIGHT_RESELECT_INTERVAL", value_parser = parse_std_duration, value_name = "DURATION")]
    pub reselect_interval: Option<Duration>,

    /// PEM certificate chain the gRPC server presents; turns TLS on, and
    /// needs --tls-key.
    #[arg(long, env = "FORESIGHT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "FORESIGHT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle: gRPC clients must present a certificate it signed
    /// (mutual TLS, KEDA's tlsClientCert/tlsClientKey); needs --tls-cert.
    #[arg(long, env = "FORESIGHT_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,

    /// Directory for state kept across restarts: model selections, so a
    /// restarted server refits instead of reselecting (created if missing).
    #[arg(long, env = "FORESIGHT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Upper bound on each Prometheus request [default: 10s].
    #[arg(long, env = "FORESIGHT_PROMETHEUS_TIMEOUT", value_parser = parse_std_duration, value_name = "DURATION")]
    pub prometheus_timeout: Option<Duration>,

    /// File holding a bearer token for Prometheus, re-read on every request.
    /// (FORESIGHT_PROMETHEUS_BEARER_TOKEN passes the token itself.)
    #[arg(
        long,
        env = "FORESIGHT_PROMETHEUS_BEARER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub prometheus_bearer_token_file: Option<PathBuf>,

    /// User for Prometheus basic auth; needs --prometheus-basic-auth-password-file.
    #[arg(
        long,
        env = "FORESIGHT_PROMETHEUS_BASIC_AUTH_USER",
        value_name = "USER"
    )]
    pub prometheus_basic_auth_user: Option<String>,

    /// File holding the Prometheus basic-auth password, re-read on every request.
    #[arg(
        long,
        env = "FORESIGHT_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub prometheus_basic_auth_password_file: Option<PathBuf>,

    /// PEM CA bundle trusted for an https Prometheus URL (besides the system's).
    #[arg(long, env = "FORESIGHT_PROMETHEUS_CA_FILE", value_name = "FILE")]
    pub prometheus_ca_file: Option<PathBuf>,

    /// Extra header on every Prometheus request, `NAME: VALUE`, e.g.
    /// `X-Scope-OrgID: tenant-a`; repeatable (newline-separated in the
    /// environment). Replaces the settings file's headers.
    #[arg(
        long = "prometheus-header",
        env = "FORESIGHT_PROMETHEUS_HEADERS",
        value_name = "NAME: VALUE",
        value_delimiter = '\n'
    )]
    pub prometheus_headers: Vec<String>,

    /// Remediation of what scaling cannot fix: `off`, `dry-run` (diagnose
    /// and record what would be done) or `enforce` [default: dry-run].
    #[arg(long, env = "FORESIGHT_REMEDIATION", value_enum, value_name = "MODE")]
    pub remediation: Option<RemediationArg>,

    /// Namespaces remediation may act in, comma-separated [default: all].
    #[arg(
        long,
        env = "FORESIGHT_REMEDIATION_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS"
    )]
    pub remediation_namespaces: Vec<String>,

    /// The Lease the replicas elect their remediation leader over, in
    /// POD_NAMESPACE; one per installation, so two in one namespace do not
    /// share a leader [default: foresight-remediation].
    #[arg(long, env = "FORESIGHT_LEASE_NAME", value_name = "NAME")]
    pub lease_name: Option<String>,

    /// Remediation audit log (JSON lines, fsync'd); required to enforce.
    /// (From the environment only, since they are secrets:
    /// FORESIGHT_WEBHOOK_URL sets the webhook humans are paged through, and
    /// FORESIGHT_ALERTS_TOKEN the bearer token POST /alerts requires.)
    #[arg(long, env = "FORESIGHT_AUDIT_LOG", value_name = "PATH")]
    pub audit_log: Option<PathBuf>,

    /// Rotate the audit log past this many MiB, to PATH.1, PATH.2, ...; 0
    /// never rotates [default: 16].
    #[arg(long, env = "FORESIGHT_AUDIT_LOG_ROTATE_MIB", value_name = "MIB")]
    pub audit_log_rotate_mib: Option<u64>,

    /// Rotated audit-log segments kept; older ones are deleted [default: 4].
    #[arg(long, env = "FORESIGHT_AUDIT_LOG_KEEP", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub audit_log_keep: Option<u32>,

    /// Body of the pages sent to FORESIGHT_WEBHOOK_URL: `slack` (`{"text"}`,
    /// for chat incoming webhooks) or `generic` (`{"text", "incident",
    /// "outcome"}`, for receivers that parse fields) [default: slack].
    #[arg(long, env = "FORESIGHT_PAGE_FORMAT", value_enum, value_name = "FORMAT")]
    pub page_format: Option<PageFormatArg>,
}

/// Page bodies of `foresight serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PageFormatArg {
    /// `{"text": ...}`: Slack, Mattermost, Google Chat.
    Slack,
    /// `{"text", "incident", "outcome"}`: the summary and the whole record.
    Generic,
}

/// Remediation modes of `foresight serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RemediationArg {
    /// No remediation engine.
    Off,
    /// Diagnose and record what would be done; change nothing.
    DryRun,
    /// Act within the guardrails.
    Enforce,
}

/// As [`parse_std_duration`], where zero is meaningful.
fn parse_std_duration_or_zero(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration_or_zero(s).map_err(|e| e.to_string())
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

    /// How a long-format file is read, as for `forecast`.
    #[command(flatten)]
    pub file: FileInputArgs,

    /// Nominal coverage of foresight's prediction interval.
    #[arg(long, value_name = "P", default_value_t = 0.95, value_parser = parse_level)]
    pub level: f64,

    /// Also consider Prophet in foresight's model selection (slow: several
    /// fits per series). Needs a binary built with `--features prophet`.
    #[arg(long)]
    pub prophet: bool,

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

/// Flags of `foresight forecast`. With the `inspect` subcommand its own
/// flags apply instead, so both `forecast --input ...` and
/// `forecast inspect --input ...` parse.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ForecastArgs {
    /// Look at one series closely instead of forecasting every series.
    #[command(subcommand)]
    pub command: Option<ForecastCommand>,

    /// Series to forecast: long format (series,timestamp,value), CSV or
    /// Parquet by extension.
    #[arg(long, value_name = "FILE", required = true)]
    pub input: Option<PathBuf>,

    /// How far to forecast past each series' end: steps (48) or a span (2d).
    #[arg(long, value_name = "H", required = true, value_parser = parse_horizon)]
    pub horizon: Option<Horizon>,

    /// Model choices shared with `inspect`.
    #[command(flatten)]
    pub model: ForecastModelArgs,

    /// How the file is read, shared with `inspect`.
    #[command(flatten)]
    pub file: FileInputArgs,

    /// Write the forecasts to this .csv or .parquet file (atomically)
    /// instead of CSV on stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// How `forecast` and `inspect` read their file (the loader's own hints
/// name these flags).
#[derive(Debug, Args)]
pub struct FileInputArgs {
    /// For a table without a series column: the column holding the values.
    #[arg(long, value_name = "NAME")]
    pub value_column: Option<String>,

    /// Samples of a series at the same timestamp: refuse the file, or keep
    /// the first or the last of them (daylight-saving repeats in real
    /// exports); a note counts the dropped.
    #[arg(long, value_enum, default_value_t = DuplicatesArg::Error)]
    pub duplicates: DuplicatesArg,
}

impl FileInputArgs {
    /// The loader's options.
    pub(crate) fn options(&self) -> crate::sources::LoadOptions {
        crate::sources::LoadOptions {
            value_column: self.value_column.clone(),
            duplicates: self.duplicates.to_source(),
        }
    }
}

/// Subcommands of `foresight forecast`.
#[derive(Debug, Subcommand)]
pub enum ForecastCommand {
    /// Fit one series and show the chosen model, its periods, its validation
    /// MASE, its interval coverage on a hidden tail, and a chart.
    Inspect(InspectArgs),
}

/// Flags of `foresight forecast inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Series file, as for `foresight forecast`.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    /// How the file is read, as for `foresight forecast`.
    #[command(flatten)]
    pub file: FileInputArgs,

    /// Series id; may be omitted when the file holds one series.
    #[arg(long, value_name = "ID")]
    pub series: Option<String>,

    /// How far to forecast: steps (48) or a span (2d).
    #[arg(long, value_name = "H", default_value = "48", value_parser = parse_horizon)]
    pub horizon: Horizon,

    /// Model choices shared with `forecast`.
    #[command(flatten)]
    pub model: ForecastModelArgs,

    /// History points shown before the forecast [default: 3 × horizon].
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub tail: Option<usize>,

    /// Also draw the chart as a PNG (atomically).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

/// Flags that choose and calibrate the model.
#[derive(Debug, Args)]
pub struct ForecastModelArgs {
    /// Nominal coverage of the prediction interval.
    #[arg(long, value_name = "P", default_value_t = 0.95, value_parser = parse_level)]
    pub level: f64,

    /// Seasonal periods: steps (24,168), spans (1d,1w), `auto` (test 1d and
    /// 1w against the data) or `none`.
    #[arg(long, value_name = "PERIODS", default_value = "auto", value_parser = parse_periods)]
    pub seasonality: PeriodsArg,

    /// Also consider Prophet, over the same seasonal periods as MSTL (slow:
    /// several fits per series). Needs a binary built with
    /// `--features prophet`.
    #[arg(long)]
    pub prophet: bool,
}

/// A forecast horizon as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// A number of steps of the series.
    Steps(usize),
    /// A span of time, rounded up to whole steps of each series.
    Span(chrono::TimeDelta),
}

/// Seasonal periods as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodsArg {
    /// Test one day and one week against the data.
    Auto,
    /// These periods, each in steps or as a span; empty models no season.
    Listed(Vec<Horizon>),
}

fn parse_horizon(s: &str) -> Result<Horizon, String> {
    let t = s.trim();
    if t.chars().all(|c| c.is_ascii_digit()) {
        return parse_positive(t).map(Horizon::Steps);
    }
    match crate::config::parse_duration(t) {
        Ok(d) if d > chrono::TimeDelta::zero() => Ok(Horizon::Span(d)),
        Ok(_) => Err(format!("expected a positive span, got {s:?}")),
        Err(e) => Err(format!(
            "expected a number of steps (48) or a span (2d): {e}"
        )),
    }
}

fn parse_periods(s: &str) -> Result<PeriodsArg, String> {
    match s.trim() {
        "auto" => Ok(PeriodsArg::Auto),
        "none" | "" => Ok(PeriodsArg::Listed(Vec::new())),
        list => list
            .split(',')
            .map(|p| parse_horizon(p).map_err(|e| format!("seasonal period {:?}: {e}", p.trim())))
            .collect::<Result<_, _>>()
            .map(PeriodsArg::Listed),
    }
}
