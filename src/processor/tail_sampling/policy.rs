//! Sampling policies: compiled from their config once, evaluated against a
//! whole buffered trace, each returning the collector's per-policy decision.
//!
//! The rate-limited policies (`rate_limiting`, `composite`) keep per-second
//! counters, so evaluation takes `&mut self` and the current second.

use std::collections::{HashMap, HashSet};

use regex::RegexSet;

use super::trace::{Trace, TraceId};
use crate::{
    config::processors::{
        CompositePolicy, PolicyConfig, PolicyType, StatusCodeName, StringAttributePolicy,
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

/// A compiled policy.
pub(super) enum Policy {
    AlwaysSample,
    Latency {
        lower_ms: u64,
        upper_ms: Option<u64>,
    },
    StatusCode(Vec<i32>),
    StringAttribute {
        key: String,
        matcher: StringMatcher,
        invert: bool,
    },
    NumericAttribute {
        key: String,
        min: i64,
        max: i64,
        invert: bool,
    },
    BooleanAttribute {
        key: String,
        value: bool,
        invert: bool,
    },
    Probabilistic {
        salt: String,
        /// Sampled when the hash is at most this; `None` samples nothing.
        threshold: Option<u64>,
    },
    SpanCount {
        min: u64,
        max: Option<u64>,
    },
    TraceState {
        key: String,
        values: HashSet<String>,
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
        cache_max_size: usize,
    },
}

impl StringMatcher {
    fn new(c: &StringAttributePolicy) -> Result<StringMatcher, String> {
        if !c.enabled_regex_matching {
            return Ok(StringMatcher::Exact(c.values.iter().cloned().collect()));
        }
        let set =
            RegexSet::new(&c.values).map_err(|e| format!("invalid regular expression: {e}"))?;
        Ok(StringMatcher::Regex {
            set,
            cache: HashMap::new(),
            cache_max_size: c.cache_max_size,
        })
    }

    fn matches(&mut self, value: &str) -> bool {
        match self {
            StringMatcher::Exact(values) => values.contains(value),
            StringMatcher::Regex {
                set,
                cache,
                cache_max_size,
            } => {
                if let Some(&hit) = cache.get(value) {
                    return hit;
                }
                let hit = set.is_match(value);
                if *cache_max_size > 0 {
                    // Bounded without bookkeeping: start over when full.
                    if cache.len() >= *cache_max_size {
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

fn missing(c: &PolicyConfig) -> String {
    format!(
        "policy \"{}\": the {} block is missing",
        c.name, c.policy_type
    )
}

fn status_code(name: StatusCodeName) -> i32 {
    match name {
        StatusCodeName::Ok => StatusCode::Ok as i32,
        StatusCodeName::Error => StatusCode::Error as i32,
        StatusCodeName::Unset => StatusCode::Unset as i32,
    }
}

impl Policy {
    /// Compiles a validated policy config.
    pub(super) fn new(c: &PolicyConfig) -> Result<Policy, String> {
        Ok(match c.policy_type {
            PolicyType::AlwaysSample => Policy::AlwaysSample,
            PolicyType::Latency => {
                let l = c.latency.as_ref().ok_or_else(|| missing(c))?;
                Policy::Latency {
                    lower_ms: l.threshold_ms,
                    upper_ms: (l.upper_threshold_ms > 0).then_some(l.upper_threshold_ms),
                }
            }
            PolicyType::StatusCode => {
                let s = c.status_code.as_ref().ok_or_else(|| missing(c))?;
                Policy::StatusCode(s.status_codes.iter().copied().map(status_code).collect())
            }
            PolicyType::StringAttribute => {
                let s = c.string_attribute.as_ref().ok_or_else(|| missing(c))?;
                Policy::StringAttribute {
                    key: s.key.clone(),
                    matcher: StringMatcher::new(s)
                        .map_err(|e| format!("policy \"{}\": {e}", c.name))?,
                    invert: s.invert_match,
                }
            }
            PolicyType::NumericAttribute => {
                let n = c.numeric_attribute.as_ref().ok_or_else(|| missing(c))?;
                Policy::NumericAttribute {
                    key: n.key.clone(),
                    min: n.min_value.unwrap_or(i64::MIN),
                    max: n.max_value.unwrap_or(i64::MAX),
                    invert: n.invert_match,
                }
            }
            PolicyType::BooleanAttribute => {
                let b = c.boolean_attribute.as_ref().ok_or_else(|| missing(c))?;
                Policy::BooleanAttribute {
                    key: b.key.clone(),
                    value: b.value,
                    invert: b.invert_match,
                }
            }
            PolicyType::Probabilistic => {
                let p = c.probabilistic.as_ref().ok_or_else(|| missing(c))?;
                let salt = if p.hash_salt.is_empty() {
                    DEFAULT_HASH_SALT.to_string()
                } else {
                    p.hash_salt.clone()
                };
                Policy::Probabilistic {
                    salt,
                    threshold: threshold(p.sampling_percentage),
                }
            }
            PolicyType::SpanCount => {
                let s = c.span_count.as_ref().ok_or_else(|| missing(c))?;
                Policy::SpanCount {
                    min: u64::from(s.min_spans),
                    max: (s.max_spans > 0).then_some(u64::from(s.max_spans)),
                }
            }
            PolicyType::TraceState => {
                let t = c.trace_state.as_ref().ok_or_else(|| missing(c))?;
                Policy::TraceState {
                    key: t.key.clone(),
                    values: t.values.iter().cloned().collect(),
                }
            }
            PolicyType::RateLimiting => {
                let r = c.rate_limiting.as_ref().ok_or_else(|| missing(c))?;
                Policy::RateLimiting(RateBudget::new(r.spans_per_second))
            }
            PolicyType::And => {
                let a = c.and.as_ref().ok_or_else(|| missing(c))?;
                Policy::And(compile(&a.and_sub_policy)?)
            }
            PolicyType::Not => {
                let sub = c
                    .not
                    .as_ref()
                    .and_then(|n| n.not_sub_policy.as_ref())
                    .ok_or_else(|| missing(c))?;
                Policy::Not(Box::new(Policy::new(sub)?))
            }
            PolicyType::Drop => {
                let d = c.drop.as_ref().ok_or_else(|| missing(c))?;
                Policy::Drop(compile(&d.drop_sub_policy)?)
            }
            PolicyType::Composite => {
                let comp = c.composite.as_ref().ok_or_else(|| missing(c))?;
                Policy::Composite(composite(comp)?)
            }
        })
    }

    /// This policy's verdict on the trace in `cx`.
    pub(super) fn evaluate(&mut self, cx: &Context<'_>) -> Decision {
        match self {
            Policy::AlwaysSample => Decision::Sampled,
            Policy::Latency { lower_ms, upper_ms } => {
                let ms = duration_ms(cx.trace);
                Decision::from_match(ms >= *lower_ms && upper_ms.is_none_or(|u| ms <= u))
            }
            Policy::StatusCode(codes) => Decision::from_match(cx.trace.spans().any(|s| {
                let code = s
                    .status
                    .as_ref()
                    .map_or(StatusCode::Unset as i32, |s| s.code);
                codes.contains(&code)
            })),
            Policy::StringAttribute {
                key,
                matcher,
                invert,
            } => {
                let matched = any_attribute(cx.trace, key, |v| match v {
                    Value::StringValue(s) => matcher.matches(s),
                    _ => false,
                });
                Decision::attribute(matched, *invert)
            }
            Policy::NumericAttribute {
                key,
                min,
                max,
                invert,
            } => {
                let matched = any_attribute(cx.trace, key, |v| match v {
                    Value::IntValue(i) => (*min..=*max).contains(i),
                    _ => false,
                });
                Decision::attribute(matched, *invert)
            }
            Policy::BooleanAttribute { key, value, invert } => {
                let matched = any_attribute(cx.trace, key, |v| *v == Value::BoolValue(*value));
                Decision::attribute(matched, *invert)
            }
            Policy::Probabilistic { salt, threshold } => Decision::from_match(
                threshold.is_some_and(|t| fnv1a64(salt.as_bytes(), cx.id) <= t),
            ),
            Policy::SpanCount { min, max } => {
                let n = cx.trace.span_count;
                Decision::from_match(n >= *min && max.is_none_or(|m| n <= m))
            }
            Policy::TraceState { key, values } => Decision::from_match(cx.trace.spans().any(|s| {
                trace_state_value(&s.trace_state, key).is_some_and(|v| values.contains(v))
            })),
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

fn compile(configs: &[PolicyConfig]) -> Result<Vec<Policy>, String> {
    configs.iter().map(Policy::new).collect()
}

/// The sub-policies of a composite in evaluation order, each with its share
/// of the budget: `percent` of the total when allocated; an equal share when
/// allocated 0 percent or when `rate_allocation` is empty; nothing when other
/// policies are allocated and this one is not (as in the collector). An empty
/// `policy_order` means the order of `composite_sub_policy`.
fn composite(c: &CompositePolicy) -> Result<Vec<(Policy, RateBudget)>, String> {
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
        .map(|name| {
            let config = c
                .composite_sub_policy
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| format!("policy_order: \"{name}\" is not a composite_sub_policy"))?;
            let share = if c.rate_allocation.is_empty() {
                equal
            } else {
                match c.rate_allocation.iter().find(|a| a.policy == name) {
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
