//! The live runtime's signals drive the remediation engine, as in `serve`:
//! a ramp past `maxReplicaCount` raises `AtCeiling`, and the engine opens
//! one dry-run incident with the decision record as evidence, counted in
//! `/metrics`. Then the same through the real `foresight serve`, paging a
//! local webhook in the generic format.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foresight::domain::ScaledObjectKey;
use foresight::grpc::proto::external_scaler_client::ExternalScalerClient;
use foresight::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use foresight::remediation::{
    Action, AuditLog, Cause, Engine, EngineOptions, RemediationConfig, Verdict, incident_counter,
    summarize,
};
use foresight::runtime::{METRIC_NAME, Runtime, RuntimeConfig, ScalerCore};
use foresight::sources::{FileData, FileSource};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_signals_open_a_dry_run_incident() {
    // Demand that climbs every second, far past what 2 replicas carry.
    let t0 = chrono::Utc::now().timestamp() - 1_000;
    let mut csv = String::from("series,timestamp,value\n");
    for i in 0..7_200i64 {
        csv.push_str(&format!("ramp,{},{}\n", t0 + i, 100 + i * 10));
    }
    let (data, _) = FileData::from_csv_bytes("ramp.csv", csv.as_bytes()).unwrap();
    let runtime = Runtime::new(
        FileSource::new(data),
        RuntimeConfig {
            tick: Duration::from_secs(1),
            ..RuntimeConfig::default()
        },
    );
    runtime.warm_up().await;
    let shutdown = tokio_util::sync::CancellationToken::new();

    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let core = Arc::new(runtime.clone());
    let (lookup, counter) = (Arc::clone(&core), Arc::clone(&core));
    let engine = Engine::new(
        EngineOptions {
            config: RemediationConfig::default(),
            audit: audit.clone(),
            pager: None,
            kube: None,
            baselines: None,
            enabled_targets: Arc::new(move || counter.readiness().scaled_objects),
            recent_decision: Some(Arc::new(move |key, signal| {
                foresight::runtime::raised_by(&lookup.explain(key), signal)
            })),
            incidents: Some(incident_counter(Arc::clone(&core))),
        },
        tokio::sync::watch::channel(true).1,
    );
    tokio::spawn(engine.run(runtime.subscribe_signals(), shutdown.clone()));
    let driver = runtime.clone();
    let s = shutdown.clone();
    tokio::spawn(async move { driver.run(s.cancelled_owned()).await });

    let key = ScaledObjectKey::new("shop", "ingest");
    let metadata: HashMap<String, String> = [
        ("queueDepthQuery", "ramp"),
        ("queueDepthTarget", "100"),
        ("maxReplicaCount", "2"),
        ("mode", "reactive"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    runtime.decision(&key, &metadata).await.unwrap();

    let incidents = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let s = summarize(&audit.read().unwrap());
            if !s.is_empty() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("an incident within 15 s");
    // Let a few more ticks repeat the signal: still one incident.
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown.cancel();
    let incidents = {
        let again = summarize(&audit.read().unwrap());
        assert_eq!(
            again.len(),
            incidents.len().max(1),
            "one incident per signal and window"
        );
        again
    };
    let i = &incidents[0].incident;
    assert_eq!(i.target.namespace, "shop");
    assert_eq!(i.diagnosis.cause, Cause::CapacityCeiling);
    assert!(
        matches!(&i.verdict, Verdict::DryRun { action: Action::RaiseCeiling { from: 2, to, .. } } if *to > 2),
        "{:?}",
        i.verdict
    );
    // Evidence first: the decision record of the tick is in the incident.
    let decision = i
        .diagnosis
        .evidence
        .iter()
        .find(|e| e.source == "decision")
        .expect("the decision record as evidence");
    let d: serde_json::Value = serde_json::from_str(&decision.detail).unwrap();
    assert_eq!(d["desiredReplicas"], 2);
    assert_eq!(d["limiter"], "maxBound");
    // Without Kubernetes access a dry run still records what it would do.
    assert_eq!(incidents[0].status(), "dryRun");
    // One incident, counted once, by cause and outcome.
    let metrics = core.metrics_text();
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("foresight_remediation_incidents_total{"))
        .collect();
    assert_eq!(
        counted,
        ["foresight_remediation_incidents_total{cause=\"capacity_ceiling\",outcome=\"dry_run\"} 1"],
        "{metrics}"
    );
}

/// A webhook receiver on a local port; it records every body it is sent.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hooks/secret",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(v);
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks/secret"), got)
}

/// `foresight serve --page-format generic` (the flag through clap, the
/// settings and serve's own wiring): the ramp's `AtCeiling` incident is
/// paged as `{"text", "incident", "outcome"}`, and `/metrics` counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pages_in_the_generic_format_and_counts_the_incident() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::Utc::now().timestamp() - 1_000;
    let mut csv = String::from("series,timestamp,value\n");
    for i in 0..7_200i64 {
        csv.push_str(&format!("ramp,{},{}\n", t0 + i, 100 + i * 10));
    }
    let data = dir.path().join("ramp.csv");
    std::fs::write(&data, csv).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (url, pages) = webhook().await;
    let server = support::serve(
        &[
            "--metrics-file",
            data.to_str().unwrap(),
            "--evaluation-interval",
            "1s",
            "--remediation",
            "dry-run",
            "--audit-log",
            audit.to_str().unwrap(),
            "--page-format",
            "generic",
        ],
        // No cluster: the dry run diagnoses from the signals alone.
        &[
            ("FORESIGHT_WEBHOOK_URL", url.as_str()),
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
        ],
    );
    let mut client = ExternalScalerClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let so = ScaledObjectRef {
        name: "ingest".into(),
        namespace: "shop".into(),
        scaler_metadata: [
            ("queueDepthQuery", "ramp"),
            ("queueDepthTarget", "100"),
            ("maxReplicaCount", "2"),
            ("mode", "reactive"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(so),
            metric_name: METRIC_NAME.into(),
        })
        .await
        .unwrap();

    let page = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(p) = pages.lock().unwrap().first().cloned() {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a page within 30 s");
    let mut keys: Vec<&str> = page
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["incident", "outcome", "text"], "{page:#}");
    let text = page["text"].as_str().unwrap();
    assert!(text.contains("shop/ingest: CapacityCeiling"), "{text}");
    assert!(
        text.contains("Dry run: would raise maxReplicaCount of shop/ingest from 2"),
        "{text}"
    );
    assert_eq!(page["incident"]["target"]["namespace"], "shop");
    assert_eq!(page["incident"]["diagnosis"]["cause"], "CapacityCeiling");
    assert_eq!(page["incident"]["verdict"]["verdict"], "dryRun");
    assert_eq!(page["outcome"]["result"], "dryRun");
    // The audit log holds the same incident.
    let recorded = summarize(&AuditLog::new(&audit).read().unwrap());
    assert_eq!(recorded[0].incident.id, page["incident"]["id"]);

    // Counted once the incident is handled, just after the page went out.
    let line =
        "foresight_remediation_incidents_total{cause=\"capacity_ceiling\",outcome=\"dry_run\"} 1";
    let metrics = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = support::http_get(&server.http, "/metrics");
            if m.lines().any(|l| l == line) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {line:?} in {}",
            support::http_get(&server.http, "/metrics")
        )
    });
    // One incident, one count: no other outcome or cause.
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("foresight_remediation_incidents_total{"))
            .count(),
        1,
        "{metrics}"
    );
}
