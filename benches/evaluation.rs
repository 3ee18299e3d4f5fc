//! What one evaluation tick costs `serve`: the replays of every registered
//! ScaledObject, as `foresight_evaluation_duration_seconds` records them.
//!
//! Twenty ScaledObjects on the embedded `elb_requests` trace (5-minute
//! samples), each with its own per-pod target so none shares a replay, run
//! in the default predictive mode and in `mode: holding`, one runtime at a
//! time, alternating, at the default 15-second tick. Each is measured only once every
//! model its window uses is trained (readiness), so the figures are the
//! steady state, not the first trainings. The predictive runs are the
//! baseline: holding's ratio to them is what its plans cost on top of the
//! replay every mode pays; each round's ratio is printed too, as the spread
//! between rounds is the measure's noise. It also prints the holding plans
//! `serve` keeps at the end and their bytes (`foresight_holding_plan_bytes`),
//! and the plans built at training and in evaluations with their mean build
//! time (`foresight_holding_plan_builds_total` and
//! `foresight_holding_plan_build_duration_seconds`), over the whole run.
//!
//! A third run per round, `short`, is the predictive one with scale-down
//! fast enough that the replay is only its 30 minutes of forecasts: the
//! predictive run's ratio to it is what replaying the defaults' slowest
//! descent (8 h 35 min, see `runtime::registry::descent`) costs.
//!
//! `cargo bench --bench evaluation` measures 3 rounds of 75 s per mode
//! (about thirteen minutes with the trainings); under `cargo test` it runs a
//! short smoke version of the same path with 1-second ticks.

use std::collections::HashMap;
use std::time::Duration;

use foresight::domain::ScaledObjectKey;
use foresight::runtime::{Runtime, RuntimeConfig, ScalerCore};
use foresight::sources::FileSource;
use tokio_util::sync::CancellationToken;

/// The value of the series `name` (with its labels, if any) in `/metrics`.
fn find(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// The value of the series `name`, which must be in `/metrics`.
fn read(metrics: &str, name: &str) -> f64 {
    find(metrics, name).unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Plans built at `at` (training or evaluation) and their total seconds.
fn builds(metrics: &str, at: &str) -> (f64, f64) {
    let labels = format!("{{at=\"{at}\"}}");
    (
        find(
            metrics,
            &format!("foresight_holding_plan_builds_total{labels}"),
        )
        .unwrap_or(0.0),
        find(
            metrics,
            &format!("foresight_holding_plan_build_duration_seconds_sum{labels}"),
        )
        .unwrap_or(0.0),
    )
}

/// Seconds spent in evaluations and evaluations counted, from `/metrics`.
fn evaluations(metrics: &str) -> (f64, f64) {
    (
        read(metrics, "foresight_evaluation_duration_seconds_sum"),
        read(metrics, "foresight_evaluation_duration_seconds_count"),
    )
}

/// What one mode's run measured.
struct Measured {
    /// Mean seconds per evaluation.
    mean: f64,
    /// Evaluations counted.
    count: f64,
    /// Holding plans kept at the end, and their heap bytes.
    plans: (f64, f64),
    /// Plans built at training and in evaluations, each with its total
    /// seconds, over the whole run (readiness included).
    builds: [(f64, f64); 2],
}

/// Runs `objects` ScaledObjects in `mode` for `window` once ready.
async fn measure(mode: &str, objects: usize, tick: Duration, window: Duration) -> Measured {
    let (source, _) = FileSource::embedded().expect("embedded trace");
    let runtime = Runtime::new(
        source,
        RuntimeConfig {
            tick,
            ..RuntimeConfig::default()
        },
    );
    let shutdown = CancellationToken::new();
    let r = runtime.clone();
    let s = shutdown.clone();
    let task = tokio::spawn(async move { r.run(s.cancelled_owned()).await });
    for i in 0..objects {
        let target = (5 + i).to_string();
        // `short`: predictive with scale-down fast enough (100 pods a
        // period) that the replay is only the 30 minutes of forecasts, where
        // the defaults' slowest descent (100 → 0 pods, one per 5 minutes)
        // makes it 8 h 35 min.
        let (mode, down) = match mode {
            "short" => ("predictive", "100"),
            m => (m, "1"),
        };
        let metadata: HashMap<String, String> = [
            ("queueDepthQuery", "elb_requests"),
            ("queueDepthTarget", target.as_str()),
            ("step", "5m"),
            ("mode", mode),
            ("scaleDownPods", down),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        runtime
            .metric_target(&ScaledObjectKey::new("bench", format!("so-{i}")), &metadata)
            .expect("valid metadata");
    }
    let mut ready = false;
    for _ in 0..1_200 {
        if runtime.readiness().ready {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "never ready: {:?}", runtime.readiness());
    // The evaluations that readiness waited for are not counted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (sum0, n0) = evaluations(&runtime.metrics_text());
    tokio::time::sleep(window).await;
    let metrics = runtime.metrics_text();
    let (sum1, n1) = evaluations(&metrics);
    let plans = (
        read(&metrics, "foresight_holding_plans"),
        read(&metrics, "foresight_holding_plan_bytes"),
    );
    let built = [builds(&metrics, "training"), builds(&metrics, "evaluation")];
    shutdown.cancel();
    let _ = task.await;
    let n = n1 - n0;
    assert!(n >= 1.0, "no evaluation in {window:?}");
    if mode == "holding" {
        assert!(
            plans.0 >= objects as f64,
            "{plans:?} for {objects} ScaledObjects"
        );
        assert!(plans.1 > 0.0, "{plans:?}");
        assert!(
            built[0].0 >= objects as f64,
            "{built:?}: every ScaledObject's plan is built at training"
        );
    } else {
        assert_eq!(plans, (0.0, 0.0), "no plan without mode: holding");
    }
    Measured {
        mean: (sum1 - sum0) / n,
        count: n,
        plans,
        builds: built,
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // `serve`'s default 15 s tick: a replay covers 2,060 ticks (121 of
    // them with forecasts; `short`: 121), so what is built once per replay
    // (a plan) weighs as it does in production.
    let (objects, tick, window, rounds) = if bench {
        (20, Duration::from_secs(15), Duration::from_secs(75), 3)
    } else {
        (2, Duration::from_secs(1), Duration::from_secs(3), 1)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut totals: HashMap<&str, (f64, f64)> = HashMap::new();
    let mut plans = (0.0, 0.0);
    let mut built = [(0.0, 0.0); 2];
    let mut ratios = Vec::new();
    let mut long_ratios = Vec::new();
    for _ in 0..rounds {
        let mut means = [0.0; 3];
        for (i, mode) in ["predictive", "holding", "short"].into_iter().enumerate() {
            let m = rt.block_on(measure(mode, objects, tick, window));
            let t = totals.entry(mode).or_default();
            t.0 += m.mean * m.count;
            t.1 += m.count;
            means[i] = m.mean;
            if mode == "holding" {
                plans = m.plans;
                for (b, m) in built.iter_mut().zip(m.builds) {
                    b.0 += m.0;
                    b.1 += m.1;
                }
            }
        }
        ratios.push(means[1] / means[0]);
        long_ratios.push(means[0] / means[2]);
    }
    let mean = |mode: &str| totals[mode].0 / totals[mode].1;
    println!(
        "\nOne evaluation tick, {objects} ScaledObjects on elb_requests (5-minute samples), {tick:?} ticks, {rounds} x {window:?} per mode:"
    );
    for mode in ["predictive", "holding", "short"] {
        println!(
            "  {mode:<10} {:>9.2} ms per tick ({} ticks)",
            mean(mode) * 1e3,
            totals[mode].1
        );
    }
    let note = if bench {
        "same-run ratio"
    } else {
        "smoke run under cargo test: too short to measure"
    };
    println!(
        "  holding / predictive: {:.2}x  ({note})",
        mean("holding") / mean("predictive")
    );
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
    println!("  ratio per round: {}", each.join(", "));
    println!(
        "  predictive (8 h 35 min replay) / short (30 min): {:.2}x  ({note})",
        mean("predictive") / mean("short")
    );
    let each: Vec<String> = long_ratios.iter().map(|r| format!("{r:.2}x")).collect();
    println!("  ratio per round: {}", each.join(", "));
    println!(
        "  holding plans kept at the end: {} ({:.1} kB, foresight_holding_plan_bytes)",
        plans.0,
        plans.1 / 1e3
    );
    for ((count, secs), at) in built.iter().zip(["training", "evaluation"]) {
        let mean = if *count > 0.0 {
            secs / count * 1e3
        } else {
            0.0
        };
        println!(
            "  holding plans built at {at:<10} {count:>4} ({mean:.2} ms each, foresight_holding_plan_builds_total)"
        );
    }
}
