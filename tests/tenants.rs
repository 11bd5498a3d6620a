//! Tenants and authentication end to end: the client's `X-Scope-OrgID`
//! kept by receivers with `include_metadata`, set on every backend call by
//! `headers_setter`, never mixing two tenants in one call (also through a
//! sending queue and retries); the `otlphttp` exporter sending it; the
//! receivers' `bearertokenauth`; and configured credentials never reaching
//! the logs.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock, atomic::Ordering},
    time::Duration,
};

use otlp_lb::{
    config::Config,
    exporter::ClientSettings,
    proto::collector::trace::v1::{
        ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
    },
    routing::{Ring, ring::DEFAULT_VNODES},
    signal::Signal,
};
use prost::Message;
use support::{requests, sink::Sink};
use tonic::Code;

/// (trace id, span id).
type SpanKey = (Vec<u8>, Vec<u8>);

const TENANT_HEADER: &str = "x-scope-orgid";

/// A header every client sends that no `from_context` names.
const OTHER_HEADER: &str = "x-client-only";

/// The tenants that send, and what each sends as its header (`None`: no
/// header, so `headers_setter`'s `default_value` applies).
const TENANTS: [(&str, Option<&str>); 3] = [
    ("tenant-a", Some("tenant-a")),
    ("tenant-b", Some("tenant-b")),
    ("anonymous", None),
];

/// A first tier keeping `x-scope-orgid` and setting it on backend calls.
fn first_tier(backends: &[SocketAddr], compression: &str, extra: &str) -> String {
    let hostnames: Vec<String> = backends.iter().map(|a| a.to_string()).collect();
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0", include_metadata: true }}
      http: {{ endpoint: "127.0.0.1:0", include_metadata: true }}
extensions:
  headers_setter:
    headers:
      - {{ key: X-Scope-OrgID, from_context: X-Scope-OrgID, default_value: anonymous }}
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{ insecure: true }}
        compression: {compression}
        auth: {{ authenticator: headers_setter }}
    retry_on_failure: {{ enabled: true, initial_interval: 10ms, max_interval: 50ms, max_elapsed_time: 10s }}
{extra}
    resolver:
      static: {{ hostnames: [{}] }}
service:
  extensions: [headers_setter]
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing] }}
"#,
        hostnames.join(", ")
    )
}

/// Every tenant's requests: the same traces for each (so their spans go
/// to the same backends), with span ids made distinct per tenant.
fn tenant_requests() -> Vec<Vec<ExportTraceServiceRequest>> {
    (0..TENANTS.len())
        .map(|t| {
            let mut reqs = requests::traces(41, 150, 4, 30);
            for r in &mut reqs {
                for rs in &mut r.resource_spans {
                    for ss in &mut rs.scope_spans {
                        for span in &mut ss.spans {
                            span.span_id[0] = t as u8 + 1;
                        }
                    }
                }
            }
            reqs
        })
        .collect()
}

fn spans_of(reqs: &[ExportTraceServiceRequest]) -> impl Iterator<Item = SpanKey> + '_ {
    reqs.iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
}

/// Sends every tenant's requests at once, interleaved, alternating gRPC
/// and OTLP/HTTP; returns the tenant of every span.
async fn send_interleaved(grpc: SocketAddr, http: SocketAddr) -> BTreeMap<SpanKey, String> {
    let all = tenant_requests();
    let mut expected = BTreeMap::new();
    let mut senders = Vec::new();
    for ((tenant, header), reqs) in TENANTS.into_iter().zip(all) {
        for span in spans_of(&reqs) {
            expected.insert(span, tenant.to_string());
        }
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            for (i, r) in reqs.into_iter().enumerate() {
                if i % 2 == 0 {
                    let mut request = tonic::Request::new(r);
                    // Not named by any from_context: must not travel.
                    request
                        .metadata_mut()
                        .insert(OTHER_HEADER, "client-only".parse().unwrap());
                    if let Some(h) = header {
                        request
                            .metadata_mut()
                            .insert(TENANT_HEADER, h.parse().unwrap());
                    }
                    client.export(request).await.unwrap();
                } else {
                    let mut headers = vec![
                        ("Content-Type", "application/x-protobuf"),
                        (OTHER_HEADER, "client-only"),
                    ];
                    if let Some(h) = header {
                        headers.push(("X-Scope-OrgID", h));
                    }
                    let (status, _, body) =
                        support::http_post(http, "/v1/traces", &headers, &r.encode_to_vec(), false)
                            .await;
                    assert_eq!(status, 200, "{body:?}");
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    expected
}

/// Every span arrived once, at its ring owner, in a call that carried
/// exactly one tenant: the span's. Every backend got calls of every tenant.
fn check_tenants(sinks: &[Sink], expected: &BTreeMap<SpanKey, String>) {
    let ring = Ring::new(sinks.iter().map(|s| s.addr.to_string()), DEFAULT_VNODES);
    let mut seen = BTreeSet::new();
    for sink in sinks {
        let mut tenants_here = BTreeSet::new();
        for call in sink.snapshot().trace_calls {
            let tenants = call.values(TENANT_HEADER);
            assert_eq!(tenants.len(), 1, "a call carries one tenant: {tenants:?}");
            assert!(
                call.values(OTHER_HEADER).is_empty(),
                "a client header no from_context names was forwarded"
            );
            let tenant = &tenants[0];
            for span in &call.spans {
                assert_eq!(
                    &expected[span], tenant,
                    "a span went out under another tenant's header"
                );
                assert_eq!(
                    **ring.owner(&span.0).unwrap(),
                    *sink.addr.to_string(),
                    "a span left its ring owner"
                );
                assert!(seen.insert(span.clone()), "a span arrived twice");
            }
            tenants_here.insert(tenant.clone());
        }
        assert_eq!(
            tenants_here.len(),
            TENANTS.len(),
            "every backend serves every tenant, so a mix-up could show"
        );
    }
    assert_eq!(seen.len(), expected.len(), "every span arrived");
}

async fn sinks(n: usize) -> Vec<Sink> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Sink::start().await);
    }
    out
}

async fn tenants_case(compression: &str, extra: &str, fail_first: u32) {
    let sinks = sinks(3).await;
    for s in &sinks {
        s.fail_next.store(fail_first, Ordering::SeqCst);
    }
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&first_tier(&addrs, compression, extra)).await;
    let expected = send_interleaved(proxy.grpc["otlp"], proxy.http["otlp"]).await;
    // With a queue the ack means "queued": stopping drains it.
    proxy.stop().await.unwrap();
    for s in &sinks {
        assert_eq!(
            s.fail_next.load(Ordering::SeqCst),
            0,
            "the failures happened"
        );
    }
    check_tenants(&sinks, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_share_a_backend_call() {
    tenants_case("none", "", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_share_a_backend_call_through_a_sending_queue() {
    tenants_case(
        "gzip",
        "    sending_queue: { enabled: true, num_consumers: 4, queue_size: 1000 }",
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_share_a_backend_call_when_parts_are_retried() {
    tenants_case("zstd", "", 4).await;
}

/// Per OTLP/HTTP POST: its `x-scope-orgid` values and its spans.
type HttpCalls = Arc<Mutex<Vec<(Vec<String>, Vec<SpanKey>)>>>;

/// Records the `x-scope-orgid` and the spans of every OTLP/HTTP POST.
async fn http_recorder() -> (SocketAddr, HttpCalls) {
    use axum::{Router, http::HeaderMap, routing::post};
    let calls: HttpCalls = Arc::default();
    let recorded = calls.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: bytes::Bytes| {
            let recorded = recorded.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let tenants = headers
                    .get_all(TENANT_HEADER)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect();
                let spans = spans_of(std::slice::from_ref(&request)).collect();
                recorded.lock().unwrap().push((tenants, spans));
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (addr, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_exporter_sends_the_tenant_header() {
    let (addr, calls) = http_recorder().await;
    let proxy = support::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0", include_metadata: true }}
      http: {{ endpoint: "127.0.0.1:0", include_metadata: true }}
extensions:
  headers_setter:
    headers: [{{ key: X-Scope-OrgID, from_context: x-scope-orgid, default_value: anonymous }}]
exporters:
  otlphttp:
    endpoint: "http://{addr}"
    compression: none
    auth: {{ authenticator: headers_setter }}
    sending_queue: {{ enabled: false }}
service:
  extensions: [headers_setter]
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines: {{ traces: {{ receivers: [otlp], exporters: [otlphttp] }} }}
"#
    ))
    .await;
    let expected = send_interleaved(proxy.grpc["otlp"], proxy.http["otlp"]).await;
    proxy.stop().await.unwrap();
    let mut seen = BTreeSet::new();
    let mut tenants_seen = BTreeSet::new();
    for (tenants, spans) in calls.lock().unwrap().iter() {
        assert_eq!(tenants.len(), 1, "one tenant per POST: {tenants:?}");
        for span in spans {
            assert_eq!(&expected[span], &tenants[0]);
            assert!(seen.insert(span.clone()), "a span arrived twice");
        }
        tenants_seen.insert(tenants[0].clone());
    }
    assert_eq!(seen.len(), expected.len());
    assert_eq!(tenants_seen.len(), TENANTS.len());
}

/// A gRPC export with `authorization` set to `credential` (none: no header).
async fn grpc_export(addr: SocketAddr, credential: Option<&str>) -> Result<(), Code> {
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(requests::traces(5, 2, 2, 10).remove(0));
    if let Some(c) = credential {
        request
            .metadata_mut()
            .insert("authorization", c.parse().unwrap());
    }
    client
        .export(request)
        .await
        .map(|_| ())
        .map_err(|s| s.code())
}

/// An OTLP/HTTP export's status with `Authorization: credential`.
async fn http_export(addr: SocketAddr, credential: Option<&str>) -> u16 {
    let body = requests::traces(5, 2, 2, 10).remove(0).encode_to_vec();
    let mut headers = vec![("Content-Type", "application/x-protobuf")];
    if let Some(c) = credential {
        headers.push(("Authorization", c));
    }
    support::http_post(addr, "/v1/traces", &headers, &body, false)
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_auth_over_grpc_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-token\n").unwrap();
    let proxy = support::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0", auth: {{ authenticator: bearertokenauth }} }}
      http: {{ endpoint: "127.0.0.1:0", auth: {{ authenticator: bearertokenauth }} }}
extensions:
  bearertokenauth: {{ filename: "{}" }}
exporters: {{ debug: {{ verbosity: basic }} }}
service:
  extensions: [bearertokenauth]
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines: {{ traces: {{ receivers: [otlp], exporters: [debug] }} }}
"#,
        token_file.display()
    ))
    .await;
    let (grpc, http) = (proxy.grpc["otlp"], proxy.http["otlp"]);
    assert_eq!(grpc_export(grpc, Some("Bearer first-token")).await, Ok(()));
    for wrong in [
        None,
        Some("Bearer first-tokem"),
        Some("first-token"),
        Some("Basic x"),
    ] {
        assert_eq!(
            grpc_export(grpc, wrong).await,
            Err(Code::Unauthenticated),
            "{wrong:?}"
        );
        assert_eq!(http_export(http, wrong).await, 401, "{wrong:?}");
    }
    assert_eq!(http_export(http, Some("Bearer first-token")).await, 200);
    // Only the two accepted requests (4 spans each) reached the pipeline.
    assert_eq!(proxy.debug["debug"].items(Signal::Traces), 8);

    // A rotated token file takes effect without a restart.
    std::fs::write(&token_file, "second-token-longer\n").unwrap();
    let mut rotated = false;
    for _ in 0..100 {
        if http_export(http, Some("Bearer second-token-longer")).await == 200 {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated, "the new token was never accepted");
    assert_eq!(http_export(http, Some("Bearer first-token")).await, 401);
    assert_eq!(
        grpc_export(grpc, Some("Bearer second-token-longer")).await,
        Ok(())
    );
    proxy.stop().await.unwrap();
}

/// Everything every test of this binary logs, at debug level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        struct Writer(Arc<Mutex<Vec<u8>>>);
        impl Write for Writer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .init();
        logs
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_credentials_never_reach_the_logs() {
    let logs = captured_logs();
    let secrets = [
        "static-header-s3cret",
        "setter-value-s3cret",
        "setter-default-s3cret",
        "receiver-token-s3cret",
    ];
    let sinks = sinks(2).await;
    for s in &sinks {
        s.fail_next.store(2, Ordering::SeqCst); // retries log at debug
    }
    let hostnames: Vec<String> = sinks.iter().map(|s| s.addr.to_string()).collect();
    let yaml = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0", include_metadata: true, auth: {{ authenticator: bearertokenauth }} }}
extensions:
  bearertokenauth: {{ token: "{}" }}
  headers_setter:
    headers:
      - {{ key: X-Api-Key, value: "{}" }}
      - {{ key: X-Scope-OrgID, from_context: x-scope-orgid, default_value: "{}" }}
exporters:
  loadbalancing:
    protocol:
      otlp:
        tls: {{ insecure: true }}
        headers: {{ authorization: "Bearer {}" }}
        auth: {{ authenticator: headers_setter }}
    retry_on_failure: {{ enabled: true, initial_interval: 10ms, max_interval: 20ms, max_elapsed_time: 10s }}
    resolver: {{ static: {{ hostnames: [{}] }} }}
service:
  extensions: [bearertokenauth, headers_setter]
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines: {{ traces: {{ receivers: [otlp], exporters: [loadbalancing] }} }}
"#,
        secrets[3],
        secrets[1],
        secrets[2],
        secrets[0],
        hostnames.join(", ")
    );
    let config = Config::from_yaml(&yaml).unwrap();
    // What a developer's debug line would print: the config and the
    // backend settings built from it.
    tracing::debug!("config: {config:?}");
    let Some(otlp_lb::config::exporters::ExporterConfig::LoadBalancing(lb)) =
        config.exporters.values().next()
    else {
        panic!("no loadbalancing exporter");
    };
    let settings = ClientSettings::from_config(&lb.protocol.otlp, None).unwrap();
    tracing::debug!("settings: {settings:?}");
    let proxy = support::start(&yaml).await;
    let grpc = proxy.grpc["otlp"];
    let good = format!("Bearer {}", secrets[3]);
    assert_eq!(grpc_export(grpc, Some(&good)).await, Ok(()));
    assert_eq!(
        grpc_export(grpc, Some("Bearer receiver-token-s3creT")).await,
        Err(Code::Unauthenticated)
    );
    proxy.stop().await.unwrap();
    // The backends got the values: they are sent, only never logged.
    let call = sinks
        .iter()
        .flat_map(|s| s.snapshot().trace_calls)
        .next()
        .unwrap();
    assert_eq!(call.values("x-api-key"), [secrets[1]]);
    assert_eq!(call.values("x-scope-orgid"), [secrets[2]]);
    assert_eq!(
        call.values("authorization"),
        [format!("Bearer {}", secrets[0])]
    );

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        text.contains("retrying"),
        "debug logs were captured:\n{text}"
    );
    assert!(
        text.contains("<redacted>"),
        "the config was logged:\n{text}"
    );
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} is in the logs:\n{text}");
    }
}
