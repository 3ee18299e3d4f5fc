//! The file source reads Parquet as well as CSV, with the same result.

use foresight::sources::FileData;
use polars::prelude::*;

fn frame(ts: Series) -> DataFrame {
    let n = ts.len();
    let ids = Series::new("series".into(), vec!["q"; n]);
    let values = Series::new(
        "value".into(),
        (0..n).map(|i| i as f64 * 1.5).collect::<Vec<_>>(),
    );
    DataFrame::new(n, vec![ids.into(), ts.into(), values.into()]).unwrap()
}

fn write_parquet(dir: &std::path::Path, name: &str, mut df: DataFrame) -> std::path::PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
    path
}

#[test]
fn parquet_with_epoch_or_datetime_timestamps_matches_csv() {
    let dir = tempfile::tempdir().unwrap();
    let epochs: Vec<i64> = (0..10).map(|i| 1_700_000_000 + i * 60).collect();

    let csv = dir.path().join("m.csv");
    let mut text = String::from("series,timestamp,value\n");
    for (i, t) in epochs.iter().enumerate() {
        text.push_str(&format!("q,{t},{}\n", i as f64 * 1.5));
    }
    std::fs::write(&csv, text).unwrap();
    let (from_csv, _) = FileData::load(&csv).unwrap();

    let int_ts = Series::new("timestamp".into(), epochs.clone());
    let p1 = write_parquet(dir.path(), "epoch.parquet", frame(int_ts));
    let (from_epoch, _) = FileData::load(&p1).unwrap();

    let ms: Vec<i64> = epochs.iter().map(|t| t * 1000).collect();
    let dt_ts = Series::new("timestamp".into(), ms)
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .unwrap();
    let p2 = write_parquet(dir.path(), "datetime.parquet", frame(dt_ts));
    let (from_datetime, _) = FileData::load(&p2).unwrap();

    let want = from_csv.series("q").unwrap();
    assert_eq!(want.len(), 10);
    assert_eq!(from_epoch.series("q").unwrap(), want);
    assert_eq!(from_datetime.series("q").unwrap(), want);
}

#[test]
fn unreadable_and_unsupported_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let err = FileData::load(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot read metrics file {}", missing.display())),
        "{err}"
    );

    let txt = dir.path().join("m.txt");
    std::fs::write(&txt, "series,timestamp,value\n").unwrap();
    let err = FileData::load(&txt).unwrap_err().to_string();
    assert!(
        err.contains("unsupported extension \"txt\"; use .csv or .parquet"),
        "{err}"
    );

    let garbage = dir.path().join("g.parquet");
    std::fs::write(&garbage, "not parquet at all").unwrap();
    let err = FileData::load(&garbage).unwrap_err().to_string();
    assert!(err.starts_with("cannot read metrics file"), "{err}");
}

#[test]
fn epoch_milliseconds_are_refused_with_the_fix() {
    // Many exporters write epoch milliseconds; read as seconds they were
    // dates 50,000 years ahead, and every replay on them was nonsense.
    let dir = tempfile::tempdir().unwrap();
    let ms: Vec<i64> = (0..10).map(|i| (1_700_000_000 + i * 60) * 1000).collect();
    let csv = dir.path().join("ms.csv");
    let mut text = String::from("series,timestamp,value\n");
    for t in &ms {
        text.push_str(&format!("q,{t},1.0\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let parquet = write_parquet(
        dir.path(),
        "ms.parquet",
        frame(Series::new("timestamp".into(), ms)),
    );
    for path in [csv, parquet] {
        let err = FileData::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("row 2: timestamp 1700000000000 is not epoch seconds")
                && err.contains("looks like epoch milliseconds or finer: divide by 1000"),
            "{}: {err}",
            path.display()
        );
    }
}

#[test]
fn parquet_exports_with_decimal_columns_are_read_or_refused_with_the_cast() {
    // An unused decimal column (SQL and Spark exports carry them) panicked
    // the loader, `serve --metrics-file` included: only the columns used
    // are read now.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parquet");
    let (data, _) = FileData::load(std::path::Path::new(&format!(
        "{dir}/extra_decimal.parquet"
    )))
    .unwrap();
    assert_eq!(data.series_ids(), vec!["orders".to_string()]);
    let s = data.series("orders").unwrap();
    assert_eq!(s.values.len(), 48);
    assert_eq!(s.step, chrono::TimeDelta::hours(1));
    assert!((s.values[0] - 220.0).abs() < 1e-9, "{}", s.values[0]);
    // A decimal value column is refused, naming the column and the cast.
    let err = FileData::load(std::path::Path::new(&format!(
        "{dir}/decimal_value.parquet"
    )))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("column \"value\" is a decimal(10, 2)") && err.contains("AS DOUBLE"),
        "{err}"
    );
}

#[test]
fn blank_lines_are_skipped_not_refused() {
    // A trailing newline too many read as a row with an empty series id,
    // and the whole file was refused (`serve --metrics-file` included).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blank.csv");
    std::fs::write(
        &path,
        "series,timestamp,value\nq,0,1\n\nq,60,2\nq,120,3\n\n\n",
    )
    .unwrap();
    let (data, _) = FileData::load(&path).unwrap();
    let s = data.series("q").unwrap();
    assert_eq!(s.values, vec![1.0, 2.0, 3.0]);
    // A row with a value and no id is still an error, with its row.
    std::fs::write(&path, "series,timestamp,value\nq,0,1\n,60,2\n").unwrap();
    let err = FileData::load(&path).unwrap_err().to_string();
    assert!(err.contains("row 3: empty series id"), "{err}");
}

#[test]
fn a_stray_timestamp_is_refused_not_filled_in() {
    // One row at 1970 before a week of hourly data: the grid spanned 54
    // years, nearly all of it interpolated, and eval scored on it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stray.csv");
    let mut csv = String::from("series,timestamp,value\nq,0,5\n");
    for i in 0..24 * 7 {
        csv.push_str(&format!(
            "q,{},{}\n",
            1_700_000_000 - 1_700_000_000 % 3_600 + 3_600 * i,
            10 + i % 24
        ));
    }
    std::fs::write(&path, &csv).unwrap();
    let err = FileData::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("the largest gap is from row 2 (1970-01-01T00:00:00+00:00) to row 3")
            && err.contains("check for a stray timestamp"),
        "{err}"
    );
    // Real gaps, even long ones, are not refused: a day missing of a week.
    let mut csv = String::from("series,timestamp,value\n");
    for i in (0..24 * 7).filter(|i| !(48..72).contains(i)) {
        csv.push_str(&format!(
            "q,{},{}\n",
            1_700_000_000 - 1_700_000_000 % 3_600 + 3_600 * i,
            10 + i % 24
        ));
    }
    std::fs::write(&path, &csv).unwrap();
    assert!(FileData::load(&path).is_ok());
}

#[test]
fn a_parquet_column_missing_is_named_against_every_column_of_the_file() {
    // Only the columns used are read, and the list of columns in the
    // message came from those: `timestamp,requests` said "(columns:
    // timestamp)", leaving out the one to pass to --value-column.
    let dir = tempfile::tempdir().unwrap();
    let mut df = DataFrame::new(
        3,
        vec![
            Series::new("timestamp".into(), vec![0i64, 60, 120]).into(),
            Series::new("requests".into(), vec![1.0f64, 2.0, 3.0]).into(),
        ],
    )
    .unwrap();
    let path = write_parquet(dir.path(), "requests.parquet", df.clone());
    let err = FileData::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("--value-column (columns: timestamp,requests)"),
        "{err}"
    );
    df.rename("timestamp", "Timestamp".into()).unwrap();
    let path = write_parquet(dir.path(), "cased.parquet", df);
    let err = FileData::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("missing column \"timestamp\"") && err.contains("(found: Timestamp,requests)"),
        "{err}"
    );
}
