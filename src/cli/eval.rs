//! `foresight eval`: forecast accuracy on held-out data, measured as in the
//! M4 competition (sMAPE, MASE, OWA against Naive2) plus interval coverage.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rayon::prelude::*;
use serde::Serialize;

use super::args::{EvalArgs, InputFormat};
use crate::domain::Series;
use crate::forecast::{
    EvalSpec, Method, SeriesEval, Summary, evaluate, prophet_available, summarise,
};
use crate::sources::{FileData, SourceError, load_wide};

/// A series that could not be evaluated, for the JSON report.
#[derive(Debug, Serialize)]
struct Failure {
    series: String,
    error: String,
}

/// Everything `--output` writes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    input: String,
    format: InputFormat,
    holdout: usize,
    season: usize,
    level: f64,
    /// Whether Prophet was among foresight's candidates.
    prophet: bool,
    series_total: usize,
    failed: usize,
    #[serde(flatten)]
    summary: &'a Summary,
    wall_seconds: f64,
    threads: usize,
    failures: Vec<Failure>,
}

pub(super) fn run(args: EvalArgs) -> anyhow::Result<()> {
    // Before reading the input, so a missing feature is not found series
    // by series.
    if args.prophet {
        prophet_available().map_err(|e| anyhow!("--prophet: {e}"))?;
    }
    super::outputs::check(
        Some(("--input", &args.input)),
        &[("--output", args.output.as_deref())],
    )?;
    let (series, unreadable) = load(&args)?;
    let total = series.len() + unreadable.len();
    let spec = EvalSpec {
        holdout: args.holdout,
        season: args.season,
        level: args.level,
        prophet: args.prophet,
    };
    let started = Instant::now();
    let results = evaluate_all(&series, &spec);
    let wall = started.elapsed();

    let mut evals = Vec::new();
    // Series the file holds that could not be read are failures too.
    let mut failures: Vec<Failure> = unreadable
        .into_iter()
        .map(|(series, error)| Failure { series, error })
        .collect();
    for ((id, _), result) in series.iter().zip(results) {
        match result {
            Ok(e) => evals.push(e),
            Err(error) => failures.push(Failure {
                series: id.clone(),
                error,
            }),
        }
    }
    let Some(summary) = summarise(&evals) else {
        bail!(
            "no series could be evaluated: all {} failed (see the errors above)",
            series.len()
        );
    };
    let report = Report {
        input: args.input.display().to_string(),
        format: args.format,
        holdout: args.holdout,
        season: args.season,
        level: args.level,
        prophet: args.prophet,
        series_total: total,
        failed: failures.len(),
        summary: &summary,
        wall_seconds: wall.as_secs_f64(),
        threads: rayon::current_num_threads(),
        failures,
    };
    super::print_out(&table(&report))?;
    if let Some(path) = &args.output {
        let json = serde_json::to_vec_pretty(&report).context("cannot encode the results")?;
        write_atomically(path, &json)
            .with_context(|| format!("cannot write results to {}", path.display()))?;
    }
    Ok(())
}

/// Reads the input through `sources`, the only module that reads metrics.
/// Also the series of the file that could not be read, with why.
type Loaded = (Vec<(String, Series)>, Vec<(String, String)>);

fn load(args: &EvalArgs) -> anyhow::Result<Loaded> {
    Ok(match args.format {
        InputFormat::M4 => (load_wide(&args.input)?, Vec::new()),
        InputFormat::Long => {
            let (data, report) = FileData::load_with(&args.input, &args.file.options()).map_err(|e| {
                let hint = matches!(&e, SourceError::FileContent { message, .. } if message.contains("missing column"));
                let e = anyhow::Error::new(e);
                if hint {
                    e.context(format!(
                        "{} is not in long format; for the M4 competition's wide CSV pass --format m4",
                        args.input.display()
                    ))
                } else {
                    e
                }
            })?;
            for (id, n) in &report.duplicates_dropped {
                eprintln!(
                    "note: series {id:?}: {n} sample(s) sharing a timestamp dropped (--duplicates {})",
                    args.file.duplicates.as_str()
                );
            }
            for (id, n) in &report.irregular_gaps {
                eprintln!(
                    "note: series {id:?}: {n} irregular interval(s) resampled onto the most common step"
                );
            }
            for (id, why) in &report.skipped {
                eprintln!("error: series {id:?}: cannot be read: {why}");
            }
            (
                data.series_ids()
                    .into_iter()
                    .filter_map(|id| data.series(&id).cloned().map(|s| (id, s)))
                    .collect(),
                report.skipped.into_iter().collect(),
            )
        }
    })
}

/// Evaluates every series in parallel (they are independent), in input
/// order. A failing series prints an error line at once and the rest go on.
fn evaluate_all(series: &[(String, Series)], spec: &EvalSpec) -> Vec<Result<SeriesEval, String>> {
    let progress = super::series_progress(series.len());
    let results = series
        .par_iter()
        .map(|(id, s)| {
            let result = super::per_series("evaluation", || evaluate(s, spec));
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

/// The plain aligned table printed on stdout.
fn table(r: &Report<'_>) -> String {
    let s = r.summary;
    let num = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "-".into(),
    };
    let mut out = format!(
        "foresight eval: {} ({}), holdout {}, season {}, interval level {}{}\n\n",
        r.input,
        match r.format {
            InputFormat::Long => "long",
            InputFormat::M4 => "m4",
        },
        r.holdout,
        r.season,
        r.level,
        if r.prophet { ", with Prophet" } else { "" }
    );
    out.push_str(&format!(
        "{:<10} {:>8} {:>7} {:>7} {:>9} {:>7}\n",
        "method", "sMAPE", "MASE", "OWA", "coverage", "series"
    ));
    for m in &s.methods {
        out.push_str(&format!(
            "{:<10} {:>8.3} {:>7} {:>7} {:>9} {:>7}\n",
            m.method.to_string(),
            m.smape,
            num(m.mase, 3),
            num(m.owa, 3),
            m.coverage
                .map(|c| format!("{:.1}%", c * 100.0))
                .unwrap_or_else(|| "-".into()),
            m.series
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "series: {} scored, {} failed, {} excluded from MASE (constant or shorter than one season in-sample)\n",
        s.series, r.failed, s.mase_excluded
    ));
    let models: Vec<String> = s.models.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out.push_str(&format!("foresight models: {}\n", models.join(", ")));
    out.push_str(&format!(
        "Naive2 deseasonalised {} of {} series\n",
        s.naive2_seasonal, s.series
    ));
    out.push_str(&format!(
        "mean fit time per series ({}): {}; wall {:.1} s on {} thread(s)\n",
        Method::Foresight,
        fmt_duration(Duration::from_secs_f64(s.mean_fit_seconds)),
        r.wall_seconds,
        r.threads
    ));
    out
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Writes the report and a final newline atomically.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::durable::write_atomically(path, |f| {
        f.write_all(bytes)?;
        f.write_all(b"\n")
    })
}
