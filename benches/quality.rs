//! Issue #5's quality goals on every real trace, in one command: at most
//! 0.20x the HPA's under-provisioned minutes for at most 1.10x its
//! replica-hours, and (issue #4's "no flapping") no more flaps than the HPA.
//!
//! Each trace is replayed by the built `foresight backtest` with the
//! README's command line (target per pod, value column, duplicates), at
//! the defaults, with each cost preset (`model: noisy-cost-aware`,
//! `model: seasonal-cost-aware`), in `mode: holding` at its default prices,
//! and with its setting in the per-trace tables of `benches/README.md`
//! where it has one, two replays at a time. The HPA emulation
//! and the oracle are scored in the same replay, so the ratios are
//! same-run ratios and do not depend on how busy the machine is.
//!
//! `cargo bench --bench quality` runs all 37 replays (about five minutes
//! on the 2-core development machine) and prints one row each, then which
//! traces meet the goals; `cargo bench --bench quality -- elb twitter`
//! replays only the traces whose names contain those words. Under
//! `cargo test` it replays one trace at the defaults, to check the path
//! rather than the numbers.

mod support;

use std::path::Path;
use std::process::Command;

use rayon::prelude::*;

/// One real trace and how the README replays it.
struct Trace {
    /// The README's name for it.
    name: &'static str,
    /// Under the shared data directory.
    file: &'static str,
    /// `--value-column`.
    value_column: &'static str,
    /// `--target-per-pod`.
    target: &'static str,
    /// `--duplicates first`, for the traces with repeated timestamps.
    duplicates_first: bool,
    /// Its setting in the per-trace tables of `benches/README.md` (found by
    /// `--sweep`, or for `twitter_amzn` the holding prices found by a grid;
    /// each meets both goals there without flapping more than the HPA),
    /// replayed as a last row.
    tuned: Option<&'static [&'static str]>,
}

/// `scaleDownPercent: "100"` and the 5-minute stabilisation, which every
/// per-trace setting of `benches/README.md`'s table shares, then its own three keys.
macro_rules! tuned {
    ($q:literal, $lookahead:literal, $tolerance:literal) => {
        Some(&[
            "--metadata",
            "scaleDownPercent=100",
            "--metadata",
            "scaleDownStabilization=300s",
            "--metadata",
            concat!("forecastQuantile=", $q),
            "--metadata",
            concat!("scaleDownLookahead=", $lookahead),
            "--metadata",
            concat!("scaleUpTolerance=", $tolerance),
        ])
    };
}

/// A row of `TRACES`, in the order of `Trace`'s fields.
macro_rules! trace {
    ($name:literal, $file:literal, $column:literal, $target:literal, $dup:literal, $tuned:expr) => {
        Trace {
            name: $name,
            file: $file,
            value_column: $column,
            target: $target,
            duplicates_first: $dup,
            tuned: $tuned,
        }
    };
}

#[rustfmt::skip]
const TRACES: &[Trace] = &[
    trace!("nyc_taxi", "nab/nyc_taxi.csv", "value", "1000", false, tuned!("0.6", "5m", "0.03")),
    trace!("elb_requests", "nab/elb_request_count_8c0756.csv", "value", "10", false, None),
    trace!("ec2_latency", "nab/ec2_request_latency_system_failure.csv", "value", "5", true, tuned!("0.6", "0s", "0.1")),
    trace!("asg_cpu", "nab/cpu_utilization_asg_misconfiguration.csv", "value", "5", false, None),
    trace!("occupancy", "nab/occupancy_t4013.csv", "value", "1", true, None),
    trace!("twitter_amzn", "nab/Twitter_volume_AMZN.csv", "value", "10", false, Some(&[
        "--metadata", "mode=holding", "--metadata", "step=5m",
        "--metadata", "shortMinutePrice=3.85", "--metadata", "flapPrice=0.9",
    ])),
    trace!("azure_vm", "azure_vm_v2/azure_vm_v2_cpu_5min_30d.csv", "cpu_usage", "500000", false, tuned!("0.6", "10m", "0.02")),
    trace!("taylor", "taylor/taylor_halfhourly_demand_mw.csv", "demand_mw", "1000", false, tuned!("0.7", "10m", "0")),
];

/// Extra arguments of one row's settings.
enum Settings {
    /// The same on every trace.
    Fixed(&'static [&'static str]),
    /// The trace's own `tuned` setting, on the traces that have one.
    Tuned,
}

impl Settings {
    /// Its extra arguments on `trace`, or `None` where the trace has no
    /// per-trace setting (that row is not replayed).
    fn args(&self, trace: &Trace) -> Option<&'static [&'static str]> {
        match self {
            Settings::Fixed(args) => Some(args),
            Settings::Tuned => trace.tuned,
        }
    }
}

/// The settings compared on every trace: name and extra arguments.
const CONFIGS: &[(&str, Settings)] = &[
    ("defaults", Settings::Fixed(&[])),
    (
        "noisy-cost-aware",
        Settings::Fixed(&["--metadata", "model=noisy-cost-aware"]),
    ),
    (
        "seasonal-cost-aware",
        Settings::Fixed(&["--metadata", "model=seasonal-cost-aware"]),
    ),
    (
        "holding",
        Settings::Fixed(&["--metadata", "mode=holding", "--metadata", "step=5m"]),
    ),
    ("per-trace", Settings::Tuned),
];

const GOAL_UNDER: f64 = 0.20;
const GOAL_COST: f64 = 1.10;

/// One replay's scores, as ratios to the HPA's and the oracle's.
struct Row {
    /// Index into `TRACES`.
    trace: usize,
    /// Index into `CONFIGS`.
    config: usize,
    /// foresight's under-provisioned minutes over the HPA's.
    under: f64,
    /// foresight's replica-hours over the HPA's.
    cost: f64,
    /// foresight's replica-hours over the oracle's: the gap to the bound.
    cost_oracle: f64,
    /// foresight's flaps, then the HPA's.
    flaps: (u64, u64),
}

impl Row {
    fn meets(&self) -> bool {
        self.under <= GOAL_UNDER && self.cost <= GOAL_COST
    }

    fn calm(&self) -> bool {
        self.flaps.0 <= self.flaps.1
    }
}

/// Replays `trace` with `config` through the built binary and reads its
/// report.
fn replay(trace: usize, config: usize, dir: &Path) -> Row {
    let t = &TRACES[trace];
    let (config_name, settings) = &CONFIGS[config];
    let extra = settings
        .args(t)
        .expect("main queues only the settings a trace has");
    let input = support::data_file(t.file);
    assert!(
        input.is_file(),
        "{} not found: this benchmark reads shared/data beside the repository, or set \
         FORESIGHT_DATA_DIR to the data directory",
        input.display()
    );
    let out = dir.join(format!("{}-{config_name}.json", t.name));
    let o = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .arg("backtest")
        .arg("--input")
        .arg(&input)
        .args([
            "--value-column",
            t.value_column,
            "--target-per-pod",
            t.target,
        ])
        .args(if t.duplicates_first {
            &["--duplicates", "first"][..]
        } else {
            &[]
        })
        .args(extra)
        .arg("--output")
        .arg(&out)
        .output()
        .expect("runs the foresight binary");
    assert!(
        o.status.success(),
        "foresight backtest failed on {} ({config_name}): {}",
        t.name,
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the report was written"))
            .expect("the report is JSON");
    let policy = |p: &str, k: &str| {
        report["policies"][p][k]
            .as_f64()
            .unwrap_or_else(|| panic!("report field policies.{p}.{k} missing in {}", out.display()))
    };
    let ratio = |p: &str, k: &str| policy("foresight", k) / policy(p, k);
    Row {
        trace,
        config,
        under: ratio("hpa", "under_provisioned_minutes"),
        cost: ratio("hpa", "replica_hours"),
        cost_oracle: ratio("oracle", "replica_hours"),
        flaps: (
            policy("foresight", "flaps") as u64,
            policy("hpa", "flaps") as u64,
        ),
    }
}

/// Runs every job, two at a time (the development machine has two cores
/// and a replay uses one), keeping the jobs' order in the result.
fn replay_all(jobs: &[(usize, usize)], dir: &Path) -> Vec<Row> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool of two threads")
        .install(|| {
            jobs.par_iter()
                .map(|&(trace, config)| replay(trace, config, dir))
                .collect()
        })
}

fn print(rows: &[Row]) {
    println!(
        "{:<14} {:<20} {:>10} {:>10} {:>10} {:>14}  goals",
        "trace", "settings", "under/hpa", "cost/hpa", "cost/orcl", "flaps (hpa)"
    );
    for r in rows {
        println!(
            "{:<14} {:<20} {:>9.3}x {:>9.3}x {:>9.3}x {:>14}  {}",
            TRACES[r.trace].name,
            CONFIGS[r.config].0,
            r.under,
            r.cost,
            r.cost_oracle,
            format!("{} ({})", r.flaps.0, r.flaps.1),
            match (r.meets(), r.calm()) {
                (true, true) => "both, calm",
                (true, false) => "both, flaps more than the hpa",
                _ => "-",
            }
        );
    }
    println!();
    let traces: Vec<usize> = {
        let mut t: Vec<usize> = rows.iter().map(|r| r.trace).collect();
        t.dedup();
        t
    };
    let met: Vec<String> = traces
        .iter()
        .filter_map(|&t| {
            let by: Vec<&str> = rows
                .iter()
                .filter(|r| r.trace == t && r.meets() && r.calm())
                .map(|r| CONFIGS[r.config].0)
                .collect();
            (!by.is_empty()).then(|| format!("{} ({})", TRACES[t].name, by.join(", ")))
        })
        .collect();
    println!(
        "both goals (<= {GOAL_UNDER:.2}x under-provisioned, <= {GOAL_COST:.2}x replica-hours) without \
         flapping more than the hpa, with one of these settings: {} of {} traces{}{}",
        met.len(),
        traces.len(),
        if met.is_empty() { "" } else { ": " },
        met.join("; ")
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory for the reports");
    if !full {
        // `cargo test`: one short trace at the defaults, to check the path.
        let rows = replay_all(&[(1, 0)], dir.path());
        let r = &rows[0];
        assert!(
            r.under.is_finite() && r.cost > 0.0 && r.cost_oracle > 0.0,
            "ratios from the report: {} / {} / {}",
            r.under,
            r.cost,
            r.cost_oracle
        );
        print(&rows);
        return;
    }
    let jobs: Vec<(usize, usize)> = (0..TRACES.len())
        .filter(|&t| words.is_empty() || words.iter().any(|w| TRACES[t].name.contains(w.as_str())))
        .flat_map(|t| {
            (0..CONFIGS.len())
                .filter(move |&c| CONFIGS[c].1.args(&TRACES[t]).is_some())
                .map(move |c| (t, c))
        })
        .collect();
    assert!(
        !jobs.is_empty(),
        "no trace matches {words:?}; the traces are {}",
        TRACES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
    );
    let started = std::time::Instant::now();
    let rows = replay_all(&jobs, dir.path());
    print(&rows);
    println!(
        "{} replays in {:.0} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
}
