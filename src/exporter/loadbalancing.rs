//! The `loadbalancing` exporter, built from its config: a pool that follows
//! the configured resolver, and a forwarder that splits each request by the
//! pipeline's routing key.

use std::{collections::BTreeSet, sync::Arc};

use super::{ClientSettings, Exporter, Forwarder, PoolHandle, Routing};
use crate::{
    component::{BuildContext, BuildError},
    config::exporters::LoadBalancingExporterConfig,
    discovery::{self, Resolutions},
    routing::{KeySpec, ring::DEFAULT_VNODES},
    signal::{PerSignal, Signal},
    wire::Splitter,
};

impl LoadBalancingExporterConfig {
    /// The exporter for pipelines of `signals`: starts the resolver, waits
    /// for its first set (see [`PoolHandle::follow`]), and splits each
    /// signal by its routing key.
    pub async fn build(
        &self,
        cx: &mut BuildContext<'_>,
        signals: &BTreeSet<Signal>,
    ) -> Result<Exporter, BuildError> {
        let name = cx.id.as_str();
        let resolver = self
            .resolver
            .selected()
            .ok_or_else(|| cx.error("resolver: exactly one of static, dns, k8s must be set"))?;
        let setter = cx.headers_setter("protocol.otlp.auth", self.protocol.otlp.auth.as_ref())?;
        let settings = ClientSettings::from_config(&self.protocol.otlp, setter)
            .map_err(|e| cx.error(format!("protocol.otlp.{e}")))?;
        if settings.skip_verify.is_some() {
            tracing::warn!(
                exporter = %name,
                "tls.insecure_skip_verify: backend certificates are not verified"
            );
        }
        let pool = PoolHandle::new(
            name,
            resolver.name(),
            Arc::new(settings),
            DEFAULT_VNODES,
            cx.telemetry.clone(),
        );
        let resolutions = Resolutions::new(cx.telemetry, name, resolver.name());
        pool.share_resolutions(resolutions.clone());
        let resolution = discovery::resolve(resolver, resolutions)
            .await
            .map_err(|e| cx.error(e))?;
        let following = pool
            .follow(resolution.updates, resolution.first_within)
            .await;
        cx.tasks.background.push(following);

        let splitters = PerSignal::from_fn(|signal| {
            signals
                .contains(&signal)
                .then(|| Splitter::new(signal, self.key_spec(signal)))
        });
        let forwarder = Forwarder::new(
            name,
            pool.clone(),
            Routing::Keyed(splitters),
            self.retry_on_failure.clone(),
            Some(self.timeout),
            cx.telemetry,
        );
        Ok(Exporter {
            consumer: Arc::new(forwarder),
            pool: Some(pool),
            debug: None,
        })
    }

    /// The key a pipeline of `signal` splits by, with its attribute names:
    /// what the splitter (and the status page's `/route`) is built from.
    pub fn key_spec(&self, signal: Signal) -> KeySpec {
        KeySpec::new(self.routing_key_for(signal), &self.routing_attributes)
    }
}
