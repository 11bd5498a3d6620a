//! Processors: the second tier's stateful stages.
//!
//! - [`tail_sampling`]: keeps or drops whole traces by policy after a wait.

pub mod tail_sampling;

use std::sync::Arc;

use crate::{
    config::{ComponentId, processors::ProcessorConfig},
    consumer::Consumer,
    telemetry::Telemetry,
};

/// Builds the processor `id` in front of `next`; its background tasks (the
/// decision loop of `tail_sampling`) go into `background`.
pub fn build(
    id: &ComponentId,
    config: &ProcessorConfig,
    next: Arc<dyn Consumer>,
    telemetry: &Arc<Telemetry>,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Arc<dyn Consumer>, String> {
    match config {
        ProcessorConfig::TailSampling(c) => {
            let processor = tail_sampling::TailSampling::new(id.as_str(), c, next, telemetry)?;
            background.push(tokio::spawn(processor.clone().run()));
            Ok(processor)
        }
        ProcessorConfig::CumulativeToDelta(_) => {
            Err("cumulativetodelta is not implemented yet".into())
        }
    }
}
