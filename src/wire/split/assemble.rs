//! Assembling the parts: given the units the scan recorded and the backend
//! each was routed to, writes one complete request per backend.
//!
//! Each part is written in one allocation of exactly its size: a first pass
//! ([`measure`]) computes the size of every container the part rebuilds, the
//! second ([`write`]) writes their tag and length headers and copies
//! everything else as byte ranges of the original request ([`Copier`]). It
//! must never look inside a unit or re-encode one, and never write a byte
//! that is not a container header or a copy of the request.

use bytes::Bytes;

use super::{
    Part,
    scan::{MAX_DEPTH, NONE, Scratch, bytes_of},
};
use crate::wire::{len_header_len, put_len_header};

/// Writes every backend's part (the slow path: more than one backend, or
/// rejected items to leave out).
pub(super) fn assemble(
    s: &mut Scratch,
    request: &Bytes,
    depth: usize,
    max_backend: usize,
) -> Vec<Part> {
    group_by_backend(s, max_backend);
    let buf: &[u8] = request;
    let mut parts = Vec::new();
    let order = std::mem::take(&mut s.order);
    let mut start = 0usize;
    while start < order.len() {
        let backend = s.units.get(order[start] as usize).map_or(0, |u| u.backend);
        let mut end = start + 1;
        while end < order.len()
            && s.units
                .get(order[end] as usize)
                .is_some_and(|u| u.backend == backend)
        {
            end += 1;
        }
        let group = &order[start..end];
        let (size, items) = measure(s, group, depth);
        let mut out = Vec::with_capacity(size);
        write(s, buf, group, depth, &mut out);
        debug_assert_eq!(out.len(), size);
        parts.push(Part {
            backend,
            request: Bytes::from(out),
            items,
        });
        start = end;
    }
    s.order = order;
    parts
}

/// Fills `order` with unit indexes grouped by backend, ascending, keeping
/// request order within a backend.
fn group_by_backend(s: &mut Scratch, max_backend: usize) {
    let n = s.units.len();
    s.order.clear();
    if max_backend <= n.saturating_mul(4).max(1024) {
        // Counting sort: one pass to count, one to place.
        s.counts.clear();
        s.counts.resize(max_backend + 2, 0);
        for u in &s.units {
            s.counts[u.backend + 1] += 1;
        }
        for i in 1..s.counts.len() {
            s.counts[i] += s.counts[i - 1];
        }
        s.order.resize(n, 0);
        for (i, u) in s.units.iter().enumerate() {
            let slot = &mut s.counts[u.backend];
            s.order[*slot as usize] = i as u32;
            *slot += 1;
        }
    } else {
        // Sparse backend indexes: a stable sort keeps request order.
        s.order.extend(0..n as u32);
        let units = &s.units;
        s.order
            .sort_by_key(|&i| units.get(i as usize).map_or(0, |u| u.backend));
    }
}

/// Computes the size of a part and of every container in it (into `sizes`, in
/// the order [`write`] opens them). Returns the part's size and item count.
fn measure(s: &mut Scratch, group: &[u32], depth: usize) -> (usize, u64) {
    s.sizes.clear();
    let mut total = s.req_extras_len;
    let mut items = 0u64;
    let mut cur = [NONE; MAX_DEPTH];
    let mut open = [0usize; MAX_DEPTH];
    let nodes = &s.nodes;
    let sizes = &mut s.sizes;
    // Adds container `k`'s finished size (with its header) to its parent.
    let close = |k: usize,
                 cur: &mut [u32; MAX_DEPTH],
                 open: &[usize; MAX_DEPTH],
                 sizes: &mut Vec<usize>,
                 total: &mut usize| {
        let number = nodes[k].get(cur[k] as usize).map_or(0, |n| n.number);
        let size = sizes[open[k]];
        let whole = len_header_len(number, size) + size;
        if k == 0 {
            *total += whole;
        } else {
            sizes[open[k - 1]] += whole;
        }
        cur[k] = NONE;
    };
    for &ui in group {
        let Some(u) = s.units.get(ui as usize) else {
            continue;
        };
        items += u.items;
        let len = u.end - u.start;
        if depth == 0 {
            total += len;
            continue;
        }
        if u.chain[depth - 1] != cur[depth - 1] {
            let c = u.chain;
            let l = (0..depth).find(|&k| c[k] != cur[k]).unwrap_or(depth);
            for k in (l..depth).rev() {
                if cur[k] != NONE {
                    close(k, &mut cur, &open, sizes, &mut total);
                }
            }
            for k in l..depth {
                open[k] = sizes.len();
                sizes.push(nodes[k].get(c[k] as usize).map_or(0, |n| n.extras_len));
                cur[k] = c[k];
            }
        }
        sizes[open[depth - 1]] += len;
    }
    for k in (0..depth).rev() {
        if cur[k] != NONE {
            close(k, &mut cur, &open, sizes, &mut total);
        }
    }
    (total, items)
}

/// Writes a part whose container sizes [`measure`] computed.
fn write(s: &Scratch, buf: &[u8], group: &[u32], depth: usize, out: &mut Vec<u8>) {
    let mut copy = Copier {
        buf,
        out,
        start: 0,
        end: 0,
    };
    for &(start, end) in &s.req_extras {
        copy.range(start, end);
    }
    let mut cur = [NONE; MAX_DEPTH];
    let mut next = 0usize;
    for &ui in group {
        let Some(u) = s.units.get(ui as usize) else {
            continue;
        };
        if depth > 0 && u.chain[depth - 1] != cur[depth - 1] {
            let c = u.chain;
            let l = (0..depth).find(|&k| c[k] != cur[k]).unwrap_or(depth);
            for k in l..depth {
                if let Some(node) = s.nodes[k].get(c[k] as usize) {
                    copy.header(node.number, s.sizes.get(next).copied().unwrap_or(0));
                    let extras = s.extras[k]
                        .get(node.first as usize..node.last as usize)
                        .unwrap_or_default();
                    for &(start, end) in extras {
                        copy.range(start, end);
                    }
                }
                next += 1;
                cur[k] = c[k];
            }
        }
        copy.range(u.start, u.end);
    }
    copy.flush();
}

/// Copies byte ranges of the request into a part, merging ranges that are
/// adjacent in the request (consecutive spans of one trace, for example) into
/// one copy.
struct Copier<'a> {
    buf: &'a [u8],
    out: &'a mut Vec<u8>,
    /// The pending range.
    start: usize,
    end: usize,
}

impl Copier<'_> {
    #[inline]
    fn range(&mut self, start: usize, end: usize) {
        if start != self.end {
            self.flush();
            self.start = start;
        }
        self.end = end;
    }

    #[inline]
    fn header(&mut self, number: u32, len: usize) {
        self.flush();
        put_len_header(self.out, number, len);
    }

    #[inline]
    fn flush(&mut self) {
        if self.end > self.start {
            self.out
                .extend_from_slice(bytes_of(self.buf, self.start, self.end));
        }
        self.start = self.end;
    }
}
