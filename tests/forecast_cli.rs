//! `foresight forecast` and `foresight forecast inspect` end to end, through
//! the built binary, on real trace excerpts (tests/fixtures/forecast/, see
//! the README there): output columns, horizon rows per series, ordered
//! intervals, a series that cannot be fitted, Parquet output, integer
//! timestamps, bad input, the inspection report and its PNG.

mod support;

use support::foresight;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use polars::prelude::SerReader;

const TRACES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/forecast/traces.csv"
);

/// One output row.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    timestamp: String,
    point: f64,
    lower: f64,
    upper: f64,
}

/// Output CSV rows by series, checking the header and that every interval is
/// finite and ordered.
fn parse(csv: &str) -> BTreeMap<String, Vec<Row>> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("series,timestamp,point,lower,upper"));
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), 5, "{line}");
        let num = |s: &str| s.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        let row = Row {
            timestamp: cells[1].to_string(),
            point: num(cells[2]),
            lower: num(cells[3]),
            upper: num(cells[4]),
        };
        assert!(
            row.lower.is_finite() && row.upper.is_finite() && row.point.is_finite(),
            "{line}"
        );
        assert!(
            row.lower <= row.point && row.point <= row.upper,
            "interval out of order: {line}"
        );
        out.entry(cells[0].to_string()).or_default().push(row);
    }
    out
}

fn rfc3339(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .with_timezone(&Utc)
}

/// Timestamps continue each series one step after its last input row.
fn assert_continues(rows: &[Row], first: &str, step: TimeDelta) {
    let t0 = rfc3339(first);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(rfc3339(&r.timestamp), t0 + step * i as i32, "row {i}");
    }
}

#[test]
fn forecasts_every_series_and_reports_the_one_that_cannot_be_fitted() {
    let r = foresight(&["forecast", "--input", TRACES, "--horizon", "24"]);
    // One series failed: the others are written, and the exit code says so.
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "error: series \"short\": not enough history to forecast: 5 usable observations"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("1 of 3 series could not be forecast (see the errors above); the other 2 were written to stdout"),
        "{}",
        r.stderr
    );
    let rows = parse(&r.stdout);
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        ["elb_requests", "nyc_taxi"],
        "{}",
        r.stdout
    );
    assert!(rows.values().all(|v| v.len() == 24));
    // The last input rows are 2014-04-17T00:14:00Z (5 min) and
    // 2014-12-14T23:30:00Z (30 min).
    assert_continues(
        &rows["elb_requests"],
        "2014-04-17T00:19:00Z",
        TimeDelta::minutes(5),
    );
    assert_continues(
        &rows["nyc_taxi"],
        "2014-12-15T00:00:00Z",
        TimeDelta::minutes(30),
    );
    // Real demand, forecast sensibly: within the range the taxi series had.
    assert!(
        rows["nyc_taxi"]
            .iter()
            .all(|r| r.point >= 0.0 && r.point < 40_000.0)
    );
    // The first half day from midnight: the night trough, then the
    // morning climb.
    let taxi = &rows["nyc_taxi"];
    assert!(taxi[23].point > taxi[8].point, "{taxi:?}");
}

#[test]
fn writes_csv_and_parquet_files_with_spans_as_horizons() {
    let dir = tempfile::tempdir().unwrap();
    let only_good = dir.path().join("good.csv");
    // The two series that can be fitted, so the run succeeds.
    let text = std::fs::read_to_string(TRACES).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("short,")).collect();
    std::fs::write(&only_good, kept.join("\n") + "\n").unwrap();
    let input = only_good.to_str().unwrap();

    let csv = dir.path().join("out.csv");
    let r = foresight(&[
        "forecast",
        "--input",
        input,
        "--horizon",
        "2h",
        "--level",
        "0.8",
        "--output",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let rows = parse(&std::fs::read_to_string(&csv).unwrap());
    // Two hours is 24 five-minute steps and 4 half-hour steps.
    assert_eq!(rows["elb_requests"].len(), 24);
    assert_eq!(rows["nyc_taxi"].len(), 4);

    let pq = dir.path().join("out.parquet");
    let r = foresight(&[
        "forecast",
        "--input",
        input,
        "--horizon",
        "2h",
        "--level",
        "0.8",
        "--output",
        pq.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(&pq).unwrap())
        .finish()
        .unwrap();
    let names: Vec<&str> = df.get_column_names().iter().map(|c| c.as_str()).collect();
    assert_eq!(names, ["series", "timestamp", "point", "lower", "upper"]);
    assert_eq!(df.height(), 28);
    assert!(matches!(
        df.column("timestamp").unwrap().dtype(),
        polars::prelude::DataType::Datetime(_, _)
    ));
    // The same numbers as the CSV: the fit is deterministic.
    let point: Vec<f64> = df
        .column("point")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let from_csv: Vec<f64> = rows.values().flatten().map(|r| r.point).collect();
    assert_eq!(point, from_csv);
    // Atomic writes leave no temporary files behind.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["good.csv", "out.csv", "out.parquet"]);
}

#[test]
fn a_wider_level_gives_a_wider_interval() {
    let width = |level: &str| -> f64 {
        let r = foresight(&[
            "forecast",
            "inspect",
            "--input",
            TRACES,
            "--series",
            "nyc_taxi",
            "--horizon",
            "24",
            "--level",
            level,
        ]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("forecast "))
            .unwrap();
        line.rsplit('±').next().unwrap().trim().parse().unwrap()
    };
    let (narrow, wide) = (width("0.5"), width("0.95"));
    assert!(narrow > 0.0 && narrow < wide, "{narrow} vs {wide}");
}

#[test]
fn integer_timestamps_of_files_without_dates_stay_integers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("indexed.csv");
    // The real taxi values, indexed 1..=672 as a file with no real dates
    // (like M4) would be.
    let text = std::fs::read_to_string(TRACES).unwrap();
    let mut csv = String::from("series,timestamp,value\n");
    for (i, line) in text
        .lines()
        .filter(|l| l.starts_with("nyc_taxi,"))
        .enumerate()
    {
        let value = line.rsplit(',').next().unwrap();
        csv.push_str(&format!("taxi,{},{value}\n", i + 1));
    }
    std::fs::write(&input, csv).unwrap();
    let r = foresight(&[
        "forecast",
        "--input",
        input.to_str().unwrap(),
        "--horizon",
        "48",
        "--seasonality",
        "48,336",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let rows = parse(&r.stdout);
    let stamps: Vec<i64> = rows["taxi"]
        .iter()
        .map(|r| r.timestamp.parse().unwrap())
        .collect();
    assert_eq!(stamps, (673..=720).collect::<Vec<i64>>());

    let r = foresight(&[
        "forecast",
        "inspect",
        "--input",
        input.to_str().unwrap(),
        "--horizon",
        "48",
        "--seasonality",
        "48,336",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("forecast     48 steps from 673:"),
        "{}",
        r.stdout
    );
}

#[test]
fn inspect_prints_model_accuracy_and_a_chart_and_draws_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("taxi.png");
    let r = foresight(&[
        "forecast",
        "inspect",
        "--input",
        TRACES,
        "--series",
        "nyc_taxi",
        "--horizon",
        "1d",
        "--seasonality",
        "1d,1w",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let out = &r.stdout;
    let line = |prefix: &str| -> &str {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
    };
    assert!(out.starts_with("foresight forecast inspect: series \"nyc_taxi\"\n"));
    assert!(
        line("history ")
            .contains("672 values every 30m, 2014-12-01T00:00:00Z to 2014-12-14T23:30:00Z"),
        "{out}"
    );
    // Validation chooses between MSTL, seasonal naive and naive; the
    // periods line names what it chose from.
    let model = line("model ").trim_start_matches("model").trim();
    assert!(
        ["mstl[", "seasonal_naive[", "naive"]
            .iter()
            .any(|m| model.starts_with(m)),
        "{out}"
    );
    assert!(
        line("periods ").contains("(steps; candidates 48 (1d), 336 (1w))"),
        "{out}"
    );
    let mase: f64 = line("validation ")
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(mase > 0.0 && mase < 2.0, "{out}");
    // The hidden day: a count out of 48 and its percentage.
    let cov = line("coverage ");
    assert!(
        cov.contains("95% interval held ") && cov.contains(" of the last 48 values ("),
        "{out}"
    );
    assert!(
        line("forecast ").contains("48 steps from 2014-12-15T00:00:00Z"),
        "{out}"
    );
    // Taxi rides stay above or below the weekly pattern for hours: the
    // forecast can be corrected by the latest observation.
    let anchor = line("anchor ");
    assert!(
        anchor.contains("errors persist (phi 0.")
            && anchor.contains("one step ahead")
            && anchor.contains("30 steps ahead"),
        "{out}"
    );
    // The ASCII chart: 20 rows of plot with history, forecast and band.
    let plot: Vec<&str> = out.lines().filter(|l| l.contains(" |")).collect();
    assert_eq!(plot.len(), 20, "{out}");
    for mark in ['*', 'o', ':'] {
        assert!(plot.iter().any(|l| l.contains(mark)), "no {mark:?}:\n{out}");
    }
    assert!(out.contains("^ forecast starts"), "{out}");
    assert!(out.contains("* history (144 values)"), "{out}");

    // A real PNG of the chart's size.
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (1600, 450));
    // Not blank: several colours are drawn.
    let rgb = img.to_rgb8();
    let mut colours: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 20, "{} colours", colours.len());
}

#[test]
fn bad_input_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let wrong_columns = write("wide.csv", "id,time,v\nq,0,1\nq,60,2\n");
    let negative = write("neg.csv", "series,timestamp,value\nq,0,1\nq,60,-2\n");
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "--input".into(),
                s(&wrong_columns),
                "--horizon".into(),
                "4".into(),
            ],
            1,
            "missing column \"series\"",
        ),
        (
            vec![
                "--input".into(),
                s(&negative),
                "--horizon".into(),
                "4".into(),
            ],
            1,
            "row 3: value -2 for series \"q\" is negative",
        ),
        (
            vec![
                "--input".into(),
                s(&dir.path().join("nope.csv")),
                "--horizon".into(),
                "4".into(),
            ],
            1,
            "nope.csv",
        ),
        (
            vec![
                "--input".into(),
                TRACES.into(),
                "--horizon".into(),
                "4".into(),
                "--output".into(),
                s(&dir.path().join("out.txt")),
            ],
            1,
            "unsupported extension \"txt\"; use .csv or .parquet",
        ),
        (
            vec![
                "--input".into(),
                TRACES.into(),
                "--horizon".into(),
                "0".into(),
            ],
            2,
            "at least 1",
        ),
        (
            vec![
                "--input".into(),
                TRACES.into(),
                "--horizon".into(),
                "4".into(),
                "--seasonality".into(),
                "24,1x".into(),
            ],
            2,
            "seasonal period \"1x\"",
        ),
        (
            vec![
                "--input".into(),
                TRACES.into(),
                "--horizon".into(),
                "4".into(),
                "--level".into(),
                "95".into(),
            ],
            2,
            "strictly between 0 and 1",
        ),
        (vec!["--horizon".into(), "4".into()], 2, "--input"),
        (
            vec![
                "--input".into(),
                TRACES.into(),
                "--horizon".into(),
                "100000000000".into(),
            ],
            1,
            "at most 1000000 are supported",
        ),
        (
            vec!["inspect".into(), "--input".into(), TRACES.into()],
            1,
            "holds 3 series; choose one with --series (one of: elb_requests, nyc_taxi, short)",
        ),
        (
            vec![
                "inspect".into(),
                "--input".into(),
                TRACES.into(),
                "--series".into(),
                "taxi".into(),
            ],
            1,
            "series \"taxi\" is not in",
        ),
        (
            vec![
                "inspect".into(),
                "--input".into(),
                TRACES.into(),
                "--series".into(),
                "short".into(),
            ],
            1,
            "series \"short\": not enough history",
        ),
    ];
    for (args, code, want) in cases {
        let mut full = vec!["forecast".to_string()];
        full.extend(args.iter().cloned());
        let argv: Vec<&str> = full.iter().map(String::as_str).collect();
        let r = foresight(&argv);
        assert_eq!(r.code, Some(code), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(want),
            "{args:?}: want {want:?} in\n{}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    // Nothing was written for the rejected output path.
    assert!(!dir.path().join("out.txt").exists());
}

#[test]
fn an_output_that_is_the_input_is_refused_and_the_input_kept() {
    // `--output victim.csv` replaced the history with the forecast (and
    // `eval --output`, `inspect --png` with JSON and a PNG).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("victim.csv");
    std::fs::copy(TRACES, &input).unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let before = std::fs::read(&input).unwrap();
    let i = input.to_str().unwrap();
    let l = link.to_str().unwrap();
    let missing = dir.path().join("no/such/dir/out.csv");
    let m = missing.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["forecast", "--input", i, "--horizon", "4", "--output", i],
            "--output",
        ),
        (
            vec!["forecast", "--input", i, "--horizon", "4", "--output", l],
            "--output",
        ),
        (
            vec![
                "forecast", "inspect", "--input", i, "--series", "nyc_taxi", "--png", i,
            ],
            "--png",
        ),
        (
            vec![
                "eval",
                "--input",
                i,
                "--holdout",
                "4",
                "--season",
                "24",
                "--output",
                i,
            ],
            "--output",
        ),
    ];
    for (args, flag) in cases {
        let r = foresight(&args);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("{flag} ")) && r.stderr.contains("is also --input"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(
            std::fs::read(&input).unwrap(),
            before,
            "{args:?}: the input changed"
        );
    }
    // A missing directory is refused before any fitting.
    let r = foresight(&["forecast", "--input", i, "--horizon", "4", "--output", m]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("does not exist; create it first"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_series_ending_in_empty_samples_is_forecast_past_its_end() {
    // Exporters leave the last samples empty (scrape lag): fitted up to its
    // last value, the forecast started inside the file, and `--horizon 3`
    // gave three rows all dated before the file's end.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lagging.csv");
    let mut csv = String::from("series,timestamp,value\n");
    let start = 1_700_000_000_i64 - 1_700_000_000 % 3_600;
    for i in 0..24 * 14 {
        let t = start + 3_600 * i;
        if i >= 24 * 14 - 5 {
            csv.push_str(&format!("s,{t},\n"));
        } else {
            let v = 100.0 + 40.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
            csv.push_str(&format!("s,{t},{v}\n"));
        }
    }
    std::fs::write(&path, &csv).unwrap();
    let last = start + 3_600 * (24 * 14 - 1);
    let r = foresight(&[
        "forecast",
        "--input",
        path.to_str().unwrap(),
        "--horizon",
        "3",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let rows = &parse(&r.stdout)["s"];
    let stamps: Vec<i64> = rows.iter().map(|r| r.timestamp.parse().unwrap()).collect();
    assert_eq!(stamps, vec![last + 3_600, last + 7_200, last + 10_800]);
    assert!(
        r.stderr.contains("ends in 5 empty sample(s)"),
        "{}",
        r.stderr
    );
    // `inspect` forecasts from the same place.
    let r = foresight(&["forecast", "inspect", "--input", path.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("from {}", last + 3_600)),
        "{}",
        r.stdout
    );
}

#[test]
fn a_single_series_export_with_repeated_hours_is_forecast_with_the_flags_the_errors_name() {
    // The loader's errors named --value-column and --duplicates, which
    // `forecast` and `inspect` did not have: NAB's ec2 trace and the Azure
    // CPU export could not be forecast at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpu.csv");
    let mut csv = String::from("timestamp,cpu_usage\n");
    for i in 0..24 * 7 {
        let v = 50.0 + 20.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
        csv.push_str(&format!(
            "{},{v}\n",
            1_700_000_000 - 1_700_000_000 % 3_600 + 3_600 * i
        ));
        if i == 30 {
            // Clocks went back: the hour is exported twice.
            csv.push_str(&format!(
                "{},{}\n",
                1_700_000_000 - 1_700_000_000 % 3_600 + 3_600 * i,
                v + 1.0
            ));
        }
    }
    std::fs::write(&path, &csv).unwrap();
    let p = path.to_str().unwrap();
    let r = foresight(&["forecast", "--input", p, "--horizon", "4"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("--value-column"), "{}", r.stderr);
    let r = foresight(&[
        "forecast",
        "--input",
        p,
        "--horizon",
        "4",
        "--value-column",
        "cpu_usage",
    ]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("--duplicates first|last"), "{}", r.stderr);
    let r = foresight(&[
        "forecast",
        "--input",
        p,
        "--horizon",
        "4",
        "--value-column",
        "cpu_usage",
        "--duplicates",
        "first",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(parse(&r.stdout)["cpu"].len(), 4);
    assert!(
        r.stderr
            .contains("1 sample(s) at a repeated timestamp dropped"),
        "{}",
        r.stderr
    );
    let r = foresight(&[
        "forecast",
        "inspect",
        "--input",
        p,
        "--value-column",
        "cpu_usage",
        "--duplicates",
        "last",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn a_series_that_cannot_be_read_fails_alone() {
    // A new service's single sample refused the whole file: no series was
    // forecast (and `serve --metrics-file` did not start).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.csv");
    let mut csv = String::from("series,timestamp,value\n");
    for i in 0..24 * 7 {
        let v = 100.0 + 40.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
        csv.push_str(&format!("good,{},{v}\n", 1_699_999_200 + 3_600 * i));
    }
    csv.push_str("new,1700000000,5\n");
    std::fs::write(&path, &csv).unwrap();
    let p = path.to_str().unwrap();
    let r = foresight(&["forecast", "--input", p, "--horizon", "3"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert_eq!(parse(&r.stdout)["good"].len(), 3, "{}", r.stdout);
    assert!(
        r.stderr.contains("error: series \"new\": cannot be read:")
            && r.stderr.contains("1 of 2 series could not be forecast"),
        "{}",
        r.stderr
    );
    // eval counts it as failed and scores the other.
    let r = foresight(&["eval", "--input", p, "--holdout", "24", "--season", "24"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("1 scored, 1 failed"), "{}", r.stdout);
    // A backtest of the good one runs; of the bad one, says why.
    let r = foresight(&[
        "backtest",
        "--input",
        p,
        "--series",
        "good",
        "--target-per-pod",
        "20",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = foresight(&[
        "backtest",
        "--input",
        p,
        "--series",
        "new",
        "--target-per-pod",
        "20",
    ]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("at least 2 are needed"), "{}", r.stderr);
}
