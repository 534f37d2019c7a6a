//! The only module of the testkit allowed to use `unsafe`.
//!
//! It holds the benchmarks' reference sender written directly on xsk-rs
//! ([`xsk_bare`], feature `afxdp`), whose ring calls are `unsafe` by
//! xsk-rs's design, and the counting allocator of the no-allocation tests
//! ([`alloc_count`]); each block states the rule it relies on.
//! Nothing outside `sys` may opt out of `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

pub mod alloc_count;
#[cfg(feature = "afxdp")]
pub mod xsk_bare;
