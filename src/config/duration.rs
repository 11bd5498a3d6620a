//! Go-style durations (`5s`, `300ms`, `1m30s`, `1.5h`, `100us`, `0`), the
//! format every collector config uses for timeouts and intervals.
//!
//! Negative durations are refused: no setting in this config means anything
//! by them. A bare number other than `0` is refused too, because the collector
//! would read it as nanoseconds, which is never what a user meant.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The largest duration Go can represent (`math.MaxInt64` nanoseconds).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration \"{text}\": {reason}")]
pub struct DurationError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a Go duration string: a sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), or `0`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let invalid = |why: &str| DurationError {
        text: text.to_owned(),
        reason: why.to_owned(),
    };
    let mut rest = text.trim();
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match UNITS.iter().find(|(name, _)| *name == unit) {
            Some((_, scale)) => *scale,
            None if unit.is_empty() => {
                return Err(invalid("missing unit (use ns, us, ms, s, m or h)"));
            }
            None => {
                return Err(invalid(&format!(
                    "unknown unit \"{unit}\" (use ns, us, ms, s, m or h)"
                )));
            }
        };
        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| invalid("too large"))?
        };
        total = whole
            .checked_mul(scale)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| invalid("too large"))?;
        // Digits past nanosecond precision cannot change the result.
        let mut frac: u128 = 0;
        let mut denominator: u128 = 1;
        for d in frac_digits.bytes().take(18) {
            frac = frac * 10 + u128::from(d - b'0');
            denominator *= 10;
        }
        total += frac * scale / denominator;
        if total > MAX_NANOS {
            return Err(invalid("too large"));
        }
        rest = after;
    }
    let nanos = u64::try_from(total).map_err(|_| invalid("too large"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Serde `deserialize_with` for a [`Duration`] field written Go style.
pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    de.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl DurationVisitor {
    fn bare_number<E: de::Error>(shown: impl fmt::Display, is_zero: bool) -> Result<Duration, E> {
        if is_zero {
            Ok(Duration::ZERO)
        } else {
            Err(E::custom(format!(
                "duration {shown} has no unit; write it as e.g. {shown}s or {shown}ms"
            )))
        }
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 5s, 300ms or 1m30s")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Self::bare_number(v, v == 0)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Self::bare_number(v, v == 0)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Self::bare_number(v, v == 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("5s"), Ok(ms(5_000)));
        assert_eq!(parse("300ms"), Ok(ms(300)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("100µs"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse("+2s"), Ok(ms(2_000)));
        assert_eq!(parse("1.000000000001s"), Ok(ms(1_000)));
        assert_eq!(
            parse("2562047h47m16.854775807s"),
            Ok(Duration::from_nanos(i64::MAX as u64))
        );
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        assert_eq!(
            parse("5").map_err(|e| e.to_string()),
            Err("invalid duration \"5\": missing unit (use ns, us, ms, s, m or h)".into())
        );
        assert_eq!(
            parse("5x").map_err(|e| e.to_string()),
            Err("invalid duration \"5x\": unknown unit \"x\" (use ns, us, ms, s, m or h)".into())
        );
        assert_eq!(
            parse("-1s").map_err(|e| e.to_string()),
            Err("invalid duration \"-1s\": must not be negative".into())
        );
        assert_eq!(
            parse("").map_err(|e| e.to_string()),
            Err("invalid duration \"\": empty".into())
        );
        assert_eq!(
            parse("s").map_err(|e| e.to_string()),
            Err("invalid duration \"s\": expected a number".into())
        );
        assert_eq!(
            parse(".").map_err(|e| e.to_string()),
            Err("invalid duration \".\": expected a number".into())
        );
        assert_eq!(
            parse("2562048h").map_err(|e| e.to_string()),
            Err("invalid duration \"2562048h\": too large".into())
        );
        assert!(parse("99999999999999999999999999999999999999999h").is_err());
    }
}
