//! Golden values for the M4 accuracy measures and baselines in
//! `foresight::forecast`, computed by an independent reference: Python with
//! numpy 2.4 and statsmodels 0.15 (statsmodels' `acf` and
//! `seasonal_decompose` implement the same definitions as R's `acf` and
//! `decompose`, which M4's benchmark code calls). The script, run as
//! `python3 golden.py` in a venv with `pip install numpy statsmodels`:
//!
//! ```python
//! import numpy as np
//! from statsmodels.tsa.stattools import acf
//! from statsmodels.tsa.seasonal import seasonal_decompose
//! def smape(y, f):
//!     y, f = np.asarray(y, float), np.asarray(f, float)
//!     d = np.abs(y) + np.abs(f)
//!     return np.mean(np.where(d == 0, 0.0, 200 * np.abs(y - f) / np.where(d == 0, 1, d)))
//! def scale(x, m): x = np.asarray(x, float); return np.mean(np.abs(x[m:] - x[:-m]))
//! def seas(x, m):
//!     r = acf(x, nlags=m, fft=False)[1:]
//!     return r[m - 1], 1.645 * np.sqrt((1 + 2 * np.sum(r[:m - 1] ** 2)) / len(x))
//! def naive2(x, m, h):
//!     x = np.asarray(x, float); n = len(x)
//!     si = seasonal_decompose(x, model="multiplicative", period=m).seasonal
//!     return x[-1] / si[-1] * np.array([si[n - m + k % m] for k in range(h)])
//! print("smape", repr(smape([100, 200, 0, 50], [110, 180, 0, 0])))
//! ins = [10, 20, 30, 12, 22, 33, 11, 24, 31]
//! s = scale(ins, 3); e = np.mean(np.abs(np.array([13, 23, 30.]) - np.array([11, 24, 31.])))
//! print("scale", repr(s), "mase", repr(e / s))
//! print("owa", repr((12.5 / 18.2 + 1.1 / 2.4) / 2))
//! X = [30, 50, 80, 40, 33, 54, 86, 41, 35, 58, 90, 45, 36, 60, 95, 47]
//! print("seas X m4", seas(X, 4))
//! Y = [5, 7, 6, 8, 7, 5, 6, 7, 8, 6, 5, 7, 6, 8, 7, 6]
//! print("seas Y m4", seas(Y, 4))
//! print("idx X m4", seasonal_decompose(np.array(X, float), model="multiplicative", period=4).seasonal[:4])
//! print("naive2 X m4 h6", naive2(X, 4, 6))
//! Z = [20, 35, 15, 22, 38, 16, 24, 40, 18, 25, 43, 19]
//! print("seas Z m3", seas(Z, 3))
//! print("idx Z m3", seasonal_decompose(np.array(Z, float), model="multiplicative", period=3).seasonal[:3])
//! print("naive2 Z m3 h4", naive2(Z, 3, 4))
//! ```
//!
//! The same reference, run over all of M4 Hourly with the last 48 values held
//! out, reproduces `foresight eval`'s sNaive and Naive2 rows to six decimals
//! (see README, "Forecast accuracy").

use std::time::Duration;

use foresight::forecast::{
    Method, ModelKind, Scores, SeriesEval, coverage, mase, mase_scale, naive2, owa,
    seasonal_indices, seasonal_naive, seasonality_test, smape, summarise,
};

const X: [f64; 16] = [
    30., 50., 80., 40., 33., 54., 86., 41., 35., 58., 90., 45., 36., 60., 95., 47.,
];
const Y: [f64; 16] = [
    5., 7., 6., 8., 7., 5., 6., 7., 8., 6., 5., 7., 6., 8., 7., 6.,
];
const Z: [f64; 12] = [20., 35., 15., 22., 38., 16., 24., 40., 18., 25., 43., 19.];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

fn assert_all_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(close(*g, *w), "{got:?} vs {want:?}");
    }
}

#[test]
fn smape_golden_with_a_zero_pair() {
    // Terms 200*10/210, 200*20/380, 0 (y = f = 0), 200*50/50 = 200.
    // Reference: smape 55.012531328320804
    let v = smape(&[100., 200., 0., 50.], &[110., 180., 0., 0.]).unwrap();
    assert!(close(v, 55.012531328320804), "{v}");
}

#[test]
fn smape_edge_cases() {
    // All zeros: an exact forecast, not 0/0.
    assert_eq!(smape(&[0., 0.], &[0., 0.]), Some(0.0));
    // Actual zero, forecast not: the maximum, 200.
    assert_eq!(smape(&[0.], &[5.]), Some(200.0));
    // Missing actuals are skipped, not NaN.
    assert_eq!(smape(&[f64::NAN, 10.], &[3., 10.]), Some(0.0));
    assert_eq!(smape(&[], &[]), None);
    assert_eq!(smape(&[f64::NAN], &[1.]), None);
}

#[test]
fn mase_golden() {
    // In-sample lag-3 differences 2,2,3,1,2,2: scale 12/6 = 2.
    // Errors |13-11|, |23-24|, |30-31| = 2,1,1: MAE 4/3, MASE 2/3.
    // Reference: scale 2.0 mase 0.6666666666666666
    let ins = [10., 20., 30., 12., 22., 33., 11., 24., 31.];
    let scale = mase_scale(&ins, 3).unwrap();
    assert_eq!(scale, 2.0);
    let v = mase(&[13., 23., 30.], &[11., 24., 31.], scale).unwrap();
    assert!(close(v, 0.6666666666666666), "{v}");
}

#[test]
fn mase_edge_cases() {
    // A constant history has scale 0: MASE is undefined, never inf or NaN.
    let scale = mase_scale(&[4.0; 50], 24).unwrap();
    assert_eq!(scale, 0.0);
    assert_eq!(mase(&[4.0, 5.0], &[4.0, 4.0], scale), None);
    // Shorter than one season: no seasonal difference exists.
    assert_eq!(mase_scale(&[1., 2., 3.], 24), None);
    assert_eq!(mase_scale(&[1., 2., 3.], 0), None);
    // Missing values drop out of the scale's pairs.
    assert_eq!(mase_scale(&[1., f64::NAN, 3., 7.], 1), Some(4.0));
    assert_eq!(mase(&[1.], &[1.], f64::NAN), None);
}

#[test]
fn owa_golden() {
    // (12.5/18.2 + 1.1/2.4) / 2; reference: owa 0.57257326007326
    let v = owa(12.5, 1.1, 18.2, 2.4).unwrap();
    assert!(close(v, 0.57257326007326), "{v}");
    assert_eq!(owa(18.2, 2.4, 18.2, 2.4), Some(1.0));
    assert_eq!(owa(1.0, 1.0, 0.0, 2.4), None);
    assert_eq!(owa(1.0, 1.0, 1.0, 0.0), None);
}

#[test]
fn coverage_counts_bounds_as_inside_and_skips_missing() {
    let c = coverage(
        &[1., 5., 10., f64::NAN],
        &[1., 6., 0., 0.],
        &[2., 9., 10., 1.],
    );
    assert_eq!(c, Some(2.0 / 3.0));
    assert_eq!(coverage(&[f64::NAN], &[0.], &[1.]), None);
}

#[test]
fn seasonality_test_golden() {
    // Reference: seas X m4 (0.7330349408027722, 0.5694678003174015): seasonal.
    let t = seasonality_test(&X, 4).unwrap();
    assert!(close(t.acf, 0.7330349408027722), "{t:?}");
    assert!(close(t.limit, 0.5694678003174015), "{t:?}");
    assert!(t.seasonal);
    // Reference: seas Y m4 (-0.03125, 0.49256872172081306): not seasonal.
    let t = seasonality_test(&Y, 4).unwrap();
    assert!(close(t.acf, -0.03125), "{t:?}");
    assert!(close(t.limit, 0.49256872172081306), "{t:?}");
    assert!(!t.seasonal);
    // Odd season. Reference: seas Z m3 (0.7210293115201091, 0.6128511793492236).
    let t = seasonality_test(&Z, 3).unwrap();
    assert!(close(t.acf, 0.7210293115201091), "{t:?}");
    assert!(close(t.limit, 0.6128511793492236), "{t:?}");
    assert!(t.seasonal);
}

#[test]
fn seasonality_test_does_not_apply_to_short_constant_or_non_seasonal_data() {
    // n < 3m: M4 calls such series non-seasonal without testing.
    assert_eq!(seasonality_test(&X[..11], 4), None);
    assert_eq!(seasonality_test(&[7.0; 100], 24), None);
    assert_eq!(seasonality_test(&X, 1), None);
    assert_eq!(seasonality_test(&[1., f64::NAN, 3., 4., 5., 6.], 2), None);
}

#[test]
fn seasonal_indices_golden() {
    // Reference: idx X m4 (2x4 centred moving average, even season).
    let si = seasonal_indices(&X, 4).unwrap();
    assert_all_close(
        &si,
        &[
            0.62499977026693,
            1.0164814892110108,
            1.5870944313529542,
            0.7714243091691049,
        ],
    );
    // Reference: idx Z m3 (plain 3-term moving average, odd season).
    let si = seasonal_indices(&Z, 3).unwrap();
    assert_all_close(
        &si,
        &[0.8837648973620239, 1.4860958354900602, 0.6301392671479162],
    );
    // Non-positive data has no multiplicative decomposition.
    assert_eq!(seasonal_indices(&[0.0; 12], 4), None);
    assert_eq!(seasonal_indices(&X[..7], 4), None);
}

#[test]
fn naive2_golden() {
    // Reference: naive2 X m4 h6.
    let f = naive2(&X, 4, 6).unwrap();
    assert!(f.seasonal);
    assert_all_close(
        &f.point,
        &[
            38.07890009868276,
            61.93041809166629,
            96.69573202059559,
            47.0,
            38.07890009868276,
            61.93041809166629,
        ],
    );
    // Reference: naive2 Z m3 h4.
    let f = naive2(&Z, 3, 4).unwrap();
    assert!(f.seasonal);
    assert_all_close(
        &f.point,
        &[
            26.647336430689187,
            44.808857892811154,
            19.0,
            26.647336430689187,
        ],
    );
}

#[test]
fn naive2_falls_back_to_naive() {
    // Fails the seasonality test.
    let f = naive2(&Y, 4, 3).unwrap();
    assert!(!f.seasonal);
    assert_eq!(f.point, vec![6.0; 3]);
    // Too short to test (n < 3m).
    let f = naive2(&X[..11], 4, 2).unwrap();
    assert!(!f.seasonal);
    assert_eq!(f.point, vec![90.0; 2]);
    // Constant.
    assert_eq!(naive2(&[3.0; 80], 24, 2).unwrap().point, vec![3.0; 2]);
    // Empty history is an error, not a panic.
    assert!(naive2(&[], 4, 2).is_err());
}

#[test]
fn seasonal_naive_repeats_the_last_season() {
    assert_eq!(
        seasonal_naive(&X, 4, 6).unwrap(),
        vec![36., 60., 95., 47., 36., 60.]
    );
    assert!(seasonal_naive(&X[..3], 4, 6).is_err());
}

fn scores(smape: f64, mase: Option<f64>, inside: Option<usize>) -> Scores {
    Scores {
        smape,
        mase,
        inside,
        points: 4,
    }
}

fn eval(f: Scores, sn: Scores, n2: Scores) -> SeriesEval {
    SeriesEval {
        scores: [f, sn, n2],
        model: ModelKind::Naive,
        fit_time: Duration::from_millis(10),
        naive2_seasonal: true,
    }
}

#[test]
fn owa_is_computed_from_dataset_means_and_mase_excludes_undefined_scales() {
    let evals = [
        eval(
            scores(10., Some(1.), Some(4)),
            scores(15., Some(1.5), None),
            scores(20., Some(2.), None),
        ),
        eval(
            scores(30., Some(1.), Some(2)),
            scores(25., Some(2.5), None),
            scores(20., Some(4.), None),
        ),
        // A constant in-sample history: sMAPE counts, MASE does not.
        eval(
            scores(20., None, Some(3)),
            scores(20., None, None),
            scores(20., None, None),
        ),
    ];
    let s = summarise(&evals).unwrap();
    assert_eq!(s.series, 3);
    assert_eq!(s.mase_excluded, 1);
    let f = s.method(Method::Foresight).unwrap();
    // Means: foresight sMAPE 20, MASE 1; Naive2 sMAPE 20, MASE 3.
    // OWA = (20/20 + 1/3) / 2 = 2/3. The mean of per-series OWAs would be
    // ((0.5 + 0.5)/2 + (1.5 + 0.25)/2) / 2 = 0.6875: M4 does not do that.
    assert_eq!(f.smape, 20.0);
    assert_eq!(f.mase, Some(1.0));
    assert!(close(f.owa.unwrap(), 2.0 / 3.0), "{f:?}");
    // Pooled coverage: 9 of 12 holdout points.
    assert_eq!(f.coverage, Some(0.75));
    let sn = s.method(Method::SeasonalNaive).unwrap();
    // (20/20 + 2/3) / 2
    assert!(close(sn.owa.unwrap(), 5.0 / 6.0), "{sn:?}");
    assert_eq!(sn.coverage, None);
    assert_eq!(s.method(Method::Naive2).unwrap().owa, Some(1.0));
    assert!(summarise(&[]).is_none());
}

#[test]
fn owa_is_absent_when_every_mase_is_undefined() {
    let e = eval(
        scores(5., None, Some(4)),
        scores(5., None, None),
        scores(5., None, None),
    );
    let s = summarise(&[e]).unwrap();
    for m in &s.methods {
        assert_eq!(m.owa, None);
        assert_eq!(m.mase, None);
        assert!(m.smape.is_finite());
    }
}
