//! `foresight forecast`: forecasts every series of a file (point and
//! interval). `foresight forecast inspect` is in [`inspect`](super::inspect).

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use chrono::TimeDelta;
use polars::prelude::{Column, DataFrame, DataType, ParquetReader, ParquetWriter, SerReader};
use rayon::prelude::*;

use super::args::{ForecastArgs, ForecastCommand, ForecastModelArgs, Horizon, PeriodsArg};
use crate::domain::{Forecast, Series};
use crate::forecast::{TrainSpec, Trained, candidate_steps, prophet_available, train};
use crate::sources::{FileData, LoadOptions};

pub(crate) fn run(args: ForecastArgs) -> Result<()> {
    if let Some(ForecastCommand::Inspect(a)) = args.command {
        return super::inspect::run(a);
    }
    // Before reading the input, so a missing feature is not found series
    // by series.
    if args.model.prophet {
        prophet_available().map_err(|e| anyhow!("--prophet: {e}"))?;
    }
    // clap requires both without a subcommand; this is only a safety net.
    let (Some(input), Some(horizon)) = (args.input, args.horizon) else {
        bail!("foresight forecast needs --input FILE and --horizon H");
    };
    let format = args.output.as_deref().map(output_format).transpose()?;
    super::outputs::check(
        Some(("--input", &input)),
        &[("--output", args.output.as_deref())],
    )?;
    let (data, integer_ts, skipped) = load(&input, &args.file.options())?;
    let ids = data.series_ids();
    let results = fit_all(&data, &ids, horizon, &args.model);

    let mut done = Vec::new();
    // Series the file holds but that cannot be read count as failed, so
    // the exit code says one is missing.
    let mut failed = skipped;
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(t) => done.push((id.as_str(), t.forecast)),
            Err(_) => failed += 1,
        }
    }
    if done.is_empty() {
        bail!(
            "no series could be forecast: all {} failed (see the errors above)",
            ids.len() + skipped
        );
    }
    let destination = match (&args.output, format) {
        (Some(path), Some(OutputFormat::Csv)) => {
            crate::durable::write_atomically(path, |f| {
                let mut w = BufWriter::new(f);
                write_csv(&mut w, &done, integer_ts)?;
                w.flush()
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
            path.display().to_string()
        }
        (Some(path), _) => {
            let mut df = frame(&done, integer_ts)?;
            crate::durable::write_atomically(path, |f| {
                ParquetWriter::new(f)
                    .finish(&mut df)
                    .map(|_| ())
                    .map_err(std::io::Error::other)
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
            path.display().to_string()
        }
        (None, _) => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            match write_csv(&mut w, &done, integer_ts).and_then(|()| w.flush()) {
                // `| head` closing the pipe early is not a failure.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(e).context("cannot write to stdout");
                }
                _ => {}
            }
            "stdout".to_string()
        }
    };
    if failed > 0 {
        // Partial output is still written, but the exit code says that a
        // series is missing from it, so a scheduled job cannot lose one
        // silently.
        bail!(
            "{failed} of {} series could not be forecast (see the errors above); the other {} were written to {destination}",
            ids.len() + skipped,
            done.len()
        );
    }
    Ok(())
}

/// Output layouts, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Csv,
    Parquet,
}

/// Checked before any fitting, so a typo does not cost a whole run.
fn output_format(path: &Path) -> Result<OutputFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => Ok(OutputFormat::Csv),
        "parquet" | "pq" => Ok(OutputFormat::Parquet),
        other => bail!(
            "--output {}: unsupported extension {other:?}; use .csv or .parquet",
            path.display()
        ),
    }
}

/// Reads the input through `sources` (the only module that reads metrics),
/// and whether its timestamps are integers, so the output can write them
/// the same way.
pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<(FileData, bool, usize)> {
    let (data, report) = FileData::load_with(path, opts)?;
    for (id, n) in &report.duplicates_dropped {
        eprintln!("note: series {id:?}: {n} sample(s) at a repeated timestamp dropped");
    }
    for (id, why) in &report.skipped {
        eprintln!("error: series {id:?}: cannot be read: {why}");
    }
    for (id, n) in &report.irregular_gaps {
        eprintln!(
            "note: series {id:?}: {n} irregular interval(s) resampled onto the most common step"
        );
    }
    Ok((data, integer_timestamps(path), report.skipped.len()))
}

/// Whether the file's first timestamp is an integer (epoch seconds, or the
/// consecutive indices of a file without real dates). Only the header and
/// first row (CSV) or the column type (Parquet) are looked at: the file has
/// already been read and validated by [`FileData::load`].
fn integer_timestamps(path: &Path) -> bool {
    let is_parquet = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if is_parquet {
        return std::fs::File::open(path)
            .ok()
            .and_then(|f| {
                ParquetReader::new(f)
                    .with_columns(Some(vec!["timestamp".into()]))
                    .with_slice(Some((0, 1)))
                    .finish()
                    .ok()
            })
            .and_then(|df| df.column("timestamp").ok().map(|c| c.dtype().is_integer()))
            .unwrap_or(false);
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let mut lines = text.lines();
    let (Some(header), Some(first)) = (lines.next(), lines.next()) else {
        return false;
    };
    header
        .split(',')
        .position(|c| c.trim().trim_matches('"') == "timestamp")
        .and_then(|i| first.split(',').nth(i))
        .is_some_and(|v| v.trim().trim_matches('"').parse::<i64>().is_ok())
}

/// What to train for one series.
pub(super) fn spec(series: &Series, horizon: Horizon, model: &ForecastModelArgs) -> TrainSpec {
    let step = series.step;
    let (periods, detect) = match &model.seasonality {
        PeriodsArg::Auto => (
            candidate_steps(&[TimeDelta::days(1), TimeDelta::weeks(1)], step),
            true,
        ),
        PeriodsArg::Listed(items) => {
            let mut p: Vec<usize> = items.iter().map(|h| steps(*h, step)).collect();
            p.sort_unstable();
            p.dedup();
            (p, false)
        }
    };
    TrainSpec {
        periods,
        detect,
        horizon: steps(horizon, step),
        level: model.level,
        prophet: model.prophet,
        need: None,
    }
}

/// A horizon or period in whole steps of `step`, rounding a span up.
fn steps(h: Horizon, step: TimeDelta) -> usize {
    match h {
        Horizon::Steps(n) => n,
        Horizon::Span(d) => {
            let s = step.num_seconds().max(1);
            usize::try_from((d.num_seconds() + s - 1) / s)
                .unwrap_or(1)
                .max(1)
        }
    }
}

/// Trains one series; a panic anywhere becomes an error, so one bad series
/// cannot stop the run (train() already guards augurs itself).
pub(super) fn fit_one(series: &Series, spec: &TrainSpec) -> Result<Trained, String> {
    super::per_series("forecasting", || train(series, spec))
}

/// Empty samples at the end of `series`.
fn trailing_empty(series: &Series) -> usize {
    series
        .values
        .iter()
        .rev()
        .take_while(|v| v.is_nan())
        .count()
}

/// A horizon of 10^11 steps aborted the process on allocation.
fn check_horizon(series: &Series, horizon: usize) -> Result<(), String> {
    if horizon > MAX_HORIZON_STEPS {
        return Err(format!(
            "--horizon is {horizon} steps of {}; at most {MAX_HORIZON_STEPS} are supported: shorten it",
            crate::domain::format_delta(series.step)
        ));
    }
    Ok(())
}

/// The longest horizon, in steps: a year of minutes is 525,600.
const MAX_HORIZON_STEPS: usize = 1_000_000;

/// Fits `series` and forecasts `spec.horizon` steps past its last
/// timestamp. A series whose last samples are empty (an exporter's scrape
/// lag) is fitted up to its last value, so its forecast starts inside the
/// file: it is taken further by those missing steps, which are then
/// dropped. Without this, `--horizon 3` on a series ending in 11 empty
/// samples gave three rows all dated before the file's end.
pub(super) fn past_the_end(series: &Series, spec: &TrainSpec) -> Result<Trained, String> {
    // The user's horizon, before the missing steps are added to it.
    check_horizon(series, spec.horizon)?;
    let missing = trailing_empty(series);
    if missing == 0 || missing == series.values.len() {
        return fit_one(series, spec);
    }
    let longer = TrainSpec {
        horizon: spec.horizon + missing,
        ..spec.clone()
    };
    let mut t = fit_one(series, &longer)?;
    let f = &mut t.forecast;
    // The forecast starts a step after the last value; keep what lies past
    // the last timestamp.
    let last = series.timestamp(series.values.len() - 1);
    let skip = f.point.len().saturating_sub(spec.horizon).min(
        (0..f.point.len())
            .take_while(|&i| f.timestamp(i) <= last)
            .count(),
    );
    f.start = f.timestamp(skip);
    f.point.drain(..skip);
    f.lower.drain(..skip);
    f.upper.drain(..skip);
    Ok(t)
}

/// Fits every series in parallel (they are independent), in input order.
/// A failing series prints an error line at once and the rest go on.
fn fit_all(
    data: &FileData,
    ids: &[String],
    horizon: Horizon,
    model: &ForecastModelArgs,
) -> Vec<Result<Trained, String>> {
    let progress = super::series_progress(ids.len());
    let results = ids
        .par_iter()
        .map(|id| {
            let result = match data.series(id) {
                Some(s) => {
                    let trailing = trailing_empty(s);
                    if trailing > 0 && trailing < s.values.len() {
                        progress.suspend(|| {
                            eprintln!("note: series {id:?} ends in {trailing} empty sample(s); its forecast is taken across them and starts after its last timestamp")
                        });
                    }
                    past_the_end(s, &spec(s, horizon, model))
                }
                None => Err("series disappeared from the loaded data".into()),
            };
            if let Err(e) = &result {
                progress.suspend(|| eprintln!("error: series {id:?}: {e}"));
            }
            progress.inc(1);
            result
        })
        .collect();
    progress.finish_and_clear();
    results
}

/// A forecast's timestamp as written: epoch seconds (or the index) when the
/// input used integers, RFC 3339 otherwise.
fn timestamp(f: &Forecast, i: usize, integer: bool) -> String {
    let t = f.timestamp(i);
    if integer {
        t.timestamp().to_string()
    } else {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

fn write_csv(w: &mut impl Write, rows: &[(&str, Forecast)], integer: bool) -> std::io::Result<()> {
    writeln!(w, "series,timestamp,point,lower,upper")?;
    for (id, f) in rows {
        let id = csv_field(id);
        for i in 0..f.point.len() {
            writeln!(
                w,
                "{id},{},{},{},{}",
                timestamp(f, i, integer),
                f.point[i],
                f.lower[i],
                f.upper[i]
            )?;
        }
    }
    Ok(())
}

/// Quotes a field that would otherwise break the CSV.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The Parquet layout: timestamps as UTC datetimes (milliseconds), or as
/// integers when the input used integers.
fn frame(rows: &[(&str, Forecast)], integer: bool) -> Result<DataFrame> {
    let n: usize = rows.iter().map(|(_, f)| f.point.len()).sum();
    let mut series = Vec::with_capacity(n);
    let mut ts = Vec::with_capacity(n);
    let (mut point, mut lower, mut upper) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (id, f) in rows {
        for i in 0..f.point.len() {
            series.push(id.to_string());
            let t = f.timestamp(i);
            ts.push(if integer {
                t.timestamp()
            } else {
                t.timestamp_millis()
            });
            point.push(f.point[i]);
            lower.push(f.lower[i]);
            upper.push(f.upper[i]);
        }
    }
    let mut ts = Column::new("timestamp".into(), ts);
    if !integer {
        ts = ts
            .cast(&DataType::Datetime(
                polars::prelude::TimeUnit::Milliseconds,
                None,
            ))
            .context("cannot build the timestamp column")?;
    }
    DataFrame::new(
        n,
        vec![
            Column::new("series".into(), series),
            ts,
            Column::new("point".into(), point),
            Column::new("lower".into(), lower),
            Column::new("upper".into(), upper),
        ],
    )
    .context("cannot build the output table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_round_up_to_whole_steps() {
        let step = TimeDelta::minutes(30);
        assert_eq!(steps(Horizon::Span(TimeDelta::hours(2)), step), 4);
        assert_eq!(steps(Horizon::Span(TimeDelta::minutes(31)), step), 2);
        assert_eq!(steps(Horizon::Steps(7), step), 7);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }
}
