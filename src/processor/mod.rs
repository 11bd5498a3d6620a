//! Processors: the second tier's stateful stages.
//!
//! - [`tail_sampling`]: keeps or drops whole traces by policy after a wait.

pub mod tail_sampling;

pub mod cumulative_to_delta;

use std::{sync::Arc, time::Duration};

use crate::{
    component::{BuildContext, BuildError},
    config::processors::ProcessorConfig,
    consumer::Consumer,
};

impl ProcessorConfig {
    /// Builds the processor in front of `next`. The tail sampler's run loop
    /// holds data, so it is a drain; the cumulative-to-delta reporter only
    /// reports.
    pub fn build(
        &self,
        cx: &mut BuildContext<'_>,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Consumer>, BuildError> {
        match self {
            ProcessorConfig::TailSampling(c) => {
                let processor =
                    tail_sampling::TailSampling::new(cx.id.as_str(), c, next, cx.telemetry)
                        .map_err(|e| cx.error(e))?;
                cx.tasks.drains.push(tokio::spawn(processor.clone().run()));
                Ok(processor)
            }
            ProcessorConfig::CumulativeToDelta(c) => {
                let processor = cumulative_to_delta::CumulativeToDelta::new(
                    cx.id.as_str(),
                    c,
                    next,
                    cx.telemetry,
                )
                .map_err(|e| cx.error(e))?;
                cx.tasks.background.push(tokio::spawn(
                    processor.clone().report(Duration::from_secs(5)),
                ));
                Ok(processor)
            }
        }
    }
}
