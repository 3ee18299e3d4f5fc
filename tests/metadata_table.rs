//! Table test: ScaledObject metadata → the exact errors KEDA users will see.
//!
//! Shapes follow KEDA's typed config (`pkg/scalers/scalersconfig`):
//! `missing required parameter %q in [triggerMetadata]`,
//! `parameter %q value %q must be one of [...]`,
//! `unable to set param %q value %q: ...`, joined by newlines.

use std::collections::HashMap;

use chrono::TimeDelta;
use foresight::config::{known_keys, parse_metadata};
use foresight::domain::{MetricKind, Mode, Seasonality};

fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One row: a case name, the metadata, and every error expected, in order.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<String>);

fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
    match parse_metadata(&meta(pairs)) {
        Ok(spec) => panic!("expected errors for {pairs:?}, got {spec:?}"),
        Err(e) => e.problems,
    }
}

#[test]
fn error_table() {
    let valid_keys = known_keys().join(" ");
    let table: Vec<Case> = vec![
        (
            "no signal at all",
            vec![("minReplicaCount", "1")],
            vec!["at least one signal is required: set one of [queueDepthQuery consumerLagQuery connectionsQuery p99LatencyQuery] together with its matching ...Target parameter".into()],
        ),
        (
            "query without target",
            vec![("queueDepthQuery", "sum(q)")],
            vec![r#"missing required parameter "queueDepthTarget" in [triggerMetadata]"#.into()],
        ),
        (
            "target without query",
            vec![("consumerLagTarget", "100")],
            vec![r#"missing required parameter "consumerLagQuery" in [triggerMetadata]"#.into()],
        ),
        (
            "blank values count as missing, as in KEDA",
            vec![("queueDepthQuery", "sum(q)"), ("queueDepthTarget", "  ")],
            vec![r#"missing required parameter "queueDepthTarget" in [triggerMetadata]"#.into()],
        ),
        (
            "unknown preset, with the other problems",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("model", "webscale"), ("mode", "x")],
            vec![
                r#"parameter "model" value "webscale" must be one of [daily-short-retention noisy-cost-aware seasonal-cost-aware web-daily-weekly]"#.into(),
                r#"parameter "mode" value "x" must be one of [predictive reactive forecastOnly holding]"#.into(),
            ],
        ),
        (
            "a preset's value is checked like the user's: history too short for its step",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("model", "web-daily-weekly"), ("history", "20m")],
            vec!["history (20m) must cover at least 10 steps of step (5m)".into()],
        ),
        (
            "bad mode",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("mode", "x")],
            vec![r#"parameter "mode" value "x" must be one of [predictive reactive forecastOnly holding]"#.into()],
        ),
        (
            "mode holding with samples closer than leadTime (the default step is 1m)",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("mode", "holding")],
            vec!["mode holding decides when each sample lands and leadTime before the next, so step (1m) must be longer than leadTime (2m): set step to the metric's sample period, e.g. 5m".into()],
        ),
        (
            "mode holding on latency alone, and negative prices",
            vec![
                ("p99LatencyQuery", "q"), ("p99LatencyTarget", "0.2"), ("mode", "holding"), ("step", "5m"),
                ("shortMinutePrice", "-1"), ("flapPrice", "x"),
            ],
            vec![
                r#"unable to set param "shortMinutePrice" value "-1": must be at least 1: below it a minute short costs less than running the average need through it, and the plan would leave the workload short"#.into(),
                r#"unable to set param "flapPrice" value "x": expected a number"#.into(),
                "mode holding plans replica needs, so it needs an additive signal (queueDepth, consumerLag or connections), not only p99 latency".into(),
            ],
        ),
        (
            "bad forecastAnchor",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("forecastAnchor", "true")],
            vec![r#"parameter "forecastAnchor" value "true" must be one of [latest off]"#.into()],
        ),
        (
            "bad forecastBetweenSamples",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "10"),
                ("forecastBetweenSamples", "step"),
            ],
            vec![
                r#"parameter "forecastBetweenSamples" value "step" must be one of [linear hold]"#
                    .into(),
            ],
        ),
        (
            "non-numeric and non-positive targets",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "lots"),
                ("connectionsQuery", "c"),
                ("connectionsTarget", "0"),
            ],
            vec![
                r#"unable to set param "queueDepthTarget" value "lots": expected a number, e.g. 100 or 0.25"#.into(),
                r#"unable to set param "connectionsTarget" value "0": must be a number greater than 0"#.into(),
            ],
        ),
        (
            "unknown duration unit",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("leadTime", "5x")],
            vec![r#"unable to set param "leadTime" value "5x": invalid duration "5x": unknown unit "x" (use s, m, h, d or w) (write durations like 90s, 15m, 2h, 14d or 1w)"#.into()],
        ),
        (
            // Bounds keep one ScaledObject from crashing or swamping the
            // server (the windows are replayed every tick); the rate
            // periods and windows take Kubernetes' own HPA bounds.
            "durations past their bounds, every one reported",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "10"),
                ("leadTime", "7000000w"),
                ("history", "400d"),
                ("step", "2d"),
                ("maxStaleness", "25h"),
                ("scaleUpPeriod", "31m"),
                ("scaleDownStabilization", "61m"),
                ("scaleDownPeriod", "1h"),
                ("scaleDownLookahead", "2d"),
                ("cooldown", "2d"),
                ("lagDrainTime", "2d"),
                ("latencyBreachDuration", "2h"),
                ("seasonality", "521w"),
            ],
            vec![
                r#"unable to set param "leadTime" value "7000000w": invalid duration "7000000w": longer than 520w (write durations like 90s, 15m, 2h, 14d or 1w)"#.into(),
                r#"unable to set param "history" value "400d": must be at most 366d"#.into(),
                r#"unable to set param "step" value "2d": must be at most 1d"#.into(),
                r#"unable to set param "seasonality" value "521w": invalid duration "521w": longer than 520w (write durations like 90s, 15m, 2h, 14d or 1w); or use "auto" or "none""#.into(),
                r#"unable to set param "scaleUpPeriod" value "31m": must be at most 30m"#.into(),
                r#"unable to set param "scaleDownStabilization" value "61m": must be at most 1h"#.into(),
                r#"unable to set param "scaleDownPeriod" value "1h": must be at most 30m"#.into(),
                r#"unable to set param "scaleDownLookahead" value "2d": must be at most 1d"#.into(),
                r#"unable to set param "cooldown" value "2d": must be at most 1d"#.into(),
                r#"unable to set param "lagDrainTime" value "2d": must be at most 1d"#.into(),
                r#"unable to set param "latencyBreachDuration" value "2h": must be at most 1h"#.into(),
                r#"unable to set param "maxStaleness" value "25h": must be at most 1d"#.into(),
            ],
        ),
        (
            "lastRemediation is an RFC 3339 time",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("lastRemediation", "yesterday")],
            vec![r#"unable to set param "lastRemediation" value "yesterday": must be an RFC 3339 time such as 2026-12-07T10:00:00Z"#.into()],
        ),
        (
            "a lead time longer than an hour",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("leadTime", "61m")],
            vec![r#"unable to set param "leadTime" value "61m": must be at most 1h"#.into()],
        ),
        (
            "a bad percentage hides no other problem",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "10"),
                ("scaleUpPercent", "2000"),
                ("scaleDownPercent", "200"),
                ("scaleDownReleaseStabilization", "10m"),
            ],
            vec![
                r#"unable to set param "scaleUpPercent" value "2000": must be at most 1000"#.into(),
                r#"unable to set param "scaleDownReleaseStabilization" value "10m": must not exceed scaleDownStabilization"#.into(),
                r#"unable to set param "scaleDownPercent" value "200": must be at most 100"#.into(),
            ],
        ),
        (
            "a percentage is a whole number of percent, not of replicas",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("scaleUpPercent", "50.5")],
            vec![r#"unable to set param "scaleUpPercent" value "50.5": expected a whole percentage, e.g. 50"#.into()],
        ),
        (
            "maxStaleness is a duration",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("maxStaleness", "5min")],
            vec![r#"unable to set param "maxStaleness" value "5min": invalid duration "5min": unknown unit "min" (use s, m, h, d or w) (write durations like 90s, 15m, 2h, 14d or 1w)"#.into()],
        ),
        (
            "replica bounds",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "10"),
                ("minReplicaCount", "5"),
                ("maxReplicaCount", "2"),
            ],
            vec!["minReplicaCount (5) must be less than or equal to maxReplicaCount (2)".into()],
        ),
        (
            "zero max and negative min",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "10"),
                ("minReplicaCount", "-1"),
                ("maxReplicaCount", "0"),
            ],
            vec![
                r#"unable to set param "minReplicaCount" value "-1": expected a whole number of replicas"#.into(),
                r#"unable to set param "maxReplicaCount" value "0": must be at least 1"#.into(),
            ],
        ),
        (
            "bad seasonality",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("seasonality", "1d,weekly")],
            vec![r#"unable to set param "seasonality" value "1d,weekly": invalid duration "weekly": expected a whole number at "weekly" (write durations like 90s, 15m, 2h, 14d or 1w); or use "auto" or "none""#.into()],
        ),
        (
            "quantile and activation out of range",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "10"),
                ("forecastQuantile", "0.3"),
                ("activationThreshold", "-4"),
            ],
            vec![
                r#"unable to set param "activationThreshold" value "-4": must be 0 or greater"#.into(),
                r#"unable to set param "forecastQuantile" value "0.3": must be between 0.5 and 1 (exclusive)"#.into(),
            ],
        ),
        (
            "surplus release out of range, and a release window beyond the full one",
            vec![
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "10"),
                ("scaleDownReleaseSurplus", "1.5"),
                ("scaleDownStabilization", "2m"),
                ("scaleDownReleaseStabilization", "3m"),
            ],
            vec![
                r#"unable to set param "scaleDownReleaseSurplus" value "1.5": must be at least 0 and below 1"#.into(),
                r#"unable to set param "scaleDownReleaseStabilization" value "3m": must not exceed scaleDownStabilization"#.into(),
            ],
        ),
        (
            "history too short for the step",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("history", "5m"), ("step", "1m")],
            vec!["history (5m) must cover at least 10 steps of step (1m)".into()],
        ),
        (
            "history too long for the step",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("history", "21d"), ("step", "1s")],
            vec!["history (21d) at step (1s) is 1814400 points; at most 100000 are supported: raise step or shorten history".into()],
        ),
        (
            "unknown keys list the valid ones",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("queueDepthTargt", "10")],
            vec![format!(r#"unknown parameter "queueDepthTargt" in [triggerMetadata]; valid parameters are [{valid_keys}]"#)],
        ),
        (
            "the valid keys are listed once, however many are unknown",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("bogus1", "1"), ("bogus2", "1")],
            vec![
                format!(r#"unknown parameter "bogus1" in [triggerMetadata]; valid parameters are [{valid_keys}]"#),
                r#"unknown parameter "bogus2" in [triggerMetadata]"#.into(),
            ],
        ),
        (
            "a key and its FromEnv form at once",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("queueDepthTargetFromEnv", "20")],
            vec![r#"parameter "queueDepthTarget" is set both directly and through "queueDepthTargetFromEnv" in [triggerMetadata]; use one"#.into()],
        ),
        (
            "an unknown key's FromEnv form is unknown",
            vec![("queueDepthQuery", "q"), ("queueDepthTarget", "10"), ("bogusFromEnv", "1")],
            vec![format!(r#"unknown parameter "bogusFromEnv" in [triggerMetadata]; valid parameters are [{valid_keys}]"#)],
        ),
        (
            "everything wrong at once is reported at once",
            vec![
                ("queueDepthQuery", "q"),
                ("mode", "fast"),
                ("leadTime", "soon"),
                ("bogus", "1"),
            ],
            vec![
                r#"missing required parameter "queueDepthTarget" in [triggerMetadata]"#.into(),
                r#"unable to set param "leadTime" value "soon": invalid duration "soon": expected a whole number at "soon" (write durations like 90s, 15m, 2h, 14d or 1w)"#.into(),
                r#"parameter "mode" value "fast" must be one of [predictive reactive forecastOnly holding]"#.into(),
                format!(r#"unknown parameter "bogus" in [triggerMetadata]; valid parameters are [{valid_keys}]"#),
            ],
        ),
    ];
    for (name, pairs, want) in table {
        assert_eq!(errors(&pairs), want, "case: {name}");
    }
}

#[test]
fn the_joined_message_has_one_problem_per_line() {
    let err = parse_metadata(&meta(&[("queueDepthQuery", "q"), ("mode", "x")])).unwrap_err();
    assert_eq!(err.to_string().lines().count(), 2);
}

#[test]
fn defaults_and_keda_keys() {
    let spec = parse_metadata(&meta(&[
        ("queueDepthQuery", "sum(rabbitmq_queue_messages)"),
        ("queueDepthTarget", "100"),
        ("scalerAddress", "foresight.keda:9090"),
        ("enableTLS", "false"),
        ("unsafeSsl", "false"),
    ]))
    .unwrap();
    assert_eq!(spec.metrics.len(), 1);
    assert_eq!(spec.metrics[0].kind, MetricKind::QueueDepth);
    assert_eq!(spec.metrics[0].target, 100.0);
    assert_eq!((spec.min_replicas, spec.max_replicas), (0, 100));
    assert_eq!(spec.lead_time, TimeDelta::minutes(2));
    assert_eq!(spec.history, TimeDelta::days(21));
    assert_eq!(spec.step, TimeDelta::minutes(1));
    assert_eq!(spec.max_staleness, TimeDelta::minutes(5));
    assert_eq!(
        spec.seasonality,
        Seasonality::Periods(vec![TimeDelta::days(1), TimeDelta::weeks(1)])
    );
    assert_eq!(spec.mode, Mode::Predictive);
    assert_eq!(spec.activation_threshold, 0.0);
    assert_eq!(spec.forecast_quantile, 0.9);
    assert_eq!(
        (spec.rules.short_minute_price, spec.rules.flap_price),
        (4.0, 64.0)
    );
    assert_eq!(spec.rules.cooldown, TimeDelta::minutes(10));
    assert_eq!(spec.last_remediation, None);
    let stamped = parse_metadata(&meta(&[
        ("queueDepthQuery", "q"),
        ("queueDepthTarget", "100"),
        ("lastRemediation", "2026-12-07T11:00:00+01:00"),
    ]))
    .unwrap();
    assert_eq!(
        stamped.last_remediation.map(|t| t.to_rfc3339()),
        Some("2026-12-07T10:00:00+00:00".to_string())
    );
}

#[test]
fn holding_mode_and_its_prices() {
    let spec = parse_metadata(&meta(&[
        ("connectionsQuery", "c"),
        ("connectionsTarget", "10"),
        ("mode", "holding"),
        ("step", "5m"),
        ("shortMinutePrice", "3.85"),
        ("flapPrice", "0.9"),
    ]))
    .unwrap();
    assert_eq!(spec.mode, Mode::Holding);
    assert_eq!(
        (spec.rules.short_minute_price, spec.rules.flap_price),
        (3.85, 0.9)
    );
}

#[test]
fn every_signal_and_every_common_key() {
    let spec = parse_metadata(&meta(&[
        ("p99LatencyQuery", "histogram_quantile(0.99, x)"),
        ("p99LatencyTarget", "0.25"),
        ("connectionsQuery", "c"),
        ("connectionsTarget", "500"),
        ("consumerLagQuery", "l"),
        ("consumerLagTarget", "1000"),
        ("queueDepthQuery", "q"),
        ("queueDepthTarget", "20"),
        ("minReplicaCount", "2"),
        ("maxReplicaCount", "40"),
        ("leadTime", "90s"),
        ("history", "14d"),
        ("step", "30s"),
        ("seasonality", "auto"),
        ("mode", "forecastOnly"),
        ("activationThreshold", "5"),
        ("forecastQuantile", "0.95"),
    ]))
    .unwrap();
    let kinds: Vec<MetricKind> = spec.metrics.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, MetricKind::ALL.to_vec());
    assert_eq!((spec.min_replicas, spec.max_replicas), (2, 40));
    assert_eq!(spec.lead_time, TimeDelta::seconds(90));
    assert_eq!(spec.step, TimeDelta::seconds(30));
    assert_eq!(spec.seasonality, Seasonality::Auto);
    assert_eq!(spec.mode, Mode::ForecastOnly);
    assert_eq!(spec.forecast_quantile, 0.95);
}

#[test]
fn presets_fill_unset_keys_and_explicit_keys_win() {
    let base = [("connectionsQuery", "q"), ("connectionsTarget", "100")];
    let plain = parse_metadata(&meta(&base)).unwrap();
    let web = parse_metadata(&meta(&[base[0], base[1], ("model", "web-daily-weekly")])).unwrap();
    assert_eq!(web.step, TimeDelta::minutes(5));
    assert_eq!(web.history, TimeDelta::days(21));
    assert_ne!(web.step, plain.step);
    let noisy = parse_metadata(&meta(&[
        base[0],
        base[1],
        ("model", "noisy-cost-aware"),
        ("forecastQuantile", "0.8"),
    ]))
    .unwrap();
    assert_eq!(
        noisy.forecast_quantile, 0.8,
        "the ScaledObject's own key wins"
    );
    assert_eq!(
        noisy.seasonality,
        Seasonality::Periods(vec![TimeDelta::days(1), TimeDelta::weeks(1)])
    );
    assert_eq!(noisy.rules.scale_down_percent, 100);
    let short = parse_metadata(&meta(&[
        base[0],
        base[1],
        ("model", "daily-short-retention"),
    ]))
    .unwrap();
    assert_eq!(short.history, TimeDelta::days(7));
}

#[test]
fn every_shipped_preset_parses_and_uses_only_metadata_keys() {
    let presets = foresight::config::presets().expect("every preset file parses");
    assert!(presets.len() >= 3);
    let known = known_keys();
    let on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    let mut compiled: Vec<String> = presets.keys().map(|k| k.to_string()).collect();
    let mut on_disk = on_disk;
    on_disk.sort();
    compiled.sort();
    assert_eq!(
        compiled, on_disk,
        "src/config/presets.rs must list every models/*.toml"
    );
    for (name, p) in presets {
        assert!(!p.description.is_empty(), "{name}");
        for key in p.metadata.keys() {
            assert!(known.contains(&key.as_str()), "{name}: unknown key {key}");
            assert!(
                !key.ends_with("Query") && !key.ends_with("Target") && key != "model",
                "{name}: a preset must not set {key}"
            );
        }
        parse_metadata(&meta(&[
            ("connectionsQuery", "q"),
            ("connectionsTarget", "1"),
            ("model", name),
        ]))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The release window defaults to 1m but never forces itself on a shorter
/// full window: a ScaledObject with `scaleDownStabilization: 30s` (or 0s)
/// and no release keys parses, with the release window shrunk to fit. Only
/// a release window the user sets longer than the full one is an error
/// (`error_table`).
#[test]
fn a_short_stabilisation_without_release_keys_still_parses() {
    for (stab, want) in [("30s", 30), ("0s", 0), ("5m", 60)] {
        let spec = parse_metadata(&meta(&[
            ("queueDepthQuery", "q"),
            ("queueDepthTarget", "10"),
            ("scaleDownStabilization", stab),
        ]))
        .unwrap_or_else(|e| panic!("scaleDownStabilization {stab}: {e}"));
        assert_eq!(spec.rules.scale_down_release_surplus, 0.0);
        assert_eq!(
            spec.rules.scale_down_release_stabilization,
            TimeDelta::seconds(want),
            "scaleDownStabilization {stab}"
        );
    }
}

#[test]
fn keys_keda_resolved_from_the_environment_are_read_as_the_key() {
    // KEDA sends `<key>FromEnv` with the value it resolved from the scale
    // target's environment; it was refused as an unknown parameter.
    let spec = parse_metadata(&meta(&[
        ("queueDepthQueryFromEnv", "sum(rabbitmq_queue_messages)"),
        ("queueDepthTargetFromEnv", "40"),
        ("maxReplicaCountFromEnv", "12"),
    ]))
    .unwrap();
    assert_eq!(spec.metrics[0].query, "sum(rabbitmq_queue_messages)");
    assert_eq!(spec.metrics[0].target, 40.0);
    assert_eq!(spec.max_replicas, 12);
}
