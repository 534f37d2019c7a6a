//! The `dpdk:` section's own value shapes: the short device form
//! (`memif:socket=/run/lingerd/memif0.sock,role=server`,
//! `af_packet:iface=eth1`, `tap:iface=dtap0`, a PCI address) and the
//! devices named in `eal_args` (`--vdev=…`, `-a …`).
//!
//! A device parses into a [`DpdkDevice`]: its kind and its `key=value`
//! options, each key checked against what that DPDK 22.11 driver accepts,
//! so a typo is a configuration error with a line and column instead of a
//! probe failure at start. It knows DPDK's words (driver names, option
//! keys) but nothing of the dataplane: the daemon turns a device into the
//! EAL's device arguments. Whether the device fits the rest of the file
//! (the port is `dpdk`, one device only) is the semantic pass's business.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};

/// The kinds of device the short form names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// `memif:` a shared-memory packet interface (DPDK's `net_memif`), to
    /// another process or container.
    Memif,
    /// `af_packet:` a kernel interface through a `PACKET_MMAP` socket
    /// (DPDK's `net_af_packet`).
    AfPacket,
    /// `tap:` a kernel TAP device DPDK creates (DPDK's `net_tap`).
    Tap,
    /// A PCI address (`0000:03:00.0`): a NIC bound to vfio-pci.
    Pci,
}

impl DeviceKind {
    /// The short form's word (`memif`), or `pci`.
    pub fn word(self) -> &'static str {
        match self {
            DeviceKind::Memif => "memif",
            DeviceKind::AfPacket => "af_packet",
            DeviceKind::Tap => "tap",
            DeviceKind::Pci => "pci",
        }
    }

    /// The DPDK driver the kind stands for (`net_memif`); `None` for PCI,
    /// whose driver EAL picks.
    pub fn driver(self) -> Option<&'static str> {
        match self {
            DeviceKind::Memif => Some("net_memif"),
            DeviceKind::AfPacket => Some("net_af_packet"),
            DeviceKind::Tap => Some("net_tap"),
            DeviceKind::Pci => None,
        }
    }

    /// The option keys DPDK 22.11's driver accepts (its kvargs list).
    fn keys(self) -> &'static [&'static str] {
        match self {
            DeviceKind::Memif => &[
                "id",
                "role",
                "bsize",
                "rsize",
                "socket",
                "socket-abstract",
                "owner-uid",
                "owner-gid",
                "mac",
                "secret",
                "zero-copy",
            ],
            DeviceKind::AfPacket => &[
                "iface",
                "qpairs",
                "blocksz",
                "framesz",
                "framecnt",
                "qdisc_bypass",
                "fanout_mode",
            ],
            DeviceKind::Tap => &["iface", "mac", "remote", "persist"],
            DeviceKind::Pci => &[],
        }
    }
}

/// `dpdk.device`: one DPDK device in the short form (see the module text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkDevice {
    /// What it is.
    pub kind: DeviceKind,
    /// Its options, in the order written (for PCI: none).
    pub options: Vec<(String, String)>,
    /// For PCI: the address with its domain (`0000:03:00.0`), the name
    /// DPDK gives the device; empty otherwise.
    pub pci: String,
}

impl DpdkDevice {
    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A PCI address, `DDDD:BB:DD.F` or `BB:DD.F`, with the domain added.
pub(crate) fn pci_address(s: &str) -> Option<String> {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, rest) = match parts[..] {
        [d, b, r] => (d, b, r),
        [b, r] => ("0000", b, r),
        _ => return None,
    };
    let (dev, func) = rest.split_once('.')?;
    let func_ok = func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7');
    (hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && func_ok)
        .then(|| format!("{domain}:{bus}:{dev}.{func}").to_lowercase())
}

/// Linux's `dev_valid_name()` for an interface name.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c == ',' || c == '=' || c.is_whitespace())
}

impl FromStr for DpdkDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<DpdkDevice, String> {
        let s = s.trim();
        if let Some(pci) = pci_address(s) {
            return Ok(DpdkDevice {
                kind: DeviceKind::Pci,
                options: Vec::new(),
                pci,
            });
        }
        let (word, rest) = s.split_once(':').unwrap_or((s, ""));
        let kind = match word {
            "memif" => DeviceKind::Memif,
            "af_packet" => DeviceKind::AfPacket,
            "tap" => DeviceKind::Tap,
            _ => {
                return Err(format!(
                    "`{s}` is not a DPDK device: write `memif:socket=PATH,role=server|client`, \
                     `af_packet:iface=NAME`, `tap:iface=NAME` or a PCI address (0000:03:00.0); \
                     anything else goes in eal_args (--vdev=...)"
                ));
            }
        };
        let mut options: Vec<(String, String)> = Vec::new();
        for kv in rest.split(',').filter(|kv| !kv.trim().is_empty()) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(format!("{word} option `{kv}` is not key=value"));
            };
            let (k, v) = (k.trim(), v.trim());
            if !kind.keys().contains(&k) {
                return Err(format!(
                    "{word} has no option `{k}` (DPDK 22.11's {} takes: {})",
                    kind.driver().unwrap_or(word),
                    kind.keys().join(", ")
                ));
            }
            if v.is_empty() {
                return Err(format!("{word} option `{k}` has no value"));
            }
            if options.iter().any(|(seen, _)| seen == k) {
                return Err(format!("{word} option `{k}` is given twice"));
            }
            options.push((k.to_owned(), v.to_owned()));
        }
        let dev = DpdkDevice {
            kind,
            options,
            pci: String::new(),
        };
        dev.check()?;
        Ok(dev)
    }
}

impl DpdkDevice {
    /// The options each kind needs, and the values lingerd relies on.
    fn check(&self) -> Result<(), String> {
        match self.kind {
            DeviceKind::Memif => {
                match self.option("role") {
                    Some("server" | "client") => {}
                    Some(r) => return Err(format!("memif role `{r}`: write server or client")),
                    None => {
                        return Err(
                            "memif needs role=server or role=client (lingerd does not guess)"
                                .to_owned(),
                        );
                    }
                }
                let Some(socket) = self.option("socket") else {
                    return Err("memif needs socket=PATH (an absolute path)".to_owned());
                };
                if !socket.starts_with('/') || socket.len() > 107 {
                    return Err(format!(
                        "memif socket `{socket}` must be an absolute path of at most 107 bytes"
                    ));
                }
                if let Some(a) = self.option("socket-abstract")
                    && a != "no"
                {
                    return Err(format!(
                        "memif socket-abstract={a}: lingerd uses socket files (socket-abstract=no, \
                         its default), which it removes at stop"
                    ));
                }
            }
            DeviceKind::AfPacket => match self.option("iface") {
                Some(i) if valid_ifname(i) => {}
                Some(i) => return Err(format!("af_packet iface `{i}` is not an interface name")),
                None => return Err("af_packet needs iface=NAME".to_owned()),
            },
            DeviceKind::Tap => {
                if let Some(i) = self.option("iface")
                    && !valid_ifname(i)
                {
                    return Err(format!("tap iface `{i}` is not an interface name"));
                }
            }
            DeviceKind::Pci => {}
        }
        Ok(())
    }
}

impl fmt::Display for DpdkDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == DeviceKind::Pci {
            return f.write_str(&self.pci);
        }
        f.write_str(self.kind.word())?;
        for (i, (k, v)) in self.options.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { ':' } else { ',' })?;
        }
        Ok(())
    }
}

impl Serialize for DpdkDevice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DpdkDevice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DpdkDevice, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A device `eal_args` names for EAL to probe itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EalDevice {
    /// Index in `eal_args` of the argument that names it.
    pub index: usize,
    /// The ethdev name DPDK gives it: the vdev's name (`net_tap0`) or the
    /// PCI address with its domain.
    pub name: String,
    /// Whether it is a PCI device (`-a`/`--allow`).
    pub pci: bool,
}

/// The devices `args` names: `--vdev=NAME,…` / `--vdev NAME,…` and
/// `-a ADDR` / `-aADDR` / `--allow=ADDR` / `--allow ADDR` (options after
/// the address, `ADDR,key=value`, are the driver's). An address that is
/// not a PCI address is named as written.
pub fn eal_devices(args: &[String]) -> Vec<EalDevice> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (value, pci, at) = if let Some(v) = a.strip_prefix("--vdev=") {
            (Some(v), false, i)
        } else if let Some(v) = a.strip_prefix("--allow=") {
            (Some(v), true, i)
        } else if a == "--vdev" || a == "-a" || a == "--allow" {
            i += 1;
            (args.get(i).map(String::as_str), a != "--vdev", i - 1)
        } else if let Some(v) = a.strip_prefix("-a")
            && !v.is_empty()
            && !a.starts_with("--")
        {
            (Some(v), true, i)
        } else {
            (None, false, i)
        };
        if let Some(v) = value {
            let head = v.split(',').next().unwrap_or("").trim();
            let name = if pci {
                pci_address(head).unwrap_or_else(|| head.to_owned())
            } else {
                head.to_owned()
            };
            out.push(EalDevice {
                index: at,
                name,
                pci,
            });
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_get_their_domain() {
        assert_eq!(pci_address("0000:03:00.0").as_deref(), Some("0000:03:00.0"));
        assert_eq!(pci_address("03:00.1").as_deref(), Some("0000:03:00.1"));
        assert_eq!(pci_address("0000:AF:00.7").as_deref(), Some("0000:af:00.7"));
        for bad in [
            "03:00",
            "0000:03:00.8",
            "3:00.0",
            "x0:00.0",
            "0:0000:03:00.0",
        ] {
            assert_eq!(pci_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn short_forms_round_trip() {
        for s in [
            "memif:socket=/run/lingerd/memif0.sock,role=server",
            "af_packet:iface=eth1,qpairs=2",
            "tap:iface=dtap0",
            "tap",
            "0000:03:00.0",
        ] {
            let d: DpdkDevice = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(d.to_string(), s);
        }
        let d: DpdkDevice = "af_packet:iface=eth1".parse().unwrap();
        assert_eq!(d.kind, DeviceKind::AfPacket);
        assert_eq!(d.option("iface"), Some("eth1"));
    }

    #[test]
    fn eal_args_name_their_devices() {
        let args: Vec<String> = [
            "--log-level=info",
            "--vdev=net_tap0,iface=x",
            "-a",
            "03:00.0",
            "--vdev",
            "net_ring0",
            "-a0000:04:00.0,rxq=2",
            "--allow=05:00.0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let devs = eal_devices(&args);
        let names: Vec<(&str, bool, usize)> = devs
            .iter()
            .map(|d| (d.name.as_str(), d.pci, d.index))
            .collect();
        assert_eq!(
            names,
            [
                ("net_tap0", false, 1),
                ("0000:03:00.0", true, 2),
                ("net_ring0", false, 4),
                ("0000:04:00.0", true, 6),
                ("0000:05:00.0", true, 7),
            ]
        );
        assert!(eal_devices(&["--no-huge".to_owned(), "-m".to_owned()]).is_empty());
    }
}
