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
    config::exporters::{QueueConfig, QueueSizer},
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, CountedFuture, Metadata, malformed},
    signal::{PerSignal, Signal},
    telemetry::{Telemetry, metrics::names},
    wire,
};

struct Job {
    signal: Signal,
    request: Bytes,
    /// The client request's metadata: a job is one client request, so it
    /// goes out under its own tenant's headers.
    metadata: Metadata,
    /// The job's room in the queue, in sizer units; given back when the
    /// job leaves the queue.
    permit: OwnedSemaphorePermit,
}

/// A queue in front of another consumer.
pub struct Queue {
    name: String,
    config: QueueConfig,
    room: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Job>,
    size: Gauge,
    enqueue_failed: PerSignal<Counter>,
}

impl Queue {
    /// Starts `config.num_consumers` workers feeding `inner`. The workers
    /// stop once the returned queue is dropped and everything queued is sent;
    /// the returned join handle resolves then.
    pub fn start(
        name: &str,
        config: &QueueConfig,
        inner: Arc<dyn Consumer>,
        telemetry: &Telemetry,
    ) -> (Queue, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let labels = [("exporter", name)];
        let capacity = Self::capacity(config);
        telemetry
            .gauge(names::EXPORTER_QUEUE_CAPACITY, &labels)
            .set(f64::from(capacity));
        let size = telemetry.gauge(names::EXPORTER_QUEUE_SIZE, &labels);
        let mut workers = Vec::new();
        for _ in 0..config.num_consumers.max(1) {
            let rx = rx.clone();
            let inner = inner.clone();
            let size = size.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let job = { rx.lock().await.recv().await };
                    let Some(job) = job else { break };
                    size.decrement(f64::from(job.permit.num_permits() as u32));
                    // Failures are counted and logged by the exporter itself.
                    let _ = inner.consume(job.signal, job.request, job.metadata).await;
                }
            }));
        }
        let done = tokio::spawn(async move {
            futures::future::join_all(workers).await;
        });
        let enqueue_failed = telemetry.per_signal_counter(names::EXPORTER_ENQUEUE_FAILED, &labels);
        let queue = Queue {
            name: name.to_string(),
            room: Arc::new(Semaphore::new(capacity as usize)),
            config: config.clone(),
            tx,
            size,
            enqueue_failed,
        };
        (queue, done)
    }

    /// The capacity in sizer units, as the semaphore can hold it.
    fn capacity(config: &QueueConfig) -> u32 {
        config.queue_size.clamp(1, u64::from(u32::MAX >> 3)) as u32
    }

    /// Queues a request of `items` items (counted once, by the caller).
    async fn enqueue(
        &self,
        signal: Signal,
        request: Bytes,
        items: u64,
        metadata: Metadata,
    ) -> Result<Ack, ConsumeError> {
        let cost = match self.config.sizer {
            QueueSizer::Requests => 1,
            QueueSizer::Items => items,
            QueueSizer::Bytes => request.len() as u64,
        }
        // A request larger than the whole queue still fits when it is empty.
        .clamp(1, u64::from(Self::capacity(&self.config))) as u32;
        let permit = if self.config.block_on_overflow {
            self.room.clone().acquire_many_owned(cost).await.ok()
        } else {
            self.room.clone().try_acquire_many_owned(cost).ok()
        };
        let Some(permit) = permit else {
            self.enqueue_failed[signal].increment(items);
            return Err(ConsumeError::ResourceExhausted(format!(
                "exporter {}: sending queue is full",
                self.name
            )));
        };
        self.size.increment(f64::from(cost));
        self.tx
            .send(Job {
                signal,
                request,
                metadata,
                permit,
            })
            .map_err(|_| {
                ConsumeError::Unavailable(format!("exporter {}: shutting down", self.name))
            })?;
        Ok(Ack::ok())
    }
}

impl Consumer for Queue {
    fn consume(&self, signal: Signal, request: Bytes, metadata: Metadata) -> ConsumeFuture<'_> {
        Box::pin(async move {
            let items = wire::count_items(signal, &request).map_err(|e| malformed(signal, e))?;
            self.enqueue(signal, request, items, metadata).await
        })
    }

    /// Counts once for both the receiver's counters and the `items` sizer.
    fn count_and_consume(
        &self,
        signal: Signal,
        request: Bytes,
        metadata: Metadata,
    ) -> CountedFuture<'_> {
        Box::pin(async move {
            match wire::count_items(signal, &request) {
                Err(e) => (0, Err(malformed(signal, e))),
                Ok(0) => (0, Ok(Ack::ok())),
                Ok(items) => (items, self.enqueue(signal, request, items, metadata).await),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::exporters::QueueSizer;

    /// Holds every request until released.
    struct Gate(tokio::sync::Semaphore);

    impl Consumer for Gate {
        fn consume(&self, _: Signal, _: Bytes, _: Metadata) -> ConsumeFuture<'_> {
            Box::pin(async move {
                let _ = self.0.acquire().await.map(|p| p.forget());
                Ok(Ack::ok())
            })
        }
    }

    fn gauge(telemetry: &Telemetry, name: &str) -> f64 {
        telemetry
            .render()
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(-1.0)
    }

    #[tokio::test]
    async fn size_and_capacity_are_in_the_sizers_unit() {
        let telemetry = Telemetry::new();
        let gate = Arc::new(Gate(tokio::sync::Semaphore::new(0)));
        let config = QueueConfig {
            num_consumers: 1,
            queue_size: 100,
            sizer: QueueSizer::Items,
            ..QueueConfig::default()
        };
        let (queue, drained) = Queue::start("q", &config, gate.clone(), &telemetry);
        queue
            .enqueue(Signal::Traces, Bytes::from_static(b"a"), 3, Metadata::NONE)
            .await
            .unwrap();
        // The worker takes the first request and waits at the gate.
        tokio::task::yield_now().await;
        queue
            .enqueue(Signal::Traces, Bytes::from_static(b"b"), 5, Metadata::NONE)
            .await
            .unwrap();
        assert_eq!(gauge(&telemetry, names::EXPORTER_QUEUE_CAPACITY), 100.0);
        assert_eq!(gauge(&telemetry, names::EXPORTER_QUEUE_SIZE), 5.0);
        // 92 items of room are left: 3 in flight, 5 queued.
        let err = queue
            .enqueue(Signal::Traces, Bytes::from_static(b"c"), 93, Metadata::NONE)
            .await
            .unwrap_err();
        assert!(matches!(err, ConsumeError::ResourceExhausted(_)), "{err}");
        gate.0.add_permits(2);
        drop(queue);
        drained.await.unwrap();
        assert_eq!(gauge(&telemetry, names::EXPORTER_QUEUE_SIZE), 0.0);
    }
}
