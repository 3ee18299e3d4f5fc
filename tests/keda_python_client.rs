//! A client that is not ours: Python `grpcio` stubs generated from
//! `proto/externalscaler.proto` call the real `foresight serve` binary the way
//! KEDA does (tests/python/keda_client.py).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "python3 -m pip install -r tests/python/requirements.txt";

/// Kills the server even when an assertion fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `foresight serve` on free ports, with extra environment, and
/// reads the bound addresses from its JSON "listening" log line.
fn start_server_with(env: &[(&str, &str)]) -> (Guard, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--evaluation-interval",
            "1s",
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foresight");
    let stderr = child.stderr.take().unwrap();
    let guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = BufReader::new(stderr).lines();
    loop {
        assert!(Instant::now() < deadline, "server never logged 'listening'");
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "listening" {
            let grpc = v["fields"]["grpc_addr"].as_str().unwrap().to_string();
            let http = v["fields"]["http_addr"].as_str().unwrap().to_string();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (guard, grpc, http);
        }
    }
}

#[test]
fn python_grpcio_client_calls_like_keda() {
    // Settings through the environment as well as flags.
    let (mut server, grpc, http) =
        start_server_with(&[("FORESIGHT_LOG_LEVEL", "info,foresight=debug")]);
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
            r#"parameter "mode" value "x" must be one of [predictive reactive forecastOnly]"#
        ),
        "{msg}"
    );

    // The server kept its own books on what KEDA asked.
    let metrics = http_get(&http, "/metrics");
    assert!(
        metrics.contains(
            r#"foresight_grpc_requests_total{rpc="GetMetricSpec",code="InvalidArgument"} 1"#
        ),
        "{metrics}"
    );

    // SIGTERM: a clean exit, promptly.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
}

/// A minimal blocking HTTP GET over std, to keep this test free of async.
fn http_get(host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}
