//! The backend pool of one exporter: a ring and a connection per endpoint,
//! published as one immutable snapshot through `arc-swap`.
//!
//! Readers (`load`) take no lock: a request loads the snapshot once and uses
//! it for its whole split, so a swap in the middle of a request never sends
//! half of it by the old ring and half by the new. Updates come from one
//! place (the discovery task); they reuse the connections of endpoints that
//! stay, open connections to new endpoints before the swap, and let removed
//! backends close when the last request holding them finishes.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use metrics::{Counter, Gauge};

use super::backend::{Backend, ClientSettings};
use crate::{
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
            settings,
            num_backends: telemetry.gauge(names::NUM_BACKENDS, &labels),
            updates: telemetry.counter(names::NUM_BACKEND_UPDATES, &labels),
            telemetry,
            vnodes,
        })
    }

    /// The current snapshot (one atomic load, no lock).
    pub fn load(&self) -> Arc<Pool> {
        self.current.load_full()
    }

    /// Replaces the pool with one for `endpoints`, if that differs from the
    /// current set. Returns whether it changed. Endpoints that cannot be
    /// turned into a connection (a malformed address) are logged and left out.
    pub async fn update(&self, endpoints: &BTreeSet<String>) -> bool {
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
        let endpoint = listener.local_addr().unwrap().to_string();
        let telemetry = Telemetry::new();
        let pool = pool(&telemetry);
        assert!(pool.update(&BTreeSet::from([endpoint.clone()])).await);
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
        let a = "127.0.0.1:1".to_string();
        let b = "127.0.0.2:1".to_string();
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
        assert_eq!(&**first.endpoint(), a.as_str());
    }
}
