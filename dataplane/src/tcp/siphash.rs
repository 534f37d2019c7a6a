//! SipHash-2-4 with a 128-bit secret key: the keyed PRF behind initial
//! sequence numbers (RFC 6528) and SYN cookies.
//!
//! It owns only the hash function. Keys come from the engine's configuration
//! (drawn from the OS at start-up by the daemon); this module never reads
//! randomness or clocks itself.

/// A SipHash-2-4 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipKey {
    k0: u64,
    k1: u64,
}

impl SipKey {
    /// A key from two 64-bit halves.
    pub const fn new(k0: u64, k1: u64) -> SipKey {
        SipKey { k0, k1 }
    }

    /// Hashes up to 24 bytes of input given as three little-endian words and a
    /// byte length (`len` ≤ 24): the fixed-size shape every caller here has.
    pub fn hash_words(&self, words: [u64; 3], len: u8) -> u64 {
        let mut s = State::new(self);
        let full = usize::from(len / 8).min(3);
        for w in &words[..full] {
            s.compress(*w);
        }
        let tail = if full < 3 { words[full] } else { 0 };
        let rem = u32::from(len % 8);
        let tail = if rem == 0 {
            0
        } else {
            tail & ((1u64 << (rem * 8)) - 1)
        };
        s.finish(tail | (u64::from(len) << 56))
    }

    /// Hashes an arbitrary byte string (reference path, used by tests and
    /// cold paths).
    pub fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        let mut s = State::new(self);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            s.compress(u64::from_le_bytes(w));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        let b = u64::from_le_bytes(last) | ((bytes.len() as u64) << 56);
        s.finish(b)
    }
}

struct State([u64; 4]);

impl State {
    fn new(key: &SipKey) -> State {
        State([
            key.k0 ^ 0x736f_6d65_7073_6575,
            key.k1 ^ 0x646f_7261_6e64_6f6d,
            key.k0 ^ 0x6c79_6765_6e65_7261,
            key.k1 ^ 0x7465_6462_7974_6573,
        ])
    }

    #[inline(always)]
    fn round(&mut self) {
        let v = &mut self.0;
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.0[3] ^= m;
        self.round();
        self.round();
        self.0[0] ^= m;
    }

    #[inline(always)]
    fn finish(mut self, b: u64) -> u64 {
        self.compress(b);
        self.0[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        self.0[0] ^ self.0[1] ^ self.0[2] ^ self.0[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_key() -> SipKey {
        // Key 00 01 .. 0f, as in the SipHash paper's test vectors.
        SipKey::new(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)
    }

    #[test]
    fn matches_the_published_test_vectors() {
        // From the SipHash reference implementation's vectors.h (64-bit
        // output, message 00 01 02 .. len-1).
        let expected: [(usize, u64); 4] = [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
        ];
        let msg: Vec<u8> = (0u8..64).collect();
        for (len, want) in expected {
            assert_eq!(reference_key().hash_bytes(&msg[..len]), want, "len {len}");
        }
    }

    #[test]
    fn word_path_equals_byte_path() {
        let key = SipKey::new(0x1234, 0x5678_9abc);
        let bytes: Vec<u8> = (0u8..24).map(|b| b.wrapping_mul(37)).collect();
        for len in 0..=24u8 {
            let mut words = [0u64; 3];
            for (i, w) in words.iter_mut().enumerate() {
                let mut buf = [0u8; 8];
                buf.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
                *w = u64::from_le_bytes(buf);
            }
            assert_eq!(
                key.hash_words(words, len),
                key.hash_bytes(&bytes[..usize::from(len)]),
                "len {len}"
            );
        }
    }
}
