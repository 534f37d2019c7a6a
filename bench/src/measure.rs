//! The timing discipline: warm-up, repeated runs, medians, progress lines.
//!
//! Every figure is the median of at least [`MIN_RUNS`] runs, each timed with
//! `std::time::Instant` over many iterations, so one noisy run on a shared
//! machine does not decide it. Progress goes to stderr so that stdout stays
//! the table and the JSON line. Nothing here judges a timing.

use std::io::Write;
use std::time::{Duration, Instant};

/// The fewest runs a figure's median is taken over.
pub const MIN_RUNS: usize = 3;

/// The median of `samples` (the mean of the middle two for an even count).
///
/// # Panics
/// If `samples` is empty.
pub fn median(samples: &[f64]) -> f64 {
    assert!(!samples.is_empty(), "median of nothing");
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Times one call of `f`.
#[inline]
pub fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Nanoseconds per item of `ops` items done in `elapsed`.
pub fn ns_per(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_nanos() as f64 / ops.max(1) as f64
}

/// Items per second of `ops` items done in `elapsed`.
pub fn per_second(elapsed: Duration, ops: usize) -> f64 {
    ops as f64 / elapsed.as_secs_f64().max(1e-12)
}

/// Runs `run` once untimed (warm-up), then `runs` times, and returns the
/// median of the values it returns (each run reports its own figure, e.g.
/// ns per operation).
pub fn median_of(runs: usize, mut run: impl FnMut(usize) -> f64) -> f64 {
    let _ = run(0);
    let samples: Vec<f64> = (1..=runs.max(MIN_RUNS)).map(&mut run).collect();
    median(&samples)
}

/// A progress line on stderr (flushed), for long phases.
pub fn progress(msg: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "[lingerd-bench] {}", msg.as_ref());
    let _ = err.flush();
}

/// CPU time (user + system) this process has used so far, from
/// `/proc/self/stat` (Linux; 100 ticks per second assumed, the kernel's
/// `USER_HZ` on every mainstream architecture). `None` elsewhere.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_unsorted() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn median_of_skips_the_warm_up_and_runs_at_least_three() {
        let mut calls = Vec::new();
        let m = median_of(1, |i| {
            calls.push(i);
            if i == 0 { 1000.0 } else { i as f64 }
        });
        assert_eq!(calls, [0, 1, 2, 3]);
        assert_eq!(m, 2.0);
    }

    #[test]
    fn cpu_time_is_readable_and_grows() {
        let Some(before) = cpu_time() else { return };
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_time().unwrap() >= before);
    }
}
