//! Ring lookup time per key at 4, 10, 100 and 300 endpoints with the default
//! 1000 virtual nodes each: one hash-to-owner lookup (the routing key is
//! already hashed), and the hash of a 16-byte trace id plus its lookup.
//! Keys cycle through 4096 pre-made trace ids, so the ring's tables, not
//! the key generator, dominate. Balance and churn are printed by
//! `cargo test --lib routing::ring -- --nocapture`.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otlp_lb::routing::{
    Ring,
    ring::{DEFAULT_VNODES, key_hash},
};

const KEYS: usize = 4096;

fn endpoints(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:4317", i / 250, i % 250))
        .collect()
}

fn trace_ids() -> Vec<[u8; 16]> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..KEYS)
        .map(|_| {
            let mut id = [0u8; 16];
            for chunk in id.chunks_mut(8) {
                // xorshift64*
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                chunk.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
            }
            id
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let ids = trace_ids();
    let hashes: Vec<u64> = ids.iter().map(|id| key_hash(id)).collect();
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(1));
    for n in [4usize, 10, 100, 300] {
        let ring = Ring::new(endpoints(n), DEFAULT_VNODES);
        group.bench_with_input(BenchmarkId::new("lookup", n), &ring, |b, ring| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(ring.lookup(black_box(hashes[i])))
            })
        });
        group.bench_with_input(BenchmarkId::new("hash_and_lookup", n), &ring, |b, ring| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(ring.lookup(key_hash(black_box(&ids[i]))))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
