//! The `otlphttp` exporter: OTLP/HTTP POSTs to one endpoint per signal.
//!
//! Protobuf bodies are the request's bytes as they are; `encoding: json`
//! transcodes once. Retries follow the OTLP/HTTP spec: 429, 502, 503, 504
//! and connection errors are retried with backoff; other codes are final.

use std::io::Write;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::retry::{Backoff, RetrySettings};
use crate::{
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer},
    receiver::json,
    signal::Signal,
    telemetry::{Telemetry, metrics::ExporterCounters},
    wire,
};

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Body compression of the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCompression {
    /// Uncompressed.
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: zstd`.
    Zstd,
}

/// Settings of one `otlphttp` exporter.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The URL per signal (`None`: this exporter does not take that signal).
    pub urls: [Option<String>; 3],
    /// Send OTLP/JSON instead of protobuf.
    pub json: bool,
    /// Body compression.
    pub compression: BodyCompression,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Deadline of one POST.
    pub timeout: std::time::Duration,
    /// Retry settings.
    pub retry: RetrySettings,
}

/// The exporter.
pub struct OtlpHttp {
    name: String,
    settings: HttpSettings,
    client: Client<Connector, Full<Bytes>>,
    counters: ExporterCounters,
}

impl OtlpHttp {
    /// A new exporter named `name`.
    pub fn new(
        name: &str,
        settings: HttpSettings,
        telemetry: &Telemetry,
    ) -> Result<OtlpHttp, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(OtlpHttp {
            name: name.to_string(),
            client,
            counters: ExporterCounters::new(telemetry, name),
            settings,
        })
    }

    fn body(&self, signal: Signal, request: &Bytes) -> Result<Bytes, ConsumeError> {
        let plain = if self.settings.json {
            let tree = json::to_json(signal, request).map_err(ConsumeError::InvalidArgument)?;
            Bytes::from(tree.to_string())
        } else {
            request.clone()
        };
        let compressed = match self.settings.compression {
            BodyCompression::None => return Ok(plain),
            BodyCompression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&plain).and_then(|_| enc.finish())
            }
            BodyCompression::Zstd => zstd::stream::encode_all(&plain[..], 1),
        };
        compressed
            .map(Bytes::from)
            .map_err(|e| ConsumeError::Unavailable(format!("compressing: {e}")))
    }

    async fn post(&self, url: &str, body: Bytes) -> Result<Ack, (bool, String)> {
        let mut request = Request::post(url)
            .header(
                header::CONTENT_TYPE,
                if self.settings.json {
                    "application/json"
                } else {
                    "application/x-protobuf"
                },
            )
            .body(Full::new(body))
            .map_err(|e| (false, format!("bad request: {e}")))?;
        match self.settings.compression {
            BodyCompression::None => {}
            BodyCompression::Gzip => {
                request
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            BodyCompression::Zstd => {
                request
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
            }
        }
        request.headers_mut().extend(self.settings.headers.clone());
        let response = tokio::time::timeout(self.settings.timeout, self.client.request(request))
            .await
            .map_err(|_| {
                (
                    true,
                    format!("no answer within {:?}", self.settings.timeout),
                )
            })?
            .map_err(|e| (true, format!("{e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(Ack::ok());
        }
        let retryable = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        );
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        Err((retryable, format!("HTTP {status}: {text}")))
    }

    async fn export(&self, signal: Signal, request: Bytes) -> Result<Ack, ConsumeError> {
        let Some(url) = &self.settings.urls[signal as usize] else {
            return Err(ConsumeError::InvalidArgument(format!(
                "exporter {} has no {signal} endpoint",
                self.name
            )));
        };
        let items = wire::count_items(signal, &request)
            .map_err(|e| ConsumeError::InvalidArgument(e.to_string()))?;
        let body = self.body(signal, &request)?;
        let mut backoff = Backoff::new(&self.settings.retry);
        loop {
            match self.post(url, body.clone()).await {
                Ok(ack) => {
                    self.counters.sent[signal as usize].increment(items);
                    return Ok(ack);
                }
                Err((true, message)) => match backoff.next_wait() {
                    Some(wait) => {
                        tracing::debug!(exporter = %self.name, ?wait, "retrying: {message}");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        self.counters.failed[signal as usize].increment(items);
                        return Err(ConsumeError::Unavailable(format!(
                            "exporter {}: {message}",
                            self.name
                        )));
                    }
                },
                Err((false, message)) => {
                    self.counters.failed[signal as usize].increment(items);
                    tracing::warn!(exporter = %self.name, "backend refused data for good: {message}");
                    return Ok(Ack {
                        rejected: items,
                        message,
                    });
                }
            }
        }
    }
}

impl Consumer for OtlpHttp {
    fn consume(&self, signal: Signal, request: Bytes) -> ConsumeFuture<'_> {
        Box::pin(self.export(signal, request))
    }
}

/// Parses `name: value` config headers into a header map.
pub fn headers(pairs: &std::collections::BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut out = HeaderMap::new();
    for (k, v) in pairs {
        let name = HeaderName::try_from(k.as_str()).map_err(|e| format!("headers.{k}: {e}"))?;
        let value = HeaderValue::try_from(v.as_str()).map_err(|e| format!("headers.{k}: {e}"))?;
        out.insert(name, value);
    }
    Ok(out)
}
