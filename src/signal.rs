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

/// One value per signal, indexed by [`Signal`]: the one container for
/// per-signal state (counters, routing keys, consumers, URLs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerSignal<T> {
    /// Traces, metrics, logs, in [`Signal::ALL`] order.
    values: [T; 3],
}

impl<T> PerSignal<T> {
    /// The values for traces, metrics and logs.
    pub const fn new(traces: T, metrics: T, logs: T) -> PerSignal<T> {
        PerSignal {
            values: [traces, metrics, logs],
        }
    }

    /// A value for each signal, from `f`.
    pub fn from_fn(mut f: impl FnMut(Signal) -> T) -> PerSignal<T> {
        PerSignal {
            values: Signal::ALL.map(&mut f),
        }
    }

    /// Applies `f` to each signal's value.
    pub fn map<U>(self, mut f: impl FnMut(Signal, T) -> U) -> PerSignal<U> {
        let [t, m, l] = self.values;
        PerSignal {
            values: [
                f(Signal::Traces, t),
                f(Signal::Metrics, m),
                f(Signal::Logs, l),
            ],
        }
    }

    /// Each signal with its value.
    pub fn iter(&self) -> impl Iterator<Item = (Signal, &T)> {
        Signal::ALL.into_iter().zip(self.values.iter())
    }
}

impl<T> std::ops::Index<Signal> for PerSignal<T> {
    type Output = T;

    fn index(&self, signal: Signal) -> &T {
        &self.values[signal.position()]
    }
}

impl<T> std::ops::IndexMut<Signal> for PerSignal<T> {
    fn index_mut(&mut self, signal: Signal) -> &mut T {
        &mut self.values[signal.position()]
    }
}

impl Signal {
    /// The signal's place in [`Signal::ALL`]; private so that per-signal
    /// state goes through [`PerSignal`].
    fn position(self) -> usize {
        match self {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        }
    }
}
