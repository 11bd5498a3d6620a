//! The `dns` resolver against a real DNS server (hickory-server, started by
//! the test on 127.0.0.1) whose records change while the proxy runs: the
//! ring and `otelcol_loadbalancer_num_backends` follow additions and
//! removals; an error, a timeout or an empty answer keeps the last good set.
//! Records carry a one-hour TTL, so a ring that follows a change within a
//! few intervals shows that no answer was cached between resolutions.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use otlp_lb::{
    proto::collector::trace::v1::trace_service_client::TraceServiceClient,
    routing::{Ring, ring::DEFAULT_VNODES},
    service::Running,
};
use support::{
    dns::{DnsServer, Mode},
    requests,
    sink::Sink,
};

const LB: &str = "loadbalancing";

fn config(dns: &DnsServer, resolver: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
exporters:
  loadbalancing:
    routing_key: traceID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none, timeout: 2s }} }}
    retry_on_failure: {{ enabled: true, initial_interval: 10ms, max_interval: 50ms, max_elapsed_time: 5s }}
    resolver:
      dns: {{ {resolver}, interval: 100ms, timeout: 300ms, nameserver: "{}" }}
service:
  telemetry:
    metrics: {{ address: "127.0.0.1:0" }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing] }}
"#,
        dns.addr
    )
}

fn ips(hosts: &[&str]) -> Vec<IpAddr> {
    hosts.iter().map(|h| h.parse().unwrap()).collect()
}

async fn metric(proxy: &Running, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = support::http_get(proxy.metrics.unwrap(), "/metrics")
        .await
        .1;
    support::metric_value(&text, name, labels)
}

async fn resolutions(proxy: &Running, success: &str) -> f64 {
    metric(
        proxy,
        "otelcol_loadbalancer_num_resolutions_total",
        &[("exporter", LB), ("resolver", "dns"), ("success", success)],
    )
    .await
}

async fn num_backends(proxy: &Running) -> f64 {
    metric(
        proxy,
        "otelcol_loadbalancer_num_backends",
        &[("exporter", LB), ("resolver", "dns")],
    )
    .await
}

async fn wait_for_ring(proxy: &Running, want: &[String]) {
    support::wait_until(&format!("the ring is {want:?}"), || {
        support::ring_endpoints(proxy, LB) == want
    })
    .await;
}

/// Waits until `n` more resolutions have failed than `since`.
async fn wait_for_failures(proxy: &Running, since: f64, n: f64) {
    for _ in 0..1000 {
        if resolutions(proxy, "false").await >= since + n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} failed resolutions");
}

/// Sends `traces` traces of 4 spans (`seed` makes their ids) and checks that
/// every span arrived exactly once, on the owner of its trace in `ring`.
async fn send_and_check(proxy: &Running, sinks: &[Sink], seed: u64, traces: u64, ring: &[String]) {
    let before: Vec<usize> = sinks.iter().map(|s| s.snapshot().spans.len()).collect();
    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    for request in requests::traces(seed, traces, 4, 40) {
        client.export(request).await.unwrap();
    }
    let ring = Ring::new(ring, DEFAULT_VNODES);
    let mut seen = BTreeSet::new();
    let mut per_endpoint: BTreeMap<String, usize> = BTreeMap::new();
    for (sink, skip) in sinks.iter().zip(before) {
        for (trace, span) in sink.snapshot().spans.into_iter().skip(skip) {
            assert_eq!(
                ring.owner(&trace).map(|e| e.to_string()),
                Some(sink.addr.to_string()),
                "a trace landed off its owner"
            );
            assert!(seen.insert((trace, span)), "a span arrived twice");
            *per_endpoint.entry(sink.addr.to_string()).or_default() += 1;
        }
    }
    assert_eq!(seen.len() as u64, traces * 4, "every span arrives once");
    assert_eq!(
        per_endpoint.len(),
        ring.len(),
        "every backend of the ring gets a share"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_follows_a_records_and_survives_bad_answers() {
    let dns = DnsServer::start("test.").await;
    let hosts = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
    let (port, sinks) = support::sinks_on_one_port(&hosts).await;
    let ep = |host: &str| format!("{host}:{port}");
    dns.set_addresses("collectors", &ips(&hosts[..2])).await;
    let proxy = support::start(&config(
        &dns,
        &format!("hostname: collectors.test, port: {port}"),
    ))
    .await;

    // The service starts with the first answer in its ring.
    let two = vec![ep(hosts[0]), ep(hosts[1])];
    assert_eq!(support::ring_endpoints(&proxy, LB), two);
    assert_eq!(num_backends(&proxy).await, 2.0);
    send_and_check(&proxy, &sinks[..2], 1, 200, &two).await;

    // A backend joins.
    dns.set_addresses("collectors", &ips(&hosts)).await;
    let three: Vec<String> = hosts.iter().map(|h| ep(h)).collect();
    wait_for_ring(&proxy, &three).await;
    assert_eq!(num_backends(&proxy).await, 3.0);

    // One leaves.
    dns.set_addresses("collectors", &ips(&hosts[1..])).await;
    let last_two = vec![ep(hosts[1]), ep(hosts[2])];
    wait_for_ring(&proxy, &last_two).await;
    assert_eq!(num_backends(&proxy).await, 2.0);

    // The server fails, stops answering, then finds no record: each time
    // resolutions fail and the ring stays as it was.
    for mode in [Mode::ServFail, Mode::Silent] {
        dns.set_mode(mode);
        let failed = resolutions(&proxy, "false").await;
        wait_for_failures(&proxy, failed, 3.0).await;
        assert_eq!(support::ring_endpoints(&proxy, LB), last_two, "{mode:?}");
        assert_eq!(num_backends(&proxy).await, 2.0);
    }
    dns.set_mode(Mode::Answer);
    dns.remove("collectors").await;
    let failed = resolutions(&proxy, "false").await;
    wait_for_failures(&proxy, failed, 3.0).await;
    assert_eq!(
        support::ring_endpoints(&proxy, LB),
        last_two,
        "empty answer"
    );
    assert_eq!(num_backends(&proxy).await, 2.0);

    // Traffic sent now lands on the owners under the ring it kept.
    send_and_check(&proxy, &sinks[1..], 2, 200, &last_two).await;

    // Answers come back with a change.
    let ok = resolutions(&proxy, "true").await;
    dns.set_addresses("collectors", &ips(&hosts[..1])).await;
    let one = vec![ep(hosts[0])];
    wait_for_ring(&proxy, &one).await;
    assert_eq!(num_backends(&proxy).await, 1.0);
    assert!(resolutions(&proxy, "true").await > ok);
    send_and_check(&proxy, &sinks[..1], 3, 50, &one).await;

    // Four different sets were swapped in: {11,12}, {11,12,13}, {12,13}, {11};
    // the bad answers in between swapped nothing.
    assert_eq!(
        metric(
            &proxy,
            "otelcol_loadbalancer_num_backend_updates_total",
            &[("exporter", LB), ("resolver", "dns")],
        )
        .await,
        4.0
    );
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_host_and_port() {
    let dns = DnsServer::start("test.").await;
    let sinks = [Sink::start().await, Sink::start().await];
    let port = |i: usize| sinks[i].addr.port();
    dns.set_srv(
        "_otlp._tcp.collectors",
        &[("localhost.", port(0)), ("localhost.", port(1))],
    )
    .await;
    let proxy = support::start(&config(
        &dns,
        "hostname: _otlp._tcp.collectors.test, record: SRV",
    ))
    .await;
    let mut both = vec![
        format!("localhost:{}", port(0)),
        format!("localhost:{}", port(1)),
    ];
    both.sort();
    wait_for_ring(&proxy, &both).await;
    assert_eq!(num_backends(&proxy).await, 2.0);

    // Every span arrives once, each trace at the owner of its key.
    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    for request in requests::traces(4, 100, 3, 30) {
        client.export(request).await.unwrap();
    }
    let ring = Ring::new(&both, DEFAULT_VNODES);
    let mut total = 0;
    for (i, sink) in sinks.iter().enumerate() {
        let spans = sink.snapshot().spans;
        assert!(!spans.is_empty());
        for (trace, _) in &spans {
            assert_eq!(
                ring.owner(trace).map(|e| e.to_string()),
                Some(format!("localhost:{}", port(i)))
            );
        }
        total += spans.len();
    }
    assert_eq!(total, 300);

    dns.set_srv("_otlp._tcp.collectors", &[("localhost.", port(1))])
        .await;
    wait_for_ring(&proxy, &[format!("localhost:{}", port(1))]).await;
    assert_eq!(num_backends(&proxy).await, 1.0);
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_records_are_bracketed() {
    let dns = DnsServer::start("test.").await;
    // IPv4-mapped addresses, so that any connection attempt stays on
    // 127.0.0.0/8; nothing listens on this port.
    dns.set_addresses(
        "v6",
        &ips(&["127.0.0.31", "::ffff:127.0.0.32", "::ffff:127.0.0.33"]),
    )
    .await;
    let proxy = support::start(&config(&dns, "hostname: v6.test, port: 9")).await;
    wait_for_ring(
        &proxy,
        &[
            "127.0.0.31:9".to_string(),
            "[::ffff:127.0.0.32]:9".to_string(),
            "[::ffff:127.0.0.33]:9".to_string(),
        ],
    )
    .await;
    proxy.stop().await.unwrap();
}
