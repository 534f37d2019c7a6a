//! `lingerd-bench gen` and `gen-lab`: lingerd as a load generator aimed at a
//! device the user chose. The generator opens N connections from a set of
//! source addresses to a set of targets, optionally sends a request and
//! waits for the answer, holds them, then tears them down at a rate in one
//! close mode, and reports what the device did ([`run`] drives the engines,
//! [`report`] shapes the figures). `gen-lab` judges it on the netns lab
//! against real servers ([`dut`]: the kernel, nginx, HAProxy) beside a
//! kernel-socket generator doing the same job ([`kernel`]); [`server`] is
//! the kernel device's own process.
//!
//! This module owns the vocabulary they share: the close mode, the
//! addresses, the rates, with their text forms and checks. It starts
//! nothing.

pub mod dut;
pub mod kernel;
pub mod report;
pub mod run;
pub mod server;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;
use std::time::Duration;

/// How the generator ends each connection (`--close`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// `SO_LINGER {1,0}` and close: one RST. Confirmed when the close
    /// completes (the RST is in the port's TX ring).
    Abort,
    /// Close with linger on and the `--close-timeout` deadline: a FIN,
    /// confirmed when the device acknowledges it; a device that does not
    /// within the deadline is reset and counted as a timeout.
    Graceful,
    /// `SO_LINGER {1, ms}` and close: a FIN, confirmed when acknowledged,
    /// or an RST at the deadline (counted as a linger expiry).
    Linger {
        /// The linger time, milliseconds (1 at least).
        ms: u32,
    },
    /// `shutdown(SEND)`, then read until the device's FIN, then close:
    /// confirmed at the device's FIN.
    Half,
    /// Nothing is sent: wait for the device to close first (its FIN or
    /// RST), then close our end.
    Peer,
}

impl Close {
    /// Whether the generator sends the first closing segment.
    pub fn we_close(self) -> bool {
        self != Close::Peer
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Close::Abort => f.write_str("abort"),
            Close::Graceful => f.write_str("graceful"),
            Close::Linger { ms } => write!(
                f,
                "linger={}",
                lingerd_abi::vocab::Duration::from_millis(u64::from(*ms))
            ),
            Close::Half => f.write_str("half"),
            Close::Peer => f.write_str("peer"),
        }
    }
}

impl FromStr for Close {
    type Err = String;

    fn from_str(s: &str) -> Result<Close, String> {
        match s {
            "abort" => Ok(Close::Abort),
            "graceful" => Ok(Close::Graceful),
            "half" => Ok(Close::Half),
            "peer" => Ok(Close::Peer),
            _ => {
                let Some(t) = s.strip_prefix("linger=") else {
                    return Err(format!(
                        "unknown close mode '{s}': abort, graceful, linger=DURATION, half or peer"
                    ));
                };
                let d: lingerd_abi::vocab::Duration =
                    t.parse().map_err(|e| format!("linger={t}: {e}"))?;
                match d.as_millis_u32() {
                    Some(0) => Err("linger=0 is an abort: use --close abort".into()),
                    Some(ms) if ms <= 3_600_000 => Ok(Close::Linger { ms }),
                    _ => Err(format!("linger={t}: at most 1h")),
                }
            }
        }
    }
}

/// A source address with its prefix (`198.18.0.9/24`): the generator
/// answers ARP for it and opens connections from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The address.
    pub addr: Ipv4Addr,
    /// The on-link prefix length (1..=32).
    pub prefix_len: u8,
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Source, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("source '{s}': give ADDRESS/PREFIX, e.g. 198.18.0.9/24"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("source '{s}': '{a}' is not an IPv4 address"))?;
        let prefix_len: u8 = l
            .parse()
            .ok()
            .filter(|l| (1..=32).contains(l))
            .ok_or_else(|| format!("source '{s}': prefix length '{l}' is not 1..=32"))?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() || addr.is_loopback()
        {
            return Err(format!("source '{s}': not a unicast host address"));
        }
        Ok(Source { addr, prefix_len })
    }
}

impl Source {
    /// Whether `ip` is on this source's link.
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        u32::from(self.addr) & mask == u32::from(ip) & mask
    }
}

/// Expands `198.18.0.200-198.18.0.215/24` (a range) or one address with
/// its prefix into sources.
pub fn parse_sources(s: &str) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let Some((range, len)) = part.split_once('/') else {
            return Err(format!(
                "source '{part}': give ADDRESS/PREFIX, e.g. 198.18.0.9/24"
            ));
        };
        if let Some((from, to)) = range.split_once('-') {
            let a: Source = format!("{from}/{len}").parse()?;
            let b: Source = format!("{to}/{len}").parse()?;
            let (lo, hi) = (u32::from(a.addr), u32::from(b.addr));
            if hi < lo || hi - lo >= 4096 {
                return Err(format!(
                    "source range '{part}': from ≤ to, 4096 addresses at most"
                ));
            }
            for ip in lo..=hi {
                out.push(Source {
                    addr: Ipv4Addr::from(ip),
                    prefix_len: a.prefix_len,
                });
            }
        } else {
            out.push(part.parse()?);
        }
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    let mut seen: Vec<Ipv4Addr> = out.iter().map(|s| s.addr).collect();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err("a source address is given twice".into());
    }
    Ok(out)
}

/// Parses `198.18.0.2:80` targets (comma-separated; `ADDR:P1-P2` is a port
/// range).
pub fn parse_targets(s: &str) -> Result<Vec<SocketAddrV4>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, p) = part
            .rsplit_once(':')
            .ok_or_else(|| format!("target '{part}': give ADDRESS:PORT, e.g. 198.18.0.2:80"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("target '{part}': '{a}' is not an IPv4 address"))?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
            return Err(format!("target '{part}': not a unicast address"));
        }
        let port = |t: &str| -> Result<u16, String> {
            t.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("target '{part}': port '{t}' is not 1..=65535"))
        };
        let (lo, hi) = match p.split_once('-') {
            Some((x, y)) => (port(x)?, port(y)?),
            None => (port(p)?, port(p)?),
        };
        if hi < lo || hi - lo >= 1024 {
            return Err(format!(
                "target '{part}': port range from ≤ to, 1024 ports at most"
            ));
        }
        out.extend((lo..=hi).map(|p| SocketAddrV4::new(addr, p)));
    }
    if out.is_empty() {
        return Err("no target given".into());
    }
    Ok(out)
}

/// A rate in events per second: `500000`, `200k`, `1.5M`; 0 is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate(pub u32);

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let (num, mult) = match s.as_bytes().last() {
            Some(b'k' | b'K') => (&s[..s.len() - 1], 1e3),
            Some(b'M' | b'm') => (&s[..s.len() - 1], 1e6),
            _ => (s, 1.0),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("rate '{s}': a number per second, e.g. 200k or 1.5M"))?;
        let v = v * mult;
        if !(1.0..=100e6).contains(&v) {
            return Err(format!("rate '{s}': 1 to 100M per second"));
        }
        Ok(Rate(v.round() as u32))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.0)
    }
}

/// The ephemeral ports the generator opens from (the engine's range).
pub const EPHEMERAL: (u16, u16) = (1024, 65_535);

/// Connections one (source, target) pair can carry.
pub const PER_PAIR: usize = (EPHEMERAL.1 - EPHEMERAL.0) as usize + 1;

/// The most connections `sources` × `targets` can carry without a 4-tuple
/// repeating.
pub fn capacity(sources: usize, targets: usize) -> usize {
    sources.saturating_mul(targets).saturating_mul(PER_PAIR)
}

/// The one line a run prints on stderr when its close phase begins (so
/// that a supervisor, `gen-lab`, can sample the device at that moment).
pub const CLOSE_PHASE_MARK: &str = "gen: close phase begins";

/// How long a `gen` run may take at most by default (open, hold, close).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_modes_parse_and_print() {
        for s in [
            "abort",
            "graceful",
            "half",
            "peer",
            "linger=2s",
            "linger=200ms",
        ] {
            assert_eq!(s.parse::<Close>().unwrap().to_string(), s);
        }
        assert_eq!("linger=2s".parse::<Close>(), Ok(Close::Linger { ms: 2000 }));
        assert!("linger=0s".parse::<Close>().unwrap_err().contains("abort"));
        assert!("linger=2h".parse::<Close>().is_err());
        assert!(
            "rst"
                .parse::<Close>()
                .unwrap_err()
                .contains("unknown close mode")
        );
        assert!(!Close::Peer.we_close() && Close::Half.we_close());
    }

    #[test]
    fn sources_expand_ranges_and_refuse_bad_input() {
        let s = parse_sources("198.18.0.200-198.18.0.203/24,198.18.1.9/16").unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[3].addr, Ipv4Addr::new(198, 18, 0, 203));
        assert_eq!(s[4].prefix_len, 16);
        assert!(s[0].on_link(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(!s[0].on_link(Ipv4Addr::new(198, 18, 1, 1)));
        for bad in [
            "198.18.0.9",
            "198.18.0.9/33",
            "x/24",
            "198.18.0.9-198.18.0.1/24",
            "",
            "0.0.0.0/8",
        ] {
            assert!(parse_sources(bad).is_err(), "{bad}");
        }
        assert!(
            parse_sources("198.18.0.9/24,198.18.0.9/24")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn targets_and_rates() {
        let t = parse_targets("198.18.0.1:80,198.18.0.1:8000-8002").unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[3], SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 8002));
        for bad in [
            "198.18.0.1",
            "198.18.0.1:0",
            "x:80",
            "198.18.0.1:9-8",
            "224.0.0.1:80",
        ] {
            assert!(parse_targets(bad).is_err(), "{bad}");
        }
        assert_eq!("200k".parse::<Rate>(), Ok(Rate(200_000)));
        assert_eq!("1.5M".parse::<Rate>(), Ok(Rate(1_500_000)));
        assert_eq!("750".parse::<Rate>(), Ok(Rate(750)));
        assert!("0".parse::<Rate>().is_err() && "fast".parse::<Rate>().is_err());
        assert_eq!(capacity(16, 1), 16 * 64_512);
    }
}
