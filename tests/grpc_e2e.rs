//! In-process end to end: the real gRPC and HTTP servers on loopback, over
//! the embedded trace, called through a tonic client the way KEDA calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use foresight::grpc::proto::external_scaler_client::ExternalScalerClient;
use foresight::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use foresight::runtime::{METRIC_NAME, Runtime, RuntimeConfig};
use foresight::sources::{FileData, FileSource, MetricSource};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    grpc: SocketAddr,
    http: SocketAddr,
    source: FileSource,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn start() -> Server {
    let (source, _) = FileSource::embedded().unwrap();
    start_with(source).await
}

async fn start_with(source: FileSource) -> Server {
    start_configured(
        source,
        RuntimeConfig {
            tick: Duration::from_secs(1),
            ..RuntimeConfig::default()
        },
    )
    .await
}

async fn start_configured(source: FileSource, config: RuntimeConfig) -> Server {
    let runtime = Runtime::new(source.clone(), config);
    runtime.warm_up().await;
    let shutdown = CancellationToken::new();
    let grpc_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc, http) = (grpc_l.local_addr().unwrap(), http_l.local_addr().unwrap());
    let core = Arc::new(runtime.clone());
    let mut tasks = Vec::new();
    let s = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        runtime.run(s.cancelled_owned()).await
    }));
    let (c, s) = (Arc::clone(&core), shutdown.clone());
    tasks.push(tokio::spawn(async move {
        foresight::grpc::serve(c, grpc_l, s).await.unwrap()
    }));
    let s = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        foresight::http::serve(core, http_l, s).await.unwrap()
    }));
    Server {
        grpc,
        http,
        source,
        shutdown,
        tasks,
    }
}

async fn client(addr: SocketAddr) -> ExternalScalerClient<Channel> {
    ExternalScalerClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn so(name: &str, pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: name.into(),
        namespace: "shop".into(),
        scaler_metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

/// The replica count `GetMetrics` answers for ScaledObject `resized` with
/// metadata `pairs`.
async fn replicas(c: &mut ExternalScalerClient<Channel>, pairs: &[(&str, &str)]) -> i64 {
    c.get_metrics(GetMetricsRequest {
        scaled_object_ref: Some(so("resized", pairs)),
        metric_name: METRIC_NAME.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .metric_values[0]
        .metric_value
}

const TAXI: &[(&str, &str)] = &[
    ("scalerAddress", "foresight.keda.svc:9090"),
    ("connectionsQuery", "nyc_taxi"),
    ("connectionsTarget", "1000"),
    ("minReplicaCount", "1"),
    ("maxReplicaCount", "60"),
];

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_the_way_keda_calls() {
    let server = start().await;
    let mut c = client(server.grpc).await;
    let obj = so("checkout", TAXI);

    // GetMetricSpec: one metric, target 1 in both fields.
    let spec = c.get_metric_spec(obj.clone()).await.unwrap().into_inner();
    assert_eq!(spec.metric_specs.len(), 1);
    let m = &spec.metric_specs[0];
    assert_eq!(
        (m.metric_name.as_str(), m.target_size, m.target_size_float),
        (METRIC_NAME, 1, 1.0)
    );
    // Same answer on every call while metadata is unchanged.
    assert_eq!(
        c.get_metric_spec(obj.clone()).await.unwrap().into_inner(),
        spec
    );

    // GetMetrics with the name KEDA was given.
    let req = GetMetricsRequest {
        scaled_object_ref: Some(obj.clone()),
        metric_name: m.metric_name.clone(),
    };
    let values = c
        .get_metrics(req.clone())
        .await
        .unwrap()
        .into_inner()
        .metric_values;
    assert_eq!(values.len(), 1);
    let v = &values[0];
    assert_eq!(v.metric_name, METRIC_NAME);
    assert_eq!(
        v.metric_value as f64, v.metric_value_float,
        "int and float fields agree"
    );
    assert!(
        (1..=60).contains(&v.metric_value),
        "within bounds: {}",
        v.metric_value
    );

    // The HTTP explanation tells the same story, and its observation is the
    // trace's real value at the decision's tick.
    let (code, body) = http_get(server.http, "/api/v1/scaledobjects/shop/checkout/decision").await;
    assert_eq!(code, 200, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    let at = DateTime::parse_from_rfc3339(d["at"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let observed = d["readings"][0]["observed"].as_f64().unwrap();
    assert_eq!(
        Some(observed),
        server.source.current("nyc_taxi", at).await.unwrap()
    );
    let reactive = (observed / 1000.0).ceil() as i64;
    let served = c
        .get_metrics(req.clone())
        .await
        .unwrap()
        .into_inner()
        .metric_values[0]
        .metric_value;
    assert!(
        served >= reactive.clamp(1, 60),
        "served {served} below reactive {reactive}"
    );
    // The HPA rule: ceil(observed / target), unless the usage ratio against
    // the running count is within the 10% tolerance, which keeps the count.
    let got = d["reactive"].as_i64().unwrap();
    let within_tolerance = ((observed / (1000.0 * got as f64)) - 1.0).abs() <= 0.1;
    assert!(
        got == reactive || within_tolerance,
        "reactive {got} for observed {observed}"
    );

    // KEDA's older clients send the trigger-index prefix.
    let mut prefixed = req.clone();
    prefixed.metric_name = format!("s0-{METRIC_NAME}");
    assert!(c.get_metrics(prefixed).await.is_ok());

    // IsActive: taxis always run, so active; a huge threshold makes it idle
    // (with a ceiling of one pod, so no descent is under way, which would
    // keep it active).
    assert!(c.is_active(obj.clone()).await.unwrap().into_inner().result);
    let mut idle_meta: Vec<(&str, &str)> = TAXI
        .iter()
        .copied()
        .filter(|(k, _)| *k != "maxReplicaCount" && *k != "minReplicaCount")
        .collect();
    idle_meta.extend([
        ("activationThreshold", "1e12"),
        ("minReplicaCount", "0"),
        ("maxReplicaCount", "1"),
    ]);
    let idle = so("idle", &idle_meta);
    assert!(!c.is_active(idle.clone()).await.unwrap().into_inner().result);

    // StreamIsActive sends the current value at once.
    let mut stream = c.stream_is_active(obj.clone()).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(3), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.result);
    let mut idle_stream = c.stream_is_active(idle).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(3), idle_stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!first.result);

    // StreamMetricSpec sends the current spec at once.
    let mut specs = c
        .stream_metric_spec(obj.clone())
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(3), specs.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, spec);

    // Health, readiness and metrics.
    assert_eq!(http_get(server.http, "/healthz").await.0, 200);
    let mut ready = (0, String::new());
    for _ in 0..100 {
        ready = http_get(server.http, "/readyz").await;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "never ready: {}", ready.1);
    let (_, metrics) = http_get(server.http, "/metrics").await;
    assert!(
        metrics.contains(r#"foresight_grpc_requests_total{rpc="GetMetrics",code="Ok"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("foresight_decisions_total"), "{metrics}");
    assert!(
        metrics.contains("foresight_surplus_releases_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("foresight_training_duration_seconds_count"),
        "{metrics}"
    );
    // The decision served above came from an evaluation, which was timed.
    let evaluations: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("foresight_evaluation_duration_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no evaluation count: {metrics}"));
    assert!(evaluations >= 1.0, "{metrics}");
    // The decision's reading is on the dashboard's "forecast against actual".
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("foresight_signal_observed{")),
        "{metrics}"
    );
    // No ScaledObject here is in mode: holding, so no plan is kept.
    for gauge in [
        "foresight_holding_plans 0",
        "foresight_holding_plan_bytes 0",
    ] {
        assert!(metrics.lines().any(|l| l == gauge), "{gauge}: {metrics}");
    }

    // Shutdown ends open streams and both servers promptly.
    server.shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.message().await {}
        for t in server.tasks {
            t.await.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "servers did not stop within 5s of shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_status_codes() {
    let server = start().await;
    let mut c = client(server.grpc).await;

    let bad = so("bad", &[("queueDepthQuery", "nyc_taxi"), ("mode", "x")]);
    let err = c.get_metric_spec(bad.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains(r#"missing required parameter "queueDepthTarget" in [triggerMetadata]"#),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains(
            r#"parameter "mode" value "x" must be one of [predictive reactive forecastOnly holding]"#
        ),
        "{}",
        err.message()
    );
    for e in [
        c.is_active(bad.clone()).await.unwrap_err(),
        c.get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(bad.clone()),
            metric_name: METRIC_NAME.into(),
        })
        .await
        .unwrap_err(),
        c.stream_is_active(bad).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }

    let missing = so(
        "missing",
        &[
            ("queueDepthQuery", "no_such_series"),
            ("queueDepthTarget", "5"),
        ],
    );
    let err = c.get_metric_spec(missing).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("available series: ec2_latency, elb_requests, nyc_taxi"),
        "{}",
        err.message()
    );

    let err = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(so("x", TAXI)),
            metric_name: "cpu".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut anonymous = so("", TAXI);
    anonymous.namespace.clear();
    assert_eq!(
        c.get_metric_spec(anonymous).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let err = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: None,
            metric_name: METRIC_NAME.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let (code, _) = http_get(
        server.http,
        "/api/v1/scaledobjects/shop/never-seen/decision",
    )
    .await;
    assert_eq!(code, 404);
    server.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_metadata_is_obeyed_from_the_first_answer() {
    let server = start().await;
    let mut c = client(server.grpc).await;
    let mut small_max: Vec<(&str, &str)> = TAXI
        .iter()
        .copied()
        .filter(|(k, _)| *k != "maxReplicaCount")
        .collect();
    small_max.push(("maxReplicaCount", "2"));
    let before = replicas(&mut c, TAXI).await;
    assert!(
        before > 2,
        "the trace should need more than 2 replicas: {before}"
    );
    // The very first answer under the new metadata obeys it: it is a new
    // trigger to foresight, whose first call waits for its own decision
    // rather than being served the old metadata's.
    for _ in 0..3 {
        let now = replicas(&mut c, &small_max).await;
        assert!(now <= 2, "new maxReplicaCount not applied: {now}");
    }
    // And back: the old metadata's trigger, still known, answers at once.
    let again = replicas(&mut c, TAXI).await;
    assert!(again > 2, "old maxReplicaCount not restored: {again}");
    server.shutdown.cancel();
}

/// The `foresight_desired_replicas` series of `shop/resized`, by trigger.
fn desired_by_trigger(metrics: &str) -> HashMap<String, i64> {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("foresight_desired_replicas{")
                && l.contains(r#"scaledobject="shop/resized""#)
        })
        .map(|l| {
            let trigger = l.split(r#"trigger=""#).nth(1).unwrap();
            let trigger = trigger[..trigger.find('"').unwrap()].to_string();
            let value = l.rsplit(' ').next().unwrap().parse().unwrap();
            (trigger, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_foresight_triggers_on_one_scaled_object_are_both_served() {
    let (source, _) = FileSource::embedded().unwrap();
    let server = start_configured(
        source,
        RuntimeConfig {
            tick: Duration::from_secs(1),
            // An edited-away trigger's series go this long after its last
            // call (2 minutes by default).
            dormant_gap: Duration::from_secs(2),
            ..RuntimeConfig::default()
        },
    )
    .await;
    let mut c = client(server.grpc).await;
    let mut capped: Vec<(&str, &str)> = TAXI
        .iter()
        .copied()
        .filter(|(k, _)| *k != "maxReplicaCount")
        .collect();
    capped.push(("maxReplicaCount", "2"));
    // KEDA asks about each trigger at every poll, one after the other.
    for _ in 0..4 {
        let wide = replicas(&mut c, TAXI).await;
        let narrow = replicas(&mut c, &capped).await;
        assert!(
            wide > 2,
            "the trace should need more than 2 replicas: {wide}"
        );
        assert!(
            narrow <= 2,
            "the capped trigger's maxReplicaCount: {narrow}"
        );
    }
    // Both are explained, the one the HPA follows (the highest) first.
    let (code, body) = http_get(server.http, "/api/v1/scaledobjects/shop/resized/decision").await;
    assert_eq!(code, 200, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    let triggers = d["triggers"].as_array().unwrap();
    assert_eq!(triggers.len(), 2, "{body}");
    assert_eq!(d["trigger"], triggers[0]["trigger"], "{body}");
    assert!(
        triggers[0]["desiredReplicas"].as_i64().unwrap()
            > triggers[1]["desiredReplicas"].as_i64().unwrap(),
        "{body}"
    );
    assert!(d["desiredReplicas"].as_i64().unwrap() > 2, "{body}");
    // Each has its own series on /metrics, and the ScaledObject counts once.
    let (_, metrics) = http_get(server.http, "/metrics").await;
    let series = desired_by_trigger(&metrics);
    assert_eq!(series.len(), 2, "{metrics}");
    assert!(
        series.values().any(|v| *v <= 2) && series.values().any(|v| *v > 2),
        "{series:?}"
    );
    assert!(
        metrics.lines().any(|l| l == "foresight_scaled_objects 1"),
        "{metrics}"
    );

    // An edit: KEDA asks with new metadata only. Both old triggers go
    // dormant: out of the explanation at once, and off /metrics once not
    // asked about for the dormant gap.
    let mut edited = capped.clone();
    edited.retain(|(k, _)| *k != "minReplicaCount");
    edited.push(("minReplicaCount", "2"));
    let mut alone = false;
    for _ in 0..100 {
        let now = replicas(&mut c, &edited).await;
        assert_eq!(now, 2, "the edited bounds");
        let (_, body) = http_get(server.http, "/api/v1/scaledobjects/shop/resized/decision").await;
        let d: serde_json::Value = serde_json::from_str(&body).unwrap();
        let (_, metrics) = http_get(server.http, "/metrics").await;
        if d["triggers"].as_array().unwrap().len() == 1 && desired_by_trigger(&metrics).len() == 1 {
            assert_eq!(d["desiredReplicas"], 2, "{body}");
            alone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alone, "the edited-away triggers are still served");
    // A call naming the ScaledObject without metadata gets the live
    // trigger's answer, and wakes no edited-away one.
    assert_eq!(replicas(&mut c, &[]).await, 2);
    let (_, body) = http_get(server.http, "/api/v1/scaledobjects/shop/resized/decision").await;
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["triggers"].as_array().unwrap().len(), 1, "{body}");
    server.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_active_sends_again_on_every_change() {
    // A series that alternates idle/busy every second; with 1 s ticks the
    // activity flips on every evaluation.
    let mut csv = String::from("series,timestamp,value\n");
    for t in 0..2 {
        csv.push_str(&format!("flip,{t},{}\n", if t % 2 == 0 { 0 } else { 100 }));
    }
    let (data, _) = FileData::from_csv_bytes("flip.csv", csv.as_bytes()).unwrap();
    let server = start_with(FileSource::new(data)).await;
    let mut c = client(server.grpc).await;
    let obj = so(
        "flipper",
        &[
            ("queueDepthQuery", "flip"),
            ("queueDepthTarget", "10"),
            ("mode", "reactive"),
            ("activationThreshold", "50"),
            // One pod either way: a count held above the recommendation
            // (a descent under way) would keep it active through the idle
            // seconds.
            ("minReplicaCount", "1"),
            ("maxReplicaCount", "1"),
        ],
    );
    let mut stream = c.stream_is_active(obj).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("a change every second")
            .unwrap()
            .unwrap();
        seen.push(msg.result);
    }
    // Only changes are sent, so consecutive messages always differ.
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    server.shutdown.cancel();
}
