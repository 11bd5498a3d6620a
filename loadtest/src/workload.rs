//! The requests a run sends: encoded once, before the clock starts, and
//! reused as `Bytes` for every send so the generator costs a refcount per
//! request, not an encode.
//!
//! Every variant has its own trace ids (or stream attributes), so a run that
//! cycles through variants spreads its keys over the whole ring.

use bytes::Bytes;
use otlp_lb::{
    proto::{
        collector::{
            logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
            trace::v1::ExportTraceServiceRequest,
        },
        common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
        metrics::v1::{
            AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
            ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
        },
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
    },
    signal::Signal,
};
use prost::Message;

/// The shape of the generated requests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shape {
    /// Traces, metrics or logs.
    #[serde(serialize_with = "signal_name")]
    pub signal: Signal,
    /// Items per request: spans, data points or log records.
    pub items: usize,
    /// Distinct traces per request (traces and logs).
    pub traces: usize,
    /// Attributes per item; the main knob for item size.
    pub attributes: usize,
    /// Distinct `service.name` resources per request.
    pub services: usize,
    /// Distinct requests generated; sends cycle through them.
    pub variants: usize,
    /// Seed of the ids, so two runs with the same seed send the same bytes.
    pub seed: u64,
}

fn signal_name<S: serde::Serializer>(s: &Signal, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

/// One encoded request and how many items it holds.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The encoded `Export*ServiceRequest`.
    pub body: Bytes,
    /// Spans, data points or log records in `body`.
    pub items: u64,
}

/// Builds `shape.variants` encoded requests.
pub fn build(shape: &Shape) -> Vec<Encoded> {
    (0..shape.variants.max(1) as u64)
        .map(|v| {
            let (body, items) = match shape.signal {
                Signal::Traces => {
                    let r = traces(shape, v);
                    (r.encode_to_vec(), shape.items)
                }
                Signal::Metrics => {
                    let r = metrics(shape, v);
                    (r.encode_to_vec(), shape.items)
                }
                Signal::Logs => {
                    let r = logs(shape, v);
                    (r.encode_to_vec(), shape.items)
                }
            };
            Encoded {
                body: Bytes::from(body),
                items: items as u64,
            }
        })
        .collect()
}

/// A 64-bit mix (splitmix64's finalizer): distinct inputs, well-spread ids.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The trace id of trace `t` of variant `v`.
pub fn trace_id(seed: u64, v: u64, t: u64) -> [u8; 16] {
    let hi = mix(seed ^ mix(v));
    let lo = mix(hi ^ t);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hi.to_be_bytes());
    id[8..].copy_from_slice(&lo.to_be_bytes());
    id
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// Realistic attribute names and values, cycled to reach `n` attributes.
fn attributes(n: usize, i: u64) -> Vec<KeyValue> {
    const NAMES: [&str; 8] = [
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "url.full",
        "server.address",
        "network.peer.address",
        "user_agent.original",
        "app.request.id",
    ];
    (0..n)
        .map(|a| {
            let name = NAMES[a % NAMES.len()];
            let round = a / NAMES.len();
            let key = if round == 0 {
                name.to_string()
            } else {
                format!("{name}.{round}")
            };
            let value = match a % NAMES.len() {
                0 => text("GET"),
                1 => text("/api/v1/items/{id}"),
                2 => any_value::Value::IntValue(200),
                3 => text(format!(
                    "https://shop.example.com/api/v1/items/{}?ref=home",
                    i % 1000
                )),
                4 => text("shop.example.com"),
                5 => text("10.0.3.17"),
                6 => text("Mozilla/5.0 (X11; Linux x86_64) otlp-loadtest"),
                _ => text(format!("{:016x}", mix(i))),
            };
            kv(&key, value)
        })
        .collect()
}

fn resource(service: usize) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", text(format!("svc-{service}"))),
            kv("service.version", text("1.4.2")),
            kv("deployment.environment", text("production")),
            kv("host.name", text(format!("host-{service}.internal"))),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "otlp-loadtest".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    })
}

/// Which of `parts` groups item `i` of `n` falls in, keeping groups
/// contiguous (the spans of a trace adjacent, as an SDK batch leaves them).
fn group(i: usize, n: usize, parts: usize) -> usize {
    i * parts.max(1) / n.max(1)
}

fn traces(shape: &Shape, v: u64) -> ExportTraceServiceRequest {
    let services = shape.services.max(1);
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); services];
    for i in 0..shape.items {
        let t = group(i, shape.items, shape.traces) as u64;
        let serial = v * shape.items as u64 + i as u64;
        let span = Span {
            trace_id: trace_id(shape.seed, v, t).to_vec(),
            span_id: mix(serial ^ shape.seed).to_be_bytes().to_vec(),
            parent_span_id: mix(serial.wrapping_sub(1) ^ shape.seed)
                .to_be_bytes()
                .to_vec(),
            name: format!("GET /api/v1/items/{}", i % 7),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + serial * 1000,
            end_time_unix_nano: 1_700_000_000_000_500_000 + serial * 1000,
            attributes: attributes(shape.attributes, serial),
            status: Some(Status {
                message: String::new(),
                code: 1,
            }),
            flags: 0x301,
            ..Default::default()
        };
        by_service[t as usize % services].push(span);
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(s, spans)| ResourceSpans {
                resource: resource(s),
                scope_spans: vec![ScopeSpans {
                    scope: scope(),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
            })
            .collect(),
    }
}

/// Cumulative sums and explicit-bucket histograms, 8 streams per metric,
/// alternating; `items` points in all.
fn metrics(shape: &Shape, v: u64) -> ExportMetricsServiceRequest {
    const STREAMS: usize = 8;
    let services = shape.services.max(1);
    let metric_count = shape.items.div_ceil(STREAMS);
    let mut left = shape.items;
    let mut by_service: Vec<Vec<Metric>> = vec![Vec::new(); services];
    for m in 0..metric_count {
        let points = left.min(STREAMS);
        left -= points;
        let attrs = |p: usize| {
            let mut a = attributes(shape.attributes.saturating_sub(1), p as u64);
            a.push(kv("stream", text(format!("v{v}-p{p}"))));
            a
        };
        let start = 1_700_000_000_000_000_000u64;
        let time = start + 10_000_000_000 * (v + 1);
        let data = if m % 2 == 0 {
            metric::Data::Sum(Sum {
                data_points: (0..points)
                    .map(|p| NumberDataPoint {
                        attributes: attrs(p),
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsInt(
                            (v as i64 + 1) * 100 + p as i64,
                        )),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })
        } else {
            metric::Data::Histogram(Histogram {
                data_points: (0..points)
                    .map(|p| HistogramDataPoint {
                        attributes: attrs(p),
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        count: 100 * (v + 1),
                        sum: Some(1234.5 * (v + 1) as f64),
                        bucket_counts: vec![1, 5, 20, 50, 20, 3, 1],
                        explicit_bounds: vec![5.0, 10.0, 25.0, 50.0, 100.0, 250.0],
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })
        };
        by_service[m % services].push(Metric {
            name: format!("http.server.metric_{m}"),
            description: "A server metric.".to_string(),
            unit: if m % 2 == 0 { "1" } else { "ms" }.to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: by_service
            .into_iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(s, metrics)| ResourceMetrics {
                resource: resource(s),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope(),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn logs(shape: &Shape, v: u64) -> ExportLogsServiceRequest {
    let services = shape.services.max(1);
    let mut by_service: Vec<Vec<LogRecord>> = vec![Vec::new(); services];
    for i in 0..shape.items {
        let t = group(i, shape.items, shape.traces) as u64;
        let serial = v * shape.items as u64 + i as u64;
        by_service[t as usize % services].push(LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + serial * 1000,
            observed_time_unix_nano: 1_700_000_000_000_000_500 + serial * 1000,
            severity_number: 9,
            severity_text: "INFO".to_string(),
            body: Some(AnyValue {
                value: Some(text(format!(
                    "request {serial} served in {} ms",
                    serial % 250
                ))),
            }),
            attributes: attributes(shape.attributes, serial),
            trace_id: trace_id(shape.seed, v, t).to_vec(),
            span_id: mix(serial ^ shape.seed).to_be_bytes().to_vec(),
            ..Default::default()
        });
    }
    ExportLogsServiceRequest {
        resource_logs: by_service
            .into_iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(s, log_records)| ResourceLogs {
                resource: resource(s),
                scope_logs: vec![ScopeLogs {
                    scope: scope(),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(signal: Signal, items: usize) -> Shape {
        Shape {
            signal,
            items,
            traces: 100,
            attributes: 6,
            services: 4,
            variants: 3,
            seed: 7,
        }
    }

    #[test]
    fn every_request_holds_exactly_the_items_asked_for() {
        for signal in Signal::ALL {
            for items in [1, 7, 512] {
                for e in build(&shape(signal, items)) {
                    let counted = otlp_lb::wire::count_items(signal, &e.body).unwrap();
                    assert_eq!(counted, items as u64, "{signal} {items}");
                    assert_eq!(e.items, items as u64);
                }
            }
        }
    }

    #[test]
    fn traces_request_has_the_asked_number_of_distinct_traces() {
        let built = build(&shape(Signal::Traces, 512));
        let req = ExportTraceServiceRequest::decode(built[0].body.clone()).unwrap();
        let mut ids: Vec<Vec<u8>> = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.trace_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn variants_do_not_share_trace_ids() {
        let a = trace_id(1, 0, 5);
        let b = trace_id(1, 1, 5);
        assert_ne!(a, b);
        assert_eq!(a, trace_id(1, 0, 5));
    }
}
