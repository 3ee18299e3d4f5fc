//! A client that is not ours: Python `grpcio` stubs generated from
//! `proto/externalscaler.proto` call the real `foresight serve` binary the way
//! KEDA does (tests/python/keda_client.py).

use std::process::Command;
use std::time::{Duration, Instant};

mod support;

const INSTALL: &str = "python3 -m pip install -r tests/python/requirements.txt";

#[test]
fn python_grpcio_client_calls_like_keda() {
    // Settings through the environment as well as flags.
    let mut server = support::serve(
        &["--evaluation-interval", "1s"],
        &[
            ("FORESIGHT_LOG_LEVEL", "info,foresight=debug"),
            ("FORESIGHT_SHUTDOWN_DELAY", "15s"),
        ],
    );
    let (grpc, http) = (server.grpc.clone(), server.http.clone());
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/keda_client.py");
    let client = || {
        Command::new("python3")
            .args([script, "--addr", &grpc, "--proto-dir", proto_dir])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 ({e}); install Python 3 and then: {INSTALL}")
            })
    };
    let out = client();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "Python gRPC packages missing ({stderr}); install them with: {INSTALL}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client output not JSON ({e}): {stdout}\n{stderr}"));
    assert!(
        out.status.success(),
        "client reported failures: {seen}\n{stderr}"
    );
    assert_eq!(seen["metricName"], "foresight-desired-replicas");
    assert_eq!(seen["targetSize"], 1);
    assert_eq!(seen["isActive"], true);
    assert_eq!(seen["streamIsActiveFirst"], true);
    assert_eq!(seen["invalidCode"], "INVALID_ARGUMENT");
    let msg = seen["invalidMessage"].as_str().unwrap();
    assert!(
        msg.contains(r#"missing required parameter "queueDepthTarget" in [triggerMetadata]"#),
        "{msg}"
    );
    assert!(
        msg.contains(
            r#"parameter "mode" value "x" must be one of [predictive reactive forecastOnly holding]"#
        ),
        "{msg}"
    );

    // Two foresight triggers on one ScaledObject are both served, each by
    // its own metadata, and explained with the higher count first.
    let pairs = seen["twoTriggers"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "{seen}");
    assert!(
        pairs.iter().all(
            |p| p[1].as_i64().unwrap() <= 2 && p[0].as_i64().unwrap() >= p[1].as_i64().unwrap()
        ),
        "{seen}"
    );
    let explained = support::http_get(&http, "/api/v1/scaledobjects/shop/orders-consumer/decision");
    let body = explained.split("\r\n\r\n").nth(1).unwrap_or_default();
    let d: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("explanation not JSON ({e}): {explained}"));
    assert_eq!(d["triggers"].as_array().map(Vec::len), Some(2), "{d}");

    // The server kept its own books on what KEDA asked.
    let metrics = support::http_get(&http, "/metrics");
    assert!(
        metrics.contains(
            r#"foresight_grpc_requests_total{rpc="GetMetricSpec",code="InvalidArgument"} 1"#
        ),
        "{metrics}"
    );

    // SIGTERM: for the shutdown delay the server is not ready but still
    // answers, so a KEDA reconnecting before Kubernetes has stopped routing
    // here (a fresh connection, as after the GOAWAY) is served; then a
    // clean exit.
    server.signal("-TERM");
    let sent = Instant::now();
    let readyz = loop {
        let r = support::http_get(&http, "/readyz");
        if r.contains(r#""shuttingDown":true"#) {
            break r;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "{r}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
    let again = client();
    assert!(
        again.status.success(),
        "a new connection during the shutdown delay was not served: {}\n{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited before the 15 s shutdown delay was over ({:?} after SIGTERM)",
        sent.elapsed()
    );
    let status = server.exit_by(
        sent + Duration::from_secs(35),
        "no exit within 35 s of SIGTERM",
    );
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn a_second_sigterm_cuts_the_shutdown_delay_short() {
    let mut server = support::serve(&["--shutdown-delay", "10m"], &[]);
    server.signal("-TERM");
    let sent = Instant::now();
    // Wait until the first one is taken (readiness off), then send another.
    while !support::http_get(&server.http, "/readyz").contains(r#""shuttingDown":true"#) {
        assert!(sent.elapsed() < Duration::from_secs(10), "never drained");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.signal("-TERM");
    let status = server.exit_by(
        Instant::now() + Duration::from_secs(20),
        "a second SIGTERM did not end the 10-minute delay",
    );
    assert!(status.success(), "exit after the second SIGTERM: {status}");
}

#[test]
fn a_client_that_never_finishes_its_request_does_not_hold_shutdown() {
    // Half an HTTP request and a TCP connection to the gRPC port that never
    // sends the HTTP/2 preface: graceful shutdown waited for both forever,
    // and only SIGKILL ended the process.
    use std::io::Write;
    let mut server = support::serve(&["--shutdown-delay", "0s"], &[]);
    let mut http = std::net::TcpStream::connect(&server.http).unwrap();
    http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let _grpc = std::net::TcpStream::connect(&server.grpc).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.signal("-TERM");
    // 5 s for the connections, then remediation and the runtime's own
    // shutdown (bounded at 5 s each); 15 s leaves room on a loaded machine.
    let status = server.exit_by(
        Instant::now() + Duration::from_secs(15),
        "still running 15 s after SIGTERM, held by connections that never finish",
    );
    assert!(status.success(), "exit after SIGTERM: {status}");
}
