//! The process's own logs, as `service.telemetry.logs` says: the level
//! (`RUST_LOG`, when set, wins, as its filter syntax is finer) and the
//! encoding, `console` lines or one JSON object per line. Logs go to stderr,
//! with ANSI colours only when stderr is a terminal, so `kubectl logs` and
//! log shippers get plain text.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

use crate::config::service::{LogEncoding, LogsTelemetryConfig};

/// Installs the global logger for `config`, writing to stderr. Returns
/// false when a logger was already installed (tests that run services).
pub fn init(config: &LogsTelemetryConfig) -> bool {
    let ansi = std::io::stderr().is_terminal();
    install(config, std::io::stderr, ansi)
}

/// Installs the global logger for `config`, writing to `writer`.
pub fn install<W>(config: &LogsTelemetryConfig, writer: W, ansi: bool) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config.level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.encoding {
        LogEncoding::Console => builder.with_ansi(ansi).try_init().is_ok(),
        LogEncoding::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
            .is_ok(),
    }
}
