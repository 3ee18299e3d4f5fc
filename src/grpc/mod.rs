//! The KEDA external-scaler gRPC adapter.
//!
//! Thin by design: it validates the request's identity, calls the
//! [`ScalerCore`](crate::runtime::ScalerCore), converts domain types to proto types with free functions,
//! and maps errors to `Status` here and nowhere else. Proto types never leave
//! this module (except [`proto`], exported for clients and tests).

mod convert;
mod service;
mod tls;

pub use service::{ExternalScalerService, serve, serve_with_tls};
pub use tls::{GrpcTls, TlsError};

/// Generated code for `proto/externalscaler.proto`, for clients and tests.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("externalscaler");
}

/// Errors starting or running the gRPC server.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The tonic transport failed while serving.
    #[error("gRPC server on {addr} failed: {source}")]
    Serve {
        /// Listen address.
        addr: String,
        /// Transport error.
        source: tonic::transport::Error,
    },
}
