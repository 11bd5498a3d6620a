//! `otlp-loadtest send`: the load generator.
//!
//! Closed loop: `concurrency` workers each send the next request as soon as
//! the previous one is answered (the target's maximum). Open loop: requests
//! are scheduled at a fixed rate whatever the target does, and latency is
//! counted from each request's scheduled time, so a target that stalls is
//! charged for the requests that queued behind the stall.
//!
//! Every run is bounded: by `--duration` or `--count`, and each request by
//! `--timeout`.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use http::uri::PathAndQuery;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use otlp_lb::{codec::RawCodec, signal::Signal};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::{
    report::{Summary, Tally, si},
    workload::{self, Encoded, Shape},
};

/// The wire protocol of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http-protobuf",
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `host:port` (or `http://host:port`).
    pub target: String,
    /// gRPC or HTTP/protobuf.
    pub protocol: Protocol,
    /// What the requests look like.
    pub shape: Shape,
    /// Connections to the target (HTTP/2 connections for gRPC, HTTP/1.1
    /// connections for HTTP, each carrying one request at a time).
    pub connections: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Open loop at this many requests per second; `None` is closed loop.
    pub rate: Option<f64>,
    /// Measured run length (when `count` is `None`).
    pub duration: Duration,
    /// Measured number of requests (instead of `duration`).
    pub count: Option<u64>,
    /// Sent before measuring, not counted.
    pub warmup: Duration,
    /// Deadline of one request.
    pub timeout: Duration,
    /// Show progress (a bar on a terminal, lines otherwise).
    pub progress: bool,
}

/// A client over several connections.
enum Client {
    Grpc {
        channels: Vec<tonic::client::Grpc<Channel>>,
        path: PathAndQuery,
    },
    Http {
        addr: String,
        path: &'static str,
        conns: Vec<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>>,
    },
}

fn host_port(target: &str) -> &str {
    let t = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("grpc://"))
        .unwrap_or(target);
    t.trim_end_matches('/')
}

impl Client {
    async fn connect(opts: &Options) -> anyhow::Result<Client> {
        let addr = host_port(&opts.target).to_string();
        let n = opts.connections.max(1);
        match opts.protocol {
            Protocol::Grpc => {
                let mut channels = Vec::with_capacity(n);
                for _ in 0..n {
                    // One `connect` is one HTTP/2 connection.
                    let channel = Endpoint::from_shared(format!("http://{addr}"))?
                        .tcp_nodelay(true)
                        .initial_stream_window_size(Some(4 << 20))
                        .initial_connection_window_size(Some(16 << 20))
                        .connect_timeout(opts.timeout)
                        .connect()
                        .await
                        .with_context(|| format!("connecting to {addr}"))?;
                    channels.push(
                        tonic::client::Grpc::new(channel)
                            .max_decoding_message_size(usize::MAX)
                            .max_encoding_message_size(usize::MAX),
                    );
                }
                Ok(Client::Grpc {
                    channels,
                    path: PathAndQuery::from_static(opts.shape.signal.grpc_path()),
                })
            }
            Protocol::HttpProtobuf => {
                let mut conns = Vec::with_capacity(n);
                for _ in 0..n {
                    conns.push(tokio::sync::Mutex::new(Some(http_connect(&addr).await?)));
                }
                Ok(Client::Http {
                    addr,
                    path: opts.shape.signal.http_path(),
                    conns,
                })
            }
        }
    }

    /// Sends one request on connection `i`; the error is the status to count.
    async fn send(&self, i: usize, body: Bytes, timeout: Duration) -> Result<(), String> {
        let answer = tokio::time::timeout(timeout, self.send_inner(i, body)).await;
        answer.unwrap_or_else(|_| Err("timeout".to_string()))
    }

    async fn send_inner(&self, i: usize, body: Bytes) -> Result<(), String> {
        match self {
            Client::Grpc { channels, path } => {
                let mut grpc = channels[i % channels.len()].clone();
                grpc.ready().await.map_err(|e| format!("transport: {e}"))?;
                grpc.unary(tonic::Request::new(body), path.clone(), RawCodec)
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("grpc:{:?}", s.code()))
            }
            Client::Http { addr, path, conns } => {
                let mut slot = conns[i % conns.len()].lock().await;
                if slot.as_ref().is_none_or(|s| s.is_closed()) {
                    *slot = Some(
                        http_connect(addr)
                            .await
                            .map_err(|_| "transport: connect".to_string())?,
                    );
                }
                let Some(conn) = slot.as_mut() else {
                    return Err("transport: connect".to_string());
                };
                let request = http::Request::post(*path)
                    .header(http::header::HOST, addr.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(Full::new(body))
                    .map_err(|e| format!("request: {e}"))?;
                let result = async {
                    conn.ready().await?;
                    let response = conn.send_request(request).await?;
                    let status = response.status();
                    response.into_body().collect().await?;
                    Ok::<_, hyper::Error>(status)
                }
                .await;
                match result {
                    Ok(s) if s.is_success() => Ok(()),
                    Ok(s) => Err(format!("http:{}", s.as_u16())),
                    Err(e) => {
                        *slot = None;
                        Err(format!("transport: {e}"))
                    }
                }
            }
        }
    }
}

async fn http_connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Live counters for the progress display.
#[derive(Default)]
struct Live {
    ok: AtomicU64,
    items: AtomicU64,
    failed: AtomicU64,
}

/// One phase (warm-up or measured) of a run.
struct Phase<'a> {
    client: &'a Client,
    requests: &'a [Encoded],
    opts: &'a Options,
    live: Arc<Live>,
    deadline: Instant,
    count: Option<u64>,
}

impl Phase<'_> {
    fn more(&self, n: u64) -> bool {
        match self.count {
            Some(c) => n < c,
            None => Instant::now() < self.deadline,
        }
    }

    async fn one(&self, n: u64, scheduled: Instant, tally: &mut Tally) {
        let req = &self.requests[n as usize % self.requests.len()];
        let result = self
            .client
            .send(n as usize, req.body.clone(), self.opts.timeout)
            .await;
        tally.record(scheduled.elapsed());
        match result {
            Ok(()) => {
                tally.ok += 1;
                tally.items += req.items;
                tally.bytes += req.body.len() as u64;
                self.live.ok.fetch_add(1, Ordering::Relaxed);
                self.live.items.fetch_add(req.items, Ordering::Relaxed);
            }
            Err(status) => {
                *tally.errors.entry(status).or_default() += 1;
                self.live.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn closed_loop(&self) -> Tally {
        let next = AtomicU64::new(0);
        let workers = (0..self.opts.concurrency.max(1)).map(|_| async {
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if !self.more(n) {
                    break;
                }
                self.one(n, Instant::now(), &mut tally).await;
            }
            tally
        });
        let mut total = Tally::default();
        for t in futures::future::join_all(workers).await {
            total.merge(&t);
        }
        total
    }

    async fn open_loop(&self, rate: f64) -> Tally {
        use futures::StreamExt;
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
        let limit = self.opts.concurrency.max(1);
        let mut total = Tally::default();
        // Requests run as futures of this task (no spawn), so they borrow the
        // client; while waiting for the next send time, the loop drives them.
        let mut running: FuturesUnordered<Pin<Box<dyn Future<Output = Tally> + '_>>> =
            FuturesUnordered::new();
        let mut n = 0u64;
        while self.more(n) {
            let scheduled = start + interval.mul_f64(n as f64);
            loop {
                if running.len() >= limit {
                    // At the in-flight limit the send waits; its latency still
                    // counts from `scheduled`.
                    if let Some(t) = running.next().await {
                        total.merge(&t);
                    }
                    continue;
                }
                tokio::select! {
                    biased;
                    Some(t) = running.next() => total.merge(&t),
                    _ = tokio::time::sleep_until(scheduled.into()) => break,
                }
            }
            let this = n;
            running.push(Box::pin(async move {
                let mut t = Tally::default();
                self.one(this, scheduled, &mut t).await;
                t
            }));
            n += 1;
        }
        while let Some(t) = running.next().await {
            total.merge(&t);
        }
        total
    }
}

/// Runs a load test and returns its summary.
pub async fn run(opts: &Options) -> anyhow::Result<Summary> {
    if opts.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be positive");
    }
    let requests = workload::build(&opts.shape);
    let client = Client::connect(opts).await?;
    let live = Arc::new(Live::default());
    let phase = |deadline: Instant, count: Option<u64>| Phase {
        client: &client,
        requests: &requests,
        opts,
        live: live.clone(),
        deadline,
        count,
    };

    if !opts.warmup.is_zero() {
        let warm = phase(Instant::now() + opts.warmup, None);
        match opts.rate {
            Some(r) => warm.open_loop(r).await,
            None => warm.closed_loop().await,
        };
    }

    let progress = opts.progress.then(|| Progress::start(opts, live.clone()));
    let started = Instant::now();
    let measured = phase(started + opts.duration, opts.count);
    let tally = match opts.rate {
        Some(r) => measured.open_loop(r).await,
        None => measured.closed_loop().await,
    };
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.finish().await;
    }
    let mode = match opts.rate {
        Some(r) => format!("open loop, {r} requests/s"),
        None => format!("closed loop, {} in flight", opts.concurrency),
    };
    Ok(Summary::new(
        &opts.target,
        opts.protocol.name(),
        opts.shape.signal.as_str(),
        mode,
        elapsed,
        &tally,
    ))
}

/// The progress display: an indicatif bar on a terminal, one plain line a
/// second otherwise.
struct Progress {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(opts: &Options, live: Arc<Live>) -> Progress {
        use std::io::IsTerminal;
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (len, by_count) = match opts.count {
            Some(c) => (c, true),
            None => (opts.duration.as_secs().max(1), false),
        };
        let item = item_noun(opts.shape.signal);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(len);
            let template = if by_count {
                "{bar:30} {pos}/{len} requests {msg}"
            } else {
                "{bar:30} {pos}/{len} s {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = (0u64, 0u64, started);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                let ok = live.ok.load(Ordering::Relaxed);
                let items = live.items.load(Ordering::Relaxed);
                let failed = live.failed.load(Ordering::Relaxed);
                let now = Instant::now();
                let dt = now.duration_since(last.2).as_secs_f64().max(1e-9);
                let msg = format!(
                    "{:.0} req/s, {} {item}/s, {failed} failed",
                    (ok - last.0) as f64 / dt,
                    si((items - last.1) as f64 / dt),
                );
                last = (ok, items, now);
                match &bar {
                    Some(bar) => {
                        bar.set_position(if by_count {
                            ok + failed
                        } else {
                            started.elapsed().as_secs()
                        });
                        bar.set_message(msg);
                    }
                    None => eprintln!("[{:>4.0} s] {msg}", started.elapsed().as_secs_f64()),
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        Progress { stop, task }
    }

    async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The plural noun of a signal's items.
pub fn item_noun(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "points",
        Signal::Logs => "logs",
    }
}
