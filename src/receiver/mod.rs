//! The OTLP receiver: gRPC ([`grpc`]) and HTTP ([`http`]) front ends over one
//! [`Receiver`] that validates framing, counts items and hands each request
//! to the pipeline of its signal.
//!
//! The receiver never decodes a protobuf request into types: it checks the
//! framing while counting items, and forwards the original bytes. OTLP/JSON
//! is the exception: [`json`] transcodes it to protobuf once, at the edge.
//!
//! Each transport has its [`Edge`]: the bearer token it requires (`auth`)
//! and the client headers it keeps with each request (`include_metadata`).
//! The servers ask [`Receiver::admit`] before reading a request's body.

pub mod grpc;
pub mod http;
pub mod json;
pub mod listen;
pub mod tls;

use std::sync::Arc;

use bytes::Bytes;
use metrics::Counter;

use crate::{
    auth::{BearerTokenAuth, Metadata, MetadataKeys},
    consumer::{Ack, ConsumeError, Consumer},
    signal::{PerSignal, Signal},
    telemetry::{Telemetry, metrics::names},
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

/// What one transport of a receiver checks and keeps of each request.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// The credential every request must carry (`auth`); `None`: open.
    pub auth: Option<Arc<BearerTokenAuth>>,
    /// The client headers kept with each request (`include_metadata`).
    pub keep: MetadataKeys,
}

/// A request without an accepted credential (gRPC UNAUTHENTICATED, HTTP 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("missing or invalid credentials")]
pub struct Unauthenticated;

/// One configured `otlp` receiver: the consumers of its pipelines, per signal.
pub struct Receiver {
    name: String,
    consumers: PerSignal<Option<Arc<dyn Consumer>>>,
    /// Per signal, indexed by transport.
    counters: PerSignal<[Counters; 2]>,
    /// Indexed by transport.
    edges: [Edge; 2],
}

impl Receiver {
    /// A receiver named `name` (its component id) feeding `consumers`
    /// (indexed by [`Signal`]; `None` for a signal no pipeline takes).
    pub fn new(
        name: &str,
        consumers: PerSignal<Option<Arc<dyn Consumer>>>,
        telemetry: &Telemetry,
    ) -> Receiver {
        let counters = PerSignal::from_fn(|signal| {
            [Transport::Grpc, Transport::Http].map(|transport| {
                let labels = [("receiver", name), ("transport", transport.as_str())];
                Counters {
                    accepted: telemetry.counter(names::RECEIVER_ACCEPTED[signal], &labels),
                    refused: telemetry.counter(names::RECEIVER_REFUSED[signal], &labels),
                }
            })
        });
        Receiver {
            name: name.to_string(),
            consumers,
            counters,
            edges: Default::default(),
        }
    }

    /// The receiver with `edge` on `transport`.
    pub fn with_edge(mut self, transport: Transport, edge: Edge) -> Receiver {
        self.edges[transport as usize] = edge;
        self
    }

    /// Checks a request's credential and keeps its metadata, from its
    /// headers (gRPC metadata are HTTP/2 headers).
    pub fn admit(
        &self,
        transport: Transport,
        headers: &::http::HeaderMap,
    ) -> Result<Metadata, Unauthenticated> {
        let edge = &self.edges[transport as usize];
        if let Some(auth) = &edge.auth
            && !auth.check(headers)
        {
            return Err(Unauthenticated);
        }
        Ok(edge.keep.extract(headers))
    }

    /// True when some pipeline takes `signal`.
    pub fn accepts(&self, signal: Signal) -> bool {
        self.consumers[signal].is_some()
    }

    /// Takes one encoded `Export*ServiceRequest` with the metadata
    /// [`Receiver::admit`] kept. Resolves when the pipeline has delivered it
    /// (or queued it, with a sending queue).
    pub async fn receive(
        &self,
        signal: Signal,
        transport: Transport,
        request: Bytes,
        metadata: Metadata,
    ) -> Result<Ack, ConsumeError> {
        let Some(consumer) = &self.consumers[signal] else {
            return Err(ConsumeError::InvalidArgument(format!(
                "receiver {} has no {signal} pipeline",
                self.name
            )));
        };
        let counters = &self.counters[signal][transport as usize];
        let (items, result) = consumer.count_and_consume(signal, request, metadata).await;
        match result {
            Ok(ack) => {
                counters
                    .accepted
                    .increment(items.saturating_sub(ack.rejected));
                counters.refused.increment(ack.rejected.min(items));
                Ok(ack)
            }
            Err(e) => {
                // A malformed request counts 0 items: nothing to refuse.
                counters.refused.increment(items);
                Err(e)
            }
        }
    }
}
