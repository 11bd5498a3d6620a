//! Exporters: where requests leave the process.
//!
//! - [`backend`]: one gRPC connection to one endpoint, sending bytes as they are.
//! - [`pool`]: the ring plus one backend per endpoint, swapped atomically.
//! - [`forward`]: split a request by key, send the parts, retry only failures.
//! - [`otlphttp`]: OTLP/HTTP to a single endpoint (second-tier exports).
//! - [`debug`]: print and count what arrives (the end of a demo or agent pipeline).
//! - [`retry`], [`queue`]: the collector's `retry_on_failure` and `sending_queue`.

pub mod backend;
pub mod debug;
pub mod forward;
pub mod otlphttp;
pub mod pool;
pub mod queue;
pub mod retry;

pub use backend::ClientSettings;
pub use forward::{Forwarder, Routing};
pub use pool::{Pool, PoolHandle};
