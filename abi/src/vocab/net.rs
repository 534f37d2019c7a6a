//! Addresses: an IPv4 or IPv6 [`Prefix`] (`198.18.0.1/24`,
//! `2001:db8::/32`) and an Ethernet [`MacAddr`] (`02:6c:67:00:00:01`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::ParseError;

/// An address and a prefix length, `ADDR/LEN`, IPv4 (`LEN` 0..=32) or
/// IPv6 (0..=128).
///
/// The address keeps its host bits: `198.18.0.1/24` is the local address
/// 198.18.0.1 on the link 198.18.0.0/24, as `ip addr` writes it; as a
/// filter it means the whole 198.18.0.0/24. The text form needs the `/LEN`
/// (no silent host prefix); [`Prefix::host`] makes one explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// An address with a prefix length; `None` when the length exceeds the
    /// address family's bits.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        (len <= max_len(addr)).then_some(Prefix { addr, len })
    }

    /// The prefix holding exactly `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: max_len(addr),
        }
    }

    /// The address, host bits as given.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(self.len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(self.len))),
        }
    }

    /// The highest address of the prefix (host bits set): for IPv4 the
    /// broadcast address.
    pub fn last(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) | !mask_v4(self.len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) | !mask_v6(self.len))),
        }
    }

    /// Whether `other` lies inside this prefix. An address of the other
    /// family never does.
    pub fn contains(&self, other: IpAddr) -> bool {
        match (self.addr, other) {
            (IpAddr::V4(a), IpAddr::V4(o)) => {
                let m = mask_v4(self.len);
                u32::from(a) & m == u32::from(o) & m
            }
            (IpAddr::V6(a), IpAddr::V6(o)) => {
                let m = mask_v6(self.len);
                u128::from(a) & m == u128::from(o) & m
            }
            _ => false,
        }
    }

    /// [`Prefix::contains`] for an IPv4 address.
    pub fn contains_v4(&self, other: Ipv4Addr) -> bool {
        self.contains(IpAddr::V4(other))
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Prefix, ParseError> {
        let (addr, len) = s.split_once('/').ok_or_else(|| {
            ParseError::new(format!(
                "`{s}` has no prefix length: write ADDRESS/PREFIX, e.g. 198.18.0.1/24 or 2001:db8::1/64"
            ))
        })?;
        let addr: IpAddr = addr.parse().map_err(|_| {
            ParseError::new(format!("`{addr}` is not an IPv4 address (nor an IPv6 one)"))
        })?;
        let max = max_len(addr);
        // `u8::from_str` takes a leading `+`; a prefix length is digits only.
        let len = (!len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit()))
            .then(|| len.parse::<u8>().ok())
            .flatten()
            .filter(|&l| l <= max)
            .ok_or_else(|| {
                ParseError::new(format!(
                    "prefix length `{len}` is not a number in 0..={max}"
                ))
            })?;
        Ok(Prefix { addr, len })
    }
}

/// A 48-bit Ethernet address: the configuration's gateway MAC and the
/// dataplane's frame addresses (`wire::EthernetAddress`) alike. Text form:
/// six colon-separated hex octets, `02:6c:67:00:00:01` (printed in
/// lowercase; `Debug` prints the same).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// The all-zero address (ARP requests carry it as the unknown target).
    pub const UNSPECIFIED: MacAddr = MacAddr([0; 6]);

    /// Reads an address from the first six bytes of `bytes`, or `None` if
    /// there are fewer.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        let octets: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(octets))
    }

    /// The six octets.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the broadcast address.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit (I/G, least significant bit of the first octet)
    /// is set (multicast or broadcast): such an address can never be a
    /// next hop.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this names one station: group bit clear.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally administered bit (U/L) is set.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Whether it is 00:00:00:00:00:00.
    #[inline]
    pub fn is_zero(&self) -> bool {
        *self == Self::UNSPECIFIED
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<MacAddr, ParseError> {
        let err = || {
            ParseError::new(format!(
                "`{s}` is not a MAC address: write six hex octets, e.g. 02:00:00:00:00:01"
            ))
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn v4_prefix_parses_and_derives_network() {
        let c = p("198.18.0.1/24");
        assert_eq!(c.addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(c.last(), Ipv4Addr::new(198, 18, 0, 255));
        assert!(c.contains_v4(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!c.contains_v4(Ipv4Addr::new(198, 18, 1, 1)));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(c.to_string(), "198.18.0.1/24");
        assert_eq!(p("198.18.0.0/24").to_string(), "198.18.0.0/24");
    }

    #[test]
    fn v6_prefix_parses_and_contains() {
        let c = p("2001:db8::/32");
        assert_eq!(c.prefix_len(), 32);
        assert!(c.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!c.contains("2001:db9::1".parse().unwrap()));
        assert!(!c.contains_v4(Ipv4Addr::new(32, 1, 13, 184)));
        assert_eq!(c.to_string(), "2001:db8::/32");
        assert_eq!(
            p("2001:2::1/48").network(),
            "2001:2::".parse::<IpAddr>().unwrap()
        );
        assert!(p("::/0").contains("2001:db8::1".parse().unwrap()));
        let host = p("2001:db8::7/128");
        assert!(host.contains("2001:db8::7".parse().unwrap()));
        assert!(!host.contains("2001:db8::8".parse().unwrap()));
        assert_eq!(Prefix::host(host.addr()), host);
    }

    #[test]
    fn prefix_edges() {
        let all = p("0.0.0.0/0");
        assert!(all.contains_v4(Ipv4Addr::new(8, 8, 8, 8)));
        let host = p("198.18.0.1/32");
        assert!(host.contains_v4(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(!host.contains_v4(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(Prefix::host(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))), host);
        assert_eq!(Prefix::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 33), None);
        assert!(Prefix::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128).is_some());
        assert_eq!(Prefix::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 129), None);
    }

    #[test]
    fn prefix_rejects() {
        let msg = |s: &str| s.parse::<Prefix>().unwrap_err().to_string();
        assert!(msg("198.18.0.1").contains("has no prefix length"));
        assert!(msg("198.18.0.1/33").contains("prefix length `33` is not a number in 0..=32"));
        assert!(msg("2001:db8::/129").contains("0..=128"));
        assert!(msg("198.18.0.300/24").contains("is not an IPv4 address"));
        for bad in [
            "198.18.0.1/",
            "198.18.0.1/+8",
            "198.18.0.1/0024",
            "198.18.0/24",
            "x/24",
            "/24",
            "",
            "2001:db8::/1288",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_parses_and_rejects() {
        let m: MacAddr = "02:6c:67:00:00:0A".parse().unwrap();
        assert_eq!(m.0, [0x02, 0x6c, 0x67, 0, 0, 0x0a]);
        assert_eq!(m.to_string(), "02:6c:67:00:00:0a");
        assert!(!m.is_multicast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert_eq!("ff:ff:ff:ff:ff:ff".parse(), Ok(MacAddr::BROADCAST));
        assert!(MacAddr::default().is_zero());
        for bad in [
            "02:6c:67:00:00",
            "02:6c:67:00:00:01:02",
            "2:6c:67:00:00:01",
            "zz:00:00:00:00:00",
            "02-6c-67-00-00-01",
            "+2:6c:67:00:00:01",
            "",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
