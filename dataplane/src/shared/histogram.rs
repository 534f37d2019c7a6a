//! Fixed-bucket log2 histograms of short durations, kept per core beside
//! the counters (close request → wire, linger lateness).
//!
//! It owns the bucket layout and the one operation the hot path needs,
//! [`Log2Histogram::record_ns`]: a leading-zero count, a clamp and two
//! additions on a fixed array, no allocation and no floating point. Like
//! the counters, a histogram is written only by its core and copied out
//! with the rest of the snapshot; the daemon turns the buckets into
//! cumulative `le` series. It reads no clock: durations are passed in.

/// Finite buckets: upper bounds `2^(FIRST_SHIFT + i)` ns for
/// `i in 0..FINITE`, from 1.024 µs to 2^35 ns (about 34.4 s).
pub const FINITE: usize = 26;
/// Every bucket, the last one (above 2^35 ns) included.
pub const BUCKETS: usize = FINITE + 1;
/// The first bound is `2^FIRST_SHIFT` ns (1.024 µs).
const FIRST_SHIFT: u32 = 10;

/// Counts of durations by power-of-two bucket, and their sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Histogram {
    /// Per bucket, not cumulative: bucket `i < FINITE` holds durations
    /// in `(bound(i - 1), bound(i)]` ns ([`Log2Histogram::bound_ns`]; the
    /// first holds everything up to its bound), the last everything above
    /// the last finite bound.
    pub buckets: [u64; BUCKETS],
    /// The durations recorded, summed, in nanoseconds (saturating).
    pub sum_ns: u64,
}

impl Default for Log2Histogram {
    fn default() -> Self {
        Log2Histogram {
            buckets: [0; BUCKETS],
            sum_ns: 0,
        }
    }
}

/// The bucket of a duration of `ns` nanoseconds.
#[inline]
fn bucket_of(ns: u64) -> usize {
    // The bits `ns - 1` needs: the smallest k with ns <= 2^k.
    let bits = u64::BITS - ns.saturating_sub(1).leading_zeros();
    (bits.saturating_sub(FIRST_SHIFT) as usize).min(FINITE)
}

impl Log2Histogram {
    /// Counts one duration.
    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        self.buckets[bucket_of(ns)] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound of bucket `i` in nanoseconds; `None` for the last
    /// bucket (unbounded) and beyond.
    pub fn bound_ns(i: usize) -> Option<u64> {
        (i < FINITE).then(|| 1u64 << (FIRST_SHIFT as usize + i))
    }

    /// Adds `other` into `self` (summing cores).
    pub fn add(&mut self, other: &Log2Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_duration_lands_in_the_first_bucket_that_holds_it() {
        // Exhaustive at every edge: bound, bound + 1, for every bucket.
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        for i in 0..FINITE {
            let b = Log2Histogram::bound_ns(i).unwrap();
            assert_eq!(bucket_of(b), i, "{b} ns");
            assert_eq!(bucket_of(b + 1), (i + 1).min(FINITE), "{} ns", b + 1);
        }
        assert_eq!(bucket_of(u64::MAX), FINITE);
        assert_eq!(Log2Histogram::bound_ns(0), Some(1024));
        assert_eq!(Log2Histogram::bound_ns(FINITE - 1), Some(1 << 35));
        assert_eq!(Log2Histogram::bound_ns(FINITE), None);
    }

    #[test]
    fn records_count_sum_and_add_up() {
        let mut h = Log2Histogram::default();
        for ns in [500, 1024, 1025, 3_000_000, u64::MAX] {
            h.record_ns(ns);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[12], 1, "3 ms is within 2^22 ns");
        assert_eq!(h.buckets[FINITE], 1);
        assert_eq!(h.sum_ns, u64::MAX, "saturates");
        let mut g = Log2Histogram::default();
        g.record_ns(2000);
        g.add(&h);
        assert_eq!((g.count(), g.buckets[1]), (6, 2));
    }
}
