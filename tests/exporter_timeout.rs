//! The exporter's `timeout` bounds one attempt of a request's whole
//! delivery, and `retry_on_failure.max_elapsed_time` bounds the attempts
//! together, as in the collector's exporter helper; the per-call
//! `protocol.otlp.timeout` does not stretch them.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use otlp_lb::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use support::requests;

/// A backend that accepts connections and never answers.
async fn stalled_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backend_answers_the_client_after_the_retry_budget_not_its_deadline() {
    let backend = stalled_backend().await;
    let proxy = support::start(&format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }} }}
exporters:
  load_balancing:
    timeout: 1s
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none, timeout: 20s }} }}
    retry_on_failure:
      enabled: true
      initial_interval: 500ms
      max_interval: 500ms
      randomization_factor: 0
      max_elapsed_time: 3200ms
    resolver: {{ static: {{ hostnames: ["{backend}"] }} }}
service:
  telemetry: {{ metrics: {{ address: "127.0.0.1:0" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [load_balancing] }}
"#
    ))
    .await;
    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    let mut request = tonic::Request::new(requests::traces(3, 4, 2, 8).remove(0));
    request.set_timeout(Duration::from_secs(30));
    let started = Instant::now();
    let status = client.export(request).await.unwrap_err();
    let waited = started.elapsed();

    // Attempts start at 0 s, 1.5 s and 3 s (1 s each, 0.5 s apart); a
    // fourth would start past the 3.2 s budget. Without the exporter's
    // timeout the first attempt alone would run 20 s, and the client would
    // wait for its whole 30 s deadline.
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let text = proxy.telemetry.render();
    let failed = support::metric_value(
        &text,
        "otelcol_loadbalancer_backend_outcome_total",
        &[("exporter", "load_balancing"), ("success", "false")],
    );
    assert_eq!(failed, 3.0, "three attempts, each cut at 1 s\n{text}");
    assert!(
        waited < Duration::from_secs(15),
        "the client waited {waited:?}, near its own deadline"
    );
    println!("answered UNAVAILABLE after {waited:?} (3 attempts)");
}
