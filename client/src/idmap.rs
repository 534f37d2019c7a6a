//! Maps keyed by the `u64` ids the client files completions under: the
//! daemon's connection handles and the client's own request tickets.
//!
//! It owns only the hash of those keys; what is stored is `client`'s. Both
//! kinds of id are dense: tickets count up from 1, and a handle carries a
//! table slot (reused from the low end) beside a generation and a core. A
//! general-purpose hash scatters neighbouring ids across the whole table,
//! so filing the answers to a burst of closes costs a cache miss each
//! (measured: at 1M handles, most of the lab's client time went there).
//! This hash folds the id's 24-bit fields onto each other and keeps the
//! result as the bucket position, so neighbouring ids land in neighbouring
//! buckets, and takes the 7-bit tag the table compares first from a
//! multiplicative mix, so the tags still differ. The ids come from the
//! daemon and from this process, not from the network, so hash flooding
//! is not a concern here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from dense `u64` ids.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// The golden-ratio multiplier (Fibonacci hashing).
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;
/// The bits hashbrown's tag is taken from (the top seven).
const TAG_BITS: u64 = 0x7F << 57;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used for `u64` keys; a plain multiplicative hash for others.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(MIX);
        }
    }

    fn write_u64(&mut self, id: u64) {
        let folded = id ^ (id >> 24) ^ (id >> 48);
        self.0 = (folded & !TAG_BITS) | (folded.wrapping_mul(MIX) & TAG_BITS);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(id: u64) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(id)
    }

    /// The buckets (hashbrown probes groups of 16) that ids fall in.
    fn groups(ids: impl Iterator<Item = u64>) -> usize {
        let g: std::collections::HashSet<u64> = ids.map(|id| (hash(id) & 0xFF_FFFF) >> 4).collect();
        g.len()
    }

    #[test]
    fn neighbouring_ids_land_in_neighbouring_buckets() {
        // 1,024 consecutive tickets fill 64 groups of 16, no more.
        assert_eq!(groups(1..=1024), 65); // 1..=1024 straddles one extra group
        // 1,024 consecutive slots of one generation, on core 0 and core 3.
        assert_eq!(groups((0..1024u64).map(|s| (s << 24) | 1)), 64);
        assert_eq!(groups((0..1024u64).map(|s| (3 << 56) | (s << 24) | 7)), 64);
        // A general-purpose hash would scatter them over ~1,000 groups.
    }

    #[test]
    fn tags_vary_across_neighbours() {
        let tags: std::collections::HashSet<u64> = (1..=64u64).map(|t| hash(t) >> 57).collect();
        assert!(
            tags.len() > 32,
            "only {} distinct tags in 64 ids",
            tags.len()
        );
    }

    #[test]
    fn a_map_of_a_million_handles_files_and_forgets_them() {
        let mut m: IdMap<u32> = IdMap::default();
        for slot in 0..1_000_000u64 {
            m.insert((slot << 24) | 1, slot as u32);
        }
        assert_eq!(m.len(), 1_000_000);
        assert_eq!(m.get(&((123_456 << 24) | 1)), Some(&123_456));
        assert_eq!(m.get(&((123_456 << 24) | 2)), None);
        for slot in 0..1_000_000u64 {
            assert_eq!(m.remove(&((slot << 24) | 1)), Some(slot as u32));
        }
        assert!(m.is_empty());
    }
}
