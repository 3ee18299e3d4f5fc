//! The only file that talks to the Kubernetes API. Reads, the three
//! actions, the rollout-status watch and Events, each as `kubectl` does
//! them; the rules themselves are in `rollout` (pure). Also the leader
//! election over a Lease that decides which replica acts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;

use super::RolloutContext;
use super::error::RemediationError;
use super::guardrails::PastAction;
use super::incident::{Action, ActionKind, ActionOutcome};
use super::rollout::{
    RollbackPlan, RolloutStatus, restart_patch, rollback_patch, rollout_context, rollout_status,
    select_revision, selector_string,
};
use crate::domain::MetricKind;

/// The field manager of every change foresight makes.
pub const FIELD_MANAGER: &str = "foresight";

/// KEDA's default `maxReplicaCount` when a ScaledObject does not set it.
const KEDA_DEFAULT_MAX_REPLICAS: u32 = 100;

/// What remediation reads from a ScaledObject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaledObjectInfo {
    /// The Deployment it scales (`spec.scaleTargetRef.name`).
    pub deployment: String,
    /// `spec.maxReplicaCount`, or KEDA's default.
    pub max_replicas: u32,
    /// The queries of its external triggers' metadata, by key
    /// (`p99LatencyQuery`, `queueDepthQuery`, ...), for baselines.
    pub queries: BTreeMap<String, String>,
}

/// Kubernetes access for remediation.
#[derive(Clone)]
pub struct KubeActions {
    /// The API client.
    client: Client,
    /// How often a rollout is polled.
    poll: Duration,
    /// Publishes an Event after each action, when on.
    recorder: Option<Recorder>,
}

impl std::fmt::Debug for KubeActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeActions")
            .field("poll", &self.poll)
            .field("events", &self.recorder.is_some())
            .finish()
    }
}

fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
    ))
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

fn to_json_patch(v: Value) -> Result<::json_patch::Patch, serde_json::Error> {
    serde_json::from_value(v)
}

impl KubeActions {
    /// Actions through `client`; rollouts are polled every 2 s, and no
    /// Events are published.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            poll: Duration::from_secs(2),
            recorder: None,
        }
    }

    /// Polls rollout status this often.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Publishes a Kubernetes Event on the target after every action;
    /// `instance` is this pod's name.
    pub fn with_events(mut self, instance: Option<String>) -> Self {
        self.recorder = Some(Recorder::new(
            self.client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance,
            },
        ));
        self
    }

    /// The actions foresight took since `since` in `namespaces` (every
    /// namespace when `None`), from the Events it published: any replica's,
    /// selected by `reportingController`, one [`PastAction`] per Event (a
    /// series with its count; see [`Guardrails::merge_cluster`](super::guardrails::Guardrails::merge_cluster)).
    pub async fn past_actions(
        &self,
        namespaces: Option<&BTreeSet<String>>,
        since: DateTime<Utc>,
    ) -> Result<Vec<PastAction>, RemediationError> {
        let params = ListParams::default().fields(&format!("reportingController={FIELD_MANAGER}"));
        let apis: Vec<(String, Api<K8sEvent>)> = match namespaces {
            Some(ns) => ns
                .iter()
                .map(|n| (n.clone(), Api::namespaced(self.client.clone(), n)))
                .collect(),
            None => vec![("every namespace".into(), Api::all(self.client.clone()))],
        };
        let mut out = Vec::new();
        for (scope, api) in apis {
            let events =
                api.list(&params)
                    .await
                    .map_err(|source| RemediationError::ListEvents {
                        scope,
                        source: Box::new(source),
                    })?;
            for e in events.items {
                let Some(kind) = e.reason.as_deref().and_then(ActionKind::from_event_reason) else {
                    continue;
                };
                let Some((ns, name)) = e
                    .regarding
                    .as_ref()
                    .and_then(|r| Some((r.namespace.clone()?, r.name.clone()?)))
                else {
                    continue;
                };
                let chrono = |t: &k8s_openapi::jiff::Timestamp| {
                    DateTime::from_timestamp(
                        t.as_second(),
                        u32::try_from(t.subsec_nanosecond()).ok()?,
                    )
                };
                let first = e
                    .event_time
                    .as_ref()
                    .map(|t| t.0)
                    .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
                    .and_then(|t| chrono(&t));
                let last = e
                    .series
                    .as_ref()
                    .and_then(|s| chrono(&s.last_observed_time.0))
                    .or(first);
                let (Some(first), Some(last)) = (first, last) else {
                    continue;
                };
                if last < since {
                    continue;
                }
                out.push(PastAction {
                    first,
                    last,
                    count: e
                        .series
                        .as_ref()
                        .map_or(1, |s| u32::try_from(s.count.clamp(1, 100)).unwrap_or(1)),
                    kind,
                    object: format!("{ns}/{name}"),
                    id: format!(
                        "{}/{}",
                        e.metadata.namespace.as_deref().unwrap_or_default(),
                        e.metadata.name.as_deref().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(out)
    }

    /// Whether Events are published, and so can be read back.
    pub fn publishes_events(&self) -> bool {
        self.recorder.is_some()
    }

    /// Reads a Deployment.
    pub async fn deployment(&self, ns: &str, name: &str) -> Result<Deployment, RemediationError> {
        Api::<Deployment>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .map_err(|source| RemediationError::GetDeployment {
                namespace: ns.into(),
                name: name.into(),
                source: Box::new(source),
            })
    }

    /// The ReplicaSets matching the Deployment's selector (controller
    /// ownership is checked by the callers, as kubectl does).
    pub async fn replica_sets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, RemediationError> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let selector = d
            .spec
            .as_ref()
            .map(|s| selector_string(&s.selector))
            .unwrap_or_default();
        Api::<ReplicaSet>::namespaced(self.client.clone(), &ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items)
            .map_err(|source| RemediationError::ListReplicaSets {
                namespace: ns,
                name,
                source: Box::new(source),
            })
    }

    /// Revisions, deploy time and readiness, for diagnosis.
    pub async fn rollout_context(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<RolloutContext, RemediationError> {
        let d = self.deployment(ns, name).await?;
        let sets = self.replica_sets(&d).await?;
        Ok(rollout_context(&d, &sets))
    }

    /// Reads a ScaledObject's target and ceiling.
    pub async fn scaled_object(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<ScaledObjectInfo, RemediationError> {
        let so = self.get_scaled_object(ns, name).await?;
        let spec = &so.data["spec"];
        let kind = spec["scaleTargetRef"]["kind"]
            .as_str()
            .unwrap_or("Deployment");
        let invalid = |reason: String| RemediationError::InvalidScaledObject {
            namespace: ns.into(),
            name: name.into(),
            reason,
        };
        if kind != "Deployment" {
            return Err(invalid(format!(
                "it scales a {kind}; remediation acts on Deployments only"
            )));
        }
        let deployment = spec["scaleTargetRef"]["name"]
            .as_str()
            .ok_or_else(|| invalid("spec.scaleTargetRef.name is missing".into()))?
            .to_string();
        Ok(ScaledObjectInfo {
            deployment,
            max_replicas: max_replicas(spec),
            queries: spec["triggers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| is_external(t))
                .filter_map(|t| t["metadata"].as_object())
                .flatten()
                .filter(|(k, _)| k.ends_with("Query"))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
        })
    }

    async fn get_scaled_object(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<DynamicObject, RemediationError> {
        Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &scaled_object_resource())
            .get(name)
            .await
            .map_err(|source| RemediationError::GetScaledObject {
                namespace: ns.into(),
                name: name.into(),
                source: Box::new(source),
            })
    }

    /// `kubectl rollout undo [--to-revision N]`; `dry_run` reads and plans
    /// but sends nothing that changes the cluster. Does not wait for the
    /// rollout (see [`wait_rollout`](Self::wait_rollout)).
    pub async fn rollback(
        &self,
        ns: &str,
        name: &str,
        to_revision: Option<u64>,
        change_cause: Option<&str>,
        dry_run: bool,
    ) -> Result<ActionOutcome, RemediationError> {
        let d = self.deployment(ns, name).await?;
        let sets = self.replica_sets(&d).await?;
        let rs = select_revision(&d, &sets, to_revision).map_err(|source| {
            RemediationError::Revision {
                namespace: ns.into(),
                name: name.into(),
                source,
            }
        })?;
        let (revision, patch) = match rollback_patch(&d, rs, change_cause) {
            RollbackPlan::Skip { message } => return Ok(ActionOutcome::Skipped { message }),
            RollbackPlan::Refuse { message } => return Ok(ActionOutcome::Refused { message }),
            RollbackPlan::Patch { revision, patch } => (revision, patch),
        };
        if dry_run {
            return Ok(ActionOutcome::DryRun {
                message: format!("would roll back to revision {revision} with JSON Patch {patch}"),
            });
        }
        let patch_err = |source: kube::Error| RemediationError::PatchDeployment {
            namespace: ns.into(),
            name: name.into(),
            operation: "rollback",
            source: Box::new(source),
        };
        let patch = to_json_patch(patch).map_err(|e| patch_err(kube::Error::SerdeError(e)))?;
        Api::<Deployment>::namespaced(self.client.clone(), ns)
            .patch(name, &patch_params(), &Patch::Json::<()>(patch))
            .await
            .map_err(patch_err)?;
        Ok(ActionOutcome::Done {
            message: format!("rolled back to revision {revision}"),
        })
    }

    /// `kubectl rollout restart`: refuses a paused Deployment, else the
    /// strategic merge patch of the `restartedAt` annotation.
    pub async fn restart(
        &self,
        ns: &str,
        name: &str,
        at: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<ActionOutcome, RemediationError> {
        let d = self.deployment(ns, name).await?;
        if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            return Ok(ActionOutcome::Refused {
                message: "can't restart paused deployment (run rollout resume first)".into(),
            });
        }
        let patch = restart_patch(at);
        if dry_run {
            return Ok(ActionOutcome::DryRun {
                message: format!("would restart with strategic merge patch {patch}"),
            });
        }
        Api::<Deployment>::namespaced(self.client.clone(), ns)
            .patch(name, &patch_params(), &Patch::Strategic(&patch))
            .await
            .map_err(|source| RemediationError::PatchDeployment {
                namespace: ns.into(),
                name: name.into(),
                operation: "restart",
                source: Box::new(source),
            })?;
        Ok(ActionOutcome::Done {
            message: "restarted".into(),
        })
    }

    /// Raises a ScaledObject's `maxReplicaCount` from `from` (what the
    /// diagnosis saw) to `to`, and the `maxReplicaCount` of its foresight
    /// triggers' metadata with it (which bounds foresight's own decisions)
    /// where it was from `from` up to below `to` (or absent, with
    /// foresight's default in that range): a trigger capped below the
    /// ScaledObject's ceiling was capped on purpose for its own signal and
    /// keeps its cap, and one already at or above `to` is not lowered.
    /// One JSON Patch whose `test` op makes it fail rather than overwrite a
    /// concurrent change. Never touches replicas: under an HPA they would be
    /// overwritten.
    pub async fn raise_ceiling(
        &self,
        ns: &str,
        name: &str,
        from: u32,
        to: u32,
        dry_run: bool,
    ) -> Result<ActionOutcome, RemediationError> {
        let so = self.get_scaled_object(ns, name).await?;
        let spec = &so.data["spec"];
        let current = max_replicas(spec);
        if current >= to {
            return Ok(ActionOutcome::Skipped {
                message: format!("maxReplicaCount is already {current}"),
            });
        }
        if current != from {
            // Someone changed the ceiling since the diagnosis (lowered it,
            // say, on purpose): raising to `to` would be a larger step than
            // the guardrails judged, on evidence that no longer holds.
            return Ok(ActionOutcome::Skipped {
                message: format!(
                    "maxReplicaCount is {current}, not the {from} the diagnosis saw; not raised on stale evidence"
                ),
            });
        }
        let mut ops = match spec.get("maxReplicaCount") {
            Some(v) => vec![
                json!({"op": "test", "path": "/spec/maxReplicaCount", "value": v}),
                json!({"op": "replace", "path": "/spec/maxReplicaCount", "value": to}),
            ],
            None => vec![json!({"op": "add", "path": "/spec/maxReplicaCount", "value": to})],
        };
        for (i, t) in spec["triggers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if !is_foresight(t) {
                continue;
            }
            let path = format!("/spec/triggers/{i}/metadata/maxReplicaCount");
            match t["metadata"].get("maxReplicaCount") {
                // Raised where it held the count at the ScaledObject's
                // ceiling or below the new one: a cap under the ceiling was
                // set for that trigger's own signal and stays, and one at
                // or above the new ceiling is not lowered. Guarded by a
                // `test`, like the ceiling itself.
                Some(v) => {
                    let cap = v.as_str().and_then(|v| v.trim().parse::<u32>().ok());
                    if cap.is_some_and(|c| from <= c && c < to) {
                        ops.push(json!({"op": "test", "path": path, "value": v}));
                        ops.push(json!({"op": "replace", "path": path, "value": to.to_string()}));
                    }
                }
                // foresight's default then bounds the trigger: it must be
                // raised too, or foresight stays clamped below the new
                // ceiling.
                // `add` replaces a key that exists, so the metadata read is
                // tested whole first: a trigger list reordered since the
                // read fails the patch instead of overwriting another
                // trigger's cap.
                None if (from..to).contains(&crate::config::DEFAULT_MAX_REPLICAS) => {
                    ops.push(json!({"op": "test", "path": format!("/spec/triggers/{i}/metadata"), "value": t["metadata"]}));
                    ops.push(json!({"op": "add", "path": path, "value": to.to_string()}));
                }
                None => {}
            }
        }
        let patch = Value::Array(ops);
        if dry_run {
            return Ok(ActionOutcome::DryRun {
                message: format!(
                    "would raise maxReplicaCount from {current} to {to} with JSON Patch {patch}"
                ),
            });
        }
        self.json_patch_scaled_object(ns, name, patch, "raise maxReplicaCount")
            .await?;
        Ok(ActionOutcome::Done {
            message: format!("raised maxReplicaCount from {current} to {to}"),
        })
    }

    /// Polls the Deployment until `kubectl rollout status` would call it
    /// done (its message), or failed (`ProgressDeadlineExceeded`). Callers
    /// bound it with a timeout.
    pub async fn wait_rollout(&self, ns: &str, name: &str) -> Result<String, RemediationError> {
        loop {
            let d = self.deployment(ns, name).await?;
            match rollout_status(&d) {
                RolloutStatus::Done(m) => return Ok(m),
                RolloutStatus::Failed(message) => {
                    return Err(RemediationError::RolloutFailed {
                        namespace: ns.into(),
                        name: name.into(),
                        message,
                    });
                }
                RolloutStatus::Waiting(m) => {
                    tracing::debug!(namespace = ns, deployment = name, status = %m, "rollout in progress");
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
    }

    /// Stamps `lastRemediation: at` on the ScaledObject's foresight
    /// triggers (external triggers naming one of foresight's signal
    /// queries), so that KEDA hands it to every replica of foresight with
    /// each call and all of them hold scale-down for the trigger's
    /// `cooldown` after the action. Each op is guarded by a `test` of the
    /// trigger's type, so a reordered trigger list fails the patch rather
    /// than stamping another scaler. Returns how many triggers were
    /// stamped (0 sends nothing).
    pub async fn stamp_remediation(
        &self,
        ns: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<usize, RemediationError> {
        let so = self.get_scaled_object(ns, name).await?;
        let stamp = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut ops = Vec::new();
        for (i, t) in so.data["spec"]["triggers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if is_foresight(t) {
                ops.push(json!({"op": "test", "path": format!("/spec/triggers/{i}/type"), "value": t["type"]}));
                ops.push(json!({"op": "add",
                    "path": format!("/spec/triggers/{i}/metadata/lastRemediation"),
                    "value": stamp}));
            }
        }
        let stamped = ops.len() / 2;
        if stamped == 0 {
            return Ok(0);
        }
        self.json_patch_scaled_object(ns, name, Value::Array(ops), "stamp lastRemediation")
            .await?;
        Ok(stamped)
    }

    /// Sends one JSON Patch (`patch`, an array of ops) to a ScaledObject;
    /// `operation` names it in the error.
    async fn json_patch_scaled_object(
        &self,
        ns: &str,
        name: &str,
        patch: Value,
        operation: &'static str,
    ) -> Result<(), RemediationError> {
        let patch_err = |source: kube::Error| RemediationError::PatchScaledObject {
            namespace: ns.into(),
            name: name.into(),
            operation,
            source: Box::new(source),
        };
        let patch = to_json_patch(patch).map_err(|e| patch_err(kube::Error::SerdeError(e)))?;
        Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &scaled_object_resource())
            .patch(name, &patch_params(), &Patch::Json::<()>(patch))
            .await
            .map_err(patch_err)?;
        Ok(())
    }

    /// Runs an action to completion: the change, then for Deployments the
    /// rollout watch. Bound it with a timeout.
    pub async fn execute(
        &self,
        action: &Action,
        change_cause: Option<&str>,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<ActionOutcome, RemediationError> {
        let (outcome, deployment) = match action {
            Action::Rollback {
                namespace,
                deployment,
                to_revision,
            } => (
                self.rollback(namespace, deployment, *to_revision, change_cause, dry_run)
                    .await?,
                Some((namespace, deployment)),
            ),
            Action::Restart {
                namespace,
                deployment,
            } => (
                self.restart(namespace, deployment, now, dry_run).await?,
                Some((namespace, deployment)),
            ),
            Action::RaiseCeiling {
                namespace,
                scaled_object,
                from,
                to,
            } => (
                self.raise_ceiling(namespace, scaled_object, *from, *to, dry_run)
                    .await?,
                None,
            ),
        };
        match (outcome, deployment) {
            (ActionOutcome::Done { message }, Some((ns, name))) => {
                let status = self.wait_rollout(ns, name).await?;
                Ok(ActionOutcome::Done {
                    message: format!("{message}; {status}"),
                })
            }
            (outcome, _) => Ok(outcome),
        }
    }

    /// Publishes an Event about an action on the object it acted on, if
    /// Events are on. The reason is distinct per action.
    pub async fn record_event(
        &self,
        action: &Action,
        outcome: &ActionOutcome,
    ) -> Result<(), RemediationError> {
        let Some(recorder) = &self.recorder else {
            return Ok(());
        };
        let reference = match action {
            Action::Rollback {
                namespace,
                deployment,
                ..
            }
            | Action::Restart {
                namespace,
                deployment,
            } => {
                let mut r = Deployment::default();
                r.metadata.namespace = Some(namespace.clone());
                r.metadata.name = Some(deployment.clone());
                r.object_ref(&())
            }
            Action::RaiseCeiling {
                namespace,
                scaled_object,
                ..
            } => ObjectReference {
                api_version: Some("keda.sh/v1alpha1".into()),
                kind: Some("ScaledObject".into()),
                name: Some(scaled_object.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectReference::default()
            },
        };
        let type_ = match outcome {
            ActionOutcome::Failed { .. } | ActionOutcome::Refused { .. } => EventType::Warning,
            _ => EventType::Normal,
        };
        let reason = action.kind().event_reason();
        let mut note = outcome.message().to_string();
        // The API rejects notes over 1 kB.
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        recorder
            .publish(
                &Event {
                    type_,
                    reason: reason.into(),
                    note: Some(note),
                    action: format!("{:?}", action.kind()),
                    secondary: None,
                },
                &reference,
            )
            .await
            .map_err(|source| RemediationError::PublishEvent {
                namespace: action.namespace().into(),
                name: action.object(),
                reason,
                source: Box::new(source),
            })
    }
}

/// Whether a ScaledObject trigger is KEDA's external scaler, pulled or
/// pushed: an `external` and an `external-push` trigger with the same
/// metadata are one trigger to foresight, and must stay alike.
fn is_external(trigger: &Value) -> bool {
    trigger["type"] == "external" || trigger["type"] == "external-push"
}

/// Whether a trigger is foresight's: an external one naming one of its
/// signal queries.
fn is_foresight(trigger: &Value) -> bool {
    is_external(trigger)
        && MetricKind::ALL
            .iter()
            .any(|k| trigger["metadata"].get(k.query_key()).is_some())
}

fn max_replicas(spec: &Value) -> u32 {
    spec["maxReplicaCount"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(KEDA_DEFAULT_MAX_REPLICAS)
}

/// The Lease the replicas of foresight elect their remediation leader over.
pub const LEASE_NAME: &str = "foresight-remediation";

/// Where and how this replica campaigns for the remediation leader Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The Lease's namespace (foresight's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's `holderIdentity` (its pod name).
    pub identity: String,
    /// How long the Lease holds without renewal (`leaseDurationSeconds`),
    /// in whole seconds.
    pub duration: Duration,
    /// The holder renews this long before the Lease would expire, in whole
    /// seconds; shorter than `duration`.
    pub grace: Duration,
}

impl LeaseSettings {
    /// [`LEASE_NAME`] in `namespace` for `identity`, with kube-lease-manager's
    /// defaults: a 30 s Lease renewed 5 s before it expires.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: LEASE_NAME.to_string(),
            identity: identity.into(),
            duration: Duration::from_secs(kube_lease_manager::DEFAULT_LEASE_DURATION_SECONDS),
            grace: Duration::from_secs(kube_lease_manager::DEFAULT_LEASE_GRACE_SECONDS),
        }
    }
}

/// A running leader election: campaigns, renews while leading, and feeds
/// the [`Leadership`](super::Leadership) receiver it was returned with.
/// Dropping it stops campaigning and releases the Lease in the background;
/// [`release`](Self::release) does the same and waits for it.
#[derive(Debug)]
pub struct LeaderElection {
    stop: CancellationToken,
    forward: Option<JoinHandle<()>>,
    manager: AbortHandle,
}

impl LeaderElection {
    /// Stops acting as leader, then releases the Lease if this replica holds
    /// it (so another replica takes over at once instead of after the Lease
    /// expires), waiting at most `timeout`; past it the election is aborted
    /// and the Lease left to expire.
    pub async fn release(mut self, timeout: Duration) {
        self.stop.cancel();
        let Some(forward) = self.forward.take() else {
            return;
        };
        let abort = forward.abort_handle();
        if tokio::time::timeout(timeout, forward).await.is_err() {
            tracing::warn!(
                timeout = ?timeout,
                "releasing the remediation leader Lease timed out; it will expire"
            );
            abort.abort();
            self.manager.abort();
        }
    }
}

impl Drop for LeaderElection {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Joins leader election over the Lease `settings` names: reads it, creates
/// it if it does not exist, and then campaigns for it and renews it in the
/// background (kube-lease-manager). The receiver says whether this replica
/// leads; it starts `false`, and turns `false` for good once the election
/// stops, whether released or failed, so no replica acts on a stale `true`.
pub async fn join_leader_election(
    client: Client,
    settings: &LeaseSettings,
) -> Result<(watch::Receiver<bool>, LeaderElection), RemediationError> {
    let (duration, grace) = (settings.duration.as_secs(), settings.grace.as_secs());
    // kube-lease-manager's builder does not check these; a grace as long as
    // the Lease would renew in a busy loop.
    let fractional = settings.duration.subsec_nanos() != 0 || settings.grace.subsec_nanos() != 0;
    if fractional || grace == 0 || grace >= duration {
        return Err(RemediationError::LeaseDurations {
            duration: settings.duration,
            grace: settings.grace,
        });
    }
    let (writes_tx, writes) = watch::channel(None);
    let client = observe_lease_writes(client, settings, writes_tx);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, settings.name.as_str())
        .with_namespace(settings.namespace.as_str())
        .with_identity(settings.identity.as_str())
        .with_duration(duration)
        .with_grace(grace)
        .with_field_manager(FIELD_MANAGER)
        .build()
        .await
        .map_err(|source| RemediationError::JoinLease {
            namespace: settings.namespace.clone(),
            name: settings.name.clone(),
            source: Box::new(source),
        })?;
    let (inner, task) = manager.watch().await;
    let (tx, rx) = watch::channel(false);
    let stop = CancellationToken::new();
    let manager = task.abort_handle();
    let forward = tokio::spawn(forward_leadership(
        Views { inner, writes },
        tx,
        task,
        stop.clone(),
        settings.name.clone(),
        // Half the grace: a renewal is due a whole grace before expiry, so
        // this is reached only when one has failed or hangs.
        settings.duration.saturating_sub(settings.grace / 2),
    ));
    Ok((
        rx,
        LeaderElection {
            stop,
            forward: Some(forward),
            manager,
        },
    ))
}

type ManagerTask =
    JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>;

/// `client`, as it is, but noting when each successful write (PATCH) of
/// the Lease `settings` names was sent. kube-lease-manager says nothing
/// while its renewals fail: it keeps retrying and still believes it leads,
/// while another replica may take the Lease once it expires. What it wrote
/// successfully, and when, is what says until when this replica holds it.
fn observe_lease_writes(
    client: Client,
    settings: &LeaseSettings,
    writes: watch::Sender<Option<tokio::time::Instant>>,
) -> Client {
    let namespace = client.default_namespace().to_string();
    let path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
        settings.namespace, settings.name
    );
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let client = client.clone();
        let writes = writes.clone();
        let write = request.method() == http::Method::PATCH && request.uri().path() == path;
        async move {
            let sent = tokio::time::Instant::now();
            let response = client.send(request).await?;
            if write && response.status().is_success() {
                writes.send_replace(Some(sent));
            }
            Ok::<_, kube::Error>(response)
        }
    });
    Client::new(service, namespace)
}

/// What leadership is made of: the lease manager's view, and when its
/// last successful write of the Lease was sent.
struct Views {
    /// kube-lease-manager's view; it stays `true` while renewals fail.
    inner: watch::Receiver<bool>,
    /// The send time of the last successful write of the Lease.
    writes: watch::Receiver<Option<tokio::time::Instant>>,
}

/// Copies the lease manager's view to `tx` until `stop`, then says `false`
/// and lets the manager release the Lease. The manager's own receiver is
/// kept here: it releases when its last receiver goes, which must not
/// depend on who else holds a copy of `tx`'s receiver. `true` is passed on
/// only until `hold` after the last successful write of the Lease: past it,
/// a renewal has failed or hangs, and the Lease may be another replica's.
async fn forward_leadership(
    views: Views,
    tx: watch::Sender<bool>,
    manager: ManagerTask,
    stop: CancellationToken,
    lease: String,
    hold: Duration,
) {
    let Views {
        mut inner,
        mut writes,
    } = views;
    let mut writes_open = true;
    loop {
        let manager_leads = *inner.borrow_and_update();
        let until = writes.borrow_and_update().map(|t| t + hold);
        let leads = manager_leads && until.is_some_and(|u| tokio::time::Instant::now() < u);
        if *tx.borrow() != leads {
            if manager_leads && !leads {
                tracing::warn!(
                    lease,
                    "the Lease was not renewed in time; not acting until a renewal goes through"
                );
            } else {
                tracing::info!(lease, leader = leads, "remediation leadership changed");
            }
            tx.send_replace(leads);
        }
        // Wake at the deadline only while it is still ahead.
        let deadline = until.filter(|_| leads);
        tokio::select! {
            () = stop.cancelled() => break,
            changed = inner.changed() => {
                if changed.is_err() {
                    // The manager stopped by itself: nothing renews the
                    // Lease any more.
                    break;
                }
            }
            changed = writes.changed(), if writes_open => writes_open = changed.is_ok(),
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
    // `false` before the Lease is released, so no action starts here once
    // another replica may lead (serve also lets the action in hand finish
    // first).
    tx.send_replace(false);
    drop(inner);
    match manager.await {
        Ok(Ok(_)) => tracing::info!(lease, "left remediation leader election"),
        Ok(Err(e)) => tracing::warn!(lease, error = %e, "remediation leader election stopped"),
        Err(e) => tracing::warn!(lease, error = %e, "remediation leader election task failed"),
    }
}
