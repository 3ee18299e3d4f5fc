//! `foresight backtest` end to end: every input layout, the outputs, and a
//! clear error (with nothing written) for each kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_foresight"))
        .arg("backtest")
        .args(args)
        .output()
        .expect("run foresight")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Four days of 5-minute samples with a daily cycle, as `series,timestamp,value`.
fn long_csv(dir: &Path) -> PathBuf {
    let mut s = String::from("series,timestamp,value\n");
    for i in 0..4 * 288 {
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        let v = 500.0 - 400.0 * phase.cos() + ((i * 37) % 11) as f64;
        s.push_str(&format!("api,{},{v:.1}\n", 1_700_006_400 + i * 300));
        s.push_str(&format!("other,{},{}\n", 1_700_006_400 + i * 300, 1));
    }
    let p = dir.join("demand.csv");
    std::fs::write(&p, s).unwrap();
    p
}

/// A ScaledObject with a CPU trigger and foresight's external trigger,
/// whose query the backtest replaces with `long_csv`'s `api` series.
fn scaled_object(dir: &Path) -> PathBuf {
    let p = dir.join("so.yaml");
    std::fs::write(
        &p,
        r#"# the team's scaler
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: api, namespace: shop}
spec:
  scaleTargetRef: {name: api}
  triggers:
    - type: cpu
      metadata: {value: "50"}
    - type: external
      metadata:
        scalerAddress: foresight.keda:9090
        queueDepthQuery: sum(rabbitmq_queue_messages)
        queueDepthTarget: 40
        maxReplicaCount: "30"
        history: 3d
        forecastQuantile: "0.9"
"#,
    )
    .unwrap();
    p
}

/// Replays `long_csv`'s `api` series under the ScaledObject `manifest`,
/// retraining every 12 hours, with `extra` flags.
fn replay_manifest(input: &Path, manifest: &Path, extra: &[&str]) -> Output {
    let base = [
        "--input",
        input.to_str().unwrap(),
        "--series",
        "api",
        "--metadata",
        manifest.to_str().unwrap(),
        "--retrain",
        "12h",
    ];
    run(&[&base[..], extra].concat())
}

/// A JSON file the command wrote.
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs with `args` plus `--output DIR/NAME`, which must succeed; returns
/// the stdout and the JSON written.
fn run_json(args: &[&str], dir: &Path, name: &str) -> (String, serde_json::Value) {
    let out = dir.join(name);
    let o = run(&[args, &["--output", out.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", text(&o));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        read_json(&out),
    )
}

/// Replays `long_csv`'s `api` series at 50 per pod.
fn api(input: &Path) -> [&str; 6] {
    [
        "--input",
        input.to_str().unwrap(),
        "--series",
        "api",
        "--target-per-pod",
        "50",
    ]
}

const FAST: [&str; 6] = [
    "--retrain",
    "12h",
    "--warmup",
    "1d",
    "--metadata",
    "history=3d",
];

#[test]
fn writes_report_timeline_and_png_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let (report, timeline, png) = (
        dir.path().join("report.json"),
        dir.path().join("timeline.parquet"),
        dir.path().join("plot.png"),
    );
    let o = run(&[
        &[
            "--input",
            input.to_str().unwrap(),
            "--series",
            "api",
            "--target-per-pod",
            "50",
        ][..],
        &FAST,
        &[
            "--output",
            report.to_str().unwrap(),
            "--timeline",
            timeline.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ],
    ]
    .concat());
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for needle in [
        "foresight",
        "hpa",
        "oracle",
        "foresight / hpa:",
        "replica-hours",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let r = read_json(&report);
    assert_eq!(r["input"]["series"], "api");
    assert_eq!(r["input"]["target_per_pod"], 50.0);
    assert!(r["steps"].as_u64().unwrap() > 2 * 1440);
    assert!(
        r["policies"]["oracle"]["under_provisioned_minutes"]
            .as_f64()
            .unwrap()
            == 0.0
    );

    use polars::prelude::SerReader as _;
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(&timeline).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 4 * 5760 - 19);
    for col in [
        "timestamp",
        "demand",
        "forecast",
        "forecast_lower",
        "forecast_upper",
        "foresight_replicas",
        "foresight_ready",
        "hpa_replicas",
        "hpa_ready",
        "oracle_replicas",
        "oracle_ready",
    ] {
        assert!(df.column(col).is_ok(), "timeline lacks {col}");
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    // Only the three outputs and the input: no temporary files left.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

#[test]
fn single_series_files_and_prometheus_exports_are_read() {
    let dir = tempfile::tempdir().unwrap();
    // timestamp + a named value column, as many exports are.
    let mut csv = String::from("timestamp,cpu,mem\n");
    let mut values = Vec::new();
    for i in 0..3 * 288 {
        let v = 100.0 + ((i % 288) as f64 / 288.0 * std::f64::consts::TAU).sin() * 50.0;
        csv.push_str(&format!("{},{v},7\n", 1_700_006_400 + i * 300));
        values.push(format!("[{},\"{v}\"]", 1_700_006_400 + i * 300));
    }
    let p = dir.path().join("vm.csv");
    std::fs::write(&p, csv).unwrap();
    let o = run(&[
        &[
            "--input",
            p.to_str().unwrap(),
            "--value-column",
            "cpu",
            "--target-per-pod",
            "20",
        ][..],
        &FAST,
    ]
    .concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("series vm"), "{}", text(&o));

    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"job":"api"}},"values":[{}]}}]}}}}"#,
        values.join(",")
    );
    let j = dir.path().join("export.json");
    std::fs::write(&j, body).unwrap();
    let o = run(&[
        &[
            "--input",
            j.to_str().unwrap(),
            "--target-per-pod",
            "20",
            "--signal",
            "queue-depth",
        ][..],
        &FAST,
    ]
    .concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(r#"{job="api"}"#), "{}", text(&o));
}

#[test]
fn scaled_object_yaml_supplies_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let yaml = scaled_object(dir.path());
    let report = dir.path().join("r.json");
    let o = replay_manifest(&input, &yaml, &["--output", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let r = read_json(&report);
    assert_eq!(r["input"]["signal"], "queueDepth");
    assert_eq!(r["input"]["target_per_pod"], 40.0);
    assert_eq!(r["input"]["metadata"]["maxReplicaCount"], "30");
    assert!(
        r["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("replaced by the replayed series")),
        "{r}"
    );
}

#[test]
fn key_value_metadata_overrides_a_manifest_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let yaml = scaled_object(dir.path());
    // Given before the manifest (whose maxReplicaCount is 30), and a
    // manifest whose path has a `=` in it.
    let odd = dir.path().join("team=shop.yaml");
    std::fs::copy(&yaml, &odd).unwrap();
    let report = dir.path().join("r.json");
    let o = run(&[
        "--input",
        input.to_str().unwrap(),
        "--series",
        "api",
        "--retrain",
        "12h",
        "--metadata",
        "maxReplicaCount=12",
        "--metadata",
        odd.to_str().unwrap(),
        "--startup",
        "0s",
        "--warmup",
        "0s",
        "--output",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r = read_json(&report);
    assert_eq!(r["input"]["metadata"]["maxReplicaCount"], "12");
    assert_eq!(r["input"]["signal"], "queueDepth");
    // Zero start-up and zero warm-up are settings, not mistakes.
    assert_eq!(r["input"]["startup_seconds"], 0);
    // Every tick scored: 15 s ticks across four days of 5-minute samples.
    assert_eq!(r["steps"], (4 * 288 - 1) * 20 + 1);
}

#[test]
fn outputs_that_cannot_be_written_are_refused_before_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let report = dir.path().join("r.json");
    let missing = dir.path().join("no-such-dir").join("t.parquet");
    let same = dir.path().join("same.out");
    let before = std::fs::read(&input).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--output",
                report.to_str().unwrap(),
                "--timeline",
                missing.to_str().unwrap(),
            ],
            "does not exist; create it first",
        ),
        (
            vec!["--png", dir.path().to_str().unwrap()],
            "is a directory",
        ),
        (vec!["--output", input.to_str().unwrap()], "is also --input"),
        (
            vec![
                "--timeline",
                same.to_str().unwrap(),
                "--png",
                same.to_str().unwrap(),
            ],
            "is also --timeline",
        ),
    ];
    for (extra, needle) in cases {
        let o = run(&[&api(&input)[..], &FAST[..], &extra[..]].concat());
        let t = text(&o);
        assert!(!o.status.success(), "{extra:?} succeeded:\n{t}");
        assert!(t.contains(needle), "{extra:?}: expected {needle:?} in\n{t}");
        // Refused before the replay, which takes seconds here.
        assert!(!t.contains("ticks of"), "{extra:?} replayed first:\n{t}");
        assert!(
            !report.exists() && !same.exists(),
            "{extra:?} wrote an output"
        );
    }
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input was kept");

    // Nor through a symlink to it.
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let o = run(&[
        &api(&link)[..],
        &FAST[..],
        &["--output", input.to_str().unwrap()],
    ]
    .concat());
    assert!(
        !o.status.success() && text(&o).contains("is also --input"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input was kept");
}

#[test]
fn bad_inputs_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = long_csv(dir.path());
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let empty = write("empty.csv", "");
    let header_only = write("header.csv", "series,timestamp,value\n");
    let backwards = write(
        "backwards.csv",
        "series,timestamp,value\na,120,1\na,60,2\na,180,3\n",
    );
    let duplicate = write(
        "dup.csv",
        "series,timestamp,value\na,60,1\na,60,2\na,120,3\n",
    );
    let out = dir.path().join("never.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--input", empty.to_str().unwrap(), "--target-per-pod", "5"],
            "the file is empty",
        ),
        (
            vec![
                "--input",
                header_only.to_str().unwrap(),
                "--target-per-pod",
                "5",
            ],
            "no rows",
        ),
        (
            vec![
                "--input",
                backwards.to_str().unwrap(),
                "--target-per-pod",
                "5",
            ],
            "go backwards",
        ),
        (
            vec![
                "--input",
                duplicate.to_str().unwrap(),
                "--target-per-pod",
                "5",
            ],
            "duplicate timestamp",
        ),
        (
            vec![
                "--input",
                good.to_str().unwrap(),
                "--series",
                "nope",
                "--target-per-pod",
                "5",
            ],
            "available: api, other",
        ),
        (
            vec!["--input", good.to_str().unwrap(), "--target-per-pod", "5"],
            "choose one with --series",
        ),
        (
            vec![
                "--input",
                good.to_str().unwrap(),
                "--series",
                "api",
                "--target-per-pod",
                "0",
            ],
            "--target-per-pod must be a positive number",
        ),
        (
            vec![
                "--input",
                good.to_str().unwrap(),
                "--series",
                "api",
                "--target-per-pod",
                "-3",
            ],
            "--target-per-pod must be a positive number",
        ),
        (
            vec![
                "--input",
                good.to_str().unwrap(),
                "--series",
                "api",
                "--target-per-pod",
                "5",
                "--tick",
                "1h",
            ],
            "--tick must be between 1s and the data step",
        ),
        (
            vec!["--input", good.to_str().unwrap(), "--series", "api"],
            "--target-per-pod N",
        ),
        (
            vec![
                "--input",
                good.to_str().unwrap(),
                "--series",
                "api",
                "--target-per-pod",
                "5",
                "--metadata",
                "leadTime=5x",
            ],
            "unable to set param \"leadTime\"",
        ),
        (
            vec![
                "--input",
                good.to_str().unwrap(),
                "--series",
                "api",
                "--target-per-pod",
                "5",
                "--metadata",
                "nonsense",
            ],
            "neither key=value nor an existing ScaledObject YAML file",
        ),
    ];
    for (mut args, needle) in cases {
        args.extend(["--output", out.to_str().unwrap()]);
        let o = run(&args);
        let t = text(&o);
        assert!(!o.status.success(), "{args:?} succeeded:\n{t}");
        assert!(t.contains(needle), "{args:?}: expected {needle:?} in\n{t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(!out.exists(), "{args:?} wrote an output");
    }
}

#[test]
fn irregular_steps_are_resampled_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("series,timestamp,value\n");
    let mut t = 1_700_006_400i64;
    for i in 0..3 * 288 {
        s.push_str(&format!("a,{t},{}\n", 100 + (i % 288)));
        // Every 50th interval is 7 minutes instead of 5.
        t += if i % 50 == 49 { 420 } else { 300 };
    }
    let p = dir.path().join("irregular.csv");
    std::fs::write(&p, s).unwrap();
    let o = run(&[
        &["--input", p.to_str().unwrap(), "--target-per-pod", "20"][..],
        &FAST,
    ]
    .concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("differed from the 300s step and were resampled"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_sweep_runs_every_combination_exactly_as_single_runs_would() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let base = [&api(&input)[..], &FAST].concat();
    let (out, sweep) = run_json(
        &[
            &base[..],
            &[
                "--sweep",
                "forecastQuantile=0.75,0.9",
                "--sweep",
                "scaleDownStabilization=60s,300s",
            ],
        ]
        .concat(),
        dir.path(),
        "sweep.json",
    );
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("forecastQuantile="))
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(
        rows[0].starts_with("forecastQuantile=0.75 scaleDownStabilization=60s"),
        "{out}"
    );
    assert!(out.contains("of 4 settings meet"), "{out}");
    assert!(out.contains("hpa: under-provisioned"), "{out}");
    let runs = sweep["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(sweep["goals"]["replica_hours_ratio"], 1.1);
    assert!(runs.iter().any(|r| r["pareto"] == true), "{sweep}");

    // Models are shared between settings that train alike; the scores must
    // be what a separate run with the same metadata gives.
    for (i, q, stab) in [(1, "0.75", "300s"), (2, "0.9", "60s")] {
        assert_eq!(runs[i]["settings"]["forecastQuantile"], q);
        assert_eq!(runs[i]["settings"]["scaleDownStabilization"], stab);
        let q = format!("forecastQuantile={q}");
        let stab = format!("scaleDownStabilization={stab}");
        let (_, single) = run_json(
            &[&base[..], &["--metadata", &q, "--metadata", &stab]].concat(),
            dir.path(),
            &format!("single{i}.json"),
        );
        assert_eq!(
            runs[i]["report"]["policies"], single["policies"],
            "{q} {stab}"
        );
        assert_eq!(
            runs[i]["report"]["forecast"], single["forecast"],
            "{q} {stab}"
        );
        let f = &single["policies"]["foresight"];
        let h = &single["policies"]["hpa"];
        let cost = f["replica_hours"].as_f64().unwrap() / h["replica_hours"].as_f64().unwrap();
        assert!((runs[i]["replica_hours_ratio"].as_f64().unwrap() - cost).abs() < 1e-12);
    }
    // The settings differ, so the runs do.
    assert_ne!(
        runs[0]["report"]["policies"]["foresight"],
        runs[3]["report"]["policies"]["foresight"]
    );
}

#[test]
fn bad_sweeps_fail_with_every_problem_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let out_path = dir.path().join("sweep.json");
    let out = out_path.to_str().unwrap();
    let base = [&api(&input)[..], &["--output", out]].concat();
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &[
                "--sweep",
                "forecastQuantile=0.75,2",
                "--sweep",
                "scaleDownStabilization=soon",
            ],
            &[
                "invalid --sweep settings",
                "forecastQuantile=2 scaleDownStabilization=soon",
                "forecastQuantile",
                "scaleDownStabilization",
            ],
        ),
        (
            &["--sweep", "forecastQuantile"],
            &["--sweep must be KEY=V1,V2"],
        ),
        (
            &["--sweep", "connectionsQuery=a,b"],
            &["replays one series"],
        ),
        (
            &["--sweep", "leadTime=1m", "--sweep", "leadTime=2m"],
            &["each key once"],
        ),
        (
            &["--sweep", "leadTime=1m", "--timeline", "t.parquet"],
            &["--timeline"],
        ),
        (
            &["--sweep", "leadTime=1m", "--goal-replica-hours", "0"],
            &["--goal-replica-hours must be a positive ratio"],
        ),
    ];
    for (extra, needles) in cases {
        let o = run(&[&base[..], extra].concat());
        let t = text(&o);
        assert!(!o.status.success(), "{extra:?} succeeded:\n{t}");
        for n in needles {
            assert!(t.contains(n), "{extra:?}: missing {n:?} in\n{t}");
        }
        assert!(!t.contains("panicked"), "{t}");
        assert!(!out_path.exists(), "{extra:?} wrote {out}");
    }
    // The goals belong to a sweep.
    let o = run(&[&base[..], &["--goal-under-provisioned", "0.3"]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("--sweep"), "{}", text(&o));
}

/// A trace from the shared data set: under `FORESIGHT_DATA_DIR`, else in
/// `shared/data` beside the repository, as CI provides. Fails rather than
/// skips without it.
fn shared_trace(rel: &str) -> String {
    let data = std::env::var("FORESIGHT_DATA_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data").into());
    let path = format!("{data}/{rel}");
    assert!(
        Path::new(&path).is_file(),
        "{path} not found: this test needs the shared data directory: put shared/ beside \
         the repository, or set FORESIGHT_DATA_DIR to its data directory"
    );
    path
}

/// One backtest's foresight-to-HPA ratios: under-provisioned minutes,
/// replica-hours, then foresight's and the HPA's flaps.
fn ratios(args: &[&str], dir: &Path, name: &str) -> (f64, f64, u64, u64) {
    let (_, r) = run_json(args, dir, name);
    let (f, h) = (&r["policies"]["foresight"], &r["policies"]["hpa"]);
    let ratio = |k: &str| f[k].as_f64().unwrap() / h[k].as_f64().unwrap();
    (
        ratio("under_provisioned_minutes"),
        ratio("replica_hours"),
        f["flaps"].as_u64().unwrap(),
        h["flaps"].as_u64().unwrap(),
    )
}

/// Backtests `input` with `base` arguments plus each call's own, into
/// `dir`, returning `ratios()`.
fn scorer<'a>(
    input: &'a str,
    base: &'a [&'a str],
    dir: &'a Path,
) -> impl Fn(&[&str], &str) -> (f64, f64, u64, u64) + 'a {
    move |extra, name| ratios(&[&["--input", input][..], base, extra].concat(), dir, name)
}

/// A preset's run (`ratios()`) flaps no more than the HPA and costs less
/// than the defaults' run.
fn calmer_than_the_hpa_and_cheaper_than_the_defaults(
    preset: (f64, f64, u64, u64),
    defaults: (f64, f64, u64, u64),
) {
    let (_, cost, flaps, hpa_flaps) = preset;
    let default_cost = defaults.1;
    assert!(
        flaps <= hpa_flaps,
        "{flaps} flaps against the HPA's {hpa_flaps}"
    );
    assert!(
        cost < default_cost,
        "the preset ({cost:.3}x) should cost less than the defaults ({default_cost:.3}x)"
    );
}

/// A claim models/seasonal-cost-aware.toml and the README make, kept true:
/// on azure_vm (30 days of 5-minute CPU, the README's command) the preset
/// meets both of issue #5's goals without flapping more than the HPA, where
/// the defaults cost more.
#[test]
fn the_seasonal_cost_aware_preset_meets_both_goals_on_azure_vm() {
    let input = shared_trace("azure_vm_v2/azure_vm_v2_cpu_5min_30d.csv");
    let dir = tempfile::tempdir().unwrap();
    let score = scorer(
        &input,
        &["--value-column", "cpu_usage", "--target-per-pod", "500000"],
        dir.path(),
    );
    let (under, cost, flaps, hpa_flaps) =
        score(&["--metadata", "model=seasonal-cost-aware"], "preset.json");
    assert!(under <= 0.20, "under-provisioned {under:.3}x the HPA's");
    assert!(cost <= 1.10, "replica-hours {cost:.3}x the HPA's");
    calmer_than_the_hpa_and_cheaper_than_the_defaults(
        (under, cost, flaps, hpa_flaps),
        score(&[], "defaults.json"),
    );
}

/// The same preset on asg_cpu (the README's command): it meets both goals
/// and still flaps less than the HPA, and its large-surplus release costs
/// less than holding the surplus (`scaleDownReleaseSurplus: 0`, which with
/// the one-minute tick of earlier versions cost more than 1.10x the HPA).
/// One sweep, so the two share their trained models.
#[test]
fn the_seasonal_cost_aware_preset_meets_both_goals_on_asg_cpu_and_its_release_saves() {
    let input = shared_trace("nab/cpu_utilization_asg_misconfiguration.csv");
    let dir = tempfile::tempdir().unwrap();
    let (_, sweep) = run_json(
        &[
            "--input",
            &input,
            "--value-column",
            "value",
            "--target-per-pod",
            "5",
            "--metadata",
            "model=seasonal-cost-aware",
            "--sweep",
            "scaleDownReleaseSurplus=0,0.5",
        ],
        dir.path(),
        "asg.json",
    );
    let runs = sweep["runs"].as_array().unwrap();
    let by = |surplus: &str| {
        let r = runs
            .iter()
            .find(|r| r["settings"]["scaleDownReleaseSurplus"] == surplus)
            .unwrap();
        let p = &r["report"]["policies"];
        (
            r["under_provisioned_ratio"].as_f64().unwrap(),
            r["replica_hours_ratio"].as_f64().unwrap(),
            p["foresight"]["flaps"].as_u64().unwrap(),
            p["hpa"]["flaps"].as_u64().unwrap(),
        )
    };
    let (_, held_cost, _, _) = by("0");
    let (under, cost, flaps, hpa_flaps) = by("0.5");
    assert!(
        cost < held_cost,
        "the release ({cost:.3}x) should cost less than holding ({held_cost:.3}x)"
    );
    assert!(under <= 0.20, "under-provisioned {under:.3}x the HPA's");
    assert!(cost <= 1.10, "replica-hours {cost:.3}x the HPA's");
    assert!(
        flaps <= hpa_flaps,
        "{flaps} flaps against the HPA's {hpa_flaps}"
    );
}

/// The claims models/noisy-cost-aware.toml makes, kept true on occupancy
/// (the README's command). The daily season matters: with it named (the
/// preset) foresight is both short less often and cheaper than with no
/// season even at the higher 0.8 quantile. `seasonality: auto` finds it too,
/// though the autocorrelation test misses it in the noise, because the
/// seasonal models then compete on held-out data: most trainings choose one,
/// and it also beats no season at 0.8 on both counts. The preset costs less
/// than the defaults and flaps less than the HPA.
#[test]
fn on_a_noisy_trace_the_daily_season_pays_and_auto_finds_it_by_validation() {
    let input = shared_trace("nab/occupancy_t4013.csv");
    let dir = tempfile::tempdir().unwrap();
    let score = scorer(
        &input,
        &[
            "--value-column",
            "value",
            "--target-per-pod",
            "1",
            "--duplicates",
            "first",
        ],
        dir.path(),
    );
    let preset = ["--metadata", "model=noisy-cost-aware"];
    let with = |extra: &[&'static str]| [&preset[..], extra].concat();
    let (under, cost, flaps, hpa_flaps) = score(&preset, "preset.json");
    let (auto_under, auto_cost, _, _) =
        score(&with(&["--metadata", "seasonality=auto"]), "auto.json");
    let (none_under, none_cost, _, _) = score(
        &with(&[
            "--metadata",
            "seasonality=none",
            "--metadata",
            "forecastQuantile=0.8",
        ]),
        "none.json",
    );
    for (what, u, c) in [("named", under, cost), ("auto", auto_under, auto_cost)] {
        assert!(
            u < none_under && c < none_cost,
            "{what} seasons at q 0.6, {u:.3}x / {c:.3}x, should beat no season at q 0.8, \
             {none_under:.3}x / {none_cost:.3}x, on both"
        );
    }
    let models = &read_json(&dir.path().join("auto.json"))["training"]["models"];
    let chosen = |seasonal: bool| -> u64 {
        models
            .as_object()
            .unwrap()
            .iter()
            .filter(|(m, _)| m.contains("mstl") == seasonal)
            .map(|(_, n)| n.as_u64().unwrap())
            .sum()
    };
    assert!(
        chosen(true) > chosen(false),
        "under auto most trainings should model the daily season: {models}"
    );
    calmer_than_the_hpa_and_cheaper_than_the_defaults(
        (under, cost, flaps, hpa_flaps),
        score(&[], "defaults.json"),
    );
}

/// A sweep of two quantiles over `long_csv`'s `api` series with the last
/// half of its scored span held out, under the given goals.
fn held_out_sweep(
    input: &Path,
    dir: &Path,
    goal_under: &str,
    goal_cost: &str,
) -> (String, serde_json::Value) {
    let base = [&api(input)[..], &FAST].concat();
    let sweep = [
        "--sweep",
        "forecastQuantile=0.75,0.9",
        "--holdout",
        "0.5",
        "--goal-under-provisioned",
        goal_under,
        "--goal-replica-hours",
        goal_cost,
    ];
    run_json(&[&base[..], &sweep[..]].concat(), dir, "sweep.json")
}

/// A plain run of `file`'s `api` series with the sweep's settings and
/// `setting`, scored from sample `from` on: what a held-out part must equal.
fn plain_run(file: &Path, from: i64, setting: &str, dir: &Path) -> serde_json::Value {
    let warmup = format!("{}s", from * 300);
    let flags = [
        "--retrain",
        "12h",
        "--warmup",
        &warmup,
        "--metadata",
        "history=3d",
        "--metadata",
        setting,
    ];
    run_json(&[&api(file)[..], &flags[..]].concat(), dir, "single.json").1
}

/// `--holdout` when no setting meets both goals before the split: the
/// nearest (here the cheapest within the under-provisioning goal, as no run
/// is within a replica-hours goal of 0.0001x) is still scored after it.
#[test]
fn a_held_out_sweep_that_meets_no_goal_checks_the_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let (stdout, sweep) = held_out_sweep(&input, dir.path(), "1000", "0.0001");
    assert!(stdout.contains("0 of 2 settings meet"), "{stdout}");
    assert!(
        stdout.contains("no setting met both goals before it; the nearest"),
        "{stdout}"
    );
    let held = sweep["holdout"]["picks"].as_array().unwrap();
    // The pick, then the rest of the front: every run no other beat on
    // both ratios before the split is held out too.
    let picks: Vec<_> = held
        .iter()
        .filter(|p| {
            p["picked_as"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w != "front")
        })
        .collect();
    assert_eq!(picks.len(), 1, "{sweep}");
    let why = picks[0]["picked_as"].as_array().unwrap();
    assert_eq!(
        why[0], "nearest: cheapest within the under-provisioning goal",
        "{sweep}"
    );
    let front: Vec<_> = sweep["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pareto"] == true)
        .map(|r| &r["settings"])
        .collect();
    assert!(!front.is_empty());
    for settings in &front {
        let entry = held.iter().find(|p| &&p["run"]["settings"] == settings);
        let entry = entry.unwrap_or_else(|| panic!("front run {settings} not held out: {sweep}"));
        assert!(
            entry["picked_as"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w == "front"),
            "{entry}"
        );
    }
    assert_eq!(
        held.len(),
        1 + front.len() - usize::from(why.len() == 2),
        "{sweep}"
    );
    assert!(
        stdout.contains("settings on the front before the split meet the goals after it."),
        "{stdout}"
    );
    // The cheapest of the two runs before the split is the one held out.
    let runs = sweep["runs"].as_array().unwrap();
    let cost = |r: &serde_json::Value| {
        r["report"]["policies"]["foresight"]["replica_hours"]
            .as_f64()
            .unwrap()
    };
    let cheapest = runs
        .iter()
        .min_by(|a, b| cost(a).total_cmp(&cost(b)))
        .unwrap();
    assert_eq!(picks[0]["run"]["settings"], cheapest["settings"]);
    assert_eq!(
        picks[0]["run"]["report"]["input"]["scored_from"],
        sweep["holdout"]["split"]
    );
}

/// `--goal-flaps`: a row meets the goals only if it also flaps no more
/// than the given multiple of the HPA's, and the JSON records the goal.
#[test]
fn a_flap_goal_is_part_of_meeting_the_goals() {
    let dir = tempfile::tempdir().unwrap();
    // One-minute samples that jump between two levels every two minutes:
    // a scale-down with no stabilisation follows them and flaps; the HPA's
    // five-minute window, and the same setting at 300 s, do not.
    let mut csv = String::from("timestamp,value\n");
    for i in 0..3 * 1440 {
        let v = if (i / 2) % 2 == 0 { 200 } else { 800 };
        csv.push_str(&format!("{},{v}\n", 1_700_006_400 + i * 60));
    }
    let input = dir.path().join("jumpy.csv");
    std::fs::write(&input, csv).unwrap();
    let flags = [
        "--input",
        input.to_str().unwrap(),
        "--value-column",
        "value",
        "--target-per-pod",
        "100",
        "--retrain",
        "12h",
        "--warmup",
        "1d",
        "--metadata",
        "history=2d",
        "--metadata",
        "mode=reactive",
        "--metadata",
        "scaleDownPercent=100",
        "--metadata",
        "scaleDownLookahead=0s",
        "--sweep",
        "scaleDownStabilization=0s,300s",
        "--goal-under-provisioned",
        "1000",
        "--goal-replica-hours",
        "1000",
        "--goal-flaps",
        "1",
    ];
    let (stdout, sweep) = run_json(&flags, dir.path(), "calm.json");
    assert_eq!(sweep["goals"]["flaps_ratio"], 1.0, "{sweep}");
    assert!(stdout.contains("flaps <= 1.00x the HPA's"), "{stdout}");
    let runs = sweep["runs"].as_array().unwrap();
    let flaps =
        |r: &serde_json::Value, who: &str| r["report"]["policies"][who]["flaps"].as_u64().unwrap();
    let by = |stabilization: &str| {
        runs.iter()
            .find(|r| r["settings"]["scaleDownStabilization"] == stabilization)
            .unwrap()
    };
    let (jumpy, calm) = (by("0s"), by("300s"));
    assert!(flaps(jumpy, "foresight") > flaps(jumpy, "hpa"), "{jumpy}");
    assert_eq!(jumpy["meets_goals"], false);
    assert!(flaps(calm, "foresight") <= flaps(calm, "hpa"), "{calm}");
    assert_eq!(calm["meets_goals"], true);
}

/// `--holdout`: the sweep sees only the span before the split, and its picks
/// are scored after it exactly as a run with the warm-up reaching the split
/// would score them.
#[test]
fn a_held_out_sweep_picks_before_the_split_and_scores_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    // Goals every run meets, so there is something to hold out.
    let (stdout, sweep) = held_out_sweep(&input, dir.path(), "1000", "1000");
    assert!(stdout.contains("Held out from"), "{stdout}");
    assert!(stdout.contains("picks still meet the goals"), "{stdout}");

    // 4 days of 5-minute samples, 1 day of warm-up: 864 scored samples, the
    // last 432 held out, so the split is at sample 720.
    let start = 1_700_006_400;
    let split = chrono::DateTime::from_timestamp(start + 720 * 300, 0).unwrap();
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    assert_eq!(time(&sweep["holdout"]["split"]), split);
    for r in sweep["runs"].as_array().unwrap() {
        assert!(time(&r["report"]["input"]["to"]) < split, "{r}");
    }
    let picks = sweep["holdout"]["picks"].as_array().unwrap();
    assert!(!picks.is_empty(), "{sweep}");
    for p in picks {
        let held = &p["run"]["report"];
        assert_eq!(time(&held["input"]["scored_from"]), split);
        // The same as a plain run over the whole file scored from the split.
        let q = format!(
            "forecastQuantile={}",
            p["run"]["settings"]["forecastQuantile"].as_str().unwrap()
        );
        let single = plain_run(&input, 720, &q, dir.path());
        assert_eq!(held["policies"], single["policies"], "{q}");
        assert_eq!(held["input"]["scored_from"], single["input"]["scored_from"]);
    }

    // Bad holdouts fail clearly and write nothing.
    let base = [&api(&input)[..], &FAST].concat();
    let bad = dir.path().join("bad.json");
    for (extra, expect) in [
        (
            &["--sweep", "forecastQuantile=0.9", "--holdout", "1"][..],
            "between 0 and 1",
        ),
        (
            &["--sweep", "forecastQuantile=0.9", "--holdout", "0.001"][..],
            "nothing to pick or nothing to check",
        ),
        (&["--holdout", "0.5"][..], "--sweep"),
        (
            &["--sweep", "forecastQuantile=0.9", "--goal-flaps=-1"][..],
            "--goal-flaps must be",
        ),
    ] {
        let o = run(&[&base[..], extra, &["--output", bad.to_str().unwrap()]].concat());
        assert!(!o.status.success(), "{extra:?}");
        assert!(text(&o).contains(expect), "{extra:?}: {}", text(&o));
        assert!(!bad.exists(), "{extra:?} wrote {}", bad.display());
    }
}

/// `--write-pick`: the ScaledObject the sweep replayed comes back with
/// the pick in its external trigger's metadata, and only a pick that held
/// after the split is written.
#[test]
fn a_sweep_writes_the_pick_that_held_into_the_scaled_object() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let so = scaled_object(dir.path());
    let sweep_from = |so: &Path, goal: &str, pick: &str, out: &Path, report: &Path| {
        replay_manifest(
            &input,
            so,
            &[
                "--target-per-pod",
                "50",
                "--warmup",
                "1d",
                "--metadata",
                "history=3d",
                "--sweep",
                "scaleDownStabilization=60s,300s",
                "--holdout",
                "0.5",
                "--goal-under-provisioned",
                goal,
                "--goal-replica-hours",
                goal,
                "--pick",
                pick,
                "--write-pick",
                out.to_str().unwrap(),
                "--output",
                report.to_str().unwrap(),
            ],
        )
    };
    let sweep = |goal: &str, pick: &str, out: &Path, report: &Path| {
        sweep_from(&so, goal, pick, out, report)
    };
    let report = dir.path().join("sweep.json");
    for pick in ["calmest", "cheapest"] {
        let out = dir.path().join(format!("{pick}.yaml"));
        // Goals every run meets, so each pick holds after the split.
        let o = sweep("1000", pick, &out, &report);
        assert!(o.status.success(), "{}", text(&o));
        let r = read_json(&report);
        let held = r["holdout"]["picks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["picked_as"].as_array().unwrap().iter().any(|w| w == pick))
            .unwrap_or_else(|| panic!("no {pick} pick held out: {r}"));
        let chosen = held["run"]["settings"]["scaleDownStabilization"]
            .as_str()
            .unwrap();
        let written = std::fs::read_to_string(&out).unwrap();
        assert!(
            written.starts_with(&format!(
                "# Written by `foresight backtest --write-pick` from {}, replayed on ",
                so.display()
            )),
            "{written}"
        );
        assert!(
            written.contains(&format!(
                "the {pick} pick, scaleDownStabilization={chosen}."
            )),
            "{written}"
        );
        assert!(
            written.contains(&format!(
                "before {}, and after it: ",
                r["holdout"]["split"].as_str().unwrap()
            )),
            "{written}"
        );
        let doc: serde_yaml::Value = serde_yaml::from_str(&written).unwrap();
        let before: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&so).unwrap()).unwrap();
        // Everything but the external trigger's metadata is as it was.
        assert_eq!(doc["metadata"], before["metadata"]);
        assert_eq!(doc["spec"]["triggers"][0], before["spec"]["triggers"][0]);
        let meta = &doc["spec"]["triggers"][1]["metadata"];
        // The pick and what the command line set, over the manifest's own;
        // the query is the manifest's, not the replayed series' id.
        assert_eq!(meta["scaleDownStabilization"].as_str(), Some(chosen));
        assert_eq!(meta["queueDepthTarget"].as_str(), Some("50"));
        assert_eq!(meta["history"].as_str(), Some("3d"));
        assert_eq!(meta["forecastQuantile"].as_str(), Some("0.9"));
        assert_eq!(
            meta["queueDepthQuery"].as_str(),
            Some("sum(rabbitmq_queue_messages)")
        );
        assert_eq!(meta["scalerAddress"].as_str(), Some("foresight.keda:9090"));
        assert!(meta.get("hpaTolerance").is_none(), "{written}");
        // KEDA's metadata is a map of strings: every value comes back as one.
        for (k, v) in meta.as_mapping().unwrap() {
            assert!(v.is_string(), "{k:?}: {v:?}");
        }
        // The manifest was edited in place: the team's comment is kept,
        // and no note says otherwise.
        assert!(written.contains("\n# the team's scaler\n"), "{written}");
        assert!(!text(&o).contains("could not be edited in place"));
        // And it replays: the written manifest is a valid --metadata input.
        let again = replay_manifest(&input, &out, &["--warmup", "1d"]);
        assert!(again.status.success(), "{}", text(&again));
    }

    // Picking again into the file a pick was written to replaces its
    // header rather than stacking a second one over it.
    let out = dir.path().join("calmest.yaml");
    let o = sweep_from(&out, "1000", "calmest", &out, &report);
    assert!(o.status.success(), "{}", text(&o));
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.matches("--write-pick").count(), 1, "{written}");
    assert!(written.contains("\n# the team's scaler\n"), "{written}");

    // A manifest the lossless edit cannot change safely (here a second
    // trigger aliases the external trigger's metadata, so editing it in
    // place would change both) is written whole, and the command says
    // its comments are gone.
    let aliased = dir.path().join("aliased.yaml");
    let so_text = std::fs::read_to_string(&so).unwrap();
    std::fs::write(
        &aliased,
        so_text.replacen(
            "      metadata:\n        scalerAddress",
            "      metadata: &m\n        scalerAddress",
            1,
        ) + "    - type: external-push\n      metadata: *m\n",
    )
    .unwrap();
    let out = dir.path().join("whole.yaml");
    let o = sweep_from(&aliased, "1000", "calmest", &out, &report);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "note: {} could not be edited in place, so it was written whole: its comments and layout are not kept",
            aliased.display()
        )),
        "{}",
        text(&o)
    );
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let triggers = &doc["spec"]["triggers"];
    assert_eq!(triggers[1]["metadata"]["history"].as_str(), Some("3d"));
    assert_eq!(
        triggers[1]["metadata"]["queueDepthTarget"].as_str(),
        Some("50")
    );
    // The alias's copy is foresight's trigger too (an external-push one):
    // written alike, so KEDA sends one configuration, not two.
    assert_eq!(triggers[2]["metadata"], triggers[1]["metadata"]);

    // Goals no run meets: the sweep's table and --output still come, the
    // command fails and names why, and no manifest is written.
    let out = dir.path().join("none.yaml");
    std::fs::remove_file(&report).unwrap();
    let o = sweep("0.0001", "calmest", &out, &report);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!(
            "--write-pick {}: no setting met the goals before ",
            out.display()
        )) && text(&o).contains("; nothing was written"),
        "{}",
        text(&o)
    );
    assert!(report.exists());
    assert!(!out.exists());

    // Without the manifest to write into, it fails before replaying.
    let o = run(&[
        &api(&input)[..],
        &["--sweep", "forecastQuantile=0.9", "--write-pick"],
        &[out.to_str().unwrap()],
    ]
    .concat());
    assert!(!o.status.success());
    assert!(
        text(&o).contains("give exactly one ScaledObject YAML with --metadata FILE (got 0)"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("[1/1]"), "{}", text(&o));
    assert!(!out.exists());
}

/// `--folds 2`: the held-out half is scored in two parts, each on a pick
/// made on everything before it (the sweep runs again for the second), and
/// each part's scores are exactly a plain run's over the series up to the
/// part's end with the warm-up reaching its start.
#[test]
fn held_out_folds_pick_on_the_past_and_score_each_part_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_csv(dir.path());
    let base = [&api(&input)[..], &FAST].concat();
    let sweep = [
        "--sweep",
        "forecastQuantile=0.75,0.9",
        "--holdout",
        "0.5",
        "--folds",
        "2",
        "--goal-under-provisioned",
        "1000",
        "--goal-replica-hours",
        "1000",
    ];
    let (stdout, report) = run_json(&[&base[..], &sweep[..]].concat(), dir.path(), "folds.json");
    assert!(stdout.contains("Held out fold 1 of 2, from"), "{stdout}");
    assert!(stdout.contains("Held out fold 2 of 2, from"), "{stdout}");
    assert!(stdout.contains("Across the 2 folds:"), "{stdout}");

    // 864 scored samples, 432 held out: folds from sample 720 and 936.
    let start = 1_700_006_400;
    let at = |k: i64| chrono::DateTime::from_timestamp(start + k * 300, 0).unwrap();
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    let first = &report["holdout"];
    let folds = report["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 1, "{report}");
    let second = &folds[0];
    assert_eq!(time(&first["split"]), at(720));
    assert_eq!(time(&first["until"]), at(936));
    assert_eq!(time(&second["split"]), at(936));
    assert!(second.get("until").is_none(), "{second}");

    // Each part's picks against a plain run: the first over a file cut at
    // the second part's start, the second over the whole file.
    let cut = dir.path().join("cut.csv");
    let text = std::fs::read_to_string(&input).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split(',')
                .nth(1)
                .and_then(|t| t.parse::<i64>().ok())
                .is_none_or(|t| t < start + 936 * 300)
        })
        .collect();
    std::fs::write(&cut, kept.join("\n") + "\n").unwrap();
    for (part, file, from) in [(first, &cut, 720), (second, &input, 936)] {
        let picks = part["picks"].as_array().unwrap();
        assert!(!picks.is_empty(), "{part}");
        for p in picks {
            let held = &p["run"]["report"];
            assert_eq!(time(&held["input"]["scored_from"]), at(from));
            let q = format!(
                "forecastQuantile={}",
                p["run"]["settings"]["forecastQuantile"].as_str().unwrap()
            );
            let single = plain_run(file, from, &q, dir.path());
            assert_eq!(held["policies"], single["policies"], "{q} from {from}");
            assert_eq!(held["input"]["to"], single["input"]["to"]);
        }
    }

    // Folds that cannot hold two samples each are refused.
    let o = run(&[
        &base[..],
        &[
            "--sweep",
            "forecastQuantile=0.9",
            "--holdout",
            "0.5",
            "--folds",
            "500",
        ][..],
    ]
    .concat());
    assert!(!o.status.success());
    assert!(
        crate::text(&o).contains("--folds 500 cannot split"),
        "{}",
        crate::text(&o)
    );
}

/// A claim the README makes, kept true: on twitter_amzn (the README's
/// command) `mode: holding` at the README's prices meets both of issue #5's
/// goals without flapping more than the HPA, where no quantile setting
/// did; every decision was the plan's (no fallback once models exist).
/// The margins are thin (0.198x and 1.098x at the time of writing), so a
/// change to the need model or the plan that moves them shows here.
#[test]
fn holding_meets_both_goals_on_twitter_amzn_within_the_hpas_flaps() {
    let input = shared_trace("nab/Twitter_volume_AMZN.csv");
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = run_json(
        &[
            "--input",
            &input,
            "--value-column",
            "value",
            "--target-per-pod",
            "10",
            "--metadata",
            "mode=holding",
            "--metadata",
            "step=5m",
            "--metadata",
            "shortMinutePrice=3.85",
            "--metadata",
            "flapPrice=0.9",
        ],
        dir.path(),
        "holding.json",
    );
    let (f, h) = (&r["policies"]["foresight"], &r["policies"]["hpa"]);
    let ratio = |k: &str| f[k].as_f64().unwrap() / h[k].as_f64().unwrap();
    let (under, cost) = (ratio("under_provisioned_minutes"), ratio("replica_hours"));
    let (flaps, hpa_flaps) = (f["flaps"].as_u64().unwrap(), h["flaps"].as_u64().unwrap());
    assert!(under <= 0.20, "under-provisioned {under:.4}x the HPA's");
    assert!(cost <= 1.10, "replica-hours {cost:.4}x the HPA's");
    assert!(
        flaps <= hpa_flaps,
        "{flaps} flaps against the HPA's {hpa_flaps}"
    );
    let decisions = &r["decisions"]["prediction"];
    let used = decisions["used"].as_u64().unwrap_or(0);
    let total: u64 = decisions
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        used as f64 >= 0.99 * total as f64,
        "the plan decided {used} of {total} ticks: {decisions}"
    );
}
