//! The `k8s` resolver against an HTTP server that plays the Kubernetes API
//! for EndpointSlice list and watch (on 127.0.0.1):
//! - through a real `kube::Client`, kube's watcher and the one ring
//!   builder: slices split across objects, readiness flips, slices added
//!   and deleted, a watch that drops and resumes from its resource
//!   version, and one whose version expired (410 Gone) and lists again;
//! - the whole service from YAML, finding the API server through
//!   `KUBECONFIG` (in a child process, since the environment is global)
//!   and delivering to the pods it lists.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use otlp_lb::{
    config::exporters::K8sResolverConfig,
    discovery::{Resolutions, k8s},
    exporter::{ClientSettings, PoolHandle},
    proto::collector::trace::v1::trace_service_client::TraceServiceClient,
    routing::{Ring, ring::DEFAULT_VNODES},
    telemetry::Telemetry,
};
use support::{
    k8s_api::{FakeApi, NAMESPACE, SERVICE, endpoint, post_slice, slice},
    requests,
};

fn ring(pool: &PoolHandle) -> Vec<String> {
    pool.load()
        .ring()
        .endpoints()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

/// `127.0.0.<host>:<port>` for every host and port 4317 and 4318, sorted.
fn backends(hosts: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = hosts
        .iter()
        .flat_map(|h| ["4317", "4318"].map(|p| format!("127.0.0.{h}:{p}")))
        .collect();
    v.sort();
    v
}

async fn wait_for_ring(pool: &PoolHandle, hosts: &[&str]) {
    let want = backends(hosts);
    support::wait_until(&format!("the ring is {want:?}"), || ring(pool) == want).await;
}

fn metric(telemetry: &Telemetry, name: &str, labels: &[(&str, &str)]) -> f64 {
    support::metric_value(&telemetry.render(), name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_follows_endpointslices_through_watch_drops_and_relists() {
    // Nothing listens on the backends' addresses (127.0.0.4x): connecting
    // fails at once and they would connect on first use; only the ring
    // matters here.
    let api = FakeApi::start().await;
    api.apply(slice(
        "collectors-a",
        vec![
            endpoint("127.0.0.41", true, false),
            endpoint("127.0.0.42", true, false),
        ],
    ));
    api.apply(slice(
        "collectors-b",
        vec![
            endpoint("127.0.0.43", false, false), // starting, not ready
            endpoint("127.0.0.44", true, false),
        ],
    ));

    let telemetry = Telemetry::new();
    let config = K8sResolverConfig {
        service: format!("{SERVICE}.{NAMESPACE}"),
        ports: vec![4317, 4318],
        ..Default::default()
    };
    let pool = PoolHandle::new(
        "lb",
        "k8s",
        Arc::new(ClientSettings {
            timeout: Duration::from_millis(200),
            ..Default::default()
        }),
        100,
        telemetry.clone(),
    );
    let updates = k8s::watch(
        api.client(),
        NAMESPACE,
        &config,
        Resolutions::new(&telemetry, "lb", "k8s"),
    );
    let builder = pool.follow(updates, Duration::ZERO).await;

    // The first list: both slices merged, the not-ready pod left out, one
    // backend per port.
    wait_for_ring(&pool, &["41", "42", "44"]).await;
    let labels = [("exporter", "lb"), ("resolver", "k8s")];
    let failed = [labels[0], labels[1], ("success", "false")];
    assert_eq!(
        metric(&telemetry, "otelcol_loadbalancer_num_backends", &labels),
        6.0
    );

    // Readiness flips: 41 starts terminating, then 43 becomes ready.
    api.apply(slice(
        "collectors-a",
        vec![
            endpoint("127.0.0.41", false, true),
            endpoint("127.0.0.42", true, false),
        ],
    ));
    wait_for_ring(&pool, &["42", "44"]).await;
    api.apply(slice(
        "collectors-b",
        vec![
            endpoint("127.0.0.43", true, false),
            endpoint("127.0.0.44", true, false),
        ],
    ));
    wait_for_ring(&pool, &["42", "43", "44"]).await;

    // A third slice appears; then the first is deleted.
    api.apply(slice(
        "collectors-c",
        vec![endpoint("127.0.0.45", true, false)],
    ));
    wait_for_ring(&pool, &["42", "43", "44", "45"]).await;
    api.delete("collectors-a");
    wait_for_ring(&pool, &["43", "44", "45"]).await;

    // The watch drops; a change made meanwhile arrives when the watcher
    // resumes from the last version it saw, without listing again.
    api.drop_watches();
    let seen = api.version();
    api.apply(slice(
        "collectors-c",
        vec![
            endpoint("127.0.0.45", true, false),
            endpoint("127.0.0.46", true, false),
        ],
    ));
    wait_for_ring(&pool, &["43", "44", "45", "46"]).await;
    let requests = api.requests();
    assert_eq!(
        requests.iter().filter(|r| *r == "list").count(),
        1,
        "{requests:?}"
    );
    assert!(
        requests.contains(&format!("watch {seen}")),
        "resumed from version {seen}: {requests:?}"
    );
    assert_eq!(
        metric(
            &telemetry,
            "otelcol_loadbalancer_num_resolutions_total",
            &failed
        ),
        0.0,
        "a dropped watch is not a failure"
    );

    // The watch drops and its version has expired: 410 Gone, a new list,
    // and the set it lists replaces the old one at once.
    api.drop_watches();
    api.delete("collectors-b");
    api.apply(slice(
        "collectors-d",
        vec![endpoint("127.0.0.47", true, false)],
    ));
    api.expire_history();
    wait_for_ring(&pool, &["45", "46", "47"]).await;
    let requests = api.requests();
    assert_eq!(
        requests.iter().filter(|r| *r == "list").count(),
        2,
        "{requests:?}"
    );
    assert_eq!(
        metric(
            &telemetry,
            "otelcol_loadbalancer_num_resolutions_total",
            &failed
        ),
        1.0,
        "the expired watch counts as one failed resolution"
    );
    assert_eq!(
        metric(&telemetry, "otelcol_loadbalancer_num_backends", &labels),
        6.0
    );
    // Each set was swapped in once: the first list, two readiness flips,
    // the new slice, the deletion, the change seen on resuming, the relist.
    assert_eq!(
        metric(
            &telemetry,
            "otelcol_loadbalancer_num_backend_updates_total",
            &labels
        ),
        7.0
    );
    builder.abort();
}

/// Set in the child process's environment by the test below.
const API_ENV: &str = "OTLP_LB_TEST_FAKE_API";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_finds_pods_through_kubeconfig() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "service_from_kubeconfig",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env(API_ENV, api.addr.to_string())
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert_eq!(api.requests().first().map(String::as_str), Some("list"));
}

/// Runs in the child process started above (KUBECONFIG points at the fake
/// API server): pods on 127.0.0.51-53 share one port; the service lists
/// them through `Config::infer` and sends each trace to its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_service_finds_pods_through_kubeconfig in a child process"]
async fn service_from_kubeconfig() {
    let Ok(api) = std::env::var(API_ENV) else {
        return;
    };
    let api = api.parse().unwrap();
    let hosts = ["127.0.0.51", "127.0.0.52", "127.0.0.53"];
    let (port, sinks) = support::sinks_on_one_port(&hosts).await;
    post_slice(
        api,
        &slice(
            "collectors-a",
            vec![
                endpoint(hosts[0], true, false),
                endpoint(hosts[1], true, false),
            ],
        ),
    )
    .await;
    post_slice(
        api,
        &slice(
            "collectors-b",
            vec![
                endpoint(hosts[2], true, false),
                endpoint("127.0.0.54", false, false),
            ],
        ),
    )
    .await;
    let proxy = support::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
exporters:
  loadbalancing:
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver:
      k8s: {{ service: {SERVICE}.{NAMESPACE}, ports: [{port}], timeout: 5s }}
service:
  telemetry: {{ metrics: {{ address: "127.0.0.1:0" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing] }}
"#
    ))
    .await;
    // The service starts with the listed pods in its ring.
    let want: Vec<String> = hosts.iter().map(|h| format!("{h}:{port}")).collect();
    assert_eq!(support::ring_endpoints(&proxy, "loadbalancing"), want);

    let mut client = TraceServiceClient::connect(format!("http://{}", proxy.grpc["otlp"]))
        .await
        .unwrap();
    for request in requests::traces(5, 300, 4, 40) {
        client.export(request).await.unwrap();
    }
    let ring = Ring::new(&want, DEFAULT_VNODES);
    let mut total = 0;
    for sink in &sinks {
        let spans = sink.snapshot().spans;
        assert!(!spans.is_empty(), "every pod gets a share");
        for (trace, _) in &spans {
            assert_eq!(
                ring.owner(trace).map(|e| e.to_string()),
                Some(sink.addr.to_string())
            );
        }
        total += spans.len();
    }
    assert_eq!(total, 1200, "every span arrives once");
    proxy.stop().await.unwrap();
}
