use std::collections::HashMap;

use proptest::prelude::*;
use prost::Message;
use xxhash_rust::xxh3::xxh3_128;

use super::*;
use crate::{
    proto::collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    routing::{SPAN_KIND, key_hash},
    wire::{
        count_items, oracle,
        testgen::{self, raw::*},
    },
};

const T1: [u8; 16] = [1; 16];
const T2: [u8; 16] = [2; 16];
const T3: [u8; 16] = [3; 16];

/// Routes exactly the listed keys; anything else is a test failure.
fn table(entries: &[(&[u8], usize)]) -> impl FnMut(u64) -> usize + use<> {
    let map: HashMap<u64, usize> = entries.iter().map(|(k, b)| (key_hash(k), *b)).collect();
    move |h| {
        *map.get(&h)
            .unwrap_or_else(|| panic!("unexpected key hash {h:#x}"))
    }
}

fn split(
    signal: Signal,
    key: impl Into<KeySpec>,
    req: &[u8],
    route: &mut dyn FnMut(u64) -> usize,
) -> Split {
    Splitter::new(signal, key)
        .split(&Bytes::copy_from_slice(req), route, 0xdead)
        .unwrap()
}

fn span(trace: &[u8], name: &str) -> Vec<u8> {
    cat(&[&ld(1, trace), &ld(2, &[7; 8]), &ld(5, name.as_bytes())])
}

/// A traces request with unknown fields at every container level, scope and
/// schema fields after the spans, and spans of three traces spread over two
/// resources.
fn traces_request() -> Vec<u8> {
    let resource = ld(1, &kv("service.name", "checkout"));
    let scope0 = cat(&[
        &ld(2, &span(&T1, "a")),
        &ld(2, &span(&T2, "b")),
        &ld(1, &ld(1, b"lib")),
        &ld(2, &span(&T1, "c")),
        &ld(3, b"schema-s"),
        &vi(99, 42), // unknown
    ]);
    let scope1 = ld(2, &span(&T3, "d"));
    let rs0 = cat(&[
        &ld(1, &resource),
        &ld(2, &scope0),
        &ld(2, &scope1),
        &ld(3, b"schema-r"),
        &ld(77, b"unknown-r"),
    ]);
    let rs1 = cat(&[&ld(2, &ld(2, &span(&T2, "e"))), &ld(2, b"")]);
    cat(&[&ld(1, &rs0), &ld(50, b"unknown-req"), &ld(1, &rs1)])
}

#[test]
fn traces_by_trace_id_copy_items_and_container_fields() {
    let req = traces_request();
    let mut route = table(&[(&T1, 0), (&T2, 1), (&T3, 2)]);
    let out = split(Signal::Traces, RoutingKey::TraceId, &req, &mut route);
    assert_eq!(out.rejected, 0);
    assert_eq!(out.message, "");
    let backends: Vec<usize> = out.parts.iter().map(|p| p.backend).collect();
    assert_eq!(backends, [0, 1, 2]);
    let items: Vec<u64> = out.parts.iter().map(|p| p.items).collect();
    assert_eq!(items, [2, 2, 1]);

    // Backend 0: spans a and c, in the first scope of the first resource.
    let scope0 = cat(&[
        &ld(1, &ld(1, b"lib")),
        &ld(3, b"schema-s"),
        &vi(99, 42),
        &ld(2, &span(&T1, "a")),
        &ld(2, &span(&T1, "c")),
    ]);
    let rs0_head = cat(&[
        &ld(1, &ld(1, &kv("service.name", "checkout"))),
        &ld(3, b"schema-r"),
        &ld(77, b"unknown-r"),
    ]);
    let expect0 = cat(&[
        &ld(50, b"unknown-req"),
        &ld(1, &cat(&[&rs0_head, &ld(2, &scope0)])),
    ]);
    assert_eq!(&out.parts[0].request[..], &expect0[..]);

    // Backend 1: span b from the first resource, span e from the second;
    // the second resource's empty scope is left out.
    let scope0_b = cat(&[
        &ld(1, &ld(1, b"lib")),
        &ld(3, b"schema-s"),
        &vi(99, 42),
        &ld(2, &span(&T2, "b")),
    ]);
    let expect1 = cat(&[
        &ld(50, b"unknown-req"),
        &ld(1, &cat(&[&rs0_head, &ld(2, &scope0_b)])),
        &ld(1, &ld(2, &ld(2, &span(&T2, "e")))),
    ]);
    assert_eq!(&out.parts[1].request[..], &expect1[..]);

    // Backend 2: the second scope only (no scope fields of its own).
    let expect2 = cat(&[
        &ld(50, b"unknown-req"),
        &ld(1, &cat(&[&rs0_head, &ld(2, &ld(2, &span(&T3, "d")))])),
    ]);
    assert_eq!(&out.parts[2].request[..], &expect2[..]);

    for part in &out.parts {
        assert_eq!(count_items(Signal::Traces, &part.request), Ok(part.items));
        ExportTraceServiceRequest::decode(part.request.clone()).unwrap();
    }
}

#[test]
fn one_backend_forwards_the_original_bytes() {
    let req = Bytes::from(traces_request());
    let splitter = Splitter::new(Signal::Traces, RoutingKey::TraceId);
    let out = splitter.split(&req, &mut |_| 3, 0).unwrap();
    assert_eq!(out.parts.len(), 1);
    assert_eq!(out.parts[0].backend, 3);
    assert_eq!(out.parts[0].items, 5);
    assert_eq!(out.parts[0].request.as_ptr(), req.as_ptr());
    assert_eq!(out.parts[0].request.len(), req.len());
}

#[test]
fn empty_requests_and_empty_containers_yield_no_parts() {
    for signal in Signal::ALL {
        let key = RoutingKey::default_for(signal);
        let out = split(signal, key, &[], &mut |_| 0);
        assert_eq!(out, Split::default());
        // Resources and scopes without items.
        let req = cat(&[
            &ld(1, b""),
            &ld(1, &ld(2, b"")),
            &ld(1, &cat(&[&ld(1, b""), &ld(2, &ld(1, b""))])),
        ]);
        let out = split(signal, key, &req, &mut |_| 0);
        assert!(out.parts.is_empty(), "{signal}");
    }
}

#[test]
fn bad_trace_ids_are_rejected_and_the_rest_forwarded() {
    let scope = cat(&[
        &ld(2, &span(&T1, "ok")),
        &ld(2, &span(&[9; 5], "short")),
        &ld(2, &cat(&[&ld(2, &[7; 8])])), // no trace id at all
        &ld(2, &span(&[9; 17], "long")),
        &ld(2, &span(&[9; 3], "short2")),
        &ld(2, &span(&T1, "ok2")),
    ]);
    let req = ld(1, &ld(2, &scope));
    let mut route = table(&[(&T1, 4)]);
    let out = split(Signal::Traces, RoutingKey::TraceId, &req, &mut route);
    assert_eq!(out.rejected, 4);
    assert_eq!(
        out.message,
        "resource_spans[0].scope_spans[0].spans[1]: trace_id is 5 bytes (want 16); \
         resource_spans[0].scope_spans[0].spans[2]: trace_id is 0 bytes (want 16); \
         resource_spans[0].scope_spans[0].spans[3]: trace_id is 17 bytes (want 16); and 1 more"
    );
    assert_eq!(out.parts.len(), 1);
    let part = &out.parts[0];
    assert_eq!((part.backend, part.items), (4, 2));
    let expect = ld(
        1,
        &ld(
            2,
            &cat(&[&ld(2, &span(&T1, "ok")), &ld(2, &span(&T1, "ok2"))]),
        ),
    );
    assert_eq!(&part.request[..], &expect[..]);
}

#[test]
fn every_item_rejected_means_no_parts() {
    let req = ld(1, &ld(2, &ld(2, &span(&[1; 4], "x"))));
    let out = split(Signal::Traces, RoutingKey::TraceId, &req, &mut |_| 0);
    assert_eq!((out.parts.len(), out.rejected), (0, 1));
}

fn log(trace: &[u8], body: &str) -> Vec<u8> {
    cat(&[&ld(5, &ld(1, body.as_bytes())), &ld(9, trace)])
}

#[test]
fn logs_without_trace_id_stay_together_on_the_keyless_route() {
    let scope = cat(&[
        &ld(2, &log(&T1, "a")),
        &ld(2, &log(b"", "no trace")),
        &ld(2, &ld(5, &ld(1, b"no trace field"))),
        &ld(2, &log(&[5; 8], "bad")),
        &ld(2, &log(&T2, "b")),
    ]);
    let req = ld(1, &ld(2, &scope));
    let keyless = 0x1234_u64;
    let mut route = move |h: u64| {
        if h == keyless {
            2
        } else if h == key_hash(&T1) {
            0
        } else {
            1
        }
    };
    let out = Splitter::new(Signal::Logs, RoutingKey::TraceId)
        .split(&Bytes::from(req), &mut route, keyless)
        .unwrap();
    assert_eq!(out.rejected, 1);
    assert_eq!(
        out.message,
        "resource_logs[0].scope_logs[0].log_records[3]: trace_id is 8 bytes (want 16 or none)"
    );
    let got: Vec<(usize, u64)> = out.parts.iter().map(|p| (p.backend, p.items)).collect();
    assert_eq!(got, [(0, 1), (1, 1), (2, 2)]);
    let expect = ld(
        1,
        &ld(
            2,
            &cat(&[
                &ld(2, &log(b"", "no trace")),
                &ld(2, &ld(5, &ld(1, b"no trace field"))),
            ]),
        ),
    );
    assert_eq!(&out.parts[2].request[..], &expect[..]);
}

#[test]
fn service_key_forwards_whole_resources() {
    let rs = |svc: Option<&str>, body: &str| {
        let resource = match svc {
            Some(s) => ld(
                1,
                &cat(&[&ld(1, &kv("host", "h")), &ld(1, &kv("service.name", s))]),
            ),
            None => ld(1, &ld(1, &kv("host", "h"))),
        };
        // An empty scope stays inside a resource forwarded whole.
        cat(&[
            &resource,
            &ld(2, &ld(2, &log(&T1, body))),
            &ld(2, b""),
            &ld(3, b"schema"),
        ])
    };
    let r0 = rs(Some("cart"), "a");
    let r1 = rs(None, "b");
    let r2 = rs(Some("cart"), "c");
    let req = cat(&[&ld(1, &r0), &ld(1, &r1), &ld(1, &r2)]);
    let mut route = table(&[(b"cart", 1), (b"", 0)]);
    let out = split(Signal::Logs, RoutingKey::Service, &req, &mut route);
    assert_eq!(out.parts.len(), 2);
    assert_eq!(&out.parts[0].request[..], &ld(1, &r1)[..]);
    assert_eq!(
        &out.parts[1].request[..],
        &cat(&[&ld(1, &r0), &ld(1, &r2)])[..]
    );
    assert_eq!(out.parts[1].items, 2);
}

#[test]
fn resource_key_ignores_attribute_order() {
    let a = cat(&[&ld(1, &kv("k1", "x")), &ld(1, &kv("k2", "y"))]);
    let b = cat(&[&ld(1, &kv("k2", "y")), &ld(1, &kv("k1", "x"))]);
    let c = cat(&[&ld(1, &kv("k1", "y")), &ld(1, &kv("k2", "x"))]);
    let req = |res: &[u8]| ld(1, &cat(&[&ld(1, res), &ld(2, &ld(2, &span(&T1, "s")))]));
    let mut seen = Vec::new();
    for res in [&a, &b, &c] {
        split(Signal::Traces, RoutingKey::Resource, &req(res), &mut |h| {
            seen.push(h);
            0
        });
    }
    assert_eq!(seen[0], seen[1]);
    assert_ne!(seen[0], seen[2]);
}

/// The `attributes` key is checked by routing only the expected key text.
#[test]
fn attributes_key_text_and_precedence() {
    let resource = ld(
        1,
        &cat(&[
            &ld(1, &kv("env", "prod")),
            &ld(1, &cat(&[&ld(1, b"k1"), &ld(2, &vi(3, u64::MAX))])),
        ]),
    );
    let scope = cat(&[
        &ld(
            1,
            &cat(&[
                &ld(1, b"lib"),
                &ld(3, &kv("env", "scope-env")),
                &ld(3, &kv("k2", "from-scope")),
            ]),
        ),
        &{
            let attrs = cat(&[
                &ld(9, &kv("k2", "from-span")),
                &ld(9, &cat(&[&ld(1, b"host"), &ld(2, &vi(2, 1))])),
                &ld(
                    9,
                    &cat(&[
                        &ld(1, b"ratio"),
                        &ld(2, &cat(&[&[4 << 3 | 1], &2.5f64.to_le_bytes()[..]])),
                    ]),
                ),
            ]);
            ld(2, &cat(&[&ld(1, &T1), &ld(5, b"GET /"), &vi(6, 2), &attrs]))
        },
    ]);
    let req = ld(1, &cat(&[&resource, &ld(2, &scope)]));
    let names: Vec<String> = [
        "env",
        "k1",
        "k2",
        "host",
        "span.name",
        "span.kind",
        "missing",
    ]
    .map(String::from)
    .to_vec();
    let expect = b"env=prod|k1=-1|k2=from-scope|host=true|span.name=GET /|span.kind=2|missing=|";
    let mut route = table(&[(expect, 0)]);
    let out = split(
        Signal::Traces,
        KeySpec::new(RoutingKey::Attributes, &names),
        &req,
        &mut route,
    );
    assert_eq!(out.parts[0].items, 1);

    // A double, from the span since nothing above has it.
    let mut route = table(&[(b"ratio=2.5|", 0)]);
    split(
        Signal::Traces,
        KeySpec::new(RoutingKey::Attributes, &["ratio".into()]),
        &req,
        &mut route,
    );
}

fn point(attrs: &[(&str, &str)], t: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        out.extend(ld(7, &kv(k, v)));
    }
    out.extend(cat(&[&[3 << 3 | 1], &t.to_le_bytes()[..]]));
    out
}

#[test]
fn metrics_by_name_forward_whole_metrics() {
    let gauge = |name: &str, n: usize| {
        let points: Vec<u8> = (0..n).flat_map(|i| ld(1, &point(&[], i as u64))).collect();
        cat(&[&ld(1, name.as_bytes()), &ld(3, b"ms"), &ld(5, &points)])
    };
    let m1 = gauge("m1", 2);
    let m2 = gauge("m2", 3);
    let m3 = gauge("m1", 1);
    let empty = gauge("m2", 0);
    let scope = cat(&[&ld(2, &m1), &ld(2, &m2), &ld(2, &empty), &ld(2, &m3)]);
    let req = ld(1, &ld(2, &scope));
    let mut route = table(&[(b"m1", 0), (b"m2", 1)]);
    let out = split(Signal::Metrics, RoutingKey::Metric, &req, &mut route);
    assert_eq!(
        &out.parts[0].request[..],
        &ld(1, &ld(2, &cat(&[&ld(2, &m1), &ld(2, &m3)])))[..]
    );
    assert_eq!(&out.parts[1].request[..], &ld(1, &ld(2, &ld(2, &m2)))[..]);
    assert_eq!((out.parts[0].items, out.parts[1].items), (3, 3));
}

#[test]
fn metrics_by_stream_keep_metric_and_data_fields() {
    // A sum with temporality, monotonic flag and an unknown field; points of
    // two streams interleaved.
    let p = |host: &str, t| ld(1, &point(&[("host", host)], t));
    let sum = cat(&[
        &p("a", 1),
        &vi(2, 2),
        &p("b", 2),
        &vi(3, 1),
        &p("a", 3),
        &vi(40, 9),
    ]);
    let metric = cat(&[
        &ld(1, b"requests"),
        &ld(2, b"desc"),
        &ld(7, &sum),
        &ld(12, &kv("meta", "x")),
    ]);
    let scope = cat(&[
        &ld(1, &cat(&[&ld(1, b"lib"), &ld(2, b"1.0")])),
        &ld(2, &metric),
    ]);
    let req = ld(
        1,
        &cat(&[&ld(1, &ld(1, &kv("service.name", "svc"))), &ld(2, &scope)]),
    );

    // The metric identity (digest of: the digest of the canonical resource
    // attributes, i.e. count then length-prefixed key and encoded AnyValue;
    // scope name and version; metric name), then the canonical point
    // attributes.
    let stream = |host: &str| {
        let mut resource = Vec::new();
        resource.extend(1u32.to_le_bytes());
        resource.extend(12u32.to_le_bytes());
        resource.extend(b"service.name");
        resource.extend(5u32.to_le_bytes());
        resource.extend(ld(1, b"svc"));
        let mut metric = xxh3_128(&resource).to_le_bytes().to_vec();
        for s in [&b"lib"[..], b"1.0", b"requests"] {
            metric.extend((s.len() as u32).to_le_bytes());
            metric.extend(s);
        }
        let mut k = xxh3_128(&metric).to_le_bytes().to_vec();
        k.extend(1u32.to_le_bytes());
        k.extend(4u32.to_le_bytes());
        k.extend(b"host");
        k.extend((host.len() as u32 + 2).to_le_bytes());
        k.extend(ld(1, host.as_bytes()));
        k
    };
    let mut route = table(&[(&stream("a"), 0), (&stream("b"), 1)]);
    let out = split(Signal::Metrics, RoutingKey::StreamId, &req, &mut route);
    let items: Vec<u64> = out.parts.iter().map(|p| p.items).collect();
    assert_eq!(items, [2, 1]);
    let head = cat(&[
        &ld(1, b"requests"),
        &ld(2, b"desc"),
        &ld(12, &kv("meta", "x")),
    ]);
    let scope_head = ld(1, &cat(&[&ld(1, b"lib"), &ld(2, b"1.0")]));
    let res_head = ld(1, &ld(1, &kv("service.name", "svc")));
    let sum_a = cat(&[&vi(2, 2), &vi(3, 1), &vi(40, 9), &p("a", 1), &p("a", 3)]);
    let expect_a = ld(
        1,
        &cat(&[
            &res_head,
            &ld(
                2,
                &cat(&[&scope_head, &ld(2, &cat(&[&head, &ld(7, &sum_a)]))]),
            ),
        ]),
    );
    assert_eq!(&out.parts[0].request[..], &expect_a[..]);
}

#[test]
fn all_five_data_kinds_split_by_point_attributes() {
    // (data field, point attributes field)
    let kinds = [(5u32, 7u32), (7, 7), (9, 9), (10, 1), (11, 7)];
    let mut metrics = Vec::new();
    for (data, attrs) in kinds {
        let pt = |host: &str| ld(1, &ld(attrs, &kv("host", host)));
        let body = cat(&[&pt("a"), &pt("b"), &pt("a")]);
        metrics.extend(ld(2, &cat(&[&ld(1, b"m"), &ld(data, &body)])));
    }
    let req = ld(1, &ld(2, &metrics));
    let mut route = table(&[(b"host=a|", 0), (b"host=b|", 1)]);
    let out = split(
        Signal::Metrics,
        KeySpec::new(RoutingKey::Attributes, &["host".into()]),
        &req,
        &mut route,
    );
    assert_eq!(
        out.parts.iter().map(|p| p.items).collect::<Vec<_>>(),
        [10, 5]
    );
    for part in &out.parts {
        let decoded = ExportMetricsServiceRequest::decode(part.request.clone()).unwrap();
        assert_eq!(
            decoded.resource_metrics[0].scope_metrics[0].metrics.len(),
            5
        );
        assert_eq!(count_items(Signal::Metrics, &part.request), Ok(part.items));
    }
}

#[test]
fn corruption_is_an_error_naming_the_place() {
    // The second span's attributes claim 120 bytes; 40 are there.
    let mut bad_span = cat(&[&ld(1, &T1), &varint(9 << 3 | 2), &varint(120)]);
    bad_span.extend([0u8; 40]);
    let req = ld(
        1,
        &ld(2, &cat(&[&ld(2, &span(&T1, "a")), &ld(2, &bad_span)])),
    );
    let splitter = Splitter::new(
        Signal::Traces,
        KeySpec::new(RoutingKey::Attributes, &["k".into()]),
    );
    let err = splitter
        .split(&Bytes::from(req.clone()), &mut |_| 0, 0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource_spans[0].scope_spans[0].spans[1]: truncated length-delimited field 9 (need 120 bytes, 40 left)"
    );
    // Routing by trace id never reads past the trace id, so the same request
    // is forwarded as it is.
    let out = Splitter::new(Signal::Traces, RoutingKey::TraceId)
        .split(&Bytes::from(req), &mut |_| 0, 0)
        .unwrap();
    assert_eq!(out.parts[0].items, 2);

    // A truncated resource.
    let req = cat(&[
        &ld(1, &ld(2, &ld(2, &span(&T1, "a")))),
        &varint(1 << 3 | 2),
        &varint(9),
        b"abc",
    ]);
    let err = Splitter::new(Signal::Logs, RoutingKey::Service)
        .split(&Bytes::from(req), &mut |_| 0, 0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "request: truncated length-delimited field 1 (need 9 bytes, 3 left)"
    );
}

#[test]
fn reentrant_route_gets_its_own_scratch() {
    let req = Bytes::from(traces_request());
    let inner = Splitter::new(Signal::Traces, RoutingKey::TraceId);
    let mut route = |h: u64| {
        let nested = inner.split(&req, &mut |h| (h % 2) as usize, 0).unwrap();
        assert!(!nested.parts.is_empty());
        (h % 3) as usize
    };
    let out = Splitter::new(Signal::Traces, RoutingKey::TraceId)
        .split(&req, &mut route, 0)
        .unwrap();
    assert_eq!(out.parts.iter().map(|p| p.items).sum::<u64>(), 5);
}

/// Checks one split against the oracle; `decode` turns a part back into the
/// prost message.
fn check<M: Message + Default + PartialEq>(
    signal: Signal,
    encoded: &Bytes,
    key: &KeySpec,
    n: u64,
    expect: oracle::OracleSplit<M>,
) -> Result<(), TestCaseError> {
    let keyless = 0x5eed;
    let out = Splitter::new(signal, key.clone())
        .split(encoded, &mut |h| (h % n) as usize, keyless)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(out.rejected, expect.rejected);
    prop_assert_eq!(out.message.is_empty(), out.rejected == 0);
    prop_assert_eq!(out.parts.len(), expect.parts.len());
    let mut total = 0;
    for (part, (backend, msg, items)) in out.parts.iter().zip(expect.parts) {
        prop_assert_eq!(part.backend, backend);
        prop_assert!(part.backend < n as usize);
        prop_assert_eq!(part.items, items);
        prop_assert_eq!(count_items(signal, &part.request), Ok(items));
        let decoded =
            M::decode(part.request.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(decoded == msg, "backend {} differs", backend);
        total += items;
    }
    prop_assert!(out.parts.windows(2).all(|w| w[0].backend < w[1].backend));
    prop_assert_eq!(Ok(total + out.rejected), count_items(signal, encoded));
    if out.parts.len() == 1 && out.rejected == 0 {
        prop_assert_eq!(out.parts[0].request.as_ptr(), encoded.as_ptr());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn traces_match_oracle(req in testgen::traces(), key in testgen::routing_key(Signal::Traces), n in 1u64..8) {
        let encoded = Bytes::from(req.encode_to_vec());
        let expect = oracle::traces(&req, &key, &mut |h| (h % n) as usize, 0x5eed);
        check::<ExportTraceServiceRequest>(Signal::Traces, &encoded, &key, n, expect)?;
    }

    #[test]
    fn logs_match_oracle(req in testgen::logs(), key in testgen::routing_key(Signal::Logs), n in 1u64..8) {
        let encoded = Bytes::from(req.encode_to_vec());
        let expect = oracle::logs(&req, &key, &mut |h| (h % n) as usize, 0x5eed);
        check::<ExportLogsServiceRequest>(Signal::Logs, &encoded, &key, n, expect)?;
    }

    #[test]
    fn metrics_match_oracle(req in testgen::metrics(), key in testgen::routing_key(Signal::Metrics), n in 1u64..8) {
        let encoded = Bytes::from(req.encode_to_vec());
        let expect = oracle::metrics(&req, &key, &mut |h| (h % n) as usize, 0x5eed);
        check::<ExportMetricsServiceRequest>(Signal::Metrics, &encoded, &key, n, expect)?;
    }

    #[test]
    fn split_never_panics_on_random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        signal in prop::sample::select(Signal::ALL.to_vec()),
        pick in any::<prop::sample::Index>(),
    ) {
        let keys = all_keys(signal);
        let key = keys[pick.index(keys.len())].clone();
        let _ = Splitter::new(signal, key).split(&Bytes::from(bytes), &mut |h| (h % 5) as usize, 1);
    }

    #[test]
    fn damaged_requests_never_panic(
        (signal, encoded) in prop_oneof![
            testgen::traces().prop_map(|r| (Signal::Traces, r.encode_to_vec())),
            testgen::logs().prop_map(|r| (Signal::Logs, r.encode_to_vec())),
            testgen::metrics().prop_map(|r| (Signal::Metrics, r.encode_to_vec())),
        ],
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        pick in any::<prop::sample::Index>(),
        n in 1u64..8,
    ) {
        let mut bytes = encoded;
        if !bytes.is_empty() {
            for (at, v) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= v;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let keys = all_keys(signal);
        let key = keys[pick.index(keys.len())].clone();
        let bytes = Bytes::from(bytes);
        let counted = count_items(signal, &bytes);
        if let Ok(out) = Splitter::new(signal, key).split(&bytes, &mut |h| (h % n) as usize, 3) {
            // Whatever the splitter accepted, it accounted for item by item.
            let total: u64 = out.parts.iter().map(|p| p.items).sum();
            prop_assert_eq!(counted, Ok(total + out.rejected));
            for part in &out.parts {
                prop_assert_eq!(count_items(signal, &part.request), Ok(part.items));
            }
        }
    }
}

fn all_keys(signal: Signal) -> Vec<KeySpec> {
    let mut names = vec!["service.name".to_string(), "host".to_string()];
    if signal == Signal::Traces {
        names.push(SPAN_KIND.to_string());
    }
    [
        RoutingKey::TraceId.into(),
        RoutingKey::Service.into(),
        RoutingKey::Resource.into(),
        RoutingKey::Metric.into(),
        RoutingKey::StreamId.into(),
        KeySpec::new(RoutingKey::Attributes, &names),
    ]
    .into_iter()
    .filter(|k| k.key.supports(signal))
    .collect()
}

/// One hand-built request per signal, with unknown fields at every container
/// level, split by every key the signal has: every part decodes to what the
/// oracle says, and carries the unknown fields of its containers.
#[test]
fn every_signal_and_key_keeps_unknown_fields() {
    let unknown_req = ld(50, b"req-extension");
    let unknown_res = ld(77, b"resource-extension");
    let unknown_scope = vi(99, 7);
    let unknown_metric = ld(40, b"metric-extension");
    let unknown_data = vi(41, 1);
    let item = |signal: Signal, i: u8| -> Vec<u8> {
        let host = kv("host", &format!("h{}", i % 3));
        match signal {
            Signal::Traces => cat(&[&ld(1, &[i % 3 + 1; 16]), &ld(5, b"op"), &ld(9, &host)]),
            Signal::Logs => cat(&[
                &ld(5, &ld(1, b"body")),
                &ld(6, &host),
                &ld(9, &[i % 3 + 1; 16]),
            ]),
            Signal::Metrics => {
                let point = |j: u8| ld(1, &ld(7, &kv("host", &format!("h{}", (i + j) % 3))));
                let sum = cat(&[&point(0), &point(1), &vi(2, 2), &unknown_data]);
                cat(&[
                    &ld(1, format!("m{}", i % 2).as_bytes()),
                    &ld(7, &sum),
                    &unknown_metric,
                ])
            }
        }
    };
    for signal in Signal::ALL {
        let mut resources = Vec::new();
        for r in 0..2u8 {
            let svc = format!("svc{r}");
            let resource = ld(
                1,
                &cat(&[&ld(1, &kv("service.name", &svc)), &ld(1, &kv("k1", "x"))]),
            );
            let mut scope = ld(1, &ld(1, b"lib"));
            for i in 0..5u8 {
                scope.extend(ld(2, &item(signal, r * 5 + i)));
            }
            scope.extend(&unknown_scope);
            resources.extend(ld(1, &cat(&[&resource, &ld(2, &scope), &unknown_res])));
        }
        let req = Bytes::from(cat(&[&resources, &unknown_req]));
        for key in all_keys(signal) {
            let out = Splitter::new(signal, key.clone())
                .split(&req, &mut |h| (h % 3) as usize, 0)
                .unwrap();
            assert_eq!(out.rejected, 0, "{signal} {key:?}");
            let total: u64 = out.parts.iter().map(|p| p.items).sum();
            assert_eq!(Ok(total), count_items(signal, &req), "{signal} {key:?}");
            let mut route = |h: u64| (h % 3) as usize;
            let backends: Vec<usize> = match signal {
                Signal::Traces => {
                    let decoded = ExportTraceServiceRequest::decode(req.clone()).unwrap();
                    let expect = oracle::traces(&decoded, &key, &mut route, 0);
                    for (part, (b, msg, _)) in out.parts.iter().zip(&expect.parts) {
                        assert_eq!(
                            &ExportTraceServiceRequest::decode(part.request.clone()).unwrap(),
                            msg
                        );
                        assert_eq!(part.backend, *b);
                    }
                    expect.parts.iter().map(|p| p.0).collect()
                }
                Signal::Logs => {
                    let decoded = ExportLogsServiceRequest::decode(req.clone()).unwrap();
                    let expect = oracle::logs(&decoded, &key, &mut route, 0);
                    for (part, (b, msg, _)) in out.parts.iter().zip(&expect.parts) {
                        assert_eq!(
                            &ExportLogsServiceRequest::decode(part.request.clone()).unwrap(),
                            msg
                        );
                        assert_eq!(part.backend, *b);
                    }
                    expect.parts.iter().map(|p| p.0).collect()
                }
                Signal::Metrics => {
                    let decoded = ExportMetricsServiceRequest::decode(req.clone()).unwrap();
                    let expect = oracle::metrics(&decoded, &key, &mut route, 0);
                    for (part, (b, msg, _)) in out.parts.iter().zip(&expect.parts) {
                        assert_eq!(
                            &ExportMetricsServiceRequest::decode(part.request.clone()).unwrap(),
                            msg
                        );
                        assert_eq!(part.backend, *b);
                    }
                    expect.parts.iter().map(|p| p.0).collect()
                }
            };
            assert_eq!(
                out.parts.iter().map(|p| p.backend).collect::<Vec<_>>(),
                backends
            );
            let mut markers = vec![&unknown_req, &unknown_res, &unknown_scope];
            if signal == Signal::Metrics {
                markers.extend([&unknown_metric, &unknown_data]);
            }
            for part in &out.parts {
                for marker in &markers {
                    let found = part.request.windows(marker.len()).any(|w| w == &marker[..]);
                    assert!(
                        found,
                        "{signal} {key:?}: part for {} lost {marker:?}",
                        part.backend
                    );
                }
            }
        }
    }
}

/// Hostile values in routing keys: an `AnyValue` nested far deeper than any
/// decoder's recursion limit, and megabyte values repeated into the key of
/// every item. The splitter never walks a nested value (its key text is its
/// first [`MAX_VALUE_TEXT`] encoded bytes) and renders at most that many
/// bytes of any value per item, so both split in time linear in the request.
mod hostile_values {
    use super::*;
    use crate::{
        proto::common::v1::AnyValue,
        routing::key::{LONG_SCOPE, MAX_VALUE_TEXT},
    };

    const DEPTH: usize = 20_000;

    fn attributes(names: &[&str]) -> KeySpec {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        KeySpec::new(RoutingKey::Attributes, &names)
    }

    /// `name=` and the first `MAX_VALUE_TEXT` bytes of `text`, then `|`.
    fn entry(name: &str, text: &[u8]) -> Vec<u8> {
        cat(&[
            name.as_bytes(),
            b"=",
            &text[..text.len().min(MAX_VALUE_TEXT)],
            b"|",
        ])
    }

    #[test]
    fn deeply_nested_values_route_by_their_first_encoded_bytes() {
        let deep = deep_any_value(DEPTH, "leaf");
        assert!(deep.len() > 100_000);
        // Prost refuses it (its recursion limit is 100): a decoding backend
        // would too, but the first tier must neither overflow its stack nor
        // refuse to route it.
        assert!(AnyValue::decode(&deep[..]).is_err());

        // Traces by `attributes`: the deep value in the resource, for every
        // span; spans also carry one of their own.
        let resource = ld(1, &kv_any("deep", &deep));
        let span = |t: &[u8; 16]| cat(&[&ld(1, t), &ld(9, &kv_any("own", &deep))]);
        let scope = cat(&[&ld(2, &span(&T1)), &ld(2, &span(&T2))]);
        let req = ld(1, &cat(&[&ld(1, &resource), &ld(2, &scope)]));
        let key = cat(&[&entry("deep", &deep), &entry("own", &deep)]);
        let mut route = table(&[(&key, 1)]);
        let out = split(
            Signal::Traces,
            attributes(&["deep", "own"]),
            &req,
            &mut route,
        );
        assert_eq!(out.rejected, 0);
        assert_eq!(out.parts.len(), 1);
        assert_eq!((out.parts[0].backend, out.parts[0].items), (1, 2));
        assert_eq!(&out.parts[0].request[..], &req[..]);

        // Logs by `service`, the deep value as `service.name`.
        let resource = ld(1, &kv_any("service.name", &deep));
        let req = ld(
            1,
            &cat(&[&ld(1, &resource), &ld(2, &ld(2, &log(&T1, "x")))]),
        );
        let mut route = table(&[(&deep[..MAX_VALUE_TEXT], 2)]);
        let out = split(Signal::Logs, RoutingKey::Service, &req, &mut route);
        assert_eq!((out.parts[0].backend, out.parts[0].items), (2, 1));

        // Metrics by `streamID`: the deep value is a point attribute; its
        // canonical form is its whole encoding (read once, never walked).
        for key in [RoutingKey::StreamId.into(), attributes(&["deep"])] {
            let point = |v: &[u8]| ld(1, &ld(7, &kv_any("deep", v)));
            let other = deep_any_value(DEPTH, "other leaf");
            let gauge = cat(&[&point(&deep), &point(&other), &point(&deep)]);
            let metric = cat(&[&ld(1, b"m"), &ld(5, &gauge)]);
            let req = ld(1, &ld(2, &ld(2, &metric)));
            let mut backends = Vec::new();
            let out = split(Signal::Metrics, key.clone(), &req, &mut |h| {
                backends.push(h);
                (h % 2) as usize
            });
            assert_eq!(out.rejected, 0);
            assert_eq!(out.parts.iter().map(|p| p.items).sum::<u64>(), 3);
            // The first and third points have the same key.
            assert_eq!(backends[0], backends[2], "{key:?}");
        }
    }

    #[test]
    fn megabyte_values_cost_a_bounded_key_per_item() {
        // A 2 MiB resource attribute and 20 000 spans without attributes, by
        // `attributes` with a name no span has: every span's key holds the
        // big value. Rendered whole, that is 40 GB of copying and hashing;
        // bounded, 5 MB.
        let big = vec![b'x'; 2 << 20];
        let resource = ld(1, &kv("tenant", std::str::from_utf8(&big).unwrap()));
        let mut scope = Vec::new();
        for _ in 0..20_000 {
            scope.extend(ld(2, &ld(1, &T1)));
        }
        let req = ld(1, &cat(&[&ld(1, &resource), &ld(2, &scope)]));
        let key = cat(&[&entry("tenant", &big), &entry("host", b"")]);
        let mut calls = 0;
        let mut route = table(&[(&key, 0)]);
        let out = split(
            Signal::Traces,
            attributes(&["tenant", "host"]),
            &req,
            &mut |h| {
                calls += 1;
                route(h)
            },
        );
        assert_eq!((out.parts.len(), out.parts[0].items), (1, 20_000));
        // The same key for every span: routed once, then from the cache.
        assert_eq!(calls, 1);

        // Values that differ only after their first MAX_VALUE_TEXT bytes
        // route together.
        let mut other = big.clone();
        other[MAX_VALUE_TEXT] = b'y';
        let resource = ld(1, &kv("tenant", std::str::from_utf8(&other).unwrap()));
        let req = ld(1, &cat(&[&ld(1, &resource), &ld(2, &ld(2, &ld(1, &T1)))]));
        let out = split(
            Signal::Traces,
            attributes(&["tenant", "host"]),
            &req,
            &mut route,
        );
        assert_eq!(out.parts[0].items, 1);
    }

    #[test]
    fn long_scopes_give_the_same_stream_keys_once_per_scope() {
        // A 1 MiB scope name over 5 000 one-point metrics: the scope's part
        // of the digest is taken once, and the keys are the oracle's.
        let name = "s".repeat(1 << 20);
        assert!(name.len() > LONG_SCOPE);
        let metric = |i: usize| {
            let point = ld(1, &ld(7, &kv("host", &format!("h{}", i % 3))));
            cat(&[&ld(1, format!("m{}", i % 7).as_bytes()), &ld(5, &point)])
        };
        for (metrics, check_oracle) in [(12, true), (5_000, false)] {
            let mut scope = ld(1, &cat(&[&ld(1, name.as_bytes()), &ld(2, b"1.0")]));
            for i in 0..metrics {
                scope.extend(ld(2, &metric(i)));
            }
            let resource = ld(1, &ld(1, &kv("service.name", "svc")));
            let req = Bytes::from(ld(1, &cat(&[&resource, &ld(2, &scope)])));
            let key: KeySpec = RoutingKey::StreamId.into();
            if check_oracle {
                let decoded = ExportMetricsServiceRequest::decode(req.clone()).unwrap();
                let expect = oracle::metrics(&decoded, &key, &mut |h| (h % 4) as usize, 0);
                check::<ExportMetricsServiceRequest>(Signal::Metrics, &req, &key, 4, expect)
                    .unwrap();
            } else {
                let out = Splitter::new(Signal::Metrics, key)
                    .split(&req, &mut |h| (h % 4) as usize, 0)
                    .unwrap();
                assert_eq!(out.parts.iter().map(|p| p.items).sum::<u64>(), 5_000);
            }
        }
    }
}
