//! Diagnosis: from a signal and what is known about the target's last
//! rollout, a root cause with a confidence, its evidence, and the action the
//! cause calls for. Pure: the time is passed in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RemediationConfig;
use super::incident::{Action, Cause, Diagnosis, Evidence, Target};
use crate::domain::{MetricKind, Signal};

/// What is known about the target's rollouts, read from its ReplicaSets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutContext {
    /// The newest revision (`deployment.kubernetes.io/revision`).
    pub revision: Option<u64>,
    /// When the newest revision's ReplicaSet was created.
    pub revision_created_at: Option<DateTime<Utc>>,
    /// The revision before it, if any is kept.
    pub previous_revision: Option<u64>,
    /// The Deployment's `Progressing` condition says
    /// `ProgressDeadlineExceeded`.
    pub progress_deadline_exceeded: bool,
    /// Ready and desired replicas of the newest ReplicaSet.
    pub newest_ready: Option<(u32, u32)>,
    /// The Deployment is paused (nothing can be rolled back or restarted).
    pub paused: bool,
}

/// The same signal before the last deploy and now, e.g. error rate 0.1% →
/// 5%.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// What was measured.
    pub metric: String,
    /// Its typical value before the deploy.
    pub before: f64,
    /// Its value now.
    pub after: f64,
    /// The smallest baseline a ratio is taken against: below it, changes
    /// are noise (an error rate of 0 before and 0.1% after is one failed
    /// request, not a tenfold regression, and from 0 any error at all was
    /// an infinite ratio). 0 for none.
    #[serde(default)]
    pub floor: f64,
}

impl Baseline {
    /// How many times worse it is now, against the baseline or the floor,
    /// whichever is higher; infinite from a zero baseline with no floor.
    fn ratio(&self) -> f64 {
        let before = self.before.max(self.floor);
        if before > 0.0 {
            self.after / before
        } else if self.after > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    }

    /// At least twice the baseline: well outside ordinary variation, and
    /// the bar kubectl-era runbooks use for "this deploy made it worse".
    fn regressed(&self) -> bool {
        self.ratio() >= 2.0
    }
}

/// Everything a diagnosis is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Situation {
    /// The workload.
    pub target: Target,
    /// The signal that triggered, if the trigger was a signal.
    pub signal: Option<Signal>,
    /// The target's rollouts, when they could be read.
    pub rollout: Option<RolloutContext>,
    /// Pre-deploy baselines of the target's signals.
    pub baselines: Vec<Baseline>,
    /// The ScaledObject's current `maxReplicaCount`, when it could be read.
    pub ceiling: Option<u32>,
    /// Further facts captured with the signal (e.g. the latest decision
    /// record), kept in the incident's evidence as they are.
    #[serde(default)]
    pub context: Vec<Evidence>,
    /// The firing Alertmanager alert that triggered, if the trigger was an
    /// alert: a regression (error rate, latency) seen from outside.
    #[serde(default)]
    pub alert: Option<AlertTrigger>,
}

/// An Alertmanager alert as a trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertTrigger {
    /// `alertname`.
    pub name: String,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
}

/// How long a new revision's pods may all be unready before that counts as
/// a crash loop: long enough for an image pull, start-up and a readiness
/// probe's first successes, and half of Kubernetes' default 10-minute
/// progress deadline, which catches the slower cases.
const CRASH_LOOP_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Diagnoses a situation at `now`.
pub fn diagnose(s: &Situation, cfg: &RemediationConfig, now: DateTime<Utc>) -> Diagnosis {
    let mut evidence = Vec::new();
    if let Some(sig) = &s.signal {
        evidence.push(signal_evidence(sig));
    }
    evidence.extend(s.context.iter().cloned());
    let rollout = s.rollout.clone().unwrap_or_default();
    let deploy_at = rollout.revision_created_at;
    // A deploy is "recent" if its ReplicaSet was created within the window
    // before now and there is something to go back to.
    let recent = deploy_at
        .filter(|t| *t <= now && now - *t <= cfg.deploy_window)
        .filter(|_| rollout.previous_revision.is_some());
    if let (Some(rev), Some(at)) = (rollout.revision, deploy_at) {
        let age = now - at;
        evidence.push(Evidence::new(
            Some(at),
            "rollout",
            format!(
                "revision {rev} created {} min before (deploy window {} min){}",
                age.num_minutes(),
                cfg.deploy_window.num_minutes(),
                match rollout.previous_revision {
                    Some(p) => format!("; previous revision {p}"),
                    None => "; no previous revision kept".to_string(),
                }
            ),
        ));
    }
    let regressions: Vec<&Baseline> = s.baselines.iter().filter(|b| b.regressed()).collect();
    for b in &s.baselines {
        evidence.push(Evidence::new(
            deploy_at,
            "baseline",
            format!(
                "{}: {} before the deploy, {} now ({:.1}x)",
                b.metric,
                b.before,
                b.after,
                b.ratio()
            ),
        ));
    }

    let rollback = |to: Option<u64>| Action::Rollback {
        namespace: s.target.namespace.clone(),
        deployment: s.target.deployment.clone(),
        to_revision: to,
    };

    // 1. Pods of the new revision that do not become ready: none ready
    // once the revision is older than a start-up grace. Younger, none ready
    // is an ordinary rollout whose pods are still starting, and rolling it
    // back would undo a healthy deploy.
    let not_ready = rollout
        .newest_ready
        .is_some_and(|(ready, desired)| desired > 0 && ready == 0)
        && deploy_at.is_some_and(|at| now - at >= CRASH_LOOP_GRACE);
    if rollout.progress_deadline_exceeded || (recent.is_some() && not_ready) {
        if rollout.progress_deadline_exceeded {
            evidence.push(Evidence::new(
                Some(now),
                "rollout",
                "Progressing condition: ProgressDeadlineExceeded",
            ));
        }
        if let Some((ready, desired)) = rollout.newest_ready {
            evidence.push(Evidence::new(
                Some(now),
                "replicas",
                format!("newest ReplicaSet: {ready} of {desired} pods ready"),
            ));
        }
        return match (recent, rollout.previous_revision) {
            // A new revision that cannot start: going back is the fix.
            (Some(_), Some(prev)) => Diagnosis {
                cause: Cause::CrashLoop,
                confidence: if rollout.progress_deadline_exceeded && not_ready {
                    0.97
                } else {
                    0.9
                },
                evidence,
                action: Some(rollback(Some(prev))),
            },
            // Crashing without a recent deploy: a restart might help but
            // cannot be trusted to, so it is proposed below the threshold.
            _ => Diagnosis {
                cause: Cause::CrashLoop,
                confidence: 0.6,
                evidence,
                action: Some(Action::Restart {
                    namespace: s.target.namespace.clone(),
                    deployment: s.target.deployment.clone(),
                }),
            },
        };
    }

    // 2. A regression or a struggling signal right after a deploy.
    if let (Some(at), Some(prev)) = (recent, rollout.previous_revision) {
        let struggling = s.alert.is_some()
            || matches!(
                s.signal,
                Some(Signal::NotKeepingUp { .. } | Signal::LatencySloBreach { .. })
            );
        let started = signal_started(s.signal.as_ref()).or(s.alert.as_ref().map(|a| a.starts_at));
        let ceiling = matches!(
            s.signal,
            Some(Signal::AtCeiling { .. } | Signal::CapacityExhaustionPredicted { .. })
        );
        if struggling || !regressions.is_empty() {
            let mut confidence: f64 = 0.55;
            if !regressions.is_empty() {
                confidence += 0.3;
            }
            if started.is_some_and(|t| t >= at) {
                // It began after the deploy, not before.
                confidence += 0.1;
                evidence.push(Evidence::new(
                    started,
                    "signal",
                    "began after the new revision was created",
                ));
            }
            return Diagnosis {
                cause: Cause::BadDeploy,
                confidence: confidence.min(0.99),
                evidence,
                action: Some(rollback(Some(prev))),
            };
        }
        if ceiling {
            // More demand right after a deploy may be a slower revision
            // rather than more traffic: without a regression to point at,
            // neither a rollback nor a higher ceiling is safe to automate.
            evidence.push(Evidence::new(
                Some(at),
                "rollout",
                "at the ceiling within the deploy window, with no baseline regression",
            ));
            let action = raise_ceiling(s, cfg);
            evidence.extend(capped_evidence(s));
            return Diagnosis {
                cause: Cause::CapacityCeiling,
                confidence: 0.6,
                evidence,
                action,
            };
        }
    }

    match &s.signal {
        Some(Signal::AtCeiling {
            max_replicas,
            demand_replicas,
            ..
        }) => {
            let action = raise_ceiling(s, cfg);
            let confidence = if demand_replicas > max_replicas {
                0.9
            } else {
                0.7
            };
            ceiling_diagnosis(s, cfg, confidence, evidence, action)
        }
        Some(Signal::CapacityExhaustionPredicted { peak, capacity, .. }) => {
            let action = raise_ceiling(s, cfg);
            // A forecast only just over capacity may be noise.
            let confidence = if *peak >= 1.1 * capacity { 0.88 } else { 0.75 };
            ceiling_diagnosis(s, cfg, confidence, evidence, action)
        }
        Some(
            Signal::LatencySloBreach { .. }
            | Signal::NotKeepingUp {
                kind: MetricKind::P99Latency,
                ..
            },
        ) => {
            let scaled = match &s.signal {
                Some(Signal::NotKeepingUp {
                    from_replicas,
                    to_replicas,
                    ..
                }) => to_replicas > from_replicas,
                _ => false,
            };
            if scaled {
                evidence.push(Evidence::new(
                    Some(now),
                    "replicas",
                    "latency did not respond to added replicas, and no recent deploy",
                ));
                Diagnosis {
                    cause: Cause::DependencyFailure,
                    confidence: 0.8,
                    evidence,
                    action: None,
                }
            } else {
                unknown(evidence)
            }
        }
        _ => unknown(evidence),
    }
}

fn unknown(evidence: Vec<Evidence>) -> Diagnosis {
    Diagnosis {
        cause: Cause::Unknown,
        confidence: 0.3,
        evidence,
        action: None,
    }
}

fn ceiling_diagnosis(
    s: &Situation,
    cfg: &RemediationConfig,
    confidence: f64,
    mut evidence: Vec<Evidence>,
    action: Option<Action>,
) -> Diagnosis {
    if let Some(e) = capped_evidence(s) {
        evidence.push(e);
    } else if action.is_none() {
        let detail = match s.ceiling.or_else(|| signal_ceiling(s.signal.as_ref())) {
            Some(max) => format!(
                "maxReplicaCount {max} is already at the hard cap {}",
                cfg.hard_cap
            ),
            None => "the ScaledObject's maxReplicaCount is not known (it could not be read from Kubernetes), so no raise can be planned".to_string(),
        };
        evidence.push(Evidence::new(None, "ceiling", detail));
    }
    Diagnosis {
        cause: Cause::CapacityCeiling,
        confidence,
        evidence,
        action,
    }
}

/// `RaiseCeiling` by what demand needs, at most `max_ceiling_step` and never
/// past the hard cap; `None` when already at the cap, or when the count is
/// held by a foresight trigger's own `maxReplicaCount` below the
/// ScaledObject's (see [`trigger_capped`]).
fn raise_ceiling(s: &Situation, cfg: &RemediationConfig) -> Option<Action> {
    if trigger_capped(s).is_some() {
        return None;
    }
    let from = s.ceiling.or_else(|| signal_ceiling(s.signal.as_ref()))?;
    let needed = match &s.signal {
        Some(Signal::AtCeiling {
            demand_replicas, ..
        }) => demand_replicas.saturating_sub(from),
        Some(Signal::CapacityExhaustionPredicted {
            peak,
            capacity,
            max_replicas,
            ..
        }) if *capacity > 0.0 && peak.is_finite() => {
            // `capacity` is what the trigger's own ceiling carries (its
            // maxReplicaCount when the signal says, else the ScaledObject's).
            let carriers = if *max_replicas > 0 {
                *max_replicas
            } else {
                from
            };
            let per_replica = capacity / f64::from(carriers.max(1));
            // Saturating float-to-int cast; the step bounds it anyway.
            ((peak / per_replica).ceil() as u32).saturating_sub(from)
        }
        _ => 0,
    };
    let step = needed.clamp(1, cfg.max_ceiling_step.max(1));
    let to = from.saturating_add(step).min(cfg.hard_cap);
    (to > from).then(|| Action::RaiseCeiling {
        namespace: s.target.namespace.clone(),
        scaled_object: s.target.scaled_object.clone(),
        from,
        to,
    })
}

/// The trigger's and the ScaledObject's `maxReplicaCount` when an
/// `AtCeiling` or `CapacityExhaustionPredicted` came from a foresight
/// trigger capped below the ScaledObject:
/// the trigger's cap holds the count, not the ScaledObject's ceiling, so
/// raising the ceiling would not help (and a second trigger capped on
/// purpose for its own signal is not the workload's limit). A human
/// decides whether the trigger's cap should follow the ScaledObject's.
fn trigger_capped(s: &Situation) -> Option<(u32, u32)> {
    let trigger = signal_ceiling(s.signal.as_ref())?;
    let ceiling = s.ceiling?;
    (trigger < ceiling).then_some((trigger, ceiling))
}

/// The evidence line of [`trigger_capped`], when it holds.
fn capped_evidence(s: &Situation) -> Option<Evidence> {
    let (trigger, ceiling) = trigger_capped(s)?;
    Some(Evidence::new(
        None,
        "ceiling",
        format!(
            "the foresight trigger's maxReplicaCount {trigger} is below the ScaledObject's {ceiling}: the trigger's own cap holds the count, not the ScaledObject's ceiling; raise the trigger's maxReplicaCount if it should follow the ScaledObject's"
        ),
    ))
}

fn signal_ceiling(sig: Option<&Signal>) -> Option<u32> {
    match sig {
        Some(Signal::AtCeiling { max_replicas, .. }) => Some(*max_replicas),
        // 0: recorded before the signal carried it.
        Some(Signal::CapacityExhaustionPredicted { max_replicas, .. }) if *max_replicas > 0 => {
            Some(*max_replicas)
        }
        _ => None,
    }
}

/// When the condition behind a signal began, where the signal says.
fn signal_started(sig: Option<&Signal>) -> Option<DateTime<Utc>> {
    match sig? {
        Signal::LatencySloBreach { since, .. } => Some(*since),
        Signal::NotKeepingUp { scaled_up_at, .. } => Some(*scaled_up_at),
        Signal::AtCeiling { at, .. } | Signal::CapacityExhaustionPredicted { at, .. } => Some(*at),
    }
}

fn signal_evidence(sig: &Signal) -> Evidence {
    let (at, detail) = match sig {
        Signal::AtCeiling {
            at,
            max_replicas,
            demand_replicas,
        } => (
            *at,
            format!(
                "AtCeiling: demand needs {demand_replicas} replicas, maxReplicaCount is {max_replicas}"
            ),
        ),
        Signal::CapacityExhaustionPredicted {
            at,
            kind,
            breach_at,
            peak,
            capacity,
            ..
        } => (
            *at,
            format!(
                "CapacityExhaustionPredicted: {kind:?} forecast peak {peak:.1} exceeds capacity {capacity:.1} from {breach_at}"
            ),
        ),
        Signal::NotKeepingUp {
            at,
            kind,
            scaled_up_at,
            from_replicas,
            to_replicas,
            value_then,
            value_now,
        } => (
            *at,
            format!(
                "NotKeepingUp: {kind:?} {value_then:.1} → {value_now:.1} after scaling {from_replicas} → {to_replicas} at {scaled_up_at}"
            ),
        ),
        Signal::LatencySloBreach {
            at,
            since,
            p99,
            target,
        } => (
            *at,
            format!("LatencySloBreach: p99 {p99:.3} above target {target:.3} since {since}"),
        ),
    };
    Evidence::new(Some(at), "signal", detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn target() -> Target {
        Target {
            namespace: "shop".into(),
            scaled_object: "orders".into(),
            deployment: "orders".into(),
        }
    }

    fn deployed(at: DateTime<Utc>) -> RolloutContext {
        RolloutContext {
            revision: Some(7),
            revision_created_at: Some(at),
            previous_revision: Some(6),
            ..RolloutContext::default()
        }
    }

    fn latency(at: DateTime<Utc>, since: DateTime<Utc>) -> Signal {
        Signal::LatencySloBreach {
            at,
            since,
            p99: 0.9,
            target: 0.3,
        }
    }

    #[test]
    fn regression_right_after_a_deploy_is_a_bad_deploy_with_high_confidence() {
        let s = Situation {
            target: target(),
            signal: Some(latency(t(10), t(6))),
            rollout: Some(deployed(t(5))),
            baselines: vec![Baseline {
                metric: "error rate".into(),
                before: 0.001,
                after: 0.05,
                floor: 0.0,
            }],
            ceiling: Some(10),
            context: vec![],
            alert: None,
        };
        let d = diagnose(&s, &RemediationConfig::default(), t(10));
        assert_eq!(d.cause, Cause::BadDeploy);
        assert!(d.confidence >= 0.85, "{d:?}");
        assert_eq!(
            d.action,
            Some(Action::Rollback {
                namespace: "shop".into(),
                deployment: "orders".into(),
                to_revision: Some(6)
            })
        );
        // Evidence names the signal, the revision and the baseline.
        let sources: Vec<&str> = d.evidence.iter().map(|e| e.source.as_str()).collect();
        assert!(
            sources.contains(&"signal")
                && sources.contains(&"rollout")
                && sources.contains(&"baseline")
        );
        assert!(d.evidence.iter().any(|e| e.detail.contains("revision 7")));
        assert!(d.evidence.iter().any(|e| e.detail.contains("50.0x")));
    }

    #[test]
    fn a_zero_error_rate_is_measured_against_the_floor() {
        let b = |before: f64, after: f64| Baseline {
            metric: "error rate".into(),
            before,
            after,
            floor: 0.005,
        };
        // One failed request after a clean half hour: not a regression.
        assert!(!b(0.0, 0.001).regressed());
        assert!((b(0.0, 0.001).ratio() - 0.2).abs() < 1e-12);
        // From nothing to 5% is one.
        assert!(b(0.0, 0.05).regressed());
        // Above the floor the baseline itself is the measure.
        assert!(b(0.01, 0.02).regressed());
        assert!(!b(0.01, 0.019).regressed());
        // No floor: from zero, anything is infinitely worse.
        let raw = Baseline {
            floor: 0.0,
            ..b(0.0, 0.001)
        };
        assert!(raw.ratio().is_infinite() && raw.regressed());
    }

    #[test]
    fn a_deploy_without_a_baseline_regression_stays_below_the_threshold() {
        let s = Situation {
            target: target(),
            signal: Some(latency(t(10), t(2))),
            rollout: Some(deployed(t(5))),
            baselines: vec![],
            ceiling: None,
            context: vec![],
            alert: None,
        };
        let d = diagnose(&s, &RemediationConfig::default(), t(10));
        assert_eq!(d.cause, Cause::BadDeploy);
        assert!(d.confidence < 0.85);
    }

    #[test]
    fn a_deploy_outside_the_window_is_not_blamed() {
        let s = Situation {
            target: target(),
            signal: Some(latency(t(40), t(30))),
            rollout: Some(deployed(t(5))),
            baselines: vec![Baseline {
                metric: "p99".into(),
                before: 0.1,
                after: 0.9,
                floor: 0.0,
            }],
            ceiling: None,
            context: vec![],
            alert: None,
        };
        let d = diagnose(&s, &RemediationConfig::default(), t(40));
        assert_ne!(d.cause, Cause::BadDeploy);
    }

    #[test]
    fn a_trigger_capped_below_the_scaled_object_is_not_a_ceiling_to_raise() {
        // A second foresight trigger capped at 2 for its own signal, on a
        // ScaledObject whose ceiling is 60: raising 60 would not move it.
        let s = Situation {
            target: target(),
            signal: Some(Signal::AtCeiling {
                at: t(0),
                max_replicas: 2,
                demand_replicas: 5,
            }),
            rollout: Some(deployed(t(-600))),
            baselines: vec![],
            ceiling: Some(60),
            context: vec![],
            alert: None,
        };
        let capped = |s: &Situation| {
            let d = diagnose(s, &RemediationConfig::default(), t(0));
            assert_eq!(d.cause, Cause::CapacityCeiling);
            assert_eq!(d.action, None, "{d:?}");
            assert!(
                d.evidence
                    .iter()
                    .any(|e| e.detail.contains("trigger's own cap holds the count")),
                "{d:?}"
            );
        };
        capped(&s);
        // The same for a forecast breach of the trigger's capacity.
        let predicted = |max_replicas| Situation {
            signal: Some(Signal::CapacityExhaustionPredicted {
                at: t(0),
                kind: MetricKind::QueueDepth,
                breach_at: t(2),
                peak: 7_979.0,
                capacity: 2_000.0,
                max_replicas,
            }),
            ..s.clone()
        };
        capped(&predicted(2));
        // The ScaledObject's own ceiling (or a record from before the
        // trigger's was kept) is raised.
        for max in [60, 0] {
            let d = diagnose(&predicted(max), &RemediationConfig::default(), t(0));
            assert!(
                matches!(d.action, Some(Action::RaiseCeiling { from: 60, .. })),
                "{max}: {d:?}"
            );
        }
        // A trigger capped above its ScaledObject: its capacity is 100 pods
        // of 100, so a peak of 10,500 needs 105 pods, 45 above the ceiling
        // of 60 (a step of 10 at most); read as 60 pods' capacity, the peak
        // looked like 63 pods.
        let above = Situation {
            signal: Some(Signal::CapacityExhaustionPredicted {
                at: t(0),
                kind: MetricKind::QueueDepth,
                breach_at: t(2),
                peak: 10_500.0,
                capacity: 10_000.0,
                max_replicas: 100,
            }),
            ..s.clone()
        };
        let d = diagnose(&above, &RemediationConfig::default(), t(0));
        assert!(
            matches!(
                d.action,
                Some(Action::RaiseCeiling {
                    from: 60,
                    to: 70,
                    ..
                })
            ),
            "{d:?}"
        );
    }

    #[test]
    fn at_ceiling_without_a_deploy_raises_the_ceiling_within_step_and_cap() {
        let sig = Signal::AtCeiling {
            at: t(0),
            max_replicas: 20,
            demand_replicas: 45,
        };
        let mut s = Situation {
            target: target(),
            signal: Some(sig),
            rollout: Some(deployed(t(-600))),
            baselines: vec![],
            ceiling: Some(20),
            context: vec![],
            alert: None,
        };
        let cfg = RemediationConfig {
            hard_cap: 25,
            max_ceiling_step: 10,
            ..RemediationConfig::default()
        };
        let d = diagnose(&s, &cfg, t(0));
        assert_eq!(d.cause, Cause::CapacityCeiling);
        assert!(d.confidence >= 0.85);
        assert!(matches!(
            d.action,
            Some(Action::RaiseCeiling {
                from: 20,
                to: 25,
                ..
            })
        ));
        s.ceiling = Some(25);
        let d = diagnose(&s, &cfg, t(0));
        assert_eq!(d.action, None, "at the hard cap nothing is raised");
        let cfg = RemediationConfig {
            hard_cap: 100,
            max_ceiling_step: 10,
            ..RemediationConfig::default()
        };
        s.ceiling = Some(20);
        let d = diagnose(&s, &cfg, t(0));
        assert!(matches!(
            d.action,
            Some(Action::RaiseCeiling {
                from: 20,
                to: 30,
                ..
            })
        ));
    }

    #[test]
    fn unready_pods_of_a_rollout_still_starting_are_not_a_crash_loop() {
        let mut r = deployed(t(0));
        r.newest_ready = Some((0, 3));
        let s = |now: i64| Situation {
            target: target(),
            signal: Some(latency(t(now), t(now - 1))),
            rollout: Some(r.clone()),
            baselines: vec![],
            ceiling: None,
            context: vec![],
            alert: None,
        };
        let cfg = RemediationConfig::default();
        // Two minutes in, the new pods are still starting: a struggling
        // signal during the rollout is a possible bad deploy, below the
        // threshold, not a crash loop to roll back.
        let young = diagnose(&s(2), &cfg, t(2));
        assert_eq!(young.cause, Cause::BadDeploy);
        assert!(young.confidence < cfg.confidence_threshold, "{young:?}");
        // Six minutes in and still none ready: a crash loop.
        let old = diagnose(&s(6), &cfg, t(6));
        assert_eq!(old.cause, Cause::CrashLoop);
        assert!(old.confidence >= cfg.confidence_threshold, "{old:?}");
    }

    #[test]
    fn progress_deadline_after_a_deploy_is_a_crash_loop_rolled_back() {
        let mut r = deployed(t(0));
        r.progress_deadline_exceeded = true;
        r.newest_ready = Some((0, 3));
        let s = Situation {
            target: target(),
            signal: None,
            rollout: Some(r),
            baselines: vec![],
            ceiling: None,
            context: vec![],
            alert: None,
        };
        let d = diagnose(&s, &RemediationConfig::default(), t(12));
        assert_eq!(d.cause, Cause::CrashLoop);
        assert!(d.confidence > 0.9);
        assert!(matches!(
            d.action,
            Some(Action::Rollback {
                to_revision: Some(6),
                ..
            })
        ));
    }

    #[test]
    fn latency_that_replicas_did_not_fix_is_a_dependency_failure() {
        let sig = Signal::NotKeepingUp {
            at: t(30),
            kind: MetricKind::P99Latency,
            scaled_up_at: t(26),
            from_replicas: 4,
            to_replicas: 8,
            value_then: 0.8,
            value_now: 0.9,
        };
        let s = Situation {
            target: target(),
            signal: Some(sig),
            rollout: Some(deployed(t(-600))),
            baselines: vec![],
            ceiling: None,
            context: vec![],
            alert: None,
        };
        let d = diagnose(&s, &RemediationConfig::default(), t(30));
        assert_eq!(d.cause, Cause::DependencyFailure);
        assert_eq!(d.action, None);
    }

    #[test]
    fn nothing_to_go_on_is_unknown() {
        let s = Situation {
            target: target(),
            signal: Some(latency(t(30), t(20))),
            rollout: None,
            baselines: vec![],
            ceiling: None,
            context: vec![],
            alert: None,
        };
        let d = diagnose(&s, &RemediationConfig::default(), t(30));
        assert_eq!(d.cause, Cause::Unknown);
        assert!(d.confidence < 0.5);
    }
}
