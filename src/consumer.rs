//! The one interface between pipeline stages.
//!
//! Receivers hand each request to a [`Consumer`]; processors are consumers that
//! hold a downstream consumer; exporters are the last consumers. A request is a
//! [`Bytes`] holding the protobuf encoding of the signal's `Export*ServiceRequest`,
//! so a stage that only routes never has to decode it. Next to it travels the
//! request's [`Metadata`] (the client headers a receiver with
//! `include_metadata` kept): a stage passes it on with the data of that one
//! request and never merges two requests' metadata, so what one tenant sent
//! never goes out under another's headers. Without metadata it is a null
//! pointer: nothing is allocated.
//!
//! The returned future resolves only when every item the stage accepted has
//! been delivered downstream (or, for a stateful processor, taken into its
//! bounded state): that is what lets the receiver give a synchronous ack.

use std::{future::Future, pin::Pin, sync::Arc};

use bytes::Bytes;

pub use crate::auth::Metadata;
use crate::{signal::Signal, wire};

/// What a consumer accepted. `rejected` items were dropped for a reason the
/// client cannot fix by retrying (for example a span without a valid trace id);
/// they are reported to the client as OTLP partial success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// Items permanently rejected.
    pub rejected: u64,
    /// Why they were rejected; empty when `rejected == 0`.
    pub message: String,
}

impl Ack {
    /// Everything accepted.
    pub fn ok() -> Self {
        Self::default()
    }

    /// Adds another stage's rejections to this one.
    pub fn merge(&mut self, other: Ack) {
        self.rejected += other.rejected;
        if !other.message.is_empty() {
            if !self.message.is_empty() {
                self.message.push_str("; ");
            }
            self.message.push_str(&other.message);
        }
    }
}

/// Why a request was not accepted. Maps to a gRPC status and an HTTP code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    /// The payload is malformed; retrying will not help (gRPC INVALID_ARGUMENT, HTTP 400).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// A downstream stage or backend could not take the data now; the client
    /// should retry (gRPC UNAVAILABLE, HTTP 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bounded buffer is full; the client should back off and retry
    /// (gRPC RESOURCE_EXHAUSTED, HTTP 429).
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
}

impl ConsumeError {
    /// True when the client may retry the same request.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ConsumeError::InvalidArgument(_))
    }
}

/// A boxed consume future.
pub type ConsumeFuture<'a> = Pin<Box<dyn Future<Output = Result<Ack, ConsumeError>> + Send + 'a>>;

/// A boxed [`Consumer::count_and_consume`] future: the number of items the
/// request held (0 when it was malformed) and the outcome.
pub type CountedFuture<'a> =
    Pin<Box<dyn Future<Output = (u64, Result<Ack, ConsumeError>)> + Send + 'a>>;

/// A pipeline stage that takes OTLP requests of one or more signals.
pub trait Consumer: Send + Sync + 'static {
    /// Takes one request (the encoded `Export*ServiceRequest` of `signal`)
    /// with its client's metadata.
    fn consume(&self, signal: Signal, request: Bytes, metadata: Metadata) -> ConsumeFuture<'_>;

    /// Counts the request's items, for the receiver's accepted and refused
    /// counters, and takes it unless it is malformed or empty.
    ///
    /// The default counts with [`wire::count_items`] first. A stage that
    /// scans every item anyway (the load-balancing exporter's splitter)
    /// counts in that scan instead, so the request is read once.
    fn count_and_consume(
        &self,
        signal: Signal,
        request: Bytes,
        metadata: Metadata,
    ) -> CountedFuture<'_> {
        Box::pin(async move {
            match wire::count_items(signal, &request) {
                Err(e) => (0, Err(malformed(signal, e))),
                Ok(0) => (0, Ok(Ack::ok())),
                Ok(items) => (items, self.consume(signal, request, metadata).await),
            }
        })
    }
}

/// The error for a request whose framing is broken.
pub fn malformed(signal: Signal, e: wire::WireError) -> ConsumeError {
    ConsumeError::InvalidArgument(format!("malformed {signal} request: {e}"))
}

/// Sends each request to several consumers at once; fails if any fails.
struct FanOut(Vec<Arc<dyn Consumer>>);

/// One consumer for several: itself when there is one.
pub fn fan_out(mut consumers: Vec<Arc<dyn Consumer>>) -> Arc<dyn Consumer> {
    if consumers.len() == 1
        && let Some(only) = consumers.pop()
    {
        return only;
    }
    Arc::new(FanOut(consumers))
}

impl Consumer for FanOut {
    fn consume(&self, signal: Signal, request: Bytes, metadata: Metadata) -> ConsumeFuture<'_> {
        Box::pin(async move {
            let results = futures::future::join_all(
                self.0
                    .iter()
                    .map(|c| c.consume(signal, request.clone(), metadata.clone())),
            )
            .await;
            let mut ack = Ack::ok();
            for result in results {
                ack.merge(result?);
            }
            Ok(ack)
        })
    }
}
