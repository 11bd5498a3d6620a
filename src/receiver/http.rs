//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or
//! JSON bodies, optionally gzip- or zstd-compressed, with or without
//! Content-Length (chunked bodies are read the same way).
//!
//! Answers follow the OTLP spec: the response is in the request's encoding;
//! 400 for a malformed payload (with a `google.rpc.Status` message), 415 for
//! an unsupported content type or encoding, 413 when the body (or what it
//! inflates to) is larger than `max_request_body_size`, 503 / 429 when the
//! client should retry.

use std::{future::Future, io::Read, sync::Arc};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use futures::StreamExt;
use hyper::{Request, body::Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use prost::Message;
use tokio::net::TcpListener;

use super::{
    Receiver, Transport,
    grpc::encode_response,
    json,
    listen::{self, EdgeLayer, ListenSettings},
};
use crate::{
    config::receivers::HttpServerConfig,
    consumer::{Ack, ConsumeError},
    signal::Signal,
};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// HTTP/2 streams per connection (the collector's HTTP server has no key
/// for it; Go's default is 250).
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

#[derive(Clone)]
struct Shared {
    receiver: Arc<Receiver>,
    max_body: usize,
}

/// Serves OTLP/HTTP (HTTP/1.1 and HTTP/2) for `receiver` on `listener`
/// until `shutdown` resolves, then finishes the requests in flight.
/// Connections come through [`listen::incoming`] (TLS, `TCP_NODELAY`, the
/// connection cap).
pub async fn serve(
    listener: TcpListener,
    receiver: Arc<Receiver>,
    config: &HttpServerConfig,
    mut listen: ListenSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (shutdown, draining) = listen::drain_on(shutdown);
    listen.draining = Some(draining);
    let body_timeout = Some(config.read_timeout).filter(|d| !d.is_zero());
    let app = tower::Layer::layer(
        &EdgeLayer::new(body_timeout, Body::new),
        router(receiver, config.max_request_body_size as usize),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.read_header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(config.otlp_lb_max_header_list_size);
    let mut conns = listen::incoming(listener, listen);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = conns.next() => match conn {
                Some(Ok(conn)) => conn,
                Some(Err(never)) => match never {},
                None => break,
            },
            _ = &mut shutdown => break,
        };
        let info = conn.info().clone();
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            tower::ServiceExt::oneshot(app.clone(), req)
        });
        let connection = builder
            .serve_connection(TokioIo::new(conn), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("OTLP/HTTP connection: {e}");
            }
        });
    }
    drop(conns);
    graceful.shutdown().await;
    Ok(())
}

/// The OTLP/HTTP routes, for embedding or testing.
pub fn router(receiver: Arc<Receiver>, max_request_body_size: usize) -> Router {
    let shared = Shared {
        receiver,
        max_body: max_request_body_size,
    };
    let mut app = Router::new();
    for signal in Signal::ALL {
        app = app.route(
            signal.http_path(),
            post(
                move |State(s): State<Shared>, headers: HeaderMap, body: Body| async move {
                    export(s, signal, headers, body).await
                },
            ),
        );
    }
    // We enforce the limit ourselves (after inflating, too).
    app.layer(DefaultBodyLimit::disable()).with_state(shared)
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn export(s: Shared, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    // Before the body is read: an unauthenticated client costs nothing more.
    let metadata = match s.receiver.admit(Transport::Http, &headers) {
        Ok(metadata) => metadata,
        Err(e) => return unauthenticated(&headers, &e.to_string()),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let encoding = match content_type.as_str() {
        PROTOBUF => Encoding::Protobuf,
        JSON => Encoding::Json,
        other => {
            return error(
                Encoding::Protobuf,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported content type {other:?}; use {PROTOBUF} or {JSON}"),
            );
        }
    };
    let raw = match to_bytes(body, s.max_body).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            return if too_large {
                error(
                    encoding,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body larger than {} bytes", s.max_body),
                )
            } else {
                error(
                    encoding,
                    StatusCode::BAD_REQUEST,
                    &format!("reading body: {e}"),
                )
            };
        }
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = match inflate(&content_encoding, raw, s.max_body) {
        Ok(b) => b,
        Err((code, message)) => return error(encoding, code, &message),
    };
    let request = match encoding {
        Encoding::Protobuf => body,
        Encoding::Json => match json::to_protobuf(signal, &body) {
            Ok(b) => b,
            Err(e) => return error(encoding, StatusCode::BAD_REQUEST, &e.to_string()),
        },
    };
    match s
        .receiver
        .receive(signal, Transport::Http, request, metadata)
        .await
    {
        Ok(ack) => success(encoding, signal, &ack),
        Err(e) => {
            let code = match &e {
                ConsumeError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
                ConsumeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                ConsumeError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            };
            error(encoding, code, &e.to_string())
        }
    }
}

/// 401, in the encoding the request says it has (protobuf when it says
/// nothing we know), with `WWW-Authenticate: Bearer`.
fn unauthenticated(headers: &HeaderMap, message: &str) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(JSON));
    let encoding = if json {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let mut response = error(encoding, StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Inflates a body sent with `Content-Encoding: content_encoding` (`gzip`,
/// `deflate`, `zstd`; empty or `identity` returns it as it is), refusing to
/// grow past `limit` (a small gzip body can inflate to gigabytes). The error
/// is the answer: 413 past the limit, 415 for another encoding, 400 for a
/// corrupt body.
pub fn inflate(
    content_encoding: &str,
    raw: Bytes,
    limit: usize,
) -> Result<Bytes, (StatusCode, String)> {
    let mut out = Vec::new();
    let read = match content_encoding {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        "zstd" => match zstd::stream::read::Decoder::new(&raw[..]) {
            Ok(d) => d.take(limit as u64 + 1).read_to_end(&mut out),
            Err(e) => Err(e),
        },
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content encoding {other:?}; use gzip, deflate, zstd or none"),
            ));
        }
    };
    match read {
        Ok(n) if n > limit => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body inflates to more than {limit} bytes"),
        )),
        Ok(_) => Ok(out.into()),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            format!("cannot decompress {content_encoding} body: {e}"),
        )),
    }
}

fn success(encoding: Encoding, signal: Signal, ack: &Ack) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
            encode_response(ack),
        )
            .into_response(),
        Encoding::Json => {
            let body = if ack.rejected == 0 && ack.message.is_empty() {
                serde_json::json!({})
            } else {
                let field = match signal {
                    Signal::Traces => "rejectedSpans",
                    Signal::Metrics => "rejectedDataPoints",
                    Signal::Logs => "rejectedLogRecords",
                };
                serde_json::json!({"partialSuccess": {field: ack.rejected.to_string(), "errorMessage": ack.message}})
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
                body.to_string(),
            )
                .into_response()
        }
    }
}

/// `google.rpc.Status { int32 code = 1; string message = 2; }`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error(encoding: Encoding, code: StatusCode, message: &str) -> Response {
    let grpc_code = match code {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8, // RESOURCE_EXHAUSTED
        StatusCode::UNAUTHORIZED => 16,                                    // UNAUTHENTICATED
        _ => 14,                                                           // UNAVAILABLE
    };
    let mut response = match encoding {
        Encoding::Protobuf => (
            code,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
            RpcStatus {
                code: grpc_code,
                message: message.to_string(),
            }
            .encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            code,
            [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
            serde_json::json!({"code": grpc_code, "message": message}).to_string(),
        )
            .into_response(),
    };
    if code == StatusCode::SERVICE_UNAVAILABLE || code == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
