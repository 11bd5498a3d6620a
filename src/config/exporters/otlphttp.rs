//! `otlphttp`: the OTLP/HTTP exporter of a second tier.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::settings::{ClientTlsConfig, Compression, QueueConfig, RetryConfig};
use crate::config::auth::{AuthConfig, Secret};
use crate::config::de::{Unsupported, null_as_default};
use crate::config::duration;
use crate::config::endpoint::parse_http_url;
use crate::config::error::{ConfigError, child};
use crate::signal::Signal;

/// Body encoding of OTLP/HTTP requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpEncoding {
    /// Binary protobuf. The default.
    #[default]
    Proto,
    /// Protobuf JSON.
    Json,
}

/// An OTLP/HTTP exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpHttpExporterConfig {
    /// Base URL (`http://backend:4318`); each signal posts to `/v1/traces`,
    /// `/v1/metrics` or `/v1/logs` under it unless its own URL is set.
    pub endpoint: Option<String>,
    /// Full URL for traces, overriding `endpoint`.
    pub traces_endpoint: Option<String>,
    /// Full URL for metrics, overriding `endpoint`.
    pub metrics_endpoint: Option<String>,
    /// Full URL for logs, overriding `endpoint`.
    pub logs_endpoint: Option<String>,
    /// Body encoding: `proto` or `json`. Default proto.
    pub encoding: HttpEncoding,
    /// Request compression: `none`, `gzip` or `zstd`. Default gzip.
    pub compression: Compression,
    /// Extra HTTP headers sent with every request. Values may be
    /// credentials (`${env:VAR}`, `${file:PATH}`): they are never logged.
    #[serde(deserialize_with = "null_as_default")]
    pub headers: BTreeMap<String, Secret>,
    /// Deadline of one request. Default 30s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Client TLS for `https://` URLs.
    #[serde(deserialize_with = "null_as_default")]
    pub tls: ClientTlsConfig,
    /// Retry of failed exports. Default enabled.
    #[serde(deserialize_with = "null_as_default")]
    pub retry_on_failure: RetryConfig,
    /// Queue in front of the exporter. Default enabled.
    #[serde(deserialize_with = "null_as_default")]
    pub sending_queue: QueueConfig,
    /// Headers set per request: `authenticator` names a `headers_setter`
    /// extension. Default none.
    pub auth: Option<AuthConfig>,
    /// Not supported by otlp-lb.
    pub proxy_url: Unsupported,
}

impl Default for OtlpHttpExporterConfig {
    fn default() -> OtlpHttpExporterConfig {
        OtlpHttpExporterConfig {
            endpoint: None,
            traces_endpoint: None,
            metrics_endpoint: None,
            logs_endpoint: None,
            encoding: HttpEncoding::Proto,
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            tls: ClientTlsConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            auth: None,
            proxy_url: Unsupported,
        }
    }
}

impl OtlpHttpExporterConfig {
    fn signal_endpoint(&self, signal: Signal) -> (&'static str, Option<&String>) {
        match signal {
            Signal::Traces => ("traces_endpoint", self.traces_endpoint.as_ref()),
            Signal::Metrics => ("metrics_endpoint", self.metrics_endpoint.as_ref()),
            Signal::Logs => ("logs_endpoint", self.logs_endpoint.as_ref()),
        }
    }

    /// The URL this exporter posts `signal` to: the signal's own URL, or
    /// `endpoint` + `/v1/<signal>`.
    pub fn signal_url(&self, signal: Signal) -> Option<String> {
        if let (_, Some(url)) = self.signal_endpoint(signal) {
            return Some(url.clone());
        }
        let base = self.endpoint.as_deref()?.trim_end_matches('/');
        Some(format!("{base}{}", signal.http_path()))
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.endpoint {
            parse_http_url(endpoint).map_err(|e| ConfigError::new(child(path, "endpoint"), e))?;
        }
        for signal in Signal::ALL {
            if let (key, Some(url)) = self.signal_endpoint(signal) {
                parse_http_url(url).map_err(|e| ConfigError::new(child(path, key), e))?;
            }
        }
        if self.endpoint.is_none()
            && Signal::ALL
                .iter()
                .all(|s| self.signal_endpoint(*s).1.is_none())
        {
            return Err(ConfigError::new(
                child(path, "endpoint"),
                "required (or traces_endpoint, metrics_endpoint, logs_endpoint)",
            ));
        }
        self.tls.validate(&child(path, "tls"))?;
        self.retry_on_failure
            .validate(&child(path, "retry_on_failure"))?;
        self.sending_queue.validate(&child(path, "sending_queue"))
    }

    /// Checks that a pipeline of `signal` using this exporter has a URL.
    pub(crate) fn validate_signal(&self, path: &str, signal: Signal) -> Result<(), ConfigError> {
        let (key, url) = self.signal_endpoint(signal);
        if url.is_none() && self.endpoint.is_none() {
            return Err(ConfigError::new(
                child(path, key),
                format!(
                    "required: the exporter is used in a {signal} pipeline and endpoint is not set"
                ),
            ));
        }
        Ok(())
    }
}
