//! `include` / `exclude`: which metrics the processor converts. A metric
//! neither selection allows passes through untouched.

use std::collections::HashSet;

use regex::RegexSet;

use super::Kind;
use crate::config::processors::{CumulativeToDeltaConfig, MatchType, MetricFilter, MetricType};

/// Both filters of a processor. `exclude` wins over `include`.
pub(super) struct Selection {
    include: Option<Filter>,
    exclude: Option<Filter>,
}

impl Selection {
    pub(super) fn new(config: &CumulativeToDeltaConfig) -> Result<Selection, String> {
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
    names: Names,
    types: Vec<MetricType>,
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
    fn new(key: &str, config: &MetricFilter) -> Result<Filter, String> {
        let names = if config.metrics.is_empty() {
            Names::Any
        } else {
            match config.match_type {
                MatchType::Strict => Names::Exact(config.metrics.iter().cloned().collect()),
                MatchType::Regexp => Names::Patterns(
                    RegexSet::new(&config.metrics).map_err(|e| format!("{key}.metrics: {e}"))?,
                ),
            }
        };
        Ok(Filter {
            names,
            types: config.metric_types.clone(),
        })
    }

    fn restricts(&self) -> bool {
        !matches!(self.names, Names::Any) || !self.types.is_empty()
    }

    fn selects(&self, name: &str, kind: Kind) -> bool {
        let name_ok = match &self.names {
            Names::Any => true,
            Names::Exact(names) => names.contains(name),
            Names::Patterns(patterns) => patterns.is_match(name),
        };
        // The config knows `sum` and `histogram`; exponential histograms are
        // histograms to it.
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| match t {
                MetricType::Sum => kind == Kind::Sum,
                MetricType::Histogram => kind != Kind::Sum,
            });
        name_ok && type_ok
    }
}
