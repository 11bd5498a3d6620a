//! `cumulativetodelta`: turns monotonic cumulative sums, histograms and
//! exponential histograms into deltas, with the collector's semantics.
//!
//! It owns the last point of every stream it converts (see `identity.rs` for
//! what a stream is) and nothing else. Metrics it does not convert pass
//! through untouched, a request with nothing to convert is forwarded as the
//! bytes that arrived, and a converted metric never keeps a cumulative point:
//! each point becomes a delta or is dropped.
//!
//! Ordering: a point is applied to its stream under the lock of the stream's
//! shard, so a stream's points are applied one at a time in the order they
//! reach that lock, each measured against the one applied before it. A point
//! older than the stream's last point (it lost a race with a later request,
//! or the client sent it late) is dropped as `out_of_order` rather than taken
//! for a counter reset, which would count the same increase twice; the delta
//! of the newer point already covers its window. Every delta carries its own
//! window (start = the previous point's time), so downstream can place the
//! deltas of racing requests in whichever order they arrive.
//!
//! Start-time and `max_staleness` decisions use the processor's clock
//! (tokio's, so tests can pause it); the points' own timestamps only order a
//! stream's points.

mod convert;
mod filter;
mod identity;
mod streams;

#[cfg(test)]
mod tests;

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use metrics::{Counter, Gauge};
use prost::Message;
use tokio::time::Instant;

pub use self::filter::FilterError;
use self::{
    convert::{CumulativePoint, Verdict},
    filter::Selection,
    identity::KeyBuilder,
    streams::{Stream, Streams},
};
use crate::{
    component::{BuildContext, BuildError},
    config::processors::{CumulativeToDeltaConfig, InitialValue},
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, Metadata},
    proto::{
        collector::metrics::v1::ExportMetricsServiceRequest,
        metrics::v1::{AggregationTemporality, Metric, metric::Data},
    },
    signal::Signal,
    telemetry::{Telemetry, metrics::names},
};

/// How often the summary line is logged (when anything changed) and stale
/// streams are looked for.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The metric types the processor converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sum,
    Histogram,
    ExponentialHistogram,
}

/// Why a point of a converted metric was not forwarded: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// A stream's first point, held back by `initial_value`.
    Initial,
    /// The value went down: the point is the stream's new baseline.
    Reset,
    /// A histogram's buckets changed: the point is the new baseline.
    BucketMismatch,
    /// Flagged "no recorded value", or holding no value at all.
    NoRecordedValue,
    /// Not newer than the stream's last point.
    OutOfOrder,
}

impl Reason {
    const ALL: [Reason; 5] = [
        Reason::Initial,
        Reason::Reset,
        Reason::BucketMismatch,
        Reason::NoRecordedValue,
        Reason::OutOfOrder,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Reason::Initial => "initial",
            Reason::Reset => "reset",
            Reason::BucketMismatch => "bucket_mismatch",
            Reason::NoRecordedValue => "no_recorded_value",
            Reason::OutOfOrder => "out_of_order",
        }
    }
}

/// Counts of one request, published once it is done.
#[derive(Debug, Default)]
struct Tally {
    /// Metrics converted.
    metrics: u64,
    /// Points of converted metrics.
    points: u64,
    /// Of those, forwarded.
    emitted: u64,
    /// Of those, dropped, by [`Reason`].
    dropped: [u64; Reason::ALL.len()],
    /// Stale streams found on lookup and started over.
    evicted: u64,
}

struct Meters {
    points: Counter,
    emitted: Counter,
    dropped: [Counter; Reason::ALL.len()],
    streams: Gauge,
    evicted: Counter,
}

/// What to forward after a request.
enum Output {
    /// Nothing was converted: the request as it arrived.
    Unchanged,
    /// The converted request.
    Converted(Bytes),
    /// Nothing is left to forward.
    Nothing,
}

/// The `cumulativetodelta` processor.
pub struct CumulativeToDelta {
    name: String,
    config: CumulativeToDeltaConfig,
    /// `config.include` and `config.exclude`, compiled.
    selection: Selection,
    /// When the processor started, for `initial_value: auto`.
    started_unix_nano: u64,
    streams: Streams,
    /// When stale streams are next looked for (every `max_staleness`, as the
    /// collector's sweeper does).
    next_sweep: Mutex<Option<Instant>>,
    next: Arc<dyn Consumer>,
    meters: Meters,
    /// Totals for [`CumulativeToDelta::report`].
    points_in: AtomicU64,
    deltas_out: AtomicU64,
}

impl CumulativeToDeltaConfig {
    /// Builds the processor in front of `next` and starts its report, a
    /// background task: the processor holds no data between requests.
    pub fn build(
        &self,
        cx: &mut BuildContext<'_>,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Consumer>, BuildError> {
        let processor = CumulativeToDelta::new(cx.id.as_str(), self, next, cx.telemetry)
            .map_err(|e| cx.error(e))?;
        cx.tasks
            .background
            .push(tokio::spawn(processor.clone().report(REPORT_EVERY)));
        Ok(processor)
    }
}

impl CumulativeToDelta {
    /// A processor named `id` in front of `next`.
    pub fn new(
        id: &str,
        config: &CumulativeToDeltaConfig,
        next: Arc<dyn Consumer>,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Arc<CumulativeToDelta>, FilterError> {
        let labels = [("processor", id)];
        let meters = Meters {
            points: telemetry.counter(names::C2D_POINTS_RECEIVED, &labels),
            emitted: telemetry.counter(names::C2D_POINTS_EMITTED, &labels),
            dropped: Reason::ALL.map(|reason| {
                telemetry.counter(
                    names::C2D_POINTS_DROPPED,
                    &[("processor", id), ("reason", reason.as_str())],
                )
            }),
            streams: telemetry.gauge(names::C2D_STREAMS, &labels),
            evicted: telemetry.counter(names::C2D_STREAMS_EVICTED, &labels),
        };
        meters.streams.set(0.0);
        let started_unix_nano = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Ok(Arc::new(CumulativeToDelta {
            name: id.to_string(),
            config: config.clone(),
            selection: Selection::new(config)?,
            started_unix_nano,
            streams: Streams::new(config.max_staleness),
            next_sweep: Mutex::new(None),
            next,
            meters,
            points_in: AtomicU64::new(0),
            deltas_out: AtomicU64::new(0),
        }))
    }

    /// Logs `NAME: N points in, M deltas out, K streams tracked` every
    /// `every` while anything changed, and forgets stale streams even when
    /// no requests arrive. Runs until dropped.
    pub async fn report(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let mut last = (0, 0, 0);
        loop {
            tick.tick().await;
            self.sweep_if_due(Instant::now());
            let now = (
                self.points_in.load(Ordering::Relaxed),
                self.deltas_out.load(Ordering::Relaxed),
                self.streams.len(),
            );
            if now != last {
                tracing::info!(
                    "{}: {} points in, {} deltas out, {} streams tracked",
                    self.name,
                    now.0,
                    now.1,
                    now.2
                );
                last = now;
            }
        }
    }

    /// `consume` at a given instant of the processor's clock.
    async fn consume_at(
        &self,
        signal: Signal,
        request: Bytes,
        metadata: Metadata,
        now: Instant,
    ) -> Result<Ack, ConsumeError> {
        if signal != Signal::Metrics {
            return Err(ConsumeError::InvalidArgument(format!(
                "{} takes metrics, not {signal}",
                self.name
            )));
        }
        // No lock outlives this call: nothing below is held across the await.
        match self.process(&request, now)? {
            Output::Unchanged => self.next.consume(signal, request, metadata).await,
            Output::Converted(bytes) => self.next.consume(signal, bytes, metadata).await,
            Output::Nothing => Ok(Ack::ok()),
        }
    }

    fn process(&self, request: &Bytes, now: Instant) -> Result<Output, ConsumeError> {
        let mut decoded = ExportMetricsServiceRequest::decode(request.as_ref()).map_err(|e| {
            ConsumeError::InvalidArgument(format!("{}: cannot decode metrics: {e}", self.name))
        })?;
        self.sweep_if_due(now);
        let mut tally = Tally::default();
        let mut keys = KeyBuilder::default();
        decoded.resource_metrics.retain_mut(|rm| {
            keys.resource(rm.resource.as_ref().map_or(&[][..], |r| &r.attributes));
            rm.scope_metrics.retain_mut(|sm| {
                keys.scope(sm.scope.as_ref());
                sm.metrics
                    .retain_mut(|m| self.metric(m, &mut keys, now, &mut tally));
                !sm.metrics.is_empty()
            });
            !rm.scope_metrics.is_empty()
        });
        self.publish(&tally);
        Ok(if decoded.resource_metrics.is_empty() {
            Output::Nothing
        } else if tally.metrics == 0 {
            Output::Unchanged
        } else {
            Output::Converted(decoded.encode_to_vec().into())
        })
    }

    /// Converts `metric` if it is to be converted; false when it is left
    /// with no points and is to be removed.
    fn metric(
        &self,
        metric: &mut Metric,
        keys: &mut KeyBuilder,
        now: Instant,
        tally: &mut Tally,
    ) -> bool {
        let cumulative = AggregationTemporality::Cumulative as i32;
        let kind = match &metric.data {
            Some(Data::Sum(s)) if s.aggregation_temporality == cumulative && s.is_monotonic => {
                Kind::Sum
            }
            Some(Data::Histogram(h)) if h.aggregation_temporality == cumulative => Kind::Histogram,
            Some(Data::ExponentialHistogram(h)) if h.aggregation_temporality == cumulative => {
                Kind::ExponentialHistogram
            }
            _ => return true,
        };
        if !self.selection.converts(&metric.name, kind) {
            return true;
        }
        tally.metrics += 1;
        keys.metric(kind as u8, &metric.name, &metric.unit);
        let delta = AggregationTemporality::Delta as i32;
        match &mut metric.data {
            Some(Data::Sum(s)) => {
                s.aggregation_temporality = delta;
                self.points(&mut s.data_points, keys, now, tally)
            }
            Some(Data::Histogram(h)) => {
                h.aggregation_temporality = delta;
                self.points(&mut h.data_points, keys, now, tally)
            }
            Some(Data::ExponentialHistogram(h)) => {
                h.aggregation_temporality = delta;
                self.points(&mut h.data_points, keys, now, tally)
            }
            _ => true,
        }
    }

    /// Converts the points of one metric; false when none is left.
    fn points<P: CumulativePoint>(
        &self,
        points: &mut Vec<P>,
        keys: &mut KeyBuilder,
        now: Instant,
        tally: &mut Tally,
    ) -> bool {
        points.retain_mut(|point| {
            tally.points += 1;
            match self.point(point, keys, now, &mut tally.evicted) {
                Ok(()) => {
                    tally.emitted += 1;
                    true
                }
                Err(reason) => {
                    tally.dropped[reason as usize] += 1;
                    false
                }
            }
        });
        !points.is_empty()
    }

    /// Turns one point into its delta in place, or says why it is dropped.
    fn point<P: CumulativePoint>(
        &self,
        point: &mut P,
        keys: &mut KeyBuilder,
        now: Instant,
        evicted: &mut u64,
    ) -> Result<(), Reason> {
        if point.no_recorded_value() {
            return Err(Reason::NoRecordedValue);
        }
        let Some(value_type) = point.value_type() else {
            return Err(Reason::NoRecordedValue);
        };
        if point.passes_through() {
            return Ok(());
        }
        let key = keys.point(value_type, point.attributes(), point.start());
        let (outcome, forgot) = self.streams.update(key, now, |known| match known {
            Some(stream) => (next_point(point, stream, now), None),
            None => {
                let stream = Stream {
                    last_seen: now,
                    time: point.time(),
                    baseline: point.baseline(),
                };
                (self.first_point(point), Some(stream))
            }
        });
        *evicted += u64::from(forgot);
        outcome
    }

    /// A stream's first point: forwarded as is (its delta is its value since
    /// its own start time) when `initial_value` allows.
    fn first_point<P: CumulativePoint>(&self, point: &mut P) -> Result<(), Reason> {
        let emit = match self.config.initial_value {
            InitialValue::Keep => true,
            InitialValue::Drop => false,
            // Only a counter that started while we were watching cannot have
            // had its earlier increase reported already.
            InitialValue::Auto => {
                let start = point.start();
                start != 0 && start >= self.started_unix_nano && start != point.time()
            }
        };
        if emit {
            point.clear_extremes();
            Ok(())
        } else {
            Err(Reason::Initial)
        }
    }

    /// Forgets stale streams once per `max_staleness`; returns how many.
    fn sweep_if_due(&self, now: Instant) -> usize {
        let every = self.config.max_staleness;
        if every.is_zero() {
            return 0;
        }
        {
            let mut next = self
                .next_sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match *next {
                Some(at) if now < at => return 0,
                _ => *next = Some(now + every),
            }
        }
        let removed = self.streams.sweep(now);
        if removed > 0 {
            self.meters.evicted.increment(removed as u64);
            self.meters.streams.set(self.streams.len() as f64);
        }
        removed
    }

    fn publish(&self, tally: &Tally) {
        self.meters.points.increment(tally.points);
        self.meters.emitted.increment(tally.emitted);
        for (counter, &n) in self.meters.dropped.iter().zip(&tally.dropped) {
            if n > 0 {
                counter.increment(n);
            }
        }
        // Sweeps count their own evictions; these are streams found stale on
        // lookup and started over.
        if tally.evicted > 0 {
            self.meters.evicted.increment(tally.evicted);
        }
        self.meters.streams.set(self.streams.len() as f64);
        self.points_in.fetch_add(tally.points, Ordering::Relaxed);
        self.deltas_out.fetch_add(tally.emitted, Ordering::Relaxed);
    }
}

/// A later point of a known stream.
fn next_point<P: CumulativePoint>(
    point: &mut P,
    stream: &mut Stream,
    now: Instant,
) -> Result<(), Reason> {
    if point.time() <= stream.time {
        return Err(Reason::OutOfOrder);
    }
    let previous = std::mem::replace(&mut stream.time, point.time());
    stream.last_seen = now;
    match point.convert(&mut stream.baseline) {
        Verdict::Delta | Verdict::Restart => {
            point.set_start(previous);
            point.clear_extremes();
            Ok(())
        }
        Verdict::Reset => Err(Reason::Reset),
        Verdict::BucketMismatch => Err(Reason::BucketMismatch),
    }
}

impl Consumer for CumulativeToDelta {
    fn consume(&self, signal: Signal, request: Bytes, metadata: Metadata) -> ConsumeFuture<'_> {
        Box::pin(self.consume_at(signal, request, metadata, Instant::now()))
    }
}
