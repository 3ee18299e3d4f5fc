//! `PrometheusSource` against a real Prometheus server (no mocks).
//!
//! The Debian `prometheus` package provides `/usr/bin/prometheus` and
//! `/usr/bin/promtool` (`tests/install-deps.sh` installs it). The embedded
//! real trace is backfilled with `promtool tsdb create-blocks-from
//! openmetrics` into a temporary TSDB, one server is started on it, and the
//! checks run in order; the server is killed at the end even when a check
//! fails (a drop guard), and the last check stops it on purpose to see
//! `Unavailable`.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use foresight::domain::Series;
use foresight::sources::{FileSource, MetricSource, PrometheusSource, SourceError};
use tempfile::TempDir;

const INSTALL_HINT: &str = "install it with `apt-get install -y prometheus` \
    (as root; or run tests/install-deps.sh)";

/// Request timeout given to the source under test.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long Prometheus may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Real NYC taxi demand (30-minute step), one series.
const TAXI: &str = "nyc_taxi_trips";
/// Two series of real taxi demand, `zone="a"` and `zone="b"`.
const ZONED: &str = "nyc_taxi_trips_zoned";
/// Points per zone.
const ZONED_LEN: usize = 1_000;
/// Real ELB request counts (5-minute step), gaps written as `NaN` samples.
const ELB: &str = "elb_requests_gappy";

/// Runs `tool --version`, failing (never skipping) when it is not installed.
fn require(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{tool} --version` failed ({}): {}; {INSTALL_HINT}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("`{tool}` is required but cannot be run ({e}); {INSTALL_HINT}"),
    }
}

/// Appends one OpenMetrics gauge sample line; `NaN` stays `NaN`.
fn sample(out: &mut String, name: &str, labels: &str, t: DateTime<Utc>, v: f64) {
    // f64's Display is the shortest string that round-trips, as Prometheus'
    // own formatting is, so values compare exactly.
    writeln!(out, "{name}{labels} {v} {}", t.timestamp()).unwrap();
}

/// The backfill file: every metric the checks query.
fn openmetrics(taxi: &Series, elb: &Series) -> String {
    let mut om = String::new();
    om.push_str(&format!("# TYPE {TAXI} gauge\n"));
    for (i, &v) in taxi.values.iter().enumerate() {
        sample(&mut om, TAXI, "", taxi.timestamp(i), v);
    }
    // Zone b is the next stretch of the real trace, on zone a's timestamps.
    om.push_str(&format!("# TYPE {ZONED} gauge\n"));
    for (zone, offset) in [("a", 0), ("b", ZONED_LEN)] {
        for i in 0..ZONED_LEN {
            let labels = format!("{{zone=\"{zone}\"}}");
            sample(
                &mut om,
                ZONED,
                &labels,
                taxi.timestamp(i),
                taxi.values[offset + i],
            );
        }
    }
    // The trace's gaps become explicit NaN samples.
    om.push_str(&format!("# TYPE {ELB} gauge\n"));
    for (i, &v) in elb.values.iter().enumerate() {
        sample(&mut om, ELB, "", elb.timestamp(i), v);
    }
    om.push_str("# EOF\n");
    om
}

/// A Prometheus server on a temporary TSDB; killed on drop.
struct Prometheus {
    child: Option<Child>,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    /// Backfills `om` and starts a server on it, waiting until it is ready.
    async fn start(om: &str) -> Prometheus {
        require("promtool");
        require("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let om_file = dir.path().join("backfill.om");
        std::fs::write(&om_file, om).unwrap();
        let t = Instant::now();
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            // Default 2h blocks make a 7-month backfill slow.
            .arg("--max-block-duration=720h")
            .arg(&om_file)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool backfill failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("backfill took {:?}", t.elapsed());

        let config = dir.path().join("prometheus.yml");
        // No scrape configs: the server only serves the backfilled blocks.
        std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            // The data is from 2014: retention must not delete it.
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // The checks depend on it; pin it rather than rely on the default.
            .arg("--query.lookback-delta=5m")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus ({e}); {INSTALL_HINT}"));
        let mut prom = Prometheus {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        prom.wait_ready().await;
        eprintln!("prometheus ready after {:?} at {}", t.elapsed(), prom.url);
        prom
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let ready = format!("{}/-/ready", self.url);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("prometheus exited early ({status}):\n{}", self.log_tail());
            }
            if let Ok(resp) = http.get(&ready).send().await
                && resp.status().as_u16() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {READY_WITHIN:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Kills the server and reaps it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `NaN` (missing) equals `NaN`; numbers must be identical.
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// Asserts two series have the same grid and the same values point for point.
fn assert_series_eq(got: &Series, want: &Series, what: &str) {
    assert_eq!(got.start, want.start, "{what}: start");
    assert_eq!(got.step, want.step, "{what}: step");
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<String> = (0..want.len())
        .filter(|&i| !same(got.values[i], want.values[i]))
        .take(5)
        .map(|i| {
            format!(
                "#{i} at {}: got {}, want {}",
                want.timestamp(i),
                got.values[i],
                want.values[i]
            )
        })
        .collect();
    assert!(bad.is_empty(), "{what}: values differ: {}", bad.join("; "));
}

fn last_time(s: &Series) -> DateTime<Utc> {
    s.timestamp(s.len() - 1)
}

/// Check 1: the training path: the full span at the native step, point for point.
/// 10,320 points, so two range queries stitched together.
async fn training_path(src: &PrometheusSource, taxi: &Series) {
    // The grid's first point is one step after `start`.
    let got = src
        .history(TAXI, taxi.start - taxi.step, last_time(taxi), taxi.step)
        .await
        .unwrap();
    assert_series_eq(&got, taxi, "history at the native 30m step");
}

/// Check 2: three chunks at a 15-minute step: the grid is exactly as long as
/// expected, samples land on their own timestamps, and the points between
/// samples are missing (5-minute lookback), so no chunk boundary duplicates,
/// drops or shifts a point.
async fn chunk_stitching(src: &PrometheusSource, url: &str, taxi: &Series) {
    let step = TimeDelta::minutes(15);
    // The server really refuses this span in one range query, so the source
    // must split it.
    let raw = format!(
        "{url}/api/v1/query_range?query={TAXI}&start={}&end={}&step=900",
        taxi.start.timestamp(),
        last_time(taxi).timestamp()
    );
    let resp = reqwest::get(&raw).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert!(
        status == 400 && body.contains("11,000 points"),
        "one range query over the span should be refused: {status} {body}"
    );

    // Unaligned bounds: the grid is still aligned to multiples of the step.
    let start = taxi.start - TimeDelta::minutes(8);
    let end = last_time(taxi) + TimeDelta::minutes(14);
    let got = src.history(TAXI, start, end, step).await.unwrap();
    let expected_len = 2 * taxi.len() - 1;
    assert!(expected_len > 20_000, "should need three chunks");
    let want = Series::new(
        taxi.start,
        step,
        (0..expected_len)
            .map(|i| {
                if i.is_multiple_of(2) {
                    taxi.values[i / 2]
                } else {
                    f64::NAN
                }
            })
            .collect(),
    );
    assert_series_eq(&got, &want, "history at 15m over the full span");
    // 10,001 points: one full chunk, then a chunk of a single point.
    let got = src
        .history(TAXI, taxi.start - step, taxi.start + step * 10_000, step)
        .await
        .unwrap();
    assert_eq!(got.len(), 10_001, "one full chunk plus one point");
    assert_series_eq(
        &got,
        &Series::new(taxi.start, step, want.values[..10_001].to_vec()),
        "history of 10,001 points at 15m",
    );
}

/// Check 3: the serving path: instant values at sample times; nothing before the
/// data (never zero).
async fn serving_path(src: &PrometheusSource, taxi: &Series) {
    for i in [0, 1, 4_999, 5_000, 10_000, taxi.len() - 1] {
        let t = taxi.timestamp(i);
        let got = src.current(TAXI, t).await.unwrap();
        assert_eq!(got, Some(taxi.values[i]), "current at sample #{i} ({t})");
        // Within the lookback the last sample is still in force...
        let got = src.current(TAXI, t + TimeDelta::minutes(4)).await.unwrap();
        assert_eq!(got, Some(taxi.values[i]), "current 4m after sample #{i}");
    }
    // ... beyond it there is no data, which is not zero.
    let gap = taxi.timestamp(100) + TimeDelta::minutes(10);
    assert_eq!(
        src.current(TAXI, gap).await.unwrap(),
        None,
        "current at {gap}"
    );
    let before = taxi.start - TimeDelta::hours(1);
    assert_eq!(
        src.current(TAXI, before).await.unwrap(),
        None,
        "current before the data starts"
    );
    let after = last_time(taxi) + TimeDelta::days(1);
    assert_eq!(
        src.current(TAXI, after).await.unwrap(),
        None,
        "current after the data ends"
    );
    // History before the data starts: the grid, all missing.
    let got = src
        .history(TAXI, before - TimeDelta::days(1), before, taxi.step)
        .await
        .unwrap();
    assert_eq!(got.len(), 48);
    assert!(got.values.iter().all(|v| v.is_nan()), "{got:?}");
}

fn assert_multiple_series(err: SourceError, query: &str) {
    let msg = err.to_string();
    match &err {
        SourceError::MultipleSeries {
            query: q,
            count,
            labels,
        } => {
            assert_eq!(q, query);
            assert_eq!(*count, 2, "{msg}");
            for label in [r#"zone="a""#, r#"zone="b""#] {
                assert!(labels.contains(label), "labels {labels:?} lack {label}");
                assert!(msg.contains(label), "message lacks {label}: {msg}");
            }
        }
        other => panic!("expected MultipleSeries, got {other:?}"),
    }
    assert!(
        msg.contains("sum by ()"),
        "message should suggest sum by (): {msg}"
    );
    assert!(err.is_caller_error());
}

/// Check 4: several series: a clear error naming them; the aggregate works.
async fn several_series(src: &PrometheusSource, taxi: &Series) {
    let start = taxi.start - taxi.step;
    let end = taxi.timestamp(ZONED_LEN - 1);
    let err = src.history(ZONED, start, end, taxi.step).await.unwrap_err();
    assert_multiple_series(err, ZONED);
    let at = taxi.timestamp(10);
    let err = src.current(ZONED, at).await.unwrap_err();
    assert_multiple_series(err, ZONED);

    let sum: Vec<f64> = (0..ZONED_LEN)
        .map(|i| taxi.values[i] + taxi.values[ZONED_LEN + i])
        .collect();
    let query = format!("sum({ZONED})");
    let got = src.history(&query, start, end, taxi.step).await.unwrap();
    assert_series_eq(
        &got,
        &Series::new(taxi.start, taxi.step, sum.clone()),
        "history of sum(zoned)",
    );
    let query = format!("sum by () ({ZONED})");
    assert_eq!(src.current(&query, at).await.unwrap(), Some(sum[10]));
    // One series selected by label is fine too.
    let query = format!("{ZONED}{{zone=\"b\"}}");
    assert_eq!(
        src.current(&query, at).await.unwrap(),
        Some(taxi.values[ZONED_LEN + 10])
    );
}

fn assert_rejected(err: SourceError, query: &str, fragment: &str) {
    match &err {
        SourceError::QueryRejected { query: q, message } => {
            assert_eq!(q, query);
            assert!(
                message.contains(fragment),
                "expected Prometheus' message with {fragment:?}, got {message:?}"
            );
        }
        other => panic!("expected QueryRejected, got {other:?}"),
    }
    assert!(err.is_caller_error());
}

/// Check 5: PromQL errors carry Prometheus' own message.
async fn rejected_queries(src: &PrometheusSource, taxi: &Series) {
    let at = taxi.timestamp(10);
    let err = src.current("sum(", at).await.unwrap_err();
    assert_rejected(err, "sum(", "parse error");
    let err = src
        .history("sum(", taxi.start, taxi.timestamp(100), taxi.step)
        .await
        .unwrap_err();
    assert_rejected(err, "sum(", "parse error");
    // Well-formed but ill-typed: rejected by Prometheus, not a transport error.
    let query = format!("rate({TAXI})");
    let err = src.current(&query, at).await.unwrap_err();
    assert_rejected(err, &query, "range vector");
}

/// Check 7: NaN samples are missing values, never numbers.
async fn nan_samples(src: &PrometheusSource, elb: &Series) {
    let gaps = elb.values.iter().filter(|v| v.is_nan()).count();
    assert!(gaps > 0, "elb_requests should have gaps");
    let step = elb.step;
    // Samples sit at hh:04, hh:09, ...: each 5m grid point sees the sample
    // one minute before it.
    let got = src
        .history(ELB, elb.start, last_time(elb) + TimeDelta::minutes(1), step)
        .await
        .unwrap();
    let want = Series::new(elb.start + TimeDelta::minutes(1), step, elb.values.clone());
    assert_series_eq(&got, &want, "history of a series with NaN samples");
    assert_eq!(got.observed(), elb.len() - gaps);

    // Prometheus does hold a sample (NaN) at every gap: without one, these
    // points would be missing because nothing was stored, not because the
    // stored value is NaN.
    let query = format!("count_over_time({ELB}[4m])");
    let counts = src
        .history(
            &query,
            elb.start,
            last_time(elb) + TimeDelta::minutes(1),
            step,
        )
        .await
        .unwrap();
    assert_series_eq(
        &counts,
        &Series::new(want.start, step, vec![1.0; elb.len()]),
        "one stored sample per slot, NaN included",
    );
    let i = elb.values.iter().position(|v| v.is_nan()).unwrap();
    assert_eq!(
        src.current(ELB, elb.timestamp(i)).await.unwrap(),
        None,
        "current at a NaN sample"
    );
    assert_eq!(
        src.current(ELB, elb.timestamp(i - 1)).await.unwrap(),
        Some(elb.values[i - 1]),
        "current at the sample before the NaN"
    );
}

fn assert_unavailable(err: SourceError, url: &str, elapsed: Duration, what: &str) {
    match &err {
        SourceError::Unavailable { endpoint, .. } => assert_eq!(endpoint, url, "{what}"),
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
    assert!(!err.is_caller_error());
    assert!(
        elapsed < TIMEOUT + Duration::from_secs(1),
        "{what}: took {elapsed:?}, timeout is {TIMEOUT:?}"
    );
}

/// Check 6: a stopped server: every call fails fast as `Unavailable`.
async fn unavailable(src: &PrometheusSource, url: &str, taxi: &Series) {
    let t = Instant::now();
    let err = src.probe().await.unwrap_err();
    assert_unavailable(err, url, t.elapsed(), "probe");
    let t = Instant::now();
    let err = src.current(TAXI, taxi.timestamp(10)).await.unwrap_err();
    assert_unavailable(err, url, t.elapsed(), "current");
    let t = Instant::now();
    let err = src
        .history(TAXI, taxi.start, last_time(taxi), taxi.step)
        .await
        .unwrap_err();
    assert_unavailable(err, url, t.elapsed(), "history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_source_against_a_real_server() {
    let (file, _) = FileSource::embedded().unwrap();
    let taxi = file.data().series("nyc_taxi").unwrap().clone();
    let elb = file.data().series("elb_requests").unwrap().clone();
    assert_eq!(taxi.len(), 10_320);
    assert_eq!(taxi.step, TimeDelta::minutes(30));
    assert_eq!(elb.step, TimeDelta::minutes(5));
    assert!(taxi.values.iter().all(|v| v.is_finite()));

    let mut prom = Prometheus::start(&openmetrics(&taxi, &elb)).await;
    let src = PrometheusSource::new(&prom.url, TIMEOUT).unwrap();
    src.probe().await.expect("probe of a running server");

    let checks = Instant::now();
    training_path(&src, &taxi).await;
    chunk_stitching(&src, &prom.url, &taxi).await;
    serving_path(&src, &taxi).await;
    several_series(&src, &taxi).await;
    rejected_queries(&src, &taxi).await;
    nan_samples(&src, &elb).await;
    src.probe().await.expect("probe after the checks");
    eprintln!(
        "checks against the running server took {:?}",
        checks.elapsed()
    );

    prom.stop();
    unavailable(&src, &prom.url, &taxi).await;
}

/// Check 6b: a server that accepts connections but never answers: the configured
/// timeout bounds every call.
#[tokio::test]
async fn a_hung_server_is_unavailable_after_the_timeout() {
    // The kernel completes the handshake from the backlog; nobody answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let src = PrometheusSource::new(&url, TIMEOUT).unwrap();
    let at = DateTime::from_timestamp(1_404_172_800, 0).unwrap();
    let t = Instant::now();
    let err = src.probe().await.unwrap_err();
    let elapsed = t.elapsed();
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(100),
        "{elapsed:?}"
    );
    assert_unavailable(err, &url, elapsed, "probe of a hung server");
    let t = Instant::now();
    let err = src.current(TAXI, at).await.unwrap_err();
    assert_unavailable(err, &url, t.elapsed(), "current from a hung server");
    drop(listener);
}
