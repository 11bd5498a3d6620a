//! OTLP/JSON to protobuf, once, at the edge.
//!
//! OTLP/JSON is the proto3 JSON mapping with one difference: trace and span
//! ids are hex strings, not base64. We rewrite those ids to base64 in the
//! parsed JSON tree and let `prost-reflect` (driven by the vendored protos'
//! descriptors) do the standard mapping: camelCase or snake_case names, enum
//! names or numbers, 64-bit integers as strings or numbers. Unknown fields
//! are ignored, as the OTLP spec asks of receivers.

use std::sync::OnceLock;

use bytes::Bytes;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};

use crate::{proto::DESCRIPTOR_SET, signal::Signal};

/// Fields holding hex-encoded ids in OTLP/JSON.
const ID_FIELDS: &[&str] = &[
    "traceId",
    "spanId",
    "parentSpanId",
    "trace_id",
    "span_id",
    "parent_span_id",
];

/// Why a body could not be transcoded; the message says what was wrong
/// and where, for the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, JsonError>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTOR_SET)
            .map_err(|e| JsonError(format!("OTLP descriptors: {e}")))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn request_descriptor(signal: Signal) -> Result<MessageDescriptor, JsonError> {
    let name = match signal {
        Signal::Traces => "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
        Signal::Metrics => "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
        Signal::Logs => "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
    };
    pool()?
        .get_message_by_name(name)
        .ok_or_else(|| JsonError(format!("descriptor {name} missing")))
}

/// Transcodes an OTLP/JSON `Export*ServiceRequest` to its protobuf encoding.
/// The error says what was wrong with the JSON.
pub fn to_protobuf(signal: Signal, json: &[u8]) -> Result<Bytes, JsonError> {
    let mut tree: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| JsonError(format!("invalid JSON: {e}")))?;
    hex_ids_to_base64(&mut tree)?;
    let desc = request_descriptor(signal)?;
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(desc, tree, &options)
        .map_err(|e| JsonError(format!("invalid OTLP/JSON {signal} request: {e}")))?;
    Ok(message.encode_to_vec().into())
}

/// Transcodes a protobuf message of `signal`'s request type to OTLP/JSON
/// (hex ids). Used by tests and the debug exporter.
pub fn to_json(signal: Signal, protobuf: &[u8]) -> Result<serde_json::Value, JsonError> {
    let desc = request_descriptor(signal)?;
    let message = DynamicMessage::decode(desc, protobuf).map_err(|e| JsonError(e.to_string()))?;
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    let mut tree = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| JsonError(e.to_string()))?;
    base64_ids_to_hex(&mut tree);
    Ok(tree)
}

fn hex_ids_to_base64(value: &mut serde_json::Value) -> Result<(), JsonError> {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if ID_FIELDS.contains(&key.as_str()) {
                    if let serde_json::Value::String(s) = v {
                        let raw = decode_hex(s)
                            .ok_or_else(|| JsonError(format!("{key}: not a hex id: {s:?}")))?;
                        *s = encode_base64(&raw);
                    }
                } else {
                    hex_ids_to_base64(v)?;
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                hex_ids_to_base64(v)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn base64_ids_to_hex(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if ID_FIELDS.contains(&key.as_str()) => {
                        if let Some(raw) = decode_base64(s) {
                            *s = raw.iter().map(|b| format!("{b:02x}")).collect();
                        }
                    }
                    _ => base64_ids_to_hex(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(base64_ids_to_hex),
        _ => {}
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode_base64(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len().div_ceil(3) * 4);
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn base64_round_trips() {
        for len in 0..20 {
            let raw: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode_base64(&encode_base64(&raw)).unwrap(), raw);
        }
        assert_eq!(encode_base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn otlp_json_trace_decodes() {
        let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
            "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
            "name":"GET","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
            "attributes":[{"key":"n","value":{"intValue":"42"}}],"status":{"code":2},"unknownField":true}]}]}]}"#;
        let bytes = to_protobuf(Signal::Traces, json).unwrap();
        let req = ExportTraceServiceRequest::decode(bytes).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(hex(&span.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(hex(&span.span_id), "eee19b7ec3c1b174");
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
    }

    #[test]
    fn bad_json_says_what_is_wrong() {
        let e = to_protobuf(Signal::Traces, b"{\"resourceSpans\": 3}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid OTLP/JSON traces request"), "{e}");
        let e = to_protobuf(
            Signal::Traces,
            b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"zz\"}]}]}]}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("traceId: not a hex id"), "{e}");
        let e = to_protobuf(Signal::Logs, b"not json")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid JSON"), "{e}");
    }

    #[test]
    fn to_json_writes_hex_ids() {
        let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"}]}]}]}"#;
        let bytes = to_protobuf(Signal::Traces, json).unwrap();
        let back = to_json(Signal::Traces, &bytes).unwrap();
        assert_eq!(
            back["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"],
            "0102030405060708090a0b0c0d0e0f10"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}

#[cfg(test)]
mod round_trip {
    use super::*;
    use crate::proto::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };

    #[test]
    fn protobuf_json_protobuf_is_lossless() {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("a".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![7; 16],
                        span_id: vec![8; 8],
                        name: "x".into(),
                        kind: 2,
                        start_time_unix_nano: u64::MAX - 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = req.encode_to_vec();
        let tree = to_json(Signal::Traces, &bytes).unwrap();
        let back = to_protobuf(Signal::Traces, tree.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}\n{tree}"));
        assert_eq!(ExportTraceServiceRequest::decode(back).unwrap(), req);
    }
}
