//! Processors: the second tier's stateful stages.
//!
//! - [`tail_sampling`]: keeps or drops whole traces by policy after a wait.

pub mod tail_sampling;

pub mod cumulative_to_delta;

use std::{sync::Arc, time::Duration};

use crate::{
    config::{ComponentId, processors::ProcessorConfig},
    consumer::Consumer,
    telemetry::Telemetry,
};

/// Builds the processor `id` in front of `next`.
///
/// Tasks that only report go into `background` (aborted at shutdown). Tasks
/// that hold data go into `drains`: the service awaits them at shutdown, and
/// they end by themselves once the receivers are gone and they have passed
/// on what they held (the tail sampler decides and exports every pending
/// trace then).
pub fn build(
    id: &ComponentId,
    config: &ProcessorConfig,
    next: Arc<dyn Consumer>,
    telemetry: &Arc<Telemetry>,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
    drains: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Arc<dyn Consumer>, String> {
    match config {
        ProcessorConfig::TailSampling(c) => {
            let processor = tail_sampling::TailSampling::new(id.as_str(), c, next, telemetry)?;
            drains.push(tokio::spawn(processor.clone().run()));
            Ok(processor)
        }
        ProcessorConfig::CumulativeToDelta(c) => {
            let processor =
                cumulative_to_delta::CumulativeToDelta::new(id.as_str(), c, next, telemetry)?;
            background.push(tokio::spawn(
                processor.clone().report(Duration::from_secs(5)),
            ));
            Ok(processor)
        }
    }
}
