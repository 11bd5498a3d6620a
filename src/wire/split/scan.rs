//! The one-pass scan: walks a request's containers, reads each routing
//! unit's key fields, routes it, and records what [`super::assemble`] needs
//! to write the parts: the unit's byte range, backend and enclosing
//! containers, and every container's non-child fields as byte ranges.
//!
//! The scan reads only what routing needs: the container fields, the keys'
//! fields, and each item up to its key (a span is read up to its first
//! `trace_id` when routing by `traceID`). Damage in bytes it does not read is
//! forwarded as it is, for the backend to judge. It must never copy or
//! re-encode a unit; the key text itself is built by [`crate::routing::key`],
//! from the value ranges this scan finds.
//!
//! Scratch space (unit descriptors, container descriptors, key buffers) lives
//! in a per-thread [`Scratch`] reused across calls, so a warmed-up thread
//! splits without allocating anything but the output requests and the part
//! list. A `route` callback that itself splits on the same thread gets a fresh
//! scratch instead of the shared one.

use std::{cell::RefCell, fmt::Write as _, ops::Range};

use super::{Grain, MAX_REASONS, Splitter};
use crate::{
    routing::{
        RoutingKey,
        key::{self, Attr, Pseudo, canonical_attrs, render_any},
        key_hash,
    },
    signal::Signal,
    wire::{
        DATA_POINTS, Field, Fields, Layout, WireError, WireType, count_points, count_resource,
        field, metric_data_name,
    },
};

/// The `service.name` resource attribute (`service` key).
const SERVICE_NAME: &[u8] = b"service.name";

thread_local! {
    pub(super) static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Marks "no node" in unit chains and the build cursor.
pub(super) const NONE: u32 = u32::MAX;
/// Container levels: resource, scope, metric, metric data.
pub(super) const MAX_DEPTH: usize = 4;
/// Above this many retained entries a scratch vector is shrunk after use, so
/// one huge request does not pin its memory on the thread forever.
const RETAIN: usize = 1 << 16;

/// A container occurrence in the request (a resource, scope, metric or metric
/// data message) that may be rebuilt in the outputs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    /// The field number it is written under in its parent.
    pub number: u32,
    /// Its non-child fields: `extras[level][first..last]`.
    pub first: u32,
    pub last: u32,
    /// Total bytes of its non-child fields.
    pub extras_len: usize,
}

/// A routing unit: a field copied verbatim into one backend's part.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unit {
    pub start: usize,
    pub end: usize,
    /// Indexes of the enclosing containers, one per level ([`NONE`] below
    /// the split depth), so building a part never walks parent links.
    pub chain: [u32; MAX_DEPTH],
    pub backend: usize,
    pub items: u64,
}

/// Reusable per-thread working memory for [`Splitter::split`].
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Request fields other than the resources.
    pub req_extras: Vec<(usize, usize)>,
    pub req_extras_len: usize,
    pub nodes: [Vec<Node>; MAX_DEPTH],
    pub extras: [Vec<(usize, usize)>; MAX_DEPTH],
    pub units: Vec<Unit>,
    /// Unit indexes grouped by backend.
    pub order: Vec<u32>,
    pub counts: Vec<u32>,
    /// Sizes of the containers of the part being built, in write order.
    pub sizes: Vec<usize>,
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
    /// The digest state after a long scope's identity (streamID).
    scope_digest: Option<key::ScopeDigest>,
}

impl Scratch {
    pub(super) fn clear(&mut self) {
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

    pub(super) fn trim(&mut self) {
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
pub(super) fn bytes_of(buf: &[u8], start: usize, end: usize) -> &[u8] {
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
pub(super) struct Scan<'a> {
    pub buf: &'a [u8],
    pub layout: &'static Layout,
    pub splitter: &'a Splitter,
    pub s: &'a mut Scratch,
    pub route: &'a mut dyn FnMut(u64) -> usize,
    pub keyless: u64,
    /// The last hash routed and its backend.
    pub last_hash: Option<(u64, usize)>,
    /// The last trace id routed and its backend: spans of a trace are
    /// usually adjacent.
    pub last_trace: Option<([u8; 16], usize)>,
    pub rejected: u64,
    pub message: String,
    /// Current resource and scope indexes, for rejection messages.
    pub ri: usize,
    pub si: usize,
    /// Indexes of the containers being scanned, per level.
    pub chain: [u32; MAX_DEPTH],
    /// The first unit's backend, whether every unit went there, the highest
    /// backend index, and the items routed.
    pub first_backend: Option<usize>,
    pub one_backend: bool,
    pub max_backend: usize,
    pub items: u64,
}

impl Scan<'_> {
    pub(super) fn request(&mut self) -> Result<(), WireError> {
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
            if f.number == field::RESOURCE {
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
        match self.splitter.spec.key {
            RoutingKey::Service => self.s.service = None,
            RoutingKey::Resource | RoutingKey::StreamId => self.s.attrs.clear(),
            RoutingKey::Attributes => {
                self.s.resource_vals.clear();
                self.s
                    .resource_vals
                    .resize(self.splitter.spec.attributes.len(), None);
            }
            RoutingKey::TraceId | RoutingKey::Metric => {}
        }
    }

    /// Reads one `resource` field (there is normally one; repeated ones merge,
    /// so their attributes are read in order).
    fn resource_info(&mut self, payload: Range<usize>) -> Result<(), WireError> {
        let buf = self.buf;
        let s = &mut *self.s;
        let attrs = field::resource::ATTRIBUTES;
        match self.splitter.spec.key {
            RoutingKey::Service => for_each_attr(buf, payload, attrs, |k, v| {
                if s.service.is_none() && bytes_of(buf, k.start, k.end) == SERVICE_NAME {
                    s.service = Some((v.start, v.end));
                }
            }),
            RoutingKey::Resource | RoutingKey::StreamId => {
                for_each_attr(buf, payload, attrs, |k, v| {
                    s.attrs.push(Attr::new(buf, k, v))
                })
            }
            RoutingKey::Attributes => {
                let names = &self.splitter.spec.attributes;
                for_each_attr(buf, payload, attrs, |k, v| {
                    lookup(buf, names, &mut s.resource_vals, k, v)
                })
            }
            RoutingKey::TraceId | RoutingKey::Metric => Ok(()),
        }
    }

    fn end_resource(&mut self) -> Result<(), WireError> {
        let buf = self.buf;
        let s = &mut *self.s;
        match self.splitter.spec.key {
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
                s.resource_id = key::resource_id(&s.resource_canon);
            }
            _ => {}
        }
        Ok(())
    }

    fn scope(&mut self, si: usize, payload: Range<usize>) -> Result<(), WireError> {
        self.si = si;
        let buf = self.buf;
        let (item_number, item_name) = self.layout.item;
        match self.splitter.spec.key {
            RoutingKey::Attributes => {
                let names = &self.splitter.spec.attributes;
                let s = &mut *self.s;
                s.scope_vals.clear();
                s.scope_vals.resize(names.len(), None);
                for f in Fields::within(buf, payload.clone()) {
                    let f = f?;
                    if f.number == field::SCOPE {
                        let p = f.payload()?;
                        for_each_attr(buf, p, field::scope::ATTRIBUTES, |k, v| {
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
                    if f.number == field::SCOPE {
                        let p = f.payload()?;
                        self.scope_identity(p)
                            .map_err(|e| e.within("scope", None))?;
                    }
                }
                let s = &mut *self.s;
                let name = bytes_of(buf, s.scope_name.0, s.scope_name.1);
                let version = bytes_of(buf, s.scope_version.0, s.scope_version.1);
                s.scope_digest = (name.len() + version.len() > key::LONG_SCOPE)
                    .then(|| key::scope_digest(&s.resource_id, name, version));
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
                field::scope::NAME => self.s.scope_name = pair(f.payload()?),
                field::scope::VERSION => self.s.scope_version = pair(f.payload()?),
                _ => {}
            }
        }
        Ok(())
    }

    /// A span or log record.
    fn item(&mut self, ii: usize, whole: &Field, payload: Range<usize>) -> Result<(), WireError> {
        let buf = self.buf;
        let logs = self.splitter.signal == Signal::Logs;
        let backend = match self.splitter.spec.key {
            RoutingKey::TraceId => {
                let number = if logs {
                    field::log_record::TRACE_ID
                } else {
                    field::span::TRACE_ID
                };
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
            RoutingKey::Attributes => {
                let attrs = if logs {
                    field::log_record::ATTRIBUTES
                } else {
                    field::span::ATTRIBUTES
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
            if f.number == field::metric::NAME {
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
            if f.number == field::metric::NAME {
                name = f.payload()?;
            }
            len += push_extra(&mut self.s.extras[2], first, f.range());
        }
        self.chain[2] = self.s.nodes[2].len() as u32;
        self.push_node(2, self.layout.item.0, first, len);

        if self.splitter.spec.key == RoutingKey::StreamId {
            let s = &mut *self.s;
            let metric_name = bytes_of(buf, name.start, name.end);
            match &s.scope_digest {
                Some(scope) => key::stream_prefix_from(&mut s.key, scope, metric_name),
                None => key::stream_prefix(
                    &mut s.key,
                    &s.resource_id,
                    bytes_of(buf, s.scope_name.0, s.scope_name.1),
                    bytes_of(buf, s.scope_version.0, s.scope_version.1),
                    metric_name,
                ),
            }
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
            field::metric::HISTOGRAM => field::histogram_data_point::ATTRIBUTES,
            field::metric::EXPONENTIAL_HISTOGRAM => {
                field::exponential_histogram_data_point::ATTRIBUTES
            }
            field::metric::SUMMARY => field::summary_data_point::ATTRIBUTES,
            _ => field::number_data_point::ATTRIBUTES,
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
        if self.splitter.spec.key == RoutingKey::StreamId {
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
        if self.splitter.spec.key != RoutingKey::Attributes {
            return Ok(());
        }
        let names = &self.splitter.spec.attributes;
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
                } else if !pseudo.is_empty() && f.number == field::span::NAME {
                    span_name = pair(f.payload()?);
                } else if !pseudo.is_empty() && f.number == field::span::KIND {
                    span_kind = f.varint()?;
                }
            }
        }
        s.key.clear();
        for (i, name) in names.iter().enumerate() {
            key::attribute_entry(&mut s.key, name, |out| {
                match pseudo.get(i).copied().unwrap_or(Pseudo::No) {
                    Pseudo::SpanName => {
                        out.extend_from_slice(bytes_of(buf, span_name.0, span_name.1))
                    }
                    Pseudo::SpanKind => key::span_kind_text(span_kind, out),
                    Pseudo::No => {
                        let found = [&s.resource_vals, &s.scope_vals, &s.item_vals]
                            .iter()
                            .find_map(|vals| vals.get(i).copied().flatten());
                        if let Some((start, end)) = found {
                            render_any(buf, start..end, out)?;
                        }
                    }
                }
                Ok::<(), WireError>(())
            })?;
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
            field::key_value::KEY => key = f.payload()?,
            field::key_value::VALUE => value = f.payload()?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// The one-byte tags of `KeyValue.key` and `KeyValue.value`.
const KEY_TAG: u8 = (field::key_value::KEY << 3) as u8 | WireType::Len as u8;
const VALUE_TAG: u8 = (field::key_value::VALUE << 3) as u8 | WireType::Len as u8;

/// The common encoding of a `KeyValue`, decoded without the field iterator:
/// `key` then `value`, both shorter than 128 bytes, and nothing else. Any
/// other shape takes the general path, which gives the same answer.
#[inline(always)]
fn key_value_short(buf: &[u8], payload: Range<usize>) -> Option<(Range<usize>, Range<usize>)> {
    let start = payload.start;
    let b = buf.get(payload)?;
    if *b.first()? != KEY_TAG {
        return None;
    }
    let key_end = 2 + usize::from(*b.get(1)?);
    if *b.get(key_end)? != VALUE_TAG {
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
