//! A strict mock Kubernetes API server, the pattern of kube's own
//! `mock_tests.rs`: `tower_test::mock::pair` behind `kube::Client::new`.
//! Each test lists the calls it expects, in order, with their exact method,
//! path and query, patch content type and body; the server answers each
//! with a real Kubernetes object and panics on any other call, or on a call
//! after the last expected one.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;

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
        }
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

/// Serves `calls` in order, then fails on any further call. Await the
/// handle (it panics with the mismatch) after the code under test is done.
pub fn serve(mut handle: Handle, calls: Vec<Call>) -> tokio::task::JoinHandle<Vec<Value>> {
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
            let response = Response::builder()
                .status(call.status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&call.respond).expect("JSON")))
                .expect("response");
            send.send_response(response);
        }
        // Anything after the script is a call the test did not expect.
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!("unexpected call: {} {}", request.method(), request.uri());
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
