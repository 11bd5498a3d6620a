//! The two tiers together, as separate processes of the built binary: a
//! first tier routing by traceID and streamID in front of three agents
//! (tail sampling, cumulative-to-delta), each exporting to its own sink.
//! Then the same traffic sent round-robin to the agents, to show what the
//! first tier prevents: incomplete traces and wrong deltas.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::Path,
    time::Duration,
};

use otlp_lb::proto::{
    collector::{
        metrics::v1::{ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient},
        trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    },
    common::v1::InstrumentationScope,
    metrics::v1::{
        AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
    },
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status::StatusCode},
};
use support::{
    requests::{Rng, kv},
    sink::Sink,
};

const TRACES: u64 = 400;
const SPANS: u64 = 8;
const WAVES: u64 = 4;
const STREAMS: u64 = 40;
const ROUNDS: u64 = 10;

/// A running `otlp-lb` and the addresses it reported binding. Configs
/// listen on port 0, and the process says in its (JSON) log which port it
/// got, so no port is ever picked by one process and bound by another.
struct Proc {
    child: tokio::process::Child,
    grpc: SocketAddr,
}

async fn spawn(dir: &Path, name: &str, yaml: &str) -> Proc {
    use tokio::io::AsyncBufReadExt;
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_otlp-lb"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn,otlp_lb::service=info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn otlp-lb");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let (mut grpc, mut health) = (None, None);
    while grpc.is_none() || health.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{name} reported no addresses"))
            .expect("read stderr")
            .unwrap_or_else(|| panic!("{name} exited before listening"));
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{name}: a log line that is not JSON ({e}): {line}"));
        let addr = event["addr"].as_str().and_then(|a| a.parse().ok());
        match event["message"].as_str() {
            Some(m) if m.starts_with("listening (OTLP/gRPC") => grpc = addr,
            Some("serving health checks") => health = addr,
            _ => {}
        }
    }
    // Keep draining the log so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (grpc, health) = (grpc.expect("grpc"), health.expect("health"));
    for _ in 0..200 {
        if support::http_get(health, "/").await.0 == 200 {
            return Proc { child, grpc };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not become healthy");
}

impl Proc {
    /// SIGTERM, then wait for a clean exit (pending traces are flushed).
    async fn stop(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait");
        assert!(exit.success(), "clean exit, got {exit}");
    }
}

fn agent_yaml(sink: SocketAddr) -> String {
    format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }} }}
processors:
  tail_sampling:
    decision_wait: 2s
    policies:
      - {{ name: errors, type: status_code, status_code: {{ status_codes: [ERROR] }} }}
      - {{ name: ten-percent, type: probabilistic, probabilistic: {{ sampling_percentage: 10 }} }}
  cumulativetodelta: {{}}
exporters:
  otlp: {{ endpoint: "{sink}", tls: {{ insecure: true }}, compression: none }}
extensions: {{ health_check: {{ endpoint: "127.0.0.1:0", drain_delay: 200ms }} }}
service:
  extensions: [health_check]
  telemetry: {{ metrics: {{ level: none }}, logs: {{ encoding: json }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [tail_sampling], exporters: [otlp] }}
    metrics: {{ receivers: [otlp], processors: [cumulativetodelta], exporters: [otlp] }}
"#
    )
}

fn first_tier_yaml(agents: &[SocketAddr]) -> String {
    let hosts = agents
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }} }}
exporters:
  loadbalancing/traces:
    routing_key: traceID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver: {{ static: {{ hostnames: [{hosts}] }} }}
  loadbalancing/metrics:
    routing_key: streamID
    protocol: {{ otlp: {{ tls: {{ insecure: true }}, compression: none }} }}
    resolver: {{ static: {{ hostnames: [{hosts}] }} }}
extensions: {{ health_check: {{ endpoint: "127.0.0.1:0", drain_delay: 200ms }} }}
service:
  extensions: [health_check]
  telemetry: {{ metrics: {{ level: none }}, logs: {{ encoding: json }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing/traces] }}
    metrics: {{ receivers: [otlp], exporters: [loadbalancing/metrics] }}
"#
    )
}

fn is_error_trace(t: u64) -> bool {
    t % 20 == 7
}

fn trace_id(t: u64) -> Vec<u8> {
    let mut id = vec![0xab; 8];
    id.extend_from_slice(&(t.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
    id
}

/// Wave `w` carries spans `2w` and `2w+1` of every trace, mixed into
/// requests of 50 spans; an error trace has its error on span `t % SPANS`.
fn trace_wave(w: u64, rng: &mut Rng) -> Vec<ExportTraceServiceRequest> {
    let mut spans: Vec<(u64, u64)> = (0..TRACES)
        .flat_map(|t| (2 * w..2 * w + 2).map(move |s| (t, s)))
        .collect();
    for i in (1..spans.len()).rev() {
        spans.swap(i, rng.below(i as u64 + 1) as usize);
    }
    spans
        .chunks(50)
        .map(|chunk| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "shop")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "two-tier".into(),
                        ..Default::default()
                    }),
                    spans: chunk
                        .iter()
                        .map(|&(t, s)| Span {
                            trace_id: trace_id(t),
                            span_id: (t << 8 | s).to_be_bytes().to_vec(),
                            name: format!("span-{s}"),
                            start_time_unix_nano: 1_000 + s,
                            end_time_unix_nano: 2_000 + s,
                            status: (is_error_trace(t) && s == t % SPANS).then(|| Status {
                                code: StatusCode::Error as i32,
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        })
        .collect()
}

/// Cumulative values per stream after each round; streams `s % 4 < 2` are
/// sums (`requests.N`), the others histograms (`latency.N`).
fn metric_rounds(
    start: u64,
    rng: &mut Rng,
) -> (
    Vec<ExportMetricsServiceRequest>,
    BTreeMap<(String, String), f64>,
) {
    let mut totals = vec![0u64; STREAMS as usize];
    let mut requests = Vec::new();
    for round in 0..ROUNDS {
        for total in totals.iter_mut() {
            *total += 1 + rng.below(50);
        }
        // Each round's points are spread over three interleaved requests.
        let mut parts: Vec<Vec<Metric>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for s in 0..STREAMS {
            let attrs = vec![kv("stream", &s.to_string())];
            let time = start + 1_000_000 * (round + 1);
            let data = if s % 4 < 2 {
                metric::Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        attributes: attrs,
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsInt(totals[s as usize] as i64)),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })
            } else {
                let count = totals[s as usize];
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: attrs,
                        start_time_unix_nano: start,
                        time_unix_nano: time,
                        count,
                        sum: Some(count as f64 * 2.0),
                        bucket_counts: vec![count / 2, count - count / 2],
                        explicit_bounds: vec![1.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })
            };
            let name = if s % 4 < 2 {
                format!("requests.{}", s % 4)
            } else {
                format!("latency.{}", s % 4)
            };
            parts[rng.below(3) as usize].push(Metric {
                name,
                data: Some(data),
                ..Default::default()
            });
        }
        for metrics in parts.into_iter().filter(|p| !p.is_empty()) {
            requests.push(ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "shop")],
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        metrics,
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
            });
        }
    }
    let truth = (0..STREAMS)
        .map(|s| {
            let name = if s % 4 < 2 {
                format!("requests.{}", s % 4)
            } else {
                format!("latency.{}", s % 4)
            };
            let attrs = support::sink::attrs_text(&[kv("stream", &s.to_string())]);
            ((name, attrs), totals[s as usize] as f64)
        })
        .collect();
    (requests, truth)
}

/// Per trace id: the sinks it reached, its distinct span ids, spans counted.
type TraceArrivals = BTreeMap<Vec<u8>, (BTreeSet<usize>, BTreeSet<Vec<u8>>, usize)>;

#[derive(Debug, Default)]
struct Outcome {
    error_traces_whole: usize,
    error_traces_broken: usize,
    exported_traces: usize,
    incomplete_traces: usize,
    other_kept: usize,
    streams_exact: usize,
    streams_wrong: usize,
    streams_on_several_agents: usize,
}

/// Sends the scenario; `target(i)` picks the address for request `i`.
async fn run(
    targets: &[SocketAddr],
    round_robin: bool,
    sinks: &[Sink],
    stop: impl AsyncFnOnce(),
) -> Outcome {
    let mut rng = Rng::new(99);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let mut traces = Vec::new();
    let mut metrics = Vec::new();
    for t in targets {
        traces.push(
            TraceServiceClient::connect(format!("http://{t}"))
                .await
                .expect("connect"),
        );
        metrics.push(
            MetricsServiceClient::connect(format!("http://{t}"))
                .await
                .expect("connect"),
        );
    }
    let mut i = 0usize;
    for w in 0..WAVES {
        for req in trace_wave(w, &mut rng) {
            let n = if round_robin { i % targets.len() } else { 0 };
            traces[n].export(req).await.expect("export traces");
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (requests, truth) = metric_rounds(start, &mut rng);
    for req in requests {
        let n = if round_robin { i % targets.len() } else { 0 };
        metrics[n].export(req).await.expect("export metrics");
        i += 1;
    }
    // Past decision_wait, then a clean stop flushes whatever is left.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop().await;

    let mut outcome = Outcome::default();
    let mut spans_by_trace: TraceArrivals = BTreeMap::new();
    let mut streams: BTreeMap<(String, String), (BTreeSet<usize>, f64)> = BTreeMap::new();
    for (n, sink) in sinks.iter().enumerate() {
        let got = sink.snapshot();
        for (trace, span) in got.spans {
            let entry = spans_by_trace.entry(trace).or_default();
            entry.0.insert(n);
            entry.1.insert(span);
            entry.2 += 1;
        }
        for (name, attrs, value, _start, _time, temporality) in got.values {
            assert_eq!(
                temporality,
                AggregationTemporality::Delta as i32,
                "{name} converted to delta"
            );
            let entry = streams.entry((name, attrs)).or_default();
            entry.0.insert(n);
            entry.1 += value;
        }
    }
    for t in 0..TRACES {
        let whole = spans_by_trace
            .get(&trace_id(t))
            .is_some_and(|(sinks, spans, count)| {
                sinks.len() == 1 && spans.len() as u64 == SPANS && *count as u64 == SPANS
            });
        if is_error_trace(t) {
            if whole {
                outcome.error_traces_whole += 1
            } else {
                outcome.error_traces_broken += 1
            }
        } else if whole {
            outcome.other_kept += 1;
        }
    }
    for (sinks, spans, count) in spans_by_trace.values() {
        outcome.exported_traces += 1;
        if sinks.len() != 1 || spans.len() as u64 != SPANS || *count as u64 != SPANS {
            outcome.incomplete_traces += 1;
        }
    }
    for (stream, total) in &truth {
        match streams.get(stream) {
            Some((agents, sum)) => {
                if agents.len() > 1 {
                    outcome.streams_on_several_agents += 1;
                }
                if sum == total {
                    outcome.streams_exact += 1
                } else {
                    outcome.streams_wrong += 1
                }
            }
            None => outcome.streams_wrong += 1,
        }
    }
    outcome
}

async fn agents(dir: &Path, sinks: &[Sink]) -> (Vec<SocketAddr>, Vec<Proc>) {
    let mut addrs = Vec::new();
    let mut procs = Vec::new();
    for (i, sink) in sinks.iter().enumerate() {
        let agent = spawn(dir, &format!("agent-{i}"), &agent_yaml(sink.addr)).await;
        addrs.push(agent.grpc);
        procs.push(agent);
    }
    (addrs, procs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_tier_keeps_traces_whole_and_deltas_exact_where_round_robin_fails() {
    let dir = tempfile::tempdir().expect("tempdir");

    // With the first tier.
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let (agent_addrs, agent_procs) = agents(dir.path(), &sinks).await;
    let front = spawn(dir.path(), "first-tier", &first_tier_yaml(&agent_addrs)).await;
    let grpc = front.grpc;
    let keyed = run(&[grpc], false, &sinks, async || {
        front.stop().await;
        for p in agent_procs {
            p.stop().await;
        }
    })
    .await;

    // Round-robin straight to fresh agents.
    let rr_sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let (rr_addrs, rr_procs) = agents(dir.path(), &rr_sinks).await;
    let round_robin = run(&rr_addrs, true, &rr_sinks, async || {
        for p in rr_procs {
            p.stop().await;
        }
    })
    .await;

    println!("with the first tier: {keyed:?}");
    println!("round-robin:         {round_robin:?}");

    let error_traces = (0..TRACES).filter(|t| is_error_trace(*t)).count();
    assert_eq!(
        keyed.error_traces_whole, error_traces,
        "every error trace arrives whole"
    );
    assert_eq!(keyed.error_traces_broken, 0);
    assert_eq!(keyed.incomplete_traces, 0, "every exported trace is whole");
    let others = TRACES as usize - error_traces;
    let share = keyed.other_kept as f64 / others as f64;
    assert!(
        (0.05..=0.16).contains(&share),
        "about 10% of other traces kept, got {share:.3}"
    );
    assert_eq!(
        keyed.streams_exact, STREAMS as usize,
        "every stream's deltas add up exactly"
    );
    assert_eq!(
        keyed.streams_on_several_agents, 0,
        "each stream from exactly one agent"
    );

    assert!(
        round_robin.incomplete_traces > 0,
        "round-robin breaks traces apart"
    );
    assert!(
        round_robin.streams_wrong > 0,
        "round-robin gets deltas wrong"
    );
}
