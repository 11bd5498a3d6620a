//! The Helm chart in `charts/otlp-lb`.
//!
//! `tests/python/chart_test.py` lints and renders the chart with the Helm v4
//! SDK, validates every object against the Kubernetes schemas, asserts what
//! users rely on and runs this build's `otlp-lb validate` on every rendered
//! config; here it runs from the venv `scripts/python-env` creates. The
//! second test holds the dashboard and the alerts to the metrics a running
//! otlp-lb really exports: a name that is not in a live `/metrics` scrape
//! would be an empty panel or an alert that can never fire.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::Duration,
};

use otlp_lb::proto::collector::{
    logs::v1::logs_service_client::LogsServiceClient,
    metrics::v1::metrics_service_client::MetricsServiceClient,
    trace::v1::trace_service_client::TraceServiceClient,
};
use support::{requests, sink::Sink};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn python() -> String {
    let status = Command::new(format!("{ROOT}/scripts/python-env"))
        .status()
        .expect("scripts/python-env runs");
    assert!(status.success(), "scripts/python-env failed");
    format!("{ROOT}/target/pyenv/bin/python")
}

#[test]
fn chart_lints_renders_validates_and_its_configs_load() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(python())
        .arg(format!("{ROOT}/tests/python/chart_test.py"))
        .args(["--binary", env!("CARGO_BIN_EXE_otlp-lb")])
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chart_test.py failed:\n{stderr}\n{stdout}"
    );
    println!("{}", stdout.trim());
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary line");
    // The defaults and the six files under ci/, each with a first-tier
    // config and at least one agent or first-tier ConfigMap validated.
    assert!(summary["renders"].as_u64() >= Some(7), "{summary}");
    assert!(
        summary["configs_validated"].as_u64() >= Some(7),
        "{summary}"
    );

    // The rendered alerts are valid Prometheus rules.
    let rules = out_dir.path().join("rules.yaml");
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool is installed (.ci/run installs the prometheus package)");
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Metric names (`otelcol_*`, `otlp_lb_*`) in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices(['o']) {
        let rest = &text[i..];
        if !(rest.starts_with("otelcol_") || rest.starts_with("otlp_lb_")) {
            continue;
        }
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
    names
}

/// Every PromQL expression of the dashboard (panels and variables).
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(q) = var["query"]["query"].as_str() {
            out.push(q.to_string());
        }
    }
    out
}

/// Sample names and family types of a Prometheus text scrape.
fn scrape_names(text: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut samples = BTreeSet::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_string());
        }
    }
    (samples, types)
}

/// A first tier (three loadbalancing exporters to sinks, one with a sending
/// queue) and, in the same process, an agent's pipelines (tail_sampling,
/// cumulativetodelta) behind a second receiver: every metric family the
/// dashboard and the alerts can show.
fn config(sinks: &[std::net::SocketAddr]) -> String {
    let hosts: Vec<String> = sinks.iter().map(|a| a.to_string()).collect();
    let hosts = hosts.join(", ");
    let agent_sink = sinks[0];
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
  otlp/agent:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
processors:
  tail_sampling:
    decision_wait: 1s
    policies:
      - {{ name: everything, type: always_sample }}
  cumulativetodelta: {{}}
exporters:
  loadbalancing/traces:
    sending_queue: {{ queue_size: 100 }}
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver: {{ static: {{ hostnames: [{hosts}] }} }}
  loadbalancing/metrics:
    routing_key: streamID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver: {{ static: {{ hostnames: [{hosts}] }} }}
  loadbalancing/logs:
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver: {{ static: {{ hostnames: [{hosts}] }} }}
  otlp/agent:
    endpoint: "{agent_sink}"
    tls: {{ insecure: true }}
    compression: none
service:
  telemetry:
    metrics: {{ address: "127.0.0.1:0" }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing/traces] }}
    metrics: {{ receivers: [otlp], exporters: [loadbalancing/metrics] }}
    logs: {{ receivers: [otlp], exporters: [loadbalancing/logs] }}
    traces/agent: {{ receivers: [otlp/agent], processors: [tail_sampling], exporters: [otlp/agent] }}
    metrics/agent: {{ receivers: [otlp/agent], processors: [cumulativetodelta], exporters: [otlp/agent] }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_use_only_exported_metrics() {
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&config(&addrs)).await;

    for receiver in ["otlp", "otlp/agent"] {
        let url = format!("http://{}", proxy.grpc[receiver]);
        let mut traces = TraceServiceClient::connect(url.clone()).await.unwrap();
        for req in requests::traces(11, 40, 3, 30) {
            traces.export(req).await.unwrap();
        }
        let mut metrics = MetricsServiceClient::connect(url.clone()).await.unwrap();
        for req in requests::metrics(12, 3, 4, 4) {
            metrics.export(req).await.unwrap();
        }
    }
    let grpc = format!("http://{}", proxy.grpc["otlp"]);
    let mut logs = LogsServiceClient::connect(grpc).await.unwrap();
    for req in requests::logs(13, 3, 10) {
        logs.export(req).await.unwrap();
    }

    // Wait for the tail sampler's first decisions (decision_wait 1 s) so its
    // histograms and counters have samples.
    let metrics_addr = proxy.metrics.expect("metrics endpoint");
    let mut decided = 0.0;
    for _ in 0..100 {
        let text = support::http_get(metrics_addr, "/metrics").await.1;
        decided = support::metric_value(
            &text,
            "otelcol_processor_tail_sampling_global_count_traces_sampled_total",
            &[("sampled", "true")],
        );
        if decided >= 40.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        decided, 40.0,
        "every trace sent to the agent pipeline is decided"
    );
    proxy.telemetry.upkeep();
    let text = support::http_get(metrics_addr, "/metrics").await.1;
    let (samples, types) = scrape_names(&text);

    let dashboard_file = format!("{ROOT}/charts/otlp-lb/dashboards/otlp-lb.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard_file).unwrap()).unwrap();
    let dashboard_names: BTreeSet<String> = dashboard_queries(&dashboard)
        .iter()
        .flat_map(|q| metric_names(q))
        .collect();
    // The alert expressions are written out in full in the template (no
    // metric name is assembled from pieces), so reading it finds them all.
    let rules_file = format!("{ROOT}/charts/otlp-lb/templates/prometheusrule.yaml");
    let alert_names = metric_names(&std::fs::read_to_string(&rules_file).unwrap());
    assert!(dashboard_names.len() >= 20, "{dashboard_names:?}");
    assert!(alert_names.len() >= 10, "{alert_names:?}");

    let mut missing = Vec::new();
    for (from, names) in [("dashboard", &dashboard_names), ("alerts", &alert_names)] {
        for name in names {
            // A histogram is queried through its _bucket, _sum and _count
            // series; the bare family name matches no series in PromQL.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"));
            let found = match family {
                Some(_) => samples.contains(name),
                None => {
                    samples.contains(name)
                        && types.get(name).map(String::as_str) != Some("histogram")
                }
            };
            if !found {
                missing.push(format!("{from}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in a live /metrics scrape:\n{}\n\nscrape:\n{text}",
        missing.join("\n")
    );
    println!(
        "{} dashboard and {} alert metric names, all in the scrape",
        dashboard_names.len(),
        alert_names.len()
    );
    proxy.stop().await.unwrap();
}
