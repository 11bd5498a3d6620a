//! `loadbalancing`: the first-tier exporter that splits each request by
//! routing key and sends every part to the backend the ring picks for it.

use std::time::Duration;

use serde::Deserialize;

use super::otlp::{EndpointRule, OtlpExporterConfig};
use super::resolver::ResolverConfig;
use super::settings::{QueueConfig, RetryConfig};
use crate::config::de::null_as_default;
use crate::config::duration;
use crate::config::error::{ConfigError, child, item};
use crate::signal::Signal;

/// The one routing key type: the config's `routing_key` deserializes
/// straight into it.
pub use crate::routing::RoutingKey;

/// `protocol`: how backends are spoken to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// The OTLP/gRPC exporter settings used for every backend; `otlp:` with
    /// no value means all defaults.
    #[serde(deserialize_with = "null_as_default")]
    pub otlp: OtlpExporterConfig,
}

/// The `loadbalancing` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancingExporterConfig {
    /// What to split by. Default per pipeline signal: traceID (traces, logs),
    /// service (metrics); see [`LoadBalancingExporterConfig::routing_key_for`].
    pub routing_key: Option<RoutingKey>,
    /// Attribute names whose values form the key; only with `routing_key:
    /// attributes`, and then required. Looked up in resource, scope, then item
    /// attributes; `span.name` and `span.kind` are pseudo attributes.
    #[serde(deserialize_with = "null_as_default")]
    pub routing_attributes: Vec<String>,
    /// Deadline of one incoming request's whole fan-out. Default 5s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Retry at the exporter level. Off when the block is absent; when the
    /// block is present, `enabled` defaults to true.
    #[serde(deserialize_with = "null_as_default")]
    pub retry_on_failure: RetryConfig,
    /// Queue at the exporter level. Off when the block is absent; when the
    /// block is present, `enabled` defaults to true.
    #[serde(deserialize_with = "null_as_default")]
    pub sending_queue: QueueConfig,
    /// Backend connection settings.
    #[serde(deserialize_with = "null_as_default")]
    pub protocol: ProtocolConfig,
    /// Where the backends come from (required).
    #[serde(deserialize_with = "null_as_default")]
    pub resolver: ResolverConfig,
}

impl Default for LoadBalancingExporterConfig {
    fn default() -> LoadBalancingExporterConfig {
        LoadBalancingExporterConfig {
            routing_key: None,
            routing_attributes: Vec::new(),
            timeout: Duration::from_secs(5),
            retry_on_failure: RetryConfig::disabled(),
            sending_queue: QueueConfig::disabled(),
            protocol: ProtocolConfig::default(),
            resolver: ResolverConfig::default(),
        }
    }
}

impl LoadBalancingExporterConfig {
    /// The routing key for a pipeline of `signal`: `routing_key`, or the
    /// signal's default.
    pub fn routing_key_for(&self, signal: Signal) -> RoutingKey {
        self.routing_key
            .unwrap_or_else(|| RoutingKey::default_for(signal))
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let attributes = child(path, "routing_attributes");
        match (self.routing_key, self.routing_attributes.is_empty()) {
            (Some(RoutingKey::Attributes), true) => {
                return Err(ConfigError::new(
                    attributes,
                    "required with routing_key: attributes (list at least one attribute)",
                ));
            }
            (Some(RoutingKey::Attributes), false) => {
                if let Some(i) = self.routing_attributes.iter().position(String::is_empty) {
                    return Err(ConfigError::new(item(&attributes, i), "must not be empty"));
                }
            }
            (_, false) => {
                return Err(ConfigError::new(
                    attributes,
                    "only used with routing_key: attributes; remove it or set routing_key",
                ));
            }
            (_, true) => {}
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(child(path, "timeout"), "must be positive"));
        }
        self.retry_on_failure
            .validate(&child(path, "retry_on_failure"))?;
        self.sending_queue.validate(&child(path, "sending_queue"))?;
        self.protocol.otlp.validate(
            &child(&child(path, "protocol"), "otlp"),
            EndpointRule::SetByResolver,
        )?;
        self.resolver.validate(&child(path, "resolver"))
    }

    /// Checks that the routing key fits a pipeline of `signal` using this exporter.
    pub(crate) fn validate_signal(
        &self,
        path: &str,
        signal: Signal,
        pipeline: &str,
    ) -> Result<(), ConfigError> {
        let key = self.routing_key_for(signal);
        let valid = RoutingKey::valid_for(signal);
        if valid.contains(&key) {
            return Ok(());
        }
        let names: Vec<&str> = valid.iter().map(|k| k.as_str()).collect();
        Err(ConfigError::new(
            child(path, "routing_key"),
            format!(
                "\"{key}\" does not apply to {signal} (used by service.pipelines.{pipeline}); \
                 {signal} can be routed by: {}",
                names.join(", ")
            ),
        ))
    }
}
