//! Exponential backoff with jitter, as the collector's `retry_on_failure`,
//! driven by the config type itself.
//!
//! `max_elapsed_time` is wall time since the first attempt, as in the
//! collector's exporter helper: it bounds the attempts and the waits
//! together. A server's own delay (gRPC `RetryInfo`, HTTP `Retry-After`)
//! replaces the computed wait when it is longer.

use std::{
    hash::{BuildHasher, RandomState},
    time::Duration,
};

use tokio::time::Instant;

use crate::config::exporters::RetryConfig;

/// The waits of one retry sequence.
#[derive(Debug)]
pub struct Backoff<'a> {
    config: &'a RetryConfig,
    next: Duration,
    started: Instant,
    /// Jitter state; drawn on the first wait, so a request that never
    /// retries pays nothing for it.
    seed: Option<u64>,
}

impl<'a> Backoff<'a> {
    /// A new sequence, whose elapsed time starts now.
    pub fn new(config: &'a RetryConfig) -> Backoff<'a> {
        Backoff {
            next: config.initial_interval,
            config,
            started: Instant::now(),
            seed: None,
        }
    }

    /// When the sequence gives up for good (`None`: never, or retries off).
    pub fn deadline(&self) -> Option<Instant> {
        let budget = self.config.max_elapsed_time;
        (self.config.enabled && !budget.is_zero()).then(|| self.started + budget)
    }

    /// The next wait, or `None` when retries are off or waiting would pass
    /// the elapsed-time budget. `hint` is the server's requested delay.
    pub fn next_wait(&mut self, hint: Option<Duration>) -> Option<Duration> {
        if !self.config.enabled {
            return None;
        }
        let base = self.next;
        self.next = base
            .mul_f64(self.config.multiplier.max(1.0))
            .min(self.config.max_interval);
        // xorshift: jitter only needs to de-synchronise clients.
        let seed = self
            .seed
            .get_or_insert_with(|| RandomState::new().hash_one(0u64) | 1);
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let unit = (*seed >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let r = self.config.randomization_factor.clamp(0.0, 1.0);
        let mut wait = base.mul_f64(1.0 - r + 2.0 * r * unit);
        if let Some(hint) = hint {
            wait = wait.max(hint);
        }
        match self.deadline() {
            Some(deadline) if Instant::now() + wait > deadline => None,
            _ => Some(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_elapsed_ms: u64) -> RetryConfig {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            max_elapsed_time: Duration::from_millis(max_elapsed_ms),
            multiplier: 2.0,
            randomization_factor: 0.0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_grow_to_the_cap_and_stop_at_the_budget() {
        let config = config(1000);
        let mut b = Backoff::new(&config);
        let mut waits = Vec::new();
        while let Some(wait) = b.next_wait(None) {
            waits.push(wait);
            tokio::time::sleep(wait).await;
        }
        assert_eq!(
            waits,
            [100, 200, 400].map(Duration::from_millis).to_vec(),
            "the fourth wait (400ms) would pass the 1s budget"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_in_attempts_counts_against_the_budget() {
        let config = config(1000);
        let mut b = Backoff::new(&config);
        // An attempt that takes 950 ms (a stalled backend up to its timeout).
        tokio::time::advance(Duration::from_millis(950)).await;
        assert_eq!(b.next_wait(None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_delay_stretches_the_wait() {
        let config = config(0);
        let mut b = Backoff::new(&config);
        assert_eq!(
            b.next_wait(Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            b.next_wait(Some(Duration::from_millis(1))),
            Some(Duration::from_millis(200))
        );
    }

    #[test]
    fn disabled_never_waits() {
        let config = RetryConfig::disabled();
        assert_eq!(Backoff::new(&config).next_wait(None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_in_range() {
        let config = RetryConfig {
            initial_interval: Duration::from_millis(1000),
            max_interval: Duration::from_millis(1000),
            max_elapsed_time: Duration::ZERO,
            randomization_factor: 0.5,
            ..RetryConfig::default()
        };
        let mut b = Backoff::new(&config);
        for _ in 0..1000 {
            let w = b.next_wait(None).unwrap();
            assert!(
                w >= Duration::from_millis(500) && w <= Duration::from_millis(1500),
                "{w:?}"
            );
        }
    }
}
