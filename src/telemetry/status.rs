//! The `otlp_lb_status` extension: an operator's page answering "which
//! backend owns this trace, and is the load even?".
//!
//! - `GET /`: an HTML page, per load-balancing exporter: its resolver and
//!   last resolution, its sending queue, and each backend's ring share,
//!   traffic share, latency percentiles and outcomes over the last minute.
//!   Plain HTML with inline CSS; it reloads itself every few seconds.
//! - `GET /status.json`: the same data as JSON.
//! - `GET /route?exporter=NAME&trace_id=HEX` (or `service=NAME`,
//!   `metric=NAME`): the backend that owns that key now.
//!
//! It only reads: pool snapshots, the backends' call windows
//! ([`super::window`]), the resolvers' logs and the self-metrics. It must
//! never change a pool, and it never computes a routing key itself: `/route`
//! builds a one-item request carrying the key and asks the exporter's own
//! [`Splitter`] where it goes, so the answer is the splitter's by
//! construction.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::{RawQuery, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use prost::Message;
use serde::Serialize;
use tokio::net::TcpListener;

use super::{Telemetry, metrics::names, window::WINDOW_SECONDS};
use crate::{
    config::{ComponentId, Config, exporters::ExporterConfig},
    exporter::PoolHandle,
    proto::{
        collector::{
            logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
            trace::v1::ExportTraceServiceRequest,
        },
        common::v1::{AnyValue, KeyValue, any_value},
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
        metrics::v1::{Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    },
    routing::RoutingKey,
    signal::Signal,
    wire::Splitter,
};

/// How often the page reloads itself.
const REFRESH: Duration = Duration::from_secs(5);

/// What the page shows: the load-balancing exporters, read when asked.
pub struct Status {
    exporters: Vec<Watched>,
    telemetry: Arc<Telemetry>,
}

/// One load-balancing exporter as the page sees it.
struct Watched {
    name: String,
    pool: Arc<PoolHandle>,
    /// The splitter of each signal the exporter carries.
    splitters: Vec<Splitter>,
    queue: bool,
}

/// Everything `/status.json` returns.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When it was taken, Unix milliseconds.
    pub generated_at_unix_ms: u64,
    /// The length of the traffic window, seconds.
    pub window_seconds: u64,
    /// One entry per load-balancing exporter, by name.
    pub exporters: Vec<ExporterSnapshot>,
}

/// One load-balancing exporter.
#[derive(Debug, Clone, Serialize)]
pub struct ExporterSnapshot {
    /// The exporter id.
    pub name: String,
    /// The resolver kind: `static`, `dns` or `k8s`.
    pub resolver: String,
    /// The routing key per signal the exporter carries (`traces: traceID`).
    pub routing_keys: BTreeMap<String, String>,
    /// The resolver's resolutions.
    pub resolutions: ResolutionSnapshot,
    /// The sending queue, when the exporter has one.
    pub queue: Option<QueueSnapshot>,
    /// The backends in the ring, in ring order.
    pub backends: Vec<BackendSnapshot>,
}

/// A resolver's resolutions.
#[derive(Debug, Clone, Serialize)]
pub struct ResolutionSnapshot {
    /// Successful resolutions so far.
    pub successes: u64,
    /// Failed resolutions so far.
    pub failures: u64,
    /// The last one.
    pub last: Option<LastResolutionSnapshot>,
}

/// The last resolution.
#[derive(Debug, Clone, Serialize)]
pub struct LastResolutionSnapshot {
    /// When it finished, Unix milliseconds.
    pub at_unix_ms: u64,
    /// Seconds since then.
    pub age_seconds: u64,
    /// Whether it succeeded.
    pub success: bool,
    /// The endpoints it found (absent for a failure).
    pub endpoints: Option<usize>,
}

/// A sending queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSnapshot {
    /// What it holds, in its sizer's unit.
    pub size: f64,
    /// Its capacity, in the same unit.
    pub capacity: f64,
}

/// One backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendSnapshot {
    /// `host:port`.
    pub endpoint: String,
    /// The fraction of the hash space it owns.
    pub ring_share: f64,
    /// Its fraction of the items sent in the window (of the calls, when no
    /// call carried items).
    pub traffic_share: f64,
    /// Items sent to it in the window.
    pub items: u64,
    /// Calls to it in the window.
    pub requests: u64,
    /// Of those, calls that succeeded.
    pub successes: u64,
    /// Of those, calls that failed.
    pub failures: u64,
    /// Median call latency in the window, ms (a bucket's upper bound).
    pub p50_ms: Option<f64>,
    /// 99th percentile call latency in the window, ms.
    pub p99_ms: Option<f64>,
}

/// The answer of `/route`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteAnswer {
    /// The exporter asked about.
    pub exporter: String,
    /// The signal whose splitter answered.
    pub signal: String,
    /// Its routing key (`traceID`, `service`, `metric`).
    pub routing_key: String,
    /// The key as given.
    pub key: String,
    /// The key's hash on the ring, hex.
    pub hash: String,
    /// The backend that owns it now.
    pub backend: String,
}

/// Why `/route` cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A parameter is missing, malformed or does not fit the exporter.
    #[error("{0}")]
    BadRequest(String),
    /// The exporter has no backend right now.
    #[error("{0}")]
    Unavailable(String),
}

/// The keys `/route` takes, by parameter name.
const KEY_PARAMS: [(&str, &str); 3] = [
    ("trace_id", "traceID"),
    ("service", "service"),
    ("metric", "metric"),
];

impl Status {
    /// Watches the load-balancing exporters of `config` whose pools are in
    /// `pools`.
    pub fn new(
        config: &Config,
        pools: &BTreeMap<ComponentId, Arc<PoolHandle>>,
        telemetry: Arc<Telemetry>,
    ) -> Status {
        let mut exporters = Vec::new();
        for (id, exporter) in &config.exporters {
            let ExporterConfig::LoadBalancing(lb) = exporter else {
                continue;
            };
            let Some(pool) = pools.get(id) else {
                continue; // configured but in no pipeline
            };
            let splitters = config
                .exporter_signals(id)
                .into_iter()
                .map(|signal| Splitter::new(signal, lb.key_spec(signal)))
                .collect();
            exporters.push(Watched {
                name: id.to_string(),
                pool: pool.clone(),
                splitters,
                queue: lb.sending_queue.enabled,
            });
        }
        Status {
            exporters,
            telemetry,
        }
    }

    /// Reads everything the page shows, now.
    pub fn snapshot(&self) -> Snapshot {
        let now = SystemTime::now();
        let metrics = self
            .exporters
            .iter()
            .any(|e| e.queue)
            .then(|| self.telemetry.render());
        Snapshot {
            generated_at_unix_ms: unix_ms(now),
            window_seconds: WINDOW_SECONDS,
            exporters: self
                .exporters
                .iter()
                .map(|e| e.snapshot(now, metrics.as_deref()))
                .collect(),
        }
    }

    /// Which backend of the exporter in `query` owns its key.
    pub fn route(&self, query: &str) -> Result<RouteAnswer, RouteError> {
        let bad = |m: String| RouteError::BadRequest(m);
        let mut params = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name)?;
            let value = percent_decode(value)?;
            let known = name == "exporter" || name == "signal";
            if !known && !KEY_PARAMS.iter().any(|(p, _)| *p == name) {
                return Err(bad(format!(
                    "unknown parameter \"{name}\"; /route takes exporter, one of trace_id, \
                     service, metric, and optionally signal"
                )));
            }
            if params.insert(name.clone(), value).is_some() {
                return Err(bad(format!("parameter \"{name}\" is given twice")));
            }
        }
        let names = || {
            self.exporters
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = params.get("exporter").ok_or_else(|| {
            bad(format!(
                "missing parameter \"exporter\" (load-balancing exporters: {})",
                names()
            ))
        })?;
        let exporter = self
            .exporters
            .iter()
            .find(|e| e.name == *name)
            .ok_or_else(|| {
                bad(format!(
                    "unknown exporter \"{name}\"; load-balancing exporters: {}",
                    names()
                ))
            })?;
        let given: Vec<(&str, &str, &String)> = KEY_PARAMS
            .iter()
            .filter_map(|(param, key)| params.get(*param).map(|v| (*param, *key, v)))
            .collect();
        let [(param, key_name, value)] = given[..] else {
            return Err(bad(
                "give exactly one of the parameters trace_id, service, metric".into(),
            ));
        };
        let signal = match params.get("signal") {
            None => None,
            Some(text) => Some(
                Signal::ALL
                    .into_iter()
                    .find(|s| s.as_str() == text)
                    .ok_or_else(|| {
                        bad(format!(
                            "signal \"{text}\" is not one of traces, metrics, logs"
                        ))
                    })?,
            ),
        };
        let splitter = exporter
            .splitters
            .iter()
            .find(|s| s.key().key.as_str() == key_name && signal.is_none_or(|x| x == s.signal()))
            .ok_or_else(|| {
                let keys: Vec<String> = exporter
                    .splitters
                    .iter()
                    .map(|s| format!("{} by {}", s.signal(), s.key().key.as_str()))
                    .collect();
                bad(format!(
                    "exporter \"{name}\" does not route {} by {key_name}: it routes {}",
                    signal.map_or("anything".into(), |s| s.to_string()),
                    keys.join(", ")
                ))
            })?;
        let probe = probe(splitter.signal(), &splitter.key().key, value)?;
        let pool = exporter.pool.load();
        if pool.is_empty() {
            return Err(RouteError::Unavailable(format!(
                "exporter \"{name}\" has no backend right now"
            )));
        }
        let mut hash = None;
        let split = splitter
            .split(
                &probe,
                &mut |h| {
                    hash = Some(h);
                    pool.route(h).unwrap_or(0)
                },
                0,
            )
            .map_err(|e| bad(format!("{param}: {e}")))?;
        let backend = split
            .parts
            .first()
            .and_then(|part| pool.ring().endpoints().get(part.backend));
        match (backend, hash) {
            (Some(backend), Some(hash)) => Ok(RouteAnswer {
                exporter: exporter.name.clone(),
                signal: splitter.signal().to_string(),
                routing_key: key_name.to_string(),
                key: value.clone(),
                hash: format!("{hash:016x}"),
                backend: backend.to_string(),
            }),
            _ => Err(bad(format!(
                "{param} \"{value}\" cannot be routed: {}",
                split.message
            ))),
        }
    }
}

impl Watched {
    fn snapshot(&self, now: SystemTime, metrics: Option<&str>) -> ExporterSnapshot {
        let pool = self.pool.load();
        let ring = pool.ring();
        let calls: Vec<_> = (0..ring.len())
            .map(|i| {
                pool.backend(i)
                    .map(|b| b.calls().stats())
                    .unwrap_or_default()
            })
            .collect();
        let items: u64 = calls.iter().map(|c| c.items).sum();
        let requests: u64 = calls.iter().map(|c| c.requests()).sum();
        let backends = ring
            .endpoints()
            .iter()
            .zip(ring.shares())
            .zip(&calls)
            .map(|((endpoint, ring_share), c)| BackendSnapshot {
                endpoint: endpoint.to_string(),
                ring_share,
                traffic_share: match (items, requests) {
                    (0, 0) => 0.0,
                    (0, all) => c.requests() as f64 / all as f64,
                    (all, _) => c.items as f64 / all as f64,
                },
                items: c.items,
                requests: c.requests(),
                successes: c.successes,
                failures: c.failures,
                p50_ms: c.p50_ms,
                p99_ms: c.p99_ms,
            })
            .collect();
        let log = self.pool.resolutions().map(|r| r.log()).unwrap_or_default();
        let queue = match (self.queue, metrics) {
            (true, Some(text)) => Some(QueueSnapshot {
                size: gauge(text, names::EXPORTER_QUEUE_SIZE, &self.name).unwrap_or(0.0),
                capacity: gauge(text, names::EXPORTER_QUEUE_CAPACITY, &self.name).unwrap_or(0.0),
            }),
            _ => None,
        };
        ExporterSnapshot {
            name: self.name.clone(),
            resolver: self.pool.resolver().to_string(),
            routing_keys: self
                .splitters
                .iter()
                .map(|s| (s.signal().to_string(), s.key().key.as_str().to_string()))
                .collect(),
            resolutions: ResolutionSnapshot {
                successes: log.successes,
                failures: log.failures,
                last: log.last.map(|last| LastResolutionSnapshot {
                    at_unix_ms: unix_ms(last.at),
                    age_seconds: now.duration_since(last.at).map_or(0, |d| d.as_secs()),
                    success: last.success,
                    endpoints: last.endpoints,
                }),
            },
            queue,
            backends,
        }
    }
}

/// A one-item request of `signal` that carries `value` as its `key`, for
/// the exporter's splitter to route.
fn probe(signal: Signal, key: &RoutingKey, value: &str) -> Result<Bytes, RouteError> {
    let trace_id = match key {
        RoutingKey::TraceId => parse_trace_id(value)?,
        // Any valid id: only the resource or the metric decides.
        _ => vec![1; 16],
    };
    let service = match key {
        RoutingKey::Service => vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }],
        _ => Vec::new(),
    };
    let resource = Some(Resource {
        attributes: service,
        ..Default::default()
    });
    let encoded = match signal {
        Signal::Traces => ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource,
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id,
                        span_id: vec![1; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource,
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        trace_id,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource,
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: match key {
                            RoutingKey::Metric => value.into(),
                            _ => "probe".into(),
                        },
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default()],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    };
    Ok(Bytes::from(encoded))
}

/// 32 hex digits (either case) as 16 bytes.
fn parse_trace_id(text: &str) -> Result<Vec<u8>, RouteError> {
    let digits = text.as_bytes();
    let bad = || {
        RouteError::BadRequest(format!(
            "trace_id must be 32 hex digits (16 bytes), got \"{text}\""
        ))
    };
    if digits.len() != 32 {
        return Err(bad());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hex = |c: u8| (c as char).to_digit(16);
            match (hex(pair[0]), hex(pair[1])) {
                (Some(hi), Some(lo)) => Ok((hi * 16 + lo) as u8),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// Decodes a query component: `+` is a space, `%XX` a byte; the result
/// must be UTF-8.
fn percent_decode(text: &str) -> Result<String, RouteError> {
    let bad = || RouteError::BadRequest(format!("malformed percent-encoding in \"{text}\""));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(bad)?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The value of gauge `name` with label `exporter="..."` in Prometheus text.
fn gauge(text: &str, name: &str, exporter: &str) -> Option<f64> {
    let label = format!(
        "exporter=\"{}\"",
        exporter.replace('\\', "\\\\").replace('"', "\\\"")
    );
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .find_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            labels
                .split(',')
                .any(|l| l == label)
                .then(|| value.trim().parse().ok())?
        })
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An id attribute value from a name: letters and digits kept, the rest `-`.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn millis(ms: Option<f64>) -> String {
    match ms {
        Some(ms) if ms >= 1000.0 => format!("≤ {:.1} s", ms / 1000.0),
        Some(ms) => format!("≤ {ms} ms"),
        None => "–".into(),
    }
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px 32px;
  color: #1d2433; background: #f6f7f9; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 8px; font-family: ui-monospace, monospace; }
.meta { color: #5b6475; margin: 0 0 20px; }
section { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 16px 20px;
  margin-bottom: 20px; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 28px; margin: 0 0 12px; color: #3b4456; }
.facts b { color: #1d2433; }
.ok { color: #1a7f37; } .failed { color: #c62828; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; color: #5b6475; border-bottom: 2px solid #dde1e8;
  padding: 6px 10px; white-space: nowrap; }
td { padding: 6px 10px; border-bottom: 1px solid #eef0f4; white-space: nowrap; }
td.endpoint { font-family: ui-monospace, monospace; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { display: inline-block; width: 120px; height: 10px; background: #eef0f4; border-radius: 5px;
  margin-right: 8px; vertical-align: middle; overflow: hidden; }
.bar span { display: block; height: 100%; }
.ring .bar span { background: #6b7cff; } .traffic .bar span { background: #1fa37a; }
form { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
input, select, button { font: inherit; padding: 4px 8px; }
input { width: 300px; font-family: ui-monospace, monospace; }
.empty { color: #5b6475; font-style: italic; }
";

/// The HTML page for `snapshot`.
pub fn render_html(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(8 << 10);
    let refresh = REFRESH.as_secs();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>otlp-lb status</title>\
         <noscript><meta http-equiv=\"refresh\" content=\"{refresh}\"></noscript>\
         <style>{STYLE}</style></head><body>\
         <h1>otlp-lb status</h1><p class=\"meta\" id=\"generated\" data-unix-ms=\"{ms}\">\
         Traffic over the last {window} s · generated {at} · reloads every {refresh} s · \
         <a href=\"/status.json\">status.json</a></p>",
        ms = snapshot.generated_at_unix_ms,
        window = snapshot.window_seconds,
        at = utc(snapshot.generated_at_unix_ms),
    );
    if snapshot.exporters.is_empty() {
        out.push_str("<p class=\"empty\">No load-balancing exporter is in a pipeline.</p>");
    }
    for exporter in &snapshot.exporters {
        exporter_html(&mut out, exporter);
    }
    route_form(&mut out, snapshot);
    // Reload, unless the operator is typing in the form.
    let _ = writeln!(
        out,
        "<script>setInterval(function () {{ var a = document.activeElement; \
         if (!a || (a.tagName !== 'INPUT' && a.tagName !== 'SELECT')) location.reload(); }}, \
         {});</script></body></html>",
        REFRESH.as_millis()
    );
    out
}

fn exporter_html(out: &mut String, e: &ExporterSnapshot) {
    let name = escape(&e.name);
    let keys: Vec<String> = e
        .routing_keys
        .iter()
        .map(|(signal, key)| format!("{} by <b>{}</b>", escape(signal), escape(key)))
        .collect();
    let resolution = match &e.resolutions.last {
        None => "<b>none yet</b>".to_string(),
        Some(last) => format!(
            "<b class=\"{class}\">{outcome}</b>{count}, {at} ({age} s ago)",
            class = if last.success { "ok" } else { "failed" },
            outcome = if last.success { "ok" } else { "failed" },
            count = last
                .endpoints
                .map_or(String::new(), |n| format!(", {n} endpoints")),
            at = utc(last.at_unix_ms),
            age = last.age_seconds,
        ),
    };
    let queue = match &e.queue {
        None => "no sending queue".to_string(),
        Some(q) => format!("<b>{}</b> / {}", q.size, q.capacity),
    };
    let _ = write!(
        out,
        "<section class=\"exporter\" id=\"exporter-{slug}\" data-exporter=\"{name}\">\
         <h2>{name}</h2><div class=\"facts\">\
         <span class=\"resolver\">resolver: <b>{resolver}</b></span>\
         <span class=\"routing\">routing: {keys}</span>\
         <span class=\"resolution\">last resolution: {resolution}</span>\
         <span class=\"resolutions\">resolutions: {ok} ok, {failed} failed</span>\
         <span class=\"queue\">queue: {queue}</span></div>",
        slug = slug(&e.name),
        resolver = escape(&e.resolver),
        keys = keys.join(", "),
        ok = e.resolutions.successes,
        failed = e.resolutions.failures,
    );
    if e.backends.is_empty() {
        out.push_str("<p class=\"empty\">No backend in the ring.</p></section>");
        return;
    }
    out.push_str(
        "<table class=\"backends\"><thead><tr><th>backend</th><th>ring share</th>\
         <th>traffic share</th><th>items</th><th>calls ok</th><th>calls failed</th>\
         <th>p50</th><th>p99</th></tr></thead><tbody>",
    );
    for b in &e.backends {
        let endpoint = escape(&b.endpoint);
        let _ = write!(
            out,
            "<tr class=\"backend\" data-endpoint=\"{endpoint}\" data-ring-share=\"{ring:.6}\" \
             data-traffic-share=\"{traffic:.6}\" data-items=\"{items}\">\
             <td class=\"endpoint\">{endpoint}</td>\
             <td class=\"ring\"><span class=\"bar\"><span style=\"width:{ring_pct:.1}%\"></span></span>{ring_text}</td>\
             <td class=\"traffic\"><span class=\"bar\"><span style=\"width:{traffic_pct:.1}%\"></span></span>{traffic_text}</td>\
             <td class=\"num items\">{items}</td><td class=\"num successes\">{ok}</td>\
             <td class=\"num failures{failed_class}\">{failed}</td>\
             <td class=\"num p50\">{p50}</td><td class=\"num p99\">{p99}</td></tr>",
            ring = b.ring_share,
            traffic = b.traffic_share,
            ring_pct = b.ring_share * 100.0,
            traffic_pct = b.traffic_share * 100.0,
            ring_text = percent(b.ring_share),
            traffic_text = percent(b.traffic_share),
            items = b.items,
            ok = b.successes,
            failed = b.failures,
            failed_class = if b.failures > 0 { " failed" } else { "" },
            p50 = escape(&millis(b.p50_ms)),
            p99 = escape(&millis(b.p99_ms)),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn route_form(out: &mut String, snapshot: &Snapshot) {
    if snapshot.exporters.is_empty() {
        return;
    }
    out.push_str(
        "<section class=\"route\"><h2>Which backend owns a key?</h2>\
         <form action=\"/route\" method=\"get\"><select name=\"exporter\">",
    );
    for e in &snapshot.exporters {
        let name = escape(&e.name);
        let _ = write!(out, "<option value=\"{name}\">{name}</option>");
    }
    out.push_str(
        "</select><input name=\"trace_id\" placeholder=\"trace id, 32 hex digits\" \
         pattern=\"[0-9a-fA-F]{32}\" required><button type=\"submit\">Find</button></form>\
         <p class=\"meta\">Also <code>/route?exporter=NAME&amp;service=NAME</code> and \
         <code>&amp;metric=NAME</code>, for exporters that route by those keys.</p></section>",
    );
}

/// Serves the page on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    status: Arc<Status>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(page))
        .route("/status.json", get(json))
        .route("/route", get(route))
        .fallback(not_found)
        .with_state(status);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn page(State(status): State<Arc<Status>>) -> Html<String> {
    Html(render_html(&status.snapshot()))
}

async fn json(State(status): State<Arc<Status>>) -> Response {
    json_response(StatusCode::OK, &status.snapshot())
}

async fn route(State(status): State<Arc<Status>>, RawQuery(query): RawQuery) -> Response {
    match status.route(query.as_deref().unwrap_or("")) {
        Ok(answer) => json_response(StatusCode::OK, &answer),
        Err(e @ RouteError::BadRequest(_)) => text(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ RouteError::Unavailable(_)) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("no page at {}; try /, /status.json or /route", uri.path()),
    )
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body + "\n",
    )
        .into_response()
}

fn json_response(code: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests;
