//! Routing keys: what the load balancer routes on ([`RoutingKey`], with the
//! collector's `routing_key` names) and the key text each key produces for an
//! item.
//!
//! The key text is what the ring hashes ([`key_hash`]) to pick an item's
//! backend, so it is a contract between first-tier replicas, not an
//! implementation detail: every replica must produce the same bytes for the
//! same item, or the spans of one trace (the points of one stream) would reach
//! different backends depending on which replica received them. Changing an
//! encoding here re-routes every key of that kind, and during a rolling
//! upgrade old and new replicas would disagree. So every encoding depends only
//! on the item's content: never on attribute order, on the order of fields in
//! a message, or on anything about the process.
//!
//! The key texts:
//! - `traceID`: the 16 raw trace id bytes.
//! - `service`: the resource's `service.name` value as `render_any` renders
//!   it (empty when missing).
//! - `resource`: `canonical_attrs` of the resource attributes.
//! - `metric`: the metric name.
//! - `streamID`: the metric identity (`stream_prefix`: a digest of the
//!   resource identity, the scope name and version and the metric name)
//!   followed by `canonical_attrs` of the point attributes.
//! - `attributes`: `attribute_entry` `name=value|` for each configured name,
//!   in configuration order (`name=|` when missing).
//!
//! Bounded work on hostile input: an attribute value is rendered as at most
//! [`MAX_VALUE_TEXT`] bytes (its first bytes; longer values sharing those
//! route together), so a megabyte value in a resource or scope, repeated into
//! the key of every item below it, costs a bounded amount per item rather
//! than its size. Nothing here recurses: an array or kvlist value (nested
//! however deep) is its encoded bytes, never walked. The `streamID` digest of
//! a long scope name and version is taken once per scope, not per metric.
//!
//! What this module must never do: walk a request. Finding the fields is the
//! splitter's scan ([`crate::wire::split`]); this module only turns the values
//! it found (byte ranges of the request) into key text.

use std::{cmp::Ordering, fmt, io::Write as _, ops::Range};

use serde::Deserialize;
use xxhash_rust::xxh3::{Xxh3Default, xxh3_128};

#[cfg(doc)]
use super::key_hash;
use crate::{
    signal::Signal,
    wire::{Field, Fields, Value, WireError, field::any_value},
};

/// What a request is split by: items with the same key go to the same
/// backend. The serde names are the collector's `routing_key` values, so the
/// config deserializes straight into this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum RoutingKey {
    /// `traceID`: each span (log record) by its trace id (traces, logs).
    #[serde(rename = "traceID")]
    TraceId,
    /// `service`: each resource by its `service.name` attribute.
    #[serde(rename = "service")]
    Service,
    /// `resource`: each resource by all its attributes.
    #[serde(rename = "resource")]
    Resource,
    /// `metric`: each metric by its name (metrics).
    #[serde(rename = "metric")]
    Metric,
    /// `streamID`: each data point by its stream identity: resource, scope,
    /// metric name and point attributes (metrics).
    #[serde(rename = "streamID")]
    StreamId,
    /// `attributes`: each item by the values of the `routing_attributes`
    /// ([`KeySpec::attributes`]), looked up in the resource, then the scope,
    /// then the item (the first occurrence in each). For spans, the names
    /// [`SPAN_NAME`] and [`SPAN_KIND`] are the span's name and kind (as its
    /// integer) and take precedence. A string value is its text, an int its
    /// decimal, a bool `true`/`false`, a double Rust's `{}` rendering; any
    /// other value is its encoded `AnyValue` bytes.
    #[serde(rename = "attributes")]
    Attributes,
}

impl RoutingKey {
    /// Every key, in the order the collector documents them.
    pub const ALL: [RoutingKey; 6] = [
        RoutingKey::TraceId,
        RoutingKey::Service,
        RoutingKey::Resource,
        RoutingKey::Metric,
        RoutingKey::StreamId,
        RoutingKey::Attributes,
    ];

    /// The key a pipeline of `signal` uses when `routing_key` is unset:
    /// `traceID` for traces and logs, `service` for metrics.
    pub fn default_for(signal: Signal) -> RoutingKey {
        match signal {
            Signal::Traces | Signal::Logs => RoutingKey::TraceId,
            Signal::Metrics => RoutingKey::Service,
        }
    }

    /// The keys `signal` has.
    pub fn valid_for(signal: Signal) -> &'static [RoutingKey] {
        use RoutingKey::*;
        match signal {
            Signal::Traces | Signal::Logs => &[TraceId, Service, Resource, Attributes],
            Signal::Metrics => &[Service, Resource, Metric, StreamId, Attributes],
        }
    }

    /// True when `signal` has this key.
    pub fn supports(self, signal: Signal) -> bool {
        Self::valid_for(signal).contains(&self)
    }

    /// The name as written in YAML (the collector's name).
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingKey::TraceId => "traceID",
            RoutingKey::Service => "service",
            RoutingKey::Resource => "resource",
            RoutingKey::Metric => "metric",
            RoutingKey::StreamId => "streamID",
            RoutingKey::Attributes => "attributes",
        }
    }
}

impl fmt::Display for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the keys `signal` has, for error messages.
fn names(signal: Signal) -> String {
    let names: Vec<&str> = RoutingKey::valid_for(signal)
        .iter()
        .map(|k| k.as_str())
        .collect();
    names.join(", ")
}

/// A routing key with the attribute names the `attributes` key reads: the
/// config's `routing_key` and `routing_attributes` together, which is what a
/// splitter is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// The key.
    pub key: RoutingKey,
    /// The `routing_attributes` names; empty unless `key` is
    /// [`RoutingKey::Attributes`].
    pub attributes: Vec<String>,
}

impl KeySpec {
    /// `key` with its attribute names; `attributes` is kept only for
    /// [`RoutingKey::Attributes`], the one key that reads it.
    pub fn new(key: RoutingKey, attributes: &[String]) -> KeySpec {
        let attributes = if key == RoutingKey::Attributes {
            attributes.to_vec()
        } else {
            Vec::new()
        };
        KeySpec { key, attributes }
    }

    /// Parses the collector's `routing_key` and `routing_attributes` settings
    /// for `signal`. The error says which setting is wrong and why.
    pub fn parse(
        signal: Signal,
        routing_key: &str,
        routing_attributes: &[String],
    ) -> Result<KeySpec, KeyError> {
        let Some(key) = RoutingKey::ALL
            .into_iter()
            .find(|k| k.as_str() == routing_key)
        else {
            return Err(KeyError::Unknown {
                name: routing_key.to_string(),
                signal,
            });
        };
        if key == RoutingKey::Attributes {
            if routing_attributes.is_empty() {
                return Err(KeyError::NoAttributes);
            }
            if let Some(index) = routing_attributes.iter().position(String::is_empty) {
                return Err(KeyError::EmptyAttribute { index });
            }
        }
        if !key.supports(signal) {
            return Err(KeyError::Unsupported { key, signal });
        }
        if !routing_attributes.is_empty() && key != RoutingKey::Attributes {
            return Err(KeyError::AttributesUnused { key });
        }
        Ok(KeySpec::new(key, routing_attributes))
    }
}

impl From<RoutingKey> for KeySpec {
    /// A key without attribute names.
    fn from(key: RoutingKey) -> KeySpec {
        KeySpec::new(key, &[])
    }
}

/// Why [`KeySpec::parse`] refused a `routing_key` / `routing_attributes` pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `routing_key` is not a key name.
    #[error("unknown routing_key {name:?} for {signal} (expected one of {})", names(*signal))]
    Unknown {
        /// The name given.
        name: String,
        /// The signal it was given for.
        signal: Signal,
    },
    /// A key the signal does not have (`metric` for traces, ...).
    #[error(
        "routing_key {:?} is not supported for {signal} (expected one of {})",
        key.as_str(),
        names(*signal)
    )]
    Unsupported {
        /// The key given.
        key: RoutingKey,
        /// The signal it was given for.
        signal: Signal,
    },
    /// `attributes` without any attribute name.
    #[error("routing_key \"attributes\" needs a non-empty routing_attributes list")]
    NoAttributes,
    /// An empty attribute name.
    #[error("routing_attributes has an empty name (at index {index})")]
    EmptyAttribute {
        /// Its position in `routing_attributes`.
        index: usize,
    },
    /// Attribute names with a key that does not read them.
    #[error(
        "routing_attributes is set but routing_key is {:?}; \
         it is only used with routing_key \"attributes\"",
        key.as_str()
    )]
    AttributesUnused {
        /// The key given.
        key: RoutingKey,
    },
}

/// The span pseudo attribute holding the span's name.
pub const SPAN_NAME: &str = "span.name";
/// The span pseudo attribute holding the span's kind (as its integer).
pub const SPAN_KIND: &str = "span.kind";

/// What a configured attribute name stands for on an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pseudo {
    /// An attribute, looked up in the resource, scope and item.
    No,
    /// [`SPAN_NAME`].
    SpanName,
    /// [`SPAN_KIND`].
    SpanKind,
}

impl Pseudo {
    /// What each of `names` stands for on `signal`'s items, or an empty list
    /// when none is a pseudo attribute (only spans have them), so that items
    /// need not be read for their name and kind.
    pub(crate) fn of(signal: Signal, names: &[String]) -> Vec<Pseudo> {
        let pseudo: Vec<Pseudo> = names
            .iter()
            .map(|n| match (signal, n.as_str()) {
                (Signal::Traces, SPAN_NAME) => Pseudo::SpanName,
                (Signal::Traces, SPAN_KIND) => Pseudo::SpanKind,
                _ => Pseudo::No,
            })
            .collect();
        if pseudo.iter().any(|p| *p != Pseudo::No) {
            pseudo
        } else {
            Vec::new()
        }
    }
}

/// Appends one `name=value|` entry of an `attributes` key; `value` appends
/// the value's text (nothing when the attribute is missing). Names are
/// written even when missing, so `a=|b=x|` and `a=x|b=|` differ.
#[inline]
pub(crate) fn attribute_entry<E>(
    out: &mut Vec<u8>,
    name: &str,
    value: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    value(out)?;
    out.push(b'|');
    Ok(())
}

/// Appends the key text of a span's kind ([`SPAN_KIND`]): the enum's integer
/// in decimal.
#[inline]
pub(crate) fn span_kind_text(kind: u64, out: &mut Vec<u8>) {
    let _ = write!(out, "{}", kind as i32);
}

/// Writes into `key` the part of a `streamID` key that every point of one
/// metric shares: xxh3-128 of the resource identity (`resource_id`, see
/// [`resource_id`]), then the scope name, scope version and metric name, each
/// length-prefixed. The metric's identity as a digest keeps every point's key
/// short, where xxh3 is fastest. The point's canonical attributes follow.
#[inline]
pub(crate) fn stream_prefix(
    key: &mut Vec<u8>,
    resource_id: &[u8; 16],
    scope_name: &[u8],
    scope_version: &[u8],
    metric_name: &[u8],
) {
    key.clear();
    key.extend_from_slice(resource_id);
    put_lp(key, scope_name);
    put_lp(key, scope_version);
    put_lp(key, metric_name);
    let metric_id = xxh3_128(key).to_le_bytes();
    key.clear();
    key.extend_from_slice(&metric_id);
}

/// Above this many bytes of scope name and version, the `streamID` metric
/// digest continues from a per-scope hasher state ([`scope_digest`]) instead
/// of hashing the scope's identity again for every metric: the same digest,
/// in time linear in the request.
pub(crate) const LONG_SCOPE: usize = 1024;

/// The streaming xxh3 state after the resource identity, scope name and
/// scope version of a `streamID` metric digest, for scopes longer than
/// [`LONG_SCOPE`]; [`stream_prefix_from`] finishes it per metric.
#[derive(Clone)]
pub(crate) struct ScopeDigest(Box<Xxh3Default>);

impl fmt::Debug for ScopeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopeDigest")
    }
}

/// The [`ScopeDigest`] of a scope.
pub(crate) fn scope_digest(
    resource_id: &[u8; 16],
    scope_name: &[u8],
    scope_version: &[u8],
) -> ScopeDigest {
    let mut state = Box::new(Xxh3Default::new());
    state.update(resource_id);
    for part in [scope_name, scope_version] {
        state.update(&(part.len() as u32).to_le_bytes());
        state.update(part);
    }
    ScopeDigest(state)
}

/// [`stream_prefix`] from a [`scope_digest`] state: the same bytes in `key`.
pub(crate) fn stream_prefix_from(key: &mut Vec<u8>, scope: &ScopeDigest, metric_name: &[u8]) {
    let mut state = (*scope.0).clone();
    state.update(&(metric_name.len() as u32).to_le_bytes());
    state.update(metric_name);
    key.clear();
    key.extend_from_slice(&state.digest128().to_le_bytes());
}

/// The resource identity in a `streamID` key: xxh3-128 of the resource's
/// [`canonical_attrs`].
#[inline]
pub(crate) fn resource_id(canonical: &[u8]) -> [u8; 16] {
    xxh3_128(canonical).to_le_bytes()
}

/// Appends `bytes` with a 4-byte little-endian length prefix.
#[inline]
pub(crate) fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The bytes of `buf[start..end]`; every range handed to this module was
/// checked by the field iterator, so the fallback never happens.
#[inline]
fn bytes_of(buf: &[u8], start: usize, end: usize) -> &[u8] {
    debug_assert!(start <= end && end <= buf.len());
    buf.get(start..end).unwrap_or_default()
}

/// An attribute being canonicalised: the ranges of its key and encoded
/// `AnyValue` in the request. `prefix` holds the key's first 16 bytes
/// (zero-padded, big-endian), so most comparisons are one integer compare;
/// ties fall back to comparing the bytes.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    prefix: u128,
    key: (usize, usize),
    value: (usize, usize),
}

impl Attr {
    /// The attribute whose key is `buf[key]` and value `buf[value]`.
    #[inline]
    pub(crate) fn new(buf: &[u8], key: Range<usize>, value: Range<usize>) -> Self {
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

/// Appends the canonical encoding of a set of attributes (ranges of `buf`):
/// the count, then each `(key, encoded AnyValue)` pair length-prefixed, sorted
/// by key then value, so it is unambiguous and independent of attribute order.
pub(crate) fn canonical_attrs(buf: &[u8], attrs: &mut [Attr], out: &mut Vec<u8>) {
    sort_attrs(buf, attrs);
    let len: usize = attrs
        .iter()
        .map(|a| 8 + (a.key.1 - a.key.0) + (a.value.1 - a.value.0))
        .sum();
    out.reserve(4 + len + WINDOW);
    out.extend_from_slice(&(attrs.len() as u32).to_le_bytes());
    for a in attrs.iter() {
        put_lp_range(out, buf, a.key);
        put_lp_range(out, buf, a.value);
    }
}

/// The fixed copy [`put_lp_range`] makes of short ranges.
const WINDOW: usize = 32;

/// Appends `buf[range]` with a 4-byte little-endian length prefix, as
/// [`put_lp`] does. Attribute keys and values are mostly short: those are
/// copied as a fixed window of `WINDOW` bytes of the request and cut back to
/// their length, which compiles to a few vector moves instead of a call to
/// `memcpy` per range. Near the end of the request, and for longer ranges,
/// the plain copy.
#[inline(always)]
fn put_lp_range(out: &mut Vec<u8>, buf: &[u8], range: (usize, usize)) {
    let (start, end) = range;
    let len = end.saturating_sub(start);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    if len <= WINDOW
        && let Some(window) = buf.get(start..).and_then(|b| b.first_chunk::<WINDOW>())
    {
        let at = out.len();
        out.extend_from_slice(window);
        out.truncate(at + len);
        return;
    }
    out.extend_from_slice(bytes_of(buf, start, end));
}

/// Above this many attributes [`sort_attrs`] uses the general sort.
const SMALL_SORT: usize = 16;

/// Sorts attributes by key, then value. Resource and point attribute sets are
/// usually a handful, where an insertion sort that settles most comparisons
/// on the 16-byte key prefixes costs a fraction of the general sort's setup.
/// Attributes that compare equal have the same bytes, so the order among
/// them never shows in the output.
#[inline]
fn sort_attrs(buf: &[u8], attrs: &mut [Attr]) {
    if attrs.len() > SMALL_SORT {
        attrs.sort_unstable_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| tie(buf, a, b)));
        return;
    }
    for i in 1..attrs.len() {
        let mut j = i;
        while j > 0 {
            let (a, b) = (&attrs[j - 1], &attrs[j]);
            let less = match b.prefix.cmp(&a.prefix) {
                Ordering::Equal => tie(buf, b, a) == Ordering::Less,
                order => order == Ordering::Less,
            };
            if !less {
                break;
            }
            attrs.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Orders two attributes whose key prefixes are equal: by the whole key, then
/// the value.
#[inline(never)]
fn tie(buf: &[u8], a: &Attr, b: &Attr) -> Ordering {
    let bytes = |r: (usize, usize)| bytes_of(buf, r.0, r.1);
    bytes(a.key)
        .cmp(bytes(b.key))
        .then_with(|| bytes(a.value).cmp(bytes(b.value)))
}

/// The longest key text of one attribute value ([`render_any`]): longer
/// texts are cut to their first `MAX_VALUE_TEXT` bytes. Routing values
/// (tenants, hosts, namespaces, routes) are far shorter; the bound keeps a
/// hostile megabyte value, copied into the key of each of thousands of items,
/// from making a request's split take time quadratic in its size.
pub const MAX_VALUE_TEXT: usize = 256;

/// At most the first [`MAX_VALUE_TEXT`] bytes of `bytes`.
#[inline]
fn capped(bytes: &[u8]) -> &[u8] {
    bytes.get(..MAX_VALUE_TEXT).unwrap_or(bytes)
}

/// Appends the key text of the encoded `AnyValue` at `buf[payload]`: a
/// string is its text, an int its decimal, a bool `true`/`false`, a double
/// Rust's `{}` rendering, anything else (and an empty value) its encoded
/// bytes, never walked, however deeply an array or kvlist nests. The text is
/// cut to its first [`MAX_VALUE_TEXT`] bytes. The error is a malformed
/// `AnyValue` (at its top level: nested values are not read).
pub(crate) fn render_any(
    buf: &[u8],
    payload: Range<usize>,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let start = out.len();
    render_value(buf, payload, out)?;
    // Only a double's rendering can still be longer (up to 300-odd digits).
    out.truncate(start + MAX_VALUE_TEXT);
    Ok(())
}

#[inline(always)]
fn render_value(buf: &[u8], payload: Range<usize>, out: &mut Vec<u8>) -> Result<(), WireError> {
    // The oneof's last field wins, as in protobuf.
    let mut last: Option<Field> = None;
    for f in Fields::within(buf, payload.clone()) {
        let f = f?;
        if (any_value::STRING_VALUE..=any_value::STRING_VALUE_STRINDEX).contains(&f.number) {
            last = Some(f);
        }
    }
    let Some(f) = last else {
        return Ok(());
    };
    let raw = |out: &mut Vec<u8>| {
        out.extend_from_slice(capped(bytes_of(buf, payload.start, payload.end)))
    };
    match f.number {
        any_value::STRING_VALUE => {
            let p = f.payload()?;
            out.extend_from_slice(capped(bytes_of(buf, p.start, p.end)));
        }
        any_value::BOOL_VALUE => {
            out.extend_from_slice(if f.varint()? != 0 { b"true" } else { b"false" })
        }
        any_value::INT_VALUE => {
            let _ = write!(out, "{}", f.varint()? as i64);
        }
        any_value::DOUBLE_VALUE => match f.value {
            Value::Fixed64(bits) => {
                let _ = write!(out, "{}", f64::from_bits(bits));
            }
            _ => raw(out),
        },
        _ => raw(out),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn routing_key_parse() {
        let none: &[String] = &[];
        let attrs = vec!["host".to_string()];
        let parse = |signal, name, attributes: &[String]| {
            KeySpec::parse(signal, name, attributes).map_err(|e| e.to_string())
        };
        assert_eq!(
            parse(Signal::Traces, "traceID", none),
            Ok(RoutingKey::TraceId.into())
        );
        assert_eq!(
            parse(Signal::Logs, "traceID", none),
            Ok(RoutingKey::TraceId.into())
        );
        assert_eq!(
            parse(Signal::Metrics, "streamID", none),
            Ok(RoutingKey::StreamId.into())
        );
        assert_eq!(
            parse(Signal::Metrics, "metric", none),
            Ok(RoutingKey::Metric.into())
        );
        for signal in Signal::ALL {
            assert_eq!(
                parse(signal, "service", none),
                Ok(RoutingKey::Service.into())
            );
            assert_eq!(
                parse(signal, "resource", none),
                Ok(RoutingKey::Resource.into())
            );
            assert_eq!(
                parse(signal, "attributes", &attrs),
                Ok(KeySpec::new(RoutingKey::Attributes, &attrs))
            );
            assert!(
                parse(signal, "attributes", none)
                    .unwrap_err()
                    .contains("non-empty")
            );
            assert!(
                parse(signal, "service", &attrs)
                    .unwrap_err()
                    .contains("routing_attributes")
            );
            assert!(
                parse(signal, "traceid", none)
                    .unwrap_err()
                    .contains("unknown routing_key")
            );
        }
        assert!(
            parse(Signal::Metrics, "traceID", none)
                .unwrap_err()
                .contains("not supported for metrics")
        );
        assert!(parse(Signal::Traces, "metric", none).is_err());
        assert!(parse(Signal::Logs, "streamID", none).is_err());
    }

    #[test]
    fn only_attributes_keeps_attribute_names() {
        let names = vec!["a".to_string()];
        assert!(
            KeySpec::new(RoutingKey::Service, &names)
                .attributes
                .is_empty()
        );
        assert_eq!(
            KeySpec::new(RoutingKey::Attributes, &names).attributes,
            names
        );
    }

    #[test]
    fn long_scopes_digest_as_short_ones_do() {
        let resource = [7u8; 16];
        let long = "a".repeat(2000);
        for (name, version) in [(long.as_str(), ""), ("", "v"), ("lib", "1.0")] {
            let version = version.as_bytes();
            let mut one_shot = Vec::new();
            stream_prefix(&mut one_shot, &resource, name.as_bytes(), version, b"m");
            let scope = scope_digest(&resource, name.as_bytes(), version);
            let mut streamed = vec![1, 2, 3];
            stream_prefix_from(&mut streamed, &scope, b"m");
            assert_eq!(streamed, one_shot);
        }
    }

    #[test]
    fn rendered_values_are_cut_to_max_value_text() {
        let render = |any: &[u8]| {
            let mut out = b"x=".to_vec();
            render_any(any, 0..any.len(), &mut out).unwrap();
            out
        };
        let long = "v".repeat(MAX_VALUE_TEXT * 3);
        let string = crate::wire::testgen::raw::ld(1, long.as_bytes());
        assert_eq!(
            render(&string),
            [b"x=", &long.as_bytes()[..MAX_VALUE_TEXT]].concat()
        );
        // A double's rendering of 1e300 is 301 digits.
        let mut double = vec![(4 << 3) | 1];
        double.extend_from_slice(&1e300f64.to_bits().to_le_bytes());
        assert_eq!(render(&double).len(), 2 + MAX_VALUE_TEXT);
        assert_eq!(
            render(&crate::wire::testgen::raw::ld(1, b"short")),
            b"x=short"
        );
    }

    proptest! {
        #[test]
        fn canonical_attrs_sorts_like_the_general_sort(
            pairs in prop::collection::vec(
                (
                    prop::sample::select(vec!["a", "ab", "k8s.deployment.name", "k8s.deployment.namespace", ""]),
                    prop::sample::select(vec!["", "x", "y"]),
                ),
                0..40,
            ),
        ) {
            let mut buf = Vec::new();
            let mut ranges = Vec::new();
            for (k, v) in &pairs {
                let key = buf.len()..buf.len() + k.len();
                buf.extend_from_slice(k.as_bytes());
                let value = buf.len()..buf.len() + v.len();
                buf.extend_from_slice(v.as_bytes());
                ranges.push((key, value));
            }
            let mut attrs: Vec<Attr> = ranges
                .iter()
                .map(|(k, v)| Attr::new(&buf, k.clone(), v.clone()))
                .collect();
            let mut out = Vec::new();
            canonical_attrs(&buf, &mut attrs, &mut out);
            let mut sorted: Vec<(&str, &str)> = pairs.clone();
            sorted.sort();
            let mut expect = (sorted.len() as u32).to_le_bytes().to_vec();
            for (k, v) in sorted {
                put_lp(&mut expect, k.as_bytes());
                put_lp(&mut expect, v.as_bytes());
            }
            prop_assert_eq!(out, expect);
        }

        #[test]
        fn key_prefix_orders_like_the_bytes(
            a in prop::collection::vec(prop_oneof![Just(0u8), Just(b'a'), any::<u8>()], 0..20),
            b in prop::collection::vec(prop_oneof![Just(0u8), Just(b'a'), any::<u8>()], 0..20),
        ) {
            let (pa, pb) = (key_prefix(&a), key_prefix(&b));
            if a <= b {
                prop_assert!(pa <= pb);
            } else {
                prop_assert!(pa >= pb);
            }
            if a.len() <= 16 && b.len() <= 16 && pa == pb {
                // Equal prefixes of short keys differ only by trailing zeros.
                let trim = |v: &[u8]| v.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
                prop_assert_eq!(&a[..trim(&a)], &b[..trim(&b)]);
            }
        }
    }
}
