//! Extension settings: `health_check`, `otlp_lb_status` (the operator's
//! status page, otlp-lb's own), and the authenticators `headers_setter` and
//! `bearertokenauth` (their settings are in [`super::auth`]).

use serde::{Deserialize, Deserializer};

use super::auth::{BearerTokenAuthConfig, HeadersSetterConfig};
use super::component::ComponentKind;
use super::de::{Unsupported, null_as_default};
use super::endpoint::Endpoint;
use super::error::{ConfigError, child};

/// One configured extension, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionConfig {
    /// `health_check`.
    HealthCheck(HealthCheckConfig),
    /// `otlp_lb_status`.
    Status(StatusConfig),
    /// `headers_setter`: headers set on exporters' outgoing requests.
    HeadersSetter(HeadersSetterConfig),
    /// `bearertokenauth`: the token receivers require.
    BearerTokenAuth(BearerTokenAuthConfig),
}

impl ComponentKind for ExtensionConfig {
    const KIND: &'static str = "extension";
    const SUPPORTED: &'static [&'static str] = &[
        "health_check",
        "otlp_lb_status",
        "headers_setter",
        "bearertokenauth",
    ];

    fn deserialize_typed<'de, D: Deserializer<'de>>(
        type_name: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        match type_name {
            "health_check" => Some(null_as_default(de).map(ExtensionConfig::HealthCheck)),
            "otlp_lb_status" => Some(null_as_default(de).map(ExtensionConfig::Status)),
            "headers_setter" => Some(null_as_default(de).map(ExtensionConfig::HeadersSetter)),
            "bearertokenauth" => Some(null_as_default(de).map(ExtensionConfig::BearerTokenAuth)),
            _ => None,
        }
    }
}

impl ExtensionConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        match self {
            ExtensionConfig::HealthCheck(h) => h.validate(path),
            ExtensionConfig::Status(s) => s.validate(path),
            ExtensionConfig::HeadersSetter(h) => h.validate(path),
            ExtensionConfig::BearerTokenAuth(b) => b.validate(path),
        }
    }

    /// The listen address of the extension's server, if it has one.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            ExtensionConfig::HealthCheck(h) => Some(&h.endpoint),
            ExtensionConfig::Status(s) => Some(&s.endpoint),
            ExtensionConfig::HeadersSetter(_) | ExtensionConfig::BearerTokenAuth(_) => None,
        }
    }
}

/// The HTTP health endpoint: 200 while serving, 503 while starting or draining.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Listen address, `host:port`. Default 0.0.0.0:13133.
    pub endpoint: String,
    /// URL path answered. Default `/`.
    pub path: String,
    /// otlp-lb extension: on SIGTERM, how long health answers 503 while the
    /// receivers still accept new connections, so that a load balancer or a
    /// Kubernetes Service watching health stops sending before the ports
    /// close. Default 2s; `0s` closes at once.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub drain_delay: std::time::Duration,
    /// Not supported by otlp-lb.
    pub check_collector_pipeline: Unsupported,
    /// Not supported by otlp-lb.
    pub response_body: Unsupported,
    /// Not supported by otlp-lb.
    pub tls: Unsupported,
}

impl Default for HealthCheckConfig {
    fn default() -> HealthCheckConfig {
        HealthCheckConfig {
            endpoint: "0.0.0.0:13133".into(),
            path: "/".into(),
            drain_delay: std::time::Duration::from_secs(2),
            check_collector_pipeline: Unsupported,
            response_body: Unsupported,
            tls: Unsupported,
        }
    }
}

impl HealthCheckConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        Endpoint::parse_listen(&self.endpoint)
            .map_err(|e| ConfigError::new(child(path, "endpoint"), e))?;
        if !self.path.starts_with('/') {
            return Err(ConfigError::new(child(path, "path"), "must start with /"));
        }
        Ok(())
    }
}

/// The operator's status page: per load-balancing exporter, its resolver,
/// the backends' ring and traffic shares, latencies and outcomes over the
/// last minute, and which backend owns a given key (`/route`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// Listen address, `host:port`. Default 127.0.0.1:55679 (the
    /// collector's zpages port): the page names every backend, so it
    /// listens on loopback unless told otherwise.
    pub endpoint: String,
}

impl Default for StatusConfig {
    fn default() -> StatusConfig {
        StatusConfig {
            endpoint: "127.0.0.1:55679".into(),
        }
    }
}

impl StatusConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        Endpoint::parse_listen(&self.endpoint)
            .map(|_| ())
            .map_err(|e| ConfigError::new(child(path, "endpoint"), e))
    }
}
