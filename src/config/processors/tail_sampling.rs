//! `tail_sampling` settings: the trace table's sizes and the sampling
//! policies, in the collector's shape (`{name, type: latency, latency: {...}}`,
//! with `and`, `not`, `drop` and `composite` nesting policies).
//!
//! Types and validation only; never builds the processor. A policy reads
//! into [`Policy`], one variant per type holding that type's settings block,
//! and each settings type validates itself. A type the collector has and
//! otlp-lb does not (`ottl_condition`, ...) is refused by name, never read
//! as something else.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::check_regex;
use crate::config::de::{Unsupported, null_as_default};
use crate::config::duration;
use crate::config::error::{ConfigError, child, item};

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

impl TailSamplingConfig {
    pub(super) fn validate(&self, path: &str) -> Result<(), ConfigError> {
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
        validate_policies(&policies, &self.policies, Level::Top)
    }
}

// ------------------------------------------------------------------ policies

/// A sampling policy: its name and its type with that type's settings.
///
/// In YAML, `name`, `type`, and the settings block named after the type:
/// `{name: slow, type: latency, latency: {threshold_ms: 500}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Unique among its siblings; labels the policy's metrics.
    pub name: String,
    /// The type, with its settings.
    pub policy: Policy,
    /// A settings block that does not fit `type` (missing, or another
    /// type's), found while reading. Serde cannot name the path of a key that
    /// is absent, so [`PolicyConfig::validate`] reports it with its path.
    misfit: Option<Misfit>,
}

/// A policy type with its settings block, one variant per `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// `always_sample`: every trace. Has no settings block.
    AlwaysSample,
    /// `latency`: by trace duration.
    Latency(LatencyPolicy),
    /// `numeric_attribute`: an integer attribute within a range.
    NumericAttribute(NumericAttributePolicy),
    /// `probabilistic`: a share of traces, by trace id hash.
    Probabilistic(ProbabilisticPolicy),
    /// `status_code`: a span status among a list.
    StatusCode(StatusCodePolicy),
    /// `string_attribute`: a string attribute among values or patterns.
    StringAttribute(StringAttributePolicy),
    /// `trace_state`: a W3C trace state key among values.
    TraceState(TraceStatePolicy),
    /// `rate_limiting`: up to a number of spans per second.
    RateLimiting(RateLimitingPolicy),
    /// `span_count`: by the number of spans.
    SpanCount(SpanCountPolicy),
    /// `boolean_attribute`: a boolean attribute with a value.
    BooleanAttribute(BooleanAttributePolicy),
    /// `and`: all sub-policies sample.
    And(AndPolicy),
    /// `not`: the sub-policy does not sample.
    Not(NotPolicy),
    /// `drop`: drop the trace when all sub-policies match.
    Drop(DropPolicy),
    /// `composite`: sub-policies sharing a spans-per-second budget.
    Composite(CompositePolicy),
}

/// The policy types, as written in `type`; each but `always_sample` is also
/// the key of its settings block.
const POLICY_TYPES: &[&str] = &[
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "trace_state",
    "rate_limiting",
    "span_count",
    "boolean_attribute",
    "and",
    "not",
    "drop",
    "composite",
];

/// Collector policy types otlp-lb refuses with a clear error, as a type and
/// as a settings block.
const UNSUPPORTED_POLICY_TYPES: &[&str] = &["ottl_condition", "bytes_limiting", "trace_flags"];

/// Every key of a policy, for the unknown-key message.
const POLICY_KEYS: &[&str] = &[
    "name",
    "type",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "trace_state",
    "rate_limiting",
    "span_count",
    "boolean_attribute",
    "and",
    "not",
    "drop",
    "composite",
    "ottl_condition",
    "bytes_limiting",
    "trace_flags",
];

impl Policy {
    /// The type as written in YAML; also the key of its settings block.
    pub fn type_name(&self) -> &'static str {
        match self {
            Policy::AlwaysSample => "always_sample",
            Policy::Latency(_) => "latency",
            Policy::NumericAttribute(_) => "numeric_attribute",
            Policy::Probabilistic(_) => "probabilistic",
            Policy::StatusCode(_) => "status_code",
            Policy::StringAttribute(_) => "string_attribute",
            Policy::TraceState(_) => "trace_state",
            Policy::RateLimiting(_) => "rate_limiting",
            Policy::SpanCount(_) => "span_count",
            Policy::BooleanAttribute(_) => "boolean_attribute",
            Policy::And(_) => "and",
            Policy::Not(_) => "not",
            Policy::Drop(_) => "drop",
            Policy::Composite(_) => "composite",
        }
    }

    /// Reads the settings block of `type_name` (a name from [`POLICY_TYPES`]);
    /// null means all defaults. `None` for a name that is not a policy type.
    fn read<'de, D: Deserializer<'de>>(type_name: &str, de: D) -> Option<Result<Policy, D::Error>> {
        Some(match type_name {
            "always_sample" => Ok(Policy::AlwaysSample),
            "latency" => null_as_default(de).map(Policy::Latency),
            "numeric_attribute" => null_as_default(de).map(Policy::NumericAttribute),
            "probabilistic" => null_as_default(de).map(Policy::Probabilistic),
            "status_code" => null_as_default(de).map(Policy::StatusCode),
            "string_attribute" => null_as_default(de).map(Policy::StringAttribute),
            "trace_state" => null_as_default(de).map(Policy::TraceState),
            "rate_limiting" => null_as_default(de).map(Policy::RateLimiting),
            "span_count" => null_as_default(de).map(Policy::SpanCount),
            "boolean_attribute" => null_as_default(de).map(Policy::BooleanAttribute),
            "and" => null_as_default(de).map(Policy::And),
            "not" => null_as_default(de).map(Policy::Not),
            "drop" => null_as_default(de).map(Policy::Drop),
            "composite" => null_as_default(de).map(Policy::Composite),
            _ => return None,
        })
    }

    /// The type `type_name` with default settings (an absent block).
    fn with_defaults(type_name: &'static str) -> Policy {
        let empty = de::value::UnitDeserializer::<de::value::Error>::new();
        match Policy::read(type_name, empty) {
            Some(Ok(policy)) => policy,
            // Unreachable for the names of POLICY_TYPES; validation refuses
            // the policy anyway, as its block is missing.
            _ => Policy::AlwaysSample,
        }
    }

    /// Whether the type holds sub-policies.
    fn is_compound(&self) -> bool {
        matches!(
            self,
            Policy::And(_) | Policy::Not(_) | Policy::Drop(_) | Policy::Composite(_)
        )
    }

    /// Checks the settings; `path` is the settings block's.
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        match self {
            Policy::AlwaysSample => Ok(()),
            Policy::Latency(c) => c.validate(path),
            Policy::NumericAttribute(c) => c.validate(path),
            Policy::Probabilistic(c) => c.validate(path),
            Policy::StatusCode(c) => c.validate(path),
            Policy::StringAttribute(c) => c.validate(path),
            Policy::TraceState(c) => c.validate(path),
            Policy::RateLimiting(c) => c.validate(path),
            Policy::SpanCount(c) => c.validate(path),
            Policy::BooleanAttribute(c) => c.validate(path),
            Policy::And(c) => c.validate(path),
            Policy::Not(c) => c.validate(path),
            Policy::Drop(c) => c.validate(path),
            Policy::Composite(c) => c.validate(path),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// A settings block that does not fit the policy's type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Misfit {
    /// The block's key.
    key: &'static str,
    /// What is wrong with it.
    message: String,
}

/// Where a policy sits, which limits the types it may have (as in the collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Directly under `policies`: any type.
    Top,
    /// Under `composite_sub_policy`: leaf types and `and`.
    CompositeSub,
    /// Under `and`, `not` or `drop`: leaf types only.
    Sub,
}

impl PolicyConfig {
    /// A policy named `name`.
    pub fn new(name: impl Into<String>, policy: Policy) -> PolicyConfig {
        PolicyConfig {
            name: name.into(),
            policy,
            misfit: None,
        }
    }

    fn validate(&self, path: &str, level: Level) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new(child(path, "name"), "required"));
        }
        let policy = &self.policy;
        let allowed = match level {
            Level::Top => true,
            Level::CompositeSub => !policy.is_compound() || matches!(policy, Policy::And(_)),
            Level::Sub => !policy.is_compound(),
        };
        if !allowed {
            return Err(ConfigError::new(
                child(path, "type"),
                format!("a {policy} policy cannot be nested here"),
            ));
        }
        if let Some(misfit) = &self.misfit {
            return Err(ConfigError::new(
                child(path, misfit.key),
                misfit.message.clone(),
            ));
        }
        policy.validate(&child(path, policy.type_name()))
    }
}

fn validate_policies(
    path: &str,
    policies: &[PolicyConfig],
    level: Level,
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

/// An error at `path.key` unless `ok`.
fn require(path: &str, key: &str, ok: bool, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(child(path, key), message))
    }
}

// ---------------------------------------------------------- reading a policy

impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<PolicyConfig, D::Error> {
        de.deserialize_map(PolicyVisitor)
    }
}

/// A key of a policy mapping. Unknown keys fail while the key is read, so the
/// error names the key's path, as `deny_unknown_fields` does.
enum PolicyKey {
    Name,
    Type,
    /// The settings block of a type (a name from [`POLICY_TYPES`]).
    Block(&'static str),
    /// A collector policy type otlp-lb does not support.
    Unsupported,
}

impl<'de> Deserialize<'de> for PolicyKey {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<PolicyKey, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = PolicyKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a policy key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<PolicyKey, E> {
                match key {
                    "name" => Ok(PolicyKey::Name),
                    "type" => Ok(PolicyKey::Type),
                    _ if UNSUPPORTED_POLICY_TYPES.contains(&key) => Ok(PolicyKey::Unsupported),
                    _ => match POLICY_TYPES
                        .iter()
                        .find(|&&t| t == key && t != "always_sample")
                    {
                        Some(&t) => Ok(PolicyKey::Block(t)),
                        None => Err(E::unknown_field(key, POLICY_KEYS)),
                    },
                }
            }
        }
        de.deserialize_identifier(KeyVisitor)
    }
}

/// The value of `type`: a name from [`POLICY_TYPES`].
struct TypeName(&'static str);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<TypeName, D::Error> {
        let name = String::deserialize(de)?;
        if let Some(&t) = POLICY_TYPES.iter().find(|&&t| t == name) {
            return Ok(TypeName(t));
        }
        let supported = POLICY_TYPES.join(", ");
        if UNSUPPORTED_POLICY_TYPES.contains(&name.as_str()) {
            return Err(de::Error::custom(format!(
                "policy type \"{name}\" is not supported by otlp-lb; supported: {supported}"
            )));
        }
        Err(de::Error::custom(format!(
            "unknown policy type \"{name}\"; supported: {supported}"
        )))
    }
}

/// Reads the settings block of one type.
struct BlockSeed(&'static str);

impl<'de> DeserializeSeed<'de> for BlockSeed {
    type Value = Policy;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Policy, D::Error> {
        Policy::read(self.0, de).unwrap_or_else(|| {
            Err(de::Error::custom(format!(
                "unknown policy type \"{}\"",
                self.0
            )))
        })
    }
}

struct PolicyVisitor;

impl<'de> Visitor<'de> for PolicyVisitor {
    type Value = PolicyConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a policy: name, type, and the settings of the type")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyConfig, A::Error> {
        let mut name: Option<String> = None;
        let mut type_name: Option<&'static str> = None;
        // Blocks in the order written; which one is the settings is known
        // only once `type` is, and `type` may come last.
        let mut blocks: Vec<Policy> = Vec::new();
        while let Some(key) = map.next_key::<PolicyKey>()? {
            match key {
                PolicyKey::Name => {
                    if name.is_some() {
                        return Err(de::Error::duplicate_field("name"));
                    }
                    name = Some(map.next_value()?);
                }
                PolicyKey::Type => {
                    if type_name.is_some() {
                        return Err(de::Error::duplicate_field("type"));
                    }
                    type_name = Some(map.next_value::<TypeName>()?.0);
                }
                PolicyKey::Block(t) => blocks.push(map.next_value_seed(BlockSeed(t))?),
                PolicyKey::Unsupported => {
                    map.next_value::<Unsupported>()?;
                }
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let type_name = type_name.ok_or_else(|| de::Error::missing_field("type"))?;
        let settings = blocks.iter().position(|b| b.type_name() == type_name);
        let policy = match settings {
            Some(i) => blocks.remove(i),
            None => Policy::with_defaults(type_name),
        };
        let misfit = if settings.is_none() && type_name != "always_sample" {
            Some(Misfit {
                key: type_name,
                message: format!("required for type {type_name}"),
            })
        } else {
            blocks.first().map(|stray| Misfit {
                key: stray.type_name(),
                message: format!(
                    "set, but the policy type is {type_name}; remove it or change type"
                ),
            })
        };
        Ok(PolicyConfig {
            name,
            policy,
            misfit,
        })
    }
}

// ------------------------------------------------------ the settings blocks

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

impl LatencyPolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "upper_threshold_ms",
            self.upper_threshold_ms == 0 || self.upper_threshold_ms >= self.threshold_ms,
            "must be 0 (no upper bound) or at least threshold_ms",
        )
    }
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

impl NumericAttributePolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(path, "key", !self.key.is_empty(), "required")?;
        require(
            path,
            "max_value",
            self.min_value.is_some() || self.max_value.is_some(),
            "set min_value, max_value or both",
        )?;
        require(
            path,
            "max_value",
            match (self.min_value, self.max_value) {
                (Some(min), Some(max)) => min <= max,
                _ => true,
            },
            "must be at least min_value",
        )
    }
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

impl ProbabilisticPolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "sampling_percentage",
            (0.0..=100.0).contains(&self.sampling_percentage),
            "must be between 0 and 100",
        )
    }
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

impl StatusCodePolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "status_codes",
            !self.status_codes.is_empty(),
            "list at least one of OK, ERROR, UNSET",
        )
    }
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

impl StringAttributePolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(path, "key", !self.key.is_empty(), "required")?;
        require(
            path,
            "values",
            !self.values.is_empty(),
            "list at least one value",
        )?;
        if self.enabled_regex_matching {
            let values = child(path, "values");
            for (i, v) in self.values.iter().enumerate() {
                check_regex(&item(&values, i), v)?;
            }
        }
        Ok(())
    }
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

impl TraceStatePolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(path, "key", !self.key.is_empty(), "required")?;
        require(
            path,
            "values",
            !self.values.is_empty(),
            "list at least one value",
        )
    }
}

/// `rate_limiting`: sample until `spans_per_second` is used up each second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitingPolicy {
    /// Spans per second (at least 1).
    pub spans_per_second: u64,
}

impl RateLimitingPolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "spans_per_second",
            self.spans_per_second > 0,
            "must be at least 1",
        )
    }
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

impl SpanCountPolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "max_spans",
            self.max_spans == 0 || self.max_spans >= self.min_spans,
            "must be 0 (no upper bound) or at least min_spans",
        )
    }
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

impl BooleanAttributePolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(path, "key", !self.key.is_empty(), "required")
    }
}

/// `and`: sample when every sub-policy samples.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AndPolicy {
    /// The sub-policies (at least one; no compound types).
    pub and_sub_policy: Vec<PolicyConfig>,
}

impl AndPolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "and_sub_policy",
            !self.and_sub_policy.is_empty(),
            "list at least one policy",
        )?;
        validate_policies(
            &child(path, "and_sub_policy"),
            &self.and_sub_policy,
            Level::Sub,
        )
    }
}

/// `not`: sample when the sub-policy does not.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotPolicy {
    /// The sub-policy (required; not a compound type).
    pub not_sub_policy: Option<Box<PolicyConfig>>,
}

impl NotPolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let sub = child(path, "not_sub_policy");
        match &self.not_sub_policy {
            Some(policy) => policy.validate(&sub, Level::Sub),
            None => Err(ConfigError::new(sub, "required")),
        }
    }
}

/// `drop`: drop the trace, whatever else samples it, when every sub-policy matches.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropPolicy {
    /// The sub-policies (at least one; no compound types).
    pub drop_sub_policy: Vec<PolicyConfig>,
}

impl DropPolicy {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        require(
            path,
            "drop_sub_policy",
            !self.drop_sub_policy.is_empty(),
            "list at least one policy",
        )?;
        validate_policies(
            &child(path, "drop_sub_policy"),
            &self.drop_sub_policy,
            Level::Sub,
        )
    }
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
            Level::CompositeSub,
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

/// One share of a composite budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateAllocation {
    /// The sub-policy name.
    pub policy: String,
    /// Its percent of `max_total_spans_per_second`.
    pub percent: u32,
}
