//! The only module of `lingerd-abi` allowed to use `unsafe`: access to the
//! shared region itself.
//!
//! It owns [`SharedRegion`] (a mapping both processes see) and the ring
//! cursor protocol over it. Every access to shared memory goes through
//! atomics, so the other side writing concurrently is never a data race in
//! Rust's model, and every index read from shared memory is masked or
//! clamped before use. Nothing outside this module dereferences a pointer
//! into the region.
#![allow(unsafe_code)]

#[cfg(feature = "mmap")]
mod map;
mod region;
mod ring;

#[cfg(feature = "mmap")]
pub use map::map_region;
pub use region::SharedRegion;
pub use ring::{Consumer, Producer};
