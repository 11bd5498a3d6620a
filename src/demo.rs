//! `otlp-lb demo`: the embedded two-tier deployment of `config/demo.yaml`,
//! optionally with a built-in generator of traces and cumulative metrics
//! from several fake services.

use std::time::Duration;

use prost::Message;

use crate::{
    config::Config,
    proto::{
        collector::{
            metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest,
        },
        common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
        metrics::v1::{
            AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
            metric, number_data_point,
        },
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status::StatusCode},
    },
    service,
    signal::Signal,
};

/// The demo's config, embedded in the binary.
pub const CONFIG: &str = include_str!("../config/demo.yaml");

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(generate: bool) -> anyhow::Result<()> {
    let config = Config::from_yaml(CONFIG).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let running = service::start(config).await?;
    let first_tier = running.grpc.get("otlp").copied();
    let status = running.status.map_or(String::new(), |addr| {
        format!("status page on http://{addr}/; ")
    });
    eprintln!(
        "otlp-lb demo: send OTLP to 127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318; \
         metrics on http://127.0.0.1:8888/metrics; {status}Ctrl-C stops"
    );
    let generator = match (generate, first_tier) {
        (true, Some(addr)) => Some(tokio::spawn(generate_traffic(addr))),
        _ => None,
    };
    service::shutdown_signal().await;
    if let Some(g) = generator {
        g.abort();
    }
    running.stop().await?;
    Ok(())
}

/// Sends a few traces and cumulative counters every second, forever.
async fn generate_traffic(addr: std::net::SocketAddr) {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return;
    };
    let channel = endpoint.connect_lazy();
    let services = ["checkout", "cart", "payment", "shipping", "frontend"];
    // The counters start now, after the agents: cumulativetodelta's
    // `initial_value: auto` then reports their first point as a delta.
    let started = now_nanos();
    let mut seq: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for _ in 0..20 {
            seq += 1;
            let request = demo_trace(seq, services[(seq % 5) as usize]);
            send(&channel, Signal::Traces, request.encode_to_vec()).await;
        }
        send(
            &channel,
            Signal::Metrics,
            demo_metrics(seq, started, &services).encode_to_vec(),
        )
        .await;
    }
}

async fn send(channel: &tonic::transport::Channel, signal: Signal, body: Vec<u8>) {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if grpc.ready().await.is_err() {
        return;
    }
    let path = http::uri::PathAndQuery::from_static(signal.grpc_path());
    if let Err(status) = grpc
        .unary(
            tonic::Request::new(bytes::Bytes::from(body)),
            path,
            crate::codec::RawCodec,
        )
        .await
    {
        tracing::warn!("demo generator: {status}");
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One trace of 3..8 spans; every 20th has an error, every 15th is slow.
fn demo_trace(seq: u64, service: &str) -> ExportTraceServiceRequest {
    let start = now_nanos();
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&start.to_be_bytes());
    trace_id[8..].copy_from_slice(&seq.to_be_bytes());
    let spans = 3 + seq % 6;
    let slow = seq.is_multiple_of(15);
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (seq << 8 | i).to_be_bytes().to_vec(),
            parent_span_id: if i == 0 {
                Vec::new()
            } else {
                (seq << 8).to_be_bytes().to_vec()
            },
            name: if i == 0 {
                format!("GET /{service}")
            } else {
                format!("step-{i}")
            },
            kind: if i == 0 { 2 } else { 1 },
            start_time_unix_nano: start,
            end_time_unix_nano: start + if slow { 1_500_000_000 } else { 20_000_000 },
            status: (seq.is_multiple_of(20) && i == spans - 1).then(|| Status {
                code: StatusCode::Error as i32,
                message: "boom".into(),
            }),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "otlp-lb-demo".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A cumulative request counter per service and route.
fn demo_metrics(seq: u64, started: u64, services: &[&str]) -> ExportMetricsServiceRequest {
    let now = now_nanos();
    ExportMetricsServiceRequest {
        resource_metrics: services
            .iter()
            .map(|service| ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", service)],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "otlp-lb-demo".into(),
                        ..Default::default()
                    }),
                    metrics: vec![Metric {
                        name: "http.server.requests".into(),
                        unit: "1".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: ["/a", "/b"]
                                .iter()
                                .map(|route| NumberDataPoint {
                                    attributes: vec![kv("http.route", route)],
                                    start_time_unix_nano: started,
                                    time_unix_nano: now,
                                    value: Some(number_data_point::Value::AsInt(seq as i64)),
                                    ..Default::default()
                                })
                                .collect(),
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}
