//! Discovery: where the backend endpoints come from.
//!
//! Every resolver is a producer of one stream of [`Update`]s (the
//! linkerd2-proxy model); [`run`] is the one consumer, which keeps the current
//! endpoint set and hands each changed set to the exporter's pool. A new
//! resolver is a new producer; nothing downstream changes. Tests feed [`run`]
//! hand-made streams.

pub mod dns;
pub mod fixed;
pub mod k8s;

use std::{collections::BTreeSet, pin::Pin, sync::Arc};

use futures::{FutureExt, Stream, StreamExt};
use metrics::Counter;

use crate::{
    exporter::PoolHandle,
    telemetry::{Telemetry, metrics::names},
};

/// A change to the endpoint set, as a resolver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The whole set is now exactly this.
    Reset(BTreeSet<String>),
    /// These endpoints joined.
    Add(Vec<String>),
    /// These endpoints left.
    Remove(Vec<String>),
}

/// A resolver's output.
pub type Updates = Pin<Box<dyn Stream<Item = Update> + Send>>;

/// Applies updates to an endpoint set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Membership {
    endpoints: BTreeSet<String>,
}

impl Membership {
    /// Applies `update`; returns whether the set changed.
    pub fn apply(&mut self, update: Update) -> bool {
        match update {
            Update::Reset(set) => {
                let changed = set != self.endpoints;
                self.endpoints = set;
                changed
            }
            Update::Add(endpoints) => endpoints
                .into_iter()
                .fold(false, |changed, e| self.endpoints.insert(e) | changed),
            Update::Remove(endpoints) => endpoints
                .iter()
                .fold(false, |changed, e| self.endpoints.remove(e) | changed),
        }
    }

    /// The current set.
    pub fn endpoints(&self) -> &BTreeSet<String> {
        &self.endpoints
    }
}

/// Counts a resolver's resolutions with the collector's metric
/// (`otelcol_loadbalancer_num_resolutions_total{exporter,resolver,success}`).
#[derive(Clone)]
pub struct Resolutions {
    ok: Counter,
    failed: Counter,
}

impl Resolutions {
    /// Counters for `resolver` (`static`, `dns`, `k8s`) of `exporter`.
    pub fn new(telemetry: &Telemetry, exporter: &str, resolver: &str) -> Resolutions {
        let labels = |success| {
            [
                ("exporter", exporter),
                ("resolver", resolver),
                ("success", success),
            ]
        };
        Resolutions {
            ok: telemetry.counter(names::NUM_RESOLUTIONS, &labels("true")),
            failed: telemetry.counter(names::NUM_RESOLUTIONS, &labels("false")),
        }
    }

    /// Records one resolution.
    pub fn record(&self, success: bool) {
        if success { &self.ok } else { &self.failed }.increment(1);
    }
}

/// The ring builder: applies every update to the membership and swaps a new
/// pool in whenever the set changed. Runs until the stream ends.
///
/// Updates that are already waiting when one arrives (a burst from a
/// resolver, or ones that queued while the previous pool was being built)
/// are applied together, so a burst costs one ring build and one swap.
pub async fn run(mut updates: Updates, pool: Arc<PoolHandle>) {
    let mut membership = Membership::default();
    let mut open = true;
    while open {
        let Some(update) = updates.next().await else {
            break;
        };
        let mut changed = membership.apply(update);
        loop {
            match updates.next().now_or_never() {
                Some(Some(update)) => changed |= membership.apply(update),
                Some(None) => {
                    open = false;
                    break;
                }
                None => break,
            }
        }
        if changed {
            tracing::debug!(endpoints = ?membership.endpoints(), "endpoint set changed");
            pool.update(membership.endpoints()).await;
        }
    }
}

/// Adds `:default_port` to an endpoint without a port; brackets bare IPv6.
pub fn with_port(host: &str, default_port: u16) -> String {
    if host.starts_with('[') {
        if host.contains("]:") {
            host.to_string()
        } else {
            format!("{host}:{default_port}")
        }
    } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{default_port}")
    } else if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn membership_applies_every_kind_of_update() {
        let mut m = Membership::default();
        assert!(m.apply(Update::Reset(set(&["a:1", "b:1"]))));
        assert!(!m.apply(Update::Reset(set(&["b:1", "a:1"]))));
        assert!(m.apply(Update::Add(vec!["c:1".into()])));
        assert!(!m.apply(Update::Add(vec!["c:1".into()])));
        assert!(m.apply(Update::Remove(vec!["a:1".into(), "zz:1".into()])));
        assert!(!m.apply(Update::Remove(vec!["a:1".into()])));
        assert_eq!(m.endpoints(), &set(&["b:1", "c:1"]));
        assert!(m.apply(Update::Reset(BTreeSet::new())));
        assert!(m.endpoints().is_empty());
    }

    #[test]
    fn ports_are_added_only_when_missing() {
        assert_eq!(
            with_port("collector-3.example.com", 4317),
            "collector-3.example.com:4317"
        );
        assert_eq!(
            with_port("collector-2.example.com:5317", 4317),
            "collector-2.example.com:5317"
        );
        assert_eq!(with_port("10.0.0.1", 4317), "10.0.0.1:4317");
        assert_eq!(with_port("::1", 4317), "[::1]:4317");
        assert_eq!(with_port("[::1]", 4317), "[::1]:4317");
        assert_eq!(with_port("[::1]:9", 4317), "[::1]:9");
    }
}
