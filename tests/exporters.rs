//! The second tier's exporters (`otlp`, `otlphttp`, `debug`) and the
//! sending queue, end to end.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::atomic::Ordering, time::Duration};

use otlp_lb::{
    proto::collector::trace::v1::trace_service_client::TraceServiceClient, signal::Signal,
};
use support::{requests, sink::Sink};

fn spans_in(reqs: &[otlp_lb::proto::collector::trace::v1::ExportTraceServiceRequest]) -> usize {
    reqs.iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_delivers_every_span_with_gzip() {
    let sink = Sink::start().await;
    let proxy = support::start(&format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }} }}
exporters:
  otlp: {{ endpoint: "{}", tls: {{ insecure: true }}, compression: gzip }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines: {{ traces: {{ receivers: [otlp], exporters: [otlp] }} }}
"#,
        sink.addr
    ))
    .await;
    let reqs = requests::traces(21, 100, 5, 40);
    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    for r in &reqs {
        client.export(r.clone()).await.unwrap();
    }
    // The default sending queue acks on enqueue; stopping drains it.
    proxy.stop().await.unwrap();
    let got = sink.snapshot();
    assert_eq!(got.spans.len(), spans_in(&reqs));
    assert_eq!(
        got.requests[0] as usize,
        reqs.len(),
        "one backend request per client request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_exporter_delivers_protobuf_and_json() {
    // The receiving end: another service whose OTLP/HTTP receiver feeds a debug exporter.
    let back = support::start(
        r#"
receivers: { otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } } }
exporters: { debug: { verbosity: basic } }
service:
  telemetry: { metrics: { level: none } }
  pipelines: { traces: { receivers: [otlp], exporters: [debug] } }
"#,
    )
    .await;
    let url = format!("http://{}", back.http["otlp"]);
    let front = support::start(&format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }} }}
exporters:
  otlphttp/proto: {{ endpoint: "{url}", compression: gzip }}
  otlphttp/json: {{ traces_endpoint: "{url}/v1/traces", encoding: json, compression: zstd }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines: {{ traces: {{ receivers: [otlp], exporters: [otlphttp/proto, otlphttp/json] }} }}
"#
    ))
    .await;
    let reqs = requests::traces(22, 50, 4, 25);
    let mut client = TraceServiceClient::connect(format!("http://{}", front.grpc["otlp"]))
        .await
        .unwrap();
    for r in &reqs {
        let response = client.export(r.clone()).await.unwrap().into_inner();
        assert_eq!(response.partial_success, None);
    }
    // The exporters have sending queues (on by default, as in the
    // collector), so the ack means "queued"; stopping drains them.
    front.stop().await.unwrap();
    // Fan-out to both exporters: every span arrives twice, once per encoding.
    assert_eq!(
        back.debug["debug"].items(Signal::Traces) as usize,
        2 * spans_in(&reqs)
    );
    back.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_queue_acks_early_retries_and_drains_on_shutdown() {
    let sink = Sink::start().await;
    sink.fail_next.store(5, Ordering::SeqCst);
    let proxy = support::start(&format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }} }}
exporters:
  otlp:
    endpoint: "{}"
    tls: {{ insecure: true }}
    compression: none
    retry_on_failure: {{ enabled: true, initial_interval: 20ms, max_interval: 50ms, max_elapsed_time: 10s }}
    sending_queue: {{ enabled: true, num_consumers: 2, queue_size: 100 }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines: {{ traces: {{ receivers: [otlp], exporters: [otlp] }} }}
"#,
        sink.addr
    ))
    .await;
    let reqs = requests::traces(23, 40, 3, 12);
    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    for r in &reqs {
        client.export(r.clone()).await.unwrap();
    }
    // Acked while the backend still refuses: the queue holds the data.
    assert!(sink.snapshot().spans.len() < spans_in(&reqs));
    // Shutdown waits for the queue to drain through the retries.
    tokio::time::timeout(Duration::from_secs(20), proxy.stop())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sink.snapshot().spans.len(), spans_in(&reqs));
}
