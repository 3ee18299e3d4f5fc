//! Helpers shared by the integration tests that run the real binary.
#![allow(dead_code)] // each test crate uses a subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `foresight serve`, killed on drop even when an assertion fails.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// Bound gRPC address.
    pub grpc: String,
    /// Bound HTTP address.
    pub http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Sends `signal` (`-TERM`, `-INT`) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success(),
            "kill {signal} {pid}"
        );
    }

    /// Waits for the server to exit until `deadline`, failing with `why`
    /// past it; its exit status.
    pub fn exit_by(&mut self, deadline: Instant, why: &str) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{why}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `foresight serve` on free ports with extra arguments and
/// environment, and reads the bound addresses from its JSON "listening"
/// log line.
pub fn serve(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foresight");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut server = Server {
        child,
        grpc: String::new(),
        http: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
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
            server.grpc = v["fields"]["grpc_addr"].as_str().unwrap().to_string();
            server.http = v["fields"]["http_addr"].as_str().unwrap().to_string();
            // Keep draining stderr so the server never blocks on a full pipe.
            // With FORESIGHT_TEST_LOGS=DIR each server's log is kept as
            // DIR/server-PID.log, to diagnose a failure after the fact.
            let pid = server.child.id();
            std::thread::spawn(move || {
                let mut log = std::env::var("FORESIGHT_TEST_LOGS")
                    .ok()
                    .map(|d| std::fs::File::create(format!("{d}/server-{pid}.log")).unwrap());
                for line in lines.map_while(Result::ok) {
                    if let Some(f) = log.as_mut() {
                        use std::io::Write;
                        let _ = writeln!(f, "{line}");
                    }
                }
            });
            return server;
        }
    }
}

/// A blocking HTTP GET over std; returns the whole response, headers included.
pub fn http_get(host: &str, path: &str) -> String {
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

/// `line` of `/metrics` without its `,trigger="…"` label, for tests whose
/// ScaledObjects have one trigger each (its value is a hash of the
/// metadata).
pub fn without_trigger(line: &str) -> String {
    match line.find(",trigger=\"") {
        Some(at) => {
            let rest = &line[at + ",trigger=\"".len()..];
            let end = rest.find('"').map_or(rest.len(), |e| e + 1);
            format!("{}{}", &line[..at], &rest[end..])
        }
        None => line.to_string(),
    }
}

/// What one run of the binary printed and how it exited.
pub struct Run {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `foresight` with `args` to completion. Fails the test on a panic,
/// which must never reach a user whatever the input.
pub fn foresight(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(args)
        .output()
        .expect("cannot run the foresight binary");
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "panic: {}\n{}",
        run.stderr,
        run.stdout
    );
    run
}
