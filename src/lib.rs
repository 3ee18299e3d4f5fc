//! foresight: a predictive autoscaler served as a KEDA external scaler.
//!
//! # Layout
//!
//! Data flows one way:
//!
//! ```text
//! sources ──► forecast ──► policy ──► grpc (serve) | backtest (replay)
//!                             └─signals─► remediation ──► kube
//! ```
//!
//! * [`domain`]: the shared vocabulary (`Series`, `Forecast`, `Decision`,
//!   `ScalerSpec`). Plain types, no I/O.
//! * [`config`]: KEDA metadata parsing (every error at once, in KEDA's own
//!   message shapes), server settings, durations, ScaledObject manifests.
//! * [`sources`]: the only module that reads metrics: Prometheus, long-format
//!   files (polars) and the embedded trace, behind one trait.
//! * [`forecast`]: our own model traits over augurs; synchronous, pure CPU.
//! * [`policy`]: pure scaling decisions with time passed in; the same code
//!   runs live and in replay.
//! * [`runtime`]: the live driver: registry, aligned evaluation ticks,
//!   background training, readiness, telemetry, shutdown.
//! * [`grpc`]: thin tonic adapter for KEDA's `externalscaler` contract.
//! * [`http`]: health, readiness, metrics and explanations.
//! * [`backtest`]: offline replay of recorded demand through foresight's
//!   policy, an HPA emulation and a perfect-foresight oracle; sweeps of
//!   settings, and which pick is fit to write into a ScaledObject.
//! * [`remediation`]: what happens when scaling cannot keep up: pure
//!   diagnosis and guardrails, kubectl-exact rollback/restart and ceiling
//!   raises (kube confined to `remediation::kube`), pages, an fsync'd audit
//!   log.
//! * `durable`: atomic file replacement for reports and state.
//! * [`cli`]: clap commands; the only place that uses `anyhow`.

pub mod backtest;
mod chart;
pub mod cli;
pub mod config;
pub mod domain;
mod durable;
pub mod forecast;
pub mod grpc;
pub mod http;
pub mod policy;
pub mod remediation;
pub mod runtime;
pub mod sources;
