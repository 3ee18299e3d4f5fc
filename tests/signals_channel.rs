//! Signals raised by the live runtime reach the remediation channel.

use std::collections::HashMap;
use std::time::Duration;

use foresight::domain::{ScaledObjectKey, Signal};
use foresight::runtime::{Runtime, RuntimeConfig, ScalerCore};
use foresight::sources::{FileData, FileSource};

/// A runtime over series `ramp`, demand that climbs every second, far past
/// what 2 replicas carry, evaluated every second, running until the token
/// is cancelled; with a subscription to its signals. The trace starts
/// 1000 s ago and lasts 2 h, so its replay does not wrap back to the start
/// while a test runs, whatever the wall clock says.
async fn ramp() -> (
    Runtime<FileSource>,
    tokio::sync::broadcast::Receiver<(ScaledObjectKey, Signal)>,
    tokio_util::sync::CancellationToken,
) {
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
    let signals = runtime.subscribe_signals();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let driver = runtime.clone();
    let s = shutdown.clone();
    tokio::spawn(async move { driver.run(s.cancelled_owned()).await });
    (runtime, signals, shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_ceiling_reaches_subscribers() {
    let (runtime, mut signals, shutdown) = ramp().await;

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
    let d = runtime.decision(&key, &metadata).await.unwrap();
    assert_eq!(d.desired_replicas, 2, "clamped at the ceiling");

    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (who, signal) = signals.recv().await.unwrap();
            if let Signal::AtCeiling {
                max_replicas,
                demand_replicas,
                ..
            } = signal
            {
                return (who, max_replicas, demand_replicas);
            }
        }
    })
    .await
    .expect("AtCeiling within 10 s");
    assert_eq!(got.0, key);
    assert_eq!(got.1, 2);
    assert!(got.2 > 2, "demand {} above the ceiling", got.2);
    let metrics = runtime.telemetry().render();
    assert!(
        metrics.contains(r#"foresight_signals_total{signal="at_ceiling"} 1"#),
        "{metrics}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_capped_below_a_sibling_raises_no_ceiling_signal() {
    let (runtime, mut signals, shutdown) = ramp().await;

    let meta = |max: &str| -> HashMap<String, String> {
        [
            ("queueDepthQuery", "ramp"),
            ("queueDepthTarget", "100"),
            ("maxReplicaCount", max),
            ("mode", "reactive"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let (capped, wide) = (meta("2"), meta("500"));
    // `shop/ingest` has a trigger capped at 2 and one that follows the
    // ramp (about 100 replicas); `shop/alone` only the capped one, so the
    // same data does raise AtCeiling there.
    let (pair, alone) = (
        ScaledObjectKey::new("shop", "ingest"),
        ScaledObjectKey::new("shop", "alone"),
    );
    runtime.decision(&pair, &wide).await.unwrap();
    let mut at_ceiling = Vec::new();
    let polls = async {
        // KEDA's polls: both triggers of `shop/ingest`, every half second.
        for _ in 0..16 {
            let d = runtime.decision(&pair, &capped).await.unwrap();
            assert_eq!(d.desired_replicas, 2);
            let d = runtime.decision(&pair, &wide).await.unwrap();
            assert!(d.desired_replicas > 2, "{}", d.desired_replicas);
            runtime.decision(&alone, &capped).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let collect = async {
        loop {
            match signals.recv().await {
                Ok((who, Signal::AtCeiling { .. })) => at_ceiling.push(who),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };
    tokio::select! {
        () = polls => {}
        () = collect => panic!("the signal channel closed"),
    }
    assert!(at_ceiling.contains(&alone), "{at_ceiling:?}");
    assert!(
        !at_ceiling.contains(&pair),
        "the capped trigger of a ScaledObject the HPA scales by its sibling raised AtCeiling: {at_ceiling:?}"
    );
    shutdown.cancel();
}
