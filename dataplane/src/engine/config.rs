//! The engine's configuration: addresses, TCP timers and sizes, close defaults.
//!
//! It owns the values and their defaults; the daemon's YAML layer fills them
//! in and validates ranges. The engine reads them; nothing here performs I/O.
//! [`Tunables`] is the part a running engine may change
//! ([`crate::engine::QueueEngine::retune`], a SIGHUP reload); the rest is
//! fixed for the engine's life.

use std::net::{Ipv4Addr, Ipv6Addr};

pub use crate::engine::api::Prefix;
pub use crate::shared::config::{TcpConfig, TimeWaitRst};
use crate::tcp::linger::Linger;
pub use crate::tcp::reasm::ReasmConfig;
use crate::tcp::rtt::RtoBounds;
use crate::wire::EthernetAddress;

/// The most addresses an engine answers for: the table's local-address
/// slots minus the one listeners' keys use.
pub const MAX_ADDRS: usize = crate::table::MAX_LOCAL_ADDRS - 1;

/// Everything one queue engine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The core (queue) number, the top byte of every handle it issues.
    pub core: u8,
    /// Our MAC address.
    pub mac: EthernetAddress,
    /// Addresses we answer for, IPv4 and IPv6, each with its on-link
    /// prefix (`198.18.0.1/24`: peers in 198.18.0.0/24 are reached
    /// directly; `2001:db8::1/64` likewise). IPv6 link-local peers
    /// (fe80::/10) are always on-link. At most
    /// [`MAX_ADDRS`] (the table keeps a connection's local address as an
    /// index into this list); the engine uses the first [`MAX_ADDRS`].
    pub addrs: Vec<Prefix>,
    /// IPv4 next hop for destinations off every local link.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 next hop for destinations off every local link; may be
    /// link-local (`fe80::1`), as routers advertise themselves.
    pub gateway6: Option<Ipv6Addr>,
    /// Connection table size (listeners included).
    pub max_connections: u32,
    /// TCP parameters.
    pub tcp: TcpConfig,
    /// The reassembly pool: per-core budget, per-connection share.
    pub reassembly: ReasmConfig,
    /// Linger setting of a new connection.
    pub default_linger: Linger,
    /// Secret of the ISN function (RFC 6528), from the OS's randomness.
    pub isn_secret: [u64; 2],
    /// Secret of the SYN-cookie function, drawn apart from `isn_secret`.
    pub cookie_secret: [u64; 2],
    /// Secret key of the 4-tuple hash.
    pub hash_key: u64,
    /// With several queues: which flows this engine owns. Its ephemeral
    /// ports are only those whose answers hash to it. `None`: one queue.
    pub flow: Option<crate::flow::FlowSteer>,
    /// RSTs per second this engine may originate (aborts, expired
    /// deadlines, unread data, data after close; never RSTs answering a
    /// peer): its share of `close.max_rst_per_sec`. 0 = unpaced.
    pub max_rst_per_s: u32,
    /// Answers to peers this engine may send per second: the responder's
    /// RSTs, a handshake's RSTs for an unacceptable ACK and challenge ACKs
    /// (`crate::shared::reply_limit`; what is over it is not sent, and
    /// counted). 0 = no bound. Fixed for the engine's life.
    pub max_replies_per_s: u32,
}

impl EngineConfig {
    /// A configuration with defaults for one address; tests and benches
    /// start here and adjust.
    pub fn new(core: u8, mac: EthernetAddress, addr: Prefix) -> EngineConfig {
        EngineConfig {
            core,
            mac,
            addrs: vec![addr],
            gateway: None,
            gateway6: None,
            max_connections: 1 << 16,
            tcp: TcpConfig::default(),
            reassembly: ReasmConfig::default(),
            default_linger: Linger::default(),
            isn_secret: [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344],
            cookie_secret: [0x4528_21e6_38d0_1377, 0xbe54_66cf_34e9_0c6c],
            hash_key: 0xa409_3822_299f_31d0,
            flow: None,
            max_rst_per_s: 0,
            max_replies_per_s: crate::shared::reply_limit::DEFAULT_REPLIES_PER_S,
        }
    }
}

/// The values a running engine may change ([`crate::engine::QueueEngine::retune`]):
/// timeouts, retry limits, the TIME-WAIT RST and challenge-ACK policies,
/// the default linger and the RST pacing rate.
///
/// The engine reads each of them where it uses it, so a change applies to
/// timers armed and connections opened afterwards: a deadline already in
/// the wheel keeps its time, an open connection keeps the linger it has.
/// Retry limits and the challenge-ACK budget are compared at each use, so
/// they apply to open connections at their next retransmission or
/// challenge. The RST pacing rate applies to the next RST that leaves,
/// including those already waiting. Everything else in [`EngineConfig`] shapes the table, the
/// buffers, the ephemeral ports or what peers were told (MSS, window scale,
/// timestamps) and is fixed for the engine's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunables {
    /// [`TcpConfig::time_wait_ms`].
    pub time_wait_ms: u32,
    /// [`TcpConfig::orphan_timeout_ms`].
    pub orphan_timeout_ms: u32,
    /// [`TcpConfig::syn_received_timeout_ms`].
    pub syn_received_timeout_ms: u32,
    /// [`TcpConfig::syn_retries`].
    pub syn_retries: u8,
    /// [`TcpConfig::max_retransmits`].
    pub max_retransmits: u8,
    /// [`TcpConfig::rto`].
    pub rto: RtoBounds,
    /// [`TcpConfig::delayed_ack_ms`].
    pub delayed_ack_ms: u32,
    /// [`TcpConfig::time_wait_rst`].
    pub time_wait_rst: TimeWaitRst,
    /// [`TcpConfig::challenge_acks_per_s`].
    pub challenge_acks_per_s: u16,
    /// [`EngineConfig::default_linger`].
    pub default_linger: Linger,
    /// [`EngineConfig::max_rst_per_s`].
    pub max_rst_per_s: u32,
}

impl Tunables {
    /// The tunable values of a TCP configuration, a default linger and an
    /// RST pacing rate.
    pub fn of(t: &TcpConfig, default_linger: Linger, max_rst_per_s: u32) -> Tunables {
        Tunables {
            time_wait_ms: t.time_wait_ms,
            orphan_timeout_ms: t.orphan_timeout_ms,
            syn_received_timeout_ms: t.syn_received_timeout_ms,
            syn_retries: t.syn_retries,
            max_retransmits: t.max_retransmits,
            rto: t.rto,
            delayed_ack_ms: t.delayed_ack_ms,
            time_wait_rst: t.time_wait_rst,
            challenge_acks_per_s: t.challenge_acks_per_s,
            default_linger,
            max_rst_per_s,
        }
    }
}

impl EngineConfig {
    /// The values [`QueueEngine::retune`](crate::engine::QueueEngine::retune)
    /// may change, as they are now.
    pub fn tunables(&self) -> Tunables {
        Tunables::of(&self.tcp, self.default_linger, self.max_rst_per_s)
    }

    /// Replaces the tunable values (and nothing else).
    pub fn set_tunables(&mut self, new: Tunables) {
        // Destructured so that a new tunable does not compile until it is
        // applied here.
        let Tunables {
            time_wait_ms,
            orphan_timeout_ms,
            syn_received_timeout_ms,
            syn_retries,
            max_retransmits,
            rto,
            delayed_ack_ms,
            time_wait_rst,
            challenge_acks_per_s,
            default_linger,
            max_rst_per_s,
        } = new;
        let t = &mut self.tcp;
        t.time_wait_ms = time_wait_ms;
        t.orphan_timeout_ms = orphan_timeout_ms;
        t.syn_received_timeout_ms = syn_received_timeout_ms;
        t.syn_retries = syn_retries;
        t.max_retransmits = max_retransmits;
        t.rto = rto;
        t.delayed_ack_ms = delayed_ack_ms;
        t.time_wait_rst = time_wait_rst;
        t.challenge_acks_per_s = challenge_acks_per_s;
        self.default_linger = default_linger;
        self.max_rst_per_s = max_rst_per_s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_tunables_changes_only_tunables() {
        let addr: Prefix = "198.18.0.1/24".parse().unwrap();
        let old = EngineConfig::new(0, EthernetAddress([2, 0, 0, 0, 0, 1]), addr);
        let new = Tunables {
            time_wait_ms: 1,
            orphan_timeout_ms: 2,
            syn_received_timeout_ms: 3,
            syn_retries: 4,
            max_retransmits: 5,
            rto: RtoBounds {
                min_ms: 6,
                max_ms: 7,
                initial_ms: 6,
            },
            delayed_ack_ms: 8,
            time_wait_rst: TimeWaitRst::Ignore,
            challenge_acks_per_s: 9,
            default_linger: Linger { on: true, ms: 10 },
            max_rst_per_s: 11,
        };
        let mut cfg = old.clone();
        cfg.set_tunables(new);
        assert_eq!(cfg.tunables(), new);
        // Put the tunables back: nothing else may have moved.
        cfg.set_tunables(old.tunables());
        assert_eq!(cfg, old);
    }
}
