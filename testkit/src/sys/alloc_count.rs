//! A counting global allocator for tests that must prove a path never
//! touches the heap: [`CountingAlloc`] forwards to the system allocator and
//! counts, per thread, the allocations and reallocations made while a
//! [`measure`] runs on that thread. Other threads (the test harness, the
//! output capture) never pollute a measurement.
//!
//! It owns the counters only; what counts as steady state is the test's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Heap operations seen on one thread during one [`measure`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Allocations (zeroed ones included).
    pub allocations: u64,
    /// Reallocations.
    pub reallocations: u64,
    /// Bytes requested by both.
    pub bytes: u64,
}

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static STATS: Cell<AllocStats> = const {
        Cell::new(AllocStats { allocations: 0, reallocations: 0, bytes: 0 })
    };
}

/// Install as `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

impl CountingAlloc {
    fn count(realloc: bool, bytes: usize) {
        // `try_with`: during thread teardown the slots may be gone, and an
        // allocator must not panic.
        let measuring = MEASURING.try_with(Cell::get).unwrap_or(false);
        if measuring {
            let _ = STATS.try_with(|s| {
                let mut v = s.get();
                if realloc {
                    v.reallocations += 1;
                } else {
                    v.allocations += 1;
                }
                v.bytes = v.bytes.saturating_add(bytes as u64);
                s.set(v);
            });
        }
    }
}

// SAFETY: every method forwards the caller's pointer and layout unchanged
// to `System`, which upholds GlobalAlloc's contract; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CountingAlloc::count(false, layout.size());
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CountingAlloc::count(false, layout.size());
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CountingAlloc::count(true, new_size);
        // SAFETY: `ptr` was allocated by `System` with `layout` (every
        // allocation of this allocator is), as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns what it allocated on this thread. Without
/// [`CountingAlloc`] installed every count is 0; see [`is_installed`].
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, AllocStats) {
    STATS.with(|s| s.set(AllocStats::default()));
    MEASURING.with(|m| m.set(true));
    let r = f();
    MEASURING.with(|m| m.set(false));
    (r, STATS.with(Cell::get))
}

/// Whether [`CountingAlloc`] is this binary's global allocator: a probe
/// allocation must be counted (so a zero count cannot pass vacuously).
pub fn is_installed() -> bool {
    let (_, stats) = measure(|| std::hint::black_box(Box::new(0u64)));
    stats.allocations == 1
}
