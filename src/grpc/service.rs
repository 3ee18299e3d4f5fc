use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::GrpcError;
use super::convert::{
    check_metric_name, code_label, key_of, metric_spec_response, metrics_response, status_of,
};
use super::proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use super::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, ScaledObjectRef,
};
use super::tls::GrpcTls;
use crate::runtime::{CoreError, ScalerCore};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The `ExternalScaler` service over any [`ScalerCore`].
pub struct ExternalScalerService<C> {
    /// The core that owns state and decisions.
    core: Arc<C>,
    /// Ends open streams on shutdown; otherwise graceful shutdown would wait
    /// forever for KEDA to hang up.
    shutdown: CancellationToken,
    /// InvalidArgument messages warned about, and when: the same broken
    /// ScaledObject is called every polling interval.
    warned: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

impl<C: ScalerCore> ExternalScalerService<C> {
    /// Wraps a core.
    pub fn new(core: Arc<C>, shutdown: CancellationToken) -> Self {
        Self {
            core,
            shutdown,
            warned: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Whether `message` was not warned about in the last 10 minutes
    /// (and records it as warned now).
    fn first_in_a_while(&self, message: &str) -> bool {
        let now = Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        warned.retain(|_, at| now.duration_since(*at) < std::time::Duration::from_secs(600));
        if warned.contains_key(message) {
            return false;
        }
        warned.insert(message.to_string(), now);
        true
    }

    fn finish<T>(
        &self,
        rpc: &'static str,
        started: Instant,
        r: Result<T, CoreError>,
    ) -> Result<Response<T>, Status> {
        let r = r.map_err(|e| status_of(&e));
        let code = match &r {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.core
            .telemetry()
            .observe_rpc(rpc, code_label(code), started.elapsed());
        if let Err(s) = &r {
            // A caller's mistake (bad metadata, a rejected query) is worth a
            // warning an SRE sees, once every 10 minutes per message: KEDA
            // repeats the call every polling interval.
            if s.code() == tonic::Code::InvalidArgument && self.first_in_a_while(s.message()) {
                tracing::warn!(rpc, message = s.message(), "rpc refused: InvalidArgument");
            } else {
                tracing::debug!(
                    rpc,
                    code = code_label(s.code()),
                    message = s.message(),
                    "rpc failed"
                );
            }
        }
        r.map(Response::new)
    }
}

/// Serves the gRPC API in plaintext on `listener` until `shutdown` is
/// cancelled.
pub async fn serve<C: ScalerCore>(
    core: Arc<C>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GrpcError> {
    serve_with_tls(core, listener, None, shutdown).await
}

/// Serves the gRPC API on `listener` until `shutdown` is cancelled, over TLS
/// when `tls` is given (plaintext connections are then refused).
pub async fn serve_with_tls<C: ScalerCore>(
    core: Arc<C>,
    listener: TcpListener,
    tls: Option<GrpcTls>,
    shutdown: CancellationToken,
) -> Result<(), GrpcError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let service = ExternalScalerServer::new(ExternalScalerService::new(core, shutdown.clone()));
    // HTTP/2 pings find a KEDA that went away without closing its
    // connection (a killed pod, a dropped node), so its StreamIsActive
    // task does not wait for TCP to give up.
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(service);
    let Some(tls) = tls else {
        return router
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.cancelled_owned(),
            )
            .await
            .map_err(|source| GrpcError::Serve { addr, source });
    };
    // Our own acceptor rather than tonic's, whose certificate is fixed at
    // start-up: ours follows the files (see `tls`). Each handshake runs on
    // its own task, bounded in time, so a slow client holds up no other.
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tls.acceptor();
    let timeout = tls.handshake_timeout();
    let accepting = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = accepting.cancelled() => return,
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "gRPC accept failed");
                    continue;
                }
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "gRPC TLS handshake failed"),
                    Err(_) => tracing::debug!("gRPC TLS handshake timed out"),
                }
            });
        }
    });
    router
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown.cancelled_owned())
        .await
        .map_err(|source| GrpcError::Serve { addr, source })
}

#[tonic::async_trait]
impl<C: ScalerCore> ExternalScaler for ExternalScalerService<C> {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .core
            .decision(&key_of(&r), &r.scaler_metadata)
            .await
            .map(|d| IsActiveResponse { result: d.active });
        self.finish("IsActive", started, result)
    }

    type StreamIsActiveStream = ResponseStream<IsActiveResponse>;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .core
            .watch_decisions(&key_of(&r), &r.scaler_metadata)
            .map(|mut decisions| {
                let (tx, rx) = mpsc::channel(4);
                let shutdown = self.shutdown.clone();
                tokio::spawn(async move {
                    let mut last = None;
                    loop {
                        let active = decisions.borrow_and_update().as_ref().map(|d| d.active);
                        if let Some(active) = active.filter(|a| last != Some(*a)) {
                            if tx
                                .send(Ok(IsActiveResponse { result: active }))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            last = Some(active);
                        }
                        tokio::select! {
                            changed = decisions.changed() => if changed.is_err() { return },
                            () = shutdown.cancelled() => return,
                            () = tx.closed() => return,
                        }
                    }
                });
                Box::pin(ReceiverStream::new(rx)) as Self::StreamIsActiveStream
            });
        self.finish("StreamIsActive", started, result)
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .core
            .metric_target(&key_of(&r), &r.scaler_metadata)
            .map(|t| metric_spec_response(&t));
        self.finish("GetMetricSpec", started, result)
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let result = async {
            let name = check_metric_name(&req.metric_name)?;
            let (key, metadata) = match &req.scaled_object_ref {
                Some(r) => (key_of(r), &r.scaler_metadata),
                None => return Err(CoreError::MissingIdentity),
            };
            let d = self.core.decision(&key, metadata).await?;
            Ok(metrics_response(name, &d))
        }
        .await;
        self.finish("GetMetrics", started, result)
    }

    type StreamMetricSpecStream = ResponseStream<GetMetricSpecResponse>;

    async fn stream_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self
            .core
            .watch_target(&key_of(&r), &r.scaler_metadata)
            .map(|mut targets| {
                let (tx, rx) = mpsc::channel(4);
                let shutdown = self.shutdown.clone();
                tokio::spawn(async move {
                    loop {
                        let spec = metric_spec_response(&targets.borrow_and_update());
                        if tx.send(Ok(spec)).await.is_err() {
                            return;
                        }
                        tokio::select! {
                            changed = targets.changed() => if changed.is_err() { return },
                            () = shutdown.cancelled() => return,
                            () = tx.closed() => return,
                        }
                    }
                });
                Box::pin(ReceiverStream::new(rx)) as Self::StreamMetricSpecStream
            });
        self.finish("StreamMetricSpec", started, result)
    }
}
