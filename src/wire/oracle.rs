//! The splitting semantics stated the plain way, on prost messages: the test
//! oracle for [`super::split`]. Slow and allocating on purpose; it shares no
//! code with the wire splitter except the hash function.

use prost::Message;
use xxhash_rust::xxh3::xxh3_128;

use crate::{
    proto::{
        collector::{
            logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
            trace::v1::ExportTraceServiceRequest,
        },
        common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
        metrics::v1::{Metric, metric::Data},
        resource::v1::Resource,
    },
    routing::{KeySpec, RoutingKey, key::MAX_VALUE_TEXT, key_hash},
};

/// One backend's expected part: backend index, message, item count.
pub type OraclePart<M> = (usize, M, u64);

/// What the splitter should produce.
#[derive(Debug)]
pub struct OracleSplit<M> {
    /// One part per backend, ordered by backend index.
    pub parts: Vec<OraclePart<M>>,
    /// Items that cannot be routed.
    pub rejected: u64,
}

type Route<'a> = &'a mut dyn FnMut(u64) -> usize;

/// The text of a value in an `attributes` key (and a `service` key), cut to
/// its first [`MAX_VALUE_TEXT`] bytes.
fn render(value: Option<&AnyValue>, out: &mut Vec<u8>) {
    let start = out.len();
    render_whole(value, out);
    out.truncate(start + MAX_VALUE_TEXT);
}

fn render_whole(value: Option<&AnyValue>, out: &mut Vec<u8>) {
    let Some(any) = value else { return };
    match &any.value {
        Some(any_value::Value::StringValue(s)) => out.extend_from_slice(s.as_bytes()),
        Some(any_value::Value::BoolValue(b)) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }
        Some(any_value::Value::IntValue(i)) => out.extend_from_slice(i.to_string().as_bytes()),
        Some(any_value::Value::DoubleValue(d)) => out.extend_from_slice(format!("{d}").as_bytes()),
        _ => out.extend_from_slice(&any.encode_to_vec()),
    }
}

fn lp(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Attributes sorted by key then encoded value, count-prefixed.
fn canonical(attrs: &[KeyValue], out: &mut Vec<u8>) {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = attrs
        .iter()
        .map(|kv| {
            let v = kv
                .value
                .as_ref()
                .map(|v| v.encode_to_vec())
                .unwrap_or_default();
            (kv.key.as_bytes().to_vec(), v)
        })
        .collect();
    pairs.sort();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in &pairs {
        lp(out, k);
        lp(out, v);
    }
}

/// The first attribute named `name`: `Some(value)` when present.
fn get<'a>(attrs: &'a [KeyValue], name: &str) -> Option<Option<&'a AnyValue>> {
    attrs
        .iter()
        .find(|kv| kv.key == name)
        .map(|kv| kv.value.as_ref())
}

fn resource_attrs(r: &Option<Resource>) -> &[KeyValue] {
    r.as_ref().map_or(&[][..], |r| &r.attributes)
}

fn scope_attrs(s: &Option<InstrumentationScope>) -> &[KeyValue] {
    s.as_ref().map_or(&[][..], |s| &s.attributes)
}

/// The `attributes` key: resource, then scope, then item; span pseudo
/// attributes (`span`: name and kind) first.
fn attributes_key(
    names: &[String],
    layers: [&[KeyValue]; 3],
    span: Option<(&str, i32)>,
) -> Vec<u8> {
    let mut key = Vec::new();
    for name in names {
        key.extend_from_slice(name.as_bytes());
        key.push(b'=');
        match (span, name.as_str()) {
            (Some((n, _)), "span.name") => key.extend_from_slice(n.as_bytes()),
            (Some((_, k)), "span.kind") => key.extend_from_slice(k.to_string().as_bytes()),
            _ => {
                if let Some(v) = layers.iter().find_map(|attrs| get(attrs, name)) {
                    render(v, &mut key);
                }
            }
        }
        key.push(b'|');
    }
    key
}

fn service_key(r: &Option<Resource>) -> Vec<u8> {
    let mut key = Vec::new();
    if let Some(v) = get(resource_attrs(r), "service.name") {
        render(v, &mut key);
    }
    key
}

fn resource_key(r: &Option<Resource>) -> Vec<u8> {
    let mut key = Vec::new();
    canonical(resource_attrs(r), &mut key);
    key
}

/// Per item: `Some(backend)` or `None` when rejected, plus the fast path rule.
fn single_backend(assign: &[Option<usize>]) -> Option<usize> {
    let first = (*assign.first()?)?;
    assign.iter().all(|a| *a == Some(first)).then_some(first)
}

fn backends(assign: &[Option<usize>]) -> Vec<usize> {
    let mut b: Vec<usize> = assign.iter().flatten().copied().collect();
    b.sort_unstable();
    b.dedup();
    b
}

/// Splits a traces request.
pub fn traces(
    req: &ExportTraceServiceRequest,
    spec: &KeySpec,
    route: Route<'_>,
    _keyless: u64,
) -> OracleSplit<ExportTraceServiceRequest> {
    // One decision per span, in request order.
    let mut assign = Vec::new();
    for rs in &req.resource_spans {
        let res_backend = match spec.key {
            RoutingKey::Service => Some(route(key_hash(&service_key(&rs.resource)))),
            RoutingKey::Resource => Some(route(key_hash(&resource_key(&rs.resource)))),
            _ => None,
        };
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                assign.push(match spec.key {
                    RoutingKey::TraceId if span.trace_id.len() == 16 => {
                        Some(route(key_hash(&span.trace_id)))
                    }
                    RoutingKey::TraceId => None,
                    RoutingKey::Attributes => {
                        let names = &spec.attributes;
                        let layers = [
                            resource_attrs(&rs.resource),
                            scope_attrs(&ss.scope),
                            &span.attributes[..],
                        ];
                        Some(route(key_hash(&attributes_key(
                            names,
                            layers,
                            Some((&span.name, span.kind)),
                        ))))
                    }
                    _ => res_backend,
                });
            }
        }
    }
    let rejected = assign.iter().filter(|a| a.is_none()).count() as u64;
    if rejected == 0
        && let Some(b) = single_backend(&assign)
    {
        return OracleSplit {
            parts: vec![(b, req.clone(), assign.len() as u64)],
            rejected,
        };
    }
    let whole_resources = matches!(spec.key, RoutingKey::Service | RoutingKey::Resource);
    let mut parts = Vec::new();
    for b in backends(&assign) {
        let mut out = ExportTraceServiceRequest::default();
        let mut items = 0u64;
        let mut i = 0usize;
        for rs in &req.resource_spans {
            let mut keep = rs.clone();
            keep.scope_spans.clear();
            let mut any = false;
            for ss in &rs.scope_spans {
                let mut s = ss.clone();
                s.spans.clear();
                for span in &ss.spans {
                    if assign[i] == Some(b) {
                        s.spans.push(span.clone());
                    }
                    i += 1;
                }
                any |= !s.spans.is_empty();
                items += s.spans.len() as u64;
                if !s.spans.is_empty() {
                    keep.scope_spans.push(s);
                }
            }
            if any {
                out.resource_spans
                    .push(if whole_resources { rs.clone() } else { keep });
            }
        }
        parts.push((b, out, items));
    }
    OracleSplit { parts, rejected }
}

/// Splits a logs request.
pub fn logs(
    req: &ExportLogsServiceRequest,
    spec: &KeySpec,
    route: Route<'_>,
    keyless: u64,
) -> OracleSplit<ExportLogsServiceRequest> {
    let mut assign = Vec::new();
    for rl in &req.resource_logs {
        let res_backend = match spec.key {
            RoutingKey::Service => Some(route(key_hash(&service_key(&rl.resource)))),
            RoutingKey::Resource => Some(route(key_hash(&resource_key(&rl.resource)))),
            _ => None,
        };
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                assign.push(match spec.key {
                    RoutingKey::TraceId => match rec.trace_id.len() {
                        16 => Some(route(key_hash(&rec.trace_id))),
                        0 => Some(route(keyless)),
                        _ => None,
                    },
                    RoutingKey::Attributes => {
                        let names = &spec.attributes;
                        let layers = [
                            resource_attrs(&rl.resource),
                            scope_attrs(&sl.scope),
                            &rec.attributes[..],
                        ];
                        Some(route(key_hash(&attributes_key(names, layers, None))))
                    }
                    _ => res_backend,
                });
            }
        }
    }
    let rejected = assign.iter().filter(|a| a.is_none()).count() as u64;
    if rejected == 0
        && let Some(b) = single_backend(&assign)
    {
        return OracleSplit {
            parts: vec![(b, req.clone(), assign.len() as u64)],
            rejected,
        };
    }
    let whole_resources = matches!(spec.key, RoutingKey::Service | RoutingKey::Resource);
    let mut parts = Vec::new();
    for b in backends(&assign) {
        let mut out = ExportLogsServiceRequest::default();
        let mut items = 0u64;
        let mut i = 0usize;
        for rl in &req.resource_logs {
            let mut keep = rl.clone();
            keep.scope_logs.clear();
            for sl in &rl.scope_logs {
                let mut s = sl.clone();
                s.log_records.clear();
                for rec in &sl.log_records {
                    if assign[i] == Some(b) {
                        s.log_records.push(rec.clone());
                    }
                    i += 1;
                }
                items += s.log_records.len() as u64;
                if !s.log_records.is_empty() {
                    keep.scope_logs.push(s);
                }
            }
            if !keep.scope_logs.is_empty() {
                out.resource_logs
                    .push(if whole_resources { rl.clone() } else { keep });
            }
        }
        parts.push((b, out, items));
    }
    OracleSplit { parts, rejected }
}

/// The attribute lists of a metric's data points, in order.
fn point_attrs(m: &Metric) -> Vec<&[KeyValue]> {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.iter().map(|p| &p.attributes[..]).collect(),
        Some(Data::Sum(s)) => s.data_points.iter().map(|p| &p.attributes[..]).collect(),
        Some(Data::Histogram(h)) => h.data_points.iter().map(|p| &p.attributes[..]).collect(),
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.iter().map(|p| &p.attributes[..]).collect()
        }
        Some(Data::Summary(s)) => s.data_points.iter().map(|p| &p.attributes[..]).collect(),
        None => Vec::new(),
    }
}

/// A copy of `m` keeping the data points whose flag in `keep` is set.
fn filter_points(m: &Metric, keep: &[bool]) -> Metric {
    fn pick<T: Clone>(points: &[T], keep: &[bool]) -> Vec<T> {
        points
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(p, _)| p.clone())
            .collect()
    }
    let mut out = m.clone();
    match &mut out.data {
        Some(Data::Gauge(g)) => g.data_points = pick(&g.data_points, keep),
        Some(Data::Sum(s)) => s.data_points = pick(&s.data_points, keep),
        Some(Data::Histogram(h)) => h.data_points = pick(&h.data_points, keep),
        Some(Data::ExponentialHistogram(h)) => h.data_points = pick(&h.data_points, keep),
        Some(Data::Summary(s)) => s.data_points = pick(&s.data_points, keep),
        None => {}
    }
    out
}

/// Splits a metrics request.
pub fn metrics(
    req: &ExportMetricsServiceRequest,
    spec: &KeySpec,
    route: Route<'_>,
    _keyless: u64,
) -> OracleSplit<ExportMetricsServiceRequest> {
    let mut assign = Vec::new();
    for rm in &req.resource_metrics {
        let res_backend = match spec.key {
            RoutingKey::Service => Some(route(key_hash(&service_key(&rm.resource)))),
            RoutingKey::Resource => Some(route(key_hash(&resource_key(&rm.resource)))),
            _ => None,
        };
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let metric_backend = match spec.key {
                    RoutingKey::Metric => Some(route(key_hash(m.name.as_bytes()))),
                    _ => res_backend,
                };
                for attrs in point_attrs(m) {
                    assign.push(match spec.key {
                        RoutingKey::StreamId => {
                            let mut metric =
                                xxh3_128(&resource_key(&rm.resource)).to_le_bytes().to_vec();
                            let (name, version) = sm
                                .scope
                                .as_ref()
                                .map_or(("", ""), |s| (s.name.as_str(), s.version.as_str()));
                            lp(&mut metric, name.as_bytes());
                            lp(&mut metric, version.as_bytes());
                            lp(&mut metric, m.name.as_bytes());
                            let mut k = xxh3_128(&metric).to_le_bytes().to_vec();
                            canonical(attrs, &mut k);
                            Some(route(key_hash(&k)))
                        }
                        RoutingKey::Attributes => {
                            let names = &spec.attributes;
                            let layers =
                                [resource_attrs(&rm.resource), scope_attrs(&sm.scope), attrs];
                            Some(route(key_hash(&attributes_key(names, layers, None))))
                        }
                        _ => metric_backend,
                    });
                }
            }
        }
    }
    let rejected = 0;
    if let Some(b) = single_backend(&assign) {
        return OracleSplit {
            parts: vec![(b, req.clone(), assign.len() as u64)],
            rejected,
        };
    }
    let whole_resources = matches!(spec.key, RoutingKey::Service | RoutingKey::Resource);
    let whole_metrics = matches!(spec.key, RoutingKey::Metric);
    let mut parts = Vec::new();
    for b in backends(&assign) {
        let mut out = ExportMetricsServiceRequest::default();
        let mut items = 0u64;
        let mut i = 0usize;
        for rm in &req.resource_metrics {
            let mut keep = rm.clone();
            keep.scope_metrics.clear();
            for sm in &rm.scope_metrics {
                let mut s = sm.clone();
                s.metrics.clear();
                for m in &sm.metrics {
                    let n = point_attrs(m).len();
                    let flags: Vec<bool> = (i..i + n).map(|j| assign[j] == Some(b)).collect();
                    i += n;
                    let count = flags.iter().filter(|f| **f).count();
                    if count == 0 {
                        continue;
                    }
                    items += count as u64;
                    s.metrics.push(if whole_metrics {
                        m.clone()
                    } else {
                        filter_points(m, &flags)
                    });
                }
                if !s.metrics.is_empty() {
                    keep.scope_metrics.push(s);
                }
            }
            if !keep.scope_metrics.is_empty() {
                out.resource_metrics
                    .push(if whole_resources { rm.clone() } else { keep });
            }
        }
        parts.push((b, out, items));
    }
    OracleSplit { parts, rejected }
}
