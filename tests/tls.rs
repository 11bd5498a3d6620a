//! Transport security and connection bounds at the edge: TLS and mutual TLS
//! on both receivers, certificate rotation without a restart, handshakes
//! that cannot hold up other clients, the connection cap, HTTP/2 limits,
//! idle and slow-client timeouts, and exporter TLS by name.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use otlp_lb::{
    config::exporters::ClientTlsConfig,
    exporter::tls::client_config,
    proto::collector::trace::v1::{
        ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
    },
};
use prost::Message;
use rustls_pki_types::pem::PemObject;
use support::{
    pki::{self, Ca, Leaf},
    requests,
    sink::Sink,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig as TonicTls, Identity};

/// Bounds every wait in this file.
const LIMIT: Duration = Duration::from_secs(10);

struct Files {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    ca: Ca,
    ca_file: String,
    cert_file: String,
    key_file: String,
    server: Leaf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("otlp-lb test CA");
        let server = ca.issue(&["localhost", "127.0.0.1"], 1);
        let path = dir.path().to_path_buf();
        Files {
            ca_file: pki::write(&path, "ca.pem", &ca.pem),
            cert_file: pki::write(&path, "server.pem", &server.cert),
            key_file: pki::write(&path, "server-key.pem", &server.key),
            dir: path,
            _dir: dir,
            ca,
            server,
        }
    }

    fn ca_der(&self) -> Vec<u8> {
        rustls_pki_types::CertificateDer::pem_slice_iter(self.ca.pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    fn tls_block(&self, extra: &str) -> String {
        format!(
            "{{ cert_file: \"{}\", key_file: \"{}\"{extra} }}",
            self.cert_file, self.key_file
        )
    }

    /// A client config trusting the test CA, optionally with a client
    /// certificate.
    fn client(&self, identity: Option<&Leaf>) -> rustls::ClientConfig {
        let mut tls = ClientTlsConfig {
            ca_file: Some(self.ca_file.clone()),
            ..ClientTlsConfig::default()
        };
        if let Some(leaf) = identity {
            tls.cert_file = Some(pki::write(&self.dir, "client.pem", &leaf.cert));
            tls.key_file = Some(pki::write(&self.dir, "client-key.pem", &leaf.key));
        }
        client_config(&tls, &[b"h2", b"http/1.1"]).unwrap()
    }

    fn tonic(&self, identity: Option<&Leaf>) -> TonicTls {
        let mut tls = TonicTls::new()
            .ca_certificate(Certificate::from_pem(&self.ca.pem))
            .domain_name("localhost");
        if let Some(leaf) = identity {
            tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
        }
        tls
    }
}

/// A proxy with the given receiver blocks, sending traces to `sinks`.
fn proxy_yaml(sinks: &[SocketAddr], grpc: &str, http: &str) -> String {
    let hostnames: Vec<String> = sinks.iter().map(|a| a.to_string()).collect();
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {grpc}
      http: {http}
exporters:
  loadbalancing:
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver: {{ static: {{ hostnames: [{}] }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing] }}
"#,
        hostnames.join(", ")
    )
}

async fn tls_channel(addr: SocketAddr, tls: TonicTls) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(LIMIT)
        .connect()
        .await
}

async fn export(channel: Channel, request: ExportTraceServiceRequest) -> Result<(), tonic::Status> {
    let mut client = TraceServiceClient::new(channel);
    tokio::time::timeout(LIMIT, client.export(request))
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("test limit"))?
        .map(|_| ())
}

/// A TLS connection to `addr` with `config`, and the certificate the
/// server presented.
async fn tls_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>)> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(LIMIT, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))??;
    let cert = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    Ok((stream, cert))
}

/// One keep-alive HTTP/1.1 POST of `body` on `stream`; the status.
async fn post_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    body: &[u8],
) -> u16 {
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    read_status(stream).await
}

/// Reads one HTTP/1.1 response (with Content-Length) and returns its status.
async fn read_status<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if rest.len() >= length {
                return head.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
    }
}

fn spans_once(sinks: &[Sink]) -> usize {
    let mut seen = BTreeSet::new();
    for s in sinks {
        for span in s.snapshot().spans {
            assert!(seen.insert(span), "a span arrived twice");
        }
    }
    seen.len()
}

fn count_spans(requests: &[ExportTraceServiceRequest]) -> usize {
    requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_over_tls_deliver_every_span_once() {
    let files = Files::new();
    let sinks = [Sink::start().await, Sink::start().await];
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let tls = files.tls_block("");
    let proxy = support::start(&proxy_yaml(
        &addrs,
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
    ))
    .await;

    let requests = requests::traces(11, 200, 4, 40);
    let total = count_spans(&requests);
    let channel = tls_channel(proxy.grpc["otlp"], files.tonic(None))
        .await
        .unwrap();
    // HTTP/2 (ALPN) through hyper, and HTTP/1.1 on a raw TLS stream.
    let mut config = files.client(None);
    config.alpn_protocols.clear(); // the connector sets it
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http2()
        .build();
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, Full<Bytes>>(connector);
    let mut http1 = {
        let mut config = files.client(None);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tls_connect(proxy.http["otlp"], config).await.unwrap().0
    };
    for (i, request) in requests.iter().enumerate() {
        match i % 3 {
            0 => export(channel.clone(), request.clone()).await.unwrap(),
            1 => {
                let req = http::Request::post(format!(
                    "https://localhost:{}/v1/traces",
                    proxy.http["otlp"].port()
                ))
                .header("content-type", "application/x-protobuf")
                .body(Full::new(Bytes::from(request.encode_to_vec())))
                .unwrap();
                let response = h2.request(req).await.unwrap();
                assert_eq!(response.version(), http::Version::HTTP_2);
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            }
            _ => assert_eq!(post_on(&mut http1, &request.encode_to_vec()).await, 200),
        }
    }
    assert_eq!(spans_once(&sinks), total, "every span arrives exactly once");
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate_from_the_ca() {
    let files = Files::new();
    let sink = Sink::start().await;
    let tls = files.tls_block(&format!(", client_ca_file: \"{}\"", files.ca_file));
    let proxy = support::start(&proxy_yaml(
        &[sink.addr],
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
    ))
    .await;
    let requests = requests::traces(3, 2, 2, 2);
    let request = requests[0].clone();

    // No client certificate: refused (at the handshake, or on the first
    // call with TLS 1.3, where the server's verdict follows the handshake).
    let refused = match tls_channel(proxy.grpc["otlp"], files.tonic(None)).await {
        Err(_) => true,
        Ok(channel) => export(channel, request.clone()).await.is_err(),
    };
    assert!(refused, "a client without a certificate is refused");

    // A certificate from another CA: refused too.
    let stranger = Ca::new("another CA").issue(&["client"], 7);
    let refused = match tls_channel(proxy.grpc["otlp"], files.tonic(Some(&stranger))).await {
        Err(_) => true,
        Ok(channel) => export(channel, request.clone()).await.is_err(),
    };
    assert!(refused, "a certificate from another CA is refused");

    // Over HTTP: the raw TLS stream is closed with an alert before any answer.
    let mut config = files.client(None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if let Ok((mut stream, _)) = tls_connect(proxy.http["otlp"], config).await {
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(read, Err(_) | Ok(0)),
            "no answer without a certificate"
        );
    }

    // Signed by the CA: accepted, over both protocols.
    let client = files.ca.issue(&["client"], 8);
    let channel = tls_channel(proxy.grpc["otlp"], files.tonic(Some(&client)))
        .await
        .unwrap();
    export(channel, request.clone()).await.unwrap();
    let mut config = files.client(Some(&client));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (mut stream, _) = tls_connect(proxy.http["otlp"], config).await.unwrap();
    assert_eq!(
        post_on(&mut stream, &requests[1].encode_to_vec()).await,
        200
    );
    assert_eq!(spans_once(&[sink]), 4);
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_reaches_new_connections_and_old_ones_keep_working() {
    let files = Files::new();
    let sink = Sink::start().await;
    let tls = files.tls_block(", reload_interval: 100ms");
    let proxy = support::start(&proxy_yaml(
        &[sink.addr],
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
    ))
    .await;
    let requests = requests::traces(5, 3, 1, 1);
    let http1 = || {
        let mut config = files.client(None);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    };

    let (mut before, cert) = tls_connect(proxy.http["otlp"], http1()).await.unwrap();
    assert_eq!(cert, files.server.der, "the first certificate");
    let channel = tls_channel(proxy.grpc["otlp"], files.tonic(None))
        .await
        .unwrap();
    export(channel.clone(), requests[0].clone()).await.unwrap();

    let rotated = files.ca.issue(&["localhost", "127.0.0.1"], 2);
    pki::write(&files.dir, "server-key.pem", &rotated.key);
    pki::write(&files.dir, "server.pem", &rotated.cert);
    // A reload reads both files; until the pair is consistent again, the
    // previous certificate stays. One interval, and then some.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = tls_connect(proxy.http["otlp"], http1()).await.unwrap().1;
        if seen == rotated.der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, rotated.der,
        "a new connection gets the new certificate"
    );
    let grpc_cert = {
        let mut config = files.client(None);
        config.alpn_protocols = vec![b"h2".to_vec()];
        tls_connect(proxy.grpc["otlp"], config).await.unwrap().1
    };
    assert_eq!(grpc_cert, rotated.der, "on gRPC too");

    // Connections made before the rotation keep working.
    assert_eq!(
        post_on(&mut before, &requests[1].encode_to_vec()).await,
        200
    );
    export(channel, requests[2].clone()).await.unwrap();
    assert_eq!(spans_once(&[sink]), 3);
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_failed_handshakes_do_not_hold_up_other_clients() {
    let files = Files::new();
    let sink = Sink::start().await;
    let tls = files.tls_block("");
    let proxy = support::start(&proxy_yaml(
        &[sink.addr],
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
        "{ endpoint: \"127.0.0.1:0\" }",
    ))
    .await;
    let addr = proxy.grpc["otlp"];
    // Ten clients that open TCP and never say hello, and one that speaks
    // plain HTTP/2 to a TLS port.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let request = requests::traces(9, 1, 3, 10).remove(0);
    let channel = tls_channel(addr, files.tonic(None)).await.unwrap();
    export(channel, request).await.unwrap();
    assert_eq!(spans_once(&[sink]), 3);
    drop(silent);
    proxy.stop().await.unwrap();
}

fn plain_proxy(sink: SocketAddr, grpc: &str, http: &str) -> String {
    proxy_yaml(
        &[sink],
        &format!("{{ endpoint: \"127.0.0.1:0\"{grpc} }}"),
        &format!("{{ endpoint: \"127.0.0.1:0\"{http} }}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_new_connections_until_one_closes() {
    let sink = Sink::start().await;
    let proxy = support::start(&plain_proxy(sink.addr, "", ", otlp_lb_max_connections: 1")).await;
    let addr = proxy.http["otlp"];
    let bodies: Vec<_> = requests::traces(2, 2, 1, 1)
        .iter()
        .map(|r| r.encode_to_vec())
        .collect();
    let body = bodies[1].clone();
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert_eq!(post_on(&mut first, &bodies[0]).await, 200);
    // The second connection is in the backlog: its request waits.
    let second = tokio::spawn(async move {
        let mut second = TcpStream::connect(addr).await.unwrap();
        post_on(&mut second, &body).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "served over the cap");
    drop(first);
    let status = tokio::time::timeout(LIMIT, second).await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert_eq!(spans_once(&[sink]), 2);
    proxy.stop().await.unwrap();
}

/// A plain HTTP/2 connection to `addr`: the client handle and a task that
/// ends when the connection does.
async fn h2_connect(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(connection))
}

fn grpc_request(extra: Option<(&str, String)>) -> http::Request<()> {
    let mut req =
        http::Request::post("http://x/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    req.body(()).unwrap()
}

/// Sends an empty Export call (a 5-byte gRPC frame) and returns its
/// `grpc-status`.
async fn h2_export(
    client: &mut h2::client::SendRequest<Bytes>,
    extra: Option<(&str, String)>,
) -> Option<String> {
    let mut client = client.clone().ready().await.unwrap();
    let (response, mut body) = client.send_request(grpc_request(extra), false).unwrap();
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let response = tokio::time::timeout(LIMIT, response).await.unwrap().ok()?;
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.ok()?;
    }
    let trailers = body.trailers().await.ok()??;
    Some(trailers.get("grpc-status")?.to_str().ok()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_and_header_lists_are_bounded_per_connection() {
    let sink = Sink::start().await;
    let proxy = support::start(&plain_proxy(
        sink.addr,
        ", max_concurrent_streams: 3, otlp_lb_max_header_list_size: 4096",
        "",
    ))
    .await;
    let (mut client, _connection) = h2_connect(proxy.grpc["otlp"]).await;
    assert_eq!(h2_export(&mut client, None).await.as_deref(), Some("0"));
    assert_eq!(
        client.current_max_send_streams(),
        3,
        "the server's SETTINGS_MAX_CONCURRENT_STREAMS"
    );
    // Metadata under the limit passes; over it, the call is refused.
    let small = Some(("x-small", "a".repeat(1000)));
    assert_eq!(h2_export(&mut client, small).await.as_deref(), Some("0"));
    let (mut client, _connection) = h2_connect(proxy.grpc["otlp"]).await;
    let big = Some(("x-big", "a".repeat(8000)));
    assert_ne!(h2_export(&mut client, big).await.as_deref(), Some("0"));
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let sink = Sink::start().await;
    let proxy = support::start(&plain_proxy(
        sink.addr,
        ", keepalive: { server_parameters: { max_connection_idle: 300ms } }",
        ", idle_timeout: 300ms",
    ))
    .await;
    // gRPC: the connection ends by itself after its last call.
    let (mut client, connection) = h2_connect(proxy.grpc["otlp"]).await;
    assert_eq!(h2_export(&mut client, None).await.as_deref(), Some("0"));
    tokio::time::timeout(LIMIT, connection)
        .await
        .expect("an idle gRPC connection is closed")
        .unwrap()
        .ok();
    // HTTP/1.1 keep-alive: the server closes after the idle time.
    let bodies: Vec<_> = requests::traces(4, 2, 1, 1)
        .iter()
        .map(|r| r.encode_to_vec())
        .collect();
    let mut stream = TcpStream::connect(proxy.http["otlp"]).await.unwrap();
    assert_eq!(post_on(&mut stream, &bodies[0]).await, 200);
    let body = &bodies[1];
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
        .await
        .expect("an idle HTTP connection is closed");
    assert!(matches!(n, Ok(0) | Err(_)));
    // A connection whose call outlasts the idle time is not cut: a body
    // sent over 600 ms in three parts still gets its answer.
    let mut stream = TcpStream::connect(proxy.http["otlp"]).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let third = body.len() / 3;
    stream.write_all(&body[..third]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    stream.write_all(&body[third..2 * third]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    stream.write_all(&body[2 * third..]).await.unwrap();
    assert_eq!(read_status(&mut stream).await, 200);
    assert_eq!(spans_once(&[sink]), 2);
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_body_is_cut_off() {
    let sink = Sink::start().await;
    let proxy = support::start(&plain_proxy(
        sink.addr,
        ", otlp_lb_request_body_timeout: 1s",
        ", read_timeout: 1s, read_header_timeout: 1s",
    ))
    .await;

    // HTTP: a body of 100 bytes sent one byte a second.
    let mut stream = TcpStream::connect(proxy.http["otlp"]).await.unwrap();
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if write.write_all(b"\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    assert_eq!(read_status(&mut read).await, 400, "cut off with a 400");
    trickle.abort();

    // HTTP: headers that never end are cut off too (the connection closes).
    let mut stream = TcpStream::connect(proxy.http["otlp"]).await.unwrap();
    stream
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let mut total = 0;
    loop {
        let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .expect("slow headers are cut off");
        match n {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < buf.len(), "at most a short error answer");

    // gRPC: the message trickles in after the headers.
    let (client, _connection) = h2_connect(proxy.grpc["otlp"]).await;
    let mut client = client.ready().await.unwrap();
    let (response, mut body) = client.send_request(grpc_request(None), false).unwrap();
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 100]), false)
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if body.send_data(Bytes::from_static(b"\n"), false).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let response = tokio::time::timeout(LIMIT, response)
        .await
        .expect("an answer");
    let status = match response {
        Err(_) => None, // the stream was reset: cut off as well
        Ok(response) => {
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                if chunk.is_err() {
                    break;
                }
            }
            match tokio::time::timeout(LIMIT, body.trailers()).await.unwrap() {
                Ok(Some(t)) => t
                    .get("grpc-status")
                    .map(|v| v.to_str().unwrap().to_string()),
                _ => None,
            }
        }
    };
    assert_ne!(status.as_deref(), Some("0"), "the call fails");
    trickle.abort();
    assert_eq!(spans_once(&[sink]), 0);
    proxy.stop().await.unwrap();
}

/// A TLS OTLP/HTTP and OTLP/gRPC backend (otlp-lb itself, forwarding to
/// `sink`) whose certificate names only `backend.test`, and which takes
/// only clients with a certificate from the test CA.
async fn tls_backend(files: &Files, sink: SocketAddr) -> otlp_lb::service::Running {
    let leaf = files.ca.issue(&["backend.test"], 30);
    let cert = pki::write(&files.dir, "backend.pem", &leaf.cert);
    let key = pki::write(&files.dir, "backend-key.pem", &leaf.key);
    let tls = format!(
        "{{ cert_file: \"{cert}\", key_file: \"{key}\", client_ca_file: \"{}\" }}",
        files.ca_file
    );
    support::start(&proxy_yaml(
        &[sink],
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
    ))
    .await
}

/// `, cert_file: ..., key_file: ...` of a client certificate from the CA.
fn client_files(files: &Files) -> String {
    let leaf = files.ca.issue(&["front"], 40);
    format!(
        ", cert_file: \"{}\", key_file: \"{}\"",
        pki::write(&files.dir, "front.pem", &leaf.cert),
        pki::write(&files.dir, "front-key.pem", &leaf.key)
    )
}

/// A front proxy whose only exporter is `exporter_yaml` (`NAME: {...}`).
fn front(exporter_yaml: &str) -> String {
    let name = exporter_yaml.split_once(':').unwrap().0;
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
exporters:
  {exporter_yaml}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [{name}] }}
"#
    )
}

async fn send_plain(
    addr: SocketAddr,
    request: ExportTraceServiceRequest,
) -> Result<(), tonic::Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    export(channel, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_names_a_certificate_name_mismatch_and_passes_with_an_override() {
    let files = Files::new();
    let sink = Sink::start().await;
    let backend = tls_backend(&files, sink.addr).await;
    let url = format!("https://127.0.0.1:{}", backend.http["otlp"].port());
    let exporter = |extra: &str| {
        format!(
            "otlphttp/x: {{ endpoint: \"{url}\", compression: none, \
             retry_on_failure: {{ enabled: false }}, sending_queue: {{ enabled: false }}, \
             tls: {{ ca_file: \"{}\"{}{extra} }} }}",
            files.ca_file,
            client_files(&files)
        )
    };
    let request = requests::traces(21, 2, 3, 10).remove(0);

    let mismatch = support::start(&front(&exporter(""))).await;
    let e = send_plain(mismatch.grpc["otlp"], request.clone())
        .await
        .unwrap_err();
    let message = e.message().to_string();
    assert!(
        message.contains("invalid peer certificate: certificate not valid for name"),
        "the error names the TLS problem: {message}"
    );
    mismatch.stop().await.unwrap();

    let fixed = support::start(&front(&exporter(", server_name_override: backend.test"))).await;
    send_plain(fixed.grpc["otlp"], request.clone())
        .await
        .unwrap();
    fixed.stop().await.unwrap();
    assert_eq!(spans_once(&[sink]), count_spans(&[request]));
    backend.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_with_insecure_skip_verify_reaches_an_unverifiable_backend() {
    let files = Files::new();
    let sink = Sink::start().await;
    let backend = tls_backend(&files, sink.addr).await;
    let endpoint = backend.grpc["otlp"];
    let exporter = |tls: &str| {
        format!(
            "otlp/x: {{ endpoint: \"https://{endpoint}\", compression: none, \
             retry_on_failure: {{ enabled: false }}, sending_queue: {{ enabled: false }}, \
             tls: {tls} }}"
        )
    };
    let request = requests::traces(22, 2, 3, 10).remove(0);

    // Verified against the system roots: our test CA is not one of them.
    let identity = client_files(&files);
    let verified = support::start(&front(&exporter(&format!(
        "{{ insecure_skip_verify: false{identity} }}"
    ))))
    .await;
    assert!(
        send_plain(verified.grpc["otlp"], request.clone())
            .await
            .is_err()
    );
    verified.stop().await.unwrap();

    // Not verified: the client certificate is still presented.
    let skipping = support::start(&front(&exporter(&format!(
        "{{ insecure_skip_verify: true{identity} }}"
    ))))
    .await;
    send_plain(skipping.grpc["otlp"], request.clone())
        .await
        .unwrap();
    skipping.stop().await.unwrap();
    assert_eq!(spans_once(&[sink]), count_spans(&[request]));
    backend.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_cipher_suites_are_what_the_server_negotiates() {
    let files = Files::new();
    let sink = Sink::start().await;
    let only13 = files.tls_block(", min_version: \"1.3\"");
    let only12 = files.tls_block(
        ", max_version: \"1.2\", cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305]",
    );
    let proxy = support::start(&proxy_yaml(
        &[sink.addr],
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {only13} }}"),
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {only12} }}"),
    ))
    .await;
    let tls12_client = || {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from(
                files.ca_der().to_vec(),
            ))
            .unwrap();
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    assert!(
        tls_connect(proxy.grpc["otlp"], tls12_client())
            .await
            .is_err(),
        "min_version 1.3 refuses a TLS 1.2 client"
    );
    let (tls13, _) = tls_connect(proxy.grpc["otlp"], files.client(None))
        .await
        .unwrap();
    assert_eq!(
        tls13.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let (tls12, _) = tls_connect(proxy.http["otlp"], files.client(None))
        .await
        .unwrap();
    let connection = tls12.get_ref().1;
    assert_eq!(
        connection.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2),
        "max_version 1.2"
    );
    assert_eq!(
        connection.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "the one suite allowed"
    );
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_receiver_bounds_http2_header_lists() {
    let sink = Sink::start().await;
    let proxy = support::start(&plain_proxy(
        sink.addr,
        "",
        ", otlp_lb_max_header_list_size: 4096",
    ))
    .await;
    let status = |size: usize| {
        let addr = proxy.http["otlp"];
        async move {
            let (client, _connection) = h2_connect(addr).await;
            let mut client = client.ready().await.unwrap();
            let request = http::Request::post("http://x/v1/traces")
                .header("content-type", "application/x-protobuf")
                .header("x-pad", "a".repeat(size))
                .body(())
                .unwrap();
            let (response, _) = client.send_request(request, true).unwrap();
            match tokio::time::timeout(LIMIT, response).await.unwrap() {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0, // the stream was reset
            }
        }
    };
    assert_eq!(status(1000).await, 200, "an empty request passes");
    assert_ne!(status(8000).await, 200, "headers over the limit do not");
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_request_do_not_hold_up_shutdown() {
    let files = Files::new();
    let sink = Sink::start().await;
    let tls = files.tls_block("");
    let proxy = support::start(&proxy_yaml(
        &[sink.addr],
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
        &format!("{{ endpoint: \"127.0.0.1:0\", tls: {tls} }}"),
    ))
    .await;
    let a = tls_connect(proxy.grpc["otlp"], files.client(None))
        .await
        .unwrap();
    let b = tls_connect(proxy.http["otlp"], files.client(None))
        .await
        .unwrap();
    let plain = TcpStream::connect(proxy.grpc["otlp"]).await.unwrap();
    tokio::time::timeout(LIMIT, proxy.stop())
        .await
        .expect("the service stops")
        .unwrap();
    drop((a, b, plain));
}
