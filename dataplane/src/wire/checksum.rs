//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! This module owns the one's-complement arithmetic every header checksum in
//! `wire` is built from: a fast sum over a byte slice, the IPv4 and IPv6
//! pseudo-header sums, folding, and the RFC 1624 update used by the RST
//! templates. It knows no
//! header layout and may not touch packet buffers other than reading the slice
//! it is given.
//!
//! Vocabulary used throughout `wire`:
//! - an *accumulator* is an unfolded `u64` one's-complement sum (carries are
//!   folded back in as they happen, so any `u64` is a valid accumulator and
//!   accumulators may be [`add`]ed);
//! - a *sum* is an accumulator [`fold`]ed to 16 bits;
//! - a *checksum* is the complement of a sum (`!sum`), the value stored in a
//!   header field.
//!
//! [`fold`] never returns 0 for an accumulator built from data with at least
//! one non-zero 16-bit word (one's-complement addition of non-negative values
//! can only reach "negative zero", `0xFFFF`). Every IPv4 header (version
//! nibble) and every TCP or ICMPv6 pseudo header (next header 6 or 58) has
//! such a word, so a
//! stored checksum is never `0xFFFF` and the incremental update below is
//! bit-exact against recomputation (RFC 1624 §3, §5).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds two accumulators with end-around carry (RFC 1071 §2(A): one's
/// complement addition is associative and commutative, so partial sums may be
/// combined in any order).
#[inline(always)]
pub const fn add(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + carry as u64
}

/// Folds an accumulator to a 16-bit one's-complement sum (RFC 1071 §4.1, the
/// "fold 32-bit sum to 16 bits" loop, done from 64 bits).
#[inline(always)]
pub const fn fold(acc: u64) -> u16 {
    // 2^16 - 1 divides 2^32 - 1 and 2^64 - 1, so folding halves keeps the
    // value modulo 0xFFFF; each step shrinks the width, and the last two
    // steps absorb the at-most-one-bit carries.
    let acc = (acc >> 32) + (acc & 0xffff_ffff); // <= 33 bits
    let acc = (acc >> 32) + (acc & 0xffff_ffff); // <= 32 bits
    let acc = (acc >> 16) + (acc & 0xffff); // <= 17 bits
    let acc = (acc >> 16) + (acc & 0xffff); // <= 16 bits
    acc as u16
}

/// The accumulator of `data` read as big-endian 16-bit words; an odd final
/// byte is padded with a zero byte on the right (RFC 1071 §1).
///
/// Eight bytes are added at a time as one big-endian `u64` word: the sum of
/// 64-bit words modulo `2^64 - 1` folds to the same 16-bit sum as the sum of
/// 16-bit words (RFC 1071 §2(B), byte order independence generalised to wider
/// words). Two words per loop iteration keep two carries in flight. The tail
/// (under 16 bytes) is taken as at most one 8-, one 4-, one 2- and one 1-byte
/// piece, each starting at an even offset, so a 4-byte piece read as a `u32`
/// is two 16-bit words (`2^16 ≡ 1` modulo `2^16 - 1`): a 20-byte header is
/// one loop iteration and one `u32`, with no per-word loop.
///
/// Concatenation: `add(sum(a), sum(b)) == sum(a ++ b)` only when `a` has even
/// length.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    let mut acc0: u64 = 0;
    let mut acc1: u64 = 0;
    let mut chunks = data.chunks_exact(16);
    for chunk in &mut chunks {
        let (lo, hi) = chunk.split_at(8);
        // Both conversions are infallible: `chunks_exact(16)` halves are 8 bytes.
        let lo = u64::from_be_bytes(lo.try_into().unwrap_or([0; 8]));
        let hi = u64::from_be_bytes(hi.try_into().unwrap_or([0; 8]));
        acc0 = add(acc0, lo);
        acc1 = add(acc1, hi);
    }
    let mut acc = add(acc0, acc1);
    let mut rest = chunks.remainder();
    if let Some((eight, tail)) = rest.split_first_chunk::<8>() {
        acc = add(acc, u64::from_be_bytes(*eight));
        rest = tail;
    }
    if let Some((four, tail)) = rest.split_first_chunk::<4>() {
        acc = add(acc, u64::from(u32::from_be_bytes(*four)));
        rest = tail;
    }
    if let Some((two, tail)) = rest.split_first_chunk::<2>() {
        acc = add(acc, u64::from(u16::from_be_bytes(*two)));
        rest = tail;
    }
    if let [last] = rest {
        acc = add(acc, u64::from(*last) << 8);
    }
    acc
}

/// Whether data whose accumulator is `acc` (stored checksum included)
/// verifies, i.e. `fold(acc) == 0xFFFF` (RFC 1071 §1 (4)), without folding:
/// `fold` keeps the value modulo `2^16 - 1` and maps only 0 to 0, so its
/// result is `0xFFFF` exactly when `acc` is a non-zero multiple of
/// `2^16 - 1` (a multiply and a shift instead of four folding steps).
#[inline(always)]
pub const fn verifies(acc: u64) -> bool {
    acc != 0 && acc.is_multiple_of(0xffff)
}

/// The folded 16-bit one's-complement sum of `data` (not complemented).
#[inline]
pub fn data(data: &[u8]) -> u16 {
    fold(sum(data))
}

/// The checksum to store for the data whose accumulator is `acc`.
#[inline(always)]
pub const fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The accumulator of the IPv4 pseudo header (RFC 9293 §3.1, "TCP
/// checksum"; RFC 768 for UDP): source, destination, zero, protocol and the
/// transport length (header plus data, excluding the pseudo header).
#[inline]
pub fn pseudo_header_ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u64 {
    // An address is two 16-bit words; as one `u32` it is `hi · 2^16 + lo`,
    // and `2^16 ≡ 1` modulo `2^16 - 1`, so adding the `u32`s is adding the
    // words. Four values below 2^32: no carry out of 64 bits is possible.
    u64::from(u32::from(src)) + u64::from(u32::from(dst)) + u64::from(protocol) + u64::from(length)
}

/// The accumulator of the IPv6 pseudo header (RFC 8200 §8.1): source,
/// destination, the 32-bit upper-layer packet length, three zero bytes and
/// the next header value. `src` and `dst` are the addresses the upper layer
/// sees: for a packet with a Routing header, the final destination.
#[inline]
pub fn pseudo_header_ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u64 {
    // An address is eight 16-bit words; as two `u64` halves it is
    // `hi · 2^64 + lo`, and `2^64 ≡ 1` modulo `2^16 - 1`, so adding the
    // halves is adding the words. The halves may carry, hence `add`.
    let (s, d) = (u128::from(src), u128::from(dst));
    let addrs = add(
        add((s >> 64) as u64, s as u64),
        add((d >> 64) as u64, d as u64),
    );
    add(addrs, u64::from(length) + u64::from(next_header))
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered
/// data changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
///
/// Eqn. 3 (not eqn. 2) is used because it never produces the `0x0000` /
/// `0xFFFF` mix-up of RFC 1624 §3: the result equals a full recomputation
/// whenever the new data has a non-zero word (see the module doc).
#[inline(always)]
pub const fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    let acc = (!checksum) as u64 + (!old) as u64 + new as u64;
    !fold(acc)
}

/// RFC 1624 eqn. 3 for a 32-bit field (two adjacent 16-bit words, at an even
/// offset of the covered data), e.g. an address, SEQ or ACK.
#[inline(always)]
pub const fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let acc = (!checksum) as u64
        + (!(old >> 16) & 0xffff) as u64
        + (!old & 0xffff) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward RFC 1071 §4.1 loop, as a reference.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(finish(sum(&bytes)), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header; its checksum field is 0xb861.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&header)), 0xb861);
    }

    #[test]
    fn every_length_matches_reference() {
        // Bytes chosen to generate many carries; all lengths 0..=70 exercise
        // the 16-byte loop, the 2-byte loop and the odd byte.
        let data_bytes: Vec<u8> = (0..70u32).map(|i| (0xff - (i * 7) % 13) as u8).collect();
        for len in 0..=data_bytes.len() {
            assert_eq!(
                data(&data_bytes[..len]),
                reference(&data_bytes[..len]),
                "len {len}"
            );
        }
    }

    #[test]
    fn all_ones_does_not_fold_to_zero() {
        assert_eq!(data(&[0xff; 64]), 0xffff);
        assert_eq!(data(&[]), 0);
        assert_eq!(fold(u64::MAX), 0xffff);
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(198, 18, 0, 1);
        let dst = Ipv4Addr::new(198, 19, 255, 254);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(fold(pseudo_header_ipv4(src, dst, 6, 0x05dc)), data(&bytes));
    }

    #[test]
    fn pseudo_header_ipv6_matches_bytes() {
        // RFC 8200 §8.1 layout: src, dst, 32-bit length, 3 zero bytes, next
        // header. All-ones addresses make both 64-bit halves carry.
        let cases = [
            (
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0xabcd, 2),
                6u8,
                20u32,
            ),
            (
                Ipv6Addr::from(u128::MAX),
                Ipv6Addr::from(u128::MAX - 1),
                58,
                0x0001_0000,
            ),
            (Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST, 6, u32::MAX),
        ];
        for (src, dst, nh, len) in cases {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&src.octets());
            bytes.extend_from_slice(&dst.octets());
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, nh]);
            assert_eq!(
                fold(pseudo_header_ipv6(src, dst, nh, len)),
                reference(&bytes),
                "{src} {dst} {nh} {len}"
            );
        }
    }

    #[test]
    fn verifies_is_fold_to_all_ones() {
        let samples = [
            0,
            1,
            0xfffe,
            0xffff,
            0x1_fffe,
            0x1_ffff,
            0xffff_0000,
            u64::MAX,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for acc in samples.into_iter().chain((0..10_000).map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            x >> (x % 48)
        })) {
            assert_eq!(verifies(acc), fold(acc) == 0xffff, "{acc:#x}");
        }
    }

    #[test]
    fn rfc1624_corner_case() {
        // RFC 1624 §3's example: a header whose sum is 0xCD7A except for a
        // field changing from 0x5555 to 0x3285; the stored checksum is 0xDD2F
        // before and 0x0000 after. Eqn. 2 gives 0xFFFF, eqn. 3 gives 0x0000.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn update_u32_equals_two_u16_updates() {
        let hc = 0x1234;
        let (old, new) = (0xdead_beef_u32, 0x0102_0304_u32);
        let twice = update_u16(
            update_u16(hc, (old >> 16) as u16, (new >> 16) as u16),
            old as u16,
            new as u16,
        );
        assert_eq!(update_u32(hc, old, new), twice);
    }
}
