//! Deterministic OTLP request generators for tests.

use otlp_lb::proto::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    metrics::v1::{
        AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
        metric, number_data_point,
    },
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service), kv("host.name", "test")],
        ..Default::default()
    })
}

/// A trace id for trace number `t` of a run with `seed`.
pub fn trace_id(seed: u64, t: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(16);
    id.extend_from_slice(&seed.to_be_bytes());
    id.extend_from_slice(&t.to_be_bytes());
    id
}

/// `traces` traces of `spans_per_trace` spans, shuffled into requests of
/// about `spans_per_request` spans, each request with spans from several
/// services and scopes. Every span id is unique.
pub fn traces(
    seed: u64,
    traces: u64,
    spans_per_trace: u64,
    spans_per_request: usize,
) -> Vec<ExportTraceServiceRequest> {
    let mut rng = Rng::new(seed);
    let mut spans: Vec<(u64, u64)> = (0..traces)
        .flat_map(|t| (0..spans_per_trace).map(move |s| (t, s)))
        .collect();
    for i in (1..spans.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        spans.swap(i, j);
    }
    spans
        .chunks(spans_per_request.max(1))
        .map(|chunk| {
            let mut by_service: Vec<ResourceSpans> = Vec::new();
            for &(t, s) in chunk {
                let service = format!("svc-{}", t % 5);
                let scope = format!("scope-{}", s % 2);
                let span = Span {
                    trace_id: trace_id(seed, t),
                    span_id: (t * 1000 + s + 1).to_be_bytes().to_vec(),
                    name: format!("op-{s}"),
                    kind: 2,
                    start_time_unix_nano: 1_700_000_000_000_000_000 + s,
                    end_time_unix_nano: 1_700_000_000_000_100_000 + s,
                    attributes: vec![kv("http.route", "/x")],
                    ..Default::default()
                };
                let rs = match by_service.iter_mut().find(|r| {
                    r.resource.as_ref().map(|r| &r.attributes[0])
                        == resource(&service).as_ref().map(|r| &r.attributes[0])
                }) {
                    Some(rs) => rs,
                    None => {
                        by_service.push(ResourceSpans {
                            resource: resource(&service),
                            scope_spans: Vec::new(),
                            schema_url: String::new(),
                        });
                        by_service.last_mut().expect("pushed")
                    }
                };
                let ss =
                    match rs.scope_spans.iter_mut().find(|ss| {
                        ss.scope.as_ref().map(|s| s.name.as_str()) == Some(scope.as_str())
                    }) {
                        Some(ss) => ss,
                        None => {
                            rs.scope_spans.push(ScopeSpans {
                                scope: Some(InstrumentationScope {
                                    name: scope.clone(),
                                    ..Default::default()
                                }),
                                spans: Vec::new(),
                                schema_url: String::new(),
                            });
                            rs.scope_spans.last_mut().expect("pushed")
                        }
                    };
                ss.spans.push(span);
            }
            ExportTraceServiceRequest {
                resource_spans: by_service,
            }
        })
        .collect()
}

/// `metrics` cumulative sums with `streams` attribute sets each, `requests`
/// requests; every request carries one point of a random subset of streams.
pub fn metrics(
    seed: u64,
    metrics: u64,
    streams: u64,
    requests: u64,
) -> Vec<ExportMetricsServiceRequest> {
    let mut rng = Rng::new(seed);
    (0..requests)
        .map(|r| {
            let ms = (0..metrics)
                .map(|m| Metric {
                    name: format!("requests.{m}"),
                    unit: "1".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: (0..streams)
                            .filter(|_| rng.below(2) == 0)
                            .map(|s| NumberDataPoint {
                                attributes: vec![kv("stream", &s.to_string())],
                                start_time_unix_nano: 1,
                                time_unix_nano: 1 + r,
                                value: Some(number_data_point::Value::AsInt(r as i64)),
                                ..Default::default()
                            })
                            .collect(),
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                })
                .collect();
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: resource("metrics-svc"),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "meter".into(),
                            ..Default::default()
                        }),
                        metrics: ms,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            }
        })
        .collect()
}

/// Log requests: `records` records per request, every third without trace id.
pub fn logs(seed: u64, requests: u64, records: u64) -> Vec<ExportLogsServiceRequest> {
    (0..requests)
        .map(|r| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource("log-svc"),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: (0..records)
                        .map(|i| LogRecord {
                            trace_id: if i % 3 == 2 {
                                Vec::new()
                            } else {
                                trace_id(seed, (r * records + i) % 17)
                            },
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(format!("log {r}-{i}"))),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        })
        .collect()
}
