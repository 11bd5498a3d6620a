//! Self-observability: Prometheus `/metrics` with the collector's metric
//! names, the `health_check` extension, and the process's own logs.

pub mod health;
pub mod logs;
pub mod metrics;

pub use self::metrics::Telemetry;
