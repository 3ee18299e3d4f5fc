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
        &[("FORESIGHT_LOG_LEVEL", "info,foresight=debug")],
    );
    let (grpc, http) = (server.grpc.clone(), server.http.clone());
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/keda_client.py");
    let out = Command::new("python3")
        .args([script, "--addr", &grpc, "--proto-dir", proto_dir])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install Python 3 and then: {INSTALL}")
        });
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

    // The server kept its own books on what KEDA asked.
    let metrics = support::http_get(&http, "/metrics");
    assert!(
        metrics.contains(
            r#"foresight_grpc_requests_total{rpc="GetMetricSpec",code="InvalidArgument"} 1"#
        ),
        "{metrics}"
    );

    // SIGTERM: a clean exit, promptly.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
}
