//! `foresight backtest --prometheus-url` against a real Prometheus: the live
//! pull (chunked range queries, over 11,000 points) replays exactly what the
//! same data replays from a file, and Prometheus' own errors reach the user.
//!
//! The data is 9 days of 1-minute synthetic demand (12,960 points: more than
//! one range query may return), backfilled with `promtool`.

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/prometheus.rs"]
mod prometheus_support;
use prometheus_support::Prometheus;

const METRIC: &str = "foresight_backtest_demand";
/// 2026-01-01T00:00:00Z: fixed, so the replay is the same on every run.
const START: i64 = 1_767_225_600;
const DAYS: i64 = 9;

fn demand(t: i64) -> f64 {
    let day = ((t - START) as f64 / 86_400.0) * std::f64::consts::TAU;
    let jitter = ((t / 60).wrapping_mul(2_654_435_761) % 41) as f64;
    (600.0 + 400.0 * day.sin() + jitter).round()
}

fn data() -> (String, String) {
    let mut csv = String::from("series,timestamp,value\n");
    let mut om = format!("# TYPE {METRIC} gauge\n");
    for t in (START..START + DAYS * 86_400).step_by(60) {
        let v = demand(t);
        csv.push_str(&format!("{METRIC},{t},{v}\n"));
        om.push_str(&format!("{METRIC} {v} {t}\n"));
    }
    om.push_str("# EOF\n");
    (csv, om)
}

fn backtest(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_foresight"))
        .arg("backtest")
        .args(args)
        .args([
            "--target-per-pod",
            "50",
            "--history",
            "3d",
            "--warmup",
            "2d",
            "--metadata",
            "seasonality=1d",
            "--output",
        ])
        .arg(out)
        .output()
        .expect("run foresight backtest")
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_pull_replays_exactly_what_the_same_file_replays() {
    let (csv, om) = data();
    let prom = Prometheus::start(&om).await;
    let dir = prom.dir().to_path_buf();
    let file = dir.join("demand.csv");
    std::fs::write(&file, csv).unwrap();
    let start = "2026-01-01T00:00:00Z";
    let end = "2026-01-09T23:59:00Z";

    let from_file = backtest(&["--input", file.to_str().unwrap()], &dir.join("file.json"));
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    let live = backtest(
        &[
            "--prometheus-url",
            &prom.url,
            "--query",
            METRIC,
            "--start",
            start,
            "--end",
            end,
            "--step",
            "1m",
        ],
        &dir.join("live.json"),
    );
    assert!(
        live.status.success(),
        "{}\nprometheus log:\n{}",
        String::from_utf8_lossy(&live.stderr),
        prom.log_tail()
    );
    let (a, b) = (
        report(&dir.join("file.json")),
        report(&dir.join("live.json")),
    );
    assert!(a["steps"].as_u64().unwrap() > 8_000, "{a}");
    assert_eq!(
        a["steps"], b["steps"],
        "file {}\nlive {}",
        a["input"], b["input"]
    );
    assert_eq!(a["step_seconds"], b["step_seconds"]);
    // Same data, same replay: every policy's score and the forecast's
    // accuracy agree exactly.
    assert_eq!(a["policies"], b["policies"], "file vs live pull");
    assert_eq!(a["forecast"], b["forecast"], "file vs live pull");
    assert_eq!(a["decisions"], b["decisions"], "file vs live pull");

    // Prometheus' own message for a PromQL syntax error, and nothing written.
    let bad_out = dir.join("bad.json");
    let bad = backtest(
        &[
            "--prometheus-url",
            &prom.url,
            "--query",
            "sum(rate(",
            "--start",
            start,
            "--end",
            end,
        ],
        &bad_out,
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("parse error"), "{err}");
    assert!(!bad_out.exists(), "a failed backtest wrote {bad_out:?}");
}
