//! The configuration's own value shapes around the shared vocabulary: the
//! gateway's address (`198.18.0.254`, `fe80::1%eth0`) and its `auto|MAC`,
//! and the two YAML spellings of a linger setting.
//!
//! Prefixes, MAC addresses and linger settings themselves are
//! `lingerd_abi::vocab` types, parsed by their `FromStr`; each refuses what
//! it cannot represent (a prefix above 32, a MAC without six octets), so
//! the parse error points at that scalar. Whether a value makes sense next
//! to the others (the gateway on a local link, no duplicate address) is the
//! semantic pass's business, not this module's.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use lingerd_abi::vocab::{Linger, MAX_LINGER_MS, MacAddr};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};

use crate::model::MAX_LINGER_SECS;

/// A gateway's address, IPv4 or IPv6, with the optional `%SCOPE` an IPv6
/// link-local address may carry (`fe80::1%eth0`, as `ip -6 route` shows
/// it). Whether the scope fits (it must name `interface`) is the semantic
/// pass's question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayIp {
    /// The address.
    pub addr: IpAddr,
    /// The interface named after `%`, if any.
    pub scope: Option<String>,
}

impl GatewayIp {
    /// An address without a scope.
    pub fn new(addr: IpAddr) -> GatewayIp {
        GatewayIp { addr, scope: None }
    }
}

impl fmt::Display for GatewayIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(s) => write!(f, "{}%{s}", self.addr),
            None => self.addr.fmt(f),
        }
    }
}

impl FromStr for GatewayIp {
    type Err = String;

    fn from_str(s: &str) -> Result<GatewayIp, String> {
        let (addr, scope) = match s.split_once('%') {
            Some((a, scope)) => (a, Some(scope)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("`{addr}` is not an IPv4 or IPv6 address (e.g. 198.18.0.254, 2001:db8::1, fe80::1%eth0)")
        })?;
        let scope = match scope {
            None => None,
            Some("") => {
                return Err(format!(
                    "`{s}`: nothing after `%`; write fe80::1%IFACE or leave the scope out"
                ));
            }
            Some(_) if !is_link_local_v6(addr) => {
                return Err(format!(
                    "`{s}`: only an IPv6 link-local address (fe80::/10) takes a %scope"
                ));
            }
            Some(scope) => Some(scope.to_owned()),
        };
        Ok(GatewayIp { addr, scope })
    }
}

/// Whether `a` is an IPv6 link-local unicast address (fe80::/10).
pub fn is_link_local_v6(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

impl Serialize for GatewayIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GatewayIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GatewayIp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// The gateway's MAC: learnt with ARP or Neighbor Discovery (`auto`) or
/// fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GatewayMac {
    /// Resolve with ARP (IPv4) or Neighbor Discovery (IPv6) at start and
    /// keep it fresh.
    #[default]
    Auto,
    /// Use this address, never ARP for the gateway.
    Fixed(MacAddr),
}

impl fmt::Display for GatewayMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayMac::Auto => f.write_str("auto"),
            GatewayMac::Fixed(m) => m.fmt(f),
        }
    }
}

impl Serialize for GatewayMac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GatewayMac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GatewayMac, D::Error> {
        let s = String::deserialize(d)?;
        if s == "auto" {
            return Ok(GatewayMac::Auto);
        }
        s.parse().map(GatewayMac::Fixed).map_err(|_| {
            de::Error::custom(format_args!(
                "`{s}` is neither `auto` nor a MAC address (six hex octets, e.g. 02:00:00:00:00:01)"
            ))
        })
    }
}

/// The map spelling of a linger setting, before the unit is settled.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LingerMap {
    on: bool,
    secs: Option<u32>,
    ms: Option<u32>,
}

impl LingerMap {
    fn settle(self) -> Result<Linger, String> {
        let ms = match (self.secs, self.ms) {
            (Some(_), Some(_)) => return Err("linger: give `secs` or `ms`, not both".to_owned()),
            (Some(s), None) if s > MAX_LINGER_SECS => {
                return Err(format!(
                    "linger secs {s} is above {MAX_LINGER_SECS}, the most `l_linger` can express"
                ));
            }
            (Some(s), None) => s * 1000,
            (None, Some(ms)) if ms > MAX_LINGER_MS => {
                return Err(format!(
                    "linger ms {ms} is above {MAX_LINGER_MS} ({MAX_LINGER_SECS} s, the most `l_linger` can express)"
                ));
            }
            (None, Some(ms)) => ms,
            (None, None) => 0,
        };
        Ok(Linger { on: self.on, ms })
    }
}

struct LingerVisitor;

impl<'de> Visitor<'de> for LingerVisitor {
    type Value = Linger;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a linger setting: `off`, `on,5s`, or {on, secs} / {on, ms}")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Linger, E> {
        s.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Linger, A::Error> {
        let m = LingerMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
        m.settle().map_err(de::Error::custom)
    }
}

/// `close.default_linger`: the setting's text (`on,5s`, the grammar
/// [`Linger`]'s `FromStr` and `lingerd ctl` share) or the map
/// `{on, secs}` / `{on, ms}`.
pub(crate) fn linger_yaml<'de, D: Deserializer<'de>>(d: D) -> Result<Linger, D::Error> {
    d.deserialize_any(LingerVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_maps_settle_their_unit() {
        let m = |on, secs, ms| LingerMap { on, secs, ms }.settle();
        assert_eq!(m(true, Some(2), None), Ok(Linger { on: true, ms: 2000 }));
        assert_eq!(m(true, None, Some(250)), Ok(Linger { on: true, ms: 250 }));
        assert_eq!(m(false, None, None), Ok(Linger::OFF));
        assert!(m(true, Some(1), Some(1)).unwrap_err().contains("not both"));
        assert!(
            m(true, Some(65_536), None)
                .unwrap_err()
                .contains("above 65535")
        );
        assert!(m(true, None, Some(MAX_LINGER_MS + 1)).is_err());
    }

    #[test]
    fn gateway_ips_and_scopes() {
        let g: GatewayIp = "fe80::1%eth0".parse().unwrap();
        assert_eq!(g.addr, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(g.scope.as_deref(), Some("eth0"));
        assert_eq!(g.to_string(), "fe80::1%eth0");
        let g: GatewayIp = "2001:db8::fe".parse().unwrap();
        assert_eq!((g.scope, g.addr.is_ipv6()), (None, true));
        assert_eq!(
            "198.18.0.254".parse::<GatewayIp>().unwrap().to_string(),
            "198.18.0.254"
        );
        assert!(
            "fe80::1%"
                .parse::<GatewayIp>()
                .unwrap_err()
                .contains("nothing after")
        );
        assert!(
            "2001:db8::1%eth0"
                .parse::<GatewayIp>()
                .unwrap_err()
                .contains("link-local")
        );
        assert!(
            "198.18.0.254%eth0"
                .parse::<GatewayIp>()
                .unwrap_err()
                .contains("link-local")
        );
        assert!(
            "198.18.0"
                .parse::<GatewayIp>()
                .unwrap_err()
                .contains("not an IPv4 or IPv6")
        );
        assert!(is_link_local_v6("febf::1".parse().unwrap()));
        assert!(!is_link_local_v6("fec0::1".parse().unwrap()));
    }

    #[test]
    fn gateway_mac_text() {
        assert_eq!(GatewayMac::Auto.to_string(), "auto");
        let m = GatewayMac::Fixed(MacAddr([2, 0, 0x5e, 0, 0, 1]));
        assert_eq!(m.to_string(), "02:00:5e:00:00:01");
    }
}
