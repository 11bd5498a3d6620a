//! The `otlp_lb_status` page as an operator sees it: the service in front
//! of three sinks, real traffic, then the page rendered by headless Chromium
//! (DOM and a screenshot), `/status.json`, and `/route` checked against
//! where the sinks say each trace went.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use otlp_lb::proto::collector::{
    logs::v1::logs_service_client::LogsServiceClient,
    trace::v1::trace_service_client::TraceServiceClient,
};
use support::{requests, sink::Sink};

const TRACES: u64 = 600;
const SPANS_PER_TRACE: u64 = 4;

fn config(sinks: &[Sink]) -> String {
    let hostnames: Vec<String> = sinks.iter().map(|s| s.addr.to_string()).collect();
    let hostnames = hostnames.join(", ");
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "127.0.0.1:0" }}
exporters:
  loadbalancing/traces:
    routing_key: traceID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    sending_queue: {{ queue_size: 1000 }}
    resolver:
      static: {{ hostnames: [{hostnames}] }}
  loadbalancing/logs:
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver:
      static: {{ hostnames: [{hostnames}] }}
extensions:
  otlp_lb_status: {{ endpoint: "127.0.0.1:0" }}
service:
  extensions: [otlp_lb_status]
  telemetry: {{ metrics: {{ address: "127.0.0.1:0" }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing/traces] }}
    logs: {{ receivers: [otlp], exporters: [loadbalancing/logs] }}
"#
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs Chromium headless with `args` then `url`, killed if it takes more
/// than a minute; returns its stdout.
async fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    let mut command = tokio::process::Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .expect("chromium is installed (.ci/run installs the chromium package)");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("chromium finished within a minute")
        .expect("chromium ran");
    assert!(
        output.status.success(),
        "chromium {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The backend rows of the exporter section `id` in a DOM dump:
/// endpoint -> (ring share, traffic share).
fn backend_rows(dom: &str, exporter: &str) -> BTreeMap<String, (f64, f64)> {
    let section = regex::Regex::new(&format!(
        r#"(?s)<section class="exporter" id="exporter-{}" data-exporter="{}">(.*?)</section>"#,
        exporter.replace('/', "-"),
        regex::escape(exporter)
    ))
    .unwrap();
    let body = section
        .captures(dom)
        .unwrap_or_else(|| panic!("no section for {exporter} in\n{dom}"))[1]
        .to_string();
    let row = regex::Regex::new(
        r#"<tr class="backend" data-endpoint="([^"]+)" data-ring-share="([0-9.]+)" data-traffic-share="([0-9.]+)""#,
    )
    .unwrap();
    row.captures_iter(&body)
        .map(|c| {
            (
                c[1].to_string(),
                (c[2].parse().unwrap(), c[3].parse().unwrap()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_every_backend_and_routes_like_the_splitter() {
    let started = Instant::now();
    let mut sinks = Vec::new();
    for _ in 0..3 {
        sinks.push(Sink::start().await);
    }
    let proxy = support::start(&config(&sinks)).await;
    let status = proxy.status.expect("the status page is served");
    let grpc = proxy.grpc["otlp"];

    // Many traces, so every backend owns some.
    let mut traces = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    for request in requests::traces(11, TRACES, SPANS_PER_TRACE, 40) {
        traces.export(request).await.unwrap();
    }
    let mut logs = LogsServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    for request in requests::logs(12, 30, 20) {
        logs.export(request).await.unwrap();
    }
    let spans = |s: &Sink| s.snapshot().spans.len() as u64;
    support::wait_until("the queue has sent every span", || {
        sinks.iter().map(spans).sum::<u64>() == TRACES * SPANS_PER_TRACE
    })
    .await;
    let per_sink: BTreeMap<String, u64> = sinks
        .iter()
        .map(|s| (s.addr.to_string(), spans(s)))
        .collect();
    assert!(
        per_sink.values().all(|&n| n > 0),
        "every backend gets traces: {per_sink:?}"
    );

    // status.json: the ring, and the window's items exactly as the sinks
    // received them.
    let (code, body) = support::http_get(status, "/status.json").await;
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["window_seconds"], 60);
    let exporters = json["exporters"].as_array().unwrap();
    let names: Vec<&str> = exporters
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["loadbalancing/logs", "loadbalancing/traces"]);
    let traces_json = &exporters[1];
    assert_eq!(traces_json["resolver"], "static");
    assert_eq!(
        traces_json["routing_keys"],
        serde_json::json!({"traces": "traceID"})
    );
    assert_eq!(traces_json["resolutions"]["last"]["success"], true);
    assert_eq!(traces_json["resolutions"]["last"]["endpoints"], 3);
    assert_eq!(traces_json["queue"]["capacity"], 1000.0);
    assert_eq!(exporters[0]["queue"], serde_json::Value::Null);
    let backends = traces_json["backends"].as_array().unwrap();
    let total = (TRACES * SPANS_PER_TRACE) as f64;
    let mut ring = 0.0;
    for b in backends {
        let endpoint = b["endpoint"].as_str().unwrap();
        let received = per_sink[endpoint];
        assert_eq!(b["items"], received, "{endpoint}");
        assert_eq!(b["failures"], 0, "{endpoint}");
        assert!(b["successes"].as_u64().unwrap() > 0, "{endpoint}");
        assert!(b["p99_ms"].as_f64().unwrap() > 0.0, "{endpoint}");
        let traffic = b["traffic_share"].as_f64().unwrap();
        assert!(
            (traffic - received as f64 / total).abs() < 1e-9,
            "{endpoint}"
        );
        let share = b["ring_share"].as_f64().unwrap();
        assert!(share > 0.2 && share < 0.5, "{endpoint}: ring share {share}");
        ring += share;
    }
    assert!((ring - 1.0).abs() < 1e-9);
    assert_eq!(backends.len(), 3);

    // /route names the sink that received the trace, for traces on every
    // backend.
    for sink in &sinks {
        let received: BTreeSet<Vec<u8>> = sink.snapshot().spans.into_iter().map(|s| s.0).collect();
        for trace_id in received.iter().take(5) {
            let path = format!(
                "/route?exporter=loadbalancing/traces&trace_id={}",
                hex(trace_id)
            );
            let (code, body) = support::http_get(status, &path).await;
            assert_eq!(code, 200, "{path}: {body}");
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["backend"], sink.addr.to_string(), "{path}");
            assert_eq!(answer["routing_key"], "traceID");
        }
    }
    for (path, code, says) in [
        ("/route?trace_id=00", 400, "missing parameter \"exporter\""),
        (
            "/route?exporter=nope&trace_id=0123456789abcdef0123456789abcdef",
            400,
            "unknown exporter \"nope\"",
        ),
        (
            "/route?exporter=loadbalancing/traces&trace_id=xyz",
            400,
            "trace_id must be 32 hex digits",
        ),
        ("/nope", 404, "no page at /nope"),
    ] {
        let (got, body) = support::http_get(status, path).await;
        assert_eq!(got, code, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }

    // The page, as Chromium renders it.
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{status}/");
    let dom = chromium(profile.path(), &["--dump-dom"], &url).await;
    let rows = backend_rows(&dom, "loadbalancing/traces");
    let endpoints: BTreeSet<&String> = rows.keys().collect();
    assert_eq!(endpoints, per_sink.keys().collect(), "{dom}");
    for (endpoint, (ring, traffic)) in &rows {
        assert!(
            *ring > 0.0 && *traffic > 0.0,
            "{endpoint}: {ring} {traffic}"
        );
        let expected = per_sink[endpoint] as f64 / total;
        assert!((traffic - expected).abs() < 1e-5, "{endpoint}: {traffic}");
    }
    assert_eq!(backend_rows(&dom, "loadbalancing/logs").len(), 3);
    assert!(dom.contains("resolver: <b>static</b>"), "{dom}");

    let screenshot = screenshot_path();
    let _ = std::fs::remove_file(&screenshot);
    let arg = format!("--screenshot={}", screenshot.display());
    chromium(profile.path(), &[&arg, "--window-size=1280,900"], &url).await;
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);

    proxy.stop().await.unwrap();
    eprintln!(
        "status page test took {:?}; screenshot at {}",
        started.elapsed(),
        screenshot.display()
    );
}

/// `<target dir>/status-page.png`, kept as an artifact.
fn screenshot_path() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("status-page.png")
}
