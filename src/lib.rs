//! `otlp-lb`: an OTLP-aware consistent-hashing load balancer.
//!
//! A request flows one way through these modules:
//!
//! ```text
//! receiver (gRPC, HTTP) -> pipeline -> processor* -> exporter (loadbalancing, otlp, ...)
//!                                                     |  wire::split by routing key
//!                                                     |  routing::Ring picks the backend
//!                                                     v
//!                                                  backends (pass-through gRPC)
//! ```
//!
//! - [`signal`] and [`consumer`]: the signal enum and the one interface between
//!   stages; requests travel as encoded protobuf [`bytes::Bytes`].
//! - [`wire`]: the protobuf wire-format scanner: item counting and the
//!   request splitter, which cuts a request into one request per backend by
//!   copying byte ranges, never decoding or re-encoding an item.
//! - [`routing`]: the immutable consistent-hash ring.
//! - [`proto`]: prost types generated from the vendored OTLP protos (used by the
//!   JSON transcoder, the test oracle and test sinks, never on the hot path).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod consumer;
pub mod proto;
pub mod routing;
pub mod signal;
pub mod wire;
