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
//! - [`routing`]: the immutable consistent-hash ring.
//! - [`config`]: the collector-shaped YAML config: typed, env-expanded,
//!   validated with errors that name the key path.
//! - [`proto`]: prost types generated from the vendored OTLP protos (used by the
//!   JSON transcoder, the test oracle and test sinks, never on the hot path).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod consumer;
pub mod proto;
pub mod routing;
pub mod signal;
