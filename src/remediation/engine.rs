//! The engine: signals in, incidents, actions, pages and audit records out.
//! One task owns it; it reads the clock only to stamp records, and passes
//! `now` to the pure diagnosis and guardrails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::RemediationConfig;
use super::alerts::AlertmanagerAlert;
use super::audit::{AuditLog, AuditRecord};
use super::diagnose::{AlertTrigger, Baseline, RolloutContext, Situation, diagnose};
use super::error::RemediationError;
use super::guardrails::{Guardrails, Verdict};
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

/// Looks up the latest decision the runtime made for a ScaledObject.
pub type DecisionLookup = Arc<dyn Fn(&ScaledObjectKey) -> Option<Arc<Decision>> + Send + Sync>;

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
}

/// An incident the engine handled, and how its action ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The incident as opened.
    pub incident: Incident,
    /// The action's outcome (dry-run outcomes included), if one ran.
    pub outcome: Option<ActionOutcome>,
}

/// The remediation engine.
pub struct Engine {
    opts: EngineOptions,
    guardrails: Guardrails,
    leader: Leadership,
    recent: HashMap<(ScaledObjectKey, &'static str), DateTime<Utc>>,
    seq: u64,
}

impl Engine {
    /// An engine that acts while `leader` says so.
    pub fn new(opts: EngineOptions, leader: Leadership) -> Self {
        Self {
            guardrails: Guardrails::new(opts.config.clone()),
            opts,
            leader,
            recent: HashMap::new(),
            seq: 0,
        }
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

    /// Handles one signal at `now`. `None` when this replica is not the
    /// leader, or the same signal already opened an incident for the target
    /// within the dedupe window (the policy repeats a signal every tick).
    pub async fn on_signal(
        &mut self,
        key: ScaledObjectKey,
        signal: Signal,
        now: DateTime<Utc>,
    ) -> Result<Option<Handled>, RemediationError> {
        if !*self.leader.borrow() {
            return Ok(None);
        }
        if !self.first_within_window((key.clone(), signal.name()), now) {
            return Ok(None);
        }
        let target = Target {
            namespace: key.namespace.clone(),
            scaled_object: key.name.clone(),
            deployment: key.name.clone(),
        };
        let (target, ceiling, rollout, baselines) = self.gather(target, true, now).await;
        // Evidence first: the decision record of the tick that raised the
        // signal, as the runtime holds it now, before anything changes.
        let context = self
            .opts
            .recent_decision
            .as_ref()
            .and_then(|lookup| lookup(&key))
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

    /// Whether this is the first trigger of its kind for the target within
    /// the dedupe window (and remembers it if so).
    fn first_within_window(
        &mut self,
        dedupe: (ScaledObjectKey, &'static str),
        now: DateTime<Utc>,
    ) -> bool {
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
    /// `None` when they are missing, when this replica is not the leader, or
    /// when an alert already opened an incident for the target within the
    /// dedupe window.
    pub async fn on_alert(
        &mut self,
        alert: AlertmanagerAlert,
        now: DateTime<Utc>,
    ) -> Result<Option<Handled>, RemediationError> {
        if !*self.leader.borrow() {
            return Ok(None);
        }
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
        if !self.first_within_window((key, "alert"), now) {
            return Ok(None);
        }
        let (target, ceiling, rollout, baselines) = self.gather(target, resolve, now).await;
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
    pub async fn on_situation(
        &mut self,
        situation: Situation,
        now: DateTime<Utc>,
    ) -> Result<Handled, RemediationError> {
        let diagnosis = diagnose(&situation, &self.opts.config, now);
        let enabled = (self.opts.enabled_targets)();
        let verdict = self.guardrails.judge(&diagnosis, enabled, now);
        self.seq += 1;
        let incident = Incident {
            id: format!(
                "{}-{}-{}-{}",
                now.format("%Y%m%dT%H%M%SZ"),
                situation.target.namespace,
                situation.target.deployment,
                self.seq
            ),
            opened_at: now,
            target: situation.target.clone(),
            signal: situation.signal.clone(),
            diagnosis,
            verdict,
        };
        self.opts.audit.append(&AuditRecord::Opened {
            at: now,
            incident: Box::new(incident.clone()),
        })?;
        info!(
            incident = %incident.id,
            cause = ?incident.diagnosis.cause,
            confidence = incident.diagnosis.confidence,
            verdict = ?incident.verdict,
            "remediation incident"
        );
        let outcome = match &incident.verdict {
            Verdict::Execute { action } => Some(self.act(&incident, action, now, false).await?),
            Verdict::DryRun { action } => Some(self.act(&incident, action, now, true).await?),
            Verdict::PageOnly { .. } | Verdict::Escalate { .. } => None,
        };
        if let Some(pager) = &self.opts.pager {
            let error = pager
                .page(&incident, outcome.as_ref())
                .await
                .err()
                .map(|e| e.to_string());
            if let Some(e) = &error {
                warn!(incident = %incident.id, error = %e, "paging failed");
            }
            self.opts.audit.append(&AuditRecord::Paged {
                at: Utc::now(),
                incident_id: incident.id.clone(),
                error,
            })?;
        }
        Ok(Handled { incident, outcome })
    }

    async fn act(
        &self,
        incident: &Incident,
        action: &Action,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<ActionOutcome, RemediationError> {
        self.opts.audit.append(&AuditRecord::ActionStarted {
            at: Utc::now(),
            incident_id: incident.id.clone(),
            action: action.clone(),
        })?;
        let outcome = match &self.opts.kube {
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
        self.opts.audit.append(&AuditRecord::ActionFinished {
            at: Utc::now(),
            incident_id: incident.id.clone(),
            action: action.clone(),
            outcome: outcome.clone(),
        })?;
        if !dry_run
            && let Some(kube) = &self.opts.kube
            && let Err(e) = kube.record_event(action, &outcome).await
        {
            warn!(incident = %incident.id, error = %e, "cannot publish the Event");
        }
        Ok(outcome)
    }
}
