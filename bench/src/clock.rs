//! The one clock of the lab benchmark: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! `CLOCK_MONOTONIC` is system-wide, so a timestamp taken by the dut's
//! client in one process and one taken by the load generator in another
//! (even in another network namespace) are on the same axis: their
//! difference is a latency. `std::time::Instant` reads the same clock but
//! cannot be sent to another process, hence raw nanoseconds here. It owns
//! nothing; only [`Pacer::wait`] sleeps.

use rustix::time::{ClockId, clock_gettime};

/// Nanoseconds of `CLOCK_MONOTONIC` (since an unspecified boot-time origin).
#[inline]
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Spaces events at `per_s` a second from its start: event *i* is due at
/// `start + i / per_s` (0: no pacing).
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start_ns: u64,
    per_s: u32,
}

impl Pacer {
    /// A pacer starting now.
    pub fn new(per_s: u32) -> Pacer {
        Pacer {
            start_ns: now_ns(),
            per_s,
        }
    }

    /// Sleeps until event `i` is due (not at all when less than 200 µs
    /// ahead, or without pacing).
    pub fn wait(&self, i: usize) {
        if self.per_s == 0 {
            return;
        }
        let due = self.start_ns + (i as u64).saturating_mul(1_000_000_000) / u64::from(self.per_s);
        let ahead = due.saturating_sub(now_ns());
        if ahead > 200_000 {
            std::thread::sleep(std::time::Duration::from_nanos(ahead));
        }
    }
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

    #[test]
    fn pacer_spaces_events() {
        let p = Pacer::new(1000);
        let t0 = now_ns();
        p.wait(5);
        assert!(now_ns() - t0 >= 4_000_000);
        Pacer::new(0).wait(1_000_000);
    }
}
