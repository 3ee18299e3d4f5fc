//! Prophet as a forecasting model (issue #3), behind the `prophet` cargo
//! feature. With the feature: Prophet fits a daily-seasonal series with
//! trend and noise, forecasts it accurately and reproducibly, is validated
//! by selection when asked for, and survives adversarial histories. Without
//! it: asking for Prophet fails with an error that names the feature, in
//! the library and on the command line.

mod support;

use support::foresight;

use chrono::{DateTime, TimeDelta};
use foresight::domain::Series;
use foresight::forecast::{ForecastError, TrainSpec, train};

/// Hourly steps in a day: the series' seasonal period.
const DAY: usize = 24;

/// The noiseless signal at step `i`: a level of 200 rising 0.1 per hour,
/// a daily cycle of amplitude 50 and its second harmonic (a sharper peak
/// than a sine, as request traffic has).
fn truth(i: usize) -> f64 {
    let t = i as f64 * std::f64::consts::TAU / DAY as f64;
    200.0 + 0.1 * i as f64 + 50.0 * t.sin() + 15.0 * (2.0 * t).cos()
}

/// `truth` plus noise uniform in ±`amplitude`, from a fixed-seed generator
/// (SplitMix64) so the test sees the same series on every run.
fn noisy(n: usize, amplitude: f64) -> Vec<f64> {
    let mut state: u64 = 0x5eed;
    (0..n)
        .map(|i| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            truth(i) + amplitude * (2.0 * u - 1.0)
        })
        .collect()
}

fn hourly(values: Vec<f64>) -> Series {
    Series::new(
        DateTime::from_timestamp(1_700_000_000, 0).expect("a valid timestamp"),
        TimeDelta::hours(1),
        values,
    )
}

fn spec(prophet: bool) -> TrainSpec {
    TrainSpec {
        periods: vec![DAY],
        detect: false,
        horizon: DAY,
        level: 0.9,
        prophet,
        need: None,
    }
}

/// A long-format CSV of one hourly series with integer timestamps.
fn write_csv(dir: &std::path::Path, values: &[f64]) -> String {
    let mut csv = String::from("series,timestamp,value\n");
    for (i, v) in values.iter().enumerate() {
        csv.push_str(&format!("web,{},{v}\n", i * 3600));
    }
    let path = dir.join("web.csv");
    std::fs::write(&path, csv).expect("cannot write the input");
    path.display().to_string()
}

#[cfg(feature = "prophet")]
mod with_prophet {
    use std::time::Instant;

    use foresight::forecast::{Fitted, Model, ModelKind};

    use super::*;

    fn mae(forecast: &[f64], from: usize) -> f64 {
        forecast
            .iter()
            .enumerate()
            .map(|(h, f)| (f - truth(from + h)).abs())
            .sum::<f64>()
            / forecast.len() as f64
    }

    #[test]
    fn prophet_forecasts_a_daily_seasonal_series_with_trend() {
        // 21 days of hours (504 values) with noise of ±10 (sd 5.8).
        let n = 21 * DAY;
        let y = noisy(n, 10.0);
        let prophet = ModelKind::Prophet { periods: vec![DAY] };

        let started = Instant::now();
        let fitted = prophet.fit(&y).expect("Prophet fits");
        let first_fit = started.elapsed();
        let forecast = fitted.predict(DAY).expect("Prophet predicts");
        assert_eq!(forecast.len(), DAY);
        let prophet_mae = mae(&forecast, n);

        // The same history fitted again gives the same forecast (the seed is
        // fixed), so a selection can be reproduced.
        let started = Instant::now();
        let again = prophet.fit(&y).expect("Prophet fits again");
        let second_fit = started.elapsed();
        assert_eq!(again.predict(DAY).expect("Prophet predicts"), forecast);
        eprintln!(
            "prophet[24] on {n} values: MAE {prophet_mae:.2}; first fit {first_fit:?} (loads the optimizer unless another test did), second {second_fit:?}"
        );

        // Against the noiseless truth. The noise alone has a mean absolute
        // value of 5 and the signal swings over ±65; measured: 0.61. A
        // forecast that lost the trend (2.4 a day) or the second harmonic
        // (amplitude 15) would be well past this bound.
        assert!(prophet_mae < 1.5, "Prophet MAE {prophet_mae}");
        // This is Prophet's own model (Fourier seasonality, linear trend), so
        // it beats MSTL, whose STL seasonal estimate keeps some of the noise
        // (measured: 1.82).
        let mstl = ModelKind::Mstl { periods: vec![DAY] }
            .fit(&y)
            .and_then(|f| f.predict(DAY))
            .expect("MSTL fits");
        let mstl_mae = mae(&mstl, n);
        eprintln!("mstl[24]+ets MAE {mstl_mae:.2}");
        assert!(
            prophet_mae < mstl_mae,
            "Prophet {prophet_mae} against MSTL {mstl_mae}"
        );
    }

    #[test]
    fn selection_validates_prophet_when_asked_and_reports_the_choice() {
        // Validation scores forecasts against noisy actuals: with the noise
        // of the test above (±10) both Prophet and MSTL are off by mostly
        // the noise, and the choice is a near tie (MASE 0.759 against
        // 0.760). With ±0.05 the errors are the models': Prophet's are 0.005
        // per step against the truth on the validation windows, MSTL's 0.03,
        // seasonal naive's 2.4 (a day of trend).
        let n = 21 * DAY;
        let series = hourly(noisy(n, 0.05));
        let with = train(&series, &spec(true)).expect("selection with Prophet");
        let without = train(&series, &spec(false)).expect("selection without Prophet");
        eprintln!(
            "with Prophet: {} (MASE {:?}); without: {} (MASE {:?})",
            with.model, with.validation_mase, without.model, without.validation_mase
        );
        // On this series (smooth Fourier seasonality, linear trend, noise:
        // Prophet's own model) Prophet wins validation and is the model
        // reported, with the periods it was given.
        assert_eq!(with.model, ModelKind::Prophet { periods: vec![DAY] });
        assert_eq!(with.model.to_string(), "prophet[24]");
        // Without the flag it is never a candidate.
        assert!(!matches!(without.model, ModelKind::Prophet { .. }));
        // Having won validation, it validated better than the best of the
        // rest.
        let (w, wo) = (
            with.validation_mase.expect("validated"),
            without.validation_mase.expect("validated"),
        );
        assert!(w < wo, "{w} >= {wo}");
        // Its forecast is the usual shape: horizon steps, ordered bands.
        let f = &with.forecast;
        assert_eq!(f.point.len(), DAY);
        assert!((0..DAY).all(|i| f.lower[i] <= f.point[i] && f.point[i] <= f.upper[i]));
        assert!(mae(&f.point, n) < 0.1, "{}", mae(&f.point, n));
        // The choice survives the state dir's JSON.
        let json = serde_json::to_string(&with.choice()).expect("serialises");
        assert!(json.contains(r#""model":"prophet""#), "{json}");
    }

    #[test]
    fn adversarial_histories_get_a_forecast_or_a_clean_error() {
        let prophet = ModelKind::Prophet { periods: vec![DAY] };
        let trend_only = ModelKind::Prophet { periods: vec![] };
        let mut spikes = vec![0.0; 200];
        spikes[100] = 1e12;
        let cases: Vec<(&str, Vec<f64>)> = vec![
            ("all zeros", vec![0.0; 200]),
            ("constant", vec![42.0; 200]),
            ("ten values", (0..10).map(f64::from).collect()),
            ("two values", vec![1.0, 2.0]),
            ("one value", vec![5.0]),
            ("empty", vec![]),
            ("a spike of 1e12", spikes),
            ("huge values", vec![1e300; 100]),
        ];
        for (name, y) in &cases {
            for kind in [&prophet, &trend_only] {
                // A panic fails the test here; anything else is acceptable
                // if it is an error or finite.
                match kind.fit(y).and_then(|f| f.predict(DAY)) {
                    Ok(p) => assert!(
                        p.len() == DAY && p.iter().all(|v| v.is_finite()),
                        "{kind} on {name}: {p:?}"
                    ),
                    Err(e) => {
                        assert!(
                            !matches!(e, ForecastError::Panicked { .. }),
                            "{kind} on {name}: {e}"
                        );
                        // One short line, whatever failed inside Stan.
                        let message = e.to_string();
                        assert!(
                            !message.contains('\n') && message.len() < 300,
                            "{kind} on {name}: {message}"
                        );
                        eprintln!("{kind} on {name}: {e}");
                    }
                }
            }
            // Through selection: constant and short histories never reach
            // Prophet, and the rest get a sane forecast or a clean error.
            match train(&hourly(y.clone()), &spec(true)) {
                Ok(t) => assert!(
                    t.forecast.point.iter().all(|v| v.is_finite() && *v >= 0.0),
                    "{name}: {:?}",
                    t.forecast.point
                ),
                Err(e) => assert!(
                    matches!(e, ForecastError::InsufficientHistory { .. }),
                    "{name}: {e}"
                ),
            }
        }
        // Ten values are too few for a 24-step season: refused up front.
        assert!(matches!(
            prophet.fit(&cases[2].1),
            Err(ForecastError::InsufficientHistory { .. })
        ));
        // Stan cannot fit a history without variation (its noise scale
        // must be positive): a short, plain error, not its wasm trap.
        for y in [&cases[0].1, &cases[1].1] {
            let err = prophet.fit(y).err().expect("a constant history is refused");
            assert_eq!(
                err.to_string(),
                "model prophet[24] failed: a constant history has no variation for Prophet to fit"
            );
        }
        // Selection forecasts those constants with naive, as without Prophet.
        let t = train(&hourly(cases[1].1.clone()), &spec(true)).expect("a constant is forecast");
        assert_eq!(t.model, ModelKind::Naive);
        assert!(t.forecast.point.iter().all(|v| *v == 42.0));
    }

    #[test]
    fn the_cli_accepts_prophet() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The series Prophet wins validation on (see above).
        let input = write_csv(dir.path(), &noisy(21 * DAY, 0.05));
        let r = foresight(&[
            "forecast",
            "inspect",
            "--input",
            &input,
            "--horizon",
            "24",
            "--seasonality",
            "24",
            "--prophet",
        ]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(
            r.stdout.contains("model        prophet[24]"),
            "{}",
            r.stdout
        );
    }
}

#[cfg(not(feature = "prophet"))]
mod without_prophet {
    use foresight::forecast::{Model, ModelKind};

    use super::*;

    const REBUILD: &str = "built without the `prophet` feature; rebuild with `cargo build --release --features prophet`";

    #[test]
    fn fitting_prophet_names_the_missing_feature() {
        let err = ModelKind::Prophet { periods: vec![DAY] }
            .fit(&noisy(21 * DAY, 10.0))
            .err()
            .expect("no Prophet in this build");
        assert_eq!(
            err,
            ForecastError::NotBuilt {
                model: "prophet[24]".into(),
                feature: "prophet",
            }
        );
        assert_eq!(
            err.to_string(),
            format!("model prophet[24] is unavailable: {REBUILD}")
        );
    }

    #[test]
    fn selection_asked_for_prophet_refuses_instead_of_ignoring_it() {
        let series = hourly(noisy(21 * DAY, 10.0));
        let err = train(&series, &spec(true)).expect_err("no Prophet in this build");
        assert!(matches!(err, ForecastError::NotBuilt { .. }), "{err}");
        assert!(err.to_string().contains(REBUILD), "{err}");
        // Without the flag, selection is unaffected.
        assert!(train(&series, &spec(false)).is_ok());
    }

    #[test]
    fn the_cli_flag_fails_before_reading_the_input() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let input = write_csv(dir.path(), &noisy(21 * DAY, 10.0));
        // A missing input proves the check comes first: the error is about
        // the feature, not the file.
        let missing = dir.path().join("missing.csv").display().to_string();
        let commands: [&[&str]; 3] = [
            &[
                "forecast",
                "--input",
                &missing,
                "--horizon",
                "24",
                "--prophet",
            ],
            &["forecast", "inspect", "--input", &missing, "--prophet"],
            &[
                "eval",
                "--input",
                &missing,
                "--holdout",
                "24",
                "--season",
                "24",
                "--prophet",
            ],
        ];
        for args in commands {
            let r = foresight(args);
            assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
            assert_eq!(
                r.stderr.trim(),
                format!("error: --prophet: model prophet is unavailable: {REBUILD}"),
                "{args:?}"
            );
            assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        }
        // The same input forecasts without the flag.
        let r = foresight(&["forecast", "--input", &input, "--horizon", "24"]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
}
