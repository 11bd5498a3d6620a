//! Hand-worked sequences through the whole processor: encoded requests in,
//! what a recording consumer downstream got out.

use std::sync::Mutex;

use super::*;
use crate::{
    config::processors::{MatchType, MetricFilter, MetricType},
    proto::{
        common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
        metrics::v1::{
            ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
            HistogramDataPoint, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
            SummaryDataPoint, exponential_histogram_data_point::Buckets, number_data_point,
        },
        resource::v1::Resource,
    },
};

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

/// The start time of most streams, and the timestamps of their points.
const S: u64 = 1_000;
const fn t(i: u64) -> u64 {
    S + 10 * i
}

/// Records every request it gets, raw and decoded.
#[derive(Default)]
struct Recorder {
    raw: Mutex<Vec<Bytes>>,
}

impl Recorder {
    fn count(&self) -> usize {
        self.raw.lock().unwrap().len()
    }

    fn last(&self) -> ExportMetricsServiceRequest {
        let raw = self.raw.lock().unwrap();
        ExportMetricsServiceRequest::decode(raw.last().unwrap().as_ref()).unwrap()
    }
}

impl Consumer for Recorder {
    fn consume(&self, signal: Signal, request: Bytes, _: Metadata) -> ConsumeFuture<'_> {
        assert_eq!(signal, Signal::Metrics);
        self.raw.lock().unwrap().push(request);
        Box::pin(async { Ok(Ack::ok()) })
    }
}

struct Harness {
    p: Arc<CumulativeToDelta>,
    out: Arc<Recorder>,
    telemetry: Arc<Telemetry>,
}

impl Harness {
    fn new(config: CumulativeToDeltaConfig) -> Harness {
        let out = Arc::new(Recorder::default());
        let telemetry = Telemetry::new();
        let p =
            CumulativeToDelta::new("cumulativetodelta", &config, out.clone(), &telemetry).unwrap();
        Harness { p, out, telemetry }
    }

    fn with(initial_value: InitialValue) -> Harness {
        Harness::new(CumulativeToDeltaConfig {
            initial_value,
            ..Default::default()
        })
    }

    /// Sends `request` at `now`; what was forwarded, or `None` when nothing was.
    async fn request_at(
        &self,
        request: &ExportMetricsServiceRequest,
        now: Instant,
    ) -> Option<ExportMetricsServiceRequest> {
        let before = self.out.count();
        let ack = self
            .p
            .consume_at(
                Signal::Metrics,
                request.encode_to_vec().into(),
                Metadata::NONE,
                now,
            )
            .await
            .unwrap();
        assert_eq!(ack, Ack::ok());
        (self.out.count() > before).then(|| self.out.last())
    }

    async fn request(
        &self,
        request: &ExportMetricsServiceRequest,
    ) -> Option<ExportMetricsServiceRequest> {
        self.request_at(request, Instant::now()).await
    }

    /// Sends metrics under one resource and scope; the metrics forwarded.
    async fn send(&self, metrics: Vec<Metric>) -> Vec<Metric> {
        self.send_at(metrics, Instant::now()).await
    }

    async fn send_at(&self, metrics: Vec<Metric>, now: Instant) -> Vec<Metric> {
        let out = self.request_at(&one_scope(metrics), now).await;
        out.map(flatten).unwrap_or_default()
    }

    fn metrics_text(&self) -> String {
        self.telemetry.render()
    }
}

fn flatten(request: ExportMetricsServiceRequest) -> Vec<Metric> {
    request
        .resource_metrics
        .into_iter()
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
        .collect()
}

fn one_scope(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    request(vec![resource(
        &[("service.name", "svc")],
        scope("lib", "1.0", metrics),
    )])
}

fn request(resource_metrics: Vec<ResourceMetrics>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest { resource_metrics }
}

fn resource(attributes: &[(&str, &str)], scope_metrics: ScopeMetrics) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes: attrs(attributes),
            ..Default::default()
        }),
        scope_metrics: vec![scope_metrics],
        ..Default::default()
    }
}

fn scope(name: &str, version: &str, metrics: Vec<Metric>) -> ScopeMetrics {
    ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        }),
        metrics,
        ..Default::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.to_string())),
            }),
            ..Default::default()
        })
        .collect()
}

fn metric(name: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(data),
        ..Default::default()
    }
}

fn sum(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    sum_with(name, CUMULATIVE, true, points)
}

fn sum_with(name: &str, temporality: i32, monotonic: bool, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
    )
}

fn int(attributes: &[(&str, &str)], start: u64, time: u64, value: i64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs(attributes),
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn double(attributes: &[(&str, &str)], start: u64, time: u64, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        value: Some(number_data_point::Value::AsDouble(value)),
        ..int(attributes, start, time, 0)
    }
}

fn histogram(name: &str, points: Vec<HistogramDataPoint>) -> Metric {
    metric(
        name,
        Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: CUMULATIVE,
        }),
    )
}

/// A histogram point with min 0.5 and max 7 (which conversion must drop).
fn hist(time: u64, sum: Option<f64>, bounds: &[f64], buckets: &[u64]) -> HistogramDataPoint {
    HistogramDataPoint {
        start_time_unix_nano: S,
        time_unix_nano: time,
        count: buckets.iter().sum(),
        sum,
        bucket_counts: buckets.to_vec(),
        explicit_bounds: bounds.to_vec(),
        min: Some(0.5),
        max: Some(7.0),
        ..Default::default()
    }
}

fn exponential(name: &str, points: Vec<ExponentialHistogramDataPoint>) -> Metric {
    metric(
        name,
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: points,
            aggregation_temporality: CUMULATIVE,
        }),
    )
}

/// An exponential histogram point; its count is its zero count plus its buckets.
fn exp(
    time: u64,
    scale: i32,
    zero: (f64, u64),
    positive: (i32, &[u64]),
    sum: f64,
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        start_time_unix_nano: S,
        time_unix_nano: time,
        count: zero.1 + positive.1.iter().sum::<u64>(),
        sum: Some(sum),
        scale,
        zero_threshold: zero.0,
        zero_count: zero.1,
        positive: Some(buckets(positive.0, positive.1)),
        min: Some(0.0),
        max: Some(9.0),
        ..Default::default()
    }
}

fn buckets(offset: i32, counts: &[u64]) -> Buckets {
    Buckets {
        offset,
        bucket_counts: counts.to_vec(),
    }
}

/// (start, time, value) of the int points of a sum.
fn ints(m: &Metric) -> Vec<(u64, u64, i64)> {
    number_points(m)
        .iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(v)) => {
                (p.start_time_unix_nano, p.time_unix_nano, v)
            }
            other => panic!("not an int: {other:?}"),
        })
        .collect()
}

/// (start, time, value) of the double points of a sum.
fn doubles(m: &Metric) -> Vec<(u64, u64, f64)> {
    number_points(m)
        .iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsDouble(v)) => {
                (p.start_time_unix_nano, p.time_unix_nano, v)
            }
            other => panic!("not a double: {other:?}"),
        })
        .collect()
}

fn number_points(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(Data::Sum(s)) => &s.data_points,
        Some(Data::Gauge(g)) => &g.data_points,
        other => panic!("not a sum: {other:?}"),
    }
}

fn temporality(m: &Metric) -> i32 {
    match &m.data {
        Some(Data::Sum(s)) => s.aggregation_temporality,
        Some(Data::Histogram(h)) => h.aggregation_temporality,
        Some(Data::ExponentialHistogram(h)) => h.aggregation_temporality,
        other => panic!("no temporality: {other:?}"),
    }
}

fn hist_points(m: &Metric) -> &[HistogramDataPoint] {
    match &m.data {
        Some(Data::Histogram(h)) => &h.data_points,
        other => panic!("not a histogram: {other:?}"),
    }
}

fn exp_points(m: &Metric) -> &[ExponentialHistogramDataPoint] {
    match &m.data {
        Some(Data::ExponentialHistogram(h)) => &h.data_points,
        other => panic!("not an exponential histogram: {other:?}"),
    }
}

/// The one metric forwarded.
fn only(mut metrics: Vec<Metric>) -> Metric {
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    metrics.remove(0)
}

/// The value of one sample line of the rendered metrics.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn dropped(h: &Harness, reason: &str) -> f64 {
    sample(
        &h.metrics_text(),
        &format!(
            "otlp_lb_processor_cumulativetodelta_points_dropped_total{{processor=\"cumulativetodelta\",reason=\"{reason}\"}}"
        ),
    )
}

fn streams(h: &Harness) -> f64 {
    sample(
        &h.metrics_text(),
        "otlp_lb_processor_cumulativetodelta_streams{processor=\"cumulativetodelta\"}",
    )
}

// ---------------------------------------------------------------- sums

#[tokio::test]
async fn int_sum_deltas_are_exact() {
    let h = Harness::with(InitialValue::Keep);
    let out = only(
        h.send(vec![sum("requests", vec![int(&[], S, t(1), 10)])])
            .await,
    );
    assert_eq!(ints(&out), [(S, t(1), 10)]);
    assert_eq!(temporality(&out), DELTA);
    assert!(matches!(&out.data, Some(Data::Sum(s)) if s.is_monotonic));

    let out = only(
        h.send(vec![sum("requests", vec![int(&[], S, t(2), 15)])])
            .await,
    );
    assert_eq!(ints(&out), [(t(1), t(2), 5)]);
    let out = only(
        h.send(vec![sum("requests", vec![int(&[], S, t(3), 15)])])
            .await,
    );
    assert_eq!(ints(&out), [(t(2), t(3), 0)]);
    let out = only(
        h.send(vec![sum("requests", vec![int(&[], S, t(4), 40)])])
            .await,
    );
    assert_eq!(ints(&out), [(t(3), t(4), 25)]);

    // Two points of the stream in one request: each against the one before.
    let out = only(
        h.send(vec![sum(
            "requests",
            vec![int(&[], S, t(5), 50), int(&[], S, t(6), 70)],
        )])
        .await,
    );
    assert_eq!(ints(&out), [(t(4), t(5), 10), (t(5), t(6), 20)]);
    assert_eq!(streams(&h), 1.0);
}

#[tokio::test]
async fn double_sum_deltas_are_exact() {
    let h = Harness::with(InitialValue::Drop);
    // The first point is the baseline only: nothing reaches downstream.
    assert!(
        h.send(vec![sum("bytes", vec![double(&[], S, t(1), 1.5)])])
            .await
            .is_empty()
    );
    assert_eq!(h.out.count(), 0);
    let out = only(
        h.send(vec![sum("bytes", vec![double(&[], S, t(2), 4.0)])])
            .await,
    );
    assert_eq!(doubles(&out), [(t(1), t(2), 2.5)]);
    let out = only(
        h.send(vec![sum("bytes", vec![double(&[], S, t(3), 4.25)])])
            .await,
    );
    assert_eq!(doubles(&out), [(t(2), t(3), 0.25)]);
    assert_eq!(temporality(&out), DELTA);
    assert_eq!(dropped(&h, "initial"), 1.0);
}

#[tokio::test]
async fn int_and_double_points_of_one_name_are_separate_streams() {
    let h = Harness::with(InitialValue::Keep);
    h.send(vec![sum(
        "x",
        vec![int(&[], S, t(1), 10), double(&[], S, t(1), 10.0)],
    )])
    .await;
    let out = only(
        h.send(vec![sum(
            "x",
            vec![int(&[], S, t(2), 12), double(&[], S, t(2), 10.5)],
        )])
        .await,
    );
    let [a, b] = number_points(&out) else {
        panic!()
    };
    assert_eq!(a.value, Some(number_data_point::Value::AsInt(2)));
    assert_eq!(b.value, Some(number_data_point::Value::AsDouble(0.5)));
    assert_eq!(streams(&h), 2.0);
}

// ---------------------------------------------------------------- first point

#[tokio::test]
async fn first_point_under_keep_is_its_value_since_its_own_start() {
    let h = Harness::with(InitialValue::Keep);
    let out = only(
        h.send(vec![sum(
            "x",
            vec![
                int(&[("k", "a")], S, t(1), 7),
                // Even without a start time, or with start == time.
                int(&[("k", "b")], 0, t(1), 8),
                int(&[("k", "c")], t(1), t(1), 9),
            ],
        )])
        .await,
    );
    assert_eq!(ints(&out), [(S, t(1), 7), (0, t(1), 8), (t(1), t(1), 9)]);
}

#[tokio::test]
async fn first_point_under_drop_is_never_forwarded() {
    let h = Harness::with(InitialValue::Drop);
    let started = h.p.started_unix_nano;
    let fresh = int(&[], started + 10, started + 100, 5);
    assert!(h.send(vec![sum("x", vec![fresh])]).await.is_empty());
    let out = only(
        h.send(vec![sum(
            "x",
            vec![int(&[], started + 10, started + 200, 8)],
        )])
        .await,
    );
    assert_eq!(ints(&out), [(started + 100, started + 200, 3)]);
}

#[tokio::test]
async fn first_point_under_auto_only_for_counters_started_since_we_started() {
    let h = Harness::with(InitialValue::Auto);
    let started = h.p.started_unix_nano;
    let (t1, t2) = (started + 100, started + 200);
    let first = vec![
        int(&[("k", "before")], started - 1, t1, 1),
        int(&[("k", "after")], started + 10, t1, 2),
        int(&[("k", "equal")], t1, t1, 3),
        int(&[("k", "unset")], 0, t1, 4),
    ];
    let out = only(h.send(vec![sum("x", first)]).await);
    assert_eq!(ints(&out), [(started + 10, t1, 2)]);
    assert_eq!(dropped(&h, "initial"), 3.0);

    // Every stream is known now; the next points are deltas.
    let second = vec![
        int(&[("k", "before")], started - 1, t2, 11),
        int(&[("k", "after")], started + 10, t2, 12),
        int(&[("k", "equal")], t1, t2, 13),
        int(&[("k", "unset")], 0, t2, 14),
    ];
    let out = only(h.send(vec![sum("x", second)]).await);
    assert_eq!(
        ints(&out),
        [(t1, t2, 10), (t1, t2, 10), (t1, t2, 10), (t1, t2, 10)]
    );
}

// ---------------------------------------------------------------- resets

#[tokio::test]
async fn a_value_that_goes_down_is_dropped_and_becomes_the_baseline() {
    let h = Harness::with(InitialValue::Keep);
    h.send(vec![sum("n", vec![int(&[], S, t(1), 10)])]).await;
    let out = only(h.send(vec![sum("n", vec![int(&[], S, t(2), 25)])]).await);
    assert_eq!(ints(&out), [(t(1), t(2), 15)]);
    assert!(
        h.send(vec![sum("n", vec![int(&[], S, t(3), 7)])])
            .await
            .is_empty()
    );
    let out = only(h.send(vec![sum("n", vec![int(&[], S, t(4), 12)])]).await);
    assert_eq!(ints(&out), [(t(3), t(4), 5)]);

    h.send(vec![sum("d", vec![double(&[], S, t(1), 2.0)])])
        .await;
    assert!(
        h.send(vec![sum("d", vec![double(&[], S, t(2), 1.0)])])
            .await
            .is_empty()
    );
    let out = only(
        h.send(vec![sum("d", vec![double(&[], S, t(3), 3.5)])])
            .await,
    );
    assert_eq!(doubles(&out), [(t(2), t(3), 2.5)]);
    assert_eq!(dropped(&h, "reset"), 2.0);
}

#[tokio::test]
async fn a_new_start_time_is_a_new_stream() {
    let h = Harness::with(InitialValue::Auto);
    let started = h.p.started_unix_nano;
    let old_start = started - 1_000;
    let at = |i: u64| started + 100 * i;
    // A counter that was running before we started: its first point is held back.
    assert!(
        h.send(vec![sum("n", vec![int(&[], old_start, at(1), 100)])])
            .await
            .is_empty()
    );
    let out = only(
        h.send(vec![sum("n", vec![int(&[], old_start, at(2), 150)])])
            .await,
    );
    assert_eq!(ints(&out), [(at(1), at(2), 50)]);

    // It restarts: a new start time, a lower value. Not a reset of the old
    // stream but a new one, which started while we watched: all of it is new.
    let new_start = at(2) + 50;
    let out = only(
        h.send(vec![sum("n", vec![int(&[], new_start, at(3), 5)])])
            .await,
    );
    assert_eq!(ints(&out), [(new_start, at(3), 5)]);
    let out = only(
        h.send(vec![sum("n", vec![int(&[], new_start, at(4), 8)])])
            .await,
    );
    assert_eq!(ints(&out), [(at(3), at(4), 3)]);
    assert_eq!(dropped(&h, "reset"), 0.0);
    assert_eq!(streams(&h), 2.0);
}

#[tokio::test]
async fn a_point_older_than_the_last_one_is_dropped_not_taken_for_a_reset() {
    let h = Harness::with(InitialValue::Keep);
    h.send(vec![sum("n", vec![int(&[], S, t(2), 10)])]).await;
    assert!(
        h.send(vec![sum("n", vec![int(&[], S, t(1), 5)])])
            .await
            .is_empty()
    );
    assert!(
        h.send(vec![sum("n", vec![int(&[], S, t(2), 10)])])
            .await
            .is_empty()
    );
    let out = only(h.send(vec![sum("n", vec![int(&[], S, t(3), 20)])]).await);
    assert_eq!(ints(&out), [(t(2), t(3), 10)]);
    assert_eq!(dropped(&h, "out_of_order"), 2.0);
    assert_eq!(dropped(&h, "reset"), 0.0);
}

// ---------------------------------------------------------------- pass-through

#[tokio::test]
async fn what_is_not_converted_passes_through_byte_for_byte() {
    let h = Harness::with(InitialValue::Keep);
    let point = |v| int(&[], S, t(1), v);
    let req = one_scope(vec![
        sum_with("non_monotonic", CUMULATIVE, false, vec![point(3)]),
        sum_with("delta", DELTA, true, vec![point(4)]),
        metric(
            "gauge",
            Data::Gauge(Gauge {
                data_points: vec![point(5)],
            }),
        ),
        metric(
            "summary",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    count: 1,
                    ..Default::default()
                }],
            }),
        ),
        metric(
            "delta_histogram",
            Data::Histogram(Histogram {
                data_points: vec![hist(t(1), Some(1.0), &[1.0], &[1, 0])],
                aggregation_temporality: DELTA,
            }),
        ),
    ]);
    let bytes = Bytes::from(req.encode_to_vec());
    h.p.consume(Signal::Metrics, bytes.clone(), Metadata::NONE)
        .await
        .unwrap();
    assert_eq!(h.out.raw.lock().unwrap().as_slice(), [bytes]);
    assert_eq!(streams(&h), 0.0);
}

#[tokio::test]
async fn pass_through_metrics_ride_along_with_converted_ones() {
    let h = Harness::with(InitialValue::Drop);
    let gauge = metric(
        "gauge",
        Data::Gauge(Gauge {
            data_points: vec![int(&[], S, t(1), 5)],
        }),
    );
    let non_monotonic = sum_with("queue", CUMULATIVE, false, vec![int(&[], S, t(1), -3)]);
    let out = h
        .send(vec![
            gauge.clone(),
            sum("n", vec![int(&[], S, t(1), 1)]),
            non_monotonic.clone(),
        ])
        .await;
    // The converted sum lost its only point and is gone; the rest is untouched.
    assert_eq!(out, [gauge, non_monotonic]);
}

#[tokio::test]
async fn empty_metrics_scopes_and_resources_are_removed() {
    let h = Harness::with(InitialValue::Drop);
    let gauge = metric(
        "gauge",
        Data::Gauge(Gauge {
            data_points: vec![int(&[], S, t(1), 5)],
        }),
    );
    let req = request(vec![
        resource(
            &[("r", "a")],
            scope("s", "1", vec![sum("n", vec![int(&[], S, t(1), 1)])]),
        ),
        resource(&[("r", "b")], scope("s", "1", vec![gauge.clone()])),
    ]);
    let out = h.request(&req).await.unwrap();
    assert_eq!(out.resource_metrics.len(), 1);
    assert_eq!(out.resource_metrics[0], req.resource_metrics[1]);

    // Nothing left at all: downstream is not called.
    let req = one_scope(vec![sum("m", vec![int(&[], S, t(1), 1)])]);
    assert!(h.request(&req).await.is_none());
    assert_eq!(h.out.count(), 1);
}

// ---------------------------------------------------------------- histograms

#[tokio::test]
async fn histogram_counts_sum_and_buckets_become_deltas_without_min_max() {
    let h = Harness::with(InitialValue::Keep);
    let bounds = [1.0, 5.0];
    let out = only(
        h.send(vec![histogram(
            "latency",
            vec![hist(t(1), Some(6.0), &bounds, &[1, 1, 1])],
        )])
        .await,
    );
    let first = &hist_points(&out)[0];
    assert_eq!(
        (
            first.start_time_unix_nano,
            first.count,
            first.sum,
            first.min,
            first.max
        ),
        (S, 3, Some(6.0), None, None)
    );
    assert_eq!(first.bucket_counts, [1, 1, 1]);
    assert_eq!(temporality(&out), DELTA);

    let out = only(
        h.send(vec![histogram(
            "latency",
            vec![hist(t(2), Some(20.0), &bounds, &[2, 3, 2])],
        )])
        .await,
    );
    let p = &hist_points(&out)[0];
    assert_eq!(
        (
            p.start_time_unix_nano,
            p.time_unix_nano,
            p.count,
            p.sum,
            p.min,
            p.max
        ),
        (t(1), t(2), 4, Some(14.0), None, None)
    );
    assert_eq!(p.bucket_counts, [1, 2, 1]);
    assert_eq!(p.explicit_bounds, bounds);

    // The count went down: the histogram restarted since t(2). As in the
    // collector, its whole value is the delta, and it is the new baseline.
    let out = only(
        h.send(vec![histogram(
            "latency",
            vec![hist(t(3), Some(3.0), &bounds, &[1, 1, 0])],
        )])
        .await,
    );
    let p = &hist_points(&out)[0];
    assert_eq!(
        (p.start_time_unix_nano, p.count, p.sum),
        (t(2), 2, Some(3.0))
    );
    assert_eq!(p.bucket_counts, [1, 1, 0]);
    assert_eq!((p.min, p.max), (None, None));

    let out = only(
        h.send(vec![histogram(
            "latency",
            vec![hist(t(4), Some(9.0), &bounds, &[2, 2, 1])],
        )])
        .await,
    );
    let p = &hist_points(&out)[0];
    assert_eq!(
        (p.start_time_unix_nano, p.count, p.sum),
        (t(3), 3, Some(6.0))
    );
    assert_eq!(p.bucket_counts, [1, 1, 1]);
}

#[tokio::test]
async fn histogram_with_a_new_bucket_layout_is_dropped_and_becomes_the_baseline() {
    let h = Harness::with(InitialValue::Drop);
    let send = |time, bounds: &'static [f64], buckets: &'static [u64]| {
        h.send(vec![histogram(
            "h",
            vec![hist(time, None, bounds, buckets)],
        )])
    };
    assert!(send(t(1), &[1.0, 5.0], &[1, 1, 1]).await.is_empty());
    // One more bucket.
    assert!(
        send(t(2), &[1.0, 5.0, 10.0], &[1, 1, 1, 1])
            .await
            .is_empty()
    );
    let out = only(send(t(3), &[1.0, 5.0, 10.0], &[2, 1, 1, 2]).await);
    let p = &hist_points(&out)[0];
    assert_eq!((p.start_time_unix_nano, p.count), (t(2), 2));
    assert_eq!(p.bucket_counts, [1, 0, 0, 1]);
    // As many buckets, other bounds.
    assert!(
        send(t(4), &[1.0, 2.0, 10.0], &[3, 1, 1, 2])
            .await
            .is_empty()
    );
    let out = only(send(t(5), &[1.0, 2.0, 10.0], &[3, 2, 1, 2]).await);
    let p = &hist_points(&out)[0];
    assert_eq!((p.start_time_unix_nano, p.count), (t(4), 1));
    assert_eq!(p.bucket_counts, [0, 1, 0, 0]);
    assert_eq!(dropped(&h, "bucket_mismatch"), 2.0);
}

#[tokio::test]
async fn histogram_sum_needs_a_known_previous_sum() {
    let h = Harness::with(InitialValue::Drop);
    let send = |time, sum, buckets: &'static [u64]| {
        h.send(vec![histogram("h", vec![hist(time, sum, &[1.0], buckets)])])
    };
    let sum_of = |m: Vec<Metric>| hist_points(&only(m))[0].sum;
    assert!(send(t(1), None, &[1, 0]).await.is_empty());
    // No previous sum: the increase of the sum is unknown, so none is sent.
    assert_eq!(sum_of(send(t(2), Some(5.0), &[1, 1]).await), None);
    assert_eq!(sum_of(send(t(3), Some(8.0), &[2, 1]).await), Some(3.0));
    // A NaN sum stays NaN; the counts still convert.
    let out = only(send(t(4), Some(f64::NAN), &[2, 2]).await);
    let p = &hist_points(&out)[0];
    assert!(p.sum.is_some_and(f64::is_nan));
    assert_eq!((p.count, p.start_time_unix_nano), (1, t(3)));
    assert_eq!(sum_of(send(t(5), Some(10.0), &[2, 3]).await), None);
    assert_eq!(sum_of(send(t(6), Some(10.5), &[2, 4]).await), Some(0.5));
}

// ---------------------------------------------------------------- exponential histograms

#[tokio::test]
async fn exponential_histogram_deltas_across_scale_and_offset_changes() {
    let h = Harness::with(InitialValue::Drop);
    let send = |p| h.send(vec![exponential("e", vec![p])]);
    // Scale 1: buckets 2..=5 hold 1, 2, 3, 4; two zeros; count 12.
    assert!(
        send(exp(t(1), 1, (0.0, 2), (2, &[1, 2, 3, 4]), 30.0))
            .await
            .is_empty()
    );

    // Down to scale 0: the previous buckets merge pairwise into bucket 1
    // (1 + 2) and bucket 2 (3 + 4). Now 0..=2 hold 1, 5, 9 and three zeros.
    let out = only(send(exp(t(2), 0, (0.0, 3), (0, &[1, 5, 9]), 50.0)).await);
    let p = &exp_points(&out)[0];
    assert_eq!(temporality(&out), DELTA);
    assert_eq!(
        (
            p.start_time_unix_nano,
            p.time_unix_nano,
            p.scale,
            p.count,
            p.zero_count,
            p.sum
        ),
        (t(1), t(2), 0, 6, 1, Some(20.0))
    );
    assert_eq!(p.positive, Some(buckets(0, &[1, 2, 2])));
    assert_eq!((p.min, p.max), (None, None));

    // Same scale, the range grows down by one bucket: aligned by index.
    let out = only(send(exp(t(3), 0, (0.0, 3), (-1, &[1, 1, 6, 10]), 55.0)).await);
    let p = &exp_points(&out)[0];
    assert_eq!(
        (p.start_time_unix_nano, p.count, p.zero_count, p.sum),
        (t(2), 3, 0, Some(5.0))
    );
    assert_eq!(p.positive, Some(buckets(-1, &[1, 0, 1, 1])));

    // The scale goes up: that only happens to a restarted histogram.
    assert!(
        send(exp(t(4), 1, (0.0, 0), (0, &[1]), 1.0))
            .await
            .is_empty()
    );
    assert_eq!(dropped(&h, "reset"), 1.0);
    // ...which is the new baseline.
    let out = only(send(exp(t(5), 1, (0.0, 0), (0, &[3]), 4.0)).await);
    let p = &exp_points(&out)[0];
    assert_eq!(
        (p.start_time_unix_nano, p.count, p.scale, p.sum),
        (t(4), 2, 1, Some(3.0))
    );
    assert_eq!(p.positive, Some(buckets(0, &[2])));
}

#[tokio::test]
async fn exponential_histogram_wider_zero_bucket_swallows_low_buckets() {
    let h = Harness::with(InitialValue::Drop);
    let send = |p| h.send(vec![exponential("e", vec![p])]);
    // Zero threshold 0.5; bucket 0 is (1, 2], bucket 1 is (2, 4].
    assert!(
        send(exp(t(1), 0, (0.5, 1), (0, &[2, 3]), 10.0))
            .await
            .is_empty()
    );
    // Threshold 2: bucket 0 moved into the zero bucket (1 + 2 = 3 before).
    let out = only(send(exp(t(2), 0, (2.0, 5), (1, &[4]), 20.0)).await);
    let p = &exp_points(&out)[0];
    assert_eq!(
        (p.zero_threshold, p.zero_count, p.count, p.sum),
        (2.0, 2, 3, Some(10.0))
    );
    assert_eq!(p.positive, Some(buckets(1, &[1])));
    // The threshold going down is a restart.
    assert!(
        send(exp(t(3), 0, (1.0, 6), (1, &[4]), 21.0))
            .await
            .is_empty()
    );
    assert_eq!(dropped(&h, "reset"), 1.0);
}

#[tokio::test]
async fn exponential_histogram_with_fewer_in_a_bucket_is_a_reset() {
    let h = Harness::with(InitialValue::Keep);
    let send = |p| h.send(vec![exponential("e", vec![p])]);
    send(exp(t(1), 0, (0.0, 0), (0, &[5, 1]), 10.0)).await;
    // Same count overall, but bucket 0 went down.
    assert!(
        send(exp(t(2), 0, (0.0, 0), (0, &[4, 2]), 10.0))
            .await
            .is_empty()
    );
    let out = only(send(exp(t(3), 0, (0.0, 0), (0, &[4, 3]), 12.0)).await);
    let p = &exp_points(&out)[0];
    assert_eq!((p.start_time_unix_nano, p.count), (t(2), 1));
    assert_eq!(p.positive, Some(buckets(0, &[0, 1])));
}

// ---------------------------------------------------------------- include / exclude

fn filter(match_type: MatchType, metrics: &[&str]) -> Option<MetricFilter> {
    Some(MetricFilter {
        metrics: metrics.iter().map(|s| s.to_string()).collect(),
        match_type,
        metric_types: vec![],
    })
}

/// Names of the metrics `config` converts among `names` (a first point each,
/// kept so it shows).
async fn converted(config: CumulativeToDeltaConfig, names: &[&str]) -> Vec<String> {
    let h = Harness::new(CumulativeToDeltaConfig {
        initial_value: InitialValue::Keep,
        ..config
    });
    let metrics = names
        .iter()
        .map(|n| sum(n, vec![int(&[], S, t(1), 1)]))
        .collect();
    let out = h.send(metrics).await;
    assert_eq!(out.len(), names.len(), "nothing is dropped");
    out.iter()
        .filter(|m| temporality(m) == DELTA)
        .map(|m| m.name.clone())
        .collect()
}

#[tokio::test]
async fn include_and_exclude_with_exclude_winning() {
    let names = ["http.requests", "http.server.errors", "db.calls"];
    let config = CumulativeToDeltaConfig {
        include: filter(MatchType::Regexp, &[r"^http\."]),
        exclude: filter(MatchType::Strict, &["http.server.errors"]),
        ..Default::default()
    };
    assert_eq!(converted(config, &names).await, ["http.requests"]);

    let config = CumulativeToDeltaConfig {
        include: filter(MatchType::Strict, &["http.requests", "db.calls"]),
        exclude: filter(MatchType::Regexp, &["calls"]),
        ..Default::default()
    };
    assert_eq!(converted(config, &names).await, ["http.requests"]);

    // Strict is exact: no prefix or pattern meaning.
    let config = CumulativeToDeltaConfig {
        include: filter(MatchType::Strict, &["http", "db.*"]),
        ..Default::default()
    };
    assert!(converted(config, &names).await.is_empty());

    // Only an exclude: everything else converts.
    let config = CumulativeToDeltaConfig {
        exclude: filter(MatchType::Regexp, &["^http"]),
        ..Default::default()
    };
    assert_eq!(converted(config, &names).await, ["db.calls"]);

    // An exclude that lists nothing excludes nothing.
    let config = CumulativeToDeltaConfig {
        exclude: filter(MatchType::Strict, &[]),
        ..Default::default()
    };
    assert_eq!(converted(config, &names).await, names);
}

#[tokio::test]
async fn include_by_metric_type() {
    let h = Harness::new(CumulativeToDeltaConfig {
        include: Some(MetricFilter {
            metric_types: vec![MetricType::Histogram],
            ..Default::default()
        }),
        initial_value: InitialValue::Keep,
        ..Default::default()
    });
    let out = h
        .send(vec![
            sum("s", vec![int(&[], S, t(1), 1)]),
            histogram("h", vec![hist(t(1), None, &[1.0], &[1, 0])]),
            exponential("e", vec![exp(t(1), 0, (0.0, 1), (0, &[1]), 1.0)]),
        ])
        .await;
    let temporalities: Vec<i32> = out.iter().map(temporality).collect();
    assert_eq!(temporalities, [CUMULATIVE, DELTA, DELTA]);
}

// ---------------------------------------------------------------- max_staleness

#[tokio::test]
async fn streams_not_seen_for_max_staleness_are_forgotten() {
    let h = Harness::new(CumulativeToDeltaConfig {
        max_staleness: Duration::from_secs(10),
        initial_value: InitialValue::Drop,
        ..Default::default()
    });
    let t0 = Instant::now();
    let a = |time, v| vec![sum("a", vec![int(&[], S, time, v)])];
    let b = |time, v| vec![sum("b", vec![int(&[], S, time, v)])];
    let evicted = |h: &Harness| {
        sample(
            &h.metrics_text(),
            "otlp_lb_processor_cumulativetodelta_streams_evicted_total{processor=\"cumulativetodelta\"}",
        )
    };

    assert!(h.send_at(a(t(1), 10), t0).await.is_empty());
    assert!(h.send_at(b(t(1), 100), t0).await.is_empty());
    let s5 = t0 + Duration::from_secs(5);
    assert_eq!(
        ints(&only(h.send_at(a(t(2), 15), s5).await)),
        [(t(1), t(2), 5)]
    );
    assert_eq!(streams(&h), 2.0);

    // At 10 s the sweep forgets b (10 s unseen); a was seen 5 s ago.
    let gauge = metric(
        "g",
        Data::Gauge(Gauge {
            data_points: vec![int(&[], S, t(1), 1)],
        }),
    );
    h.send_at(vec![gauge], t0 + Duration::from_secs(10)).await;
    assert_eq!((streams(&h), evicted(&h)), (1.0, 1.0));

    // At 16 s a has not been seen for 11 s: it is forgotten on lookup (the
    // next sweep is not due before 20 s) and starts over from this point.
    assert!(
        h.send_at(a(t(3), 20), t0 + Duration::from_secs(16))
            .await
            .is_empty()
    );
    assert_eq!((streams(&h), evicted(&h)), (1.0, 2.0));
    let out = only(h.send_at(a(t(4), 26), t0 + Duration::from_secs(17)).await);
    assert_eq!(ints(&out), [(t(3), t(4), 6)]);
    assert_eq!(dropped(&h, "initial"), 3.0);
}

#[tokio::test]
async fn zero_max_staleness_keeps_streams_forever() {
    let h = Harness::with(InitialValue::Drop);
    let t0 = Instant::now();
    let a = |time, v| vec![sum("a", vec![int(&[], S, time, v)])];
    h.send_at(a(t(1), 10), t0).await;
    let much_later = t0 + Duration::from_secs(1000 * 3600);
    assert_eq!(
        ints(&only(h.send_at(a(t(2), 12), much_later).await)),
        [(t(1), t(2), 2)]
    );
    assert_eq!(streams(&h), 1.0);
}

#[tokio::test(start_paused = true)]
async fn the_report_forgets_stale_streams_when_no_requests_arrive() {
    let h = Harness::new(CumulativeToDeltaConfig {
        max_staleness: Duration::from_secs(10),
        initial_value: InitialValue::Drop,
        ..Default::default()
    });
    let evicted = |h: &Harness| {
        sample(
            &h.metrics_text(),
            "otlp_lb_processor_cumulativetodelta_streams_evicted_total{processor=\"cumulativetodelta\"}",
        )
    };
    let report = tokio::spawn(h.p.clone().report(Duration::from_secs(5)));
    // t=0: the request starts the sweep clock; the next sweep is due at 10 s.
    assert!(
        h.send(vec![sum("a", vec![int(&[], S, t(1), 10)])])
            .await
            .is_empty()
    );
    assert_eq!(streams(&h), 1.0);

    // The report at 5 s finds the sweep not due yet.
    tokio::time::sleep(Duration::from_millis(9_999)).await;
    assert_eq!((streams(&h), evicted(&h)), (1.0, 0.0));

    // The report at 10 s sweeps: a has not been seen for 10 s.
    tokio::time::sleep(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert_eq!((streams(&h), evicted(&h)), (0.0, 1.0));

    // Nothing left to forget at the next sweep.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!((streams(&h), evicted(&h)), (0.0, 1.0));
    report.abort();
}

// ---------------------------------------------------------------- NaN, no recorded value

#[tokio::test]
async fn nan_passes_through_and_no_recorded_value_is_dropped() {
    let h = Harness::with(InitialValue::Keep);
    h.send(vec![sum("d", vec![double(&[], S, t(1), 1.0)])])
        .await;
    // NaN: forwarded as it came, and the stream's baseline is untouched.
    let out = only(
        h.send(vec![sum("d", vec![double(&[], S, t(2), f64::NAN)])])
            .await,
    );
    let [(start, time, value)] = doubles(&out)[..] else {
        panic!()
    };
    assert_eq!((start, time), (S, t(2)));
    assert!(value.is_nan());
    assert_eq!(temporality(&out), DELTA);
    // No recorded value: dropped, baseline untouched as well.
    let flagged = NumberDataPoint {
        flags: 1,
        ..double(&[], S, t(3), 0.0)
    };
    assert!(h.send(vec![sum("d", vec![flagged])]).await.is_empty());
    let out = only(
        h.send(vec![sum("d", vec![double(&[], S, t(4), 3.0)])])
            .await,
    );
    assert_eq!(doubles(&out), [(t(1), t(4), 2.0)]);

    let flagged_hist = HistogramDataPoint {
        flags: 1,
        ..hist(t(1), None, &[1.0], &[0, 0])
    };
    let flagged_exp = ExponentialHistogramDataPoint {
        flags: 1,
        ..exp(t(1), 0, (0.0, 0), (0, &[]), 0.0)
    };
    let no_value = NumberDataPoint {
        value: None,
        ..int(&[], S, t(5), 0)
    };
    let out = h
        .send(vec![
            histogram("h", vec![flagged_hist]),
            exponential("e", vec![flagged_exp]),
            sum("d", vec![no_value]),
        ])
        .await;
    assert!(out.is_empty());
    assert_eq!(dropped(&h, "no_recorded_value"), 4.0);
    assert_eq!(streams(&h), 1.0);
}

// ---------------------------------------------------------------- identity

#[tokio::test]
async fn one_point_attribute_apart_is_another_stream() {
    let h = Harness::with(InitialValue::Keep);
    h.send(vec![sum(
        "n",
        vec![
            int(&[("host", "a")], S, t(1), 10),
            int(&[("host", "b")], S, t(1), 100),
        ],
    )])
    .await;
    let out = only(
        h.send(vec![sum(
            "n",
            vec![
                int(&[("host", "a")], S, t(2), 15),
                int(&[("host", "b")], S, t(2), 130),
            ],
        )])
        .await,
    );
    assert_eq!(ints(&out), [(t(1), t(2), 5), (t(1), t(2), 30)]);

    // The order attributes are listed in does not matter.
    h.send(vec![sum(
        "m",
        vec![int(&[("x", "1"), ("y", "2")], S, t(1), 1)],
    )])
    .await;
    let out = only(
        h.send(vec![sum(
            "m",
            vec![int(&[("y", "2"), ("x", "1")], S, t(2), 4)],
        )])
        .await,
    );
    assert_eq!(ints(&out), [(t(1), t(2), 3)]);
    assert_eq!(streams(&h), 3.0);
}

#[tokio::test]
async fn resource_scope_name_and_unit_are_part_of_the_identity() {
    let h = Harness::with(InitialValue::Keep);
    let build = |values: [i64; 5], time| {
        let n = |v| vec![sum("n", vec![int(&[], S, time, v)])];
        let mut other_unit = sum("n", vec![int(&[], S, time, values[4])]);
        other_unit.unit = "By".into();
        request(vec![
            resource(&[("service.name", "a")], scope("lib", "1.0", n(values[0]))),
            resource(&[("service.name", "b")], scope("lib", "1.0", n(values[1]))),
            resource(&[("service.name", "a")], scope("lib", "2.0", n(values[2]))),
            resource(
                &[("service.name", "a")],
                scope("other", "1.0", n(values[3])),
            ),
            resource(
                &[("service.name", "a")],
                scope("lib", "1.0", vec![other_unit]),
            ),
        ])
    };
    h.request(&build([10, 20, 30, 40, 50], t(1))).await.unwrap();
    let out = h.request(&build([11, 22, 33, 44, 55], t(2))).await.unwrap();
    let deltas: Vec<i64> = flatten(out).iter().map(|m| ints(m)[0].2).collect();
    assert_eq!(deltas, [1, 2, 3, 4, 5]);
    assert_eq!(streams(&h), 5.0);
}

// ---------------------------------------------------------------- concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_on_one_stream_never_count_twice() {
    let h = Harness::with(InitialValue::Keep);
    let tasks: Vec<_> = (1..=64u64)
        .map(|i| {
            let p = h.p.clone();
            let req = one_scope(vec![sum("n", vec![int(&[], S, t(i), 10 * i as i64)])]);
            tokio::spawn(async move {
                p.consume(Signal::Metrics, req.encode_to_vec().into(), Metadata::NONE)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Whatever order they were applied in, the windows forwarded tile
    // [S, t(64)] without overlap and add up to the last cumulative value.
    let mut windows: Vec<(u64, u64, i64)> = h
        .out
        .raw
        .lock()
        .unwrap()
        .iter()
        .flat_map(|raw| flatten(ExportMetricsServiceRequest::decode(raw.as_ref()).unwrap()))
        .flat_map(|m| ints(&m))
        .collect();
    windows.sort();
    assert_eq!(windows.iter().map(|w| w.2).sum::<i64>(), 640);
    assert_eq!(windows.first().map(|w| w.0), Some(S));
    assert_eq!(windows.last().map(|w| w.1), Some(t(64)));
    for pair in windows.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{windows:?}");
    }
    let text = h.metrics_text();
    let emitted = sample(
        &text,
        "otlp_lb_processor_cumulativetodelta_points_emitted_total{processor=\"cumulativetodelta\"}",
    );
    assert_eq!(emitted + dropped(&h, "out_of_order"), 64.0);
}

// ---------------------------------------------------------------- the consumer

#[tokio::test]
async fn other_signals_and_garbage_are_invalid() {
    let h = Harness::with(InitialValue::Keep);
    let err =
        h.p.consume(Signal::Traces, Bytes::new(), Metadata::NONE)
            .await
            .unwrap_err();
    assert!(matches!(err, ConsumeError::InvalidArgument(_)), "{err:?}");
    let err =
        h.p.consume(
            Signal::Metrics,
            Bytes::from_static(&[0x0a, 0xff]),
            Metadata::NONE,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::InvalidArgument(_)), "{err:?}");
    assert_eq!(h.out.count(), 0);
}

#[tokio::test]
async fn counters_add_up() {
    let h = Harness::with(InitialValue::Drop);
    h.send(vec![sum("n", vec![int(&[], S, t(1), 5)])]).await;
    h.send(vec![sum(
        "n",
        vec![
            int(&[], S, t(2), 8),
            int(&[], S, t(3), 2),
            int(&[], S, t(4), 4),
        ],
    )])
    .await;
    let text = h.metrics_text();
    let series = |name: &str| {
        format!("otlp_lb_processor_cumulativetodelta_{name}{{processor=\"cumulativetodelta\"}}")
    };
    assert_eq!(sample(&text, &series("points_received_total")), 4.0);
    assert_eq!(sample(&text, &series("points_emitted_total")), 2.0);
    assert_eq!(dropped(&h, "initial"), 1.0);
    assert_eq!(dropped(&h, "reset"), 1.0);
    assert_eq!(sample(&text, &series("streams")), 1.0);
    for name in [
        names::C2D_STREAMS,
        names::C2D_POINTS_RECEIVED,
        names::C2D_POINTS_EMITTED,
        names::C2D_POINTS_DROPPED,
        names::C2D_STREAMS_EVICTED,
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}:\n{text}"
        );
    }
    assert_eq!(h.p.points_in.load(Ordering::Relaxed), 4);
    assert_eq!(h.p.deltas_out.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn build_wires_the_processor_and_its_report() {
    use crate::config::{ComponentId, processors::ProcessorConfig};
    let id = ComponentId::parse("cumulativetodelta/agent-1").unwrap();
    let config = ProcessorConfig::CumulativeToDelta(CumulativeToDeltaConfig {
        initial_value: InitialValue::Keep,
        ..Default::default()
    });
    let out = Arc::new(Recorder::default());
    let telemetry = Telemetry::new();
    let mut tasks = crate::component::Tasks::default();
    let mut cx = crate::component::BuildContext {
        id: &id,
        telemetry: &telemetry,
        tasks: &mut tasks,
        extensions: &Default::default(),
    };
    let head = config.build(&mut cx, out.clone()).unwrap();
    assert_eq!(tasks.background.len(), 1);
    assert!(
        tasks.drains.is_empty(),
        "cumulativetodelta holds no data between requests"
    );
    let req = one_scope(vec![sum("n", vec![int(&[], S, t(1), 3)])]);
    head.consume(Signal::Metrics, req.encode_to_vec().into(), Metadata::NONE)
        .await
        .unwrap();
    assert_eq!(ints(&only(flatten(out.last()))), [(S, t(1), 3)]);
    for task in tasks.background {
        task.abort();
    }
}
