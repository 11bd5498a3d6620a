//! The `otlphttp` exporter: OTLP/HTTP POSTs to one endpoint per signal.
//!
//! Protobuf bodies are the request's bytes as they are; `encoding: json`
//! transcodes once. Retries follow the OTLP/HTTP spec: 429, 502, 503, 504
//! and connection errors are retried with backoff; other codes are final.

use std::{io::Write, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::retry::Backoff;
use crate::{
    auth::HeadersSetter,
    component::{BuildContext, BuildError},
    config::{
        auth::Secret,
        exporters::{Compression, HttpEncoding, OtlpHttpExporterConfig},
    },
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, Metadata},
    receiver::json,
    signal::{PerSignal, Signal},
    telemetry::metrics::ExporterCounters,
    wire,
};

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The exporter: its config, and what is derived from it once at build
/// time (the URL per signal, the parsed headers, the client).
pub struct OtlpHttp {
    name: String,
    config: OtlpHttpExporterConfig,
    /// The URL per signal (`None`: this exporter does not take that signal).
    urls: PerSignal<Option<String>>,
    headers: HeaderMap,
    /// The `headers_setter` of `auth`, applied per request.
    headers_setter: Option<Arc<HeadersSetter>>,
    client: Client<Connector, Full<Bytes>>,
    counters: ExporterCounters,
}

/// Why a POST failed: whether it may be sent again, after what delay the
/// server asked for (`Retry-After`), and what happened.
struct Failure {
    retryable: bool,
    retry_after: Option<Duration>,
    message: String,
}

impl Failure {
    fn new(retryable: bool, message: String) -> Failure {
        Failure {
            retryable,
            retry_after: None,
            message,
        }
    }
}

impl OtlpHttpExporterConfig {
    /// The exporter.
    pub fn build(&self, cx: &mut BuildContext<'_>) -> Result<Arc<OtlpHttp>, BuildError> {
        if self.tls.insecure_skip_verify {
            tracing::warn!(
                exporter = %cx.id,
                "tls.insecure_skip_verify: backend certificates are not verified"
            );
        }
        // ALPN is the connector's: it offers what enable_http1/2 allow.
        let tls = super::tls::client_config(&self.tls, &[]).map_err(|e| cx.error(e))?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let builder = match &self.tls.server_name_override {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| cx.error(format!("tls.server_name_override: {e}")))?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_http1().enable_http2().build();
        Ok(Arc::new(OtlpHttp {
            name: cx.id.to_string(),
            urls: PerSignal::from_fn(|signal| self.signal_url(signal)),
            headers: headers(&self.headers).map_err(|e| cx.error(e))?,
            headers_setter: cx.headers_setter("auth", self.auth.as_ref())?,
            client: Client::builder(TokioExecutor::new()).build(connector),
            counters: ExporterCounters::new(cx.telemetry, cx.id.as_str()),
            config: self.clone(),
        }))
    }
}

impl OtlpHttp {
    fn json(&self) -> bool {
        self.config.encoding == HttpEncoding::Json
    }

    fn body(&self, signal: Signal, request: &Bytes) -> Result<Bytes, ConsumeError> {
        let plain = if self.json() {
            let tree = json::to_json(signal, request)
                .map_err(|e| ConsumeError::InvalidArgument(e.to_string()))?;
            Bytes::from(tree.to_string())
        } else {
            request.clone()
        };
        let compressed = match self.config.compression {
            Compression::None => return Ok(plain),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&plain).and_then(|_| enc.finish())
            }
            Compression::Zstd => zstd::stream::encode_all(&plain[..], 1),
        };
        compressed
            .map(Bytes::from)
            .map_err(|e| ConsumeError::Unavailable(format!("compressing: {e}")))
    }

    async fn post(&self, url: &str, body: Bytes, metadata: &Metadata) -> Result<Ack, Failure> {
        let mut request = Request::post(url)
            .header(
                header::CONTENT_TYPE,
                if self.json() {
                    "application/json"
                } else {
                    "application/x-protobuf"
                },
            )
            .body(Full::new(body))
            .map_err(|e| Failure::new(false, format!("bad request: {e}")))?;
        match self.config.compression {
            Compression::None => {}
            Compression::Gzip => {
                request
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Compression::Zstd => {
                request
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
            }
        }
        request.headers_mut().extend(self.headers.clone());
        if let Some(setter) = &self.headers_setter {
            setter.apply(metadata, request.headers_mut());
        }
        let timeout = self.config.timeout;
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| Failure::new(true, format!("no answer within {timeout:?}")))?
            .map_err(|e| Failure::new(true, with_sources(&e)))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
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
        Err(Failure {
            retryable,
            retry_after: retry_after.filter(|_| retryable),
            message: format!("HTTP {status}: {text}"),
        })
    }

    async fn export(
        &self,
        signal: Signal,
        request: Bytes,
        metadata: Metadata,
    ) -> Result<Ack, ConsumeError> {
        let Some(url) = &self.urls[signal] else {
            return Err(ConsumeError::InvalidArgument(format!(
                "exporter {} has no {signal} endpoint",
                self.name
            )));
        };
        let items = wire::count_items(signal, &request)
            .map_err(|e| ConsumeError::InvalidArgument(e.to_string()))?;
        let body = self.body(signal, &request)?;
        let mut backoff = Backoff::new(&self.config.retry_on_failure);
        loop {
            match self.post(url, body.clone(), &metadata).await {
                Ok(ack) => {
                    self.counters.sent[signal].increment(items);
                    return Ok(ack);
                }
                Err(Failure {
                    retryable: true,
                    retry_after,
                    message,
                }) => match backoff.next_wait(retry_after) {
                    Some(wait) => {
                        tracing::debug!(exporter = %self.name, ?wait, "retrying: {message}");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        self.counters.failed[signal].increment(items);
                        return Err(ConsumeError::Unavailable(format!(
                            "exporter {}: {message}",
                            self.name
                        )));
                    }
                },
                Err(Failure { message, .. }) => {
                    self.counters.failed[signal].increment(items);
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
    fn consume(&self, signal: Signal, request: Bytes, metadata: Metadata) -> ConsumeFuture<'_> {
        Box::pin(self.export(signal, request, metadata))
    }
}

/// An error and its sources on one line: hyper's own text ("client error
/// (Connect)") hides the TLS or socket error that says what went wrong.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` in seconds (the HTTP-date form is not used by OTLP servers).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    seconds.parse::<u64>().ok().map(Duration::from_secs)
}

/// Parses `name: value` config headers into a header map.
fn headers(pairs: &std::collections::BTreeMap<String, Secret>) -> Result<HeaderMap, HeaderError> {
    let mut out = HeaderMap::new();
    for (k, v) in pairs {
        let bad = |message: String| HeaderError {
            name: k.clone(),
            message,
        };
        let name = HeaderName::try_from(k.as_str()).map_err(|e| bad(e.to_string()))?;
        let mut value = HeaderValue::try_from(v.expose())
            .map_err(|_| bad("not a valid header value".into()))?;
        value.set_sensitive(true);
        out.insert(name, value);
    }
    Ok(out)
}

/// A configured header that is not a valid HTTP header. The value is never
/// shown: headers carry credentials.
#[derive(Debug, thiserror::Error)]
#[error("headers.{name}: {message}")]
struct HeaderError {
    name: String,
    message: String,
}
