//! `PrometheusSource` against a real Prometheus server (no mocks).
//!
//! The Debian `prometheus` package provides `/usr/bin/prometheus` and
//! `/usr/bin/promtool` (`tests/install-deps.sh` installs it). The embedded
//! real trace is backfilled with `promtool tsdb create-blocks-from
//! openmetrics` into a temporary TSDB, one server is started on it, and the
//! checks run in order; the server is killed at the end even when a check
//! fails (a drop guard), and the last check stops it on purpose to see
//! `Unavailable` and the circuit breaker open.
//!
//! Connection settings are checked for real too: basic auth and TLS with a
//! private CA against a Prometheus started with `--web.config.file`, and
//! the bearer token and extra headers against a small recording HTTP server
//! in the test (Prometheus does not check bearer tokens itself), which also
//! plays a Prometheus that fails server-side.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use foresight::domain::Series;
use foresight::sources::{
    BreakerState, FileSource, HistoryCache, HistoryFetch, MetricSource, PrometheusSource,
    SourceError,
};

#[path = "support/prometheus.rs"]
mod prometheus_support;
use prometheus_support::Prometheus;

/// Request timeout given to the source under test.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Real NYC taxi demand (30-minute step), one series.
const TAXI: &str = "nyc_taxi_trips";
/// Two series of real taxi demand, `zone="a"` and `zone="b"`.
const ZONED: &str = "nyc_taxi_trips_zoned";
/// Points per zone.
const ZONED_LEN: usize = 1_000;
/// Real ELB request counts (5-minute step), gaps written as `NaN` samples.
const ELB: &str = "elb_requests_gappy";

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

/// Check 8: incremental history: after a first full load, moving the window
/// fetches only the tail, and the stitched series equals a full refetch
/// point for point, at the native step and at a step that needs chunks.
async fn incremental_history(src: &PrometheusSource, taxi: &Series) {
    let cache = HistoryCache::new();
    for (step, span) in [
        (taxi.step, TimeDelta::days(60)),
        (TimeDelta::minutes(15), TimeDelta::days(150)),
    ] {
        let mut end = taxi.start + TimeDelta::days(160);
        let (_, how) = cache
            .history(src, TAXI, end - span, end, step)
            .await
            .unwrap();
        assert_eq!(how, HistoryFetch::Full);
        for advance in [TimeDelta::hours(1), TimeDelta::days(1), TimeDelta::days(9)] {
            let last = end;
            end += advance;
            let (got, how) = cache
                .history(src, TAXI, end - span, end, step)
                .await
                .unwrap();
            assert_eq!(
                how,
                HistoryFetch::Tail {
                    from: last - step,
                    points: usize::try_from(advance.num_seconds() / step.num_seconds()).unwrap()
                        + 1,
                },
                "step {step}, advanced {advance}"
            );
            let full = src.history(TAXI, end - span, end, step).await.unwrap();
            // At 15m the window needs two range queries.
            assert!(full.len() >= 2_880, "{}", full.len());
            assert!(step == taxi.step || full.len() > 10_000, "{}", full.len());
            assert_series_eq(&got, &full, &format!("stitched at step {step}"));
        }
    }
}

/// Check 7: NaN samples are missing values, never numbers.
async fn nan_samples(src: &PrometheusSource, elb: &Series) {
    let gaps = elb.values.iter().filter(|v| v.is_nan()).count();
    assert!(gaps > 0, "elb_requests should have gaps");
    let step = elb.step;
    let dropped = src.health().dropped_samples;
    // Samples sit at hh:04, hh:09, ...: each 5m grid point sees the sample
    // one minute before it.
    let got = src
        .history(ELB, elb.start, last_time(elb) + TimeDelta::minutes(1), step)
        .await
        .unwrap();
    // Prometheus returns the NaN samples; each is dropped and counted.
    assert_eq!(
        src.health().dropped_samples - dropped,
        gaps as u64,
        "NaN samples dropped and counted"
    );
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
    let dropped = src.health().dropped_samples;
    assert_eq!(
        src.current(ELB, elb.timestamp(i)).await.unwrap(),
        None,
        "current at a NaN sample"
    );
    assert_eq!(src.health().dropped_samples, dropped + 1);
    assert_eq!(
        src.current(ELB, elb.timestamp(i - 1)).await.unwrap(),
        Some(elb.values[i - 1]),
        "current at the sample before the NaN"
    );
}

/// A read's outcome in a form two reads can be compared by: the value (no
/// data is `None`), or the error's kind and what it names.
fn outcome(r: &Result<Option<f64>, SourceError>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(SourceError::MultipleSeries { count, labels, .. }) => {
            format!("several series ({count}): {labels}")
        }
        // The instant endpoint prefixes `invalid parameter "query": `.
        Err(SourceError::QueryRejected { message, .. }) => format!(
            "rejected: {}",
            message.trim_start_matches("invalid parameter \"query\": ")
        ),
        Err(other) => format!("error: {other}"),
    }
}

/// A window of instants: the query, the first instant, the step, how many,
/// and which of them to compare with a live read.
type Window = (String, DateTime<Utc>, TimeDelta, usize, Vec<usize>);

/// Check 9: backfilled ticks read exactly what a live read at each tick
/// does. `instants` answers a window with range queries (chunked past
/// 10,000 instants); each instant is compared with `current` there: the
/// values, no data between sparse samples, NaN samples dropped and counted
/// alike, a filter under which two series come and go (several series only
/// where both pass it), scalars, and a rejected query.
async fn instants_match_current(src: &PrometheusSource, taxi: &Series, elb: &Series) {
    let nan = elb.values.iter().position(|v| v.is_nan()).unwrap();
    let zoned = format!("{ZONED} > 15000");
    let cases: Vec<Window> = vec![
        // Samples every 30 minutes read every 15 s: values, then no data.
        (
            TAXI.into(),
            taxi.timestamp(100) - TimeDelta::minutes(10),
            TimeDelta::seconds(15),
            600,
            (0..600).collect(),
        ),
        // 12,000 instants: two range queries; compared around the seam and
        // at every 97th instant (each comparison is one instant query).
        (
            TAXI.into(),
            taxi.timestamp(3),
            TimeDelta::minutes(5),
            12_000,
            (0..12_000)
                .filter(|i| i % 97 == 0 || (9_990..10_010).contains(i))
                .collect(),
        ),
        (
            zoned.clone(),
            taxi.timestamp(200),
            TimeDelta::minutes(1),
            1_440,
            (0..1_440).collect(),
        ),
        (
            ELB.into(),
            elb.timestamp(nan) - TimeDelta::minutes(30),
            TimeDelta::minutes(1),
            120,
            (0..120).collect(),
        ),
        (
            format!("scalar({TAXI})"),
            taxi.timestamp(50),
            TimeDelta::minutes(1),
            60,
            (0..60).collect(),
        ),
        (
            format!("rate({TAXI})"),
            taxi.timestamp(50),
            TimeDelta::minutes(1),
            3,
            (0..3).collect(),
        ),
        // `@ end()` is the query's end: each instant's own time when read
        // live, so the backfill reads these one by one too.
        (
            format!("{TAXI} @ end()"),
            taxi.timestamp(50),
            TimeDelta::minutes(10),
            12,
            (0..12).collect(),
        ),
        // Refused as a range query but answered (and refused differently)
        // as an instant one: the chunk falls back to instant reads, so each
        // instant gets the live read's own outcome.
        (
            format!("{TAXI}[5m]"),
            taxi.timestamp(50),
            TimeDelta::minutes(1),
            3,
            (0..3).collect(),
        ),
    ];
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for (query, from, step, n, compare) in &cases {
        let to = *from + *step * (*n as i32 - 1);
        let dropped = src.health().dropped_samples;
        let batch = src.instants(query, *from, to, *step).await;
        let dropped_batch = src.health().dropped_samples - dropped;
        assert_eq!(batch.len(), *n, "{query}: one read per instant");
        let mut dropped_each = 0;
        for &i in compare {
            let at = *from + *step * i as i32;
            let before = src.health().dropped_samples;
            let live = src.current(query, at).await;
            dropped_each += src.health().dropped_samples - before;
            assert_eq!(
                outcome(&batch[i]),
                outcome(&live),
                "{query} at {at} (#{i}): backfilled against live"
            );
            let kind = match &live {
                Ok(Some(_)) => "value",
                Ok(None) => "no data",
                Err(SourceError::MultipleSeries { .. }) => "several series",
                Err(_) => "rejected",
            };
            *kinds.entry(kind).or_default() += 1;
        }
        if compare.len() == *n {
            assert_eq!(dropped_batch, dropped_each, "{query}: NaN samples counted");
        }
    }
    eprintln!("instants compared with live reads: {kinds:?}");
    // Every kind of outcome was compared, not only values.
    for kind in ["value", "no data", "several series", "rejected"] {
        assert!(
            kinds.get(kind).is_some_and(|&n| n > 0),
            "no {kind}: {kinds:?}"
        );
    }
    let nan_reads = src.instants(ELB, elb.timestamp(nan), elb.timestamp(nan), elb.step);
    assert_eq!(
        outcome(&nan_reads.await[0]),
        "None",
        "a NaN sample is no data"
    );
    let err = src.current(&zoned, taxi.timestamp(200)).await;
    assert!(
        matches!(err, Ok(_) | Err(SourceError::MultipleSeries { .. })),
        "{err:?}"
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

    // Three consecutive failures opened the breaker: calls now fail at
    // once, naming the breaker and the last failure, without I/O.
    let health = src.health();
    let b = health.breaker.expect("a Prometheus source has a breaker");
    assert_eq!(b.state, BreakerState::Open, "{b:?}");
    assert_eq!(b.consecutive_failures, 3);
    assert_eq!(health.failures_total, 3);
    let t = Instant::now();
    let err = src.current(TAXI, taxi.timestamp(10)).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    match &err {
        SourceError::CircuitOpen {
            endpoint,
            failures,
            last_error,
            ..
        } => {
            assert_eq!(endpoint, url);
            assert_eq!(*failures, 3);
            assert!(last_error.contains("unavailable"), "{last_error}");
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert!(err.is_retryable() && !err.is_caller_error());
    assert!(err.to_string().contains("circuit breaker"), "{err}");
    assert_eq!(
        src.health().failures_total,
        3,
        "a refused call is no request"
    );
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
    incremental_history(&src, &taxi).await;
    instants_match_current(&src, &taxi, &elb).await;
    src.probe().await.expect("probe after the checks");
    let health = src.health();
    assert_eq!(health.failures_total, 0, "{health:?}");
    assert_eq!(health.breaker.unwrap().state, BreakerState::Closed);
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

/// A tiny HTTP server that records each request's headers and answers with
/// whatever the test sets: a Prometheus that checks bearer tokens and
/// tenant headers, or that fails server-side on demand.
struct Recorder {
    /// Base URL.
    url: String,
    /// Headers of every request, names lowercased, in arrival order.
    requests: std::sync::Arc<std::sync::Mutex<Vec<std::collections::HashMap<String, String>>>>,
    /// The next answers' status, content type and body.
    reply: std::sync::Arc<std::sync::Mutex<(u16, &'static str, String)>>,
    /// The accept loop; aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const JSON: &str = "application/json";

/// A Prometheus instant-vector answer with one sample of `value`.
fn vector_answer(value: f64) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1404172800,"{value}"]}}]}}}}"#
    )
}

/// A Prometheus error answer.
fn error_answer(kind: &str, message: &str) -> String {
    format!(r#"{{"status":"error","errorType":"{kind}","error":"{message}"}}"#)
}

impl Recorder {
    async fn start() -> Recorder {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reply = std::sync::Arc::new(std::sync::Mutex::new((200, JSON, vector_answer(42.0))));
        let (r, a) = (requests.clone(), reply.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (requests, reply) = (r.clone(), a.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    requests.lock().unwrap().push(headers);
                    let (status, content_type, body) = reply.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Recorder {
            url,
            requests,
            reply,
            task,
        }
    }

    fn answer(&self, status: u16, content_type: &'static str, body: String) {
        *self.reply.lock().unwrap() = (status, content_type, body);
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn last(&self, header: &str) -> Option<String> {
        self.requests.lock().unwrap().last()?.get(header).cloned()
    }
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_404_172_800, 0).unwrap()
}

/// The bearer token (from a file, re-read per request, so rotation needs no
/// restart) and extra headers reach the server on every request; the token
/// never shows in `Debug` output.
#[tokio::test]
async fn bearer_token_and_extra_headers_reach_the_server() {
    use foresight::sources::{Credential, PrometheusAuth, PrometheusOptions, Secret};
    let server = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "token-one\n").unwrap();
    let options = PrometheusOptions {
        timeout: TIMEOUT,
        auth: PrometheusAuth::Bearer(Credential::File(token.clone())),
        headers: vec![("X-Scope-OrgID".into(), "tenant-a".into())],
        ..PrometheusOptions::default()
    };
    let src = PrometheusSource::with_options(&server.url, options).unwrap();
    assert_eq!(src.current("up", at()).await.unwrap(), Some(42.0));
    assert_eq!(server.last("authorization").unwrap(), "Bearer token-one");
    assert_eq!(server.last("x-scope-orgid").unwrap(), "tenant-a");
    src.probe().await.unwrap();
    assert_eq!(server.last("x-scope-orgid").unwrap(), "tenant-a");

    std::fs::write(&token, "token-two").unwrap();
    src.current("up", at()).await.unwrap();
    assert_eq!(server.last("authorization").unwrap(), "Bearer token-two");

    // From the environment, as `Credential::Value`; never in Debug output.
    let options = PrometheusOptions {
        auth: PrometheusAuth::Bearer(Credential::Value(Secret::new("s3cr3t-t0ken"))),
        ..PrometheusOptions::default()
    };
    assert!(!format!("{options:?}").contains("s3cr3t"));
    let src = PrometheusSource::with_options(&server.url, options).unwrap();
    src.current("up", at()).await.unwrap();
    assert_eq!(server.last("authorization").unwrap(), "Bearer s3cr3t-t0ken");
    assert_eq!(server.last("x-scope-orgid"), None);

    // A token file that disappears is a source failure naming the file.
    std::fs::remove_file(&token).unwrap();
    let options = PrometheusOptions {
        auth: PrometheusAuth::Bearer(Credential::File(token.clone())),
        ..PrometheusOptions::default()
    };
    let src = PrometheusSource::with_options(&server.url, options).unwrap();
    let err = src.current("up", at()).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Unavailable { message, .. } if message.contains("token")),
        "{err:?}"
    );
}

/// Server-side failures (timeouts, overload) are retryable and open the
/// breaker; while open, nothing reaches the server; after the back-off one
/// probe closes it. Rejections of the query are answers: they never count
/// against the endpoint.
#[tokio::test]
async fn server_side_failures_open_the_breaker_and_rejections_do_not() {
    use foresight::sources::{BreakerConfig, PrometheusOptions};
    let server = Recorder::start().await;
    let backoff = Duration::from_millis(300);
    let options = PrometheusOptions {
        timeout: TIMEOUT,
        breaker: BreakerConfig {
            failure_threshold: 3,
            initial_backoff: backoff,
            max_backoff: Duration::from_secs(1),
        },
        ..PrometheusOptions::default()
    };
    let src = PrometheusSource::with_options(&server.url, options).unwrap();

    server.answer(
        503,
        JSON,
        error_answer("timeout", "query timed out in expression evaluation"),
    );
    for i in 0..3 {
        let err = src.current("up", at()).await.unwrap_err();
        match &err {
            SourceError::QueryFailed { message, .. } => {
                assert!(message.contains("timeout: query timed out"), "{message}")
            }
            other => panic!("#{i}: expected QueryFailed, got {other:?}"),
        }
        assert!(err.is_retryable() && !err.is_caller_error());
    }
    assert_eq!(server.count(), 3);
    let b = src.health().breaker.unwrap();
    assert_eq!((b.state, b.consecutive_failures), (BreakerState::Open, 3));
    for _ in 0..5 {
        let err = src.current("up", at()).await.unwrap_err();
        assert!(matches!(err, SourceError::CircuitOpen { .. }), "{err:?}");
        assert!(src.probe().await.is_err());
    }
    assert_eq!(server.count(), 3, "no request while the breaker is open");

    // The half-open probe succeeds: closed again.
    server.answer(200, JSON, vector_answer(7.0));
    tokio::time::sleep(backoff + Duration::from_millis(50)).await;
    assert_eq!(src.health().breaker.unwrap().state, BreakerState::HalfOpen);
    assert_eq!(src.current("up", at()).await.unwrap(), Some(7.0));
    assert_eq!(server.count(), 4);
    let b = src.health().breaker.unwrap();
    assert_eq!((b.state, b.consecutive_failures), (BreakerState::Closed, 0));
    assert_eq!(b.opened_total, 1);

    // The query's fault, with Prometheus' own message; the endpoint is fine.
    for (status, kind, message) in [
        (
            400,
            "bad_data",
            "1:5: parse error: unclosed left parenthesis",
        ),
        (422, "execution", "many-to-many matching not allowed"),
    ] {
        server.answer(status, JSON, error_answer(kind, message));
        for _ in 0..4 {
            let err = src.current("sum(", at()).await.unwrap_err();
            assert_rejected(err, "sum(", message);
        }
    }
    let b = src.health().breaker.unwrap();
    assert_eq!((b.state, b.consecutive_failures), (BreakerState::Closed, 0));

    // Credentials refused: a source failure that says what to check.
    server.answer(401, "text/plain", "Unauthorized".into());
    let err = src.current("up", at()).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Unavailable { message, .. }
            if message.contains("401") && message.contains("credentials")),
        "{err:?}"
    );
    // A gateway error page (HTML, not the API's JSON).
    server.answer(502, "text/html", "<html>Bad Gateway</html>".into());
    let err = src.current("up", at()).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Unavailable { message, .. } if message.contains("502")),
        "{err:?}"
    );
}

/// The password verified by the Prometheus web config below.
const PASSWORD: &str = "foresight-test-password";
/// bcrypt of `PASSWORD` at the minimum cost (4, so each request verifies
/// fast), made once with Python's libxcrypt binding:
/// `python3 -c "import crypt; print(crypt.crypt('foresight-test-password',
/// crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`.
const PASSWORD_BCRYPT: &str = "$2b$04$THb7yjgyPQF2v2t7Wfh.ueW2hv6BaURWnx/fjpyaCYnoW9QaJuATW";

/// Basic auth and TLS with a private CA, against a real Prometheus started
/// with `--web.config.file`: the right settings read data; a wrong
/// password, no password, or no CA are source failures that say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_tls_with_a_private_ca_against_a_real_server() {
    use foresight::sources::{Credential, PrometheusAuth, PrometheusOptions, Secret};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let pki = tempfile::tempdir().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "foresight test Prometheus CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "prometheus");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_pem = leaf.signed_by(&leaf_key, &issuer).unwrap().pem();
    let (cert, key) = (pki.path().join("tls.crt"), pki.path().join("tls.key"));
    std::fs::write(&cert, leaf_pem).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();

    let web = prometheus_support::Web {
        config: format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  foresight: {PASSWORD_BCRYPT}\n",
            cert.display(),
            key.display()
        ),
        https: true,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap(),
        ready_auth: Some(("foresight".into(), PASSWORD.into())),
    };
    let t0 = at();
    let mut om = String::from("# TYPE secured gauge\n");
    for i in 0..10 {
        sample(
            &mut om,
            "secured",
            "",
            t0 + TimeDelta::minutes(i),
            (i * 10) as f64,
        );
    }
    om.push_str("# EOF\n");
    let prom = Prometheus::start_with(&om, Some(web)).await;
    assert!(prom.url.starts_with("https://"));

    let source = |password: Option<&str>, ca: bool| {
        PrometheusSource::with_options(
            &prom.url,
            PrometheusOptions {
                timeout: TIMEOUT,
                auth: match password {
                    Some(p) => PrometheusAuth::Basic {
                        user: "foresight".into(),
                        password: Credential::Value(Secret::new(p)),
                    },
                    None => PrometheusAuth::None,
                },
                ca_pem: ca.then(|| ca_pem.as_bytes().to_vec()),
                ..PrometheusOptions::default()
            },
        )
        .unwrap()
    };

    let good = source(Some(PASSWORD), true);
    good.probe().await.expect("probe over TLS with basic auth");
    assert_eq!(
        good.current("secured", t0 + TimeDelta::minutes(4))
            .await
            .unwrap(),
        Some(40.0)
    );
    let h = good
        .history(
            "secured",
            t0,
            t0 + TimeDelta::minutes(9),
            TimeDelta::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(
        h.values,
        (1..10).map(|i| f64::from(i) * 10.0).collect::<Vec<_>>()
    );

    // A password file is re-read per request.
    let pw = prom.dir().join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let from_file = PrometheusSource::with_options(
        &prom.url,
        PrometheusOptions {
            timeout: TIMEOUT,
            auth: PrometheusAuth::Basic {
                user: "foresight".into(),
                password: Credential::File(pw.clone()),
            },
            ca_pem: Some(ca_pem.as_bytes().to_vec()),
            ..PrometheusOptions::default()
        },
    )
    .unwrap();
    from_file.probe().await.expect("password from a file");
    std::fs::write(&pw, "wrong").unwrap();
    let err = from_file.probe().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    for (what, src, fragment) in [
        ("wrong password", source(Some("wrong"), true), "401"),
        ("no credentials", source(None, true), "401"),
        ("no CA", source(Some(PASSWORD), false), "certificate"),
    ] {
        let err = src.probe().await.unwrap_err();
        assert!(
            matches!(&err, SourceError::Unavailable { .. }),
            "{what}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(fragment), "{what}: {msg}");
        assert!(!msg.contains(PASSWORD), "{what}: {msg}");
    }
}
