//! Discovery: where the backend endpoints come from.
//!
//! Every resolver is a producer of one stream of [`Update`]s (the
//! linkerd2-proxy model) and nothing else: discovery knows nothing of rings,
//! connections or exporters. The exporter that owns a pool subscribes to the
//! stream (`exporter::PoolHandle::follow`). A new resolver is a new producer;
//! nothing downstream changes, and resolver tests need no pool.
//!
//! - [`fixed`] (`static`): a list, once.
//! - [`dns`]: A/AAAA or SRV records, asked every interval; a bad answer
//!   keeps the last good set.
//! - [`k8s`]: a Service's ready EndpointSlice endpoints, watched.
//!
//! Endpoints travel as [`Endpoint`]s, normalised where they are made, so
//! every replica of the proxy hashes the same endpoint the same way.

pub mod dns;
pub mod fixed;
pub mod k8s;

use std::{collections::BTreeSet, pin::Pin, time::Duration};

use futures::Stream;
use metrics::Counter;

use crate::{
    config::{endpoint::Endpoint, exporters::Resolver},
    telemetry::{Telemetry, metrics::names},
};

/// A change to the endpoint set, as a resolver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The whole set is now exactly this.
    Reset(BTreeSet<Endpoint>),
    /// These endpoints joined.
    Add(Vec<Endpoint>),
    /// These endpoints left.
    Remove(Vec<Endpoint>),
}

impl Update {
    /// Applies the update to `set`; returns whether the set changed.
    pub fn apply(self, set: &mut BTreeSet<Endpoint>) -> bool {
        match self {
            Update::Reset(new) => {
                let changed = new != *set;
                *set = new;
                changed
            }
            Update::Add(endpoints) => endpoints
                .into_iter()
                .fold(false, |changed, e| set.insert(e) | changed),
            Update::Remove(endpoints) => endpoints
                .iter()
                .fold(false, |changed, e| set.remove(e) | changed),
        }
    }
}

/// A resolver's output.
pub type Updates = Pin<Box<dyn Stream<Item = Update> + Send>>;

/// A started resolver: its stream, and how long a consumer that wants to
/// start with the first set should wait for it (the static list is there at
/// once and the k8s resolver has already waited for its first list; a DNS
/// answer takes up to the resolver's timeout).
pub struct Resolution {
    /// The updates, for as long as the resolver runs.
    pub updates: Updates,
    /// How long the first update may take.
    pub first_within: Duration,
}

/// Why a resolver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The k8s resolver found no usable client configuration.
    #[error(transparent)]
    K8s(#[from] k8s::K8sError),
}

/// Starts the resolver `config` selects; its resolutions are counted in
/// `resolutions`.
pub async fn resolve(
    config: Resolver<'_>,
    resolutions: Resolutions,
) -> Result<Resolution, DiscoveryError> {
    Ok(match config {
        Resolver::Static(s) => Resolution {
            updates: fixed::resolve(&s.endpoints(), resolutions),
            first_within: Duration::ZERO,
        },
        Resolver::Dns(dns) => Resolution {
            updates: dns::resolve(dns, resolutions),
            first_within: dns.timeout,
        },
        Resolver::K8s(k8s) => Resolution {
            updates: k8s::resolve(k8s, resolutions).await?,
            first_within: Duration::ZERO,
        },
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<Endpoint> {
        items.iter().map(|s| ep(s)).collect()
    }

    fn ep(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    #[test]
    fn updates_apply_to_a_set() {
        let mut m = BTreeSet::new();
        assert!(Update::Reset(set(&["a:1", "b:1"])).apply(&mut m));
        assert!(!Update::Reset(set(&["b:1", "a:1"])).apply(&mut m));
        assert!(Update::Add(vec![ep("c:1")]).apply(&mut m));
        assert!(!Update::Add(vec![ep("c:1")]).apply(&mut m));
        assert!(Update::Remove(vec![ep("a:1"), ep("zz:1")]).apply(&mut m));
        assert!(!Update::Remove(vec![ep("a:1")]).apply(&mut m));
        assert_eq!(m, set(&["b:1", "c:1"]));
        assert!(Update::Reset(BTreeSet::new()).apply(&mut m));
        assert!(m.is_empty());
    }
}
