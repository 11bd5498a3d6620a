//! The three OTLP signals and the names the collector uses for their items.

use std::fmt;

/// One of the three OTLP signals. Every request that crosses a stage boundary
/// is the protobuf encoding of that signal's `Export*ServiceRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `ExportTraceServiceRequest`; items are spans.
    Traces,
    /// `ExportMetricsServiceRequest`; items are data points.
    Metrics,
    /// `ExportLogsServiceRequest`; items are log records.
    Logs,
}

impl Signal {
    /// All signals, in pipeline-name order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The pipeline type name in `service.pipelines` (`traces`, `metrics`, `logs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The item noun in collector metric names (`spans`, `metric_points`, `log_records`).
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }

    /// The gRPC method path of the signal's `Export` call.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }

    /// The OTLP/HTTP path (`/v1/traces`, ...).
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }

    /// Parses a pipeline id (`traces`, `traces/NAME`) into its signal.
    pub fn from_pipeline_id(id: &str) -> Option<Signal> {
        let ty = id.split_once('/').map_or(id, |(ty, _)| ty);
        Signal::ALL.into_iter().find(|s| s.as_str() == ty)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
