//! The backtest's results: a fixed JSON schema, and the terminal table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Everything a backtest measured. The field names are a stable schema
/// (`report.json`) that notebooks and other tools read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was replayed and how.
    pub input: InputInfo,
    /// Scored simulation ticks.
    pub steps: usize,
    /// Length of one tick.
    pub step_seconds: f64,
    /// Scores per policy, on the same ticks and demand.
    pub policies: Policies,
    /// Accuracy of the forecasts foresight's policy used, at the lead time.
    pub forecast: ForecastScore,
    /// How foresight's decisions were made over the scored ticks.
    pub decisions: DecisionStats,
    /// What happened to the trainings.
    pub training: TrainingStats,
    /// Anything the reader should know: resampling, fallbacks, failures.
    pub notes: Vec<String>,
}

/// The three policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policies {
    /// foresight's policy, as configured, behind the HPA's tolerance.
    pub foresight: PolicyScore,
    /// A reactive HPA with Kubernetes' default behaviour.
    pub hpa: PolicyScore,
    /// Perfect foresight: the cheapest schedule with no shortfall.
    pub oracle: PolicyScore,
    /// foresight's policy, limits and tolerance included, fed the recorded
    /// future as a forecast with no band: what a better forecaster alone
    /// could reach. The gap from here to `foresight` is forecast error; from
    /// here to `oracle`, the policy's own limits.
    pub perfect_forecast: PolicyScore,
}

/// One policy's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyScore {
    /// Minutes in which demand (plus backlog, for queue-like signals)
    /// exceeded ready capacity.
    pub under_provisioned_minutes: f64,
    /// Pod-hours paid for, ready or starting.
    pub replica_hours: f64,
    /// Changes of the replica count.
    pub scale_events: u32,
    /// Flapping: changes that reverse the direction of the previous change
    /// less than 5 minutes after it (up then down, or down then up), each a
    /// pod started or stopped for nothing. A slow walk down in single pods
    /// is many scale events and no flaps.
    pub flaps: u32,
    /// Largest replica count.
    pub max_replicas: u32,
    /// 95th percentile over ticks of the work not served: the carried-over
    /// backlog for queue depth and consumer lag, the demand above capacity
    /// for connections. In the signal's unit.
    pub p95_backlog: f64,
}

/// Forecast accuracy on the replayed data, for the forecast each decision
/// saw: the value at `s` predicted by the model in force at `s - leadTime`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastScore {
    /// Mean absolute error scaled by each model's in-sample seasonal-naive
    /// error.
    pub mase: Option<f64>,
    /// Symmetric MAPE, in percent (0 to 200).
    pub smape: Option<f64>,
    /// Share of actual values inside the forecast's central interval.
    pub interval_coverage: Option<f64>,
    /// Nominal coverage of that interval (`2 × forecastQuantile − 1`).
    pub interval_level: f64,
    /// Data points scored.
    pub points: usize,
    /// Share of actual values inside the *anchored* interval, the one the
    /// policy uses where the forecast's errors persist: corrected by the
    /// value observed at `s - leadTime`, at the same nominal level. `None`
    /// where no model had an anchor.
    pub anchored_coverage: Option<f64>,
    /// Data points the anchored interval was scored on.
    pub anchored_points: usize,
}

/// How foresight's policy decided, counted over scored ticks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DecisionStats {
    /// Ticks by prediction status (`used`, `gated`, `unavailable`, ...).
    pub prediction: BTreeMap<String, usize>,
    /// Ticks by the limiter that shaped the count.
    pub limiter: BTreeMap<String, usize>,
    /// Ticks where the HPA's tolerance swallowed foresight's change.
    pub swallowed_by_hpa_tolerance: usize,
}

/// Trainings of the replay.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainingStats {
    /// Boundaries trained.
    pub attempted: usize,
    /// Boundaries whose training failed (the previous model stayed).
    pub failed: usize,
    /// Chosen models, by name.
    pub models: BTreeMap<String, usize>,
}

/// What was replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    /// Where the series came from.
    pub source: String,
    /// The series id.
    pub series: String,
    /// The signal it was replayed as.
    pub signal: String,
    /// Per-replica target.
    pub target_per_pod: f64,
    /// Pod start-up delay.
    pub startup_seconds: i64,
    /// Retrain interval.
    pub retrain_seconds: i64,
    /// Training window.
    pub history_seconds: i64,
    /// Data step of the series.
    pub data_step_seconds: i64,
    /// First replayed instant (RFC 3339).
    pub from: String,
    /// First scored instant, after the warm-up.
    pub scored_from: String,
    /// Last replayed instant.
    pub to: String,
    /// The ScaledObject metadata the policy ran with.
    pub metadata: BTreeMap<String, String>,
    /// The HPA tolerance applied between foresight and the Deployment.
    pub downstream_tolerance: f64,
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else if a > 0.0 {
        "inf".into()
    } else {
        "-".into()
    }
}

impl Report {
    /// The terminal table: each policy's figures, and foresight's ratios to
    /// the HPA and to the oracle.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let i = &self.input;
        let _ = writeln!(
            s,
            "foresight backtest: {} series {} as {} (target {} per pod), start-up {}s, retrain {}s, history {}s",
            i.source,
            i.series,
            i.signal,
            i.target_per_pod,
            i.startup_seconds,
            i.retrain_seconds,
            i.history_seconds
        );
        let _ = writeln!(
            s,
            "scored {} to {}: {} ticks of {}s\n",
            i.scored_from, i.to, self.steps, self.step_seconds
        );
        let _ = writeln!(
            s,
            "{:<10} {:>12} {:>14} {:>13} {:>7} {:>12} {:>12}",
            "policy",
            "under-prov",
            "replica-hours",
            "scale events",
            "flaps",
            "max replicas",
            "p95 backlog"
        );
        let _ = writeln!(
            s,
            "{:<10} {:>12} {:>14} {:>13} {:>7} {:>12} {:>12}",
            "", "(minutes)", "", "", "", "", ""
        );
        let p = &self.policies;
        for (name, sc) in [
            ("foresight", &p.foresight),
            ("hpa", &p.hpa),
            ("oracle", &p.oracle),
            ("perfect fc", &p.perfect_forecast),
        ] {
            let _ = writeln!(
                s,
                "{:<10} {:>12.1} {:>14.1} {:>13} {:>7} {:>12} {:>12.1}",
                name,
                sc.under_provisioned_minutes,
                sc.replica_hours,
                sc.scale_events,
                sc.flaps,
                sc.max_replicas,
                sc.p95_backlog
            );
        }
        let (f, h, o) = (&p.foresight, &p.hpa, &p.oracle);
        let _ = writeln!(
            s,
            "\nforesight / hpa:    under-provisioned {}  replica-hours {}  scale events {}  flaps {} vs {}",
            ratio(f.under_provisioned_minutes, h.under_provisioned_minutes),
            ratio(f.replica_hours, h.replica_hours),
            ratio(f64::from(f.scale_events), f64::from(h.scale_events)),
            f.flaps,
            h.flaps,
        );
        let _ = writeln!(
            s,
            "foresight / oracle: replica-hours {}  (oracle under-provisioned {:.1} min)",
            ratio(f.replica_hours, o.replica_hours),
            o.under_provisioned_minutes
        );
        let pf = &p.perfect_forecast;
        let _ = writeln!(
            s,
            "perfect forecast / hpa: under-provisioned {}  replica-hours {}  (the policy's limits with no forecast error)",
            ratio(pf.under_provisioned_minutes, h.under_provisioned_minutes),
            ratio(pf.replica_hours, h.replica_hours),
        );
        let fc = &self.forecast;
        let opt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
        let _ = writeln!(
            s,
            "forecast at lead time: MASE {}  sMAPE {}  coverage {} (nominal {:.0}%, {} points)",
            opt(fc.mase, 3),
            opt(fc.smape, 2),
            fc.interval_coverage
                .map_or("-".to_string(), |c| format!("{:.1}%", c * 100.0)),
            fc.interval_level * 100.0,
            fc.points
        );
        if let Some(c) = fc.anchored_coverage {
            let _ = writeln!(
                s,
                "anchored on the latest observation: coverage {:.1}% ({} points)",
                c * 100.0,
                fc.anchored_points
            );
        }
        let join = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "prediction: {}", join(&self.decisions.prediction));
        let _ = writeln!(s, "limiters: {}", join(&self.decisions.limiter));
        let _ = writeln!(
            s,
            "trainings: {} ({} failed); models: {}",
            self.training.attempted,
            self.training.failed,
            join(&self.training.models)
        );
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}
