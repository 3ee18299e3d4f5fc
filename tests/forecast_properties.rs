//! Properties of the forecaster that must hold for any history: it never
//! panics, its output is finite and ordered `0 ≤ lower ≤ point ≤ upper`, and
//! a history with enough finite values always gets a forecast. The
//! histories mix the shapes that break forecasting libraries: all zeros,
//! constants, huge spikes, runs of NaN (gaps), NaN at either end, and
//! histories shorter than a season.

use chrono::{DateTime, TimeDelta};
use foresight::domain::Series;
use foresight::forecast::{MAX_MODELLED, ModelKind, TIME_BINS, TrainSpec, refit, train};
use proptest::prelude::*;

/// One stretch of a history.
#[derive(Debug, Clone)]
enum Piece {
    /// A daily wave around a level.
    Wave { level: f64, amp: f64, len: usize },
    /// The same value repeated (zeros included).
    Flat { value: f64, len: usize },
    /// A single huge value.
    Spike(f64),
    /// Missing samples.
    Gap(usize),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => (0.0..1e4f64, 0.0..1e3f64, 1usize..120)
            .prop_map(|(level, amp, len)| Piece::Wave { level, amp, len }),
        2 => (prop_oneof![Just(0.0), 0.0..1e3f64], 1usize..80)
            .prop_map(|(value, len)| Piece::Flat { value, len }),
        1 => (1e6..1e12f64).prop_map(Piece::Spike),
        1 => (1usize..30).prop_map(Piece::Gap),
    ]
}

fn history() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(piece(), 1..8).prop_map(|pieces| {
        let mut y = Vec::new();
        for p in pieces {
            match p {
                Piece::Wave { level, amp, len } => {
                    let start = y.len();
                    y.extend((start..start + len).map(|i| {
                        let t = i as f64;
                        (level + amp * (t * std::f64::consts::TAU / 24.0).sin()).max(0.0)
                    }));
                }
                Piece::Flat { value, len } => y.extend(std::iter::repeat_n(value, len)),
                Piece::Spike(v) => y.push(v),
                Piece::Gap(len) => y.extend(std::iter::repeat_n(f64::NAN, len)),
            }
        }
        y
    })
}

fn spec() -> impl Strategy<Value = TrainSpec> {
    (
        prop::sample::select(vec![vec![], vec![24], vec![24, 168], vec![12, 24]]),
        any::<bool>(),
        1usize..60,
        0.5..0.99f64,
    )
        .prop_map(|(periods, detect, horizon, level)| TrainSpec {
            periods,
            detect,
            horizon,
            level,
            prophet: false,
            need: None,
        })
}

fn series(values: Vec<f64>) -> Series {
    Series::new(
        DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        TimeDelta::hours(1),
        values,
    )
}

/// Observed values: fewer than 8 is the one documented reason to fail.
fn finite_count(y: &[f64]) -> usize {
    y.iter().filter(|v| v.is_finite()).count()
}

fn check(t: &foresight::forecast::Trained, spec: &TrainSpec) -> Result<(), TestCaseError> {
    let f = &t.forecast;
    prop_assert_eq!(f.point.len(), spec.horizon);
    prop_assert_eq!(f.lower.len(), spec.horizon);
    prop_assert_eq!(f.upper.len(), spec.horizon);
    for i in 0..spec.horizon {
        let (l, p, u) = (f.lower[i], f.point[i], f.upper[i]);
        prop_assert!(
            l.is_finite() && p.is_finite() && u.is_finite(),
            "step {i}: non-finite {l} {p} {u} ({})",
            t.model
        );
        prop_assert!(
            0.0 <= l && l <= p && p <= u,
            "step {i}: not ordered 0 ≤ {l} ≤ {p} ≤ {u} ({})",
            t.model
        );
    }
    prop_assert!(t.width_per_scale.is_finite() && t.width_per_scale >= 0.0);
    if let Some(a) = &t.anchor {
        prop_assert!((0.1..=0.99).contains(&a.phi), "anchor phi {}", a.phi);
        prop_assert!(!a.half_width.is_empty());
        prop_assert!(
            a.half_width.iter().all(|w| w.is_finite() && *w >= 0.0),
            "anchor widths {:?}",
            a.half_width
        );
    }
    if let Some(m) = t.validation_mase {
        prop_assert!(m.is_finite() && m >= 0.0, "validation MASE {m}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_history_gets_an_ordered_finite_forecast_or_a_clean_error(
        y in history(),
        spec in spec(),
    ) {
        let usable = finite_count(&y);
        match train(&series(y), &spec) {
            Ok(t) => check(&t, &spec)?,
            Err(e) => prop_assert!(
                usable < 8,
                "{usable} usable values, yet training failed: {e}"
            ),
        }
    }

    #[test]
    fn a_refit_of_any_choice_on_any_history_is_ordered_and_finite(
        first in history(),
        second in history(),
        spec in spec(),
    ) {
        // The hourly refits reuse a selection made on an earlier window; the
        // newer window may be shorter, flatter or gappier than the first.
        let Ok(chosen) = train(&series(first), &spec) else {
            return Ok(());
        };
        let usable = finite_count(&second);
        match refit(&series(second), &spec, &chosen.choice()) {
            Ok(t) => check(&t, &spec)?,
            Err(e) => prop_assert!(usable < 8, "{usable} usable values: {e}"),
        }
    }
}

#[test]
fn adversarial_histories_each_get_an_answer() {
    let spec = TrainSpec {
        periods: vec![24, 168],
        detect: false,
        horizon: 48,
        level: 0.95,
        prophet: false,
        // `mode: holding`'s need model learns from the same adversarial
        // histories, and must not panic on them either.
        need: Some(foresight::forecast::NeedSpec {
            target: 1.0,
            min_replicas: 0,
            max_replicas: 1_000,
        }),
    };
    let mut spikes = vec![0.0; 400];
    spikes[123] = 1e12;
    spikes[399] = 5e11;
    let mut nan_runs: Vec<f64> = (0..500).map(|i| (i % 24) as f64).collect();
    for r in [0..10, 100..160, 300..301, 490..500] {
        nan_runs[r].fill(f64::NAN);
    }
    let cases: Vec<(&str, Vec<f64>)> = vec![
        ("all zeros", vec![0.0; 500]),
        ("constant", vec![42.5; 500]),
        ("spikes on zeros", spikes),
        ("NaN runs at both ends and inside", nan_runs),
        ("eight values", (0..8).map(f64::from).collect()),
        (
            "one period and a bit",
            (0..30).map(|i| (i % 24) as f64).collect(),
        ),
    ];
    for (name, y) in cases {
        let t = train(&series(y.clone()), &spec)
            .unwrap_or_else(|e| panic!("{name}: training failed: {e}"));
        let f = &t.forecast;
        for i in 0..48 {
            assert!(
                f.lower[i].is_finite() && f.upper[i].is_finite(),
                "{name}: step {i}"
            );
            assert!(
                0.0 <= f.lower[i] && f.lower[i] <= f.point[i] && f.point[i] <= f.upper[i],
                "{name}: step {i}: {} {} {}",
                f.lower[i],
                f.point[i],
                f.upper[i]
            );
        }
        let need = t
            .need
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no need model"));
        assert!((1..=MAX_MODELLED).contains(&need.n_max), "{name}");
        let table = need.table();
        for bin in 0..TIME_BINS {
            for last in 1..=need.n_max {
                for tercile in 0..3 {
                    let sum: f64 = table.next(bin, last, tercile).iter().sum();
                    assert!((sum - 1.0).abs() < 1e-9, "{name}: row sums to {sum}");
                }
            }
        }
        if name == "all zeros" || name == "constant" {
            assert_eq!(t.model, ModelKind::Naive, "{name}");
            assert!(f.point.iter().all(|p| *p == y[0]), "{name}");
        }
    }
    // Too little to forecast is an error, not a panic.
    let err = train(&series(vec![1.0, f64::NAN, 3.0]), &spec).unwrap_err();
    assert!(err.to_string().contains("not enough history"), "{err}");
    let err = train(&series(vec![f64::NAN; 50]), &spec).unwrap_err();
    assert!(err.to_string().contains("not enough history"), "{err}");
}
