//! The timing discipline: warm-up, repeated runs, medians, progress lines.
//!
//! Every figure is the median of at least [`MIN_RUNS`] runs, each timed with
//! `std::time::Instant` over many iterations, so one noisy run on a shared
//! machine does not decide it. Progress goes to stderr so that stdout stays
//! the table and the JSON line. Nothing here judges a timing.
//!
//! Beside the clock, a [`Stopwatch`] reads the CPU's time-stamp counter
//! (`rdtsc`, through [`crate::sys::tsc`]) so that a figure can also be
//! given in cycles per operation. Those are TSC cycles: ticks of the
//! constant-rate counter, whose rate [`tsc_hz`] calibrates against the
//! monotonic clock, not the core's own (possibly boosted) clock cycles.
//! Hardware counters (`perf_event_open` cycles) would give the latter, but
//! virtual machines often do not expose them; the TSC is always there on
//! x86-64. When `LINGERD_BENCH_PERF_CTL` names the control FIFO of a
//! `perf record --control fifo:…` run, timed regions are bracketed with
//! `enable` / `disable` so that a profile holds only them (only those of
//! one scenario, `abort`, `ring`, `graceful` or `linger`, when
//! `LINGERD_BENCH_PERF_ONLY` names it).

use std::io::Write;
use std::sync::{Mutex, OnceLock};
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

/// What a [`Stopwatch`] measured: wall time and TSC cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Monotonic-clock time.
    pub elapsed: Duration,
    /// TSC cycles (0 where there is no TSC).
    pub cycles: u64,
}

impl std::ops::AddAssign for Span {
    fn add_assign(&mut self, other: Span) {
        self.elapsed += other.elapsed;
        self.cycles += other.cycles;
    }
}

impl Span {
    /// TSC cycles per item of `ops` items.
    pub fn cycles_per(&self, ops: usize) -> f64 {
        self.cycles as f64 / ops.max(1) as f64
    }
}

/// Reads the clock and the TSC at start and [`stop`](Stopwatch::stop).
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    start: Instant,
    tsc: u64,
}

impl Stopwatch {
    /// Starts now.
    #[inline]
    pub fn start() -> Stopwatch {
        let start = Instant::now();
        let tsc = crate::sys::tsc().unwrap_or(0);
        Stopwatch { start, tsc }
    }

    /// What passed since [`start`](Stopwatch::start).
    #[inline]
    pub fn stop(&self) -> Span {
        let tsc = crate::sys::tsc().unwrap_or(0);
        Span {
            elapsed: self.start.elapsed(),
            cycles: tsc.saturating_sub(self.tsc),
        }
    }
}

/// The TSC's rate in Hz, measured once per process: the median of five
/// 20 ms windows of TSC ticks over monotonic-clock time. `None` without a
/// TSC.
pub fn tsc_hz() -> Option<f64> {
    static HZ: OnceLock<Option<f64>> = OnceLock::new();
    *HZ.get_or_init(|| {
        crate::sys::tsc()?;
        let mut rates: Vec<f64> = (0..5)
            .map(|_| {
                let w = Stopwatch::start();
                while w.start.elapsed() < Duration::from_millis(20) {
                    std::hint::spin_loop();
                }
                let s = w.stop();
                s.cycles as f64 / s.elapsed.as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        Some(rates[rates.len() / 2])
    })
}

/// Where the cycle figures come from, for the JSON.
pub fn cycles_source() -> &'static str {
    if crate::sys::tsc().is_some() {
        "rdtsc"
    } else {
        "none"
    }
}

/// Runs `f`, the timed region of `scenario`, with a profiler recording
/// (see the module doc): a no-op unless `LINGERD_BENCH_PERF_CTL` is set,
/// and unless `LINGERD_BENCH_PERF_ONLY`, when set, names `scenario`.
pub fn profiled<T>(scenario: &str, f: impl FnOnce() -> T) -> T {
    profile_on(scenario);
    let out = f();
    profile_off(scenario);
    out
}

/// Starts the profiler's recording of `scenario` (see [`profiled`]).
pub fn profile_on(scenario: &str) {
    if profiling(scenario) {
        perf_control("enable");
    }
}

/// Stops the profiler's recording of `scenario` (see [`profiled`]).
pub fn profile_off(scenario: &str) {
    if profiling(scenario) {
        perf_control("disable");
    }
}

/// Whether `scenario` is to be recorded.
fn profiling(scenario: &str) -> bool {
    static ONLY: OnceLock<Option<String>> = OnceLock::new();
    ONLY.get_or_init(|| std::env::var("LINGERD_BENCH_PERF_ONLY").ok())
        .as_deref()
        .is_none_or(|only| only == scenario)
}

/// Writes `cmd` to perf's control FIFO and waits for its ack when
/// `LINGERD_BENCH_PERF_ACK` names one.
/// perf's control FIFO and, if named, its ack FIFO.
type PerfFifos = Mutex<(std::fs::File, Option<std::fs::File>)>;

fn perf_control(cmd: &str) {
    static CTL: OnceLock<Option<PerfFifos>> = OnceLock::new();
    let ctl = CTL.get_or_init(|| {
        let path = std::env::var_os("LINGERD_BENCH_PERF_CTL")?;
        let ctl = std::fs::OpenOptions::new().write(true).open(path).ok()?;
        let ack =
            std::env::var_os("LINGERD_BENCH_PERF_ACK").and_then(|p| std::fs::File::open(p).ok());
        Some(Mutex::new((ctl, ack)))
    });
    let Some(ctl) = ctl else { return };
    let Ok(mut g) = ctl.lock() else { return };
    let (ctl, ack) = &mut *g;
    if writeln!(ctl, "{cmd}").is_ok()
        && let Some(ack) = ack
    {
        let mut buf = [0u8; 5];
        let _ = std::io::Read::read(ack, &mut buf);
    }
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
    fn stopwatch_cycles_track_time_at_the_calibrated_rate() {
        let Some(hz) = tsc_hz() else { return };
        assert!(hz > 1e8, "a TSC slower than 100 MHz: {hz}");
        let w = Stopwatch::start();
        std::thread::sleep(Duration::from_millis(30));
        let s = w.stop();
        let expect = s.elapsed.as_secs_f64() * hz;
        let ratio = s.cycles as f64 / expect;
        assert!(
            (0.8..1.25).contains(&ratio),
            "cycles {} vs {expect}",
            s.cycles
        );
        assert_eq!(s.cycles_per(0), s.cycles as f64);
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
