//! Stream identity: which earlier point a cumulative point is measured against.
//!
//! A stream is: resource attributes, scope name and version, metric type,
//! name and unit, value type (int or double), point attributes, and the
//! point's start time (a counter that restarts gets a new start time, so it
//! is a new stream). These are written into one canonical byte string and
//! hashed to 128 bits with xxh3. The encoding is injective: every field is
//! tagged or length-prefixed, and attributes are sorted by key, so the order
//! a client lists them in does not split a stream. At 128 bits an accidental
//! collision needs around 2^64 streams, far beyond what one process holds, so
//! the table keeps the hash alone.

use xxhash_rust::xxh3::xxh3_128;

use crate::proto::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};

/// A stream's identity hash.
pub(super) type StreamKey = u128;

/// Builds stream keys for one request. The resource, scope and metric parts
/// are encoded once each; a point only appends its own part.
#[derive(Default)]
pub(super) struct KeyBuilder {
    buf: Vec<u8>,
    resource_end: usize,
    scope_end: usize,
    metric_end: usize,
    order: Vec<usize>,
}

impl KeyBuilder {
    /// Starts a resource.
    pub(super) fn resource(&mut self, attributes: &[KeyValue]) {
        self.buf.clear();
        self.attributes(attributes);
        self.resource_end = self.buf.len();
    }

    /// Starts a scope of the current resource.
    pub(super) fn scope(&mut self, scope: Option<&InstrumentationScope>) {
        self.buf.truncate(self.resource_end);
        let (name, version) = scope.map_or(("", ""), |s| (s.name.as_str(), s.version.as_str()));
        self.bytes(name.as_bytes());
        self.bytes(version.as_bytes());
        self.scope_end = self.buf.len();
    }

    /// Starts a metric of the current scope; `kind` tells the metric types apart.
    pub(super) fn metric(&mut self, kind: u8, name: &str, unit: &str) {
        self.buf.truncate(self.scope_end);
        self.buf.push(kind);
        self.bytes(name.as_bytes());
        self.bytes(unit.as_bytes());
        self.metric_end = self.buf.len();
    }

    /// The key of a point of the current metric.
    pub(super) fn point(
        &mut self,
        value_type: u8,
        attributes: &[KeyValue],
        start: u64,
    ) -> StreamKey {
        self.buf.truncate(self.metric_end);
        self.buf.push(value_type);
        self.attributes(attributes);
        self.buf.extend_from_slice(&start.to_le_bytes());
        xxh3_128(&self.buf)
    }

    fn attributes(&mut self, attributes: &[KeyValue]) {
        // Nested key-value lists recurse into here; each level keeps its own
        // order in a local, and the outermost hands its buffer back for reuse.
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(0..attributes.len());
        order.sort_by(|&a, &b| attributes[a].key.cmp(&attributes[b].key));
        self.len(attributes.len());
        for &i in &order {
            let kv = &attributes[i];
            self.bytes(kv.key.as_bytes());
            self.value(kv.value.as_ref());
        }
        self.order = order;
    }

    fn value(&mut self, value: Option<&AnyValue>) {
        match value.and_then(|v| v.value.as_ref()) {
            None => self.buf.push(0),
            Some(Value::StringValue(s)) => {
                self.buf.push(1);
                self.bytes(s.as_bytes());
            }
            Some(Value::BoolValue(b)) => self.buf.extend_from_slice(&[2, u8::from(*b)]),
            Some(Value::IntValue(i)) => {
                self.buf.push(3);
                self.buf.extend_from_slice(&i.to_le_bytes());
            }
            Some(Value::DoubleValue(d)) => {
                self.buf.push(4);
                self.buf.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            Some(Value::ArrayValue(array)) => {
                self.buf.push(5);
                self.len(array.values.len());
                for v in &array.values {
                    self.value(Some(v));
                }
            }
            Some(Value::KvlistValue(list)) => {
                self.buf.push(6);
                self.attributes(&list.values);
            }
            Some(Value::BytesValue(b)) => {
                self.buf.push(7);
                self.bytes(b);
            }
            Some(Value::StringValueStrindex(i)) => {
                self.buf.push(8);
                self.buf.extend_from_slice(&i.to_le_bytes());
            }
        }
    }

    fn len(&mut self, n: usize) {
        self.buf.extend_from_slice(&(n as u64).to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
}
