//! Backtest speed: 30 days of 1-minute data (43,200 samples, replayed in
//! 15-second ticks) with hourly retraining, against a baseline measured in
//! the same run.
//!
//! The data is the Azure VM CPU trace from `shared/data` (30 days at 5
//! minutes), linearly interpolated to 1 minute. Models train on 14 days of
//! history sampled every 10 minutes (`step: 10m`), with seasonality 1d,1w.
//!
//! * **foresight**: what `foresight backtest` does by default: full model
//!   selection once a day, hourly refits of the choice in between.
//! * **baseline**: full model selection at every hourly boundary.
//! * **sweep**: four scale-down settings replayed with the models trained
//!   once (`Backtest::run_cached`, what `backtest --sweep` does), against the
//!   same four run separately; both must score the same.
//! * **held out**: the first half replayed, then the whole series, as
//!   `backtest --holdout 0.5` replays a pick after its sweep: the second
//!   replay takes the first's models and trains only the second half,
//!   against the whole series replayed with no models kept; both must
//!   score the same.
//!
//! `cargo bench --bench backtest` runs the full measurement (goal: under
//! 10 s in release on the 2-core development machine). Under `cargo test`
//! it replays 3 days, to check the path rather than the numbers.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use foresight::backtest::{Backtest, ModelCache, Quiet};
use foresight::config::parse_metadata;
use foresight::domain::Series;
use foresight::sources::{FileData, LoadOptions};

fn azure_one_minute(days: usize) -> Series {
    let path = support::data_file("azure_vm_v2/azure_vm_v2_cpu_5min_30d.csv");
    let (data, _) = FileData::load_with(
        &path,
        &LoadOptions {
            value_column: Some("cpu_usage".into()),
            ..LoadOptions::default()
        },
    )
    .unwrap_or_else(|e| {
        panic!("{e}\nthis benchmark reads shared/data beside the repository, or FORESIGHT_DATA_DIR")
    });
    let s = data
        .series("azure_vm_v2_cpu_5min_30d")
        .expect("the trace's only series")
        .clone();
    let mut values = Vec::with_capacity(days * 1440);
    for w in s.values.windows(2).take(days * 288) {
        for k in 0..5 {
            values.push(w[0] + (w[1] - w[0]) * f64::from(k) / 5.0);
        }
    }
    Series::new(s.start, TimeDelta::minutes(1), values)
}

fn run(series: &Series, reselect: TimeDelta) -> (Duration, f64, usize) {
    run_with(series, reselect, &[], &mut ModelCache::default())
}

/// One replay with `extra` metadata, reusing `cache`'s models when they fit.
fn run_with(
    series: &Series,
    reselect: TimeDelta,
    extra: &[(&str, &str)],
    cache: &mut ModelCache,
) -> (Duration, f64, usize) {
    let meta: BTreeMap<String, String> = [
        ("connectionsQuery", "cpu"),
        ("connectionsTarget", "500000"),
        ("history", "14d"),
        ("step", "10m"),
        ("seasonality", "1d,1w"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let spec = parse_metadata(&meta.clone().into_iter().collect::<HashMap<_, _>>())
        .expect("valid metadata");
    let bt = Backtest {
        series,
        id: "cpu",
        source: "azure_vm_v2 (interpolated to 1m)".into(),
        spec,
        metadata: meta,
        startup: TimeDelta::minutes(2),
        retrain: TimeDelta::hours(1),
        reselect,
        warmup: TimeDelta::days(1),
        downstream_tolerance: 0.1,
        tick: None,
    };
    let t0 = Instant::now();
    let out = bt.run_cached(cache, &Quiet).expect("backtest runs");
    let elapsed = t0.elapsed();
    assert!(out.report.steps > 0);
    (
        elapsed,
        out.report.policies.foresight.replica_hours,
        out.timeline.len(),
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let days = if full { 30 } else { 3 };
    let series = azure_one_minute(days);
    let samples = series.len();
    let (fast, _, ticks) = run(&series, TimeDelta::days(1));
    let (slow, _, _) = run(&series, TimeDelta::hours(1));
    println!(
        "backtest of {days} days of 1-minute data ({samples} samples, replayed in {ticks} ticks of 15 s), hourly retraining, on {} thread(s):",
        rayon::current_num_threads()
    );
    println!(
        "  foresight (select daily, refit hourly)  {:>8.2} s",
        fast.as_secs_f64()
    );
    println!(
        "  baseline  (select at every boundary)    {:>8.2} s",
        slow.as_secs_f64()
    );
    println!(
        "  ratio {:.2}x   (goal: foresight under 10 s for 30 days)",
        fast.as_secs_f64() / slow.as_secs_f64()
    );

    let settings: [[(&str, &str); 2]; 4] = [
        [
            ("scaleDownStabilization", "60s"),
            ("scaleDownLookahead", "0s"),
        ],
        [
            ("scaleDownStabilization", "60s"),
            ("scaleDownLookahead", "10m"),
        ],
        [
            ("scaleDownStabilization", "300s"),
            ("scaleDownLookahead", "0s"),
        ],
        [
            ("scaleDownStabilization", "300s"),
            ("scaleDownLookahead", "10m"),
        ],
    ];
    let mut cache = ModelCache::default();
    let (mut shared, mut separate) = (Duration::ZERO, Duration::ZERO);
    for extra in &settings {
        let (t, cost, _) = run_with(&series, TimeDelta::days(1), extra, &mut cache);
        shared += t;
        let (t, alone, _) = run_with(
            &series,
            TimeDelta::days(1),
            extra,
            &mut ModelCache::default(),
        );
        separate += t;
        assert_eq!(cost, alone, "{extra:?}: shared models changed the score");
    }
    println!(
        "  sweep of 4 scale-down settings: shared models {:.2} s, separate runs {:.2} s, ratio {:.2}x",
        shared.as_secs_f64(),
        separate.as_secs_f64(),
        shared.as_secs_f64() / separate.as_secs_f64()
    );

    let half = Series::new(
        series.start,
        series.step,
        series.values[..series.len() / 2].to_vec(),
    );
    let mut kept = ModelCache::keeping_all();
    let (first, _, _) = run_with(&half, TimeDelta::days(1), &[], &mut kept);
    let (after, cost, _) = run_with(&series, TimeDelta::days(1), &[], &mut kept);
    let (alone, fresh, _) = run_with(&series, TimeDelta::days(1), &[], &mut ModelCache::default());
    assert_eq!(
        cost, fresh,
        "models kept from the first half changed the score"
    );
    println!(
        "  whole series after its first half: {:.2} s on the half's models (the half itself {:.2} s), {:.2} s with none, ratio {:.2}x",
        after.as_secs_f64(),
        first.as_secs_f64(),
        alone.as_secs_f64(),
        after.as_secs_f64() / alone.as_secs_f64()
    );
}
