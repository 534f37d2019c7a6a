//! The configuration's own value shapes around the shared vocabulary: the
//! gateway's `auto|MAC`, and the two YAML spellings of a linger setting.
//!
//! Prefixes, MAC addresses and linger settings themselves are
//! `lingerd_abi::vocab` types, parsed by their `FromStr`; each refuses what
//! it cannot represent (a prefix above 32, a MAC without six octets), so
//! the parse error points at that scalar. Whether a value makes sense next
//! to the others (the gateway on a local link, no duplicate address) is the
//! semantic pass's business, not this module's.

use std::fmt;

use lingerd_abi::vocab::{Linger, MAX_LINGER_MS, MacAddr};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};

use crate::model::MAX_LINGER_SECS;

/// The gateway's MAC: learnt with ARP (`auto`) or fixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GatewayMac {
    /// Resolve with ARP at start and keep it fresh.
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
    fn gateway_mac_text() {
        assert_eq!(GatewayMac::Auto.to_string(), "auto");
        let m = GatewayMac::Fixed(MacAddr([2, 0, 0x5e, 0, 0, 1]));
        assert_eq!(m.to_string(), "02:00:5e:00:00:01");
    }
}
