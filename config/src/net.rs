//! Network value types of the configuration: an IPv4 address with its
//! prefix (`198.18.0.1/24`), a MAC address and the gateway's `auto|MAC`.
//!
//! Each parses from one YAML scalar and refuses what it cannot represent
//! (a prefix above 32, a MAC without six octets), so the parse error points
//! at that scalar. Whether a value makes sense next to the others (the
//! gateway on a local link, no duplicate address) is the semantic pass's
//! business, not this module's.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer};

/// An IPv4 address and the length of its on-link prefix, `ADDR/LEN`.
///
/// The prefix is mandatory in the YAML (no silent `/32`) and at most 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

/// Why a string is not an [`Ipv4Cidr`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/`.
    #[error("`{0}` has no prefix length: write ADDRESS/PREFIX, e.g. 198.18.0.1/24")]
    NoPrefix(String),
    /// The part before `/` is not a dotted quad.
    #[error("`{0}` is not an IPv4 address")]
    Addr(String),
    /// The prefix is not a number in 0..=32.
    #[error("prefix length `{0}` is not a number in 0..=32")]
    Prefix(String),
}

impl Ipv4Cidr {
    /// An address with a prefix length; `None` when `prefix_len > 32`.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Cidr> {
        (prefix_len <= 32).then_some(Ipv4Cidr { addr, prefix_len })
    }

    /// The address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0..=32.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask (`/24` → 255.255.255.0).
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX.checked_shl(32 - u32::from(self.prefix_len));
        Ipv4Addr::from(bits.unwrap_or(0))
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.netmask()))
    }

    /// The broadcast address (host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !u32::from(self.netmask()))
    }

    /// Whether `other` lies inside this prefix (is reached without a gateway).
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        u32::from(other) & u32::from(self.netmask()) == u32::from(self.network())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Ipv4Cidr, CidrError> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| CidrError::NoPrefix(s.to_owned()))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| CidrError::Addr(addr.to_owned()))?;
        // `u8::from_str` takes a leading `+`; a prefix is digits only.
        let prefix_len =
            (!len.is_empty() && len.len() <= 2 && len.bytes().all(|b| b.is_ascii_digit()))
                .then(|| len.parse::<u8>().ok())
                .flatten()
                .filter(|&l| l <= 32)
                .ok_or_else(|| CidrError::Prefix(len.to_owned()))?;
        Ok(Ipv4Cidr { addr, prefix_len })
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv4Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Whether the group bit is set (multicast or broadcast): such an
    /// address can never be a next hop.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// Whether it is 00:00:00:00:00:00.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
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

/// A string that is not six colon-separated hex octets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAC address: write six hex octets, e.g. 02:00:00:00:00:01")]
pub struct MacError(pub String);

impl FromStr for MacAddr {
    type Err = MacError;

    fn from_str(s: &str) -> Result<MacAddr, MacError> {
        let err = || MacError(s.to_owned());
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

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// The gateway's MAC: learnt with ARP (`auto`) or fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GatewayMac {
    /// Resolve with ARP at start and keep it fresh.
    #[default]
    Auto,
    /// Use this address, never ARP for the gateway.
    Fixed(MacAddr),
}

impl<'de> Deserialize<'de> for GatewayMac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GatewayMac, D::Error> {
        let s = String::deserialize(d)?;
        if s == "auto" {
            return Ok(GatewayMac::Auto);
        }
        s.parse().map(GatewayMac::Fixed).map_err(|MacError(s)| {
            de::Error::custom(format_args!(
                "`{s}` is neither `auto` nor a MAC address (six hex octets, e.g. 02:00:00:00:00:01)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_derives_network() {
        let c: Ipv4Cidr = "198.18.0.1/24".parse().unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(198, 18, 0, 255));
        assert!(c.contains(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!c.contains(Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(c.to_string(), "198.18.0.1/24");
    }

    #[test]
    fn cidr_edges() {
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        let host: Ipv4Cidr = "198.18.0.1/32".parse().unwrap();
        assert!(host.contains(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(!host.contains(Ipv4Addr::new(198, 18, 0, 2)));
    }

    #[test]
    fn cidr_rejects() {
        for bad in [
            "198.18.0.1",
            "198.18.0.1/33",
            "198.18.0.1/",
            "198.18.0.1/+8",
            "198.18.0.1/024",
            "198.18.0/24",
            "x/24",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
        assert_eq!(Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33), None);
    }

    #[test]
    fn mac_parses_and_rejects() {
        let m: MacAddr = "02:6c:67:00:00:0A".parse().unwrap();
        assert_eq!(m.0, [0x02, 0x6c, 0x67, 0, 0, 0x0a]);
        assert_eq!(m.to_string(), "02:6c:67:00:00:0a");
        assert!(!m.is_multicast());
        assert!(
            "ff:ff:ff:ff:ff:ff"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        for bad in [
            "02:6c:67:00:00",
            "02:6c:67:00:00:01:02",
            "2:6c:67:00:00:01",
            "zz:00:00:00:00:00",
            "",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
