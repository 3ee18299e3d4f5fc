//! Server-side TLS for the gRPC port, from PEM files.
//!
//! KEDA's external scaler dials with `caCert` (server verification) and
//! optionally `tlsClientCert`/`tlsClientKey` (client certificates). The
//! files are read and checked here, once, at start-up, so that a wrong path,
//! a file that is not PEM, or a key that belongs to another certificate
//! stops `foresight serve` with a message naming the file, instead of
//! surfacing later as handshake failures that only KEDA sees.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

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

/// A validated TLS configuration for the gRPC server.
#[derive(Debug, Clone)]
pub struct GrpcTls {
    /// What tonic builds its acceptor from.
    config: ServerTlsConfig,
    /// Whether client certificates are required.
    mutual: bool,
}

impl GrpcTls {
    /// Reads and validates the PEM files. Certificates are required from
    /// clients when `files.client_ca` is set.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        // tonic builds its rustls config with the process-wide provider. Make
        // it aws-lc (already compiled in for reqwest), so that a dependency
        // that also enables rustls' `ring` feature cannot make rustls panic
        // for want of a single default. An Err means one is already installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

        let cert_pem = read(&files.cert, "TLS certificate")?;
        let key_pem = read(&files.key, "TLS key")?;
        let chain = certificates(&cert_pem, &files.cert, "TLS certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            what: "TLS key",
            path: files.key.clone(),
            message: e.to_string(),
            expected: "a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block",
        })?;
        rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| TlsError::Identity {
                cert: files.cert.clone(),
                key: files.key.clone(),
                message: match e {
                    rustls::Error::InconsistentKeys(_) => "the key does not belong to the \
                        certificate (the file's first certificate must be the server's own)"
                        .to_string(),
                    other => other.to_string(),
                },
            })?;
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert_pem, key_pem))
            .timeout(HANDSHAKE_TIMEOUT);

        if let Some(ca_path) = &files.client_ca {
            let ca_pem = read(ca_path, "client CA")?;
            let mut roots = RootCertStore::empty();
            for ca in certificates(&ca_pem, ca_path, "client CA")? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: ca_path.clone(),
                    message: e.to_string(),
                })?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: ca_path.clone(),
                    message: e.to_string(),
                })?;
            // tonic's default: a client without a certificate is refused.
            config = config.client_ca_root(Certificate::from_pem(ca_pem));
        }
        Ok(Self {
            config,
            mutual: files.client_ca.is_some(),
        })
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.mutual
    }

    /// The configuration tonic's server takes.
    pub(super) fn into_config(self) -> ServerTlsConfig {
        self.config
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
