//! Delivery of one request to a backend pool: split by routing key, send
//! the parts concurrently, retry only the parts that failed.
//!
//! This fixes two failures of the collector's loadbalancing exporter:
//! a retry never re-sends a part a backend already accepted (no duplicates),
//! and a part is re-routed on the ring as it is at retry time, so data meant
//! for a backend that left the pool goes to the key's new owner instead of
//! being lost.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::time::Instant;

use super::{
    backend::BackendError,
    pool::{Pool, PoolHandle},
    retry::Backoff,
};
use crate::{
    config::exporters::RetryConfig,
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, CountedFuture, Metadata, malformed},
    signal::{PerSignal, Signal},
    telemetry::{Telemetry, metrics::ExporterCounters},
    wire::{self, Part, Splitter},
};

/// How an exporter picks backends for a request's items.
pub enum Routing {
    /// Split by key on the ring (the `loadbalancing` exporter); `None` for
    /// a signal no pipeline of the exporter carries.
    Keyed(PerSignal<Option<Splitter>>),
    /// Send each request whole to the ring's owner of a per-request rotating
    /// hash (one-backend `otlp` exporters, and round-robin comparisons).
    Whole,
}

/// A consumer that delivers requests to a pool of backends.
pub struct Forwarder {
    name: String,
    pool: Arc<PoolHandle>,
    routing: Routing,
    retry: RetryConfig,
    attempt_timeout: Option<Duration>,
    rotation: AtomicU64,
    counters: ExporterCounters,
}

impl Forwarder {
    /// A forwarder named `name` (the exporter id, for metrics and logs).
    ///
    /// `attempt_timeout` bounds one attempt at delivering a request, all its
    /// parts together (the exporter helper's `timeout`); `retry`'s
    /// `max_elapsed_time` bounds the attempts and the waits between them.
    pub fn new(
        name: &str,
        pool: Arc<PoolHandle>,
        routing: Routing,
        retry: RetryConfig,
        attempt_timeout: Option<Duration>,
        telemetry: &Telemetry,
    ) -> Forwarder {
        Forwarder {
            name: name.to_string(),
            pool,
            routing,
            retry,
            attempt_timeout,
            rotation: AtomicU64::new(0),
            counters: ExporterCounters::new(telemetry, name),
        }
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
                let splitter = splitters[signal].as_ref().ok_or_else(|| {
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
    /// for good, or out of retries. Every backend call made for it carries
    /// its `metadata`, and only its data.
    pub async fn deliver(
        &self,
        signal: Signal,
        request: Bytes,
        metadata: Metadata,
    ) -> Result<Ack, ConsumeError> {
        self.deliver_counted(signal, request, metadata).await.1
    }

    /// [`Forwarder::deliver`], also returning the request's item count, which
    /// the split computes anyway (0 for a malformed request).
    async fn deliver_counted(
        &self,
        signal: Signal,
        request: Bytes,
        metadata: Metadata,
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
        (items, self.send_split(signal, pool, split, &metadata).await)
    }

    /// Sends the parts of a split, retrying the ones that fail.
    ///
    /// The parts are all cut from one client request, and a retried part is
    /// re-split on its own, never joined with another request's: so every
    /// call carries `metadata` (one tenant's headers) with only that
    /// tenant's data.
    async fn send_split(
        &self,
        signal: Signal,
        mut pool: Arc<Pool>,
        split: wire::Split,
        metadata: &Metadata,
    ) -> Result<Ack, ConsumeError> {
        let mut ack = Ack {
            rejected: split.rejected,
            message: split.message,
        };
        let mut pending = split.parts;
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let deadline = self.attempt_timeout.map(|t| Instant::now() + t);
            let attempts = pending.iter().map(|part| {
                let backend = pool.backend(part.backend).cloned();
                let (body, items) = (part.request.clone(), part.items);
                async move {
                    let Some(backend) = backend else {
                        return Err(BackendError {
                            endpoint: Arc::from("?"),
                            message: "no backend at ring index".into(),
                            retryable: true,
                            retry_after: None,
                        });
                    };
                    backend
                        .export(signal, body, items, deadline, metadata)
                        .await
                }
            });
            let results = futures::future::join_all(attempts).await;
            let mut retry = Vec::new();
            let mut last_error = String::new();
            let mut hint: Option<Duration> = None;
            for (part, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(backend_ack) => {
                        self.counters.sent[signal].increment(part.items);
                        ack.merge(backend_ack);
                    }
                    Err(e) if e.retryable => {
                        last_error = e.to_string();
                        hint = hint.max(e.retry_after);
                        retry.push(part);
                    }
                    Err(e) => {
                        tracing::warn!(exporter = %self.name, "backend refused data for good: {e}");
                        self.counters.failed[signal].increment(part.items);
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
            let Some(wait) = backoff.next_wait(hint) else {
                let lost: u64 = retry.iter().map(|p| p.items).sum();
                self.counters.failed[signal].increment(lost);
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
    fn consume(&self, signal: Signal, request: Bytes, metadata: Metadata) -> ConsumeFuture<'_> {
        Box::pin(self.deliver(signal, request, metadata))
    }

    fn count_and_consume(
        &self,
        signal: Signal,
        request: Bytes,
        metadata: Metadata,
    ) -> CountedFuture<'_> {
        Box::pin(self.deliver_counted(signal, request, metadata))
    }
}
