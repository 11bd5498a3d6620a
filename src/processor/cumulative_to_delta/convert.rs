//! The arithmetic: one cumulative point against its stream's previous one.
//!
//! Every `convert` leaves the baseline holding the point's own cumulative
//! value, whatever it decides: a reset or a layout change starts the stream
//! over from this point, as the collector does.

use crate::proto::{
    common::v1::KeyValue,
    metrics::v1::{
        ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
        exponential_histogram_data_point::Buckets, number_data_point::Value,
    },
};

/// `DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`.
const NO_RECORDED_VALUE: u32 = 1;

/// A stream's last cumulative value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Baseline {
    Int(i64),
    Double(f64),
    Histogram(HistogramBaseline),
    Exponential(ExponentialBaseline),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct HistogramBaseline {
    count: u64,
    /// `None` when the point had no usable sum (absent or NaN).
    sum: Option<f64>,
    buckets: Vec<u64>,
    bounds: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExponentialBaseline {
    count: u64,
    sum: Option<f64>,
    scale: i32,
    zero_count: u64,
    zero_threshold: f64,
    positive: Buckets,
    negative: Buckets,
}

/// What became of a point measured against its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The point now holds the increase since the baseline.
    Delta,
    /// A histogram whose counts went down: the counter restarted since the
    /// last point, so the point keeps its whole cumulative value, which all
    /// arrived after the last point (the collector emits it the same way).
    Restart,
    /// The value went down: drop the point.
    Reset,
    /// The histogram's buckets changed: drop the point.
    BucketMismatch,
}

/// A data point type the processor converts.
pub(super) trait CumulativePoint {
    fn attributes(&self) -> &[KeyValue];
    fn start(&self) -> u64;
    fn time(&self) -> u64;
    fn set_start(&mut self, start: u64);
    fn flags(&self) -> u32;

    /// The identity's value-type byte; `None` when the point holds no value.
    fn value_type(&self) -> Option<u8>;

    /// The baseline a stream starting at this point has.
    fn baseline(&self) -> Baseline;

    /// Replaces the point's cumulative value with its increase over
    /// `baseline`, and makes `baseline` the point's own value.
    fn convert(&mut self, baseline: &mut Baseline) -> Verdict;

    fn no_recorded_value(&self) -> bool {
        self.flags() & NO_RECORDED_VALUE != 0
    }

    /// A point forwarded as it is, outside any stream: a NaN sum, the
    /// staleness marker of Prometheus sources.
    fn passes_through(&self) -> bool {
        false
    }

    /// Drops what cannot be known for a delta's window (histogram min/max:
    /// the cumulative extremes may come from before it).
    fn clear_extremes(&mut self) {}
}

/// The accessors every OTLP data point type spells the same way.
macro_rules! point_fields {
    () => {
        fn attributes(&self) -> &[KeyValue] {
            &self.attributes
        }

        fn start(&self) -> u64 {
            self.start_time_unix_nano
        }

        fn time(&self) -> u64 {
            self.time_unix_nano
        }

        fn set_start(&mut self, start: u64) {
            self.start_time_unix_nano = start;
        }

        fn flags(&self) -> u32 {
            self.flags
        }
    };
}

impl CumulativePoint for NumberDataPoint {
    point_fields!();

    fn value_type(&self) -> Option<u8> {
        match self.value? {
            Value::AsInt(_) => Some(1),
            Value::AsDouble(_) => Some(2),
        }
    }

    fn passes_through(&self) -> bool {
        matches!(self.value, Some(Value::AsDouble(v)) if v.is_nan())
    }

    fn baseline(&self) -> Baseline {
        match self.value {
            Some(Value::AsDouble(v)) => Baseline::Double(v),
            Some(Value::AsInt(v)) => Baseline::Int(v),
            None => Baseline::Int(0),
        }
    }

    fn convert(&mut self, baseline: &mut Baseline) -> Verdict {
        let verdict = match (self.value.as_mut(), &mut *baseline) {
            (Some(Value::AsInt(value)), Baseline::Int(prev)) => {
                let prev = std::mem::replace(prev, *value);
                match value.checked_sub(prev) {
                    Some(delta) if *value >= prev => {
                        *value = delta;
                        Some(Verdict::Delta)
                    }
                    _ => Some(Verdict::Reset),
                }
            }
            (Some(Value::AsDouble(value)), Baseline::Double(prev)) => {
                let prev = std::mem::replace(prev, *value);
                if *value < prev {
                    Some(Verdict::Reset)
                } else {
                    *value -= prev;
                    Some(Verdict::Delta)
                }
            }
            // The value type is part of the identity, so this is a stream
            // of another type under a colliding key: start it over.
            _ => None,
        };
        verdict.unwrap_or_else(|| {
            *baseline = self.baseline();
            Verdict::Reset
        })
    }
}

impl CumulativePoint for HistogramDataPoint {
    point_fields!();

    fn value_type(&self) -> Option<u8> {
        Some(0)
    }

    fn baseline(&self) -> Baseline {
        Baseline::Histogram(HistogramBaseline {
            count: self.count,
            sum: known(self.sum),
            buckets: self.bucket_counts.clone(),
            bounds: self.explicit_bounds.clone(),
        })
    }

    fn convert(&mut self, baseline: &mut Baseline) -> Verdict {
        let Baseline::Histogram(prev) = baseline else {
            *baseline = self.baseline();
            return Verdict::Reset;
        };
        if self.bucket_counts.len() != prev.buckets.len()
            || !same_bits(&self.explicit_bounds, &prev.bounds)
        {
            *prev = HistogramBaseline {
                count: self.count,
                sum: known(self.sum),
                buckets: self.bucket_counts.clone(),
                bounds: self.explicit_bounds.clone(),
            };
            return Verdict::BucketMismatch;
        }
        let went_down = self.count < prev.count
            || self
                .bucket_counts
                .iter()
                .zip(&prev.buckets)
                .any(|(now, before)| now < before);
        if went_down {
            prev.count = self.count;
            prev.sum = known(self.sum);
            prev.buckets.copy_from_slice(&self.bucket_counts);
            return Verdict::Restart;
        }
        // Same layout, nothing went down: subtract in place, and keep the
        // cumulative counts as the new baseline without a second vector.
        for (now, before) in self.bucket_counts.iter_mut().zip(prev.buckets.iter_mut()) {
            let cumulative = *now;
            *now -= *before;
            *before = cumulative;
        }
        let count = self.count;
        self.count -= prev.count;
        prev.count = count;
        let sum = known(self.sum);
        self.sum = delta_sum(self.sum, prev.sum);
        prev.sum = sum;
        Verdict::Delta
    }

    fn clear_extremes(&mut self) {
        self.min = None;
        self.max = None;
    }
}

impl CumulativePoint for ExponentialHistogramDataPoint {
    point_fields!();

    fn value_type(&self) -> Option<u8> {
        Some(0)
    }

    fn baseline(&self) -> Baseline {
        Baseline::Exponential(ExponentialBaseline {
            count: self.count,
            sum: known(self.sum),
            scale: self.scale,
            zero_count: self.zero_count,
            zero_threshold: self.zero_threshold,
            positive: self.positive.clone().unwrap_or_default(),
            negative: self.negative.clone().unwrap_or_default(),
        })
    }

    fn convert(&mut self, baseline: &mut Baseline) -> Verdict {
        let Baseline::Exponential(prev) = std::mem::replace(baseline, self.baseline()) else {
            return Verdict::Reset;
        };
        // Within one stream the count and the zero threshold only grow and
        // the scale only shrinks; anything else is a restarted histogram.
        if self.count < prev.count
            || self.zero_threshold < prev.zero_threshold
            || self.scale > prev.scale
        {
            return Verdict::Reset;
        }
        let ExponentialBaseline {
            count,
            sum,
            scale,
            mut zero_count,
            zero_threshold,
            mut positive,
            mut negative,
        } = prev;
        // Bring the previous point to this point's layout: first its scale,
        // then its zero bucket, which swallows every bucket at or below the
        // new threshold.
        if self.scale < scale {
            let bits = self.scale.abs_diff(scale);
            downscale(&mut positive, bits);
            downscale(&mut negative, bits);
        }
        if self.zero_threshold > zero_threshold {
            let top = bucket_index(self.zero_threshold, self.scale);
            zero_count = zero_count
                .saturating_add(take_through(&mut positive, top))
                .saturating_add(take_through(&mut negative, top));
        }
        if zero_count > self.zero_count
            || !covers(self.positive.as_ref(), &positive)
            || !covers(self.negative.as_ref(), &negative)
        {
            return Verdict::Reset;
        }
        if let Some(buckets) = self.positive.as_mut() {
            subtract(buckets, &positive);
        }
        if let Some(buckets) = self.negative.as_mut() {
            subtract(buckets, &negative);
        }
        self.zero_count -= zero_count;
        self.count -= count;
        self.sum = delta_sum(self.sum, sum);
        Verdict::Delta
    }

    fn clear_extremes(&mut self) {
        self.min = None;
        self.max = None;
    }
}

/// A sum that can be subtracted from: present and not NaN.
fn known(sum: Option<f64>) -> Option<f64> {
    sum.filter(|s| !s.is_nan())
}

/// The sum of a delta: a NaN sum stays NaN (as in the collector); without a
/// known previous sum the increase is unknown and the sum is left out.
fn delta_sum(now: Option<f64>, before: Option<f64>) -> Option<f64> {
    match now {
        Some(s) if s.is_nan() => Some(s),
        Some(s) => before.map(|b| s - b),
        None => None,
    }
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Merges buckets into a scale `bits` lower: bucket `i` becomes `i >> bits`.
fn downscale(buckets: &mut Buckets, bits: u32) {
    if buckets.bucket_counts.is_empty() || bits == 0 {
        return;
    }
    let bits = bits.min(63);
    let first = i64::from(buckets.offset);
    let last = first + buckets.bucket_counts.len() as i64 - 1;
    let offset = first >> bits;
    let mut merged = vec![0u64; ((last >> bits) - offset + 1) as usize];
    for (i, &count) in buckets.bucket_counts.iter().enumerate() {
        let slot = &mut merged[(((first + i as i64) >> bits) - offset) as usize];
        *slot = slot.saturating_add(count);
    }
    // Shifting right moves toward zero's side of the range, so it fits.
    buckets.offset = offset as i32;
    buckets.bucket_counts = merged;
}

/// The index of the bucket holding `value` (> 0) at `scale`: bucket `i`
/// holds `(base^i, base^(i+1)]` with `base = 2^(2^-scale)`.
fn bucket_index(value: f64, scale: i32) -> i64 {
    (value.log2() * 2f64.powi(scale)).ceil() as i64 - 1
}

/// Empties the buckets with index `<= top`; returns what they held.
fn take_through(buckets: &mut Buckets, top: i64) -> u64 {
    let first = i64::from(buckets.offset);
    let mut taken = 0u64;
    for (i, count) in buckets.bucket_counts.iter_mut().enumerate() {
        if first + i as i64 <= top {
            taken = taken.saturating_add(std::mem::take(count));
        }
    }
    taken
}

/// Each non-empty bucket of `before` with the slot it has in `now`.
fn aligned<'a>(
    now_offset: i32,
    before: &'a Buckets,
) -> impl Iterator<Item = (Option<usize>, u64)> + 'a {
    let first = i64::from(before.offset) - i64::from(now_offset);
    before
        .bucket_counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(move |(i, &count)| (usize::try_from(first + i as i64).ok(), count))
}

/// True when every bucket of `before` is in `now` and no smaller there.
fn covers(now: Option<&Buckets>, before: &Buckets) -> bool {
    let offset = now.map_or(0, |b| b.offset);
    aligned(offset, before).all(|(slot, count)| {
        slot.and_then(|s| now?.bucket_counts.get(s))
            .is_some_and(|&have| have >= count)
    })
}

/// `now -= before`, bucket by bucket; [`covers`] must hold.
fn subtract(now: &mut Buckets, before: &Buckets) {
    for (slot, count) in aligned(now.offset, before) {
        if let Some(have) = slot.and_then(|s| now.bucket_counts.get_mut(s)) {
            *have = have.saturating_sub(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(offset: i32, counts: &[u64]) -> Buckets {
        Buckets {
            offset,
            bucket_counts: counts.to_vec(),
        }
    }

    #[test]
    fn downscale_merges_pairs_of_indices() {
        // Scale 1 indices 2..=5 become scale 0 indices 1, 1, 2, 2.
        let mut b = buckets(2, &[1, 2, 3, 4]);
        downscale(&mut b, 1);
        assert_eq!(b, buckets(1, &[3, 7]));
        // Negative indices floor: -3 >> 1 = -2, -2 >> 1 = -1, -1 >> 1 = -1.
        let mut b = buckets(-3, &[1, 1, 1]);
        downscale(&mut b, 1);
        assert_eq!(b, buckets(-2, &[1, 2]));
        // Two bits: indices 0..=4 become 0, 0, 0, 0, 1.
        let mut b = buckets(0, &[1, 1, 1, 1, 5]);
        downscale(&mut b, 2);
        assert_eq!(b, buckets(0, &[4, 5]));
    }

    #[test]
    fn bucket_index_on_and_between_boundaries() {
        // Scale 0: bucket i is (2^i, 2^(i+1)].
        assert_eq!(bucket_index(2.0, 0), 0);
        assert_eq!(bucket_index(3.0, 0), 1);
        assert_eq!(bucket_index(4.0, 0), 1);
        assert_eq!(bucket_index(0.5, 0), -2);
        // Scale 1: base sqrt 2; 2.0 = base^2 closes bucket 1.
        assert_eq!(bucket_index(2.0, 1), 1);
    }

    #[test]
    fn covers_and_subtract_align_by_index() {
        let before = buckets(3, &[4, 1]);
        let mut now = buckets(1, &[2, 0, 5, 3]);
        assert!(covers(Some(&now), &before));
        subtract(&mut now, &before);
        assert_eq!(now, buckets(1, &[2, 0, 1, 2]));
        // A bucket `now` does not reach, or holds less in.
        assert!(!covers(Some(&buckets(4, &[9])), &before));
        assert!(!covers(Some(&buckets(3, &[3, 9])), &before));
        assert!(!covers(None, &before));
        assert!(covers(None, &buckets(0, &[0, 0])));
    }
}
