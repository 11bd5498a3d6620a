//! `include` / `exclude`: which metrics the processor converts. A metric
//! neither selection allows passes through untouched.
//!
//! It owns the compiled name patterns next to the filters' config; it only
//! answers "convert this metric?" and never touches a metric itself.

use std::collections::HashSet;

use regex::RegexSet;

use super::Kind;
use crate::config::processors::{CumulativeToDeltaConfig, MatchType, MetricFilter, MetricType};

/// Why a filter could not be compiled from its (validated) config.
#[derive(Debug, thiserror::Error)]
#[error("{key}.metrics: invalid regular expression: {source}")]
pub struct FilterError {
    /// `include` or `exclude`.
    pub key: &'static str,
    /// What the regex compiler said.
    pub source: regex::Error,
}

/// Both filters of a processor. `exclude` wins over `include`.
pub(super) struct Selection {
    include: Option<Filter>,
    exclude: Option<Filter>,
}

impl Selection {
    pub(super) fn new(config: &CumulativeToDeltaConfig) -> Result<Selection, FilterError> {
        Ok(Selection {
            include: config
                .include
                .as_ref()
                .map(|f| Filter::new("include", f))
                .transpose()?,
            exclude: config
                .exclude
                .as_ref()
                .map(|f| Filter::new("exclude", f))
                .transpose()?,
        })
    }

    /// True when the metric `name` of `kind` is to be converted.
    pub(super) fn converts(&self, name: &str, kind: Kind) -> bool {
        let included = self.include.as_ref().is_none_or(|f| f.selects(name, kind));
        // An `exclude` that lists nothing excludes nothing, as in the collector
        // (where an unset exclude filter is simply absent).
        let excluded = self
            .exclude
            .as_ref()
            .is_some_and(|f| f.restricts() && f.selects(name, kind));
        included && !excluded
    }
}

/// One filter: a metric is selected when it passes every list that is set.
struct Filter {
    config: MetricFilter,
    /// `config.metrics`, compiled.
    names: Names,
}

enum Names {
    /// No `metrics` list: every name.
    Any,
    /// `match_type: strict`.
    Exact(HashSet<String>),
    /// `match_type: regexp`: any pattern matching anywhere in the name.
    Patterns(RegexSet),
}

impl Filter {
    fn new(key: &'static str, config: &MetricFilter) -> Result<Filter, FilterError> {
        let names = if config.metrics.is_empty() {
            Names::Any
        } else {
            match config.match_type {
                MatchType::Strict => Names::Exact(config.metrics.iter().cloned().collect()),
                MatchType::Regexp => Names::Patterns(
                    RegexSet::new(&config.metrics).map_err(|source| FilterError { key, source })?,
                ),
            }
        };
        Ok(Filter {
            config: config.clone(),
            names,
        })
    }

    fn restricts(&self) -> bool {
        !matches!(self.names, Names::Any) || !self.config.metric_types.is_empty()
    }

    fn selects(&self, name: &str, kind: Kind) -> bool {
        let name_ok = match &self.names {
            Names::Any => true,
            Names::Exact(names) => names.contains(name),
            Names::Patterns(patterns) => patterns.is_match(name),
        };
        // The config knows `sum` and `histogram`; exponential histograms are
        // histograms to it.
        let types = &self.config.metric_types;
        let type_ok = types.is_empty()
            || types.iter().any(|t| match t {
                MetricType::Sum => kind == Kind::Sum,
                MetricType::Histogram => kind != Kind::Sum,
            });
        name_ok && type_ok
    }
}
