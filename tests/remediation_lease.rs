//! Leader election against the strict mock Kubernetes API server: the real
//! kube-lease-manager (through `join_leader_election`, as `serve` joins)
//! talks to a mock serving `coordination.k8s.io/v1` Lease JSON, and the
//! engine acts through a second mock only while the Lease is ours.
//!
//! kube-lease-manager 0.13's calls, in order, for a Lease that does not
//! exist yet (read from its `state.rs` and `manager.rs`):
//!
//! 1. `GET` the Lease: 404, so
//! 2. `POST` it, with its name only (no spec);
//! 3. `GET` it (the watch loop's first sync: our view is expired);
//! 4. `GET` it again (the lock's own sync);
//! 5. server-side apply `PATCH` of `holderIdentity`, `acquireTime`,
//!    `renewTime` and `leaseDurationSeconds`;
//! 6. strategic merge `PATCH` of `leaseTransitions` + 1;
//! 7. `GET` it: we hold it, so the receiver turns `true`;
//! 8. `grace` before it expires, a strategic merge `PATCH` of `renewTime`
//!    and `leaseDurationSeconds`, then
//! 9. `GET` it, and so on every `duration - grace`.
//!
//! Releasing is a `GET` when someone else holds an unexpired Lease, or a
//! strategic merge `PATCH` clearing the holder and then a `GET` when we do.

#[path = "support/kube_mock.rs"]
mod kube_mock;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use kube_mock::{Call, fixture, pair, serve_until};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use foresight::domain::{MetricKind, ScaledObjectKey, Signal};
use foresight::remediation::kube::{
    KubeActions, LeaderElection, LeaseSettings, join_leader_election,
};
use foresight::remediation::{
    ActionOutcome, AuditLog, Cause, Engine, EngineOptions, PageFormat, PageReason, Pager,
    RemediationConfig, RemediationMode, Verdict, summarize,
};

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/foresight/leases/foresight-remediation";
const LEASE_PATCH: &str = "/apis/coordination.k8s.io/v1/namespaces/foresight/leases/foresight-remediation?&fieldManager=foresight";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/foresight/leases?";
const APPLY: &str = "application/apply-patch+yaml";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

const SO: &str = "/apis/keda.sh/v1alpha1/namespaces/shop/scaledobjects/orders-consumer";
const SO_PATCH: &str =
    "/apis/keda.sh/v1alpha1/namespaces/shop/scaledobjects/orders-consumer?&fieldManager=foresight";
const DEPLOY: &str = "/apis/apps/v1/namespaces/shop/deployments/orders";
const RS_LIST: &str = "/apis/apps/v1/namespaces/shop/replicasets?&labelSelector=app%3Dorders";

/// This replica.
const ME: &str = "foresight-0";
/// The other replica.
const OTHER: &str = "foresight-1";

/// Bound on every wait, so a failure cannot hang the test.
const WAIT: Duration = Duration::from_secs(10);

fn settings() -> LeaseSettings {
    LeaseSettings {
        duration: Duration::from_secs(2),
        grace: Duration::from_secs(1),
        ..LeaseSettings::new("foresight", ME)
    }
}

fn micro_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The Lease as the API server returns it.
fn lease(spec: Value) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "foresight-remediation",
            "namespace": "foresight",
            "uid": "0b5f3c1e-8d0a-4a52-9a55-6c1f0e2f7d11",
            "resourceVersion": "48213",
            "creationTimestamp": "2026-11-30T09:00:00Z",
            "managedFields": [{
                "manager": "foresight",
                "operation": "Update",
                "apiVersion": "coordination.k8s.io/v1",
                "time": "2026-11-30T09:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {}}
            }]
        },
        "spec": spec
    })
}

/// The Lease held by `holder`, renewed just now.
fn held_by(holder: &str, duration: u64, transitions: i32) -> Value {
    let now = micro_now();
    lease(json!({
        "holderIdentity": holder,
        "leaseDurationSeconds": duration,
        "acquireTime": now,
        "renewTime": now,
        "leaseTransitions": transitions
    }))
}

/// The API server's 404 for a missing Lease.
fn not_found() -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "leases.coordination.k8s.io \"foresight-remediation\" not found",
        "reason": "NotFound",
        "details": {"name": "foresight-remediation", "group": "coordination.k8s.io", "kind": "leases"},
        "code": 404
    })
}

/// The API server's answer to a write based on a stale resourceVersion.
fn conflict() -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Operation cannot be fulfilled on leases.coordination.k8s.io \"foresight-remediation\": the object has been modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "foresight-remediation", "group": "coordination.k8s.io", "kind": "leases"},
        "code": 409
    })
}

/// Calls 1–7: the Lease is created, locked by us for `secs` and read back.
fn create_and_lock(secs: u64) -> Vec<Call> {
    vec![
        Call::get(LEASE, not_found()).status(StatusCode::NOT_FOUND),
        Call::post(
            LEASES,
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "foresight-remediation"}
            }),
            lease(json!({})),
        ),
        Call::get(LEASE, lease(json!({}))),
        Call::get(LEASE, lease(json!({}))),
        Call::patch_containing(
            LEASE_PATCH,
            APPLY,
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "spec": {"holderIdentity": ME, "leaseDurationSeconds": secs}
            }),
            Value::Null,
        )
        .respond_with(move || held_by(ME, secs, 0)),
        Call::patch(
            LEASE_PATCH,
            STRATEGIC,
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "spec": {"leaseTransitions": 1}
            }),
            Value::Null,
        )
        .respond_with(move || held_by(ME, secs, 1)),
        Call::get(LEASE, Value::Null).respond_with(move || held_by(ME, secs, 1)),
    ]
}

/// A read of the Lease answered with `lease`, and a token cancelled once
/// it has been answered, for a test to wait on.
fn read_lease(lease: impl Fn() -> Value + Send + Sync + 'static) -> (Call, CancellationToken) {
    let answered = CancellationToken::new();
    let seen = answered.clone();
    let call = Call::get(LEASE, Value::Null).respond_with(move || {
        seen.cancel();
        lease()
    });
    (call, answered)
}

/// Stops the Lease's mock API server and returns the bodies of the calls
/// it served, failing unless they were kube-lease-manager's, exactly.
async fn lease_calls_made(
    done: CancellationToken,
    server: tokio::task::JoinHandle<Vec<Value>>,
) -> Vec<Value> {
    done.cancel();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("mock finished")
        .expect("kube-lease-manager's calls, exactly")
}

/// Joins the election `settings` describe through `client`, within 10 s.
async fn join(
    client: kube::Client,
    settings: &LeaseSettings,
) -> (watch::Receiver<bool>, LeaderElection) {
    tokio::time::timeout(WAIT, join_leader_election(client, settings))
        .await
        .expect("joined within 10 s")
        .expect("joined")
}

/// The holder releases the Lease (its holder fields cleared), then reads it.
fn release_held() -> [Call; 2] {
    [
        Call::patch(
            LEASE_PATCH,
            STRATEGIC,
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "spec": {
                    "acquireTime": null,
                    "renewTime": null,
                    "holderIdentity": null,
                    "leaseDurationSeconds": null
                }
            }),
            Value::Null,
        )
        .respond_with(|| lease(json!({"leaseTransitions": 1}))),
        Call::get(LEASE, lease(json!({"leaseTransitions": 1}))),
    ]
}

/// Call 8: our renewal.
fn renewal() -> Call {
    Call::patch_containing(
        LEASE_PATCH,
        STRATEGIC,
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "spec": {"leaseDurationSeconds": 2}
        }),
        Value::Null,
    )
    .respond_with(|| held_by(ME, 2, 1))
}

/// The other replica holds the Lease, renewed just now, for 30 s: long
/// enough that our manager waits quietly for the rest of the test.
fn taken_over() -> Call {
    Call::get(LEASE, Value::Null).respond_with(|| held_by(OTHER, 30, 2))
}

async fn wait_for(rx: &mut watch::Receiver<bool>, leads: bool) {
    tokio::time::timeout(WAIT, rx.wait_for(|l| *l == leads))
        .await
        .unwrap_or_else(|_| panic!("leadership never became {leads}"))
        .expect("the election is running");
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn key() -> ScaledObjectKey {
    ScaledObjectKey::new("shop", "orders-consumer")
}

/// A webhook receiver on a local port; it records every body it is sent.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(v);
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// An enforcing engine that acts through `client` while `leader` says so.
fn engine(
    client: kube::Client,
    leader: watch::Receiver<bool>,
    pager: Option<Pager>,
) -> (Engine, AuditLog, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let engine = Engine::new(
        EngineOptions {
            config: RemediationConfig {
                mode: RemediationMode::Enforce,
                hard_cap: 25,
                ..RemediationConfig::default()
            },
            audit: audit.clone(),
            pager,
            kube: Some(KubeActions::new(client)),
            baselines: None,
            enabled_targets: Arc::new(|| 4),
            recent_decision: None,
            incidents: None,
        },
        leader,
    );
    (engine, audit, dir)
}

/// A signal that, from the leader, would make the engine read the
/// ScaledObject and the Deployment: the strict mock fails on any call.
fn not_keeping_up(now: DateTime<Utc>) -> Signal {
    Signal::NotKeepingUp {
        at: now,
        kind: MetricKind::QueueDepth,
        scaled_up_at: now - chrono::TimeDelta::minutes(5),
        from_replicas: 3,
        to_replicas: 6,
        value_then: 900.0,
        value_now: 1400.0,
    }
}

async fn release(election: LeaderElection) {
    tokio::time::timeout(WAIT, election.release(Duration::from_secs(5)))
        .await
        .expect("released within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_created_its_holder_acts_and_losing_it_stops_actions() {
    let (lease_client, lease_handle) = pair();
    let lost = CancellationToken::new();
    let mut lease_calls = create_and_lock(2);
    lease_calls.extend([
        // Held until the engine has acted as leader.
        renewal().hold_until(lost.clone()),
        taken_over(),
        // Released: someone else holds it, so only a read.
        Call::get(LEASE, Value::Null).respond_with(|| held_by(OTHER, 30, 2)),
    ]);
    let lease_done = CancellationToken::new();
    let lease_server = serve_until(lease_handle, lease_calls, lease_done.clone());

    // RaiseCeiling, as tests/remediation.rs has it: the evidence, then one
    // JSON Patch of maxReplicaCount.
    let (client, handle) = pair();
    let actions_done = CancellationToken::new();
    let actions = serve_until(
        handle,
        vec![
            Call::get(SO, fixture("scaledobject.json")),
            Call::get(DEPLOY, fixture("deployment.json")),
            Call::get(RS_LIST, fixture("replicasets.json")),
            Call::get(SO, fixture("scaledobject.json")),
            Call::patch(
                SO_PATCH,
                JSON_PATCH,
                json!([
                    {"op": "test", "path": "/spec/maxReplicaCount", "value": 20},
                    {"op": "replace", "path": "/spec/maxReplicaCount", "value": 25},
                    {"op": "test", "path": "/spec/triggers/1/metadata/maxReplicaCount", "value": "20"},
                    {"op": "replace", "path": "/spec/triggers/1/metadata/maxReplicaCount", "value": "25"}
                ]),
                fixture("scaledobject.json"),
            ),
            // The stamp that starts the trigger's cooldown.
            Call::get(SO, fixture("scaledobject.json")),
            Call::patch(
                SO_PATCH,
                JSON_PATCH,
                json!([
                    {"op": "test", "path": "/spec/triggers/1/type", "value": "external"},
                    {"op": "add", "path": "/spec/triggers/1/metadata/lastRemediation", "value": "2026-11-30T12:00:00Z"}
                ]),
                fixture("scaledobject.json"),
            ),
        ],
        actions_done.clone(),
    );

    let (mut leader, election) = join(lease_client, &settings()).await;
    wait_for(&mut leader, true).await;

    let (url, pages) = webhook().await;
    let pager = Pager::new(url, PageFormat::Generic, Duration::from_secs(5));
    let (mut engine, audit, _dir) = engine(client, leader.clone(), Some(pager));
    let now = at("2026-11-30T12:00:00Z");
    let acted = tokio::time::timeout(
        WAIT,
        engine.on_signal(
            key(),
            Signal::AtCeiling {
                at: now,
                max_replicas: 20,
                demand_replicas: 45,
            },
            now,
        ),
    )
    .await
    .expect("acted within 10 s")
    .unwrap()
    .expect("an incident");
    assert_eq!(acted.incident.diagnosis.cause, Cause::CapacityCeiling);
    assert_eq!(
        acted.outcome,
        Some(ActionOutcome::Done {
            message: "raised maxReplicaCount from 20 to 25".into()
        })
    );

    // The renewal goes through, and the read after it shows the other
    // replica holding the Lease.
    lost.cancel();
    wait_for(&mut leader, false).await;
    let later = now + chrono::TimeDelta::minutes(1);
    let followed =
        tokio::time::timeout(WAIT, engine.on_signal(key(), not_keeping_up(later), later))
            .await
            .expect("handled within 10 s")
            .unwrap()
            .expect("recorded as not acted on");
    actions_done.cancel();
    let sent = tokio::time::timeout(WAIT, actions)
        .await
        .expect("mock finished")
        .expect("one JSON Patch while leading, no call at all after");
    assert_eq!(sent.len(), 7, "the raise and its stamp while leading");

    assert_eq!(
        followed.incident.verdict,
        Verdict::PageOnly {
            reason: PageReason::NotLeader
        }
    );
    assert_eq!(followed.outcome, None);
    assert_eq!(followed.outcome_label(), "not_leader");
    // Diagnosed from the signal alone: a follower reads nothing.
    assert!(
        followed
            .incident
            .diagnosis
            .evidence
            .iter()
            .all(|e| e.source != "rollout"),
        "{:?}",
        followed.incident.diagnosis.evidence
    );
    let incidents = summarize(&audit.read().unwrap());
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[0].status(), "done");
    assert_eq!(incidents[1].status(), "notLeader");
    assert!(incidents[1].actions.is_empty());
    assert!(
        incidents[1].pages.is_empty(),
        "a follower pages no one: the leader does"
    );
    let pages = pages.lock().unwrap().clone();
    assert_eq!(pages.len(), 1, "only the leader's incident was paged");
    assert_eq!(pages[0]["incident"]["id"], acted.incident.id);

    release(election).await;
    assert!(!*leader.borrow());
    let bodies = lease_calls_made(lease_done, lease_server).await;
    assert_eq!(bodies.len(), 10);
    // The lock names us, with times the manager stamped.
    let lock = &bodies[4]["spec"];
    assert_eq!(lock["holderIdentity"], ME);
    for field in ["acquireTime", "renewTime"] {
        let t = lock[field].as_str().unwrap_or_default();
        let t = DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{field} {t:?}: {e}"));
        assert!(
            (Utc::now() - t.to_utc()).num_seconds().abs() < 30,
            "{field} {t}"
        );
    }
    // The renewal moves renewTime and nothing else about the holder.
    let renew = bodies[7]["spec"].as_object().unwrap();
    let mut fields: Vec<&str> = renew.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["leaseDurationSeconds", "renewTime"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_renewal_loses_the_lease_and_stops_actions() {
    let (lease_client, lease_handle) = pair();
    let mut lease_calls = create_and_lock(2);
    let (read, read_back) = read_lease(|| held_by(OTHER, 30, 2));
    lease_calls.extend([
        // Another replica wrote the Lease first; answered after our Lease
        // has expired, so the manager reads it again rather than retrying.
        renewal()
            .status(StatusCode::CONFLICT)
            .respond_with(conflict)
            .delay(Duration::from_millis(1_500)),
        read,
        Call::get(LEASE, Value::Null).respond_with(|| held_by(OTHER, 30, 2)),
    ]);
    let lease_done = CancellationToken::new();
    let lease_server = serve_until(lease_handle, lease_calls, lease_done.clone());

    // The engine's API server expects nothing at all.
    let (client, handle) = pair();
    let actions_done = CancellationToken::new();
    let actions = serve_until(handle, vec![], actions_done.clone());

    let (mut leader, election) = join(lease_client, &settings()).await;
    wait_for(&mut leader, true).await;
    wait_for(&mut leader, false).await;
    // Leadership ended when the Lease expired unrenewed (1.5 s, with half
    // the 1 s grace to spare), before the conflict was even answered
    // (2.5 s): kube-lease-manager itself still believed it led.
    assert!(
        !read_back.is_cancelled(),
        "not acting only once the manager had read the Lease back"
    );

    let (mut engine, audit, _dir) = engine(client, leader.clone(), None);
    let now = at("2026-11-30T12:00:00Z");
    let h = tokio::time::timeout(
        WAIT,
        engine.on_signal(
            key(),
            Signal::AtCeiling {
                at: now,
                max_replicas: 20,
                demand_replicas: 45,
            },
            now,
        ),
    )
    .await
    .expect("handled within 10 s")
    .unwrap()
    .expect("recorded");
    actions_done.cancel();
    tokio::time::timeout(WAIT, actions)
        .await
        .expect("mock finished")
        .expect("no call from a follower");
    assert_eq!(
        h.incident.verdict,
        Verdict::PageOnly {
            reason: PageReason::NotLeader
        }
    );
    assert_eq!(summarize(&audit.read().unwrap())[0].status(), "notLeader");

    // The manager learns of the conflict and reads the Lease back; released
    // after that, it only reads (another replica holds the Lease).
    tokio::time::timeout(WAIT, read_back.cancelled())
        .await
        .expect("the Lease read back after the conflict");
    release(election).await;
    let bodies = lease_calls_made(lease_done, lease_server).await;
    assert_eq!(bodies.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_hangs_ends_leadership_when_the_lease_expires() {
    // The API server takes the renewal and never answers (a partition):
    // kube-lease-manager waits on it and still believes it leads, while
    // another replica may take the Lease once it expires. Leadership ends
    // there, and comes back when a renewal goes through.
    let (lease_client, lease_handle) = pair();
    let answer = CancellationToken::new();
    let (read, read_back) = read_lease(|| held_by(ME, 2, 1));
    let mut lease_calls = create_and_lock(2);
    lease_calls.extend([
        renewal().hold_until(answer.clone()),
        // After a renewal the manager reads the Lease back.
        read,
    ]);
    // Released then: the holder's release, then a read.
    lease_calls.extend(release_held());
    let lease_done = CancellationToken::new();
    let lease_server = serve_until(lease_handle, lease_calls, lease_done.clone());
    let (mut leader, election) = join(lease_client, &settings()).await;
    wait_for(&mut leader, true).await;
    // The 2 s Lease is renewed 1 s in; that renewal hangs, and at 1.5 s
    // this replica stops leading.
    wait_for(&mut leader, false).await;
    answer.cancel();
    wait_for(&mut leader, true).await;
    tokio::time::timeout(WAIT, read_back.cancelled())
        .await
        .expect("the Lease read back after the renewal");
    release(election).await;
    assert!(!*leader.borrow());
    let bodies = lease_calls_made(lease_done, lease_server).await;
    assert_eq!(bodies.len(), 11, "locked, renewed late, read, released");
}

#[tokio::test]
async fn releasing_a_held_lease_clears_its_holder() {
    let (lease_client, lease_handle) = pair();
    let mut lease_calls = create_and_lock(10);
    lease_calls.extend(release_held());
    let lease_done = CancellationToken::new();
    let lease_server = serve_until(lease_handle, lease_calls, lease_done.clone());
    // A Lease of 10 s renews 9 s in: long after this test releases it.
    let long = LeaseSettings {
        duration: Duration::from_secs(10),
        ..settings()
    };
    let (mut leader, election) = join(lease_client, &long).await;
    wait_for(&mut leader, true).await;
    release(election).await;
    // Not leading from the moment the release began.
    assert!(!*leader.borrow());
    lease_done.cancel();
    tokio::time::timeout(WAIT, lease_server)
        .await
        .expect("mock finished")
        .expect("the release patch, then a read");
}

#[tokio::test]
async fn bad_durations_are_refused_before_any_call() {
    let (client, handle) = pair();
    let done = CancellationToken::new();
    let server = serve_until(handle, vec![], done.clone());
    for (duration, grace) in [(2_000, 2_000), (2_000, 0), (2_500, 1_000)] {
        let bad = LeaseSettings {
            duration: Duration::from_millis(duration),
            grace: Duration::from_millis(grace),
            ..settings()
        };
        let e = join_leader_election(client.clone(), &bad)
            .await
            .map(|_| ())
            .expect_err("refused");
        assert!(
            e.to_string().starts_with("invalid leader Lease durations"),
            "{e}"
        );
    }
    done.cancel();
    server.await.expect("no call");
}
