//! `POST /alerts`: Alertmanager's webhook (payload version 4) as a trigger
//! for the engine. A bearer token is required; alerts are de-duplicated by
//! fingerprint and `startsAt` (Alertmanager resends a firing alert on every
//! `repeat_interval`); unknown fields are allowed, as the format grows.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

/// How many (fingerprint, startsAt) pairs are remembered for de-duplication.
const REMEMBERED: usize = 10_000;

/// Alertmanager's webhook body; fields foresight does not use are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// Payload format; foresight reads version `4`.
    pub version: String,
    /// The alerts of the group.
    #[serde(default)]
    pub alerts: Vec<AlertmanagerAlert>,
}

/// One alert of a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels: `alertname`, and for foresight `namespace` plus
    /// `scaledobject` or `deployment`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations: `summary`, `description`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// Alertmanager's identity of the alert's label set.
    #[serde(default)]
    pub fingerprint: String,
}

/// An alert's identity for de-duplication: fingerprint and `startsAt`.
type AlertId = (String, DateTime<Utc>);

struct Intake {
    token: String,
    /// Identities seen, and the order they came in (to forget the oldest).
    seen: Mutex<(HashSet<AlertId>, VecDeque<AlertId>)>,
    engine: mpsc::Sender<AlertmanagerAlert>,
    /// Whether this replica leads remediation. Alertmanager posts to the
    /// Service, which picks any replica; a follower refuses with 503, which
    /// Alertmanager retries, and the retry may reach the leader. Accepting
    /// would record the alert as not acted on, and no replica would act.
    leader: super::Leadership,
}

/// The `POST /alerts` route, forwarding new firing alerts to `engine` while
/// `leader` says this replica leads. `token` is the bearer token
/// Alertmanager must send (`http_config.authorization.credentials`).
pub fn alerts_router(
    token: String,
    engine: mpsc::Sender<AlertmanagerAlert>,
    leader: super::Leadership,
) -> Router {
    Router::new()
        .route("/alerts", post(receive))
        .with_state(Arc::new(Intake {
            token,
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
            engine,
            leader,
        }))
}

/// Compares without stopping at the first difference, so response timing
/// does not reveal how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn receive(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: String) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if intake.token.is_empty() || !same(presented.as_bytes(), intake.token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    let payload: AlertmanagerPayload = match serde_json::from_str(&body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an Alertmanager webhook payload: {e}\n"),
            )
                .into_response();
        }
    };
    if payload.version != "4" {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported Alertmanager webhook version {:?}; foresight reads version 4\n",
                payload.version
            ),
        )
            .into_response();
    }
    // Before de-duplication, so the retry that reaches the leader is not
    // taken for a duplicate.
    if !*intake.leader.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "this replica does not lead remediation; retry (the Service picks another replica)\n",
        )
            .into_response();
    }
    let (mut accepted, mut duplicates, mut resolved) = (0, 0, 0);
    for alert in payload.alerts {
        if alert.status != "firing" {
            resolved += 1;
            continue;
        }
        let key = (alert.fingerprint.clone(), alert.starts_at);
        // A poisoned lock only means another request panicked mid-way; the
        // set itself is still usable. Held across the (non-blocking) send so
        // two deliveries of one alert cannot both pass the check.
        let mut seen = intake.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *seen;
        if set.contains(&key) {
            duplicates += 1;
            continue;
        }
        if intake.engine.try_send(alert).is_err() {
            // The engine is busy or gone: Alertmanager will retry, and the
            // alert is not remembered, so the retry is not taken for a
            // duplicate.
            return (StatusCode::SERVICE_UNAVAILABLE, "remediation is busy\n").into_response();
        }
        set.insert(key.clone());
        order.push_back(key);
        while order.len() > REMEMBERED {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        drop(seen);
        accepted += 1;
    }
    axum::Json(json!({
        "accepted": accepted,
        "duplicates": duplicates,
        "resolved": resolved,
    }))
    .into_response()
}
