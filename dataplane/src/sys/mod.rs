//! The only module of the dataplane allowed to use `unsafe`.
//!
//! It wraps the few operations safe Rust cannot express (cache prefetch
//! hints; with the `afxdp` feature the AF_XDP rings behind owned frame
//! tokens) behind safe functions whose contracts are stated here. With
//! `afxdp` it also holds the port's other OS calls, a little rtnetlink and
//! `setns`, made through rustix's safe wrappers; with `dpdk`, DPDK's EAL,
//! devices and mbufs behind owned tokens. Nothing outside `sys` may
//! opt out of `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

#[cfg(feature = "dpdk")]
pub mod dpdk;
#[cfg(feature = "afxdp")]
pub mod netlink;
#[cfg(feature = "afxdp")]
pub mod netns;
#[cfg(feature = "afxdp")]
pub mod xsk;

/// Hints the CPU to bring every cache line holding the first `len` bytes of
/// `value` closer (`len` is clamped to its size): the line of the first
/// byte, then each line that begins inside those bytes.
///
/// A hint only, like [`prefetch_read`]: each address it names lies inside
/// `value`, and a prefetch never faults anyway.
#[inline(always)]
pub fn prefetch_read_span<T>(value: &T, len: usize) {
    const LINE: usize = 64;
    let first = (value as *const T).cast::<u8>();
    let len = len.min(size_of::<T>());
    prefetch_read(value);
    let mut at = LINE - (first as usize) % LINE;
    while at < len {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `_mm_prefetch` performs no memory access that can
            // fault; `first + at` (at < len ≤ its size) points into
            // `value`, a live shared reference.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    first.wrapping_add(at).cast::<i8>(),
                );
            }
        }
        at += LINE;
    }
}

/// Hints the CPU to bring the cache line holding `value` closer.
///
/// A hint only: it never faults, never changes memory and has no effect on
/// correctness, so calling it with any reference is sound.
#[inline(always)]
pub fn prefetch_read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `_mm_prefetch` performs no memory access that can fault; the
        // pointer comes from a live shared reference, so it is valid anyway.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (value as *const T).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = value;
    }
}

/// Size of a transparent huge page on x86-64.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside `buf`'s allocation
/// (its spare capacity included) with transparent huge pages
/// (`MADV_HUGEPAGE`), before they are first touched. Big random-access
/// tables (the connection slab, the 4-tuple index) then take one TLB entry
/// per 2 MiB instead of per 4 KiB. Advice only: errors (THP disabled, an
/// allocation not backed by mmap) are ignored, and nothing else changes.
pub fn advise_huge_pages<T>(buf: &Vec<T>) {
    let start = buf.as_ptr() as usize;
    let bytes = buf.capacity().saturating_mul(size_of::<T>());
    let Some(end) = start.checked_add(bytes) else {
        return;
    };
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end / HUGE_PAGE * HUGE_PAGE;
    if last <= first {
        return;
    }
    // SAFETY: [first, last) lies inside `buf`'s live allocation (rounded
    // inwards to huge-page boundaries, computed without overflow), and
    // MADV_HUGEPAGE changes neither the contents nor the validity of those
    // pages: it is a hint about how to back them.
    let _ = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        )
    };
}
