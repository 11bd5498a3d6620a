//! The `k8s` resolver: backends from a Service's EndpointSlices.
//!
//! Watches `discovery.k8s.io/v1` EndpointSlices labelled
//! `kubernetes.io/service-name=<service>` in one namespace with kube's
//! `watcher`, merges every slice of the service, and keeps only endpoints
//! that are ready and not terminating, so a pod leaves the ring as soon as
//! Kubernetes stops sending it traffic. A (re)list is buffered from `Init`
//! to `InitDone` and replaces the whole set at once; while it runs, and
//! while the watch is down, the last known set stays in use.
//!
//! Needs `get`, `list` and `watch` on `endpointslices` (API group
//! `discovery.k8s.io`) in the service's namespace.

use std::collections::{BTreeMap, BTreeSet};

use futures::{Stream, StreamExt};
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointSlice};
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        watcher::{self, Event},
    },
};

use super::{Resolutions, Update, Updates};
use crate::config::endpoint::Endpoint;
use crate::config::exporters::K8sResolverConfig;

/// Why the resolver could not start.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// Neither in-cluster settings nor a kubeconfig were found.
    #[error("resolver.k8s: no Kubernetes client configuration: {0}")]
    NoConfig(#[source] kube::config::InferConfigError),
    /// The client could not be built from the settings found.
    #[error("resolver.k8s: cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// Where a pod finds its own namespace.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The label EndpointSlices carry to name their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Connects to the API server (in-cluster service account, else
/// `KUBECONFIG` or `~/.kube/config`) and watches `config`'s service.
///
/// Waits up to `config.timeout` for the first complete list, so that a
/// service that starts with a reachable API server starts with its ring
/// filled; a slower list only logs a warning (the watch goes on).
pub async fn resolve(
    config: &K8sResolverConfig,
    resolutions: Resolutions,
) -> Result<Updates, K8sError> {
    let mut client_config = kube::Config::infer().await.map_err(K8sError::NoConfig)?;
    client_config.connect_timeout = Some(config.timeout);
    client_config.write_timeout = Some(config.timeout);
    let client = Client::try_from(client_config).map_err(K8sError::Client)?;
    let namespace = namespace(config, std::fs::read_to_string(NAMESPACE_FILE).ok());
    let mut updates = watch(client, &namespace, config, resolutions);
    match tokio::time::timeout(config.timeout, updates.next()).await {
        Ok(Some(first)) => Ok(futures::stream::once(async { first })
            .chain(updates)
            .boxed()),
        Ok(None) => Ok(updates),
        Err(_) => {
            tracing::warn!(
                service = %config.service_name(), %namespace,
                "no EndpointSlice list within {:?}; starting with no backend and watching on",
                config.timeout
            );
            Ok(updates)
        }
    }
}

/// The namespace to watch: the one in `service`, else the pod's own
/// (`pod_namespace`, the content of [`NAMESPACE_FILE`]), else `default`.
pub fn namespace(config: &K8sResolverConfig, pod_namespace: Option<String>) -> String {
    if let Some(ns) = config.namespace() {
        return ns.to_string();
    }
    pod_namespace
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// Watches the EndpointSlices of `config`'s service in `namespace` through
/// `client`. The watch restarts by itself (with backoff) after errors.
pub fn watch(
    client: Client,
    namespace: &str,
    config: &K8sResolverConfig,
    resolutions: Resolutions,
) -> Updates {
    let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
    let selector = format!("{SERVICE_NAME_LABEL}={}", config.service_name());
    let events =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    updates(events, Slices::new(config, namespace), resolutions)
}

/// Turns watcher events into endpoint-set updates: one `Reset` each time
/// the merged set of ready endpoints changes. Watch errors are counted
/// (`success="false"`) and otherwise ignored: the set stays as it was.
pub fn updates<S>(events: S, slices: Slices, resolutions: Resolutions) -> Updates
where
    S: Stream<Item = Result<Event<EndpointSlice>, watcher::Error>> + Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(events), slices, resolutions),
        |(mut events, mut slices, resolutions)| async move {
            loop {
                match events.next().await? {
                    Ok(event) => {
                        let complete = !matches!(event, Event::Init | Event::InitApply(_));
                        let update = slices.apply(event);
                        if complete {
                            resolutions.record_endpoints(slices.endpoints());
                        }
                        if let Some(update) = update {
                            return Some((update, (events, slices, resolutions)));
                        }
                    }
                    Err(e) => {
                        resolutions.record(false);
                        tracing::warn!(service = %slices.service, namespace = %slices.namespace,
                            "EndpointSlice watch: {e}; keeping the current backends");
                    }
                }
            }
        },
    )
    .boxed()
}

/// The EndpointSlices of one service, and the backends they make.
#[derive(Debug)]
pub struct Slices {
    service: String,
    namespace: String,
    ports: Vec<u16>,
    return_hostnames: bool,
    /// Backends per slice name, as of the last complete state.
    current: BTreeMap<String, BTreeSet<Endpoint>>,
    /// A list in progress (between `Init` and `InitDone`).
    listing: Option<BTreeMap<String, BTreeSet<Endpoint>>>,
    /// The set last reported downstream.
    reported: Option<BTreeSet<Endpoint>>,
}

impl Slices {
    /// No slices yet, for `config`'s service in `namespace`.
    pub fn new(config: &K8sResolverConfig, namespace: &str) -> Slices {
        Slices {
            service: config.service_name().to_string(),
            namespace: namespace.to_string(),
            ports: config.ports.clone(),
            return_hostnames: config.return_hostnames,
            current: BTreeMap::new(),
            listing: None,
            reported: None,
        }
    }

    /// Applies one watcher event; returns the new set if it changed.
    pub fn apply(&mut self, event: Event<EndpointSlice>) -> Option<Update> {
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                return None;
            }
            Event::InitApply(slice) => {
                let (name, backends) = self.backends(&slice);
                self.listing
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name, backends);
                return None;
            }
            Event::InitDone => {
                // Slices absent from the new list are gone.
                self.current = self.listing.take().unwrap_or_default();
            }
            Event::Apply(slice) => {
                let (name, backends) = self.backends(&slice);
                self.current.insert(name, backends);
            }
            Event::Delete(slice) => {
                self.current.remove(&slice_name(&slice));
            }
        }
        // Several slices may list one endpoint (while the controller moves
        // it), so the set is always rebuilt as the union of all slices.
        let set: BTreeSet<Endpoint> = self.current.values().flatten().cloned().collect();
        if self.reported.as_ref() == Some(&set) {
            return None;
        }
        tracing::info!(service = %self.service, namespace = %self.namespace, backends = set.len(),
            "EndpointSlices changed the backend set");
        self.reported = Some(set.clone());
        Some(Update::Reset(set))
    }

    /// The number of endpoints in the set last reported.
    pub fn endpoints(&self) -> usize {
        self.reported.as_ref().map_or(0, BTreeSet::len)
    }

    /// The slice's name and its backends: one per usable endpoint and port.
    fn backends(&self, slice: &EndpointSlice) -> (String, BTreeSet<Endpoint>) {
        let mut out = BTreeSet::new();
        for endpoint in slice.endpoints.iter().flatten().filter(|e| usable(e)) {
            let host = if self.return_hostnames {
                match &endpoint.hostname {
                    Some(hostname) => format!("{hostname}.{}.{}", self.service, self.namespace),
                    None => {
                        tracing::debug!(slice = %slice_name(slice), addresses = ?endpoint.addresses,
                            "return_hostnames: endpoint without a hostname left out");
                        continue;
                    }
                }
            } else {
                // The addresses of one endpoint are interchangeable.
                match endpoint.addresses.first() {
                    Some(address) => address.clone(),
                    None => continue,
                }
            };
            for &port in &self.ports {
                out.insert(Endpoint::new(&host, port));
            }
        }
        (slice_name(slice), out)
    }
}

/// Ready and not terminating. The API defines an unset `ready` as ready;
/// `terminating` is checked too because a service that publishes
/// not-ready addresses reports terminating pods as ready.
fn usable(endpoint: &SliceEndpoint) -> bool {
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    ready && !terminating
}

fn slice_name(slice: &EndpointSlice) -> String {
    slice.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
