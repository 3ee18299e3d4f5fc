//! A ScaledObject's series on `/metrics` live as long as foresight serves
//! it: once KEDA stops asking and the runtime forgets it, they are gone, so
//! dashboards stop charting its last values and churn does not grow the
//! exposition.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use foresight::domain::ScaledObjectKey;
use foresight::runtime::{Runtime, RuntimeConfig, ScalerCore};
use foresight::sources::{FileData, FileSource};

/// A runtime over `source` evaluating every second, started with its
/// driver (after warming up its sources when `warm`); cancel the token and
/// await the task to stop it.
async fn start(
    source: FileSource,
    config: RuntimeConfig,
    warm: bool,
) -> (
    Runtime<FileSource>,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let runtime = Runtime::new(
        source,
        RuntimeConfig {
            tick: Duration::from_secs(1),
            ..config
        },
    );
    if warm {
        runtime.warm_up().await;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let driver = runtime.clone();
    let s = shutdown.clone();
    let task = tokio::spawn(async move { driver.run(s.cancelled_owned()).await });
    (runtime, shutdown, task)
}

/// ScaledObject metadata from pairs.
fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_scaled_object_leaves_metrics() {
    // A steady 450 for two hours from 1000 s ago, so the replay never wraps.
    let t0 = chrono::Utc::now().timestamp() - 1_000;
    let mut csv = String::from("series,timestamp,value\n");
    for i in 0..7_200i64 {
        csv.push_str(&format!("steady,{},450\n", t0 + i));
    }
    let (data, _) = FileData::from_csv_bytes("steady.csv", csv.as_bytes()).unwrap();
    let (runtime, shutdown, task) = start(
        FileSource::new(data),
        RuntimeConfig {
            forget_after: Duration::from_secs(3),
            ..RuntimeConfig::default()
        },
        true,
    )
    .await;

    let key = ScaledObjectKey::new("shop", "ingest");
    let metadata = metadata(&[
        ("queueDepthQuery", "steady"),
        ("queueDepthTarget", "100"),
        ("mode", "reactive"),
    ]);
    let d = runtime.decision(&key, &metadata).await.unwrap();
    assert_eq!(d.desired_replicas, 5, "450 at 100 per pod");
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(r#"scaledobject="shop/ingest""#))
            .map(str::to_string)
            .collect()
    };
    let metrics = runtime.metrics_text();
    let live = series(&metrics);
    for name in ["foresight_desired_replicas{", "foresight_signal_observed{"] {
        assert!(
            live.iter().any(|l| l.starts_with(name)),
            "{name}: {metrics}"
        );
    }
    assert!(
        metrics.contains("foresight_scaled_objects 1\n"),
        "{metrics}"
    );

    // No more calls: after forget_after the runtime drops it, and its series.
    let gone = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let text = runtime.metrics_text();
            if series(&text).is_empty() {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the ScaledObject's series are removed within 20 s");
    assert!(gone.contains("foresight_scaled_objects 0\n"), "{gone}");
    shutdown.cancel();
    let _ = task.await;
}

/// Changes of the count served reach `/metrics`, and a drop undone within
/// five minutes is a flap there, as the backtest counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_the_served_count_and_flaps_are_counted() {
    let now = chrono::Utc::now().timestamp();
    let t0 = now - 1_000;
    // 450 until 4 s from now, 150 for the 4 s after, then 450 again.
    let mut csv = String::from("series,timestamp,value\n");
    for i in 0..7_200i64 {
        let t = t0 + i;
        let v = if (now + 4..now + 8).contains(&t) {
            150
        } else {
            450
        };
        csv.push_str(&format!("dip,{t},{v}\n"));
    }
    let (data, _) = FileData::from_csv_bytes("dip.csv", csv.as_bytes()).unwrap();
    let (runtime, shutdown, task) =
        start(FileSource::new(data), RuntimeConfig::default(), true).await;

    let key = ScaledObjectKey::new("shop", "dip");
    // Reactive, and free to drop at once: the dip is followed to 2 and back.
    let metadata = metadata(&[
        ("queueDepthQuery", "dip"),
        ("queueDepthTarget", "100"),
        ("mode", "reactive"),
        ("scaleDownStabilization", "0s"),
        ("scaleDownPercent", "100"),
        ("scaleDownPeriod", "1s"),
    ]);
    let d = runtime.decision(&key, &metadata).await.unwrap();
    assert_eq!(d.desired_replicas, 5, "450 at 100 per pod");
    let flaps = r#"foresight_flaps_total{scaledobject="shop/dip"}"#;
    let text = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let text = runtime.metrics_text();
            if value(&text, flaps).is_some_and(|f| f >= 1.0) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the dip is followed and undone within 30 s");
    let changes = |direction: &str| {
        value(
            &text,
            &format!(
                r#"foresight_replica_changes_total{{scaledobject="shop/dip",direction="{direction}"}}"#
            ),
        )
    };
    assert_eq!(changes("down"), Some(1.0), "{text}");
    assert_eq!(changes("up"), Some(1.0), "{text}");
    assert_eq!(value(&text, flaps), Some(1.0), "{text}");
    shutdown.cancel();
    let _ = task.await;
}

/// The value of the series `line_prefix` (name and labels, without the
/// `trigger` label: each ScaledObject here has one trigger) in `/metrics`.
fn value(metrics: &str, line_prefix: &str) -> Option<f64> {
    metrics.lines().map(support::without_trigger).find_map(|l| {
        l.strip_prefix(line_prefix)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holding_plans_are_built_with_their_model_not_in_an_evaluation() {
    let (source, _) = FileSource::embedded().unwrap();
    let (runtime, shutdown, task) = start(source, RuntimeConfig::default(), false).await;
    let metadata = metadata(&[
        ("queueDepthQuery", "elb_requests"),
        ("queueDepthTarget", "5"),
        ("step", "5m"),
        ("mode", "holding"),
    ]);
    runtime
        .metric_target(&ScaledObjectKey::new("shop", "ingest"), &metadata)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(300), async {
        while !runtime.readiness().ready {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("every model trained within 300 s");
    // A few evaluations with every model trained.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = runtime.metrics_text();
    let d = runtime
        .decision(&ScaledObjectKey::new("shop", "ingest"), &metadata)
        .await
        .unwrap();
    shutdown.cancel();
    let _ = task.await;

    assert!(
        d.notes.iter().any(|n| n.contains("holding plan")),
        "the plan decided: {:?}",
        d.notes
    );
    let built = value(
        &metrics,
        r#"foresight_holding_plan_builds_total{at="training"}"#,
    )
    .unwrap_or(0.0);
    assert!(built >= 1.0, "no plan built at training:\n{metrics}");
    assert_eq!(
        value(
            &metrics,
            r#"foresight_holding_plan_builds_total{at="evaluation"}"#
        ),
        None,
        "an evaluation built a plan:\n{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            r#"foresight_holding_plan_build_duration_seconds_count{at="training"}"#
        ),
        Some(built),
        "{metrics}"
    );
    assert!(
        value(&metrics, "foresight_holding_plans").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
}
