//! `otlp-loadtest`: load generator, fast sink, and the side-by-side
//! comparison of otlp-lb with the proxies users would pick instead.
//!
//! - [`workload`]: the OTLP requests, encoded once before a run.
//! - [`send`]: the generator (gRPC or HTTP/protobuf, open or closed loop).
//! - [`report`]: counters, HDR latency histogram, table and JSON summary.
//! - [`sink`]: counting receivers with an optional trace-affinity check.
//! - [`compare`]: runs every system on the same machine with the same
//!   requests and sinks, and writes the table and chart.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod chart;
mod compare;
mod proc;
mod report;
mod send;
mod sink;
mod systems;
mod workload;

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use otlp_lb::signal::Signal;

/// Load generator, sink and side-by-side benchmark for otlp-lb.
#[derive(Debug, Parser)]
#[command(name = "otlp-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send generated OTLP traces, metrics or logs and report throughput,
    /// errors and latency.
    Send(SendArgs),
    /// Receive OTLP on one or more listeners and count the items.
    Sink(SinkArgs),
    /// Run the side-by-side benchmark of otlp-lb, nginx, Envoy, HAProxy and
    /// rotel, and write a Markdown table and an SVG chart.
    Compare(compare::Args),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SignalArg {
    Traces,
    Metrics,
    Logs,
}

impl From<SignalArg> for Signal {
    fn from(s: SignalArg) -> Signal {
        match s {
            SignalArg::Traces => Signal::Traces,
            SignalArg::Metrics => Signal::Metrics,
            SignalArg::Logs => Signal::Logs,
        }
    }
}

/// The request shape, shared by `send` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct ShapeArgs {
    /// What to send.
    #[arg(long, value_enum, default_value = "traces")]
    signal: SignalArg,
    /// Items per request: spans, data points or log records.
    #[arg(long, alias = "spans-per-request", default_value_t = 512)]
    items_per_request: usize,
    /// Distinct traces per request (traces and logs).
    #[arg(long, default_value_t = 100)]
    traces_per_request: usize,
    /// Attributes per item (the item size: about 40 bytes each).
    #[arg(long, default_value_t = 6)]
    attributes: usize,
    /// Distinct services (resources) per request.
    #[arg(long, default_value_t = 4)]
    services: usize,
    /// Distinct requests generated up front; sends cycle through them.
    #[arg(long, default_value_t = 16)]
    variants: usize,
    /// Seed of the generated ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl ShapeArgs {
    fn shape(&self) -> workload::Shape {
        workload::Shape {
            signal: self.signal.into(),
            items: self.items_per_request.max(1),
            traces: self.traces_per_request.max(1),
            attributes: self.attributes,
            services: self.services.max(1),
            variants: self.variants.max(1),
            seed: self.seed,
        }
    }
}

#[derive(Debug, Args)]
struct SendArgs {
    /// Where to send: `host:port`.
    #[arg(long, default_value = "127.0.0.1:4317")]
    target: String,
    /// Wire protocol.
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: send::Protocol,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Connections to the target.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop at this many requests per second (default: closed loop, as
    /// fast as the target answers).
    #[arg(long)]
    rate: Option<f64>,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// How many requests to measure (instead of --duration).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of unmeasured load before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Deadline of one request, in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No progress display and no table.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct SinkArgs {
    /// An OTLP/gRPC listener (repeat for several sinks).
    #[arg(long, value_name = "ADDR")]
    grpc: Vec<String>,
    /// An OTLP/HTTP listener (repeat for several sinks).
    #[arg(long, value_name = "ADDR")]
    http: Vec<String>,
    /// Serve the counters as JSON on GET /stats here.
    #[arg(long, value_name = "ADDR")]
    stats: Option<String>,
    /// Record trace ids per sink and report traces seen by several sinks.
    #[arg(long)]
    record_trace_ids: bool,
    /// Stop by itself after this many seconds.
    #[arg(long, default_value_t = 3600.0)]
    lifetime: f64,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 86_400.0))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Send(a) => runtime.block_on(async {
            let opts = send::Options {
                target: a.target,
                protocol: a.protocol,
                shape: a.shape.shape(),
                connections: a.connections.max(1),
                concurrency: a.concurrency.max(1),
                rate: a.rate,
                duration: secs(a.duration),
                count: a.count,
                warmup: secs(a.warmup),
                timeout: secs(a.timeout),
                progress: !a.quiet,
            };
            let summary = send::run(&opts).await?;
            if !a.quiet {
                print!("{}", summary.table());
            }
            if let Some(path) = a.json {
                std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }),
        Command::Sink(a) => {
            if a.grpc.is_empty() && a.http.is_empty() {
                anyhow::bail!("give at least one --grpc ADDR or --http ADDR");
            }
            runtime.block_on(sink::run(&sink::Options {
                grpc: a.grpc,
                http: a.http,
                stats: a.stats,
                record_trace_ids: a.record_trace_ids,
                lifetime: secs(a.lifetime),
            }))
        }
        Command::Compare(a) => runtime.block_on(compare::run(a)),
    }
}
