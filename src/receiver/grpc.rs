//! OTLP/gRPC: the three `Export` methods, served with the pass-through codec.

use std::{
    convert::Infallible,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use tokio::net::TcpListener;
use tonic::{
    Request, Response, Status,
    body::Body,
    codec::CompressionEncoding,
    server::{NamedService, UnaryService},
};

use super::{
    Receiver, Transport,
    listen::{self, EdgeLayer, ListenSettings},
};
use crate::{
    auth::Metadata,
    codec::{self, RawCodec, UnaryBody},
    config::receivers::GrpcServerConfig,
    consumer::{Ack, ConsumeError},
    proto::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse},
    signal::Signal,
};

/// The largest HTTP/2 frame the protocol allows (2^24 - 1).
const MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// Serves OTLP/gRPC for `receiver` on `listener` until `shutdown` resolves,
/// then finishes the requests in flight. Connections come through
/// [`listen::incoming`] (TLS, `TCP_NODELAY`, the connection cap), since
/// tonic's own listener options do not apply to an incoming stream.
pub async fn serve(
    listener: TcpListener,
    receiver: Arc<Receiver>,
    config: &GrpcServerConfig,
    mut listen: ListenSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (shutdown, draining) = listen::drain_on(shutdown);
    listen.draining = Some(draining);
    let max_recv_msg_size = config.max_recv_msg_size_bytes() as usize;
    let body_timeout = Some(config.otlp_lb_request_body_timeout).filter(|d| !d.is_zero());
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20))
        // Let clients send a request in one DATA frame (nginx allows the
        // protocol's maximum too): the body then arrives as one buffer and
        // the message is a slice of it, with no copy to join frames.
        .max_frame_size(Some(MAX_FRAME_SIZE))
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_max_header_list_size(config.otlp_lb_max_header_list_size)
        .layer(EdgeLayer::new(body_timeout, Body::new))
        .add_service(ExportService::<TracesSvc>::new(
            receiver.clone(),
            max_recv_msg_size,
        ))
        .add_service(ExportService::<MetricsSvc>::new(
            receiver.clone(),
            max_recv_msg_size,
        ))
        .add_service(ExportService::<LogsSvc>::new(receiver, max_recv_msg_size))
        .serve_with_incoming_shutdown(listen::incoming(listener, listen), shutdown)
        .await
}

/// Ties a service type to its signal and gRPC service name.
pub trait OtlpService: Send + Sync + 'static {
    /// The signal.
    const SIGNAL: Signal;
    /// The fully qualified gRPC service name.
    const NAME: &'static str;
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct TracesSvc;
/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
pub struct MetricsSvc;
/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct LogsSvc;

impl OtlpService for TracesSvc {
    const SIGNAL: Signal = Signal::Traces;
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}
impl OtlpService for MetricsSvc {
    const SIGNAL: Signal = Signal::Metrics;
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}
impl OtlpService for LogsSvc {
    const SIGNAL: Signal = Signal::Logs;
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

/// One OTLP gRPC service, as a tower service tonic can route to.
pub struct ExportService<S> {
    receiver: Arc<Receiver>,
    max_recv_msg_size: usize,
    _service: PhantomData<fn() -> S>,
}

impl<S> Clone for ExportService<S> {
    fn clone(&self) -> Self {
        ExportService {
            receiver: self.receiver.clone(),
            max_recv_msg_size: self.max_recv_msg_size,
            _service: PhantomData,
        }
    }
}

impl<S: OtlpService> ExportService<S> {
    fn new(receiver: Arc<Receiver>, max_recv_msg_size: usize) -> Self {
        ExportService {
            receiver,
            max_recv_msg_size,
            _service: PhantomData,
        }
    }
}

impl<S: OtlpService> NamedService for ExportService<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S: OtlpService> tower::Service<http::Request<Body>> for ExportService<S> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let receiver = self.receiver.clone();
        let limit = self.max_recv_msg_size;
        Box::pin(async move {
            if req.uri().path() != S::SIGNAL.grpc_path() {
                return Ok(
                    Status::unimplemented(format!("unknown method {}", req.uri().path()))
                        .into_http(),
                );
            }
            // Before the body is read: an unauthenticated client costs
            // nothing more.
            let metadata = match receiver.admit(Transport::Grpc, req.headers()) {
                Ok(metadata) => metadata,
                Err(e) => return Ok(Status::unauthenticated(e.to_string()).into_http()),
            };
            if is_identity(req.headers()) {
                return Ok(unary_uncompressed(receiver, S::SIGNAL, req, limit, metadata).await);
            }
            // Compressed requests go through tonic's codec, which inflates.
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(limit);
            let handler = Export {
                receiver,
                signal: S::SIGNAL,
                metadata,
            };
            Ok(size_status(grpc.unary(handler, req).await))
        })
    }
}

/// tonic answers a compressed message whose compressed length is over the
/// limit with OUT_OF_RANGE (one inflating past it already gets
/// RESOURCE_EXHAUSTED); we answer [`codec::too_large`]'s code for both. The
/// handler itself never answers OUT_OF_RANGE, so the code alone identifies
/// the limit.
fn size_status(mut response: http::Response<Body>) -> http::Response<Body> {
    // The codes as the `grpc-status` header spells them.
    const OUT_OF_RANGE: &[u8] = b"11";
    const RESOURCE_EXHAUSTED: &str = "8";
    let headers = response.headers_mut();
    if headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == OUT_OF_RANGE)
    {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from_static(RESOURCE_EXHAUSTED),
        );
    }
    response
}

/// True when the request is not compressed (no `grpc-encoding`, or
/// `identity`).
fn is_identity(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_none_or(|v| v.as_bytes() == b"identity")
}

/// An uncompressed unary call without a codec: the body's frames are joined
/// into one buffer (a slice, not a copy, when the client sent the message in
/// one frame), and the message is a slice of it.
async fn unary_uncompressed(
    receiver: Arc<Receiver>,
    signal: Signal,
    req: http::Request<Body>,
    limit: usize,
    metadata: Metadata,
) -> http::Response<Body> {
    let body = http_body_util::Limited::new(req.into_body(), limit.saturating_add(5));
    let message = match body.collect().await {
        Ok(collected) => codec::unframe(collected.to_bytes(), limit),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(codec::too_large(None, limit)),
        Err(e) => Err(Status::internal(format!("reading the request body: {e}"))),
    };
    let result = match message {
        Ok(message) => receiver
            .receive(signal, Transport::Grpc, message, metadata)
            .await
            .map_err(status),
        Err(s) => Err(s),
    };
    let framed = result.and_then(|ack| UnaryBody::new(encode_response(&ack)));
    match framed {
        Ok(body) => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let mut response = http::Response::new(Body::new(body.with_trailers(trailers)));
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            headers.insert(
                "grpc-accept-encoding",
                http::HeaderValue::from_static("gzip,zstd"),
            );
            response
        }
        Err(s) => s.into_http(),
    }
}

struct Export {
    receiver: Arc<Receiver>,
    signal: Signal,
    metadata: Metadata,
}

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = self.receiver.clone();
        let signal = self.signal;
        let metadata = self.metadata.clone();
        Box::pin(async move {
            let ack = receiver
                .receive(signal, Transport::Grpc, request.into_inner(), metadata)
                .await
                .map_err(status)?;
            Ok(Response::new(encode_response(&ack)))
        })
    }
}

/// The gRPC status for a consume error.
pub fn status(e: ConsumeError) -> Status {
    match e {
        ConsumeError::InvalidArgument(m) => Status::invalid_argument(m),
        ConsumeError::Unavailable(m) => Status::unavailable(m),
        ConsumeError::ResourceExhausted(m) => Status::resource_exhausted(m),
    }
}

/// Encodes an `Export*ServiceResponse`. The three response messages share
/// one wire shape, so the trace type encodes all of them.
pub fn encode_response(ack: &Ack) -> Bytes {
    if ack.rejected == 0 && ack.message.is_empty() {
        return Bytes::new();
    }
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: ack.rejected as i64,
            error_message: ack.message.clone(),
        }),
    }
    .encode_to_vec()
    .into()
}
