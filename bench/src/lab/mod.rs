//! The pieces of `lingerd-bench lab`, the end-to-end close benchmark: the
//! close mode, the Linux kernel baseline ([`kernel`]), the load generator
//! (lingerd itself in the client role, [`loadgen`]), the dut's client
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
pub mod plot;
pub mod setup;
pub mod stats;

use std::fmt;
use std::str::FromStr;

/// How the dut closes its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Hard close: one RST each (`SO_LINGER {1,0}`).
    Abort,
    /// Graceful close: FIN, in the background.
    Graceful,
    /// `SO_LINGER {1, ms}` then close: FIN, hard-closed if not acknowledged
    /// within `ms`.
    Linger {
        /// The linger time, milliseconds.
        ms: u32,
    },
}

impl Mode {
    /// Whether the peer should see an RST (else a FIN).
    pub fn expects_rst(self) -> bool {
        matches!(self, Mode::Abort)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Abort => f.write_str("abort"),
            Mode::Graceful => f.write_str("graceful"),
            Mode::Linger { ms } => write!(f, "linger={ms}"),
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "abort" => Ok(Mode::Abort),
            "graceful" => Ok(Mode::Graceful),
            _ => {
                let ms = s
                    .strip_prefix("linger=")
                    .ok_or_else(|| format!("bad mode {s:?}: abort, graceful or linger=MS"))?;
                let ms: u32 = ms
                    .parse()
                    .map_err(|_| format!("bad linger time {ms:?}: milliseconds"))?;
                if ms == 0 || ms > 65_535_000 {
                    return Err("linger=MS needs 1 ≤ MS ≤ 65535000 (linger=0 is abort)".into());
                }
                Ok(Mode::Linger { ms })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for s in ["abort", "graceful", "linger=250"] {
            assert_eq!(s.parse::<Mode>().unwrap().to_string(), s);
        }
        assert!("linger=0".parse::<Mode>().is_err());
        assert!("linger=x".parse::<Mode>().is_err());
        assert!("rst".parse::<Mode>().is_err());
        assert!(Mode::Abort.expects_rst() && !Mode::Graceful.expects_rst());
    }
}
