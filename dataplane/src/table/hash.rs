//! The keyed hash of a stored 4-tuple key used by the index.
//!
//! It owns the hash function and the packed key it reads: 16 bytes of
//! remote address (IPv4 stored v4-mapped), the two ports and the local
//! address's index in the table's address list; 64 bits out, under a 64-bit
//! per-table key. It knows nothing of buckets or slots.
//!
//! # Construction
//!
//! The key is read as three words: the remote address's two halves `r_hi`,
//! `r_lo`, and `b = local_index:8 | local_port:16 | remote_port:16`. Four
//! 64-bit subkeys `k0..k3` are expanded from the table's key with
//! SplitMix64. Then
//!
//! ```text
//! x = fold(r_hi ^ k0, r_lo ^ k1)   fold(x, y) = lo(x·y) ^ hi(x·y)  (128-bit product)
//! y = fold(b ^ k2, r_lo ^ k3)
//! h = fold(x ^ y, M)               M an odd 64-bit constant
//! ```
//!
//! Each folded multiply mixes every input bit into both halves of the
//! 128-bit product; the last one spreads the result so that the *high* bits
//! (which pick the bucket) depend on all of it. `x` and `y` are independent,
//! so the chain is two multiplies deep, as it was for 12-byte IPv4 keys:
//! a few nanoseconds, no memory touched. An IPv4 key costs the same as an
//! IPv6 one (its `r_hi` is the constant v4-mapped prefix).
//!
//! # Flooding
//!
//! A peer chooses the remote address and port (and, when we listen on
//! many ports, some of `local_port`). With a public hash it could pick
//! tuples that all land in one probe run and turn each lookup into a linear
//! scan. Here every output depends on `k0..k3`, which derive from a key that
//! is secret and different per core and never leaves the process, so the
//! attacker cannot compute which tuples collide. This is the same argument as
//! for aHash/foldhash-style hashes; it is not a cryptographic PRF (SipHash
//! is), and a patient attacker measuring lookup latency could in principle
//! learn something about the key, so the key should come from a real random
//! source at start-up and the table should be rebuilt with a new key if
//! probe lengths ever look abnormal.

/// An odd constant with a good bit mix (the fractional part of the golden
/// ratio), used as the fixed multiplier of the final round.
const FINAL_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// A 4-tuple as a table stores it: the remote address in full (IPv4
/// v4-mapped), the ports, and the local address as an index into the
/// table's address list (whose entry also gives the family).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    /// The remote address (`u128::from(Ipv6Addr)`; IPv4 v4-mapped).
    pub(crate) remote: u128,
    /// `local_port:16 | remote_port:16`.
    pub(crate) ports: u32,
    /// The local address's index (< `MAX_LOCAL_ADDRS`).
    pub(crate) local: u8,
}

/// The keyed tuple hasher of one table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TupleHasher {
    k0: u64,
    k1: u64,
    k2: u64,
    k3: u64,
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
            k3: splitmix64(&mut state),
        }
    }

    /// The 64-bit hash of `key`.
    #[inline(always)]
    pub(crate) fn hash(&self, key: &Key) -> u64 {
        let r = key.remote;
        let (r_hi, r_lo) = ((r >> 64) as u64, r as u64);
        let b = (u64::from(key.local) << 32) | u64::from(key.ports);
        // Two independent products (they run side by side), then the final
        // round: two multiplies deep, as for a 12-byte IPv4 key.
        let x = folded_multiply(r_hi ^ self.k0, r_lo ^ self.k1);
        let y = folded_multiply(b ^ self.k2, r_lo ^ self.k3);
        folded_multiply(x ^ y, FINAL_MULTIPLIER)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn key(remote: u32, port: u16) -> Key {
        Key {
            remote: u128::from(Ipv4Addr::from(remote).to_ipv6_mapped()),
            ports: (80 << 16) | u32::from(port),
            local: 0,
        }
    }

    #[test]
    fn hash_depends_on_every_field_and_on_the_key() {
        let h = TupleHasher::new(1);
        let base = key(0x0A00_0001, 40_000);
        let mut variants = [base; 6];
        variants[1].local = 1;
        variants[2].remote = u128::from(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped());
        variants[3].ports = (81 << 16) | 40_000;
        variants[4].ports = (80 << 16) | 40_001;
        variants[5].remote = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x0a00, 1));
        let hashes: HashSet<u64> = variants.iter().map(|t| h.hash(t)).collect();
        assert_eq!(hashes.len(), 6);
        assert_ne!(
            TupleHasher::new(1).hash(&base),
            TupleHasher::new(2).hash(&base)
        );
        assert_eq!(
            TupleHasher::new(7).hash(&base),
            TupleHasher::new(7).hash(&base)
        );
    }

    /// The buckets' high bits must be evenly spread for `n` keys made by `make`.
    fn assert_spread(make: impl Fn(usize) -> Key) {
        const BITS: u32 = 12;
        const N: usize = 1 << 18;
        for seed in [0u64, 0xDEAD_BEEF, u64::MAX] {
            let h = TupleHasher::new(seed);
            let mut counts = vec![0u32; 1 << BITS];
            for i in 0..N {
                counts[(h.hash(&make(i)) >> (64 - BITS)) as usize] += 1;
            }
            // Mean 64 per bucket; a uniform hash keeps the max well under 2x
            // (Poisson(64) exceeds 110 with probability ~1e-7 per bucket).
            let max = *counts.iter().max().unwrap();
            let min = *counts.iter().min().unwrap();
            assert!(
                max < 110 && min > 25,
                "key {seed:#x}: bucket loads {min}..{max}"
            );
        }
    }

    /// Sequential ports from a handful of peers (the load generator's
    /// pattern) must spread evenly over the high bits that pick buckets.
    #[test]
    fn high_bits_of_sequential_tuples_are_evenly_spread() {
        assert_spread(|i| key(0x0A00_0000 + (i >> 16) as u32, i as u16));
    }

    /// The same for IPv6 peers that differ only in their low bits (one /64)
    /// and only in their prefix.
    #[test]
    fn high_bits_of_sequential_v6_tuples_are_evenly_spread() {
        let v6 = |hi: u64, lo: u64, port: u16| Key {
            remote: (u128::from(hi) << 64) | u128::from(lo),
            ports: (443 << 16) | u32::from(port),
            local: 1,
        };
        assert_spread(|i| v6(0x2001_0db8_0000_0000, (i >> 16) as u64, i as u16));
        assert_spread(|i| v6(0x2001_0db8_0000_0000 | (i as u64 >> 8), 1, i as u16 & 0xff));
    }
}
