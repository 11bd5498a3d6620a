//! `otlp-loadtest sink`: fast OTLP receivers that count what they get.
//!
//! Each listener is one sink. The front ends are otlp-lb's own receivers
//! (gRPC with the pass-through codec, HTTP protobuf and JSON), so a sink never
//! decodes a request into types: it counts items with the wire scanner and,
//! when asked, reads the trace ids to check that every trace landed on one
//! sink only. It must never be the bottleneck of a benchmark.
//!
//! Counters are served as JSON on `GET /stats` of the `--stats` listener and
//! printed when the process stops.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use otlp_lb::{
    config::receivers::{GrpcServerConfig, HttpServerConfig},
    consumer::{self, Ack, ConsumeError, ConsumeFuture, Consumer, CountedFuture, Metadata},
    receiver::{self, Receiver, listen::ListenSettings},
    signal::{PerSignal, Signal},
    telemetry::Telemetry,
    wire::{self, Fields},
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// What the sinks received, as served on `/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// One entry per listener, in command-line order.
    pub sinks: Vec<SinkStats>,
    /// The sum over all sinks.
    pub total: SinkStats,
    /// Distinct trace ids seen (with `--record-trace-ids`).
    pub traces: u64,
    /// Trace ids seen by more than one sink (with `--record-trace-ids`);
    /// 0 means perfect trace affinity.
    pub traces_on_several_sinks: u64,
}

/// What one sink received.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkStats {
    /// `grpc` or `http`, and the address.
    pub listener: String,
    /// Requests, all signals.
    pub requests: u64,
    /// Spans.
    pub spans: u64,
    /// Metric data points.
    pub points: u64,
    /// Log records.
    pub logs: u64,
    /// Request bytes (protobuf, after decompression).
    pub bytes: u64,
}

impl SinkStats {
    fn add(&mut self, o: &SinkStats) {
        self.requests += o.requests;
        self.spans += o.spans;
        self.points += o.points;
        self.logs += o.logs;
        self.bytes += o.bytes;
    }

    /// Items of a signal.
    pub fn items(&self, signal: Signal) -> u64 {
        match signal {
            Signal::Traces => self.spans,
            Signal::Metrics => self.points,
            Signal::Logs => self.logs,
        }
    }
}

/// Trace id -> bit set of the sinks (up to 64) that received it.
type Affinity = Mutex<HashMap<[u8; 16], u64>>;

/// One sink's counters; the consumer behind its receiver.
struct Counting {
    index: usize,
    listener: String,
    requests: AtomicU64,
    items: [AtomicU64; 3],
    bytes: AtomicU64,
    affinity: Option<Arc<Affinity>>,
}

impl Counting {
    fn stats(&self) -> SinkStats {
        let items = |s: Signal| self.items[s as usize].load(Ordering::Relaxed);
        SinkStats {
            listener: self.listener.clone(),
            requests: self.requests.load(Ordering::Relaxed),
            spans: items(Signal::Traces),
            points: items(Signal::Metrics),
            logs: items(Signal::Logs),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn record_traces(&self, signal: Signal, request: &[u8]) {
        let Some(affinity) = &self.affinity else {
            return;
        };
        let bit = 1u64 << (self.index % 64);
        let mut ids = Vec::new();
        trace_ids(signal, request, |id| ids.push(id));
        if let Ok(mut map) = affinity.lock() {
            for id in ids {
                *map.entry(id).or_default() |= bit;
            }
        }
    }
}

impl Counting {
    /// Counts once, for both the receiver's counters and the sink's.
    fn count(&self, signal: Signal, request: &Bytes) -> (u64, Result<Ack, ConsumeError>) {
        match wire::count_items(signal, request) {
            Ok(items) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                self.items[signal as usize].fetch_add(items, Ordering::Relaxed);
                self.bytes
                    .fetch_add(request.len() as u64, Ordering::Relaxed);
                self.record_traces(signal, request);
                (items, Ok(Ack::ok()))
            }
            Err(e) => (0, Err(consumer::malformed(signal, e))),
        }
    }
}

impl Consumer for Counting {
    fn consume(&self, signal: Signal, request: Bytes, _: Metadata) -> ConsumeFuture<'_> {
        Box::pin(std::future::ready(self.count(signal, &request).1))
    }

    fn count_and_consume(&self, signal: Signal, request: Bytes, _: Metadata) -> CountedFuture<'_> {
        Box::pin(std::future::ready(self.count(signal, &request)))
    }
}

/// Calls `f` with the 16-byte trace id of every span (traces) or log record
/// (logs) of an encoded request. Malformed parts are skipped: the receiver
/// has already checked the framing.
pub fn trace_ids(signal: Signal, request: &[u8], mut f: impl FnMut([u8; 16])) {
    let id_field = match signal {
        Signal::Traces => 1,
        Signal::Logs => 9,
        Signal::Metrics => return,
    };
    let children = |range: std::ops::Range<usize>, number: u32| {
        Fields::within(request, range)
            .filter_map(Result::ok)
            .filter(move |f| f.number == number)
            .filter_map(|f| f.payload().ok())
    };
    for resource in children(0..request.len(), 1) {
        for scope in children(resource, 2) {
            for item in children(scope, 2) {
                for id in children(item, id_field) {
                    if let Some(Ok(id)) = request.get(id).map(<[u8; 16]>::try_from) {
                        f(id);
                    }
                }
            }
        }
    }
}

/// The sinks of one process.
pub struct Sinks {
    counters: Vec<Arc<Counting>>,
    affinity: Option<Arc<Affinity>>,
}

impl Sinks {
    /// The current counters.
    pub fn stats(&self) -> Stats {
        let sinks: Vec<SinkStats> = self.counters.iter().map(|c| c.stats()).collect();
        let mut total = SinkStats {
            listener: "total".into(),
            ..Default::default()
        };
        for s in &sinks {
            total.add(s);
        }
        let (traces, split) = match self.affinity.as_ref().and_then(|a| a.lock().ok()) {
            Some(map) => (
                map.len() as u64,
                map.values().filter(|bits| bits.count_ones() > 1).count() as u64,
            ),
            None => (0, 0),
        };
        Stats {
            sinks,
            total,
            traces,
            traces_on_several_sinks: split,
        }
    }
}

/// What to listen on.
#[derive(Debug, Clone)]
pub struct Options {
    /// OTLP/gRPC listeners, one sink each.
    pub grpc: Vec<String>,
    /// OTLP/HTTP listeners, one sink each.
    pub http: Vec<String>,
    /// The `/stats` listener.
    pub stats: Option<String>,
    /// Record trace ids for the affinity check.
    pub record_trace_ids: bool,
    /// Stop by itself after this long.
    pub lifetime: Duration,
}

/// Binds every listener, prints the bound addresses (one line each:
/// `grpc INDEX ADDR`, `http INDEX ADDR`, `stats ADDR`, then `ready`), serves
/// until SIGINT, SIGTERM or the lifetime ends, and prints the final stats.
pub async fn run(opts: &Options) -> anyhow::Result<()> {
    let telemetry = Telemetry::new();
    let affinity = opts.record_trace_ids.then(Arc::<Affinity>::default);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut counters = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
    let listeners = opts
        .grpc
        .iter()
        .map(|a| (true, a))
        .chain(opts.http.iter().map(|a| (false, a)));
    let mut lines = Vec::new();
    for (index, (is_grpc, address)) in listeners.enumerate() {
        let listener = TcpListener::bind(address.as_str())
            .await
            .with_context(|| format!("binding {address}"))?;
        let addr: SocketAddr = listener.local_addr()?;
        let kind = if is_grpc { "grpc" } else { "http" };
        let counting = Arc::new(Counting {
            index,
            listener: format!("{kind} {addr}"),
            requests: AtomicU64::new(0),
            items: Default::default(),
            bytes: AtomicU64::new(0),
            affinity: affinity.clone(),
        });
        counters.push(counting.clone());
        let consumer: Arc<dyn Consumer> = counting;
        let receiver = Arc::new(Receiver::new(
            &format!("sink/{index}"),
            PerSignal::from_fn(|_| Some(consumer.clone())),
            &telemetry,
        ));
        let done = until_stopped();
        // The receivers' defaults (plain text, no connection cap), with
        // room for the largest requests a load test sends.
        const LIMIT_MIB: u64 = 64;
        if is_grpc {
            let config = GrpcServerConfig {
                max_recv_msg_size_mib: LIMIT_MIB,
                ..GrpcServerConfig::default()
            };
            servers.spawn(async move {
                receiver::grpc::serve(listener, receiver, &config, ListenSettings::default(), done)
                    .await
                    .map_err(|e| e.to_string())
            });
        } else {
            let config = HttpServerConfig {
                max_request_body_size: LIMIT_MIB << 20,
                ..HttpServerConfig::default()
            };
            servers.spawn(async move {
                receiver::http::serve(listener, receiver, &config, ListenSettings::default(), done)
                    .await
                    .map_err(|e| e.to_string())
            });
        }
        lines.push(format!("{kind} {index} {addr}"));
    }
    let sinks = Arc::new(Sinks { counters, affinity });
    if let Some(address) = &opts.stats {
        let listener = TcpListener::bind(address.as_str())
            .await
            .with_context(|| format!("binding {address}"))?;
        lines.push(format!("stats {}", listener.local_addr()?));
        let s = sinks.clone();
        let router = axum::Router::new().route(
            "/stats",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, "application/json")],
                        serde_json::to_vec(&s.stats()).unwrap_or_default(),
                    )
                }
            }),
        );
        let done = until_stopped();
        servers.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(done)
                .await
                .map_err(|e| e.to_string())
        });
    }
    lines.push("ready".to_string());
    // The addresses go to stdout in one write so a parent reading lines sees
    // them together.
    println!("{}", lines.join("\n"));

    tokio::select! {
        _ = otlp_lb::service::shutdown_signal() => {}
        _ = tokio::time::sleep(opts.lifetime) => {}
        Some(r) = servers.join_next() => {
            if let Ok(Err(e)) = r {
                anyhow::bail!("a sink stopped: {e}");
            }
        }
    }
    let _ = stop.send(true);
    let drain = async { while servers.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    println!("{}", serde_json::to_string(&sinks.stats())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{self, Shape};

    #[test]
    fn trace_ids_finds_every_span_and_log_record() {
        for signal in [Signal::Traces, Signal::Logs] {
            let shape = Shape {
                signal,
                items: 64,
                traces: 10,
                attributes: 2,
                services: 3,
                variants: 1,
                seed: 3,
            };
            let req = &workload::build(&shape)[0];
            let mut ids = Vec::new();
            trace_ids(signal, &req.body, |id| ids.push(id));
            assert_eq!(ids.len(), 64, "{signal}");
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 10, "{signal}");
        }
    }

    #[tokio::test]
    async fn counting_consumer_counts_items_and_trace_affinity() {
        let affinity = Arc::<Affinity>::default();
        let make = |index| Counting {
            index,
            listener: String::new(),
            requests: AtomicU64::new(0),
            items: Default::default(),
            bytes: AtomicU64::new(0),
            affinity: Some(affinity.clone()),
        };
        let (a, b) = (Arc::new(make(0)), Arc::new(make(1)));
        let shape = Shape {
            signal: Signal::Traces,
            items: 20,
            traces: 4,
            attributes: 1,
            services: 1,
            variants: 2,
            seed: 1,
        };
        let reqs = workload::build(&shape);
        a.consume(Signal::Traces, reqs[0].body.clone(), Metadata::NONE)
            .await
            .unwrap();
        b.consume(Signal::Traces, reqs[1].body.clone(), Metadata::NONE)
            .await
            .unwrap();
        let sinks = Sinks {
            counters: vec![a.clone(), b.clone()],
            affinity: Some(affinity.clone()),
        };
        let stats = sinks.stats();
        assert_eq!(stats.total.spans, 40);
        assert_eq!(stats.traces, 8);
        assert_eq!(stats.traces_on_several_sinks, 0);
        // The same trace on another sink breaks affinity.
        b.consume(Signal::Traces, reqs[0].body.clone(), Metadata::NONE)
            .await
            .unwrap();
        assert_eq!(sinks.stats().traces_on_several_sinks, 4);
    }
}
