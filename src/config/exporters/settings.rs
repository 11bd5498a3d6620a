//! Settings every exporter shares with the collector's exporter helper:
//! compression, client TLS, retry and the sending queue.

use std::time::Duration;

use serde::Deserialize;

use crate::config::de::Unsupported;
use crate::config::duration;
use crate::config::error::{ConfigError, child};

/// Payload compression towards a backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip, the collector's default.
    #[default]
    Gzip,
    /// zstd.
    Zstd,
}

/// Client TLS towards a backend. The default is TLS with the system roots
/// (`insecure: false`), as in the collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// Plain text (no TLS) when true. Default false.
    pub insecure: bool,
    /// PEM file of the CA(s) that sign backend certificates; system roots when unset.
    pub ca_file: Option<String>,
    /// PEM client certificate for mutual TLS; needs `key_file`.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<String>,
    /// Name checked against the backend certificate instead of the endpoint host.
    pub server_name_override: Option<String>,
    /// Encrypt but do not verify the backend's certificate (its signer or
    /// its name). Default false; logged as a warning at start.
    pub insecure_skip_verify: bool,
    /// Not supported by otlp-lb; use `ca_file`.
    pub ca_pem: Unsupported,
    /// Not supported by otlp-lb; use `cert_file`.
    pub cert_pem: Unsupported,
    /// Not supported by otlp-lb; use `key_file`.
    pub key_pem: Unsupported,
    /// Not supported by otlp-lb.
    pub min_version: Unsupported,
    /// Not supported by otlp-lb.
    pub max_version: Unsupported,
    /// Not supported by otlp-lb: certificates are read once at start.
    pub reload_interval: Unsupported,
}

impl ClientTlsConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(ConfigError::new(
                child(path, "key_file"),
                "required when cert_file is set",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                child(path, "cert_file"),
                "required when key_file is set",
            )),
            _ => Ok(()),
        }
    }
}

/// Retry of failed exports with exponential backoff.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retry failed exports. Default true.
    pub enabled: bool,
    /// Wait before the first retry. Default 5s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub initial_interval: Duration,
    /// Upper bound of the wait between retries. Default 30s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_interval: Duration,
    /// Give up on a request after this long; 0 retries forever. Default 300s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_elapsed_time: Duration,
    /// Factor applied to the wait after each retry. Default 1.5.
    pub multiplier: f64,
    /// Jitter: each wait is drawn from `wait * (1 ± randomization_factor)`. Default 0.5.
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

impl RetryConfig {
    /// The defaults with `enabled: false`: what the `loadbalancing` exporter
    /// uses at its top level when the block is absent.
    pub fn disabled() -> RetryConfig {
        RetryConfig {
            enabled: false,
            ..RetryConfig::default()
        }
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::new(
                child(path, "multiplier"),
                format!("must be at least 1, got {}", self.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            return Err(ConfigError::new(
                child(path, "randomization_factor"),
                format!("must be between 0 and 1, got {}", self.randomization_factor),
            ));
        }
        if self.initial_interval > self.max_interval {
            return Err(ConfigError::new(
                child(path, "initial_interval"),
                "must not exceed max_interval",
            ));
        }
        Ok(())
    }
}

/// What `queue_size` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueSizer {
    /// Export requests. The default.
    #[default]
    Requests,
    /// Items: spans, data points or log records.
    Items,
    /// Encoded bytes.
    Bytes,
}

/// The in-memory queue in front of an exporter, drained by `num_consumers`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue exports instead of sending them inline. Default true.
    pub enabled: bool,
    /// Concurrent senders draining the queue. Default 10.
    pub num_consumers: usize,
    /// Capacity, in units of `sizer`. Default 1000.
    pub queue_size: u64,
    /// What `queue_size` counts. Default `requests`.
    pub sizer: QueueSizer,
    /// When full, make the caller wait (true) or refuse the data (false). Default false.
    pub block_on_overflow: bool,
    /// Not supported by otlp-lb: the queue is in memory only.
    pub storage: Unsupported,
    /// Not supported by otlp-lb.
    pub batch: Unsupported,
    /// Not supported by otlp-lb.
    pub wait_for_result: Unsupported,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: QueueSizer::Requests,
            block_on_overflow: false,
            storage: Unsupported,
            batch: Unsupported,
            wait_for_result: Unsupported,
        }
    }
}

impl QueueConfig {
    /// The defaults with `enabled: false`: what the `loadbalancing` exporter
    /// uses at its top level when the block is absent.
    pub fn disabled() -> QueueConfig {
        QueueConfig {
            enabled: false,
            ..QueueConfig::default()
        }
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.num_consumers == 0 {
            return Err(ConfigError::new(
                child(path, "num_consumers"),
                "must be at least 1",
            ));
        }
        if self.queue_size == 0 {
            return Err(ConfigError::new(
                child(path, "queue_size"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
