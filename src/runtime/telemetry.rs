//! foresight's own Prometheus metrics, served on `/metrics`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::{Change, Decision, MetricKind};
use crate::sources::{BreakerState, SourceHealth};

/// Labels of per-RPC metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    /// gRPC method name, e.g. `GetMetrics`.
    rpc: &'static str,
    /// gRPC status code name, e.g. `Ok`.
    code: &'static str,
}

/// Labels of the per-RPC latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcOnly {
    /// gRPC method name.
    rpc: &'static str,
}

/// Labels of the holding-plan build metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    /// `training` (built with its model, on the training workers) or
    /// `evaluation` (built by a replay that found none).
    at: &'static str,
}

/// Labels of decision counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// What bounded the decision (`none`, `scale_up_rate`, ...).
    limiter: &'static str,
    /// Decision mode.
    mode: &'static str,
}

/// Labels of remediation-signal counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RaisedLabels {
    /// Signal name, e.g. `at_ceiling`.
    signal: &'static str,
}

/// Labels of the remediation incident counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IncidentLabels {
    /// Root cause, e.g. `bad_deploy`.
    cause: &'static str,
    /// How it ended, e.g. `acted` or `not_leader`.
    outcome: &'static str,
}

/// Labels identifying one signal of one ScaledObject.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    /// `namespace/name` of the ScaledObject.
    scaledobject: String,
    /// Which of its foresight triggers (see `registry::trigger_id`).
    trigger: String,
    /// Signal kind label.
    signal: &'static str,
}

/// Labels of the breaker-state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    /// `closed`, `open` or `half_open`.
    state: &'static str,
}

/// Labels of a ScaledObject's count changes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    /// `namespace/name` of the ScaledObject.
    scaledobject: String,
    /// Which of its foresight triggers (see `registry::trigger_id`).
    trigger: String,
    /// `up` or `down`.
    direction: &'static str,
}

/// Labels of per-ScaledObject gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    /// `namespace/name` of the ScaledObject.
    scaledobject: String,
    /// Which of its foresight triggers (see `registry::trigger_id`).
    trigger: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every `signal` label a per-ScaledObject series can carry: each kind's,
/// and `none` for a decision no signal drove.
fn driver_labels() -> impl Iterator<Item = &'static str> {
    MetricKind::ALL
        .into_iter()
        .map(MetricKind::label)
        .chain(["none"])
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// All metrics, registered once at start-up.
pub struct Telemetry {
    /// The registry rendered on `/metrics`.
    registry: Registry,
    /// Calls per RPC and status code.
    rpc_requests: Family<RpcLabels, Counter>,
    /// Handler latency per RPC.
    rpc_seconds: HistogramFamily<RpcOnly>,
    /// Decisions by limiter and mode.
    decisions: Family<DecisionLabels, Counter>,
    /// Scale-downs that released a large surplus early
    /// (`scaleDownReleaseSurplus`): each is a flap risk operators watch.
    surplus_releases: Counter,
    /// Remediation signals raised, by type (counted when first raised).
    signals: Family<RaisedLabels, Counter>,
    /// Remediation incidents handled, by root cause and outcome.
    remediation_incidents: Family<IncidentLabels, Counter>,
    /// Wall time of each model training (history fetch excluded).
    training_seconds: Histogram,
    /// Trainings that failed.
    training_failures: Counter,
    /// Wall time of each evaluation's replays (reads excluded): near the
    /// tick, the server cannot keep up with its ScaledObjects.
    evaluation_seconds: Histogram,
    /// `mode: holding`'s plans kept across evaluations, and their bytes:
    /// the memory that grows with holding ScaledObjects and modelled needs.
    holding_plans: Gauge,
    /// See `holding_plans`.
    holding_plan_bytes: Gauge,
    /// Plans built, by where: a build in an evaluation delays that tick's
    /// decisions, one at training does not.
    holding_plan_builds: Family<BuildLabels, Counter>,
    /// Wall time of each plan build, by where: grows with the cube of the
    /// modelled need.
    holding_plan_build_seconds: HistogramFamily<BuildLabels>,
    /// Validation MASE of the model serving each signal.
    forecast_mase: Family<SignalLabels, Gauge<f64, AtomicU64>>,
    /// Desired replicas last served per ScaledObject.
    desired_replicas: Family<SignalLabels, Gauge>,
    /// Changes of the served count, per ScaledObject and direction: with
    /// `flaps`, whether foresight is as calm live as its backtest said.
    replica_changes: Family<ChangeLabels, Counter>,
    /// Changes that reversed the previous one within the backtest's flap
    /// window, per ScaledObject: what issue #4 asks to keep at zero.
    flaps: Family<ObjectLabels, Counter>,
    /// Each signal's value at the last decision, beside the forecast's
    /// upper quantile over the lead time: the dashboard's "forecast against
    /// actual", where operators judge whether to trust the forecast.
    signal_observed: Family<SignalLabels, Gauge<f64, AtomicU64>>,
    /// See `signal_observed`.
    signal_forecast_upper: Family<SignalLabels, Gauge<f64, AtomicU64>>,
    /// ScaledObjects currently registered.
    scaled_objects: Gauge,
    /// 1 when the last source probe succeeded.
    source_up: Gauge,
    /// 1 for the source's circuit-breaker state, 0 for the others.
    breaker_state: Family<StateLabels, Gauge>,
    /// Source failures since its last success.
    consecutive_failures: Gauge,
    /// Source calls that failed (transport, timeout, server-side error).
    source_failures: Counter,
    /// Times the source's breaker opened.
    breaker_opened: Counter,
    /// NaN or infinite samples dropped as missing.
    dropped_samples: Counter,
    /// The source's own totals last copied into the counters above, so
    /// each copy adds only the difference.
    source_totals: std::sync::Mutex<[u64; 3]>,
    /// Age of each ScaledObject's stalest signal's newest good read.
    staleness: Family<ObjectLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("foresight");
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC calls by method and status code",
            rpc_requests.clone(),
        );
        let rpc_seconds: HistogramFamily<RpcOnly> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC handler latency by method",
            rpc_seconds.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Scaling decisions by limiting reason and mode",
            decisions.clone(),
        );
        let surplus_releases = Counter::default();
        registry.register(
            "surplus_releases",
            "Scale-downs that released a large surplus before the full stabilisation window",
            surplus_releases.clone(),
        );
        let signals = Family::<RaisedLabels, Counter>::default();
        registry.register(
            "signals",
            "Remediation signals raised (counted when a signal starts)",
            signals.clone(),
        );
        let remediation_incidents = Family::<IncidentLabels, Counter>::default();
        registry.register(
            "remediation_incidents",
            "Remediation incidents by root cause and outcome (acted, dry_run, skipped, refused, failed, escalated, paged, not_leader)",
            remediation_incidents.clone(),
        );
        let training_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "training_duration_seconds",
            "Model training time",
            training_seconds.clone(),
        );
        let evaluation_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "evaluation_duration_seconds",
            "Time to replay every ScaledObject evaluated at one tick (source reads excluded)",
            evaluation_seconds.clone(),
        );
        let holding_plans = Gauge::default();
        registry.register(
            "holding_plans",
            "mode: holding plans kept across evaluations (one per configuration, signal and model in a replay window)",
            holding_plans.clone(),
        );
        let holding_plan_bytes = Gauge::default();
        registry.register(
            "holding_plan_bytes",
            "Heap bytes of the mode: holding plans kept",
            holding_plan_bytes.clone(),
        );
        let holding_plan_builds = Family::<BuildLabels, Counter>::default();
        registry.register(
            "holding_plan_builds",
            "mode: holding plans built, at training (with their model) or in an evaluation (a replay found none)",
            holding_plan_builds.clone(),
        );
        let holding_plan_build_seconds: HistogramFamily<BuildLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "holding_plan_build_duration_seconds",
            "Time to build one mode: holding plan, at training or in an evaluation",
            holding_plan_build_seconds.clone(),
        );
        let training_failures = Counter::default();
        registry.register(
            "training_failures",
            "Model trainings that failed",
            training_failures.clone(),
        );
        let forecast_mase = Family::<SignalLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("forecast_validation_mase", "Holdout MASE of the model serving a signal (lower is better; 1 = seasonal naive in-sample error)", forecast_mase.clone());
        let desired_replicas = Family::<SignalLabels, Gauge>::default();
        registry.register(
            "desired_replicas",
            "Replica count last served, labelled by the driving signal",
            desired_replicas.clone(),
        );
        let replica_changes = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "replica_changes",
            "Changes of the replica count served, by direction",
            replica_changes.clone(),
        );
        let flaps = Family::<ObjectLabels, Counter>::default();
        registry.register(
            "flaps",
            "Changes of the replica count served that reversed the previous change less than 5 minutes after it (as the backtest counts flaps)",
            flaps.clone(),
        );
        let signal_observed = Family::<SignalLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "signal_observed",
            "Signal value read at the last decision (absent while the source has no data)",
            signal_observed.clone(),
        );
        let signal_forecast_upper = Family::<SignalLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "signal_forecast_upper",
            "Highest forecast upper quantile over the lead time at the last decision (absent without a forecast)",
            signal_forecast_upper.clone(),
        );
        let scaled_objects = Gauge::default();
        registry.register(
            "scaled_objects",
            "ScaledObjects registered",
            scaled_objects.clone(),
        );
        let source_up = Gauge::default();
        registry.register(
            "source_up",
            "1 when the metric source answered its last probe",
            source_up.clone(),
        );
        let breaker_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "source_breaker_state",
            "1 for the metric source's circuit-breaker state (closed, open, half_open)",
            breaker_state.clone(),
        );
        let consecutive_failures = Gauge::default();
        registry.register(
            "source_consecutive_failures",
            "Metric source failures since its last success",
            consecutive_failures.clone(),
        );
        let source_failures = Counter::default();
        registry.register(
            "source_failures",
            "Metric source calls that failed (unreachable, timed out, server-side error)",
            source_failures.clone(),
        );
        let breaker_opened = Counter::default();
        registry.register(
            "source_breaker_opened",
            "Times the metric source's circuit breaker opened",
            breaker_opened.clone(),
        );
        let dropped_samples = Counter::default();
        registry.register(
            "source_dropped_samples",
            "NaN or infinite samples dropped as missing data",
            dropped_samples.clone(),
        );
        let staleness = Family::<ObjectLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "data_staleness_seconds",
            "Age of the newest successful read of a ScaledObject's stalest signal",
            staleness.clone(),
        );
        Self {
            registry,
            rpc_requests,
            rpc_seconds,
            decisions,
            surplus_releases,
            signals,
            remediation_incidents,
            training_seconds,
            training_failures,
            evaluation_seconds,
            holding_plans,
            holding_plan_bytes,
            holding_plan_builds,
            holding_plan_build_seconds,
            forecast_mase,
            desired_replicas,
            replica_changes,
            flaps,
            signal_observed,
            signal_forecast_upper,
            scaled_objects,
            source_up,
            breaker_state,
            consecutive_failures,
            source_failures,
            breaker_opened,
            dropped_samples,
            source_totals: std::sync::Mutex::new([0; 3]),
            staleness,
        }
    }

    /// Records one finished RPC.
    pub fn observe_rpc(&self, rpc: &'static str, code: &'static str, elapsed: Duration) {
        self.rpc_requests
            .get_or_create(&RpcLabels { rpc, code })
            .inc();
        self.rpc_seconds
            .get_or_create(&RpcOnly { rpc })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn observe_decision(&self, scaledobject: &str, trigger: &str, d: &Decision) {
        self.decisions
            .get_or_create(&DecisionLabels {
                limiter: d.limiter.label(),
                mode: d.mode.as_str(),
            })
            .inc();
        if d.released_early.is_some() {
            self.surplus_releases.inc();
        }
        let signal = d.driver.map(|k| k.label()).unwrap_or("none");
        // One series per trigger: the one under the previous driver
        // would otherwise stay at its last count, and `max by
        // (scaledobject)` would chart the higher of the two.
        for other in driver_labels().filter(|l| *l != signal) {
            self.desired_replicas.remove(&SignalLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
                signal: other,
            });
        }
        self.desired_replicas
            .get_or_create(&SignalLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
                signal,
            })
            .set(i64::from(d.desired_replicas));
        // Signals the metadata no longer has: their series would stay at
        // their last values, charting a signal that is gone.
        for gone in driver_labels().filter(|l| d.readings.iter().all(|r| r.kind.label() != *l)) {
            self.remove_signal(scaledobject, trigger, gone);
        }
        for r in &d.readings {
            let labels = SignalLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
                signal: r.kind.label(),
            };
            // A value that is gone is removed rather than left at its last
            // reading, which would chart as if it were still true.
            for (family, value) in [
                (&self.signal_observed, r.observed),
                (&self.signal_forecast_upper, r.forecast_max),
            ] {
                match value.filter(|v| v.is_finite()) {
                    Some(v) => {
                        family.get_or_create(&labels).set(v);
                    }
                    None => {
                        family.remove(&labels);
                    }
                }
            }
        }
    }

    pub(crate) fn observe_signal(&self, signal: &'static str) {
        self.signals.get_or_create(&RaisedLabels { signal }).inc();
    }

    /// Counts one remediation incident by its root cause and outcome
    /// labels.
    pub fn observe_remediation_incident(&self, cause: &'static str, outcome: &'static str) {
        self.remediation_incidents
            .get_or_create(&IncidentLabels { cause, outcome })
            .inc();
    }

    pub(crate) fn observe_training(&self, elapsed: Duration, ok: bool) {
        self.training_seconds.observe(elapsed.as_secs_f64());
        if !ok {
            self.training_failures.inc();
        }
    }

    pub(crate) fn observe_evaluation(&self, elapsed: Duration) {
        self.evaluation_seconds.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn set_holding_plans(&self, plans: usize, bytes: usize) {
        self.holding_plans
            .set(i64::try_from(plans).unwrap_or(i64::MAX));
        self.holding_plan_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// One plan built, at training or in an evaluation, in `elapsed`.
    pub(crate) fn observe_plan_build(&self, at_training: bool, elapsed: Duration) {
        let labels = BuildLabels {
            at: if at_training {
                "training"
            } else {
                "evaluation"
            },
        };
        self.holding_plan_builds.get_or_create(&labels).inc();
        self.holding_plan_build_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn set_mase(
        &self,
        scaledobject: &str,
        trigger: &str,
        signal: &'static str,
        mase: f64,
    ) {
        self.forecast_mase
            .get_or_create(&SignalLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
                signal,
            })
            .set(mase);
    }

    pub(crate) fn set_scaled_objects(&self, n: usize) {
        self.scaled_objects
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_source_up(&self, up: bool) {
        self.source_up.set(i64::from(up));
    }

    /// Copies the source's connection state into the metrics.
    pub(crate) fn observe_source(&self, h: &SourceHealth) {
        if let Some(b) = &h.breaker {
            for state in [
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
            ] {
                self.breaker_state
                    .get_or_create(&StateLabels {
                        state: state.label(),
                    })
                    .set(i64::from(b.state == state));
            }
            self.consecutive_failures
                .set(i64::from(b.consecutive_failures));
        }
        let now = [
            h.failures_total,
            h.breaker.as_ref().map_or(0, |b| b.opened_total),
            h.dropped_samples,
        ];
        let mut last = self.source_totals.lock().unwrap_or_else(|e| e.into_inner());
        for (i, counter) in [
            &self.source_failures,
            &self.breaker_opened,
            &self.dropped_samples,
        ]
        .into_iter()
        .enumerate()
        {
            counter.inc_by(now[i].saturating_sub(last[i]));
        }
        *last = now;
    }

    /// Removes every series of a ScaledObject foresight no longer serves, so
    /// dashboards do not chart its last values and churn does not grow the
    /// exposition.
    /// Removes `signal`'s per-signal series of `scaledobject`.
    fn remove_signal(&self, scaledobject: &str, trigger: &str, signal: &'static str) {
        let labels = SignalLabels {
            scaledobject: scaledobject.to_string(),
            trigger: trigger.to_string(),
            signal,
        };
        for family in [
            &self.forecast_mase,
            &self.signal_observed,
            &self.signal_forecast_upper,
        ] {
            family.remove(&labels);
        }
    }

    pub(crate) fn forget(&self, scaledobject: &str, trigger: &str) {
        for signal in driver_labels() {
            self.remove_signal(scaledobject, trigger, signal);
            self.desired_replicas.remove(&SignalLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
                signal,
            });
        }
        let object = ObjectLabels {
            scaledobject: scaledobject.to_string(),
            trigger: trigger.to_string(),
        };
        self.staleness.remove(&object);
        self.flaps.remove(&object);
        for direction in ["up", "down"] {
            self.replica_changes.remove(&ChangeLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
                direction,
            });
        }
    }

    /// Counts a change of the count `scaledobject` is served.
    pub(crate) fn observe_change(&self, scaledobject: &str, trigger: &str, change: Change) {
        self.replica_changes
            .get_or_create(&ChangeLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
                direction: if change.up { "up" } else { "down" },
            })
            .inc();
        // Created at the first change, so a calm ScaledObject shows 0
        // rather than no series at all.
        let flaps = self.flaps.get_or_create(&ObjectLabels {
            scaledobject: scaledobject.to_string(),
            trigger: trigger.to_string(),
        });
        if change.flap {
            flaps.inc();
        }
    }

    pub(crate) fn set_staleness(&self, scaledobject: &str, trigger: &str, seconds: f64) {
        self.staleness
            .get_or_create(&ObjectLabels {
                scaledobject: scaledobject.to_string(),
                trigger: trigger.to_string(),
            })
            .set(seconds);
    }

    /// Renders the OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
            out.push_str("# encoding failed\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::DateTime;

    use super::Telemetry;
    use crate::config::parse_metadata;
    use crate::domain::MetricKind;
    use crate::policy::{Behavior, MetricInput, Observation, PolicyState, decide};

    /// A real early release, from the policy, is counted once; decisions
    /// without one are not.
    #[test]
    fn early_releases_are_counted() {
        // Reactive, no downstream tolerance, scale-down unthrottled once
        // allowed, and surpluses of 40% or more released after 1 minute.
        let meta: HashMap<String, String> = [
            ("queueDepthQuery", "q"),
            ("queueDepthTarget", "100"),
            ("minReplicaCount", "1"),
            ("mode", "reactive"),
            ("hpaTolerance", "0"),
            ("scaleDownPercent", "100"),
            ("scaleDownReleaseSurplus", "0.4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let b = Behavior::from_spec(&parse_metadata(&meta).unwrap());
        let telemetry = Telemetry::new();
        let mut state = PolicyState::default();
        for (s, v) in [(0, 1000.0), (60, 500.0), (75, 500.0), (90, 500.0)] {
            let obs = Observation {
                metrics: vec![MetricInput {
                    kind: MetricKind::QueueDepth,
                    target: 100.0,
                    observed: Some(v),
                    forecast: None,
                    forecast_note: None,
                }],
                last_remediation: None,
            };
            let at = DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
            let (d, next) = decide(&b, &obs, &state, at).unwrap();
            telemetry.observe_decision("shop/consumer", "t1", &d);
            state = next;
        }
        // 10 → held at 60 s (the short window still holds the 10) → 5 at
        // 75 s, released early → 5 held.
        let text = telemetry.render();
        assert!(
            text.contains("foresight_surplus_releases_total 1\n"),
            "{text}"
        );
    }

    /// The value of the one series of `name` in `text`, if any.
    fn gauge(text: &str, name: &str) -> Option<f64> {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .collect();
        assert!(lines.len() <= 1, "{lines:?}");
        let line = lines.first()?;
        assert!(line.contains("scaledobject=\"shop/consumer\""), "{line}");
        line.rsplit(' ').next()?.parse().ok()
    }

    /// Each signal's observed value and forecast bound follow the decisions,
    /// and a value that goes missing is removed, not left at its last value.
    #[test]
    fn signal_gauges_follow_the_readings() {
        let meta: HashMap<String, String> = [("queueDepthQuery", "q"), ("queueDepthTarget", "100")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b = Behavior::from_spec(&parse_metadata(&meta).unwrap());
        let telemetry = Telemetry::new();
        let obs = |observed| Observation {
            metrics: vec![MetricInput {
                kind: MetricKind::QueueDepth,
                target: 100.0,
                observed,
                forecast: None,
                forecast_note: None,
            }],
            last_remediation: None,
        };
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (mut d, state) = decide(&b, &obs(Some(730.0)), &PolicyState::default(), at).unwrap();
        assert_eq!(d.readings[0].forecast_max, None, "no forecast given");
        telemetry.observe_decision("shop/consumer", "t1", &d);
        let text = telemetry.render();
        assert_eq!(
            gauge(&text, "foresight_signal_observed"),
            Some(730.0),
            "{text}"
        );
        assert_eq!(
            gauge(&text, "foresight_signal_forecast_upper"),
            None,
            "{text}"
        );

        d.readings[0].forecast_max = Some(912.5);
        telemetry.observe_decision("shop/consumer", "t1", &d);
        let text = telemetry.render();
        assert_eq!(
            gauge(&text, "foresight_signal_forecast_upper"),
            Some(912.5),
            "{text}"
        );

        let (d, _) = decide(&b, &obs(None), &state, at + chrono::TimeDelta::seconds(15)).unwrap();
        assert_eq!(d.readings[0].observed, None);
        telemetry.observe_decision("shop/consumer", "t1", &d);
        let text = telemetry.render();
        assert_eq!(gauge(&text, "foresight_signal_observed"), None, "{text}");
        assert_eq!(
            gauge(&text, "foresight_signal_forecast_upper"),
            None,
            "{text}"
        );
    }

    /// A signal removed from the metadata takes its series with it: they
    /// stayed at their last values, charting a signal that was gone.
    #[test]
    fn a_signal_removed_from_the_metadata_leaves_no_series() {
        let telemetry = Telemetry::new();
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let decision = |pairs: &[(&str, &str)], metrics: Vec<MetricInput<'static>>| {
            let meta: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let b = Behavior::from_spec(&parse_metadata(&meta).unwrap());
            let obs = Observation {
                metrics,
                last_remediation: None,
            };
            decide(&b, &obs, &PolicyState::default(), at).unwrap().0
        };
        let input = |kind, observed| MetricInput {
            kind,
            target: 100.0,
            observed: Some(observed),
            forecast: None,
            forecast_note: None,
        };
        let both = decision(
            &[
                ("queueDepthQuery", "q"),
                ("queueDepthTarget", "100"),
                ("connectionsQuery", "c"),
                ("connectionsTarget", "100"),
            ],
            vec![
                input(MetricKind::QueueDepth, 300.0),
                input(MetricKind::Connections, 1_800.0),
            ],
        );
        telemetry.observe_decision("shop/consumer", "t1", &both);
        telemetry.set_mase("shop/consumer", "t1", MetricKind::Connections.label(), 0.7);
        let text = telemetry.render();
        assert!(text.contains("signal=\"connections\""), "{text}");
        let one = decision(
            &[("queueDepthQuery", "q"), ("queueDepthTarget", "100")],
            vec![input(MetricKind::QueueDepth, 300.0)],
        );
        telemetry.observe_decision("shop/consumer", "t1", &one);
        let text = telemetry.render();
        for family in [
            "foresight_signal_observed",
            "foresight_forecast_validation_mase",
        ] {
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with(family) && l.contains("signal=\"connections\"")),
                "{text}"
            );
        }
        assert!(text.contains("foresight_signal_observed{scaledobject=\"shop/consumer\",trigger=\"t1\",signal=\"queue_depth\"} 300"), "{text}");
    }

    /// A ScaledObject has one desired-replicas series whatever drove it
    /// last, and none at all once it is forgotten.
    #[test]
    fn per_object_series_follow_the_driver_and_go_when_forgotten() {
        let telemetry = Telemetry::new();
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let meta: HashMap<String, String> = [("queueDepthQuery", "q"), ("queueDepthTarget", "100")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b = Behavior::from_spec(&parse_metadata(&meta).unwrap());
        let obs = Observation {
            metrics: vec![MetricInput {
                kind: MetricKind::QueueDepth,
                target: 100.0,
                observed: Some(730.0),
                forecast: None,
                forecast_note: None,
            }],
            last_remediation: None,
        };
        let (mut d, _) = decide(&b, &obs, &PolicyState::default(), at).unwrap();
        d.driver = Some(MetricKind::QueueDepth);
        d.desired_replicas = 12;
        telemetry.observe_decision("shop/consumer", "t1", &d);
        telemetry.set_mase("shop/consumer", "t1", "queue_depth", 0.7);
        telemetry.set_staleness("shop/consumer", "t1", 3.0);
        d.driver = Some(MetricKind::P99Latency);
        d.desired_replicas = 9;
        telemetry.observe_decision("shop/consumer", "t1", &d);
        // Up, then down a minute later (a flap), then down again.
        let mut changes = crate::domain::ChangeTracker::default();
        for (m, before, after) in [(0, 5, 12), (1, 12, 9), (2, 9, 8)] {
            let t = at + chrono::TimeDelta::minutes(m);
            if let Some(c) = changes.record(t, before, after) {
                telemetry.observe_change("shop/consumer", "t1", c);
            }
        }
        // A ScaledObject that changed without flapping shows 0 flaps.
        telemetry.observe_change(
            "shop/calm",
            "t1",
            crate::domain::Change {
                up: true,
                flap: false,
            },
        );
        let text = telemetry.render();
        assert!(
            text.contains("foresight_flaps_total{scaledobject=\"shop/calm\",trigger=\"t1\"} 0\n"),
            "{text}"
        );
        for (line, count) in [
            (
                r#"foresight_replica_changes_total{scaledobject="shop/consumer",trigger="t1",direction="up"}"#,
                1,
            ),
            (
                r#"foresight_replica_changes_total{scaledobject="shop/consumer",trigger="t1",direction="down"}"#,
                2,
            ),
            (
                r#"foresight_flaps_total{scaledobject="shop/consumer",trigger="t1"}"#,
                1,
            ),
        ] {
            assert!(
                text.contains(&format!("{line} {count}\n")),
                "{line}: {text}"
            );
        }
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("foresight_desired_replicas{"))
            .collect();
        assert_eq!(series.len(), 1, "{series:?}");
        assert!(series[0].contains("signal=\"p99_latency\""), "{series:?}");
        assert!(series[0].ends_with(" 9"), "{series:?}");

        telemetry.forget("shop/consumer", "t1");
        let text = telemetry.render();
        let left: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("shop/consumer"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
