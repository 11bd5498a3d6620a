//! The `otlp` exporter, built from its config: OTLP/gRPC to one endpoint,
//! through the same pool, backend and retry machinery as `loadbalancing`
//! (a pool of one, from a static resolver).

use std::{sync::Arc, time::Duration};

use super::{ClientSettings, Exporter, Forwarder, PoolHandle, Routing};
use crate::{
    component::{BuildContext, BuildError},
    config::exporters::OtlpExporterConfig,
    discovery::{Resolutions, fixed},
};

impl OtlpExporterConfig {
    /// The exporter.
    pub async fn build(&self, cx: &mut BuildContext<'_>) -> Result<Exporter, BuildError> {
        let name = cx.id.as_str();
        let target = self
            .target()
            .ok_or_else(|| cx.error("endpoint: required"))?;
        let setter = cx.headers_setter("auth", self.auth.as_ref())?;
        let settings = ClientSettings::from_config(self, setter).map_err(|e| cx.error(e))?;
        if settings.skip_verify.is_some() {
            tracing::warn!(
                exporter = %name,
                "tls.insecure_skip_verify: backend certificates are not verified"
            );
        }
        let pool = PoolHandle::new(name, "static", Arc::new(settings), 1, cx.telemetry.clone());
        let updates = fixed::resolve(&[target], Resolutions::new(cx.telemetry, name, "static"));
        cx.tasks
            .background
            .push(pool.follow(updates, Duration::ZERO).await);
        // One call per attempt: the call's own deadline (`timeout`) bounds it.
        let forwarder = Forwarder::new(
            name,
            pool.clone(),
            Routing::Whole,
            self.retry_on_failure.clone(),
            None,
            cx.telemetry,
        );
        Ok(Exporter {
            consumer: Arc::new(forwarder),
            pool: Some(pool),
            debug: None,
        })
    }
}
