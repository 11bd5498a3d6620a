//! Sampling policies: compiled from their config once, evaluated against a
//! whole buffered trace, each returning the collector's per-policy decision.
//!
//! Policies evaluate on their config types as they are; the only state added
//! is what a type needs to remember (compiled patterns, the rate-limited
//! policies' per-second counters), so evaluation takes `&mut self` and the
//! current second. A policy never looks at anything but the trace it is
//! given and the clock.

use std::collections::{HashMap, HashSet};

use regex::RegexSet;

use super::trace::{Trace, TraceId};
use crate::{
    config::processors::{
        self as config, CompositePolicy, PolicyConfig, StatusCodeName, StringAttributePolicy,
    },
    proto::{
        common::v1::{KeyValue, any_value::Value},
        trace::v1::status::StatusCode,
    },
};

/// One policy's verdict on one trace, as in the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// The policy samples the trace.
    Sampled,
    /// The policy does not sample the trace.
    NotSampled,
    /// An `invert_match` policy found no match: counts as a sample.
    InvertSampled,
    /// An `invert_match` policy found a match: the trace is not sampled,
    /// whatever other policies say (the collector's inverted-not-sample).
    InvertNotSampled,
    /// A `drop` policy matched: the trace is not sampled, whatever else says.
    Dropped,
}

impl Decision {
    /// Whether this verdict, on its own, keeps the trace.
    pub(super) fn samples(self) -> bool {
        matches!(self, Decision::Sampled | Decision::InvertSampled)
    }

    fn from_match(matched: bool) -> Decision {
        if matched {
            Decision::Sampled
        } else {
            Decision::NotSampled
        }
    }

    /// The verdict of an attribute policy, honouring `invert_match`.
    fn attribute(matched: bool, invert: bool) -> Decision {
        match (invert, matched) {
            (false, m) => Decision::from_match(m),
            (true, true) => Decision::InvertNotSampled,
            (true, false) => Decision::InvertSampled,
        }
    }
}

/// The collector's probabilistic salt when `hash_salt` is empty, so a trace
/// gets the same verdict here as in a collector with default settings.
const DEFAULT_HASH_SALT: &str = "default-hash-seed";

/// Why a policy could not be compiled from its (validated) config.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A `string_attribute` pattern is not a regular expression.
    #[error("policy \"{policy}\": invalid regular expression: {source}")]
    Regex {
        /// The policy's name.
        policy: String,
        /// What the regex compiler said.
        source: regex::Error,
    },
    /// A `not` policy without its `not_sub_policy`.
    #[error("policy \"{policy}\": not_sub_policy is missing")]
    MissingSubPolicy {
        /// The policy's name.
        policy: String,
    },
    /// A composite's `policy_order` names no sub-policy.
    #[error(
        "policy \"{policy}\": policy_order names \"{name}\", which is not a composite_sub_policy"
    )]
    UnknownSubPolicy {
        /// The composite's name.
        policy: String,
        /// The name in `policy_order`.
        name: String,
    },
}

/// A policy ready to evaluate: the config's settings as they are, with the
/// state some types need beside them (compiled patterns, rate budgets, and
/// the sub-policies of compound types).
pub(super) enum Policy {
    /// A policy whose verdict depends on the trace alone, evaluated on its
    /// settings (never a compound type, `string_attribute` or
    /// `rate_limiting`, which have their own variants).
    Stateless(config::Policy),
    StringAttribute {
        config: StringAttributePolicy,
        matcher: StringMatcher,
    },
    RateLimiting(RateBudget),
    And(Vec<Policy>),
    Not(Box<Policy>),
    Drop(Vec<Policy>),
    Composite(Vec<(Policy, RateBudget)>),
}

/// Exact values, or patterns with a bounded cache of past results.
pub(super) enum StringMatcher {
    Exact(HashSet<String>),
    Regex {
        set: RegexSet,
        cache: HashMap<String, bool>,
    },
}

impl StringMatcher {
    fn new(name: &str, c: &StringAttributePolicy) -> Result<StringMatcher, PolicyError> {
        if !c.enabled_regex_matching {
            return Ok(StringMatcher::Exact(c.values.iter().cloned().collect()));
        }
        let set = RegexSet::new(&c.values).map_err(|source| PolicyError::Regex {
            policy: name.to_string(),
            source,
        })?;
        Ok(StringMatcher::Regex {
            set,
            cache: HashMap::new(),
        })
    }

    /// Whether `value` is one of the values; `cache_max_size` bounds the
    /// memory of pattern results.
    fn matches(&mut self, value: &str, cache_max_size: usize) -> bool {
        match self {
            StringMatcher::Exact(values) => values.contains(value),
            StringMatcher::Regex { set, cache } => {
                if let Some(&hit) = cache.get(value) {
                    return hit;
                }
                let hit = set.is_match(value);
                if cache_max_size > 0 {
                    // Bounded without bookkeeping: start over when full.
                    if cache.len() >= cache_max_size {
                        cache.clear();
                    }
                    cache.insert(value.to_string(), hit);
                }
                hit
            }
        }
    }
}

/// A spans-per-second budget, renewed at each new second.
pub(super) struct RateBudget {
    per_second: u64,
    second: u64,
    used: u64,
}

impl RateBudget {
    fn new(per_second: u64) -> RateBudget {
        RateBudget {
            per_second,
            second: 0,
            used: 0,
        }
    }

    /// Takes `spans` from this second's budget if all of them fit.
    fn take(&mut self, spans: u64, second: u64) -> bool {
        if self.second != second {
            self.second = second;
            self.used = 0;
        }
        // The whole budget is usable (the collector's rate_limiting stops one
        // span short of it).
        if self.used + spans <= self.per_second {
            self.used += spans;
            true
        } else {
            false
        }
    }
}

/// What a policy needs to know about the moment it decides.
pub(super) struct Context<'a> {
    pub(super) id: &'a TraceId,
    pub(super) trace: &'a Trace,
    /// Whole seconds since the processor started (rate budgets).
    pub(super) second: u64,
}

impl Policy {
    /// Compiles a validated policy config.
    pub(super) fn new(c: &PolicyConfig) -> Result<Policy, PolicyError> {
        Ok(match &c.policy {
            config::Policy::StringAttribute(s) => Policy::StringAttribute {
                config: s.clone(),
                matcher: StringMatcher::new(&c.name, s)?,
            },
            config::Policy::RateLimiting(r) => {
                Policy::RateLimiting(RateBudget::new(r.spans_per_second))
            }
            config::Policy::And(a) => Policy::And(compile(&a.and_sub_policy)?),
            config::Policy::Not(n) => {
                let sub =
                    n.not_sub_policy
                        .as_ref()
                        .ok_or_else(|| PolicyError::MissingSubPolicy {
                            policy: c.name.clone(),
                        })?;
                Policy::Not(Box::new(Policy::new(sub)?))
            }
            config::Policy::Drop(d) => Policy::Drop(compile(&d.drop_sub_policy)?),
            config::Policy::Composite(comp) => Policy::Composite(composite(&c.name, comp)?),
            stateless => Policy::Stateless(stateless.clone()),
        })
    }

    /// This policy's verdict on the trace in `cx`.
    pub(super) fn evaluate(&mut self, cx: &Context<'_>) -> Decision {
        match self {
            Policy::Stateless(c) => stateless(c, cx),
            Policy::StringAttribute { config, matcher } => {
                let matched = any_attribute(cx.trace, &config.key, |v| match v {
                    Value::StringValue(s) => matcher.matches(s, config.cache_max_size),
                    _ => false,
                });
                Decision::attribute(matched, config.invert_match)
            }
            Policy::RateLimiting(budget) => {
                Decision::from_match(budget.take(cx.trace.span_count, cx.second))
            }
            Policy::And(subs) => {
                Decision::from_match(subs.iter_mut().all(|p| p.evaluate(cx).samples()))
            }
            Policy::Not(sub) => Decision::from_match(!sub.evaluate(cx).samples()),
            Policy::Drop(subs) => {
                if subs.iter_mut().all(|p| p.evaluate(cx).samples()) {
                    Decision::Dropped
                } else {
                    Decision::NotSampled
                }
            }
            Policy::Composite(subs) => {
                // In order, the first sub-policy that samples and still has
                // budget for the whole trace takes it; one without budget
                // passes the trace on to the next.
                for (policy, budget) in subs.iter_mut() {
                    if policy.evaluate(cx).samples() && budget.take(cx.trace.span_count, cx.second)
                    {
                        return Decision::Sampled;
                    }
                }
                Decision::NotSampled
            }
        }
    }
}

/// The verdict of a policy that needs nothing but its settings and the trace.
fn stateless(policy: &config::Policy, cx: &Context<'_>) -> Decision {
    let trace = cx.trace;
    match policy {
        config::Policy::AlwaysSample => Decision::Sampled,
        config::Policy::Latency(c) => {
            let ms = duration_ms(trace);
            let upper = c.upper_threshold_ms;
            Decision::from_match(ms >= c.threshold_ms && (upper == 0 || ms <= upper))
        }
        config::Policy::StatusCode(c) => Decision::from_match(trace.spans().any(|s| {
            let code = s
                .status
                .as_ref()
                .map_or(StatusCode::Unset as i32, |s| s.code);
            c.status_codes.iter().any(|&name| status_code(name) == code)
        })),
        config::Policy::NumericAttribute(c) => {
            let range = c.min_value.unwrap_or(i64::MIN)..=c.max_value.unwrap_or(i64::MAX);
            let matched = any_attribute(trace, &c.key, |v| match v {
                Value::IntValue(i) => range.contains(i),
                _ => false,
            });
            Decision::attribute(matched, c.invert_match)
        }
        config::Policy::BooleanAttribute(c) => {
            let matched = any_attribute(trace, &c.key, |v| *v == Value::BoolValue(c.value));
            Decision::attribute(matched, c.invert_match)
        }
        config::Policy::Probabilistic(c) => {
            let salt = if c.hash_salt.is_empty() {
                DEFAULT_HASH_SALT
            } else {
                c.hash_salt.as_str()
            };
            Decision::from_match(
                threshold(c.sampling_percentage)
                    .is_some_and(|t| fnv1a64(salt.as_bytes(), cx.id) <= t),
            )
        }
        config::Policy::SpanCount(c) => {
            let n = trace.span_count;
            let max = u64::from(c.max_spans);
            Decision::from_match(n >= u64::from(c.min_spans) && (max == 0 || n <= max))
        }
        config::Policy::TraceState(c) => Decision::from_match(trace.spans().any(|s| {
            trace_state_value(&s.trace_state, &c.key)
                .is_some_and(|v| c.values.iter().any(|x| x == v))
        })),
        // Compiled into their own variants by `Policy::new`.
        config::Policy::StringAttribute(_)
        | config::Policy::RateLimiting(_)
        | config::Policy::And(_)
        | config::Policy::Not(_)
        | config::Policy::Drop(_)
        | config::Policy::Composite(_) => Decision::NotSampled,
    }
}

fn status_code(name: StatusCodeName) -> i32 {
    match name {
        StatusCodeName::Ok => StatusCode::Ok as i32,
        StatusCodeName::Error => StatusCode::Error as i32,
        StatusCodeName::Unset => StatusCode::Unset as i32,
    }
}

fn compile(configs: &[PolicyConfig]) -> Result<Vec<Policy>, PolicyError> {
    configs.iter().map(Policy::new).collect()
}

/// The sub-policies of composite `name` in evaluation order, each with its
/// share of the budget: `percent` of the total when allocated; an equal share
/// when allocated 0 percent or when `rate_allocation` is empty; nothing when
/// other policies are allocated and this one is not (as in the collector).
/// An empty `policy_order` means the order of `composite_sub_policy`.
fn composite(name: &str, c: &CompositePolicy) -> Result<Vec<(Policy, RateBudget)>, PolicyError> {
    let total = c.max_total_spans_per_second;
    let equal = total / c.composite_sub_policy.len().max(1) as u64;
    let order: Vec<&str> = if c.policy_order.is_empty() {
        c.composite_sub_policy
            .iter()
            .map(|p| p.name.as_str())
            .collect()
    } else {
        c.policy_order.iter().map(String::as_str).collect()
    };
    order
        .into_iter()
        .map(|sub| {
            let config = c
                .composite_sub_policy
                .iter()
                .find(|p| p.name == sub)
                .ok_or_else(|| PolicyError::UnknownSubPolicy {
                    policy: name.to_string(),
                    name: sub.to_string(),
                })?;
            let share = if c.rate_allocation.is_empty() {
                equal
            } else {
                match c.rate_allocation.iter().find(|a| a.policy == sub) {
                    Some(a) if a.percent > 0 => total * u64::from(a.percent) / 100,
                    Some(_) => equal,
                    None => 0,
                }
            };
            Ok((Policy::new(config)?, RateBudget::new(share)))
        })
        .collect()
}

/// The hash threshold of a sampling percentage, as the collector computes it.
fn threshold(percentage: f64) -> Option<u64> {
    if percentage <= 0.0 {
        return None;
    }
    // Saturating float-to-int conversion: 100% maps to u64::MAX.
    Some((percentage / 100.0 * u64::MAX as f64) as u64)
}

/// 64-bit FNV-1a over the salt then the trace id: the collector's hash, so a
/// trace gets the same verdict on every agent and in a collector.
fn fnv1a64(salt: &[u8], id: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    salt.iter()
        .chain(id.iter())
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Trace duration in whole milliseconds: latest end minus earliest start.
fn duration_ms(trace: &Trace) -> u64 {
    let start = trace.spans().map(|s| s.start_time_unix_nano).min();
    let end = trace.spans().map(|s| s.end_time_unix_nano).max();
    match (start, end) {
        (Some(start), Some(end)) => end.saturating_sub(start) / 1_000_000,
        _ => 0,
    }
}

/// Whether any span, or the resource of any span, has `key` with a value
/// for which `pred` holds.
fn any_attribute(trace: &Trace, key: &str, mut pred: impl FnMut(&Value) -> bool) -> bool {
    let mut check = |attrs: &[KeyValue]| {
        attrs
            .iter()
            .filter(|kv| kv.key == key)
            .filter_map(|kv| kv.value.as_ref()?.value.as_ref())
            .any(&mut pred)
    };
    trace
        .groups
        .iter()
        .any(|g| check(g.resource.attributes()) || g.spans.iter().any(|s| check(&s.attributes)))
}

/// The value of `key` in a W3C `tracestate` (`k1=v1,k2=v2`).
fn trace_state_value<'a>(state: &'a str, key: &str) -> Option<&'a str> {
    state
        .split(',')
        .filter_map(|member| member.trim().split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        assert_eq!(fnv1a64(b"", b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a", b""), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foo", b"bar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn trace_state_lookup() {
        assert_eq!(trace_state_value("a=1, b=2", "b"), Some("2"));
        assert_eq!(trace_state_value("a=1,b=2", "a"), Some("1"));
        assert_eq!(trace_state_value("a=1", "c"), None);
        assert_eq!(trace_state_value("", "a"), None);
    }

    #[test]
    fn thresholds() {
        assert_eq!(threshold(0.0), None);
        assert_eq!(threshold(100.0), Some(u64::MAX));
        assert_eq!(threshold(50.0), Some(1u64 << 63));
    }
}
