//! `otlp-lb`: an OTLP-aware consistent-hashing load balancer.
//!
//! A request flows one way through these modules:
//!
//! ```text
//! receiver (gRPC, HTTP) -> pipeline -> processor* -> exporter (loadbalancing, otlp, ...)
//!                                                     |  wire::Splitter cuts by routing key
//!                                                     |  routing::Ring picks the backend
//!                                                     v
//!                                                  backends (pass-through gRPC)
//!           discovery (static, dns, k8s) --Update stream--> exporter::PoolHandle::follow
//! ```
//!
//! - [`signal`] and [`consumer`]: the signal enum (and [`signal::PerSignal`])
//!   and the one interface between stages; requests travel as encoded
//!   protobuf [`bytes::Bytes`], with the client metadata a receiver kept
//!   ([`auth::Metadata`]) next to them.
//! - [`auth`]: tenants and authentication at the edges: the metadata kept
//!   with requests, `headers_setter`, the receivers' bearer token check.
//! - [`component`]: what every component's `build` gets; each config type
//!   builds its own running component.
//! - [`receiver`]: OTLP/gRPC and OTLP/HTTP (protobuf and JSON) front ends,
//!   over one accept path (TLS, `TCP_NODELAY`, connection bounds).
//! - [`wire`]: the protobuf wire-format scanner: item counting and the
//!   request splitter, which cuts a request into one request per backend by
//!   copying byte ranges, never decoding or re-encoding an item.
//! - [`routing`]: the routing keys and the key text the ring hashes, and the
//!   immutable consistent-hash ring.
//! - [`discovery`]: resolvers as pure producers of endpoint-set updates; they
//!   know nothing of rings or exporters.
//! - [`exporter`]: each exporter built from its config; backend connections,
//!   the pool behind `arc-swap` (the one consumer of its resolver's updates),
//!   delivery with per-part retry, the sending queue, the debug exporter.
//! - [`processor`]: the second tier's stateful processors.
//! - [`pipeline`]: wires the components into consumer chains; [`service`]
//!   binds, runs and shuts everything down; [`demo`] is the embedded demo.
//! - [`config`]: the collector-shaped YAML config: typed, env-expanded,
//!   validated with errors that name the key path.
//! - [`telemetry`]: Prometheus self-metrics with the collector's names, health.
//! - [`codec`]: the pass-through tonic codec; [`proto`]: prost types generated
//!   from the vendored OTLP protos (JSON transcoding, processors, test oracle
//!   and sinks; never the forwarding path).

pub mod auth;
pub mod codec;
pub mod component;
pub mod config;
pub mod consumer;
pub mod demo;
pub mod discovery;
pub mod exporter;
pub mod pipeline;
pub mod processor;
pub mod proto;
pub mod receiver;
pub mod routing;
pub mod service;
pub mod signal;
pub mod telemetry;
pub mod wire;
