//! What the fuzz targets share: the properties of the scanner and the
//! splitter, checked on arbitrary bytes and against the prost oracle
//! (`otlp_lb::wire::oracle`, exposed by the `fuzzing` feature).
//!
//! Input layout of the split targets: the first byte picks the routing key
//! (and for `attributes` the names), the second the number of backends, the
//! rest is the request.

use bytes::Bytes;
use otlp_lb::{
    proto::collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    proto::metrics::v1::metric::Data,
    routing::{KeySpec, RoutingKey, SPAN_KIND, SPAN_NAME},
    signal::Signal,
    wire::{Split, Splitter, WireError, count_items, oracle},
};
use prost::Message;

/// The hash the splitter routes keyless items (logs without a trace id) by.
const KEYLESS: u64 = 0x5eed;

/// The keys `signal` has, `attributes` with a few name sets (pseudo
/// attributes for spans, a name no request has, a repeated name).
pub fn keys(signal: Signal) -> Vec<KeySpec> {
    let names = |ns: &[&str]| -> Vec<String> { ns.iter().map(|n| n.to_string()).collect() };
    let mut keys: Vec<KeySpec> = RoutingKey::valid_for(signal)
        .iter()
        .filter(|k| **k != RoutingKey::Attributes)
        .map(|k| KeySpec::from(*k))
        .collect();
    for set in [
        names(&["service.name"]),
        names(&["host", "k1", "missing"]),
        names(&["k2", SPAN_NAME, SPAN_KIND, "k2"]),
        names(&["env", "service.name"]),
    ] {
        keys.push(KeySpec::new(RoutingKey::Attributes, &set));
    }
    keys
}

/// A request prost decodes: its canonical re-encoding (unknown fields
/// dropped, fields in order, shortest varints) and its item count.
pub fn canonical(signal: Signal, request: &[u8]) -> Option<(Bytes, u64)> {
    match signal {
        Signal::Traces => {
            let m = ExportTraceServiceRequest::decode(request).ok()?;
            let items = m
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum();
            Some((m.encode_to_vec().into(), items))
        }
        Signal::Logs => {
            let m = ExportLogsServiceRequest::decode(request).ok()?;
            let items = m
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum();
            Some((m.encode_to_vec().into(), items))
        }
        Signal::Metrics => {
            let m = ExportMetricsServiceRequest::decode(request).ok()?;
            let items = m
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(d)) => d.data_points.len(),
                    Some(Data::Sum(d)) => d.data_points.len(),
                    Some(Data::Histogram(d)) => d.data_points.len(),
                    Some(Data::ExponentialHistogram(d)) => d.data_points.len(),
                    Some(Data::Summary(d)) => d.data_points.len(),
                    None => 0,
                } as u64)
                .sum();
            Some((m.encode_to_vec().into(), items))
        }
    }
}

/// The scanner on arbitrary bytes: never panics, and on a request prost
/// decodes, counts what prost counts.
pub fn scan(data: &[u8]) {
    let Some((&pick, request)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(pick) % Signal::ALL.len()];
    let counted = count_items(signal, request);
    if let Some((canonical, items)) = canonical(signal, request) {
        assert_eq!(count_items(signal, &canonical), Ok(items));
        // The splitter reads no more than the counter: what prost accepts,
        // the counter accepts too (groups aside, see `split`).
        if let Err(e) = &counted {
            assert!(is_group(e), "{signal}: prost decodes, count_items says {e}");
        }
    }
}

/// A group's wire type: OTLP has no groups and the scanner refuses them;
/// prost skips them in unknown fields.
fn is_group(e: &WireError) -> bool {
    matches!(e, WireError::UnsupportedWireType { wire_type: 3 | 4, .. })
}

/// The splitter on arbitrary bytes and against the oracle.
///
/// On the bytes as they are: it never panics; what it accepts it accounts
/// for item by item (parts plus rejected equals the count of the request,
/// every part counts as it says, backends in order and in range); what it
/// refuses, prost refuses too (it checks no more than a decoder would).
///
/// On a request prost decodes, re-encoded canonically (so that values' bytes
/// are what the oracle's re-encoding gives): it accepts, and agrees with the
/// oracle on every part's backend, items and content, and on the rejected
/// count.
pub fn split(signal: Signal, data: &[u8]) {
    let Some((&[k, n], request)) = data.split_first_chunk::<2>() else {
        return;
    };
    let keys = keys(signal);
    let key = keys[usize::from(k) % keys.len()].clone();
    let n = u64::from(n % 8) + 1;
    let splitter = Splitter::new(signal, key.clone());
    let raw = Bytes::copy_from_slice(request);
    let decoded = canonical(signal, request);
    match splitter.split(&raw, &mut |h| (h % n) as usize, KEYLESS) {
        Ok(out) => accounted(signal, &raw, &out, n),
        Err(e) => assert!(
            decoded.is_none() || is_group(&e),
            "{signal} {key:?}: prost decodes, the splitter says {e}"
        ),
    }
    let Some((canonical, _)) = decoded else {
        return;
    };
    let out = splitter
        .split(&canonical, &mut |h| (h % n) as usize, KEYLESS)
        .unwrap_or_else(|e| panic!("{signal} {key:?}: canonical request refused: {e}"));
    accounted(signal, &canonical, &out, n);
    let route = &mut |h: u64| (h % n) as usize;
    // Compared as canonical bytes: prost messages with NaN doubles are not
    // equal to themselves.
    let expect: Vec<(usize, Vec<u8>, u64)>;
    let rejected;
    let reencode: fn(&Bytes) -> Vec<u8>;
    match signal {
        Signal::Traces => {
            let Ok(m) = ExportTraceServiceRequest::decode(canonical.clone()) else {
                return;
            };
            let o = oracle::traces(&m, &key, route, KEYLESS);
            rejected = o.rejected;
            expect = o.parts.into_iter().map(|(b, m, i)| (b, m.encode_to_vec(), i)).collect();
            reencode = |b| {
                ExportTraceServiceRequest::decode(b.clone())
                    .map(|m| m.encode_to_vec())
                    .unwrap_or_default()
            };
        }
        Signal::Logs => {
            let Ok(m) = ExportLogsServiceRequest::decode(canonical.clone()) else {
                return;
            };
            let o = oracle::logs(&m, &key, route, KEYLESS);
            rejected = o.rejected;
            expect = o.parts.into_iter().map(|(b, m, i)| (b, m.encode_to_vec(), i)).collect();
            reencode = |b| {
                ExportLogsServiceRequest::decode(b.clone())
                    .map(|m| m.encode_to_vec())
                    .unwrap_or_default()
            };
        }
        Signal::Metrics => {
            let Ok(m) = ExportMetricsServiceRequest::decode(canonical.clone()) else {
                return;
            };
            let o = oracle::metrics(&m, &key, route, KEYLESS);
            rejected = o.rejected;
            expect = o.parts.into_iter().map(|(b, m, i)| (b, m.encode_to_vec(), i)).collect();
            reencode = |b| {
                ExportMetricsServiceRequest::decode(b.clone())
                    .map(|m| m.encode_to_vec())
                    .unwrap_or_default()
            };
        }
    }
    assert_eq!(out.rejected, rejected, "{signal} {key:?}: rejected");
    let got: Vec<(usize, u64)> = out.parts.iter().map(|p| (p.backend, p.items)).collect();
    let want: Vec<(usize, u64)> = expect.iter().map(|(b, _, i)| (*b, *i)).collect();
    assert_eq!(got, want, "{signal} {key:?}: backends and items");
    for (part, (backend, bytes, _)) in out.parts.iter().zip(&expect) {
        assert!(
            reencode(&part.request) == *bytes,
            "{signal} {key:?}: the part for backend {backend} differs from the oracle's"
        );
    }
    if out.parts.len() == 1 && out.rejected == 0 {
        assert_eq!(out.parts[0].request.as_ptr(), canonical.as_ptr());
    }
}

/// What the splitter accepted, it accounted for item by item.
fn accounted(signal: Signal, request: &Bytes, out: &Split, n: u64) {
    let total: u64 = out.parts.iter().map(|p| p.items).sum();
    assert_eq!(count_items(signal, request), Ok(total + out.rejected));
    assert_eq!(out.message.is_empty(), out.rejected == 0);
    assert!(out.parts.windows(2).all(|w| w[0].backend < w[1].backend));
    for part in &out.parts {
        assert!((part.backend as u64) < n);
        assert!(part.items > 0);
        assert_eq!(count_items(signal, &part.request), Ok(part.items));
    }
}
