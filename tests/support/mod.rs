//! Shared fixtures: OTLP sinks that decode with prost (an implementation
//! independent of the proxy's wire scanner), request generators, and a
//! helper to start the service from YAML.

#![allow(dead_code)]

pub mod dns;
pub mod k8s_api;
pub mod pki;
pub mod requests;
pub mod sink;

use otlp_lb::{config::Config, service};

/// Starts the service from a YAML config (ports may be 0).
pub async fn start(yaml: &str) -> service::Running {
    let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
    service::start(config).await.expect("service starts")
}

/// A first-tier config with one `loadbalancing` exporter per signal over a
/// static list of `backends`, receivers on port 0, metrics on port 0.
pub fn first_tier(backends: &[std::net::SocketAddr], extra_exporter_yaml: &str) -> String {
    let hostnames: Vec<String> = backends.iter().map(|a| a.to_string()).collect();
    let hostnames = format!("[{}]", hostnames.join(", "));
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
      http: {{ endpoint: "127.0.0.1:0" }}
exporters:
  loadbalancing/traces:
    routing_key: traceID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none, timeout: 5s }} }}
    retry_on_failure: {{ enabled: true, initial_interval: 10ms, max_interval: 50ms, max_elapsed_time: 5s }}
    resolver:
      static: {{ hostnames: {hostnames} }}
  loadbalancing/metrics:
    routing_key: streamID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: gzip }} }}
    resolver:
      static: {{ hostnames: {hostnames} }}
  loadbalancing/logs:
    routing_key: traceID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: zstd }} }}
    resolver:
      static: {{ hostnames: {hostnames} }}
{extra_exporter_yaml}
service:
  telemetry:
    metrics: {{ address: "127.0.0.1:0" }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing/traces] }}
    metrics: {{ receivers: [otlp], exporters: [loadbalancing/metrics] }}
    logs: {{ receivers: [otlp], exporters: [loadbalancing/logs] }}
"#
    )
}

/// GETs `http://addr/path` and returns (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A raw HTTP/1.1 POST (no client library, so chunked bodies can be sent as
/// the Node.js SDK sends them). Returns (status, content-type, body).
pub async fn http_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        for piece in body.chunks(1000) {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await
                .expect("write");
            stream.write_all(piece).await.expect("write");
            stream.write_all(b"\r\n").await.expect("write");
        }
        stream.write_all(b"0\r\n\r\n").await.expect("write");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body).await.expect("write");
    }
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut body = buf[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, content_type, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// Sums the samples of `name` whose labels contain every `labels` pair.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One sink per loopback address in `hosts` (`127.0.0.11`, ...), all on
/// the same port, as a DNS name with A records and one `port` needs them.
pub async fn sinks_on_one_port(hosts: &[&str]) -> (u16, Vec<sink::Sink>) {
    'again: loop {
        let first = tokio::net::TcpListener::bind((hosts[0], 0))
            .await
            .expect("bind");
        let port = first.local_addr().expect("addr").port();
        let mut listeners = vec![first];
        for host in &hosts[1..] {
            match tokio::net::TcpListener::bind((*host, port)).await {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'again, // taken on that address: pick another port
            }
        }
        let mut sinks = Vec::new();
        for l in listeners {
            sinks.push(sink::Sink::serve(l).await);
        }
        return (port, sinks);
    }
}

/// Polls `check` every 10 ms for up to 10 s; panics with `what` if it
/// never holds.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The endpoints of the ring an exporter uses now.
pub fn ring_endpoints(running: &service::Running, exporter: &str) -> Vec<String> {
    running.pools[exporter]
        .load()
        .ring()
        .endpoints()
        .iter()
        .map(|e| e.to_string())
        .collect()
}
