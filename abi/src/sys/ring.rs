//! The single-producer single-consumer ring protocol, one implementation
//! for every ring (requests client → core, completions core → client).
//!
//! io_uring/AF_XDP style: free-running `u32` head (written by the consumer)
//! and tail (written by the producer) on separate 128-byte blocks, a
//! power-of-two number of 64-byte entries, Release on publish and Acquire on
//! observe. Each side keeps its own index privately and never trusts the
//! other side's word: a tail or head that claims more than the ring holds is
//! clamped, and every slot index is masked, so a hostile peer can only make
//! us see garbage entries (which decoding rejects), never touch memory
//! outside the ring.

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use super::region::SharedRegion;
use crate::layout::{
    ENTRY_SIZE, RING_CONTROL_SIZE, RING_FLAGS, RING_HEAD, RING_NEED_WAKEUP, RING_TAIL,
};

/// Why a ring cannot be placed at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingBounds;

/// How many entries ahead of the one it copies out [`Consumer::pop`] asks
/// for a line.
const PREFETCH_AHEAD: u32 = 8;

#[derive(Debug, Clone)]
struct Ring {
    region: Arc<SharedRegion>,
    base: usize,
    entries: u32,
}

impl Ring {
    fn new(region: Arc<SharedRegion>, base: usize, entries: u32) -> Result<Ring, RingBounds> {
        if !entries.is_power_of_two() {
            return Err(RingBounds);
        }
        let size = (entries as usize)
            .checked_mul(ENTRY_SIZE)
            .and_then(|s| s.checked_add(RING_CONTROL_SIZE));
        let end = size.and_then(|s| base.checked_add(s)).ok_or(RingBounds)?;
        if end > region.len() || !base.is_multiple_of(128) {
            return Err(RingBounds);
        }
        Ok(Ring {
            region,
            base,
            entries,
        })
    }

    fn word(&self, at: usize) -> &std::sync::atomic::AtomicU32 {
        // In bounds and aligned: checked when the ring was built.
        self.region
            .u32_at(self.base + at)
            .expect("ring control word checked at construction")
    }

    /// Hints the CPU to fetch the line of entry `index` (masked): a
    /// consumer asks for an entry a few ahead of the one it copies out, so
    /// that a burst's transfers from the producer's core overlap.
    #[inline]
    fn prefetch(&self, index: u32) {
        let slot = self.slot(index);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `_mm_prefetch` performs no memory access that can
            // fault; the pointer is that of a live entry of the region.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    slot.as_ptr().cast::<i8>(),
                );
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = slot;
        }
    }

    fn slot(&self, index: u32) -> &[std::sync::atomic::AtomicU64; 8] {
        let i = (index & (self.entries - 1)) as usize;
        self.region
            .entry_at(self.base + RING_CONTROL_SIZE + i * ENTRY_SIZE)
            .expect("ring entries checked at construction")
    }
}

/// The producing side of a ring.
#[derive(Debug)]
pub struct Producer {
    ring: Ring,
    tail: u32,
    cached_head: u32,
    /// Times the consumer's head claimed more than was produced.
    hostile: u64,
}

impl Producer {
    /// The producer of the ring at `base` with `entries` entries. Starts
    /// from the ring's current tail (0 in a fresh region).
    pub fn new(
        region: Arc<SharedRegion>,
        base: usize,
        entries: u32,
    ) -> Result<Producer, RingBounds> {
        let ring = Ring::new(region, base, entries)?;
        let tail = ring.word(RING_TAIL).load(Ordering::Relaxed);
        let head = ring.word(RING_HEAD).load(Ordering::Acquire);
        Ok(Producer {
            ring,
            tail,
            cached_head: head,
            hostile: 0,
        })
    }

    /// Free entries now. A head that claims more was consumed than we
    /// produced (a corrupted or hostile consumer) yields 0: we then never
    /// overwrite anything until it is sane again.
    pub fn free(&mut self) -> u32 {
        let used = self.tail.wrapping_sub(self.cached_head);
        if used < self.ring.entries {
            return self.ring.entries - used;
        }
        self.cached_head = self.ring.word(RING_HEAD).load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(self.cached_head);
        if used > self.ring.entries {
            self.hostile += 1;
        }
        self.ring.entries.saturating_sub(used)
    }

    /// Times the consumer's head was found beyond what was produced (a
    /// corrupted or hostile peer), for the owner's report.
    pub fn hostile_indexes(&self) -> u64 {
        self.hostile
    }

    /// Writes one entry; it becomes visible at the next [`publish`](Self::publish).
    /// Returns false (writing nothing) when the ring is full.
    pub fn push(&mut self, entry: &[u8; ENTRY_SIZE]) -> bool {
        if self.free() == 0 {
            return false;
        }
        let slot = self.ring.slot(self.tail);
        for (word, chunk) in slot.iter().zip(entry.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            word.store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        self.tail = self.tail.wrapping_add(1);
        true
    }

    /// Makes every pushed entry visible to the consumer (Release).
    pub fn publish(&mut self) {
        self.ring
            .word(RING_TAIL)
            .store(self.tail, Ordering::Release);
    }

    /// Whether the consumer asked to be woken (then signal its eventfd).
    /// Call it after [`publish`](Self::publish): the fence orders the
    /// tail's store before the flag's load, the mirror of the one in
    /// [`Consumer::set_need_wakeup`], so that either the consumer sees the
    /// new entries when it looks again or this sees its flag.
    pub fn needs_wakeup(&self) -> bool {
        fence(Ordering::SeqCst);
        self.ring.word(RING_FLAGS).load(Ordering::Acquire) & RING_NEED_WAKEUP != 0
    }
}

/// The consuming side of a ring.
#[derive(Debug)]
pub struct Consumer {
    ring: Ring,
    head: u32,
    /// Entries `available` reported and `pop` has not yet taken.
    ready: u32,
    /// Times the producer's tail claimed more than a ring's worth.
    hostile: u64,
}

impl Consumer {
    /// The consumer of the ring at `base`. Starts from the ring's current
    /// head (0 in a fresh region).
    pub fn new(
        region: Arc<SharedRegion>,
        base: usize,
        entries: u32,
    ) -> Result<Consumer, RingBounds> {
        let ring = Ring::new(region, base, entries)?;
        let head = ring.word(RING_HEAD).load(Ordering::Relaxed);
        Ok(Consumer {
            ring,
            head,
            ready: 0,
            hostile: 0,
        })
    }

    /// Entries ready now, read once per call and clamped to the ring size:
    /// a producer claiming more cannot make us read slots twice per lap.
    pub fn available(&mut self) -> u32 {
        let tail = self.ring.word(RING_TAIL).load(Ordering::Acquire);
        let claimed = tail.wrapping_sub(self.head);
        if claimed > self.ring.entries {
            self.hostile += 1;
        }
        self.ready = claimed.min(self.ring.entries);
        self.ready
    }

    /// Times the producer's tail was found more than a ring ahead (a
    /// corrupted or hostile peer), for the owner's report.
    pub fn hostile_indexes(&self) -> u64 {
        self.hostile
    }

    /// Copies the next entry out (never a reference into shared memory).
    /// Call [`available`](Self::available) first; this returns `None` past
    /// what it reported.
    pub fn pop(&mut self) -> Option<[u8; ENTRY_SIZE]> {
        if self.ready == 0 {
            return None;
        }
        self.ready -= 1;
        // Only published entries: asking for one the producer may still be
        // writing would pull its line away mid-write.
        if self.ready >= PREFETCH_AHEAD {
            self.ring.prefetch(self.head.wrapping_add(PREFETCH_AHEAD));
        }
        let mut out = [0u8; ENTRY_SIZE];
        for (chunk, word) in out.chunks_exact_mut(8).zip(self.ring.slot(self.head)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        self.head = self.head.wrapping_add(1);
        Some(out)
    }

    /// Hands the consumed slots back to the producer (Release).
    pub fn release(&mut self) {
        self.ring
            .word(RING_HEAD)
            .store(self.head, Ordering::Release);
    }

    /// Sets or clears NEED_WAKEUP (the consumer is about to sleep). After
    /// setting it, look at [`available`](Self::available) once more before
    /// sleeping: the fence orders the flag's store before the tail's load
    /// (see [`Producer::needs_wakeup`]).
    pub fn set_need_wakeup(&self, on: bool) {
        let w = self.ring.word(RING_FLAGS);
        if on {
            w.fetch_or(RING_NEED_WAKEUP, Ordering::AcqRel);
            fence(Ordering::SeqCst);
        } else {
            w.fetch_and(!RING_NEED_WAKEUP, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn entry(n: u64) -> [u8; ENTRY_SIZE] {
        let mut e = [0u8; ENTRY_SIZE];
        e[..8].copy_from_slice(&n.to_le_bytes());
        e[56..].copy_from_slice(&(!n).to_le_bytes());
        e
    }

    fn ring(entries: u32) -> (Producer, Consumer, Arc<SharedRegion>) {
        let region = Arc::new(SharedRegion::anonymous(
            RING_CONTROL_SIZE + entries as usize * ENTRY_SIZE,
        ));
        let p = Producer::new(region.clone(), 0, entries).unwrap();
        let c = Consumer::new(region.clone(), 0, entries).unwrap();
        (p, c, region)
    }

    #[test]
    fn matches_a_vecdeque_model_across_many_wraps() {
        let (mut p, mut c, _r) = ring(8);
        let mut model = VecDeque::new();
        let mut next = 0u64;
        let mut seed = 12345u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pushes = (seed >> 33) % 5;
            let pops = (seed >> 40) % 5;
            for _ in 0..pushes {
                let ok = p.push(&entry(next));
                assert_eq!(ok, model.len() < 8, "push succeeds iff the model has room");
                if ok {
                    model.push_back(next);
                    next += 1;
                }
            }
            p.publish();
            assert_eq!(c.available() as usize, model.len());
            for _ in 0..pops {
                match (c.pop(), model.pop_front()) {
                    (Some(e), Some(m)) => assert_eq!(e, entry(m)),
                    (None, None) => {}
                    (got, want) => panic!("ring {got:?} vs model {want:?}"),
                }
            }
            c.release();
        }
    }

    #[test]
    fn unpublished_entries_are_invisible() {
        let (mut p, mut c, _r) = ring(4);
        assert!(p.push(&entry(1)));
        assert_eq!(c.available(), 0);
        p.publish();
        assert_eq!(c.available(), 1);
    }

    #[test]
    fn a_hostile_tail_is_clamped_to_the_ring() {
        let (_p, mut c, region) = ring(4);
        region
            .u32_at(RING_TAIL)
            .unwrap()
            .store(1_000_000, Ordering::Release);
        assert_eq!(c.hostile_indexes(), 0);
        assert_eq!(c.available(), 4, "never more than one lap");
        assert_eq!(c.hostile_indexes(), 1, "and the owner is told");
        for _ in 0..4 {
            assert!(c.pop().is_some());
        }
        assert!(
            c.pop().is_none(),
            "stops after one lap until it looks again"
        );
    }

    #[test]
    fn a_hostile_head_stops_the_producer_instead_of_overwriting() {
        let (mut p, _c, region) = ring(4);
        assert!(p.push(&entry(1)));
        p.publish();
        // The consumer claims to have consumed entries never produced.
        region
            .u32_at(RING_HEAD)
            .unwrap()
            .store(50, Ordering::Release);
        for _ in 0..10 {
            let _ = p.push(&entry(2));
        }
        assert!(p.free() <= 4);
        region
            .u32_at(RING_HEAD)
            .unwrap()
            .store(u32::MAX - 3, Ordering::Release);
        assert_eq!(
            p.free(),
            0,
            "a head far ahead of the tail is corrupt: no space"
        );
        assert!(p.hostile_indexes() > 0, "and the owner is told");
    }

    #[test]
    fn bad_placement_is_refused() {
        let region = Arc::new(SharedRegion::anonymous(4096));
        assert!(
            Producer::new(region.clone(), 0, 6).is_err(),
            "not a power of two"
        );
        assert!(Producer::new(region.clone(), 64, 4).is_err(), "misaligned");
        assert!(Consumer::new(region, 0, 1024).is_err(), "past the end");
    }

    #[test]
    fn need_wakeup_flag() {
        let (p, c, _r) = ring(4);
        assert!(!p.needs_wakeup());
        c.set_need_wakeup(true);
        assert!(p.needs_wakeup());
        c.set_need_wakeup(false);
        assert!(!p.needs_wakeup());
    }
}
