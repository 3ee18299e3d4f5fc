//! Prophet (augurs-prophet), optimised by its Stan model compiled to
//! WebAssembly and run in wasmtime, so no cmdstan binary is needed.
//!
//! Compiled only with the `prophet` cargo feature. Prophet works on
//! timestamps and seasonal periods in days; our models see equally spaced
//! values. So each step is given to Prophet as one day (`ds = i × 86 400`)
//! and a period of `p` steps becomes a custom seasonality of `p` days, with
//! Prophet's own yearly, weekly and daily seasonalities turned off: they
//! would read the steps as calendar days.

use std::num::NonZeroU32;
use std::panic::catch_unwind;
use std::sync::OnceLock;

use augurs::prophet::optimizer::OptimizeOpts;
use augurs::prophet::wasmstan::WasmstanOptimizer;
use augurs::prophet::{
    PositiveFloat, PredictionData, Prophet, ProphetOptions, Seasonality, SeasonalityOption,
    TrainingData,
};

/// Seconds per step in the synthetic timestamps: Prophet measures seasonal
/// periods in days, so one step per day makes a period in steps a period in
/// Prophet's units.
const STEP_SECONDS: i64 = 86_400;

/// Most Fourier terms per seasonality. Prophet's defaults are 4 (daily), 3
/// (weekly) and 10 (yearly); request traffic has sharper shapes than a
/// sine (a morning ramp, a lunch dip), and 10 keeps them at 20 regularised
/// coefficients per period.
const MAX_FOURIER_ORDER: u32 = 10;

/// A fixed seed, so that a fit is reproducible and replicas selecting on the
/// same window choose the same model.
const SEED: u32 = 42;

/// A fitted Prophet model and the length of the history it saw. `pub` only
/// because [`super::models::FittedKind`] (the public `Model::Fitted`)
/// carries it; this module is private, so nothing outside can name it.
pub struct FittedProphet {
    /// augurs' fitted state: scales, changepoints, optimised parameters.
    model: Prophet<WasmstanOptimizer>,
    /// Observations fitted: the first forecast step is at this index.
    observations: usize,
}

/// The optimizer, created once per process: compiling the embedded
/// WebAssembly component takes far longer than a fit, and the result is an
/// `Engine` plus a pre-instantiated component that cheap clones share.
fn optimizer() -> Result<WasmstanOptimizer, String> {
    static OPTIMIZER: OnceLock<Result<WasmstanOptimizer, String>> = OnceLock::new();
    OPTIMIZER
        .get_or_init(|| {
            // `new` panics on an invalid embedded image; remember that as an
            // error instead of retrying the compilation on every fit.
            catch_unwind(WasmstanOptimizer::new)
                .map_err(|_| "the embedded Prophet WebAssembly image failed to load".to_string())
        })
        .clone()
}

/// Fourier order for a period of `period` steps: at most
/// [`MAX_FOURIER_ORDER`], and below the Nyquist limit of `period / 2`,
/// where extra terms would only alias the ones before them.
fn fourier_order(period: usize) -> NonZeroU32 {
    let nyquist = u32::try_from(period.saturating_sub(1) / 2).unwrap_or(u32::MAX);
    NonZeroU32::new(nyquist.min(MAX_FOURIER_ORDER)).unwrap_or(NonZeroU32::MIN)
}

/// Synthetic timestamps for step indices `from..to`.
fn timestamps(from: usize, to: usize) -> Result<Vec<i64>, String> {
    (from..to)
        .map(|i| {
            i64::try_from(i)
                .ok()
                .and_then(|i| i.checked_mul(STEP_SECONDS))
                .ok_or_else(|| format!("step index {i} overflows a timestamp"))
        })
        .collect()
}

/// Fits Prophet on `y` with one custom seasonality per period (in steps).
pub(crate) fn fit(periods: &[usize], y: &[f64]) -> Result<FittedProphet, String> {
    // Stan aborts on a history without variation (the noise scale must be
    // positive); say so plainly instead of passing on its trap.
    let (min, max) = y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    if y.len() >= 2 && max - min <= 1e-9 * max.abs().max(1.0) {
        return Err("a constant history has no variation for Prophet to fit".into());
    }
    let data = TrainingData::new(timestamps(0, y.len())?, y.to_vec()).map_err(|e| e.to_string())?;
    let opts = ProphetOptions {
        yearly_seasonality: SeasonalityOption::Manual(false),
        weekly_seasonality: SeasonalityOption::Manual(false),
        daily_seasonality: SeasonalityOption::Manual(false),
        // Prophet's intervals are simulated (1000 draws by default) and go
        // unused: foresight calibrates its own from validation errors.
        uncertainty_samples: 0,
        ..ProphetOptions::default()
    };
    let mut model = Prophet::new(opts, optimizer()?);
    for &p in periods {
        let period = PositiveFloat::try_from(p as f64).map_err(|e| e.to_string())?;
        model
            .add_seasonality(format!("p{p}"), Seasonality::new(period, fourier_order(p)))
            .map_err(|e| e.to_string())?;
    }
    let opts = OptimizeOpts {
        seed: Some(SEED),
        ..OptimizeOpts::default()
    };
    model.fit(data, opts).map_err(|e| concise(&e.to_string()))?;
    Ok(FittedProphet {
        model,
        observations: y.len(),
    })
}

/// An optimizer error without the wasm backtrace wasmtime appends to a trap
/// (a dozen lines of mangled C++ frames), on one line.
fn concise(message: &str) -> String {
    let head = message.split("wasm backtrace:").next().unwrap_or(message);
    let line = head.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.strip_suffix(" at") {
        Some(trapped) => format!("{trapped} (Stan aborted inside WebAssembly)"),
        None => line,
    }
}

impl FittedProphet {
    /// Point forecasts for the `horizon` steps after the history.
    pub(crate) fn predict(&self, horizon: usize) -> Result<Vec<f64>, String> {
        let from = self.observations;
        let ds = timestamps(from, from.saturating_add(horizon))?;
        let predictions = self
            .model
            .predict(PredictionData::new(ds))
            .map_err(|e| e.to_string())?;
        Ok(predictions.yhat.point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourier_order_stays_below_nyquist_and_the_cap() {
        assert_eq!(fourier_order(2).get(), 1);
        assert_eq!(fourier_order(7).get(), 3);
        assert_eq!(fourier_order(24).get(), 10);
        assert_eq!(fourier_order(1440).get(), 10);
    }

    #[test]
    fn optimizer_errors_lose_the_wasm_backtrace() {
        assert_eq!(
            concise(
                "Error running component: error while executing at wasm backtrace:\n    0: 0x414e - abort"
            ),
            "Error running component: error while executing (Stan aborted inside WebAssembly)"
        );
        assert_eq!(
            concise("terminated with error: \n  Line search failed\n"),
            "terminated with error: Line search failed"
        );
    }

    #[test]
    fn timestamps_are_one_day_per_step() {
        assert_eq!(timestamps(2, 4).unwrap(), vec![172_800, 259_200]);
    }
}
