//! `foresight backtest`: replay recorded demand through foresight, an HPA
//! emulation and an oracle, print the scores, and write the report, the
//! timeline and a plot.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, TimeDelta, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::args::{BacktestArgs, BacktestFormat, SignalArg};
use crate::backtest::sweep::{
    Axis, Goals, HeldOut, Holdout, SweepReport, SweepRun, combinations, label,
};
use crate::backtest::{
    Backtest, ModelCache, Models, PickKind, Progress, Report, deployable, write_timeline,
};
use crate::config::{external_metadata, parse_metadata, with_external_metadata};
use crate::domain::{MetricKind, Series};
use crate::sources::{FileData, LoadReport, MetricSource, PrometheusSource, load_range_export};

/// Live pulls wait at most this long per range-query chunk.
const PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) fn run(args: BacktestArgs) -> Result<()> {
    // Checked before any data is read: a live pull or a sweep can take
    // minutes, and a --write-pick with nothing to write into would be found
    // only at the end.
    check_outputs(&args)?;
    let manifest = args
        .write_pick
        .as_ref()
        .map(|_| write_pick_manifest(&args.metadata))
        .transpose()?;
    let (series, id, source, mut notes) = load_series(&args)?;
    let mut metadata = collect_metadata(&args.metadata)?;
    let kind = choose_signal(&metadata, args.signal)?;
    let deploy = args
        .write_pick
        .clone()
        .zip(manifest)
        .map(|(out, (from, text))| Deploy {
            set: written_metadata(&args, kind),
            out,
            from,
            text,
        });
    for other in MetricKind::ALL.into_iter().filter(|k| *k != kind) {
        for key in [other.query_key(), other.target_key()] {
            if metadata.remove(key).is_some() {
                notes.push(format!(
                    "ignored {key}: a backtest replays one signal ({kind})"
                ));
            }
        }
    }
    if let Some(q) = metadata.insert(kind.query_key().to_string(), id.clone())
        && q != id
    {
        notes.push(format!(
            "{} {q:?} replaced by the replayed series {id:?}",
            kind.query_key()
        ));
    }
    match args.target_per_pod {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            bail!("--target-per-pod must be a positive number (what one replica carries), got {t}")
        }
        Some(t) => {
            metadata.insert(kind.target_key().to_string(), t.to_string());
        }
        None if metadata.contains_key(kind.target_key()) => {}
        None => bail!(
            "say what one replica carries: --target-per-pod N (or {}=N in --metadata)",
            kind.target_key()
        ),
    }
    // The policy widens or batches changes so they pass the HPA's tolerance;
    // unless told otherwise it assumes the tolerance the simulated HPA has.
    metadata
        .entry("hpaTolerance".into())
        .or_insert_with(|| args.hpa_tolerance.to_string());
    if let Some(h) = args.history {
        metadata.insert("history".into(), crate::domain::format_delta(h));
    }
    if !args.sweep.is_empty() {
        return sweep(&args, &series, &id, &source, metadata, notes, deploy);
    }
    let bt = backtest(&args, &series, &id, source, metadata)?;
    let bars = Bars::new();
    let mut outcome = bt.run(&bars).context("backtest failed")?;
    bars.finish();
    outcome.report.notes.splice(0..0, notes);

    print!("{}", outcome.report.table());
    if let Some(path) = &args.output {
        write_json(path, &outcome.report, "report")?;
    }
    if let Some(path) = &args.timeline {
        write_timeline(&outcome.timeline, path)
            .with_context(|| format!("cannot write the timeline to {}", path.display()))?;
        eprintln!("timeline written to {}", path.display());
    }
    if let Some(path) = &args.png {
        crate::backtest::plot(&outcome.timeline, &outcome.report, path)
            .with_context(|| format!("cannot draw {}", path.display()))?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

/// Refuses, before any work, outputs that could not be written or would
/// overwrite the input or each other: found after a long replay, the
/// outputs written before the failing one would be left behind.
fn check_outputs(args: &BacktestArgs) -> Result<()> {
    super::outputs::check(
        args.input.as_deref().map(|p| ("--input", p)),
        &[
            ("--output", args.output.as_deref()),
            ("--timeline", args.timeline.as_deref()),
            ("--png", args.png.as_deref()),
            ("--write-pick", args.write_pick.as_deref()),
        ],
    )
}

/// The replay of `series` under `metadata`, which the server's own parser
/// checks.
fn backtest<'a>(
    args: &BacktestArgs,
    series: &'a Series,
    id: &'a str,
    source: String,
    metadata: BTreeMap<String, String>,
) -> Result<Backtest<'a>> {
    let spec = parse_metadata(&metadata.clone().into_iter().collect::<HashMap<_, _>>())
        .map_err(|e| anyhow!("invalid metadata:\n{e}"))?;
    Ok(Backtest {
        series,
        id,
        source,
        spec,
        metadata,
        startup: args.startup,
        retrain: args.retrain,
        reselect: args.reselect,
        warmup: args.warmup,
        downstream_tolerance: args.hpa_tolerance,
        tick: args.tick,
    })
}

/// `--sweep`: one replay per combination, one table row each.
fn sweep(
    args: &BacktestArgs,
    series: &Series,
    id: &str,
    source: &str,
    base: BTreeMap<String, String>,
    notes: Vec<String>,
    deploy: Option<Deploy>,
) -> Result<()> {
    for (flag, v) in [
        ("--goal-under-provisioned", args.goal_under_provisioned),
        ("--goal-replica-hours", args.goal_replica_hours),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be a positive ratio to the HPA's figure, got {v}");
        }
    }
    if let Some(v) = args.goal_flaps
        && !(v.is_finite() && v >= 0.0)
    {
        bail!(
            "--goal-flaps must be a ratio to the HPA's flaps of 0 or more (1 = no more than the HPA), got {v}"
        );
    }
    let axes = args
        .sweep
        .iter()
        .map(|s| s.parse::<Axis>())
        .collect::<Result<Vec<_>, _>>()?;
    for a in &axes {
        if MetricKind::ALL.iter().any(|k| k.query_key() == a.key) {
            bail!(
                "--sweep {}: a backtest replays one series (--series); sweep the policy's settings instead",
                a.key
            );
        }
    }
    let combos = combinations(&axes)?;
    let goals = Goals {
        under_provisioned_ratio: args.goal_under_provisioned,
        replica_hours_ratio: args.goal_replica_hours,
        flaps_ratio: args.goal_flaps,
    };
    let sw = Sweep {
        args,
        series,
        id,
        source,
        base: &base,
        cache: std::cell::RefCell::new(if args.holdout.is_some() {
            ModelCache::keeping_all()
        } else {
            ModelCache::default()
        }),
    };
    // With --holdout the runs see only the series before the first split;
    // with --folds each later fold is picked on everything before it.
    let splits = args
        .holdout
        .map(|f| holdout_splits(series, args.warmup, f, args.folds))
        .transpose()?;
    let first_end = splits.as_ref().map_or(series.len(), |s| s[0]);
    let names: Vec<String> = combos.iter().map(label).collect();
    let reports = sw.run_all(&combos, first_end, None, &names)?;
    if let Some(first) = reports.first() {
        let (p, i) = (&first.policies, &first.input);
        println!(
            "foresight backtest --sweep: {source} series {id} as {} (target {} per pod), start-up {}s, {} settings",
            i.signal,
            i.target_per_pod,
            i.startup_seconds,
            reports.len()
        );
        println!(
            "hpa: under-provisioned {:.1} min, {:.1} replica-hours; oracle: {:.1} replica-hours",
            p.hpa.under_provisioned_minutes, p.hpa.replica_hours, p.oracle.replica_hours
        );
        if let Some(s) = &splits {
            println!(
                "holdout: these runs (and the figures above) end before {}; the settings picked on them are checked after it",
                series.timestamp(s[0]).to_rfc3339()
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in notes.iter().chain(reports.iter().flat_map(|r| &r.notes)) {
            if seen.insert(n) {
                println!("note: {n}");
            }
        }
        println!();
    }
    let mut report = SweepReport::new(goals, combos.iter().cloned().zip(reports).collect());
    if let Some(splits) = &splits {
        for (j, &k) in splits.iter().enumerate() {
            let end = splits.get(j + 1).copied().unwrap_or(series.len());
            let fold = if j == 0 {
                sw.check_picks(&report, goals, k, end)?
            } else {
                // Picked again on everything before this fold, as a user
                // re-running the sweep then would.
                eprintln!(
                    "fold {} of {}: the sweep again, up to {}",
                    j + 1,
                    splits.len(),
                    series.timestamp(k).to_rfc3339()
                );
                let again = SweepReport::new(
                    goals,
                    combos
                        .iter()
                        .cloned()
                        .zip(sw.run_all(&combos, k, None, &names)?)
                        .collect(),
                );
                sw.check_picks(&again, goals, k, end)?
            };
            if j == 0 {
                report.holdout = Some(fold);
            } else {
                report.folds.push(fold);
            }
        }
    }
    print!("{}", report.table());
    if let Some(path) = &args.output {
        write_json(path, &report, "sweep report")?;
    }
    if let Some(d) = deploy {
        d.write(&report, args.pick.into(), &format!("{source} series {id}"))?;
    }
    Ok(())
}

/// `--write-pick`: where the picked setting goes, and what it goes into.
struct Deploy {
    /// The file to write.
    out: PathBuf,
    /// The ScaledObject manifest given with `--metadata`, named in the
    /// header and in errors.
    from: PathBuf,
    /// Its text, read once before the sweep, so what is written is the
    /// manifest the replays were parsed from.
    text: String,
    /// What the command line set over the manifest's metadata (see
    /// [`written_metadata`]); the pick goes over these.
    set: BTreeMap<String, String>,
}

impl Deploy {
    /// Writes the manifest with the `kind` pick of `report`, replayed on
    /// `replayed`, or fails saying why no pick qualifies, writing nothing.
    fn write(&self, report: &SweepReport, kind: PickKind, replayed: &str) -> Result<()> {
        let pick = deployable(report, kind).map_err(|e| {
            anyhow!(
                "--write-pick {}: {e}; nothing was written",
                self.out.display()
            )
        })?;
        let mut set = self.set.clone();
        set.extend(pick.settings.clone());
        let body = with_external_metadata(without_header(&self.text), &set)
            .with_context(|| format!("cannot update {}", self.from.display()))?;
        let settings = label(&pick.settings);
        let warning = pick
            .warning
            .as_ref()
            .map(|w| format!("# Warning: {w}.\n"))
            .unwrap_or_default();
        let text = format!(
            "{HEADER} from {}, replayed on {replayed}: the {kind} pick, {settings}.\n# {}.\n{warning}{}",
            self.from.display(),
            pick.evidence,
            body.text
        );
        crate::durable::write_bytes_atomically(&self.out, text.as_bytes())
            .with_context(|| format!("cannot write {}", self.out.display()))?;
        println!(
            "\nwrote {}: {} with {settings} ({kind} pick; {})",
            self.out.display(),
            self.from.display(),
            pick.evidence
        );
        if let Some(w) = &pick.warning {
            println!("warning: {w}");
        }
        if !body.in_place {
            println!(
                "note: {} could not be edited in place, so it was written whole: its comments and layout are not kept",
                self.from.display()
            );
        }
        Ok(())
    }
}

/// How the header `--write-pick` puts over the manifest begins.
const HEADER: &str = "# Written by `foresight backtest --write-pick`";

/// `text` without the header an earlier `--write-pick` put over it (its
/// provenance line, its evidence line and any warning), so that a manifest
/// picked again, comments kept, carries the newest evidence alone.
fn without_header(text: &str) -> &str {
    let Some(rest) = text.strip_prefix(HEADER) else {
        return text;
    };
    let mut lines = rest.split_inclusive('\n');
    let mut skipped = HEADER.len();
    for (i, line) in lines.by_ref().enumerate() {
        let ours = match i {
            0 => true,
            1 => line.starts_with("# "),
            _ => line.starts_with("# Warning: "),
        };
        if !ours || i > 2 {
            break;
        }
        skipped += line.len();
    }
    &text[skipped..]
}

/// The one ScaledObject manifest among `--metadata`'s items, and its text:
/// `--write-pick` writes it back with the pick.
fn write_pick_manifest(items: &[String]) -> Result<(PathBuf, String)> {
    let files: Vec<&String> = items.iter().filter(|i| key_value(i).is_none()).collect();
    let [file] = files.as_slice() else {
        bail!(
            "--write-pick writes the pick into the ScaledObject it was replayed with: give exactly one ScaledObject YAML with --metadata FILE (got {})",
            files.len()
        );
    };
    let path = PathBuf::from(file.as_str());
    let (text, _) = read_scaled_object(&path)?;
    Ok((path, text))
}

/// What the command line set over the manifest's metadata, as
/// `--write-pick` writes it: the `key=value` items, and the target and
/// history the replays used when `--target-per-pod` and `--history` gave
/// them. The query stays the manifest's (the backtest replaced it with the
/// series), and `hpaTolerance` is written only when given as metadata: it
/// describes the cluster's HPA, which `--hpa-tolerance` only simulates.
fn written_metadata(args: &BacktestArgs, kind: MetricKind) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        args.metadata.iter().filter_map(|i| key_value(i)).collect();
    if let Some(t) = args.target_per_pod {
        out.insert(kind.target_key().to_string(), t.to_string());
    }
    if let Some(h) = args.history {
        out.insert("history".into(), crate::domain::format_delta(h));
    }
    out
}

/// What every replay of one sweep shares.
struct Sweep<'a> {
    /// The command's flags.
    args: &'a BacktestArgs,
    /// The whole series (the runs may have seen only its head).
    series: &'a Series,
    /// Its id.
    id: &'a str,
    /// Where it came from, for the reports.
    source: &'a str,
    /// The metadata every setting is layered on.
    base: &'a BTreeMap<String, String>,
    /// Models shared by every replay of the sweep: a held-out pick, or a
    /// fold's sweep, replays settings already replayed over a shorter span
    /// of the same series, and trains only the boundaries past it.
    cache: std::cell::RefCell<ModelCache>,
}

impl Sweep<'_> {
    /// One replay per combination over the first `end` samples, in the
    /// order of `combos`, scored from sample `from` on when given (the
    /// warm-up otherwise), each announced by its line of `names`. Every
    /// combination is parsed before any runs, so every bad value is
    /// reported at once rather than after the first few replays; runs that
    /// share a training key run back to back, so each set of models is
    /// trained once.
    fn run_all(
        &self,
        combos: &[BTreeMap<String, String>],
        end: usize,
        from: Option<usize>,
        names: &[String],
    ) -> Result<Vec<Report>> {
        let head = self.up_to(end);
        let series = head.as_ref().unwrap_or(self.series);
        let mut runs = Vec::new();
        let mut problems = Vec::new();
        for c in combos {
            let mut m = self.base.clone();
            m.extend(c.clone());
            match backtest(self.args, series, self.id, self.source.to_string(), m) {
                Ok(mut b) => {
                    if let Some(k) = from {
                        b.warmup = self.series.timestamp(k) - self.series.start;
                    }
                    runs.push(b);
                }
                Err(e) => problems.push(format!("{}: {e:#}", label(c))),
            }
        }
        if !problems.is_empty() {
            bail!("invalid --sweep settings:\n{}", problems.join("\n"));
        }
        let keys: Vec<String> = runs.iter().map(Backtest::training_key).collect();
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        let mut cache = self.cache.borrow_mut();
        let bars = Bars::new();
        let started = AtomicUsize::new(0);
        let mut reports = vec![None; runs.len()];
        // Runs that share a training key train once. Keys are trained a
        // few at a time (one per core; each training is parallel inside),
        // then every run of those keys replays side by side: a replay is
        // sequential and the models are read-only. A few, so that a sweep
        // of many quantiles holds that many keys' models at once, not all.
        let groups: Vec<&[usize]> = order.chunk_by(|&a, &b| keys[a] == keys[b]).collect();
        for batch in groups.chunks(rayon::current_num_threads().max(1)) {
            let mut trained = Vec::with_capacity(batch.len());
            for group in batch {
                trained.push(
                    runs[group[0]]
                        .train_cached(&mut cache, &bars)
                        .with_context(|| {
                            format!("training for {} failed", label(&combos[group[0]]))
                        })?,
                );
            }
            let jobs: Vec<(usize, &Models)> = batch
                .iter()
                .zip(&trained)
                .flat_map(|(group, models)| group.iter().map(move |&i| (i, &**models)))
                .collect();
            let side = SideBySide::new(&bars);
            let outs: Vec<(usize, Result<Report>)> = jobs
                .par_iter()
                .map(|&(i, models)| {
                    let n = started.fetch_add(1, Ordering::Relaxed) + 1;
                    eprintln!("[{n}/{}] {}", runs.len(), names[i]);
                    let out = runs[i]
                        .score_with(models, &side.share())
                        .with_context(|| format!("backtest with {} failed", label(&combos[i])));
                    (i, out)
                })
                .collect();
            for (i, out) in outs {
                reports[i] = Some(out?);
            }
        }
        bars.finish();
        Ok(reports.into_iter().flatten().collect())
    }

    /// The series' first `end` samples, when that is not all of it.
    fn up_to(&self, end: usize) -> Option<Series> {
        (end < self.series.len()).then(|| {
            Series::new(
                self.series.start,
                self.series.step,
                self.series.values[..end].to_vec(),
            )
        })
    }

    /// `--holdout`: replays each of `report`'s picks and the rest of its
    /// front ([`SweepReport::held_out`]) over the series' first `end`
    /// samples, scored from sample `k` on. The models and the policy's
    /// state before the split are exactly as they were when the pick was
    /// made; picks that train alike share their models.
    fn check_picks(
        &self,
        report: &SweepReport,
        goals: Goals,
        k: usize,
        end: usize,
    ) -> Result<Holdout> {
        let held = report.held_out();
        let settings: Vec<_> = held
            .iter()
            .map(|(_, i)| report.runs[*i].settings.clone())
            .collect();
        let names: Vec<String> = held
            .iter()
            .zip(&settings)
            .map(|((why, _), s)| format!("held out: {} ({})", label(s), why.join(", ")))
            .collect();
        let reports = self.run_all(&settings, end, Some(k), &names)?;
        let picks = held
            .into_iter()
            .zip(settings)
            .zip(reports)
            .map(|(((picked_as, _), settings), r)| HeldOut {
                picked_as,
                run: SweepRun::scored(goals, settings, r),
            })
            .collect();
        Ok(Holdout {
            split: self.series.timestamp(k).to_rfc3339(),
            until: (end < self.series.len()).then(|| self.series.timestamp(end).to_rfc3339()),
            picks,
        })
    }
}

/// The first sample of each of `folds` consecutive held-out parts that
/// together make the last `fraction` of the scored span: fold `j` runs from
/// its split to the next one (the last to the end).
fn holdout_splits(
    series: &Series,
    warmup: TimeDelta,
    fraction: f64,
    folds: usize,
) -> Result<Vec<usize>> {
    let k = holdout_split(series, warmup, fraction)?;
    let held = series.len() - k;
    if folds == 0 || folds > held / 2 {
        bail!(
            "--folds {folds} cannot split the {held} held-out samples into parts of at least two; use between 1 and {}",
            (held / 2).max(1)
        );
    }
    Ok((0..folds).map(|j| k + held * j / folds).collect())
}

/// The index of the first held-out sample: the last `fraction` of the span
/// the warm-up leaves scored, on the series' own grid.
fn holdout_split(series: &Series, warmup: TimeDelta, fraction: f64) -> Result<usize> {
    if !(fraction > 0.0 && fraction < 1.0) {
        bail!(
            "--holdout must be a fraction of the scored span between 0 and 1 (exclusive), e.g. 0.5; got {fraction}"
        );
    }
    let warm = usize::try_from(warmup.num_seconds() / series.step.num_seconds().max(1))
        .unwrap_or(usize::MAX);
    let scored = series.len().saturating_sub(warm);
    // Truncation toward zero: the held-out part never exceeds the fraction.
    let held = (scored as f64 * fraction) as usize;
    let k = series.len() - held;
    if held == 0 || k < warm.saturating_add(2) {
        bail!(
            "--holdout {fraction} leaves nothing to pick or nothing to check: the series has {} samples, the --warmup takes {} and {held} would be held out; change --holdout or shorten --warmup",
            series.len(),
            warm.min(series.len())
        );
    }
    Ok(k)
}

/// Writes `value` as pretty JSON to `path`, atomically, and says so.
fn write_json(path: &Path, value: &impl serde::Serialize, what: &str) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    crate::durable::write_atomically(path, |f| {
        use std::io::Write;
        f.write_all(&json)?;
        f.write_all(b"\n")
    })
    .with_context(|| format!("cannot write the {what} to {}", path.display()))?;
    eprintln!("{what} written to {}", path.display());
    Ok(())
}

/// The series to replay, its id, a description of where it came from, and
/// notes about how it was read.
fn load_series(args: &BacktestArgs) -> Result<(Series, String, String, Vec<String>)> {
    let mut notes = Vec::new();
    let (data, report, source) = if let Some(url) = &args.prometheus_url {
        let (query, start, end) = match (&args.query, &args.start, &args.end) {
            (Some(q), Some(s), Some(e)) => (q, parse_time(s, "--start")?, parse_time(e, "--end")?),
            _ => bail!("a live pull needs --query, --start and --end"),
        };
        if end <= start {
            bail!("--end ({end}) must be after --start ({start})");
        }
        let step = args.step.unwrap_or(chrono::TimeDelta::minutes(1));
        let src = PrometheusSource::new(url, PULL_TIMEOUT)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let series = rt
            // Sources read (start, end]; --start is inclusive.
            .block_on(src.history(query, start - step, end, step))
            .with_context(|| format!("cannot pull {query:?} from {url}"))?;
        (
            FileData::from_series(url, query, series),
            LoadReport::default(),
            format!("{url} (live pull)"),
        )
    } else {
        let Some(path) = &args.input else {
            bail!("give --input FILE or --prometheus-url URL");
        };
        let json = match args.format {
            BacktestFormat::Prometheus => true,
            BacktestFormat::Table => false,
            BacktestFormat::Auto => path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json")),
        };
        let (data, report) = if json {
            load_range_export(path)?
        } else {
            FileData::load_with(path, &args.file.options())?
        };
        (data, report, path.display().to_string())
    };
    let ids = data.series_ids();
    let id = match &args.series {
        Some(id) => id.clone(),
        None if ids.len() == 1 && report.skipped.is_empty() => ids[0].clone(),
        None => bail!(
            "the input holds {} series; choose one with --series (one of: {}){}",
            ids.len() + report.skipped.len(),
            ids.join(", "),
            if report.skipped.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = report.skipped.keys().map(String::as_str).collect();
                format!("; cannot be read: {}", names.join(", "))
            }
        ),
    };
    if let Some(why) = report.skipped.get(&id) {
        bail!("invalid metrics file {source}: {why}");
    }
    let series = data.series(&id).cloned().ok_or_else(|| {
        anyhow!(
            "series {id:?} is not in {source}; available: {}",
            ids.join(", ")
        )
    })?;
    if let Some(n) = report.irregular_gaps.get(&id) {
        notes.push(format!(
            "{n} intervals differed from the {}s step and were resampled onto it",
            series.step.num_seconds()
        ));
    }
    if let Some(n) = report.duplicates_dropped.get(&id) {
        notes.push(format!(
            "{n} samples shared a timestamp with another and were dropped (--duplicates {})",
            args.file.duplicates.as_str()
        ));
    }
    if let Some(n) = report.missing_values.get(&id) {
        notes.push(format!(
            "{n} samples were missing (gaps): scalers hold their count there, its replica-hours count, and no policy is judged under-provisioned there"
        ));
    }
    Ok((series, id, source, notes))
}

fn parse_time(s: &str, flag: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{flag} {s:?} is not an RFC 3339 time like 2026-01-31T00:00:00Z"))
}

/// Merges `--metadata` values: YAML files contribute their external
/// trigger's metadata, then `key=value` pairs override them, in whatever
/// order they were given (what `--write-pick` writes assumes so too).
fn collect_metadata(items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut pairs = BTreeMap::new();
    for item in items {
        if let Some((k, v)) = key_value(item) {
            pairs.insert(k, v);
        } else if Path::new(item).exists() {
            out.extend(read_scaled_object(Path::new(item))?.1);
        } else {
            bail!(
                "--metadata {item:?} is neither key=value nor an existing ScaledObject YAML file"
            );
        }
    }
    out.extend(pairs);
    Ok(out)
}

/// A `--metadata` item written `key=value`, trimmed; `None` for a file,
/// including an existing file whose path has a `=` in it.
fn key_value(item: &str) -> Option<(String, String)> {
    if Path::new(item).is_file() {
        return None;
    }
    item.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
}

/// A ScaledObject manifest's text, and the metadata of its first
/// `external` trigger.
fn read_scaled_object(path: &Path) -> Result<(String, BTreeMap<String, String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = external_metadata(&text)
        .with_context(|| format!("reading the ScaledObject {}", path.display()))?;
    Ok((text, meta))
}

/// The signal to replay as: the flag, else the one the metadata configures,
/// else connections.
fn choose_signal(meta: &BTreeMap<String, String>, flag: Option<SignalArg>) -> Result<MetricKind> {
    if let Some(f) = flag {
        return Ok(match f {
            SignalArg::Connections => MetricKind::Connections,
            SignalArg::QueueDepth => MetricKind::QueueDepth,
            SignalArg::ConsumerLag => MetricKind::ConsumerLag,
        });
    }
    let named: Vec<MetricKind> = MetricKind::ALL
        .into_iter()
        .filter(|k| meta.contains_key(k.query_key()) || meta.contains_key(k.target_key()))
        .collect();
    match named.as_slice() {
        [] => Ok(MetricKind::Connections),
        [MetricKind::P99Latency] => bail!(
            "the metadata configures p99 latency, which is not additive, so capacity cannot be simulated from it; replay a queue depth, consumer lag or connections series (--signal)"
        ),
        [k] => Ok(*k),
        many => {
            let additive: Vec<&MetricKind> = many.iter().filter(|k| k.is_additive()).collect();
            match additive.as_slice() {
                [k] => Ok(**k),
                _ => bail!(
                    "the metadata configures several signals ({}); choose the one to replay with --signal",
                    many.iter()
                        .map(|k| k.key_prefix())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    }
}

/// Progress bars on a terminal; silent otherwise.
/// Replays running side by side, summed into the one replay bar.
struct SideBySide<'a> {
    /// The bars they report to.
    bars: &'a Bars,
    /// Ticks replayed so far, over every replay that has started.
    done: AtomicUsize,
    /// Ticks to replay, over the same replays.
    total: AtomicUsize,
}

impl<'a> SideBySide<'a> {
    fn new(bars: &'a Bars) -> Self {
        Self {
            bars,
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        }
    }

    /// The progress one of the replays reports to.
    fn share(&self) -> Share<'_> {
        Share {
            all: self,
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        }
    }
}

/// One replay's part of a [`SideBySide`]: what it has reported so far, so
/// each report adds only what is new to the sums.
struct Share<'a> {
    /// The sums.
    all: &'a SideBySide<'a>,
    /// Ticks this replay has reported done.
    done: AtomicUsize,
    /// Ticks this replay has reported in all.
    total: AtomicUsize,
}

impl Progress for Share<'_> {
    fn training(&self, done: usize, total: usize) {
        self.all.bars.training(done, total);
    }

    fn replay(&self, done: usize, total: usize) {
        let add = |mine: &AtomicUsize, sum: &AtomicUsize, now: usize| {
            let new = now.saturating_sub(mine.swap(now, Ordering::Relaxed));
            sum.fetch_add(new, Ordering::Relaxed) + new
        };
        let t = add(&self.total, &self.all.total, total);
        let d = add(&self.done, &self.all.done, done);
        self.all.bars.replay(d, t);
    }
}

struct Bars {
    /// Trainings.
    train: Option<ProgressBar>,
    /// Replayed ticks.
    replay: Option<ProgressBar>,
}

impl Bars {
    fn new() -> Self {
        let make = |msg: &'static str| {
            std::io::stderr().is_terminal().then(|| {
                let b = ProgressBar::new(0);
                b.set_style(
                    ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} ({eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                b.set_message(msg);
                b
            })
        };
        Self {
            train: make("training"),
            replay: make("replaying"),
        }
    }

    fn finish(&self) {
        for b in [&self.train, &self.replay].into_iter().flatten() {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn training(&self, done: usize, total: usize) {
        if let Some(b) = &self.train {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    }

    fn replay(&self, done: usize, total: usize) {
        if let Some(b) = &self.replay {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_write_picks_header_is_taken_off_and_nothing_else() {
        let body = "# the operator's own comment\nkind: ScaledObject\n";
        let ours = format!(
            "{HEADER} from so.yaml, replayed on x: the calmest pick, q 0.6.\n# Held out: 0.01x / 1.07x.\n"
        );
        assert_eq!(without_header(&format!("{ours}{body}")), body);
        let warned = format!("{ours}# Warning: it flapped 3 times.\n{body}");
        assert_eq!(without_header(&warned), body);
        assert_eq!(without_header(body), body);
        // A header alone, as a truncated file would be.
        assert_eq!(without_header(HEADER), "");
    }
}
