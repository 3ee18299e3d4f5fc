//! `foresight serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::args::{LogFormatArg, PageFormatArg, RemediationArg, ServeArgs};
use crate::config::{LogFormat, PrometheusCredentials, ServeSettings, SourceChoice};
use crate::remediation::{PageFormat, RemediationSetting};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::sources::{
    AnySource, Credential, FileData, FileSource, LoadReport, MetricSource, PrometheusAuth,
    PrometheusOptions, PrometheusSource, Secret,
};

/// The environment variable that passes a Prometheus bearer token itself
/// (flags would show it in `ps`; settings files would store it).
const BEARER_TOKEN_ENV: &str = "FORESIGHT_PROMETHEUS_BEARER_TOKEN";

pub(super) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = resolve(args)?;
    init_tracing(&settings)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(serve(settings));
    // A model fit may be running on a blocking thread; don't wait long for it.
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Defaults, then the settings file, then environment and flags.
fn resolve(args: ServeArgs) -> anyhow::Result<ServeSettings> {
    let mut s = match &args.config {
        Some(path) => ServeSettings::from_file(path)?,
        None => ServeSettings::default(),
    };
    if let Some(v) = args.grpc_addr {
        s.grpc_addr = v;
    }
    if let Some(v) = args.http_addr {
        s.http_addr = v;
    }
    if args.prometheus_url.is_some() || args.metrics_file.is_some() {
        s.prometheus_url = args.prometheus_url;
        s.metrics_file = args.metrics_file;
    }
    if let Some(v) = args.log_format {
        s.log_format = match v {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    if let Some(v) = args.log_level {
        s.log_level = v;
    }
    if let Some(v) = args.evaluation_interval {
        s.evaluation_interval = v;
    }
    if let Some(v) = args.shutdown_delay {
        s.shutdown_delay = v;
    }
    if let Some(v) = args.retrain_interval {
        s.retrain_interval = v;
    }
    if let Some(v) = args.reselect_interval {
        s.reselect_interval = v;
    }
    if let Some(v) = args.tls_cert {
        s.tls_cert = Some(v);
    }
    if let Some(v) = args.tls_key {
        s.tls_key = Some(v);
    }
    if let Some(v) = args.tls_client_ca {
        s.tls_client_ca = Some(v);
    }
    if let Some(v) = args.state_dir {
        s.state_dir = Some(v);
    }
    if let Some(v) = args.prometheus_timeout {
        s.prometheus_timeout = v;
    }
    if let Some(v) = args.prometheus_bearer_token_file {
        s.prometheus_bearer_token_file = Some(v);
    }
    if let Some(v) = args.prometheus_basic_auth_user {
        s.prometheus_basic_auth_user = Some(v);
    }
    if let Some(v) = args.prometheus_basic_auth_password_file {
        s.prometheus_basic_auth_password_file = Some(v);
    }
    if let Some(v) = args.prometheus_ca_file {
        s.prometheus_ca_file = Some(v);
    }
    if let Some(v) = args.remediation {
        s.remediation = match v {
            RemediationArg::Off => RemediationSetting::Off,
            RemediationArg::DryRun => RemediationSetting::DryRun,
            RemediationArg::Enforce => RemediationSetting::Enforce,
        };
    }
    if !args.remediation_namespaces.is_empty() {
        s.remediation_namespaces = args.remediation_namespaces;
    }
    if let Some(v) = args.lease_name.filter(|v| !v.trim().is_empty()) {
        s.lease_name = Some(v.trim().to_string());
    }
    if let Some(v) = args.audit_log {
        s.audit_log = Some(v);
    }
    if let Some(v) = args.audit_log_rotate_mib {
        s.audit_log_rotate_mib = v;
    }
    if let Some(v) = args.audit_log_keep {
        s.audit_log_keep = v;
    }
    if !(1..=1000).contains(&s.audit_log_keep) {
        anyhow::bail!(
            "audit-log-keep is {}: keep 1 to 1000 rotated segments (0 would delete the trail rotation exists to keep; segment names have at most four digits)",
            s.audit_log_keep
        );
    }
    if let Some(v) = args.page_format {
        s.page_format = match v {
            PageFormatArg::Slack => PageFormat::Slack,
            PageFormatArg::Generic => PageFormat::Generic,
        };
    }
    // Checked before anything listens: no action without a durable record.
    if s.remediation == RemediationSetting::Enforce && s.audit_log.is_none() {
        anyhow::bail!(
            "--remediation enforce needs an audit log: set --audit-log or FORESIGHT_AUDIT_LOG"
        );
    }
    let headers: Vec<&String> = args
        .prometheus_headers
        .iter()
        .filter(|h| !h.trim().is_empty())
        .collect();
    if !headers.is_empty() {
        s.prometheus_headers = headers
            .into_iter()
            .map(|h| parse_header(h))
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(s)
}

fn init_tracing(s: &ServeSettings) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&s.log_level)
        .with_context(|| format!("invalid log filter {:?}", s.log_level))?;
    // Colour codes only on a terminal: in a file or a log collector they
    // were escape sequences in every line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match s.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

fn log_report(report: &LoadReport) {
    for (series, n) in &report.irregular_gaps {
        warn!(
            series,
            irregular_intervals = n,
            "irregular sampling; resampled onto the most common step"
        );
    }
    for (series, n) in &report.missing_values {
        info!(series, missing = n, "empty values kept as missing samples");
    }
    for (series, why) in &report.skipped {
        warn!(series, reason = %why, "series cannot be read and is not served; the others are");
    }
}

fn build_source(settings: &ServeSettings) -> anyhow::Result<AnySource> {
    Ok(match settings.source()? {
        SourceChoice::Embedded => {
            let (src, report) = FileSource::embedded().context("cannot load the embedded trace")?;
            log_report(&report);
            info!(series = ?src.data().series_ids(), "replaying the embedded NAB trace; use these series ids as queries");
            AnySource::File(src)
        }
        SourceChoice::File(path) => {
            let (data, report) = FileData::load(&path)?;
            log_report(&report);
            info!(path = %path.display(), series = ?data.series_ids(), rows = report.rows, "replaying metrics file");
            AnySource::File(FileSource::new(data))
        }
        SourceChoice::Prometheus(url) => {
            let token = std::env::var(BEARER_TOKEN_ENV)
                .ok()
                .filter(|t| !t.trim().is_empty());
            AnySource::Prometheus(Box::new(prometheus_source(&url, settings, token)?))
        }
    })
}

/// `NAME: VALUE` as given to `--prometheus-header`.
fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    match h.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => anyhow::bail!(
            "invalid --prometheus-header {h:?}: expected NAME: VALUE, e.g. \"X-Scope-OrgID: tenant-a\""
        ),
    }
}

/// The Prometheus source with the connection settings; files are checked
/// here so a wrong path stops start-up, not the first request.
fn prometheus_source(
    url: &str,
    s: &ServeSettings,
    env_token: Option<String>,
) -> anyhow::Result<PrometheusSource> {
    let readable = |path: &std::path::Path, what: &str| {
        std::fs::metadata(path)
            .map(|_| ())
            .with_context(|| format!("cannot read the Prometheus {what} {}", path.display()))
    };
    let auth = match s.prometheus_credentials(env_token.is_some())? {
        PrometheusCredentials::None => PrometheusAuth::None,
        PrometheusCredentials::BearerFromEnv => PrometheusAuth::Bearer(Credential::Value(
            Secret::new(env_token.unwrap_or_default()),
        )),
        PrometheusCredentials::BearerFile(path) => {
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read the Prometheus bearer token file {}",
                    path.display()
                )
            })?;
            PrometheusAuth::Bearer(Credential::File(path))
        }
        PrometheusCredentials::Basic {
            user,
            password_file,
        } => {
            readable(&password_file, "basic-auth password file")?;
            PrometheusAuth::Basic {
                user,
                password: Credential::File(password_file),
            }
        }
    };
    let ca_pem = s
        .prometheus_ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .with_context(|| format!("cannot read the Prometheus CA file {}", path.display()))
        })
        .transpose()?;
    let options = PrometheusOptions {
        timeout: s.prometheus_timeout,
        auth,
        ca_pem,
        headers: s
            .prometheus_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..PrometheusOptions::default()
    };
    let auth = match &options.auth {
        PrometheusAuth::None => "none",
        PrometheusAuth::Bearer(_) => "bearer",
        PrometheusAuth::Basic { .. } => "basic",
    };
    let timeout = options.timeout;
    let source = PrometheusSource::with_options(url, options)?;
    // Header names only: values may be tenant ids or keys. The URL is
    // described without any user info.
    info!(
        source = %source.describe(),
        timeout = ?timeout,
        auth,
        ca_file = ?s.prometheus_ca_file,
        headers = ?s.prometheus_headers.keys().collect::<Vec<_>>(),
        "Prometheus connection"
    );
    Ok(source)
}

async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    // TLS files are checked before anything listens: a bad path or PEM
    // stops start-up with the file named, rather than failing handshakes.
    let tls = settings
        .tls()?
        .map(|files| crate::grpc::GrpcTls::load(&files))
        .transpose()?;
    let grpc_tls = match &tls {
        None => "off",
        Some(t) if t.mutual() => "mutual",
        Some(_) => "on",
    };
    let source = build_source(&settings)?;
    let description = source.describe();
    let runtime = Runtime::new(
        source,
        RuntimeConfig {
            tick: settings.evaluation_interval,
            retrain: settings.retrain_interval,
            reselect: settings.reselect_interval,
            state_dir: settings.state_dir.clone(),
            first_answer_timeout: settings.first_answer_timeout,
            ..RuntimeConfig::default()
        },
    );
    let term = terminate_stream();
    let grpc_listener = TcpListener::bind(settings.grpc_addr)
        .await
        .with_context(|| format!("cannot listen for gRPC on {}", settings.grpc_addr))?;
    let http_listener = TcpListener::bind(settings.http_addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", settings.http_addr))?;
    info!(
        grpc_addr = %grpc_listener.local_addr()?,
        http_addr = %http_listener.local_addr()?,
        grpc_tls,
        source = %description,
        "listening"
    );

    let shutdown = CancellationToken::new();
    let draining = runtime.clone();
    tokio::spawn(on_signal(
        shutdown.clone(),
        term,
        settings.shutdown_delay,
        move || draining.begin_drain(),
    ));
    runtime.warm_up().await;

    let core = Arc::new(runtime.clone());
    // Remediation consumes the policy's signals on its own task; it never
    // blocks serving.
    // Pre-deploy baselines come from Prometheus; replayed files have no
    // deploys to compare against. A second client, so remediation's queries
    // never wait behind the evaluation loop's.
    let baselines = match settings.source()? {
        SourceChoice::Prometheus(_) if settings.remediation != RemediationSetting::Off => {
            Some(build_source(&settings)?)
        }
        _ => None,
    };
    let remediation =
        super::incidents::remediation_engine(&settings, Arc::clone(&core), baselines).await?;
    let mut extra_routes = axum::Router::new();
    let mut remediation_task = None;
    let mut election: Option<super::incidents::ElectionSlot> = None;
    if let Some(r) = remediation {
        let alerts =
            super::incidents::alerts_intake(r.engine.leadership()).map(|(routes, alerts)| {
                extra_routes = routes;
                alerts
            });
        let signals = runtime.subscribe_signals();
        remediation_task = Some(tokio::spawn(r.engine.run_with_alerts(
            signals,
            alerts,
            shutdown.clone(),
        )));
        election = Some(r.election);
    }
    let driver = {
        let shutdown = shutdown.clone();
        async move { runtime.run(shutdown.cancelled_owned()).await }
    };
    // If either server fails, stop everything rather than half-serve. Each
    // server's result goes to its slot, so a failure is still reported when
    // the other is cut short by the drain limit below.
    let grpc_slot = Arc::new(std::sync::Mutex::new(None));
    let http_slot = Arc::new(std::sync::Mutex::new(None));
    let grpc = {
        let shutdown = shutdown.clone();
        let core = Arc::clone(&core);
        let slot = Arc::clone(&grpc_slot);
        async move {
            let r = crate::grpc::serve_with_tls(core, grpc_listener, tls, shutdown.clone()).await;
            shutdown.cancel();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    };
    let http = {
        let shutdown = shutdown.clone();
        let slot = Arc::clone(&http_slot);
        async move {
            let r =
                crate::http::serve_with(core, extra_routes, http_listener, shutdown.clone()).await;
            shutdown.cancel();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    };
    // Graceful shutdown waits for every connection to finish; a client that
    // never completes its request (half a request line, a TCP connect that
    // never sends the HTTP/2 preface) held it forever, past the kubelet's
    // SIGKILL, so remediation was never stopped and the Lease never
    // released. Connections still open 5 s after shutdown began are
    // dropped with the servers.
    let servers = async { tokio::join!(driver, grpc, http) };
    let bounded = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_LIMIT).await;
    };
    tokio::select! {
        _ = servers => {}
        () = bounded => {
            let waiting: Vec<&str> = [
                (
                    grpc_slot.lock().unwrap_or_else(|e| e.into_inner()).is_none(),
                    "gRPC connections",
                ),
                (http_slot.lock().unwrap_or_else(|e| e.into_inner()).is_none(), "HTTP connections"),
            ]
            .into_iter()
            .filter_map(|(w, what)| w.then_some(what))
            .collect();
            warn!(
                limit = %crate::sources::fmt_wait(DRAIN_LIMIT),
                still = %if waiting.is_empty() { "the evaluation loop".to_string() } else { waiting.join(", ") },
                "still open after shutdown began; dropping"
            );
        }
    }
    let grpc = grpc_slot
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or(Ok(()));
    let http = http_slot
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or(Ok(()));
    // The engine finishes the incident in hand (bounded: an action can take
    // minutes), and only then is the Lease released, so the next leader
    // never acts while this replica still does.
    if let Some(task) = remediation_task {
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            // Its audit log shows the action as interrupted.
            warn!("remediation still acting 5 s after shutdown began; stopping it");
            abort.abort();
        }
    }
    if let Some(slot) = election {
        slot.lock().await.release().await;
    }
    grpc?;
    http.context("HTTP server failed")?;
    info!("stopped");
    Ok(())
}

/// How long open connections may keep the servers from stopping once
/// shutdown has begun (after the shutdown delay).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// SIGTERM's stream, taken before the servers listen: a SIGTERM that came
/// between "listening" and the handler's installation killed the process
/// with the default action instead of draining it.
#[cfg(unix)]
type Terminate = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Terminate = ();

fn terminate_stream() -> Terminate {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                None
            }
        }
    }
}

/// The next SIGTERM (never, without a stream).
async fn next_terminate(term: &mut Terminate) {
    #[cfg(unix)]
    if let Some(s) = term.as_mut() {
        s.recv().await;
        return;
    }
    let _ = term;
    std::future::pending::<()>().await;
}

/// Cancels `shutdown` on Ctrl-C at once, and on SIGTERM after `delay`
/// with readiness off meanwhile (see `ServeSettings::shutdown_delay`); any
/// signal during the delay cuts it short.
async fn on_signal(
    shutdown: CancellationToken,
    mut term: Terminate,
    delay: Duration,
    drain: impl FnOnce(),
) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            info!("interrupt received; shutting down");
            shutdown.cancel();
            return;
        }
        () = next_terminate(&mut term) => {}
        () = shutdown.cancelled() => return,
    }
    if delay.is_zero() {
        info!("SIGTERM received; shutting down");
        shutdown.cancel();
        return;
    }
    drain();
    info!(
        delay = %crate::sources::fmt_wait(delay),
        "SIGTERM received; still serving, not ready, while Kubernetes stops routing here, then shutting down (a second signal stops at once)"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => info!("shutdown delay over; shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupt received; shutting down now"),
        () = next_terminate(&mut term) => info!("second SIGTERM received; shutting down now"),
        () = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}
