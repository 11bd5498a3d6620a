//! The backend pool of one exporter: a ring and a connection per endpoint,
//! published as one immutable snapshot through `arc-swap`.
//!
//! Readers (`load`) take no lock: a request loads the snapshot once and uses
//! it for its whole split, so a swap in the middle of a request never sends
//! half of it by the old ring and half by the new.
//!
//! The pool is the one consumer of its resolver's [`Updates`]
//! ([`PoolHandle::follow`]): it keeps the endpoint set, and whenever the set
//! changes it builds the new snapshot, reusing the connections of endpoints
//! that stay, opening connections to new endpoints before the swap, and
//! letting removed backends close when the last request holding them
//! finishes.

use std::{
    collections::BTreeSet,
    sync::{Arc, OnceLock},
    time::Duration,
};

use arc_swap::ArcSwap;
use futures::{FutureExt, StreamExt};
use metrics::{Counter, Gauge};
use tokio::task::JoinHandle;

use super::backend::{Backend, ClientSettings};
use crate::{
    config::endpoint::Endpoint,
    discovery::{Resolutions, Update, Updates},
    routing::Ring,
    telemetry::{Telemetry, metrics::names},
};

/// How long a pool update waits for a new backend's first connection before
/// swapping it in anyway (it then connects on first use).
const WARM_UP: Duration = Duration::from_secs(1);

/// One immutable snapshot: the ring and, index for index, its backends.
#[derive(Debug)]
pub struct Pool {
    ring: Ring,
    backends: Vec<Arc<Backend>>,
}

impl Pool {
    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The backend for a ring index.
    pub fn backend(&self, index: usize) -> Option<&Arc<Backend>> {
        self.backends.get(index)
    }

    /// The backend that owns a key hash; `None` on an empty pool.
    pub fn route(&self, hash: u64) -> Option<usize> {
        self.ring.lookup(hash)
    }

    /// True when there is no backend.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
}

/// The live pool of an exporter and what it needs to build new snapshots.
pub struct PoolHandle {
    current: ArcSwap<Pool>,
    exporter: String,
    resolver: String,
    /// The resolver's resolutions, when the exporter shares them (for the
    /// status page).
    resolutions: OnceLock<Resolutions>,
    settings: Arc<ClientSettings>,
    telemetry: Arc<Telemetry>,
    vnodes: usize,
    num_backends: Gauge,
    updates: Counter,
}

impl PoolHandle {
    /// An empty pool for `exporter` whose backends use `settings`. `resolver`
    /// labels the backend-count metrics (`static`, `dns`, `k8s`).
    pub fn new(
        exporter: &str,
        resolver: &str,
        settings: Arc<ClientSettings>,
        vnodes: usize,
        telemetry: Arc<Telemetry>,
    ) -> Arc<PoolHandle> {
        let labels = [("exporter", exporter), ("resolver", resolver)];
        Arc::new(PoolHandle {
            current: ArcSwap::from_pointee(Pool {
                ring: Ring::empty(),
                backends: Vec::new(),
            }),
            exporter: exporter.to_string(),
            resolver: resolver.to_string(),
            resolutions: OnceLock::new(),
            settings,
            num_backends: telemetry.gauge(names::NUM_BACKENDS, &labels),
            updates: telemetry.counter(names::NUM_BACKEND_UPDATES, &labels),
            telemetry,
            vnodes,
        })
    }

    /// The resolver kind (`static`, `dns`, `k8s`).
    pub fn resolver(&self) -> &str {
        &self.resolver
    }

    /// Keeps a clone of the resolver's [`Resolutions`], so that readers of
    /// the pool see when it last resolved. Only the first call counts.
    pub fn share_resolutions(&self, resolutions: Resolutions) {
        let _ = self.resolutions.set(resolutions);
    }

    /// The resolver's resolutions, if shared.
    pub fn resolutions(&self) -> Option<&Resolutions> {
        self.resolutions.get()
    }

    /// The current snapshot (one atomic load, no lock).
    pub fn load(&self) -> Arc<Pool> {
        self.current.load_full()
    }

    /// Follows a resolver: applies its updates to the endpoint set and swaps
    /// a new snapshot in whenever the set changed, until the stream ends.
    ///
    /// Returns once the pool holds the resolver's first set, or after
    /// `first_within` when the first update takes longer (a DNS server not
    /// answering yet), so that the service starts with a ring; the rest runs
    /// in the returned task. Only the wait for the update is bounded, never
    /// the pool update itself (bounded by the connect warm-up): the endpoint
    /// set and the pool must not part ways.
    ///
    /// Updates already waiting when one arrives (a burst from a resolver, or
    /// ones that queued while the previous snapshot was being built) are
    /// applied together, so a burst costs one ring build and one swap.
    pub async fn follow(
        self: &Arc<Self>,
        mut updates: Updates,
        first_within: Duration,
    ) -> JoinHandle<()> {
        let mut endpoints = BTreeSet::new();
        let open = match tokio::time::timeout(first_within, updates.next()).await {
            Ok(Some(update)) => self.apply(update, &mut updates, &mut endpoints).await,
            Ok(None) => false,
            Err(_) => true,
        };
        let pool = self.clone();
        tokio::spawn(async move {
            if !open {
                return;
            }
            while let Some(update) = updates.next().await {
                if !pool.apply(update, &mut updates, &mut endpoints).await {
                    break;
                }
            }
        })
    }

    /// Applies `update` and every update already waiting to `endpoints`,
    /// then swaps the pool if the set changed. Returns false once the
    /// stream has ended.
    async fn apply(
        &self,
        update: Update,
        updates: &mut Updates,
        endpoints: &mut BTreeSet<Endpoint>,
    ) -> bool {
        let mut changed = update.apply(endpoints);
        let mut open = true;
        loop {
            match updates.next().now_or_never() {
                Some(Some(update)) => changed |= update.apply(endpoints),
                Some(None) => {
                    open = false;
                    break;
                }
                None => break,
            }
        }
        if changed {
            tracing::debug!(exporter = %self.exporter, ?endpoints, "endpoint set changed");
            self.update(endpoints).await;
        }
        open
    }

    /// Replaces the pool with one for `endpoints`, if that differs from the
    /// current set. Returns whether it changed. Endpoints that cannot be
    /// turned into a connection (a malformed address) are logged and left out.
    pub async fn update(&self, endpoints: &BTreeSet<Endpoint>) -> bool {
        // The ring hashes each endpoint's one canonical text.
        let endpoints: BTreeSet<String> = endpoints.iter().map(Endpoint::to_string).collect();
        let endpoints = &endpoints;
        let old = self.load();
        if old.ring.endpoints().len() == endpoints.len()
            && old
                .ring
                .endpoints()
                .iter()
                .zip(endpoints)
                .all(|(a, b)| **a == **b)
        {
            return false;
        }
        let ring = Ring::new(endpoints, self.vnodes);
        // Connect to the new endpoints (all at once, each bounded by
        // WARM_UP) before the ring that routes to them is published.
        let fresh = ring
            .endpoints()
            .iter()
            .filter(|e| old.ring.endpoints().binary_search(e).is_err());
        let mut fresh = futures::future::join_all(fresh.map(|endpoint| {
            let endpoint = endpoint.clone();
            async move {
                let backend = Backend::connect(
                    endpoint.clone(),
                    self.settings.clone(),
                    &self.exporter,
                    &self.telemetry,
                    WARM_UP,
                )
                .await;
                (endpoint, backend)
            }
        }))
        .await
        .into_iter();
        let mut backends = Vec::with_capacity(ring.len());
        for endpoint in ring.endpoints() {
            match old.ring.endpoints().binary_search(endpoint) {
                Ok(i) => {
                    if let Some(backend) = old.backends.get(i) {
                        backends.push(backend.clone());
                    }
                }
                Err(_) => match fresh.next() {
                    Some((_, Ok(backend))) => backends.push(Arc::new(backend)),
                    Some((e, Err(err))) => {
                        tracing::warn!(exporter = %self.exporter, endpoint = %e, "skipping backend: {err}")
                    }
                    None => {}
                },
            }
        }
        // The ring must index exactly the backends we have.
        let ring = if backends.len() == ring.len() {
            ring
        } else {
            Ring::new(backends.iter().map(|b| b.endpoint().clone()), self.vnodes)
        };
        let count = backends.len();
        self.current.store(Arc::new(Pool { ring, backends }));
        self.num_backends.set(count as f64);
        self.updates.increment(1);
        tracing::info!(exporter = %self.exporter, backends = count, "backend set changed");
        true
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn pool(telemetry: &Arc<Telemetry>) -> Arc<PoolHandle> {
        PoolHandle::new(
            "lb",
            "static",
            Arc::new(ClientSettings::default()),
            10,
            telemetry.clone(),
        )
    }

    #[tokio::test]
    async fn new_endpoints_are_connected_before_the_swap() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let endpoint = address.to_string();
        let telemetry = Telemetry::new();
        let pool = pool(&telemetry);
        assert!(
            pool.update(&BTreeSet::from([Endpoint::from_socket_addr(address)]))
                .await
        );
        // By the time the new ring is visible, the connection is open.
        assert_eq!(&*pool.load().ring().endpoints()[0], endpoint.as_str());
        let accepted = listener.accept().now_or_never();
        assert!(
            matches!(accepted, Some(Ok(_))),
            "no connection was opened before the swap"
        );
    }

    #[tokio::test]
    async fn backends_that_stay_are_reused_and_an_unchanged_set_is_no_update() {
        let telemetry = Telemetry::new();
        let pool = pool(&telemetry);
        // Nothing listens there: the backend connects lazily later.
        let a = Endpoint::parse("127.0.0.1:1").unwrap();
        let b = Endpoint::parse("127.0.0.2:1").unwrap();
        assert!(pool.update(&BTreeSet::from([a.clone()])).await);
        let first = pool.load().backend(0).unwrap().clone();
        assert!(!pool.update(&BTreeSet::from([a.clone()])).await);
        assert!(pool.update(&BTreeSet::from([a.clone(), b.clone()])).await);
        let now = pool.load();
        assert_eq!(now.ring().len(), 2);
        assert!(Arc::ptr_eq(&first, now.backend(0).unwrap()));
        assert!(pool.update(&BTreeSet::new()).await);
        assert!(pool.load().is_empty());
        // The removed backend lives on while something holds it.
        assert_eq!(&**first.endpoint(), a.to_string());
    }

    fn ring(pool: &PoolHandle) -> Vec<String> {
        pool.load()
            .ring()
            .endpoints()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<Endpoint> {
        items.iter().map(|s| Endpoint::parse(s).unwrap()).collect()
    }

    // Nothing listens on port 1: connecting is refused at once.
    const A: &str = "127.0.0.1:1";
    const B: &str = "127.0.0.2:1";

    #[tokio::test]
    async fn follow_returns_with_the_first_set_in_the_pool() {
        let pool = pool(&Telemetry::new());
        let (tx, rx) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(Update::Reset(set(&[A]))).unwrap();
        let task = pool.follow(Box::pin(rx), Duration::ZERO).await;
        assert_eq!(ring(&pool), [A]);
        // Later updates are the task's.
        tx.unbounded_send(Update::Add(set(&[B]).into_iter().collect()))
            .unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(ring(&pool), [A, B]);
    }

    #[tokio::test]
    async fn follow_does_not_wait_past_its_limit() {
        let pool = pool(&Telemetry::new());
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let task = pool.follow(Box::pin(rx), Duration::from_millis(10)).await;
        assert!(pool.load().is_empty());
        tx.unbounded_send(Update::Reset(set(&[B]))).unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(ring(&pool), [B]);
    }

    #[tokio::test]
    async fn a_burst_of_updates_is_one_swap() {
        let telemetry = Telemetry::new();
        let pool = pool(&telemetry);
        let (tx, rx) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(Update::Reset(set(&[A]))).unwrap();
        tx.unbounded_send(Update::Add(set(&[B]).into_iter().collect()))
            .unwrap();
        tx.unbounded_send(Update::Remove(set(&[A]).into_iter().collect()))
            .unwrap();
        drop(tx);
        pool.follow(Box::pin(rx), Duration::ZERO)
            .await
            .await
            .unwrap();
        assert_eq!(ring(&pool), [B]);
        let text = telemetry.render();
        let swaps: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("otelcol_loadbalancer_num_backend_updates_total{"))
            .collect();
        assert_eq!(swaps.len(), 1, "{text}");
        assert!(swaps[0].ends_with(" 1"), "{text}");
    }
}
