//! What a `send` run measured: counters, the latency histogram, and the
//! summary printed as a table and written as JSON.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency histogram in microseconds, 1 us to 10 minutes, 3 significant
/// digits.
// The bounds are constants that hdrhistogram accepts (every test that
// makes a `Tally` checks it); a panic here is a programming error.
#[allow(clippy::expect_used)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds")
}

/// What one sender task counted.
#[derive(Debug)]
pub struct Tally {
    /// Latency of every answered request (success or error status), in us.
    pub latency: Histogram<u64>,
    /// Requests answered with success.
    pub ok: u64,
    /// Items in those requests.
    pub items: u64,
    /// Request bytes in those requests.
    pub bytes: u64,
    /// Failed requests by status (`grpc:Unavailable`, `http:503`,
    /// `transport`, ...).
    pub errors: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency: histogram(),
            ok: 0,
            items: 0,
            bytes: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Tally {
    /// Adds another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.items += other.items;
        self.bytes += other.bytes;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    /// Records one answered request.
    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, 600_000_000);
        let _ = self.latency.record(us);
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Reads the percentiles of a histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The summary of one `send` run, as written by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Where the requests went.
    pub target: String,
    /// `grpc` or `http-protobuf`.
    pub protocol: String,
    /// `traces`, `metrics` or `logs`.
    pub signal: String,
    /// `closed-loop` or `open-loop R/s`.
    pub mode: String,
    /// Measured wall time, seconds (after the warm-up).
    pub seconds: f64,
    /// Requests that succeeded.
    pub requests_ok: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// Items (spans, points, log records) in successful requests.
    pub items_ok: u64,
    /// Request bytes in successful requests.
    pub bytes_ok: u64,
    /// Successful requests per second.
    pub requests_per_s: f64,
    /// Items per second.
    pub items_per_s: f64,
    /// Request bytes per second.
    pub bytes_per_s: f64,
    /// Failed requests by status.
    pub errors: BTreeMap<String, u64>,
    /// Latency of answered requests, microseconds. In open-loop runs it is
    /// measured from each request's scheduled send time, so a stalled target
    /// shows up as latency rather than as a lower rate.
    pub latency_us: Percentiles,
}

impl Summary {
    /// Builds a summary from the merged tally of a run.
    pub fn new(
        target: &str,
        protocol: &str,
        signal: &str,
        mode: String,
        elapsed: Duration,
        t: &Tally,
    ) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            target: target.to_string(),
            protocol: protocol.to_string(),
            signal: signal.to_string(),
            mode,
            seconds: secs,
            requests_ok: t.ok,
            requests_failed: t.errors.values().sum(),
            items_ok: t.items,
            bytes_ok: t.bytes,
            requests_per_s: t.ok as f64 / secs,
            items_per_s: t.items as f64 / secs,
            bytes_per_s: t.bytes as f64 / secs,
            errors: t.errors.clone(),
            latency_us: Percentiles::of(&t.latency),
        }
    }

    /// The summary as an aligned text table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("target".into(), self.target.clone()),
            (
                "protocol / signal".into(),
                format!("{} / {}", self.protocol, self.signal),
            ),
            ("mode".into(), self.mode.clone()),
            ("duration".into(), format!("{:.2} s", self.seconds)),
            (
                "requests".into(),
                format!(
                    "{} ok, {} failed ({:.1}/s)",
                    self.requests_ok, self.requests_failed, self.requests_per_s
                ),
            ),
            (
                "items".into(),
                format!("{} ({}/s)", self.items_ok, si(self.items_per_s)),
            ),
            (
                "bytes".into(),
                format!("{} ({}B/s)", self.bytes_ok, si(self.bytes_per_s)),
            ),
        ];
        for (status, n) in &self.errors {
            rows.push((format!("errors {status}"), n.to_string()));
        }
        let l = &self.latency_us;
        rows.push((
            "latency p50/p90/p99".into(),
            format!("{} / {} / {}", ms(l.p50), ms(l.p90), ms(l.p99)),
        ));
        rows.push((
            "latency p99.9/max".into(),
            format!("{} / {}", ms(l.p99_9), ms(l.max)),
        ));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// Microseconds as milliseconds with three decimals.
pub fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// A number with an SI suffix (k, M, G).
pub fn si(v: f64) -> String {
    let (d, s) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    format!("{:.2}{s}", v / d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recorded_latencies() {
        let mut t = Tally::default();
        for us in 1..=1000u64 {
            t.record(Duration::from_micros(us));
        }
        let p = Percentiles::of(&t.latency);
        assert_eq!(p.p50, 500);
        assert_eq!(p.p99, 990);
        assert_eq!(p.max, 1000);
    }

    #[test]
    fn merge_adds_counts_and_errors() {
        let mut a = Tally {
            ok: 2,
            ..Default::default()
        };
        a.errors.insert("grpc:Unavailable".into(), 1);
        let mut b = Tally {
            ok: 3,
            ..Default::default()
        };
        b.errors.insert("grpc:Unavailable".into(), 2);
        b.record(Duration::from_millis(1));
        a.merge(&b);
        assert_eq!(a.ok, 5);
        assert_eq!(a.errors["grpc:Unavailable"], 3);
        assert_eq!(a.latency.len(), 1);
    }
}
