//! `foresight forecast inspect`: one series' model, its accuracy on a
//! hidden tail, and its forecast as a terminal chart (and a PNG).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use super::args::InspectArgs;
use super::forecast::{fit_one, load, spec};
use crate::chart::{self, Line, Panel};
use crate::domain::{Forecast, Series, format_delta};
use crate::forecast::{TrainSpec, Trained, coverage, mase, prophet_available};

/// The hidden-tail check of `inspect`: the last `horizon` values hidden,
/// the model trained again on the rest, and its forecast scored.
struct Holdout {
    /// Values hidden.
    hidden: usize,
    /// Observed values among them.
    points: usize,
    /// MASE on them, scaled like the training data.
    mase: Option<f64>,
    /// Share of observed values inside the interval.
    coverage: Option<f64>,
}

fn holdout(series: &Series, spec: &TrainSpec) -> Option<Holdout> {
    let h = spec.horizon;
    let n = series.values.len();
    // Too short to hide a horizon and still validate: say so rather than
    // report a number from a degenerate fit.
    if n < 4 * h {
        return None;
    }
    let head = Series::new(series.start, series.step, series.values[..n - h].to_vec());
    let t = fit_one(&head, spec).ok()?;
    let actual = &series.values[n - h..];
    // A head ending in gaps forecasts from its last observation; line the
    // forecast up with the hidden slots by timestamp.
    let offset = (series.timestamp(n - h) - t.forecast.start).num_seconds()
        / series.step.num_seconds().max(1);
    let offset = usize::try_from(offset).ok()?;
    let f = &t.forecast;
    if f.point.len() < offset + h {
        return None;
    }
    let (point, lower, upper) = (
        &f.point[offset..offset + h],
        &f.lower[offset..offset + h],
        &f.upper[offset..offset + h],
    );
    Some(Holdout {
        hidden: h,
        points: actual.iter().filter(|v| v.is_finite()).count(),
        mase: mase(actual, point, t.mase_scale),
        coverage: coverage(actual, lower, upper),
    })
}

pub(crate) fn run(args: InspectArgs) -> Result<()> {
    if args.model.prophet {
        prophet_available().map_err(|e| anyhow!("--prophet: {e}"))?;
    }
    super::outputs::check(
        Some(("--input", &args.input)),
        &[("--png", args.png.as_deref())],
    )?;
    let (data, integer_ts, _) = load(&args.input, &args.file.options())?;
    let ids = data.series_ids();
    let id = match &args.series {
        Some(id) => id.clone(),
        None if ids.len() == 1 => ids[0].clone(),
        None => bail!(
            "{} holds {} series; choose one with --series (one of: {})",
            args.input.display(),
            ids.len(),
            ids.join(", ")
        ),
    };
    let series = data.series(&id).ok_or_else(|| {
        anyhow!(
            "series {id:?} is not in {}; available: {}",
            args.input.display(),
            ids.join(", ")
        )
    })?;
    let spec = spec(series, args.horizon, &args.model);
    // Past the series' last timestamp, as `forecast` does, also when its
    // last samples are empty.
    let trained =
        super::forecast::past_the_end(series, &spec).map_err(|e| anyhow!("series {id:?}: {e}"))?;
    // The hidden tail uses the same spec, so its numbers describe this choice
    // of periods and level.
    let check = holdout(series, &spec);
    let tail = args.tail.unwrap_or(3 * spec.horizon);

    let (history, _) = history_tail(series, &trained.forecast, tail);
    super::print_out(&format!(
        "{}\n{}",
        summary(&id, series, &spec, &trained, check.as_ref(), integer_ts),
        ascii_chart(&history, &trained.forecast, 100, 20)
    ))?;

    if let Some(path) = &args.png {
        draw_png(path, &id, series, &trained, tail, integer_ts)
            .with_context(|| format!("cannot draw {}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

fn summary(
    id: &str,
    series: &Series,
    spec: &TrainSpec,
    t: &Trained,
    check: Option<&Holdout>,
    integer: bool,
) -> String {
    let when = |d: chrono::DateTime<chrono::Utc>| {
        if integer {
            d.timestamp().to_string()
        } else {
            d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
    };
    let span = |p: usize| {
        if integer {
            String::new()
        } else {
            let d = series.step * i32::try_from(p).unwrap_or(i32::MAX);
            format!(" ({})", format_delta(d))
        }
    };
    let list = |ps: &[usize]| {
        if ps.is_empty() {
            "none".to_string()
        } else {
            ps.iter()
                .map(|p| format!("{p}{}", span(*p)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let chosen: Vec<usize> = t.model.periods();
    let level = spec.level * 100.0;
    let mut out = format!("foresight forecast inspect: series {id:?}\n");
    out.push_str(&format!(
        "history      {} values every {}, {} to {} ({} used after trimming missing ends)\n",
        series.values.len(),
        if integer {
            format!("{} s", series.step.num_seconds())
        } else {
            format_delta(series.step)
        },
        when(series.start),
        when(series.timestamp(series.values.len().saturating_sub(1))),
        t.observations
    ));
    out.push_str(&format!("model        {}\n", t.model));
    out.push_str(&format!(
        "periods      {} (steps; candidates {}{})\n",
        list(&chosen),
        list(&spec.periods),
        if spec.detect {
            ", each tested against the data"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "validation   MASE {} (rolling origins before the end of the history)\n",
        t.validation_mase
            .map(|m| format!("{m:.3}"))
            .unwrap_or_else(|| "- (history too short to validate)".into())
    ));
    out.push_str(&match check {
        Some(c) => format!(
            "coverage     {:.0}% interval held {} of the last {} values ({}; MASE {}), trained without them\n",
            level,
            c.coverage
                .map(|v| format!("{:.0}", v * c.points as f64))
                .unwrap_or_else(|| "0".into()),
            c.hidden,
            c.coverage
                .map(|v| format!("{:.1}%", v * 100.0))
                .unwrap_or_else(|| "no observed values".into()),
            c.mase
                .map(|m| format!("{m:.3}"))
                .unwrap_or_else(|| "-".into()),
        ),
        None => format!(
            "coverage     - (fewer than 4 x {} values: too short to hide a horizon and check it)\n",
            spec.horizon
        ),
    });
    let f = &t.forecast;
    let (lo, hi) = f
        .point
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    out.push_str(&format!(
        "forecast     {} steps from {}: point {} to {}, {level:.0}% interval ±{}\n",
        f.point.len(),
        when(f.start),
        num(lo),
        num(hi),
        num(f
            .upper
            .first()
            .zip(f.point.first())
            .map_or(0.0, |(u, p)| u - p))
    ));
    out.push_str(&match &t.anchor {
        Some(a) => format!(
            "anchor       errors persist (phi {:.2}): corrected by the latest observation, the {level:.0}% interval is ±{} one step ahead{}\n",
            a.phi,
            num(a.half_width[0]),
            a.half_width
                .last()
                .filter(|_| a.half_width.len() > 1)
                .map(|w| format!(", ±{} {} steps ahead", num(*w), a.half_width.len()))
                .unwrap_or_default()
        ),
        None => "anchor       none (validation errors do not persist from one step to the next)\n".into(),
    });
    out
}

/// The last `tail` history values before the forecast starts, and the index
/// of the first of them.
fn history_tail(series: &Series, f: &Forecast, tail: usize) -> (Vec<f64>, usize) {
    // The forecast starts after the last observation, which may precede the
    // end of the series when it ends in gaps.
    let end =
        usize::try_from((f.start - series.start).num_seconds() / series.step.num_seconds().max(1))
            .unwrap_or(series.values.len())
            .min(series.values.len());
    let from = end.saturating_sub(tail);
    (series.values[from..end].to_vec(), from)
}

/// A terminal chart: history (`*`), forecast (`o`) and interval (`:`), with
/// the y range on the left and `^` under the first forecast column. When a
/// column holds several values it spans their range, so peaks survive.
fn ascii_chart(history: &[f64], f: &Forecast, width: usize, height: usize) -> String {
    let total = history.len() + f.point.len();
    let width = width.clamp(10, total.max(10));
    let height = height.max(4);
    let per = total.div_ceil(width).max(1);
    let cols = total.div_ceil(per);
    // Per column, the (low, high) of history, forecast point and interval.
    let mut hist: Vec<Option<(f64, f64)>> = vec![None; cols];
    let mut point: Vec<Option<(f64, f64)>> = vec![None; cols];
    let mut band: Vec<Option<(f64, f64)>> = vec![None; cols];
    let widen = |slot: &mut Option<(f64, f64)>, lo: f64, hi: f64| {
        if lo.is_finite() && hi.is_finite() {
            *slot = Some(slot.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    };
    for i in 0..total {
        let c = i / per;
        // A column's first value also spans back to the value before it, so
        // steep changes draw as connected lines rather than scattered dots.
        let joins = i % per == 0;
        if let Some(v) = history.get(i) {
            let prev = if joins && i > 0 { history[i - 1] } else { *v };
            widen(&mut hist[c], v.min(prev), v.max(prev));
        } else {
            let j = i - history.len();
            let p = f.point[j];
            let prev = if joins && j > 0 { f.point[j - 1] } else { p };
            widen(&mut point[c], p.min(prev), p.max(prev));
            widen(&mut band[c], f.lower[j], f.upper[j]);
        }
    }
    let (mut y0, mut y1) = hist
        .iter()
        .chain(&point)
        .chain(&band)
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (lo, hi)| {
            (a.min(*lo), b.max(*hi))
        });
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let row = |v: f64| {
        let r = ((y1 - v) / (y1 - y0) * (height - 1) as f64).round();
        (r.max(0.0) as usize).min(height - 1)
    };
    let mut grid = vec![vec![' '; cols]; height];
    // Band first, then the forecast over it, then history.
    for (layer, mark) in [(&band, ':'), (&point, 'o'), (&hist, '*')] {
        for (c, span) in layer.iter().enumerate() {
            if let Some((lo, hi)) = span {
                for line in grid.iter_mut().take(row(*lo) + 1).skip(row(*hi)) {
                    line[c] = mark;
                }
            }
        }
    }
    let mut out = String::new();
    for (r, line) in grid.iter().enumerate() {
        let y = if r == 0 || r == height - 1 || r == (height - 1) / 2 {
            num(y1 - (y1 - y0) * r as f64 / (height - 1) as f64)
        } else {
            String::new()
        };
        out.push_str(&format!("{y:>12} |"));
        out.extend(line.iter());
        out.push('\n');
    }
    out.push_str(&format!("{:>13}+{}\n", "", "-".repeat(cols)));
    out.push_str(&format!(
        "{:>width$}^ forecast starts\n",
        "",
        width = 14 + history.len() / per
    ));
    out.push_str(&format!(
        "{:>14}* history ({} values)   o forecast ({} steps)   : {:.0}% interval{}\n",
        "",
        history.len(),
        f.point.len(),
        f.level * 100.0,
        if per > 1 {
            format!("   ({per} values per column)")
        } else {
            String::new()
        }
    ));
    out
}

/// A value with as many decimals as its size needs: the series' unit may be
/// thousands of passengers or a fraction of a second.
fn num(v: f64) -> String {
    match v.abs() {
        0.0 => "0".into(),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.4}"),
    }
}

/// The same picture as the terminal chart, as a PNG (plotters).
fn draw_png(
    path: &Path,
    id: &str,
    series: &Series,
    t: &Trained,
    tail: usize,
    integer: bool,
) -> std::io::Result<()> {
    let f = &t.forecast;
    let (history, from) = history_tail(series, f, tail);
    // x: hours from the forecast start, or steps for integer-indexed data.
    let unit = if integer {
        1.0
    } else {
        series.step.num_seconds() as f64 / 3600.0
    };
    let first =
        (f.start - series.start).num_seconds() as f64 / series.step.num_seconds().max(1) as f64;
    let x = |i: f64| (i - first) * unit;
    let hist: Vec<(f64, f64)> = history
        .iter()
        .enumerate()
        .map(|(i, v)| (x((from + i) as f64), *v))
        .collect();
    let at = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, y)| (x(first + i as f64), *y))
            .collect()
    };
    let band_label = format!("{:.0}% interval", f.level * 100.0);
    let panel = Panel {
        title: format!("{id}: {} forecast, {} steps", t.model, f.point.len()),
        y_label: "value",
        lines: vec![
            Line {
                label: &band_label,
                points: at(&f.upper),
                color: chart::BLUE,
                band_floor: Some(f.lower.clone()),
            },
            Line {
                label: "history",
                points: hist,
                color: chart::GREY,
                band_floor: None,
            },
            Line {
                label: "forecast",
                points: at(&f.point),
                color: chart::ORANGE,
                band_floor: None,
            },
        ],
    };
    let x_label = if integer {
        "steps from the forecast start"
    } else {
        "hours from the forecast start"
    };
    chart::draw(path, x_label, &[panel])
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta};

    use super::*;

    #[test]
    fn ascii_chart_marks_history_forecast_and_band() {
        let f = Forecast {
            start: DateTime::from_timestamp(10, 0).unwrap(),
            step: TimeDelta::seconds(1),
            point: vec![5.0; 5],
            lower: vec![3.0; 5],
            upper: vec![7.0; 5],
            level: 0.9,
        };
        let history: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let chart = ascii_chart(&history, &f, 15, 8);
        let rows: Vec<&str> = chart.lines().collect();
        // The top label is the largest value (history's 9), the bottom the
        // smallest (0).
        assert!(rows[0].trim_start().starts_with("9.00 |"), "{chart}");
        assert!(rows[7].trim_start().starts_with("0 |"), "{chart}");
        let body = |r: &str| r.split_once('|').map(|(_, b)| b.to_string()).unwrap();
        let plot: Vec<String> = rows[..8].iter().map(|r| body(r)).collect();
        // 15 columns: 10 of history, then 5 of forecast with its band.
        assert!(plot.iter().all(|r| r.chars().count() == 15));
        assert_eq!(plot.iter().filter(|r| r.contains('*')).count(), 8);
        for r in &plot {
            let tail: String = r.chars().skip(10).collect();
            assert!(!tail.contains('*'), "{chart}");
        }
        assert!(plot.iter().any(|r| r.chars().skip(10).all(|c| c == 'o')));
        assert!(plot.iter().any(|r| r.chars().skip(10).all(|c| c == ':')));
        assert!(chart.contains("^ forecast starts"));
        assert!(chart.contains("90% interval"));
    }
}
