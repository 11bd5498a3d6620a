//! Processors: the second tier's stateful stages, each built by its config.
//!
//! - [`tail_sampling`]: keeps or drops whole traces by policy after a wait.
//! - [`cumulative_to_delta`]: turns cumulative sums and histograms into deltas.
//!
//! This module owns the processors' running state and the dispatch from a
//! [`ProcessorConfig`] to the processor it builds. A processor uses its
//! validated config as it is (never a copy of its fields), only ever hands
//! requests on to the `next` it was built with, and never reaches back up
//! the pipeline.

pub mod cumulative_to_delta;
pub mod tail_sampling;

use std::sync::Arc;

use crate::{
    component::{BuildContext, BuildError},
    config::processors::ProcessorConfig,
    consumer::Consumer,
};

impl ProcessorConfig {
    /// Builds this processor in front of `next`, and returns the head of the
    /// chain.
    ///
    /// Tasks that only report go into `cx.tasks.background` (aborted at
    /// shutdown). Tasks that hold data go into `cx.tasks.drains`: the service
    /// awaits them at shutdown, and they end by themselves once the receivers
    /// are gone and they have passed on what they held (the tail sampler
    /// decides and exports every pending trace then).
    pub fn build(
        &self,
        cx: &mut BuildContext<'_>,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Consumer>, BuildError> {
        match self {
            ProcessorConfig::TailSampling(c) => c.build(cx, next),
            ProcessorConfig::CumulativeToDelta(c) => c.build(cx, next),
        }
    }
}
