//! Behaviour of the tail sampling processor with hand-built traces: every
//! policy type, the decision rule, timing under paused time, the trace table
//! bounds, late spans, and whole-trace export.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use prost::Message;

use super::*;
use crate::{
    config::{ComponentId, Config, processors::ProcessorConfig},
    proto::{
        common::v1::{AnyValue, KeyValue, any_value::Value},
        trace::v1::{ResourceSpans, ScopeSpans, Status, status::StatusCode},
    },
};

// ------------------------------------------------------------------ fixtures

/// Records every request it is given; fails them all while `fail` is set.
#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<ExportTraceServiceRequest>>,
    fail: AtomicBool,
}

impl Consumer for Recorder {
    fn consume(&self, signal: Signal, request: Bytes, _: Metadata) -> ConsumeFuture<'_> {
        assert_eq!(signal, Signal::Traces);
        let decoded = ExportTraceServiceRequest::decode(request).expect("valid request");
        let fail = self.fail.load(Ordering::Relaxed);
        if !fail {
            self.requests.lock().unwrap().push(decoded);
        }
        Box::pin(async move {
            if fail {
                Err(ConsumeError::Unavailable("backend down".into()))
            } else {
                Ok(Ack::ok())
            }
        })
    }
}

impl Recorder {
    fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Every (trace, span) received, sorted; duplicates stay.
    fn spans(&self) -> Vec<(u32, u8)> {
        let mut out: Vec<(u32, u8)> = self
            .requests()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter())
            .map(key)
            .collect();
        out.sort();
        out
    }

    fn traces(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self.spans().into_iter().map(|(t, _)| t).collect();
        set.into_iter().collect()
    }
}

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// Trace ids vary in their first bytes, where FNV mixes them well.
fn tid(n: u32) -> Vec<u8> {
    let mut id = n.to_be_bytes().to_vec();
    id.extend([0xab; 12]);
    id
}

fn key(span: &Span) -> (u32, u8) {
    let n = u32::from_be_bytes(span.trace_id[..4].try_into().unwrap());
    (n, span.span_id[0])
}

/// Span `n` of trace `trace`, 1 ms long.
fn span(trace: u32, n: u8) -> Span {
    timed(trace, n, 0, 1)
}

/// Span `n` of trace `trace`, from `start_ms` to `end_ms` after T0.
fn timed(trace: u32, n: u8, start_ms: u64, end_ms: u64) -> Span {
    Span {
        trace_id: tid(trace),
        span_id: vec![n; 8],
        name: format!("op-{n}"),
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + end_ms * MS,
        ..Span::default()
    }
}

fn status(mut span: Span, code: StatusCode) -> Span {
    span.status = Some(Status {
        code: code as i32,
        ..Status::default()
    });
    span
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn with_attr(mut span: Span, key: &str, value: Value) -> Span {
    span.attributes.push(kv(key, value));
    span
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_string())
}

/// One request: the spans under one resource with `attrs` and one scope.
fn request(attrs: Vec<KeyValue>, spans: Vec<Span>) -> Bytes {
    Bytes::from(
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: attrs,
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "test".into(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec(),
    )
}

fn service(name: &str) -> Vec<KeyValue> {
    vec![kv("service.name", s(name))]
}

/// The `tail_sampling` block `body` (YAML flow mapping), loaded and
/// validated through the real config.
fn config(body: &str) -> TailSamplingConfig {
    let yaml = format!(
        "receivers: {{otlp: {{protocols: {{grpc: {{endpoint: '127.0.0.1:0'}}}}}}}}\n\
         processors: {{tail_sampling: {body}}}\n\
         exporters: {{debug: {{}}}}\n\
         service: {{pipelines: {{traces: {{receivers: [otlp], processors: [tail_sampling], \
         exporters: [debug]}}}}}}\n"
    );
    let config = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    match config
        .processors
        .get(&ComponentId::parse("tail_sampling").unwrap())
    {
        Some(ProcessorConfig::TailSampling(c)) => c.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

struct Harness {
    ts: Arc<TailSampling>,
    out: Arc<Recorder>,
    telemetry: Arc<Telemetry>,
}

fn harness(body: &str) -> Harness {
    let out = Arc::new(Recorder::default());
    let telemetry = Telemetry::new();
    let ts = TailSampling::new("tail_sampling", &config(body), out.clone(), &telemetry)
        .expect("processor builds");
    Harness { ts, out, telemetry }
}

impl Harness {
    async fn send(&self, spans: Vec<Span>) {
        self.send_as(service("checkout"), spans).await;
    }

    async fn send_as(&self, resource: Vec<KeyValue>, spans: Vec<Span>) {
        let ack = self
            .ts
            .consume(Signal::Traces, request(resource, spans), Metadata::NONE)
            .await
            .expect("accepted");
        assert_eq!(ack, Ack::ok());
    }

    /// The value of the metric line starting with `prefix` (name and labels).
    fn metric(&self, prefix: &str) -> Option<String> {
        let text = self.telemetry.render();
        text.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .map(|l| l[prefix.len() + 1..].to_string())
    }
}

/// Sends each trace in its own request, flushes, checks that every kept
/// trace arrived whole and exactly once, and returns the kept trace numbers.
async fn kept(policies: &str, traces: Vec<Vec<Span>>) -> Vec<u32> {
    kept_with(&format!("{{policies: {policies}}}"), traces).await
}

async fn kept_with(body: &str, traces: Vec<Vec<Span>>) -> Vec<u32> {
    let h = harness(body);
    for trace in &traces {
        h.send(trace.clone()).await;
    }
    h.ts.flush().await;
    check_whole(&h.out, &traces)
}

fn check_whole(out: &Recorder, traces: &[Vec<Span>]) -> Vec<u32> {
    let kept = out.traces();
    let mut expected: Vec<(u32, u8)> = traces
        .iter()
        .flatten()
        .map(key)
        .filter(|(t, _)| kept.contains(t))
        .collect();
    expected.sort();
    assert_eq!(out.spans(), expected, "kept traces arrive whole, once");
    assert!(out.requests().len() <= 1, "one flush, one request");
    kept
}

// ------------------------------------------------------------------ policies

#[tokio::test]
async fn always_sample_keeps_every_trace() {
    let traces = vec![vec![span(1, 1), span(1, 2)], vec![span(2, 1)]];
    assert_eq!(
        kept("[{name: all, type: always_sample}]", traces).await,
        [1, 2]
    );
}

#[tokio::test]
async fn latency_is_the_trace_duration() {
    let traces = || {
        vec![
            // 99 ms: no span alone is that long.
            vec![timed(1, 1, 0, 50), timed(1, 2, 30, 99)],
            vec![timed(2, 1, 0, 50), timed(2, 2, 20, 100)],
            vec![timed(3, 1, 100, 600)],
            vec![timed(4, 1, 0, 201)],
        ]
    };
    let policy = |block: &str| format!("[{{name: slow, type: latency, latency: {block}}}]");
    assert_eq!(
        kept(&policy("{threshold_ms: 100}"), traces()).await,
        [2, 3, 4]
    );
    assert_eq!(
        kept(
            &policy("{threshold_ms: 100, upper_threshold_ms: 200}"),
            traces()
        )
        .await,
        [2]
    );
}

#[tokio::test]
async fn status_code_matches_any_span() {
    let traces = || {
        vec![
            vec![span(1, 1), span(1, 2)],
            vec![span(2, 1), status(span(2, 2), StatusCode::Error)],
            vec![status(span(3, 1), StatusCode::Ok)],
        ]
    };
    let policy = |codes: &str| {
        format!("[{{name: s, type: status_code, status_code: {{status_codes: {codes}}}}}]")
    };
    assert_eq!(kept(&policy("[ERROR]"), traces()).await, [2]);
    assert_eq!(kept(&policy("[OK, ERROR]"), traces()).await, [2, 3]);
    assert_eq!(kept(&policy("[UNSET]"), traces()).await, [1, 2]);
}

#[tokio::test]
async fn string_attribute_on_spans_and_resources() {
    let h = |body: &'static str| async move {
        let h = harness(body);
        h.send(vec![
            span(1, 1),
            with_attr(span(1, 2), "http.route", s("/checkout")),
        ])
        .await;
        h.send(vec![with_attr(span(2, 1), "http.route", s("/cart"))])
            .await;
        h.send_as(vec![kv("http.route", s("/checkout"))], vec![span(3, 1)])
            .await;
        h.send(vec![span(4, 1)]).await;
        h.send(vec![with_attr(
            span(5, 1),
            "http.route",
            Value::IntValue(1),
        )])
        .await;
        h.ts.flush().await;
        h.out.traces()
    };
    assert_eq!(
        h("{policies: [{name: r, type: string_attribute, \
           string_attribute: {key: http.route, values: [/checkout, /pay]}}]}")
        .await,
        [1, 3]
    );
    assert_eq!(
        h(
            "{policies: [{name: r, type: string_attribute, string_attribute: \
           {key: http.route, values: ['^/c', 'x$'], enabled_regex_matching: true}}]}"
        )
        .await,
        [1, 2, 3]
    );
    // Inverted: traces without a match are sampled...
    assert_eq!(
        h(
            "{policies: [{name: r, type: string_attribute, string_attribute: \
           {key: http.route, values: [/checkout], invert_match: true}}]}"
        )
        .await,
        [2, 4, 5]
    );
    // ...and a match vetoes the trace whatever other policies say.
    assert_eq!(
        h(
            "{policies: [{name: all, type: always_sample}, {name: r, type: string_attribute, \
           string_attribute: {key: http.route, values: [/checkout], invert_match: true}}]}"
        )
        .await,
        [2, 4, 5]
    );
}

#[tokio::test]
async fn numeric_attribute_range_and_invert() {
    let traces = || {
        let code = |t, v| {
            vec![with_attr(
                span(t, 1),
                "http.status_code",
                Value::IntValue(v),
            )]
        };
        vec![
            code(1, 503),
            code(2, 200),
            code(3, 599),
            code(4, 600),
            vec![with_attr(span(5, 1), "http.status_code", s("503"))],
        ]
    };
    let policy = |block: &str| {
        format!(
            "[{{name: n, type: numeric_attribute, numeric_attribute: {{key: http.status_code, {block}}}}}]"
        )
    };
    assert_eq!(
        kept(&policy("min_value: 500, max_value: 599"), traces()).await,
        [1, 3]
    );
    assert_eq!(kept(&policy("min_value: 500"), traces()).await, [1, 3, 4]);
    assert_eq!(kept(&policy("max_value: 503"), traces()).await, [1, 2]);
    assert_eq!(
        kept(
            &policy("min_value: 500, max_value: 599, invert_match: true"),
            traces()
        )
        .await,
        [2, 4, 5]
    );
}

#[tokio::test]
async fn boolean_attribute_value_and_invert() {
    let traces = || {
        vec![
            vec![with_attr(span(1, 1), "retry", Value::BoolValue(true))],
            vec![with_attr(span(2, 1), "retry", Value::BoolValue(false))],
            vec![span(3, 1)],
        ]
    };
    let policy = |block: &str| {
        format!(
            "[{{name: b, type: boolean_attribute, boolean_attribute: {{key: retry, {block}}}}}]"
        )
    };
    assert_eq!(kept(&policy("value: true"), traces()).await, [1]);
    assert_eq!(kept(&policy("value: false"), traces()).await, [2]);
    assert_eq!(
        kept(&policy("value: true, invert_match: true"), traces()).await,
        [2, 3]
    );
}

#[tokio::test]
async fn probabilistic_is_the_collectors_hash_of_the_trace_id() {
    let traces = || (1..=20).map(|t| vec![span(t, 1)]).collect::<Vec<_>>();
    let policy =
        |block: &str| format!("[{{name: p, type: probabilistic, probabilistic: {block}}}]");
    // Expected sets from an independent FNV-1a 64 of salt ++ trace id, kept
    // when at most percentage * 2^64 (the collector's rule).
    assert_eq!(
        kept(&policy("{sampling_percentage: 50}"), traces()).await,
        [9, 11, 14, 17, 18, 19]
    );
    assert_eq!(
        kept(
            &policy("{sampling_percentage: 50, hash_salt: tier-2}"),
            traces()
        )
        .await,
        [1, 3, 4, 5, 6, 7, 9, 11, 16, 17, 18]
    );
    assert_eq!(
        kept(&policy("{sampling_percentage: 0}"), traces()).await,
        Vec::<u32>::new()
    );
    assert_eq!(
        kept(&policy("{sampling_percentage: 100}"), traces()).await,
        (1..=20).collect::<Vec<_>>()
    );
    let many = (1..=1000).map(|t| vec![span(t, 1)]).collect::<Vec<_>>();
    assert_eq!(
        kept(&policy("{sampling_percentage: 10}"), many).await.len(),
        95
    );
}

#[tokio::test]
async fn span_count_bounds() {
    let traces = || {
        vec![
            vec![span(1, 1)],
            (1..=3).map(|n| span(2, n)).collect(),
            (1..=5).map(|n| span(3, n)).collect(),
        ]
    };
    let policy = |block: &str| format!("[{{name: c, type: span_count, span_count: {block}}}]");
    assert_eq!(
        kept(&policy("{min_spans: 2, max_spans: 4}"), traces()).await,
        [2]
    );
    assert_eq!(kept(&policy("{min_spans: 3}"), traces()).await, [2, 3]);
}

#[tokio::test]
async fn trace_state_key_value_in_any_span() {
    let state = |mut span: Span, ts: &str| {
        span.trace_state = ts.to_string();
        span
    };
    let traces = vec![
        vec![state(span(1, 1), "lb=keep")],
        vec![state(span(2, 1), "other=1, lb=drop")],
        vec![span(3, 1), state(span(3, 2), "a=b, lb=keep")],
        vec![state(span(4, 1), "xlb=keep")],
    ];
    assert_eq!(
        kept(
            "[{name: t, type: trace_state, trace_state: {key: lb, values: [keep, yes]}}]",
            traces
        )
        .await,
        [1, 3]
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limiting_spends_a_budget_per_second() {
    let h = harness(
        "{policies: [{name: r, type: rate_limiting, rate_limiting: {spans_per_second: 5}}]}",
    );
    let two = |t| vec![span(t, 1), span(t, 2)];
    for t in 1..=4 {
        h.send(two(t)).await;
    }
    h.ts.flush().await;
    // 2 + 2 spans fit in 5; a third trace would make 6.
    assert_eq!(h.out.traces(), [1, 2]);

    tokio::time::advance(Duration::from_millis(999)).await;
    h.send(two(5)).await;
    h.ts.flush().await;
    assert_eq!(h.out.traces(), [1, 2], "same second, budget spent");

    tokio::time::advance(Duration::from_millis(1)).await;
    for t in 6..=8 {
        h.send(two(t)).await;
    }
    h.ts.flush().await;
    assert_eq!(h.out.traces(), [1, 2, 6, 7], "a new second, a new budget");
}

#[tokio::test]
async fn and_needs_every_sub_policy() {
    let traces = vec![
        vec![status(timed(1, 1, 0, 10), StatusCode::Error)],
        vec![timed(2, 1, 0, 500)],
        vec![status(timed(3, 1, 0, 500), StatusCode::Error)],
    ];
    assert_eq!(
        kept(
            "[{name: slow-errors, type: and, and: {and_sub_policy: [\
             {name: e, type: status_code, status_code: {status_codes: [ERROR]}}, \
             {name: l, type: latency, latency: {threshold_ms: 100}}]}}]",
            traces
        )
        .await,
        [3]
    );
}

#[tokio::test]
async fn not_inverts_its_sub_policy() {
    let traces = vec![
        vec![status(span(1, 1), StatusCode::Error)],
        vec![span(2, 1)],
        vec![status(span(3, 1), StatusCode::Ok)],
    ];
    assert_eq!(
        kept(
            "[{name: no-errors, type: not, not: {not_sub_policy: \
             {name: e, type: status_code, status_code: {status_codes: [ERROR]}}}}]",
            traces
        )
        .await,
        [2, 3]
    );
}

#[tokio::test]
async fn drop_wins_when_all_its_sub_policies_match() {
    let health = |t, n| with_attr(span(t, n), "http.route", s("/health"));
    let traces = || {
        vec![
            vec![health(1, 1)],
            vec![health(2, 1), span(2, 2)],
            vec![with_attr(span(3, 1), "http.route", s("/checkout"))],
        ]
    };
    let drop = "{name: health, type: drop, drop: {drop_sub_policy: [\
                {name: h, type: string_attribute, string_attribute: {key: http.route, values: [/health]}}, \
                {name: one, type: span_count, span_count: {min_spans: 1, max_spans: 1}}]}}";
    let all = "{name: all, type: always_sample}";
    assert_eq!(kept(&format!("[{all}, {drop}]"), traces()).await, [2, 3]);
    assert_eq!(kept(&format!("[{drop}, {all}]"), traces()).await, [2, 3]);
}

#[tokio::test]
async fn composite_shares_the_budget_in_policy_order() {
    let error = |t| vec![status(span(t, 1), StatusCode::Error), span(t, 2)];
    let ok = |t| vec![span(t, 1), span(t, 2)];
    // Errors 1-4, others 5-8, two spans each, in this arrival order.
    let traces = vec![
        error(1),
        error(2),
        error(3),
        ok(5),
        ok(6),
        ok(7),
        error(4),
        ok(8),
    ];
    let composite = |allocation: &str| {
        format!(
            "[{{name: c, type: composite, composite: {{max_total_spans_per_second: 10, \
             policy_order: [errors, everything], composite_sub_policy: [\
             {{name: everything, type: always_sample}}, \
             {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}]\
             {allocation}}}}}]"
        )
    };
    // errors: 4 spans/s, everything: 6. Errors 1 and 2 use the errors share;
    // error 3 overflows it and falls through to everything, with 5 and 6;
    // 7, 4 and 8 find every share spent.
    assert_eq!(
        kept(
            &composite(
                ", rate_allocation: [{policy: errors, percent: 40}, {policy: everything, percent: 60}]"
            ),
            traces.clone()
        )
        .await,
        [1, 2, 3, 5, 6]
    );
    // No allocation: equal shares of 5. Errors takes 1 and 2; 3 falls
    // through to everything, which then takes 5 and is full at 4 of 5.
    assert_eq!(kept(&composite(""), traces).await, [1, 2, 3, 5]);
}

// ------------------------------------------------------------- decision rule

#[tokio::test]
async fn unsampled_traces_produce_no_output() {
    let h =
        harness("{policies: [{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]}");
    h.send(vec![span(1, 1), span(1, 2)]).await;
    h.send(vec![status(span(2, 1), StatusCode::Ok)]).await;
    h.ts.flush().await;
    assert!(h.out.requests().is_empty());
    assert_eq!(h.ts.pending(), 0);
    let p = "otelcol_processor_tail_sampling";
    assert_eq!(
        h.metric(&format!(
            "{p}_global_count_traces_sampled_total{{processor=\"tail_sampling\",sampled=\"false\"}}"
        ))
        .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn a_drop_beats_any_number_of_samples() {
    let traces = vec![vec![span(1, 1)], vec![span(2, 1)]];
    assert_eq!(
        kept(
            "[{name: a, type: always_sample}, {name: b, type: span_count, span_count: {min_spans: 1}}, \
             {name: d, type: drop, drop: {drop_sub_policy: [{name: x, type: always_sample}]}}]",
            traces
        )
        .await,
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn sample_on_first_match_stops_at_the_first_sample() {
    let policies = "[{name: all, type: always_sample}, {name: veto, type: boolean_attribute, \
                    boolean_attribute: {key: retry, value: true, invert_match: true}}]";
    let traces = || vec![vec![with_attr(span(1, 1), "retry", Value::BoolValue(true))]];
    // Evaluated, the inverted match vetoes the trace...
    assert_eq!(
        kept_with(&format!("{{policies: {policies}}}"), traces()).await,
        Vec::<u32>::new()
    );
    // ...but with sample_on_first_match it is never reached.
    let h = harness(&format!(
        "{{sample_on_first_match: true, policies: {policies}}}"
    ));
    h.send(traces()[0].clone()).await;
    h.ts.flush().await;
    assert_eq!(h.out.traces(), [1]);
    let counted = |policy: &str| {
        h.metric(&format!(
            "otelcol_processor_tail_sampling_count_traces_sampled_total\
             {{processor=\"tail_sampling\",policy=\"{policy}\",sampled=\"true\"}}"
        ))
    };
    assert_eq!(counted("all").as_deref(), Some("1"));
    assert_eq!(counted("veto").as_deref(), Some("0"));
}

// ------------------------------------------------------------------- timing

#[tokio::test(start_paused = true)]
async fn traces_are_decided_decision_wait_after_their_first_span() {
    let h = harness("{decision_wait: 10s, policies: [{name: all, type: always_sample}]}");
    let run = tokio::spawn(h.ts.clone().run());
    h.send(vec![span(1, 1)]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.send(vec![span(2, 1)]).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    h.send(vec![span(1, 2)]).await;
    assert!(h.out.requests().is_empty(), "t=9.5s: nothing due yet");
    assert_eq!(h.ts.pending(), 2);

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.out.spans(), [(1, 1), (1, 2)], "t=10.5s: trace 1 only");
    assert_eq!(h.out.requests().len(), 1);
    assert_eq!(h.ts.pending(), 1);

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.out.spans(), [(1, 1), (1, 2), (2, 1)], "t=15.5s: trace 2");
    assert_eq!(h.out.requests().len(), 2);
    assert_eq!(h.ts.pending(), 0);
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_sampling_traces_on_memory{processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("0")
    );
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn traces_due_in_one_tick_leave_in_one_request() {
    let h = harness("{decision_wait: 2s, policies: [{name: all, type: always_sample}]}");
    let run = tokio::spawn(h.ts.clone().run());
    for t in 1..=5 {
        h.send(vec![span(t, 1), span(t, 2)]).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.out.requests().len(), 1);
    assert_eq!(h.out.spans().len(), 10);
    run.abort();
}

#[tokio::test(start_paused = true)]
async fn run_flushes_and_ends_when_the_pipeline_lets_go() {
    let out = Arc::new(Recorder::default());
    let telemetry = Telemetry::new();
    let config = config("{decision_wait: 30s, policies: [{name: all, type: always_sample}]}");
    let ts = TailSampling::new("tail_sampling", &config, out.clone(), &telemetry).unwrap();
    let run = tokio::spawn(ts.clone().run());
    ts.consume(
        Signal::Traces,
        request(service("a"), vec![span(1, 1)]),
        Metadata::NONE,
    )
    .await
    .unwrap();
    drop(ts);
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run ends")
        .unwrap();
    assert_eq!(out.spans(), [(1, 1)], "pending trace flushed, not lost");
    assert_eq!(Arc::strong_count(&out), 1, "next released");
}

// --------------------------------------------------------- the trace table

#[tokio::test]
async fn beyond_num_traces_the_oldest_is_decided_early() {
    let h = harness("{num_traces: 2, policies: [{name: all, type: always_sample}]}");
    h.send(vec![span(1, 1), span(1, 2)]).await;
    h.send(vec![span(2, 1)]).await;
    assert!(h.out.requests().is_empty());
    h.send(vec![span(3, 1)]).await;
    assert_eq!(h.out.spans(), [(1, 1), (1, 2)], "trace 1 decided at once");
    assert_eq!(h.ts.pending(), 2);
    h.send(vec![span(4, 1)]).await;
    assert_eq!(h.out.traces(), [1, 2]);
    assert_eq!(h.ts.pending(), 2);
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total\
             {processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("2")
    );
    h.ts.flush().await;
    assert_eq!(h.out.traces(), [1, 2, 3, 4]);
    assert_eq!(h.out.spans().len(), 5, "every span exactly once");
}

#[tokio::test]
async fn decided_traces_make_room_before_pending_ones() {
    let h = harness("{num_traces: 2, policies: [{name: all, type: always_sample}]}");
    h.send(vec![span(1, 1)]).await;
    h.ts.flush().await;
    h.send(vec![span(2, 1)]).await;
    // Full (1 decided, 2 pending): forgetting 1 is enough.
    h.send(vec![span(3, 1)]).await;
    assert_eq!(h.ts.pending(), 2);
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total\
             {processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn late_spans_follow_a_decision_still_held() {
    let h =
        harness("{policies: [{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]}");
    h.send(vec![status(span(1, 1), StatusCode::Error)]).await;
    h.send(vec![span(2, 1)]).await;
    h.ts.flush().await;
    assert_eq!(h.out.spans(), [(1, 1)]);
    h.send(vec![span(1, 2), span(2, 2), span(1, 3)]).await;
    assert_eq!(
        h.out.spans(),
        [(1, 1), (1, 2), (1, 3)],
        "sampled: sent at once"
    );
    assert_eq!(h.out.requests().len(), 2);
    assert_eq!(h.ts.pending(), 0, "late spans start no trace");
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_sampling_late_span_age_count\
             {processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("3")
    );
}

/// Decides 1 (sampled) and 2 (not), then pushes both out of a one-slot
/// table, then sends a late span of each.
async fn late_after_eviction(cache: &str) -> Harness {
    let h = harness(&format!(
        "{{num_traces: 1, decision_cache: {cache}, \
         policies: [{{name: e, type: status_code, status_code: {{status_codes: [ERROR]}}}}]}}"
    ));
    h.send(vec![status(span(1, 1), StatusCode::Error)]).await;
    h.send(vec![span(2, 1)]).await; // decides 1 early
    h.ts.flush().await; // decides 2
    h.send(vec![span(3, 1)]).await; // forgets 2
    assert_eq!(h.out.spans(), [(1, 1)]);
    h.send(vec![span(1, 2)]).await;
    h.send(vec![span(2, 2)]).await;
    h
}

#[tokio::test]
async fn late_spans_follow_the_decision_cache() {
    let h = late_after_eviction("{sampled_cache_size: 10, non_sampled_cache_size: 10}").await;
    assert_eq!(h.out.spans(), [(1, 1), (1, 2)]);
    assert_eq!(h.ts.pending(), 1, "only trace 3");
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_new_trace_id_received_total{processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("3")
    );
}

#[tokio::test]
async fn without_a_cache_late_spans_start_a_new_trace() {
    let h = late_after_eviction("{}").await;
    // Each late span found nothing, so it became a new trace; the table holds
    // one, so each new trace decided the one before early.
    assert_eq!(h.ts.pending(), 1);
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_new_trace_id_received_total{processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("5")
    );
    h.ts.flush().await;
    assert_eq!(h.out.spans(), [(1, 1)], "1's late span alone has no error");
}

#[tokio::test]
async fn a_trace_over_maximum_trace_size_bytes_is_decided_at_once() {
    let h =
        harness("{maximum_trace_size_bytes: 2500, policies: [{name: all, type: always_sample}]}");
    let big = |t, n| with_attr(span(t, n), "payload", s(&"x".repeat(1000)));
    h.send(vec![big(1, 1)]).await;
    h.send(vec![big(1, 2), big(2, 1)]).await;
    assert!(h.out.requests().is_empty(), "about 2100 bytes: still held");
    h.send(vec![big(1, 3)]).await;
    assert_eq!(h.out.spans(), [(1, 1), (1, 2), (1, 3)]);
    assert_eq!(h.ts.pending(), 1);
    h.send(vec![big(1, 4)]).await;
    assert_eq!(
        h.out.spans(),
        [(1, 1), (1, 2), (1, 3), (1, 4)],
        "later spans follow the decision"
    );
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_sampling_trace_too_large_total{processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("1")
    );
}

// ------------------------------------------------------------------ export

#[tokio::test]
async fn sampled_traces_leave_whole_and_regrouped() {
    let h = harness("{policies: [{name: all, type: always_sample}]}");
    // Two traces across two services, over four requests.
    h.send_as(service("checkout"), vec![span(1, 1), span(2, 1)])
        .await;
    h.send_as(service("cart"), vec![span(1, 2)]).await;
    h.send_as(service("checkout"), vec![span(1, 3), span(2, 2)])
        .await;
    h.send_as(service("cart"), vec![span(2, 3), span(1, 4)])
        .await;
    h.ts.flush().await;
    let requests = h.out.requests();
    assert_eq!(requests.len(), 1);
    let services: Vec<(String, Vec<(u32, u8)>)> = requests[0]
        .resource_spans
        .iter()
        .map(|rs| {
            let name = match &rs.resource.as_ref().unwrap().attributes[0].value {
                Some(AnyValue {
                    value: Some(Value::StringValue(v)),
                }) => v.clone(),
                other => panic!("{other:?}"),
            };
            assert_eq!(rs.scope_spans.len(), 1, "one scope per resource");
            let mut spans: Vec<_> = rs.scope_spans[0].spans.iter().map(key).collect();
            spans.sort();
            (name, spans)
        })
        .collect();
    assert_eq!(
        services,
        [
            ("checkout".to_string(), vec![(1, 1), (1, 3), (2, 1), (2, 2)]),
            ("cart".to_string(), vec![(1, 2), (1, 4), (2, 3)]),
        ]
    );
}

#[test]
fn the_batcher_cuts_between_traces_never_inside_one() {
    let resource = Origin::resource(None, String::new());
    let scope = Origin::scope(None, String::new());
    let trace = |t: u32, spans: u8| {
        let mut trace = Trace::default();
        for n in 1..=spans {
            trace.push(&resource, &scope, span(t, n));
        }
        trace
    };
    let one = trace(1, 1).bytes;
    let mut batcher = Batcher::new(3 * one);
    for (t, spans) in [(1, 2), (2, 1), (3, 5), (4, 1), (5, 1)] {
        batcher.add(trace(t, spans));
    }
    let requests: Vec<Vec<(u32, u8)>> = batcher
        .finish()
        .into_iter()
        .map(|(bytes, spans)| {
            let r = ExportTraceServiceRequest::decode(bytes).unwrap();
            let keys: Vec<_> = r.resource_spans[0].scope_spans[0]
                .spans
                .iter()
                .map(key)
                .collect();
            assert_eq!(keys.len() as u64, spans);
            keys
        })
        .collect();
    assert_eq!(
        requests,
        [
            vec![(1, 1), (1, 2), (2, 1)],
            vec![(3, 1), (3, 2), (3, 3), (3, 4), (3, 5)],
            vec![(4, 1), (5, 1)],
        ]
    );
}

#[tokio::test]
async fn a_failing_next_stage_is_counted() {
    let h = harness("{policies: [{name: all, type: always_sample}]}");
    h.out.fail.store(true, Ordering::Relaxed);
    h.send(vec![span(1, 1), span(1, 2)]).await;
    h.ts.flush().await;
    assert_eq!(
        h.metric(
            "otelcol_processor_tail_sampling_export_failed_spans_total{processor=\"tail_sampling\"}"
        )
        .as_deref(),
        Some("2")
    );
}

// ------------------------------------------------------------------ intake

#[tokio::test]
async fn only_traces_with_valid_ids_are_taken() {
    let h = harness("{policies: [{name: all, type: always_sample}]}");
    let err =
        h.ts.consume(Signal::Metrics, Bytes::new(), Metadata::NONE)
            .await
            .unwrap_err();
    assert!(matches!(err, ConsumeError::InvalidArgument(_)), "{err:?}");
    let err =
        h.ts.consume(
            Signal::Traces,
            Bytes::from_static(b"\xff\xff"),
            Metadata::NONE,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::InvalidArgument(_)), "{err:?}");

    let mut zero = span(1, 1);
    zero.trace_id = vec![0; 16];
    let mut short = span(1, 2);
    short.trace_id = vec![1; 8];
    let ack =
        h.ts.consume(
            Signal::Traces,
            request(service("a"), vec![zero, span(1, 3), short]),
            Metadata::NONE,
        )
        .await
        .unwrap();
    assert_eq!(
        ack,
        Ack {
            rejected: 2,
            message: "2 spans without a valid trace id".into()
        }
    );
    assert_eq!(h.ts.pending(), 1);
}

// ------------------------------------------------------------------ summary

#[test]
fn summary_line_shows_what_changed() {
    let names = ["status_code", "latency", "probabilistic"].map(String::from);
    let last = Tally {
        decided: 10,
        kept: 2,
        kept_by_policy: vec![1, 1, 0],
        late_spans: 0,
    };
    let now = Tally {
        decided: 130,
        kept: 16,
        kept_by_policy: vec![7, 4, 5],
        late_spans: 0,
    };
    assert_eq!(
        summary_line("tail_sampling/agent-1", &names, &last, &now, 42).as_deref(),
        Some(
            "tail_sampling/agent-1: 120 traces decided, 14 kept (status_code: 6, latency: 3, \
             probabilistic: 5), 0 late spans, 42 pending"
        )
    );
    assert_eq!(summary_line("x", &names, &now, &now, 42), None);
    let late = Tally {
        late_spans: 3,
        ..now.clone()
    };
    assert_eq!(
        summary_line("x", &names, &now, &late, 0).as_deref(),
        Some("x: 0 traces decided, 0 kept, 3 late spans, 0 pending")
    );
}

#[tokio::test]
async fn every_metric_passes_promtool() {
    let h = harness(
        "{num_traces: 1, maximum_trace_size_bytes: 100000, \
         policies: [{name: all, type: always_sample}]}",
    );
    h.send(vec![span(1, 1)]).await;
    h.send(vec![span(2, 1)]).await;
    h.send(vec![span(1, 2)]).await;
    h.ts.flush().await;
    h.telemetry.upkeep();
    let text = h.telemetry.render();
    for name in [
        names::TS_COUNT_TRACES_SAMPLED,
        names::TS_GLOBAL_COUNT_TRACES_SAMPLED,
        names::TS_LATE_SPAN_AGE,
        names::TS_TRACE_DROPPED_TOO_EARLY,
        names::TS_TRACE_TOO_LARGE,
        names::TS_DECISION_TIMER_LATENCY,
        names::TS_TRACES_ON_MEMORY,
        names::TS_NEW_TRACE_ID_RECEIVED,
        names::TS_EXPORT_FAILED_SPANS,
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
    }
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (.ci/run installs the prometheus package)");
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
