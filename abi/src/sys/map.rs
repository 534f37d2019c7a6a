//! Mapping a sealed memfd as a [`SharedRegion`] (feature `mmap`): the one
//! place both the daemon (after creating and sealing the memfd) and the
//! client (after checking the memfd it received) turn a descriptor into a
//! region.
//!
//! It owns the mapping, unmapped only when the last `Arc<SharedRegion>` is
//! dropped. It may not read or write the region itself (the ring cursors and
//! `SharedRegion` do, through atomics), nor create, seal or check the memfd.

use std::fs::File;
use std::io;
use std::sync::Arc;

use memmap2::MmapOptions;

use super::SharedRegion;

/// Maps `len` bytes of `file` shared and read-write, as a region.
///
/// The caller must have made sure that `file` is a memfd of at least `len`
/// bytes sealed against shrinking (`F_SEAL_SHRINK`): the daemon seals what
/// it creates, the client checks the seals of what it receives. Then no one,
/// not even the other process holding a descriptor, can take pages away from
/// under the mapping (no SIGBUS).
pub fn map_region(file: &File, len: usize) -> io::Result<Arc<SharedRegion>> {
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
    // region's last `Arc`. The file is at least `len` bytes and sealed
    // against shrinking (the caller's contract), so every page stays backed.
    // This process never dereferences `map` itself: every access goes
    // through the returned `SharedRegion`, atomically.
    let region = unsafe { SharedRegion::from_raw_owned(ptr, len, map) };
    Ok(Arc::new(region))
}
