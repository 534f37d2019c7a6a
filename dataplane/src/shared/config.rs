//! The TCP configuration the connection logic reads: timers, sizes and
//! policies, with their defaults.
//!
//! It owns the values only; the daemon's YAML layer fills them in and
//! validates ranges, the engine hands them to `tcp` for each event.

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
            min_ms: 200,
            max_ms: 60_000,
            initial_ms: 1_000,
        }
    }
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
    /// RST in TIME-WAIT policy.
    pub time_wait_rst: TimeWaitRst,
    /// Challenge ACKs a connection may send per second (RFC 5961 §7); the
    /// budget is per connection, never global (a global one is a side channel).
    pub challenge_acks_per_s: u16,
    /// Ephemeral port range for active opens, inclusive.
    pub ephemeral_ports: (u16, u16),
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            time_wait_ms: 60_000,
            orphan_timeout_ms: 60_000,
            syn_received_timeout_ms: 30_000,
            syn_retries: 6,
            max_retransmits: 15,
            rto: RtoBounds::default(),
            delayed_ack_ms: 40,
            send_buffer: 64 * 1024,
            recv_buffer: 64 * 1024,
            window_shift: 7,
            timestamps: true,
            time_wait_rst: TimeWaitRst::Close,
            challenge_acks_per_s: 10,
            ephemeral_ports: (32_768, 60_999),
        }
    }
}
