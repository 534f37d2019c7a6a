//! The only module of the dataplane allowed to use `unsafe`.
//!
//! It wraps the few operations safe Rust cannot express (cache prefetch
//! hints; with the `afxdp` feature the AF_XDP rings behind owned frame
//! tokens, a little rtnetlink and `setns`; shared-memory mappings later)
//! behind safe functions whose contracts are stated here. Nothing outside
//! `sys` may opt out of `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

#[cfg(feature = "afxdp")]
pub mod netlink;
#[cfg(feature = "afxdp")]
pub mod netns;
#[cfg(feature = "afxdp")]
pub mod xsk;

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
