//! Discovery: where the backend endpoints come from.
//!
//! Every resolver is a producer of one stream of [`Update`]s (the
//! linkerd2-proxy model); [`run`] is the one consumer, which keeps the current
//! endpoint set and hands each changed set to the exporter's pool. A new
//! resolver is a new producer; nothing downstream changes. Tests feed [`run`]
//! hand-made streams. [`start`] runs it so that the service starts with the
//! resolver's first set in its ring.
//!
//! - [`fixed`] (`static`): a list, once.
//! - [`dns`]: A/AAAA or SRV records, asked every interval; a bad answer
//!   keeps the last good set.
//! - [`k8s`]: a Service's ready EndpointSlice endpoints, watched.
//!
//! Resolvers never touch the ring or the connections: the pool builds the
//! new ring, connects new backends before swapping it in, and lets removed
//! backends close when their last request is done.

pub mod dns;
pub mod fixed;
pub mod k8s;

use std::{collections::BTreeSet, pin::Pin, sync::Arc, time::Duration};

use futures::{FutureExt, Stream, StreamExt};
use metrics::Counter;
use tokio::task::JoinHandle;

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
    let mut builder = RingBuilder::new(pool);
    while let Some(update) = updates.next().await {
        if !builder.apply(update, &mut updates).await {
            break;
        }
    }
}

/// Starts [`run`] so that the service starts with a ring: waits up to
/// `first_within` for the resolver's first update and puts it in the pool
/// before returning (the pool update itself is bounded by the backends'
/// connect warm-up); the rest runs in the returned task. A resolver that
/// has nothing by then (a DNS server not answering yet) fills the ring
/// later, from the task.
pub async fn start(
    mut updates: Updates,
    pool: Arc<PoolHandle>,
    first_within: Duration,
) -> JoinHandle<()> {
    let mut builder = RingBuilder::new(pool);
    // Only the wait for the update is bounded, never the pool update: the
    // membership and the pool must not part ways.
    let open = match tokio::time::timeout(first_within, updates.next()).await {
        Ok(Some(update)) => builder.apply(update, &mut updates).await,
        Ok(None) => false,
        Err(_) => true,
    };
    tokio::spawn(async move {
        if !open {
            return;
        }
        while let Some(update) = updates.next().await {
            if !builder.apply(update, &mut updates).await {
                break;
            }
        }
    })
}

/// The one consumer's state: the membership and the pool it feeds.
struct RingBuilder {
    membership: Membership,
    pool: Arc<PoolHandle>,
}

impl RingBuilder {
    fn new(pool: Arc<PoolHandle>) -> RingBuilder {
        RingBuilder {
            membership: Membership::default(),
            pool,
        }
    }

    /// Applies `update` and every update already waiting, then swaps the
    /// pool if the set changed. Returns false once the stream has ended.
    async fn apply(&mut self, update: Update, updates: &mut Updates) -> bool {
        let mut changed = self.membership.apply(update);
        let mut open = true;
        loop {
            match updates.next().now_or_never() {
                Some(Some(update)) => changed |= self.membership.apply(update),
                Some(None) => {
                    open = false;
                    break;
                }
                None => break,
            }
        }
        if changed {
            tracing::debug!(endpoints = ?self.membership.endpoints(), "endpoint set changed");
            self.pool.update(self.membership.endpoints()).await;
        }
        open
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

    fn pool_with(telemetry: &Arc<Telemetry>) -> Arc<PoolHandle> {
        PoolHandle::new(
            "lb",
            "static",
            Arc::new(crate::exporter::ClientSettings::default()),
            10,
            telemetry.clone(),
        )
    }

    fn pool() -> Arc<PoolHandle> {
        pool_with(&Telemetry::new())
    }

    fn endpoints(pool: &PoolHandle) -> Vec<String> {
        pool.load()
            .ring()
            .endpoints()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    // Nothing listens on 127.0.0.1:1: connecting is refused at once.
    const A: &str = "127.0.0.1:1";
    const B: &str = "127.0.0.2:1";

    #[tokio::test]
    async fn start_returns_with_the_first_set_in_the_pool() {
        let pool = pool();
        let (tx, rx) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(Update::Reset(set(&[A]))).unwrap();
        let task = start(Box::pin(rx), pool.clone(), Duration::ZERO).await;
        assert_eq!(endpoints(&pool), [A]);
        // Later updates are the task's.
        tx.unbounded_send(Update::Add(vec![B.into()])).unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(endpoints(&pool), [A, B]);
    }

    #[tokio::test]
    async fn start_does_not_wait_past_its_limit() {
        let pool = pool();
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let task = start(Box::pin(rx), pool.clone(), Duration::from_millis(10)).await;
        assert!(pool.load().is_empty());
        tx.unbounded_send(Update::Reset(set(&[B]))).unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(endpoints(&pool), [B]);
    }

    #[tokio::test]
    async fn a_burst_of_updates_is_one_swap() {
        let telemetry = Telemetry::new();
        let pool = pool_with(&telemetry);
        let (tx, rx) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(Update::Reset(set(&[A]))).unwrap();
        tx.unbounded_send(Update::Add(vec![B.into()])).unwrap();
        tx.unbounded_send(Update::Remove(vec![A.into()])).unwrap();
        drop(tx);
        run(Box::pin(rx), pool.clone()).await;
        assert_eq!(endpoints(&pool), [B]);
        let text = telemetry.render();
        let swaps: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("otelcol_loadbalancer_num_backend_updates_total{"))
            .collect();
        assert_eq!(swaps.len(), 1, "{text}");
        assert!(swaps[0].ends_with(" 1"), "{text}");
    }
}
