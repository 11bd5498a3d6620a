//! Self-metrics with the collector's names, rendered as Prometheus text.
//!
//! Each [`Telemetry`] owns its own registry (no global recorder), so several
//! services can run in one process (the demo, in-process tests) without
//! mixing their numbers. Stages register their handles once at build time;
//! the hot path only bumps atomics.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use tokio::net::TcpListener;

use crate::signal::PerSignal;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Buckets of `otelcol_loadbalancer_backend_latency`, in milliseconds, as the collector's.
pub const BACKEND_LATENCY_BUCKETS_MS: &[f64] = &[
    5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Buckets of `otelcol_processor_tail_sampling_sampling_late_span_age`, in seconds.
pub const LATE_SPAN_AGE_BUCKETS_S: &[f64] =
    &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Default buckets for our own histograms (milliseconds).
const DEFAULT_BUCKETS_MS: &[f64] = &[
    1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 30000.0, 60000.0,
];

/// The metric names this crate publishes; one place so dashboards and tests agree.
pub mod names {
    use crate::signal::PerSignal;

    /// Counter: items a receiver pushed into its pipeline.
    pub const RECEIVER_ACCEPTED: PerSignal<&str> = PerSignal::new(
        "otelcol_receiver_accepted_spans_total",
        "otelcol_receiver_accepted_metric_points_total",
        "otelcol_receiver_accepted_log_records_total",
    );
    /// Counter: items a receiver could not push into its pipeline.
    pub const RECEIVER_REFUSED: PerSignal<&str> = PerSignal::new(
        "otelcol_receiver_refused_spans_total",
        "otelcol_receiver_refused_metric_points_total",
        "otelcol_receiver_refused_log_records_total",
    );
    /// Counter: items an exporter delivered.
    pub const EXPORTER_SENT: PerSignal<&str> = PerSignal::new(
        "otelcol_exporter_sent_spans_total",
        "otelcol_exporter_sent_metric_points_total",
        "otelcol_exporter_sent_log_records_total",
    );
    /// Counter: items an exporter gave up on.
    pub const EXPORTER_SEND_FAILED: PerSignal<&str> = PerSignal::new(
        "otelcol_exporter_send_failed_spans_total",
        "otelcol_exporter_send_failed_metric_points_total",
        "otelcol_exporter_send_failed_log_records_total",
    );
    /// Counter: items a full sending queue refused.
    pub const EXPORTER_ENQUEUE_FAILED: PerSignal<&str> = PerSignal::new(
        "otelcol_exporter_enqueue_failed_spans_total",
        "otelcol_exporter_enqueue_failed_metric_points_total",
        "otelcol_exporter_enqueue_failed_log_records_total",
    );
    /// Gauge: what a sending queue holds, in its sizer's unit (requests,
    /// items or bytes), like its capacity.
    pub const EXPORTER_QUEUE_SIZE: &str = "otelcol_exporter_queue_size";
    /// Gauge: a sending queue's capacity, in its sizer's unit.
    pub const EXPORTER_QUEUE_CAPACITY: &str = "otelcol_exporter_queue_capacity";

    /// Gauge: backends currently in the ring.
    pub const NUM_BACKENDS: &str = "otelcol_loadbalancer_num_backends";
    /// Counter: resolutions by outcome.
    pub const NUM_RESOLUTIONS: &str = "otelcol_loadbalancer_num_resolutions_total";
    /// Counter: times the backend set changed.
    pub const NUM_BACKEND_UPDATES: &str = "otelcol_loadbalancer_num_backend_updates_total";
    /// Histogram (ms): latency of one export call to one backend.
    pub const BACKEND_LATENCY: &str = "otelcol_loadbalancer_backend_latency";
    /// Counter: export calls to one backend by outcome.
    pub const BACKEND_OUTCOME: &str = "otelcol_loadbalancer_backend_outcome_total";
    /// Counter: traces by top-level tail sampling policy and its verdict.
    pub const TS_COUNT_TRACES_SAMPLED: &str =
        "otelcol_processor_tail_sampling_count_traces_sampled_total";
    /// Counter: traces by final tail sampling decision.
    pub const TS_GLOBAL_COUNT_TRACES_SAMPLED: &str =
        "otelcol_processor_tail_sampling_global_count_traces_sampled_total";
    /// Histogram (s): age of the decision a late span followed.
    pub const TS_LATE_SPAN_AGE: &str = "otelcol_processor_tail_sampling_sampling_late_span_age";
    /// Counter: traces decided before `decision_wait` because `num_traces` was reached.
    pub const TS_TRACE_DROPPED_TOO_EARLY: &str =
        "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total";
    /// Counter: traces decided at once because they outgrew `maximum_trace_size_bytes`.
    pub const TS_TRACE_TOO_LARGE: &str =
        "otelcol_processor_tail_sampling_sampling_trace_too_large_total";
    /// Histogram (ms): one decision pass (due traces decided and exported).
    pub const TS_DECISION_TIMER_LATENCY: &str =
        "otelcol_processor_tail_sampling_sampling_decision_timer_latency";
    /// Gauge: traces held waiting for a decision.
    pub const TS_TRACES_ON_MEMORY: &str =
        "otelcol_processor_tail_sampling_sampling_traces_on_memory";
    /// Counter: traces started (first span of a trace id not held or remembered).
    pub const TS_NEW_TRACE_ID_RECEIVED: &str =
        "otelcol_processor_tail_sampling_new_trace_id_received_total";
    /// Counter: sampled spans the next stage did not accept.
    pub const TS_EXPORT_FAILED_SPANS: &str =
        "otelcol_processor_tail_sampling_export_failed_spans_total";
    /// Gauge: streams a cumulativetodelta processor holds a baseline for.
    pub const C2D_STREAMS: &str = "otlp_lb_processor_cumulativetodelta_streams";
    /// Counter: data points of metrics a cumulativetodelta processor converts.
    pub const C2D_POINTS_RECEIVED: &str =
        "otlp_lb_processor_cumulativetodelta_points_received_total";
    /// Counter: of those, points forwarded as deltas.
    pub const C2D_POINTS_EMITTED: &str = "otlp_lb_processor_cumulativetodelta_points_emitted_total";
    /// Counter: of those, points dropped, by reason.
    pub const C2D_POINTS_DROPPED: &str = "otlp_lb_processor_cumulativetodelta_points_dropped_total";
    /// Counter: streams forgotten after `max_staleness` without a point.
    pub const C2D_STREAMS_EVICTED: &str =
        "otlp_lb_processor_cumulativetodelta_streams_evicted_total";
}

/// `# HELP` text of the per-signal metrics; `{}` is the signal's item noun.
const PER_SIGNAL_HELP: &[(PerSignal<&str>, &str)] = &[
    (
        names::RECEIVER_ACCEPTED,
        "Number of {} successfully pushed into the pipeline",
    ),
    (
        names::RECEIVER_REFUSED,
        "Number of {} that could not be pushed into the pipeline",
    ),
    (
        names::EXPORTER_SENT,
        "Number of {} successfully sent to destination",
    ),
    (
        names::EXPORTER_SEND_FAILED,
        "Number of {} in failed attempts to send to destination",
    ),
    (
        names::EXPORTER_ENQUEUE_FAILED,
        "Number of {} failed to be added to the sending queue",
    ),
];

/// `# HELP` text of every metric this crate publishes. A metric missing here
/// fails `promtool check metrics` (tests run it), so add new ones here.
const HELP: &[(&str, &str)] = &[
    (names::NUM_BACKENDS, "Current number of backends in use"),
    (
        names::NUM_RESOLUTIONS,
        "Number of times the resolver has triggered new resolutions",
    ),
    (
        names::NUM_BACKEND_UPDATES,
        "Number of times the list of backends was updated",
    ),
    (
        names::BACKEND_LATENCY,
        "Response latency in ms for the backends",
    ),
    (
        names::BACKEND_OUTCOME,
        "Number of successes and failures for each endpoint",
    ),
    (
        names::TS_COUNT_TRACES_SAMPLED,
        "Count of traces that were sampled or not per sampling policy",
    ),
    (
        names::TS_GLOBAL_COUNT_TRACES_SAMPLED,
        "Global count of traces that were sampled or not by at least one policy",
    ),
    (
        names::TS_LATE_SPAN_AGE,
        "Time (in seconds) from the sampling decision was taken and the arrival of a late span",
    ),
    (
        names::TS_TRACE_DROPPED_TOO_EARLY,
        "Count of traces decided before decision_wait because num_traces was reached",
    ),
    (
        names::TS_TRACE_TOO_LARGE,
        "Count of traces decided at once because they exceeded maximum_trace_size_bytes",
    ),
    (
        names::TS_DECISION_TIMER_LATENCY,
        "Latency (in milliseconds) of each run of the sampling decision timer",
    ),
    (
        names::TS_TRACES_ON_MEMORY,
        "Number of traces held in memory waiting for a sampling decision",
    ),
    (
        names::TS_NEW_TRACE_ID_RECEIVED,
        "Counts the arrival of new traces",
    ),
    (
        names::TS_EXPORT_FAILED_SPANS,
        "Count of sampled spans the next pipeline stage did not accept",
    ),
    (
        names::C2D_STREAMS,
        "Number of metric streams the cumulativetodelta processor tracks",
    ),
    (
        names::C2D_POINTS_RECEIVED,
        "Number of data points of metrics the cumulativetodelta processor converts",
    ),
    (
        names::C2D_POINTS_EMITTED,
        "Number of data points the cumulativetodelta processor forwarded as deltas",
    ),
    (
        names::C2D_POINTS_DROPPED,
        "Number of data points the cumulativetodelta processor dropped, by reason",
    ),
    (
        names::C2D_STREAMS_EVICTED,
        "Number of streams the cumulativetodelta processor forgot after max_staleness",
    ),
    (
        names::EXPORTER_QUEUE_SIZE,
        "Current size of the sending queue, in the unit of its sizer (requests, items or bytes)",
    ),
    (
        names::EXPORTER_QUEUE_CAPACITY,
        "Fixed capacity of the sending queue, in the unit of its sizer (requests, items or bytes)",
    ),
];

/// A registry of self-metrics and its Prometheus renderer.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

static METADATA: Metadata<'static> = Metadata::new("otlp_lb", metrics::Level::INFO, None);

impl Telemetry {
    /// A new, empty registry.
    pub fn new() -> Arc<Telemetry> {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::BACKEND_LATENCY.to_string()),
                BACKEND_LATENCY_BUCKETS_MS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(names::TS_LATE_SPAN_AGE.to_string()),
                    LATE_SPAN_AGE_BUCKETS_S,
                )
            })
            .and_then(|b| b.set_buckets(DEFAULT_BUCKETS_MS));
        // Both bucket lists are non-empty constants, so building cannot fail;
        // fall back to the plain builder rather than panic if that ever changes.
        let recorder = builder
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let telemetry = Telemetry { recorder, handle };
        for (name, help) in HELP {
            telemetry.describe(name, help);
        }
        for (names, help) in PER_SIGNAL_HELP {
            for (signal, name) in names.iter() {
                let noun = signal.item_name().replace('_', " ");
                telemetry.describe(name, &help.replace("{}", &noun));
            }
        }
        Arc::new(telemetry)
    }

    /// A counter handle for `name` with `labels`.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    /// One counter per signal, named by `names`, with the same `labels`.
    pub fn per_signal_counter(
        &self,
        names: PerSignal<&'static str>,
        labels: &[(&'static str, &str)],
    ) -> PerSignal<Counter> {
        PerSignal::from_fn(|signal| self.counter(names[signal], labels))
    }

    /// A gauge handle for `name` with `labels`.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    /// A histogram handle for `name` with `labels`.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// Sets the `# HELP` text of a metric.
    pub fn describe(&self, name: &'static str, help: &str) {
        let (name, help) = (
            KeyName::from_const_str(name),
            SharedString::from(help.to_owned()),
        );
        // The recorder keeps descriptions per kind; a name has one kind, so
        // describing it as all three is harmless and needs no kind here.
        self.recorder
            .describe_counter(name.clone(), None, help.clone());
        self.recorder
            .describe_gauge(name.clone(), None, help.clone());
        self.recorder.describe_histogram(name, None, help);
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; run periodically so an
    /// unscraped endpoint does not accumulate samples.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`Telemetry::upkeep`] every few seconds until the task is dropped.
    pub async fn run_upkeep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            self.upkeep();
        }
    }
}

/// Serves `GET /metrics` (Prometheus text) from `telemetry` on `listener`.
pub async fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let telemetry = telemetry.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    telemetry.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The collector's per-exporter item counters, indexed by [`Signal`]:
/// `otelcol_exporter_sent_*_total` and `otelcol_exporter_send_failed_*_total`.
pub struct ExporterCounters {
    /// `otelcol_exporter_sent_*_total`.
    pub sent: PerSignal<Counter>,
    /// `otelcol_exporter_send_failed_*_total`.
    pub failed: PerSignal<Counter>,
}

impl ExporterCounters {
    /// The counters of `exporter`.
    pub fn new(telemetry: &Telemetry, exporter: &str) -> ExporterCounters {
        let labels = [("exporter", exporter)];
        ExporterCounters {
            sent: telemetry.per_signal_counter(names::EXPORTER_SENT, &labels),
            failed: telemetry.per_signal_counter(names::EXPORTER_SEND_FAILED, &labels),
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect();
    Key::from_parts(name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_independent() {
        let a = Telemetry::new();
        let b = Telemetry::new();
        a.counter("x_total", &[("exporter", "lb")]).increment(3);
        assert!(a.render().contains("x_total{exporter=\"lb\"} 3"));
        assert!(!b.render().contains("x_total"));
    }

    #[test]
    fn latency_uses_collector_buckets() {
        let t = Telemetry::new();
        t.histogram(names::BACKEND_LATENCY, &[("endpoint", "a:1")])
            .record(7.0);
        let text = t.render();
        assert!(
            text.contains(
                "otelcol_loadbalancer_backend_latency_bucket{endpoint=\"a:1\",le=\"5\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "otelcol_loadbalancer_backend_latency_bucket{endpoint=\"a:1\",le=\"10\"} 1"
            ),
            "{text}"
        );
    }
}
