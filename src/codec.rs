//! Moving protobuf bytes without touching them: a pass-through tonic codec,
//! and the gRPC message framing the hot path uses instead of a codec.
//!
//! The receiver takes each request as the exact bytes the client sent, and
//! the exporter writes each backend's assembled bytes as they are: no prost
//! type is ever built on the forwarding path.
//!
//! A tonic codec always encodes into (and decodes from) a buffer of its own,
//! a full copy of every message each way. For uncompressed unary calls the
//! receiver and the exporter frame messages themselves: [`UnaryBody`] sends
//! the 5-byte prefix and the message `Bytes` as they are, and [`unframe`]
//! slices the message out of the received body.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, BufMut, Bytes};
use http::HeaderMap;
use http_body::Frame;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// The pass-through codec: `Bytes` in, `Bytes` out.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.len());
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // `DecodeBuf` wraps a `BytesMut`; this splits it off without a copy.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The 5-byte gRPC prefix of an uncompressed message of `len` bytes.
pub fn prefix(len: usize) -> Result<Bytes, Status> {
    let len = u32::try_from(len)
        .map_err(|_| Status::resource_exhausted(format!("message of {len} bytes is too large")))?;
    let mut p = [0u8; 5];
    p[1..].copy_from_slice(&len.to_be_bytes());
    Ok(Bytes::copy_from_slice(&p))
}

/// The status for a message over the receiver's size limit:
/// RESOURCE_EXHAUSTED, as grpc-go and grpc-java answer. tonic's decoder says
/// OUT_OF_RANGE, which the OTLP spec makes retryable, so a client would send
/// the same oversized request again forever; RESOURCE_EXHAUSTED without
/// `RetryInfo` is final.
pub fn too_large(found: Option<usize>, limit: usize) -> Status {
    let found = found
        .map(|n| format!("found {n} bytes, "))
        .unwrap_or_default();
    Status::resource_exhausted(format!(
        "Error, decoded message length too large: {found}the limit is: {limit} bytes"
    ))
}

/// The message of a unary gRPC body: `body` must be exactly one
/// uncompressed length-prefixed message of at most `limit` bytes (else
/// [`too_large`]). The result is a slice of `body`, not a copy.
pub fn unframe(body: Bytes, limit: usize) -> Result<Bytes, Status> {
    let Some(header) = body.get(..5) else {
        return Err(Status::internal(format!(
            "gRPC body of {} bytes is shorter than a message prefix",
            body.len()
        )));
    };
    if header[0] != 0 {
        return Err(Status::internal(
            "compressed message without a grpc-encoding header",
        ));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > limit {
        return Err(too_large(Some(len), limit));
    }
    if body.len() - 5 != len {
        return Err(Status::internal(format!(
            "unary gRPC body holds {} bytes after the prefix, the prefix says {len}",
            body.len() - 5
        )));
    }
    Ok(body.slice(5..))
}

/// The body of a unary gRPC message: the prefix, the message, then
/// optionally trailers. Each is handed to HTTP/2 as it is, so a large
/// message goes out without being copied into another buffer.
#[derive(Debug, Default)]
pub struct UnaryBody {
    prefix: Option<Bytes>,
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl UnaryBody {
    /// A body holding `message`, framed.
    pub fn new(message: Bytes) -> Result<UnaryBody, Status> {
        Ok(UnaryBody {
            prefix: Some(prefix(message.len())?),
            message: (!message.is_empty()).then_some(message),
            trailers: None,
        })
    }

    /// Ends the body with these trailers (a server's `grpc-status`).
    pub fn with_trailers(mut self, trailers: HeaderMap) -> UnaryBody {
        self.trailers = Some(trailers);
        self
    }
}

impl http_body::Body for UnaryBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let next = match (this.prefix.take(), this.message.take()) {
            (Some(p), m) => {
                this.message = m;
                Some(Frame::data(p))
            }
            (None, Some(m)) => Some(Frame::data(m)),
            (None, None) => this.trailers.take().map(Frame::trailers),
        };
        Poll::Ready(next.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.message.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len = self.prefix.as_ref().map_or(0, Bytes::len)
            + self.message.as_ref().map_or(0, Bytes::len);
        http_body::SizeHint::with_exact(len as u64)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn unary_body_round_trips_through_unframe() {
        let message = Bytes::from_static(b"\x0a\x03abc");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body = UnaryBody::new(message.clone())
            .unwrap()
            .with_trailers(trailers);
        let collected = body.collect().await.unwrap();
        assert_eq!(
            collected.trailers().and_then(|t| t.get("grpc-status")),
            Some(&http::HeaderValue::from_static("0"))
        );
        let bytes = collected.to_bytes();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 5]);
        assert_eq!(unframe(bytes, 1 << 20).unwrap(), message);
    }

    #[tokio::test]
    async fn empty_message_is_a_bare_prefix() {
        let bytes = UnaryBody::new(Bytes::new())
            .unwrap()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&bytes[..], &[0, 0, 0, 0, 0]);
        assert_eq!(unframe(bytes, 0).unwrap(), Bytes::new());
    }

    #[test]
    fn unframe_rejects_what_is_not_one_message() {
        let too_short = Bytes::from_static(&[0, 0, 0]);
        assert!(unframe(too_short, 10).is_err());
        let compressed = Bytes::from_static(&[1, 0, 0, 0, 1, 7]);
        assert!(unframe(compressed, 10).is_err());
        let length_mismatch = Bytes::from_static(&[0, 0, 0, 0, 2, 7]);
        assert!(unframe(length_mismatch, 10).is_err());
        let two_messages = Bytes::from_static(&[0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 1, 8]);
        assert!(unframe(two_messages, 10).is_err());
        let over_limit = Bytes::from_static(&[0, 0, 0, 0, 2, 7, 8]);
        assert_eq!(
            unframe(over_limit, 1).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
    }
}
