//! Figures from timestamps: request → wire latency (hdrhistogram), closes
//! per second, and the closes-over-time series the SVG draws.
//!
//! Inputs are `CLOCK_MONOTONIC` nanoseconds from different processes (see
//! [`crate::clock`]); nothing here reads a clock. It owns no I/O.

use hdrhistogram::Histogram;

/// Latency percentiles, microseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// The CDF: (latency µs, fraction ≤ it), for the plot.
    pub cdf: Vec<(f64, f64)>,
}

/// Latencies from `(request_ns, wire_ns)` pairs. A wire time before its
/// request (clock granularity) counts as 1 ns.
pub fn latency(pairs: impl IntoIterator<Item = (u64, u64)>) -> Latency {
    // 1 ns .. 600 s, 3 significant digits.
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3).expect("valid bounds");
    for (req, wire) in pairs {
        h.saturating_record(wire.saturating_sub(req).max(1));
    }
    if h.is_empty() {
        return Latency::default();
    }
    let us = |ns: u64| ns as f64 / 1e3;
    let mut cdf = Vec::new();
    for q in 0..=200 {
        let q = f64::from(q) / 200.0;
        cdf.push((us(h.value_at_quantile(q)), q));
    }
    for q in [0.995, 0.999, 0.9999, 1.0] {
        cdf.push((us(h.value_at_quantile(q)), q));
    }
    cdf.sort_by(|a, b| a.1.total_cmp(&b.1));
    Latency {
        count: h.len(),
        p50_us: us(h.value_at_quantile(0.50)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
        cdf,
    }
}

/// Cumulative closes over time: `(seconds since start_ns, closes so far)`
/// at most `points` points, from sorted arrival times.
pub fn over_time(start_ns: u64, sorted_ns: &[u64], points: usize) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0)];
    if sorted_ns.is_empty() {
        return out;
    }
    let step = sorted_ns.len().div_ceil(points.max(1)).max(1);
    for (i, &t) in sorted_ns.iter().enumerate() {
        if (i + 1) % step == 0 || i + 1 == sorted_ns.len() {
            out.push((t.saturating_sub(start_ns) as f64 / 1e9, (i + 1) as f64));
        }
    }
    out
}

/// Closes per second: `n` closes from `start_ns` to `end_ns`.
pub fn rate(n: usize, start_ns: u64, end_ns: u64) -> f64 {
    let secs = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    if n == 0 || secs <= 0.0 {
        0.0
    } else {
        n as f64 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        // 1..=1000 µs.
        let l = latency((1..=1000u64).map(|i| (0, i * 1000)));
        assert_eq!(l.count, 1000);
        assert!((l.p50_us - 500.0).abs() < 2.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() < 2.0, "{l:?}");
        assert!((l.p999_us - 999.0).abs() < 2.0, "{l:?}");
        assert!(l.cdf.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(latency(std::iter::empty()), Latency::default());
    }

    #[test]
    fn series_and_rate() {
        let t: Vec<u64> = (1..=10).map(|i| i * 100_000_000).collect();
        let s = over_time(0, &t, 5);
        assert_eq!(s.first(), Some(&(0.0, 0.0)));
        assert_eq!(s.last(), Some(&(1.0, 10.0)));
        assert!(s.len() <= 6);
        assert_eq!(rate(10, 0, 1_000_000_000), 10.0);
        assert_eq!(rate(0, 0, 1), 0.0);
    }
}
