//! Self-observability: Prometheus `/metrics` with the collector's metric
//! names, the `health_check` extension, the `otlp_lb_status` page with the
//! per-backend call windows it shows, and the process's own logs.

pub mod health;
pub mod logs;
pub mod metrics;
pub mod status;
pub mod window;

pub use self::metrics::Telemetry;
