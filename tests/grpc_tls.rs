//! gRPC TLS end to end: the real binary serves with certificates made at
//! test time, and a client that is not ours (Python `grpcio`, configured the
//! way KEDA's `caCert`/`tlsClientCert`/`tlsClientKey` configure KEDA's)
//! calls it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

mod support;

const INSTALL: &str =
    "tests/install-deps.sh (or python3 -m pip install -r tests/python/requirements.txt)";

/// A CA that can sign leaf certificates, written as PEM into a directory.
struct Ca {
    /// Signs leaves.
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's PEM file.
    cert: PathBuf,
}

/// A leaf certificate and its key, as PEM files.
struct Leaf {
    /// Certificate PEM file.
    cert: PathBuf,
    /// Private key PEM file.
    key: PathBuf,
}

fn new_ca(dir: &Path, name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}-ca.crt"));
    std::fs::write(&path, cert.pem()).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        cert: path,
    }
}

fn new_leaf(
    dir: &Path,
    ca: &Ca,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Leaf {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let leaf = Leaf {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&leaf.cert, cert.pem()).unwrap();
    std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
    leaf
}

/// Everything one test run needs: a CA, the server's certificate for
/// 127.0.0.1/localhost, a client certificate from the same CA, and one from
/// a CA the server does not trust.
struct Pki {
    /// Keeps the files alive.
    _dir: tempfile::TempDir,
    /// The trusted CA.
    ca: Ca,
    /// The server's identity.
    server: Leaf,
    /// A client identity the trusted CA signed.
    client: Leaf,
    /// A CA the server's certificate does not chain to.
    rogue_ca: PathBuf,
    /// A client identity from that CA.
    rogue_client: Leaf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "foresight");
    let server = new_leaf(
        dir.path(),
        &ca,
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = new_leaf(
        dir.path(),
        &ca,
        "keda-operator",
        &["keda-operator"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let rogue = new_ca(dir.path(), "rogue");
    let rogue_client = new_leaf(
        dir.path(),
        &rogue,
        "rogue-client",
        &["rogue-client"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki {
        _dir: dir,
        ca,
        server,
        client,
        rogue_ca: rogue.cert.clone(),
        rogue_client,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs tests/python/keda_client.py against `addr` with extra arguments and
/// returns its exit code and the JSON it printed.
fn python_client(addr: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/keda_client.py");
    let out: Output = Command::new("python3")
        .args([script, "--addr", addr, "--proto-dir", proto_dir])
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); install Python 3, then run {INSTALL}")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "Python gRPC packages missing ({stderr}); install them with {INSTALL}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client output not JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code(), seen)
}

/// The client got through and saw KEDA's contract answered.
fn assert_served(addr: &str, extra: &[&str]) {
    let (code, seen) = python_client(addr, extra);
    assert_eq!(code, Some(0), "call with {extra:?} failed: {seen}");
    assert_eq!(seen["metricName"], "foresight-desired-replicas", "{seen}");
    assert_eq!(seen["isActive"], true, "{seen}");
}

/// The first call was refused at the connection (exit 4, see the script).
fn assert_refused(addr: &str, extra: &[&str]) -> String {
    let (code, seen) = python_client(addr, &[extra, &["--ready-timeout", "2"]].concat());
    assert_eq!(code, Some(4), "call with {extra:?} was not refused: {seen}");
    assert_eq!(seen["connectError"], "UNAVAILABLE", "{seen}");
    assert!(seen.get("metricName").is_none(), "{seen}");
    seen["connectDetails"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn tls_serves_verified_clients_and_refuses_plaintext() {
    let pki = pki();
    // Flags for the identity.
    let server = support::serve(
        &[
            "--evaluation-interval",
            "1s",
            "--tls-cert",
            s(&pki.server.cert),
            "--tls-key",
            s(&pki.server.key),
        ],
        &[],
    );
    // As KEDA with `caCert` only.
    assert_served(&server.grpc, &["--ca-cert", s(&pki.ca.cert)]);
    // A plaintext client (KEDA without TLS) gets nothing.
    assert_refused(&server.grpc, &[]);
    // A client that trusts another CA refuses the server.
    let details = assert_refused(&server.grpc, &["--ca-cert", s(&pki.rogue_ca)]);
    assert!(!details.is_empty());
    // Without a client CA, a client certificate is accepted but not needed.
    assert_served(
        &server.grpc,
        &[
            "--ca-cert",
            s(&pki.ca.cert),
            "--client-cert",
            s(&pki.client.cert),
            "--client-key",
            s(&pki.client.key),
        ],
    );
}

#[test]
fn client_ca_requires_a_client_certificate_it_signed() {
    let pki = pki();
    // The environment, as the Helm chart sets it.
    let server = support::serve(
        &["--evaluation-interval", "1s"],
        &[
            ("FORESIGHT_TLS_CERT", s(&pki.server.cert)),
            ("FORESIGHT_TLS_KEY", s(&pki.server.key)),
            ("FORESIGHT_TLS_CLIENT_CA", s(&pki.ca.cert)),
        ],
    );
    // KEDA with caCert but no tlsClientCert/tlsClientKey: refused.
    assert_refused(&server.grpc, &["--ca-cert", s(&pki.ca.cert)]);
    // A certificate from a CA the server does not trust: refused.
    assert_refused(
        &server.grpc,
        &[
            "--ca-cert",
            s(&pki.ca.cert),
            "--client-cert",
            s(&pki.rogue_client.cert),
            "--client-key",
            s(&pki.rogue_client.key),
        ],
    );
    // Plaintext: refused.
    assert_refused(&server.grpc, &[]);
    // KEDA with caCert, tlsClientCert and tlsClientKey: served.
    assert_served(
        &server.grpc,
        &[
            "--ca-cert",
            s(&pki.ca.cert),
            "--client-cert",
            s(&pki.client.cert),
            "--client-key",
            s(&pki.client.key),
        ],
    );
}

/// Runs `foresight serve` expecting it to refuse to start; returns stderr.
fn refused_start(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    stderr
}

#[test]
fn unusable_tls_files_stop_start_up_with_the_fix() {
    let pki = pki();
    let (cert, key) = (s(&pki.server.cert), s(&pki.server.key));

    let err = refused_start(&["--tls-cert", cert]);
    assert!(
        err.contains("--tls-cert was set without --tls-key"),
        "{err}"
    );
    let err = refused_start(&["--tls-key", key]);
    assert!(
        err.contains("--tls-key was set without --tls-cert"),
        "{err}"
    );
    let err = refused_start(&["--tls-client-ca", s(&pki.ca.cert)]);
    assert!(err.contains("set --tls-cert and --tls-key"), "{err}");

    let err = refused_start(&["--tls-cert", "/nonexistent/tls.crt", "--tls-key", key]);
    assert!(
        err.contains("cannot read the TLS certificate /nonexistent/tls.crt"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let err = refused_start(&["--tls-cert", s(&garbage), "--tls-key", key]);
    assert!(
        err.contains("is not usable PEM") && err.contains("CERTIFICATE"),
        "{err}"
    );
    // A certificate where the key should be.
    let err = refused_start(&["--tls-cert", cert, "--tls-key", cert]);
    assert!(
        err.contains("TLS key") && err.contains("PRIVATE KEY"),
        "{err}"
    );
    // Another certificate's key.
    let err = refused_start(&["--tls-cert", cert, "--tls-key", s(&pki.client.key)]);
    assert!(err.contains("cannot serve TLS with certificate"), "{err}");
    // A client CA that holds no certificate.
    let err = refused_start(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--tls-client-ca",
        s(&garbage),
    ]);
    assert!(err.contains("client CA"), "{err}");
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    // cert-manager renews the Secret in place and the kubelet swaps the
    // mounted files; the server read them once at start-up and served the
    // old certificate past its expiry, when every KEDA handshake failed.
    let pki = pki();
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("tls.crt"), live.path().join("tls.key"));
    std::fs::copy(&pki.server.cert, &cert).unwrap();
    std::fs::copy(&pki.server.key, &key).unwrap();
    let server = support::serve(
        &[
            "--evaluation-interval",
            "1s",
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
        ],
        &[],
    );
    assert_served(&server.grpc, &["--ca-cert", s(&pki.ca.cert)]);
    // The renewal, from another CA so a client can tell which is served:
    // written beside the files and renamed over them, as the kubelet's
    // atomic writer does.
    let renewed_dir = tempfile::tempdir().unwrap();
    let ca2 = new_ca(renewed_dir.path(), "renewed");
    let renewed = new_leaf(
        renewed_dir.path(),
        &ca2,
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    for (from, to) in [(&renewed.key, &key), (&renewed.cert, &cert)] {
        let tmp = live.path().join("incoming");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    // Checked at most once a second, at a handshake.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let _ = python_client(
        &server.grpc,
        &["--ca-cert", s(&ca2.cert), "--ready-timeout", "2"],
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_served(&server.grpc, &["--ca-cert", s(&ca2.cert)]);
    assert_refused(&server.grpc, &["--ca-cert", s(&pki.ca.cert)]);
    // A renewal caught half written (a certificate without its key) keeps
    // the previous pair served.
    let third = new_leaf(
        renewed_dir.path(),
        &ca2,
        "third",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::copy(&third.cert, &cert).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let _ = python_client(
        &server.grpc,
        &["--ca-cert", s(&ca2.cert), "--ready-timeout", "2"],
    );
    assert_served(&server.grpc, &["--ca-cert", s(&ca2.cert)]);
}
