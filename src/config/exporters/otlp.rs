//! `otlp`: the OTLP/gRPC exporter, used alone on a second tier and as the
//! per-backend template in `loadbalancing.protocol.otlp`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::settings::{ClientTlsConfig, Compression, QueueConfig, RetryConfig};
use crate::config::auth::{AuthConfig, Secret};
use crate::config::de::{Unsupported, null_as_default};
use crate::config::duration;
use crate::config::endpoint::Endpoint;
use crate::config::error::{ConfigError, child};

/// An OTLP/gRPC exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// The backend, `host:port`, optionally prefixed `http://` (plain text)
    /// or `https://`. Required for an `otlp` exporter; must be absent under
    /// `loadbalancing.protocol.otlp`, where the resolver sets it per backend.
    pub endpoint: Option<String>,
    /// Deadline of one export call. Default 5s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Request compression: `none`, `gzip` or `zstd`. Default gzip.
    pub compression: Compression,
    /// Extra gRPC metadata sent with every export. Values may be
    /// credentials (`${env:VAR}`, `${file:PATH}`): they are never logged.
    #[serde(deserialize_with = "null_as_default")]
    pub headers: BTreeMap<String, Secret>,
    /// Client TLS. Default: TLS on, system roots.
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
    pub keepalive: Unsupported,
    /// Not supported by otlp-lb.
    pub balancer_name: Unsupported,
}

impl Default for OtlpExporterConfig {
    fn default() -> OtlpExporterConfig {
        OtlpExporterConfig {
            endpoint: None,
            timeout: Duration::from_secs(5),
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            tls: ClientTlsConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            auth: None,
            keepalive: Unsupported,
            balancer_name: Unsupported,
        }
    }
}

/// Whether an [`OtlpExporterConfig`] names its own endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointRule {
    /// A standalone `otlp` exporter: the endpoint is required.
    Required,
    /// `loadbalancing.protocol.otlp`: the resolver sets it; it must be absent.
    SetByResolver,
}

impl OtlpExporterConfig {
    /// The backend address, without its `http://` or `https://` prefix.
    pub fn target(&self) -> Option<Endpoint> {
        let endpoint = self.endpoint.as_deref()?;
        Endpoint::parse(strip_scheme(endpoint)).ok()
    }

    /// True when the connection is plain text: `tls.insecure: true` or an
    /// `http://` endpoint.
    pub fn plaintext(&self) -> bool {
        self.tls.insecure
            || self
                .endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
    }

    pub(crate) fn validate(&self, path: &str, rule: EndpointRule) -> Result<(), ConfigError> {
        let endpoint_path = child(path, "endpoint");
        match (rule, &self.endpoint) {
            (EndpointRule::Required, None) => {
                return Err(ConfigError::new(endpoint_path, "required"));
            }
            (EndpointRule::Required, Some(endpoint)) => {
                Endpoint::parse(strip_scheme(endpoint))
                    .map_err(|e| ConfigError::new(&endpoint_path, e))?;
            }
            (EndpointRule::SetByResolver, Some(_)) => {
                return Err(ConfigError::new(
                    endpoint_path,
                    "set per backend by the resolver; remove it",
                ));
            }
            (EndpointRule::SetByResolver, None) => {}
        }
        self.tls.validate(&child(path, "tls"))?;
        self.retry_on_failure
            .validate(&child(path, "retry_on_failure"))?;
        self.sending_queue.validate(&child(path, "sending_queue"))
    }
}

fn strip_scheme(endpoint: &str) -> &str {
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
}
