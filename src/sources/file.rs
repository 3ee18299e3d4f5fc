//! Long-format metric files (`series,timestamp,value`), CSV or Parquet, read
//! with polars and replayed on the wall clock.
//!
//! Replay maps wall time `t` to file time `t0 + (t - t0) mod L`, where `t0`
//! is the series' first timestamp and `L` its length. The mapping depends only
//! on the file, never on when the process started, so every replica of
//! foresight reading the same file sees the same value at the same instant.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use polars::prelude::{
    ArrowDataType, Column, CsvReadOptions, DataFrame, DataType, ParquetReader, SerReader, TimeUnit,
};

use super::{MetricSource, SourceError};
use crate::domain::Series;

/// The trace bundled into the binary: three real NAB series (MIT licence,
/// see `src/sources/embedded/LICENSE-NAB.txt`).
const EMBEDDED_CSV: &[u8] = include_bytes!("embedded/nab_bundle.csv");
/// Name shown for the embedded trace in errors and logs.
const EMBEDDED_NAME: &str = "the embedded NAB trace";

/// What loading noticed about the data, for logs; nothing here is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Rows read.
    pub rows: usize,
    /// Per series: intervals between samples that differed from the step and
    /// were resampled onto the grid.
    pub irregular_gaps: BTreeMap<String, usize>,
    /// Per series: empty value cells, kept as missing samples.
    pub missing_values: BTreeMap<String, usize>,
    /// Per series: samples dropped because another had the same timestamp
    /// (only with [`Duplicates::First`] or [`Duplicates::Last`]).
    pub duplicates_dropped: BTreeMap<String, usize>,
    /// Series left out of a file of several, with why (one that cannot be
    /// read, such as a single sample or repeated timestamps, no longer
    /// refuses the others). A file of one series is refused instead.
    pub skipped: BTreeMap<String, String>,
}

/// What to do with two samples of one series at the same timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Duplicates {
    /// Refuse the file, naming the row: the safe default, because a
    /// duplicate often means two series were mixed up.
    #[default]
    Error,
    /// Keep the first sample (real exports repeat an hour when clocks go
    /// back for daylight saving time).
    First,
    /// Keep the last sample.
    Last,
}

/// Parsed, regularised series from one file.
#[derive(Debug, Clone)]
pub struct FileData {
    /// Where the data came from, for messages.
    name: String,
    /// Series by id; each on its own regular grid.
    series: BTreeMap<String, Series>,
}

/// How to read a file that is not in the long format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// For a file without a `series` column (one series: `timestamp` plus
    /// value columns, as many exports are), the column holding the values;
    /// `value` when unset. The series id is then the file's stem.
    pub value_column: Option<String>,
    /// Samples sharing a timestamp: refused unless told which to keep.
    pub duplicates: Duplicates,
}

impl FileData {
    /// Loads a CSV or Parquet file, by extension.
    pub fn load(path: &Path) -> Result<(Self, LoadReport), SourceError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Wraps one series that was obtained elsewhere (e.g. a Prometheus
    /// export), so it can be replayed like a file.
    pub fn from_series(name: &str, id: &str, series: Series) -> Self {
        Self {
            name: name.to_string(),
            series: BTreeMap::from([(id.to_string(), series)]),
        }
    }

    /// Series read by another loader of this module.
    pub(super) fn from_map(name: String, series: BTreeMap<String, Series>) -> Self {
        Self { name, series }
    }

    /// Loads a CSV or Parquet file, by extension, with options for
    /// single-series files.
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<(Self, LoadReport), SourceError> {
        let read_err = |message: String| SourceError::FileRead {
            path: path.to_path_buf(),
            message,
        };
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            return Err(SourceError::FileContent {
                path: path.to_path_buf(),
                message: "the file is empty; expected a header and rows (series,timestamp,value)"
                    .into(),
            });
        }
        let df = match ext.as_str() {
            "csv" => csv_options()
                .into_reader_with_file_handle(file)
                .finish()
                .map_err(|e| read_err(e.to_string()))?,
            "parquet" | "pq" => {
                read_parquet(file, opts.value_column.as_deref().unwrap_or("value"), path)?
            }
            other => {
                return Err(read_err(format!(
                    "unsupported extension {other:?}; use .csv or .parquet"
                )));
            }
        };
        Self::from_frame(path.display().to_string(), path, &df, opts)
    }

    /// Parses CSV bytes (used for the embedded trace and tests).
    pub fn from_csv_bytes(name: &str, bytes: &[u8]) -> Result<(Self, LoadReport), SourceError> {
        Self::from_csv_bytes_with(name, bytes, &LoadOptions::default())
    }

    /// [`FileData::from_csv_bytes`] with options.
    pub fn from_csv_bytes_with(
        name: &str,
        bytes: &[u8],
        opts: &LoadOptions,
    ) -> Result<(Self, LoadReport), SourceError> {
        let path = PathBuf::from(name);
        let df = csv_options()
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
            .map_err(|e| SourceError::FileRead {
                path: path.clone(),
                message: e.to_string(),
            })?;
        Self::from_frame(name.to_string(), &path, &df, opts)
    }

    /// Every series id, sorted.
    pub fn series_ids(&self) -> Vec<String> {
        self.series.keys().cloned().collect()
    }

    /// One series by id.
    pub fn series(&self, id: &str) -> Option<&Series> {
        self.series.get(id)
    }

    fn from_frame(
        name: String,
        path: &Path,
        df: &DataFrame,
        opts: &LoadOptions,
    ) -> Result<(Self, LoadReport), SourceError> {
        let bad = |message: String| SourceError::FileContent {
            path: path.to_path_buf(),
            message,
        };
        if df.height() == 0 {
            return Err(bad(
                "the file has no rows; expected columns series,timestamp,value".into(),
            ));
        }
        let col = |n: &str| {
            df.column(n).map_err(|_| {
                bad(format!(
                    "missing column {n:?}; expected long format with columns series,timestamp,value (found: {})",
                    df.get_column_names()
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ))
            })
        };
        let names = || {
            df.get_column_names()
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let has = |n: &str| df.get_column_names().iter().any(|c| c.as_str() == n);
        // A file without a `series` column holds one series, named after the
        // file, whose values are in `--value-column` (default `value`).
        let single = (!has("series") && has("timestamp")).then(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "series".into())
        });
        let value_name = opts.value_column.as_deref().unwrap_or("value");
        if single.is_some() && !has(value_name) {
            return Err(bad(format!(
                "no column {value_name:?}; a file without a series column holds one series: name its value column with --value-column (columns: {})",
                names()
            )));
        }
        let ids = match &single {
            Some(id) => vec![Some(id.clone()); df.height()],
            None => {
                string_column(col("series")?).map_err(|e| bad(format!("column \"series\": {e}")))?
            }
        };
        let stamps = timestamp_column(col("timestamp")?).map_err(&bad)?;
        let values = value_column(col(value_name)?).map_err(&bad)?;

        // Group rows per series, keeping file order to detect disorder.
        let mut rows: BTreeMap<String, Vec<(i64, Option<f64>, usize)>> = BTreeMap::new();
        for (row, ((id, ts), v)) in ids.into_iter().zip(stamps).zip(values).enumerate() {
            let line = row + 2; // 1-based, after the header
            // A blank line (a trailing newline too many, say) reads as a
            // row with every cell empty: it holds nothing, so it is
            // skipped rather than refusing the file.
            if ts.is_none() && v.is_none() && (id.is_none() || single.is_some()) {
                continue;
            }
            let id = id.ok_or_else(|| bad(format!("row {line}: empty series id")))?;
            let ts = ts.ok_or_else(|| bad(format!("row {line}: empty timestamp")))?;
            if let Some(v) = v {
                if !v.is_finite() {
                    return Err(bad(format!(
                        "row {line}: value {v} for series {id:?} is not a finite number; leave the cell empty to mark a missing sample"
                    )));
                }
                if v < 0.0 {
                    return Err(bad(format!(
                        "row {line}: value {v} for series {id:?} is negative; queue depth, lag, connections and latency cannot be negative"
                    )));
                }
            }
            rows.entry(id).or_default().push((ts, v, line));
        }

        let mut report = LoadReport {
            rows: df.height(),
            ..LoadReport::default()
        };
        let mut series = BTreeMap::new();
        let several = rows.len() > 1;
        let mut first_error = None;
        for (id, samples) in rows {
            let read = dedupe(&id, samples, opts.duplicates)
                .and_then(|(samples, dropped)| regularise(&id, &samples).map(|r| (r, dropped)));
            let ((s, irregular, missing), dropped) = match read {
                Ok(r) => r,
                Err(e) if several => {
                    first_error.get_or_insert_with(|| e.clone());
                    report.skipped.insert(id, e);
                    continue;
                }
                Err(e) => return Err(bad(e)),
            };
            if dropped > 0 {
                report.duplicates_dropped.insert(id.clone(), dropped);
            }
            if irregular > 0 {
                report.irregular_gaps.insert(id.clone(), irregular);
            }
            if missing > 0 {
                report.missing_values.insert(id.clone(), missing);
            }
            series.insert(id, s);
        }
        // Nothing readable: the first problem is the file's.
        if series.is_empty()
            && let Some(e) = first_error
        {
            return Err(bad(e));
        }
        Ok((Self { name, series }, report))
    }
}

/// CSV columns are all read as text (no schema inference): values and
/// timestamps are parsed here, so a bad cell is reported with its row, and a
/// column whose first rows look like integers cannot fail on a later `94.5`.
/// Reads only the columns foresight uses (`series`, `timestamp` and the
/// value column). Exports carry others, and a column of a type this build
/// of polars does not read (a decimal, from SQL or Spark) panicked the
/// loader, `serve` included, even when nothing used it. A used column of
/// such a type is refused with the cast that fixes it.
fn read_parquet(file: std::fs::File, value: &str, path: &Path) -> Result<DataFrame, SourceError> {
    let read_err = |e: polars::error::PolarsError| SourceError::FileRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let content = |message: String| SourceError::FileContent {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = ParquetReader::new(file);
    let schema = reader.schema().map_err(read_err)?;
    let mut wanted = Vec::new();
    for field in schema.iter_values() {
        let name = field.name.as_str();
        if !["series", "timestamp", value].contains(&name) {
            continue;
        }
        if let ArrowDataType::Decimal(p, s)
        | ArrowDataType::Decimal32(p, s)
        | ArrowDataType::Decimal64(p, s)
        | ArrowDataType::Decimal256(p, s) = field.dtype
        {
            return Err(content(format!(
                "column {name:?} is a decimal({p}, {s}), which foresight does not read; write it as a double (CAST({name} AS DOUBLE), or pyarrow's .cast(pa.float64()))"
            )));
        }
        wanted.push(name.to_string());
    }
    // A column missing is named against every column the file has: the
    // frame read holds only the projected ones, and its list left out the
    // very column the user needed to name (`--value-column requests`).
    let names: Vec<&str> = schema.iter_values().map(|f| f.name.as_str()).collect();
    let has = |n: &str| names.contains(&n);
    let found = names.join(",");
    if !has("timestamp") {
        return Err(content(format!(
            "missing column \"timestamp\"; expected long format with columns series,timestamp,value (found: {found})"
        )));
    }
    if !has("series") && !has(value) {
        return Err(content(format!(
            "no column {value:?}; a file without a series column holds one series: name its value column with --value-column (columns: {found})"
        )));
    }
    if !has(value) {
        return Err(content(format!(
            "missing column {value:?}; expected long format with columns series,timestamp,value (found: {found})"
        )));
    }
    reader.with_columns(Some(wanted)).finish().map_err(read_err)
}

fn csv_options() -> CsvReadOptions {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
}

/// One parsed row: epoch seconds, value (`None` when missing), line number.
pub(super) type Sample = (i64, Option<f64>, usize);

/// Applies `policy` to samples sharing a timestamp (consecutive, since
/// timestamps must not go backwards); returns the samples kept and how many
/// were dropped. With [`Duplicates::Error`] nothing is dropped here and
/// [`regularise`] reports the first duplicate.
pub(super) fn dedupe(
    id: &str,
    samples: Vec<Sample>,
    policy: Duplicates,
) -> Result<(Vec<Sample>, usize), String> {
    if policy == Duplicates::Error {
        return Ok((samples, 0));
    }
    let mut kept: Vec<Sample> = Vec::with_capacity(samples.len());
    let mut dropped = 0;
    for s in samples {
        match kept.last_mut() {
            Some(prev) if prev.0 == s.0 => {
                dropped += 1;
                if policy == Duplicates::Last {
                    *prev = s;
                }
            }
            Some(prev) if s.0 < prev.0 => {
                return Err(format!(
                    "row {}: timestamps for series {id:?} go backwards ({} after {}); sort the file by series, then timestamp",
                    s.2,
                    fmt_ts(s.0),
                    fmt_ts(prev.0)
                ));
            }
            _ => kept.push(s),
        }
    }
    Ok((kept, dropped))
}

/// Puts one series' samples on a regular grid whose step is the most common
/// interval. Returns the series, how many intervals were irregular, and how
/// many samples were missing.
pub(super) fn regularise(
    id: &str,
    samples: &[(i64, Option<f64>, usize)],
) -> Result<(Series, usize, usize), String> {
    for w in samples.windows(2) {
        let ((t0, _, _), (t1, _, line)) = (w[0], w[1]);
        if t1 == t0 {
            return Err(format!(
                "row {line}: duplicate timestamp {} for series {id:?}; keep one sample per timestamp (backtest, forecast, eval: --duplicates first|last)",
                fmt_ts(t1)
            ));
        }
        if t1 < t0 {
            return Err(format!(
                "row {line}: timestamps for series {id:?} go backwards ({} after {}); sort the file by series, then timestamp",
                fmt_ts(t1),
                fmt_ts(t0)
            ));
        }
    }
    if samples.len() < 2 {
        return Err(format!(
            "series {id:?} has {} sample(s); at least 2 are needed to know its step",
            samples.len()
        ));
    }
    let mut gaps: Vec<i64> = samples.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let times: Vec<i64> = samples.iter().map(|s| s.0).collect();
    let step = step_of(&times, &gaps);
    let irregular = samples
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 != step)
        .count();
    let t0 = samples[0].0;
    let last = samples[samples.len() - 1].0;
    let n = usize::try_from((last - t0 + step / 2) / step + 1).map_err(|e| e.to_string())?;
    if n > 50_000_000 {
        return Err(format!(
            "series {id:?} would need {n} slots at its {step}s step; check the timestamps' units (seconds expected)"
        ));
    }
    // Mostly empty slots are not a series with gaps but a stray timestamp
    // (one row at 1970 before a year of hourly data made 472,726 slots,
    // nearly all interpolated, and scored forecasts on them).
    let empty = n.saturating_sub(samples.len());
    if empty > 9 * samples.len() {
        let ((a, _, row_a), (b, _, row_b)) = samples
            .windows(2)
            .max_by_key(|w| w[1].0 - w[0].0)
            .map_or((samples[0], samples[0]), |w| (w[0], w[1]));
        return Err(format!(
            "series {id:?}: its {} samples at a {step}s step span {n} slots, {empty} of them empty; the largest gap is from row {row_a} ({}) to row {row_b} ({}): check for a stray timestamp",
            samples.len(),
            fmt_ts(a),
            fmt_ts(b)
        ));
    }
    let mut values = vec![f64::NAN; n];
    let mut missing = 0;
    for &(t, v, _) in samples {
        // Nearest grid slot; a later sample landing on the same slot wins.
        let slot = ((t - t0) as f64 / step as f64).round() as usize;
        match v {
            Some(v) => values[slot.min(n - 1)] = v,
            None => missing += 1,
        }
    }
    let start = DateTime::from_timestamp(t0, 0).ok_or("timestamp out of range")?;
    Ok((
        Series::new(start, TimeDelta::seconds(step), values),
        irregular,
        missing,
    ))
}

/// The step of samples at `times` whose intervals, sorted, are `gaps`: the
/// most common interval, unless the mean of the intervals near it (within
/// 5%) fits the samples better. Timestamps jittered by a second around a
/// 60 s cadence spread over 58–62 s, and whichever interval won by chance
/// (61 s, say) made a grid that drifts off the samples: two samples to a
/// slot here, a hole there. The better fit is the grid that gives more
/// samples a slot of their own and leaves fewer empty.
fn step_of(times: &[i64], gaps: &[i64]) -> i64 {
    let (mut mode, mut best_n, mut i) = (gaps[0], 0usize, 0usize);
    while i < gaps.len() {
        let j = gaps[i..].iter().take_while(|x| **x == gaps[i]).count();
        if j > best_n {
            mode = gaps[i];
            best_n = j;
        }
        i += j;
    }
    let tol = (mode / 20).max(1);
    let near: Vec<i64> = gaps
        .iter()
        .copied()
        .filter(|g| (g - mode).abs() <= tol)
        .collect();
    let mean = (near.iter().sum::<i64>() as f64 / near.len() as f64).round() as i64;
    if mean == mode || mean <= 0 {
        return mode;
    }
    let misfit = |step: i64| {
        let t0 = times[0];
        let slot = |t: i64| ((t - t0) as f64 / step as f64).round() as i64;
        let mut slots: Vec<i64> = times.iter().map(|&t| slot(t)).collect();
        slots.dedup();
        let distinct = slots.len();
        let span = usize::try_from(slot(times[times.len() - 1]) + 1).unwrap_or(distinct);
        (times.len() - distinct) + span.saturating_sub(distinct)
    };
    if misfit(mean) < misfit(mode) {
        mean
    } else {
        mode
    }
}

fn fmt_ts(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|| t.to_string())
}

fn string_column(c: &Column) -> Result<Vec<Option<String>>, String> {
    let c = c.cast(&DataType::String).map_err(|e| e.to_string())?;
    let s = c.str().map_err(|e| e.to_string())?;
    Ok(s.iter().map(|v| v.map(str::to_string)).collect())
}

/// Timestamps as epoch seconds, from RFC 3339 strings, `YYYY-MM-DD HH:MM:SS`
/// (taken as UTC), integer epoch seconds, or a Parquet datetime column.
fn timestamp_column(c: &Column) -> Result<Vec<Option<i64>>, String> {
    match c.dtype() {
        DataType::String => {
            let s = c.str().map_err(|e| e.to_string())?;
            s.iter()
                .enumerate()
                .map(|(row, v)| v.map(|v| parse_timestamp(v, row + 2)).transpose())
                .collect()
        }
        DataType::Datetime(unit, _) => {
            let per_sec = match unit {
                TimeUnit::Milliseconds => 1_000,
                TimeUnit::Microseconds => 1_000_000,
                TimeUnit::Nanoseconds => 1_000_000_000,
            };
            let c = c.cast(&DataType::Int64).map_err(|e| e.to_string())?;
            let s = c.i64().map_err(|e| e.to_string())?;
            Ok(s.iter().map(|v| v.map(|v| v.div_euclid(per_sec))).collect())
        }
        dt if dt.is_integer() => {
            let c = c.cast(&DataType::Int64).map_err(|e| e.to_string())?;
            let s = c.i64().map_err(|e| e.to_string())?;
            s.iter()
                .enumerate()
                .map(|(row, v)| v.map(|v| epoch_seconds(v, row + 2)).transpose())
                .collect()
        }
        other => Err(format!(
            "column \"timestamp\" has type {other}; use RFC 3339 text (2024-05-01T12:00:00Z) or integer epoch seconds"
        )),
    }
}

/// Epoch seconds past this (the year 5138) are milliseconds or finer, as
/// many exporters write them; read as seconds they would be dates tens of
/// thousands of years ahead, and the series would silently be nonsense.
const MAX_EPOCH_SECONDS: u64 = 100_000_000_000;

fn epoch_seconds(v: i64, line: usize) -> Result<i64, String> {
    if v.unsigned_abs() < MAX_EPOCH_SECONDS {
        return Ok(v);
    }
    Err(format!(
        "row {line}: timestamp {v} is not epoch seconds (it would be after the year 5000); it looks like epoch milliseconds or finer: divide by 1000 (or 10^6, 10^9) or write RFC 3339 (2024-05-01T12:00:00Z)"
    ))
}

fn parse_timestamp(text: &str, line: usize) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(d.and_utc().timestamp());
        }
    }
    if let Ok(secs) = t.parse::<i64>() {
        return epoch_seconds(secs, line);
    }
    Err(format!(
        "row {line}: timestamp {t:?} is not RFC 3339 (2024-05-01T12:00:00Z) or epoch seconds"
    ))
}

fn value_column(c: &Column) -> Result<Vec<Option<f64>>, String> {
    if c.dtype() == &DataType::String {
        // A text column means some cell is not a number: find it.
        let s = c.str().map_err(|e| e.to_string())?;
        return s
            .iter()
            .enumerate()
            .map(|(row, v)| match v.map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => t
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| format!("row {}: value {t:?} is not a number", row + 2)),
            })
            .collect();
    }
    if !c.dtype().is_primitive_numeric() {
        return Err(format!(
            "column \"value\" has type {}; expected numbers",
            c.dtype()
        ));
    }
    let c = c.cast(&DataType::Float64).map_err(|e| e.to_string())?;
    let s = c.f64().map_err(|e| e.to_string())?;
    Ok(s.iter().collect())
}

/// Replays a [`FileData`] on the wall clock, looping.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// Shared, immutable data: cloning a source is cheap.
    data: Arc<FileData>,
}

impl FileSource {
    /// Wraps loaded data.
    pub fn new(data: FileData) -> Self {
        Self {
            data: Arc::new(data),
        }
    }

    /// The real trace bundled into the binary, so `foresight serve` works with
    /// no set-up. Series ids: `nyc_taxi`, `elb_requests`, `ec2_latency`.
    pub fn embedded() -> Result<(Self, LoadReport), SourceError> {
        let (data, report) = FileData::from_csv_bytes(EMBEDDED_NAME, EMBEDDED_CSV)?;
        Ok((Self::new(data), report))
    }

    /// The underlying data.
    pub fn data(&self) -> &FileData {
        &self.data
    }

    fn lookup(&self, query: &str) -> Result<&Series, SourceError> {
        self.data
            .series(query.trim())
            .ok_or_else(|| SourceError::UnknownSeries {
                query: query.to_string(),
                source_name: self.data.name.clone(),
                available: self.data.series_ids(),
            })
    }
}

/// Index into the looped series of the slot in force at wall time `t`: the
/// last sample at or before `t`, never a later one.
fn wall_slot(s: &Series, t: DateTime<Utc>) -> i64 {
    let step = s.step.num_seconds().max(1);
    (t - s.start).num_seconds().div_euclid(step)
}

fn looped(s: &Series, slot: i64) -> f64 {
    let n = s.values.len() as i64;
    s.values[slot.rem_euclid(n) as usize]
}

impl MetricSource for FileSource {
    fn describe(&self) -> String {
        format!("file replay of {}", self.data.name)
    }

    fn check_query(&self, query: &str) -> Result<(), SourceError> {
        self.lookup(query).map(|_| ())
    }

    async fn history(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: TimeDelta,
    ) -> Result<Series, SourceError> {
        let s = self.lookup(query)?;
        if step > s.step {
            // Coarser than the file: sample what was in force at each
            // step-aligned instant, as a Prometheus range query would, so a
            // 1 s file does not hand the trainer millions of points.
            let step_s = step.num_seconds().max(1);
            let first = start.timestamp().div_euclid(step_s) + 1;
            let last = end.timestamp().div_euclid(step_s);
            let values = (first.min(last)..=last)
                .map(|k| {
                    let t = DateTime::from_timestamp(k * step_s, 0).unwrap_or(end);
                    looped(s, wall_slot(s, t))
                })
                .collect();
            let start = DateTime::from_timestamp(first.min(last) * step_s, 0).unwrap_or(start);
            return Ok(Series::new(start, step, values));
        }
        let first = wall_slot(s, start) + 1;
        let last = wall_slot(s, end);
        let values: Vec<f64> = (first.min(last)..=last).map(|j| looped(s, j)).collect();
        let offset = i32::try_from(first.min(last)).unwrap_or(0);
        Ok(Series::new(s.start + s.step * offset, s.step, values))
    }

    async fn current(&self, query: &str, at: DateTime<Utc>) -> Result<Option<f64>, SourceError> {
        let s = self.lookup(query)?;
        let slot = wall_slot(s, at);
        // A missing sample falls back to the previous one within two steps,
        // as a scrape that missed once would; further back is no data.
        Ok((0..3)
            .map(|back| looped(s, slot - back))
            .find(|v| v.is_finite()))
    }

    async fn probe(&self) -> Result<(), SourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(csv: &str) -> Result<(FileData, LoadReport), SourceError> {
        FileData::from_csv_bytes("test.csv", csv.as_bytes())
    }

    #[test]
    fn embedded_trace_loads() {
        let (src, _) = FileSource::embedded().unwrap();
        assert_eq!(
            src.data().series_ids(),
            vec!["ec2_latency", "elb_requests", "nyc_taxi"]
        );
        let taxi = src.data().series("nyc_taxi").unwrap();
        assert_eq!(taxi.step, TimeDelta::minutes(30));
        assert_eq!(taxi.len(), 10_320);
    }

    #[test]
    fn duplicates_are_refused_unless_told_which_to_keep() {
        let csv = "series,timestamp,value\nq,0,1\nq,60,2\nq,60,3\nq,120,4\n";
        let with = |duplicates| {
            FileData::from_csv_bytes_with(
                "t.csv",
                csv.as_bytes(),
                &LoadOptions {
                    duplicates,
                    ..LoadOptions::default()
                },
            )
        };
        let err = with(Duplicates::Error).unwrap_err().to_string();
        assert!(err.contains("row 4: duplicate timestamp"), "{err}");
        assert!(err.contains("--duplicates first|last"), "{err}");
        let (first, report) = with(Duplicates::First).unwrap();
        assert_eq!(first.series("q").unwrap().values, vec![1.0, 2.0, 4.0]);
        assert_eq!(report.duplicates_dropped.get("q"), Some(&1));
        let (last, _) = with(Duplicates::Last).unwrap();
        assert_eq!(last.series("q").unwrap().values, vec![1.0, 3.0, 4.0]);
        // Going backwards is still refused whatever is kept.
        let back = "series,timestamp,value\nq,60,1\nq,60,2\nq,0,3\n";
        let err = FileData::from_csv_bytes_with(
            "t.csv",
            back.as_bytes(),
            &LoadOptions {
                duplicates: Duplicates::First,
                ..LoadOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("go backwards"), "{err}");
    }

    #[test]
    fn epoch_and_rfc3339_timestamps_agree() {
        let (a, _) = load("series,timestamp,value\nq,0,1\nq,60,2\n").unwrap();
        let (b, _) =
            load("series,timestamp,value\nq,1970-01-01T00:00:00Z,1\nq,1970-01-01T00:01:00Z,2\n")
                .unwrap();
        assert_eq!(a.series("q"), b.series("q"));
    }

    #[test]
    fn bad_rows_are_named() {
        let cases = [
            ("series,timestamp,value\n", "no rows"),
            ("series,time,value\nq,0,1\n", "missing column \"timestamp\""),
            (
                "series,timestamp,value\nq,0,1\nq,0,2\n",
                "row 3: duplicate timestamp",
            ),
            (
                "series,timestamp,value\nq,60,1\nq,0,2\n",
                "row 3: timestamps for series \"q\" go backwards",
            ),
            (
                "series,timestamp,value\nq,0,1\nq,60,-2\n",
                "row 3: value -2 for series \"q\" is negative",
            ),
            (
                "series,timestamp,value\nq,0,1\nq,60,abc\n",
                "row 3: value \"abc\" is not a number",
            ),
            (
                "series,timestamp,value\nq,0,1\nq,60,NaN\n",
                "row 3: value NaN",
            ),
            (
                "series,timestamp,value\nq,yesterday,1\nq,60,2\n",
                "row 2: timestamp \"yesterday\"",
            ),
            ("series,timestamp,value\nq,0,1\n", "at least 2 are needed"),
        ];
        for (csv, want) in cases {
            let err = load(csv).unwrap_err().to_string();
            assert!(err.contains(want), "{csv:?}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn irregular_steps_are_resampled_and_reported() {
        let (d, report) =
            load("series,timestamp,value\nq,0,1\nq,60,2\nq,120,3\nq,300,4\nq,360,\n").unwrap();
        let s = d.series("q").unwrap();
        assert_eq!(s.step, TimeDelta::seconds(60));
        assert_eq!(s.len(), 7);
        assert!(s.values[3].is_nan() && s.values[4].is_nan() && s.values[6].is_nan());
        assert_eq!(report.irregular_gaps.get("q"), Some(&1));
        assert_eq!(report.missing_values.get("q"), Some(&1));
    }

    #[test]
    fn timestamps_jittered_around_their_cadence_keep_it() {
        // Every minute, a second early or late in turn: intervals of 61, 58
        // and 61 s, so the most common is 61, a grid that would put two
        // samples in one slot every minute of drift.
        let mut csv = String::from("series,timestamp,value\n");
        for i in 0..300i64 {
            let jitter = [0, 1, -1][(i % 3) as usize];
            csv.push_str(&format!("q,{},{}\n", 1_000_000 + i * 60 + jitter, i));
        }
        let (d, _) = load(&csv).unwrap();
        let s = d.series("q").unwrap();
        assert_eq!(s.step, TimeDelta::seconds(60));
        assert_eq!(s.len(), 300);
        assert!(
            s.values.iter().enumerate().all(|(i, v)| *v == i as f64),
            "every sample in its own slot"
        );
        // A clean cadence with gaps keeps its step.
        let (d, _) =
            load("series,timestamp,value\nq,0,1\nq,300,2\nq,600,3\nq,1200,4\nq,1500,5\n").unwrap();
        assert_eq!(d.series("q").unwrap().step, TimeDelta::seconds(300));
    }

    #[tokio::test]
    async fn replay_loops_and_history_matches_current() {
        let (d, _) = load("series,timestamp,value\nq,0,10\nq,60,20\nq,120,30\n").unwrap();
        let src = FileSource::new(d);
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(src.current("q", t(59)).await.unwrap(), Some(10.0));
        assert_eq!(src.current("q", t(60)).await.unwrap(), Some(20.0));
        // One loop is 180 s long.
        assert_eq!(src.current("q", t(180 + 130)).await.unwrap(), Some(30.0));
        let h = src
            .history("q", t(1000), t(1300), TimeDelta::seconds(60))
            .await
            .unwrap();
        let last = h.last_observed().unwrap();
        assert_eq!(Some(last.1), src.current("q", t(1300)).await.unwrap());
        assert_eq!(h.step, TimeDelta::seconds(60));
        assert!(h.start > t(1000) && h.end() > t(1300));
        // A coarser step samples the value in force at each aligned instant.
        let coarse = src
            .history("q", t(0), t(600), TimeDelta::seconds(120))
            .await
            .unwrap();
        assert_eq!(coarse.step, TimeDelta::seconds(120));
        assert_eq!(coarse.start, t(120));
        for (i, v) in coarse.values.iter().enumerate() {
            assert_eq!(
                Some(*v),
                src.current("q", coarse.timestamp(i)).await.unwrap()
            );
        }
        let err = src.current("nope", t(0)).await.unwrap_err().to_string();
        assert!(err.contains("available series: q"), "{err}");
    }
}
