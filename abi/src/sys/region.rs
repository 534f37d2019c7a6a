//! [`SharedRegion`]: a byte range both processes map, accessed only through
//! atomics and bounds-checked offsets.

use std::any::Any;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// A shared mapping (or, for tests, a heap buffer standing in for one).
///
/// Invariant: `ptr` is 8-byte aligned and valid for reads and writes of
/// `len` bytes for as long as this value lives, and is only ever accessed
/// through atomics (by us and, as far as we are concerned, by the peer).
#[derive(Debug)]
pub struct SharedRegion {
    ptr: *mut u8,
    len: usize,
    /// Keeps a heap stand-in alive; `None` for a real mapping.
    _heap: Option<Box<[AtomicU64]>>,
    /// Keeps a real mapping alive (e.g. a `memmap2::MmapRaw`): dropped,
    /// and so unmapped, only with the region itself.
    _owner: Option<Box<dyn Any + Send + Sync>>,
}

// SAFETY: the region is plain memory accessed only through atomics; sharing
// the pointer between threads adds no hazard beyond what atomics handle.
unsafe impl Send for SharedRegion {}
// SAFETY: as above: all accesses are atomic, so `&SharedRegion` may be used
// from several threads.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// A zeroed heap region of `len` bytes (rounded up to 8), for tests and
    /// in-process use.
    pub fn anonymous(len: usize) -> SharedRegion {
        let words = len.div_ceil(8).max(1);
        let heap: Box<[AtomicU64]> = (0..words).map(|_| AtomicU64::new(0)).collect();
        let ptr = heap.as_ptr() as *mut u8;
        SharedRegion {
            ptr,
            len,
            _heap: Some(heap),
            _owner: None,
        }
    }

    /// Wraps a mapping.
    ///
    /// # Safety
    /// `ptr` must be 8-byte aligned and valid for reads and writes of `len`
    /// bytes until the returned value is dropped (the caller keeps the
    /// mapping alive, e.g. by owning the `MmapRaw` beside it), and the
    /// memory must be touched by this process only through this value.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> SharedRegion {
        SharedRegion {
            ptr,
            len,
            _heap: None,
            _owner: None,
        }
    }

    /// Wraps a mapping and takes ownership of whatever keeps it mapped, so
    /// that the region (shared through an `Arc` with other threads) can
    /// never outlive its memory: `owner` is dropped after the last use.
    ///
    /// # Safety
    /// `ptr` must be 8-byte aligned and valid for reads and writes of `len`
    /// bytes for as long as `owner` lives and is not otherwise touched
    /// (dropping `owner` may unmap it, nothing else may), and the memory
    /// must be touched by this process only through the returned value.
    pub unsafe fn from_raw_owned<O: Any + Send + Sync>(
        ptr: *mut u8,
        len: usize,
        owner: O,
    ) -> SharedRegion {
        SharedRegion {
            ptr,
            len,
            _heap: None,
            _owner: Some(Box::new(owner)),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, size: usize, align: usize) -> Option<()> {
        let end = offset.checked_add(size)?;
        (end <= self.len && offset.is_multiple_of(align)).then_some(())
    }

    /// The `u32` at `offset`, or `None` when out of bounds or misaligned.
    pub fn u32_at(&self, offset: usize) -> Option<&AtomicU32> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and 4-aligned (checked above; the base is
        // 8-aligned by the type's invariant), valid for the life of `self`,
        // and only ever accessed atomically.
        Some(unsafe { &*(self.ptr.wrapping_add(offset) as *const AtomicU32) })
    }

    /// The 8 words of the 64-byte entry at `offset`.
    pub(crate) fn entry_at(&self, offset: usize) -> Option<&[AtomicU64; 8]> {
        self.check(offset, 64, 8)?;
        // SAFETY: 64 bytes in bounds and 8-aligned (checked above), valid
        // for the life of `self`, only accessed atomically.
        Some(unsafe { &*(self.ptr.wrapping_add(offset) as *const [AtomicU64; 8]) })
    }

    fn bytes(&self, range: &Range<usize>) -> Option<&[AtomicU8]> {
        self.check(range.start, range.end.checked_sub(range.start)?, 1)?;
        // SAFETY: the range is in bounds (checked above), valid for the life
        // of `self`; `AtomicU8` has the size and alignment of `u8`.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.ptr.wrapping_add(range.start) as *const AtomicU8,
                range.len(),
            )
        })
    }

    /// Copies `range` out into `dst` (same length). Returns false, copying
    /// nothing, when the range is out of bounds or the lengths differ.
    pub fn read(&self, range: Range<usize>, dst: &mut [u8]) -> bool {
        match self.bytes(&range) {
            Some(src) if src.len() == dst.len() => {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s.load(Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    /// Copies `src` into `range` (same length). Returns false, writing
    /// nothing, when out of bounds or the lengths differ.
    pub fn write(&self, range: Range<usize>, src: &[u8]) -> bool {
        match self.bytes(&range) {
            Some(dst) if dst.len() == src.len() => {
                for (d, s) in dst.iter().zip(src) {
                    d.store(*s, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }
}
