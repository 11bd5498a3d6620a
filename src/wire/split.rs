//! The request splitter: one OTLP request in, one request per backend out.
//!
//! It scans the wire format once, finds every routing unit (a span, data
//! point or log record, or a whole metric or resource for coarser keys),
//! computes its key, asks the caller's `route` for a backend, and records the
//! unit's byte range. It then writes each backend's request in one allocation
//! of exactly the right size, copying byte ranges of the original.
//!
//! It must never decode or re-encode an item: spans, data points, log records
//! and every non-child field of the containers (resource, scope, schema_url,
//! metric name, description, unit, temporality, unknown fields) are copied
//! verbatim. The only bytes it writes are the tag and length headers of the
//! containers it rebuilds. Within a rebuilt container the non-child fields
//! come first, in their original order, then the children in their original
//! order; protobuf gives no meaning to the order of different fields.
//!
//! The scan reads only what routing needs: the container fields, the keys'
//! fields, and each item up to its key (a span is read up to its first
//! `trace_id` when routing by `traceID`). Damage in bytes it does not read is
//! forwarded as it is, for the backend to judge.
//!
//! Scratch space (unit descriptors, container descriptors, key buffers) lives
//! in a per-thread `Scratch` reused across calls, so a warmed-up thread
//! splits without allocating anything but the output requests and the part
//! list. A `route` callback that itself splits on the same thread gets a fresh
//! scratch instead of the shared one.

use std::{cell::RefCell, fmt::Write as _, io::Write as _, ops::Range};

use bytes::Bytes;

use super::{
    DATA_POINTS, Field, Fields, Layout, WireError, count_points, count_resource, len_header_len,
    metric_data_name, put_len_header,
};
use xxhash_rust::xxh3::xxh3_128;

use crate::{routing::key_hash, signal::Signal};

/// What the load balancer routes on; the names are the collector's
/// `routing_key` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingKey {
    /// `traceID`: each span (log record) by its trace id.
    TraceId,
    /// `service`: each resource by its `service.name` attribute.
    Service,
    /// `resource`: each resource by all its attributes.
    Resource,
    /// `metric`: each metric by its name.
    Metric,
    /// `streamID`: each data point by its stream identity (resource, scope,
    /// metric name and point attributes).
    StreamId,
    /// `attributes`: each item by the values of these attributes, looked up in
    /// the resource, then the scope, then the item (the first occurrence in
    /// each). For spans, the names `span.name` and `span.kind` are the span's
    /// name and kind (as its integer) and take precedence. A string value is
    /// its text, an int its decimal, a bool `true`/`false`, a double Rust's
    /// `{}` rendering; any other value is its encoded `AnyValue` bytes.
    Attributes(Vec<String>),
}

impl RoutingKey {
    /// Parses the collector's `routing_key` and `routing_attributes` settings
    /// for `signal`. The error says which setting is wrong and why.
    pub fn parse(
        signal: Signal,
        routing_key: &str,
        routing_attributes: &[String],
    ) -> Result<Self, String> {
        let key = match routing_key {
            "traceID" => RoutingKey::TraceId,
            "service" => RoutingKey::Service,
            "resource" => RoutingKey::Resource,
            "metric" => RoutingKey::Metric,
            "streamID" => RoutingKey::StreamId,
            "attributes" => {
                if routing_attributes.is_empty() {
                    return Err(
                        "routing_key \"attributes\" needs a non-empty routing_attributes list"
                            .to_string(),
                    );
                }
                if let Some(bad) = routing_attributes.iter().find(|a| a.is_empty()) {
                    return Err(format!("routing_attributes has an empty name ({bad:?})"));
                }
                RoutingKey::Attributes(routing_attributes.to_vec())
            }
            other => {
                return Err(format!(
                    "unknown routing_key {other:?} for {signal} (expected one of {})",
                    Self::names(signal)
                ));
            }
        };
        if !key.supports(signal) {
            return Err(format!(
                "routing_key {routing_key:?} is not supported for {signal} (expected one of {})",
                Self::names(signal)
            ));
        }
        if !routing_attributes.is_empty() && !matches!(key, RoutingKey::Attributes(_)) {
            return Err(format!(
                "routing_attributes is set but routing_key is {routing_key:?}; \
                 it is only used with routing_key \"attributes\""
            ));
        }
        Ok(key)
    }

    /// The collector's name for this key.
    pub fn name(&self) -> &'static str {
        match self {
            RoutingKey::TraceId => "traceID",
            RoutingKey::Service => "service",
            RoutingKey::Resource => "resource",
            RoutingKey::Metric => "metric",
            RoutingKey::StreamId => "streamID",
            RoutingKey::Attributes(_) => "attributes",
        }
    }

    /// True when `signal` has this key.
    pub fn supports(&self, signal: Signal) -> bool {
        match self {
            RoutingKey::TraceId => signal != Signal::Metrics,
            RoutingKey::Service | RoutingKey::Resource | RoutingKey::Attributes(_) => true,
            RoutingKey::Metric | RoutingKey::StreamId => signal == Signal::Metrics,
        }
    }

    /// The collector's default key for `signal`: `traceID` for traces and
    /// logs, `service` for metrics.
    pub fn default_for(signal: Signal) -> Self {
        match signal {
            Signal::Traces | Signal::Logs => RoutingKey::TraceId,
            Signal::Metrics => RoutingKey::Service,
        }
    }

    fn names(signal: Signal) -> &'static str {
        match signal {
            Signal::Traces | Signal::Logs => "traceID, service, resource, attributes",
            Signal::Metrics => "service, resource, metric, streamID, attributes",
        }
    }
}

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
    key: RoutingKey,
    grain: Grain,
    /// For [`RoutingKey::Attributes`] on traces: which names are the span's
    /// pseudo attributes.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pseudo {
    No,
    SpanName,
    SpanKind,
}

/// The span pseudo attribute holding the span's name.
pub const SPAN_NAME: &str = "span.name";
/// The span pseudo attribute holding the span's kind (as its integer).
pub const SPAN_KIND: &str = "span.kind";

/// Most rejection reasons spelled out in [`Split::message`].
const MAX_REASONS: u64 = 3;

impl Splitter {
    /// A splitter for `signal` routing on `key`. A key the signal does not have
    /// (which [`RoutingKey::parse`] never returns) is replaced by the signal's
    /// [`RoutingKey::default_for`].
    pub fn new(signal: Signal, key: RoutingKey) -> Self {
        let key = if key.supports(signal) {
            key
        } else {
            RoutingKey::default_for(signal)
        };
        let grain = match (&key, signal) {
            (RoutingKey::Service | RoutingKey::Resource, _) => Grain::Resource,
            (RoutingKey::Metric, _) => Grain::Metric,
            (RoutingKey::StreamId, _) | (RoutingKey::Attributes(_), Signal::Metrics) => {
                Grain::Point
            }
            (RoutingKey::TraceId | RoutingKey::Attributes(_), _) => Grain::Item,
        };
        let pseudo = match &key {
            RoutingKey::Attributes(names) => names
                .iter()
                .map(|n| match (signal, n.as_str()) {
                    (Signal::Traces, SPAN_NAME) => Pseudo::SpanName,
                    (Signal::Traces, SPAN_KIND) => Pseudo::SpanKind,
                    _ => Pseudo::No,
                })
                .collect(),
            _ => Vec::new(),
        };
        // Only traces have pseudo attributes; without any, items need not be
        // scanned for their name and kind.
        let pseudo = if pseudo.contains(&Pseudo::SpanName) || pseudo.contains(&Pseudo::SpanKind) {
            pseudo
        } else {
            Vec::new()
        };
        Splitter {
            signal,
            key,
            grain,
            pseudo,
        }
    }

    /// The signal this splitter reads.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The key this splitter routes on.
    pub fn key(&self) -> &RoutingKey {
        &self.key
    }

    /// Splits `request` (an encoded `Export*ServiceRequest` of this signal).
    ///
    /// `route` maps a key hash ([`key_hash`] of the key bytes) to a backend
    /// index; indexes should be dense (below the number of backends), as the
    /// splitter keeps a counter per index. `keyless` is the hash used for items
    /// without a key (log records without a trace id when routing by
    /// `traceID`).
    ///
    /// Keys: `traceID` is the 16 raw bytes; `service` the `service.name`
    /// value (empty when missing); `resource` the resource attributes in a
    /// canonical, order-free encoding; `metric` the metric name; `streamID`
    /// the metric identity (xxh3-128 of the resource identity, itself
    /// xxh3-128 of the canonical resource attributes, and of the scope name,
    /// scope version and metric name) followed by the canonical point
    /// attributes; `attributes` the text `name=value|` for each configured
    /// name (`name=|` when missing). Canonical attributes are the count, then
    /// each key and encoded `AnyValue` length-prefixed, sorted by key then
    /// value. With `service` and `resource` the whole resource message is
    /// forwarded verbatim (empty scopes included), with `metric` the whole
    /// metric; resources and metrics without items are left out.
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
            Some(_) => assemble(scratch, request, self.depth(), max_backend),
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

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Marks "no node" in unit chains and the build cursor.
const NONE: u32 = u32::MAX;
/// Container levels: resource, scope, metric, metric data.
const MAX_DEPTH: usize = 4;
/// Above this many retained entries a scratch vector is shrunk after use, so
/// one huge request does not pin its memory on the thread forever.
const RETAIN: usize = 1 << 16;

/// A container occurrence in the request (a resource, scope, metric or metric
/// data message) that may be rebuilt in the outputs.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The field number it is written under in its parent.
    number: u32,
    /// Its non-child fields: `extras[level][first..last]`.
    first: u32,
    last: u32,
    /// Total bytes of its non-child fields.
    extras_len: usize,
}

/// A routing unit: a field copied verbatim into one backend's part.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
    /// Indexes of the enclosing containers, one per level ([`NONE`] below
    /// the split depth), so building a part never walks parent links.
    chain: [u32; MAX_DEPTH],
    backend: usize,
    items: u64,
}

/// Reusable per-thread working memory for [`Splitter::split`].
#[derive(Debug, Default)]
struct Scratch {
    /// Request fields other than the resources.
    req_extras: Vec<(usize, usize)>,
    req_extras_len: usize,
    nodes: [Vec<Node>; MAX_DEPTH],
    extras: [Vec<(usize, usize)>; MAX_DEPTH],
    units: Vec<Unit>,
    /// Unit indexes grouped by backend.
    order: Vec<u32>,
    counts: Vec<u32>,
    /// Sizes of the containers of the part being built, in write order.
    sizes: Vec<usize>,
    /// The key being built.
    key: Vec<u8>,
    /// Length of the per-metric prefix of `key` (streamID).
    prefix: usize,
    /// Canonical resource attributes and their 128-bit digest (streamID).
    resource_canon: Vec<u8>,
    resource_id: [u8; 16],
    /// Attribute `(key, value)` ranges being canonicalised.
    attrs: Vec<Attr>,
    /// Values of the configured attributes found in the resource, the scope
    /// and the item (`attributes`).
    resource_vals: Vec<Option<(usize, usize)>>,
    scope_vals: Vec<Option<(usize, usize)>>,
    item_vals: Vec<Option<(usize, usize)>>,
    /// `service.name` value range (service).
    service: Option<(usize, usize)>,
    /// Scope name and version (streamID).
    scope_name: (usize, usize),
    scope_version: (usize, usize),
}

impl Scratch {
    fn clear(&mut self) {
        self.req_extras.clear();
        self.req_extras_len = 0;
        for level in &mut self.nodes {
            level.clear();
        }
        for level in &mut self.extras {
            level.clear();
        }
        self.units.clear();
        self.order.clear();
        self.counts.clear();
        self.sizes.clear();
        self.key.clear();
        self.resource_canon.clear();
        self.attrs.clear();
    }

    fn trim(&mut self) {
        fn trim<T>(v: &mut Vec<T>) {
            if v.capacity() > RETAIN {
                v.clear();
                v.shrink_to(RETAIN / 4);
            }
        }
        trim(&mut self.units);
        trim(&mut self.order);
        trim(&mut self.counts);
        trim(&mut self.sizes);
        trim(&mut self.key);
        trim(&mut self.resource_canon);
        trim(&mut self.attrs);
        for level in &mut self.nodes {
            trim(level);
        }
        for level in &mut self.extras {
            trim(level);
        }
    }
}

/// The bytes of `buf[start..end]`. Every range the scanner records was checked
/// by the field iterator, so the fallback never happens.
#[inline]
fn bytes_of(buf: &[u8], start: usize, end: usize) -> &[u8] {
    debug_assert!(start <= end && end <= buf.len());
    buf.get(start..end).unwrap_or_default()
}

/// Appends `range` to a container's extras, merging it into the previous one
/// when adjacent. Returns its length.
#[inline]
fn push_extra(extras: &mut Vec<(usize, usize)>, first: usize, range: Range<usize>) -> usize {
    let len = range.end - range.start;
    let ours = extras.len() > first;
    match extras.last_mut() {
        Some(last) if ours && last.1 == range.start => last.1 = range.end,
        _ => extras.push((range.start, range.end)),
    }
    len
}

/// One scan of one request.
struct Scan<'a> {
    buf: &'a [u8],
    layout: &'static Layout,
    splitter: &'a Splitter,
    s: &'a mut Scratch,
    route: &'a mut dyn FnMut(u64) -> usize,
    keyless: u64,
    /// The last hash routed and its backend.
    last_hash: Option<(u64, usize)>,
    /// The last trace id routed and its backend: spans of a trace are
    /// usually adjacent.
    last_trace: Option<([u8; 16], usize)>,
    rejected: u64,
    message: String,
    /// Current resource and scope indexes, for rejection messages.
    ri: usize,
    si: usize,
    /// Indexes of the containers being scanned, per level.
    chain: [u32; MAX_DEPTH],
    first_backend: Option<usize>,
    one_backend: bool,
    max_backend: usize,
    items: u64,
}

impl Scan<'_> {
    fn request(&mut self) -> Result<(), WireError> {
        let (number, name) = self.layout.resource;
        let mut ri = 0usize;
        for f in Fields::new(self.buf) {
            let f = f?;
            if f.number == number {
                let payload = f.payload()?;
                self.resource(ri, &f, payload)
                    .map_err(|e| e.within(name, Some(ri)))?;
                ri += 1;
            } else {
                self.s.req_extras_len += push_extra(&mut self.s.req_extras, 0, f.range());
            }
        }
        Ok(())
    }

    #[inline]
    fn route_hash(&mut self, hash: u64) -> usize {
        match self.last_hash {
            Some((h, backend)) if h == hash => backend,
            _ => {
                let backend = (self.route)(hash);
                self.last_hash = Some((hash, backend));
                backend
            }
        }
    }

    #[inline]
    fn route_key(&mut self) -> usize {
        let hash = key_hash(&self.s.key);
        self.route_hash(hash)
    }

    #[inline]
    fn route_trace(&mut self, id: &[u8]) -> usize {
        if let Some((last, backend)) = &self.last_trace
            && last[..] == *id
        {
            return *backend;
        }
        let backend = self.route_hash(key_hash(id));
        let mut copy = [0u8; 16];
        copy.copy_from_slice(id);
        self.last_trace = Some((copy, backend));
        backend
    }

    #[inline]
    fn push_unit(&mut self, range: Range<usize>, backend: usize, items: u64) {
        match self.first_backend {
            None => self.first_backend = Some(backend),
            Some(first) => self.one_backend &= first == backend,
        }
        self.max_backend = self.max_backend.max(backend);
        self.items += items;
        self.s.units.push(Unit {
            start: range.start,
            end: range.end,
            chain: self.chain,
            backend,
            items,
        });
    }

    #[cold]
    fn reject(&mut self, ii: usize, len: usize) {
        self.rejected += 1;
        if self.rejected > MAX_REASONS {
            return;
        }
        if !self.message.is_empty() {
            self.message.push_str("; ");
        }
        let l = self.layout;
        let want = match self.splitter.signal {
            Signal::Logs => "16 or none",
            _ => "16",
        };
        let _ = write!(
            self.message,
            "{}[{}].{}[{}].{}[{}]: trace_id is {len} bytes (want {want})",
            l.resource.1, self.ri, l.scope.1, self.si, l.item.1, ii
        );
    }

    /// Pushes a container node at `level` whose non-child fields are
    /// `extras[level][first..]`.
    fn push_node(&mut self, level: usize, number: u32, first: usize, len: usize) {
        let last = self.s.extras[level].len();
        self.s.nodes[level].push(Node {
            number,
            first: first as u32,
            last: last as u32,
            extras_len: len,
        });
    }

    fn resource(
        &mut self,
        ri: usize,
        whole: &Field,
        payload: Range<usize>,
    ) -> Result<(), WireError> {
        self.ri = ri;
        let buf = self.buf;
        let grain = self.splitter.grain;
        let scope_number = self.layout.scope.0;
        let first = self.s.extras[0].len();
        let mut len = 0usize;

        // Pass 1: the resource (for the key) and the non-child fields. The
        // resource may follow the scopes, so the scopes wait for pass 2.
        self.begin_resource();
        for f in Fields::within(buf, payload.clone()) {
            let f = f?;
            if f.number == scope_number {
                f.payload()?;
                continue;
            }
            if f.number == 1 {
                let p = f.payload()?;
                self.resource_info(p)
                    .map_err(|e| e.within("resource", None))?;
            }
            if grain != Grain::Resource {
                len += push_extra(&mut self.s.extras[0], first, f.range());
            }
        }
        self.end_resource()?;

        if grain == Grain::Resource {
            let items = count_resource(self.splitter.signal, self.layout, buf, payload)?;
            if items > 0 {
                let backend = self.route_key();
                self.push_unit(whole.range(), backend, items);
            }
            return Ok(());
        }

        self.chain[0] = self.s.nodes[0].len() as u32;
        self.push_node(0, self.layout.resource.0, first, len);
        let name = self.layout.scope.1;
        let mut si = 0usize;
        for f in Fields::within(buf, payload) {
            let f = f?;
            if f.number == scope_number {
                let p = f.payload()?;
                self.scope(si, p).map_err(|e| e.within(name, Some(si)))?;
                si += 1;
            }
        }
        Ok(())
    }

    fn begin_resource(&mut self) {
        match &self.splitter.key {
            RoutingKey::Service => self.s.service = None,
            RoutingKey::Resource | RoutingKey::StreamId => self.s.attrs.clear(),
            RoutingKey::Attributes(names) => {
                self.s.resource_vals.clear();
                self.s.resource_vals.resize(names.len(), None);
            }
            RoutingKey::TraceId | RoutingKey::Metric => {}
        }
    }

    /// Reads one `resource` field (there is normally one; repeated ones merge,
    /// so their attributes are read in order).
    fn resource_info(&mut self, payload: Range<usize>) -> Result<(), WireError> {
        let buf = self.buf;
        let s = &mut *self.s;
        match &self.splitter.key {
            RoutingKey::Service => for_each_attr(buf, payload, 1, |k, v| {
                if s.service.is_none() && bytes_of(buf, k.start, k.end) == b"service.name" {
                    s.service = Some((v.start, v.end));
                }
            }),
            RoutingKey::Resource | RoutingKey::StreamId => {
                for_each_attr(buf, payload, 1, |k, v| s.attrs.push(Attr::new(buf, k, v)))
            }
            RoutingKey::Attributes(names) => for_each_attr(buf, payload, 1, |k, v| {
                lookup(buf, names, &mut s.resource_vals, k, v)
            }),
            RoutingKey::TraceId | RoutingKey::Metric => Ok(()),
        }
    }

    fn end_resource(&mut self) -> Result<(), WireError> {
        let buf = self.buf;
        let s = &mut *self.s;
        match &self.splitter.key {
            RoutingKey::Service => {
                s.key.clear();
                if let Some((start, end)) = s.service {
                    render_any(buf, start..end, &mut s.key)
                        .map_err(|e| e.within("resource", None))?;
                }
            }
            RoutingKey::Resource => {
                s.key.clear();
                canonical_attrs(buf, &mut s.attrs, &mut s.key);
            }
            RoutingKey::StreamId => {
                s.resource_canon.clear();
                canonical_attrs(buf, &mut s.attrs, &mut s.resource_canon);
                s.resource_id = xxh3_128(&s.resource_canon).to_le_bytes();
            }
            _ => {}
        }
        Ok(())
    }

    fn scope(&mut self, si: usize, payload: Range<usize>) -> Result<(), WireError> {
        self.si = si;
        let buf = self.buf;
        let (item_number, item_name) = self.layout.item;
        match &self.splitter.key {
            RoutingKey::Attributes(names) => {
                let s = &mut *self.s;
                s.scope_vals.clear();
                s.scope_vals.resize(names.len(), None);
                for f in Fields::within(buf, payload.clone()) {
                    let f = f?;
                    if f.number == 1 {
                        let p = f.payload()?;
                        for_each_attr(buf, p, 3, |k, v| {
                            lookup(buf, names, &mut s.scope_vals, k, v)
                        })
                        .map_err(|e| e.within("scope", None))?;
                    }
                }
            }
            RoutingKey::StreamId => {
                self.s.scope_name = (0, 0);
                self.s.scope_version = (0, 0);
                for f in Fields::within(buf, payload.clone()) {
                    let f = f?;
                    if f.number == 1 {
                        let p = f.payload()?;
                        self.scope_identity(p)
                            .map_err(|e| e.within("scope", None))?;
                    }
                }
            }
            _ => {}
        }

        self.chain[1] = self.s.nodes[1].len() as u32;
        let first = self.s.extras[1].len();
        let mut len = 0usize;
        let mut ii = 0usize;
        for f in Fields::within(buf, payload) {
            let f = f?;
            if f.number != item_number {
                len += push_extra(&mut self.s.extras[1], first, f.range());
                continue;
            }
            let p = f.payload()?;
            let result = match self.splitter.grain {
                Grain::Item => self.item(ii, &f, p),
                Grain::Metric => self.metric_unit(&f, p),
                _ => self.metric_node(p),
            };
            result.map_err(|e| e.within(item_name, Some(ii)))?;
            ii += 1;
        }
        self.push_node(1, self.layout.scope.0, first, len);
        Ok(())
    }

    /// Reads the scope's name and version (last occurrence wins, as in
    /// protobuf).
    fn scope_identity(&mut self, payload: Range<usize>) -> Result<(), WireError> {
        for f in Fields::within(self.buf, payload) {
            let f = f?;
            match f.number {
                1 => self.s.scope_name = pair(f.payload()?),
                2 => self.s.scope_version = pair(f.payload()?),
                _ => {}
            }
        }
        Ok(())
    }

    /// A span or log record.
    fn item(&mut self, ii: usize, whole: &Field, payload: Range<usize>) -> Result<(), WireError> {
        let buf = self.buf;
        let backend = match &self.splitter.key {
            RoutingKey::TraceId => {
                let logs = self.splitter.signal == Signal::Logs;
                let number = if logs { 9 } else { 1 };
                let mut id = 0..0;
                for f in Fields::within(buf, payload) {
                    let f = f?;
                    if f.number == number {
                        id = f.payload()?;
                        break;
                    }
                }
                match id.len() {
                    16 => self.route_trace(bytes_of(buf, id.start, id.end)),
                    0 if logs => self.route_hash(self.keyless),
                    len => {
                        self.reject(ii, len);
                        return Ok(());
                    }
                }
            }
            RoutingKey::Attributes(_) => {
                let attrs = if self.splitter.signal == Signal::Logs {
                    6
                } else {
                    9
                };
                self.attributes_key(payload, attrs)?;
                self.route_key()
            }
            _ => return Ok(()),
        };
        self.push_unit(whole.range(), backend, 1);
        Ok(())
    }

    /// A whole metric routed by its name.
    fn metric_unit(&mut self, whole: &Field, payload: Range<usize>) -> Result<(), WireError> {
        let buf = self.buf;
        let mut name = 0..0;
        let mut items = 0u64;
        for f in Fields::within(buf, payload) {
            let f = f?;
            if f.number == 1 {
                name = f.payload()?;
            } else if let Some(data) = metric_data_name(f.number) {
                items += count_points(buf, f.payload()?).map_err(|e| e.within(data, None))?;
            }
        }
        if items > 0 {
            let backend = self.route_hash(key_hash(bytes_of(buf, name.start, name.end)));
            self.push_unit(whole.range(), backend, items);
        }
        Ok(())
    }

    /// A metric whose data points are routed one by one.
    fn metric_node(&mut self, payload: Range<usize>) -> Result<(), WireError> {
        let buf = self.buf;
        let first = self.s.extras[2].len();
        let mut len = 0usize;
        let mut name = 0..0;
        for f in Fields::within(buf, payload.clone()) {
            let f = f?;
            if metric_data_name(f.number).is_some() {
                f.payload()?;
                continue;
            }
            if f.number == 1 {
                name = f.payload()?;
            }
            len += push_extra(&mut self.s.extras[2], first, f.range());
        }
        self.chain[2] = self.s.nodes[2].len() as u32;
        self.push_node(2, self.layout.item.0, first, len);

        if self.splitter.key == RoutingKey::StreamId {
            let s = &mut *self.s;
            s.key.clear();
            s.key.extend_from_slice(&s.resource_id);
            put_lp(&mut s.key, bytes_of(buf, s.scope_name.0, s.scope_name.1));
            put_lp(
                &mut s.key,
                bytes_of(buf, s.scope_version.0, s.scope_version.1),
            );
            put_lp(&mut s.key, bytes_of(buf, name.start, name.end));
            // The metric's identity as a digest keeps every point's key under
            // 128 bytes, where xxh3 is fastest.
            let metric_id = xxh3_128(&s.key).to_le_bytes();
            s.key.clear();
            s.key.extend_from_slice(&metric_id);
            s.prefix = s.key.len();
        }

        for f in Fields::within(buf, payload) {
            let f = f?;
            if let Some(data) = metric_data_name(f.number) {
                let p = f.payload()?;
                self.data_node(f.number, p)
                    .map_err(|e| e.within(data, None))?;
            }
        }
        Ok(())
    }

    /// A `Gauge`, `Sum`, `Histogram`, `ExponentialHistogram` or `Summary`.
    fn data_node(&mut self, number: u32, payload: Range<usize>) -> Result<(), WireError> {
        let buf = self.buf;
        // The point's attributes field differs by kind.
        let attrs = match number {
            9 => 9,
            10 => 1,
            _ => 7,
        };
        self.chain[3] = self.s.nodes[3].len() as u32;
        let first = self.s.extras[3].len();
        let mut len = 0usize;
        let mut pi = 0usize;
        for f in Fields::within(buf, payload) {
            let f = f?;
            if f.number != DATA_POINTS.0 {
                len += push_extra(&mut self.s.extras[3], first, f.range());
                continue;
            }
            let p = f.payload()?;
            self.point(&f, p, attrs)
                .map_err(|e| e.within(DATA_POINTS.1, Some(pi)))?;
            pi += 1;
        }
        self.push_node(3, number, first, len);
        Ok(())
    }

    fn point(&mut self, whole: &Field, payload: Range<usize>, attrs: u32) -> Result<(), WireError> {
        let buf = self.buf;
        if self.splitter.key == RoutingKey::StreamId {
            let s = &mut *self.s;
            s.key.truncate(s.prefix);
            s.attrs.clear();
            for_each_attr(buf, payload, attrs, |k, v| {
                s.attrs.push(Attr::new(buf, k, v))
            })?;
            canonical_attrs(buf, &mut s.attrs, &mut s.key);
        } else {
            self.attributes_key(payload, attrs)?;
        }
        let backend = self.route_key();
        self.push_unit(whole.range(), backend, 1);
        Ok(())
    }

    /// Builds the `attributes` key of an item into `key`: `name=value|` for
    /// each configured name, the value taken from the resource, else the
    /// scope, else the item (span pseudo attributes first).
    fn attributes_key(&mut self, payload: Range<usize>, attrs: u32) -> Result<(), WireError> {
        let RoutingKey::Attributes(names) = &self.splitter.key else {
            return Ok(());
        };
        let buf = self.buf;
        let pseudo = &self.splitter.pseudo;
        let s = &mut *self.s;
        s.item_vals.clear();
        s.item_vals.resize(names.len(), None);
        let mut need = false;
        for i in 0..names.len() {
            let known = s.resource_vals.get(i).copied().flatten().is_some()
                || s.scope_vals.get(i).copied().flatten().is_some();
            need |= !known || pseudo.get(i).is_some_and(|p| *p != Pseudo::No);
        }
        let mut span_name = (0usize, 0usize);
        let mut span_kind = 0u64;
        if need {
            let mut ai = 0usize;
            for f in Fields::within(buf, payload) {
                let f = f?;
                if f.number == attrs {
                    let p = f.payload()?;
                    let (k, v) = key_value(buf, p).map_err(|e| e.within("attributes", Some(ai)))?;
                    lookup(buf, names, &mut s.item_vals, k, v);
                    ai += 1;
                } else if !pseudo.is_empty() && f.number == 5 {
                    span_name = pair(f.payload()?);
                } else if !pseudo.is_empty() && f.number == 6 {
                    span_kind = f.varint()?;
                }
            }
        }
        s.key.clear();
        for (i, name) in names.iter().enumerate() {
            s.key.extend_from_slice(name.as_bytes());
            s.key.push(b'=');
            match pseudo.get(i).copied().unwrap_or(Pseudo::No) {
                Pseudo::SpanName => {
                    s.key
                        .extend_from_slice(bytes_of(buf, span_name.0, span_name.1))
                }
                Pseudo::SpanKind => {
                    let _ = write!(s.key, "{}", span_kind as i32);
                }
                Pseudo::No => {
                    let found = [&s.resource_vals, &s.scope_vals, &s.item_vals]
                        .iter()
                        .find_map(|vals| vals.get(i).copied().flatten());
                    if let Some((start, end)) = found {
                        render_any(buf, start..end, &mut s.key)?;
                    }
                }
            }
            s.key.push(b'|');
        }
        Ok(())
    }
}

#[inline]
fn pair(r: Range<usize>) -> (usize, usize) {
    (r.start, r.end)
}

/// Calls `f(key, value)` for each `KeyValue` in field `number` of the message
/// at `buf[payload]`; `value` is the encoded `AnyValue` (empty when absent).
#[inline(always)]
fn for_each_attr(
    buf: &[u8],
    payload: Range<usize>,
    number: u32,
    mut f: impl FnMut(Range<usize>, Range<usize>),
) -> Result<(), WireError> {
    let mut ai = 0usize;
    for field in Fields::within(buf, payload) {
        let field = field?;
        if field.number == number {
            let p = field.payload()?;
            let (k, v) = key_value(buf, p).map_err(|e| e.within("attributes", Some(ai)))?;
            f(k, v);
            ai += 1;
        }
    }
    Ok(())
}

/// The key and value ranges of the `KeyValue` at `buf[payload]`.
#[inline(always)]
fn key_value(buf: &[u8], payload: Range<usize>) -> Result<(Range<usize>, Range<usize>), WireError> {
    if let Some(kv) = key_value_short(buf, payload.clone()) {
        return Ok(kv);
    }
    let mut key = 0..0;
    let mut value = 0..0;
    for f in Fields::within(buf, payload) {
        let f = f?;
        match f.number {
            1 => key = f.payload()?,
            2 => value = f.payload()?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// The common encoding of a `KeyValue`, decoded without the field iterator:
/// `key` then `value`, both shorter than 128 bytes, and nothing else. Any
/// other shape takes the general path, which gives the same answer.
#[inline(always)]
fn key_value_short(buf: &[u8], payload: Range<usize>) -> Option<(Range<usize>, Range<usize>)> {
    let start = payload.start;
    let b = buf.get(payload)?;
    if *b.first()? != 0x0a {
        return None;
    }
    let key_end = 2 + usize::from(*b.get(1)?);
    if *b.get(key_end)? != 0x12 {
        return None;
    }
    let value_end = key_end + 2 + usize::from(*b.get(key_end + 1)?);
    // A length byte with the high bit set is a longer varint, and it would
    // not land exactly on the end.
    if value_end != b.len() || b[1] >= 0x80 || b[key_end + 1] >= 0x80 {
        return None;
    }
    Some((
        start + 2..start + key_end,
        start + key_end + 2..start + value_end,
    ))
}

/// Records `value` for the first configured name equal to `key` that has no
/// value yet (the first occurrence of an attribute wins).
#[inline]
fn lookup(
    buf: &[u8],
    names: &[String],
    vals: &mut [Option<(usize, usize)>],
    key: Range<usize>,
    value: Range<usize>,
) {
    let key = bytes_of(buf, key.start, key.end);
    for (name, val) in names.iter().zip(vals.iter_mut()) {
        if val.is_none() && name.as_bytes() == key {
            *val = Some((value.start, value.end));
        }
    }
}

/// Appends `bytes` with a 4-byte little-endian length prefix.
#[inline]
fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// An attribute being canonicalised. `prefix` holds the key's first 16 bytes
/// (zero-padded, big-endian), so most comparisons are one integer compare;
/// ties fall back to comparing the bytes.
#[derive(Debug, Clone)]
struct Attr {
    prefix: u128,
    key: (usize, usize),
    value: (usize, usize),
}

impl Attr {
    #[inline]
    fn new(buf: &[u8], key: Range<usize>, value: Range<usize>) -> Self {
        let bytes = bytes_of(buf, key.start, key.end);
        Attr {
            prefix: key_prefix(bytes),
            key: (key.start, key.end),
            value: (value.start, value.end),
        }
    }
}

/// The first 16 bytes of `bytes`, zero-padded, as a big-endian integer: the
/// integers order as the byte strings do, up to ties. Built from fixed-size
/// loads and shifts rather than a copy into a buffer, which the processor
/// cannot forward to the loads that follow.
#[inline]
fn key_prefix(bytes: &[u8]) -> u128 {
    if let Some(head) = bytes.first_chunk::<16>() {
        return u128::from_be_bytes(*head);
    }
    let (mut prefix, mut shift, rest) = match bytes.split_first_chunk::<8>() {
        Some((head, rest)) => (u128::from(u64::from_be_bytes(*head)) << 64, 64, rest),
        None => (0, 128, bytes),
    };
    for &b in rest {
        shift -= 8;
        prefix |= u128::from(b) << shift;
    }
    prefix
}

/// Appends the canonical encoding of a set of attributes: the count, then each
/// `(key, encoded AnyValue)` pair length-prefixed, sorted by key then value, so
/// it is unambiguous and independent of attribute order.
fn canonical_attrs(buf: &[u8], attrs: &mut [Attr], out: &mut Vec<u8>) {
    let bytes = |r: (usize, usize)| bytes_of(buf, r.0, r.1);
    attrs.sort_unstable_by(|a, b| {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| bytes(a.key).cmp(bytes(b.key)))
            .then_with(|| bytes(a.value).cmp(bytes(b.value)))
    });
    let len: usize = attrs
        .iter()
        .map(|a| 8 + (a.key.1 - a.key.0) + (a.value.1 - a.value.0))
        .sum();
    out.reserve(4 + len);
    out.extend_from_slice(&(attrs.len() as u32).to_le_bytes());
    for a in attrs.iter() {
        put_lp(out, bytes(a.key));
        put_lp(out, bytes(a.value));
    }
}

/// Appends the key text of the `AnyValue` at `buf[payload]`: a string is its
/// text, an int its decimal, a bool `true`/`false`, a double Rust's `{}`
/// rendering, anything else (and an empty value) its encoded bytes.
fn render_any(buf: &[u8], payload: Range<usize>, out: &mut Vec<u8>) -> Result<(), WireError> {
    // The oneof's last field wins, as in protobuf.
    let mut last: Option<Field> = None;
    for f in Fields::within(buf, payload.clone()) {
        let f = f?;
        if (1..=8).contains(&f.number) {
            last = Some(f);
        }
    }
    let Some(f) = last else {
        return Ok(());
    };
    let raw = |out: &mut Vec<u8>| out.extend_from_slice(bytes_of(buf, payload.start, payload.end));
    match f.number {
        1 => {
            let p = f.payload()?;
            out.extend_from_slice(bytes_of(buf, p.start, p.end));
        }
        2 => out.extend_from_slice(if f.varint()? != 0 { b"true" } else { b"false" }),
        3 => {
            let _ = write!(out, "{}", f.varint()? as i64);
        }
        4 => match f.value {
            super::Value::Fixed64(bits) => {
                let _ = write!(out, "{}", f64::from_bits(bits));
            }
            _ => raw(out),
        },
        _ => raw(out),
    }
    Ok(())
}

/// Writes every backend's part (the slow path: more than one backend, or
/// rejected items to leave out).
fn assemble(s: &mut Scratch, request: &Bytes, depth: usize, max_backend: usize) -> Vec<Part> {
    group_by_backend(s, max_backend);
    let buf: &[u8] = request;
    let mut parts = Vec::new();
    let order = std::mem::take(&mut s.order);
    let mut start = 0usize;
    while start < order.len() {
        let backend = s.units.get(order[start] as usize).map_or(0, |u| u.backend);
        let mut end = start + 1;
        while end < order.len()
            && s.units
                .get(order[end] as usize)
                .is_some_and(|u| u.backend == backend)
        {
            end += 1;
        }
        let group = &order[start..end];
        let (size, items) = measure(s, group, depth);
        let mut out = Vec::with_capacity(size);
        write(s, buf, group, depth, &mut out);
        debug_assert_eq!(out.len(), size);
        parts.push(Part {
            backend,
            request: Bytes::from(out),
            items,
        });
        start = end;
    }
    s.order = order;
    parts
}

/// Fills `order` with unit indexes grouped by backend, ascending, keeping
/// request order within a backend.
fn group_by_backend(s: &mut Scratch, max_backend: usize) {
    let n = s.units.len();
    s.order.clear();
    if max_backend <= n.saturating_mul(4).max(1024) {
        // Counting sort: one pass to count, one to place.
        s.counts.clear();
        s.counts.resize(max_backend + 2, 0);
        for u in &s.units {
            s.counts[u.backend + 1] += 1;
        }
        for i in 1..s.counts.len() {
            s.counts[i] += s.counts[i - 1];
        }
        s.order.resize(n, 0);
        for (i, u) in s.units.iter().enumerate() {
            let slot = &mut s.counts[u.backend];
            s.order[*slot as usize] = i as u32;
            *slot += 1;
        }
    } else {
        // Sparse backend indexes: a stable sort keeps request order.
        s.order.extend(0..n as u32);
        let units = &s.units;
        s.order
            .sort_by_key(|&i| units.get(i as usize).map_or(0, |u| u.backend));
    }
}

/// Computes the size of a part and of every container in it (into `sizes`, in
/// the order [`write`] opens them). Returns the part's size and item count.
fn measure(s: &mut Scratch, group: &[u32], depth: usize) -> (usize, u64) {
    s.sizes.clear();
    let mut total = s.req_extras_len;
    let mut items = 0u64;
    let mut cur = [NONE; MAX_DEPTH];
    let mut open = [0usize; MAX_DEPTH];
    let nodes = &s.nodes;
    let sizes = &mut s.sizes;
    // Adds container `k`'s finished size (with its header) to its parent.
    let close = |k: usize,
                 cur: &mut [u32; MAX_DEPTH],
                 open: &[usize; MAX_DEPTH],
                 sizes: &mut Vec<usize>,
                 total: &mut usize| {
        let number = nodes[k].get(cur[k] as usize).map_or(0, |n| n.number);
        let size = sizes[open[k]];
        let whole = len_header_len(number, size) + size;
        if k == 0 {
            *total += whole;
        } else {
            sizes[open[k - 1]] += whole;
        }
        cur[k] = NONE;
    };
    for &ui in group {
        let Some(u) = s.units.get(ui as usize) else {
            continue;
        };
        items += u.items;
        let len = u.end - u.start;
        if depth == 0 {
            total += len;
            continue;
        }
        if u.chain[depth - 1] != cur[depth - 1] {
            let c = u.chain;
            let l = (0..depth).find(|&k| c[k] != cur[k]).unwrap_or(depth);
            for k in (l..depth).rev() {
                if cur[k] != NONE {
                    close(k, &mut cur, &open, sizes, &mut total);
                }
            }
            for k in l..depth {
                open[k] = sizes.len();
                sizes.push(nodes[k].get(c[k] as usize).map_or(0, |n| n.extras_len));
                cur[k] = c[k];
            }
        }
        sizes[open[depth - 1]] += len;
    }
    for k in (0..depth).rev() {
        if cur[k] != NONE {
            close(k, &mut cur, &open, sizes, &mut total);
        }
    }
    (total, items)
}

/// Writes a part whose container sizes [`measure`] computed.
fn write(s: &Scratch, buf: &[u8], group: &[u32], depth: usize, out: &mut Vec<u8>) {
    let mut copy = Copier {
        buf,
        out,
        start: 0,
        end: 0,
    };
    for &(start, end) in &s.req_extras {
        copy.range(start, end);
    }
    let mut cur = [NONE; MAX_DEPTH];
    let mut next = 0usize;
    for &ui in group {
        let Some(u) = s.units.get(ui as usize) else {
            continue;
        };
        if depth > 0 && u.chain[depth - 1] != cur[depth - 1] {
            let c = u.chain;
            let l = (0..depth).find(|&k| c[k] != cur[k]).unwrap_or(depth);
            for k in l..depth {
                if let Some(node) = s.nodes[k].get(c[k] as usize) {
                    copy.header(node.number, s.sizes.get(next).copied().unwrap_or(0));
                    let extras = s.extras[k]
                        .get(node.first as usize..node.last as usize)
                        .unwrap_or_default();
                    for &(start, end) in extras {
                        copy.range(start, end);
                    }
                }
                next += 1;
                cur[k] = c[k];
            }
        }
        copy.range(u.start, u.end);
    }
    copy.flush();
}

/// Copies byte ranges of the request into a part, merging ranges that are
/// adjacent in the request (consecutive spans of one trace, for example) into
/// one copy.
struct Copier<'a> {
    buf: &'a [u8],
    out: &'a mut Vec<u8>,
    /// The pending range.
    start: usize,
    end: usize,
}

impl Copier<'_> {
    #[inline]
    fn range(&mut self, start: usize, end: usize) {
        if start != self.end {
            self.flush();
            self.start = start;
        }
        self.end = end;
    }

    #[inline]
    fn header(&mut self, number: u32, len: usize) {
        self.flush();
        put_len_header(self.out, number, len);
    }

    #[inline]
    fn flush(&mut self) {
        if self.end > self.start {
            self.out
                .extend_from_slice(bytes_of(self.buf, self.start, self.end));
        }
        self.start = self.end;
    }
}

#[cfg(test)]
mod tests;
