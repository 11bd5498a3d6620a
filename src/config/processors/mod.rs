//! Processor settings: `tail_sampling` for traces and `cumulativetodelta` for
//! metrics, as the collector spells them.
//!
//! This module owns the processor config types, their deserialization and
//! their validation, each type in the file named for it. It never builds a
//! running processor (each processor builds itself from these types, in
//! `crate::processor`) and never accepts a key it does not act on.

mod cumulative_to_delta;
mod tail_sampling;

use serde::Deserializer;

pub use cumulative_to_delta::{
    CumulativeToDeltaConfig, InitialValue, MatchType, MetricFilter, MetricType,
};
pub use tail_sampling::{
    AndPolicy, BooleanAttributePolicy, CompositePolicy, DecisionCacheConfig, DropPolicy,
    LatencyPolicy, NotPolicy, NumericAttributePolicy, Policy, PolicyConfig, ProbabilisticPolicy,
    RateAllocation, RateLimitingPolicy, SpanCountPolicy, StatusCodeName, StatusCodePolicy,
    StringAttributePolicy, TailSamplingConfig, TraceStatePolicy,
};

use super::component::ComponentKind;
use super::de::null_as_default;
use super::error::ConfigError;
use crate::signal::Signal;

/// One configured processor, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorConfig {
    /// `tail_sampling`.
    TailSampling(TailSamplingConfig),
    /// `cumulativetodelta`.
    CumulativeToDelta(CumulativeToDeltaConfig),
}

impl ComponentKind for ProcessorConfig {
    const KIND: &'static str = "processor";
    const SUPPORTED: &'static [&'static str] = &["tail_sampling", "cumulative_to_delta"];
    const ALIASES: &'static [(&'static str, &'static str)] =
        &[("cumulativetodelta", "cumulative_to_delta")];

    fn deserialize_typed<'de, D: Deserializer<'de>>(
        type_name: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        Some(match type_name {
            "tail_sampling" => null_as_default(de).map(ProcessorConfig::TailSampling),
            "cumulative_to_delta" => null_as_default(de).map(ProcessorConfig::CumulativeToDelta),
            _ => return None,
        })
    }
}

impl ProcessorConfig {
    /// The one signal this processor works on.
    pub fn signal(&self) -> Signal {
        match self {
            ProcessorConfig::TailSampling(_) => Signal::Traces,
            ProcessorConfig::CumulativeToDelta(_) => Signal::Metrics,
        }
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        match self {
            ProcessorConfig::TailSampling(c) => c.validate(path),
            ProcessorConfig::CumulativeToDelta(c) => c.validate(path),
        }
    }
}

/// Checks that `pattern`, at `path`, is a valid regular expression.
fn check_regex(path: &str, pattern: &str) -> Result<(), ConfigError> {
    regex::Regex::new(pattern)
        .map(drop)
        .map_err(|e| ConfigError::new(path, format!("invalid regular expression: {e}")))
}
