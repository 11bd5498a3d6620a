//! Processors: the second tier's stateful stages.

pub mod cumulative_to_delta;

use std::{sync::Arc, time::Duration};

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
    match config {
        ProcessorConfig::CumulativeToDelta(c) => {
            let processor =
                cumulative_to_delta::CumulativeToDelta::new(id.as_str(), c, next, telemetry)?;
            background.push(tokio::spawn(
                processor.clone().report(Duration::from_secs(5)),
            ));
            Ok(processor)
        }
        other => Err(format!("{} is not implemented yet", other.type_name())),
    }
}
