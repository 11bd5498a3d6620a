//! The OTLP receiver: gRPC ([`grpc`]) and HTTP ([`http`]) front ends over one
//! [`Receiver`] that validates framing, counts items and hands each request
//! to the pipeline of its signal.
//!
//! The receiver never decodes a protobuf request into types: it checks the
//! framing while counting items, and forwards the original bytes. OTLP/JSON
//! is the exception: [`json`] transcodes it to protobuf once, at the edge.

pub mod grpc;
pub mod http;
pub mod json;

use std::sync::Arc;

use bytes::Bytes;
use metrics::Counter;

use crate::{
    consumer::{Ack, ConsumeError, Consumer},
    signal::Signal,
    telemetry::Telemetry,
    wire,
};

/// The transport a request came in on, for the `transport` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP (protobuf or JSON).
    Http,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

struct Counters {
    accepted: Counter,
    refused: Counter,
}

/// One configured `otlp` receiver: the consumers of its pipelines, per signal.
pub struct Receiver {
    name: String,
    consumers: [Option<Arc<dyn Consumer>>; 3],
    /// Indexed by `[signal][transport]`.
    counters: [[Counters; 2]; 3],
}

impl Receiver {
    /// A receiver named `name` (its component id) feeding `consumers`
    /// (indexed by [`Signal`]; `None` for a signal no pipeline takes).
    pub fn new(
        name: &str,
        consumers: [Option<Arc<dyn Consumer>>; 3],
        telemetry: &Telemetry,
    ) -> Receiver {
        let counters = Signal::ALL.map(|signal| {
            [Transport::Grpc, Transport::Http].map(|transport| {
                let labels = [("receiver", name), ("transport", transport.as_str())];
                let (accepted, refused): (&'static str, &'static str) = match signal {
                    Signal::Traces => (
                        "otelcol_receiver_accepted_spans_total",
                        "otelcol_receiver_refused_spans_total",
                    ),
                    Signal::Metrics => (
                        "otelcol_receiver_accepted_metric_points_total",
                        "otelcol_receiver_refused_metric_points_total",
                    ),
                    Signal::Logs => (
                        "otelcol_receiver_accepted_log_records_total",
                        "otelcol_receiver_refused_log_records_total",
                    ),
                };
                Counters {
                    accepted: telemetry.counter(accepted, &labels),
                    refused: telemetry.counter(refused, &labels),
                }
            })
        });
        Receiver {
            name: name.to_string(),
            consumers,
            counters,
        }
    }

    /// True when some pipeline takes `signal`.
    pub fn accepts(&self, signal: Signal) -> bool {
        self.consumers[signal as usize].is_some()
    }

    /// Takes one encoded `Export*ServiceRequest`. Resolves when the pipeline
    /// has delivered it (or queued it, with a sending queue).
    pub async fn receive(
        &self,
        signal: Signal,
        transport: Transport,
        request: Bytes,
    ) -> Result<Ack, ConsumeError> {
        let Some(consumer) = &self.consumers[signal as usize] else {
            return Err(ConsumeError::InvalidArgument(format!(
                "receiver {} has no {signal} pipeline",
                self.name
            )));
        };
        let counters = &self.counters[signal as usize][transport as usize];
        let items = wire::count_items(signal, &request).map_err(|e| {
            ConsumeError::InvalidArgument(format!("malformed {signal} request: {e}"))
        })?;
        if items == 0 {
            return Ok(Ack::ok());
        }
        match consumer.consume(signal, request).await {
            Ok(ack) => {
                counters
                    .accepted
                    .increment(items.saturating_sub(ack.rejected));
                counters.refused.increment(ack.rejected.min(items));
                Ok(ack)
            }
            Err(e) => {
                counters.refused.increment(items);
                Err(e)
            }
        }
    }
}
