//! The only module of `lingerd-bench` allowed to use `unsafe`: reading the
//! CPU's time-stamp counter for the cycles-per-operation figures.
//!
//! It owns that one read and nothing else; it may not touch the dataplane
//! or any memory.
#![allow(unsafe_code)]

/// The time-stamp counter now (`rdtsc`), or `None` where there is none
/// (not x86-64). The TSC ticks at a constant reference rate on CPUs with
/// `constant_tsc`, not at the core's current clock: see
/// `measure::tsc_hz` for how the rate is found.
#[inline(always)]
pub fn tsc() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` reads a counter register; it takes no pointer,
        // touches no memory and is present on every x86-64 CPU.
        Some(unsafe { core::arch::x86_64::_rdtsc() })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}
