//! The collector's `sending_queue`: a bounded in-memory queue in front of an
//! exporter, drained by `num_consumers` workers.
//!
//! With a queue the client's ack means "queued", not "delivered" (as in the
//! collector). Requests are split when a worker takes them, against the ring
//! of that moment, so queued data follows the pool as it changes instead of
//! being lost with a backend that left. On shutdown the workers drain what is
//! queued before the process exits.

use std::sync::Arc;

use bytes::Bytes;
use metrics::{Counter, Gauge};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::{
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, CountedFuture, malformed},
    signal::Signal,
    telemetry::Telemetry,
    wire,
};

/// What the queue's capacity counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizer {
    /// Requests.
    Requests,
    /// Items (spans, data points, log records).
    Items,
    /// Encoded request bytes.
    Bytes,
}

/// The collector's `sending_queue` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// Workers taking requests off the queue.
    pub num_consumers: usize,
    /// Capacity, in `sizer` units.
    pub queue_size: usize,
    /// What the capacity counts.
    pub sizer: Sizer,
    /// Wait for room instead of refusing when full.
    pub block_on_overflow: bool,
}

impl Default for QueueSettings {
    /// The collector's defaults.
    fn default() -> Self {
        QueueSettings {
            num_consumers: 10,
            queue_size: 1000,
            sizer: Sizer::Requests,
            block_on_overflow: false,
        }
    }
}

struct Job {
    signal: Signal,
    request: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// A queue in front of another consumer.
pub struct Queue {
    name: String,
    settings: QueueSettings,
    room: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Job>,
    size: Gauge,
    enqueue_failed: [Counter; 3],
}

impl Queue {
    /// Starts `settings.num_consumers` workers feeding `inner`. The workers
    /// stop once the returned queue is dropped and everything queued is sent;
    /// the returned join handle resolves then.
    pub fn start(
        name: &str,
        settings: QueueSettings,
        inner: Arc<dyn Consumer>,
        telemetry: &Telemetry,
    ) -> (Queue, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let labels = [("exporter", name)];
        telemetry
            .gauge("otelcol_exporter_queue_capacity", &labels)
            .set(settings.queue_size as f64);
        let size = telemetry.gauge("otelcol_exporter_queue_size", &labels);
        let mut workers = Vec::new();
        for _ in 0..settings.num_consumers.max(1) {
            let rx = rx.clone();
            let inner = inner.clone();
            let size = size.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let job = { rx.lock().await.recv().await };
                    let Some(job) = job else { break };
                    size.decrement(1.0);
                    // Failures are counted and logged by the exporter itself.
                    let _ = inner.consume(job.signal, job.request).await;
                }
            }));
        }
        let done = tokio::spawn(async move {
            futures::future::join_all(workers).await;
        });
        let enqueue_failed = Signal::ALL.map(|s| {
            let metric: &'static str = match s {
                Signal::Traces => "otelcol_exporter_enqueue_failed_spans_total",
                Signal::Metrics => "otelcol_exporter_enqueue_failed_metric_points_total",
                Signal::Logs => "otelcol_exporter_enqueue_failed_log_records_total",
            };
            telemetry.counter(metric, &labels)
        });
        let queue = Queue {
            name: name.to_string(),
            room: Arc::new(Semaphore::new(settings.queue_size.max(1))),
            settings,
            tx,
            size,
            enqueue_failed,
        };
        (queue, done)
    }

    /// Queues a request of `items` items (counted once, by the caller).
    async fn enqueue(
        &self,
        signal: Signal,
        request: Bytes,
        items: u64,
    ) -> Result<Ack, ConsumeError> {
        let cost = match self.settings.sizer {
            Sizer::Requests => 1,
            Sizer::Items => items,
            Sizer::Bytes => request.len() as u64,
        }
        // A request larger than the whole queue still fits when it is empty.
        .clamp(
            1,
            self.settings.queue_size.clamp(1, u32::MAX as usize) as u64,
        ) as u32;
        let permit = if self.settings.block_on_overflow {
            self.room.clone().acquire_many_owned(cost).await.ok()
        } else {
            self.room.clone().try_acquire_many_owned(cost).ok()
        };
        let Some(permit) = permit else {
            self.enqueue_failed[signal as usize].increment(items);
            return Err(ConsumeError::ResourceExhausted(format!(
                "exporter {}: sending queue is full",
                self.name
            )));
        };
        self.size.increment(1.0);
        self.tx
            .send(Job {
                signal,
                request,
                _permit: permit,
            })
            .map_err(|_| {
                ConsumeError::Unavailable(format!("exporter {}: shutting down", self.name))
            })?;
        Ok(Ack::ok())
    }
}

impl Consumer for Queue {
    fn consume(&self, signal: Signal, request: Bytes) -> ConsumeFuture<'_> {
        Box::pin(async move {
            let items = wire::count_items(signal, &request).map_err(|e| malformed(signal, e))?;
            self.enqueue(signal, request, items).await
        })
    }

    /// Counts once for both the receiver's counters and the `items` sizer.
    fn count_and_consume(&self, signal: Signal, request: Bytes) -> CountedFuture<'_> {
        Box::pin(async move {
            match wire::count_items(signal, &request) {
                Err(e) => (0, Err(malformed(signal, e))),
                Ok(0) => (0, Ok(Ack::ok())),
                Ok(items) => (items, self.enqueue(signal, request, items).await),
            }
        })
    }
}
