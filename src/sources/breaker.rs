//! A circuit breaker for one endpoint, as a pure state machine: time is
//! passed in, nothing here sleeps, spawns or reads a clock, so every
//! transition is unit-tested with tables and properties.
//!
//! ```text
//!            failure_threshold consecutive failures
//!   Closed ─────────────────────────────────────────► Open(until)
//!     ▲                                                 │ now ≥ until: the
//!     │ probe succeeds                                  │ next call is the
//!     │                                                 ▼ one probe
//!     └────────────────────────────────────────── HalfOpen ──► Open(until')
//!                                                    probe fails: back-off
//!                                                    doubles, up to max
//! ```
//!
//! While open, calls are refused without I/O, so requests cannot pile up
//! behind a dead server; while half-open, exactly one call (the probe) is
//! let through and every other call is refused until it finishes.

use std::time::{Duration, Instant};

/// Tunables of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker. One failure is not an
    /// outage (a dropped connection, a slow query); several in a row are.
    pub failure_threshold: u32,
    /// First back-off after opening: how long calls are refused before the
    /// half-open probe.
    pub initial_backoff: Duration,
    /// Back-off cap: doubling stops here, so recovery is noticed within
    /// this long (plus one probe) after the endpoint comes back.
    pub max_backoff: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15),
        }
    }
}

/// The breaker's state, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the back-off ends.
    Open,
    /// One probe is allowed (or in flight); other calls are refused.
    HalfOpen,
}

impl BreakerState {
    /// A stable snake_case label for metrics and JSON.
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Whether a call may go to the endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: call.
    Call,
    /// The back-off has ended: this call is the half-open probe, and its
    /// outcome decides between closing and reopening.
    Probe,
    /// Refused without I/O; the next probe is due in this long (zero when a
    /// probe is already in flight).
    Refused {
        /// Time until the next probe may be sent.
        retry_in: Duration,
    },
}

/// Internal state with what each state needs to remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Counting consecutive failures.
    Closed,
    /// Refusing calls until `until`.
    Open {
        /// End of the back-off.
        until: Instant,
    },
    /// The back-off ended; `probing` is true while the probe is in flight.
    HalfOpen {
        /// Whether the one probe has been handed out and not yet resolved.
        probing: bool,
    },
}

/// A circuit breaker; see the module documentation.
#[derive(Debug, Clone)]
pub struct Breaker {
    /// Thresholds and back-off.
    config: BreakerConfig,
    /// Current phase.
    phase: Phase,
    /// Failures since the last success; drives opening and is exported.
    consecutive_failures: u32,
    /// Back-off to use the next time the breaker opens from half-open.
    backoff: Duration,
    /// How many times the breaker has opened, for metrics.
    opened_total: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            phase: Phase::Closed,
            consecutive_failures: 0,
            backoff: config.initial_backoff,
            opened_total: 0,
        }
    }

    /// Asks to make a call at `now`. `Probe` must be followed by
    /// [`Breaker::success`], [`Breaker::failure`] or [`Breaker::abandon`].
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.phase {
            Phase::Closed => Admission::Call,
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen { probing: true };
                Admission::Probe
            }
            Phase::Open { until } => Admission::Refused {
                retry_in: until - now,
            },
            Phase::HalfOpen { probing: false } => {
                self.phase = Phase::HalfOpen { probing: true };
                Admission::Probe
            }
            Phase::HalfOpen { probing: true } => Admission::Refused {
                retry_in: Duration::ZERO,
            },
        }
    }

    /// The endpoint answered (even with an error about the request, such as
    /// a PromQL syntax error: the endpoint itself is healthy).
    pub fn success(&mut self) {
        self.phase = Phase::Closed;
        self.consecutive_failures = 0;
        self.backoff = self.config.initial_backoff;
    }

    /// The endpoint failed: unreachable, timed out, or a server-side error.
    pub fn failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.phase {
            Phase::Closed if self.consecutive_failures >= self.config.failure_threshold.max(1) => {
                self.open(now, self.config.initial_backoff);
            }
            Phase::Closed => {}
            // A failed probe reopens with a longer back-off.
            Phase::HalfOpen { .. } => {
                let next = (self.backoff * 2).min(self.config.max_backoff);
                self.open(now, next);
            }
            // Calls admitted before the breaker opened may still fail;
            // they neither extend nor shorten the back-off.
            Phase::Open { .. } => {}
        }
    }

    /// The probe was dropped before it finished (its caller was cancelled):
    /// neither success nor failure, so the next call probes again.
    pub fn abandon(&mut self) {
        if self.phase == (Phase::HalfOpen { probing: true }) {
            self.phase = Phase::HalfOpen { probing: false };
        }
    }

    fn open(&mut self, now: Instant, backoff: Duration) {
        self.backoff = backoff;
        self.phase = Phase::Open {
            until: now + backoff,
        };
        self.opened_total += 1;
    }

    /// The state at `now` (an open breaker whose back-off has ended reports
    /// half-open: the next call will probe).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if now >= until => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// How many times the breaker has opened.
    pub fn opened_total(&self) -> u64 {
        self.opened_total
    }

    /// Time until the next probe may be sent, while open.
    pub fn retry_in(&self, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Open { until } => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            initial_backoff: SEC,
            max_backoff: 4 * SEC,
        }
    }

    /// One step of a scripted scenario and what must follow from it.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Ask at this offset (seconds) and expect this admission.
        Admit(u64, Admission),
        /// Report a failure at this offset.
        Fail(u64),
        /// Report a success.
        Ok,
        /// Abandon the probe.
        Abandon,
        /// Expect this state at this offset.
        State(u64, BreakerState),
    }

    fn run(steps: &[Step]) {
        let t0 = Instant::now();
        let at = |s: u64| t0 + SEC * u32::try_from(s).unwrap();
        let mut b = Breaker::new(config());
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Step::Admit(s, want) => assert_eq!(b.admit(at(s)), want, "step {i}: {step:?}"),
                Step::Fail(s) => b.failure(at(s)),
                Step::Ok => b.success(),
                Step::Abandon => b.abandon(),
                Step::State(s, want) => assert_eq!(b.state(at(s)), want, "step {i}: {step:?}"),
            }
        }
    }

    fn refused(secs: u64) -> Admission {
        Admission::Refused {
            retry_in: SEC * u32::try_from(secs).unwrap(),
        }
    }

    #[test]
    fn scenarios() {
        use Admission::{Call, Probe};
        use BreakerState::{Closed, HalfOpen, Open};
        use Step::*;
        let table: Vec<(&str, Vec<Step>)> = vec![
            (
                "failures below the threshold keep it closed; a success resets the count",
                vec![
                    Fail(0),
                    Fail(0),
                    Ok,
                    Fail(0),
                    Fail(0),
                    State(0, Closed),
                    Admit(0, Call),
                ],
            ),
            (
                "the threshold opens it; calls are refused until the back-off ends",
                vec![
                    Fail(0),
                    Fail(0),
                    Fail(0),
                    State(0, Open),
                    Admit(0, refused(1)),
                    State(1, HalfOpen),
                ],
            ),
            (
                "after the back-off exactly one probe goes; a success closes it",
                vec![
                    Fail(0),
                    Fail(0),
                    Fail(0),
                    Admit(1, Probe),
                    Admit(1, refused(0)),
                    Admit(1, refused(0)),
                    Ok,
                    State(1, Closed),
                    Admit(1, Call),
                ],
            ),
            (
                "a failed probe reopens with a doubled back-off, capped",
                vec![
                    Fail(0),
                    Fail(0),
                    Fail(0),
                    Admit(1, Probe),
                    Fail(1),
                    Admit(2, refused(1)),
                    Admit(3, Probe),
                    Fail(3),
                    Admit(6, refused(1)),
                    Admit(7, Probe),
                    Fail(7),
                    // 8 s would exceed the 4 s cap.
                    Admit(10, refused(1)),
                    Admit(11, Probe),
                    Ok,
                    // Recovery resets the back-off.
                    Fail(11),
                    Fail(11),
                    Fail(11),
                    Admit(11, refused(1)),
                    Admit(12, Probe),
                ],
            ),
            (
                "late failures of calls admitted before opening do not extend it",
                vec![Fail(0), Fail(0), Fail(0), Fail(0), Fail(0), Admit(1, Probe)],
            ),
            (
                "an abandoned probe lets the next call probe",
                vec![
                    Fail(0),
                    Fail(0),
                    Fail(0),
                    Admit(1, Probe),
                    Abandon,
                    State(1, HalfOpen),
                    Admit(1, Probe),
                    Ok,
                    State(1, Closed),
                ],
            ),
        ];
        for (name, steps) in table {
            eprintln!("scenario: {name}");
            run(&steps);
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Event {
        Admit,
        Succeed,
        Fail,
        Abandon,
        Wait(u64),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => Just(Event::Admit),
            2 => Just(Event::Succeed),
            3 => Just(Event::Fail),
            1 => Just(Event::Abandon),
            2 => (0u64..3_000).prop_map(Event::Wait),
        ]
    }

    proptest! {
        /// Whatever happens: at most one probe is outstanding, open refuses
        /// with a wait no longer than the cap, and the state follows the
        /// failure count.
        #[test]
        fn invariants(events in proptest::collection::vec(event(), 1..200)) {
            let cfg = config();
            let mut b = Breaker::new(cfg);
            let mut now = Instant::now();
            let mut probe_out = false;
            for e in events {
                match e {
                    Event::Wait(ms) => now += Duration::from_millis(ms),
                    Event::Admit => match b.admit(now) {
                        Admission::Call => {
                            prop_assert_eq!(b.state(now), BreakerState::Closed);
                            prop_assert!(!probe_out);
                        }
                        Admission::Probe => {
                            prop_assert!(!probe_out, "two probes at once");
                            probe_out = true;
                        }
                        Admission::Refused { retry_in } => {
                            prop_assert!(retry_in <= cfg.max_backoff);
                            prop_assert!(b.state(now) != BreakerState::Closed);
                        }
                    },
                    Event::Succeed => {
                        b.success();
                        probe_out = false;
                        prop_assert_eq!(b.state(now), BreakerState::Closed);
                        prop_assert_eq!(b.consecutive_failures(), 0);
                    }
                    Event::Fail => {
                        let was = b.state(now);
                        b.failure(now);
                        if probe_out {
                            prop_assert_eq!(b.state(now), BreakerState::Open);
                            probe_out = false;
                        } else if was == BreakerState::Closed {
                            let open = b.consecutive_failures() >= cfg.failure_threshold;
                            prop_assert_eq!(b.state(now) == BreakerState::Open, open);
                        }
                    }
                    Event::Abandon => {
                        b.abandon();
                        probe_out = false;
                    }
                }
            }
        }
    }
}
