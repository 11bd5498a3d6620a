//! Exporters: where requests leave the process.
//!
//! Each exporter builds itself from its config type
//! ([`ExporterConfig::build`]); the pipeline only wires what comes back.
//!
//! - [`loadbalancing`]: the first tier's exporter: a pool that follows its
//!   resolver, and a forwarder that splits by routing key.
//! - [`otlp`]: OTLP/gRPC to one endpoint (a pool of one).
//! - [`backend`]: one gRPC connection to one endpoint, sending bytes as they are.
//! - [`pool`]: the ring plus one backend per endpoint, swapped atomically;
//!   the one consumer of its resolver's updates.
//! - [`forward`]: split a request by key, send the parts, retry only failures.
//! - [`otlphttp`]: OTLP/HTTP to a single endpoint (second-tier exports).
//! - [`debug`]: print and count what arrives (the end of a demo or agent pipeline).
//! - [`retry`], [`queue`]: the collector's `retry_on_failure` and `sending_queue`.

pub mod backend;
pub mod debug;
pub mod forward;
pub mod loadbalancing;
pub mod otlp;
pub mod otlphttp;
pub mod pool;
pub mod queue;
pub mod retry;
pub mod tls;

use std::{collections::BTreeSet, sync::Arc};

pub use backend::ClientSettings;
pub use forward::{Forwarder, Routing};
pub use pool::{Pool, PoolHandle};

use crate::{
    component::{BuildContext, BuildError},
    config::exporters::{ExporterConfig, QueueConfig},
    consumer::Consumer,
    signal::Signal,
};

/// A built exporter: the consumer pipelines send to, and what tests, the
/// demo and the service look at.
pub struct Exporter {
    /// Takes the pipelines' requests (behind the sending queue, if any).
    pub consumer: Arc<dyn Consumer>,
    /// The backend pool of a `loadbalancing` or `otlp` exporter.
    pub pool: Option<Arc<PoolHandle>>,
    /// A `debug` exporter, whose counts the demo prints.
    pub debug: Option<Arc<debug::Debug>>,
}

impl ExporterConfig {
    /// Builds the exporter for pipelines of `signals`. Awaits what its
    /// resolver needs to start with a ring (see [`PoolHandle::follow`]).
    pub async fn build(
        &self,
        cx: &mut BuildContext<'_>,
        signals: &BTreeSet<Signal>,
    ) -> Result<Exporter, BuildError> {
        let (exporter, queue) = match self {
            ExporterConfig::Debug(config) => {
                let debug = config.build(cx)?;
                return Ok(Exporter {
                    consumer: debug.clone(),
                    pool: None,
                    debug: Some(debug),
                });
            }
            ExporterConfig::LoadBalancing(config) => {
                (config.build(cx, signals).await?, &config.sending_queue)
            }
            ExporterConfig::Otlp(config) => (config.build(cx).await?, &config.sending_queue),
            ExporterConfig::OtlpHttp(config) => {
                let exporter = config.build(cx)?;
                let consumer: Arc<dyn Consumer> = exporter;
                (
                    Exporter {
                        consumer,
                        pool: None,
                        debug: None,
                    },
                    &config.sending_queue,
                )
            }
        };
        Ok(Exporter {
            consumer: with_queue(cx, exporter.consumer, queue),
            ..exporter
        })
    }
}

/// Puts a sending queue in front of `inner` when `queue` enables one; its
/// workers are drains the service awaits at shutdown.
fn with_queue(
    cx: &mut BuildContext<'_>,
    inner: Arc<dyn Consumer>,
    queue: &QueueConfig,
) -> Arc<dyn Consumer> {
    if !queue.enabled {
        return inner;
    }
    let (queue, drained) = queue::Queue::start(cx.id.as_str(), queue, inner, cx.telemetry);
    cx.tasks.drains.push(drained);
    Arc::new(queue)
}
