//! The request splitter: one OTLP request in, one request per backend out.
//!
//! It scans the wire format once (`scan`), finds every routing unit (a
//! span, data point or log record, or a whole metric or resource for coarser
//! keys), computes its key text ([`crate::routing::key`]), asks the caller's
//! `route` for a backend, and records the unit's byte range. It then writes
//! each backend's request (`assemble`) in one allocation of exactly the
//! right size, copying byte ranges of the original.
//!
//! It must never decode or re-encode an item: spans, data points, log records
//! and every non-child field of the containers (resource, scope, schema_url,
//! metric name, description, unit, temporality, unknown fields) are copied
//! verbatim. The only bytes it writes are the tag and length headers of the
//! containers it rebuilds. Within a rebuilt container the non-child fields
//! come first, in their original order, then the children in their original
//! order; protobuf gives no meaning to the order of different fields.
//!
//! This file owns the API ([`Splitter`], [`Split`], [`Part`]) and the choice
//! between forwarding the request as it is and assembling parts.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::{
    routing::{KeySpec, RoutingKey, key::Pseudo},
    signal::Signal,
};

#[cfg(doc)]
use crate::routing::key_hash;

use super::{Layout, WireError};

mod assemble;
mod scan;

use scan::{MAX_DEPTH, NONE, SCRATCH, Scan, Scratch};

/// The result of [`Splitter::split`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// One part per backend that received at least one item, ordered by
    /// backend index.
    pub parts: Vec<Part>,
    /// Items dropped because they cannot be routed (for example a span whose
    /// trace id is not 16 bytes). The client cannot fix them by retrying.
    pub rejected: u64,
    /// Why items were rejected (the first few reasons); empty when
    /// `rejected == 0`.
    pub message: String,
}

/// One backend's share of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The backend index `route` returned.
    pub backend: usize,
    /// A complete encoded `Export*ServiceRequest`.
    pub request: Bytes,
    /// The number of items (spans, data points, log records) in `request`.
    pub items: u64,
}

/// Splits requests of one signal by one routing key. Cheap to share: it holds
/// only the configuration.
#[derive(Debug, Clone)]
pub struct Splitter {
    signal: Signal,
    spec: KeySpec,
    grain: Grain,
    /// For [`RoutingKey::Attributes`] on traces: which names are the span's
    /// pseudo attributes (empty when none is).
    pseudo: Vec<Pseudo>,
}

/// The unit a key routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    /// Whole `Resource*` messages (service, resource).
    Resource,
    /// Whole `Metric` messages (metric).
    Metric,
    /// Spans and log records (traceID, attributes).
    Item,
    /// Metric data points (streamID, attributes).
    Point,
}

/// Most rejection reasons spelled out in [`Split::message`].
const MAX_REASONS: u64 = 3;

impl Splitter {
    /// A splitter for `signal` routing on `key` (a [`RoutingKey`], or a
    /// [`KeySpec`] for `attributes`). A key the signal does not have (which
    /// [`KeySpec::parse`] never returns) is replaced by the signal's
    /// [`RoutingKey::default_for`].
    pub fn new(signal: Signal, key: impl Into<KeySpec>) -> Self {
        let spec = key.into();
        let spec = if spec.key.supports(signal) {
            spec
        } else {
            RoutingKey::default_for(signal).into()
        };
        let grain = match (spec.key, signal) {
            (RoutingKey::Service | RoutingKey::Resource, _) => Grain::Resource,
            (RoutingKey::Metric, _) => Grain::Metric,
            (RoutingKey::StreamId, _) | (RoutingKey::Attributes, Signal::Metrics) => Grain::Point,
            (RoutingKey::TraceId | RoutingKey::Attributes, _) => Grain::Item,
        };
        let pseudo = match spec.key {
            RoutingKey::Attributes => Pseudo::of(signal, &spec.attributes),
            _ => Vec::new(),
        };
        Splitter {
            signal,
            spec,
            grain,
            pseudo,
        }
    }

    /// The signal this splitter reads.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The key this splitter routes on, with its attribute names.
    pub fn key(&self) -> &KeySpec {
        &self.spec
    }

    /// Splits `request` (an encoded `Export*ServiceRequest` of this signal).
    ///
    /// `route` maps a key hash ([`key_hash`] of the key text, see
    /// [`crate::routing::key`]) to a backend index; indexes should be dense
    /// (below the number of backends), as the splitter keeps a counter per
    /// index. `keyless` is the hash used for items without a key (log records
    /// without a trace id when routing by `traceID`).
    ///
    /// With `service` and `resource` the whole resource message is forwarded
    /// verbatim (empty scopes included), with `metric` the whole metric;
    /// resources and metrics without items are left out.
    ///
    /// Items that cannot be routed are rejected (counted, described in
    /// [`Split::message`]) and the rest is forwarded. A malformed request
    /// (truncation, a bad varint, a wrong wire type in a field the splitter
    /// reads) returns the error and nothing is forwarded. When every item goes
    /// to one backend and none is rejected, the single part is `request`
    /// itself (no copy).
    pub fn split(
        &self,
        request: &Bytes,
        route: &mut dyn FnMut(u64) -> usize,
        keyless: u64,
    ) -> Result<Split, WireError> {
        let mut run = |scratch: &mut Scratch| {
            let result = self.split_with(scratch, request, route, keyless);
            scratch.trim();
            result
        };
        let shared = SCRATCH.try_with(|cell| {
            cell.try_borrow_mut()
                .ok()
                .map(|mut scratch| run(&mut scratch))
        });
        match shared {
            Ok(Some(result)) => result,
            // Re-entered from `route`, or the thread is exiting.
            _ => run(&mut Scratch::default()),
        }
    }

    fn split_with(
        &self,
        scratch: &mut Scratch,
        request: &Bytes,
        route: &mut dyn FnMut(u64) -> usize,
        keyless: u64,
    ) -> Result<Split, WireError> {
        scratch.clear();
        let mut scan = Scan {
            buf: request,
            layout: Layout::of(self.signal),
            splitter: self,
            s: scratch,
            route,
            keyless,
            last_hash: None,
            last_trace: None,
            rejected: 0,
            message: String::new(),
            ri: 0,
            si: 0,
            chain: [NONE; MAX_DEPTH],
            first_backend: None,
            one_backend: true,
            max_backend: 0,
            items: 0,
        };
        scan.request()?;
        let Scan {
            rejected,
            mut message,
            first_backend,
            one_backend,
            max_backend,
            items,
            ..
        } = scan;
        if rejected > MAX_REASONS {
            let _ = write!(message, "; and {} more", rejected - MAX_REASONS);
        }
        let parts = match first_backend {
            None => Vec::new(),
            Some(backend) if one_backend && rejected == 0 => vec![Part {
                backend,
                request: request.clone(),
                items,
            }],
            Some(_) => assemble::assemble(scratch, request, self.depth(), max_backend),
        };
        Ok(Split {
            parts,
            rejected,
            message,
        })
    }

    /// Container levels above the routed unit.
    fn depth(&self) -> usize {
        match self.grain {
            Grain::Resource => 0,
            Grain::Metric | Grain::Item => 2,
            Grain::Point => 4,
        }
    }
}

#[cfg(test)]
mod tests;
