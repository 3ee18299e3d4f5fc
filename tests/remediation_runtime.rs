//! The live runtime's signals drive the remediation engine, as in `serve`:
//! a ramp past `maxReplicaCount` raises `AtCeiling`, and the engine opens
//! one dry-run incident with the decision record as evidence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foresight::domain::ScaledObjectKey;
use foresight::remediation::{
    Action, AuditLog, Cause, Engine, EngineOptions, RemediationConfig, Verdict, summarize,
};
use foresight::runtime::{Runtime, RuntimeConfig, ScalerCore};
use foresight::sources::{FileData, FileSource};

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
            recent_decision: Some(Arc::new(move |key| lookup.explain(key))),
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
}
