use bytes::BytesMut;
use proptest::prelude::*;
use prost::Message;

use super::{testgen::raw::*, *};
use crate::proto::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    metrics::v1::metric::Data,
};

#[test]
fn varint_round_trips_at_every_length() {
    for shift in 0..64 {
        for v in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
            let bytes = varint(v);
            assert_eq!(encoded_len_varint(v), bytes.len(), "{v}");
            assert_eq!(decode_varint(&bytes, 0), Ok((v, bytes.len())));
            let mut out = BytesMut::new();
            put_varint(&mut out, v);
            assert_eq!(&out[..], &bytes[..]);
        }
    }
    assert_eq!(encoded_len_varint(0), 1);
    assert_eq!(encoded_len_varint(u64::MAX), 10);
}

#[test]
fn varint_rejects_truncation_and_overlong() {
    assert!(matches!(
        decode_varint(&[], 0),
        Err(WireError::TruncatedVarint { offset: 0, .. })
    ));
    assert!(matches!(
        decode_varint(&[0x80, 0x80], 0),
        Err(WireError::TruncatedVarint { .. })
    ));
    // Eleven bytes.
    let long = [0xff; 10].iter().copied().chain([0x00]).collect::<Vec<_>>();
    assert!(matches!(
        decode_varint(&long, 0),
        Err(WireError::VarintOverflow { offset: 0, .. })
    ));
    // Ten bytes whose last byte carries more than the 64th bit.
    let mut over = vec![0xff; 9];
    over.push(0x02);
    assert!(matches!(
        decode_varint(&over, 0),
        Err(WireError::VarintOverflow { .. })
    ));
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(decode_varint(&max, 0), Ok((u64::MAX, 10)));
    // A position past the end is a truncation, not a panic.
    assert!(decode_varint(&[1], 5).is_err());
}

#[test]
fn tag_rejects_groups_reserved_types_and_field_zero() {
    for wt in [3u64, 4, 6, 7] {
        let tag = varint(1 << 3 | wt);
        assert!(
            matches!(decode_tag(&tag, 0), Err(WireError::UnsupportedWireType { field: 1, wire_type, .. }) if u64::from(wire_type) == wt)
        );
    }
    assert!(matches!(
        decode_tag(&[0x02], 0),
        Err(WireError::InvalidFieldNumber { number: 0, .. })
    ));
    let huge = varint((MAX_FIELD_NUMBER + 1) << 3);
    assert!(matches!(
        decode_tag(&huge, 0),
        Err(WireError::InvalidFieldNumber { .. })
    ));
    let max = varint(MAX_FIELD_NUMBER << 3 | 2);
    assert_eq!(
        decode_tag(&max, 0),
        Ok((MAX_FIELD_NUMBER as u32, WireType::Len, max.len()))
    );
}

#[test]
fn fields_yields_every_wire_type_with_ranges() {
    let mut buf = vec![0xaa]; // a byte before the message: offsets are absolute
    let msg = cat(&[
        &vi(1, 300),
        &[(2 << 3) | 1],
        &7u64.to_le_bytes(),
        &ld(3, b"hello"),
        &[(4 << 3) | 5],
        &9u32.to_le_bytes(),
    ]);
    buf.extend_from_slice(&msg);
    let fields: Vec<Field> = Fields::within(&buf, 1..buf.len())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(fields.len(), 4);
    assert_eq!(
        fields[0],
        Field {
            number: 1,
            value: Value::Varint(300),
            start: 1,
            end: 4
        }
    );
    assert_eq!(
        fields[1],
        Field {
            number: 2,
            value: Value::Fixed64(7),
            start: 4,
            end: 13
        }
    );
    assert_eq!(
        fields[2],
        Field {
            number: 3,
            value: Value::Len { start: 15, end: 20 },
            start: 13,
            end: 20
        }
    );
    assert_eq!(&buf[15..20], b"hello");
    assert_eq!(
        fields[3],
        Field {
            number: 4,
            value: Value::Fixed32(9),
            start: 20,
            end: 25
        }
    );
    assert_eq!(fields[3].wire_type(), WireType::Fixed32);
    assert!(fields[0].payload().is_err());
}

#[test]
fn fields_reports_truncation_with_sizes_and_stops() {
    // Field 9 claims 120 bytes; 3 are there.
    let buf = cat(&[&vi(1, 1), &varint(9 << 3 | 2), &varint(120), b"abc"]);
    let mut it = Fields::new(&buf);
    assert!(it.next().unwrap().is_ok());
    let err = it.next().unwrap().unwrap_err();
    assert_eq!(
        err,
        WireError::TruncatedField {
            path: String::new(),
            field: 9,
            wire_type: WireType::Len,
            need: 120,
            left: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "request: truncated length-delimited field 9 (need 120 bytes, 3 left)"
    );
    assert!(it.next().is_none(), "iterator is fused after an error");

    let fixed = [(2 << 3) | 1, 1, 2, 3];
    let err = Fields::new(&fixed).next().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "request: truncated fixed64 field 2 (need 8 bytes, 3 left)"
    );
}

#[test]
fn fields_within_a_window_never_reads_past_it() {
    // The window ends inside the length-delimited payload.
    let buf = ld(1, b"0123456789");
    let err = Fields::within(&buf, 0..5).next().unwrap().unwrap_err();
    assert!(matches!(
        err,
        WireError::TruncatedField {
            need: 10,
            left: 3,
            ..
        }
    ));
    // Out-of-range windows are clamped, not a panic.
    assert_eq!(Fields::within(&buf, 50..60).count(), 0);
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 8..2;
    assert_eq!(Fields::within(&buf, backwards).count(), 0);
}

#[test]
fn headers_are_written_and_measured() {
    for (number, len) in [
        (1u32, 0usize),
        (2, 127),
        (5, 128),
        (16, 1 << 20),
        (MAX_FIELD_NUMBER as u32, 3),
    ] {
        let mut out = BytesMut::new();
        put_len_header(&mut out, number, len);
        assert_eq!(out.len(), len_header_len(number, len));
        let (n, wt, pos) = decode_tag(&out, 0).unwrap();
        assert_eq!((n, wt), (number, WireType::Len));
        assert_eq!(decode_varint(&out, pos).unwrap(), (len as u64, out.len()));
    }
}

#[test]
fn error_paths_prepend_segments() {
    let e = WireError::TruncatedVarint {
        path: String::new(),
        offset: 3,
    }
    .within("spans", Some(7))
    .within("scope_spans", Some(0))
    .within("resource_spans", Some(3));
    assert_eq!(e.path(), "resource_spans[3].scope_spans[0].spans[7]");
    assert_eq!(
        e.to_string(),
        "resource_spans[3].scope_spans[0].spans[7]: truncated varint at byte 3"
    );
}

#[test]
fn count_items_counts_each_signal() {
    use crate::proto::{
        metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Summary,
            SummaryDataPoint,
        },
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        spans: vec![Span::default(); 3],
                        ..Default::default()
                    };
                    2
                ],
                ..Default::default()
            },
            ResourceSpans::default(),
        ],
    };
    assert_eq!(count_items(Signal::Traces, &traces.encode_to_vec()), Ok(6));
    let metric = |data| Metric {
        name: "m".into(),
        data: Some(data),
        ..Default::default()
    };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default(); 2],
                    })),
                    metric(Data::Summary(Summary {
                        data_points: vec![SummaryDataPoint::default(); 3],
                    })),
                    Metric::default(),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(
        count_items(Signal::Metrics, &metrics.encode_to_vec()),
        Ok(5)
    );
    assert_eq!(count_items(Signal::Logs, &[]), Ok(0));
}

#[test]
fn count_items_names_the_bad_level() {
    // resource_spans[0].scope_spans[1] holds a span field that is a varint.
    let scope_ok = ld(2, &ld(2, b""));
    let scope_bad = ld(2, &vi(2, 5));
    let req = ld(1, &cat(&[&scope_ok, &scope_bad]));
    let err = count_items(Signal::Traces, &req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource_spans[0].scope_spans[1]: field 2 has wire type 0 (varint), expected 2 (length-delimited)"
    );
    // A truncated data point list inside a sum.
    let sum = cat(&[&varint(1 << 3 | 2), &varint(50), b"xx"]);
    let metric = cat(&[&ld(1, b"m"), &ld(7, &sum)]);
    let req = ld(1, &ld(2, &cat(&[&ld(2, b""), &ld(2, &metric)])));
    let err = count_items(Signal::Metrics, &req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource_metrics[0].scope_metrics[0].metrics[1].sum: truncated length-delimited field 1 (need 50 bytes, 2 left)"
    );
}

fn prost_counts_traces(r: &ExportTraceServiceRequest) -> u64 {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

fn prost_counts_logs(r: &ExportLogsServiceRequest) -> u64 {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len() as u64)
        .sum()
}

fn prost_counts_metrics(r: &ExportMetricsServiceRequest) -> u64 {
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}

proptest! {
    #[test]
    fn varint_matches_prost(v in any::<u64>()) {
        let mut expect = Vec::new();
        prost::encoding::encode_varint(v, &mut expect);
        prop_assert_eq!(encoded_len_varint(v), prost::encoding::encoded_len_varint(v));
        prop_assert_eq!(decode_varint(&expect, 0), Ok((v, expect.len())));
    }

    #[test]
    fn primitives_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), pos in 0usize..300) {
        let _ = decode_varint(&bytes, pos);
        let _ = decode_tag(&bytes, pos);
        let mut n = 0;
        for f in Fields::new(&bytes) {
            if let Ok(f) = f {
                prop_assert!(f.start < f.end && f.end <= bytes.len());
                if let Value::Len { start, end } = f.value {
                    prop_assert!(f.start < start && start <= end && end == f.end);
                }
            }
            n += 1;
        }
        prop_assert!(n <= bytes.len());
        for signal in Signal::ALL {
            let _ = count_items(signal, &bytes);
        }
    }

    #[test]
    fn count_items_matches_prost_traces(req in testgen::traces()) {
        prop_assert_eq!(count_items(Signal::Traces, &req.encode_to_vec()), Ok(prost_counts_traces(&req)));
    }

    #[test]
    fn count_items_matches_prost_logs(req in testgen::logs()) {
        prop_assert_eq!(count_items(Signal::Logs, &req.encode_to_vec()), Ok(prost_counts_logs(&req)));
    }

    #[test]
    fn count_items_matches_prost_metrics(req in testgen::metrics()) {
        prop_assert_eq!(count_items(Signal::Metrics, &req.encode_to_vec()), Ok(prost_counts_metrics(&req)));
    }
}
