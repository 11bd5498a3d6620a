//! The consistent-hash ring: immutable once built, shared through `arc-swap`.
//!
//! Positions are xxh3-64 hashes of `(endpoint, replica)`; every endpoint gets
//! `vnodes` positions. A key is owned by the first position at or after the
//! key's hash, wrapping around. The ring is built from the sorted,
//! de-duplicated endpoint set, so every proxy replica that sees the same
//! endpoints routes every key the same way without talking to the others.
//!
//! Lookups never lock or allocate: a prefix table of about one entry per
//! position (2^8 to 2^16 entries) narrows the
//! binary search to the handful of positions that share the hash's top bits.

use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Default virtual nodes per endpoint. Chosen from the balance test in this
/// module (printed by `cargo test ring_quality -- --nocapture`): at 300
/// endpoints it keeps the busiest endpoint within about 10% of the mean.
pub const DEFAULT_VNODES: usize = 1000;

/// Bounds of the prefix table's size, in bits of the hash. The table has
/// about one entry per position: a lookup then searches one or two
/// positions, and a small pool's table (4 endpoints: 16 KiB instead of
/// 256 KiB) stays in cache between requests.
const MIN_PREFIX_BITS: u32 = 8;
const MAX_PREFIX_BITS: u32 = 16;

/// An immutable consistent-hash ring over a set of endpoints.
#[derive(Debug, Clone)]
pub struct Ring {
    endpoints: Vec<Arc<str>>,
    /// Sorted point positions.
    positions: Vec<u64>,
    /// `owners[i]` is the endpoint index that owns `positions[i]`.
    owners: Vec<u32>,
    /// Top bits of a hash that index `prefix`.
    prefix_bits: u32,
    /// `prefix[p]` is the index of the first position whose top bits are >= p;
    /// one extra entry at the end equals `positions.len()`.
    prefix: Vec<u32>,
}

impl Ring {
    /// Builds a ring with `vnodes` positions per endpoint. The endpoints are
    /// sorted and de-duplicated first, so the input order never matters.
    pub fn new<I, S>(endpoints: I, vnodes: usize) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<&str> = Vec::new();
        let owned: Vec<S> = endpoints.into_iter().collect();
        names.extend(owned.iter().map(AsRef::as_ref));
        names.sort_unstable();
        names.dedup();
        let vnodes = vnodes.max(1);

        let mut points: Vec<(u64, u32)> = Vec::with_capacity(names.len() * vnodes);
        for (idx, name) in names.iter().enumerate() {
            for replica in 0..vnodes {
                points.push((
                    xxh3_64_with_seed(name.as_bytes(), replica as u64),
                    idx as u32,
                ));
            }
        }
        // Ties (astronomically rare) are broken by endpoint index so the ring
        // stays a pure function of the endpoint set.
        points.sort_unstable();
        points.dedup_by_key(|p| p.0);

        let positions: Vec<u64> = points.iter().map(|p| p.0).collect();
        let owners: Vec<u32> = points.iter().map(|p| p.1).collect();
        let prefix_bits =
            (positions.len().max(1).ilog2() + 1).clamp(MIN_PREFIX_BITS, MAX_PREFIX_BITS);
        let slots = 1usize << prefix_bits;
        let mut prefix = Vec::with_capacity(slots + 1);
        let mut i = 0usize;
        for p in 0..slots as u64 {
            while i < positions.len() && (positions[i] >> (64 - prefix_bits)) < p {
                i += 1;
            }
            prefix.push(i as u32);
        }
        prefix.push(positions.len() as u32);

        Ring {
            endpoints: names.into_iter().map(Arc::from).collect(),
            positions,
            owners,
            prefix_bits,
            prefix,
        }
    }

    /// An empty ring: every lookup returns `None`.
    pub fn empty() -> Ring {
        Ring::new(std::iter::empty::<&str>(), 1)
    }

    /// The endpoints, sorted; [`Ring::lookup`] returns indexes into this slice.
    pub fn endpoints(&self) -> &[Arc<str>] {
        &self.endpoints
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// True when the ring has no endpoint.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The index of the endpoint that owns `hash`, or `None` on an empty ring.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.positions.is_empty() {
            return None;
        }
        let p = (hash >> (64 - self.prefix_bits)) as usize;
        let lo = self.prefix[p] as usize;
        let hi = self.prefix[p + 1] as usize;
        let i = lo + self.positions[lo..hi].partition_point(|&pos| pos < hash);
        let i = if i == self.positions.len() { 0 } else { i };
        Some(self.owners[i] as usize)
    }

    /// The fraction of the hash space each endpoint owns, index for index
    /// with [`Ring::endpoints`]; they sum to 1 (an empty ring has none).
    /// A position owns the hashes after the previous position up to itself.
    pub fn shares(&self) -> Vec<f64> {
        let mut owned = vec![0u128; self.endpoints.len()];
        if let [only] = &mut owned[..] {
            *only = 1 << 64;
        } else if let Some(&last) = self.positions.last() {
            let mut previous = last;
            for (&position, &owner) in self.positions.iter().zip(&self.owners) {
                // The first position's arc wraps around from the last one.
                owned[owner as usize] += u128::from(position.wrapping_sub(previous));
                previous = position;
            }
        }
        let space = (1u128 << 64) as f64;
        owned.into_iter().map(|o| o as f64 / space).collect()
    }

    /// The endpoint that owns `key`, hashing it with [`key_hash`].
    pub fn owner(&self, key: &[u8]) -> Option<&Arc<str>> {
        self.lookup(key_hash(key)).map(|i| &self.endpoints[i])
    }
}

/// The hash of a routing key: xxh3-64 of its bytes.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:4317", i / 250, i % 250))
            .collect()
    }

    fn loads(ring: &Ring, keys: u64) -> Vec<u64> {
        let mut counts = vec![0u64; ring.len()];
        for k in 0..keys {
            let h = key_hash(&k.to_le_bytes());
            counts[ring.lookup(h).unwrap()] += 1;
        }
        counts
    }

    fn max_over_mean(counts: &[u64]) -> f64 {
        let total: u64 = counts.iter().sum();
        let mean = total as f64 / counts.len() as f64;
        *counts.iter().max().unwrap() as f64 / mean
    }

    #[test]
    fn empty_ring_owns_nothing() {
        let ring = Ring::empty();
        assert!(ring.is_empty());
        assert_eq!(ring.lookup(42), None);
        assert_eq!(ring.owner(b"x"), None);
    }

    #[test]
    fn single_endpoint_owns_everything() {
        let ring = Ring::new(["a:1"], 10);
        for k in 0..1000u64 {
            assert_eq!(ring.lookup(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)), Some(0));
        }
        assert_eq!(ring.lookup(u64::MAX), Some(0));
        assert_eq!(ring.lookup(0), Some(0));
    }

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let a = Ring::new(["c:1", "a:1", "b:1", "a:1"], 100);
        let b = Ring::new(["b:1", "c:1", "a:1"], 100);
        assert_eq!(a.endpoints(), b.endpoints());
        for k in 0..10_000u64 {
            let h = key_hash(&k.to_le_bytes());
            assert_eq!(a.lookup(h), b.lookup(h));
        }
    }

    #[test]
    fn lookup_matches_linear_scan() {
        let ring = Ring::new(endpoints(37), 50);
        for k in 0..20_000u64 {
            let h = key_hash(&k.to_le_bytes());
            let expect = ring.positions.iter().position(|&p| p >= h).unwrap_or(0);
            assert_eq!(ring.lookup(h), Some(ring.owners[expect] as usize));
        }
    }

    #[test]
    fn adding_one_endpoint_moves_only_its_share() {
        for n in [3usize, 10, 50] {
            let before = Ring::new(endpoints(n), DEFAULT_VNODES);
            let mut more = endpoints(n);
            more.push("192.168.0.1:4317".to_string());
            let after = Ring::new(&more, DEFAULT_VNODES);
            let keys = 200_000u64;
            let mut moved = 0u64;
            for k in 0..keys {
                let h = key_hash(&k.to_le_bytes());
                let old = &before.endpoints()[before.lookup(h).unwrap()];
                let new = &after.endpoints()[after.lookup(h).unwrap()];
                if old != new {
                    // A key may only move to the new endpoint.
                    assert_eq!(&**new, "192.168.0.1:4317");
                    moved += 1;
                }
            }
            let share = moved as f64 / keys as f64;
            let ideal = 1.0 / (n as f64 + 1.0);
            println!("churn add 1 to {n}: moved {share:.4}, ideal {ideal:.4}");
            assert!(
                (share - ideal).abs() < ideal * 0.25,
                "moved {share}, ideal {ideal}"
            );
        }
    }

    #[test]
    fn removing_one_endpoint_moves_only_its_keys() {
        for n in [3usize, 10, 50] {
            let all = endpoints(n);
            let before = Ring::new(&all, DEFAULT_VNODES);
            let after = Ring::new(&all[1..], DEFAULT_VNODES);
            let keys = 200_000u64;
            let mut moved = 0u64;
            for k in 0..keys {
                let h = key_hash(&k.to_le_bytes());
                let old = &before.endpoints()[before.lookup(h).unwrap()];
                let new = &after.endpoints()[after.lookup(h).unwrap()];
                if old != new {
                    // Only the removed endpoint's keys may move.
                    assert_eq!(
                        **old, *all[0],
                        "a key not owned by the removed endpoint moved"
                    );
                    moved += 1;
                }
            }
            let share = moved as f64 / keys as f64;
            let ideal = 1.0 / n as f64;
            println!("churn remove 1 of {n}: moved {share:.4}, ideal {ideal:.4}");
            assert!(
                (share - ideal).abs() < ideal * 0.25,
                "moved {share}, ideal {ideal}"
            );
        }
    }

    #[test]
    fn shares_sum_to_one_and_match_the_lookups() {
        assert!(Ring::empty().shares().is_empty());
        assert_eq!(Ring::new(["a:1"], 10).shares(), [1.0]);
        let ring = Ring::new(endpoints(5), 200);
        let shares = ring.shares();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let counts = loads(&ring, 200_000);
        for (share, count) in shares.iter().zip(counts) {
            let seen = count as f64 / 200_000.0;
            assert!((share - seen).abs() < 0.01, "share {share}, keys {seen}");
        }
    }

    #[test]
    fn ring_quality() {
        for n in [10usize, 100, 300] {
            let ring = Ring::new(endpoints(n), DEFAULT_VNODES);
            let ratio = max_over_mean(&loads(&ring, 1_000_000));
            println!(
                "balance {n} endpoints, {DEFAULT_VNODES} vnodes, 1M keys: max/mean {ratio:.3}"
            );
            assert!(ratio < 1.2, "max/mean {ratio} at {n} endpoints");
        }
    }
}
