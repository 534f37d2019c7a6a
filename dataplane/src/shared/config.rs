//! The TCP configuration the connection logic reads: timers, sizes and
//! policies. Its defaults are the shared ones of
//! `lingerd_abi::vocab::tcp_defaults`.
//!
//! It owns the values only; the daemon's YAML layer fills them in and
//! validates ranges, the engine hands them to `tcp` for each event.

use lingerd_abi::vocab::tcp_defaults;

/// Bounds the estimator works within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtoBounds {
    /// Lower bound (RFC 6298 §2.4 says 1 s; Linux and most stacks use 200 ms).
    pub min_ms: u32,
    /// Upper bound (RFC 6298 §2.5 allows ≥ 60 s).
    pub max_ms: u32,
    /// The RTO before any sample (RFC 6298 §2.1: 1 s).
    pub initial_ms: u32,
}

impl Default for RtoBounds {
    fn default() -> Self {
        RtoBounds {
            min_ms: ms(tcp_defaults::RTO_MIN),
            max_ms: ms(tcp_defaults::RTO_MAX),
            initial_ms: ms(tcp_defaults::RTO_INITIAL),
        }
    }
}

/// A default timer in milliseconds (each is far below `u32::MAX` ms).
fn ms(d: lingerd_abi::vocab::Duration) -> u32 {
    d.as_millis_u32().unwrap_or(u32::MAX)
}

/// What an RST received in TIME-WAIT does (the configuration's
/// `tcp.time_wait_rst` is this type).
pub use lingerd_abi::vocab::TimeWaitRst;

/// TCP timers, sizes and policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Our MSS (what we advertise; the peer's caps what we send).
    pub mss: u16,
    /// TIME-WAIT length (2×MSL).
    pub time_wait_ms: u32,
    /// Bound on a background graceful close (docs/close-semantics.md#orphan-timeout).
    pub orphan_timeout_ms: u32,
    /// How long a handshake may sit in SYN-RECEIVED.
    pub syn_received_timeout_ms: u32,
    /// SYN retransmissions before a connect fails with ETIMEDOUT.
    pub syn_retries: u8,
    /// Data retransmissions before the connection is aborted (ETIMEDOUT).
    pub max_retransmits: u8,
    /// RTO bounds (RFC 6298).
    pub rto: RtoBounds,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3 allows up to 500 ms).
    pub delayed_ack_ms: u32,
    /// Send buffer per connection, bytes.
    pub send_buffer: u32,
    /// Receive buffer per connection, bytes (bounds the window we advertise).
    pub recv_buffer: u32,
    /// Window scale shift we offer (RFC 7323 §2.3), 0..=14.
    pub window_shift: u8,
    /// Offer and use timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer and use selective acknowledgments (RFC 2018); off makes
    /// recovery NewReno (tests use it to compare).
    pub sack: bool,
    /// RST in TIME-WAIT policy.
    pub time_wait_rst: TimeWaitRst,
    /// Challenge ACKs a connection may send per second (RFC 5961 §7); the
    /// budget is per connection, never global (a global one is a side channel).
    pub challenge_acks_per_s: u16,
    /// Ephemeral port range for active opens, inclusive.
    pub ephemeral_ports: (u16, u16),
}

impl Default for TcpConfig {
    /// The defaults the configuration also uses (`lingerd_abi::vocab::tcp_defaults`).
    fn default() -> Self {
        use tcp_defaults as d;
        TcpConfig {
            mss: d::MSS,
            time_wait_ms: ms(d::TIME_WAIT),
            orphan_timeout_ms: ms(d::ORPHAN_TIMEOUT),
            syn_received_timeout_ms: ms(d::SYN_RECEIVED_TIMEOUT),
            syn_retries: d::SYN_RETRIES,
            max_retransmits: d::MAX_RETRANSMITS,
            rto: RtoBounds::default(),
            delayed_ack_ms: ms(d::DELAYED_ACK),
            send_buffer: d::SEND_BUFFER,
            recv_buffer: d::RECV_BUFFER,
            window_shift: d::WINDOW_SHIFT,
            timestamps: d::TIMESTAMPS,
            sack: true,
            time_wait_rst: d::TIME_WAIT_RST,
            challenge_acks_per_s: d::CHALLENGE_ACKS_PER_S,
            ephemeral_ports: d::EPHEMERAL_PORTS,
        }
    }
}
