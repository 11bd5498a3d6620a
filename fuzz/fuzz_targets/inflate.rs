//! Compressed HTTP bodies (`receiver::http::inflate`): never panics, and
//! never returns more than the limit. The first byte picks the
//! Content-Encoding, the second the limit (in 256-byte steps, up to 64 KiB).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use otlp_lb::receiver::http::inflate;

const ENCODINGS: [&str; 6] = ["gzip", "zstd", "deflate", "x-gzip", "identity", "br"];

fuzz_target!(|data: &[u8]| {
    let Some((&[e, l], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(e) % ENCODINGS.len()];
    let limit = usize::from(l) << 8;
    if let Ok(out) = inflate(encoding, Bytes::copy_from_slice(body), limit) {
        // An identity body is limited while it is read, not here.
        if encoding != "identity" {
            assert!(out.len() <= limit, "{encoding}: {} > {limit}", out.len());
        }
    }
});
