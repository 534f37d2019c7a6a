//! The default TCP settings, defined once: the YAML's `tcp:` section
//! (`lingerd-config`) and the engine's own `TcpConfig::default()` both read
//! these, so a daemon without a file and a test engine agree.
//!
//! Values only; ranges and their checks are the configuration's.

use super::{Duration, TimeWaitRst};

/// TIME-WAIT length (2×MSL; Linux uses 60 s).
pub const TIME_WAIT: Duration = Duration::from_secs(60);
/// Bound on a background graceful close (an orphan's FIN states).
pub const ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a handshake may sit in SYN-RECEIVED.
pub const SYN_RECEIVED_TIMEOUT: Duration = Duration::from_secs(30);
/// SYN retransmissions before a connect fails.
pub const SYN_RETRIES: u8 = 6;
/// Data retransmissions before a connection is aborted.
pub const MAX_RETRANSMITS: u8 = 15;
/// RTO lower bound (RFC 6298 §2.4 says 1 s; Linux and most stacks use 200 ms).
pub const RTO_MIN: Duration = Duration::from_millis(200);
/// RTO upper bound (RFC 6298 §2.5 allows ≥ 60 s).
pub const RTO_MAX: Duration = Duration::from_secs(60);
/// RTO before the first RTT sample (RFC 6298 §2.1).
pub const RTO_INITIAL: Duration = Duration::from_secs(1);
/// Delayed-ACK timeout.
pub const DELAYED_ACK: Duration = Duration::from_millis(40);
/// The MSS we advertise.
pub const MSS: u16 = 1460;
/// Send buffer per connection, bytes.
pub const SEND_BUFFER: u32 = 64 * 1024;
/// Receive buffer per connection, bytes.
pub const RECV_BUFFER: u32 = 64 * 1024;
/// Out-of-order data one core holds for all its connections, bytes (the
/// reassembly pool, allocated when the core starts).
pub const REASSEMBLY_PER_CORE: u32 = 4 << 20;
/// Out-of-order data one connection may hold, bytes: twice the default
/// receive window (a run that ends inside a chunk wastes its tail).
pub const REASSEMBLY_PER_CONNECTION: u32 = 2 * RECV_BUFFER;
/// Window scale shift we offer.
pub const WINDOW_SHIFT: u8 = 7;
/// Offer and use timestamps.
pub const TIMESTAMPS: bool = true;
/// What an RST in TIME-WAIT does.
pub const TIME_WAIT_RST: TimeWaitRst = TimeWaitRst::Close;
/// Challenge ACKs one connection may send per second.
pub const CHALLENGE_ACKS_PER_S: u16 = 10;
/// Source ports for active opens, inclusive (Linux's range).
pub const EPHEMERAL_PORTS: (u16, u16) = (32_768, 60_999);
