//! Delivery of one request to a backend pool: split by routing key, send
//! the parts concurrently, retry only the parts that failed.
//!
//! This fixes two failures of the collector's loadbalancing exporter:
//! a retry never re-sends a part a backend already accepted (no duplicates),
//! and a part is re-routed on the ring as it is at retry time, so data meant
//! for a backend that left the pool goes to the key's new owner instead of
//! being lost.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;

use super::{
    pool::{Pool, PoolHandle},
    retry::{Backoff, RetrySettings},
};
use crate::{
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, CountedFuture, malformed},
    routing::KeySpec,
    signal::Signal,
    telemetry::{Telemetry, metrics::ExporterCounters},
    wire::{self, Part, Splitter},
};

/// How an exporter picks backends for a request's items.
pub enum Routing {
    /// Split by key on the ring (the `loadbalancing` exporter).
    Keyed([Option<Splitter>; 3]),
    /// Send each request whole to the ring's owner of a per-request rotating
    /// hash (one-backend `otlp` exporters, and round-robin comparisons).
    Whole,
}

/// A consumer that delivers requests to a pool of backends.
pub struct Forwarder {
    name: String,
    pool: Arc<PoolHandle>,
    routing: Routing,
    retry: RetrySettings,
    rotation: AtomicU64,
    counters: ExporterCounters,
}

impl Forwarder {
    /// A forwarder named `name` (the exporter id, for metrics and logs).
    pub fn new(
        name: &str,
        pool: Arc<PoolHandle>,
        routing: Routing,
        retry: RetrySettings,
        telemetry: &Telemetry,
    ) -> Forwarder {
        Forwarder {
            name: name.to_string(),
            pool,
            routing,
            retry,
            rotation: AtomicU64::new(0),
            counters: ExporterCounters::new(telemetry, name),
        }
    }

    /// Routing by key for the given per-signal keys.
    pub fn keyed(keys: [Option<KeySpec>; 3]) -> Routing {
        let [t, m, l] = keys;
        Routing::Keyed([
            t.map(|k| Splitter::new(Signal::Traces, k)),
            m.map(|k| Splitter::new(Signal::Metrics, k)),
            l.map(|k| Splitter::new(Signal::Logs, k)),
        ])
    }

    /// The pool this forwarder sends to.
    pub fn pool(&self) -> &Arc<PoolHandle> {
        &self.pool
    }

    fn split(
        &self,
        signal: Signal,
        request: &Bytes,
        pool: &Pool,
    ) -> Result<wire::Split, ConsumeError> {
        // Rotates per request: keyless items (logs without a trace id) of one
        // request stay together, and successive requests spread over the ring.
        let keyless = self
            .rotation
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let mut route = |hash: u64| pool.route(hash).unwrap_or(0);
        match &self.routing {
            Routing::Keyed(splitters) => {
                let splitter = splitters[signal as usize].as_ref().ok_or_else(|| {
                    ConsumeError::InvalidArgument(format!(
                        "exporter {} does not take {signal}",
                        self.name
                    ))
                })?;
                splitter
                    .split(request, &mut route, keyless)
                    .map_err(|e| malformed(signal, e))
            }
            Routing::Whole => {
                let items = wire::count_items(signal, request).map_err(|e| malformed(signal, e))?;
                Ok(wire::Split {
                    parts: vec![Part {
                        backend: route(keyless),
                        request: request.clone(),
                        items,
                    }],
                    rejected: 0,
                    message: String::new(),
                })
            }
        }
    }

    /// Delivers one request; resolves when every part is accepted, rejected
    /// for good, or out of retries.
    pub async fn deliver(&self, signal: Signal, request: Bytes) -> Result<Ack, ConsumeError> {
        self.deliver_counted(signal, request).await.1
    }

    /// [`Forwarder::deliver`], also returning the request's item count, which
    /// the split computes anyway (0 for a malformed request).
    async fn deliver_counted(
        &self,
        signal: Signal,
        request: Bytes,
    ) -> (u64, Result<Ack, ConsumeError>) {
        let pool = self.pool.load();
        if pool.is_empty() {
            let unavailable =
                ConsumeError::Unavailable(format!("exporter {}: no backend available", self.name));
            return match wire::count_items(signal, &request) {
                Ok(items) => (items, Err(unavailable)),
                Err(e) => (0, Err(malformed(signal, e))),
            };
        }
        let split = match self.split(signal, &request, &pool) {
            Ok(split) => split,
            Err(e) => return (0, Err(e)),
        };
        let items = split.rejected + split.parts.iter().map(|p| p.items).sum::<u64>();
        (items, self.send_split(signal, pool, split).await)
    }

    /// Sends the parts of a split, retrying the ones that fail.
    async fn send_split(
        &self,
        signal: Signal,
        mut pool: Arc<Pool>,
        split: wire::Split,
    ) -> Result<Ack, ConsumeError> {
        let mut ack = Ack {
            rejected: split.rejected,
            message: split.message,
        };
        let mut pending = split.parts;
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let attempts = pending.iter().map(|part| {
                let backend = pool.backend(part.backend).cloned();
                let body = part.request.clone();
                async move {
                    match backend {
                        Some(b) => b.export(signal, body).await,
                        None => Err(super::backend::BackendError {
                            endpoint: Arc::from("?"),
                            message: "no backend at ring index".into(),
                            retryable: true,
                        }),
                    }
                }
            });
            let results = futures::future::join_all(attempts).await;
            let mut retry = Vec::new();
            let mut last_error = String::new();
            for (part, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(backend_ack) => {
                        self.counters.sent[signal as usize].increment(part.items);
                        ack.merge(backend_ack);
                    }
                    Err(e) if e.retryable => {
                        last_error = e.to_string();
                        retry.push(part);
                    }
                    Err(e) => {
                        tracing::warn!(exporter = %self.name, "backend refused data for good: {e}");
                        self.counters.failed[signal as usize].increment(part.items);
                        ack.merge(Ack {
                            rejected: part.items,
                            message: e.to_string(),
                        });
                    }
                }
            }
            if retry.is_empty() {
                return Ok(ack);
            }
            let Some(wait) = backoff.next_wait() else {
                let lost: u64 = retry.iter().map(|p| p.items).sum();
                self.counters.failed[signal as usize].increment(lost);
                tracing::warn!(exporter = %self.name, items = lost, "giving up: {last_error}");
                return Err(ConsumeError::Unavailable(format!(
                    "exporter {}: {lost} {} not delivered: {last_error}",
                    self.name,
                    signal.item_name()
                )));
            };
            tracing::debug!(exporter = %self.name, parts = retry.len(), ?wait, "retrying: {last_error}");
            tokio::time::sleep(wait).await;
            // Re-route against the pool as it is now: a part whose backend
            // left goes to the new owners of its keys.
            pool = self.pool.load();
            if pool.is_empty() {
                // Nothing to re-route to; the parts fail again and back off.
                pending = retry;
                continue;
            }
            pending = Vec::with_capacity(retry.len());
            for part in retry {
                let again = self.split(signal, &part.request, &pool)?;
                pending.extend(again.parts);
            }
        }
    }
}

impl Consumer for Forwarder {
    fn consume(&self, signal: Signal, request: Bytes) -> ConsumeFuture<'_> {
        Box::pin(self.deliver(signal, request))
    }

    fn count_and_consume(&self, signal: Signal, request: Bytes) -> CountedFuture<'_> {
        Box::pin(self.deliver_counted(signal, request))
    }
}
