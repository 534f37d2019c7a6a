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
//! address outside the lab's 198.18.0.0/15.

pub mod dut;
pub mod kernel;
pub mod loadgen;
pub mod memif;
pub mod plot;
pub mod rst_tally;
pub mod setup;
pub mod stats;

use std::fmt;
use std::str::FromStr;

use lingerd_abi::vocab::CloseMode;

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
