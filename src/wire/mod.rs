//! The protobuf wire format, read and written without decoding: the product's
//! hot path.
//!
//! This module owns the primitives (varints, tags, a zero-allocation field
//! iterator, header writers), the error type that names where a request is
//! malformed in OTLP terms, [`count_items`] for the receivers' accepted-item
//! counters, and the request [`split`]ter.
//!
//! What it must never do: decode a request into typed messages or re-encode a
//! span, data point or log record. Items and every field the splitter does not
//! route on are copied as byte ranges of the original request; only the tag and
//! length headers of the container messages are ever written.
//!
//! Every function here takes bytes from the network: none of them may panic on
//! any input, so all reads go through bounds-checked accessors.

use std::fmt;

use bytes::BufMut;
#[cfg(doc)]
use bytes::BytesMut;

use crate::signal::Signal;

pub mod split;

// The prost oracle of the splitter: the unit tests' and, with the `fuzzing`
// feature, the fuzz targets' (`fuzz/`); never part of the product.
#[cfg(test)]
mod fuzz_seeds;
#[cfg(any(test, feature = "fuzzing"))]
pub mod oracle;
#[cfg(test)]
pub(crate) mod testgen;

pub use split::{Part, Split, Splitter};

/// The longest valid varint: 10 bytes carry 64 bits.
pub const MAX_VARINT_LEN: usize = 10;

/// Protobuf wire types. Groups (3, 4) and the reserved types (6, 7) are not
/// used by OTLP and are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// 0: `int32`, `int64`, `uint32`, `uint64`, `sint*`, `bool`, `enum`.
    Varint = 0,
    /// 1: `fixed64`, `sfixed64`, `double`.
    Fixed64 = 1,
    /// 2: `string`, `bytes`, messages, packed repeated fields.
    Len = 2,
    /// 5: `fixed32`, `sfixed32`, `float`.
    Fixed32 = 5,
}

impl WireType {
    fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

impl fmt::Display for WireType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", *self as u8, self.name())
    }
}

/// A malformed request. Every variant says what was wrong; `path` says where,
/// as the OTLP field path of the message that holds the bad field (for example
/// `resource_spans[3].scope_spans[0].spans[7]`, or `request` for the top-level
/// message). Offsets are byte positions in the whole request.
///
/// The path is built only on the error path: the primitives return an empty
/// path and each level of the scanner prepends its own segment as the error
/// travels up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended inside a varint (a tag, a length or a varint value).
    #[error("{}: truncated varint at byte {offset}", show(path))]
    TruncatedVarint {
        /// Where, in OTLP terms.
        path: String,
        /// Byte offset of the varint's first byte.
        offset: usize,
    },
    /// A varint longer than 10 bytes, or whose 10th byte overflows 64 bits.
    #[error(
        "{}: varint longer than 10 bytes or over 64 bits at byte {offset}",
        show(path)
    )]
    VarintOverflow {
        /// Where, in OTLP terms.
        path: String,
        /// Byte offset of the varint's first byte.
        offset: usize,
    },
    /// A tag with field number 0, or above the protobuf maximum (2^29 - 1).
    #[error("{}: invalid field number {number} at byte {offset}", show(path))]
    InvalidFieldNumber {
        /// Where, in OTLP terms.
        path: String,
        /// The decoded field number.
        number: u64,
        /// Byte offset of the tag.
        offset: usize,
    },
    /// Wire type 3 or 4 (groups) or 6 or 7 (undefined).
    #[error(
        "{}: field {field} has unsupported wire type {wire_type} at byte {offset}",
        show(path)
    )]
    UnsupportedWireType {
        /// Where, in OTLP terms.
        path: String,
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
        /// Byte offset of the tag.
        offset: usize,
    },
    /// A field whose value runs past the end of its enclosing message.
    #[error(
        "{}: truncated {} field {field} (need {need} bytes, {left} left)",
        show(path),
        wire_type.name()
    )]
    TruncatedField {
        /// Where, in OTLP terms.
        path: String,
        /// The field number.
        field: u32,
        /// The field's wire type.
        wire_type: WireType,
        /// Bytes the field's value needs.
        need: u64,
        /// Bytes left in the enclosing message after the tag (and length).
        left: usize,
    },
    /// A known OTLP field with the wrong wire type (for example a message
    /// field encoded as a varint).
    #[error(
        "{}: field {field} has wire type {found}, expected {expected}",
        show(path)
    )]
    WrongWireType {
        /// Where, in OTLP terms.
        path: String,
        /// The field number.
        field: u32,
        /// The wire type the OTLP schema gives the field.
        expected: WireType,
        /// The wire type found.
        found: WireType,
    },
}

fn show(path: &str) -> &str {
    if path.is_empty() { "request" } else { path }
}

impl WireError {
    /// The OTLP path of the message holding the bad field (empty for the
    /// top-level request).
    pub fn path(&self) -> &str {
        match self {
            WireError::TruncatedVarint { path, .. }
            | WireError::VarintOverflow { path, .. }
            | WireError::InvalidFieldNumber { path, .. }
            | WireError::UnsupportedWireType { path, .. }
            | WireError::TruncatedField { path, .. }
            | WireError::WrongWireType { path, .. } => path,
        }
    }

    fn path_mut(&mut self) -> &mut String {
        match self {
            WireError::TruncatedVarint { path, .. }
            | WireError::VarintOverflow { path, .. }
            | WireError::InvalidFieldNumber { path, .. }
            | WireError::UnsupportedWireType { path, .. }
            | WireError::TruncatedField { path, .. }
            | WireError::WrongWireType { path, .. } => path,
        }
    }

    /// Prepends the segment `name[index]` (or `name` when `index` is `None`)
    /// to the path: the error happened inside that field.
    #[cold]
    pub fn within(mut self, name: &str, index: Option<usize>) -> Self {
        let path = self.path_mut();
        let mut seg = match index {
            Some(i) => format!("{name}[{i}]"),
            None => name.to_string(),
        };
        if !path.is_empty() {
            seg.push('.');
            seg.push_str(path);
        }
        *path = seg;
        self
    }
}

/// Decodes the varint starting at `buf[pos]`; returns it and the position
/// after it.
#[inline]
pub fn decode_varint(buf: &[u8], pos: usize) -> Result<(u64, usize), WireError> {
    match buf.get(pos) {
        Some(&b) if b < 0x80 => Ok((u64::from(b), pos + 1)),
        // Two bytes: the length of nearly every span, data point and log
        // record (128 B to 16 KiB).
        Some(&lo) => match buf.get(pos + 1) {
            Some(&hi) if hi < 0x80 => Ok((u64::from(lo & 0x7f) | (u64::from(hi) << 7), pos + 2)),
            _ => decode_varint_slow(buf, pos),
        },
        None => decode_varint_slow(buf, pos),
    }
}

#[inline(never)]
fn decode_varint_slow(buf: &[u8], pos: usize) -> Result<(u64, usize), WireError> {
    let mut value = 0u64;
    for i in 0..MAX_VARINT_LEN {
        let Some(&b) = buf.get(pos + i) else {
            return Err(WireError::TruncatedVarint {
                path: String::new(),
                offset: pos,
            });
        };
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            break;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((value, pos + i + 1));
        }
    }
    Err(WireError::VarintOverflow {
        path: String::new(),
        offset: pos,
    })
}

/// Decodes the tag starting at `buf[pos]`; returns the field number, the wire
/// type and the position after the tag.
#[inline]
pub fn decode_tag(buf: &[u8], pos: usize) -> Result<(u32, WireType, usize), WireError> {
    let (key, next) = decode_varint(buf, pos)?;
    let number = key >> 3;
    if number == 0 || number > MAX_FIELD_NUMBER {
        return Err(WireError::InvalidFieldNumber {
            path: String::new(),
            number,
            offset: pos,
        });
    }
    let number = number as u32;
    let wire_type = match key & 7 {
        0 => WireType::Varint,
        1 => WireType::Fixed64,
        2 => WireType::Len,
        5 => WireType::Fixed32,
        other => {
            return Err(WireError::UnsupportedWireType {
                path: String::new(),
                field: number,
                wire_type: other as u8,
                offset: pos,
            });
        }
    };
    Ok((number, wire_type, next))
}

/// The largest field number protobuf allows.
pub const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// A field's value. Length-delimited values are byte ranges of the buffer the
/// field was read from, so nothing is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1, little-endian.
    Fixed64(u64),
    /// Wire type 5, little-endian.
    Fixed32(u32),
    /// Wire type 2: the payload is `buf[start..end]`.
    Len {
        /// First payload byte.
        start: usize,
        /// One past the last payload byte.
        end: usize,
    },
}

/// One field of a message, as found by [`Fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field number (1 ..= 2^29 - 1).
    pub number: u32,
    /// The value.
    pub value: Value,
    /// First byte of the field (its tag).
    pub start: usize,
    /// One past the last byte of the field.
    pub end: usize,
}

impl Field {
    /// The field's wire type.
    #[inline]
    pub fn wire_type(&self) -> WireType {
        match self.value {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64(_) => WireType::Fixed64,
            Value::Fixed32(_) => WireType::Fixed32,
            Value::Len { .. } => WireType::Len,
        }
    }

    /// The whole field, tag included, as a range of the buffer.
    #[inline]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    /// The payload range of a length-delimited field, or a
    /// [`WireError::WrongWireType`] when the schema says the field is
    /// length-delimited but it is not.
    #[inline]
    pub fn payload(&self) -> Result<std::ops::Range<usize>, WireError> {
        match self.value {
            Value::Len { start, end } => Ok(start..end),
            _ => Err(self.wrong_type(WireType::Len)),
        }
    }

    /// The value of a varint field, or a [`WireError::WrongWireType`].
    #[inline]
    pub fn varint(&self) -> Result<u64, WireError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong_type(WireType::Varint)),
        }
    }

    #[cold]
    fn wrong_type(&self, expected: WireType) -> WireError {
        WireError::WrongWireType {
            path: String::new(),
            field: self.number,
            expected,
            found: self.wire_type(),
        }
    }
}

/// Iterates over the fields of one message without allocating.
///
/// Positions in the yielded [`Field`]s are offsets into the buffer given to
/// [`Fields::within`], so nested messages can be walked with absolute offsets
/// into the whole request. After the first error the iterator is exhausted.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    /// The buffer, cut at the end of the message.
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// The fields of the message that is the whole of `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    /// The fields of the message at `buf[range]`; positions are offsets into
    /// `buf`. A range outside `buf` is clamped to it.
    #[inline]
    pub fn within(buf: &'a [u8], range: std::ops::Range<usize>) -> Self {
        let end = range.end.min(buf.len());
        let buf = buf.get(..end).unwrap_or_default();
        Fields {
            buf,
            pos: range.start.min(end),
        }
    }

    #[inline(always)]
    fn read(&mut self) -> Result<Field, WireError> {
        let buf = self.buf;
        let start = self.pos;
        let (number, wire_type, pos) = decode_tag(buf, start)?;
        let left = buf.len() - pos;
        let (value, end) = match wire_type {
            WireType::Varint => {
                let (v, end) = decode_varint(buf, pos)?;
                (Value::Varint(v), end)
            }
            WireType::Fixed64 => match buf.get(pos..pos + 8) {
                Some(b) => {
                    let mut le = [0u8; 8];
                    le.copy_from_slice(b);
                    (Value::Fixed64(u64::from_le_bytes(le)), pos + 8)
                }
                None => return Err(truncated(number, wire_type, 8, left)),
            },
            WireType::Fixed32 => match buf.get(pos..pos + 4) {
                Some(b) => {
                    let mut le = [0u8; 4];
                    le.copy_from_slice(b);
                    (Value::Fixed32(u32::from_le_bytes(le)), pos + 4)
                }
                None => return Err(truncated(number, wire_type, 4, left)),
            },
            WireType::Len => {
                let (len, body) = decode_varint(buf, pos)?;
                let left = buf.len() - body;
                if len > left as u64 {
                    return Err(truncated(number, wire_type, len, left));
                }
                let end = body + len as usize;
                (Value::Len { start: body, end }, end)
            }
        };
        self.pos = end;
        Ok(Field {
            number,
            value,
            start,
            end,
        })
    }
}

#[cold]
fn truncated(field: u32, wire_type: WireType, need: u64, left: usize) -> WireError {
    WireError::TruncatedField {
        path: String::new(),
        field,
        wire_type,
        need,
        left,
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let field = self.read();
        if field.is_err() {
            self.pos = self.buf.len();
        }
        Some(field)
    }
}

/// The number of bytes `value` takes as a varint.
#[inline]
pub fn encoded_len_varint(value: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `value` as a varint (to a [`BytesMut`], a `Vec<u8>`, ...).
#[inline]
pub fn put_varint(out: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Appends the tag of field `number` with `wire_type`.
#[inline]
pub fn put_tag(out: &mut impl BufMut, number: u32, wire_type: WireType) {
    put_varint(out, (u64::from(number) << 3) | wire_type as u64);
}

/// Appends the header (tag and length) of a length-delimited field whose
/// payload is `len` bytes.
#[inline]
pub fn put_len_header(out: &mut impl BufMut, number: u32, len: usize) {
    put_tag(out, number, WireType::Len);
    put_varint(out, len as u64);
}

/// The size of the header [`put_len_header`] writes.
#[inline]
pub fn len_header_len(number: u32, len: usize) -> usize {
    encoded_len_varint(u64::from(number) << 3) + encoded_len_varint(len as u64)
}

/// Field numbers of the OTLP messages the scanner reads, one module per
/// message, named after the fields in `opentelemetry/proto/**/*.proto`.
pub(crate) mod field {
    /// `ResourceSpans.resource`, `ResourceMetrics.resource`,
    /// `ResourceLogs.resource`.
    pub const RESOURCE: u32 = 1;
    /// `ScopeSpans.scope`, `ScopeMetrics.scope`, `ScopeLogs.scope`.
    pub const SCOPE: u32 = 1;

    /// `opentelemetry.proto.resource.v1.Resource`.
    pub mod resource {
        pub const ATTRIBUTES: u32 = 1;
    }

    /// `opentelemetry.proto.common.v1.InstrumentationScope`.
    pub mod scope {
        pub const NAME: u32 = 1;
        pub const VERSION: u32 = 2;
        pub const ATTRIBUTES: u32 = 3;
    }

    /// `opentelemetry.proto.common.v1.KeyValue`.
    pub mod key_value {
        pub const KEY: u32 = 1;
        pub const VALUE: u32 = 2;
    }

    /// `opentelemetry.proto.common.v1.AnyValue` (the `value` oneof).
    pub mod any_value {
        pub const STRING_VALUE: u32 = 1;
        pub const BOOL_VALUE: u32 = 2;
        pub const INT_VALUE: u32 = 3;
        pub const DOUBLE_VALUE: u32 = 4;
        pub const STRING_VALUE_STRINDEX: u32 = 8;
    }

    /// `opentelemetry.proto.trace.v1.Span`.
    pub mod span {
        pub const TRACE_ID: u32 = 1;
        pub const NAME: u32 = 5;
        pub const KIND: u32 = 6;
        pub const ATTRIBUTES: u32 = 9;
    }

    /// `opentelemetry.proto.logs.v1.LogRecord`.
    pub mod log_record {
        pub const ATTRIBUTES: u32 = 6;
        pub const TRACE_ID: u32 = 9;
    }

    /// `opentelemetry.proto.metrics.v1.Metric` (the `data` oneof).
    pub mod metric {
        pub const NAME: u32 = 1;
        pub const GAUGE: u32 = 5;
        pub const SUM: u32 = 7;
        pub const HISTOGRAM: u32 = 9;
        pub const EXPONENTIAL_HISTOGRAM: u32 = 10;
        pub const SUMMARY: u32 = 11;
    }

    /// `NumberDataPoint` (of `Gauge` and `Sum`).
    pub mod number_data_point {
        pub const ATTRIBUTES: u32 = 7;
    }

    /// `HistogramDataPoint`.
    pub mod histogram_data_point {
        pub const ATTRIBUTES: u32 = 9;
    }

    /// `ExponentialHistogramDataPoint`.
    pub mod exponential_histogram_data_point {
        pub const ATTRIBUTES: u32 = 1;
    }

    /// `SummaryDataPoint`.
    pub mod summary_data_point {
        pub const ATTRIBUTES: u32 = 7;
    }
}

/// The field layout of one signal's request, top to bottom: which field holds
/// the children at each level and what the path segment is called.
pub(crate) struct Layout {
    /// `(field number, path name)` of the resource, scope and item fields.
    pub resource: (u32, &'static str),
    pub scope: (u32, &'static str),
    pub item: (u32, &'static str),
}

impl Layout {
    pub(crate) fn of(signal: Signal) -> &'static Layout {
        match signal {
            Signal::Traces => &Layout {
                resource: (1, "resource_spans"),
                scope: (2, "scope_spans"),
                item: (2, "spans"),
            },
            Signal::Metrics => &Layout {
                resource: (1, "resource_metrics"),
                scope: (2, "scope_metrics"),
                item: (2, "metrics"),
            },
            Signal::Logs => &Layout {
                resource: (1, "resource_logs"),
                scope: (2, "scope_logs"),
                item: (2, "log_records"),
            },
        }
    }
}

/// The `Metric` fields that hold the data (`gauge`, `sum`, `histogram`,
/// `exponential_histogram`, `summary`), or `None` for any other field.
#[inline]
pub(crate) fn metric_data_name(number: u32) -> Option<&'static str> {
    match number {
        field::metric::GAUGE => Some("gauge"),
        field::metric::SUM => Some("sum"),
        field::metric::HISTOGRAM => Some("histogram"),
        field::metric::EXPONENTIAL_HISTOGRAM => Some("exponential_histogram"),
        field::metric::SUMMARY => Some("summary"),
        _ => None,
    }
}

/// The `data_points` field of every metric data message.
pub(crate) const DATA_POINTS: (u32, &str) = (1, "data_points");

/// Counts the items of a request: spans, metric data points (of all five
/// kinds) or log records. Validates the framing of every level it walks
/// through (request, resources, scopes, and for metrics the metrics and their
/// data messages); the items' own contents are not inspected.
pub fn count_items(signal: Signal, request: &[u8]) -> Result<u64, WireError> {
    let layout = Layout::of(signal);
    let mut total = 0u64;
    let mut ri = 0usize;
    for f in Fields::new(request) {
        let f = f?;
        if f.number != layout.resource.0 {
            continue;
        }
        total += count_resource(signal, layout, request, f.payload()?)
            .map_err(|e| e.within(layout.resource.1, Some(ri)))?;
        ri += 1;
    }
    Ok(total)
}

/// Counts the items in one resource message at `buf[range]`.
pub(crate) fn count_resource(
    signal: Signal,
    layout: &Layout,
    buf: &[u8],
    range: std::ops::Range<usize>,
) -> Result<u64, WireError> {
    let mut total = 0u64;
    let mut si = 0usize;
    for f in Fields::within(buf, range) {
        let f = f?;
        if f.number != layout.scope.0 {
            continue;
        }
        total += count_scope(signal, layout, buf, f.payload()?)
            .map_err(|e| e.within(layout.scope.1, Some(si)))?;
        si += 1;
    }
    Ok(total)
}

fn count_scope(
    signal: Signal,
    layout: &Layout,
    buf: &[u8],
    range: std::ops::Range<usize>,
) -> Result<u64, WireError> {
    let mut total = 0u64;
    let mut ii = 0usize;
    for f in Fields::within(buf, range) {
        let f = f?;
        if f.number != layout.item.0 {
            continue;
        }
        let payload = f.payload()?;
        if signal == Signal::Metrics {
            total += count_metric(buf, payload).map_err(|e| e.within(layout.item.1, Some(ii)))?;
        } else {
            total += 1;
        }
        ii += 1;
    }
    Ok(total)
}

/// Counts the data points of the `Metric` at `buf[range]`.
pub(crate) fn count_metric(buf: &[u8], range: std::ops::Range<usize>) -> Result<u64, WireError> {
    let mut total = 0u64;
    for f in Fields::within(buf, range) {
        let f = f?;
        let Some(name) = metric_data_name(f.number) else {
            continue;
        };
        total += count_points(buf, f.payload()?).map_err(|e| e.within(name, None))?;
    }
    Ok(total)
}

/// Counts the `data_points` of a metric data message at `buf[range]`.
pub(crate) fn count_points(buf: &[u8], range: std::ops::Range<usize>) -> Result<u64, WireError> {
    let mut total = 0u64;
    for f in Fields::within(buf, range) {
        let f = f?;
        if f.number == DATA_POINTS.0 {
            f.payload()?;
            total += 1;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
