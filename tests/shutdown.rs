//! Shutdown order: on stop, health turns 503 first and the receivers keep
//! taking new connections and requests for the health check's
//! `drain_delay`; only then do the ports close.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use otlp_lb::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use support::{requests, sink::Sink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_goes_down_before_the_port_closes() {
    let sink = Sink::start().await;
    let proxy = support::start(&format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }} }}
exporters:
  load_balancing:
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver: {{ static: {{ hostnames: ["{}"] }} }}
extensions:
  health_check: {{ endpoint: "127.0.0.1:0", drain_delay: 1500ms }}
service:
  extensions: [health_check]
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [load_balancing] }}
"#,
        sink.addr
    ))
    .await;
    let grpc = proxy.grpc["otlp"];
    let health = proxy.health.unwrap();
    assert_eq!(support::http_get(health, "/").await.0, 200);

    let stopping = tokio::spawn(proxy.stop());
    let mut saw_503 = false;
    for _ in 0..100 {
        if support::http_get(health, "/").await.0 == 503 {
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_503, "health turns 503 as soon as shutdown starts");

    // While health is 503, a new client still connects and is served.
    let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("the port is still open while draining");
    let request = requests::traces(11, 5, 3, 15).remove(0);
    client.export(request).await.expect("served while draining");
    assert_eq!(sink.snapshot().spans.len(), 15);

    stopping.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_err(),
        "the port is closed once shutdown has finished"
    );
}
