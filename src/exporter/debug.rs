//! The `debug` exporter: the end of a pipeline that prints what reached it.
//!
//! `basic` prints one summary line per signal every few seconds (only when
//! something arrived), so a busy pipeline does not flood the terminal;
//! `normal` prints one line per request; `detailed` prints every request as
//! OTLP/JSON.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;

use crate::{
    component::{BuildContext, BuildError},
    config::exporters::{DebugExporterConfig, Verbosity},
    consumer::{Ack, ConsumeError, ConsumeFuture, Consumer, Metadata},
    receiver::json,
    signal::{PerSignal, Signal},
    wire,
};

/// How often `basic` verbosity prints its summary.
const REPORT_EVERY: Duration = Duration::from_secs(5);

impl DebugExporterConfig {
    /// The exporter; with `basic` verbosity its summary task goes into the
    /// context's background tasks.
    pub fn build(&self, cx: &mut BuildContext<'_>) -> Result<Arc<Debug>, BuildError> {
        let exporter = Debug::new(cx.id.as_str(), self.verbosity);
        if self.verbosity == Verbosity::Basic {
            cx.tasks
                .background
                .push(tokio::spawn(exporter.clone().report(REPORT_EVERY)));
        }
        Ok(exporter)
    }
}

/// Counts and prints what arrives.
pub struct Debug {
    name: String,
    verbosity: Verbosity,
    items: PerSignal<AtomicU64>,
    requests: PerSignal<AtomicU64>,
}

impl Debug {
    /// A debug exporter named `name`.
    pub fn new(name: &str, verbosity: Verbosity) -> Arc<Debug> {
        Arc::new(Debug {
            name: name.to_string(),
            verbosity,
            items: Default::default(),
            requests: Default::default(),
        })
    }

    /// Items received so far, per signal.
    pub fn items(&self, signal: Signal) -> u64 {
        self.items[signal].load(Ordering::Relaxed)
    }

    /// Prints a summary line per signal every `every` while anything new
    /// arrived (`basic` verbosity). Runs until dropped.
    pub async fn report(self: Arc<Self>, every: Duration) {
        let mut last = PerSignal::<u64>::default();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            for signal in Signal::ALL {
                let now = self.items(signal);
                if now != last[signal] {
                    tracing::info!(
                        exporter = %self.name,
                        "{signal}: {} {} in the last {every:?} ({now} total, {} requests)",
                        now - last[signal],
                        signal.item_name(),
                        self.requests[signal].load(Ordering::Relaxed),
                    );
                    last[signal] = now;
                }
            }
        }
    }

    fn take(&self, signal: Signal, request: Bytes) -> Result<Ack, ConsumeError> {
        let items = wire::count_items(signal, &request)
            .map_err(|e| ConsumeError::InvalidArgument(e.to_string()))?;
        self.items[signal].fetch_add(items, Ordering::Relaxed);
        self.requests[signal].fetch_add(1, Ordering::Relaxed);
        match self.verbosity {
            Verbosity::Basic => {}
            Verbosity::Normal => {
                tracing::info!(exporter = %self.name, "{signal}: {items} {}", signal.item_name());
            }
            Verbosity::Detailed => match json::to_json(signal, &request) {
                Ok(tree) => tracing::info!(exporter = %self.name, "{signal}: {tree}"),
                Err(e) => tracing::warn!(exporter = %self.name, "{signal}: cannot render: {e}"),
            },
        }
        Ok(Ack::ok())
    }
}

impl Consumer for Debug {
    fn consume(&self, signal: Signal, request: Bytes, _: Metadata) -> ConsumeFuture<'_> {
        let result = self.take(signal, request);
        Box::pin(async move { result })
    }
}
