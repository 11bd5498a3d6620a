//! Random OTLP requests for the property tests, and a tiny hand encoder for
//! requests prost cannot produce (unknown fields, odd field order, damage).
//!
//! Value pools are small on purpose: keys must collide across items so that
//! grouping, the trace-id route cache and duplicate attributes get exercised.

use proptest::prelude::*;

use crate::{
    proto::{
        collector::{
            logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
            trace::v1::ExportTraceServiceRequest,
        },
        common::v1::{
            AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
        },
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
        metrics::v1::{
            ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
            HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
            Summary, SummaryDataPoint, metric::Data, number_data_point,
            summary_data_point::ValueAtQuantile,
        },
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
    },
    routing::{KeySpec, RoutingKey},
    signal::Signal,
};

pub const KEYS: [&str; 5] = ["service.name", "host", "k1", "k2", "env"];
const STRINGS: [&str; 4] = ["", "a", "b", "checkout"];

fn leaf() -> impl Strategy<Value = any_value::Value> {
    prop_oneof![
        4 => prop::sample::select(&STRINGS[..]).prop_map(|s| any_value::Value::StringValue(s.to_string())),
        1 => any::<bool>().prop_map(any_value::Value::BoolValue),
        1 => prop_oneof![-3i64..3, any::<i64>()].prop_map(any_value::Value::IntValue),
        1 => prop_oneof![Just(0.5f64), Just(-2.0), Just(1e300), -1e6f64..1e6].prop_map(any_value::Value::DoubleValue),
        1 => prop::collection::vec(any::<u8>(), 0..4).prop_map(any_value::Value::BytesValue),
        1 => (0i32..3).prop_map(any_value::Value::StringValueStrindex),
    ]
}

pub fn any_value() -> impl Strategy<Value = Option<AnyValue>> {
    let value = prop_oneof![
        6 => leaf(),
        1 => prop::collection::vec(leaf(), 0..3).prop_map(|vs| any_value::Value::ArrayValue(ArrayValue {
            values: vs.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
        })),
        1 => prop::collection::vec((prop::sample::select(&KEYS[..]), leaf()), 0..3).prop_map(|kvs| {
            any_value::Value::KvlistValue(KeyValueList {
                values: kvs
                    .into_iter()
                    .map(|(k, v)| KeyValue { key: k.to_string(), value: Some(AnyValue { value: Some(v) }), key_strindex: 0 })
                    .collect(),
            })
        }),
    ];
    prop_oneof![
        12 => value.prop_map(|v| Some(AnyValue { value: Some(v) })),
        1 => Just(Some(AnyValue { value: None })),
        1 => Just(None),
    ]
}

pub fn attrs() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (prop::sample::select(&KEYS[..]), any_value()).prop_map(|(k, value)| KeyValue {
            key: k.to_string(),
            value,
            key_strindex: 0,
        }),
        0..4,
    )
}

pub fn resource() -> impl Strategy<Value = Option<Resource>> {
    prop::option::weighted(
        0.9,
        (attrs(), 0u32..2).prop_map(|(attributes, dropped_attributes_count)| Resource {
            attributes,
            dropped_attributes_count,
            entity_refs: Vec::new(),
        }),
    )
}

pub fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    prop::option::weighted(
        0.8,
        (
            prop::sample::select(&STRINGS[..]),
            prop::sample::select(&["", "1.0"][..]),
            attrs(),
        )
            .prop_map(|(name, version, attributes)| InstrumentationScope {
                name: name.to_string(),
                version: version.to_string(),
                attributes,
                dropped_attributes_count: 0,
            }),
    )
}

fn schema_url() -> impl Strategy<Value = String> {
    prop::sample::select(&["", "https://opentelemetry.io/schemas/1.21.0"][..])
        .prop_map(str::to_string)
}

/// Trace ids: mostly from a pool of six (so traces span scopes and
/// resources), sometimes empty or of a random length.
fn trace_id(empty_weight: u32) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (0u8..6).prop_map(|i| vec![i + 1; 16]),
        empty_weight => Just(Vec::new()),
        1 => prop::collection::vec(any::<u8>(), 1..20),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (
        trace_id(0),
        prop::sample::select(&["GET", "POST", ""][..]),
        0i32..6,
        attrs(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(trace_id, name, kind, attributes, start, status)| Span {
            trace_id,
            span_id: start.to_le_bytes().to_vec(),
            name: name.to_string(),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start.wrapping_add(1000),
            attributes,
            status: status.then(|| Status {
                message: "boom".to_string(),
                code: 2,
            }),
            ..Span::default()
        })
}

pub fn traces() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope_spans = (scope(), prop::collection::vec(span(), 0..6), schema_url()).prop_map(
        |(scope, spans, schema_url)| ScopeSpans {
            scope,
            spans,
            schema_url,
        },
    );
    let resource_spans = (
        resource(),
        prop::collection::vec(scope_spans, 0..3),
        schema_url(),
    )
        .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        });
    prop::collection::vec(resource_spans, 0..4)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

fn log_record() -> impl Strategy<Value = LogRecord> {
    (trace_id(3), any_value(), attrs(), 0i32..25, any::<u64>()).prop_map(
        |(trace_id, body, attributes, severity_number, time)| LogRecord {
            trace_id,
            body,
            attributes,
            severity_number,
            time_unix_nano: time,
            event_name: "e".to_string(),
            ..LogRecord::default()
        },
    )
}

pub fn logs() -> impl Strategy<Value = ExportLogsServiceRequest> {
    let scope_logs = (
        scope(),
        prop::collection::vec(log_record(), 0..6),
        schema_url(),
    )
        .prop_map(|(scope, log_records, schema_url)| ScopeLogs {
            scope,
            log_records,
            schema_url,
        });
    let resource_logs = (
        resource(),
        prop::collection::vec(scope_logs, 0..3),
        schema_url(),
    )
        .prop_map(|(resource, scope_logs, schema_url)| ResourceLogs {
            resource,
            scope_logs,
            schema_url,
        });
    prop::collection::vec(resource_logs, 0..4)
        .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

fn points<T: std::fmt::Debug>(
    f: impl Fn(Vec<KeyValue>, u64) -> T,
) -> impl Strategy<Value = Vec<T>> {
    prop::collection::vec(
        (attrs(), any::<u64>()).prop_map(move |(a, t)| f(a, t)),
        0..4,
    )
}

fn data() -> impl Strategy<Value = Option<Data>> {
    let number = |attributes, t: u64| NumberDataPoint {
        attributes,
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsInt(t as i64)),
        ..NumberDataPoint::default()
    };
    prop_oneof![
        1 => Just(None),
        2 => points(number).prop_map(|data_points| Some(Data::Gauge(Gauge { data_points }))),
        2 => (points(number), 0i32..3, any::<bool>()).prop_map(|(data_points, aggregation_temporality, is_monotonic)| {
            Some(Data::Sum(Sum { data_points, aggregation_temporality, is_monotonic }))
        }),
        2 => (points(|attributes, t| HistogramDataPoint {
            attributes,
            count: t % 100,
            bucket_counts: vec![t % 7, 3],
            explicit_bounds: vec![1.5],
            sum: Some(2.5),
            ..HistogramDataPoint::default()
        }), 0i32..3).prop_map(|(data_points, aggregation_temporality)| {
            Some(Data::Histogram(Histogram { data_points, aggregation_temporality }))
        }),
        2 => (points(|attributes, t| ExponentialHistogramDataPoint {
            attributes,
            count: t % 100,
            scale: -2,
            zero_count: 1,
            ..ExponentialHistogramDataPoint::default()
        }), 0i32..3).prop_map(|(data_points, aggregation_temporality)| {
            Some(Data::ExponentialHistogram(ExponentialHistogram { data_points, aggregation_temporality }))
        }),
        2 => points(|attributes, t| SummaryDataPoint {
            attributes,
            count: t % 100,
            sum: 4.0,
            quantile_values: vec![ValueAtQuantile { quantile: 0.5, value: 1.0 }],
            ..SummaryDataPoint::default()
        }).prop_map(|data_points| Some(Data::Summary(Summary { data_points }))),
    ]
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        prop::sample::select(&["m1", "m2", "m3", ""][..]),
        data(),
        attrs(),
    )
        .prop_map(|(name, data, metadata)| Metric {
            name: name.to_string(),
            description: "d".to_string(),
            unit: "ms".to_string(),
            metadata,
            data,
        })
}

pub fn metrics() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    let scope_metrics = (scope(), prop::collection::vec(metric(), 0..4), schema_url()).prop_map(
        |(scope, metrics, schema_url)| ScopeMetrics {
            scope,
            metrics,
            schema_url,
        },
    );
    let resource_metrics = (
        resource(),
        prop::collection::vec(scope_metrics, 0..3),
        schema_url(),
    )
        .prop_map(|(resource, scope_metrics, schema_url)| ResourceMetrics {
            resource,
            scope_metrics,
            schema_url,
        });
    prop::collection::vec(resource_metrics, 0..4)
        .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
}

/// A routing key `signal` supports, with attribute names from the pool (and
/// the span pseudo attributes for traces).
pub fn routing_key(signal: Signal) -> impl Strategy<Value = KeySpec> {
    let mut names: Vec<&'static str> = KEYS.to_vec();
    names.push("missing");
    if signal == Signal::Traces {
        names.push("span.name");
        names.push("span.kind");
    }
    let attributes = prop::sample::subsequence(names.clone(), 1..4)
        .prop_shuffle()
        .prop_map(|ns| {
            let names: Vec<String> = ns.into_iter().map(str::to_string).collect();
            KeySpec::new(RoutingKey::Attributes, &names)
        });
    let simple: Vec<KeySpec> = [
        RoutingKey::TraceId,
        RoutingKey::Service,
        RoutingKey::Resource,
        RoutingKey::Metric,
        RoutingKey::StreamId,
    ]
    .into_iter()
    .filter(|k| k.supports(signal))
    .map(KeySpec::from)
    .collect();
    prop_oneof![3 => prop::sample::select(simple), 1 => attributes]
}

/// Hand encoding, for bytes prost would never write.
pub mod raw {
    /// A varint.
    pub fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    /// A length-delimited field.
    pub fn ld(number: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = varint(u64::from(number) << 3 | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    /// A varint field.
    pub fn vi(number: u32, v: u64) -> Vec<u8> {
        let mut out = varint(u64::from(number) << 3);
        out.extend(varint(v));
        out
    }

    /// Concatenation.
    pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// A `KeyValue` with a string value.
    pub fn kv(key: &str, value: &str) -> Vec<u8> {
        cat(&[&ld(1, key.as_bytes()), &ld(2, &ld(1, value.as_bytes()))])
    }

    /// An encoded `AnyValue` nesting `depth` levels deep, alternately a
    /// kvlist (`{k: ...}`) and an array (`[...]`), around the string `leaf`.
    /// Built back to front, so a deep value costs its size, not its size
    /// times its depth.
    pub fn deep_any_value(depth: usize, leaf: &str) -> Vec<u8> {
        let mut rev: Vec<u8> = ld(1, leaf.as_bytes()).into_iter().rev().collect();
        let wrap = |rev: &mut Vec<u8>, number: u32| {
            let mut header = varint(u64::from(number) << 3 | 2);
            header.extend(varint(rev.len() as u64));
            rev.extend(header.iter().rev());
        };
        for level in 0..depth {
            if level % 2 == 0 {
                // AnyValue.kvlist_value.values[0] = KeyValue { key: "k", value }
                wrap(&mut rev, 2);
                rev.extend(ld(1, b"k").iter().rev());
                wrap(&mut rev, 1);
                wrap(&mut rev, 6);
            } else {
                // AnyValue.array_value.values[0]
                wrap(&mut rev, 1);
                wrap(&mut rev, 5);
            }
        }
        rev.reverse();
        rev
    }

    /// A `KeyValue` with an encoded `AnyValue`.
    pub fn kv_any(key: &str, value: &[u8]) -> Vec<u8> {
        cat(&[&ld(1, key.as_bytes()), &ld(2, value)])
    }
}
