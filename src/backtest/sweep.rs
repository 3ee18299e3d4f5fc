//! Sweeps: one replay per combination of metadata values, scored against
//! goals, with the combinations no other one beats on both violations and
//! cost marked.
//!
//! The quantile and the scale-down behaviour trade under-provisioning for
//! replica-hours differently on every workload, so the only honest way to
//! pick them is to replay the workload's own history under each. A sweep
//! does that in one command: the rows share the series, the HPA and the
//! oracle, and models are trained once per distinct training setting (see
//! [`super::Backtest::run_cached`]).
//!
//! A setting picked on a span flatters that span, so a sweep can hold the
//! end of it out: the picks made on the first part are replayed over the
//! whole series and scored on the held-out part alone ([`Holdout`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{BacktestError, Report};

/// The most combinations one sweep runs: each may train its own models, and
/// a grid that size is a sign of a mistyped list.
pub const MAX_COMBINATIONS: usize = 100;

/// One `--sweep KEY=V1,V2,...`: a metadata key and the values to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    /// The metadata key, as a ScaledObject writes it.
    pub key: String,
    /// Its values, in the order given.
    pub values: Vec<String>,
}

impl std::str::FromStr for Axis {
    type Err = BacktestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BacktestError::BadOption {
            option: "--sweep",
            expected: "KEY=V1,V2,... with a metadata key and at least one value",
            got: format!("{s:?}"),
        };
        let (key, values) = s.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if key.is_empty() || values.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            key: key.to_string(),
            values,
        })
    }
}

/// Every pairing of the axes' values, the first axis varying slowest. A key
/// given twice is refused rather than silently overriding itself.
pub fn combinations(axes: &[Axis]) -> Result<Vec<BTreeMap<String, String>>, BacktestError> {
    let mut seen = std::collections::BTreeSet::new();
    for a in axes {
        if !seen.insert(a.key.as_str()) {
            return Err(BacktestError::BadOption {
                option: "--sweep",
                expected: "each key once (list all its values in one --sweep)",
                got: a.key.clone(),
            });
        }
    }
    let total = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .unwrap_or(usize::MAX);
    if total > MAX_COMBINATIONS {
        return Err(BacktestError::BadOption {
            option: "--sweep",
            expected: "at most 100 combinations (split the sweep, or list fewer values)",
            got: format!("{total} combinations"),
        });
    }
    let mut out = vec![BTreeMap::new()];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|base| {
                a.values.iter().map(move |v| {
                    let mut m = base.clone();
                    m.insert(a.key.clone(), v.clone());
                    m
                })
            })
            .collect();
    }
    Ok(out)
}

/// The goals a row is checked against, as ratios of foresight's figures to
/// the HPA's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Goals {
    /// Largest acceptable under-provisioned minutes, as a ratio.
    pub under_provisioned_ratio: f64,
    /// Largest acceptable replica-hours, as a ratio.
    pub replica_hours_ratio: f64,
    /// Largest acceptable flaps, as a multiple of the HPA's (`1` is issue
    /// #4's "no more flapping than the HPA"); `None` leaves flaps out of
    /// the goals, as issue #5's pair does. An HPA that never flaps allows
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaps_ratio: Option<f64>,
}

impl Goals {
    /// The goals in words, as the table and `--write-pick` state them.
    pub(crate) fn describe(&self) -> String {
        let flaps = self
            .flaps_ratio
            .map(|r| format!(", flaps <= {r:.2}x"))
            .unwrap_or_default();
        format!(
            "under-provisioned <= {:.2}x and replica-hours <= {:.2}x{flaps} the HPA's",
            self.under_provisioned_ratio, self.replica_hours_ratio
        )
    }

    /// Whether `flaps` against the HPA's `hpa` meet the flap goal, if any.
    fn calm_enough(&self, flaps: u32, hpa: u32) -> bool {
        self.flaps_ratio
            .is_none_or(|r| f64::from(flaps) <= r * f64::from(hpa))
    }
}

/// One combination's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    /// The swept keys and the values this run used.
    pub settings: BTreeMap<String, String>,
    /// foresight's under-provisioned minutes over the HPA's; `None` when the
    /// HPA was never short and foresight was.
    pub under_provisioned_ratio: Option<f64>,
    /// foresight's replica-hours over the HPA's.
    pub replica_hours_ratio: Option<f64>,
    /// Whether both ratios are within the goals (and the flaps, when
    /// [`Goals::flaps_ratio`] is set).
    pub meets_goals: bool,
    /// Whether no other run is at least as good on both ratios and better
    /// on one.
    pub pareto: bool,
    /// The whole report, as `--output` writes it for a single run.
    pub report: Report,
}

impl SweepRun {
    /// A run's ratios to the HPA and whether they meet `goals`; not on the
    /// front until [`SweepReport::new`] compares it with the others.
    pub fn scored(goals: Goals, settings: BTreeMap<String, String>, report: Report) -> Self {
        let (f, h) = (&report.policies.foresight, &report.policies.hpa);
        let under = ratio(f.under_provisioned_minutes, h.under_provisioned_minutes);
        let cost = ratio(f.replica_hours, h.replica_hours);
        let meets_goals = under.is_some_and(|u| u <= goals.under_provisioned_ratio)
            && cost.is_some_and(|c| c <= goals.replica_hours_ratio)
            && goals.calm_enough(f.flaps, h.flaps);
        SweepRun {
            settings,
            under_provisioned_ratio: under,
            replica_hours_ratio: cost,
            meets_goals,
            pareto: false,
            report,
        }
    }

    /// Its settings as the table shows them.
    fn label(&self) -> String {
        label(&self.settings)
    }

    /// One table row, the settings padded to `width`.
    fn row(&self, label: &str, width: usize, front: &str) -> String {
        // Three decimals: a row at 1.103x misses a 1.10x goal, and two
        // decimals would print it as meeting it.
        let fmt_ratio =
            |r: Option<f64>| r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.3}x"));
        let p = &self.report.policies;
        format!(
            "{:<width$}  {:>10}  {:>10}  {:>10}  {:>13}  {:>5}  {:>5}",
            label,
            fmt_ratio(self.under_provisioned_ratio),
            fmt_ratio(self.replica_hours_ratio),
            fmt_ratio(ratio(p.foresight.replica_hours, p.oracle.replica_hours)),
            format!("{} ({})", p.foresight.flaps, p.hpa.flaps),
            if self.meets_goals { "yes" } else { "no" },
            front,
        )
    }
}

/// Settings as `key=value ...`, as the table and the progress lines show
/// them.
pub fn label(settings: &BTreeMap<String, String>) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table's header, the settings column `width` wide.
fn header(width: usize, last: &str) -> String {
    format!(
        "{:<width$}  {:>10}  {:>10}  {:>10}  {:>13}  {:>5}  {:>5}",
        "settings", "under/hpa", "cost/hpa", "cost/orcl", "flaps (hpa)", "goals", last
    )
}

/// A sweep's result, as `--output` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// What each run is checked against.
    pub goals: Goals,
    /// One per combination, in the order of [`combinations`].
    pub runs: Vec<SweepRun>,
    /// With `--holdout`: the picks, scored on the span the runs did not see
    /// (with `--folds`, its first fold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    /// With `--folds K`: folds 2 to K, each picked on a sweep of everything
    /// before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folds: Vec<Holdout>,
}

/// The picks of a sweep run on the first part of a span, scored on the
/// rest: whether a setting chosen on the past holds on a future it did not
/// see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// First instant of the held-out part (RFC 3339); the runs above end
    /// before it, the picks below are scored from it.
    pub split: String,
    /// With `--folds`, the first instant after the part (the next fold's
    /// split); absent when it runs to the end of the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// One per run held out (see [`SweepReport::held_out`]): the picks
    /// first, then the rest of the front.
    pub picks: Vec<HeldOut>,
}

/// One pick, replayed over the whole series and scored after the split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// Why it was held out: `cheapest` (least replica-hours of the runs
    /// meeting the goals) and/or `calmest` (fewest flaps of them, then
    /// least replica-hours); or, when none met both, one of the two
    /// `nearest: ...` reasons; and `front` when no run before the split
    /// beat it on both ratios.
    pub picked_as: Vec<String>,
    /// Its scores on the held-out part alone.
    pub run: SweepRun,
}

/// Why a run is held out when none met both goals: the fewest
/// under-provisioned minutes within the replica-hours goal...
const LEAST_SHORT_WITHIN_COST: &str = "nearest: least short within the cost goal";
/// ...and the fewest replica-hours within the under-provisioning goal.
const CHEAPEST_WITHIN_UNDER: &str = "nearest: cheapest within the under-provisioning goal";
/// Why a run is held out when it is on the front before the split.
const FRONT: &str = "front";
/// Why a run meeting the goals is held out: the least replica-hours...
pub(crate) const CHEAPEST: &str = "cheapest";
/// ...and the fewest flaps.
pub(crate) const CALMEST: &str = "calmest";

/// `a / b`, with 0 / 0 read as 0 (neither was short) and anything else over
/// 0 as unknown.
fn ratio(a: f64, b: f64) -> Option<f64> {
    if b > 0.0 {
        Some(a / b)
    } else if a == 0.0 {
        Some(0.0)
    } else {
        None
    }
}

impl SweepReport {
    /// Scores each run against the goals and marks the front.
    pub fn new(goals: Goals, runs: Vec<(BTreeMap<String, String>, Report)>) -> Self {
        let mut out: Vec<SweepRun> = runs
            .into_iter()
            .map(|(settings, report)| SweepRun::scored(goals, settings, report))
            .collect();
        // Compared on the raw figures: every run shares the HPA, so this is
        // the same order as the ratios and has no undefined cases.
        let points: Vec<(f64, f64)> = out
            .iter()
            .map(|r| {
                let f = &r.report.policies.foresight;
                (f.under_provisioned_minutes, f.replica_hours)
            })
            .collect();
        for (i, r) in out.iter_mut().enumerate() {
            let (u, c) = points[i];
            r.pareto = !points
                .iter()
                .any(|&(u2, c2)| u2 <= u && c2 <= c && (u2 < u || c2 < c));
        }
        Self {
            goals,
            runs: out,
            holdout: None,
            folds: Vec::new(),
        }
    }

    /// The runs to hold out, by index, each with why it was picked: the
    /// cheapest and the calmest of those meeting the goals (one entry when
    /// they are the same run). When none meets both, the nearest: the
    /// least short of those within the cost goal and the cheapest of those
    /// within the under-provisioning goal, so a sweep that falls short
    /// still shows how its best tries fare on data they did not see. Empty
    /// when no run meets either goal.
    pub fn picks(&self) -> Vec<(Vec<String>, usize)> {
        let met: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].meets_goals)
            .collect();
        let foresight = |i: usize| &self.runs[i].report.policies.foresight;
        // The run of `among` least by `key`, ties to the fewest flaps.
        let least = |among: &mut dyn Iterator<Item = usize>, key: &dyn Fn(usize) -> f64| {
            among.min_by(|&a, &b| {
                key(a)
                    .total_cmp(&key(b))
                    .then(foresight(a).flaps.cmp(&foresight(b).flaps))
            })
        };
        let cost = |i: usize| foresight(i).replica_hours;
        if met.is_empty() {
            let within = |ratio: fn(&SweepRun) -> Option<f64>, goal: f64| {
                (0..self.runs.len())
                    .filter(move |&i| ratio(&self.runs[i]).is_some_and(|r| r <= goal))
            };
            let least_short = least(
                &mut within(|r| r.replica_hours_ratio, self.goals.replica_hours_ratio),
                &|i| foresight(i).under_provisioned_minutes,
            );
            let cheapest = least(
                &mut within(
                    |r| r.under_provisioned_ratio,
                    self.goals.under_provisioned_ratio,
                ),
                &cost,
            );
            return [
                (LEAST_SHORT_WITHIN_COST, least_short),
                (CHEAPEST_WITHIN_UNDER, cheapest),
            ]
            .into_iter()
            .filter_map(|(why, i)| Some((vec![why.to_string()], i?)))
            .collect();
        }
        let cheapest = least(&mut met.iter().copied(), &cost);
        let calmest = met.iter().copied().min_by(|&a, &b| {
            foresight(a)
                .flaps
                .cmp(&foresight(b).flaps)
                .then(cost(a).total_cmp(&cost(b)))
        });
        match (cheapest, calmest) {
            (Some(a), Some(b)) if a == b => vec![(vec![CHEAPEST.into(), CALMEST.into()], a)],
            (Some(a), Some(b)) => vec![(vec![CHEAPEST.into()], a), (vec![CALMEST.into()], b)],
            _ => Vec::new(),
        }
    }

    /// The runs `--holdout` replays after the split, by index, each with
    /// why: the [picks](Self::picks), then the rest of the front from the
    /// cheapest up. A pick is the one setting a user would take, but the
    /// front shows whether the whole trade-off holds on data it did not
    /// see: where a pick scrapes past a goal before the split, a neighbour
    /// with more margin may be the safer choice after it.
    pub fn held_out(&self) -> Vec<(Vec<String>, usize)> {
        let mut out = self.picks();
        for (why, i) in &mut out {
            if self.runs[*i].pareto {
                why.push(FRONT.to_string());
            }
        }
        let mut rest: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].pareto && !out.iter().any(|(_, j)| *j == i))
            .collect();
        let cost = |i: usize| self.runs[i].report.policies.foresight.replica_hours;
        rest.sort_by(|&a, &b| cost(a).total_cmp(&cost(b)));
        out.extend(rest.into_iter().map(|i| (vec![FRONT.to_string()], i)));
        out
    }

    /// The terminal table: one row per run, then the held-out picks.
    pub fn table(&self) -> String {
        let labels: Vec<String> = self.runs.iter().map(SweepRun::label).collect();
        let folds: Vec<&Holdout> = self.holdout.iter().chain(&self.folds).collect();
        let width = labels
            .iter()
            .cloned()
            .chain(folds.iter().flat_map(|h| &h.picks).map(|p| p.run.label()))
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
            .max("settings".len());
        let mut t = String::new();
        let _ = writeln!(t, "{}", header(width, "front"));
        for (r, s) in self.runs.iter().zip(&labels) {
            let _ = writeln!(t, "{}", r.row(s, width, if r.pareto { "*" } else { "" }));
        }
        let met = self.runs.iter().filter(|r| r.meets_goals).count();
        let _ = writeln!(
            t,
            "\n{met} of {} settings meet {}; * marks those no other setting beats on both.",
            self.runs.len(),
            self.goals.describe()
        );
        if folds.is_empty() {
            let _ = writeln!(
                t,
                "Settings picked here fit this span: confirm them on a later one (--holdout does), or run mode: forecastOnly first."
            );
            return t;
        }
        let many = folds.len() > 1;
        for (j, h) in folds.iter().enumerate() {
            let fold = if many {
                format!("fold {} of {}, ", j + 1, folds.len())
            } else {
                String::new()
            };
            held_out_section(&mut t, h, width, &fold);
        }
        if many {
            fold_summary(&mut t, &folds);
        }
        t
    }
}

/// Why a held-out row is there besides being on the front.
fn is_pick(p: &&HeldOut) -> bool {
    p.picked_as.iter().any(|w| w != FRONT)
}

/// Whether a held-out row was on the front before its split.
fn on_front(p: &&HeldOut) -> bool {
    p.picked_as.iter().any(|w| w == FRONT)
}

/// One held-out part's rows and what they show, into `t`; `fold` names the
/// part when there are several.
fn held_out_section(t: &mut String, h: &Holdout, width: usize, fold: &str) {
    let span = match &h.until {
        Some(u) => format!("from {} to {u}", h.split),
        None => format!("from {}", h.split),
    };
    if h.picks.is_empty() {
        let _ = writeln!(t, "\nHeld out {fold}{span}: nothing to check.");
        return;
    }
    // What the sweep before the split found, as the reasons say: the
    // cheapest and calmest exist only when a run met both goals.
    let met_before = h
        .picks
        .iter()
        .any(|p| p.picked_as.iter().any(|w| w == CHEAPEST || w == CALMEST));
    let picks = h.picks.iter().filter(is_pick).count();
    let which = match (met_before, picks > 0) {
        (true, _) => "the picks and the rest of the front",
        (false, true) => {
            "no setting met both goals before it; the nearest and the rest of the front"
        }
        (false, false) => "no setting met either goal before it; the front",
    };
    let _ = writeln!(
        t,
        "\nHeld out {fold}{span}: {which}, replayed and scored on this part alone."
    );
    let _ = writeln!(t, "{}", header(width, "pick"));
    for p in &h.picks {
        let _ = writeln!(
            t,
            "{}",
            p.run.row(&p.run.label(), width, &p.picked_as.join(", "))
        );
    }
    let met = |which: fn(&&HeldOut) -> bool| {
        h.picks
            .iter()
            .filter(which)
            .filter(|p| p.run.meets_goals)
            .count()
    };
    if picks > 0 {
        let held_met = met(is_pick);
        let _ = writeln!(
            t,
            "{held_met} of {picks} picks {} the goals on the held-out span.",
            if met_before { "still meet" } else { "meet" }
        );
    }
    let front = h.picks.iter().filter(on_front).count();
    let front_met = met(on_front);
    let _ = writeln!(
        t,
        "{front_met} of the {front} settings on the front before the split meet the goals after it."
    );
}

/// Across folds: how often each kind of pick, and the front, met the goals
/// on the part after it.
fn fold_summary(t: &mut String, folds: &[&Holdout]) {
    let _ = writeln!(t, "\nAcross the {} folds:", folds.len());
    for why in [
        CHEAPEST,
        CALMEST,
        LEAST_SHORT_WITHIN_COST,
        CHEAPEST_WITHIN_UNDER,
    ] {
        let rows: Vec<&HeldOut> = folds
            .iter()
            .flat_map(|h| &h.picks)
            .filter(|p| p.picked_as.iter().any(|w| w == why))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let met = rows.iter().filter(|p| p.run.meets_goals).count();
        let _ = writeln!(
            t,
            "  {why}: met the goals in {met} of the {} folds it was picked in",
            rows.len()
        );
    }
    let front: Vec<&HeldOut> = folds
        .iter()
        .flat_map(|h| &h.picks)
        .filter(on_front)
        .collect();
    let met = front.iter().filter(|p| p.run.meets_goals).count();
    let _ = writeln!(
        t,
        "  front: {met} of {} held-out rows met the goals",
        front.len()
    );
}

/// Reports to build sweeps from in unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Report;

    /// A report whose foresight lane has these figures against an HPA that
    /// was short 100 minutes over 1000 replica-hours.
    pub(crate) fn report(under: f64, hours: f64) -> Report {
        let lane = |u: f64, h: f64| {
            serde_json::json!({"under_provisioned_minutes": u, "replica_hours": h,
                "scale_events": 0, "flaps": 0, "max_replicas": 1, "p95_backlog": 0.0})
        };
        serde_json::from_value(serde_json::json!({
            "input": {"source": "s", "series": "s", "signal": "connections", "target_per_pod": 1.0,
                "startup_seconds": 120, "retrain_seconds": 3600, "history_seconds": 86400,
                "data_step_seconds": 60, "from": "", "scored_from": "", "to": "",
                "metadata": {}, "downstream_tolerance": 0.1},
            "steps": 1, "step_seconds": 60.0,
            "policies": {"foresight": lane(under, hours), "hpa": lane(100.0, 1000.0),
                "oracle": lane(0.0, 900.0), "perfect_forecast": lane(0.0, 950.0)},
            "forecast": {"mase": null, "smape": null, "interval_coverage": null,
                "interval_level": 0.8, "points": 0, "anchored_coverage": null, "anchored_points": 0},
            "decisions": {"prediction": {}, "limiter": {}, "swallowed_by_hpa_tolerance": 0},
            "training": {"attempted": 0, "failed": 0, "models": {}},
            "notes": []
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(s: &str) -> Axis {
        s.parse().unwrap()
    }

    #[test]
    fn axes_parse_and_refuse_what_is_not_a_list() {
        assert_eq!(
            axis(" forecastQuantile = 0.6, 0.75 ,0.9"),
            Axis {
                key: "forecastQuantile".into(),
                values: vec!["0.6".into(), "0.75".into(), "0.9".into()]
            }
        );
        for bad in ["forecastQuantile", "=0.6", "forecastQuantile=", "k= , ,"] {
            let e = bad.parse::<Axis>().unwrap_err().to_string();
            assert!(e.contains("--sweep must be KEY=V1,V2"), "{bad}: {e}");
        }
    }

    #[test]
    fn combinations_pair_every_value_first_axis_slowest() {
        let c = combinations(&[axis("a=1,2"), axis("b=x,y,z")]).unwrap();
        let flat: Vec<String> = c.iter().map(|m| format!("{}{}", m["a"], m["b"])).collect();
        assert_eq!(flat, ["1x", "1y", "1z", "2x", "2y", "2z"]);
        assert_eq!(combinations(&[]).unwrap(), vec![BTreeMap::new()]);
    }

    #[test]
    fn combinations_refuse_a_repeated_key_and_a_huge_grid() {
        let e = combinations(&[axis("a=1"), axis("a=2")]).unwrap_err();
        assert!(e.to_string().contains("each key once"), "{e}");
        let ten = "k=0,1,2,3,4,5,6,7,8,9";
        let mut axes = vec![axis(ten), axis(&ten.replace('k', "j"))];
        assert_eq!(combinations(&axes).unwrap().len(), 100);
        axes.push(axis("m=1,2"));
        let e = combinations(&axes).unwrap_err().to_string();
        assert!(e.contains("200 combinations"), "{e}");
    }

    #[test]
    fn ratios_read_zero_over_zero_as_zero() {
        assert_eq!(ratio(3.0, 6.0), Some(0.5));
        assert_eq!(ratio(0.0, 0.0), Some(0.0));
        assert_eq!(ratio(1.0, 0.0), None);
    }

    use super::test_support::report;

    #[test]
    fn rows_are_checked_against_the_goals_and_the_front_is_marked() {
        let goals = Goals {
            under_provisioned_ratio: 0.2,
            replica_hours_ratio: 1.1,
            flaps_ratio: None,
        };
        let runs = [
            (10.0, 1200.0), // 0.10x / 1.20x: cheapest at its violations
            (30.0, 1050.0), // 0.30x / 1.05x: on the front, misses the violations goal
            (15.0, 1090.0), // 0.15x / 1.09x: meets both, on the front
            (15.0, 1100.0), // beaten by the row above on cost alone
            (40.0, 1300.0), // beaten on both
        ];
        let report = SweepReport::new(
            goals,
            runs.iter()
                .enumerate()
                .map(|(i, &(u, h))| {
                    (
                        BTreeMap::from([("row".to_string(), i.to_string())]),
                        report(u, h),
                    )
                })
                .collect(),
        );
        let meets: Vec<bool> = report.runs.iter().map(|r| r.meets_goals).collect();
        let front: Vec<bool> = report.runs.iter().map(|r| r.pareto).collect();
        assert_eq!(meets, [false, false, true, true, false]);
        assert_eq!(front, [true, true, true, false, false]);
        assert_eq!(report.runs[2].under_provisioned_ratio, Some(0.15));
        let table = report.table();
        assert!(table.contains("row=2"), "{table}");
        assert!(table.contains("2 of 5 settings meet"), "{table}");
        // The JSON round-trips, for notebooks.
        let back: SweepReport =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn a_flap_goal_counts_only_when_set_and_is_measured_against_the_hpa() {
        let with = |flaps: u32, hpa_flaps: u32| {
            let mut r = report(15.0, 1050.0);
            r.policies.foresight.flaps = flaps;
            r.policies.hpa.flaps = hpa_flaps;
            r
        };
        let goals = |flaps_ratio| Goals {
            under_provisioned_ratio: 0.2,
            replica_hours_ratio: 1.1,
            flaps_ratio,
        };
        let meets = |g: Goals, flaps, hpa| {
            SweepRun::scored(g, BTreeMap::new(), with(flaps, hpa)).meets_goals
        };
        // Unset: flaps are not a goal, however many.
        assert!(meets(goals(None), 500, 10));
        // No more than the HPA: equal passes, one more fails, and an HPA
        // that never flaps allows none.
        assert!(meets(goals(Some(1.0)), 10, 10));
        assert!(!meets(goals(Some(1.0)), 11, 10));
        assert!(meets(goals(Some(1.0)), 0, 0));
        assert!(!meets(goals(Some(1.0)), 1, 0));
        // A looser multiple.
        assert!(meets(goals(Some(2.0)), 20, 10));
        // The ratios still count with it.
        let mut short = with(0, 10);
        short.policies.foresight.under_provisioned_minutes = 30.0;
        assert!(!SweepRun::scored(goals(Some(1.0)), BTreeMap::new(), short).meets_goals);
        // The table names it, and the JSON keeps it.
        let report = SweepReport::new(goals(Some(1.0)), vec![(BTreeMap::new(), with(11, 10))]);
        let table = report.table();
        assert!(
            table.contains("0 of 1 settings meet under-provisioned <= 0.20x and replica-hours <= 1.10x, flaps <= 1.00x the HPA's"),
            "{table}"
        );
        let back: SweepReport =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn the_cheapest_and_the_calmest_runs_meeting_the_goals_are_held_out() {
        let goals = Goals {
            under_provisioned_ratio: 0.2,
            replica_hours_ratio: 1.1,
            flaps_ratio: None,
        };
        let with_flaps = |u: f64, h: f64, flaps: u32| {
            let mut r = report(u, h);
            r.policies.foresight.flaps = flaps;
            r
        };
        let sweep = |runs: &[(f64, f64, u32)]| {
            SweepReport::new(
                goals,
                runs.iter()
                    .enumerate()
                    .map(|(i, &(u, h, f))| {
                        (
                            BTreeMap::from([("row".to_string(), i.to_string())]),
                            with_flaps(u, h, f),
                        )
                    })
                    .collect(),
            )
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Row 0 is the cheapest overall but misses the goals; of those that
        // meet them, row 1 is the cheapest and row 2 flaps least (row 3
        // flaps as little but costs more).
        let mut report = sweep(&[
            (50.0, 900.0, 0),
            (10.0, 1000.0, 40),
            (10.0, 1050.0, 3),
            (10.0, 1080.0, 3),
        ]);
        assert_eq!(
            report.picks(),
            [(names(&["cheapest"]), 1), (names(&["calmest"]), 2)]
        );
        // One run both cheapest and calmest is held out once.
        assert_eq!(
            sweep(&[(10.0, 1000.0, 0), (10.0, 1050.0, 3)]).picks(),
            [(names(&["cheapest", "calmest"]), 0)]
        );
        // None meets both: the nearest on each side are held out instead,
        // the least short within the cost goal (row 1 is as short as row 0
        // but flaps less; row 2 is shorter but over the cost) and the
        // cheapest within the under-provisioning goal (rows 3 and 4 are
        // within it; row 4 costs less).
        let near = sweep(&[
            (50.0, 1000.0, 9),
            (50.0, 1090.0, 2),
            (40.0, 1200.0, 0),
            (10.0, 1300.0, 0),
            (15.0, 1150.0, 4),
        ]);
        assert_eq!(
            near.picks(),
            [
                (names(&[LEAST_SHORT_WITHIN_COST]), 1),
                (names(&[CHEAPEST_WITHIN_UNDER]), 4)
            ]
        );
        // Held out with the picks: the rest of the front, cheapest first
        // (row 0 is the cheapest of all; row 3 the least short), and
        // `front` added to a pick on it.
        assert_eq!(
            near.held_out(),
            [
                (names(&[LEAST_SHORT_WITHIN_COST]), 1),
                (names(&[CHEAPEST_WITHIN_UNDER, FRONT]), 4),
                (names(&[FRONT]), 0),
                (names(&[FRONT]), 3),
            ]
        );
        assert_eq!(
            report.held_out(),
            [
                (names(&["cheapest", FRONT]), 1),
                (names(&["calmest"]), 2),
                (names(&[FRONT]), 0),
            ]
        );
        // Within neither goal: no pick, but the front is still held out.
        assert!(sweep(&[(50.0, 1200.0, 0)]).picks().is_empty());
        assert_eq!(
            sweep(&[(50.0, 1200.0, 0)]).held_out(),
            [(names(&[FRONT]), 0)]
        );
        // Within one only: that side's nearest alone.
        assert_eq!(
            sweep(&[(50.0, 1000.0, 0), (60.0, 900.0, 0)]).picks(),
            [(names(&[LEAST_SHORT_WITHIN_COST]), 0)]
        );

        // The held-out section shows each pick's own scores.
        report.holdout = Some(Holdout {
            split: "2026-01-02T00:00:00+00:00".into(),
            until: None,
            picks: vec![
                HeldOut {
                    picked_as: names(&["cheapest", FRONT]),
                    run: SweepRun::scored(
                        goals,
                        report.runs[1].settings.clone(),
                        with_flaps(25.0, 1000.0, 7),
                    ),
                },
                HeldOut {
                    picked_as: names(&[FRONT]),
                    run: SweepRun::scored(
                        goals,
                        report.runs[0].settings.clone(),
                        with_flaps(15.0, 950.0, 0),
                    ),
                },
            ],
        });
        let table = report.table();
        assert!(
            table.contains("Held out from 2026-01-02T00:00:00+00:00"),
            "{table}"
        );
        assert!(table.contains("0.250x"), "{table}");
        assert!(
            table.contains("0 of 1 picks still meet the goals"),
            "{table}"
        );
        // Row 0 missed the goals before the split and meets them after it.
        assert!(
            table.contains(
                "1 of the 2 settings on the front before the split meet the goals after it."
            ),
            "{table}"
        );
        assert!(table.contains("cheapest, front"), "{table}");

        // A second fold, picked again: each fold has its own section, then
        // how often each kind of pick met the goals across them.
        let mut folded = report.clone();
        if let Some(h) = folded.holdout.as_mut() {
            h.until = Some("2026-01-03T00:00:00+00:00".into());
        }
        folded.folds = vec![Holdout {
            split: "2026-01-03T00:00:00+00:00".into(),
            until: None,
            picks: vec![HeldOut {
                picked_as: names(&["cheapest", "calmest", FRONT]),
                run: SweepRun::scored(
                    goals,
                    folded.runs[1].settings.clone(),
                    with_flaps(15.0, 1000.0, 1),
                ),
            }],
        }];
        let table = folded.table();
        for want in [
            "Held out fold 1 of 2, from 2026-01-02T00:00:00+00:00 to 2026-01-03T00:00:00+00:00",
            "Held out fold 2 of 2, from 2026-01-03T00:00:00+00:00:",
            "Across the 2 folds:",
            "cheapest: met the goals in 1 of the 2 folds it was picked in",
            "calmest: met the goals in 1 of the 1 folds it was picked in",
            "front: 2 of 3 held-out rows met the goals",
        ] {
            assert!(table.contains(want), "{want}: {table}");
        }
        let back: SweepReport =
            serde_json::from_str(&serde_json::to_string(&folded).unwrap()).unwrap();
        assert_eq!(back, folded);
        let back: SweepReport =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back, report);
    }
}
