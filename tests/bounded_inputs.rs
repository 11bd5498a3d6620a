//! Inputs at and past the edge's limits, end to end: a gRPC message over
//! `max_recv_msg_size_mib` is refused with RESOURCE_EXHAUSTED (final for an
//! OTLP client, where OUT_OF_RANGE would be retried forever), compressed or
//! not, and nothing reaches a backend.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use otlp_lb::{codec::RawCodec, signal::Signal};
use prost::Message;
use support::{requests, sink::Sink};
use tonic::codec::CompressionEncoding;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_messages_over_the_limit_are_resource_exhausted() {
    let sink = Sink::start().await;
    let yaml = support::first_tier(&[sink.addr], "").replace(
        r#"grpc: { endpoint: "127.0.0.1:0" }"#,
        r#"grpc: { endpoint: "127.0.0.1:0", max_recv_msg_size_mib: 1 }"#,
    );
    assert!(yaml.contains("max_recv_msg_size_mib: 1"));
    let proxy = support::start(&yaml).await;
    let grpc = proxy.grpc["otlp"];
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // A valid request of about 1.5 MiB whose bytes do not compress (random
    // span ids and attribute values), and one of 1.5 MiB that compresses to
    // almost nothing.
    let mut noisy = requests::traces(1, 600, 4, 2400).remove(0);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for span in noisy
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        let mut noise = String::new();
        for _ in 0..40 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            noise.push_str(&format!("{state:016x}"));
        }
        span.name = noise;
    }
    let noisy = noisy.encode_to_vec();
    let mut quiet = requests::traces(1, 10, 1, 10).remove(0);
    quiet.resource_spans[0].scope_spans[0].spans[0].name = "a".repeat(3 << 19);
    let quiet = quiet.encode_to_vec();
    for message in [&noisy, &quiet] {
        assert!(message.len() > 1 << 20 && message.len() < 2 << 20);
    }

    let cases = [
        ("uncompressed", &noisy, None),
        (
            "gzip, compressed size over the limit",
            &noisy,
            Some(CompressionEncoding::Gzip),
        ),
        (
            "zstd, compressed size over the limit",
            &noisy,
            Some(CompressionEncoding::Zstd),
        ),
        (
            "gzip, inflating past the limit",
            &quiet,
            Some(CompressionEncoding::Gzip),
        ),
    ];
    for (what, message, compression) in cases {
        let mut client = tonic::client::Grpc::new(channel.clone());
        if let Some(encoding) = compression {
            client = client.send_compressed(encoding);
        }
        client.ready().await.unwrap();
        let err = client
            .unary(
                tonic::Request::new(Bytes::from(message.clone())),
                http::uri::PathAndQuery::from_static(Signal::Traces.grpc_path()),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::ResourceExhausted,
            "{what}: {err:?}"
        );
        assert!(
            err.message().contains("1048576"),
            "{what}: {}",
            err.message()
        );
    }

    // Under the limit, the same path works.
    let small = requests::traces(1, 10, 1, 10).remove(0);
    let mut client =
        tonic::client::Grpc::new(channel.clone()).send_compressed(CompressionEncoding::Gzip);
    client.ready().await.unwrap();
    client
        .unary(
            tonic::Request::new(Bytes::from(small.encode_to_vec())),
            http::uri::PathAndQuery::from_static(Signal::Traces.grpc_path()),
            RawCodec,
        )
        .await
        .unwrap();
    support::wait_until("the small request arrives", || {
        sink.snapshot().spans.len() == 10
    })
    .await;
    proxy.stop().await.unwrap();
}

/// A span attribute nested 100 000 levels deep (arrays in arrays): the
/// debug exporter's protobuf-to-JSON transcoding and the prost decoders of
/// the second tier refuse it at their recursion limit instead of
/// overflowing the stack.
#[test]
fn deeply_nested_values_are_refused_by_decoders_not_by_the_stack() {
    fn ld(number: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }
    // AnyValue { array_value: ArrayValue { values: [ ... ] } }, inside out;
    // built back to front, so it costs its size, not size times depth.
    let mut rev: Vec<u8> = ld(1, b"leaf").into_iter().rev().collect();
    for _ in 0..100_000 {
        for number in [1, 5] {
            let mut header = Vec::new();
            prost::encoding::encode_key(
                number,
                prost::encoding::WireType::LengthDelimited,
                &mut header,
            );
            prost::encoding::encode_varint(rev.len() as u64, &mut header);
            rev.extend(header.iter().rev());
        }
    }
    rev.reverse();
    let attribute = [ld(1, b"deep"), ld(2, &rev)].concat();
    let span = [ld(1, &[1; 16]), ld(9, &attribute)].concat();
    let request = ld(1, &ld(2, &ld(2, &span)));
    assert!(otlp_lb::receiver::json::to_json(Signal::Traces, &request).is_err());
    assert!(
        otlp_lb::proto::collector::trace::v1::ExportTraceServiceRequest::decode(&request[..])
            .is_err()
    );
    // The scanner reads it without recursing.
    assert_eq!(otlp_lb::wire::count_items(Signal::Traces, &request), Ok(1));
}
