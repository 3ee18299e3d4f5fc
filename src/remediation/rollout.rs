//! kubectl's rollout rules over k8s-openapi types, without I/O: which
//! ReplicaSet `rollout undo` restores and the patch it sends
//! (`k8s.io/kubectl/pkg/polymorphichelpers/rollback.go`), the patch
//! `rollout restart` sends (`objectrestarter.go`), and when `rollout status`
//! calls a rollout done (`rollout_status.go`).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use serde_json::{Value, json};

use super::diagnose::RolloutContext;
use super::quantity;

/// The revision a Deployment's controller stamps on it and its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Why the current revision exists; shown by `kubectl rollout history`.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// The label the Deployment controller adds to each ReplicaSet's template.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Annotations a rollback keeps from the Deployment instead of taking them
/// from the ReplicaSet: kubectl's `annotationsToSkip`.
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// Why no revision could be selected (kubectl's own messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionError {
    /// `--to-revision` names a revision no controlled ReplicaSet has.
    #[error("unable to find specified revision {0} in history")]
    NotFound(u64),
    /// Fewer than two revisions are kept.
    #[error("no rollout history found for deployment {0:?}")]
    NoHistory(String),
}

/// A ReplicaSet's revision, if it carries a valid one.
pub(crate) fn revision(rs: &ReplicaSet) -> Option<u64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)?
        .trim()
        .parse()
        .ok()
}

/// Whether the Deployment controls the ReplicaSet: an owner reference with
/// `controller: true` and the Deployment's UID (`metav1.IsControlledBy`).
pub(crate) fn controlled_by(rs: &ReplicaSet, deploy: &Deployment) -> bool {
    let Some(uid) = deploy.metadata.uid.as_deref() else {
        return false;
    };
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The label selector as the list call's `labelSelector` string.
pub(crate) fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The ReplicaSet `kubectl rollout undo` restores: the one with
/// `to_revision`, or the second-newest revision, among those the
/// Deployment controls.
pub fn select_revision<'a>(
    deploy: &Deployment,
    replica_sets: &'a [ReplicaSet],
    to_revision: Option<u64>,
) -> Result<&'a ReplicaSet, RevisionError> {
    let mut revs: Vec<(u64, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| controlled_by(rs, deploy))
        .filter_map(|rs| revision(rs).map(|r| (r, rs)))
        .collect();
    if let Some(want) = to_revision.filter(|r| *r > 0) {
        return revs
            .into_iter()
            .find(|(r, _)| *r == want)
            .map(|(_, rs)| rs)
            .ok_or(RevisionError::NotFound(want));
    }
    revs.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
    revs.get(1)
        .map(|(_, rs)| *rs)
        .ok_or_else(|| RevisionError::NoHistory(deploy.metadata.name.clone().unwrap_or_default()))
}

/// `equalIgnoreHash`: the templates are semantically equal once the
/// `pod-template-hash` label is dropped. Semantic, as `apiequality.Semantic`
/// is: quantities compare by value, and an empty list or map equals an
/// absent one.
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalize(template_without_hash(a)) == normalize(template_without_hash(b))
}

fn template_without_hash(t: &PodTemplateSpec) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    serde_json::to_value(&t).unwrap_or(Value::Null)
}

/// Drops nulls and empty containers, and rewrites the quantities of
/// resource maps in a canonical form.
fn normalize(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let v = if matches!(k.as_str(), "limits" | "requests" | "overhead" | "hard") {
                    canonical_quantities(v)
                } else if k == "sizeLimit" {
                    canonical_quantity(v)
                } else {
                    normalize(v)
                };
                if !is_empty(&v) {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn canonical_quantities(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, canonical_quantity(v)))
                .collect(),
        ),
        other => normalize(other),
    }
}

fn canonical_quantity(v: Value) -> Value {
    match &v {
        Value::String(s) => match quantity::canonical(s) {
            Some((m, e)) => json!(format!("{m}e{e}")),
            None => v,
        },
        _ => v,
    }
}

/// What `kubectl rollout undo` does with these objects.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackPlan {
    /// Send this JSON Patch.
    Patch {
        /// The revision restored.
        revision: u64,
        /// The JSON Patch body.
        patch: Value,
    },
    /// The template already matches the revision.
    Skip {
        /// kubectl's message.
        message: String,
    },
    /// The Deployment is paused.
    Refuse {
        /// kubectl's message.
        message: String,
    },
}

/// The rollback kubectl would perform: refuse a paused Deployment, skip
/// when the templates are equal, otherwise one JSON Patch replacing
/// `/spec/template` (the ReplicaSet's, without `pod-template-hash`) and
/// `/metadata/annotations` (the ReplicaSet's, except that the skipped keys
/// keep the Deployment's values). `change_cause`, when given, is set as
/// `kubernetes.io/change-cause`, as `kubectl rollout undo --record` did.
pub fn rollback_patch(
    deploy: &Deployment,
    rs: &ReplicaSet,
    change_cause: Option<&str>,
) -> RollbackPlan {
    let rev = revision(rs).unwrap_or(0);
    let spec = deploy.spec.clone().unwrap_or_default();
    if spec.paused == Some(true) {
        return RollbackPlan::Refuse {
            message: "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again".into(),
        };
    }
    let rs_template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    if templates_equal_ignoring_hash(&rs_template, &spec.template) {
        return RollbackPlan::Skip {
            message: format!("skipped rollback (current template already matches revision {rev})"),
        };
    }
    let mut template = rs_template;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let own = deploy.metadata.annotations.clone().unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = ANNOTATIONS_TO_SKIP
        .iter()
        .filter_map(|k| own.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    if let Some(cause) = change_cause {
        annotations.insert(CHANGE_CAUSE_ANNOTATION.to_string(), cause.to_string());
    }
    RollbackPlan::Patch {
        revision: rev,
        patch: json!([
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]),
    }
}

/// The strategic merge patch `kubectl rollout restart` sends: only the
/// `restartedAt` pod-template annotation, as RFC 3339 in seconds.
pub fn restart_patch(at: DateTime<Utc>) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {
        RESTARTED_AT_ANNOTATION: at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }}}}})
}

/// `kubectl rollout status` for a Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    /// Successfully rolled out.
    Done(String),
    /// Still rolling out; kubectl's waiting message.
    Waiting(String),
    /// `ProgressDeadlineExceeded`: it will not finish by itself.
    Failed(String),
}

/// kubectl's rules: the controller has observed the latest generation, the
/// progress deadline has not passed, every replica is updated, no old
/// replica is left, and every updated replica is available.
pub fn rollout_status(d: &Deployment) -> RolloutStatus {
    let name = d.metadata.name.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return RolloutStatus::Waiting(
            "Waiting for deployment spec update to be observed...".into(),
        );
    }
    let timed_out = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if timed_out {
        return RolloutStatus::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if let Some(want) = d.spec.as_ref().and_then(|s| s.replicas)
        && updated < want
    {
        return RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    RolloutStatus::Done(format!("deployment {name:?} successfully rolled out"))
}

/// What diagnosis needs to know about the rollouts.
pub(crate) fn rollout_context(deploy: &Deployment, replica_sets: &[ReplicaSet]) -> RolloutContext {
    let mut revs: Vec<(u64, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| controlled_by(rs, deploy))
        .filter_map(|rs| revision(rs).map(|r| (r, rs)))
        .collect();
    revs.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
    let newest = revs.first().map(|(_, rs)| *rs);
    let status = deploy.status.clone().unwrap_or_default();
    RolloutContext {
        revision: revs.first().map(|(r, _)| *r),
        revision_created_at: newest
            .and_then(|rs| rs.metadata.creation_timestamp.as_ref().and_then(to_chrono)),
        previous_revision: revs.get(1).map(|(r, _)| *r),
        progress_deadline_exceeded: status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }),
        newest_ready: newest.map(|rs| {
            let ready = rs
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            (
                u32::try_from(ready).unwrap_or(0),
                u32::try_from(desired).unwrap_or(0),
            )
        }),
        paused: deploy.spec.as_ref().and_then(|s| s.paused) == Some(true),
    }
}

fn to_chrono(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(
        t.0.as_second(),
        u32::try_from(t.0.subsec_nanosecond()).ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;

    fn deploy(json: Value) -> Deployment {
        serde_json::from_value(json).unwrap()
    }

    fn template(image: &str, cpu: &str, hash: &str) -> Value {
        json!({
            "metadata": {"labels": {"app": "web", "pod-template-hash": hash}},
            "spec": {"containers": [{"name": "web", "image": image,
                "resources": {"requests": {"cpu": cpu}}}]}
        })
    }

    fn rs(name: &str, rev: u64, uid: &str, tpl: Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "annotations": {"deployment.kubernetes.io/revision": rev.to_string(),
                                "kubernetes.io/change-cause": format!("deploy {rev}")},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                     "uid": uid, "controller": true}]
            },
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": tpl}
        }))
        .unwrap()
    }

    fn web(tpl: Value, paused: bool) -> Deployment {
        deploy(json!({
            "metadata": {"name": "web", "uid": "u1", "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "team": "shop"}},
            "spec": {"paused": paused, "selector": {"matchLabels": {"app": "web"}}, "template": tpl}
        }))
    }

    #[test]
    fn previous_revision_among_controlled_replica_sets() {
        let d = web(template("web:3", "1", ""), false);
        let sets = vec![
            rs("web-1", 1, "u1", template("web:1", "1", "a")),
            rs("web-3", 3, "u1", template("web:3", "1", "c")),
            rs("web-2", 2, "u1", template("web:2", "1", "b")),
            // Not controlled by this Deployment (another UID): ignored.
            rs("other-9", 9, "u2", template("web:9", "1", "z")),
        ];
        assert_eq!(
            select_revision(&d, &sets, None)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("web-2")
        );
        assert_eq!(
            select_revision(&d, &sets, Some(1))
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("web-1")
        );
        assert_eq!(
            select_revision(&d, &sets, Some(9)),
            Err(RevisionError::NotFound(9))
        );
        assert_eq!(
            select_revision(&d, &sets[1..2], None),
            Err(RevisionError::NoHistory("web".into()))
        );
    }

    #[test]
    fn the_patch_is_kubectls() {
        let d = web(template("web:3", "1", "c"), false);
        let target = rs("web-2", 2, "u1", template("web:2", "1", "b"));
        let RollbackPlan::Patch { revision, patch } = rollback_patch(&d, &target, None) else {
            panic!("expected a patch");
        };
        assert_eq!(revision, 2);
        assert_eq!(
            patch,
            json!([
                {"op": "replace", "path": "/spec/template", "value": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:2",
                        "resources": {"requests": {"cpu": "1"}}}]}}},
                {"op": "replace", "path": "/metadata/annotations", "value": {
                    "deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "kubernetes.io/change-cause": "deploy 2"}}
            ])
        );
        let RollbackPlan::Patch { patch, .. } = rollback_patch(&d, &target, Some("foresight"))
        else {
            panic!("expected a patch");
        };
        assert_eq!(patch[1]["value"][CHANGE_CAUSE_ANNOTATION], "foresight");
    }

    #[test]
    fn equal_templates_skip_and_paused_refuses() {
        // Same template up to the hash label and the quantity's spelling.
        let d = web(template("web:2", "1000m", "zzz"), false);
        let target = rs("web-2", 2, "u1", template("web:2", "1", "b"));
        assert!(matches!(
            rollback_patch(&d, &target, None),
            RollbackPlan::Skip { .. }
        ));
        let d = web(template("web:3", "1", "c"), true);
        assert!(matches!(
            rollback_patch(&d, &target, None),
            RollbackPlan::Refuse { .. }
        ));
        let _ = ReplicaSetSpec::default();
    }

    #[test]
    fn selectors_render_like_kubectl() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web", "tier": "fe"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(
            selector_string(&sel),
            "app=web,tier=fe,env in (a,b),!canary"
        );
    }

    #[test]
    fn status_follows_kubectl() {
        let mk = |gen_: i64,
                  observed: i64,
                  updated: i32,
                  replicas: i32,
                  available: i32,
                  pde: bool| {
            deploy(json!({
                "metadata": {"name": "web", "generation": gen_},
                "spec": {"replicas": 3, "selector": {}, "template": {}},
                "status": {"observedGeneration": observed, "updatedReplicas": updated,
                    "replicas": replicas, "availableReplicas": available,
                    "conditions": if pde {
                        json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}])
                    } else { json!([]) }}
            }))
        };
        assert!(matches!(
            rollout_status(&mk(2, 1, 3, 3, 3, false)),
            RolloutStatus::Waiting(_)
        ));
        assert!(matches!(
            rollout_status(&mk(2, 2, 3, 3, 3, true)),
            RolloutStatus::Failed(_)
        ));
        assert!(
            matches!(rollout_status(&mk(2, 2, 2, 3, 3, false)), RolloutStatus::Waiting(m) if m.contains("2 out of 3"))
        );
        assert!(
            matches!(rollout_status(&mk(2, 2, 3, 4, 3, false)), RolloutStatus::Waiting(m) if m.contains("1 old"))
        );
        assert!(
            matches!(rollout_status(&mk(2, 2, 3, 3, 2, false)), RolloutStatus::Waiting(m) if m.contains("2 of 3"))
        );
        assert!(matches!(
            rollout_status(&mk(2, 2, 3, 3, 3, false)),
            RolloutStatus::Done(_)
        ));
    }

    #[test]
    fn restart_patch_is_the_annotation_only() {
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        assert_eq!(
            restart_patch(at),
            json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-09-21T14:13:20Z"}}}}})
        );
    }
}
