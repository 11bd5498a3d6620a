//! The `dns` resolver.
use super::{Resolutions, Updates};
use crate::config::exporters::DnsResolverConfig;
/// Resolves `config` periodically.
pub fn resolve(config: &DnsResolverConfig, resolutions: Resolutions) -> Updates {
    let _ = (config, resolutions);
    Box::pin(futures::stream::pending())
}
