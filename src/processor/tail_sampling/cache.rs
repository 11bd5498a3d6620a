//! Bounded memory of decided trace ids, so late spans follow their trace's
//! decision after the trace itself is gone.
//!
//! It remembers ids and decision times only, never spans, and never holds
//! more than its capacity.

use std::collections::{HashMap, VecDeque};

use tokio::time::Instant;

use super::trace::TraceId;

/// Trace ids with when they were decided; at most `capacity`, the oldest
/// forgotten first. A capacity of 0 remembers nothing.
pub(super) struct DecisionCache {
    capacity: usize,
    decided_at: HashMap<TraceId, Instant>,
    order: VecDeque<TraceId>,
}

impl DecisionCache {
    pub(super) fn new(capacity: usize) -> DecisionCache {
        DecisionCache {
            capacity,
            decided_at: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers `id` as decided at `at`.
    pub(super) fn insert(&mut self, id: TraceId, at: Instant) {
        if self.capacity == 0 || self.decided_at.insert(id, at).is_some() {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.decided_at.remove(&old);
        }
    }

    /// When `id` was decided, if it is remembered.
    pub(super) fn get(&self, id: &TraceId) -> Option<Instant> {
        self.decided_at.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_beyond_capacity() {
        let now = Instant::now();
        let mut cache = DecisionCache::new(2);
        for i in 1..=3u8 {
            cache.insert([i; 16], now);
        }
        assert_eq!(cache.get(&[1; 16]), None);
        assert_eq!(cache.get(&[2; 16]), Some(now));
        assert_eq!(cache.get(&[3; 16]), Some(now));
        assert_eq!(cache.order.len(), 2);
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let mut cache = DecisionCache::new(0);
        cache.insert([1; 16], Instant::now());
        assert_eq!(cache.get(&[1; 16]), None);
    }
}
