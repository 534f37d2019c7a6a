//! The pieces of `lingerd-bench lab`, the end-to-end close benchmark: the
//! close mode, the Linux kernel baseline ([`kernel`]), the load generator
//! (lingerd itself in the client role, [`loadgen`], with its bare RST
//! counter, [`rst_tally`]), the dut's client
//! ([`dut`]), the statistics ([`stats`]), the SVG ([`plot`]) and what the
//! lab commands share around them ([`setup`]: the lab, the device under
//! test, progress).
//!
//! The commands that string them together (arguments, run, report) live in
//! the binary (`src/lab_cmd.rs`, `src/ring_latency.rs`).
//! Everything here owns only what it creates: its processes, sockets and
//! threads, each bounded in time; nothing here touches a namespace or an
//! address outside the lab's 198.18.0.0/15 and 2001:db8::/32.

pub mod dut;
pub mod kernel;
pub mod loadgen;
pub mod memif;
pub mod plot;
pub mod rst_tally;
pub mod setup;
pub mod stats;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use lingerd_abi::vocab::{CloseMode, Prefix};
pub use lingerd_lab::Family;

/// The addresses a lab benchmark of one [`Family`] gives the two engines:
/// the dut daemon's and the load generator's, held by no kernel in the lab
/// (the kernels keep `LAB_DUT_ADDR*` and `LAB_PEER_ADDR*` for the kernel
/// baseline), on the lab link's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addressing {
    /// The family.
    pub family: Family,
    /// The dut daemon's address.
    pub dut: IpAddr,
    /// The load generator's address.
    pub generator: IpAddr,
    /// The link's prefix length.
    pub prefix_len: u8,
}

impl Addressing {
    /// v4: 198.18.0.11 and .12 on /24; v6: 2001:db8::11 and ::12 on /64.
    pub fn of(family: Family) -> Addressing {
        match family {
            Family::V4 => Addressing {
                family,
                dut: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11)),
                generator: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 12)),
                prefix_len: 24,
            },
            Family::V6 => Addressing {
                family,
                dut: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
                generator: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x12)),
                prefix_len: 64,
            },
        }
    }

    /// The dut daemon's `addresses` entry.
    pub fn dut_prefix(&self) -> Prefix {
        Prefix::new(self.dut, self.prefix_len).unwrap_or_else(|| Prefix::host(self.dut))
    }
}

/// How the dut closes its connections: the [`CloseMode`]s a benchmark can
/// check, with their text form (`abort`, `graceful`, `linger=200ms`).
/// Narrower than `CloseMode` in one way: a linger time of 0 is refused,
/// because it is an abort (RST) while the benchmark would wait for FINs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Hard close: one RST each (`SO_LINGER {1,0}`).
    Abort,
    /// Graceful close: FIN, in the background.
    Graceful,
    /// `SO_LINGER {1, ms}` then close: FIN, hard-closed if not acknowledged
    /// within `ms`.
    Linger {
        /// The linger time, milliseconds (at least 1).
        ms: u32,
    },
}

impl Mode {
    /// Whether the peer should see an RST (else a FIN).
    pub fn expects_rst(self) -> bool {
        matches!(self, Mode::Abort)
    }
}

impl From<Mode> for CloseMode {
    fn from(m: Mode) -> CloseMode {
        match m {
            Mode::Abort => CloseMode::Abort,
            Mode::Graceful => CloseMode::Graceful,
            Mode::Linger { ms } => CloseMode::Linger { ms },
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        CloseMode::from(*self).fmt(f)
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s.parse::<CloseMode>().map_err(|e| e.to_string())? {
            CloseMode::Abort => Ok(Mode::Abort),
            CloseMode::Graceful => Ok(Mode::Graceful),
            CloseMode::Linger { ms: 0 } => {
                Err("linger=0s is an abort: say abort (the benchmark expects FINs)".into())
            }
            CloseMode::Linger { ms } => Ok(Mode::Linger { ms }),
            CloseMode::Deadline { .. } => Err(format!(
                "{s}: a deadline is a bulk close's bound (close_matching, lingerd ctl kill), \
                 not a per-connection close; the lab measures abort, graceful and linger"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for s in ["abort", "graceful", "linger=250ms", "linger=2s"] {
            assert_eq!(s.parse::<Mode>().unwrap().to_string(), s);
        }
        assert_eq!("linger=200ms".parse(), Ok(Mode::Linger { ms: 200 }));
        assert!("linger=0s".parse::<Mode>().is_err());
        assert!("linger=0".parse::<Mode>().is_err());
        assert!(
            "linger=200"
                .parse::<Mode>()
                .unwrap_err()
                .contains("give a unit")
        );
        assert!(
            "linger=70000s"
                .parse::<Mode>()
                .unwrap_err()
                .contains("longest")
        );
        assert!("linger=x".parse::<Mode>().is_err());
        assert!("rst".parse::<Mode>().is_err());
        assert!(Mode::Abort.expects_rst() && !Mode::Graceful.expects_rst());
    }
}

#[cfg(test)]
mod family_tests {
    use super::*;

    #[test]
    fn each_family_has_its_addresses_on_the_lab_link() {
        let v4 = Addressing::of(Family::V4);
        assert_eq!(v4.dut_prefix().to_string(), "198.18.0.11/24");
        assert!(v4.dut_prefix().contains(v4.generator));
        let v6 = Addressing::of(Family::V6);
        assert_eq!(v6.dut_prefix().to_string(), "2001:db8::11/64");
        assert!(v6.dut_prefix().contains(v6.generator));
        // The lab's kernels hold 2001:db8::1 and ::2 on the same /64.
        assert!(v6.dut_prefix().contains("2001:db8::2".parse().unwrap()));
        assert_eq!(IpAddr::V4(setup::DUT_ENGINE_ADDR), v4.dut);
        assert_eq!(IpAddr::V4(loadgen::GEN_ADDR), v4.generator);
    }
}
