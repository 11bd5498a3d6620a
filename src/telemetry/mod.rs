//! Self-observability: Prometheus `/metrics` with the collector's metric
//! names, and the `health_check` extension.

pub mod health;
pub mod metrics;

pub use self::metrics::Telemetry;
