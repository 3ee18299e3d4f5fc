//! `foresight explain` against a running `foresight serve`.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use foresight::grpc::proto::ScaledObjectRef;
use foresight::grpc::proto::external_scaler_client::ExternalScalerClient;

fn explain(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .arg("explain")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn explains_a_live_decision() {
    let server = support::serve(&[], &[]);
    let (grpc, http) = (server.grpc.clone(), server.http.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = ExternalScalerClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let metadata: HashMap<String, String> = [
            ("connectionsQuery", "nyc_taxi"),
            ("connectionsTarget", "1000"),
            ("maxReplicaCount", "60"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // A second foresight trigger on the same ScaledObject, capped at
        // 2; KEDA asks about both at every poll.
        let mut capped = metadata.clone();
        capped.insert("maxReplicaCount".into(), "2".into());
        for m in [&metadata, &capped, &metadata] {
            c.get_metric_spec(ScaledObjectRef {
                name: "web".into(),
                namespace: "shop".into(),
                scaler_metadata: m.clone(),
            })
            .await
            .unwrap();
        }
    });
    let server = format!("http://{http}");
    // The first evaluation follows registration within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (code, stdout, stderr) = loop {
        let r = explain(&["--scaled-object", "shop/web", "--server", &server]);
        if (r.0 == Some(0) && r.1.contains(" of 2")) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("shop/web at "), "{stdout}");
    for want in [
        "desired replicas",
        "limited by:",
        "prediction",
        "connections",
        "remediation signals",
        // Both triggers are named, the one shown is the one the HPA follows.
        "of 2, the highest count, which the HPA follows; others: ",
        " wants 2 (connections)",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }

    let (code, stdout, _) =
        explain(&["--scaled-object", "shop/web", "--server", &server, "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["desiredReplicas"].as_u64().unwrap() >= 1);
    assert_eq!(v["triggers"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["trigger"], v["triggers"][0]["trigger"], "{v}");

    let (code, _, stderr) = explain(&["--scaled-object", "shop/unknown", "--server", &server]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no decision for ScaledObject shop/unknown")
            && stderr.contains("KEDA has not asked about it"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_and_unreachable_servers() {
    // Not NAMESPACE/NAME, or not Kubernetes names: `?`, `#` and `..`
    // changed the URL and printed a bare `error: `.
    for bad in ["web", "shop/x?y=1", "shop/x#y", "shop/..", "Shop/web"] {
        let (code, _, stderr) = explain(&["--scaled-object", bad]);
        assert_eq!(code, Some(1), "{bad}");
        assert!(stderr.contains("must be NAMESPACE/NAME"), "{bad}: {stderr}");
    }

    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, _, stderr) = explain(&[
        "--scaled-object",
        "shop/web",
        "--server",
        &format!("http://{free}"),
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot reach foresight at"), "{stderr}");
}
