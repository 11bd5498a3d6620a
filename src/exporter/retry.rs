//! Exponential backoff with jitter, as the collector's `retry_on_failure`.

use std::{
    hash::{BuildHasher, RandomState},
    time::Duration,
};

/// The collector's `retry_on_failure` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Retry at all.
    pub enabled: bool,
    /// Wait before the first retry.
    pub initial_interval: Duration,
    /// Upper bound of one wait.
    pub max_interval: Duration,
    /// Give up once this much time has passed since the first attempt (0 = never).
    pub max_elapsed_time: Duration,
    /// Growth factor of the wait.
    pub multiplier: f64,
    /// Each wait is drawn from `[w * (1 - r), w * (1 + r)]`.
    pub randomization_factor: f64,
}

impl Default for RetrySettings {
    /// The collector's defaults.
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

/// The waits of one retry sequence.
#[derive(Debug)]
pub struct Backoff {
    settings: RetrySettings,
    next: Duration,
    elapsed: Duration,
    seed: u64,
}

impl Backoff {
    /// A new sequence.
    pub fn new(settings: &RetrySettings) -> Backoff {
        Backoff {
            next: settings.initial_interval,
            settings: settings.clone(),
            elapsed: Duration::ZERO,
            seed: RandomState::new().hash_one(0u64),
        }
    }

    /// The next wait, or `None` when retries are off or the elapsed budget is spent.
    pub fn next_wait(&mut self) -> Option<Duration> {
        if !self.settings.enabled {
            return None;
        }
        let base = self.next;
        self.next = base
            .mul_f64(self.settings.multiplier.max(1.0))
            .min(self.settings.max_interval);
        // xorshift: jitter only needs to de-synchronise clients.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let r = self.settings.randomization_factor.clamp(0.0, 1.0);
        let wait = base.mul_f64(1.0 - r + 2.0 * r * unit);
        let budget = self.settings.max_elapsed_time;
        if !budget.is_zero() && self.elapsed + wait > budget {
            return None;
        }
        self.elapsed += wait;
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_and_stop_at_the_budget() {
        let settings = RetrySettings {
            enabled: true,
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            max_elapsed_time: Duration::from_millis(1000),
            multiplier: 2.0,
            randomization_factor: 0.0,
        };
        let mut b = Backoff::new(&settings);
        let waits: Vec<_> = std::iter::from_fn(|| b.next_wait()).collect();
        assert_eq!(
            waits,
            [100, 200, 400].map(Duration::from_millis).to_vec(),
            "the fourth wait (400ms) would pass the 1s budget"
        );
    }

    #[test]
    fn disabled_never_waits() {
        let settings = RetrySettings {
            enabled: false,
            ..RetrySettings::default()
        };
        assert_eq!(Backoff::new(&settings).next_wait(), None);
    }

    #[test]
    fn jitter_stays_in_range() {
        let settings = RetrySettings {
            initial_interval: Duration::from_millis(1000),
            max_interval: Duration::from_millis(1000),
            max_elapsed_time: Duration::ZERO,
            randomization_factor: 0.5,
            ..RetrySettings::default()
        };
        let mut b = Backoff::new(&settings);
        for _ in 0..1000 {
            let w = b.next_wait().unwrap();
            assert!(
                w >= Duration::from_millis(500) && w <= Duration::from_millis(1500),
                "{w:?}"
            );
        }
    }
}
