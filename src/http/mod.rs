//! The HTTP port: liveness, readiness, foresight's own metrics, and decision
//! explanations as JSON.
//!
//! `/healthz` reports the process only, never its dependencies: a Prometheus
//! outage must not get every foresight pod restarted. `/readyz` is where
//! dependencies show.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::domain::ScaledObjectKey;
use crate::runtime::{ScalerCore, TriggerDecision};

/// Serves the HTTP endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve<C: ScalerCore>(
    core: Arc<C>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(core))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// As [`serve`], with `extra` routes merged in (remediation's
/// `POST /alerts`), so the HTTP layer needs no knowledge of them.
pub async fn serve_with<C: ScalerCore>(
    core: Arc<C>,
    extra: Router,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(core).merge(extra))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The routes, exposed for in-process tests.
pub fn router<C: ScalerCore>(core: Arc<C>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<C>))
        .route("/metrics", get(metrics::<C>))
        .route(
            "/api/v1/scaledobjects/{namespace}/{name}/decision",
            get(decision::<C>),
        )
        .with_state(core)
}

async fn readyz<C: ScalerCore>(State(core): State<Arc<C>>) -> Response {
    let r = core.readiness();
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(r)).into_response()
}

async fn metrics<C: ScalerCore>(State(core): State<Arc<C>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        core.metrics_text(),
    )
        .into_response()
}

async fn decision<C: ScalerCore>(
    State(core): State<Arc<C>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let key = ScaledObjectKey::new(namespace, name);
    let found = core.explain(&key);
    if let Some(first) = found.first() {
        return axum::Json(explained(first, &found)).into_response();
    }
    // Why there is none: a query the source rejects never gets one, which
    // is the caller's to fix, unlike a ScaledObject KEDA has not asked about.
    let (alone, one_of) = (format!("{key}: "), format!("{key} (trigger "));
    let why = if let Some(e) = core.readiness().invalid.iter().find_map(|i| {
        i.strip_prefix(&alone)
            .map(str::to_string)
            .or_else(|| i.starts_with(&one_of).then(|| i.clone()))
    }) {
        format!("its query was rejected, so it gets no decision until the metadata is fixed: {e}")
    } else if core.scaled_objects().contains(&key) {
        "it is registered and waiting for its first evaluation, or its source has no data yet"
            .to_string()
    } else {
        "KEDA has not asked about it on this replica (GetMetricSpec registers it)".to_string()
    };
    (
        StatusCode::NOT_FOUND,
        format!("no decision for ScaledObject {key}: {why}\n"),
    )
        .into_response()
}

/// The decision the HPA follows (the highest count of the ScaledObject's
/// foresight triggers), with `trigger` naming it and `triggers` listing
/// every trigger's count. The decision's own fields stay at the top level,
/// so a client that reads one decision reads this.
fn explained(first: &TriggerDecision, all: &[TriggerDecision]) -> serde_json::Value {
    let mut body = serde_json::to_value(first.decision.as_ref()).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("trigger".into(), first.trigger.clone().into());
        map.insert(
            "triggers".into(),
            all.iter()
                .map(|t| {
                    serde_json::json!({
                        "trigger": t.trigger,
                        "desiredReplicas": t.decision.desired_replicas,
                        "driver": t.decision.driver.map(|k| k.label()),
                    })
                })
                .collect(),
        );
    }
    body
}
