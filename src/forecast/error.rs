/// A forecast could not be produced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    /// The history has too few usable observations to fit any model.
    #[error(
        "not enough history to forecast: {observed} usable observations, need at least {needed}"
    )]
    InsufficientHistory {
        /// Finite observations after trimming.
        observed: usize,
        /// The minimum required.
        needed: usize,
    },
    /// Fitting or predicting with a model returned an error.
    #[error("model {model} failed: {message}")]
    Model {
        /// Which model.
        model: String,
        /// The library's message.
        message: String,
    },
    /// A model panicked; the panic was caught at the forecast boundary.
    #[error("model {model} panicked: {message}")]
    Panicked {
        /// Which model.
        model: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The model is compiled only with a cargo feature this binary was
    /// built without.
    #[error(
        "model {model} is unavailable: built without the `{feature}` feature; rebuild with `cargo build --release --features {feature}`"
    )]
    NotBuilt {
        /// Which model.
        model: String,
        /// The cargo feature that compiles it in.
        feature: &'static str,
    },
}
