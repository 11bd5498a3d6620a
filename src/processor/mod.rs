//! Processors: the second tier's stateful stages.

use std::sync::Arc;

use crate::{
    config::{ComponentId, processors::ProcessorConfig},
    consumer::Consumer,
    telemetry::Telemetry,
};

/// Builds the processor `id` in front of `next`.
pub fn build(
    id: &ComponentId,
    config: &ProcessorConfig,
    next: Arc<dyn Consumer>,
    telemetry: &Arc<Telemetry>,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Arc<dyn Consumer>, String> {
    let _ = (id, config, next, telemetry, background);
    Err("processors are not implemented yet".into())
}
