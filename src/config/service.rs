//! `service`: which components run, wired into which pipelines, and the
//! balancer's own telemetry.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::component::{ComponentId, PipelineId};
use super::de::{Unsupported, null_as_default, present};
use super::endpoint::Endpoint;
use super::error::{ConfigError, child, item};

/// Where the Prometheus metrics are served when nothing says otherwise.
pub const DEFAULT_METRICS_ADDRESS: &str = "0.0.0.0:8888";

/// `service`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Extensions to start, by id; each must be configured under `extensions`.
    #[serde(deserialize_with = "null_as_default")]
    pub extensions: Vec<ComponentId>,
    /// The balancer's own metrics and logs.
    #[serde(deserialize_with = "null_as_default")]
    pub telemetry: TelemetryConfig,
    /// Pipelines by id (`traces`, `metrics/2`, ...); at least one.
    #[serde(deserialize_with = "null_as_default")]
    pub pipelines: BTreeMap<PipelineId, PipelineConfig>,
}

/// One pipeline: receivers feed processors in order, then every exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receiver ids (at least one).
    #[serde(deserialize_with = "null_as_default")]
    pub receivers: Vec<ComponentId>,
    /// Processor ids, applied in order. Optional.
    #[serde(deserialize_with = "null_as_default")]
    pub processors: Vec<ComponentId>,
    /// Exporter ids (at least one); each gets every request.
    #[serde(deserialize_with = "null_as_default")]
    pub exporters: Vec<ComponentId>,
}

/// `service.telemetry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The Prometheus endpoint of the balancer's own metrics.
    #[serde(deserialize_with = "null_as_default")]
    pub metrics: MetricsTelemetryConfig,
    /// The balancer's own logs.
    #[serde(deserialize_with = "null_as_default")]
    pub logs: LogsTelemetryConfig,
    /// Not supported by otlp-lb.
    pub traces: Unsupported,
    /// Not supported by otlp-lb.
    pub resource: Unsupported,
}

/// How many self-metrics to produce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsLevel {
    /// No metrics endpoint at all.
    None,
    /// Essential metrics.
    Basic,
    /// Standard metrics. The default.
    #[default]
    Normal,
    /// Everything, including per-backend histograms.
    Detailed,
}

/// `service.telemetry.metrics`. With neither `address` nor `readers`, metrics
/// are served on 0.0.0.0:8888, as in the collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsTelemetryConfig {
    /// `none` turns the endpoint off. Default normal.
    pub level: MetricsLevel,
    /// Listen address `host:port` (the collector's older form).
    pub address: Option<String>,
    /// Metric readers (the collector's newer form); one Prometheus pull reader.
    #[serde(deserialize_with = "null_as_default")]
    pub readers: Vec<MetricReaderConfig>,
}

/// One entry of `readers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricReaderConfig {
    /// A pull (scrape) reader.
    #[serde(deserialize_with = "present")]
    pub pull: Option<PullReaderConfig>,
    /// Not supported by otlp-lb: metrics are pulled only.
    pub periodic: Unsupported,
}

/// `pull`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullReaderConfig {
    /// The exporter that serves the scrape.
    #[serde(deserialize_with = "null_as_default")]
    pub exporter: PullExporterConfig,
}

/// `pull.exporter`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullExporterConfig {
    /// A Prometheus text endpoint.
    #[serde(deserialize_with = "present")]
    pub prometheus: Option<PrometheusExporterConfig>,
}

/// `prometheus`: where to serve `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusExporterConfig {
    /// Listen host (required).
    pub host: Option<String>,
    /// Listen port (required).
    pub port: Option<u16>,
}

/// Log level of the balancer's own logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debug and above.
    Debug,
    /// Info and above. The default.
    #[default]
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// The level as a `tracing` filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Format of the balancer's own logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    /// Human-readable lines. The default.
    #[default]
    Console,
    /// One JSON object per line.
    Json,
}

/// `service.telemetry.logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsTelemetryConfig {
    /// Minimum level; `RUST_LOG`, when set, wins. Default info.
    pub level: LogLevel,
    /// `console` or `json`. Default console.
    pub encoding: LogEncoding,
}

impl MetricsTelemetryConfig {
    /// The address to serve Prometheus metrics on, `host:port`; `None` when
    /// `level: none`.
    pub fn effective_address(&self) -> Option<String> {
        if self.level == MetricsLevel::None {
            return None;
        }
        if let Some(address) = &self.address {
            return Some(address.clone());
        }
        let prometheus = self
            .readers
            .iter()
            .find_map(|r| r.pull.as_ref()?.exporter.prometheus.as_ref());
        match prometheus {
            Some(PrometheusExporterConfig {
                host: Some(host),
                port: Some(port),
            }) => Some(Endpoint::new(host, *port).to_string()),
            _ => Some(DEFAULT_METRICS_ADDRESS.to_owned()),
        }
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if let Some(address) = &self.address {
            if !self.readers.is_empty() {
                return Err(ConfigError::new(
                    child(path, "address"),
                    "set either address or readers, not both",
                ));
            }
            Endpoint::parse_listen(address)
                .map_err(|e| ConfigError::new(child(path, "address"), e))?;
        }
        let readers = child(path, "readers");
        if self.readers.len() > 1 {
            return Err(ConfigError::new(
                item(&readers, 1),
                "otlp-lb serves one Prometheus endpoint; list one reader",
            ));
        }
        for (i, reader) in self.readers.iter().enumerate() {
            let path = item(&readers, i);
            let Some(pull) = &reader.pull else {
                return Err(ConfigError::new(child(&path, "pull"), "required"));
            };
            let path = child(&child(&path, "pull"), "exporter");
            let Some(prometheus) = &pull.exporter.prometheus else {
                return Err(ConfigError::new(child(&path, "prometheus"), "required"));
            };
            let path = child(&path, "prometheus");
            let Some(host) = &prometheus.host else {
                return Err(ConfigError::new(child(&path, "host"), "required"));
            };
            let Some(port) = prometheus.port else {
                return Err(ConfigError::new(child(&path, "port"), "required"));
            };
            Endpoint::parse_listen(&Endpoint::new(host, port).to_string())
                .map_err(|e| ConfigError::new(child(&path, "host"), e))?;
        }
        Ok(())
    }
}

impl ServiceConfig {
    /// Checks what `service` says about itself; references to components
    /// are checked by [`super::Config::validate`].
    pub(crate) fn validate_own(&self) -> Result<(), ConfigError> {
        self.telemetry
            .metrics
            .validate("service.telemetry.metrics")?;
        if self.pipelines.is_empty() {
            return Err(ConfigError::new(
                "service.pipelines",
                "at least one pipeline is required",
            ));
        }
        Ok(())
    }
}
