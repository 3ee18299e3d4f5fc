//! A strict mock Kubernetes API server, the pattern of kube's own
//! `mock_tests.rs`: `tower_test::mock::pair` behind `kube::Client::new`.
//! Each test lists the calls it expects, in order, with their exact method,
//! path and query, patch content type and body; the server answers each
//! with a real Kubernetes object and panics on any other call, or on a call
//! after the last expected one (within 200 ms with [`serve`], or until the
//! test says it is done with [`serve_until`]).

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How a request body is checked.
#[derive(Debug, Clone)]
pub enum BodyCheck {
    /// No body (GET, LIST).
    Empty,
    /// Exactly this JSON.
    Exact(Value),
    /// Every field of this JSON object appears with the same value
    /// (for bodies with generated names and times, such as Events).
    Contains(Value),
}

/// Builds an answer when the call is served (for objects stamped with the
/// time, such as a Lease's `renewTime`).
#[derive(Clone)]
pub struct Responder(pub Arc<dyn Fn() -> Value + Send + Sync>);

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder(..)")
    }
}

/// One expected call and its answer.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: http::Method,
    /// Path and query, exactly as kube sends them.
    pub uri: String,
    /// `Content-Type` for writes.
    pub content_type: Option<&'static str>,
    pub body: BodyCheck,
    pub status: StatusCode,
    pub respond: Value,
    /// Overrides `respond`: the answer is built when the call arrives.
    pub respond_with: Option<Responder>,
    /// The answer waits until this is cancelled (the client waits too).
    pub hold_until: Option<CancellationToken>,
    /// ... and then this long.
    pub delay: Duration,
}

impl Call {
    pub fn get(uri: &str, respond: Value) -> Self {
        Self {
            method: http::Method::GET,
            uri: uri.into(),
            content_type: None,
            body: BodyCheck::Empty,
            status: StatusCode::OK,
            respond,
            respond_with: None,
            hold_until: None,
            delay: Duration::ZERO,
        }
    }

    pub fn patch(uri: &str, content_type: &'static str, body: Value, respond: Value) -> Self {
        Self {
            method: http::Method::PATCH,
            uri: uri.into(),
            content_type: Some(content_type),
            body: BodyCheck::Exact(body),
            status: StatusCode::OK,
            respond,
            respond_with: None,
            hold_until: None,
            delay: Duration::ZERO,
        }
    }

    pub fn post_containing(uri: &str, body: Value, respond: Value) -> Self {
        Self {
            method: http::Method::POST,
            uri: uri.into(),
            content_type: Some("application/json"),
            body: BodyCheck::Contains(body),
            status: StatusCode::CREATED,
            respond,
            respond_with: None,
            hold_until: None,
            delay: Duration::ZERO,
        }
    }

    /// A POST (create) whose body is exactly `body`.
    pub fn post(uri: &str, body: Value, respond: Value) -> Self {
        Self {
            body: BodyCheck::Exact(body),
            ..Self::post_containing(uri, Value::Null, respond)
        }
    }

    /// A PATCH whose body contains `body` (for bodies with times in them).
    pub fn patch_containing(
        uri: &str,
        content_type: &'static str,
        body: Value,
        respond: Value,
    ) -> Self {
        Self {
            body: BodyCheck::Contains(body),
            ..Self::patch(uri, content_type, Value::Null, respond)
        }
    }

    /// Answers with this HTTP status (and `respond` as its body, e.g. a
    /// [`status_error`]).
    pub fn status(self, status: StatusCode) -> Self {
        Self { status, ..self }
    }

    /// Builds the answer when the call arrives.
    pub fn respond_with(self, f: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        Self {
            respond_with: Some(Responder(Arc::new(f))),
            ..self
        }
    }

    /// Holds the answer until `token` is cancelled.
    pub fn hold_until(self, token: CancellationToken) -> Self {
        Self {
            hold_until: Some(token),
            ..self
        }
    }

    /// Holds the answer this long (after any `hold_until`).
    pub fn delay(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
}

/// A client wired to the mock, and the handle the mock serves on.
pub fn pair() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Reads a fixture from tests/fixtures/kube.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kube")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        _ => actual == expected,
    }
}

/// Serves `calls` in order, then fails on any further call within 200 ms.
/// Await the handle (it panics with the mismatch) after the code under test
/// is done.
pub fn serve(handle: Handle, calls: Vec<Call>) -> tokio::task::JoinHandle<Vec<Value>> {
    serve_script(handle, calls, None)
}

/// Serves `calls` in order, then fails on any further call until `done` is
/// cancelled: for clients that keep running while the test goes on (a
/// lease manager, an engine that must stay silent). Cancel `done`, then
/// await the handle.
pub fn serve_until(
    handle: Handle,
    calls: Vec<Call>,
    done: CancellationToken,
) -> tokio::task::JoinHandle<Vec<Value>> {
    serve_script(handle, calls, Some(done))
}

fn serve_script(
    mut handle: Handle,
    calls: Vec<Call>,
    // `None`: 200 ms after the last scripted call.
    done: Option<CancellationToken>,
) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
                .await
                .unwrap_or_else(|_| {
                    panic!("call {i} never came: expected {} {}", call.method, call.uri)
                });
            let (request, send) = next.unwrap_or_else(|| {
                panic!("client gone before call {i}: {} {}", call.method, call.uri)
            });
            let uri = request
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            assert_eq!(
                (request.method().clone(), uri.as_str()),
                (call.method.clone(), call.uri.as_str()),
                "call {i}: unexpected request"
            );
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let Some(ct) = call.content_type {
                assert_eq!(
                    content_type.as_deref(),
                    Some(ct),
                    "call {i} ({}): content type",
                    call.uri
                );
            }
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .expect("request body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("request body is JSON")
            };
            match &call.body {
                BodyCheck::Empty => assert_eq!(body, Value::Null, "call {i} ({}): body", call.uri),
                BodyCheck::Exact(e) => assert_eq!(&body, e, "call {i} ({}): body", call.uri),
                BodyCheck::Contains(e) => assert!(
                    contains(&body, e),
                    "call {i} ({}): body {body:#} lacks {e:#}",
                    call.uri
                ),
            }
            bodies.push(body);
            if let Some(token) = &call.hold_until {
                tokio::time::timeout(Duration::from_secs(30), token.cancelled())
                    .await
                    .unwrap_or_else(|_| panic!("call {i} ({}) held for 30 s", call.uri));
            }
            tokio::time::sleep(call.delay).await;
            let respond = match &call.respond_with {
                Some(f) => (f.0)(),
                None => call.respond.clone(),
            };
            let response = Response::builder()
                .status(call.status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&respond).expect("JSON")))
                .expect("response");
            send.send_response(response);
        }
        let done = done.unwrap_or_else(|| {
            let after = CancellationToken::new();
            let cancel = after.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                cancel.cancel();
            });
            after
        });
        // Anything after the script is a call the test did not expect.
        tokio::select! {
            () = done.cancelled() => {}
            next = handle.next_request() => {
                if let Some((request, _)) = next {
                    panic!("unexpected call: {} {}", request.method(), request.uri());
                }
            }
        }
        bodies
    })
}

/// A Kubernetes `Status` error answer.
pub fn status_error(code: u16, reason: &str, message: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}
