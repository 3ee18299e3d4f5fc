//! Parses a ScaledObject's `scalerMetadata` into a [`ScalerSpec`].
//!
//! Mirrors KEDA's typed-config conventions (`pkg/scalers/scalersconfig`):
//! camelCase keys, defaults for optional keys, values trimmed and empty values
//! treated as absent, and every problem reported together in KEDA's own
//! message shapes, joined by newlines as Go's `errors.Join` does.

use std::collections::{BTreeSet, HashMap};

use chrono::TimeDelta;

use super::duration::parse_duration;
use crate::domain::{Between, MetricKind, MetricSpec, Mode, ScalerSpec, ScalingRules, Seasonality};

/// Where KEDA looks parameters up; appears verbatim in its messages.
const ORDER: &str = "[triggerMetadata]";

/// Keys KEDA itself puts into an external trigger's metadata; they configure
/// KEDA's client, not foresight, so they are accepted and ignored.
pub const IGNORED_KEYS: [&str; 4] = ["scalerAddress", "enableTLS", "unsafeSsl", "tlsCertFile"];

/// Keys shared by every ScaledObject, with their defaults (documented in the README).
const COMMON_KEYS: &[&str] = &[
    "model",
    "minReplicaCount",
    "maxReplicaCount",
    "leadTime",
    "history",
    "step",
    "seasonality",
    "mode",
    "activationThreshold",
    "forecastQuantile",
    "forecastAnchor",
    "forecastBetweenSamples",
    "tolerance",
    "scaleUpTolerance",
    "hpaTolerance",
    "scaleUpPods",
    "scaleUpPercent",
    "scaleUpPeriod",
    "scaleDownStabilization",
    "scaleDownPods",
    "scaleDownPercent",
    "scaleDownPeriod",
    "scaleDownLookahead",
    "scaleDownReleaseSurplus",
    "scaleDownReleaseStabilization",
    "cooldown",
    "lastRemediation",
    "lagDrainTime",
    "latencyBreachDuration",
    "maxForecastMase",
    "shortMinutePrice",
    "flapPrice",
    "maxStaleness",
    // Read by remediation (a pre-deploy baseline), never scaled on.
    "errorRateQuery",
];

/// Largest training window in points: bounds fetch size and fit time.
const MAX_HISTORY_POINTS: i64 = 100_000;

/// Kubernetes' bound on an HPA scaling policy's `periodSeconds` (30 min),
/// for the rate periods that mirror it.
const HPA_MAX_PERIOD: TimeDelta = TimeDelta::minutes(30);

/// Kubernetes' bound on an HPA's `stabilizationWindowSeconds` (1 h), for
/// the windows that mirror it.
const HPA_MAX_STABILIZATION: TimeDelta = TimeDelta::hours(1);

/// A trigger's `maxReplicaCount` when its metadata has none (KEDA's own
/// default for a ScaledObject's).
pub(crate) const DEFAULT_MAX_REPLICAS: u32 = defaults::MAX_REPLICAS;

/// Default values of the optional keys, as written by users.
mod defaults {
    pub(super) const MIN_REPLICAS: u32 = 0;
    pub(super) const MAX_REPLICAS: u32 = 100;
    pub(super) const LEAD_TIME: &str = "2m";
    pub(super) const HISTORY: &str = "21d";
    pub(super) const STEP: &str = "1m";
    pub(super) const SEASONALITY: &str = "1d,1w";
    pub(super) const ACTIVATION_THRESHOLD: f64 = 0.0;
    pub(super) const FORECAST_QUANTILE: f64 = 0.9;
    pub(super) const MAX_STALENESS: &str = "5m";
}

/// The metadata did not describe a valid scaler; holds every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct MetadataError {
    /// One KEDA-shaped message per problem, in key order.
    pub problems: Vec<String>,
}

/// Every key foresight understands, sorted as KEDA would print them.
pub fn known_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = COMMON_KEYS.to_vec();
    for kind in MetricKind::ALL {
        keys.push(kind.query_key());
        keys.push(kind.target_key());
    }
    keys.sort_unstable();
    keys
}

/// KEDA resolves a `<key>FromEnv` parameter from the scale target's
/// environment and sends it to an external scaler under that name, with the
/// value resolved (and drops it when the variable is unset or empty). So a
/// known key written `<key>FromEnv` is read as `<key>`; both at once is a
/// problem, as KEDA reports for its own scalers.
fn resolve_from_env(meta: &HashMap<String, String>) -> (HashMap<String, String>, Vec<String>) {
    let known: BTreeSet<&str> = known_keys().into_iter().collect();
    let mut out = meta.clone();
    let mut problems = Vec::new();
    let mut from_env: Vec<(&String, &str)> = meta
        .keys()
        .filter_map(|k| Some((k, k.strip_suffix("FromEnv")?)))
        .filter(|(_, base)| known.contains(base))
        .collect();
    from_env.sort();
    for (key, base) in from_env {
        let value = out.remove(key.as_str()).unwrap_or_default();
        if meta.get(base).is_some_and(|v| !v.trim().is_empty()) {
            problems.push(format!(
                "parameter {base:?} is set both directly and through {key:?} in {ORDER}; use one"
            ));
            continue;
        }
        out.insert(base.to_string(), value);
    }
    (out, problems)
}

/// Parses and validates `scalerMetadata`, reporting all problems at once.
pub fn parse_metadata(meta: &HashMap<String, String>) -> Result<ScalerSpec, MetadataError> {
    // A named preset fills in the keys the ScaledObject leaves unset; the
    // result is validated like any metadata.
    let (meta, env_problems) = resolve_from_env(meta);
    let (merged, preset_problem) = match super::presets::apply(&meta) {
        Ok(m) => (m, None),
        Err(e) => (meta.clone(), Some(e)),
    };
    let mut p = Parser {
        meta: &merged,
        problems: env_problems.into_iter().chain(preset_problem).collect(),
    };

    let metrics = p.metrics();
    let min_replicas = p.integer("minReplicaCount", defaults::MIN_REPLICAS, 0);
    let max_replicas = p.integer("maxReplicaCount", defaults::MAX_REPLICAS, 1);
    let lead_time = p.duration("leadTime", defaults::LEAD_TIME, TimeDelta::hours(1));
    let history = p.duration("history", defaults::HISTORY, TimeDelta::days(366));
    let step = p.duration("step", defaults::STEP, TimeDelta::days(1));
    let seasonality = p.seasonality();
    let mode = p.mode();
    let activation_threshold =
        p.number("activationThreshold", defaults::ACTIVATION_THRESHOLD, |v| {
            (v >= 0.0).then_some(()).ok_or("must be 0 or greater")
        });
    let forecast_quantile = p.number("forecastQuantile", defaults::FORECAST_QUANTILE, |v| {
        (v > 0.5 && v < 1.0)
            .then_some(())
            .ok_or("must be between 0.5 and 1 (exclusive)")
    });

    let forecast_anchor = p.forecast_anchor();
    let forecast_between = p.forecast_between();
    let rules = p.rules();
    let max_staleness = p.duration("maxStaleness", defaults::MAX_STALENESS, TimeDelta::days(1));
    let last_remediation = p.time("lastRemediation");

    if let (Some(min), Some(max)) = (min_replicas, max_replicas)
        && min > max
    {
        p.problems.push(format!(
            "minReplicaCount ({min}) must be less than or equal to maxReplicaCount ({max})"
        ));
    }
    if let (Some(step), Some(history)) = (step, history)
        && history.num_seconds() / step.num_seconds().max(1) > MAX_HISTORY_POINTS
    {
        p.problems.push(format!(
            "history ({}) at step ({}) is {} points; at most {MAX_HISTORY_POINTS} are supported: raise step or shorten history",
            p.raw("history").unwrap_or(defaults::HISTORY),
            p.raw("step").unwrap_or(defaults::STEP),
            history.num_seconds() / step.num_seconds().max(1)
        ));
    }
    if let (Some(step), Some(history)) = (step, history)
        && history < step * 10
    {
        p.problems.push(format!(
            "history ({}) must cover at least 10 steps of step ({})",
            p.raw("history").unwrap_or(defaults::HISTORY),
            p.raw("step").unwrap_or(defaults::STEP)
        ));
    }
    if mode == Some(Mode::Holding) {
        if let (Some(step), Some(lead)) = (step, lead_time)
            && step <= lead
        {
            p.problems.push(format!(
                "mode holding decides when each sample lands and leadTime before the next, so step ({}) must be longer than leadTime ({}): set step to the metric's sample period, e.g. 5m",
                p.raw("step").unwrap_or(defaults::STEP),
                p.raw("leadTime").unwrap_or(defaults::LEAD_TIME)
            ));
        }
        if !metrics.is_empty() && !metrics.iter().any(|m| m.kind.is_additive()) {
            p.problems.push(
                "mode holding plans replica needs, so it needs an additive signal (queueDepth, consumerLag or connections), not only p99 latency"
                    .to_string(),
            );
        }
    }
    p.unknown_keys();

    if !p.problems.is_empty() {
        return Err(MetadataError {
            problems: p.problems,
        });
    }
    // Every `None` above pushed a problem, so these are all present.
    match (
        min_replicas,
        max_replicas,
        lead_time,
        history,
        step,
        seasonality,
        mode,
        activation_threshold,
        forecast_quantile,
        forecast_anchor,
        forecast_between,
        rules,
    ) {
        (
            Some(min_replicas),
            Some(max_replicas),
            Some(lead_time),
            Some(history),
            Some(step),
            Some(seasonality),
            Some(mode),
            Some(activation_threshold),
            Some(forecast_quantile),
            Some(forecast_anchor),
            Some(forecast_between),
            Some(rules),
        ) => Ok(ScalerSpec {
            metrics,
            min_replicas,
            max_replicas,
            lead_time,
            history,
            step,
            seasonality,
            mode,
            activation_threshold,
            forecast_quantile,
            forecast_anchor,
            forecast_between,
            rules,
            // `None` pushed a problem, and problems returned above.
            max_staleness: max_staleness.unwrap_or(TimeDelta::minutes(5)),
            last_remediation,
        }),
        _ => Err(MetadataError {
            problems: vec![
                "internal error: metadata parsed without problems but incomplete".into(),
            ],
        }),
    }
}

/// Accumulates problems while reading keys.
struct Parser<'a> {
    /// The raw metadata from KEDA.
    meta: &'a HashMap<String, String>,
    /// Problems found so far, in the order keys are visited.
    problems: Vec<String>,
}

impl Parser<'_> {
    /// The trimmed value of `key`, treating empty as absent like KEDA does.
    fn raw(&self, key: &str) -> Option<&str> {
        self.meta
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn missing(&mut self, key: &str) {
        self.problems
            .push(format!("missing required parameter {key:?} in {ORDER}"));
    }

    fn unable(&mut self, key: &str, value: &str, why: impl std::fmt::Display) {
        self.problems.push(format!(
            "unable to set param {key:?} value {value:?}: {why}"
        ));
    }

    fn metrics(&mut self) -> Vec<MetricSpec> {
        let mut metrics = Vec::new();
        for kind in MetricKind::ALL {
            let (qk, tk) = (kind.query_key(), kind.target_key());
            let query = self.raw(qk).map(str::to_string);
            let target_raw = self.raw(tk).map(str::to_string);
            match (query, target_raw) {
                (None, None) => {}
                (Some(_), None) => self.missing(tk),
                (None, Some(_)) => self.missing(qk),
                (Some(query), Some(t)) => match t.parse::<f64>() {
                    Ok(target) if target.is_finite() && target > 0.0 => metrics.push(MetricSpec {
                        kind,
                        query,
                        target,
                    }),
                    Ok(_) => self.unable(tk, &t, "must be a number greater than 0"),
                    Err(_) => self.unable(tk, &t, "expected a number, e.g. 100 or 0.25"),
                },
            }
        }
        let any_named = MetricKind::ALL
            .iter()
            .any(|k| self.raw(k.query_key()).is_some() || self.raw(k.target_key()).is_some());
        if !any_named {
            let queries: Vec<&str> = MetricKind::ALL.iter().map(|k| k.query_key()).collect();
            self.problems.push(format!(
                "at least one signal is required: set one of [{}] together with its matching ...Target parameter",
                queries.join(" ")
            ));
        }
        metrics
    }

    fn integer(&mut self, key: &str, default: u32, min: u32) -> Option<u32> {
        let Some(raw) = self.raw(key).map(str::to_string) else {
            return Some(default);
        };
        match raw.parse::<u32>() {
            Ok(v) if v >= min => Some(v),
            Ok(_) => {
                self.unable(key, &raw, format!("must be at least {min}"));
                None
            }
            Err(_) => {
                let what = if key.ends_with("Percent") {
                    "expected a whole percentage, e.g. 50"
                } else {
                    "expected a whole number of replicas"
                };
                self.unable(key, &raw, what);
                None
            }
        }
    }

    fn number(
        &mut self,
        key: &str,
        default: f64,
        check: impl Fn(f64) -> Result<(), &'static str>,
    ) -> Option<f64> {
        let Some(raw) = self.raw(key).map(str::to_string) else {
            return Some(default);
        };
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() => match check(v) {
                Ok(()) => Some(v),
                Err(why) => {
                    self.unable(key, &raw, why);
                    None
                }
            },
            _ => {
                self.unable(key, &raw, "expected a number");
                None
            }
        }
    }

    /// The scaling rules; every key optional, defaults from [`ScalingRules`].
    fn rules(&mut self) -> Option<ScalingRules> {
        let d = ScalingRules::default();
        let secs = |t: TimeDelta| format!("{}s", t.num_seconds());
        let tolerance = self.number("tolerance", d.tolerance, |v| {
            (0.0..1.0)
                .contains(&v)
                .then_some(())
                .ok_or("must be at least 0 and below 1")
        });
        let ratio = |v: f64| {
            (0.0..1.0)
                .contains(&v)
                .then_some(())
                .ok_or("must be at least 0 and below 1")
        };
        let scale_up_tolerance = self.number("scaleUpTolerance", d.scale_up_tolerance, ratio);
        let hpa_tolerance = self.number("hpaTolerance", d.hpa_tolerance, ratio);
        let scale_up_pods = self.integer("scaleUpPods", d.scale_up_pods, 0);
        let scale_up_percent = self.integer("scaleUpPercent", d.scale_up_percent, 0);
        let scale_up_period =
            self.duration("scaleUpPeriod", &secs(d.scale_up_period), HPA_MAX_PERIOD);
        let scale_down_stabilization = self.duration_or_zero(
            "scaleDownStabilization",
            d.scale_down_stabilization,
            HPA_MAX_STABILIZATION,
        );
        let scale_down_pods = self.integer("scaleDownPods", d.scale_down_pods, 0);
        let scale_down_percent = self.integer("scaleDownPercent", d.scale_down_percent, 0);
        let scale_down_period = self.duration(
            "scaleDownPeriod",
            &secs(d.scale_down_period),
            HPA_MAX_PERIOD,
        );
        let scale_down_lookahead = self.duration_or_zero(
            "scaleDownLookahead",
            d.scale_down_lookahead,
            TimeDelta::days(1),
        );
        let scale_down_release_surplus = self.number(
            "scaleDownReleaseSurplus",
            d.scale_down_release_surplus,
            ratio,
        );
        let scale_down_release_stabilization = self.duration_or_zero(
            "scaleDownReleaseStabilization",
            d.scale_down_release_stabilization,
            HPA_MAX_STABILIZATION,
        );
        let cooldown = self.duration_or_zero("cooldown", d.cooldown, TimeDelta::days(1));
        let lag_drain_time =
            self.duration("lagDrainTime", &secs(d.lag_drain_time), TimeDelta::days(1));
        let latency_breach_duration = self.duration(
            "latencyBreachDuration",
            &secs(d.latency_breach_duration),
            TimeDelta::hours(1),
        );
        let max_forecast_mase = self.number("maxForecastMase", d.max_forecast_mase, |v| {
            (v > 0.0).then_some(()).ok_or("must be greater than 0")
        });
        let short_minute_price = self.number("shortMinutePrice", d.short_minute_price, |v| {
            (v >= 1.0).then_some(()).ok_or(
                "must be at least 1: below it a minute short costs less than running the average need through it, and the plan would leave the workload short",
            )
        });
        let flap_price = self.number("flapPrice", d.flap_price, |v| {
            (v >= 0.0).then_some(()).ok_or("must be 0 or greater")
        });
        if scale_up_pods == Some(0) && scale_up_percent == Some(0) {
            self.problems.push(
                "scale-up is disabled: set scaleUpPods or scaleUpPercent above 0".to_string(),
            );
        }
        // A bad value is reported and the checks go on, so that every
        // problem comes back at once.
        let scale_up_percent = match scale_up_percent {
            Some(p) if p > 1000 => {
                self.unable("scaleUpPercent", &p.to_string(), "must be at most 1000");
                None
            }
            p => p,
        };
        // The release window is a shorter stabilisation: one set longer than
        // the full window is a mistake to report, while the default shrinks
        // to fit a short full window (or a release that is off) silently.
        let scale_down_release_stabilization =
            match (scale_down_release_stabilization, scale_down_stabilization) {
                (Some(release), Some(window)) if release > window => {
                    match self
                        .raw("scaleDownReleaseStabilization")
                        .map(str::to_string)
                    {
                        Some(raw) => {
                            self.unable(
                                "scaleDownReleaseStabilization",
                                &raw,
                                "must not exceed scaleDownStabilization",
                            );
                            None
                        }
                        None => Some(window),
                    }
                }
                (release, _) => release,
            };
        let scale_down_percent = match scale_down_percent {
            Some(p) if p > 100 => {
                self.unable("scaleDownPercent", &p.to_string(), "must be at most 100");
                None
            }
            p => p,
        };
        Some(ScalingRules {
            tolerance: tolerance?,
            scale_up_tolerance: scale_up_tolerance?,
            hpa_tolerance: hpa_tolerance?,
            scale_up_pods: scale_up_pods?,
            scale_up_percent: scale_up_percent?,
            scale_up_period: scale_up_period?,
            scale_down_stabilization: scale_down_stabilization?,
            scale_down_pods: scale_down_pods?,
            scale_down_percent: scale_down_percent?,
            scale_down_period: scale_down_period?,
            scale_down_lookahead: scale_down_lookahead?,
            scale_down_release_surplus: scale_down_release_surplus?,
            scale_down_release_stabilization: scale_down_release_stabilization?,
            cooldown: cooldown?,
            lag_drain_time: lag_drain_time?,
            latency_breach_duration: latency_breach_duration?,
            max_forecast_mase: max_forecast_mase?,
            short_minute_price: short_minute_price?,
            flap_price: flap_price?,
        })
    }

    /// A duration where `0s` means "off", at most `max`.
    fn duration_or_zero(
        &mut self,
        key: &str,
        default: TimeDelta,
        max: TimeDelta,
    ) -> Option<TimeDelta> {
        let Some(raw) = self.raw(key).map(str::to_string) else {
            return Some(default);
        };
        match parse_duration(&raw) {
            Ok(d) => self.at_most(key, &raw, d, max),
            Err(super::DurationError::Zero { .. }) => Some(TimeDelta::zero()),
            Err(e) => {
                self.unable(key, &raw, e);
                None
            }
        }
    }

    /// A positive duration, at most `max`.
    fn duration(&mut self, key: &str, default: &str, max: TimeDelta) -> Option<TimeDelta> {
        let raw = self.raw(key).unwrap_or(default).to_string();
        match parse_duration(&raw) {
            Ok(d) => self.at_most(key, &raw, d, max),
            Err(e) => {
                self.unable(key, &raw, e);
                None
            }
        }
    }

    /// `d` if it is at most `max`. The bounds keep one ScaledObject from
    /// costing the server without limit: the windows the policy keeps are
    /// replayed every tick, and a lead time or history is data to read and
    /// train on.
    fn at_most(&mut self, key: &str, raw: &str, d: TimeDelta, max: TimeDelta) -> Option<TimeDelta> {
        if d <= max {
            return Some(d);
        }
        self.unable(
            key,
            raw,
            format!("must be at most {}", crate::domain::format_delta(max)),
        );
        None
    }

    fn seasonality(&mut self) -> Option<Seasonality> {
        let raw = self
            .raw("seasonality")
            .unwrap_or(defaults::SEASONALITY)
            .to_string();
        if raw.eq_ignore_ascii_case("auto") {
            return Some(Seasonality::Auto);
        }
        if raw.eq_ignore_ascii_case("none") {
            return Some(Seasonality::Periods(Vec::new()));
        }
        let mut periods = Vec::new();
        for part in raw.split(',') {
            match parse_duration(part) {
                Ok(d) => periods.push(d),
                Err(e) => {
                    self.unable(
                        "seasonality",
                        &raw,
                        format!("{e}; or use \"auto\" or \"none\""),
                    );
                    return None;
                }
            }
        }
        periods.sort();
        periods.dedup();
        Some(Seasonality::Periods(periods))
    }

    /// A key that takes one of a few spellings; the first is the default.
    fn one_of<T: Copy>(&mut self, key: &str, choices: &[(&str, T)]) -> Option<T> {
        let raw = self.raw(key);
        let chosen = match raw {
            None => choices.first(),
            Some(v) => choices.iter().find(|(name, _)| *name == v),
        };
        if let Some((_, value)) = chosen {
            return Some(*value);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let other = raw.unwrap_or_default().to_string();
        self.problems.push(format!(
            "parameter {key:?} value {other:?} must be one of [{}]",
            names.join(" ")
        ));
        None
    }

    fn mode(&mut self) -> Option<Mode> {
        self.one_of(
            "mode",
            &[
                (Mode::NAMES[0], Mode::Predictive),
                (Mode::NAMES[1], Mode::Reactive),
                (Mode::NAMES[2], Mode::ForecastOnly),
                (Mode::NAMES[3], Mode::Holding),
            ],
        )
    }

    /// An optional RFC 3339 time; absent is `None`, and so is a bad value
    /// once it is reported.
    fn time(&mut self, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let raw = self.raw(key)?.to_string();
        match chrono::DateTime::parse_from_rfc3339(&raw) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                // chrono's reasons ("premature end of input") would not
                // help; the expected shape does.
                self.unable(
                    key,
                    &raw,
                    "must be an RFC 3339 time such as 2026-12-07T10:00:00Z",
                );
                None
            }
        }
    }

    fn forecast_anchor(&mut self) -> Option<bool> {
        self.one_of("forecastAnchor", &[("latest", true), ("off", false)])
    }

    fn forecast_between(&mut self) -> Option<Between> {
        self.one_of(
            "forecastBetweenSamples",
            &[
                (Between::NAMES[0], Between::Linear),
                (Between::NAMES[1], Between::Hold),
            ],
        )
    }

    fn unknown_keys(&mut self) {
        let known: BTreeSet<&str> = known_keys().into_iter().collect();
        let mut unknown: Vec<&String> = self
            .meta
            .keys()
            .filter(|k| !known.contains(k.as_str()) && !IGNORED_KEYS.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if unknown.is_empty() {
            return;
        }
        let valid = known.into_iter().collect::<Vec<_>>().join(" ");
        // The list once: repeated for each of 50 unknown keys, it made a
        // message of 29 kB, past gRPC's 16 kB limit on error metadata, so
        // KEDA saw RESOURCE_EXHAUSTED instead of the problems.
        for (i, key) in unknown.into_iter().enumerate() {
            self.problems.push(if i == 0 {
                format!("unknown parameter {key:?} in {ORDER}; valid parameters are [{valid}]")
            } else {
                format!("unknown parameter {key:?} in {ORDER}")
            });
        }
    }
}
