//! A sliding one-minute window of one backend's export calls: outcomes,
//! items and a latency histogram, in 60 per-second slots of atomics.
//!
//! It owns only counting. Recording is on the export path, so it must never
//! allocate or take a lock: it bumps a handful of relaxed atomics in the slot
//! of the current second. Reading (the status page, every few seconds) sums
//! the slots that belong to the last 60 seconds.
//!
//! A slot is reused one minute later: the first call of the new second
//! claims it (a compare-exchange on its second) and zeroes it. A call that
//! races that reset in the same instant may be lost; this is a view for
//! operators, not an account, and the Prometheus counters stay exact.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use tokio::time::Instant;

/// Seconds the window covers, one slot each.
pub const WINDOW_SECONDS: u64 = 60;

/// Upper bounds of the latency buckets, in microseconds; one more bucket
/// above the last bound holds everything slower. Roughly 1-1.5-2-3-5-7.5
/// per decade, so a percentile is known within a factor of 1.5.
const BOUNDS_US: [u64; 31] = [
    100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000,
    30_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000, 500_000, 750_000, 1_000_000,
    1_500_000, 2_000_000, 3_000_000, 5_000_000, 7_500_000, 10_000_000,
];
const BUCKETS: usize = BOUNDS_US.len() + 1;

#[derive(Default)]
struct Slot {
    /// The second (since the window's origin) plus one whose calls the slot
    /// holds; 0 for never used.
    second: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    items: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

impl Slot {
    fn reset(&self) {
        for counter in [&self.ok, &self.failed, &self.items]
            .into_iter()
            .chain(&self.latency)
        {
            counter.store(0, Relaxed);
        }
    }
}

/// The last minute of one backend's calls.
pub struct CallWindow {
    origin: Instant,
    slots: [Slot; WINDOW_SECONDS as usize],
}

impl std::fmt::Debug for CallWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallWindow").finish_non_exhaustive()
    }
}

impl Default for CallWindow {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`CallWindow`] saw in the last minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct WindowStats {
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Items (spans, data points, log records) in those calls.
    pub items: u64,
    /// Median call latency in milliseconds (the upper bound of its
    /// bucket); `None` without calls.
    pub p50_ms: Option<f64>,
    /// 99th percentile call latency in milliseconds, likewise.
    pub p99_ms: Option<f64>,
}

impl WindowStats {
    /// Calls of either outcome.
    pub fn requests(&self) -> u64 {
        self.successes + self.failures
    }
}

impl CallWindow {
    /// An empty window starting now.
    pub fn new() -> CallWindow {
        CallWindow {
            origin: Instant::now(),
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }

    /// The current second since the origin, plus one (so 0 is "never").
    fn now(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_secs()
            + 1
    }

    /// Records one call of `items` items that took `latency`.
    pub fn record(&self, success: bool, items: u64, latency: Duration) {
        let second = self.now();
        let slot = &self.slots[(second % WINDOW_SECONDS) as usize];
        let held = slot.second.load(Relaxed);
        if held != second
            && slot
                .second
                .compare_exchange(held, second, Relaxed, Relaxed)
                .is_ok()
        {
            slot.reset();
        }
        if success { &slot.ok } else { &slot.failed }.fetch_add(1, Relaxed);
        slot.items.fetch_add(items, Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        slot.latency[BOUNDS_US.partition_point(|&b| b < micros)].fetch_add(1, Relaxed);
    }

    /// Sums the last [`WINDOW_SECONDS`] seconds, the current one included.
    pub fn stats(&self) -> WindowStats {
        let now = self.now();
        let mut stats = WindowStats::default();
        let mut latency = [0u64; BUCKETS];
        for slot in &self.slots {
            let second = slot.second.load(Relaxed);
            if second == 0 || second + WINDOW_SECONDS <= now {
                continue;
            }
            stats.successes += slot.ok.load(Relaxed);
            stats.failures += slot.failed.load(Relaxed);
            stats.items += slot.items.load(Relaxed);
            for (sum, bucket) in latency.iter_mut().zip(&slot.latency) {
                *sum += bucket.load(Relaxed);
            }
        }
        stats.p50_ms = percentile(&latency, 0.50);
        stats.p99_ms = percentile(&latency, 0.99);
        stats
    }
}

/// The upper bound (ms) of the bucket holding the `q` quantile; the
/// overflow bucket reports the last bound.
fn percentile(buckets: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            let bound = BOUNDS_US[i.min(BOUNDS_US.len() - 1)];
            return Some(bound as f64 / 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn counts_outcomes_items_and_latency_percentiles() {
        let window = CallWindow::new();
        assert_eq!(window.stats(), WindowStats::default());
        for _ in 0..98 {
            window.record(true, 10, 2 * MS);
        }
        window.record(false, 5, 40 * MS);
        window.record(true, 5, 4 * MS);
        let stats = window.stats();
        assert_eq!((stats.successes, stats.failures), (99, 1));
        assert_eq!(stats.requests(), 100);
        assert_eq!(stats.items, 98 * 10 + 5 + 5);
        // 2 ms falls in the (1.5, 2] ms bucket; the 99th of 100 calls is the
        // 4 ms one, in (3, 5].
        assert_eq!(stats.p50_ms, Some(2.0));
        assert_eq!(stats.p99_ms, Some(5.0));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_leave_the_window_after_a_minute() {
        let window = CallWindow::new();
        window.record(true, 1, MS);
        tokio::time::advance(Duration::from_secs(30)).await;
        window.record(true, 2, MS);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(window.stats().items, 3, "both still inside the minute");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(window.stats().items, 2, "the first call is 60 s old");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(window.stats(), WindowStats::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_slot_starts_from_zero() {
        let window = CallWindow::new();
        window.record(false, 7, 900 * MS);
        // Exactly one window later: the same slot, a new second.
        tokio::time::advance(Duration::from_secs(WINDOW_SECONDS)).await;
        window.record(true, 1, MS);
        let stats = window.stats();
        assert_eq!((stats.successes, stats.failures, stats.items), (1, 0, 1));
        assert_eq!(stats.p99_ms, Some(1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_land_in_the_overflow_bucket() {
        let window = CallWindow::new();
        window.record(true, 1, Duration::from_secs(60));
        assert_eq!(window.stats().p50_ms, Some(10_000.0));
    }
}
