//! The client's own `unsafe` (besides `ffi`): mapping the region the daemon
//! sent into the ABI's [`SharedRegion`].
//!
//! It owns the mapping, unmapped only when the last `Arc<SharedRegion>` is
//! dropped. It may not read or write the region (the ABI's ring cursors and
//! `SharedRegion` do, through atomics) and it maps only a descriptor that
//! `handshake` has already checked to be a memfd of the right size sealed
//! against shrinking.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::Arc;

use lingerd_abi::sys::SharedRegion;
use memmap2::MmapOptions;

/// Maps `len` bytes of `file` shared and read-write, as a region.
///
/// The caller must have checked that `file` is a memfd of at least `len`
/// bytes sealed with `F_SEAL_SHRINK` (and `F_SEAL_SEAL`, so the seal stays).
pub(crate) fn map_region(file: &File, len: usize) -> io::Result<Arc<SharedRegion>> {
    if file.metadata()?.len() < len as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "memfd smaller than the region",
        ));
    }
    let map = MmapOptions::new().len(len).map_raw(file)?;
    let ptr = map.as_mut_ptr();
    if map.len() != len || !(ptr as usize).is_multiple_of(8) {
        return Err(io::Error::other(
            "mapping has an unexpected size or alignment",
        ));
    }
    // SAFETY: `ptr` starts a MAP_SHARED read-write mapping of exactly `len`
    // bytes (checked above), page-aligned and so 8-aligned. It stays mapped
    // until `map`, moved into the region as its owner, is dropped with the
    // region's last `Arc`. The memfd is at least `len` bytes and sealed
    // against shrinking with the seals themselves sealed (checked by the
    // caller), so neither the daemon nor we can take pages away (no
    // SIGBUS). This process never dereferences `map` itself: every access
    // goes through the returned `SharedRegion`, atomically.
    let region = unsafe { SharedRegion::from_raw_owned(ptr, len, map) };
    Ok(Arc::new(region))
}
