//! Prometheus HTTP API source.
//!
//! History comes from range queries split into chunks below Prometheus'
//! 11,000-points-per-series limit, on a grid aligned to the step so chunks
//! stitch without duplicates. Current values come from instant queries;
//! past ticks being backfilled from range queries evaluated at the ticks.
//!
//! Every request goes through the endpoint's [circuit breaker](super::breaker):
//! consecutive transport failures, timeouts and server-side errors open it,
//! and while it is open calls fail at once with [`SourceError::CircuitOpen`]
//! instead of piling up behind a dead server. A query Prometheus rejects
//! (syntax, type, several series) is the query's fault, not the endpoint's,
//! and counts as an answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt as _;
use prometheus_http_query::{Client, Error as PromError, response::Data};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::breaker::{Admission, Breaker, BreakerConfig};
use super::{BreakerStatus, MetricSource, SourceError, SourceHealth};
use crate::domain::Series;

/// Prometheus refuses range queries of more than 11,000 points per series;
/// stay safely below it.
const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// A secret (token, password) that never appears in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value; surrounding whitespace (a file's trailing
    /// newline) is not part of it.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().trim().to_string())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Given at start-up (from the environment).
    Value(Secret),
    /// Read from this file before every request, so a rotated token (a
    /// projected service-account token, a mounted Secret) is picked up
    /// without a restart.
    File(PathBuf),
}

impl Credential {
    async fn load(&self) -> Result<Secret, String> {
        match self {
            Credential::Value(s) => Ok(s.clone()),
            Credential::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(Secret::new)
                .map_err(|e| format!("cannot read credential file {}: {e}", path.display())),
        }
    }
}

/// How foresight authenticates to Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrometheusAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Credential),
    /// `Authorization: Basic ...`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Credential,
    },
}

/// Connection settings of a [`PrometheusSource`].
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusOptions {
    /// Upper bound on each request (also sent as Prometheus' own query
    /// `timeout`), so a hung server cannot stall a tick.
    pub timeout: Duration,
    /// Credentials sent with every request.
    pub auth: PrometheusAuth,
    /// PEM bundle of extra CAs trusted for `https` URLs (besides the
    /// system's), for servers with a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Extra headers on every request, e.g. `X-Scope-OrgID` for Mimir,
    /// Cortex and Thanos tenants.
    pub headers: Vec<(String, String)>,
    /// When the endpoint's circuit breaker opens and probes.
    pub breaker: BreakerConfig,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            auth: PrometheusAuth::None,
            ca_pem: None,
            headers: Vec::new(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// The breaker and the counters exported about the endpoint.
struct Guard {
    /// The circuit breaker.
    breaker: Mutex<Breaker>,
    /// The last failure, for `CircuitOpen` messages and readiness.
    last_error: Mutex<Option<String>>,
    /// Failed calls (transport, timeout, server-side), for `/metrics`.
    failures_total: AtomicU64,
    /// NaN or ±Inf samples dropped (read as missing), for `/metrics`.
    dropped_samples: AtomicU64,
}

/// Reads metrics from a Prometheus-compatible server.
pub struct PrometheusSource {
    /// The HTTP client, bound to the base URL.
    client: Client,
    /// Base URL without credentials, for messages.
    url: String,
    /// Upper bound on each request, so a hung server cannot stall a tick.
    timeout: Duration,
    /// Credentials added to each request.
    auth: PrometheusAuth,
    /// Circuit breaker and counters.
    guard: Guard,
}

/// `url` without user info, so messages and logs never carry a password.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The error and its causes, without URLs (which carry the query).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

impl PrometheusSource {
    /// Connects lazily to `url` with default options but this timeout; no
    /// request is made here.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SourceError> {
        Self::with_options(
            url,
            PrometheusOptions {
                timeout,
                ..PrometheusOptions::default()
            },
        )
    }

    /// Connects lazily to `url` with `options`; no request is made here,
    /// but the options are checked (headers, CA bundle).
    pub fn with_options(url: &str, options: PrometheusOptions) -> Result<Self, SourceError> {
        let shown = redact_url(url);
        let invalid = |message: String| SourceError::InvalidConfig {
            endpoint: shown.clone(),
            message,
        };
        // Checked here, not at the first read: `localhost:9090` or
        // `ftp://…` started a server whose every tick failed, never ready.
        let scheme = url
            .trim()
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            // Without a scheme, `user:password@host` does not parse as a
            // URL and nothing was redacted: keep only what follows the `@`.
            return Err(SourceError::InvalidConfig {
                endpoint: url
                    .trim()
                    .rsplit('@')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                message:
                    "the URL must start with http:// or https:// (e.g. http://prometheus:9090)"
                        .into(),
            });
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| invalid(format!("invalid header name {name:?}: {e}")))?;
            let v = HeaderValue::from_str(value.trim())
                .map_err(|e| invalid(format!("invalid value for header {name:?}: {e}")))?;
            headers.append(n, v);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .default_headers(headers);
        if let Some(pem) = &options.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("invalid CA bundle: {}", chain(&e))))?;
            if certs.is_empty() {
                return Err(invalid(
                    "the CA file holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
                        .into(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| invalid(format!("cannot build HTTP client: {}", chain(&e))))?;
        let client = Client::from(http, url)
            .map_err(|e| invalid(format!("invalid Prometheus URL: {}", chain(&e))))?;
        Ok(Self {
            client,
            url: shown,
            timeout: options.timeout,
            auth: options.auth,
            guard: Guard {
                breaker: Mutex::new(Breaker::new(options.breaker)),
                last_error: Mutex::new(None),
                failures_total: AtomicU64::new(0),
                dropped_samples: AtomicU64::new(0),
            },
        })
    }

    fn unavailable(&self, message: impl Into<String>) -> SourceError {
        SourceError::Unavailable {
            endpoint: self.url.clone(),
            message: message.into(),
        }
    }

    fn map_err(&self, query: &str, e: PromError) -> SourceError {
        use prometheus_http_query::error::PrometheusErrorType as T;
        match e {
            // The request's fault: Prometheus' own message goes back.
            PromError::Prometheus(p) if matches!(p.error_type(), T::BadData | T::Execution) => {
                SourceError::QueryRejected {
                    query: query.to_string(),
                    message: p.message().to_string(),
                }
            }
            PromError::Prometheus(p) if p.error_type() == T::NotFound => self.unavailable(format!(
                "not found ({}): is the URL the base of a Prometheus HTTP API?",
                p.message()
            )),
            // Timeouts, cancellation, overload, internal errors: the server's.
            PromError::Prometheus(p) => SourceError::QueryFailed {
                endpoint: self.url.clone(),
                query: query.to_string(),
                message: format!("{}: {}", p.error_type(), p.message()),
            },
            PromError::Client(c) => {
                let status = c.inner().and_then(reqwest::Error::status);
                match status {
                    _ if c.inner().is_some_and(reqwest::Error::is_timeout) => self.unavailable(
                        format!("no answer within the {:?} request timeout", self.timeout),
                    ),
                    Some(s) if s.as_u16() == 401 || s.as_u16() == 403 => self.unavailable(format!(
                        "HTTP {s}: check the bearer token or basic-auth credentials"
                    )),
                    Some(s) => self.unavailable(format!("HTTP {s}: {c}")),
                    None => self.unavailable(strip_url(&chain(&c))),
                }
            }
            other => self.unavailable(strip_url(&chain(&other))),
        }
    }

    /// Runs one request through the breaker and records its outcome.
    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let admission = self
            .guard
            .breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(Instant::now());
        let probe = match admission {
            Admission::Call => false,
            Admission::Probe => true,
            Admission::Refused { retry_in } => {
                let failures = self.breaker().consecutive_failures();
                let last_error = self
                    .guard
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_else(|| "unknown".into());
                return Err(SourceError::CircuitOpen {
                    endpoint: self.url.clone(),
                    failures,
                    last_error,
                    retry_in,
                });
            }
        };
        // A probe whose caller is cancelled must not leave the breaker
        // waiting for an outcome forever.
        let mut pending = ProbeGuard {
            guard: &self.guard,
            armed: probe,
        };
        let result = call.await;
        pending.armed = false;
        match &result {
            Err(e) if e.is_retryable() => {
                self.guard.failures_total.fetch_add(1, Ordering::Relaxed);
                *self
                    .guard
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                self.breaker().failure(Instant::now());
            }
            // An answer, even a rejection of the query, is a live endpoint.
            _ => self.breaker().success(),
        }
        result
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.guard.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` header value, loaded now (files are re-read).
    async fn authorization(&self) -> Result<Option<HeaderValue>, SourceError> {
        let value = match &self.auth {
            PrometheusAuth::None => return Ok(None),
            PrometheusAuth::Bearer(token) => {
                let t = token.load().await.map_err(|m| self.unavailable(m))?;
                format!("Bearer {}", t.expose())
            }
            PrometheusAuth::Basic { user, password } => {
                let p = password.load().await.map_err(|m| self.unavailable(m))?;
                format!(
                    "Basic {}",
                    base64(format!("{user}:{}", p.expose()).as_bytes())
                )
            }
        };
        let mut v = HeaderValue::from_str(&value).map_err(|_| {
            self.unavailable("the credential holds characters not allowed in an HTTP header")
        })?;
        // Keeps it out of hyper's and reqwest's debug output.
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// One range query through the breaker: `[start, end]` every `step_s`
    /// seconds.
    async fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_s: i64,
        auth: Option<HeaderValue>,
    ) -> Result<Data, SourceError> {
        self.guarded(async {
            let mut q = self
                .client
                .query_range(query, start, end, step_s as f64)
                .timeout(self.timeout.as_millis() as i64);
            if let Some(a) = auth {
                q = q.header(AUTHORIZATION, a);
            }
            q.get()
                .await
                .map(|r| r.into_inner().0)
                .map_err(|e| self.map_err(query, e))
        })
        .await
    }

    /// Instant reads of `query` at `n` instants from `first` every `step_s`
    /// seconds, 32 at once, in order.
    async fn one_by_one(
        &self,
        query: &str,
        first: i64,
        step_s: i64,
        n: usize,
    ) -> Vec<Result<Option<f64>, SourceError>> {
        let at = |k: usize| DateTime::from_timestamp(first + step_s * k as i64, 0);
        futures::stream::iter(0..n)
            .map(|k| async move {
                match at(k) {
                    Some(t) => self.current(query, t).await,
                    None => Err(SourceError::QueryRejected {
                        query: query.to_string(),
                        message: "instant out of range".into(),
                    }),
                }
            })
            .buffered(32)
            .collect()
            .await
    }

    fn count_dropped(&self, n: u64) {
        if n > 0 {
            self.guard.dropped_samples.fetch_add(n, Ordering::Relaxed);
        }
    }

    async fn instant(&self, query: &str, at: Option<i64>) -> Result<Data, SourceError> {
        let auth = self.authorization().await?;
        self.guarded(async {
            let mut q = self
                .client
                .query(query)
                .timeout(self.timeout.as_millis() as i64);
            if let Some(at) = at {
                q = q.at(at);
            }
            if let Some(a) = auth {
                q = q.header(AUTHORIZATION, a);
            }
            q.get()
                .await
                .map(|r| r.into_inner().0)
                .map_err(|e| self.map_err(query, e))
        })
        .await
    }
}

/// Standard base64 with padding (RFC 4648), for basic auth; too small a
/// need for a dependency.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Drops `(...url...)` parts that reqwest appends, which carry the query.
fn strip_url(s: &str) -> String {
    const MARK: &str = " for url (";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    // The query in the URL is percent-encoded, so its first `)` ends it.
    while let Some(a) = rest.find(MARK) {
        out.push_str(&rest[..a]);
        match rest[a + MARK.len()..].find(')') {
            Some(b) => rest = &rest[a + MARK.len() + b + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Resolves an abandoned half-open probe (see [`Breaker::abandon`]).
struct ProbeGuard<'a> {
    /// Where the breaker lives.
    guard: &'a Guard,
    /// True until the probe's outcome has been recorded.
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.guard
                .breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .abandon();
        }
    }
}

/// Checks a result has at most one series, naming the labels when not.
fn single<'a, T>(
    query: &str,
    items: &'a [T],
    labels: impl Fn(&T) -> String,
) -> Result<Option<&'a T>, SourceError> {
    match items {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(several(query, many.iter().map(labels))),
    }
}

/// The error for a query that selects several series, naming the first
/// three label sets in sorted order: Prometheus orders instant and range
/// results differently, and every read of the same data must say the same.
fn several(query: &str, labels: impl Iterator<Item = String>) -> SourceError {
    let mut labels: Vec<String> = labels.collect();
    labels.sort();
    SourceError::MultipleSeries {
        query: query.to_string(),
        count: labels.len(),
        labels: labels.into_iter().take(3).collect::<Vec<_>>().join(", "),
    }
}

/// Whether `query` holds an `@ start()` or `@ end()` modifier: those resolve
/// to a range query's own start and end, not to each step's time, so a
/// range query would not read what instant queries at the steps read.
fn anchored_to_the_range(query: &str) -> bool {
    let squeezed: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    squeezed.contains("start()") || squeezed.contains("end()")
}

/// A range query answered with something other than a range vector.
fn not_a_matrix(query: &str, data: &Data) -> SourceError {
    SourceError::QueryRejected {
        query: query.to_string(),
        message: format!(
            "expected a range vector, got {}",
            match data {
                Data::Vector(_) => "an instant vector",
                Data::Scalar(_) => "a scalar",
                Data::Matrix(_) => "a range vector",
            }
        ),
    }
}

fn fmt_labels(m: &HashMap<String, String>) -> String {
    let mut kv: Vec<_> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    kv.sort();
    format!("{{{}}}", kv.join(","))
}

impl MetricSource for PrometheusSource {
    fn describe(&self) -> String {
        format!("prometheus at {}", self.url)
    }

    fn check_query(&self, query: &str) -> Result<(), SourceError> {
        if query.trim().is_empty() {
            return Err(SourceError::QueryRejected {
                query: query.to_string(),
                message: "empty query".into(),
            });
        }
        Ok(())
    }

    async fn history(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: TimeDelta,
    ) -> Result<Series, SourceError> {
        let step_s = step.num_seconds().max(1);
        // Align the grid to multiples of the step so every chunk (and every
        // replica of foresight) asks for the same instants.
        let first = start.timestamp().div_euclid(step_s) * step_s + step_s;
        let last = end.timestamp().div_euclid(step_s) * step_s;
        let n = usize::try_from((last - first) / step_s + 1).unwrap_or(0);
        let mut values = vec![f64::NAN; n];
        // The series of the first chunk that had one: a later chunk with a
        // different label set is a second series, as it would be within
        // one range query, and must be aggregated rather than stitched.
        let mut labels: Option<String> = None;
        let mut dropped = 0u64;
        let auth = self.authorization().await?;
        let mut chunk_start = first;
        while chunk_start <= last {
            let chunk_end = (chunk_start + (MAX_POINTS_PER_QUERY - 1) * step_s).min(last);
            let data = self
                .range(query, chunk_start, chunk_end, step_s, auth.clone())
                .await?;
            match data {
                Data::Matrix(m) => {
                    if let Some(rv) = single(query, &m, |r| fmt_labels(r.metric()))? {
                        let these = fmt_labels(rv.metric());
                        match &labels {
                            Some(l) if *l != these => {
                                return Err(SourceError::MultipleSeries {
                                    query: query.to_string(),
                                    count: 2,
                                    labels: format!("{l}, {these}"),
                                });
                            }
                            Some(_) => {}
                            None => labels = Some(these),
                        }
                        for s in rv.samples() {
                            let idx = (s.timestamp() as i64 - first) / step_s;
                            if let Ok(i) = usize::try_from(idx)
                                && i < n
                            {
                                if s.value().is_finite() {
                                    values[i] = s.value();
                                } else {
                                    dropped += 1;
                                }
                            }
                        }
                    }
                }
                other => return Err(not_a_matrix(query, &other)),
            }
            chunk_start = chunk_end + step_s;
        }
        self.count_dropped(dropped);
        let start = DateTime::from_timestamp(first, 0).unwrap_or(start);
        Ok(Series::new(start, TimeDelta::seconds(step_s), values))
    }

    async fn current(&self, query: &str, at: DateTime<Utc>) -> Result<Option<f64>, SourceError> {
        let value = match self.instant(query, Some(at.timestamp())).await? {
            Data::Vector(v) => {
                single(query, &v, |iv| fmt_labels(iv.metric()))?.map(|iv| iv.sample().value())
            }
            Data::Scalar(s) => Some(s.value()),
            Data::Matrix(_) => {
                return Err(SourceError::QueryRejected {
                    query: query.to_string(),
                    message: "expected an instant vector or scalar, got a range vector".into(),
                });
            }
        };
        // NaN or ±Inf is no data, never a number the policy could act on.
        if value.is_some_and(|v| !v.is_finite()) {
            self.count_dropped(1);
        }
        Ok(value.filter(|v| v.is_finite()))
    }

    /// One range query per 10,000 instants instead of one instant query
    /// each. Prometheus evaluates a range query at `start + k × step` exactly
    /// as an instant query at that time (same engine, same lookback), so
    /// each instant gets what [`current`](MetricSource::current) would read:
    /// the one series present then, no data, or `MultipleSeries` when
    /// several are (a series that comes and goes over the range is several
    /// series only where they overlap).
    async fn instants(
        &self,
        query: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: TimeDelta,
    ) -> Vec<Result<Option<f64>, SourceError>> {
        // Range queries step in whole seconds from a whole second; other
        // grids are read one instant at a time rather than moved.
        let whole = |t: DateTime<Utc>| t.timestamp_subsec_nanos() == 0;
        if step < TimeDelta::seconds(1) || step.subsec_nanos() != 0 || !whole(from) {
            return super::each_instant(self, query, from, to, step).await;
        }
        let step_s = step.num_seconds();
        let (first, last) = (from.timestamp(), to.timestamp());
        if anchored_to_the_range(query) && last >= first {
            let n = usize::try_from((last - first) / step_s + 1).unwrap_or(0);
            return self.one_by_one(query, first, step_s, n).await;
        }
        if last < first {
            return Vec::new();
        }
        let total = usize::try_from((last - first) / step_s + 1).unwrap_or(0);
        let auth = match self.authorization().await {
            Ok(a) => a,
            Err(e) => return vec![Err(e); total],
        };
        let mut out = Vec::with_capacity(total);
        let mut dropped = 0u64;
        let mut chunk_start = first;
        while chunk_start <= last {
            let chunk_end = (chunk_start + (MAX_POINTS_PER_QUERY - 1) * step_s).min(last);
            let n = usize::try_from((chunk_end - chunk_start) / step_s + 1).unwrap_or(0);
            match self
                .range(query, chunk_start, chunk_end, step_s, auth.clone())
                .await
            {
                Ok(Data::Matrix(m)) => {
                    // Per instant: (series index, value) of every series
                    // with a sample there.
                    let mut present: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
                    for (j, rv) in m.iter().enumerate() {
                        for s in rv.samples() {
                            let offset = (s.timestamp() - chunk_start as f64) / step_s as f64;
                            let i = offset.round();
                            if i >= 0.0 && (i as usize) < n {
                                present[i as usize].push((j, s.value()));
                            }
                        }
                    }
                    out.extend(present.into_iter().map(|here| match here.as_slice() {
                        [] => Ok(None),
                        [(_, v)] if v.is_finite() => Ok(Some(*v)),
                        [_] => {
                            dropped += 1;
                            Ok(None)
                        }
                        many => Err(several(
                            query,
                            many.iter().map(|(j, _)| fmt_labels(m[*j].metric())),
                        )),
                    }));
                }
                // The breaker is open: every instant would be refused alike
                // (and is read again at the next evaluation). Other failures
                // fall back below, and if the endpoint is really down, the
                // first few instant reads open the breaker for the rest.
                Err(e @ SourceError::CircuitOpen { .. }) => {
                    out.extend(vec![Err(e); n]);
                }
                // A range query can fail where the instant queries would not,
                // or only at some instants: a limit only a long range hits
                // (max samples, max query length), a server-side timeout, a
                // join that matches duplicates at a few instants. One error
                // copied to every instant would leave this replica without
                // values replicas that read live have, so the chunk is read
                // one instant at a time instead (32 at once, in order), each
                // with its own outcome.
                Ok(_) | Err(_) => {
                    out.extend(self.one_by_one(query, chunk_start, step_s, n).await);
                }
            }
            chunk_start = chunk_end + step_s;
        }
        self.count_dropped(dropped);
        out
    }

    async fn probe(&self) -> Result<(), SourceError> {
        self.instant("vector(1)", None).await.map(|_| ())
    }

    fn health(&self) -> SourceHealth {
        let now = Instant::now();
        let b = self.breaker();
        SourceHealth {
            endpoint: self.url.clone(),
            breaker: Some(BreakerStatus {
                state: b.state(now),
                consecutive_failures: b.consecutive_failures(),
                opened_total: b.opened_total(),
                retry_in: b.retry_in(now),
                last_error: self
                    .guard
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            }),
            failures_total: self.guard.failures_total.load(Ordering::Relaxed),
            dropped_samples: self.guard.dropped_samples.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_url_credentials_never_show() {
        let opts = PrometheusOptions {
            auth: PrometheusAuth::Basic {
                user: "u".into(),
                password: Credential::Value(Secret::new("hunter2\n")),
            },
            ..PrometheusOptions::default()
        };
        let dbg = format!("{opts:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("Secret(***)"), "{dbg}");
        let src = PrometheusSource::with_options("http://me:pw@prom:9090/", opts).unwrap();
        assert_eq!(src.describe(), "prometheus at http://prom:9090/");
        assert_eq!(Secret::new("t\n").expose(), "t");
    }

    #[test]
    fn a_url_without_an_http_scheme_is_refused_at_start() {
        let err =
            PrometheusSource::with_options("admin:s3cret@prom:9090", PrometheusOptions::default())
                .err()
                .unwrap()
                .to_string();
        assert!(!err.contains("s3cret") && !err.contains("admin"), "{err}");
        for url in ["localhost:9090", "ftp://prom:9090", "prom"] {
            let err = PrometheusSource::with_options(url, PrometheusOptions::default())
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(
                err.to_string()
                    .contains("must start with http:// or https://"),
                "{err}"
            );
        }
        for url in ["http://prom:9090", "HTTPS://prom"] {
            assert!(PrometheusSource::with_options(url, PrometheusOptions::default()).is_ok());
        }
    }

    #[test]
    fn bad_headers_and_ca_bundles_are_refused_at_start() {
        let with = |headers: Vec<(&str, &str)>, ca: Option<&str>| {
            PrometheusSource::with_options(
                "http://prom:9090",
                PrometheusOptions {
                    headers: headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ca_pem: ca.map(|c| c.as_bytes().to_vec()),
                    ..PrometheusOptions::default()
                },
            )
            .err()
            .map(|e| e.to_string())
        };
        assert_eq!(with(vec![("X-Scope-OrgID", "tenant-a")], None), None);
        let e = with(vec![("X Scope", "a")], None).unwrap();
        assert!(e.contains("invalid header name \"X Scope\""), "{e}");
        let e = with(vec![("X-A", "a\nb")], None).unwrap();
        assert!(e.contains("invalid value for header \"X-A\""), "{e}");
        let e = with(vec![], Some("not a certificate")).unwrap();
        assert!(e.contains("CA"), "{e}");
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (raw, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(raw.as_bytes()), want, "{raw:?}");
        }
    }

    #[test]
    fn reqwest_urls_are_stripped_from_messages() {
        assert_eq!(
            strip_url("error sending request for url (http://p/api/v1/query?query=secret)"),
            "error sending request"
        );
        assert_eq!(strip_url("plain"), "plain");
        assert_eq!(
            strip_url("a: b for url (http://p/q?x=%29): client error (Connect): c"),
            "a: b: client error (Connect): c"
        );
    }
}
