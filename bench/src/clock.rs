//! The one clock of the lab benchmark: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! `CLOCK_MONOTONIC` is system-wide, so a timestamp taken by the dut's
//! client in one process and one taken by the load generator in another
//! (even in another network namespace) are on the same axis: their
//! difference is a latency. `std::time::Instant` reads the same clock but
//! cannot be sent to another process, hence raw nanoseconds here. It owns
//! nothing and never sleeps.

use rustix::time::{ClockId, clock_gettime};

/// Nanoseconds of `CLOCK_MONOTONIC` (since an unspecified boot-time origin).
#[inline]
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_close_to_instant() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_ns();
        assert!(b > a && b - a >= 2_000_000, "{a} {b}");
    }
}
