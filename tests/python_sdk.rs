//! Interoperability with a real OTLP client: the OpenTelemetry Python SDK
//! exports traces, metrics and logs through the proxy over gRPC and HTTP.
//! `scripts/python-env` (run by `.ci/run`, and here if needed) installs it.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeSet, process::Command};

use support::sink::Sink;

fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON.get_or_init(install).clone()
}

fn install() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(format!("{root}/scripts/python-env"))
        .status()
        .expect("scripts/python-env runs");
    assert!(status.success(), "scripts/python-env failed");
    format!("{root}/target/pyenv/bin/python")
}

async fn run_sdk(protocol: &str) {
    let python = python();
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let addrs: Vec<_> = sinks.iter().map(|s| s.addr).collect();
    let proxy = support::start(&support::first_tier(&addrs, "")).await;
    let endpoint = match protocol {
        "grpc" => format!("http://{}", proxy.grpc["otlp"]),
        _ => format!("http://{}", proxy.http["otlp"]),
    };
    let script = format!("{}/tests/python/send_otlp.py", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(python)
        .args([&script, "--protocol", protocol, "--endpoint", &endpoint])
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
        .env("OTEL_SDK_DISABLED", "false")
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary line");
    assert_eq!(
        summary["flushed"],
        true,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut spans = BTreeSet::new();
    let mut traces_per_sink = Vec::new();
    let (mut points, mut logs) = (0, 0);
    for s in &sinks {
        let got = s.snapshot();
        let mut traces = BTreeSet::new();
        for (trace, span) in got.spans {
            assert!(spans.insert(span), "span arrived twice");
            traces.insert(trace.iter().map(|b| format!("{b:02x}")).collect::<String>());
        }
        traces_per_sink.push(traces);
        points += got.points.len();
        logs += got.logs.len();
    }
    assert_eq!(spans.len() as u64, summary["spans"].as_u64().unwrap());
    for (i, a) in traces_per_sink.iter().enumerate() {
        for b in &traces_per_sink[i + 1..] {
            assert!(a.is_disjoint(b), "a trace reached two backends");
        }
    }
    let sent: BTreeSet<String> = summary["trace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let received: BTreeSet<String> = traces_per_sink.into_iter().flatten().collect();
    assert_eq!(sent, received);
    assert_eq!(points as u64, summary["metric_points"].as_u64().unwrap());
    assert_eq!(logs as u64, summary["logs"].as_u64().unwrap());
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc() {
    run_sdk("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http() {
    run_sdk("http").await;
}
