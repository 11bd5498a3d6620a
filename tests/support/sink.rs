//! An OTLP/gRPC sink that decodes every request with prost and records what
//! it got, so tests can check exact delivery and affinity.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use otlp_lb::proto::collector::{
    logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
        logs_service_server::{LogsService, LogsServiceServer},
    },
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use tonic::{Request, Response, Status, codec::CompressionEncoding};

/// What one sink received.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// (trace id, span id) of every span.
    pub spans: Vec<(Vec<u8>, Vec<u8>)>,
    /// (metric name, data point attribute text) of every number data point.
    pub points: Vec<(String, String)>,
    /// Every sum and histogram point: (metric, attributes text, value or
    /// histogram count, start time, time, temporality).
    pub values: Vec<(String, String, f64, u64, u64, i32)>,
    /// (trace id, body text) of every log record.
    pub logs: Vec<(Vec<u8>, String)>,
    /// Requests per signal.
    pub requests: [u64; 3],
    /// Every accepted trace export call: its request metadata and its
    /// (trace id, span id)s, so tests can tell which headers went with
    /// which spans.
    pub trace_calls: Vec<TraceCall>,
}

/// One accepted trace export call.
#[derive(Debug, Clone)]
pub struct TraceCall {
    /// The call's gRPC metadata.
    pub metadata: tonic::metadata::MetadataMap,
    /// (trace id, span id) of every span in it.
    pub spans: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TraceCall {
    /// Every value of `key` the call carried.
    pub fn values(&self, key: &str) -> Vec<String> {
        self.metadata
            .get_all(key)
            .iter()
            .map(|v| v.to_str().unwrap_or("<not ascii>").to_string())
            .collect()
    }
}

/// A running sink.
#[derive(Clone)]
pub struct Sink {
    /// Its address.
    pub addr: SocketAddr,
    /// What it received.
    pub received: Arc<Mutex<Received>>,
    /// Calls to fail with UNAVAILABLE before accepting again.
    pub fail_next: Arc<AtomicU32>,
    shutdown: Arc<tokio::sync::Notify>,
}

#[derive(Clone)]
struct Svc(Sink);

impl Sink {
    /// Starts a sink on 127.0.0.1 at a free port.
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Sink::serve(listener).await
    }

    /// Serves on `listener`.
    pub async fn serve(listener: tokio::net::TcpListener) -> Sink {
        let sink = Sink {
            addr: listener.local_addr().expect("addr"),
            received: Arc::default(),
            fail_next: Arc::default(),
            shutdown: Arc::default(),
        };
        let svc = Svc(sink.clone());
        let stop = sink.shutdown.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(svc.clone())
                        .accept_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Zstd)
                        .max_decoding_message_size(64 << 20),
                )
                .add_service(
                    MetricsServiceServer::new(svc.clone())
                        .accept_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Zstd),
                )
                .add_service(
                    LogsServiceServer::new(svc)
                        .accept_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Zstd),
                )
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async move { stop.notified().await },
                )
                .await
                .ok();
        });
        sink
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.shutdown.notify_waiters();
    }

    /// A copy of what arrived so far.
    pub fn snapshot(&self) -> Received {
        self.received.lock().expect("lock").clone()
    }

    fn should_fail(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Renders attributes as `k=v,` text for stream identity in tests.
pub fn attrs_text(attrs: &[otlp_lb::proto::common::v1::KeyValue]) -> String {
    attrs
        .iter()
        .map(|kv| {
            format!(
                "{}={:?},",
                kv.key,
                kv.value.as_ref().and_then(|v| v.value.as_ref())
            )
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        if self.0.should_fail() {
            return Err(Status::unavailable("sink told to fail"));
        }
        let mut r = self.0.received.lock().expect("lock");
        r.requests[0] += 1;
        let mut call = TraceCall {
            metadata: request.metadata().clone(),
            spans: Vec::new(),
        };
        for rs in &request.get_ref().resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    call.spans
                        .push((span.trace_id.clone(), span.span_id.clone()));
                }
            }
        }
        r.spans.extend(call.spans.iter().cloned());
        r.trace_calls.push(call);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Svc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        use otlp_lb::proto::metrics::v1::metric::Data;
        if self.0.should_fail() {
            return Err(Status::unavailable("sink told to fail"));
        }
        let mut r = self.0.received.lock().expect("lock");
        r.requests[1] += 1;
        for rm in &request.get_ref().resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    match &m.data {
                        Some(Data::Sum(s)) => {
                            for p in &s.data_points {
                                use otlp_lb::proto::metrics::v1::number_data_point::Value;
                                let v = match p.value {
                                    Some(Value::AsInt(i)) => i as f64,
                                    Some(Value::AsDouble(d)) => d,
                                    None => f64::NAN,
                                };
                                let attrs = attrs_text(&p.attributes);
                                let t = s.aggregation_temporality;
                                r.values.push((
                                    m.name.clone(),
                                    attrs,
                                    v,
                                    p.start_time_unix_nano,
                                    p.time_unix_nano,
                                    t,
                                ));
                            }
                        }
                        Some(Data::Histogram(h)) => {
                            for p in &h.data_points {
                                let attrs = attrs_text(&p.attributes);
                                let t = h.aggregation_temporality;
                                r.values.push((
                                    m.name.clone(),
                                    attrs,
                                    p.count as f64,
                                    p.start_time_unix_nano,
                                    p.time_unix_nano,
                                    t,
                                ));
                            }
                        }
                        _ => {}
                    }
                    let points: Vec<String> = match &m.data {
                        Some(Data::Sum(s)) => s
                            .data_points
                            .iter()
                            .map(|p| attrs_text(&p.attributes))
                            .collect(),
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter()
                            .map(|p| attrs_text(&p.attributes))
                            .collect(),
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| attrs_text(&p.attributes))
                            .collect(),
                        Some(Data::ExponentialHistogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| attrs_text(&p.attributes))
                            .collect(),
                        Some(Data::Summary(s)) => s
                            .data_points
                            .iter()
                            .map(|p| attrs_text(&p.attributes))
                            .collect(),
                        None => Vec::new(),
                    };
                    for p in points {
                        r.points.push((m.name.clone(), p));
                    }
                }
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Svc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        if self.0.should_fail() {
            return Err(Status::unavailable("sink told to fail"));
        }
        let mut r = self.0.received.lock().expect("lock");
        r.requests[2] += 1;
        for rl in &request.get_ref().resource_logs {
            for sl in &rl.scope_logs {
                for rec in &sl.log_records {
                    let body = format!("{:?}", rec.body.as_ref().and_then(|b| b.value.as_ref()));
                    r.logs.push((rec.trace_id.clone(), body));
                }
            }
        }
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}
