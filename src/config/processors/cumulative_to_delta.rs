//! `cumulativetodelta` settings: which metrics to convert, how long to keep
//! a stream, and what to do with a stream's first point.
//!
//! Types and validation only; never builds the processor.

use std::time::Duration;

use serde::Deserialize;

use super::check_regex;
use crate::config::de::present;
use crate::config::duration;
use crate::config::error::{ConfigError, child, item};

/// `cumulativetodelta`: turns monotonic cumulative sums and histograms into
/// deltas, keeping the last point of every stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CumulativeToDeltaConfig {
    /// Only convert matching metrics; every metric when unset.
    #[serde(deserialize_with = "present")]
    pub include: Option<MetricFilter>,
    /// Never convert matching metrics; wins over `include`.
    #[serde(deserialize_with = "present")]
    pub exclude: Option<MetricFilter>,
    /// Forget a stream not seen for this long; 0 keeps state forever. Default 0.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_staleness: Duration,
    /// What to do with a stream's first point. Default auto.
    pub initial_value: InitialValue,
}

impl Default for CumulativeToDeltaConfig {
    fn default() -> CumulativeToDeltaConfig {
        CumulativeToDeltaConfig {
            include: None,
            exclude: None,
            max_staleness: Duration::ZERO,
            initial_value: InitialValue::Auto,
        }
    }
}

/// How `metrics` names are matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    /// Exact names. The default.
    #[default]
    Strict,
    /// Regular expressions (RE2 syntax), matched anywhere in the name unless anchored.
    Regexp,
}

/// A metric type a filter can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// Sums.
    Sum,
    /// Histograms.
    Histogram,
}

/// `include` / `exclude`: which metrics a filter selects, by name and type.
/// An empty list does not restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricFilter {
    /// Metric names, or patterns with `match_type: regexp`.
    pub metrics: Vec<String>,
    /// `strict` or `regexp`. Default strict.
    pub match_type: MatchType,
    /// Metric types (`sum`, `histogram`).
    pub metric_types: Vec<MetricType>,
}

/// `initial_value`: the first point of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialValue {
    /// Emit it only if its start time is set, after the processor started, and
    /// before its timestamp. The default.
    #[default]
    Auto,
    /// Always emit it.
    Keep,
    /// Store it as the baseline; do not emit it.
    Drop,
}

impl CumulativeToDeltaConfig {
    pub(super) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        for (key, filter) in [("include", &self.include), ("exclude", &self.exclude)] {
            let Some(filter) = filter else { continue };
            if filter.match_type == MatchType::Regexp {
                let metrics = child(&child(path, key), "metrics");
                for (i, pattern) in filter.metrics.iter().enumerate() {
                    check_regex(&item(&metrics, i), pattern)?;
                }
            }
        }
        Ok(())
    }
}
