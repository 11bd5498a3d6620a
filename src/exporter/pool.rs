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
        let mut backends = Vec::with_capacity(ring.len());
        let mut fresh = Vec::new();
        for endpoint in ring.endpoints() {
            let existing = old
                .ring
                .endpoints()
                .binary_search(endpoint)
                .ok()
                .and_then(|i| old.backends.get(i));
            match existing {
                Some(backend) => backends.push(backend.clone()),
                None => match Backend::new(
                    endpoint.clone(),
                    self.settings.clone(),
                    &self.exporter,
                    &self.telemetry,
                ) {
                    Ok(backend) => {
                        let backend = Arc::new(backend);
                        fresh.push(backend.clone());
                        backends.push(backend);
                    }
                    Err(e) => tracing::warn!(exporter = %self.exporter, "skipping backend: {e}"),
                },
            }
        }
        // The ring must index exactly the backends we have.
        let ring = if backends.len() == ring.len() {
            ring
        } else {
            Ring::new(backends.iter().map(|b| b.endpoint().clone()), self.vnodes)
        };
        futures::future::join_all(fresh.iter().map(|b| b.warm_up(WARM_UP))).await;
        let count = backends.len();
        self.current.store(Arc::new(Pool { ring, backends }));
        self.num_backends.set(count as f64);
        self.updates.increment(1);
        tracing::info!(exporter = %self.exporter, backends = count, "backend set changed");
        true
    }
}
