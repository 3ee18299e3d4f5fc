//! The operator commands through the real binary: `foresight incidents`
//! over an audit log, and the argument and credential errors of
//! `rollback`, `restart` and `serve --remediation enforce`.

mod support;

use std::process::{Command, Output};

use chrono::DateTime;
use foresight::remediation::{
    Action, ActionOutcome, AuditLog, AuditRecord, Cause, Diagnosis, Evidence, Incident, Target,
    Verdict,
};

fn foresight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(args)
        // No credentials from the machine running the tests.
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("FORESIGHT_AUDIT_LOG")
        .env_remove("FORESIGHT_REMEDIATION")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn rollback() -> Action {
    Action::Rollback {
        namespace: "shop".into(),
        deployment: "orders".into(),
        to_revision: Some(2),
    }
}

fn incident(id: &str, verdict: Verdict) -> Incident {
    Incident {
        id: id.into(),
        opened_at: DateTime::parse_from_rfc3339("2026-11-30T10:08:00Z")
            .unwrap()
            .to_utc(),
        target: Target {
            namespace: "shop".into(),
            scaled_object: "orders-consumer".into(),
            deployment: "orders".into(),
        },
        signal: None,
        diagnosis: Diagnosis {
            cause: Cause::BadDeploy,
            confidence: 0.95,
            evidence: vec![Evidence {
                at: None,
                source: "rollout".into(),
                detail: "revision 3 created 8 min before".into(),
            }],
            action: Some(rollback()),
        },
        verdict,
    }
}

#[test]
fn incidents_lists_and_shows_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::new(&path);
    let at = DateTime::parse_from_rfc3339("2026-11-30T10:08:00Z")
        .unwrap()
        .to_utc();
    let records = [
        AuditRecord::Opened {
            at,
            incident: Box::new(incident("i-1", Verdict::Execute { action: rollback() })),
        },
        AuditRecord::ActionStarted {
            at,
            incident_id: "i-1".into(),
            action: rollback(),
        },
        AuditRecord::ActionFinished {
            at,
            incident_id: "i-1".into(),
            action: rollback(),
            outcome: ActionOutcome::Done {
                message: "rolled back to revision 2".into(),
            },
        },
        AuditRecord::Opened {
            at,
            incident: Box::new(incident("i-2", Verdict::Execute { action: rollback() })),
        },
        // foresight stopped here, mid-action.
        AuditRecord::ActionStarted {
            at,
            incident_id: "i-2".into(),
            action: rollback(),
        },
    ];
    for r in &records {
        log.append(r).unwrap();
    }
    let p = path.to_str().unwrap();

    let out = foresight(&["incidents", "--audit-log", p]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("i-1  shop/orders  BadDeploy (0.95)  done"),
        "{stdout}"
    );
    assert!(lines[1].contains("interrupted"), "{stdout}");

    let out = foresight(&["incidents", "show", "i-2", "--audit-log", p]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("never finished (foresight stopped mid-action)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[rollout]  revision 3 created 8 min before"),
        "{stdout}"
    );

    let out = foresight(&["incidents", "list", "--json", "--audit-log", p]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["incident"]["id"], "i-1");
    assert_eq!(json[0]["actions"][0]["finished"][1]["result"], "done");

    let out = foresight(&["incidents", "show", "nope", "--audit-log", p]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no incident \"nope\""));

    // An empty or missing log is not an error.
    let missing = dir.path().join("none.jsonl");
    let out = foresight(&["incidents", "--audit-log", missing.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(text(&out).0.starts_with("no incidents in"));
}

#[test]
fn rollback_and_restart_need_a_target_and_credentials() {
    for cmd in ["rollback", "restart"] {
        let out = foresight(&[cmd, "orders"]);
        assert!(!out.status.success());
        assert!(
            text(&out).1.contains("expected NAMESPACE/DEPLOYMENT"),
            "{}",
            text(&out).1
        );
        let out = foresight(&[cmd, "shop/orders", "--dry-run"]);
        assert!(!out.status.success());
        assert!(
            text(&out).1.contains("cannot reach Kubernetes"),
            "{}",
            text(&out).1
        );
    }
}

#[test]
fn enforcing_needs_an_audit_log_and_the_flags_are_documented() {
    let out = foresight(&[
        "serve",
        "--remediation",
        "enforce",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("--remediation enforce needs an audit log"),
        "{}",
        text(&out).1
    );
    let help = text(&foresight(&["serve", "--help"])).0;
    for env in [
        "FORESIGHT_REMEDIATION=",
        "FORESIGHT_REMEDIATION_NAMESPACES=",
        "FORESIGHT_AUDIT_LOG=",
        "FORESIGHT_PAGE_FORMAT=",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from --help"
        );
    }
    // The page format is one of two, from the flag or the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["serve", "--grpc-addr", "127.0.0.1:0"])
        .env("FORESIGHT_PAGE_FORMAT", "teams")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out).1;
    assert!(
        err.contains("invalid value 'teams' for '--page-format <FORMAT>'")
            && err.contains("[possible values: slack, generic]"),
        "{err}"
    );
}

#[test]
fn enforce_keeps_serving_while_the_api_server_is_out_of_reach() {
    // Enforcing with an API server out of reach at start-up exited after
    // "listening": during a control-plane outage every restarted pod
    // crash-looped and KEDA lost its scaler, though scaling needs no API
    // server. It now serves, acts on nothing, and keeps trying to join.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, "https://127.0.0.1:1");
    let audit = dir.path().join("audit.jsonl");
    let mut server = support::serve(
        &[],
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("FORESIGHT_REMEDIATION", "enforce"),
            ("FORESIGHT_AUDIT_LOG", audit.to_str().unwrap()),
            ("POD_NAMESPACE", "keda"),
            ("POD_NAME", "foresight-0"),
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "foresight exited with the API server out of reach"
    );
    let health = support::http_get(&server.http, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[test]
fn enforce_still_refuses_to_start_when_the_api_server_forbids_the_lease() {
    // Retrying is for an API server out of reach; one that answers 403
    // (RBAC, or a Lease name the Role does not grant) will not change its
    // mind, and a pod that retried it quietly would look healthy while
    // remediation never acted.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let app = axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "leases.coordination.k8s.io \"foresight-remediation\" is forbidden",
                    "reason": "Forbidden", "code": 403
                })),
            )
        });
        axum::serve(listener, app).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, &format!("http://{addr}"));
    let audit = dir.path().join("audit.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("FORESIGHT_REMEDIATION", "enforce")
        .env("FORESIGHT_AUDIT_LOG", &audit)
        .env("POD_NAMESPACE", "keda")
        .env("POD_NAME", "foresight-0")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot set up the remediation leader lease")
            && stderr.contains("forbidden"),
        "{stderr}"
    );
}

/// A kubeconfig whose one cluster is `server`, with a token.
fn write_kubeconfig(path: &std::path::Path, server: &str) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
}
