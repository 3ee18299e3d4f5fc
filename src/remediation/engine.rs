//! The engine: signals in, incidents, actions, pages and audit records out.
//! One task owns it; it reads the clock only to stamp records, and passes
//! `now` to the pure diagnosis and guardrails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::RemediationConfig;
use super::alerts::AlertmanagerAlert;
use super::audit::{AuditLog, AuditRecord};
use super::diagnose::{AlertTrigger, Baseline, RolloutContext, Situation, diagnose};
use super::error::RemediationError;
use super::guardrails::{Guardrails, PageReason, RemediationMode, Verdict};
use super::incident::Evidence;
use super::incident::{Action, ActionOutcome, Incident, Target};
use super::kube::KubeActions;
use super::page::Pager;
use crate::domain::{Decision, ScaledObjectKey, Signal};

/// Whether this replica of foresight holds the leader lease; only the
/// leader acts. `watch::channel(true)` for a single replica.
pub type Leadership = watch::Receiver<bool>;

/// Where pre-deploy baselines come from (e.g. the metric source, queried
/// over the window before the deploy).
pub trait BaselineSource: Send + Sync {
    /// Baselines of the target's signals before `deploy_at`, against now.
    /// `queries` are the ScaledObject's foresight trigger queries by key
    /// (`p99LatencyQuery`, ...).
    fn baselines<'a>(
        &'a self,
        target: &'a Target,
        queries: &'a BTreeMap<String, String>,
        deploy_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<Baseline>>;
}

/// Counts the remediation-enabled targets: the blast radius is a share of
/// them.
pub type TargetCount = Arc<dyn Fn() -> usize + Send + Sync>;

/// Looks up the latest decision the runtime made for a ScaledObject: with
/// several foresight triggers, the one that raised the signal.
pub type DecisionLookup =
    Arc<dyn Fn(&ScaledObjectKey, &Signal) -> Option<Arc<Decision>> + Send + Sync>;

/// Counts a handled incident by its root cause's and its outcome's labels
/// ([`Cause::label`](super::Cause::label), [`Handled::outcome_label`]).
pub type IncidentCounter = Arc<dyn Fn(&'static str, &'static str) + Send + Sync>;

/// Counts incidents into the runtime's `/metrics`, as
/// `foresight_remediation_incidents_total{cause, outcome}`.
pub fn incident_counter<C: crate::runtime::ScalerCore>(core: Arc<C>) -> IncidentCounter {
    Arc::new(move |cause, outcome| {
        core.telemetry()
            .observe_remediation_incident(cause, outcome);
    })
}

/// What the engine works with.
pub struct EngineOptions {
    /// Thresholds, guardrails, mode.
    pub config: RemediationConfig,
    /// The audit trail.
    pub audit: AuditLog,
    /// The webhook humans are paged through, if configured.
    pub pager: Option<Pager>,
    /// Kubernetes access; without it incidents are diagnosed from the
    /// signal alone and nothing can be executed.
    pub kube: Option<KubeActions>,
    /// Pre-deploy baselines, if a source is configured.
    pub baselines: Option<Arc<dyn BaselineSource>>,
    /// Remediation-enabled targets.
    pub enabled_targets: TargetCount,
    /// The latest decision for a ScaledObject, captured as evidence.
    pub recent_decision: Option<DecisionLookup>,
    /// Counts every incident handled, for `/metrics`.
    pub incidents: Option<IncidentCounter>,
}

/// An incident the engine handled, and how its action ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The incident as opened.
    pub incident: Incident,
    /// The action's outcome (dry-run outcomes included), if one ran.
    pub outcome: Option<ActionOutcome>,
}

impl Handled {
    /// How the incident ended, as the `outcome` label of
    /// `foresight_remediation_incidents_total`: the action's result when one
    /// ran (`acted`, `dry_run`, `skipped`, `refused`, `failed`), else the
    /// verdict (`escalated`, `not_leader`, or `paged` for every other
    /// reason a human decides, whether or not a webhook is set).
    pub fn outcome_label(&self) -> &'static str {
        match (&self.outcome, &self.incident.verdict) {
            (Some(ActionOutcome::Done { .. }), _) => "acted",
            (Some(ActionOutcome::DryRun { .. }), _) => "dry_run",
            (Some(ActionOutcome::Skipped { .. }), _) => "skipped",
            (Some(ActionOutcome::Refused { .. }), _) => "refused",
            (Some(ActionOutcome::Failed { .. }), _) => "failed",
            (
                None,
                Verdict::PageOnly {
                    reason: PageReason::NotLeader,
                },
            ) => "not_leader",
            (None, Verdict::Escalate { .. }) => "escalated",
            (None, _) => "paged",
        }
    }
}

/// The remediation engine.
pub struct Engine {
    opts: EngineOptions,
    guardrails: Guardrails,
    leader: Leadership,
    /// When each (target, trigger, led) last opened an incident. Whether
    /// this replica led is part of the key, so a follower that recorded a
    /// signal and then becomes leader still acts on its next repeat.
    recent: HashMap<Dedupe, DateTime<Utc>>,
    /// Incidents opened by this process, the last part of their ids.
    seq: u64,
    /// This replica's name (its pod's), in incident ids when set (see
    /// [`Engine::with_replica`]).
    replica: Option<String>,
    /// Whether the guardrails hold the actions other replicas took, read
    /// from the cluster since this replica last became leader: its own
    /// audit log has only its own, and a new leader must not start with a
    /// closed breaker over targets the old one just acted on.
    cluster_history: bool,
}

type Dedupe = (ScaledObjectKey, &'static str, bool);

impl Engine {
    /// Whether this replica leads, as the engine sees it: for intakes that
    /// must refuse work a follower would only record.
    pub fn leadership(&self) -> Leadership {
        self.leader.clone()
    }

    /// An engine that acts while `leader` says so.
    pub fn new(opts: EngineOptions, leader: Leadership) -> Self {
        let mut guardrails = Guardrails::new(opts.config.clone());
        // Only the segments that can hold records inside the guardrails'
        // windows (with an hour to spare for clock skew between replicas
        // sharing the log).
        let window = opts
            .config
            .breaker_window
            .max(opts.config.blast_window)
            .to_std()
            .unwrap_or_default()
            + std::time::Duration::from_secs(3600);
        let since = std::time::SystemTime::now().checked_sub(window);
        match opts.audit.read_since(since) {
            Ok((records, skipped)) => {
                for s in &skipped {
                    warn!(path = %s.file.display(), line = s.line, reason = %s.reason, "audit log line skipped");
                }
                guardrails.remember(&records)
            }
            Err(e) => {
                warn!(error = %e, "cannot read the audit log back; the guardrails start with no history")
            }
        }
        Self {
            guardrails,
            opts,
            leader,
            recent: HashMap::new(),
            seq: 0,
            cluster_history: false,
            replica: None,
        }
    }

    /// Names this replica (its pod) in the ids of the incidents it opens.
    /// Replicas evaluate on the same ticks and see the same signals, so on
    /// one shared audit log their ids collided (same second, same target,
    /// same per-process count), and `incidents show` mixed a leader's
    /// action into a follower's incident.
    pub fn with_replica(mut self, name: impl Into<String>) -> Self {
        self.replica = Some(name.into());
        self
    }

    /// Consumes the policy's signals until `shutdown`.
    pub async fn run(
        self,
        signals: broadcast::Receiver<(ScaledObjectKey, Signal)>,
        shutdown: CancellationToken,
    ) {
        self.run_with_alerts(signals, None, shutdown).await;
    }

    /// Consumes the policy's signals, and alerts from `POST /alerts`, until
    /// `shutdown`.
    pub async fn run_with_alerts(
        mut self,
        mut signals: broadcast::Receiver<(ScaledObjectKey, Signal)>,
        mut alerts: Option<mpsc::Receiver<AlertmanagerAlert>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => break,
                Some(alert) = async {
                    match alerts.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = self.on_alert(alert, Utc::now()).await {
                        warn!(error = %e, "remediation of an alert failed");
                    }
                    continue;
                }
                r = signals.recv() => r,
            };
            match received {
                Ok((key, signal)) => {
                    if let Err(e) = self.on_signal(key.clone(), signal, Utc::now()).await {
                        warn!(scaledobject = %key, error = %e, "remediation failed");
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(
                        skipped = n,
                        "remediation fell behind the signals; skipped some"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }

    /// Handles one signal at `now`. `None` when the same signal already
    /// opened an incident for the target within the dedupe window (the
    /// policy repeats a signal every tick). When this replica is not the
    /// leader the incident is recorded as not acted on, from the signal
    /// alone: a follower reads nothing from the cluster and pages no one.
    pub async fn on_signal(
        &mut self,
        key: ScaledObjectKey,
        signal: Signal,
        now: DateTime<Utc>,
    ) -> Result<Option<Handled>, RemediationError> {
        let leads = *self.leader.borrow();
        if !self.first_within_window((key.clone(), signal.name(), leads), now) {
            return Ok(None);
        }
        let target = Target {
            namespace: key.namespace.clone(),
            scaled_object: key.name.clone(),
            deployment: key.name.clone(),
        };
        let (target, ceiling, rollout, baselines) = if leads {
            self.gather(target, true, now).await
        } else {
            (target, None, None, Vec::new())
        };
        // Evidence first: the decision record of the tick that raised the
        // signal, as the runtime holds it now, before anything changes.
        let context = self
            .opts
            .recent_decision
            .as_ref()
            .and_then(|lookup| lookup(&key, &signal))
            .and_then(|d| {
                serde_json::to_string(&*d)
                    .ok()
                    .map(|json| Evidence::new(Some(d.at), "decision", json))
            })
            .into_iter()
            .collect();
        let situation = Situation {
            target,
            signal: Some(signal),
            rollout,
            baselines,
            ceiling,
            context,
            alert: None,
        };
        self.on_situation(situation, now).await.map(Some)
    }

    /// Adds the actions the cluster's Events record (any replica's) to the
    /// guardrails, once per leadership term. Only when enforcing with Events
    /// on: dry runs publish none, and their history is the audit log's. A
    /// failure is logged and the next incident tries again; meanwhile the
    /// guardrails judge on this replica's own history.
    async fn load_cluster_history(&mut self, now: DateTime<Utc>) {
        let Some(kube) = &self.opts.kube else {
            self.cluster_history = true;
            return;
        };
        let cfg = self.guardrails.config();
        if cfg.mode != RemediationMode::Enforce || !kube.publishes_events() {
            self.cluster_history = true;
            return;
        }
        let since = now - cfg.breaker_window.max(cfg.blast_window);
        let slack = TimeDelta::from_std(cfg.action_timeout).unwrap_or(TimeDelta::minutes(5))
            + TimeDelta::minutes(1);
        match kube
            .past_actions(cfg.allowed_namespaces.as_ref(), since)
            .await
        {
            Ok(actions) => {
                info!(
                    actions = actions.len(),
                    "guardrails: read the actions foresight took in the cluster since {since}"
                );
                self.guardrails.merge_cluster(&actions, slack);
                self.cluster_history = true;
            }
            Err(e) => warn!(
                error = %e,
                "guardrails judge without the actions other replicas took; reading them again at the next incident"
            ),
        }
    }

    /// Whether this is the first trigger of its kind for the target within
    /// the dedupe window (and remembers it if so).
    fn first_within_window(&mut self, dedupe: Dedupe, now: DateTime<Utc>) -> bool {
        let window = self.opts.config.dedupe_window;
        if let Some(at) = self.recent.get(&dedupe)
            && now - *at < window
        {
            return false;
        }
        self.recent.retain(|_, at| now - *at < window);
        self.recent.insert(dedupe, now);
        true
    }

    /// Reads what diagnosis needs: the ScaledObject (its Deployment and
    /// ceiling, when `resolve` says the target names a ScaledObject), the
    /// Deployment's rollouts, and pre-deploy baselines. What cannot be read
    /// is logged and left out: a diagnosis with less evidence is still
    /// worth a page.
    async fn gather(
        &self,
        mut target: Target,
        resolve: bool,
        now: DateTime<Utc>,
    ) -> (Target, Option<u32>, Option<RolloutContext>, Vec<Baseline>) {
        let mut ceiling = None;
        let mut rollout = None;
        let mut queries = BTreeMap::new();
        if let Some(kube) = &self.opts.kube {
            if resolve {
                match kube
                    .scaled_object(&target.namespace, &target.scaled_object)
                    .await
                {
                    Ok(so) => {
                        target.deployment = so.deployment;
                        ceiling = Some(so.max_replicas);
                        queries = so.queries;
                    }
                    Err(e) => {
                        warn!(target = %target, error = %e, "diagnosing without the ScaledObject")
                    }
                }
            }
            match kube
                .rollout_context(&target.namespace, &target.deployment)
                .await
            {
                Ok(r) => rollout = Some(r),
                Err(e) => warn!(target = %target, error = %e, "diagnosing without rollout history"),
            }
        }
        let mut baselines = Vec::new();
        if let (Some(source), Some(at)) = (
            &self.opts.baselines,
            rollout.as_ref().and_then(|r| r.revision_created_at),
        ) {
            baselines = source.baselines(&target, &queries, at, now).await;
        }
        (target, ceiling, rollout, baselines)
    }

    /// Handles one firing Alertmanager alert at `now`. Its `namespace`
    /// label, and its `scaledobject` or `deployment` label, name the target.
    /// `None` when they are missing, or when an alert already opened an
    /// incident for the target within the dedupe window. A follower records
    /// it as not acted on, as for signals.
    pub async fn on_alert(
        &mut self,
        alert: AlertmanagerAlert,
        now: DateTime<Utc>,
    ) -> Result<Option<Handled>, RemediationError> {
        let leads = *self.leader.borrow();
        let label = |k: &str| alert.labels.get(k).filter(|v| !v.is_empty()).cloned();
        let Some(namespace) = label("namespace") else {
            warn!(alert = ?alert.labels, "alert without a namespace label; ignored");
            return Ok(None);
        };
        let (target, resolve) = match (label("scaledobject"), label("deployment")) {
            (Some(so), deployment) => (
                Target {
                    namespace,
                    deployment: deployment.unwrap_or_else(|| so.clone()),
                    scaled_object: so,
                },
                true,
            ),
            (None, Some(d)) => (
                Target {
                    namespace,
                    scaled_object: d.clone(),
                    deployment: d,
                },
                false,
            ),
            (None, None) => {
                warn!(alert = ?alert.labels, "alert without a scaledobject or deployment label; ignored");
                return Ok(None);
            }
        };
        let key = ScaledObjectKey::new(target.namespace.clone(), target.scaled_object.clone());
        if !self.first_within_window((key, "alert", leads), now) {
            return Ok(None);
        }
        let (target, ceiling, rollout, baselines) = if leads {
            self.gather(target, resolve, now).await
        } else {
            (target, None, None, Vec::new())
        };
        let name = label("alertname").unwrap_or_else(|| "alert".into());
        let summary = alert
            .annotations
            .get("summary")
            .or_else(|| alert.annotations.get("description"))
            .cloned()
            .unwrap_or_default();
        let situation = Situation {
            target,
            signal: None,
            rollout,
            baselines,
            ceiling,
            context: vec![Evidence::new(
                Some(alert.starts_at),
                "alert",
                format!("{name} firing since {}: {summary}", alert.starts_at),
            )],
            alert: Some(AlertTrigger {
                name,
                starts_at: alert.starts_at,
            }),
        };
        self.on_situation(situation, now).await.map(Some)
    }

    /// Diagnoses, judges, records, acts and pages, in that order: the
    /// incident (with its evidence) is durable before any action starts.
    /// Unless this replica leads, the verdict is "not the leader": nothing
    /// is done and no one is paged. When the audit log cannot be written,
    /// nothing is done either, and the page says why.
    pub async fn on_situation(
        &mut self,
        situation: Situation,
        now: DateTime<Utc>,
    ) -> Result<Handled, RemediationError> {
        let diagnosis = diagnose(&situation, &self.opts.config, now);
        // Leadership changed since the last look (lost, perhaps won back
        // with no incident in between), or is not held: another replica may
        // have acted meanwhile, so read the cluster again when leading.
        if self.leader.has_changed().unwrap_or(false) {
            let _ = self.leader.borrow_and_update();
            self.cluster_history = false;
        }
        if !*self.leader.borrow() {
            self.cluster_history = false;
        } else if !self.cluster_history && self.guardrails.reads_history(&diagnosis) {
            self.load_cluster_history(now).await;
        }
        // Read again here, the last moment before judging: gathering the
        // evidence takes API calls, during which the Lease may have gone.
        let leads = *self.leader.borrow();
        let verdict = if leads {
            let enabled = (self.opts.enabled_targets)();
            self.guardrails.judge(&diagnosis, enabled, now)
        } else {
            // Not judged: the guardrails would count an action that no
            // replica took against the breaker and the blast radius.
            Verdict::PageOnly {
                reason: PageReason::NotLeader,
            }
        };
        self.seq += 1;
        let mut incident = Incident {
            id: match &self.replica {
                Some(r) => format!(
                    "{}-{}-{}-{r}-{}",
                    now.format("%Y%m%dT%H%M%SZ"),
                    situation.target.namespace,
                    situation.target.deployment,
                    self.seq
                ),
                None => format!(
                    "{}-{}-{}-{}",
                    now.format("%Y%m%dT%H%M%SZ"),
                    situation.target.namespace,
                    situation.target.deployment,
                    self.seq
                ),
            },
            opened_at: now,
            target: situation.target.clone(),
            signal: situation.signal.clone(),
            diagnosis,
            verdict,
        };
        if let Err(e) = self.opts.audit.append(&AuditRecord::Opened {
            at: now,
            incident: Box::new(incident.clone()),
        }) {
            // The record must be durable before any action: without it,
            // nothing is done, but the human is still paged (a full or
            // read-only volume must not silence remediation's pages).
            warn!(incident = %incident.id, error = %e, "cannot write the audit log; not acting");
            if matches!(incident.verdict, Verdict::Execute { .. }) {
                incident.verdict = Verdict::PageOnly {
                    reason: PageReason::AuditUnwritable {
                        error: e.to_string(),
                    },
                };
            }
        }
        info!(
            incident = %incident.id,
            cause = ?incident.diagnosis.cause,
            confidence = incident.diagnosis.confidence,
            verdict = ?incident.verdict,
            "remediation incident"
        );
        let outcome = match &incident.verdict {
            Verdict::Execute { action } => Some(self.act(&incident, action, now, false).await),
            Verdict::DryRun { action } => Some(self.act(&incident, action, now, true).await),
            Verdict::PageOnly { .. } | Verdict::Escalate { .. } => None,
        };
        // Followers do not page: the leader pages about the same signal.
        if leads && let Some(pager) = &self.opts.pager {
            let error = pager
                .page(&incident, outcome.as_ref())
                .await
                .err()
                .map(|e| e.to_string());
            if let Some(e) = &error {
                warn!(incident = %incident.id, error = %e, "paging failed");
            }
            if let Err(e) = self.opts.audit.append(&AuditRecord::Paged {
                at: Utc::now(),
                incident_id: incident.id.clone(),
                error,
            }) {
                warn!(incident = %incident.id, error = %e, "cannot record the page in the audit log");
            }
        }
        let handled = Handled { incident, outcome };
        if let Some(count) = &self.opts.incidents {
            count(
                handled.incident.diagnosis.cause.label(),
                handled.outcome_label(),
            );
        }
        Ok(handled)
    }

    /// Records the start, runs the action, records its end. An action
    /// whose start cannot be recorded is not run; a failure to record the
    /// end is logged, and the outcome still reaches the page.
    async fn act(
        &self,
        incident: &Incident,
        action: &Action,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> ActionOutcome {
        if let Err(e) = self.opts.audit.append(&AuditRecord::ActionStarted {
            at: Utc::now(),
            incident_id: incident.id.clone(),
            action: action.clone(),
        }) {
            warn!(incident = %incident.id, error = %e, "cannot write the audit log; not acting");
            return ActionOutcome::Failed {
                message: format!("not started: {e}"),
            };
        }
        let outcome = match &self.opts.kube {
            // A dry run changes nothing either way; without credentials it
            // just cannot plan the exact patch (serve runs like this
            // outside a cluster).
            None if dry_run => ActionOutcome::DryRun {
                message: format!(
                    "would {action}; not planned against the cluster (no Kubernetes access)"
                ),
            },
            None => ActionOutcome::Failed {
                message: "no Kubernetes access".into(),
            },
            Some(kube) => {
                let cause = format!("foresight: {action} (incident {})", incident.id);
                let timeout = self.opts.config.action_timeout;
                match tokio::time::timeout(
                    timeout,
                    kube.execute(action, Some(&cause), now, dry_run),
                )
                .await
                {
                    Ok(Ok(o)) => o,
                    Ok(Err(e)) => ActionOutcome::Failed {
                        message: e.to_string(),
                    },
                    Err(_) => ActionOutcome::Failed {
                        message: RemediationError::Timeout {
                            action: action.to_string(),
                            seconds: timeout.as_secs(),
                        }
                        .to_string(),
                    },
                }
            }
        };
        if let Err(e) = self.opts.audit.append(&AuditRecord::ActionFinished {
            at: Utc::now(),
            incident_id: incident.id.clone(),
            action: action.clone(),
            outcome: outcome.clone(),
        }) {
            warn!(incident = %incident.id, error = %e, "cannot record the action's end in the audit log");
        }
        if !dry_run
            && let Some(kube) = &self.opts.kube
            && let Err(e) = kube.record_event(action, &outcome).await
        {
            warn!(incident = %incident.id, error = %e, "cannot publish the Event");
        }
        if !dry_run
            && matches!(outcome, ActionOutcome::Done { .. })
            && let Some(kube) = &self.opts.kube
        {
            // The policy's cooldown after an action reads this stamp from
            // the trigger metadata KEDA sends, on every replica alike.
            let t = &incident.target;
            match kube
                .stamp_remediation(&t.namespace, &t.scaled_object, now)
                .await
            {
                Ok(0) => {
                    warn!(incident = %incident.id, "no foresight trigger on the ScaledObject to stamp lastRemediation on; no cooldown follows")
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(incident = %incident.id, error = %e, "cannot stamp lastRemediation; no cooldown follows")
                }
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::{Cause, Diagnosis};

    fn handled(verdict: Verdict, outcome: Option<ActionOutcome>) -> Handled {
        Handled {
            incident: Incident {
                id: "i".into(),
                opened_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
                target: Target {
                    namespace: "shop".into(),
                    scaled_object: "web".into(),
                    deployment: "web".into(),
                },
                signal: None,
                diagnosis: Diagnosis {
                    cause: Cause::CrashLoop,
                    confidence: 0.9,
                    evidence: vec![],
                    action: None,
                },
                verdict,
            },
            outcome,
        }
    }

    /// The `outcome` label values are what dashboards and alerts select
    /// on: one per result, then one per verdict without an action.
    #[test]
    fn every_outcome_has_its_metric_label() {
        let restart = Action::Restart {
            namespace: "shop".into(),
            deployment: "web".into(),
        };
        let execute = Verdict::Execute {
            action: restart.clone(),
        };
        let message = String::from("m");
        for (outcome, label) in [
            (
                ActionOutcome::Done {
                    message: message.clone(),
                },
                "acted",
            ),
            (
                ActionOutcome::DryRun {
                    message: message.clone(),
                },
                "dry_run",
            ),
            (
                ActionOutcome::Skipped {
                    message: message.clone(),
                },
                "skipped",
            ),
            (
                ActionOutcome::Refused {
                    message: message.clone(),
                },
                "refused",
            ),
            (ActionOutcome::Failed { message }, "failed"),
        ] {
            assert_eq!(
                handled(execute.clone(), Some(outcome)).outcome_label(),
                label
            );
        }
        for (verdict, label) in [
            (
                Verdict::Escalate {
                    action: restart,
                    attempts: 3,
                },
                "escalated",
            ),
            (
                Verdict::PageOnly {
                    reason: PageReason::NotLeader,
                },
                "not_leader",
            ),
            (
                Verdict::PageOnly {
                    reason: PageReason::NoAction,
                },
                "paged",
            ),
            (
                Verdict::PageOnly {
                    reason: PageReason::LowConfidence {
                        confidence: 0.5,
                        threshold: 0.85,
                    },
                },
                "paged",
            ),
        ] {
            assert_eq!(handled(verdict, None).outcome_label(), label);
        }
        assert_eq!(Cause::CrashLoop.label(), "crash_loop");
    }
}
