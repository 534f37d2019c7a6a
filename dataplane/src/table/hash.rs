//! The keyed hash of a 4-tuple used by the index.
//!
//! It owns the hash function only: 12 bytes in, 64 bits out, under a 64-bit
//! per-table key. It knows nothing of buckets or slots.
//!
//! # Construction
//!
//! The tuple is read as two words, `a = local_addr:32 | remote_addr:32` and
//! `b = local_port:16 | remote_port:16`. Three 64-bit subkeys `k0, k1, k2`
//! are expanded from the table's key with SplitMix64. Then
//!
//! ```text
//! x = fold(a ^ k0, b ^ k1)        fold(x, y) = lo(x·y) ^ hi(x·y)  (128-bit product)
//! h = fold(x ^ k2, M)             M an odd 64-bit constant
//! ```
//!
//! The first folded multiply mixes every input bit into both halves of the
//! 128-bit product; the second spreads the result so that the *high* bits
//! (which pick the bucket) depend on all of it. Two multiplies and a few
//! xors: a few nanoseconds, no memory touched.
//!
//! # Flooding
//!
//! A peer chooses `remote_addr` and `remote_port` (and, when we listen on
//! many ports, some of `local_port`). With a public hash it could pick
//! tuples that all land in one probe run and turn each lookup into a linear
//! scan. Here every output depends on `k0..k2`, which derive from a key that
//! is secret and different per core and never leaves the process, so the
//! attacker cannot compute which tuples collide. This is the same argument as
//! for aHash/foldhash-style hashes; it is not a cryptographic PRF (SipHash
//! is), and a patient attacker measuring lookup latency could in principle
//! learn something about the key, so the key should come from a real random
//! source at start-up and the table should be rebuilt with a new key if
//! probe lengths ever look abnormal.

use super::handle::FourTuple;

/// An odd constant with a good bit mix (the fractional part of the golden
/// ratio), used as the fixed multiplier of the final round.
const FINAL_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// The keyed 4-tuple hasher of one table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TupleHasher {
    k0: u64,
    k1: u64,
    k2: u64,
}

/// One step of SplitMix64: a bijective scrambler used to expand the key.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 128-bit product of `x` and `y`, its two halves xored together.
#[inline(always)]
fn folded_multiply(x: u64, y: u64) -> u64 {
    let product = u128::from(x) * u128::from(y);
    (product as u64) ^ ((product >> 64) as u64)
}

impl TupleHasher {
    /// A hasher under `key` (any value; 0 is as good as any other, but the
    /// key should be secret and random per core).
    pub(crate) fn new(key: u64) -> TupleHasher {
        let mut state = key;
        TupleHasher {
            k0: splitmix64(&mut state),
            k1: splitmix64(&mut state),
            k2: splitmix64(&mut state),
        }
    }

    /// The 64-bit hash of `tuple`.
    #[inline(always)]
    pub(crate) fn hash(&self, tuple: &FourTuple) -> u64 {
        let a = (u64::from(u32::from(tuple.local_addr)) << 32)
            | u64::from(u32::from(tuple.remote_addr));
        let b = (u64::from(tuple.local_port) << 16) | u64::from(tuple.remote_port);
        let x = folded_multiply(a ^ self.k0, b ^ self.k1);
        folded_multiply(x ^ self.k2, FINAL_MULTIPLIER)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use super::*;

    fn tuple(remote: u32, port: u16) -> FourTuple {
        FourTuple {
            local_addr: Ipv4Addr::new(198, 18, 0, 1),
            remote_addr: Ipv4Addr::from(remote),
            local_port: 80,
            remote_port: port,
        }
    }

    #[test]
    fn hash_depends_on_every_field_and_on_the_key() {
        let h = TupleHasher::new(1);
        let base = tuple(0x0A00_0001, 40_000);
        let mut variants = [base; 5];
        variants[1].local_addr = Ipv4Addr::new(198, 18, 0, 2);
        variants[2].remote_addr = Ipv4Addr::new(10, 0, 0, 2);
        variants[3].local_port = 81;
        variants[4].remote_port = 40_001;
        let hashes: HashSet<u64> = variants.iter().map(|t| h.hash(t)).collect();
        assert_eq!(hashes.len(), 5);
        assert_ne!(
            TupleHasher::new(1).hash(&base),
            TupleHasher::new(2).hash(&base)
        );
        assert_eq!(
            TupleHasher::new(7).hash(&base),
            TupleHasher::new(7).hash(&base)
        );
    }

    /// Sequential ports from a handful of peers (the load generator's
    /// pattern) must spread evenly over the high bits that pick buckets.
    #[test]
    fn high_bits_of_sequential_tuples_are_evenly_spread() {
        const BITS: u32 = 12;
        const N: usize = 1 << 18;
        for key in [0u64, 0xDEAD_BEEF, u64::MAX] {
            let h = TupleHasher::new(key);
            let mut counts = vec![0u32; 1 << BITS];
            for i in 0..N {
                let t = tuple(0x0A00_0000 + (i >> 16) as u32, i as u16);
                counts[(h.hash(&t) >> (64 - BITS)) as usize] += 1;
            }
            // Mean 64 per bucket; a uniform hash keeps the max well under 2x
            // (Poisson(64) exceeds 110 with probability ~1e-7 per bucket).
            let max = *counts.iter().max().unwrap();
            let min = *counts.iter().min().unwrap();
            assert!(
                max < 110 && min > 25,
                "key {key:#x}: bucket loads {min}..{max}"
            );
        }
    }
}
