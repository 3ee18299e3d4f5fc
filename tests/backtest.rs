//! The backtest replay through the library: accounting against hand-checked
//! cases, no peeking, the oracle's bound, and the report schema.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta};
use foresight::backtest::{Backtest, ModelCache, Quiet};
use foresight::config::parse_metadata;
use foresight::domain::Series;

/// A reproducible daily-seasonal series: 5-minute steps, a smooth daily
/// cycle between ~200 and ~1800, and noise from a fixed LCG.
fn seasonal(days: usize) -> Series {
    let mut state: u64 = 42;
    let values = (0..days * 288)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 60.0;
            let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            1000.0 - 800.0 * phase.cos() + noise
        })
        .collect();
    Series::new(
        DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 86_400, 0).unwrap(),
        TimeDelta::minutes(5),
        values,
    )
}

fn backtest<'a>(series: &'a Series, extra: &[(&str, &str)], retrain_h: i64) -> Backtest<'a> {
    let mut meta: BTreeMap<String, String> = [
        ("connectionsQuery", "demo"),
        ("connectionsTarget", "100"),
        ("maxReplicaCount", "50"),
        ("history", "7d"),
        ("seasonality", "1d"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        meta.insert(k.to_string(), v.to_string());
    }
    let spec = parse_metadata(&meta.clone().into_iter().collect::<HashMap<_, _>>()).unwrap();
    Backtest {
        series,
        id: "demo",
        source: "synthetic".into(),
        spec,
        metadata: meta,
        startup: TimeDelta::minutes(2),
        retrain: TimeDelta::hours(retrain_h),
        reselect: TimeDelta::days(1),
        warmup: TimeDelta::days(2),
        downstream_tolerance: 0.1,
        tick: None,
    }
}

#[test]
fn oracle_is_never_short_and_cheapest_and_the_schema_is_fixed() {
    let s = seasonal(5);
    let out = backtest(&s, &[], 6).run(&Quiet).unwrap();
    let r = &out.report;
    let p = &r.policies;
    assert_eq!(p.oracle.under_provisioned_minutes, 0.0, "{}", r.table());
    // The oracle is the cheapest schedule that is never short, so no policy
    // that is never short can cost less (one that is short sometimes can).
    for other in [&p.hpa, &p.foresight] {
        if other.under_provisioned_minutes == 0.0 {
            assert!(p.oracle.replica_hours <= other.replica_hours);
        }
    }
    let always_max = 50.0 * r.steps as f64 * r.step_seconds / 3600.0;
    assert!(p.oracle.replica_hours < always_max);
    // A reactive HPA with a 2-minute start-up is short on every rise.
    assert!(p.hpa.under_provisioned_minutes > 0.0, "{}", r.table());
    // The same policy with the recorded future as its forecast is on time
    // (no band to pay for, nothing to miss), so it costs no more than
    // foresight, which pays for its band, and no less than the oracle.
    let pf = &p.perfect_forecast;
    assert_eq!(pf.under_provisioned_minutes, 0.0, "{}", r.table());
    assert!(
        pf.replica_hours < p.foresight.replica_hours,
        "{}",
        r.table()
    );
    assert!(pf.replica_hours >= p.oracle.replica_hours, "{}", r.table());
    assert!(r.table().contains("perfect forecast / hpa:"));
    // Stabilisation keeps foresight from undoing its own changes.
    assert!(p.foresight.flaps <= p.hpa.flaps, "{}", r.table());
    // Three scored days of 15-second ticks (the data step is 5 minutes,
    // ticks are at most the HPA's 15 s sync), up to the last sample.
    assert_eq!(r.step_seconds, 15.0);
    assert_eq!(r.steps, 3 * 5760 - 19);
    assert_eq!(out.timeline.len(), 5 * 5760 - 19);
    assert!(r.forecast.points > 0);
    assert!(r.forecast.mase.unwrap() < 1.0, "{}", r.table());
    assert!(*r.decisions.prediction.get("used").unwrap_or(&0) > r.steps / 2);

    let json = serde_json::to_value(r).unwrap();
    for key in ["input", "steps", "step_seconds", "policies", "forecast"] {
        assert!(json.get(key).is_some(), "report.json lacks {key}");
    }
    for policy in ["foresight", "hpa", "oracle", "perfect_forecast"] {
        for field in [
            "under_provisioned_minutes",
            "replica_hours",
            "scale_events",
            "flaps",
            "max_replicas",
            "p95_backlog",
        ] {
            assert!(
                json["policies"][policy].get(field).is_some(),
                "policies.{policy}.{field} missing"
            );
        }
    }
    for field in ["mase", "smape", "interval_coverage"] {
        assert!(json["forecast"].get(field).is_some());
    }
}

#[test]
fn decisions_never_depend_on_later_data() {
    // Replaying a prefix must give the same foresight and HPA counts for every
    // tick of the prefix: the policy and the models only see the past.
    let full = seasonal(4);
    let cut = 3 * 288 + 37;
    let prefix = Series::new(full.start, full.step, full.values[..cut].to_vec());
    let a = backtest(&full, &[], 3).run(&Quiet).unwrap().timeline;
    let b = backtest(&prefix, &[], 3).run(&Quiet).unwrap().timeline;
    assert!(b.len() > 3 * 5760);
    for policy in [0, 1] {
        assert_eq!(
            a.replicas[policy][..b.len()],
            b.replicas[policy][..],
            "policy {policy} differs"
        );
    }

    // Nor between samples: with 5-minute data and 15-second ticks, the 19
    // ticks after a sample must not lean on the next sample. Tripling every
    // sample from `cut` on may change nothing before its timestamp.
    let mut changed = full.values.clone();
    for v in &mut changed[cut..] {
        *v = *v * 3.0 + 500.0;
    }
    let changed = Series::new(full.start, full.step, changed);
    let c = backtest(&changed, &[], 3).run(&Quiet).unwrap().timeline;
    let cut_ms = (full.start + full.step * i32::try_from(cut).unwrap()).timestamp_millis();
    let before = a.timestamp_ms.partition_point(|&t| t < cut_ms);
    assert_eq!(before, cut * 20, "15-second ticks over 5-minute samples");
    for policy in [0, 1] {
        let first = (0..before).find(|&i| a.replicas[policy][i] != c.replicas[policy][i]);
        assert_eq!(
            first, None,
            "policy {policy} saw the sample at tick {before} early"
        );
    }
    assert_eq!(a.demand[..before], c.demand[..before]);
    // The change itself is seen from its timestamp on.
    assert_ne!(a.replicas[1][before + 1..], c.replicas[1][before + 1..]);
}

#[test]
fn the_anchored_interval_is_scored_and_covers_near_its_level() {
    // A daily cycle plus noise that wanders (AR(1), phi 0.9): the forecast's
    // errors persist, so models carry an anchor, and the report scores the
    // interval the policy used, corrected by the value seen a lead time
    // earlier, at the same nominal level (80%).
    let mut state: u64 = 11;
    let mut drift = 0.0;
    let values = (0..6 * 288)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            drift = 0.9 * drift + ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 80.0;
            let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            (1000.0 - 800.0 * phase.cos() + drift).max(0.0)
        })
        .collect();
    let s = Series::new(
        DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 86_400, 0).unwrap(),
        TimeDelta::minutes(5),
        values,
    );
    let r = backtest(&s, &[], 6).run(&Quiet).unwrap().report;
    let fc = &r.forecast;
    let cov = fc
        .anchored_coverage
        .expect("persistent errors give anchors");
    assert!(fc.anchored_points > 500, "{}", r.table());
    assert!(
        (0.65..=0.97).contains(&cov),
        "anchored coverage {cov}\n{}",
        r.table()
    );
    assert!(
        r.table()
            .contains("anchored on the latest observation: coverage")
    );
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["forecast"]["anchored_coverage"].is_number());
}

#[test]
fn queue_backlog_carries_over_when_capacity_is_short() {
    // Demand jumps from 100 to 1000 and stays: the HPA needs 10 pods, may
    // double per 15 s but pods start after 2 minutes, so work queues up, and
    // the queue must drain afterwards.
    let mut v = vec![100.0; 2 * 288];
    v.extend(vec![1000.0; 288]);
    let s = Series::new(
        DateTime::from_timestamp(0, 0).unwrap(),
        TimeDelta::minutes(5),
        v,
    );
    let bt = backtest(
        &s,
        &[
            ("queueDepthQuery", "demo"),
            ("queueDepthTarget", "100"),
            ("connectionsQuery", ""),
            ("connectionsTarget", ""),
            ("mode", "reactive"),
        ],
        24,
    );
    let out = bt.run(&Quiet).unwrap();
    let t = &out.timeline;
    let hpa_backlog = &t.backlog[1];
    let peak = hpa_backlog.iter().copied().fold(0.0, f64::max);
    assert!(peak > 100.0, "peak backlog {peak}");
    // Once the backlog is within the HPA's 10% tolerance of capacity it
    // stops scaling; what is left is below one pod's worth.
    assert!(*hpa_backlog.last().unwrap() < 100.0);
    // The oracle starts pods ahead of the jump and never queues.
    assert!(t.backlog[2].iter().all(|b| *b == 0.0));
    // Each 5-minute sample is one step's work, however many 15 s ticks it
    // holds for: the HPA's 1 pod serves 100 of the 1,000, and its pods
    // start within 2.5 minutes, so at most half a step's shortfall queues
    // (385 here, and 14 pods; counted whole at every tick, the backlog
    // reached 7,700 and the HPA chased it to 50 pods).
    assert!(peak < 450.0, "peak backlog {peak}");
    assert!(
        out.report.policies.hpa.max_replicas <= 15,
        "{}",
        out.report.policies.hpa.max_replicas
    );
}

#[test]
fn a_shorter_tick_lets_scale_up_limits_act_per_15_seconds() {
    // Demand jumps from 1 pod's worth to 32 pods' and stays. The HPA may
    // add max(4 pods, 100%) per 15 s sync: 1 → 5 → 10 → 20 → 32, four
    // syncs. Syncing every 15 s, as the HPA does and the default tick
    // replays, those take 45 s and the last pods are ready 2 minutes 45 s
    // after the jump; deciding once a minute (`--tick 1m`, as earlier
    // versions replayed) they take three minutes, ready after five.
    let mut v = vec![100.0; 2 * 288];
    v.extend(vec![3200.0; 288]);
    let s = Series::new(
        DateTime::from_timestamp(0, 0).unwrap(),
        TimeDelta::minutes(5),
        v,
    );
    let run = |tick: Option<TimeDelta>| {
        let mut bt = backtest(&s, &[("mode", "reactive")], 24);
        bt.tick = tick;
        bt.run(&Quiet).unwrap().report
    };
    let coarse = run(Some(TimeDelta::minutes(1)));
    let fine = run(None);
    assert_eq!((coarse.step_seconds, fine.step_seconds), (60.0, 15.0));
    assert_eq!(fine.steps, 4 * coarse.steps - 3);
    let (c, f) = (&coarse.policies.hpa, &fine.policies.hpa);
    assert_eq!(c.under_provisioned_minutes, 5.0);
    assert_eq!(f.under_provisioned_minutes, 2.75);
    // The same count is reached, and paid for 15 s at a time.
    assert_eq!((c.max_replicas, f.max_replicas), (32, 32));
    assert!((c.replica_hours - f.replica_hours).abs() < 0.5);
}

#[test]
fn steps_count_the_scored_ticks_whatever_the_warm_up() {
    // 15 s ticks from the first sample: a warm-up of 100 s leaves ticks 0–6
    // (0 s to 90 s) unscored, as does 105 s; 0 s scores every tick.
    let s = seasonal(3);
    let steps = |warmup: TimeDelta| {
        let mut bt = backtest(&s, &[("mode", "reactive")], 24);
        bt.warmup = warmup;
        bt.startup = TimeDelta::zero();
        bt.run(&Quiet).unwrap().report.steps
    };
    let all = steps(TimeDelta::zero());
    assert_eq!(all, (3 * 288 - 1) * 20 + 1);
    assert_eq!(steps(TimeDelta::seconds(100)), all - 7);
    assert_eq!(steps(TimeDelta::seconds(105)), all - 7);
    assert_eq!(steps(TimeDelta::seconds(106)), all - 8);
}

#[test]
fn bad_configurations_are_refused_with_the_fix() {
    let s = seasonal(3);
    let mut bt = backtest(&s, &[], 6);
    bt.warmup = TimeDelta::days(10);
    let e = bt.run(&Quiet).err().unwrap().to_string();
    assert!(e.contains("warm-up"), "{e}");

    let bt = backtest(
        &s,
        &[
            ("p99LatencyQuery", "demo"),
            ("p99LatencyTarget", "0.3"),
            ("connectionsQuery", ""),
            ("connectionsTarget", ""),
        ],
        6,
    );
    let e = bt.run(&Quiet).err().unwrap().to_string();
    assert!(e.contains("not additive"), "{e}");

    let mut bt = backtest(&s, &[], 6);
    bt.downstream_tolerance = 1.5;
    let e = bt.run(&Quiet).err().unwrap().to_string();
    assert!(e.contains("--hpa-tolerance"), "{e}");

    // A tick longer than the 5-minute step would skip samples.
    let mut bt = backtest(&s, &[], 6);
    bt.tick = Some(TimeDelta::minutes(10));
    let e = bt.run(&Quiet).err().unwrap().to_string();
    assert!(
        e.contains("--tick must be between 1s and the data step")
            && e.contains("600s with a data step of 300s"),
        "{e}"
    );
}

#[test]
fn short_history_falls_back_and_says_so() {
    let s = seasonal(4);
    let out = backtest(&s, &[("seasonality", "1d,1w")], 6)
        .run(&Quiet)
        .unwrap();
    assert!(
        out.report
            .notes
            .iter()
            .any(|n| n.contains("longest season needs 2w")),
        "{:?}",
        out.report.notes
    );
}

#[test]
fn early_trainings_short_of_two_seasons_and_a_retrain_past_the_data_are_noted() {
    // Five days, a 2-day longest season (two of which are 4 days), scoring
    // from day 1: the file is long enough, but trainings in the first three
    // scored days are not.
    let s = seasonal(5);
    let mut bt = backtest(&s, &[("seasonality", "1d,2d")], 6);
    bt.warmup = TimeDelta::days(1);
    let notes = bt.run(&Quiet).unwrap().report.notes;
    assert!(
        notes.iter().any(
            |n| n.contains("longest season needs 4d of history: trainings before")
                && n.contains("the first 3d (75%) of the scored span")
        ),
        "{notes:?}"
    );
    // The first boundary has too little data to train on; it is in the
    // warm-up, and the note says it changed no scored decision.
    assert!(
        notes
            .iter()
            .any(|n| n.contains("trainings failed") && n.contains("all in the warm-up")),
        "{notes:?}"
    );
    // No boundary at all within 3 days: said, not silently reactive.
    let s = seasonal(3);
    let mut bt = backtest(&s, &[], 24 * 30);
    bt.warmup = TimeDelta::days(1);
    let notes = bt.run(&Quiet).unwrap().report.notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no training boundary falls within")),
        "{notes:?}"
    );
}

#[test]
fn a_model_cache_is_reused_only_for_the_same_series_and_training() {
    let a = seasonal(5);
    // The same shape, other values: a cache must not hand it `a`'s models.
    let mut b = a.clone();
    for v in b.values.iter_mut() {
        *v *= 1.5;
    }
    let alone =
        |s: &Series, extra: &[(&str, &str)]| backtest(s, extra, 6).run(&Quiet).unwrap().report;
    let mut cache = ModelCache::default();
    let stab = [("scaleDownStabilization", "60s")];
    let q = [("forecastQuantile", "0.75")];
    for (s, extra) in [
        (&a, &[][..]),
        (&a, &stab[..]),
        (&b, &stab[..]),
        (&b, &q[..]),
    ] {
        let shared = backtest(s, extra, 6)
            .run_cached(&mut cache, &Quiet)
            .unwrap()
            .report;
        assert_eq!(shared, alone(s, extra), "{extra:?}");
    }
    // And the settings changed the outcome, so the comparison has teeth.
    assert_ne!(
        alone(&b, &stab).policies.foresight,
        alone(&b, &q).policies.foresight
    );
}

/// `mode: holding` trains a need model that other modes do not, so it must
/// not be handed their models (a sweep of `mode=predictive,holding` once
/// replayed holding on the predictive run's models, without a need model);
/// and a target or bound changes the needs it learns.
#[test]
fn a_model_cache_tells_holding_models_from_the_others() {
    let a = seasonal(5);
    let alone = |extra: &[(&str, &str)]| backtest(&a, extra, 6).run(&Quiet).unwrap().report;
    let mut cache = ModelCache::default();
    let holding = [("mode", "holding"), ("step", "5m")];
    let predictive = [("mode", "predictive"), ("step", "5m")];
    let bounded = [
        ("mode", "holding"),
        ("step", "5m"),
        ("maxReplicaCount", "12"),
    ];
    for extra in [&predictive[..], &holding[..], &bounded[..], &predictive[..]] {
        let shared = backtest(&a, extra, 6)
            .run_cached(&mut cache, &Quiet)
            .unwrap()
            .report;
        assert_eq!(shared, alone(extra), "{extra:?}");
    }
    assert_ne!(
        alone(&holding).policies.foresight,
        alone(&bounded).policies.foresight
    );
}

/// A replay of a longer span of the same samples trains only the
/// boundaries past the shorter one's, and a shorter one trains nothing: in
/// either order the reports are those of runs that trained everything, and
/// a series that differs before the shorter one's end trains afresh.
#[test]
fn a_model_cache_serves_a_longer_or_shorter_span_of_the_same_samples() {
    let full = seasonal(6);
    let head = |days: usize| Series::new(full.start, full.step, full.values[..days * 288].to_vec());
    let (four, five) = (head(4), head(5));
    let mut changed = five.clone();
    changed.values[300] += 500.0;
    let alone = |s: &Series| backtest(s, &[], 6).run(&Quiet).unwrap().report;
    let trained = std::sync::atomic::AtomicUsize::new(0);
    struct Count<'a>(&'a std::sync::atomic::AtomicUsize);
    impl foresight::backtest::Progress for Count<'_> {
        fn training(&self, _: usize, _: usize) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn replay(&self, _: usize, _: usize) {}
    }
    let mut cache = ModelCache::keeping_all();
    let mut counts = Vec::new();
    for s in [&four, &full, &five, &changed] {
        trained.store(0, std::sync::atomic::Ordering::Relaxed);
        let shared = backtest(s, &[], 6)
            .run_cached(&mut cache, &Count(&trained))
            .unwrap()
            .report;
        assert_eq!(shared, alone(s), "{} samples", s.len());
        counts.push(trained.load(std::sync::atomic::Ordering::Relaxed));
    }
    // Four days at 6-hour retrains: 16 boundaries; six days: 24, of which
    // the first 16 were trained already; five days: all known; the changed
    // series: all 20 again.
    assert_eq!(counts, [16, 8, 0, 20]);
}

#[test]
fn last_remediation_holds_the_scale_down_for_the_cooldown() {
    // Ten pods' worth of demand for two days, then one pod's worth. A
    // remediation acted at the drop (`lastRemediation`, as the engine
    // stamps it): for `cooldown` after it, nothing scales down.
    let start = DateTime::from_timestamp(1_700_006_400, 0).unwrap(); // a midnight, UTC
    let mut v = vec![1000.0; 2 * 288];
    v.extend(vec![100.0; 288]);
    let s = Series::new(start, TimeDelta::minutes(5), v);
    let drop = start + TimeDelta::days(2);
    let base = [("mode", "reactive"), ("cooldown", "30m")];
    let at = |out: &foresight::backtest::Outcome, minutes: i64| {
        let ms = (drop + TimeDelta::minutes(minutes)).timestamp_millis();
        let i = out
            .timeline
            .timestamp_ms
            .iter()
            .position(|t| *t == ms)
            .unwrap();
        out.timeline.replicas[0][i]
    };
    let free = backtest(&s, &base, 24).run(&Quiet).unwrap();
    let stamp = drop.to_rfc3339();
    let mut with = base.to_vec();
    with.push(("lastRemediation", stamp.as_str()));
    let held = backtest(&s, &with, 24).run(&Quiet).unwrap();
    assert_eq!(at(&free, -5), 10);
    assert_eq!(at(&held, -5), 10);
    // Without it, one pod goes every 5 minutes after the 5-minute window.
    assert!(at(&free, 25) < 10, "{}", at(&free, 25));
    // With it, all ten stay through the cooldown, then the descent starts.
    assert_eq!(at(&held, 25), 10);
    assert!(at(&held, 60) < 10, "{}", at(&held, 60));
    assert!(held.report.decisions.limiter.contains_key("cooldown"));
    assert!(!free.report.decisions.limiter.contains_key("cooldown"));
}
