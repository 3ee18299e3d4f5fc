//! The policy's documented behaviour, tick by tick.
//!
//! The HPA table reproduces the Kubernetes HPA algorithm for the reactive
//! path (kubernetes.io "Horizontal Pod Autoscaling": desired =
//! ceil(value / target) for an AverageValue target; tolerance 0.1; default
//! scale-up policies Pods 4 and Percent 100 per 15 s with selectPolicy Max;
//! scale-down stabilisation 300 s then Percent 100 per 15 s). Expected
//! counts were worked out by hand from those rules; the arithmetic is in the
//! comment of each row.

use chrono::{DateTime, TimeDelta, Utc};
use foresight::domain::{
    Anchor, Between, Decision, Forecast, Limiter, MetricKind, Mode, Prediction, ScalingRules,
    Signal,
};
use foresight::policy::{Behavior, ForecastInput, MetricInput, Observation, PolicyState, decide};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn behavior(mode: Mode) -> Behavior {
    Behavior {
        min_replicas: 1,
        max_replicas: 100,
        mode,
        activation_threshold: 0.0,
        lead_time: TimeDelta::minutes(2),
        forecast_quantile: 0.9,
        forecast_anchor: true,
        forecast_between: Between::Linear,
        // The mechanics are tested without the downstream HPA's tolerance;
        // `hpa_tolerance_*` tests cover it.
        rules: ScalingRules {
            hpa_tolerance: 0.0,
            ..ScalingRules::default()
        },
        max_latency_step_ratio: 2.0,
    }
}

/// The HPA's default behaviour, expressed as foresight rules.
fn hpa_rules() -> ScalingRules {
    ScalingRules {
        scale_up_tolerance: 0.1,
        hpa_tolerance: 0.0,
        scale_down_pods: 0,
        scale_down_percent: 100,
        scale_down_period: TimeDelta::seconds(15),
        scale_down_lookahead: TimeDelta::zero(),
        ..ScalingRules::default()
    }
}

fn input(kind: MetricKind, target: f64, observed: Option<f64>) -> MetricInput<'static> {
    MetricInput {
        kind,
        target,
        observed,
        forecast: None,
        forecast_note: None,
    }
}

fn obs(metrics: Vec<MetricInput<'_>>) -> Observation<'_> {
    Observation {
        metrics,
        last_remediation: None,
    }
}

/// Runs a sequence of (seconds, value) for one queue-depth signal.
fn decisions(b: &Behavior, seq: &[(i64, Option<f64>)]) -> Vec<Decision> {
    let mut state = PolicyState::default();
    seq.iter()
        .map(|(s, v)| {
            let (d, next) = decide(
                b,
                &obs(vec![input(MetricKind::QueueDepth, 100.0, *v)]),
                &state,
                t(*s),
            )
            .unwrap();
            state = next;
            d
        })
        .collect()
}

/// The served counts and limiters of `decisions`.
fn run(b: &Behavior, seq: &[(i64, Option<f64>)]) -> Vec<(u32, Limiter)> {
    decisions(b, seq)
        .into_iter()
        .map(|d| (d.desired_replicas, d.limiter))
        .collect()
}

#[test]
fn reactive_path_reproduces_the_hpa() {
    let b = Behavior {
        rules: hpa_rules(),
        ..behavior(Mode::Reactive)
    };
    #[rustfmt::skip]
    let table: Vec<(i64, f64, u32, Limiter, &str)> = vec![
        (0,   100.0,  1,  Limiter::None,          "ceil(100/100) = 1"),
        (15,  1000.0, 5,  Limiter::ScaleUpRate,   "want 10; from 1: max(1+4, 1*2) = 5"),
        (30,  1000.0, 10, Limiter::None,          "want 10; from 5: max(9, 10) = 10"),
        (45,  1050.0, 10, Limiter::None,          "ratio 1050/(100*10) = 1.05 within 0.1: stay"),
        (60,  1200.0, 12, Limiter::None,          "ratio 1.2: ceil(12) = 12, limit max(14, 20)"),
        (75,  300.0,  12, Limiter::Stabilization, "want 3; highest in 300 s window is 12"),
        (360, 300.0,  12, Limiter::Stabilization, "t=60's 12 is exactly 300 s old: still in window"),
        (375, 300.0,  3,  Limiter::None,          "window now holds only 3s; 100% per 15 s allows it"),
        (390, 290.0,  3,  Limiter::None,          "ratio 290/300 = 0.97 within tolerance"),
        (405, 3000.0, 7,  Limiter::ScaleUpRate,   "want 30; from 3: max(3+4, 6) = 7"),
        (420, 3000.0, 14, Limiter::ScaleUpRate,   "want 30; from 7: max(11, 14) = 14"),
        (435, 3000.0, 28, Limiter::ScaleUpRate,   "want 30; from 14: max(18, 28) = 28"),
        (450, 3000.0, 28, Limiter::None,          "ratio 3000/(100*28) = 1.07 within tolerance: stay"),
        (465, 0.0,    28, Limiter::Stabilization, "want ceil(0) = 0, clamped to min 1; window holds 28"),
    ];
    let seq: Vec<(i64, Option<f64>)> = table.iter().map(|(s, v, ..)| (*s, Some(*v))).collect();
    let got = run(&b, &seq);
    for ((s, v, want, limiter, why), (got, got_limiter)) in table.iter().zip(got) {
        assert_eq!(
            (got, got_limiter),
            (*want, *limiter),
            "t={s} value={v}: {why}"
        );
    }
}

#[test]
fn foresight_scales_down_slower_than_the_hpa() {
    // Defaults: 300 s stabilisation, then one pod per 5 minutes.
    let b = behavior(Mode::Reactive);
    let mut seq = vec![(0, Some(1000.0))];
    seq.extend((1..=80).map(|k| (k * 15, Some(100.0))));
    let got = run(&b, &seq);
    assert_eq!(got[0].0, 10);
    assert!(
        got[1..=20].iter().all(|(r, _)| *r == 10),
        "held through the window"
    );
    assert_eq!(
        got[21],
        (9, Limiter::ScaleDownRate),
        "first step after 315 s"
    );
    assert!(
        got[22..=40].iter().all(|(r, _)| *r == 9),
        "one pod per 5 minutes"
    );
    assert_eq!(got[41].0, 8);
}

#[test]
fn scale_down_percentage_is_an_alternative_to_pods() {
    let rules = ScalingRules {
        scale_down_percent: 50,
        scale_down_stabilization: TimeDelta::zero(),
        ..ScalingRules::default()
    };
    let b = Behavior {
        rules,
        ..behavior(Mode::Reactive)
    };
    let got = run(
        &b,
        &[(0, Some(2000.0)), (15, Some(100.0)), (30, Some(100.0))],
    );
    // From 20: max(1 pod, 50% of 20 = 10) → 10; then the period is used up.
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![20, 10, 10]
    );
}

#[test]
fn a_large_surplus_is_released_after_the_short_window_a_small_one_is_held() {
    // 300 s stabilisation, but surpluses of at least 40% of the count go
    // after 60 s; scale-down itself is not rate limited here.
    let b = Behavior {
        rules: ScalingRules {
            hpa_tolerance: 0.0,
            scale_down_percent: 100,
            scale_down_release_surplus: 0.4,
            scale_down_release_stabilization: TimeDelta::seconds(60),
            ..ScalingRules::default()
        },
        ..behavior(Mode::Reactive)
    };
    let mut state = PolicyState::default();
    let mut step = |s: i64, v: f64| {
        let (d, next) = decide(
            &b,
            &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(v))]),
            &state,
            t(s),
        )
        .unwrap();
        state = next;
        d
    };
    assert_eq!(step(0, 1000.0).desired_replicas, 10);
    // Need falls to 5: a surplus of 5 of 10 (50%). Within 60 s of the 10
    // it is held by the short window too.
    let d = step(60, 500.0);
    assert_eq!(
        (d.desired_replicas, d.limiter),
        (10, Limiter::Stabilization)
    );
    // 75 s on, the short window holds only 5s: released, and said so.
    let d = step(75, 500.0);
    assert_eq!((d.desired_replicas, d.limiter), (5, Limiter::None));
    assert_eq!(d.released_early, Some(5));
    assert!(
        d.notes
            .iter()
            .any(|n| n
                == "a surplus of 5 pods is released after 60s, not the full stabilisation window"),
        "{:?}",
        d.notes
    );
    // From 5, a need of 4 is a surplus of 20%: the full 300 s window holds
    // it until the last 5 is more than 300 s old.
    let d = step(90, 400.0);
    assert_eq!((d.desired_replicas, d.limiter), (5, Limiter::Stabilization));
    let d = step(375, 400.0);
    assert_eq!((d.desired_replicas, d.limiter), (5, Limiter::Stabilization));
    assert!(
        d.notes.iter().all(|n| !n.contains("released")),
        "{:?}",
        d.notes
    );
    assert_eq!(d.released_early, None);
    let d = step(390, 400.0);
    assert_eq!((d.desired_replicas, d.limiter), (4, Limiter::None));
}

#[test]
fn missing_data_holds() {
    let b = behavior(Mode::Reactive);
    let got = run(&b, &[(0, Some(1000.0)), (400, None), (800, None)]);
    assert_eq!(got[1], (10, Limiter::StaleData));
    assert_eq!(got[2], (10, Limiter::StaleData));
    let mut state = PolicyState::default();
    let err = decide(
        &b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, None)]),
        &state,
        t(0),
    );
    assert!(
        err.is_err(),
        "no data and no earlier decision: nothing to hold"
    );
    state = decide(
        &b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(1.0))]),
        &state,
        t(0),
    )
    .unwrap()
    .1;
    assert_eq!(state.current(), Some(1));
    // Held, the workload stays active: inactive with `minReplicaCount: 0`,
    // KEDA would scale it to zero on no data at all.
    let (held, _) = decide(
        &b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, None)]),
        &state,
        t(15),
    )
    .unwrap();
    assert_eq!(
        (held.desired_replicas, held.limiter, held.active),
        (1, Limiter::StaleData, true)
    );
}

fn ramp_forecast(start: i64, values: Vec<f64>) -> Forecast {
    Forecast {
        start: t(start),
        step: TimeDelta::minutes(1),
        lower: values.iter().map(|v| v * 0.9).collect(),
        upper: values.iter().map(|v| v * 1.1).collect(),
        point: values,
        level: 0.8,
    }
}

fn with_forecast<'a>(
    observed: f64,
    f: &'a Forecast,
    validation_mase: Option<f64>,
) -> Vec<MetricInput<'a>> {
    vec![MetricInput {
        kind: MetricKind::QueueDepth,
        target: 100.0,
        observed: Some(observed),
        forecast: Some(ForecastInput {
            forecast: f,
            scale: 50.0,
            validation_mase,
            anchor: None,
            need: None,
            plan: None,
        }),
        forecast_note: None,
    }]
}

/// Like `with_forecast`, validated (MASE 0.5), with an anchor if given.
fn with_anchor<'a>(
    observed: f64,
    f: &'a Forecast,
    anchor: Option<&'a Anchor>,
) -> Vec<MetricInput<'a>> {
    let mut m = with_forecast(observed, f, Some(0.5));
    if let Some(fc) = m[0].forecast.as_mut() {
        fc.anchor = anchor;
    }
    m
}

#[test]
fn prediction_scales_up_before_the_load_arrives() {
    // Load 500 now, forecast to reach 2000 (upper 2200) within 2 minutes.
    let f = ramp_forecast(0, vec![500.0, 1000.0, 2000.0, 2000.0, 2000.0]);
    let (d, _) = decide(
        &behavior(Mode::Predictive),
        &obs(with_forecast(500.0, &f, Some(0.5))),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    assert_eq!(d.prediction, Prediction::Used);
    assert_eq!(
        (d.reactive, d.predictive, d.desired_replicas),
        (5, Some(22), 22)
    );
    assert_eq!(d.readings[0].forecast_max, Some(2200.0));

    // forecastOnly serves the reactive count and records the prediction.
    let (d, _) = decide(
        &behavior(Mode::ForecastOnly),
        &obs(with_forecast(500.0, &f, Some(0.5))),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    assert_eq!((d.desired_replicas, d.predictive), (5, Some(22)));
    assert_eq!(d.prediction, Prediction::RecordedOnly);

    // reactive ignores the forecast entirely.
    let (d, _) = decide(
        &behavior(Mode::Reactive),
        &obs(with_forecast(500.0, &f, Some(0.5))),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    assert_eq!(
        (d.desired_replicas, d.predictive, d.prediction),
        (5, None, Prediction::Off)
    );
}

#[test]
fn an_anchored_forecast_follows_what_is_observed_now() {
    // Flat forecast 1000 (plain upper 1100, 11 pods at target 100). With
    // errors that persist (phi 0.8) and a half-width of 50 per step:
    let f = ramp_forecast(0, vec![1000.0; 5]);
    let anchor = Anchor {
        phi: 0.8,
        half_width: vec![50.0, 60.0, 70.0],
    };
    let decide_at = |observed: f64, anchor: Option<&Anchor>| {
        decide(
            &behavior(Mode::Predictive),
            &obs(with_anchor(observed, &f, anchor)),
            &PolicyState::default(),
            t(0),
        )
        .unwrap()
        .0
    };
    // Demand 1500 runs 500 over the forecast. One minute on the anchored
    // bound is 1000 + 0.8 × 500 + 50 = 1450, two minutes on 1000 + 0.64 ×
    // 500 + 60 = 1380, so the window's maximum is what is observed now,
    // where the plain band (1100) would say the excess is about to vanish ...
    let d = decide_at(1500.0, Some(&anchor));
    assert_eq!(d.readings[0].forecast_max, Some(1500.0));
    assert_eq!((d.reactive, d.predictive), (15, Some(15)));
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("corrected by the latest observation")),
        "{:?}",
        d.notes
    );
    // ... demand 600 runs 400 under it: 1000 − 0.64 × 400 + 60 = 804, so 9
    // pods instead of the plain band's 11.
    let d = decide_at(600.0, Some(&anchor));
    assert_eq!(d.readings[0].forecast_max, Some(804.0));
    assert_eq!((d.reactive, d.predictive), (6, Some(9)));
    let plain = decide_at(600.0, None);
    assert_eq!(plain.readings[0].forecast_max, Some(1100.0));
    assert_eq!(plain.predictive, Some(11));
    assert!(!plain.notes.iter().any(|n| n.contains("corrected")));

    // `forecastAnchor: off` uses the plain band even when an anchor exists.
    let off = Behavior {
        forecast_anchor: false,
        ..behavior(Mode::Predictive)
    };
    let m = with_anchor(600.0, &f, Some(&anchor));
    let d = decide(&off, &obs(m), &PolicyState::default(), t(0))
        .unwrap()
        .0;
    assert_eq!(d.readings[0].forecast_max, Some(1100.0));
}

#[test]
fn the_confidence_gate_falls_back_to_reactive_and_says_why() {
    let f = ramp_forecast(0, vec![2000.0; 12]);
    let b = behavior(Mode::Predictive);
    let (d, _) = decide(
        &b,
        &obs(with_forecast(500.0, &f, Some(3.0))),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    assert_eq!(d.desired_replicas, 5);
    assert!(
        matches!(&d.prediction, Prediction::Gated { reason } if reason.contains("validation MASE 3.00 > maxForecastMase 1.5")),
        "{:?}",
        d.prediction
    );
    let (d, _) = decide(
        &b,
        &obs(with_forecast(500.0, &f, None)),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    assert!(
        matches!(&d.prediction, Prediction::Gated { reason } if reason.contains("too little history"))
    );

    // Live errors: the forecast says 2000 while 500 is observed, slot after
    // slot; |2000 - 500| / 50 = 30 per slot, so once 8 slots are scored the
    // live MASE closes the gate even though validation looked fine. Each
    // 1-minute slot is scored once, at its first tick: the 15 s ticks in
    // between add no samples (29 ticks span 8 slots).
    let mut state = PolicyState::default();
    let mut last = None;
    for k in 0..29 {
        let (d, next) = decide(
            &b,
            &obs(with_forecast(500.0, &f, Some(0.5))),
            &state,
            t(k * 15),
        )
        .unwrap();
        state = next;
        last = Some(d);
    }
    let d = last.unwrap();
    assert_eq!(d.readings[0].live_mase, Some(30.0));
    assert!(
        matches!(&d.prediction, Prediction::Gated { reason } if reason.contains("live MASE 30.00"))
    );
}

#[test]
fn the_live_gate_reopens_only_once_the_error_is_well_below_the_threshold() {
    // One-minute slots forecast at 1000, scale 50, maxForecastMase 1.5; one
    // tick per slot, so every tick scores one live error, |v - 1000| / 50.
    let f = ramp_forecast(0, vec![1000.0; 40]);
    let b = behavior(Mode::Predictive);
    let replay = |observed: &[f64]| {
        let mut state = PolicyState::default();
        let mut out = Vec::new();
        for (k, v) in observed.iter().enumerate() {
            let (d, next) = decide(
                &b,
                &obs(with_forecast(*v, &f, Some(0.5))),
                &state,
                t(k as i64 * 60),
            )
            .unwrap();
            state = next;
            out.push((d.readings[0].live_mase, d.prediction));
        }
        out
    };
    let gated_because = |p: &Prediction, why: &str| matches!(p, Prediction::Gated { reason } if reason.contains(why));

    // Eight errors of 2.0 close the gate; then exact slots bring the mean
    // down: 16/9, 16/10, then 16/11 = 1.45 (under the threshold, but not
    // under 0.8 x 1.5 = 1.2), 16/12, 16/13 = 1.23, and 16/14 = 1.14.
    let mut seq = vec![1100.0; 8];
    seq.extend([1000.0; 6]);
    let got = replay(&seq);
    assert!(gated_because(
        &got[7].1,
        "live MASE 2.00 > maxForecastMase 1.5"
    ));
    for (i, (live, p)) in got.iter().enumerate().take(13).skip(10) {
        assert!(live.is_some_and(|l| l > 1.2 && l <= 1.5), "{i}: {live:?}");
        assert!(gated_because(p, "has not fallen below 1.20"), "{i}: {p:?}");
    }
    assert!(got[13].0.is_some_and(|l| l < 1.2));
    assert_eq!(got[13].1, Prediction::Used);

    // The same error of 1.3 with a gate that never closed: open. The margin
    // is hysteresis, not a lower threshold.
    let got = replay(&[1065.0; 8]);
    assert!(got[7].0.is_some_and(|l| (l - 1.3).abs() < 1e-9));
    assert_eq!(got[7].1, Prediction::Used);
}

#[test]
fn held_samples_buy_capacity_for_the_next_one_only_when_it_is_within_the_lead_time() {
    // A series sampled every 5 minutes: forecast 800, 1000, 800 at 0, 300
    // and 600 s (upper 880, 1100, 880); each sample holds until the next.
    let f = Forecast {
        start: t(0),
        step: TimeDelta::minutes(5),
        point: vec![800.0, 1000.0, 800.0, 800.0],
        lower: vec![720.0, 900.0, 720.0, 720.0],
        upper: vec![880.0, 1100.0, 880.0, 880.0],
        level: 0.8,
    };
    let fast_down = |between| Behavior {
        forecast_between: between,
        rules: ScalingRules {
            tolerance: 0.0,
            hpa_tolerance: 0.0,
            scale_down_stabilization: TimeDelta::zero(),
            scale_down_pods: 0,
            scale_down_percent: 100,
            scale_down_lookahead: TimeDelta::zero(),
            ..ScalingRules::default()
        },
        ..behavior(Mode::Predictive)
    };
    // The samples as they arrive: 800 at 0, 1000 at 300, 800 at 600.
    let run = |between| {
        let b = fast_down(between);
        let mut state = PolicyState::default();
        [
            (0, 800.0),
            (60, 800.0),
            (180, 800.0),
            (300, 1000.0),
            (360, 1000.0),
            (600, 800.0),
        ]
        .into_iter()
        .map(|(s, v)| {
            let (d, next) =
                decide(&b, &obs(with_forecast(v, &f, Some(0.5))), &state, t(s)).unwrap();
            state = next;
            (d.readings[0].forecast_max, d.desired_replicas)
        })
        .collect::<Vec<_>>()
    };
    // Held: the observed 800 until 300 enters the 2-minute window at 180,
    // then the next slot's upper bound (1100, 11 pods) is bought two minutes
    // ahead; once 1000 arrives it is what is observed (10), and the surplus
    // pod goes; at 600 the sample says 800 and 2 pods go with it.
    assert_eq!(
        run(Between::Hold),
        vec![
            (Some(800.0), 8),
            (Some(800.0), 8),
            (Some(1100.0), 11),
            (Some(1000.0), 10),
            (Some(1000.0), 10),
            (Some(800.0), 8),
        ]
    );
    // Linear: the bound leans towards the next point as soon as the window
    // does, 880 + (1100 − 880) × 120/300 = 968 at 0, so 10 pods five
    // minutes before the rise (11 from 60 s on); and the slot in force is
    // the band, not the observation.
    let linear = run(Between::Linear);
    assert_eq!(linear[0], (Some(968.0), 10));
    assert_eq!(linear[1].1, 11);
    assert_eq!(linear[2], (Some(1100.0), 11));
}

/// The state after a first decision at `t(0)` on queue depth `value`
/// (target 100): the count a test starts from.
fn running_at(b: &Behavior, value: f64) -> PolicyState {
    decide(
        b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(value))]),
        &PolicyState::default(),
        t(0),
    )
    .unwrap()
    .1
}

/// Scale-down with no stabilisation, so the lookahead alone decides.
fn unstabilized() -> Behavior {
    Behavior {
        rules: ScalingRules {
            hpa_tolerance: 0.0,
            scale_down_stabilization: TimeDelta::zero(),
            ..ScalingRules::default()
        },
        ..behavior(Mode::Predictive)
    }
}

/// A forecast of 200 with a peak of 900 (upper 990) 8 minutes in.
fn peak_in_8_minutes() -> Forecast {
    let mut f_vals = vec![200.0; 12];
    f_vals[8] = 900.0;
    ramp_forecast(0, f_vals)
}

#[test]
fn a_peak_ahead_defers_scale_down() {
    let b = unstabilized();
    // Start at 10 replicas; load falls to 200, but the forecast says 900
    // (upper 990) in 8 minutes: within the 10-minute lookahead.
    let f = peak_in_8_minutes();
    let state = running_at(&b, 1000.0);
    let (d, _) = decide(&b, &obs(with_forecast(200.0, &f, Some(0.5))), &state, t(15)).unwrap();
    assert_eq!((d.desired_replicas, d.limiter), (10, Limiter::PeakAhead));
    // Without the peak, it steps down.
    let flat = ramp_forecast(0, vec![200.0; 12]);
    let (d, _) = decide(
        &b,
        &obs(with_forecast(200.0, &flat, Some(0.5))),
        &state,
        t(15),
    )
    .unwrap();
    assert_eq!((d.desired_replicas, d.limiter), (9, Limiter::ScaleDownRate));
}

#[test]
fn the_peak_ahead_is_read_with_the_anchor_like_the_requirement() {
    let b = unstabilized();
    // At 11 replicas, demand 500 runs 300 over a forecast of 200 that rises
    // to 900 in 8 minutes (plain upper 990: 10 pods). The errors persist
    // (phi 0.9), so 8 minutes on the anchored bound is 900 + 0.9^8 × 300 +
    // 50 = 1079: 11 pods, the count in force. The requirement itself is the
    // anchored bound over the lead time (200 + 0.9 × 300 + 50 = 520, 6 pods).
    let f = peak_in_8_minutes();
    let anchor = Anchor {
        phi: 0.9,
        half_width: vec![50.0; 11],
    };
    let state = running_at(&b, 1100.0);
    let at = |anchor: Option<&Anchor>| {
        decide(&b, &obs(with_anchor(500.0, &f, anchor)), &state, t(15))
            .unwrap()
            .0
    };
    let d = at(Some(&anchor));
    assert_eq!(d.predictive, Some(6));
    // Judged by the plain band, the peak ahead needs 10 and a pod goes; the
    // anchored requirement would ask for it back before the peak.
    assert_eq!((d.desired_replicas, d.limiter), (11, Limiter::PeakAhead));
    let plain = at(None);
    assert_eq!(
        (plain.desired_replicas, plain.limiter),
        (10, Limiter::PeakAhead)
    );
}

#[test]
fn cooldown_after_remediation_blocks_scale_down() {
    let b = Behavior {
        rules: ScalingRules {
            hpa_tolerance: 0.0,
            scale_down_stabilization: TimeDelta::zero(),
            ..ScalingRules::default()
        },
        ..behavior(Mode::Reactive)
    };
    let state = running_at(&b, 1000.0);
    let mut o = obs(vec![input(MetricKind::QueueDepth, 100.0, Some(100.0))]);
    o.last_remediation = Some(t(-60));
    let (d, _) = decide(&b, &o, &state, t(15)).unwrap();
    assert_eq!((d.desired_replicas, d.limiter), (10, Limiter::Cooldown));
    o.last_remediation = Some(t(-600));
    let (d, _) = decide(&b, &o, &state, t(15)).unwrap();
    assert_eq!(
        d.desired_replicas, 9,
        "10 minutes later the cooldown is over"
    );
}

#[test]
fn growing_lag_gets_drain_capacity() {
    let b = behavior(Mode::Reactive);
    let lag = |v| obs(vec![input(MetricKind::ConsumerLag, 1000.0, Some(v))]);
    let mut state = PolicyState::default();
    // Lag grows by 300 per 15 s tick (20/s) from 3000 at 3 replicas.
    let mut last = None;
    for (k, v) in [3000.0, 3300.0, 3600.0].into_iter().enumerate() {
        let (d, next) = decide(&b, &lag(v), &state, t(k as i64 * 15)).unwrap();
        state = next;
        last = Some(d);
    }
    let d = last.unwrap();
    // No drain observed yet: assume one replica drains its 1000 target per
    // 300 s = 3.33/s. Extra = ceil((20 + 3600/300) / 3.33) = ceil(9.6) = 10,
    // on top of the 3 replicas that ran while the growth was measured (the
    // 4th, asked for at t=15, is still starting).
    assert_eq!(d.readings[0].lag_drain, Some(10));
    assert_eq!(d.reactive, 13);
    // A flat lag gets the plain requirement.
    let (d, _) = decide(&b, &lag(3600.0), &PolicyState::default(), t(0)).unwrap();
    assert_eq!((d.reactive, d.readings[0].lag_drain), (4, None));
}

#[test]
fn lag_drain_capacity_counts_the_pods_that_ran_not_those_asked_for() {
    // 20 pods drain a lag that still grows 50/s: the drain capacity comes
    // on top of those 20, not of the plain ceil(lag / target).
    let b = behavior(Mode::Reactive);
    let lag = |v| obs(vec![input(MetricKind::ConsumerLag, 1000.0, Some(v))]);
    let (_, mut state) = decide(&b, &lag(20_000.0), &PolicyState::default(), t(0)).unwrap();
    let mut last = None;
    for (k, v) in [5000.0, 5750.0, 6500.0].into_iter().enumerate() {
        // Three minutes on: the 20,000 has left the trend window, and the
        // stabilisation window still holds the 20 pods.
        let (d, next) = decide(&b, &lag(v), &state, t(180 + 15 * k as i64)).unwrap();
        state = next;
        last = Some(d);
    }
    let d = last.unwrap();
    let drain = d.readings[0].lag_drain.expect("growing");
    assert_eq!(d.reactive, 20 + drain, "20 ran, plus the drain");

    // A lag growing 300 a tick from 3 pods: within the trend window the
    // pods asked for at each tick are still starting, so each tick's
    // requirement is the 3 that ran plus that tick's drain. Added to the
    // count asked for at the previous tick, it compounded: 14, 24, 35, ...
    let b = Behavior {
        max_replicas: 1000,
        ..behavior(Mode::Reactive)
    };
    let mut state = PolicyState::default();
    // Nearly four minutes of growth: the pods asked for may still be
    // starting until a lead time (2 minutes) after they were asked for, so
    // they do not count as running until the trend window begins after
    // that. Counted as soon as the trend window had moved past them, the
    // drain was added on top of them every two minutes: 3 + 10 became
    // 13 + 13 at 2m15s.
    for k in 0..16 {
        let v = 3000.0 + 300.0 * f64::from(k);
        let (d, next) = decide(&b, &lag(v), &state, t(i64::from(k) * 15)).unwrap();
        if k >= 2 {
            let drain = d.readings[0].lag_drain.expect("growing");
            assert_eq!(d.reactive, 3 + drain, "tick {k}: lag {v}");
        }
        state = next;
    }
}

#[test]
fn latency_scales_by_ratio_only_above_tolerance_and_never_down_alone() {
    let b = behavior(Mode::Reactive);
    let lat = |v| input(MetricKind::P99Latency, 200.0, Some(v));
    let (_, s) = decide(
        &b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(400.0))]),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    let (d, s) = decide(&b, &obs(vec![lat(300.0)]), &s, t(15)).unwrap();
    assert_eq!(d.desired_replicas, 6, "4 x 1.5");
    let (d, s) = decide(&b, &obs(vec![lat(210.0)]), &s, t(30)).unwrap();
    assert_eq!(d.desired_replicas, 6, "1.05 is within tolerance: hold");
    let (d, _) = decide(&b, &obs(vec![lat(50.0)]), &s, t(2000)).unwrap();
    assert_eq!(d.desired_replicas, 6, "under target has no opinion: hold");
    let (d, _) = decide(&b, &obs(vec![lat(2000.0)]), &s, t(45)).unwrap();
    assert_eq!(
        d.desired_replicas, 12,
        "a 10x breach is bounded to 2x per decision"
    );
}

#[test]
fn signals_for_remediation() {
    // LatencySloBreach after 5 minutes of unbroken breach.
    let b = behavior(Mode::Reactive);
    let mut state = PolicyState::default();
    let mut raised = Vec::new();
    for k in 0..=20 {
        let o = obs(vec![
            input(MetricKind::P99Latency, 200.0, Some(400.0)),
            input(MetricKind::QueueDepth, 100.0, Some(100.0)),
        ]);
        let (d, next) = decide(&b, &o, &state, t(k * 15)).unwrap();
        state = next;
        raised.push(
            d.signals
                .iter()
                .any(|s| matches!(s, Signal::LatencySloBreach { .. })),
        );
    }
    assert!(!raised[19] && raised[20], "raised at 300 s: {raised:?}");

    // AtCeiling: clamped at max while demand rises.
    let b = Behavior {
        max_replicas: 5,
        ..behavior(Mode::Reactive)
    };
    let mut state = PolicyState::default();
    let mut last = None;
    for (k, v) in [600.0, 800.0, 1000.0, 1200.0, 1400.0, 1600.0]
        .into_iter()
        .enumerate()
    {
        let (d, next) = decide(
            &b,
            &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(v))]),
            &state,
            t(k as i64 * 15),
        )
        .unwrap();
        state = next;
        last = Some(d);
    }
    let d = last.unwrap();
    assert_eq!(d.limiter, Limiter::MaxBound);
    assert!(
        d.signals.iter().any(|s| matches!(
            s,
            Signal::AtCeiling {
                max_replicas: 5,
                demand_replicas: 16,
                ..
            }
        )),
        "{:?}",
        d.signals
    );

    // CapacityExhaustionPredicted: the forecast (upper) passes 5 x 100 at minute 3.
    let b = Behavior {
        max_replicas: 5,
        ..behavior(Mode::Predictive)
    };
    let f = ramp_forecast(0, vec![300.0, 400.0, 440.0, 600.0, 700.0]);
    let (d, _) = decide(
        &b,
        &obs(with_forecast(300.0, &f, Some(0.5))),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    let breach = d.signals.iter().find_map(|s| match s {
        Signal::CapacityExhaustionPredicted {
            breach_at,
            peak,
            capacity,
            max_replicas,
            ..
        } => Some((*breach_at, *peak, *capacity, *max_replicas)),
        _ => None,
    });
    let (breach_at, peak, capacity, max_replicas) =
        breach.expect("CapacityExhaustionPredicted raised");
    // Upper bounds are 330, 440, 484, 660, 770: the first above 500 is minute 3.
    assert_eq!((breach_at, capacity), (t(180), 500.0));
    assert_eq!(max_replicas, b.max_replicas, "the trigger's own ceiling");
    assert!((peak - 770.0).abs() < 1e-9, "{peak}");

    // NotKeepingUp: replicas went 2 → 6, and 2 x leadTime later the queue
    // has outgrown even the count in force since (it grows 100 a tick).
    let b = behavior(Mode::Reactive);
    let (_, s) = decide(
        &b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(200.0))]),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    let (d, mut s) = decide(
        &b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(600.0))]),
        &s,
        t(15),
    )
    .unwrap();
    assert_eq!(d.desired_replicas, 6);
    let mut found = None;
    for k in 2..=30 {
        let v = 900.0 + 100.0 * (k - 2) as f64;
        let (d, next) = decide(
            &b,
            &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(v))]),
            &s,
            t(k * 15),
        )
        .unwrap();
        s = next;
        if let Some(sig) = d
            .signals
            .iter()
            .find(|s| matches!(s, Signal::NotKeepingUp { .. }))
        {
            found = Some((k, sig.clone()));
            break;
        }
    }
    let (k, sig) = found.expect("NotKeepingUp raised");
    assert_eq!(k * 15 - 15, 240, "checked 2 x 2m after the scale-up");
    assert!(
        matches!(
            sig,
            Signal::NotKeepingUp {
                from_replicas: 2,
                to_replicas: 6,
                value_then: 600.0,
                value_now: 2400.0,
                ..
            }
        ),
        "{sig:?}"
    );
}

#[test]
fn a_descent_in_progress_keeps_the_workload_active() {
    // 40 pods, then the queue empties. With minReplicaCount 0 the count is
    // held for the stabilisation window, then walks down one pod per 5
    // minutes: inactive meanwhile, KEDA would scale it to zero after its
    // cooldown and skip all of that. Active until the count reaches zero.
    let b = Behavior {
        min_replicas: 0,
        ..behavior(Mode::Reactive)
    };
    let mut s = running_at(&b, 4000.0);
    let mut last = (40, true);
    for k in 1..=(40 * 20 + 40) {
        let (d, next) = decide(
            &b,
            &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(0.0))]),
            &s,
            t(k * 15),
        )
        .unwrap();
        s = next;
        assert_eq!(
            d.active,
            d.desired_replicas > 0,
            "tick {k}: {} pods ({:?})",
            d.desired_replicas,
            d.limiter
        );
        last = (d.desired_replicas, d.active);
    }
    assert_eq!(last, (0, false));

    // With the HPA's tolerance, a scale-down 5 minutes before a burst
    // makes the first step of the descent after it (45 → 40, a step the
    // rate allows only after 25 quiet minutes) wait under `hpaTolerance`:
    // still a descent, so still active.
    let b = Behavior {
        min_replicas: 0,
        rules: ScalingRules {
            hpa_tolerance: 0.1,
            ..ScalingRules::default()
        },
        ..behavior(Mode::Reactive)
    };
    let q = |v| obs(vec![input(MetricKind::QueueDepth, 100.0, Some(v))]);
    let mut s = running_at(&b, 800.0);
    let mut k = 0;
    let mut step = |s: &mut PolicyState, v: f64| {
        k += 1;
        let (d, next) = decide(&b, &q(v), s, t(k * 15)).unwrap();
        *s = next;
        (d, k)
    };
    for _ in 0..21 {
        step(&mut s, 700.0);
    }
    for _ in 0..12 {
        step(&mut s, 4500.0);
    }
    let mut seen_wait = false;
    loop {
        let (d, k) = step(&mut s, 0.0);
        assert_eq!(
            d.active,
            d.desired_replicas > 0,
            "{} pods ({:?})",
            d.desired_replicas,
            d.limiter
        );
        seen_wait |= d.limiter == Limiter::HpaTolerance && d.desired_replicas > 30;
        if d.desired_replicas == 0 {
            break;
        }
        assert!(
            k < 4 * 60 * 8,
            "no end to the descent: {} pods",
            d.desired_replicas
        );
    }
    assert!(seen_wait, "the tolerance's wait was exercised");
}

#[test]
fn a_hold_that_never_ends_does_not_keep_the_workload_active() {
    // 11 pods, then a queue of 95 (10 wanted) under an activation threshold
    // of 100. Past the stabilisation window the one-pod step to 10 is one
    // the HPA's tolerance ignores, and its smallest applied step (9) is
    // below what is wanted: the count stays at 11 for good. That is no
    // descent under way, so the workload goes inactive, as the threshold
    // says, instead of staying active for ever.
    let b = Behavior {
        min_replicas: 0,
        activation_threshold: 100.0,
        rules: ScalingRules {
            hpa_tolerance: 0.1,
            ..ScalingRules::default()
        },
        ..behavior(Mode::Reactive)
    };
    let q = |v| obs(vec![input(MetricKind::QueueDepth, 10.0, Some(v))]);
    let (_, mut s) = decide(&b, &q(110.0), &PolicyState::default(), t(0)).unwrap();
    let mut last = None;
    for k in 1..=40 {
        let (d, next) = decide(&b, &q(95.0), &s, t(k * 15)).unwrap();
        s = next;
        if k * 15 < 300 {
            assert!(d.active, "tick {k}: held by stabilisation, a descent");
        }
        last = Some(d);
    }
    let d = last.unwrap();
    assert_eq!((d.desired_replicas, d.limiter), (11, Limiter::HpaTolerance));
    assert!(!d.active);
}

#[test]
fn a_ramp_that_covers_the_load_is_keeping_up() {
    // A queue of 100 at 1 per pod: the count climbs 1 → 5 → 10 → 20 → 40 →
    // 80 → 100, one step per 15 s, and 100 pods hold it. Each step is
    // checked 4 minutes after it; by then 100 pods are in force, which the
    // queue does not exceed, so none of the steps is "not keeping up"
    // (judged against each step's own count, every step but the last was).
    let b = behavior(Mode::Reactive);
    // One pod running (a queue of 100 at 100 per pod), then the ramp.
    let mut s = running_at(&b, 100.0);
    let mut counts = vec![1];
    for k in 1..40 {
        let (d, next) = decide(
            &b,
            &obs(vec![input(MetricKind::QueueDepth, 1.0, Some(100.0))]),
            &s,
            t(k * 15),
        )
        .unwrap();
        counts.push(d.desired_replicas);
        assert!(
            !d.signals
                .iter()
                .any(|s| matches!(s, Signal::NotKeepingUp { .. })),
            "tick {k}: {:?}",
            d.signals
        );
        s = next;
    }
    counts.dedup();
    assert_eq!(counts, vec![1, 5, 10, 20, 40, 80, 100]);
}

#[test]
fn a_lowered_maximum_applies_at_once() {
    let b = behavior(Mode::Reactive);
    let (_, s) = decide(
        &b,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(2000.0))]),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    let tight = Behavior {
        max_replicas: 3,
        ..behavior(Mode::Reactive)
    };
    let (d, _) = decide(
        &tight,
        &obs(vec![input(MetricKind::QueueDepth, 100.0, Some(2000.0))]),
        &s,
        t(15),
    )
    .unwrap();
    assert_eq!((d.desired_replicas, d.limiter), (3, Limiter::MaxBound));
}

#[test]
fn activation_is_predictive() {
    // Idle now (0 is not above the threshold), but the forecast says load
    // arrives within the lead time: active, so KEDA pre-warms from zero.
    let b = Behavior {
        min_replicas: 0,
        activation_threshold: 0.0,
        ..behavior(Mode::Predictive)
    };
    let f = ramp_forecast(0, vec![0.0, 0.0, 300.0, 300.0, 300.0]);
    let (d, _) = decide(
        &b,
        &obs(with_forecast(0.0, &f, Some(0.5))),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    assert!(d.active, "{d:?}");
    assert_eq!(
        d.desired_replicas, 4,
        "upper 330 / 100 → 4 ahead of the load"
    );
    // Reactive mode waits for the load itself.
    let (d, _) = decide(
        &Behavior {
            mode: Mode::Reactive,
            ..b
        },
        &obs(with_forecast(0.0, &f, Some(0.5))),
        &PolicyState::default(),
        t(0),
    )
    .unwrap();
    assert!(!d.active);
    assert_eq!(d.desired_replicas, 0);
}

#[test]
fn scale_up_does_not_wait_for_the_tolerance_by_default() {
    // At 10 pods, 1050 queued (ratio 1.05): the HPA would stay; foresight
    // asks for 11, because a pod short is the costlier error.
    let b = behavior(Mode::Reactive);
    let got = run(
        &b,
        &[(0, Some(1000.0)), (15, Some(1050.0)), (30, Some(960.0))],
    );
    assert_eq!(got[0].0, 10);
    assert_eq!(got[1], (11, Limiter::None));
    // 960 / 1100 = 0.87: outside the 0.1 down tolerance, but stabilisation holds.
    assert_eq!(got[2], (11, Limiter::Stabilization));
}

#[test]
fn hpa_tolerance_widens_small_scale_ups_and_batches_small_scale_downs() {
    let b = Behavior {
        rules: ScalingRules {
            hpa_tolerance: 0.1,
            ..ScalingRules::default()
        },
        ..behavior(Mode::Reactive)
    };
    // 20 pods; +1 pod (ratio 1.05) would be ignored by the HPA: widened to
    // floor(20 * 1.1) + 1 = 23, the smallest count it applies.
    let got = run(&b, &[(0, Some(2000.0)), (15, Some(2050.0))]);
    assert_eq!(got[0].0, 20);
    assert_eq!(got[1], (23, Limiter::HpaTolerance), "widened, and said so");

    // Falling demand: after the 300 s window the rate limit allows one pod
    // (23 -> 22), which the HPA would ignore; the policy wants 5, so it
    // takes the smallest step the HPA applies: ceil(23 * 0.9) - 1 = 20.
    let mut seq = vec![(0, Some(2300.0))];
    seq.extend((1..=22).map(|k| (k * 15, Some(500.0))));
    let got = run(&b, &seq);
    assert_eq!(got[0].0, 23);
    assert!(got[1..=20].iter().all(|(r, _)| *r == 23));
    assert_eq!(got[21], (20, Limiter::HpaTolerance), "{:?}", &got[19..]);

    // That step spent three periods of one pod each: scale-down holds for
    // 15 minutes after it, then takes the next smallest step (20 -> 17), so
    // the average stays one pod per 5 minutes.
    let mut seq = vec![(0, Some(2300.0))];
    seq.extend((1..=160).map(|k| (k * 15, Some(500.0))));
    let got = run(&b, &seq);
    let at = |s: i64| got[(s / 15) as usize];
    assert_eq!(at(315).0, 20);
    assert!(
        (330..1215)
            .step_by(15)
            .all(|s| at(s) == (20, Limiter::ScaleDownRate)),
        "{:?}",
        &got[21..82]
    );
    assert_eq!(at(1215).0, 17, "{:?}", &got[78..84]);
    assert!((1230..2115).step_by(15).all(|s| at(s).0 == 17));
    assert_eq!(at(2115).0, 15, "ceil(17 * 0.9) - 1 = 15");
    // 1790 at 20 pods wants 18 (ratio 0.895, outside the policy's own
    // tolerance); the rate limit allows 19, which the HPA would ignore, and
    // its smallest applied step (17) is below what is wanted: held, and said.
    let mut seq = vec![(0, Some(2000.0))];
    seq.extend((1..=22).map(|k| (k * 15, Some(1790.0))));
    let got = run(&b, &seq);
    assert!(got.iter().all(|(r, _)| *r == 20), "{got:?}");
    assert_eq!(got[21].1, Limiter::HpaTolerance, "{got:?}");
}

#[test]
fn a_widened_scale_up_keeps_the_configured_rate_on_average() {
    // One pod per minute: at 20 pods the HPA ignores +1, so the smallest
    // step it applies (+3) is taken once the last three minutes held no
    // scale-up, and scale-up then holds three minutes.
    let b = Behavior {
        rules: ScalingRules {
            hpa_tolerance: 0.1,
            scale_up_pods: 1,
            scale_up_percent: 0,
            scale_up_period: TimeDelta::seconds(60),
            ..ScalingRules::default()
        },
        ..behavior(Mode::Reactive)
    };
    let seq: Vec<(i64, Option<f64>)> = [(0, Some(2000.0)), (15, Some(2050.0))]
        .into_iter()
        .chain((2..=14).map(|k| (k * 15, Some(2600.0))))
        .collect();
    let got = decisions(&b, &seq);
    assert_eq!(got[0].desired_replicas, 20);
    assert_eq!(got[1].desired_replicas, 23);
    assert!(
        got[1].notes.iter().any(|n| n
            == "the HPA ignores smaller steps, so 3 pods change at once and this direction holds for 180s (3 periods) to keep the configured rate on average"),
        "{:?}",
        got[1].notes
    );
    // 2600 wants 26, but scale-up holds until 195 s.
    assert!(
        got[2..13]
            .iter()
            .all(|d| (d.desired_replicas, d.limiter) == (23, Limiter::ScaleUpRate)),
        "{:?}",
        got.iter()
            .map(|d| (d.desired_replicas, d.limiter))
            .collect::<Vec<_>>()
    );
    // At 195 s one pod (24) is allowed, which the HPA ignores; 23 -> 26 is
    // the smallest step it applies, three minutes after the last one.
    assert_eq!(got[13].desired_replicas, 26);
    assert_eq!(got[14].desired_replicas, 26);
}

/// `mode: holding` on a series whose need alternates 2, 6, 2, 6 every
/// 5 minutes (values 20 and 60 at a target of 10), learnt from two days of
/// it: the model knows the next need for certain.
mod holding {
    use super::*;
    use foresight::domain::Series;
    use foresight::forecast::{NeedModel, NeedSpec, time_bin};

    const STEP: i64 = 300;
    /// Samples in the training history; the forecast starts after them.
    const HISTORY: i64 = 576;

    fn value(slot: i64) -> f64 {
        if slot % 2 == 0 { 20.0 } else { 60.0 }
    }

    /// The need model of the training history of `value` (by slot).
    fn model(value: impl Fn(i64) -> f64) -> NeedModel {
        let s = Series::new(
            t(0),
            TimeDelta::seconds(STEP),
            (0..HISTORY).map(value).collect(),
        );
        let spec = NeedSpec {
            target: 10.0,
            min_replicas: 1,
            max_replicas: 100,
        };
        NeedModel::fit(&s, &spec).unwrap()
    }

    fn forecast() -> Forecast {
        Forecast {
            start: t(HISTORY * STEP),
            step: TimeDelta::seconds(STEP),
            point: vec![40.0; 30],
            lower: vec![20.0; 30],
            upper: vec![60.0; 30],
            level: 0.8,
        }
    }

    /// Holding, with scale-up limited to one pod per 15 s (which the plan
    /// must not be held to) and the given prices.
    fn behavior(short_minute: f64, flap: f64) -> Behavior {
        Behavior {
            rules: ScalingRules {
                scale_up_pods: 1,
                scale_up_percent: 0,
                short_minute_price: short_minute,
                flap_price: flap,
                ..super::behavior(Mode::Holding).rules
            },
            ..super::behavior(Mode::Holding)
        }
    }

    /// Decisions every 15 s over `minutes` from the forecast's start, the
    /// value at each tick being the sample of its slot (`None` where
    /// `stale(tick)`), with or without the need model.
    fn run(
        b: &Behavior,
        minutes: i64,
        with_model: bool,
        stale: impl Fn(i64) -> bool,
    ) -> Vec<Decision> {
        run_on(value, b, minutes, with_model, stale)
    }

    /// [`run`] on the series `value` (by slot) instead of the 2, 6, 2, 6.
    fn run_on(
        value: impl Fn(i64) -> f64 + Copy,
        b: &Behavior,
        minutes: i64,
        with_model: bool,
        stale: impl Fn(i64) -> bool,
    ) -> Vec<Decision> {
        let (m, f) = (model(value), forecast());
        let mut state = PolicyState::default();
        (0..minutes * 4)
            .map(|i| {
                let s = HISTORY * STEP + i * 15;
                let metrics = vec![MetricInput {
                    kind: MetricKind::QueueDepth,
                    target: 10.0,
                    observed: (!stale(i)).then(|| value(s / STEP)),
                    forecast: Some(ForecastInput {
                        forecast: &f,
                        scale: 10.0,
                        validation_mase: Some(0.5),
                        anchor: None,
                        need: with_model.then_some(&m),
                        plan: None,
                    }),
                    forecast_note: None,
                }];
                let (d, next) = decide(b, &obs(metrics), &state, t(s)).unwrap();
                state = next;
                d
            })
            .collect()
    }

    /// The served count at each minute's first tick.
    fn per_minute(d: &[Decision]) -> Vec<u32> {
        d.iter().step_by(4).map(|d| d.desired_replicas).collect()
    }

    #[test]
    fn free_flaps_buy_each_peak_ahead_and_release_it_after() {
        // The forecast starts on a 2 (slot 576 is even). Served by minute:
        // 2 until leadTime (2 min) before the 6 lands, then 6 through its
        // period; 2 again when the next 2 lands. The rise 2 -> 6 happens in
        // one tick, past the one-pod rate limit.
        let d = run(&behavior(50.0, 0.0), 20, true, |_| false);
        assert_eq!(
            per_minute(&d),
            [2, 2, 2, 6, 6, 6, 6, 6, 6, 6, 2, 2, 2, 6, 6, 6, 6, 6, 6, 6]
        );
        assert!(d.iter().all(|d| d.prediction == Prediction::Used
            && d.mode == Mode::Holding
            && d.limiter == Limiter::None));
    }

    #[test]
    fn a_count_another_signal_drives_keeps_the_rate_limits() {
        // The plan serves 2 at first; from the second tick p99 latency is
        // three times its target and asks for 4 (×2 at most per decision).
        // The plan's counts skip the rate limits, latency's do not: one pod
        // per 15 s, so 3, then 4.
        let b = behavior(50.0, 0.0);
        let (m, f) = (model(value), forecast());
        let mut state = PolicyState::default();
        let mut got = Vec::new();
        for i in 0..3 {
            let s = HISTORY * STEP + i * 15;
            let metrics = vec![
                MetricInput {
                    kind: MetricKind::QueueDepth,
                    target: 10.0,
                    observed: Some(value(s / STEP)),
                    forecast: Some(ForecastInput {
                        forecast: &f,
                        scale: 10.0,
                        validation_mase: Some(0.5),
                        anchor: None,
                        need: Some(&m),
                        plan: None,
                    }),
                    forecast_note: None,
                },
                MetricInput {
                    kind: MetricKind::P99Latency,
                    target: 0.3,
                    observed: Some(if i == 0 { 0.1 } else { 0.9 }),
                    forecast: None,
                    forecast_note: None,
                },
            ];
            let (d, next) = decide(&b, &obs(metrics), &state, t(s)).unwrap();
            state = next;
            got.push((d.desired_replicas, d.limiter, d.driver));
        }
        assert_eq!(got[0].0, 2, "{got:?}");
        assert_eq!(
            got[1],
            (3, Limiter::ScaleUpRate, Some(MetricKind::P99Latency)),
            "{got:?}"
        );
        assert_eq!(got[2].0, 4, "{got:?}");
    }

    #[test]
    fn dear_flaps_hold_the_peak_level() {
        let d = run(&behavior(50.0, 1_000.0), 20, true, |_| false);
        // Only the first decision may differ (the count in force starts at
        // the first need); from the first peak on, 6 is held.
        assert!(
            per_minute(&d)[3..].iter().all(|c| *c == 6),
            "{:?}",
            per_minute(&d)
        );
    }

    #[test]
    fn missing_data_never_lowers_the_held_count() {
        // Data goes missing from minute 8 to 12, across the landing of a 2
        // at minute 10 that would release the peak.
        let d = run(&behavior(50.0, 0.0), 20, true, |i| (32..48).contains(&i));
        let c = per_minute(&d);
        assert_eq!(&c[7..12], &[6, 6, 6, 6, 6], "{c:?}");
        assert_eq!(d[40].limiter, Limiter::StaleData);
        // Once data returns, the plan takes over again.
        assert_eq!(c[12], 2, "{c:?}");
    }

    #[test]
    fn a_rise_past_the_need_says_the_tolerance_made_it() {
        // Needs of 20 with a 21 every tenth sample (values 200 and 210 at a
        // target of 10). Short minutes are cheap (1), so the plan runs 20
        // and rises when a 21 lands; from 20, a rise to 21 is within the
        // downstream HPA's 10% tolerance and would be ignored, so it rises
        // past the need, to 22, and the note says why.
        let value = |slot: i64| if slot % 10 == 3 { 210.0 } else { 200.0 };
        let b = Behavior {
            rules: ScalingRules {
                hpa_tolerance: 0.1,
                ..behavior(1.0, 64.0).rules
            },
            ..behavior(1.0, 64.0)
        };
        let seen = run_on(value, &b, 60, true, |_| false);
        let past: Vec<&Decision> = seen
            .iter()
            .filter(|d| {
                d.notes
                    .iter()
                    .any(|n| n.contains("within the downstream HPA's tolerance"))
            })
            .collect();
        assert!(!past.is_empty(), "no rise past the need in {seen:#?}");
        for d in past {
            assert_eq!(d.desired_replicas, 22, "{:?}", d.notes);
            assert!(
                d.notes
                    .iter()
                    .any(|n| n.contains("needs 21") && n.contains("a rise from 20 to 21")),
                "{:?}",
                d.notes
            );
        }
        // Where 20 is needed, 20 is what runs: the rise is for the 21.
        assert!(seen.iter().any(|d| d.desired_replicas == 20));
    }

    #[test]
    fn a_count_above_the_need_says_what_it_buys() {
        // Free flaps: 2 until leadTime before the 6 lands, then 6. The rise
        // is asked for while the sample in force needs 2, and the note gives
        // the model's odds that the next sample needs more than 2 (the rise
        // buys those) and more than 6 (what stays short).
        let d = run(&behavior(50.0, 0.0), 5, true, |_| false);
        let m = model(value);
        let next = t((HISTORY + 1) * STEP);
        // The sample in force (slot 576) needs 2, after a 6.
        let row = m
            .table()
            .next(time_bin(next), m.level(2), m.tercile(6))
            .to_vec();
        // In whole percent, as a note prints it.
        let beyond = |l: usize| (row[l..].iter().sum::<f64>() * 100.0).round() + 0.0;
        assert!(beyond(2) > 90.0, "{row:?}");
        let want = format!(
            "by the model, the next sample needs more than 2 with probability {:.0}% and more than 6 with {:.0}%",
            beyond(2),
            beyond(6)
        );
        assert!(want.ends_with("more than 6 with 0%"), "{want}");
        let ahead: Vec<&Decision> = d.iter().filter(|d| d.desired_replicas == 6).collect();
        assert!(!ahead.is_empty(), "{:?}", per_minute(&d));
        for d in &ahead {
            assert!(
                d.notes.iter().any(|n| n.contains(&want)),
                "{want} not in {:?}",
                d.notes
            );
        }
        // At the need, nothing is bought and nothing is said.
        for d in d.iter().filter(|d| d.desired_replicas == 2) {
            assert!(
                !d.notes.iter().any(|n| n.contains("by the model")),
                "{:?}",
                d.notes
            );
        }
    }

    #[test]
    fn without_a_need_model_it_falls_back_and_says_why() {
        let d = run(&behavior(50.0, 0.0), 12, false, |_| false);
        match &d[0].prediction {
            Prediction::Unavailable { reason } => {
                assert!(reason.contains("no transitions"), "{reason}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
        // The reactive path's rate limit applies again: one pod per 15 s.
        let up = d.iter().position(|d| d.desired_replicas > 2).unwrap();
        assert_eq!(d[up].desired_replicas, 3);
        assert_eq!(d[up].limiter, Limiter::ScaleUpRate);
    }
}
