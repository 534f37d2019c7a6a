//! Initial sequence numbers (RFC 6528) and SYN cookies.
//!
//! It owns the two keyed functions a listener needs to pick sequence numbers
//! an off-path attacker cannot predict: `ISN = M + F(4-tuple, key)` with M a
//! 4 µs clock (RFC 6528 §3), and stateless SYN cookies for when a listener's
//! backlog is full, both SipHash-2-4 (the `siphasher` crate) under keys
//! of their own. Both cover the whole tuple of either family: an IPv6
//! connection's two 16-byte addresses as an IPv4 connection's two 4-byte
//! ones. Time is an argument; keys come from the caller.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;

use crate::table::FourTuple;

/// A SipHash-2-4 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SipKey([u64; 2]);

impl SipKey {
    /// SipHash-2-4 of `bytes`.
    fn hash(self, bytes: &[u8]) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.0[0], self.0[1]);
        h.write(bytes);
        h.finish()
    }
}

/// Most bytes [`tuple_bytes`] writes: two IPv6 addresses, two ports and
/// two 32-bit extras.
const TUPLE_BYTES: usize = 16 + 16 + 2 + 2 + 4 + 4;

/// The message the keyed functions hash: local address, remote address
/// (4 bytes each for IPv4, 16 for IPv6), local port, remote port, then
/// `extra`; returns the buffer and its used length.
fn tuple_bytes(t: &FourTuple, extra: &[u32]) -> ([u8; TUPLE_BYTES], usize) {
    let mut buf = [0u8; TUPLE_BYTES];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        let end = (at + bytes.len()).min(TUPLE_BYTES);
        buf[at..end].copy_from_slice(&bytes[..end - at]);
        at = end;
    };
    for addr in [t.local_addr, t.remote_addr] {
        match addr {
            std::net::IpAddr::V4(a) => put(&a.octets()),
            std::net::IpAddr::V6(a) => put(&a.octets()),
        }
    }
    put(&t.local_port.to_be_bytes());
    put(&t.remote_port.to_be_bytes());
    for e in extra {
        put(&e.to_be_bytes());
    }
    (buf, at)
}

/// The keys of one engine's sequence-number functions.
#[derive(Clone, Copy, Debug)]
pub struct IsnGenerator {
    isn_key: SipKey,
    cookie_key: SipKey,
}

/// MSS values a cookie can carry (3 bits), from common paths.
const COOKIE_MSS: [u16; 8] = [536, 1024, 1220, 1300, 1360, 1400, 1440, 1460];
/// A cookie's time counter advances every 64 s (6 bits of the µs clock
/// shifted by 26 is ≈ 67 s; we use seconds / 64).
const COOKIE_PERIOD_S: u64 = 64;
/// Cookies from the current and the previous period are accepted.
const COOKIE_MAX_AGE_PERIODS: u32 = 1;

impl IsnGenerator {
    /// The two functions under two independently drawn 128-bit secrets:
    /// knowing one key tells nothing about the other.
    pub fn new(isn_secret: [u64; 2], cookie_secret: [u64; 2]) -> IsnGenerator {
        IsnGenerator {
            isn_key: SipKey(isn_secret),
            cookie_key: SipKey(cookie_secret),
        }
    }

    /// RFC 6528 §3: `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`,
    /// with M the number of 4 µs ticks since the engine's epoch.
    pub fn isn(&self, tuple: &FourTuple, now_us: u64) -> u32 {
        let m = (now_us / 4) as u32;
        let (bytes, len) = tuple_bytes(tuple, &[]);
        let f = self.isn_key.hash(&bytes[..len]) as u32;
        m.wrapping_add(f)
    }

    /// The sequence number of a SYN-ACK sent without state: 5 bits of time
    /// counter, 3 bits of MSS index and 24 bits of keyed hash over the
    /// 4-tuple, the peer's ISN and the counter.
    pub fn cookie(
        &self,
        tuple: &FourTuple,
        peer_isn: u32,
        peer_mss: u16,
        now_s: u64,
    ) -> (u32, u16) {
        let count = (now_s / COOKIE_PERIOD_S) as u32 & 0x1f;
        let idx = COOKIE_MSS.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
        let hash = self.cookie_hash(tuple, peer_isn, count);
        let cookie = (count << 27) | ((idx as u32) << 24) | hash;
        (cookie, COOKIE_MSS[idx])
    }

    /// Checks the cookie echoed in a handshake ACK (`SEG.ACK - 1`). Returns
    /// the MSS it carries when it is genuine and fresh.
    pub fn check_cookie(
        &self,
        tuple: &FourTuple,
        peer_isn: u32,
        cookie: u32,
        now_s: u64,
    ) -> Option<u16> {
        let now_count = (now_s / COOKIE_PERIOD_S) as u32 & 0x1f;
        let count = cookie >> 27;
        let age = now_count.wrapping_sub(count) & 0x1f;
        if age > COOKIE_MAX_AGE_PERIODS {
            return None;
        }
        let idx = ((cookie >> 24) & 0x7) as usize;
        (self.cookie_hash(tuple, peer_isn, count) == cookie & 0x00ff_ffff).then(|| COOKIE_MSS[idx])
    }

    fn cookie_hash(&self, tuple: &FourTuple, peer_isn: u32, count: u32) -> u32 {
        let (bytes, len) = tuple_bytes(tuple, &[peer_isn, count]);
        (self.cookie_key.hash(&bytes[..len]) as u32) & 0x00ff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn tuple(port: u16) -> FourTuple {
        FourTuple {
            local_addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            remote_addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            local_port: 80,
            remote_port: port,
        }
    }

    fn tuple6(remote_low: u16, port: u16) -> FourTuple {
        FourTuple {
            local_addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            remote_addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, remote_low)),
            local_port: 80,
            remote_port: port,
        }
    }

    /// Every byte of both 16-byte addresses shapes the ISN and the cookie.
    #[test]
    fn isn_and_cookie_cover_the_whole_v6_tuple() {
        let g = IsnGenerator::new([1, 2], [5, 6]);
        let base = tuple6(2, 40_000);
        let isn = g.isn(&base, 0);
        let (cookie, _) = g.cookie(&base, 77, 1440, 0);
        assert_eq!(g.check_cookie(&base, 77, cookie, 0), Some(1440));
        for byte in 0..16 {
            for local in [true, false] {
                let mut t = base;
                let addr = if local {
                    &mut t.local_addr
                } else {
                    &mut t.remote_addr
                };
                let IpAddr::V6(a) = *addr else { unreachable!() };
                let mut octets = a.octets();
                octets[byte] ^= 0x40;
                *addr = IpAddr::V6(Ipv6Addr::from(octets));
                assert_ne!(g.isn(&t, 0), isn, "byte {byte} of local={local}");
                assert_eq!(g.check_cookie(&t, 77, cookie, 0), None);
            }
        }
        assert_ne!(g.isn(&tuple6(2, 40_001), 0), isn);
    }

    #[test]
    fn isn_advances_with_the_clock_and_differs_per_tuple() {
        let g = IsnGenerator::new([1, 2], [5, 6]);
        let a = g.isn(&tuple(1000), 0);
        assert_eq!(g.isn(&tuple(1000), 4_000), a.wrapping_add(1_000));
        assert_ne!(g.isn(&tuple(1001), 0), a);
        assert_ne!(
            IsnGenerator::new([3, 4], [5, 6]).isn(&tuple(1000), 0),
            a,
            "secret changes F"
        );
    }

    #[test]
    fn cookie_round_trips_and_rejects_forgeries() {
        let g = IsnGenerator::new([7, 9], [8, 10]);
        let t = tuple(40_000);
        let (c, mss) = g.cookie(&t, 12345, 1460, 1_000);
        assert_eq!(mss, 1460);
        assert_eq!(g.check_cookie(&t, 12345, c, 1_000), Some(1460));
        assert_eq!(
            g.check_cookie(&t, 12345, c, 1_000 + COOKIE_PERIOD_S),
            Some(1460),
            "one period old"
        );
        assert_eq!(
            g.check_cookie(&t, 12345, c, 1_000 + 2 * COOKIE_PERIOD_S),
            None,
            "too old"
        );
        assert_eq!(g.check_cookie(&t, 12346, c, 1_000), None, "other peer ISN");
        assert_eq!(
            g.check_cookie(&tuple(40_001), 12345, c, 1_000),
            None,
            "other tuple"
        );
        assert_eq!(g.check_cookie(&t, 12345, c ^ 1, 1_000), None, "flipped bit");
        let (_, small) = g.cookie(&t, 1, 600, 0);
        assert_eq!(small, 536, "MSS rounds down to a value the peer accepts");
    }

    #[test]
    fn siphash_matches_the_published_vectors() {
        // SipHash-2-4 reference vectors (Aumasson and Bernstein, appendix A):
        // key 00..0f, message 00..(len-1).
        let key = SipKey([0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908]);
        let msg: Vec<u8> = (0..24).collect();
        for (len, want) in [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
        ] {
            assert_eq!(key.hash(&msg[..len]), want, "len {len}");
        }
    }

    #[test]
    fn the_cookie_key_is_its_own() {
        let t = tuple(40_000);
        let a = IsnGenerator::new([7, 9], [8, 10]);
        let b = IsnGenerator::new([7, 9], [8, 11]);
        assert_eq!(a.isn(&t, 0), b.isn(&t, 0), "the ISN key alone shapes ISNs");
        assert_ne!(a.cookie(&t, 1, 1460, 0), b.cookie(&t, 1, 1460, 0));
    }
}
