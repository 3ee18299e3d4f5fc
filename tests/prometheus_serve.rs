//! `foresight serve --prometheus-url` end to end: the real binary against a
//! real Prometheus (backfilled with `promtool`, started on a free port,
//! stopped at the end), called over gRPC the way KEDA calls.
//!
//! * serving: the answers equal those of a second server replaying the
//!   same data from a file, tick for tick;
//! * outage: Prometheus is killed mid-run; the breaker opens, the count
//!   never drops, readiness fails, every answer comes within KEDA's 3 s,
//!   past `maxStaleness` the answer is `Unavailable` (the HPA holds); once
//!   Prometheus is back on the same port it recovers by itself;
//! * bad queries: a PromQL syntax error and a several-series result reach
//!   the caller as `InvalidArgument` with Prometheus' own message, and do
//!   not hold back a good ScaledObject or readiness.
//!
//! The data is synthetic demand around the wall clock (from three days ago
//! to two hours ahead), since serving reads at the current time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use foresight::grpc::proto::external_scaler_client::ExternalScalerClient;
use foresight::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use foresight::runtime::METRIC_NAME;
use tonic::Code;
use tonic::transport::Channel;

#[path = "support/prometheus.rs"]
mod prometheus_support;
mod support;
use prometheus_support::Prometheus;

/// KEDA's budget for an answer.
const KEDA_BUDGET: Duration = Duration::from_secs(3);
/// The demand series: the same name is a Prometheus metric and a file
/// series id, so one query works against both sources.
const DEMAND: &str = "foresight_demand";
/// Two series of the same metric, labelled `zone`.
const ZONED: &str = "foresight_demand_zoned";

/// Demand at `t`: a daily cycle, an hourly ripple and a deterministic
/// jitter, in connections (target 100 per replica: about 5 to 17 replicas).
fn demand(t: i64) -> f64 {
    let day = (t as f64 / 86_400.0) * std::f64::consts::TAU;
    let hour = (t as f64 / 3_600.0) * std::f64::consts::TAU;
    let jitter = ((t / 60).wrapping_mul(2_654_435_761) % 97) as f64;
    (1_000.0 + 550.0 * day.sin() + 120.0 * hour.sin() + jitter).round()
}

/// One minute samples from three days ago to two hours ahead, as a
/// long-format CSV and as OpenMetrics for `promtool`.
fn data() -> (String, String) {
    let now = Utc::now().timestamp() / 60 * 60;
    let (from, to) = (now - 3 * 86_400, now + 2 * 3_600);
    let mut csv = String::from("series,timestamp,value\n");
    let mut om = format!("# TYPE {DEMAND} gauge\n");
    let mut zoned = format!("# TYPE {ZONED} gauge\n");
    for t in (from..=to).step_by(60) {
        let v = demand(t);
        writeln!(csv, "{DEMAND},{t},{v}").unwrap();
        writeln!(om, "{DEMAND} {v} {t}").unwrap();
        for zone in ["a", "b"] {
            writeln!(zoned, "{ZONED}{{zone=\"{zone}\"}} {v} {t}").unwrap();
        }
    }
    om.push_str(&zoned);
    om.push_str("# EOF\n");
    (csv, om)
}

fn scaled_object(name: &str, pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: name.into(),
        namespace: "shop".into(),
        scaler_metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

fn metrics_request(so: &ScaledObjectRef) -> GetMetricsRequest {
    GetMetricsRequest {
        scaled_object_ref: Some(so.clone()),
        metric_name: METRIC_NAME.into(),
    }
}

async fn client(server: &support::Server) -> ExternalScalerClient<Channel> {
    ExternalScalerClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap()
}

async fn http(server: &support::Server, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{}{path}", server.http))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_ready(server: &support::Server, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = http(server, "/readyz").await;
        if code == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready within {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn decision(server: &support::Server, name: &str) -> serde_json::Value {
    let (code, body) = http(
        server,
        &format!("/api/v1/scaledobjects/shop/{name}/decision"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// One GetMetrics, timed against KEDA's budget.
async fn get_metrics(
    c: &mut ExternalScalerClient<Channel>,
    so: &ScaledObjectRef,
) -> Result<i64, tonic::Status> {
    let t = Instant::now();
    let r = c.get_metrics(metrics_request(so)).await;
    let elapsed = t.elapsed();
    assert!(
        elapsed < KEDA_BUDGET,
        "GetMetrics took {elapsed:?}, beyond KEDA's {KEDA_BUDGET:?}"
    );
    r.map(|r| r.into_inner().metric_values[0].metric_value)
}

/// The value of an unlabelled or single-label sample line in /metrics.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .map(support::without_trigger)
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_prometheus_equal_answers_from_the_same_data_in_a_file() {
    let (csv, om) = data();
    let prom = Prometheus::start(&om).await;
    let file = prom.dir().join("demand.csv");
    std::fs::write(&file, csv).unwrap();
    let common = ["--evaluation-interval", "5s", "--retrain-interval", "1h"];
    let from_prom = support::serve(
        &[&common[..], &["--prometheus-url", &prom.url]].concat(),
        &[],
    );
    let from_file = support::serve(
        &[&common[..], &["--metrics-file", file.to_str().unwrap()]].concat(),
        &[],
    );
    // Predictive, so training reads history through chunked range queries
    // on one side and the file on the other.
    let so = scaled_object(
        "orders",
        &[
            ("connectionsQuery", DEMAND),
            ("connectionsTarget", "100"),
            ("minReplicaCount", "1"),
            ("maxReplicaCount", "50"),
            ("history", "2d"),
            ("seasonality", "1d"),
        ],
    );
    let mut clients = Vec::new();
    for server in [&from_prom, &from_file] {
        let mut c = client(server).await;
        c.get_metric_spec(so.clone()).await.unwrap();
        clients.push(c);
    }
    for server in [&from_prom, &from_file] {
        wait_ready(server, Duration::from_secs(45)).await;
        // Readiness turns as training finishes; the decision re-evaluated
        // with the model follows a moment later.
        let deadline = Instant::now() + Duration::from_secs(10);
        while decision(server, "orders").await["prediction"]
            .to_string()
            .contains("pending")
        {
            assert!(Instant::now() < deadline, "no decision with a model");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Compare whole decisions at the same ticks, and what GetMetrics serves.
    // Each decision replays the last 30 minutes of ticks, including ticks
    // served by the previous hour's model; a replica whose training or
    // reads of such a tick are still being retried differs there until the
    // retry lands (seen once in a full-suite run, on the live MASE only). So
    // a differing tick is reported, and the test needs three identical ticks
    // before the deadline: a lasting difference still fails.
    let mut compared = 0;
    let mut differing = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last_at = None;
    while compared < 3 {
        assert!(
            Instant::now() < deadline,
            "only {compared} identical ticks in time; differing: {differing:#?}"
        );
        let a = decision(&from_prom, "orders").await;
        let b = decision(&from_file, "orders").await;
        let served_a = get_metrics(&mut clients[0], &so).await.unwrap();
        let served_b = get_metrics(&mut clients[1], &so).await.unwrap();
        let (a2, b2) = (
            decision(&from_prom, "orders").await,
            decision(&from_file, "orders").await,
        );
        // Only when no tick passed in between.
        if a["at"] == b["at"] && a == a2 && b == b2 && last_at.as_ref() != Some(&a["at"]) {
            if a != b {
                eprintln!("decisions differ at {}: {a} against {b}", a["at"]);
                last_at = Some(a["at"].clone());
                differing.push((a, b));
                tokio::time::sleep(Duration::from_millis(700)).await;
                continue;
            }
            assert_eq!(served_a, served_b, "served counts differ at {}", a["at"]);
            assert_eq!(served_a, a["desiredReplicas"].as_i64().unwrap());
            let at = DateTime::parse_from_rfc3339(a["at"].as_str().unwrap())
                .unwrap()
                .to_utc();
            assert_eq!(
                a["readings"][0]["observed"].as_f64(),
                Some(demand(at.timestamp() / 60 * 60)),
                "observed the sample in force at {at}"
            );
            eprintln!(
                "tick {}: {served_a} replicas, prediction {}",
                a["at"], a["prediction"]["status"]
            );
            last_at = Some(a["at"].clone());
            compared += 1;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let metrics = http(&from_prom, "/metrics").await.1;
    assert_eq!(
        metric(&metrics, "foresight_source_breaker_state{state=\"closed\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "foresight_source_failures_total"),
        Some(0.0)
    );

    // The first evaluation backfilled 4 h 20 min of 5 s ticks (3,120: the
    // replay reaches back as far as a descent from 50 to 1 can take), with
    // range queries, not one instant query per tick. Prometheus counts its
    // own requests.
    let own = reqwest::get(format!("{}/metrics", prom.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests = |handler: &str| {
        metric(
            &own,
            &format!("prometheus_http_requests_total{{code=\"200\",handler=\"{handler}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let (instant, range) = (requests("/api/v1/query"), requests("/api/v1/query_range"));
    eprintln!("prometheus answered {instant} instant and {range} range queries");
    assert!(range >= 1.0, "no range query: {range}");
    assert!(
        instant < 200.0,
        "{instant} instant queries: past ticks were read one by one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_opens_the_breaker_holds_the_count_and_recovers_by_itself() {
    let (_, om) = data();
    let mut prom = Prometheus::start(&om).await;
    let server = support::serve(
        &[
            "--prometheus-url",
            &prom.url,
            "--evaluation-interval",
            "2s",
            "--prometheus-timeout",
            "2s",
        ],
        &[],
    );
    let max_staleness = 12;
    let so = scaled_object(
        "checkout",
        &[
            ("connectionsQuery", DEMAND),
            ("connectionsTarget", "100"),
            ("minReplicaCount", "1"),
            ("maxReplicaCount", "50"),
            ("mode", "reactive"),
            ("maxStaleness", &format!("{max_staleness}s")),
        ],
    );
    let mut c = client(&server).await;
    c.get_metric_spec(so.clone()).await.unwrap();
    wait_ready(&server, Duration::from_secs(30)).await;
    let before = get_metrics(&mut c, &so).await.unwrap();
    // maxStaleness counts from the last successful read, not from the stop:
    // that read is up to an evaluation interval old when Prometheus stops,
    // older when a tick runs late on a loaded machine. The gauge reports
    // its age as of the latest tick, which may itself be one interval old.
    let staleness = "foresight_data_staleness_seconds{scaledobject=\"shop/checkout\"}";
    let age_at_stop = metric(&http(&server, "/metrics").await.1, staleness).unwrap_or(0.0);
    let evaluation_interval = 2.0;
    eprintln!("serving {before} replicas, data {age_at_stop} s old; stopping Prometheus");

    prom.stop();
    let stopped = Instant::now();
    let (mut saw_open, mut saw_unready, mut saw_note) = (false, false, false);
    let (mut held, mut unavailable) = (0, 0);
    // Past maxStaleness by a few ticks.
    while stopped.elapsed() < Duration::from_secs(max_staleness + 8) {
        match get_metrics(&mut c, &so).await {
            Ok(v) => {
                assert!(
                    v >= before,
                    "scaled down to {v} from {before} on missing data"
                );
                held += 1;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                assert!(s.message().contains("maxStaleness"), "{}", s.message());
                assert!(
                    stopped.elapsed().as_secs_f64() + age_at_stop + 2.0 * evaluation_interval
                        >= max_staleness as f64,
                    "Unavailable {:?} after the stop, with data {age_at_stop} s old then: before maxStaleness: {}",
                    stopped.elapsed(),
                    s.message()
                );
                unavailable += 1;
            }
        }
        let (code, body) = http(&server, "/readyz").await;
        if code == 503 {
            saw_unready = true;
            let r: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(r["sourceOk"], false, "{body}");
            saw_open |= r["breaker"] == "open";
        }
        let d = decision(&server, "checkout").await;
        let notes = d["notes"].to_string();
        saw_note |= notes.contains("circuit breaker") && notes.contains("maxStaleness");
        let metrics = http(&server, "/metrics").await.1;
        saw_open |= metric(&metrics, "foresight_source_breaker_state{state=\"open\"}") == Some(1.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(saw_unready, "/readyz never failed during the outage");
    assert!(saw_open, "the breaker never showed open");
    assert!(saw_note, "the decision never explained the outage");
    assert!(
        held > 0 && unavailable > 0,
        "held {held}, unavailable {unavailable}"
    );
    let metrics = http(&server, "/metrics").await.1;
    let stale = metric(&metrics, staleness).unwrap();
    assert!(stale >= max_staleness as f64, "{metrics}");
    assert!(metric(&metrics, "foresight_source_failures_total").unwrap() >= 3.0);

    eprintln!("restarting Prometheus after {:?}", stopped.elapsed());
    prom.restart().await;
    let restarted = Instant::now();
    loop {
        let ok = get_metrics(&mut c, &so).await.is_ok();
        if ok && http(&server, "/readyz").await.0 == 200 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "no recovery 30 s after Prometheus came back: {}",
            http(&server, "/readyz").await.1
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("recovered {:?} after the restart", restarted.elapsed());
    let metrics = http(&server, "/metrics").await.1;
    assert_eq!(
        metric(&metrics, "foresight_source_breaker_state{state=\"closed\"}"),
        Some(1.0)
    );
    let d = decision(&server, "checkout").await;
    assert!(
        !d["notes"].to_string().contains("maxStaleness"),
        "{}",
        d["notes"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_invalid_argument_with_prometheus_own_message() {
    let (_, om) = data();
    let prom = Prometheus::start(&om).await;
    let server = support::serve(
        &["--prometheus-url", &prom.url, "--evaluation-interval", "3s"],
        &[],
    );
    let mut c = client(&server).await;
    let meta = |query: &str| {
        vec![
            ("queueDepthQuery", query.to_string()),
            ("queueDepthTarget", "100".to_string()),
            ("mode", "reactive".to_string()),
        ]
    };
    let so = |name: &str, query: &str| {
        let m = meta(query);
        let pairs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (*k, v.as_str())).collect();
        scaled_object(name, &pairs)
    };
    let good = so("good", DEMAND);
    let syntax = so("syntax", "sum(foresight_demand");
    let several = so("several", ZONED);
    // A valid query that matches nothing (a typo in a label value, or a
    // series that exists only while pods do): no data, not a rejection.
    let nothing = so("nothing", "sum(foresight_demand{queue=\"ordres\"})");

    for obj in [&good, &syntax, &several, &nothing] {
        // Registration stays free of I/O, so it always succeeds.
        c.get_metric_spec(obj.clone()).await.unwrap();
    }
    let err = get_metrics(&mut c, &syntax).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // Prometheus' own parse error.
    assert!(
        err.message().contains("parse error") && err.message().contains("shop/syntax"),
        "{}",
        err.message()
    );
    let err = get_metrics(&mut c, &several).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    for fragment in ["2 series", "zone=\"a\"", "zone=\"b\"", "sum by ()"] {
        assert!(err.message().contains(fragment), "{}", err.message());
    }
    // IsActive says the same.
    let err = c.is_active(several.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // The good one is served, and readiness lists the bad ones without
    // failing for them.
    let v = get_metrics(&mut c, &good).await.unwrap();
    assert!((1..=100).contains(&v), "{v}");
    wait_ready(&server, Duration::from_secs(20)).await;
    let r: serde_json::Value = serde_json::from_str(&http(&server, "/readyz").await.1).unwrap();
    let invalid = r["invalid"].to_string();
    assert!(
        invalid.contains("shop/syntax") && invalid.contains("shop/several"),
        "{r}"
    );

    // The query that matches nothing is Unavailable, listed under noData,
    // and holds readiness no more than the rejected ones: it kept every
    // replica unready, for every ScaledObject, for as long as it matched
    // nothing.
    let err = get_metrics(&mut c, &nothing).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    wait_ready(&server, Duration::from_secs(20)).await;
    let r: serde_json::Value = serde_json::from_str(&http(&server, "/readyz").await.1).unwrap();
    assert!(r["noData"].to_string().contains("shop/nothing"), "{r}");
    // Once evaluated, its calls are answered at once: each waited the whole
    // 2 s first-answer wait, so GetMetrics and IsActive together outlasted
    // KEDA's 3 s budget at every poll.
    let started = Instant::now();
    let err = c.get_metrics(metrics_request(&nothing)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let err = c.is_active(nothing.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "GetMetrics and IsActive took {:?}",
        started.elapsed()
    );
    // Explanations say why there is no decision, not that KEDA never asked.
    let (code, body) = http(&server, "/api/v1/scaledobjects/shop/syntax/decision").await;
    assert_eq!(code, 404);
    assert!(
        body.contains("its query was rejected") && body.contains("parse error"),
        "{body}"
    );

    // Fixing the query fixes the answer.
    let fixed = so("syntax", "sum(foresight_demand)");
    c.get_metric_spec(fixed.clone()).await.unwrap();
    let fixed_value = get_metrics(&mut c, &fixed).await.unwrap();
    assert!((1..=100).contains(&fixed_value), "{fixed_value}");
}
