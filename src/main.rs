//! The `otlp-lb` binary: parse the command line, load the config, run.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use otlp_lb::{
    config::{Config, service::LogsTelemetryConfig},
    service,
    telemetry::logs,
};

/// OTLP-aware consistent-hashing load balancer for OpenTelemetry Collector pools.
#[derive(Debug, Parser)]
#[command(name = "otlp-lb", version, about)]
struct Cli {
    /// The collector-shaped YAML config to run.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config and exit: 0 when valid, 1 with the key path and problem otherwise.
    Validate,
    /// Run the built-in demo: the first tier in front of local second-tier
    /// agents, all in this process, on 127.0.0.1.
    Demo {
        /// Also run a built-in generator of traces and metrics.
        #[arg(long)]
        generate: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate) => {
            logs::init(&LogsTelemetryConfig::default());
            let path = cli.config.context("validate needs --config FILE")?;
            match Config::load(&path) {
                Ok(_) => {
                    println!("{}: valid", path.display());
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        Some(Command::Demo { generate }) => {
            logs::init(&LogsTelemetryConfig::default());
            runtime()?.block_on(otlp_lb::demo::run(generate))
        }
        None => {
            let path = cli
                .config
                .context("usage: otlp-lb --config FILE (or: otlp-lb demo)")?;
            let config =
                Config::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            logs::init(&config.service.telemetry.logs);
            for note in config.deprecations() {
                tracing::warn!("{note}");
            }
            runtime()?.block_on(async move {
                service::run(config, service::shutdown_signal()).await?;
                Ok(())
            })
        }
    }
}

/// A multi-threaded runtime, or a single-threaded one when the process may
/// use only one core (a CPU quota of one, or pinned with taskset): there,
/// work stealing and cross-thread wake-ups are pure overhead.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}
