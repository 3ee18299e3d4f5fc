//! Server-side TLS for the gRPC port, from PEM files.
//!
//! KEDA's external scaler dials with `caCert` (server verification) and
//! optionally `tlsClientCert`/`tlsClientKey` (client certificates). The
//! files are read and checked here at start-up, so that a wrong path, a file
//! that is not PEM, or a key that belongs to another certificate stops
//! `foresight serve` with a message naming the file, instead of surfacing
//! later as handshake failures that only KEDA sees.
//!
//! The certificate and key are read again when their files change (checked
//! at most once a second, at a handshake): cert-manager renews a Secret in
//! place, the kubelet swaps the mounted files, and a server that kept the
//! certificate it started with served it past its expiry, when every
//! KEDA handshake failed on every replica.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;

/// A client that opens a connection and never finishes the handshake must
/// not hold a task forever; KEDA's own dial timeout is shorter than this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the {what} {path}: {error}")]
    Read {
        /// Which file: "TLS certificate", "TLS key" or "client CA".
        what: &'static str,
        /// The path that was given.
        path: PathBuf,
        /// The I/O failure (in the message, not chained, so it prints once).
        error: std::io::Error,
    },
    /// A file is not PEM, or holds no block of the expected kind.
    #[error("the {what} {path} is not usable PEM ({message}); expected {expected}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// The path that was given.
        path: PathBuf,
        /// The PEM parser's explanation.
        message: String,
        /// The PEM blocks the file should hold.
        expected: &'static str,
    },
    /// rustls refused the certificate and key together, typically because
    /// the key belongs to a different certificate.
    #[error("cannot serve TLS with certificate {cert} and key {key}: {message}")]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' explanation.
        message: String,
    },
    /// The client CA bundle cannot verify client certificates.
    #[error("cannot verify client certificates with the client CA {path}: {message}")]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// rustls' explanation.
        message: String,
    },
}

/// How often, at most, a handshake looks at the files for a new
/// certificate.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A validated TLS configuration for the gRPC server.
#[derive(Debug, Clone)]
pub struct GrpcTls {
    /// The rustls configuration the acceptor uses; its certificate comes
    /// from a resolver that follows the files.
    config: Arc<rustls::ServerConfig>,
    /// Whether client certificates are required.
    mutual: bool,
}

/// The server's certificate and key, read again when their files change.
#[derive(Debug)]
struct Reloading {
    /// The certificate chain file.
    cert: PathBuf,
    /// The key file.
    key: PathBuf,
    /// Loads the key.
    provider: Arc<CryptoProvider>,
    /// What is served, and what the files looked like when last checked.
    state: Mutex<Served>,
}

/// The identity being served.
#[derive(Debug)]
struct Served {
    /// The certificate and key.
    key: Arc<CertifiedKey>,
    /// The files' modification times and sizes when last read (or tried):
    /// a change means a renewal to read.
    stamp: Option<Stamp>,
    /// When the files were last looked at.
    checked: Instant,
}

/// Modification time and size of the certificate and the key files.
type Stamp = [(SystemTime, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    // Through symlinks, as a mounted Secret's files are.
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(cert)?, one(key)?])
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.checked.elapsed() >= RELOAD_CHECK {
            s.checked = Instant::now();
            let now = stamp(&self.cert, &self.key);
            if now.is_some() && now != s.stamp {
                // Recorded even when the read fails, so a pair caught half
                // renewed (the certificate written, the key not yet) warns
                // once and is read again when the key changes too.
                s.stamp = now;
                match certified_key(&self.cert, &self.key, &self.provider) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate changed on disk; serving the new one");
                        s.key = Arc::new(k);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate changed on disk but cannot be used; still serving the previous one");
                    }
                }
            }
        }
        Some(Arc::clone(&s.key))
    }
}

/// Reads and checks the certificate chain and key as a pair.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(cert, "TLS certificate")?;
    let key_pem = read(key, "TLS key")?;
    let chain = certificates(&cert_pem, cert, "TLS certificate")?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        what: "TLS key",
        path: key.to_path_buf(),
        message: e.to_string(),
        expected: "a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block",
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Identity {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message: match e {
            rustls::Error::InconsistentKeys(_) => "the key does not belong to the \
                certificate (the file's first certificate must be the server's own)"
                .to_string(),
            other => other.to_string(),
        },
    })
}

impl GrpcTls {
    /// Reads and validates the PEM files. Certificates are required from
    /// clients when `files.client_ca` is set.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        // Make the process-wide provider aws-lc (already compiled in for
        // reqwest), so that a dependency that also enables rustls' `ring`
        // feature cannot make rustls panic for want of a single default.
        // An Err means one is already installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let identity = Reloading {
            cert: files.cert.clone(),
            key: files.key.clone(),
            state: Mutex::new(Served {
                key: Arc::new(certified_key(&files.cert, &files.key, &provider)?),
                stamp: stamp(&files.cert, &files.key),
                checked: Instant::now(),
            }),
            provider: Arc::clone(&provider),
        };
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Identity {
                cert: files.cert.clone(),
                key: files.key.clone(),
                message: e.to_string(),
            })?;
        let builder = match &files.client_ca {
            Some(ca_path) => {
                let ca_pem = read(ca_path, "client CA")?;
                let mut roots = RootCertStore::empty();
                for ca in certificates(&ca_pem, ca_path, "client CA")? {
                    roots.add(ca).map_err(|e| TlsError::ClientCa {
                        path: ca_path.clone(),
                        message: e.to_string(),
                    })?;
                }
                // A client without a certificate is refused.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::ClientCa {
                            path: ca_path.clone(),
                            message: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(identity));
        // gRPC is HTTP/2.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            mutual: files.client_ca.is_some(),
        })
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.mutual
    }

    /// The acceptor for incoming connections.
    pub(super) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// How long a client may take to finish its handshake.
    pub(super) fn handshake_timeout(&self) -> Duration {
        HANDSHAKE_TIMEOUT
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_path_buf(),
        error,
    })
}

fn certificates(
    pem: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |message: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        message,
        expected: "one or more CERTIFICATE blocks",
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no certificate found".to_string()));
    }
    Ok(certs)
}
