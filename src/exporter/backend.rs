//! One backend: a gRPC channel to one endpoint of the pool, connected when
//! the endpoint joins (or on first use, if it could not be reached then).
//!
//! A backend is shared (`Arc`) by the pool that owns it and by every request
//! in flight to it, so when the resolver removes an endpoint its connection
//! closes only after the last of those requests has finished.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http_body_util::BodyExt;
use metrics::{Counter, Histogram};
use prost::Message;
use tonic::{
    Code, Request, Status,
    codec::CompressionEncoding,
    metadata::{MetadataKey, MetadataMap, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint as Transport, Identity},
};

use super::tls::SkipVerifyConnector;
use crate::{
    auth::{HeadersSetter, Metadata},
    codec::{self, RawCodec, UnaryBody},
    config::exporters::{Compression, OtlpExporterConfig},
    consumer::Ack,
    proto::collector::trace::v1::ExportTraceServiceResponse,
    signal::Signal,
    telemetry::{Telemetry, metrics::names, window::CallWindow},
};

/// How every backend connection of an exporter is made: what an `otlp`
/// block (the `loadbalancing` exporter's `protocol.otlp` template, or an
/// `otlp` exporter) says, read once ([`ClientSettings::from_config`]):
/// headers parsed into gRPC metadata, TLS files loaded. `Debug` shows header
/// names only: values may be credentials.
#[derive(Clone)]
pub struct ClientSettings {
    /// Deadline of one export call.
    pub timeout: Duration,
    /// Request compression.
    pub compression: Compression,
    /// Extra gRPC metadata sent with every call.
    pub headers: MetadataMap,
    /// TLS settings; `None` means plaintext (`tls.insecure: true`).
    pub tls: Option<ClientTlsConfig>,
    /// The `headers_setter` of `auth`: headers per call, from the metadata
    /// of the request the call carries data of.
    pub headers_setter: Option<Arc<HeadersSetter>>,
    /// TLS without verifying the backend (`tls.insecure_skip_verify`):
    /// done by this connector instead of tonic.
    pub skip_verify: Option<SkipVerifyConnector>,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .headers
            .keys()
            .map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => k.as_str(),
                tonic::metadata::KeyRef::Binary(k) => k.as_str(),
            })
            .collect();
        f.debug_struct("ClientSettings")
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("headers", &names)
            .field("tls", &self.tls.is_some())
            .field("headers_setter", &self.headers_setter)
            .field("skip_verify", &self.skip_verify.is_some())
            .finish()
    }
}

impl Default for ClientSettings {
    /// Plaintext, uncompressed, 5 s: what tests talk to their sinks with.
    fn default() -> Self {
        ClientSettings {
            timeout: Duration::from_secs(5),
            compression: Compression::None,
            headers: MetadataMap::new(),
            tls: None,
            headers_setter: None,
            skip_verify: None,
        }
    }
}

/// Why an `otlp` block could not become client settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A header name or value is not valid gRPC metadata.
    #[error("headers.{name}: {message}")]
    Header {
        /// The header's name as configured.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A TLS file could not be read.
    #[error("tls.{key} {path}: {source}")]
    TlsFile {
        /// The config key (`ca_file`, ...).
        key: &'static str,
        /// The path configured.
        path: String,
        /// The read error.
        source: std::io::Error,
    },
    /// The TLS settings are not usable (a PEM file without a certificate,
    /// a key that does not match its certificate, ...).
    #[error("{0}")]
    Tls(String),
}

impl ClientSettings {
    /// The settings of an `otlp` block, with the `headers_setter` its
    /// `auth` names.
    pub fn from_config(
        config: &OtlpExporterConfig,
        headers_setter: Option<Arc<HeadersSetter>>,
    ) -> Result<ClientSettings, SettingsError> {
        let mut headers = MetadataMap::new();
        for (k, v) in &config.headers {
            let bad = |message: String| SettingsError::Header {
                name: k.clone(),
                message,
            };
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|e| bad(e.to_string()))?;
            // Never shown: the value may be a credential.
            let mut value = MetadataValue::try_from(v.expose())
                .map_err(|_| bad("not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(key, value);
        }
        Ok(ClientSettings {
            timeout: config.timeout,
            compression: config.compression,
            headers,
            tls: Self::tls(config)?,
            headers_setter,
            skip_verify: match config.plaintext() || !config.tls.insecure_skip_verify {
                true => None,
                false => Some(SkipVerifyConnector::new(&config.tls)?),
            },
        })
    }

    fn tls(config: &OtlpExporterConfig) -> Result<Option<ClientTlsConfig>, SettingsError> {
        let tls = &config.tls;
        if config.plaintext() {
            return Ok(None);
        }
        let read = |key: &'static str, path: &str| {
            std::fs::read(path).map_err(|source| SettingsError::TlsFile {
                key,
                path: path.to_owned(),
                source,
            })
        };
        let mut out = ClientTlsConfig::new();
        out = match &tls.ca_file {
            Some(path) => out.ca_certificate(Certificate::from_pem(read("ca_file", path)?)),
            None => out.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            out = out.identity(Identity::from_pem(
                read("cert_file", cert)?,
                read("key_file", key)?,
            ));
        }
        if let Some(name) = &tls.server_name_override {
            out = out.domain_name(name.clone());
        }
        Ok(Some(out))
    }

    /// tonic's name for the compression, `None` when uncompressed.
    fn encoding(&self) -> Option<CompressionEncoding> {
        match self.compression {
            Compression::None => None,
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
        }
    }
}

/// Why one export call to one backend failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{endpoint}: {message}")]
pub struct BackendError {
    /// The backend's endpoint.
    pub endpoint: Arc<str>,
    /// What went wrong.
    pub message: String,
    /// Whether the same data may be sent again (to this or another backend).
    pub retryable: bool,
    /// How long the backend asked us to wait first (gRPC `RetryInfo`).
    pub retry_after: Option<Duration>,
}

/// A connection to one backend endpoint.
pub struct Backend {
    endpoint: Arc<str>,
    channel: Channel,
    settings: Arc<ClientSettings>,
    request_headers: http::HeaderMap,
    latency: Histogram,
    succeeded: Counter,
    failed: Counter,
    /// The last minute of calls, for the status page.
    calls: CallWindow,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Backend {
    /// Prepares a connection to `endpoint` (`host:port`); it is opened on
    /// first use and re-opened by the channel after failures.
    pub fn new(
        endpoint: Arc<str>,
        settings: Arc<ClientSettings>,
        exporter: &str,
        telemetry: &Telemetry,
    ) -> Result<Backend, BackendError> {
        let ep = Self::transport(&endpoint, &settings)?;
        let channel = match &settings.skip_verify {
            Some(connector) => ep.connect_with_connector_lazy(connector.clone()),
            None => ep.connect_lazy(),
        };
        Ok(Self::with_channel(
            endpoint, channel, settings, exporter, telemetry,
        ))
    }

    /// Like [`Backend::new`], but opens the connection now, waiting at most
    /// `limit`: a new member of the pool is connected before the ring that
    /// routes to it is published. A backend that cannot be reached in time
    /// is still returned; it connects on first use, like one from `new`.
    pub async fn connect(
        endpoint: Arc<str>,
        settings: Arc<ClientSettings>,
        exporter: &str,
        telemetry: &Telemetry,
        limit: Duration,
    ) -> Result<Backend, BackendError> {
        let ep = Self::transport(&endpoint, &settings)?;
        let connect = async {
            match &settings.skip_verify {
                Some(connector) => ep.connect_with_connector(connector.clone()).await,
                None => ep.connect().await,
            }
        };
        let lazy = || match &settings.skip_verify {
            Some(connector) => ep.connect_with_connector_lazy(connector.clone()),
            None => ep.connect_lazy(),
        };
        let channel = match tokio::time::timeout(limit, connect).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                tracing::debug!(%endpoint, "backend not reachable yet: {e}");
                lazy()
            }
            Err(_) => {
                tracing::debug!(%endpoint, "backend not reachable within {limit:?}");
                lazy()
            }
        };
        Ok(Self::with_channel(
            endpoint, channel, settings, exporter, telemetry,
        ))
    }

    /// The tonic endpoint for `endpoint` with the exporter's settings.
    fn transport(
        endpoint: &Arc<str>,
        settings: &ClientSettings,
    ) -> Result<Transport, BackendError> {
        // With `insecure_skip_verify` the connector does TLS, so tonic
        // must not: it is given an http:// URI.
        let scheme = if settings.tls.is_some() && settings.skip_verify.is_none() {
            "https"
        } else {
            "http"
        };
        let fail = |message: String| BackendError {
            endpoint: endpoint.clone(),
            message,
            retryable: false,
            retry_after: None,
        };
        let mut ep = Transport::from_shared(format!("{scheme}://{endpoint}"))
            .map_err(|e| fail(format!("invalid endpoint: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(settings.timeout)
            // Large HTTP/2 windows: a 64 KiB default window stalls every
            // request of a few hundred KiB on round trips.
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if let (Some(tls), None) = (&settings.tls, &settings.skip_verify) {
            ep = ep
                .tls_config(tls.clone())
                .map_err(|e| fail(format!("TLS: {e}")))?;
        }
        Ok(ep)
    }

    fn with_channel(
        endpoint: Arc<str>,
        channel: Channel,
        settings: Arc<ClientSettings>,
        exporter: &str,
        telemetry: &Telemetry,
    ) -> Backend {
        let labels = [("exporter", exporter), ("endpoint", &*endpoint)];
        let ok_labels = [
            ("exporter", exporter),
            ("endpoint", &*endpoint),
            ("success", "true"),
        ];
        let failed_labels = [
            ("exporter", exporter),
            ("endpoint", &*endpoint),
            ("success", "false"),
        ];
        Backend {
            channel,
            latency: telemetry.histogram(names::BACKEND_LATENCY, &labels),
            succeeded: telemetry.counter(names::BACKEND_OUTCOME, &ok_labels),
            failed: telemetry.counter(names::BACKEND_OUTCOME, &failed_labels),
            calls: CallWindow::new(),
            endpoint,
            request_headers: request_headers(&settings),
            settings,
        }
    }

    /// The endpoint, `host:port`.
    pub fn endpoint(&self) -> &Arc<str> {
        &self.endpoint
    }

    /// The last minute of this backend's calls.
    pub fn calls(&self) -> &CallWindow {
        &self.calls
    }

    /// Sends one encoded `Export*ServiceRequest` and waits for the backend's
    /// answer, at most until `deadline` (the exporter's bound on one attempt
    /// of the whole request) as well as the call's own `timeout`. A partial
    /// success reported by the backend is passed on. `items` (the items in
    /// `body`) is counted in the backend's [`CallWindow`]. `metadata` is
    /// that of the one client request `body` holds data of: the call's
    /// `headers_setter` headers come from it.
    pub async fn export(
        &self,
        signal: Signal,
        body: Bytes,
        items: u64,
        deadline: Option<tokio::time::Instant>,
        metadata: &Metadata,
    ) -> Result<Ack, BackendError> {
        let started = Instant::now();
        // One timer per call: the sooner of the call's own `timeout` and the
        // exporter's bound on the whole attempt.
        let call_limit = tokio::time::Instant::now() + self.settings.timeout;
        let (limit, by_attempt) = match deadline {
            Some(deadline) if deadline < call_limit => (deadline, true),
            _ => (call_limit, false),
        };
        let result = tokio::time::timeout_at(limit, self.call(signal, body, metadata))
            .await
            .unwrap_or_else(|_| {
                Err(BackendError {
                    endpoint: self.endpoint.clone(),
                    message: if by_attempt {
                        "no answer within the exporter's timeout".into()
                    } else {
                        format!("no answer within {:?}", self.settings.timeout)
                    },
                    retryable: true,
                    retry_after: None,
                })
            });
        let elapsed = started.elapsed();
        self.latency.record(elapsed.as_secs_f64() * 1000.0);
        self.calls.record(result.is_ok(), items, elapsed);
        match &result {
            Ok(_) => self.succeeded.increment(1),
            Err(_) => self.failed.increment(1),
        }
        result
    }

    async fn call(
        &self,
        signal: Signal,
        body: Bytes,
        metadata: &Metadata,
    ) -> Result<Ack, BackendError> {
        if let Some(encoding) = self.settings.encoding() {
            return self.call_compressed(signal, body, encoding, metadata).await;
        }
        let fail = |message: String, retryable: bool| BackendError {
            endpoint: self.endpoint.clone(),
            message,
            retryable,
            retry_after: None,
        };
        let mut channel = self.channel.clone();
        std::future::poll_fn(|cx| tower::Service::poll_ready(&mut channel, cx))
            .await
            .map_err(|e| fail(format!("connection not ready: {e}"), true))?;
        let body = UnaryBody::new(body).map_err(|s| fail(s.message().to_string(), false))?;
        let mut request = http::Request::new(tonic::body::Body::new(body));
        *request.method_mut() = http::Method::POST;
        // The path alone: the channel adds its scheme and authority.
        *request.uri_mut() = http::Uri::from_static(signal.grpc_path());
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = self.request_headers.clone();
        if let Some(setter) = &self.settings.headers_setter {
            setter.apply(metadata, request.headers_mut());
        }
        let call = async {
            let response = tower::Service::call(&mut channel, request)
                .await
                .map_err(|e| Status::from_error(Box::new(e)));
            let result = match response {
                Ok(response) => read_response(signal, response).await,
                Err(status) => Err(status),
            };
            // The same rule as a call through tonic's codec.
            result.map_err(|status| self.failed_with(&status))
        };
        call.await
    }

    /// A compressed call goes through tonic's codec, which deflates.
    async fn call_compressed(
        &self,
        signal: Signal,
        body: Bytes,
        encoding: CompressionEncoding,
        metadata: &Metadata,
    ) -> Result<Ack, BackendError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .send_compressed(encoding)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        grpc.ready().await.map_err(|e| BackendError {
            endpoint: self.endpoint.clone(),
            message: format!("connection not ready: {e}"),
            retryable: true,
            retry_after: None,
        })?;
        let mut request = Request::new(body);
        *request.metadata_mut() = match &self.settings.headers_setter {
            None => self.settings.headers.clone(),
            Some(setter) => {
                let mut headers = self.settings.headers.clone().into_headers();
                setter.apply(metadata, &mut headers);
                MetadataMap::from_headers(headers)
            }
        };
        request.set_timeout(self.settings.timeout);
        let path = PathAndQuery::from_static(signal.grpc_path());
        let response = grpc
            .unary(request, path, RawCodec)
            .await
            .map_err(|status| self.failed_with(&status))?;
        Ok(partial_success(signal, response.get_ref()))
    }

    /// The error for a call that ended with `status`.
    fn failed_with(&self, status: &Status) -> BackendError {
        let retry = retry_rule(status);
        BackendError {
            endpoint: self.endpoint.clone(),
            message: describe(status),
            retryable: retry.is_some(),
            retry_after: retry.flatten(),
        }
    }
}

/// The headers of every uncompressed call: gRPC's, the deadline, and the
/// configured metadata. Built once per backend.
fn request_headers(settings: &ClientSettings) -> http::HeaderMap {
    let mut headers = settings.headers.clone().into_headers();
    let fixed = [("te", "trailers"), ("content-type", "application/grpc")];
    for (name, value) in fixed {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    // At most 8 digits: milliseconds up to about 27 hours.
    let ms = settings.timeout.as_millis().clamp(1, 99_999_999);
    if let Ok(v) = http::HeaderValue::from_str(&format!("{ms}m")) {
        headers.insert("grpc-timeout", v);
    }
    headers
}

/// Reads a unary response: the status from the trailers (or from the headers
/// of a trailers-only response, or the HTTP status), and the partial success.
async fn read_response(
    signal: Signal,
    response: http::Response<tonic::body::Body>,
) -> Result<Ack, Status> {
    let (parts, body) = response.into_parts();
    if let Some(status) = Status::from_header_map(&parts.headers) {
        // Trailers-only: the status is in the headers and there is no body.
        return match status.code() {
            Code::Ok => Ok(Ack::ok()),
            _ => Err(status),
        };
    }
    if parts.status != http::StatusCode::OK {
        return Err(Status::new(
            http_code(parts.status),
            format!("HTTP status {}", parts.status),
        ));
    }
    // The body's errors are already statuses, with their sources.
    let collected = body.collect().await?;
    let status = collected
        .trailers()
        .and_then(Status::from_header_map)
        .unwrap_or_else(|| Status::unknown("the response has no grpc-status"));
    if status.code() != Code::Ok {
        return Err(status);
    }
    // A compressed or malformed response body only loses the partial-success
    // detail; the call itself succeeded.
    Ok(codec::unframe(collected.to_bytes(), usize::MAX)
        .map_or_else(|_| Ack::ok(), |m| partial_success(signal, &m)))
}

/// The gRPC code for a non-200 HTTP status, as gRPC's HTTP mapping gives it.
fn http_code(status: http::StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Whether data whose call failed with `status` may be sent again, and
/// after what delay the backend asked for: `None` for never, `Some(None)`
/// for "retry with backoff", `Some(Some(delay))` for "not before `delay`".
///
/// A status the backend sent follows the OTLP spec: CANCELLED,
/// DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are
/// retryable; RESOURCE_EXHAUSTED only when the backend attached a
/// `google.rpc.RetryInfo` (it can recover), whose delay is honoured; every
/// other code (UNKNOWN included) is final.
///
/// Where we go past the spec, which speaks only of codes a server sends: a
/// call that failed in the transport (connection refused or reset, a
/// stream refused by HTTP/2 GOAWAY) is retryable. tonic reports those as
/// statuses made from an error, which carry that error as their source; a
/// status read off the wire has none.
fn retry_rule(status: &Status) -> Option<Option<Duration>> {
    if std::error::Error::source(status).is_some() || refused_by_go_away(status) {
        return Some(None);
    }
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Some(retry_delay(status)),
        Code::ResourceExhausted => retry_delay(status).map(Some),
        _ => None,
    }
}

/// A call that failed because the server sent HTTP/2 GOAWAY before taking
/// its stream: such a stream was never processed (RFC 9113, section 6.8),
/// so sending the data again (to whichever backend now owns it) cannot
/// duplicate anything. A backend shutting down gracefully refuses calls
/// this way.
fn refused_by_go_away(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<h2::Error>()
            .is_some_and(h2::Error::is_go_away)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// `google.rpc.Status`, as carried in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<prost_types::Duration>,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The delay of the `RetryInfo` in a status's details, if there is one
/// (zero when it has no delay).
fn retry_delay(status: &Status) -> Option<Duration> {
    let details = RpcStatus::decode(status.details()).ok()?;
    let info = details
        .details
        .iter()
        .find(|any| any.type_url == RETRY_INFO_TYPE)?;
    let delay = RetryInfo::decode(info.value.as_slice())
        .ok()?
        .retry_delay
        .unwrap_or_default();
    Some(Duration::new(
        delay.seconds.max(0) as u64,
        delay.nanos.clamp(0, 999_999_999) as u32,
    ))
}

/// Reads a backend's partial success. The three response messages share one
/// wire shape (`partial_success = 1 { rejected = 1; error_message = 2 }`), so
/// the trace response type decodes all of them.
fn partial_success(signal: Signal, body: &Bytes) -> Ack {
    let Ok(response) = ExportTraceServiceResponse::decode(body.as_ref()) else {
        return Ack::ok();
    };
    match response.partial_success {
        Some(p) if p.rejected_spans > 0 || !p.error_message.is_empty() => Ack {
            rejected: p.rejected_spans.max(0) as u64,
            message: if p.error_message.is_empty() {
                format!(
                    "backend rejected {} {}",
                    p.rejected_spans,
                    signal.item_name()
                )
            } else {
                p.error_message
            },
        },
        _ => Ack::ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry_info(code: Code, delay_s: i64) -> Status {
        let info = RetryInfo {
            retry_delay: Some(prost_types::Duration {
                seconds: delay_s,
                nanos: 0,
            }),
        };
        let details = RpcStatus {
            code: code as i32,
            message: "slow down".into(),
            details: vec![prost_types::Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: info.encode_to_vec(),
            }],
        };
        Status::with_details(code, "slow down", details.encode_to_vec().into())
    }

    #[test]
    fn the_otlp_spec_decides_what_a_backend_status_means() {
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert_eq!(retry_rule(&Status::new(code, "x")), Some(None), "{code:?}");
        }
        for code in [
            Code::Unknown,
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::Internal,
            Code::Unimplemented,
            Code::ResourceExhausted,
        ] {
            assert_eq!(retry_rule(&Status::new(code, "x")), None, "{code:?}");
        }
    }

    #[test]
    fn resource_exhausted_with_retry_info_is_retried_after_its_delay() {
        assert_eq!(
            retry_rule(&with_retry_info(Code::ResourceExhausted, 3)),
            Some(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            retry_rule(&with_retry_info(Code::Unavailable, 2)),
            Some(Some(Duration::from_secs(2)))
        );
    }

    #[test]
    fn a_transport_failure_is_retryable_whatever_its_code() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = Status::from_error(Box::new(io));
        assert!(std::error::Error::source(&status).is_some());
        assert_eq!(retry_rule(&status), Some(None));
    }
}
