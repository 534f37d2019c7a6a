//! The only module of the daemon allowed to use `unsafe`: turning a sealed
//! memfd's mapping into the ABI's [`SharedRegion`].
//!
//! It owns the mapping of each client's region and hands it over, unmapped
//! only when the last `Arc<SharedRegion>` is dropped. It may not read or
//! write the region itself (the ring code in `lingerd-abi` and the
//! dataplane do that through atomics), nor create or seal the memfd
//! (`attach` does, before calling here).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::Arc;

use lingerd_abi::sys::SharedRegion;
use memmap2::MmapOptions;

/// Maps `len` bytes of `file` shared and read-write, as a region.
///
/// The caller must have sealed `file` against shrinking
/// (`F_SEAL_SHRINK`) and sized it to at least `len` bytes: then no one, not
/// even the client holding the other descriptor, can take pages away from
/// under the mapping.
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
    // region's last `Arc`. The file is at least `len` bytes and sealed
    // against shrinking by the caller, so every page stays backed (no
    // SIGBUS). This process never dereferences `map` itself: every access
    // goes through the returned `SharedRegion`, atomically.
    let region = unsafe { SharedRegion::from_raw_owned(ptr, len, map) };
    Ok(Arc::new(region))
}
