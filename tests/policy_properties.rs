//! Properties of the policy that must hold for any input sequence.

use chrono::{DateTime, TimeDelta, Utc};
use foresight::domain::{Anchor, Between, Decision, Forecast, MetricKind, Mode, ScalingRules};
use foresight::policy::{Behavior, ForecastInput, MetricInput, Observation, PolicyState, decide};
use proptest::prelude::*;

const TICK: i64 = 15;

fn t(k: usize) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + k as i64 * TICK, 0).unwrap()
}

/// One tick: queue depth (maybe missing), lag (maybe missing), p99.
type Tick = (Option<f64>, Option<f64>, f64);

fn tick_strategy() -> impl Strategy<Value = Tick> {
    (
        prop::option::weighted(0.9, 0.0..20_000.0f64),
        prop::option::weighted(0.9, 0.0..50_000.0f64),
        0.0..1_000.0f64,
    )
}

fn behavior_strategy() -> impl Strategy<Value = Behavior> {
    (
        0u32..5,
        1u32..60,
        prop::sample::select(vec![Mode::Predictive, Mode::Reactive, Mode::ForecastOnly]),
        0u32..3,
        0u32..60,
        prop::option::weighted(0.5, (0.05..0.9f64, 0i64..=20)),
        prop::sample::select(vec![Between::Linear, Between::Hold]),
    )
        .prop_map(
            |(min, span, mode, down_pods, down_pct, release, between)| Behavior {
                min_replicas: min,
                max_replicas: min + span,
                mode,
                activation_threshold: 0.0,
                lead_time: TimeDelta::minutes(2),
                forecast_quantile: 0.9,
                forecast_anchor: true,
                forecast_between: between,
                rules: ScalingRules {
                    scale_down_pods: down_pods,
                    scale_down_percent: down_pct,
                    scale_down_release_surplus: release.map_or(0.0, |(surplus, _)| surplus),
                    scale_down_release_stabilization: TimeDelta::seconds(
                        release.map_or(60, |(_, ticks)| ticks * TICK),
                    ),
                    ..ScalingRules::default()
                },
                max_latency_step_ratio: 2.0,
            },
        )
}

/// A forecast covering the whole run (up to 400 ticks), so prediction takes
/// part, with or without an anchor.
#[derive(Debug, Clone)]
struct Fc {
    forecast: Forecast,
    anchor: Option<Anchor>,
}

fn fc_strategy() -> impl Strategy<Value = Fc> {
    // Levels mostly within what maxReplicaCount × target (at most 6,500)
    // can carry, so that predictions are not all clamped to the bound.
    (
        0.0..8_000.0f64,
        prop::option::of((0.1..0.99f64, 0.0..1_500.0f64)),
    )
        .prop_map(|(level, anchor)| Fc {
            forecast: Forecast {
                start: t(0),
                step: TimeDelta::seconds(TICK),
                point: vec![level; 400],
                lower: vec![level * 0.8; 400],
                upper: vec![level * 1.2; 400],
                level: 0.8,
            },
            // Widths growing with the steps ahead, as calibrated ones do.
            anchor: anchor.map(|(phi, w)| Anchor {
                phi,
                half_width: (1..=12).map(|h| w * (1.0 + f64::from(h) / 10.0)).collect(),
            }),
        })
}

fn observation<'a>(tick: &Tick, f: &'a Fc) -> Observation<'a> {
    let fi = Some(ForecastInput {
        forecast: &f.forecast,
        scale: 100.0,
        validation_mase: Some(0.5),
        anchor: f.anchor.as_ref(),
        need: None,
        plan: None,
    });
    Observation {
        metrics: vec![
            MetricInput {
                kind: MetricKind::QueueDepth,
                target: 100.0,
                observed: tick.0,
                forecast: fi,
                forecast_note: None,
            },
            MetricInput {
                kind: MetricKind::ConsumerLag,
                target: 1_000.0,
                observed: tick.1,
                forecast: fi,
                forecast_note: None,
            },
            MetricInput {
                kind: MetricKind::P99Latency,
                target: 250.0,
                observed: Some(tick.2),
                forecast: None,
                forecast_note: None,
            },
        ],
        last_remediation: None,
    }
}

/// Runs the sequence; ticks where the policy had nothing to hold are skipped.
fn run(b: &Behavior, ticks: &[Tick], f: &Fc) -> Vec<(usize, Decision)> {
    let mut state = PolicyState::default();
    let mut out = Vec::new();
    for (k, tick) in ticks.iter().enumerate() {
        if let Ok((d, next)) = decide(b, &observation(tick, f), &state, t(k)) {
            state = next;
            out.push((k, d));
        }
    }
    out
}

/// Rules whose per-period allowance is often narrower than the HPA's
/// smallest step, with load held at each level for a while, so that widened
/// steps happen in both directions.
fn paced_strategy() -> impl Strategy<Value = (Behavior, Vec<f64>)> {
    (
        (0u32..3, 10u32..80),
        (1u32..3, prop::sample::select(vec![0u32, 5, 10]), 1i64..8),
        (0u32..3, prop::sample::select(vec![0u32, 5, 12]), 1i64..25),
        (0i64..25, prop::sample::select(vec![0.05, 0.1, 0.2])),
        prop::collection::vec((0.0..8_000.0f64, 1usize..40), 1..12),
    )
        .prop_map(
            |(
                (min, span),
                (up_pods, up_pct, up_ticks),
                (down_pods, down_pct, down_ticks),
                (window, tol),
                levels,
            )| {
                let b = Behavior {
                    min_replicas: min,
                    max_replicas: min + span,
                    mode: Mode::Reactive,
                    activation_threshold: 0.0,
                    lead_time: TimeDelta::minutes(2),
                    forecast_quantile: 0.9,
                    forecast_anchor: true,
                    forecast_between: Between::Linear,
                    rules: ScalingRules {
                        hpa_tolerance: tol,
                        scale_up_pods: up_pods,
                        scale_up_percent: up_pct,
                        scale_up_period: TimeDelta::seconds(up_ticks * TICK),
                        scale_down_pods: down_pods,
                        scale_down_percent: down_pct,
                        scale_down_period: TimeDelta::seconds(down_ticks * TICK),
                        scale_down_stabilization: TimeDelta::seconds(window * TICK),
                        scale_down_lookahead: TimeDelta::zero(),
                        ..ScalingRules::default()
                    },
                    max_latency_step_ratio: 2.0,
                };
                let load = levels
                    .into_iter()
                    .flat_map(|(v, n)| std::iter::repeat_n(v, n))
                    .collect();
                (b, load)
            },
        )
}

/// Checks one direction's rate: a change within what one period allows,
/// counted from the period's start, or a widened one (the HPA's smallest
/// step, said in the notes) with as many quiet periods on each side as it
/// needs.
fn check_pace(
    b: &Behavior,
    decisions: &[(usize, Decision)],
    up: bool,
) -> Result<(), TestCaseError> {
    let r = &b.rules;
    let period = if up {
        r.scale_up_period
    } else {
        r.scale_down_period
    }
    .num_seconds()
        / TICK;
    let allowance = |from: u32| -> i64 {
        let from = f64::from(from);
        if up {
            i64::from(r.scale_up_pods).max(
                (from * (1.0 + f64::from(r.scale_up_percent) / 100.0)).ceil() as i64 - from as i64,
            )
        } else {
            i64::from(r.scale_down_pods)
                .max((from * f64::from(r.scale_down_percent) / 100.0).floor() as i64)
        }
    };
    // Signed so that this direction's changes are positive.
    let change = |j: usize| -> i64 {
        let d = i64::from(decisions[j].1.desired_replicas)
            - i64::from(decisions[j - 1].1.desired_replicas);
        if up { d } else { -d }
    };
    for i in 1..decisions.len() {
        let (k, d) = (decisions[i].0 as i64, &decisions[i].1);
        let step = change(i);
        if step <= 0 {
            continue;
        }
        let prev = decisions[i - 1].1.desired_replicas;
        if d.notes
            .iter()
            .any(|n| n.contains("the HPA ignores smaller steps"))
        {
            let tol = r.hpa_tolerance;
            let smallest = if up {
                ((f64::from(prev) * (1.0 + tol)).floor() as i64 + 1).min(i64::from(b.max_replicas))
                    - i64::from(prev)
            } else {
                i64::from(prev) - ((f64::from(prev) * (1.0 - tol)).ceil() as i64 - 1)
            };
            prop_assert_eq!(
                step,
                smallest,
                "a widened step is the HPA's smallest (up: {})",
                up
            );
            let per_period = allowance(prev);
            prop_assert!(
                per_period > 0 && step > per_period,
                "widened {} with {} allowed per period (up: {})",
                step,
                per_period,
                up
            );
            let n = (step + per_period - 1) / per_period;
            for (j, (kj, _)) in decisions.iter().enumerate().skip(1) {
                let apart = (*kj as i64 - k).abs();
                prop_assert!(
                    j == i || apart >= n * period || change(j) <= 0,
                    "another change {} ticks from a widened step of {} ({} periods of {} ticks, up: {})",
                    apart,
                    step,
                    n,
                    period,
                    up
                );
            }
            continue;
        }
        let start_idx = decisions
            .iter()
            .position(|(j, _)| k - (*j as i64) < period)
            .unwrap_or(0);
        let start = decisions[start_idx.max(1) - 1].1.desired_replicas;
        let moved = if up {
            i64::from(d.desired_replicas) - i64::from(start)
        } else {
            i64::from(start) - i64::from(d.desired_replicas)
        };
        prop_assert!(
            moved <= allowance(start),
            "moved {} within a period from {}; allowed {} (up: {})",
            moved,
            start,
            allowance(start),
            up
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn stays_within_bounds(b in behavior_strategy(), ticks in prop::collection::vec(tick_strategy(), 1..80), f in fc_strategy()) {
        for (_, d) in run(&b, &ticks, &f) {
            prop_assert!((b.min_replicas..=b.max_replicas).contains(&d.desired_replicas), "{} not in [{}, {}]", d.desired_replicas, b.min_replicas, b.max_replicas);
        }
    }

    #[test]
    fn scale_down_respects_stabilisation_and_rate(b in behavior_strategy(), ticks in prop::collection::vec(tick_strategy(), 1..120), f in fc_strategy()) {
        let decisions = run(&b, &ticks, &f);
        let window = b.rules.scale_down_stabilization.num_seconds() / TICK;
        for i in 1..decisions.len() {
            let (k, d) = &decisions[i];
            let prev = decisions[i - 1].1.desired_replicas;
            if d.desired_replicas >= prev {
                continue;
            }
            let highest = |span: i64| decisions.iter()
                .filter(|(j, _)| *j <= *k && (*k as i64 - *j as i64) <= span)
                .map(|(_, d)| d.recommendation)
                .max()
                .unwrap_or(0)
                .min(b.max_replicas);
            // Never below the highest recommendation within the window,
            // unless a large surplus is released: then never below the
            // highest within the release window, and the decision says so.
            let released = d.released_early.is_some();
            prop_assert_eq!(released, d.notes.iter().any(|n| n.contains("released after")), "the note and the field agree");
            prop_assert!(d.released_early.is_none_or(|n| n == prev - d.desired_replicas), "released {:?} of {} → {}", d.released_early, prev, d.desired_replicas);
            prop_assert!(!released || b.rules.scale_down_release_surplus > 0.0, "released with release off");
            let floor = if released {
                highest(b.rules.scale_down_release_stabilization.num_seconds() / TICK)
            } else {
                highest(window)
            };
            prop_assert!(d.desired_replicas >= floor, "stepped to {} under window max {} (released: {})", d.desired_replicas, floor, released);
            if released {
                // The surplus over the short window's highest was at least
                // the configured share of the count before.
                let surplus = f64::from(prev.saturating_sub(floor));
                prop_assert!(surplus >= b.rules.scale_down_release_surplus * f64::from(prev), "released {} of {} at share {}", surplus, prev, b.rules.scale_down_release_surplus);
            }
        }
        // Rate limits, including steps widened for the HPA's tolerance.
        check_pace(&b, &decisions, false)?;
    }

    #[test]
    fn missing_data_never_lowers_replicas(b in behavior_strategy(), ticks in prop::collection::vec(tick_strategy(), 1..80), f in fc_strategy()) {
        let decisions = run(&b, &ticks, &f);
        for w in decisions.windows(2) {
            let ((_, before), (k, after)) = (&w[0], &w[1]);
            let tick = &ticks[*k];
            if tick.0.is_none() || tick.1.is_none() {
                prop_assert!(after.desired_replicas >= before.desired_replicas, "dropped {} → {} with missing data", before.desired_replicas, after.desired_replicas);
                // Nor does it turn a workload holding replicas inactive,
                // which KEDA would scale to zero.
                prop_assert!(after.active || before.desired_replicas == 0, "inactive at {} replicas with missing data", before.desired_replicas);
            }
        }
    }

    #[test]
    fn monotone_in_load(b in behavior_strategy(), prefix in prop::collection::vec(tick_strategy(), 0..40), last in tick_strategy(), extra in (0.0..5_000.0f64, 0.0..20_000.0f64, 0.0..500.0f64), f in fc_strategy()) {
        let mut state = PolicyState::default();
        for (k, tick) in prefix.iter().enumerate() {
            if let Ok((_, next)) = decide(&b, &observation(tick, &f), &state, t(k)) {
                state = next;
            }
        }
        let more: Tick = (last.0.map(|v| v + extra.0), last.1.map(|v| v + extra.1), last.2 + extra.2);
        let now = t(prefix.len());
        let low = decide(&b, &observation(&last, &f), &state, now);
        let high = decide(&b, &observation(&more, &f), &state, now);
        if let (Ok((low, _)), Ok((high, _))) = (low, high) {
            prop_assert!(high.desired_replicas >= low.desired_replicas, "more load gave fewer replicas: {} < {}", high.desired_replicas, low.desired_replicas);
        }
    }

    #[test]
    fn anchored_prediction_is_monotone_in_the_observation(b in behavior_strategy(), v in 0.0..6_000.0f64, extra in 0.0..3_000.0f64, f in fc_strategy()) {
        // The forecast corrected by the observation: more observed load
        // never lowers the forecast maximum or the predictive requirement.
        let one = |observed: f64| {
            let m = MetricInput {
                kind: MetricKind::QueueDepth,
                target: 100.0,
                observed: Some(observed),
                forecast: Some(ForecastInput {
                    forecast: &f.forecast,
                    scale: 100.0,
                    validation_mase: Some(0.5),
                    anchor: f.anchor.as_ref(),
                    need: None,
                    plan: None,
                }),
                forecast_note: None,
            };
            let obs = Observation { metrics: vec![m], last_remediation: None };
            decide(&b, &obs, &PolicyState::default(), t(3)).unwrap().0
        };
        let (low, high) = (one(v), one(v + extra));
        let (lf, hf) = (low.readings[0].forecast_max, high.readings[0].forecast_max);
        prop_assert!(hf >= lf, "forecast max fell from {lf:?} to {hf:?}");
        prop_assert!(high.predictive >= low.predictive, "{:?} < {:?}", high.predictive, low.predictive);
        // The anchored window includes what is observed now.
        if f.anchor.is_some() && b.mode != Mode::Reactive {
            prop_assert!(hf.is_some_and(|m| m >= v + extra), "{hf:?} below the observation {}", v + extra);
        }
    }

    #[test]
    fn same_inputs_same_outputs(b in behavior_strategy(), ticks in prop::collection::vec(tick_strategy(), 1..60), f in fc_strategy()) {
        prop_assert_eq!(run(&b, &ticks, &f), run(&b, &ticks, &f));
    }

    #[test]
    fn widened_steps_keep_the_configured_rate_on_average((b, load) in paced_strategy()) {
        let ticks: Vec<Tick> = load.iter().map(|v| (Some(*v), Some(0.0), 0.0)).collect();
        let f = Fc { forecast: Forecast { start: t(0), step: TimeDelta::seconds(TICK), point: vec![], lower: vec![], upper: vec![], level: 0.8 }, anchor: None };
        let decisions = run(&b, &ticks, &f);
        check_pace(&b, &decisions, true)?;
        check_pace(&b, &decisions, false)?;
    }
}
