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

use std::{
    collections::BTreeSet,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

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
/// (`otelcol_loadbalancer_num_resolutions_total{exporter,resolver,success}`),
/// and keeps the last one for whoever watches the resolver (the status page
/// reads it through a clone).
#[derive(Clone)]
pub struct Resolutions {
    ok: Counter,
    failed: Counter,
    log: Arc<Mutex<ResolutionLog>>,
}

/// What [`Resolutions`] remembers: totals and the last resolution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolutionLog {
    /// Successful resolutions so far.
    pub successes: u64,
    /// Failed resolutions so far.
    pub failures: u64,
    /// The last one, if any.
    pub last: Option<LastResolution>,
}

/// One resolution: when, how it went, and how many endpoints it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastResolution {
    /// When it finished (wall clock).
    pub at: SystemTime,
    /// Whether it succeeded.
    pub success: bool,
    /// The endpoints it found, when the resolver reports them (`None` for a
    /// failure: the last good set is kept).
    pub endpoints: Option<usize>,
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
            log: Arc::default(),
        }
    }

    /// Records one resolution, without an endpoint count.
    pub fn record(&self, success: bool) {
        if success { &self.ok } else { &self.failed }.increment(1);
        self.remember(success, None);
    }

    /// Records one successful resolution that found `endpoints` endpoints.
    pub fn record_endpoints(&self, endpoints: usize) {
        self.ok.increment(1);
        self.remember(true, Some(endpoints));
    }

    fn remember(&self, success: bool, endpoints: Option<usize>) {
        // A resolution is rare (seconds apart), so a mutex is fine here.
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if success {
            log.successes += 1;
        } else {
            log.failures += 1;
        }
        log.last = Some(LastResolution {
            at: SystemTime::now(),
            success,
            endpoints,
        });
    }

    /// The totals and the last resolution.
    pub fn log(&self) -> ResolutionLog {
        *self.log.lock().unwrap_or_else(PoisonError::into_inner)
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

    #[test]
    fn resolutions_remember_the_last_one() {
        let telemetry = Telemetry::new();
        let resolutions = Resolutions::new(&telemetry, "lb", "dns");
        assert_eq!(resolutions.clone().log(), ResolutionLog::default());
        resolutions.record_endpoints(3);
        let last = resolutions.log().last.unwrap();
        assert!(last.success);
        assert_eq!(last.endpoints, Some(3));
        resolutions.clone().record(false);
        let log = resolutions.log();
        assert_eq!((log.successes, log.failures), (1, 1));
        assert_eq!(
            log.last.map(|l| (l.success, l.endpoints)),
            Some((false, None))
        );
    }
}
