//! Splitter throughput on realistic requests: a 512-span, 100-trace request
//! split 8 ways by trace id, and a metrics request split 8 ways by metric name
//! and by stream id. Throughput is in request bytes per second.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otlp_lb::{
    proto::{
        collector::{
            metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest,
        },
        common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
        metrics::v1::{
            Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
            ScopeMetrics, Sum, metric::Data, number_data_point,
        },
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event},
    },
    routing::RoutingKey,
    signal::Signal,
    wire::Splitter,
};
use prost::Message;

const BACKENDS: u64 = 8;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.to_string())
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", s(service)),
            kv("service.version", s("1.4.2")),
            kv("deployment.environment", s("production")),
            kv("host.name", s("ip-10-0-12-34.ec2.internal")),
            kv("k8s.pod.name", s("checkout-7c9f8d6b5-x2x9q")),
            kv("k8s.namespace.name", s("shop")),
            kv("telemetry.sdk.language", s("go")),
            kv("telemetry.sdk.version", s("1.28.0")),
        ],
        ..Resource::default()
    })
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.to_string(),
        version: "0.52.0".to_string(),
        ..Default::default()
    })
}

/// 512 spans of 100 traces; the spans of a trace are adjacent, as an SDK's
/// batch processor usually leaves them.
fn traces_request() -> Bytes {
    let mut spans = Vec::new();
    for i in 0..512u64 {
        let trace = i * 100 / 512;
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(trace.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
        trace_id[8..].copy_from_slice(&trace.to_le_bytes());
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: (i + 1).to_le_bytes().to_vec(),
            parent_span_id: i.to_le_bytes().to_vec(),
            name: format!("GET /api/v1/items/{}", i % 7),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1000,
            end_time_unix_nano: 1_700_000_000_000_500_000 + i * 1000,
            attributes: vec![
                kv("http.request.method", s("GET")),
                kv("http.route", s("/api/v1/items/{id}")),
                kv("http.response.status_code", any_value::Value::IntValue(200)),
                kv(
                    "url.full",
                    s("https://shop.example.com/api/v1/items/42?ref=home"),
                ),
                kv("server.address", s("shop.example.com")),
                kv("network.peer.address", s("10.0.3.17")),
            ],
            events: if i % 16 == 0 {
                vec![Event {
                    time_unix_nano: 1,
                    name: "exception".to_string(),
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            status: Some(Status {
                message: String::new(),
                code: 1,
            }),
            flags: 0x301,
            ..Span::default()
        });
    }
    let second = spans.split_off(256);
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("checkout"),
            scope_spans: vec![
                ScopeSpans {
                    scope: scope("go.opentelemetry.io/contrib/net/http"),
                    spans,
                    schema_url: String::new(),
                },
                ScopeSpans {
                    scope: scope("github.com/shop/checkout"),
                    spans: second,
                    schema_url: String::new(),
                },
            ],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
        }],
    };
    Bytes::from(req.encode_to_vec())
}

/// 64 metrics (gauges, sums, histograms) of 8 streams each: 512 points.
fn metrics_request() -> Bytes {
    let mut metrics = Vec::new();
    for m in 0..64u64 {
        let attrs = |p: u64| {
            vec![
                kv("http.route", s(&format!("/api/v1/r{p}"))),
                kv("http.request.method", s("GET")),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(200 + p as i64),
                ),
            ]
        };
        let number = |p: u64| NumberDataPoint {
            attributes: attrs(p),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            time_unix_nano: 1_700_000_010_000_000_000,
            value: Some(number_data_point::Value::AsDouble(p as f64 * 1.5)),
            ..Default::default()
        };
        let data = match m % 3 {
            0 => Data::Gauge(Gauge {
                data_points: (0..8).map(number).collect(),
            }),
            1 => Data::Sum(Sum {
                data_points: (0..8).map(number).collect(),
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
            _ => Data::Histogram(Histogram {
                data_points: (0..8)
                    .map(|p| HistogramDataPoint {
                        attributes: attrs(p),
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        time_unix_nano: 1_700_000_010_000_000_000,
                        count: 100,
                        sum: Some(1234.5),
                        bucket_counts: vec![1, 5, 20, 50, 20, 3, 1],
                        explicit_bounds: vec![5.0, 10.0, 25.0, 50.0, 100.0, 250.0],
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
            }),
        };
        metrics.push(Metric {
            name: format!("http.server.metric_{m}"),
            description: "A server metric.".to_string(),
            unit: "ms".to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    let second = metrics.split_off(32);
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("checkout"),
            scope_metrics: vec![
                ScopeMetrics {
                    scope: scope("go.opentelemetry.io/contrib/net/http"),
                    metrics,
                    schema_url: String::new(),
                },
                ScopeMetrics {
                    scope: scope("github.com/shop/checkout"),
                    metrics: second,
                    schema_url: String::new(),
                },
            ],
            schema_url: String::new(),
        }],
    };
    Bytes::from(req.encode_to_vec())
}

fn bench(c: &mut Criterion, name: &str, signal: Signal, key: RoutingKey, request: &Bytes) {
    let splitter = Splitter::new(signal, key);
    let mut route = |h: u64| (h % BACKENDS) as usize;
    let parts = splitter
        .split(request, &mut route, 0)
        .map(|s| s.parts.len())
        .unwrap_or(0);
    assert_eq!(
        parts, BACKENDS as usize,
        "{name}: the request should reach every backend"
    );
    let mut group = c.benchmark_group("split");
    group.throughput(Throughput::Bytes(request.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            splitter
                .split(black_box(request), &mut route, 0)
                .map(|s| s.parts.len())
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let traces = traces_request();
    let metrics = metrics_request();
    bench(
        c,
        "traces_512_spans_100_traces_by_trace_id_8_ways",
        Signal::Traces,
        RoutingKey::TraceId,
        &traces,
    );
    bench(
        c,
        "metrics_512_points_by_metric_8_ways",
        Signal::Metrics,
        RoutingKey::Metric,
        &metrics,
    );
    bench(
        c,
        "metrics_512_points_by_stream_id_8_ways",
        Signal::Metrics,
        RoutingKey::StreamId,
        &metrics,
    );
}

criterion_group!(split, benches);
criterion_main!(split);
