//! Processor settings (types and validation only): `tail_sampling` for
//! traces and `cumulativetodelta` for metrics, as the collector spells them.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::component::ComponentKind;
use super::de::{Unsupported, null_as_default, present};
use super::duration;
use super::error::{ConfigError, child, item};
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
    const SUPPORTED: &'static [&'static str] = &["tail_sampling", "cumulativetodelta"];

    fn deserialize_typed<'de, D: Deserializer<'de>>(
        type_name: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        Some(match type_name {
            "tail_sampling" => null_as_default(de).map(ProcessorConfig::TailSampling),
            "cumulativetodelta" => null_as_default(de).map(ProcessorConfig::CumulativeToDelta),
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

    /// The processor type as written in ids.
    pub fn type_name(&self) -> &'static str {
        match self {
            ProcessorConfig::TailSampling(_) => "tail_sampling",
            ProcessorConfig::CumulativeToDelta(_) => "cumulativetodelta",
        }
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        match self {
            ProcessorConfig::TailSampling(c) => c.validate(path),
            ProcessorConfig::CumulativeToDelta(c) => c.validate(path),
        }
    }
}

// ---------------------------------------------------------------- tail_sampling

/// `tail_sampling`: hold each trace for `decision_wait`, then keep or drop it
/// whole by its policies. Any `drop` policy that matches wins; otherwise the
/// trace is kept if any policy samples it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TailSamplingConfig {
    /// How long after a trace's first span to decide. Default 30s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub decision_wait: Duration,
    /// Traces held at once; the oldest is decided early when full. Default 50000.
    pub num_traces: u64,
    /// Sizing hint for the trace table; 0 means none. Default 0.
    pub expected_new_traces_per_sec: u64,
    /// Remembers decisions after a trace is evicted, for late spans.
    #[serde(deserialize_with = "null_as_default")]
    pub decision_cache: DecisionCacheConfig,
    /// A trace larger than this is decided at once; 0 means unlimited. Default 0.
    pub maximum_trace_size_bytes: u64,
    /// Stop evaluating policies at the first that samples. Default false.
    pub sample_on_first_match: bool,
    /// The policies, evaluated for every trace (at least one).
    #[serde(deserialize_with = "null_as_default")]
    pub policies: Vec<PolicyConfig>,
    /// Not supported by otlp-lb.
    pub drop_pending_traces_on_shutdown: Unsupported,
    /// Not supported by otlp-lb.
    pub block_on_overflow: Unsupported,
    /// Not supported by otlp-lb.
    pub decision_wait_after_root_received: Unsupported,
}

impl Default for TailSamplingConfig {
    fn default() -> TailSamplingConfig {
        TailSamplingConfig {
            decision_wait: Duration::from_secs(30),
            num_traces: 50_000,
            expected_new_traces_per_sec: 0,
            decision_cache: DecisionCacheConfig::default(),
            maximum_trace_size_bytes: 0,
            sample_on_first_match: false,
            policies: Vec::new(),
            drop_pending_traces_on_shutdown: Unsupported,
            block_on_overflow: Unsupported,
            decision_wait_after_root_received: Unsupported,
        }
    }
}

/// `decision_cache`: sizes of the caches of past decisions; 0 turns one off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionCacheConfig {
    /// Trace ids remembered as sampled. Default 0.
    pub sampled_cache_size: usize,
    /// Trace ids remembered as not sampled. Default 0.
    pub non_sampled_cache_size: usize,
}

/// A policy type, the value of `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyType {
    /// `always_sample`: every trace.
    AlwaysSample,
    /// `latency`: by trace duration.
    Latency,
    /// `numeric_attribute`: an integer attribute within a range.
    NumericAttribute,
    /// `probabilistic`: a share of traces, by trace id hash.
    Probabilistic,
    /// `status_code`: a span status among a list.
    StatusCode,
    /// `string_attribute`: a string attribute among values or patterns.
    StringAttribute,
    /// `trace_state`: a W3C trace state key among values.
    TraceState,
    /// `rate_limiting`: up to a number of spans per second.
    RateLimiting,
    /// `span_count`: by the number of spans.
    SpanCount,
    /// `boolean_attribute`: a boolean attribute with a value.
    BooleanAttribute,
    /// `and`: all sub-policies sample.
    And,
    /// `not`: the sub-policy does not sample.
    Not,
    /// `drop`: drop the trace when all sub-policies match.
    Drop,
    /// `composite`: sub-policies sharing a spans-per-second budget.
    Composite,
}

const POLICY_TYPES: &[(&str, PolicyType)] = &[
    ("always_sample", PolicyType::AlwaysSample),
    ("latency", PolicyType::Latency),
    ("numeric_attribute", PolicyType::NumericAttribute),
    ("probabilistic", PolicyType::Probabilistic),
    ("status_code", PolicyType::StatusCode),
    ("string_attribute", PolicyType::StringAttribute),
    ("trace_state", PolicyType::TraceState),
    ("rate_limiting", PolicyType::RateLimiting),
    ("span_count", PolicyType::SpanCount),
    ("boolean_attribute", PolicyType::BooleanAttribute),
    ("and", PolicyType::And),
    ("not", PolicyType::Not),
    ("drop", PolicyType::Drop),
    ("composite", PolicyType::Composite),
];

/// Collector policy types otlp-lb refuses with a clear error.
const UNSUPPORTED_POLICY_TYPES: &[&str] = &["ottl_condition", "bytes_limiting", "trace_flags"];

impl PolicyType {
    /// The type as written in YAML; also the key of its settings block.
    pub fn as_str(self) -> &'static str {
        POLICY_TYPES
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("", |(name, _)| name)
    }

    /// Whether the type needs a settings block named after it.
    fn has_block(self) -> bool {
        self != PolicyType::AlwaysSample
    }

    /// Whether the type holds sub-policies.
    fn is_compound(self) -> bool {
        matches!(
            self,
            PolicyType::And | PolicyType::Not | PolicyType::Drop | PolicyType::Composite
        )
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PolicyType {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<PolicyType, D::Error> {
        let name = String::deserialize(de)?;
        if let Some((_, t)) = POLICY_TYPES.iter().find(|(n, _)| *n == name) {
            return Ok(*t);
        }
        let supported: Vec<&str> = POLICY_TYPES.iter().map(|(n, _)| *n).collect();
        if UNSUPPORTED_POLICY_TYPES.contains(&name.as_str()) {
            return Err(de::Error::custom(format!(
                "policy type \"{name}\" is not supported by otlp-lb; supported: {}",
                supported.join(", ")
            )));
        }
        Err(de::Error::custom(format!(
            "unknown policy type \"{name}\"; supported: {}",
            supported.join(", ")
        )))
    }
}

/// A sampling policy: `name`, `type`, and the settings block named after the
/// type (`{name: slow, type: latency, latency: {threshold_ms: 500}}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique among its siblings; labels the policy's metrics.
    pub name: String,
    /// Which policy this is; its settings are in the block of the same name.
    #[serde(rename = "type")]
    pub policy_type: PolicyType,
    /// Settings of `type: latency`.
    #[serde(default, deserialize_with = "present")]
    pub latency: Option<LatencyPolicy>,
    /// Settings of `type: numeric_attribute`.
    #[serde(default, deserialize_with = "present")]
    pub numeric_attribute: Option<NumericAttributePolicy>,
    /// Settings of `type: probabilistic`.
    #[serde(default, deserialize_with = "present")]
    pub probabilistic: Option<ProbabilisticPolicy>,
    /// Settings of `type: status_code`.
    #[serde(default, deserialize_with = "present")]
    pub status_code: Option<StatusCodePolicy>,
    /// Settings of `type: string_attribute`.
    #[serde(default, deserialize_with = "present")]
    pub string_attribute: Option<StringAttributePolicy>,
    /// Settings of `type: trace_state`.
    #[serde(default, deserialize_with = "present")]
    pub trace_state: Option<TraceStatePolicy>,
    /// Settings of `type: rate_limiting`.
    #[serde(default, deserialize_with = "present")]
    pub rate_limiting: Option<RateLimitingPolicy>,
    /// Settings of `type: span_count`.
    #[serde(default, deserialize_with = "present")]
    pub span_count: Option<SpanCountPolicy>,
    /// Settings of `type: boolean_attribute`.
    #[serde(default, deserialize_with = "present")]
    pub boolean_attribute: Option<BooleanAttributePolicy>,
    /// Settings of `type: and`.
    #[serde(default, rename = "and", deserialize_with = "present")]
    pub and: Option<AndPolicy>,
    /// Settings of `type: not`.
    #[serde(default, rename = "not", deserialize_with = "present")]
    pub not: Option<NotPolicy>,
    /// Settings of `type: drop`.
    #[serde(default, rename = "drop", deserialize_with = "present")]
    pub drop: Option<DropPolicy>,
    /// Settings of `type: composite`.
    #[serde(default, deserialize_with = "present")]
    pub composite: Option<CompositePolicy>,
    /// Not supported by otlp-lb.
    #[serde(default)]
    pub ottl_condition: Unsupported,
    /// Not supported by otlp-lb.
    #[serde(default)]
    pub bytes_limiting: Unsupported,
    /// Not supported by otlp-lb.
    #[serde(default)]
    pub trace_flags: Unsupported,
}

/// `latency`: traces whose duration (first span start to last span end) is at
/// least `threshold_ms` and, if set, at most `upper_threshold_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyPolicy {
    /// Lower bound in milliseconds (inclusive).
    pub threshold_ms: u64,
    /// Upper bound in milliseconds (inclusive); 0 means none.
    pub upper_threshold_ms: u64,
}

/// `numeric_attribute`: an integer attribute within `[min_value, max_value]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumericAttributePolicy {
    /// Attribute key (required).
    pub key: String,
    /// Lower bound (inclusive); unbounded when unset.
    pub min_value: Option<i64>,
    /// Upper bound (inclusive); unbounded when unset.
    pub max_value: Option<i64>,
    /// Sample traces that do NOT match.
    pub invert_match: bool,
}

/// `probabilistic`: a fixed share of traces, chosen by hashing the trace id.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbabilisticPolicy {
    /// Percentage of traces sampled, 0 to 100.
    pub sampling_percentage: f64,
    /// Salt mixed into the hash, so tiers sampling the same traces can differ.
    pub hash_salt: String,
}

/// A span status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum StatusCodeName {
    /// `OK`.
    #[serde(rename = "OK")]
    Ok,
    /// `ERROR`.
    #[serde(rename = "ERROR")]
    Error,
    /// `UNSET`.
    #[serde(rename = "UNSET")]
    Unset,
}

/// `status_code`: traces with a span whose status is one of `status_codes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusCodePolicy {
    /// `OK`, `ERROR`, `UNSET` (at least one).
    pub status_codes: Vec<StatusCodeName>,
}

/// `string_attribute`: a string attribute equal to (or matching) one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StringAttributePolicy {
    /// Attribute key (required).
    pub key: String,
    /// Values, or regular expressions with `enabled_regex_matching` (at least one).
    pub values: Vec<String>,
    /// Treat `values` as regular expressions. Default false.
    pub enabled_regex_matching: bool,
    /// Size of the cache of regex match results. Default 128 (the collector's).
    pub cache_max_size: usize,
    /// Sample traces that do NOT match.
    pub invert_match: bool,
}

impl Default for StringAttributePolicy {
    fn default() -> StringAttributePolicy {
        StringAttributePolicy {
            key: String::new(),
            values: Vec::new(),
            enabled_regex_matching: false,
            cache_max_size: 128,
            invert_match: false,
        }
    }
}

/// `trace_state`: a W3C trace state entry with one of `values`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceStatePolicy {
    /// Trace state key (required).
    pub key: String,
    /// Accepted values (at least one).
    pub values: Vec<String>,
}

/// `rate_limiting`: sample until `spans_per_second` is used up each second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitingPolicy {
    /// Spans per second (at least 1).
    pub spans_per_second: u64,
}

/// `span_count`: traces with between `min_spans` and `max_spans` spans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanCountPolicy {
    /// Lower bound (inclusive).
    pub min_spans: u32,
    /// Upper bound (inclusive); 0 means none.
    pub max_spans: u32,
}

/// `boolean_attribute`: a boolean attribute equal to `value`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BooleanAttributePolicy {
    /// Attribute key (required).
    pub key: String,
    /// The value to match.
    pub value: bool,
    /// Sample traces that do NOT match.
    pub invert_match: bool,
}

/// `and`: sample when every sub-policy samples.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AndPolicy {
    /// The sub-policies (at least one; no compound types).
    pub and_sub_policy: Vec<PolicyConfig>,
}

/// `not`: sample when the sub-policy does not.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotPolicy {
    /// The sub-policy (required; not a compound type).
    pub not_sub_policy: Option<Box<PolicyConfig>>,
}

/// `drop`: drop the trace, whatever else samples it, when every sub-policy matches.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropPolicy {
    /// The sub-policies (at least one; no compound types).
    pub drop_sub_policy: Vec<PolicyConfig>,
}

/// `composite`: sub-policies evaluated in `policy_order`, sharing
/// `max_total_spans_per_second` by `rate_allocation`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompositePolicy {
    /// The shared budget of spans per second (at least 1).
    pub max_total_spans_per_second: u64,
    /// Sub-policy names in evaluation order; each must name a sub-policy.
    pub policy_order: Vec<String>,
    /// The sub-policies (at least one; `and` allowed, other compounds not).
    pub composite_sub_policy: Vec<PolicyConfig>,
    /// Budget shares; percents add up to at most 100.
    pub rate_allocation: Vec<RateAllocation>,
}

/// One share of a composite budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateAllocation {
    /// The sub-policy name.
    pub policy: String,
    /// Its percent of `max_total_spans_per_second`.
    pub percent: u32,
}

/// Where a policy sits, which limits the types it may have (as in the collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyLevel {
    /// Directly under `policies`: any type.
    Top,
    /// Under `composite_sub_policy`: leaf types and `and`.
    CompositeSub,
    /// Under `and`, `not` or `drop`: leaf types only.
    Sub,
}

impl TailSamplingConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.decision_wait.is_zero() {
            return Err(ConfigError::new(
                child(path, "decision_wait"),
                "must be positive",
            ));
        }
        if self.num_traces == 0 {
            return Err(ConfigError::new(
                child(path, "num_traces"),
                "must be at least 1",
            ));
        }
        let policies = child(path, "policies");
        if self.policies.is_empty() {
            return Err(ConfigError::new(
                policies,
                "at least one policy is required",
            ));
        }
        validate_policies(&policies, &self.policies, PolicyLevel::Top)
    }
}

fn validate_policies(
    path: &str,
    policies: &[PolicyConfig],
    level: PolicyLevel,
) -> Result<(), ConfigError> {
    let mut names = BTreeSet::new();
    for (i, policy) in policies.iter().enumerate() {
        let path = item(path, i);
        policy.validate(&path, level)?;
        if !names.insert(policy.name.as_str()) {
            return Err(ConfigError::new(
                child(&path, "name"),
                format!("duplicate policy name \"{}\"", policy.name),
            ));
        }
    }
    Ok(())
}

fn require(path: &str, key: &str, ok: bool, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(child(path, key), message))
    }
}

impl PolicyConfig {
    /// The blocks by name, and whether each is set.
    fn blocks(&self) -> [(PolicyType, bool); 13] {
        [
            (PolicyType::Latency, self.latency.is_some()),
            (
                PolicyType::NumericAttribute,
                self.numeric_attribute.is_some(),
            ),
            (PolicyType::Probabilistic, self.probabilistic.is_some()),
            (PolicyType::StatusCode, self.status_code.is_some()),
            (PolicyType::StringAttribute, self.string_attribute.is_some()),
            (PolicyType::TraceState, self.trace_state.is_some()),
            (PolicyType::RateLimiting, self.rate_limiting.is_some()),
            (PolicyType::SpanCount, self.span_count.is_some()),
            (
                PolicyType::BooleanAttribute,
                self.boolean_attribute.is_some(),
            ),
            (PolicyType::And, self.and.is_some()),
            (PolicyType::Not, self.not.is_some()),
            (PolicyType::Drop, self.drop.is_some()),
            (PolicyType::Composite, self.composite.is_some()),
        ]
    }

    fn validate(&self, path: &str, level: PolicyLevel) -> Result<(), ConfigError> {
        let ty = self.policy_type;
        if self.name.is_empty() {
            return Err(ConfigError::new(child(path, "name"), "required"));
        }
        let allowed = match level {
            PolicyLevel::Top => true,
            PolicyLevel::CompositeSub => !ty.is_compound() || ty == PolicyType::And,
            PolicyLevel::Sub => !ty.is_compound(),
        };
        if !allowed {
            return Err(ConfigError::new(
                child(path, "type"),
                format!("a {ty} policy cannot be nested here"),
            ));
        }
        for (block, set) in self.blocks() {
            if block == ty && !set && ty.has_block() {
                return Err(ConfigError::new(
                    child(path, block.as_str()),
                    format!("required for type {ty}"),
                ));
            }
            if block != ty && set {
                return Err(ConfigError::new(
                    child(path, block.as_str()),
                    format!("set, but the policy type is {ty}; remove it or change type"),
                ));
            }
        }
        let block = child(path, ty.as_str());
        let p = block.as_str();
        match ty {
            PolicyType::AlwaysSample => Ok(()),
            PolicyType::Latency => self.latency.as_ref().map_or(Ok(()), |c| {
                require(
                    p,
                    "upper_threshold_ms",
                    c.upper_threshold_ms == 0 || c.upper_threshold_ms >= c.threshold_ms,
                    "must be 0 (no upper bound) or at least threshold_ms",
                )
            }),
            PolicyType::NumericAttribute => self.numeric_attribute.as_ref().map_or(Ok(()), |c| {
                require(p, "key", !c.key.is_empty(), "required")?;
                require(
                    p,
                    "max_value",
                    c.min_value.is_some() || c.max_value.is_some(),
                    "set min_value, max_value or both",
                )?;
                require(
                    p,
                    "max_value",
                    match (c.min_value, c.max_value) {
                        (Some(min), Some(max)) => min <= max,
                        _ => true,
                    },
                    "must be at least min_value",
                )
            }),
            PolicyType::Probabilistic => self.probabilistic.as_ref().map_or(Ok(()), |c| {
                require(
                    p,
                    "sampling_percentage",
                    (0.0..=100.0).contains(&c.sampling_percentage),
                    "must be between 0 and 100",
                )
            }),
            PolicyType::StatusCode => self.status_code.as_ref().map_or(Ok(()), |c| {
                require(
                    p,
                    "status_codes",
                    !c.status_codes.is_empty(),
                    "list at least one of OK, ERROR, UNSET",
                )
            }),
            PolicyType::StringAttribute => self.string_attribute.as_ref().map_or(Ok(()), |c| {
                require(p, "key", !c.key.is_empty(), "required")?;
                require(p, "values", !c.values.is_empty(), "list at least one value")?;
                if c.enabled_regex_matching {
                    let values = child(p, "values");
                    for (i, v) in c.values.iter().enumerate() {
                        check_regex(&item(&values, i), v)?;
                    }
                }
                Ok(())
            }),
            PolicyType::TraceState => self.trace_state.as_ref().map_or(Ok(()), |c| {
                require(p, "key", !c.key.is_empty(), "required")?;
                require(p, "values", !c.values.is_empty(), "list at least one value")
            }),
            PolicyType::RateLimiting => self.rate_limiting.as_ref().map_or(Ok(()), |c| {
                require(
                    p,
                    "spans_per_second",
                    c.spans_per_second > 0,
                    "must be at least 1",
                )
            }),
            PolicyType::SpanCount => self.span_count.as_ref().map_or(Ok(()), |c| {
                require(
                    p,
                    "max_spans",
                    c.max_spans == 0 || c.max_spans >= c.min_spans,
                    "must be 0 (no upper bound) or at least min_spans",
                )
            }),
            PolicyType::BooleanAttribute => self
                .boolean_attribute
                .as_ref()
                .map_or(Ok(()), |c| require(p, "key", !c.key.is_empty(), "required")),
            PolicyType::And => self.and.as_ref().map_or(Ok(()), |c| {
                require(
                    p,
                    "and_sub_policy",
                    !c.and_sub_policy.is_empty(),
                    "list at least one policy",
                )?;
                validate_policies(
                    &child(p, "and_sub_policy"),
                    &c.and_sub_policy,
                    PolicyLevel::Sub,
                )
            }),
            PolicyType::Not => self
                .not
                .as_ref()
                .map_or(Ok(()), |c| match &c.not_sub_policy {
                    Some(sub) => sub.validate(&child(p, "not_sub_policy"), PolicyLevel::Sub),
                    None => Err(ConfigError::new(child(p, "not_sub_policy"), "required")),
                }),
            PolicyType::Drop => self.drop.as_ref().map_or(Ok(()), |c| {
                require(
                    p,
                    "drop_sub_policy",
                    !c.drop_sub_policy.is_empty(),
                    "list at least one policy",
                )?;
                validate_policies(
                    &child(p, "drop_sub_policy"),
                    &c.drop_sub_policy,
                    PolicyLevel::Sub,
                )
            }),
            PolicyType::Composite => self.composite.as_ref().map_or(Ok(()), |c| c.validate(p)),
        }
    }
}

impl CompositePolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "max_total_spans_per_second",
            self.max_total_spans_per_second > 0,
            "must be at least 1",
        )?;
        require(
            path,
            "composite_sub_policy",
            !self.composite_sub_policy.is_empty(),
            "list at least one policy",
        )?;
        validate_policies(
            &child(path, "composite_sub_policy"),
            &self.composite_sub_policy,
            PolicyLevel::CompositeSub,
        )?;
        let known: BTreeSet<&str> = self
            .composite_sub_policy
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let order = child(path, "policy_order");
        for (i, name) in self.policy_order.iter().enumerate() {
            if !known.contains(name.as_str()) {
                return Err(ConfigError::new(
                    item(&order, i),
                    format!("\"{name}\" is not a composite_sub_policy name"),
                ));
            }
        }
        let allocation = child(path, "rate_allocation");
        let mut total = 0u64;
        for (i, share) in self.rate_allocation.iter().enumerate() {
            if !known.contains(share.policy.as_str()) {
                return Err(ConfigError::new(
                    child(&item(&allocation, i), "policy"),
                    format!("\"{}\" is not a composite_sub_policy name", share.policy),
                ));
            }
            total += u64::from(share.percent);
        }
        require(
            path,
            "rate_allocation",
            total <= 100,
            &format!("percents add up to {total}; at most 100"),
        )
    }
}

fn check_regex(path: &str, pattern: &str) -> Result<(), ConfigError> {
    regex::Regex::new(pattern)
        .map(drop)
        .map_err(|e| ConfigError::new(path, format!("invalid regular expression: {e}")))
}

// ------------------------------------------------------------ cumulativetodelta

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
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
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
