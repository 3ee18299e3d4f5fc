//! The scaling policy: pure functions from observations, forecasts and state
//! to a replica decision. No I/O and no clock reads: time is passed in, so
//! the same code runs live in `serve` and in the backtest simulator.
//!
//! Shape of a decision:
//! 1. each signal gives a reactive requirement from its observed value
//!    (growing consumer lag adds the capacity to drain it within
//!    `lagDrainTime`; p99 latency scales by its breach ratio) and, when the
//!    forecaster has earned trust, a predictive one from the forecast's upper
//!    quantile over `[now, now + leadTime]`;
//! 2. the recommendation is the highest requirement, clamped to the bounds;
//! 3. scale-up is immediate but rate-limited (by default the larger of +4 pods
//!    and +100% per 15 s); scale-down waits for the stabilisation window's
//!    highest recommendation to drop, for no peak to be forecast within the
//!    lookahead, and for any remediation cooldown, then goes one pod per
//!    period; missing data never lowers the count;
//! 4. signals tell remediation when scaling cannot keep up.
//!
//! [`requirements`] gathers step 1 signal by signal; [`decide`] runs the
//! rest: the combination, the bounds, the limits and the bookkeeping a
//! replay carries from tick to tick ([`PolicyState`]).
//!
//! `mode: holding` replaces steps 1-3 for additive signals with
//! [`holding`]'s counts: planned by backward induction over a learnt model
//! of the next sample's need, with short minutes and flaps priced instead of
//! rate limits and a stabilisation window.

mod behavior;
mod decide;
mod holding;
mod memory;
mod requirements;
mod signals;

pub use behavior::Behavior;
pub use decide::{ForecastInput, MetricInput, Observation, PolicyError, decide};
pub use holding::{Plan, PlanError, PlanSpec, Prices, holding_plan};
pub use memory::PolicyState;
pub(crate) use requirements::counts_window;
