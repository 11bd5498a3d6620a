//! The first tier end to end: three prost-decoding sinks behind the proxy,
//! traffic over gRPC, HTTP/protobuf and HTTP/JSON, exact delivery and
//! affinity checked item by item.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use otlp_lb::{
    proto::collector::{
        logs::v1::logs_service_client::LogsServiceClient,
        metrics::v1::metrics_service_client::MetricsServiceClient,
        trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    },
    receiver::json,
    routing::{Ring, ring::DEFAULT_VNODES},
    signal::Signal,
};
use prost::Message;
use support::{requests, sink::Sink};

async fn sinks(n: usize) -> Vec<Sink> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Sink::start().await);
    }
    out
}

/// For each sink, the trace ids it received; asserts no span twice.
fn check_spans_once(sinks: &[Sink], expected: usize) -> Vec<BTreeSet<Vec<u8>>> {
    let mut seen = BTreeSet::new();
    let mut per_sink = Vec::new();
    for s in sinks {
        let got = s.snapshot();
        let mut traces = BTreeSet::new();
        for (trace, span) in got.spans {
            assert!(seen.insert((trace.clone(), span)), "a span arrived twice");
            traces.insert(trace);
        }
        per_sink.push(traces);
    }
    assert_eq!(seen.len(), expected, "every span arrives exactly once");
    for (i, a) in per_sink.iter().enumerate() {
        for b in &per_sink[i + 1..] {
            assert!(a.is_disjoint(b), "a trace was split across backends");
        }
    }
    per_sink
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_over_grpc_http_and_json_keep_trace_affinity() {
    let sinks = sinks(3).await;
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&support::first_tier(&addrs, "")).await;
    let grpc = proxy.grpc["otlp"];
    let http = proxy.http["otlp"];

    // 2000 traces of 6 spans, spread over 240 requests of 50 spans.
    let requests = requests::traces(7, 2000, 6, 50);
    let total: usize = 2000 * 6;
    let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    for (i, req) in requests.iter().enumerate() {
        match i % 4 {
            0 | 1 => {
                client.export(req.clone()).await.unwrap();
            }
            2 => {
                let (status, ct, body) = support::http_post(
                    http,
                    "/v1/traces",
                    &[("Content-Type", "application/x-protobuf")],
                    &req.encode_to_vec(),
                    i % 8 == 2, // some chunked, without Content-Length
                )
                .await;
                assert_eq!(
                    (status, ct.as_str()),
                    (200, "application/x-protobuf"),
                    "{body:?}"
                );
            }
            _ => {
                let body = json::to_json(Signal::Traces, &req.encode_to_vec())
                    .unwrap()
                    .to_string();
                let (status, ct, body) = support::http_post(
                    http,
                    "/v1/traces",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                    false,
                )
                .await;
                assert_eq!((status, ct.as_str()), (200, "application/json"));
                assert_eq!(body, b"{}");
            }
        }
    }

    let per_sink = check_spans_once(&sinks, total);
    // Every trace is at the backend the ring assigns it.
    let ring = Ring::new(addrs.iter().map(|a| a.to_string()), DEFAULT_VNODES);
    for (sink, traces) in sinks.iter().zip(&per_sink) {
        assert!(!traces.is_empty(), "each backend gets a share");
        for t in traces {
            assert_eq!(**ring.owner(t).unwrap(), *sink.addr.to_string());
        }
    }

    let text = support::http_get(proxy.metrics.unwrap(), "/metrics")
        .await
        .1;
    let total = total as f64;
    assert_eq!(
        support::metric_value(&text, "otelcol_receiver_accepted_spans_total", &[]),
        total
    );
    assert_eq!(
        support::metric_value(
            &text,
            "otelcol_exporter_sent_spans_total",
            &[("exporter", "loadbalancing/traces")]
        ),
        total
    );
    assert_eq!(
        support::metric_value(&text, "otelcol_receiver_refused_spans_total", &[]),
        0.0
    );
    assert_eq!(
        support::metric_value(
            &text,
            "otelcol_loadbalancer_num_backends",
            &[("exporter", "loadbalancing/traces"), ("resolver", "static")]
        ),
        3.0
    );
    assert!(text.contains("otelcol_loadbalancer_backend_latency_bucket"));
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_streams_stay_on_one_backend() {
    let sinks = sinks(3).await;
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&support::first_tier(&addrs, "")).await;
    let mut client = MetricsServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    let requests = requests::metrics(3, 8, 20, 30);
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    for req in &requests {
        for rm in &req.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    if let Some(otlp_lb::proto::metrics::v1::metric::Data::Sum(s)) = &m.data {
                        for p in &s.data_points {
                            *expected
                                .entry((m.name.clone(), support::sink::attrs_text(&p.attributes)))
                                .or_default() += 1;
                        }
                    }
                }
            }
        }
        client.export(req.clone()).await.unwrap();
    }
    let mut owner: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, s) in sinks.iter().enumerate() {
        for stream in s.snapshot().points {
            if let Some(prev) = owner.insert(stream.clone(), i) {
                assert_eq!(prev, i, "stream {stream:?} reached two backends");
            }
            *got.entry(stream).or_default() += 1;
        }
    }
    assert_eq!(got, expected, "every data point arrives exactly once");
    let used: BTreeSet<usize> = owner.values().copied().collect();
    assert_eq!(used.len(), 3, "streams spread over all backends");
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_their_trace_and_none_are_lost() {
    let sinks = sinks(3).await;
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&support::first_tier(&addrs, "")).await;
    let mut client = LogsServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    for req in requests::logs(5, 40, 30) {
        client.export(req).await.unwrap();
    }
    let mut bodies = BTreeSet::new();
    let mut trace_home: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut keyless_per_sink = [0usize; 3];
    for (i, s) in sinks.iter().enumerate() {
        for (trace, body) in s.snapshot().logs {
            assert!(bodies.insert(body), "a log record arrived twice");
            if trace.is_empty() {
                keyless_per_sink[i] += 1;
            } else if let Some(prev) = trace_home.insert(trace, i) {
                assert_eq!(prev, i, "records of one trace reached two backends");
            }
        }
    }
    assert_eq!(bodies.len(), 40 * 30);
    assert!(
        keyless_per_sink.iter().all(|&n| n > 0),
        "records without trace id spread: {keyless_per_sink:?}"
    );
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_reason_and_good_neighbours_pass() {
    let sinks = sinks(2).await;
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&support::first_tier(&addrs, "")).await;
    let http = proxy.http["otlp"];

    // Truncated protobuf: 400 with a google.rpc.Status naming the problem.
    let good = requests::traces(1, 10, 3, 30).remove(0).encode_to_vec();
    let (status, _, body) = support::http_post(
        http,
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &good[..good.len() - 3],
        false,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("malformed traces request"),
        "{body:?}"
    );

    // Wrong content type, bad JSON, unsupported encoding, too large.
    let post = |ct: &'static str, extra: Vec<(&'static str, &'static str)>, body: Vec<u8>| async move {
        let mut headers = vec![("Content-Type", ct)];
        headers.extend(extra);
        support::http_post(http, "/v1/traces", &headers, &body, false)
            .await
            .0
    };
    assert_eq!(post("text/plain", vec![], good.clone()).await, 415);
    assert_eq!(
        post("application/json", vec![], b"{nope".to_vec()).await,
        400
    );
    assert_eq!(
        post(
            "application/x-protobuf",
            vec![("Content-Encoding", "br")],
            good.clone()
        )
        .await,
        415
    );
    assert_eq!(
        post(
            "application/x-protobuf",
            vec![("Content-Encoding", "gzip")],
            good.clone()
        )
        .await,
        400
    );

    // Over gRPC: INVALID_ARGUMENT with the scanner's message.
    let grpc = proxy.grpc["otlp"];
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let err = raw
        .unary(
            tonic::Request::new(bytes::Bytes::from(good[..good.len() - 3].to_vec())),
            http::uri::PathAndQuery::from_static(Signal::Traces.grpc_path()),
            otlp_lb::codec::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("malformed traces request"),
        "{}",
        err.message()
    );

    // A span with a 3-byte trace id is rejected alone; its neighbours arrive.
    let mut req: ExportTraceServiceRequest = requests::traces(2, 20, 2, 40).remove(0);
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1, 2, 3];
    let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let response = client.export(req).await.unwrap().into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id"),
        "{}",
        partial.error_message
    );
    check_spans_once(&sinks, 39);
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_is_retried_alone_so_nothing_is_duplicated() {
    let sinks = sinks(3).await;
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&support::first_tier(&addrs, "")).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    let requests = requests::traces(11, 300, 4, 100);
    for (i, req) in requests.iter().enumerate() {
        // One backend refuses its part of every third request once.
        if i % 3 == 0 {
            sinks[i % 2]
                .fail_next
                .store(1, std::sync::atomic::Ordering::SeqCst);
        }
        client.export(req.clone()).await.unwrap();
    }
    check_spans_once(&sinks, 1200);
    let text = support::http_get(proxy.metrics.unwrap(), "/metrics")
        .await
        .1;
    assert!(
        support::metric_value(
            &text,
            "otelcol_loadbalancer_backend_outcome_total",
            &[("success", "false")]
        ) >= 1.0
    );
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_ready_and_metrics_pass_promtool() {
    let sinks = sinks(1).await;
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let mut yaml = support::first_tier(&addrs, "");
    yaml = yaml.replace(
        "service:\n",
        "extensions:\n  health_check: { endpoint: \"127.0.0.1:0\" }\nservice:\n  extensions: [health_check]\n",
    );
    let proxy = support::start(&yaml).await;
    let (status, body) = support::http_get(proxy.health.unwrap(), "/").await;
    assert_eq!(status, 200, "{body}");
    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    client
        .export(requests::traces(3, 5, 2, 10).remove(0))
        .await
        .unwrap();
    let text = support::http_get(proxy.metrics.unwrap(), "/metrics")
        .await
        .1;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("promtool")
        .arg("check")
        .arg("metrics")
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool is installed (.ci/run installs the prometheus package)");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    proxy.stop().await.unwrap();
}
