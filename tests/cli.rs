//! The binary's handling of bad input: a clear message, a non-zero exit,
//! never a panic.

use std::process::{Command, Output};

fn foresight(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_foresight"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn serve(extra: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut args = vec![
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let out = foresight(&args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (out.status.code(), stderr)
}

#[test]
fn bad_metrics_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let (code, err) = serve(&["--metrics-file", missing.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "error: cannot read metrics file {}",
            missing.display()
        )),
        "{err}"
    );

    let negative = dir.path().join("neg.csv");
    std::fs::write(&negative, "series,timestamp,value\nq,0,1\nq,60,-2\n").unwrap();
    let (code, err) = serve(&["--metrics-file", negative.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("row 3: value -2 for series \"q\" is negative"),
        "{err}"
    );

    let nan = dir.path().join("nan.csv");
    std::fs::write(&nan, "series,timestamp,value\nq,0,NaN\nq,60,1\n").unwrap();
    let (code, err) = serve(&["--metrics-file", nan.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("row 2: value NaN for series \"q\" is not a finite number"),
        "{err}"
    );
}

#[test]
fn bad_durations_from_flags_and_environment() {
    let (code, err) = serve(&["--evaluation-interval", "5x"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(r#"unknown unit "x" (use s, m, h, d or w)"#),
        "{err}"
    );
    let (code, err) = serve(&[], &[("FORESIGHT_RETRAIN_INTERVAL", "soon")]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(r#"expected a whole number at "soon""#),
        "{err}"
    );
}

#[test]
fn conflicting_sources_and_bad_settings_files() {
    let (code, err) = serve(
        &[
            "--metrics-file",
            "m.csv",
            "--prometheus-url",
            "http://p:9090",
        ],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot be used with"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("foresight.toml");
    std::fs::write(&cfg, "grpc-adr = \"127.0.0.1:0\"\n").unwrap();
    let (code, err) = serve(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("invalid settings file") && err.contains("grpc-adr"),
        "{err}"
    );

    let (code, err) = serve(&["--config", "/nonexistent/foresight.toml"], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot read settings file /nonexistent/foresight.toml"),
        "{err}"
    );
}

#[test]
fn occupied_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = foresight(
        &["serve", "--grpc-addr", &addr, "--http-addr", "127.0.0.1:0"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains(&format!("cannot listen for gRPC on {addr}")),
        "{err}"
    );
}

#[test]
fn enforce_refuses_to_start_without_a_writable_audit_log() {
    // Nothing is done unrecorded, so a log that cannot be written would
    // stop every action at the first incident: serve refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit-is-a-directory");
    std::fs::create_dir(&log).unwrap();
    let (code, err) = serve(
        &[
            "--remediation",
            "enforce",
            "--audit-log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "error: --remediation enforce cannot write its audit log (--audit-log)\n  caused by: cannot open the audit log {}: Is a directory",
            log.display()
        )),
        "{err}"
    );
}
