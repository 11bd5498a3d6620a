//! `tail_sampling`: holds every trace for `decision_wait` after its first
//! span, then keeps or drops it whole by its policies, as the collector's
//! `tailsamplingprocessor` does.
//!
//! It owns the pending traces, a short memory of decided ones (so spans that
//! arrive after the decision follow it) and the policies' rate budgets. It
//! never holds more than `num_traces` traces (the oldest is decided early),
//! never exports part of a sampled trace twice, and never awaits while
//! holding its lock: deciding happens under the lock, encoding and
//! exporting after it.
//!
//! Decision rule: a matching `drop` policy, or an `invert_match` policy that
//! matched, drops the trace whatever else says; otherwise the trace is kept
//! if any policy samples it.

mod cache;
mod policy;
mod trace;

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use metrics::{Counter, Gauge, Histogram};
use prost::Message;
use tokio::time::{Instant, MissedTickBehavior};

pub use self::policy::PolicyError;
use self::{
    cache::DecisionCache,
    policy::{Context, Decision, Policy},
    trace::{Batcher, Origin, Pending, Trace, TraceId, trace_id},
};
use crate::{
    component::{BuildContext, BuildError},
    config::processors::TailSamplingConfig,
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, Metadata},
    proto::{
        collector::trace::v1::ExportTraceServiceRequest, common::v1::InstrumentationScope,
        resource::v1::Resource, trace::v1::Span,
    },
    signal::Signal,
    telemetry::{Telemetry, metrics::names},
};

/// Spans per exported request stop growing past this many bytes (a trace is
/// never cut, so one giant trace can exceed it); well under gRPC's default
/// 4 MiB message limit.
const MAX_REQUEST_BYTES: u64 = 3 * 1024 * 1024;

/// How often the summary line is logged (when anything changed).
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The tail sampling processor. See the module docs.
pub struct TailSampling {
    id: String,
    next: Arc<dyn Consumer>,
    /// How often due traces are looked for.
    tick: Duration,
    state: Mutex<State>,
    export_failed: Counter,
    decision_timer: Histogram,
}

/// A top-level policy with its per-verdict counters (`[not sampled, sampled]`).
struct Named {
    policy: Policy,
    counters: [Counter; 2],
}

/// A decided trace still remembered in the trace table.
struct Decided {
    sampled: bool,
    at: Instant,
}

/// Cumulative counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tally {
    decided: u64,
    kept: u64,
    /// Kept traces by the first top-level policy that sampled them.
    kept_by_policy: Vec<u64>,
    late_spans: u64,
}

struct Metrics {
    /// `[not sampled, sampled]` final decisions.
    global: [Counter; 2],
    late_span_age: Histogram,
    dropped_too_early: Counter,
    too_large: Counter,
    traces_on_memory: Gauge,
    new_trace_ids: Counter,
}

/// What one consume call hands on: traces decided early, and late spans of
/// traces already decided as sampled.
#[derive(Default)]
struct Out {
    ready: Vec<Trace>,
    late: Trace,
}

struct State {
    config: TailSamplingConfig,
    /// `config.policies`, compiled, in the same order.
    policies: Vec<Named>,
    /// Rate budgets count whole seconds from here.
    started: Instant,
    pending: HashMap<TraceId, Pending>,
    /// Pending traces by arrival order, which is also their due order.
    due: BTreeMap<u64, TraceId>,
    next_seq: u64,
    decided: HashMap<TraceId, Decided>,
    /// Decided traces, oldest decision first: the first to forget for room.
    decided_order: VecDeque<TraceId>,
    sampled_cache: DecisionCache,
    not_sampled_cache: DecisionCache,
    tally: Tally,
    metrics: Metrics,
}

impl TailSamplingConfig {
    /// Builds the processor in front of `next` and starts its decision loop,
    /// a drain: it ends by itself once the pipeline lets go of the
    /// processor, after deciding and exporting every pending trace.
    pub fn build(
        &self,
        cx: &mut BuildContext<'_>,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Consumer>, BuildError> {
        let processor =
            TailSampling::new(cx.id.as_str(), self, next, cx.telemetry).map_err(|e| cx.error(e))?;
        cx.tasks.drains.push(tokio::spawn(processor.clone().run()));
        Ok(processor)
    }
}

impl TailSampling {
    /// Builds the processor `id` in front of `next`. Start [`TailSampling::run`]
    /// to have traces decided as they come due.
    pub fn new(
        id: &str,
        config: &TailSamplingConfig,
        next: Arc<dyn Consumer>,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Arc<TailSampling>, PolicyError> {
        let processor = [("processor", id)];
        let policies = config
            .policies
            .iter()
            .map(|c| {
                let counter = |sampled: &str| {
                    telemetry.counter(
                        names::TS_COUNT_TRACES_SAMPLED,
                        &[("processor", id), ("policy", &c.name), ("sampled", sampled)],
                    )
                };
                Ok(Named {
                    policy: Policy::new(c)?,
                    counters: [counter("false"), counter("true")],
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        let global = |sampled: &str| {
            telemetry.counter(
                names::TS_GLOBAL_COUNT_TRACES_SAMPLED,
                &[("processor", id), ("sampled", sampled)],
            )
        };
        let metrics = Metrics {
            global: [global("false"), global("true")],
            late_span_age: telemetry.histogram(names::TS_LATE_SPAN_AGE, &processor),
            dropped_too_early: telemetry.counter(names::TS_TRACE_DROPPED_TOO_EARLY, &processor),
            too_large: telemetry.counter(names::TS_TRACE_TOO_LARGE, &processor),
            traces_on_memory: telemetry.gauge(names::TS_TRACES_ON_MEMORY, &processor),
            new_trace_ids: telemetry.counter(names::TS_NEW_TRACE_ID_RECEIVED, &processor),
        };
        metrics.traces_on_memory.set(0.0);
        let num_traces = usize::try_from(config.num_traces).unwrap_or(usize::MAX);
        // Room for the traces expected within one decision_wait, if hinted.
        let expected = config
            .expected_new_traces_per_sec
            .saturating_mul(config.decision_wait.as_secs().max(1));
        let capacity = usize::try_from(expected)
            .unwrap_or(usize::MAX)
            .min(num_traces);
        let state = State {
            tally: Tally {
                kept_by_policy: vec![0; policies.len()],
                ..Tally::default()
            },
            config: config.clone(),
            policies,
            started: Instant::now(),
            pending: HashMap::with_capacity(capacity),
            due: BTreeMap::new(),
            next_seq: 0,
            decided: HashMap::with_capacity(capacity),
            decided_order: VecDeque::with_capacity(capacity),
            sampled_cache: DecisionCache::new(config.decision_cache.sampled_cache_size),
            not_sampled_cache: DecisionCache::new(config.decision_cache.non_sampled_cache_size),
            metrics,
        };
        Ok(Arc::new(TailSampling {
            id: id.to_string(),
            next,
            tick: (config.decision_wait / 10)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
            state: Mutex::new(state),
            export_failed: telemetry.counter(names::TS_EXPORT_FAILED_SPANS, &processor),
            decision_timer: telemetry.histogram(names::TS_DECISION_TIMER_LATENCY, &processor),
        }))
    }

    /// The decision loop: every tick, decides the traces whose
    /// `decision_wait` has elapsed and exports the sampled ones to `next`;
    /// every few seconds logs a summary line if anything changed.
    ///
    /// Runs until aborted, or until this task holds the last reference to
    /// the processor: then nothing can feed it any more (the pipeline that
    /// held it is gone), so it flushes, drops `next` (letting the stages after
    /// it drain) and returns.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reported = self.lock().tally.clone();
        let mut last_report = Instant::now();
        loop {
            tick.tick().await;
            if Arc::strong_count(&self) == 1 {
                self.flush().await;
                self.report(&mut reported);
                return;
            }
            self.decide(false).await;
            let now = Instant::now();
            if now.duration_since(last_report) >= REPORT_EVERY {
                self.report(&mut reported);
                last_report = now;
            }
        }
    }

    /// Decides every pending trace now, whatever its age, and exports the
    /// sampled ones (at shutdown, so they are not lost).
    pub async fn flush(&self) {
        self.decide(true).await;
    }

    /// Traces waiting for a decision.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    async fn decide(&self, all: bool) {
        let started = std::time::Instant::now();
        let ready = {
            let mut state = self.lock();
            let ready = state.decide_due(Instant::now(), all);
            state.update_gauge();
            ready
        };
        self.export(ready).await;
        self.decision_timer
            .record(started.elapsed().as_secs_f64() * 1000.0);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the tables consistent enough
        // to keep sampling; do not take the pipeline down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Buffers the spans of `request`; returns how many were rejected and
    /// what must be exported now.
    fn take(&self, request: ExportTraceServiceRequest) -> (u64, Vec<Trace>) {
        // Build the shared resource and scope handles before taking the lock.
        let mut groups = Vec::new();
        for rs in request.resource_spans {
            let resource = Origin::resource(rs.resource, rs.schema_url);
            for ss in rs.scope_spans {
                groups.push((
                    resource.clone(),
                    Origin::scope(ss.scope, ss.schema_url),
                    ss.spans,
                ));
            }
        }
        let now = Instant::now();
        let mut rejected = 0;
        let mut out = Out::default();
        let mut state = self.lock();
        for (resource, scope, spans) in groups {
            for span in spans {
                match trace_id(&span) {
                    Some(id) => state.add(id, &resource, &scope, span, now, &mut out),
                    None => rejected += 1,
                }
            }
        }
        state.update_gauge();
        drop(state);
        let Out { mut ready, late } = out;
        if late.span_count > 0 {
            ready.push(late);
        }
        (rejected, ready)
    }

    /// Sends `traces` to `next` in as few requests as the size bound allows.
    /// Failures are the exporter's to retry; here they are logged and counted.
    async fn export(&self, traces: Vec<Trace>) {
        if traces.is_empty() {
            return;
        }
        let mut batcher = Batcher::new(MAX_REQUEST_BYTES);
        for trace in traces {
            batcher.add(trace);
        }
        // A decided trace gathers spans of many client requests, so what
        // goes on carries no client metadata (as in the collector): a
        // `headers_setter` after it sends its fixed values and defaults only.
        for (request, spans) in batcher.finish() {
            match self
                .next
                .consume(Signal::Traces, request, Metadata::NONE)
                .await
            {
                Ok(ack) if ack.rejected > 0 => tracing::warn!(
                    processor = %self.id,
                    "{} of {spans} sampled spans rejected downstream: {}",
                    ack.rejected,
                    ack.message
                ),
                Ok(_) => {}
                Err(e) => {
                    self.export_failed.increment(spans);
                    tracing::warn!(
                        processor = %self.id,
                        "{spans} sampled spans not accepted downstream: {e}"
                    );
                }
            }
        }
    }

    /// Logs what changed since `last`, and remembers the new counts.
    fn report(&self, last: &mut Tally) {
        let line = {
            let state = self.lock();
            let names = state.config.policies.iter().map(|p| &p.name);
            let line = summary_line(&self.id, names, last, &state.tally, state.pending.len());
            *last = state.tally.clone();
            line
        };
        if let Some(line) = line {
            tracing::info!("{line}");
        }
    }
}

/// `tail_sampling/agent-1: 120 traces decided, 14 kept (status_code: 6,
/// latency: 8), 0 late spans, 310 pending`, for what changed between `last`
/// and `now`; `None` when nothing did.
fn summary_line(
    id: &str,
    policy_names: impl IntoIterator<Item = impl AsRef<str>>,
    last: &Tally,
    now: &Tally,
    pending: usize,
) -> Option<String> {
    if now == last {
        return None;
    }
    let by_policy: Vec<String> = policy_names
        .into_iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let before = last.kept_by_policy.get(i).copied().unwrap_or(0);
            let n = now.kept_by_policy.get(i).copied().unwrap_or(0) - before;
            (n > 0).then(|| format!("{}: {n}", name.as_ref()))
        })
        .collect();
    let kept = now.kept - last.kept;
    let kept = if by_policy.is_empty() {
        format!("{kept} kept")
    } else {
        format!("{kept} kept ({})", by_policy.join(", "))
    };
    Some(format!(
        "{id}: {} traces decided, {kept}, {} late spans, {pending} pending",
        now.decided - last.decided,
        now.late_spans - last.late_spans,
    ))
}

impl State {
    /// Files one span: into its pending trace, after its trace's decision,
    /// or as the first span of a new trace.
    fn add(
        &mut self,
        id: TraceId,
        resource: &Arc<Origin<Resource>>,
        scope: &Arc<Origin<InstrumentationScope>>,
        span: Span,
        now: Instant,
        out: &mut Out,
    ) {
        if let Some(pending) = self.pending.get_mut(&id) {
            pending.trace.push(resource, scope, span);
            self.check_size(id, now, out);
            return;
        }
        let known = self
            .decided
            .get(&id)
            .map(|d| (d.sampled, d.at))
            .or_else(|| self.sampled_cache.get(&id).map(|at| (true, at)))
            .or_else(|| self.not_sampled_cache.get(&id).map(|at| (false, at)));
        if let Some((sampled, at)) = known {
            self.metrics
                .late_span_age
                .record(now.duration_since(at).as_secs_f64());
            self.tally.late_spans += 1;
            if sampled {
                out.late.push(resource, scope, span);
            }
            return;
        }
        self.make_room(now, out);
        self.metrics.new_trace_ids.increment(1);
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut trace = Trace::default();
        trace.push(resource, scope, span);
        self.pending.insert(
            id,
            Pending {
                trace,
                seq,
                arrived: now,
            },
        );
        self.due.insert(seq, id);
        self.check_size(id, now, out);
    }

    /// Decides `id` at once if it outgrew `maximum_trace_size_bytes`.
    fn check_size(&mut self, id: TraceId, now: Instant, out: &mut Out) {
        let max = self.config.maximum_trace_size_bytes;
        let too_large = max > 0 && self.pending.get(&id).is_some_and(|p| p.trace.bytes > max);
        if too_large && let Some(pending) = self.remove_pending(&id) {
            self.metrics.too_large.increment(1);
            out.ready.extend(self.decide(id, pending, now));
        }
    }

    /// Frees a slot of `num_traces` for a new trace: forgets the oldest
    /// decided trace or, if every slot is pending, decides the oldest early.
    fn make_room(&mut self, now: Instant, out: &mut Out) {
        while self.held() >= self.config.num_traces {
            if let Some(old) = self.decided_order.pop_front() {
                self.decided.remove(&old);
                continue;
            }
            let Some((_, id)) = self.due.pop_first() else {
                break;
            };
            if let Some(pending) = self.pending.remove(&id) {
                self.metrics.dropped_too_early.increment(1);
                out.ready.extend(self.decide(id, pending, now));
            }
        }
    }

    fn remove_pending(&mut self, id: &TraceId) -> Option<Pending> {
        let pending = self.pending.remove(id)?;
        self.due.remove(&pending.seq);
        Some(pending)
    }

    /// Decides the pending traces whose `decision_wait` has elapsed (every
    /// pending trace when `all`); returns the sampled ones.
    fn decide_due(&mut self, now: Instant, all: bool) -> Vec<Trace> {
        let mut ready = Vec::new();
        while let Some((_, &id)) = self.due.first_key_value() {
            let due = self
                .pending
                .get(&id)
                .is_none_or(|p| all || p.arrived + self.config.decision_wait <= now);
            if !due {
                break;
            }
            self.due.pop_first();
            if let Some(pending) = self.pending.remove(&id) {
                ready.extend(self.decide(id, pending, now));
            }
        }
        ready
    }

    /// Runs the policies on a trace already taken out of the pending table,
    /// remembers the decision, and returns the trace if it is sampled.
    fn decide(&mut self, id: TraceId, pending: Pending, now: Instant) -> Option<Trace> {
        let (sampled, first) = self.evaluate(&id, &pending.trace, now);
        self.metrics.global[usize::from(sampled)].increment(1);
        self.tally.decided += 1;
        if sampled {
            self.tally.kept += 1;
            if let Some(n) = first.and_then(|i| self.tally.kept_by_policy.get_mut(i)) {
                *n += 1;
            }
            self.sampled_cache.insert(id, now);
        } else {
            self.not_sampled_cache.insert(id, now);
        }
        self.decided.insert(id, Decided { sampled, at: now });
        self.decided_order.push_back(id);
        sampled.then_some(pending.trace)
    }

    /// The final decision, and the index of the first policy that sampled.
    fn evaluate(&mut self, id: &TraceId, trace: &Trace, now: Instant) -> (bool, Option<usize>) {
        let cx = Context {
            id,
            trace,
            second: now.duration_since(self.started).as_secs(),
        };
        let (mut sampled, mut vetoed, mut first) = (false, false, None);
        for (i, named) in self.policies.iter_mut().enumerate() {
            let decision = named.policy.evaluate(&cx);
            named.counters[usize::from(decision.samples())].increment(1);
            match decision {
                // Nothing can overturn a drop; skip the remaining policies.
                Decision::Dropped => {
                    vetoed = true;
                    break;
                }
                Decision::InvertNotSampled => vetoed = true,
                Decision::Sampled | Decision::InvertSampled => {
                    sampled = true;
                    first.get_or_insert(i);
                    if self.config.sample_on_first_match && decision == Decision::Sampled {
                        break;
                    }
                }
                Decision::NotSampled => {}
            }
        }
        (sampled && !vetoed, first)
    }

    /// Pending plus remembered-decided traces: what `num_traces` bounds.
    fn held(&self) -> u64 {
        u64::try_from(self.pending.len() + self.decided.len()).unwrap_or(u64::MAX)
    }

    fn update_gauge(&self) {
        self.metrics.traces_on_memory.set(self.pending.len() as f64);
    }
}

impl Consumer for TailSampling {
    fn consume(&self, signal: Signal, request: Bytes, _: Metadata) -> ConsumeFuture<'_> {
        Box::pin(async move {
            if signal != Signal::Traces {
                return Err(ConsumeError::InvalidArgument(format!(
                    "{}: tail_sampling takes traces, not {signal}",
                    self.id
                )));
            }
            let request = ExportTraceServiceRequest::decode(request)
                .map_err(|e| ConsumeError::InvalidArgument(format!("{}: {e}", self.id)))?;
            let (rejected, ready) = self.take(request);
            self.export(ready).await;
            Ok(if rejected == 0 {
                Ack::ok()
            } else {
                Ack {
                    rejected,
                    message: format!("{rejected} spans without a valid trace id"),
                }
            })
        })
    }
}
