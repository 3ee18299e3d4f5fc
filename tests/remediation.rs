//! Remediation against a strict mock Kubernetes API server serving real
//! objects (tests/fixtures/kube): every call's method, path, patch type and
//! body is asserted, and any unexpected call fails the test. Pages go to a
//! real HTTP server on a local port.

#[path = "support/kube_mock.rs"]
mod kube_mock;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use kube_mock::{Call, fixture, pair, serve};
use serde_json::{Value, json};

use foresight::domain::{MetricKind, ScaledObjectKey, Signal};
use foresight::remediation::kube::KubeActions;
use foresight::remediation::{
    Action, ActionOutcome, AuditLog, AuditRecord, Baseline, BaselineSource, Cause, Engine,
    EngineOptions, PageFormat, PageReason, Pager, RemediationConfig, RemediationMode, Situation,
    Target, Verdict, summarize,
};

const DEPLOY: &str = "/apis/apps/v1/namespaces/shop/deployments/orders";
const DEPLOY_PATCH: &str =
    "/apis/apps/v1/namespaces/shop/deployments/orders?&fieldManager=foresight";
const RS_LIST: &str = "/apis/apps/v1/namespaces/shop/replicasets?&labelSelector=app%3Dorders";
const SO: &str = "/apis/keda.sh/v1alpha1/namespaces/shop/scaledobjects/orders-consumer";
const SO_PATCH: &str =
    "/apis/keda.sh/v1alpha1/namespaces/shop/scaledobjects/orders-consumer?&fieldManager=foresight";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events?";
/// foresight's own Events, everywhere: what a new leader reads back.
const PAST_EVENTS: &str =
    "/apis/events.k8s.io/v1/events?&fieldSelector=reportingController%3Dforesight";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn key() -> ScaledObjectKey {
    ScaledObjectKey::new("shop", "orders-consumer")
}

fn target() -> Target {
    Target {
        namespace: "shop".into(),
        scaled_object: "orders-consumer".into(),
        deployment: "orders".into(),
    }
}

/// The Deployment after a change has rolled out: the controller observed
/// the new generation and every replica is updated and available.
fn rolled_out() -> Value {
    let mut d = fixture("deployment.json");
    d["metadata"]["generation"] = json!(5);
    d["status"]["observedGeneration"] = json!(5);
    d
}

fn replica_set(name: &str) -> Value {
    fixture("replicasets.json")["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rs| rs["metadata"]["name"] == name)
        .unwrap()
        .clone()
}

/// The JSON Patch `kubectl rollout undo` sends to go back to revision 2,
/// written out from the fixtures (not from foresight's code): revision 2's
/// template without `pod-template-hash`; its annotations except the
/// revision/replica bookkeeping, which keep the Deployment's values.
fn undo_to_revision_2(change_cause: &str) -> Value {
    let rs = replica_set("orders-6b8d9f7c4");
    let mut template = rs["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    let deploy = fixture("deployment.json");
    json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": {
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration":
                deploy["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "kubernetes.io/change-cause": change_cause
        }}
    ])
}

/// Calls the engine makes to gather context for a signal on the fixture's
/// ScaledObject.
fn gather() -> Vec<Call> {
    std::iter::once(Call::get(SO, fixture("scaledobject.json")))
        .chain(plan_reads())
        .collect()
}

/// The list of foresight's Events a leader reads before its first judged
/// action: here, none.
fn no_past_events() -> Call {
    Call::get(
        PAST_EVENTS,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "metadata": {"resourceVersion": "1"}, "items": []}),
    )
}

/// What planning a rollback reads: the Deployment and its ReplicaSets.
fn plan_reads() -> [Call; 2] {
    [
        Call::get(DEPLOY, fixture("deployment.json")),
        Call::get(RS_LIST, fixture("replicasets.json")),
    ]
}

/// The queries and deploy time a baseline was asked for.
type Asked = (BTreeMap<String, String>, DateTime<Utc>);

/// Fixed baselines; remembers what it was asked for.
struct Fixed(Vec<Baseline>, Mutex<Vec<Asked>>);

impl BaselineSource for Fixed {
    fn baselines<'a>(
        &'a self,
        _: &'a Target,
        queries: &'a BTreeMap<String, String>,
        deploy_at: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Vec<Baseline>> {
        self.1.lock().unwrap().push((queries.clone(), deploy_at));
        Box::pin(async move { self.0.clone() })
    }
}

/// p99 0.12 s before the deploy, 0.9 s now.
fn regressed_source() -> Arc<Fixed> {
    Arc::new(Fixed(
        vec![Baseline {
            metric: "p99 latency (s)".into(),
            before: 0.12,
            after: 0.9,
            floor: 0.0,
        }],
        Mutex::new(Vec::new()),
    ))
}

fn regressed() -> Arc<dyn BaselineSource> {
    regressed_source()
}

/// A webhook receiver on a local port; it records every body it is sent.
async fn webhook(status: StatusCode) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/services/T000/B000/secret",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(v);
                status
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/services/T000/B000/secret"), got)
}

struct Setup {
    engine: Engine,
    audit: AuditLog,
    _dir: tempfile::TempDir,
    leader: tokio::sync::watch::Sender<bool>,
}

fn engine(
    client: Option<kube::Client>,
    config: RemediationConfig,
    pager: Option<Pager>,
    baselines: Option<Arc<dyn BaselineSource>>,
    enabled: usize,
    events: bool,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let (leader, leadership) = tokio::sync::watch::channel(true);
    let kube = client.map(|c| {
        let k = KubeActions::new(c).with_poll_interval(Duration::from_millis(10));
        if events {
            k.with_events(Some("foresight-0".into()))
        } else {
            k
        }
    });
    let engine = Engine::new(
        EngineOptions {
            config,
            audit: audit.clone(),
            pager,
            kube,
            baselines,
            enabled_targets: Arc::new(move || enabled),
            recent_decision: None,
            incidents: None,
        },
        leadership,
    );
    Setup {
        engine,
        audit,
        _dir: dir,
        leader,
    }
}

/// The default (dry-run) engine with a regressed latency baseline, four
/// targets enabled; `events` also posts Kubernetes Events.
fn dry_run_engine(client: kube::Client, events: bool) -> Setup {
    engine(
        Some(client),
        RemediationConfig::default(),
        None,
        Some(regressed()),
        4,
        events,
    )
}

fn enforce() -> RemediationConfig {
    RemediationConfig {
        mode: RemediationMode::Enforce,
        ..RemediationConfig::default()
    }
}

/// p99 above its objective since 10:03, three minutes after revision 3
/// (created 10:00 in the fixtures).
fn latency_breach(now: DateTime<Utc>) -> Signal {
    Signal::LatencySloBreach {
        at: now,
        since: at("2026-11-30T10:03:00Z"),
        p99: 0.9,
        target: 0.3,
    }
}

/// The fixture's `maxReplicaCount` raised from 20 to `to`: a GET of the
/// ScaledObject, then one JSON Patch of the spec and the foresight trigger.
fn raise_from_20(to: u32) -> [Call; 2] {
    [
        Call::get(SO, fixture("scaledobject.json")),
        Call::patch(
            SO_PATCH,
            JSON_PATCH,
            json!([
                {"op": "test", "path": "/spec/maxReplicaCount", "value": 20},
                {"op": "replace", "path": "/spec/maxReplicaCount", "value": to},
                {"op": "test", "path": "/spec/triggers/1/metadata/maxReplicaCount", "value": "20"},
                {"op": "replace", "path": "/spec/triggers/1/metadata/maxReplicaCount", "value": to.to_string()}
            ]),
            fixture("scaledobject.json"),
        ),
    ]
}

/// The `lastRemediation` stamp that follows every action done: a GET of
/// the ScaledObject, then a JSON Patch of its foresight trigger (the
/// fixture's second; the `cpu` trigger is left alone).
fn stamp(when: DateTime<Utc>) -> [Call; 2] {
    [
        Call::get(SO, fixture("scaledobject.json")),
        Call::patch(
            SO_PATCH,
            JSON_PATCH,
            json!([
                {"op": "test", "path": "/spec/triggers/1/type", "value": "external"},
                {"op": "add", "path": "/spec/triggers/1/metadata/lastRemediation",
                 "value": when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}
            ]),
            fixture("scaledobject.json"),
        ),
    ]
}

#[tokio::test]
async fn bad_deploy_rolls_back_to_the_previous_revision_and_pages() {
    let now = at("2026-11-30T10:08:00Z");
    let id = "20261130T100800Z-shop-orders-1";
    let cause = format!("foresight: rollback shop/orders to revision 2 (incident {id})");
    let (client, handle) = pair();
    let mut calls = gather();
    calls.push(no_past_events());
    calls.extend(plan_reads());
    calls.extend([
        Call::patch(DEPLOY_PATCH, JSON_PATCH, undo_to_revision_2(&cause), rolled_out()),
        Call::get(DEPLOY, rolled_out()),
        Call::post_containing(
            EVENTS,
            json!({
                "reason": "ForesightRollback",
                "action": "Rollback",
                "type": "Normal",
                "reportingController": "foresight",
                "reportingInstance": "foresight-0",
                "regarding": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "orders", "namespace": "shop"}
            }),
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "orders.1"}}),
        ),
    ]);
    calls.extend(stamp(now));
    let server = serve(handle, calls);
    let (url, pages) = webhook(StatusCode::OK).await;
    let pager = Pager::new(url, PageFormat::Generic, Duration::from_secs(5));
    let baselines = regressed_source();
    let mut s = engine(
        Some(client),
        enforce(),
        Some(pager),
        Some(baselines.clone()),
        4,
        true,
    );

    let handled = s
        .engine
        .on_signal(key(), latency_breach(now), now)
        .await
        .unwrap()
        .expect("an incident");
    server.await.expect("the API calls were exactly kubectl's");
    // Baselines were asked for the ScaledObject's trigger queries, around
    // the newest revision's creation.
    let asked = baselines.1.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].0["queueDepthQuery"],
        "sum(rabbitmq_queue_messages{queue=\"orders\"})"
    );
    assert_eq!(
        asked[0].0["p99LatencyQuery"],
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service=\"orders\"}[1m])))"
    );
    assert_eq!(asked[0].1, at("2026-11-30T10:00:00Z"));

    let incident = &handled.incident;
    assert_eq!(incident.id, id);
    assert_eq!(incident.target, target());
    assert_eq!(incident.diagnosis.cause, Cause::BadDeploy);
    assert!(incident.diagnosis.confidence >= 0.85);
    assert_eq!(
        incident.verdict,
        Verdict::Execute {
            action: Action::Rollback {
                namespace: "shop".into(),
                deployment: "orders".into(),
                to_revision: Some(2)
            }
        }
    );
    assert!(
        matches!(&handled.outcome, Some(ActionOutcome::Done { message }) if message.contains("rolled back to revision 2") && message.contains("successfully rolled out")),
        "{:?}",
        handled.outcome
    );
    // The evidence names the signal, the revision and the baseline.
    let evidence: Vec<&str> = incident
        .diagnosis
        .evidence
        .iter()
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        evidence.iter().any(|e| e.starts_with("LatencySloBreach")),
        "{evidence:?}"
    );
    assert!(
        evidence
            .iter()
            .any(|e| e.contains("revision 3 created 8 min before")),
        "{evidence:?}"
    );
    assert!(
        evidence
            .iter()
            .any(|e| e.contains("0.12 before the deploy, 0.9 now")),
        "{evidence:?}"
    );

    // Audit: opened, started, finished, paged, in that order.
    let records = s.audit.read().unwrap();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| match r {
            AuditRecord::Opened { .. } => "opened",
            AuditRecord::ActionStarted { .. } => "started",
            AuditRecord::ActionFinished { .. } => "finished",
            AuditRecord::Paged { .. } => "paged",
        })
        .collect();
    assert_eq!(kinds, ["opened", "started", "finished", "paged"]);
    assert_eq!(summarize(&records)[0].status(), "done");

    // The page went out after the action, with its result.
    let pages = pages.lock().unwrap();
    assert_eq!(pages.len(), 1);
    let text = pages[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Action taken: rollback shop/orders to revision 2"),
        "{text}"
    );
    assert!(text.contains("Result: rolled back to revision 2"), "{text}");
    assert_eq!(pages[0]["incident"]["id"], id);
    assert_eq!(pages[0]["outcome"]["result"], "done");
}

#[tokio::test]
async fn dry_run_makes_no_mutating_call() {
    let now = at("2026-11-30T10:08:00Z");
    let (client, handle) = pair();
    let mut calls = gather();
    // Dry run reads what it needs to plan the patch, and stops there.
    calls.extend(plan_reads());
    let server = serve(handle, calls);
    let mut s = dry_run_engine(client, true);
    let handled = s
        .engine
        .on_signal(key(), latency_breach(now), now)
        .await
        .unwrap()
        .unwrap();
    let bodies = server.await.expect("only reads");
    assert!(bodies.iter().all(Value::is_null));
    assert!(matches!(handled.incident.verdict, Verdict::DryRun { .. }));
    let Some(ActionOutcome::DryRun { message }) = &handled.outcome else {
        panic!("{:?}", handled.outcome);
    };
    assert!(
        message.contains("would roll back to revision 2"),
        "{message}"
    );
    let s2 = summarize(&s.audit.read().unwrap());
    assert_eq!(s2[0].status(), "dryRun");
}

/// An enforcing engine paging to a local webhook in `format`, against an
/// API server that serves the evidence reads and nothing else; the server's
/// task, and the pages sent.
/// An enforcing engine that pages; `confident` when the diagnosis will
/// reach the guardrails' history (and so the leader's first read of it).
async fn paging_engine(
    format: PageFormat,
    baselines: Option<Arc<dyn BaselineSource>>,
    confident: bool,
) -> (
    Setup,
    tokio::task::JoinHandle<Vec<Value>>,
    Arc<Mutex<Vec<Value>>>,
) {
    let (client, handle) = pair();
    let mut calls = gather();
    if confident {
        calls.push(no_past_events());
    }
    let server = serve(handle, calls);
    let (url, pages) = webhook(StatusCode::OK).await;
    let pager = Pager::new(url, format, Duration::from_secs(5));
    let s = engine(Some(client), enforce(), Some(pager), baselines, 4, true);
    (s, server, pages)
}

#[tokio::test]
async fn low_confidence_only_pages() {
    // The same breach after the same deploy, but with no baseline to show a
    // regression: 0.65 < 0.85, so a human decides.
    let now = at("2026-11-30T10:08:00Z");
    let (mut s, server, pages) = paging_engine(PageFormat::Slack, None, false).await;
    let handled = s
        .engine
        .on_signal(key(), latency_breach(now), now)
        .await
        .unwrap()
        .unwrap();
    server.await.expect("reads only");
    assert_eq!(handled.incident.diagnosis.cause, Cause::BadDeploy);
    assert!(matches!(
        handled.incident.verdict,
        Verdict::PageOnly {
            reason: PageReason::LowConfidence { .. }
        }
    ));
    assert_eq!(handled.outcome, None);
    let pages = pages.lock().unwrap();
    assert_eq!(pages.len(), 1);
    // Slack-compatible: a single text field.
    assert_eq!(pages[0].as_object().unwrap().len(), 1);
    assert!(
        pages[0]["text"]
            .as_str()
            .unwrap()
            .contains("below the threshold 0.85")
    );
    assert_eq!(summarize(&s.audit.read().unwrap())[0].status(), "paged");
}

#[tokio::test]
async fn an_unwritable_audit_log_stops_the_action_but_not_the_page() {
    // A confident bad deploy, but the audit log's path is a directory (a
    // full or read-only volume fails the same way): the rollback is not
    // started unrecorded, and the human is paged, told why.
    let now = at("2026-11-30T10:08:00Z");
    let (mut s, server, pages) = paging_engine(PageFormat::Generic, Some(regressed()), true).await;
    std::fs::create_dir(s.audit.path()).unwrap();
    let handled = s
        .engine
        .on_signal(key(), latency_breach(now), now)
        .await
        .unwrap()
        .expect("an incident");
    server
        .await
        .expect("the evidence is read, and nothing is patched");
    assert_eq!(handled.incident.diagnosis.cause, Cause::BadDeploy);
    assert!(
        matches!(
            &handled.incident.verdict,
            Verdict::PageOnly { reason: PageReason::AuditUnwritable { error } }
                if error.contains("audit")
        ),
        "{:?}",
        handled.incident.verdict
    );
    assert_eq!(handled.outcome, None);
    let pages = pages.lock().unwrap().clone();
    assert_eq!(pages.len(), 1);
    assert!(
        pages[0]
            .to_string()
            .contains("the audit log cannot be written"),
        "{}",
        pages[0]
    );
}

#[tokio::test]
async fn at_ceiling_raises_max_replicas_within_the_hard_cap() {
    // Two hours after the last deploy: not a deploy problem.
    let now = at("2026-11-30T12:00:00Z");
    let (client, handle) = pair();
    let mut calls = gather();
    calls.extend(raise_from_20(25));
    calls.extend(stamp(now));
    let server = serve(handle, calls);
    let config = RemediationConfig {
        hard_cap: 25,
        max_ceiling_step: 10,
        ..enforce()
    };
    let mut s = engine(Some(client), config, None, None, 4, false);
    let signal = Signal::AtCeiling {
        at: now,
        max_replicas: 20,
        demand_replicas: 45,
    };
    let handled = s
        .engine
        .on_signal(key(), signal, now)
        .await
        .unwrap()
        .unwrap();
    server.await.expect("one JSON Patch of maxReplicaCount");
    assert_eq!(handled.incident.diagnosis.cause, Cause::CapacityCeiling);
    assert_eq!(
        handled.outcome,
        Some(ActionOutcome::Done {
            message: "raised maxReplicaCount from 20 to 25".into()
        })
    );
}

#[tokio::test]
async fn a_ceiling_changed_since_the_diagnosis_is_not_raised() {
    // The diagnosis saw 20 and planned 25; someone has since lowered the
    // ceiling to 8 on purpose. 8 → 25 would be a step of 17, past what the
    // guardrails judged, so nothing is patched.
    let mut lowered = fixture("scaledobject.json");
    lowered["spec"]["maxReplicaCount"] = json!(8);
    let (client, handle) = pair();
    let server = serve(handle, vec![Call::get(SO, lowered)]);
    let outcome = KubeActions::new(client)
        .raise_ceiling("shop", "orders-consumer", 20, 25, false)
        .await
        .unwrap();
    server.await.expect("one GET and no patch");
    assert_eq!(
        outcome,
        ActionOutcome::Skipped {
            message:
                "maxReplicaCount is 8, not the 20 the diagnosis saw; not raised on stale evidence"
                    .into()
        }
    );
}

/// The fixture with an `external-push` twin of its foresight trigger (one
/// trigger to foresight) and a second foresight trigger capped at 2 for its
/// own signal.
fn with_push_twin_and_capped_trigger() -> serde_json::Value {
    let mut so = fixture("scaledobject.json");
    let ours = so["spec"]["triggers"][1].clone();
    let mut push = ours.clone();
    push["type"] = json!("external-push");
    let mut capped = ours;
    capped["metadata"] = json!({
        "connectionsQuery": "sum(nginx_connections_active)",
        "connectionsTarget": "50",
        "maxReplicaCount": "2"
    });
    let triggers = so["spec"]["triggers"].as_array_mut().unwrap();
    triggers.push(push);
    triggers.push(capped);
    so
}

/// Raises `so`'s ceiling from `from` to `to` against a mock that expects
/// exactly the JSON Patch `ops` (`why` says what it shows), and checks it is
/// reported done.
async fn raises(so: &serde_json::Value, from: u32, to: u32, ops: serde_json::Value, why: &str) {
    let (client, handle) = pair();
    let server = serve(handle, get_then_patch(so, ops));
    let outcome = KubeActions::new(client)
        .raise_ceiling("shop", "orders-consumer", from, to, false)
        .await
        .unwrap();
    server.await.expect(why);
    assert_eq!(
        outcome,
        ActionOutcome::Done {
            message: format!("raised maxReplicaCount from {from} to {to}")
        }
    );
}

/// A GET of ScaledObject `so`, then one JSON Patch of it with `ops`.
fn get_then_patch(so: &serde_json::Value, ops: serde_json::Value) -> Vec<Call> {
    vec![
        Call::get(SO, so.clone()),
        Call::patch(SO_PATCH, JSON_PATCH, ops, so.clone()),
    ]
}

#[tokio::test]
async fn a_raise_keeps_a_trigger_capped_on_purpose_and_both_twins_alike() {
    let so = with_push_twin_and_capped_trigger();
    raises(
        &so,
        20,
        25,
        json!([
            {"op": "test", "path": "/spec/maxReplicaCount", "value": 20},
            {"op": "replace", "path": "/spec/maxReplicaCount", "value": 25},
            {"op": "test", "path": "/spec/triggers/1/metadata/maxReplicaCount", "value": "20"},
            {"op": "replace", "path": "/spec/triggers/1/metadata/maxReplicaCount", "value": "25"},
            {"op": "test", "path": "/spec/triggers/2/metadata/maxReplicaCount", "value": "20"},
            {"op": "replace", "path": "/spec/triggers/2/metadata/maxReplicaCount", "value": "25"}
        ]),
        "the external and external-push twins raised, the capped trigger not",
    )
    .await;

    // The cooldown stamp goes on every foresight trigger, pushed ones too:
    // stamped alone, the `external` twin's metadata would differ from the
    // `external-push` one's, and foresight would serve them as two triggers.
    let when = at("2026-11-30T12:00:00Z");
    let stamp = when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (client, handle) = pair();
    let server = serve(
        handle,
        get_then_patch(
            &so,
            json!([
                {"op": "test", "path": "/spec/triggers/1/type", "value": "external"},
                {"op": "add", "path": "/spec/triggers/1/metadata/lastRemediation", "value": stamp},
                {"op": "test", "path": "/spec/triggers/2/type", "value": "external-push"},
                {"op": "add", "path": "/spec/triggers/2/metadata/lastRemediation", "value": stamp},
                {"op": "test", "path": "/spec/triggers/3/type", "value": "external"},
                {"op": "add", "path": "/spec/triggers/3/metadata/lastRemediation", "value": stamp}
            ]),
        ),
    );
    let stamped = KubeActions::new(client)
        .stamp_remediation("shop", "orders-consumer", when)
        .await
        .unwrap();
    server
        .await
        .expect("one stamp of all three foresight triggers");
    assert_eq!(stamped, 3);
}

#[tokio::test]
async fn a_raise_never_lowers_a_trigger_and_raises_one_left_at_the_default() {
    // A ScaledObject at 95 with three foresight triggers: one capped at 80
    // (below: kept), one at 200 (above the new ceiling: never lowered to
    // it) and one without maxReplicaCount, which foresight bounds at its
    // default of 100: inside 95..105, so it must be raised too, or
    // foresight would stay clamped at 100 under the new ceiling.
    let mut so = fixture("scaledobject.json");
    so["spec"]["maxReplicaCount"] = json!(95);
    let ours = so["spec"]["triggers"][1].clone();
    let with_max = |max: Option<&str>| {
        let mut t = ours.clone();
        match max {
            Some(m) => t["metadata"]["maxReplicaCount"] = json!(m),
            None => {
                t["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("maxReplicaCount");
            }
        }
        t
    };
    so["spec"]["triggers"] = json!([
        so["spec"]["triggers"][0].clone(),
        with_max(Some("80")),
        with_max(Some("200")),
        with_max(None)
    ]);
    raises(
        &so,
        95,
        105,
        json!([
            {"op": "test", "path": "/spec/maxReplicaCount", "value": 95},
            {"op": "replace", "path": "/spec/maxReplicaCount", "value": 105},
            {"op": "test", "path": "/spec/triggers/3/metadata", "value": so["spec"]["triggers"][3]["metadata"]},
            {"op": "add", "path": "/spec/triggers/3/metadata/maxReplicaCount", "value": "105"}
        ]),
        "only the trigger left at the default raised",
    )
    .await;
}

/// Revision 3 of the fixture's Deployment past its progress deadline with
/// no pod ready: a crash loop, whose action is a restart.
fn crash_looping() -> Situation {
    Situation {
        target: target(),
        signal: None,
        rollout: Some(foresight::remediation::RolloutContext {
            revision: Some(3),
            revision_created_at: Some(at("2026-11-30T10:00:00Z")),
            previous_revision: Some(2),
            progress_deadline_exceeded: true,
            newest_ready: Some((0, 3)),
            paused: false,
        }),
        baselines: vec![],
        ceiling: None,
        context: vec![],
        alert: None,
    }
}

/// A crash loop without a recent deploy calls for a restart; with the
/// threshold lowered to let it through, the same restart four times in an
/// hour escalates on the fourth instead of acting.
#[tokio::test]
async fn the_fourth_identical_action_in_an_hour_escalates() {
    let (client, handle) = pair();
    let t0 = at("2026-11-30T12:00:00Z");
    let mut calls = Vec::new();
    for i in 0..3 {
        let when = t0 + TimeDelta::minutes(10 * i);
        calls.extend([
            Call::get(DEPLOY, fixture("deployment.json")),
            Call::patch(
                DEPLOY_PATCH,
                STRATEGIC,
                json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }}}}}),
                rolled_out(),
            ),
            Call::get(DEPLOY, rolled_out()),
        ]);
        calls.extend(stamp(when));
    }
    let server = serve(handle, calls);
    let config = RemediationConfig {
        confidence_threshold: 0.5,
        ..enforce()
    };
    let mut s = engine(Some(client), config, None, None, 1, false);
    let situation = crash_looping();
    let mut verdicts = Vec::new();
    for i in 0..4 {
        let h = s
            .engine
            .on_situation(situation.clone(), t0 + TimeDelta::minutes(10 * i))
            .await
            .unwrap();
        verdicts.push(h.incident.verdict);
    }
    server.await.expect("three restarts, no fourth");
    let restart = Action::Restart {
        namespace: "shop".into(),
        deployment: "orders".into(),
    };
    // foresight restarts (same audit log): the breaker remembers the three
    // restarts, and the next one escalates too instead of starting afresh.
    let mut again = Engine::new(
        EngineOptions {
            config: RemediationConfig {
                confidence_threshold: 0.5,
                ..enforce()
            },
            audit: s.audit.clone(),
            pager: None,
            kube: None,
            baselines: None,
            enabled_targets: Arc::new(|| 1),
            recent_decision: None,
            incidents: None,
        },
        tokio::sync::watch::channel(true).1,
    );
    let after = again
        .on_situation(situation.clone(), t0 + TimeDelta::minutes(45))
        .await
        .unwrap();
    assert_eq!(
        after.incident.verdict,
        Verdict::Escalate {
            action: restart.clone(),
            attempts: 3
        }
    );
    assert!(verdicts[..3].iter().all(|v| *v
        == Verdict::Execute {
            action: restart.clone()
        }));
    assert_eq!(
        verdicts[3],
        Verdict::Escalate {
            action: restart,
            attempts: 3
        }
    );
}

/// Another replica led until a minute ago and restarted `shop/orders` three
/// times in the last hour (one Event, and one repeated as a series of two;
/// a fourth, two hours old, is past the breaker's window). This replica's
/// own audit log has none of them; it reads foresight's Events before its
/// first judged action, so its first restart escalates instead of being the
/// fourth in an hour. It reads them again each time it becomes leader,
/// whether or not an incident came while it followed.
#[tokio::test]
async fn a_new_leader_counts_the_actions_the_previous_one_took() {
    let (client, handle) = pair();
    let t0 = at("2026-11-30T12:00:00Z");
    let server = serve(
        handle,
        vec![
            Call::get(PAST_EVENTS, fixture("foresight-events.json")),
            no_past_events(),
            no_past_events(),
        ],
    );
    let config = RemediationConfig {
        confidence_threshold: 0.5,
        ..enforce()
    };
    let mut s = engine(Some(client), config, None, None, 1, true);
    let situation = crash_looping();
    let restart = Action::Restart {
        namespace: "shop".into(),
        deployment: "orders".into(),
    };
    let escalated = Verdict::Escalate {
        action: restart,
        attempts: 3,
    };
    let first = s.engine.on_situation(situation.clone(), t0).await.unwrap();
    assert_eq!(first.incident.verdict, escalated);
    // Losing the Lease and winning it back between two incidents: read
    // again (none new), though no incident came while following.
    s.leader.send(false).unwrap();
    s.leader.send(true).unwrap();
    let back = s
        .engine
        .on_situation(situation.clone(), t0 + TimeDelta::seconds(30))
        .await
        .unwrap();
    assert_eq!(back.incident.verdict, escalated);
    // Losing the Lease, then winning it back: read again (none new).
    s.leader.send(false).unwrap();
    let follower = s
        .engine
        .on_situation(situation.clone(), t0 + TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        follower.incident.verdict,
        Verdict::PageOnly {
            reason: PageReason::NotLeader
        }
    );
    s.leader.send(true).unwrap();
    let again = s
        .engine
        .on_situation(situation, t0 + TimeDelta::minutes(2))
        .await
        .unwrap();
    assert_eq!(again.incident.verdict, escalated);
    server
        .await
        .expect("three reads of foresight's Events, nothing patched");
}

#[tokio::test]
async fn blast_radius_caps_the_targets_touched_in_ten_minutes() {
    let now = at("2026-11-30T12:00:00Z");
    let (client, handle) = pair();
    let mut calls = raise_from_20(30).to_vec();
    calls.extend(stamp(now));
    let server = serve(handle, calls);
    // 4 enabled targets: 25% is one target per 10 minutes.
    let mut s = engine(Some(client), enforce(), None, None, 4, false);
    let ceiling = |so: &str| Situation {
        target: Target {
            namespace: "shop".into(),
            scaled_object: so.into(),
            deployment: so.into(),
        },
        signal: Some(Signal::AtCeiling {
            at: now,
            max_replicas: 20,
            demand_replicas: 40,
        }),
        rollout: None,
        baselines: vec![],
        ceiling: Some(20),
        context: vec![],
        alert: None,
    };
    let first = s
        .engine
        .on_situation(ceiling("orders-consumer"), now)
        .await
        .unwrap();
    assert!(matches!(first.incident.verdict, Verdict::Execute { .. }));
    let second = s
        .engine
        .on_situation(ceiling("payments-consumer"), now + TimeDelta::minutes(5))
        .await
        .unwrap();
    server.await.expect("only the first target is touched");
    assert_eq!(
        second.incident.verdict,
        Verdict::PageOnly {
            reason: PageReason::BlastRadius {
                touched: 1,
                limit: 1,
                enabled: 4
            }
        }
    );
}

#[tokio::test]
async fn losing_the_lease_stops_actions() {
    let now = at("2026-11-30T10:08:00Z");
    let (client, handle) = pair();
    let mut calls = gather();
    calls.extend(plan_reads());
    let server = serve(handle, calls);
    let mut s = dry_run_engine(client, false);
    assert!(
        s.engine
            .on_signal(key(), latency_breach(now), now)
            .await
            .unwrap()
            .is_some()
    );
    s.leader.send(false).unwrap();
    let later = now + TimeDelta::minutes(1);
    let signal = Signal::NotKeepingUp {
        at: later,
        kind: MetricKind::QueueDepth,
        scaled_up_at: now,
        from_replicas: 3,
        to_replicas: 6,
        value_then: 900.0,
        value_now: 1400.0,
    };
    let h = s
        .engine
        .on_signal(key(), signal, later)
        .await
        .unwrap()
        .expect("recorded, not acted on");
    server.await.expect("no call once the lease is lost");
    assert_eq!(
        h.incident.verdict,
        Verdict::PageOnly {
            reason: PageReason::NotLeader
        }
    );
    assert_eq!(h.outcome, None);
    assert_eq!(h.outcome_label(), "not_leader");
    let incidents = summarize(&s.audit.read().unwrap());
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[1].status(), "notLeader");
    assert!(incidents[1].actions.is_empty() && incidents[1].pages.is_empty());
}

/// Leadership is read again after the evidence is gathered: a leader that
/// loses the Lease during those reads does not act.
#[tokio::test]
async fn losing_the_lease_while_gathering_stops_the_action() {
    let now = at("2026-11-30T12:00:00Z");
    let (client, handle) = pair();
    let s = engine(Some(client), enforce(), None, None, 4, false);
    let leader = Arc::new(s.leader);
    let lose = Arc::clone(&leader);
    let mut calls = gather();
    // The last read is answered after the Lease went to another replica.
    calls[2] = Call::get(RS_LIST, Value::Null).respond_with(move || {
        lose.send_replace(false);
        fixture("replicasets.json")
    });
    let server = serve(handle, calls);
    let mut engine = s.engine;
    let h = engine
        .on_signal(
            key(),
            Signal::AtCeiling {
                at: now,
                max_replicas: 20,
                demand_replicas: 45,
            },
            now,
        )
        .await
        .unwrap()
        .unwrap();
    server.await.expect("the reads, and no patch");
    assert!(!*leader.borrow());
    // Diagnosed with the evidence read while leading, then not acted on.
    assert_eq!(h.incident.diagnosis.cause, Cause::CapacityCeiling);
    assert_eq!(
        h.incident.verdict,
        Verdict::PageOnly {
            reason: PageReason::NotLeader
        }
    );
    assert_eq!(h.outcome, None);
    assert_eq!(summarize(&s.audit.read().unwrap())[0].status(), "notLeader");
}

#[tokio::test]
async fn repeated_signals_open_one_incident() {
    let now = at("2026-11-30T12:00:00Z");
    let mut s = engine(None, RemediationConfig::default(), None, None, 4, false);
    let signal = |t| Signal::AtCeiling {
        at: t,
        max_replicas: 20,
        demand_replicas: 30,
    };
    assert!(
        s.engine
            .on_signal(key(), signal(now), now)
            .await
            .unwrap()
            .is_some()
    );
    let t = now + TimeDelta::seconds(15);
    assert!(
        s.engine
            .on_signal(key(), signal(t), t)
            .await
            .unwrap()
            .is_none()
    );
    let t = now + TimeDelta::minutes(10);
    assert!(
        s.engine
            .on_signal(key(), signal(t), t)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn rollback_to_the_current_template_is_skipped() {
    // Revision 3 spells its quantities differently (0.25 CPU, 262144Ki)
    // from the Deployment (250m, 256Mi): equal by value, so skipped.
    let (client, handle) = pair();
    let server = serve(handle, Vec::from(plan_reads()));
    let outcome = KubeActions::new(client)
        .rollback("shop", "orders", Some(3), None, false)
        .await
        .unwrap();
    server.await.expect("no patch");
    assert_eq!(
        outcome,
        ActionOutcome::Skipped {
            message: "skipped rollback (current template already matches revision 3)".into()
        }
    );
}

#[tokio::test]
async fn a_paused_deployment_is_refused() {
    let mut paused = fixture("deployment.json");
    paused["spec"]["paused"] = json!(true);
    let (client, handle) = pair();
    let server = serve(
        handle,
        vec![
            Call::get(DEPLOY, paused.clone()),
            Call::get(RS_LIST, fixture("replicasets.json")),
            Call::get(DEPLOY, paused),
        ],
    );
    let kube = KubeActions::new(client);
    let rollback = kube
        .rollback("shop", "orders", None, None, false)
        .await
        .unwrap();
    let restart = kube
        .restart("shop", "orders", Utc::now(), false)
        .await
        .unwrap();
    server.await.expect("no patch");
    assert!(matches!(rollback, ActionOutcome::Refused { message } if message.contains("paused")));
    assert!(matches!(restart, ActionOutcome::Refused { message } if message.contains("paused")));
}

#[tokio::test]
async fn the_operator_rollback_sends_kubectls_patch_and_waits_for_the_rollout() {
    // `foresight rollback shop/orders`: the same patch as `kubectl rollout
    // undo`, whose change-cause comes from the restored ReplicaSet.
    let (client, handle) = pair();
    let mut waiting = fixture("deployment.json");
    waiting["metadata"]["generation"] = json!(5);
    waiting["status"]["observedGeneration"] = json!(5);
    waiting["status"]["updatedReplicas"] = json!(1);
    waiting["status"]["replicas"] = json!(4);
    let server = serve(
        handle,
        plan_reads()
            .into_iter()
            .chain([
                Call::patch(
                    DEPLOY_PATCH,
                    JSON_PATCH,
                    undo_to_revision_2("deploy orders:1.2.0"),
                    waiting.clone(),
                ),
                Call::get(DEPLOY, waiting),
                Call::get(DEPLOY, rolled_out()),
            ])
            .collect(),
    );
    let kube = KubeActions::new(client).with_poll_interval(Duration::from_millis(10));
    let outcome = kube
        .rollback("shop", "orders", None, None, false)
        .await
        .unwrap();
    let status = kube.wait_rollout("shop", "orders").await.unwrap();
    server.await.expect("kubectl's calls");
    assert_eq!(
        outcome,
        ActionOutcome::Done {
            message: "rolled back to revision 2".into()
        }
    );
    assert_eq!(status, "deployment \"orders\" successfully rolled out");
}

#[tokio::test]
async fn to_revision_that_is_not_kept_is_an_error() {
    let (client, handle) = pair();
    // Revision 9 exists only on a ReplicaSet another Deployment controls.
    let server = serve(handle, Vec::from(plan_reads()));
    let e = KubeActions::new(client)
        .rollback("shop", "orders", Some(9), None, false)
        .await
        .unwrap_err();
    server.await.unwrap();
    assert_eq!(
        e.to_string(),
        "cannot roll back Deployment shop/orders: unable to find specified revision 9 in history"
    );
}

#[tokio::test]
async fn a_progress_deadline_fails_the_rollout_watch() {
    let mut stuck = rolled_out();
    stuck["status"]["conditions"][1]["reason"] = json!("ProgressDeadlineExceeded");
    stuck["status"]["conditions"][1]["status"] = json!("False");
    let (client, handle) = pair();
    let server = serve(handle, vec![Call::get(DEPLOY, stuck)]);
    let e = KubeActions::new(client)
        .wait_rollout("shop", "orders")
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(
        e.to_string().contains("exceeded its progress deadline"),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_page_is_recorded_and_does_not_stop_the_engine() {
    let (url, pages) = webhook(StatusCode::INTERNAL_SERVER_ERROR).await;
    let pager = Pager::new(url, PageFormat::Slack, Duration::from_secs(5));
    assert!(pager.describe().starts_with("http://127.0.0.1"));
    assert!(
        !pager.describe().contains("secret"),
        "the webhook's secret path is never shown"
    );
    let mut s = engine(
        None,
        RemediationConfig::default(),
        Some(pager),
        None,
        4,
        false,
    );
    let now = at("2026-11-30T12:00:00Z");
    let h = s
        .engine
        .on_signal(
            key(),
            Signal::AtCeiling {
                at: now,
                max_replicas: 20,
                demand_replicas: 30,
            },
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pages.lock().unwrap().len(), 1);
    let summary = &summarize(&s.audit.read().unwrap())[0];
    assert_eq!(summary.incident.id, h.incident.id);
    let error = summary.pages[0].1.as_deref().unwrap();
    assert!(
        error.contains("HTTP 500") && !error.contains("secret"),
        "{error}"
    );
}

/// Against a real cluster (e.g. kind): `kubectl create deployment web
/// --image=nginx:1.27 && kubectl set image deployment/web nginx=nginx:1.28`,
/// then `cargo test --profile ci --test remediation -- --ignored`.
#[tokio::test]
#[ignore = "needs cluster"]
async fn cluster_rollback_dry_run_then_undo() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = kube::Client::try_default().await.unwrap();
    let ns = std::env::var("FORESIGHT_E2E_NAMESPACE").unwrap_or_else(|_| "default".into());
    let kube = KubeActions::new(client);
    let dry = kube.rollback(&ns, "web", None, None, true).await.unwrap();
    assert!(matches!(dry, ActionOutcome::DryRun { .. }), "{dry:?}");
    let done = kube.rollback(&ns, "web", None, None, false).await.unwrap();
    assert!(matches!(done, ActionOutcome::Done { .. }), "{done:?}");
    tokio::time::timeout(Duration::from_secs(180), kube.wait_rollout(&ns, "web"))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_mock_api_server_fails_on_an_unexpected_call() {
    // Strictness of the mock itself: a call nobody expected fails the
    // scenario, as does a call with another path than the expected one.
    let (client, handle) = pair();
    let server = serve(handle, vec![]);
    let _ = KubeActions::new(client).deployment("shop", "orders").await;
    assert!(
        server.await.is_err(),
        "an unexpected GET must fail the test"
    );

    let (client, handle) = pair();
    let server = serve(handle, vec![Call::get(DEPLOY, fixture("deployment.json"))]);
    let _ = KubeActions::new(client)
        .deployment("shop", "payments")
        .await;
    assert!(
        server.await.is_err(),
        "a GET of another object must fail the test"
    );
}

fn alert(fingerprint: &str, status: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "HighErrorRate", "namespace": "shop", "deployment": "orders", "severity": "page"},
        "annotations": {"summary": "5% of requests fail"},
        "startsAt": "2026-11-30T10:04:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
        "someFutureField": true
    })
}

/// `POST /alerts` on a local port with token `s3cret`, feeding a channel
/// of `room` alerts; `leads` is this replica's leadership, to change.
async fn alerts_endpoint(
    room: usize,
    leads: bool,
) -> (
    String,
    tokio::sync::watch::Sender<bool>,
    tokio::sync::mpsc::Receiver<foresight::remediation::AlertmanagerAlert>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(room);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let (lead, leadership) = tokio::sync::watch::channel(leads);
    let app = foresight::remediation::alerts_router("s3cret".into(), tx, leadership);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, lead, rx)
}

/// An Alertmanager webhook (version 4) carrying `alerts`.
fn webhook_payload(alerts: Vec<Value>) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "foresight", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager",
        "alerts": alerts
    })
}

#[tokio::test]
async fn alertmanager_webhooks_need_the_token_and_are_deduplicated() {
    let (url, lead, mut rx) = alerts_endpoint(8, false).await;
    let http = reqwest::Client::new();
    let payload = webhook_payload(vec![alert("a1b2", "firing"), alert("c3d4", "resolved")]);
    let post = |token: Option<&str>, body: Value| {
        let mut r = http.post(&url).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None, payload.clone()).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("wrong"), payload.clone()).await.unwrap().status(),
        401
    );
    // A follower refuses, so Alertmanager retries (through the Service,
    // which may pick the leader) instead of the alert being recorded by a
    // replica that cannot act on it.
    let r = post(Some("s3cret"), payload.clone()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(rx.try_recv().is_err(), "a follower forwards nothing");
    // Once this replica leads, the same alert is new, not a duplicate.
    lead.send(true).unwrap();
    let r = post(Some("s3cret"), payload.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 1, "duplicates": 0, "resolved": 1})
    );
    // Alertmanager resends on every repeat_interval: same fingerprint and
    // startsAt, so it is not a new incident.
    let r = post(Some("s3cret"), payload.clone()).await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 0, "duplicates": 1, "resolved": 1})
    );
    let mut old = payload.clone();
    old["version"] = json!("3");
    assert_eq!(post(Some("s3cret"), old).await.unwrap().status(), 400);
    let got = rx.recv().await.unwrap();
    assert_eq!(got.fingerprint, "a1b2");
    assert_eq!(got.labels["alertname"], "HighErrorRate");
    assert!(
        rx.try_recv().is_err(),
        "exactly one alert reaches the engine"
    );
}

#[tokio::test]
async fn an_alert_refused_while_the_engine_is_busy_is_taken_on_retry() {
    // Room for one alert: the second of a payload finds the engine busy.
    let (url, _lead, mut rx) = alerts_endpoint(1, true).await;
    let http = reqwest::Client::new();
    let payload = webhook_payload(vec![alert("a1b2", "firing"), alert("e5f6", "firing")]);
    let post = || http.post(&url).bearer_auth("s3cret").json(&payload).send();
    let r = post().await.unwrap();
    assert_eq!(r.status(), 503, "the second alert finds the engine busy");
    assert_eq!(rx.recv().await.unwrap().fingerprint, "a1b2");
    // Alertmanager retries the whole group: the first alert was taken and is
    // a duplicate now; the refused one is new, not lost as a duplicate.
    let r = post().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 1, "duplicates": 1, "resolved": 0})
    );
    assert_eq!(rx.recv().await.unwrap().fingerprint, "e5f6");
}

#[tokio::test]
async fn an_alert_after_a_deploy_is_diagnosed_as_a_bad_deploy() {
    let now = at("2026-11-30T10:08:00Z");
    let (client, handle) = pair();
    // The alert names the Deployment: no ScaledObject to resolve.
    let server = serve(
        handle,
        plan_reads().into_iter().chain(plan_reads()).collect(),
    );
    let mut s = dry_run_engine(client, false);
    let a: foresight::remediation::AlertmanagerAlert =
        serde_json::from_value(alert("a1b2", "firing")).unwrap();
    let h = s.engine.on_alert(a.clone(), now).await.unwrap().unwrap();
    // The same alert again within the window opens nothing.
    assert_eq!(s.engine.on_alert(a, now).await.unwrap(), None);
    server.await.expect("reads only (dry run)");
    assert_eq!(h.incident.diagnosis.cause, Cause::BadDeploy);
    assert!(h.incident.diagnosis.confidence >= 0.85);
    assert!(matches!(
        &h.incident.verdict,
        Verdict::DryRun {
            action: Action::Rollback {
                to_revision: Some(2),
                ..
            }
        }
    ));
    assert!(
        h.incident
            .diagnosis
            .evidence
            .iter()
            .any(|e| e.source == "alert" && e.detail.starts_with("HighErrorRate firing since"))
    );
}

#[tokio::test]
async fn replicas_sharing_a_log_give_their_incidents_distinct_ids() {
    // Replicas evaluate on the same ticks and see the same signals: on one
    // shared audit log, ids of the same second, target and count collided.
    let now = at("2026-11-30T10:08:00Z");
    let mut ids = Vec::new();
    for pod in ["foresight-7d9f-abcde", "foresight-7d9f-fghij"] {
        let s = engine(None, RemediationConfig::default(), None, None, 4, false);
        let mut e = s.engine.with_replica(pod);
        let h = e
            .on_signal(key(), latency_breach(now), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            h.incident.id,
            format!("20261130T100800Z-shop-orders-consumer-{pod}-1")
        );
        ids.push(h.incident.id);
    }
    assert_ne!(ids[0], ids[1]);
}
