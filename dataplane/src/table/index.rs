//! The 4-tuple index: an open-addressing hash table from tuple hash to slot.
//!
//! It owns the bucket array and its probing discipline: power-of-two size,
//! linear probing, load ≤ 0.75 at full table capacity, tombstone-free
//! deletion by backward shift. It stores no tuples: callers hand it a hash
//! and an equality predicate over slots, so confirming a match is the
//! slab's business. It never allocates after construction.
//!
//! # Bucket layout (8 bytes)
//!
//! `tag:32 | slot:32` in one `u64`; empty is `slot == NIL`. The tag is the
//! high half of the 64-bit hash, and a tuple's home bucket is the tag's top
//! `log2(buckets)` bits. So the tag both filters candidates (a mismatch
//! touches no slab memory) and gives back every entry's home bucket, which is
//! what backward-shift deletion needs, without rehashing from the slab.
//! Entries whose home is the same bucket share those top bits, and the
//! remaining `32 − log2(buckets)` tag bits tell them apart (1 in 256 false
//! candidates at 2^24 buckets; a false candidate costs one tuple compare).

use crate::sys;
use crate::timer::NIL;

const EMPTY: u64 = NIL as u64;
/// The smallest bucket array.
const MIN_BUCKETS: usize = 8;

/// The open-addressing index of one table.
#[derive(Debug)]
pub(crate) struct Index {
    buckets: Box<[u64]>,
    mask: usize,
    /// `32 - log2(buckets.len())`: tag >> shift = home bucket.
    shift: u32,
}

/// Where an absent key would go: returned by [`Index::find_or_vacant`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vacant {
    pos: usize,
    tag: u32,
}

#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl Index {
    /// Buckets needed so that `capacity` entries load the array ≤ 3/4.
    pub(crate) fn buckets_for(capacity: u32) -> usize {
        let needed = (capacity as usize * 4).div_ceil(3).max(MIN_BUCKETS);
        needed.next_power_of_two()
    }

    /// An empty index sized for `capacity` entries (≤ 2^31, so that the
    /// bucket count fits the 32-bit tag).
    pub(crate) fn with_capacity(capacity: u32) -> Index {
        let len = Index::buckets_for(capacity);
        assert!(len <= 1 << 32, "index too large for 32-bit tags");
        // Advised before the fill below first touches the pages.
        let mut buckets = Vec::with_capacity(len);
        crate::sys::advise_huge_pages(&buckets);
        buckets.resize(len, EMPTY);
        Index {
            buckets: buckets.into_boxed_slice(),
            mask: len - 1,
            shift: 32 - len.trailing_zeros(),
        }
    }

    /// Bytes allocated for buckets.
    pub(crate) fn memory_bytes(&self) -> usize {
        size_of_val(&*self.buckets)
    }

    /// Number of buckets.
    #[cfg(test)]
    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    #[inline(always)]
    fn home(&self, tag: u32) -> usize {
        // `shift` ≤ 29 since there are at least 8 buckets.
        (tag >> self.shift) as usize
    }

    /// Hints the CPU to fetch the home bucket of `hash`.
    #[inline(always)]
    pub(crate) fn prefetch(&self, hash: u64) {
        if let Some(bucket) = self.buckets.get(self.home(tag_of(hash))) {
            sys::prefetch_read(bucket);
        }
    }

    /// Hints the CPU to fetch what [`remove`](Self::remove) of an entry
    /// at home under `hash` reads: the home bucket and the one after it
    /// (the backward shift always looks at the next bucket), two lines when
    /// the home bucket ends one.
    #[inline(always)]
    pub(crate) fn prefetch_for_remove(&self, hash: u64) {
        let home = self.home(tag_of(hash));
        if let Some(pair) = self
            .buckets
            .get(home..home + 2)
            .and_then(|p| <&[u64; 2]>::try_from(p).ok())
        {
            sys::prefetch_read_span(pair, size_of::<[u64; 2]>());
        } else {
            self.prefetch(hash);
        }
    }

    /// The slot whose tag matches and for which `eq` holds, or `None`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mut pos = self.home(tag);
        loop {
            let word = self.buckets[pos];
            let slot = word as u32;
            if slot == NIL {
                return None;
            }
            if (word >> 32) as u32 == tag && eq(slot) {
                return Some(slot);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// The first slot whose tag matches `hash`, without confirming it: the
    /// slot the key most probably lives in, for prefetching its record.
    #[inline]
    pub(crate) fn first_candidate(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Like [`find`](Self::find), but on a miss returns where the key would
    /// be inserted, so insertion probes once.
    #[inline]
    pub(crate) fn find_or_vacant(
        &self,
        hash: u64,
        mut eq: impl FnMut(u32) -> bool,
    ) -> Result<u32, Vacant> {
        let tag = tag_of(hash);
        let mut pos = self.home(tag);
        loop {
            let word = self.buckets[pos];
            let slot = word as u32;
            if slot == NIL {
                return Err(Vacant { pos, tag });
            }
            if (word >> 32) as u32 == tag && eq(slot) {
                return Ok(slot);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Fills a bucket found by [`find_or_vacant`](Self::find_or_vacant) with
    /// no intervening change to the index.
    #[inline]
    pub(crate) fn fill(&mut self, vacant: Vacant, slot: u32) {
        debug_assert_ne!(slot, NIL);
        debug_assert_eq!(self.buckets[vacant.pos] as u32, NIL);
        self.buckets[vacant.pos] = (u64::from(vacant.tag) << 32) | u64::from(slot);
    }

    /// Removes the entry for `slot` filed under `hash`. Returns whether it
    /// was there. Backward shift: entries after the hole move back into it
    /// when that does not put them before their home bucket, so no tombstone
    /// is left and probe runs stay as short as if the entry never existed.
    pub(crate) fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let word = (u64::from(tag_of(hash)) << 32) | u64::from(slot);
        let mut hole = self.home(tag_of(hash));
        loop {
            let here = self.buckets[hole];
            if here == word {
                break;
            }
            if here as u32 == NIL {
                return false;
            }
            hole = (hole + 1) & self.mask;
        }
        let mut pos = hole;
        loop {
            pos = (pos + 1) & self.mask;
            let here = self.buckets[pos];
            if here as u32 == NIL {
                break;
            }
            let home = self.home((here >> 32) as u32);
            // The entry may fill the hole if the hole is not before its home,
            // i.e. its distance from home is at least the hole's distance.
            if pos.wrapping_sub(home) & self.mask >= pos.wrapping_sub(hole) & self.mask {
                self.buckets[hole] = here;
                hole = pos;
            }
        }
        self.buckets[hole] = EMPTY;
        true
    }

    /// The longest distance of any entry from its home bucket (diagnostics
    /// and tests; O(buckets)).
    pub(crate) fn max_displacement(&self) -> usize {
        self.buckets
            .iter()
            .enumerate()
            .filter(|&(_, &w)| w as u32 != NIL)
            .map(|(pos, &w)| pos.wrapping_sub(self.home((w >> 32) as u32)) & self.mask)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_keeps_load_at_most_three_quarters() {
        assert_eq!(Index::buckets_for(0), 8);
        assert_eq!(Index::buckets_for(6), 8);
        assert_eq!(Index::buckets_for(7), 16);
        assert_eq!(Index::buckets_for(12_582_912), 1 << 24);
        assert_eq!(Index::buckets_for(12_582_913), 1 << 25);
        for cap in [1u32, 100, 1000, 1 << 20, 10_000_000] {
            let b = Index::buckets_for(cap);
            assert!(
                b.is_power_of_two() && cap as usize * 4 <= b * 3,
                "{cap} -> {b}"
            );
        }
    }

    /// Hashes chosen by hand so that several keys share a home bucket and
    /// runs wrap around the end of the array; deletion in every order must
    /// keep every remaining key findable.
    #[test]
    fn backward_shift_keeps_colliding_and_wrapping_runs_findable() {
        let shift = 32 - 3; // 8 buckets
        let h = |home: u64, salt: u64| ((home << shift) | salt) << 32;
        let keys: Vec<(u64, u32)> = vec![
            (h(7, 1), 0),
            (h(7, 2), 1),
            (h(0, 3), 2),
            (h(6, 4), 3),
            (h(7, 5), 4),
            (h(1, 6), 5),
        ];
        let orders: [&[usize]; 4] = [
            &[0, 1, 2, 3, 4, 5],
            &[5, 4, 3, 2, 1, 0],
            &[1, 3, 0, 5, 2, 4],
            &[3, 0, 4, 1, 5, 2],
        ];
        for order in orders {
            let mut index = Index::with_capacity(6);
            assert_eq!(index.buckets(), 8);
            for &(hash, slot) in &keys {
                let vacant = index.find_or_vacant(hash, |s| s == slot).unwrap_err();
                index.fill(vacant, slot);
            }
            let mut live: Vec<(u64, u32)> = keys.clone();
            for &i in order {
                let (hash, slot) = keys[i];
                assert!(index.remove(hash, slot));
                assert!(!index.remove(hash, slot));
                live.retain(|&(_, s)| s != slot);
                assert_eq!(index.find(hash, |s| s == slot), None);
                for &(hash, slot) in &live {
                    assert_eq!(
                        index.find(hash, |s| s == slot),
                        Some(slot),
                        "lost {slot} after removing {i}"
                    );
                }
            }
            assert!(index.buckets.iter().all(|&w| w == EMPTY));
        }
    }
}
