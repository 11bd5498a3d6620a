//! The `k8s` resolver.
use super::{Resolutions, Updates};
use crate::config::exporters::K8sResolverConfig;
/// Watches `config`'s EndpointSlices.
pub fn resolve(config: &K8sResolverConfig, resolutions: Resolutions) -> Result<Updates, String> {
    let _ = (config, resolutions);
    Err("k8s resolver is not implemented yet".into())
}
