//! Ring lookup cost: hashing a trace id and finding its owner, on rings of
//! 4, 8 and 300 endpoints with the default virtual nodes. Keys are cycled
//! from a precomputed set of 4096 so the measurement is the lookup, not key
//! generation.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otlp_lb::routing::{
    Ring,
    ring::{DEFAULT_VNODES, key_hash},
};

fn keys() -> Vec<[u8; 16]> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..4096)
        .map(|_| {
            let mut id = [0u8; 16];
            for half in id.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                half.copy_from_slice(&x.to_le_bytes());
            }
            id
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("ring");
    // One element is one lookup: criterion prints lookups per second and
    // the time per lookup.
    group.throughput(Throughput::Elements(1));
    for n in [4usize, 8, 300] {
        let ring = Ring::new(
            (0..n).map(|i| format!("10.0.{}.{}:4317", i / 250, i % 250)),
            DEFAULT_VNODES,
        );
        let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
        let mut i = 0usize;
        group.bench_function(format!("lookup_{n}_endpoints"), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                ring.lookup(black_box(hashes[i]))
            })
        });
        let mut j = 0usize;
        group.bench_function(format!("hash_and_lookup_trace_id_{n}_endpoints"), |b| {
            b.iter(|| {
                j = (j + 1) & 4095;
                ring.lookup(key_hash(black_box(&keys[j])))
            })
        });
    }
    group.finish();
}

criterion_group!(ring, benches);
criterion_main!(ring);
