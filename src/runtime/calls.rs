//! What KEDA's calls and the HTTP endpoints read: [`ScalerCore`] over the
//! runtime. Every answer comes from the registry's `watch` channels or the
//! telemetry, never from a read of the source; a ScaledObject's first call
//! registers it and waits, boundedly, for its first evaluation.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;

use super::core::{CoreError, MetricTarget, Readiness, ScalerCore, TriggerDecision};
use super::registry::{Fault, Registration};
use super::{Runtime, Telemetry};
use crate::domain::{Decision, ScaledObjectKey};
use crate::sources::{BreakerState, MetricSource, fmt_wait};

impl<S: MetricSource> ScalerCore for Runtime<S> {
    fn metric_target(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<MetricTarget, CoreError> {
        self.register(key, metadata)
            .map(|reg| reg.target_rx().borrow().clone())
    }

    async fn decision(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<Arc<Decision>, CoreError> {
        let reg = self.register(key, metadata)?;
        let mut decisions = reg.decisions_rx();
        let mut faults = reg.fault_rx();
        // A ScaledObject seen for the first time (or with new metadata)
        // waits, boundedly, for its first evaluation: a decision, or a
        // fault (a rejected query). Once one has answered without a
        // decision (no data yet), calls get that answer at once: waiting
        // at every call made each of KEDA's polls take the whole wait, and
        // GetMetrics plus IsActive then outlasted KEDA's budget.
        let wait = if reg.answered() {
            std::time::Duration::ZERO
        } else {
            self.shared.config.first_answer_timeout
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let fault = faults.borrow_and_update().clone();
            match fault {
                Some(Fault::Rejected(source)) => {
                    return Err(CoreError::InvalidQuery {
                        key: key.clone(),
                        source: Box::new(source),
                    });
                }
                Some(Fault::Stale { age, max, cause }) => {
                    return Err(CoreError::Stale {
                        key: key.clone(),
                        age,
                        max,
                        cause,
                    });
                }
                None => {}
            }
            if let Some(d) = decisions.borrow_and_update().clone() {
                return Ok(d);
            }
            tokio::select! {
                changed = decisions.changed() => if changed.is_err() { break },
                changed = faults.changed() => if changed.is_err() { break },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        Err(CoreError::NotReady {
            key: key.clone(),
            reason: reg.waiting_reason(),
        })
    }

    fn watch_decisions(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<watch::Receiver<Option<Arc<Decision>>>, CoreError> {
        self.register(key, metadata).map(|r| r.decisions_rx())
    }

    fn watch_target(
        &self,
        key: &ScaledObjectKey,
        metadata: &HashMap<String, String>,
    ) -> Result<watch::Receiver<MetricTarget>, CoreError> {
        self.register(key, metadata).map(|r| r.target_rx())
    }

    fn explain(&self, key: &ScaledObjectKey) -> Vec<TriggerDecision> {
        let mut found: Vec<TriggerDecision> = self
            .live_registrations()
            .into_iter()
            .filter(|r| r.key() == key)
            .filter_map(|r| {
                Some(TriggerDecision {
                    trigger: r.trigger(),
                    decision: r.latest()?,
                })
            })
            .collect();
        // The HPA takes the highest of its metrics' counts.
        found.sort_by(|a, b| {
            b.decision
                .desired_replicas
                .cmp(&a.decision.desired_replicas)
                .then_with(|| a.trigger.cmp(&b.trigger))
        });
        found
    }

    fn scaled_objects(&self) -> Vec<ScaledObjectKey> {
        let keys: std::collections::BTreeSet<ScaledObjectKey> = self
            .live_registrations()
            .iter()
            .map(|r| r.key().clone())
            .collect();
        keys.into_iter().collect()
    }

    fn readiness(&self) -> Readiness {
        let probe = self
            .shared
            .source_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (source_ok, source_error) = match probe {
            None => (false, Some("not probed yet".to_string())),
            Some(None) => (true, None),
            Some(Some(e)) => (false, Some(e)),
        };
        let regs = self.live_registrations();
        let (mut awaiting, mut stale, mut invalid, mut no_data) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // A ScaledObject with several foresight triggers is listed once per
        // trigger that holds readiness, so each entry names its trigger.
        let mut triggers: HashMap<&ScaledObjectKey, usize> = HashMap::new();
        for r in &regs {
            *triggers.entry(r.key()).or_default() += 1;
        }
        let name = |r: &Registration| {
            if triggers.get(r.key()).copied().unwrap_or(0) > 1 {
                format!("{} (trigger {})", r.key(), r.trigger())
            } else {
                r.key().to_string()
            }
        };
        for r in &regs {
            match r.fault() {
                // One bad ScaledObject does not hold readiness for the others.
                Some(Fault::Rejected(e)) => invalid.push(format!("{}: {e}", name(r))),
                Some(Fault::Stale { age, max, .. }) => stale.push(format!(
                    "{}: data {} old, beyond maxStaleness {}",
                    name(r),
                    fmt_wait(age.to_std().unwrap_or_default()),
                    fmt_wait(max.to_std().unwrap_or_default())
                )),
                // A decision made before the last model arrived may differ
                // from a peer's; its re-evaluation is moments away.
                None if !r.up_to_date() => awaiting.push(name(r)),
                // Evaluated, and no data yet on reads that succeeded (a query
                // that matches nothing): every replica answers it the same
                // (Unavailable), so it does not hold readiness. Holding it
                // took every replica out of service for all the other
                // ScaledObjects, for as long as one query matched nothing.
                None if r.latest().is_none() && r.no_data() => {
                    no_data.push(format!("{}: {}", name(r), r.waiting_reason()))
                }
                // No decision because a read failed here: a peer whose
                // reads succeeded may have one, so KEDA goes to it.
                None if r.latest().is_none() => awaiting.push(name(r)),
                None => {}
            }
        }
        awaiting.sort();
        stale.sort();
        invalid.sort();
        no_data.sort();
        let models_pending = self.models().pending(Utc::now());
        let health = self.shared.source.health();
        let breaker = health.breaker.as_ref();
        // The probe may predate the breaker opening (a tick ago).
        let open = breaker.is_some_and(|b| b.state == BreakerState::Open);
        let shutting_down = self
            .shared
            .draining
            .load(std::sync::atomic::Ordering::Acquire);
        Readiness {
            ready: !shutting_down
                && source_ok
                && !open
                && awaiting.is_empty()
                && stale.is_empty()
                && models_pending == 0,
            shutting_down,
            source: self.shared.source.describe(),
            source_ok,
            source_error,
            scaled_objects: super::scaled_objects(regs.iter()),
            awaiting_decision: awaiting,
            models_pending,
            breaker: breaker.map(|b| b.state.label()),
            consecutive_failures: breaker.map_or(0, |b| b.consecutive_failures),
            retry_in_seconds: breaker.and_then(|b| b.retry_in).map(|d| d.as_secs_f64()),
            stale,
            invalid,
            no_data,
        }
    }

    fn metrics_text(&self) -> String {
        self.shared
            .telemetry
            .observe_source(&self.shared.source.health());
        self.shared.telemetry.render()
    }

    fn telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }
}
