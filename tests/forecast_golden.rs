//! Golden values for model selection and interval calibration
//! (`foresight::forecast::train`), computed by an independent reference:
//! the algorithm as documented in README "How forecasts are made",
//! re-implemented in Python with numpy 2.4 (no code shared with the Rust),
//! on histories too short for MSTL so that every candidate is exactly
//! computable: seasonal naive and naive on four rolling windows of
//! `min(horizon, n / 5)` steps, scored on the windows every eligible
//! candidate forecast, the interval calibrated on leave-one-window-out
//! selection errors, the conformal rank `ceil((m + 1) · level)`, widened by
//! 1.1. The script, run as `python3 golden_select.py`:
//!
//! ```python
//! import numpy as np, math
//! def snaive(y, p, h): return np.array([y[len(y) - p + i % p] for i in range(h)])
//! def naive(y, h): return np.full(h, y[-1])
//! def train(y, period, h, level):
//!     y = np.asarray(y, float); n = len(y)
//!     assert n < 2 * period + 1 + h          # MSTL is not a candidate
//!     cands = []
//!     if n >= period + h: cands.append(('sn', lambda x, k: snaive(x, period, k) if len(x) >= period else None))
//!     cands.append(('naive', lambda x, k: naive(x, k)))
//!     scale = np.mean(np.abs(y[period:] - y[:-period]))
//!     v = max(min(h, n // 5), 1)
//!     errs = {c: [] for c, _ in cands}
//!     for o in range(1, 5):
//!         origin = n - o * v
//!         if origin < 8: break
//!         for c, f in cands:
//!             p = f(y[:origin], v)
//!             errs[c].append(None if p is None else y[origin:origin + v] - np.maximum(p, 0))
//!     elig = [c for c, _ in cands if errs[c][0] is not None]
//!     W = [w for w in range(len(errs[elig[0]])) if all(errs[c][w] is not None for c in elig)]
//!     tot = lambda c, skip: sum(np.abs(errs[c][w]).sum() for w in W if w != skip)
//!     def best(skip):
//!         b = None
//!         for c in elig:
//!             if b is None or tot(c, skip) < tot(b, skip): b = c
//!         return b
//!     b = best(None)
//!     mase = tot(b, None) / (len(W) * v) / scale
//!     cal = np.concatenate([np.abs(errs[best(w)][w]) for w in W]) if len(W) >= 2 else np.abs(errs[b][W[0]])
//!     cal = np.sort(cal); m = len(cal)
//!     rank = min(max(math.ceil((m + 1) * level), 1), m)
//!     width = 1.1 * cal[rank - 1]
//!     point = np.maximum(dict(cands)[b](y, h), 0)
//!     return b, mase, point, np.maximum(point - width, 0), point + width, width / scale
//! t = np.arange(60, dtype=float)
//! A = 20 + 8 * np.sin(2 * np.pi * t / 24) + 0.3 * t + ((t * 37) % 11) / 2
//! B = 5 + 1.5 * t + ((t * 13) % 7)
//! np.set_printoptions(precision=17, linewidth=200)
//! for name, y in [('A', A), ('B', B)]:
//!     b, mase, p, lo, up, wps = train(y, 24, 12, 0.9)
//!     print(name, b, repr(mase), repr(wps)); print(' point', repr(p)); print(' lower', repr(lo)); print(' upper', repr(up))
//! ```
//!
//! It printed the arrays below (17 significant digits).

use chrono::{DateTime, TimeDelta};
use foresight::domain::Series;
use foresight::forecast::{ModelKind, TrainSpec, train};

fn history(f: impl Fn(f64) -> f64) -> Series {
    Series::new(
        DateTime::from_timestamp(0, 0).unwrap(),
        TimeDelta::hours(1),
        (0..60).map(|t| f(f64::from(t))).collect(),
    )
}

fn spec() -> TrainSpec {
    TrainSpec {
        periods: vec![24],
        detect: false,
        horizon: 12,
        level: 0.9,
        prophet: false,
        need: None,
    }
}

fn close(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "{name}[{i}]: got {g}, reference {w}"
        );
    }
}

#[test]
fn seasonal_naive_wins_a_seasonal_history_with_the_reference_interval() {
    // A = 20 + 8 sin(2πt/24) + 0.3t + ((37t) mod 11)/2
    let s = history(|t| {
        20.0 + 8.0 * (2.0 * std::f64::consts::PI * t / 24.0).sin()
            + 0.3 * t
            + ((t * 37.0) % 11.0) / 2.0
    });
    let t = train(&s, &spec()).unwrap();
    assert_eq!(t.model, ModelKind::SeasonalNaive { period: 24 });
    let mase = t.validation_mase.unwrap();
    assert!((mase - 1.0000000000000002).abs() < 1e-12, "MASE {mase}");
    assert!((t.width_per_scale - 1.7045349730976178).abs() < 1e-12);
    close(
        "point",
        &t.forecast.point,
        &[
            31.300000000000004,
            31.529447639179836,
            31.900000000000006,
            27.043145750507627,
            28.07179676972449,
            29.572593389687455,
            26.1,
            28.672593389687453,
            26.271796769724485,
            29.843145750507624,
            33.79999999999999,
            32.529447639179836,
        ],
    );
    close(
        "lower",
        &t.forecast.lower,
        &[
            18.98,
            19.20944763917983,
            19.580000000000002,
            14.723145750507623,
            15.751796769724486,
            17.25259338968745,
            13.779999999999998,
            16.35259338968745,
            13.951796769724481,
            17.52314575050762,
            21.479999999999986,
            20.20944763917983,
        ],
    );
    close(
        "upper",
        &t.forecast.upper,
        &[
            43.620000000000005,
            43.84944763917984,
            44.22000000000001,
            39.36314575050763,
            40.39179676972449,
            41.89259338968746,
            38.42,
            40.99259338968746,
            38.59179676972449,
            42.163145750507624,
            46.11999999999999,
            44.84944763917984,
        ],
    );
}

#[test]
fn naive_wins_a_trend_with_the_reference_interval() {
    // B = 5 + 1.5t + ((13t) mod 7)
    let s = history(|t| 5.0 + 1.5 * t + ((t * 13.0) % 7.0));
    let t = train(&s, &spec()).unwrap();
    assert_eq!(t.model, ModelKind::Naive);
    let mase = t.validation_mase.unwrap();
    assert!((mase - 0.28923076923076924).abs() < 1e-12, "MASE {mase}");
    assert!((t.width_per_scale - 0.594).abs() < 1e-12);
    close("point", &t.forecast.point, &[97.5; 12]);
    close("lower", &t.forecast.lower, &[76.05; 12]);
    close("upper", &t.forecast.upper, &[118.95; 12]);
}
