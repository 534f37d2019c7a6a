//! The engine's counters: plain integers written only by the owning core.
//!
//! It owns the names and meanings; the daemon sums them across cores for
//! `/metrics`. Nothing here is atomic: a snapshot is copied out by the core
//! itself between loop iterations.

use crate::wire;

/// Per-engine counters. Field names are the metric names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to `handle_rx`.
    pub rx_frames: u64,
    /// Frames built by `poll_transmit`.
    pub tx_frames: u64,
    /// Frames dropped by parse errors, per [`wire::Error`] cause.
    pub rx_parse_errors: [u64; wire::Error::COUNT],
    /// Frames not for us (other MAC, other IP, other protocol).
    pub rx_not_ours: u64,
    /// TCP segments dropped as unacceptable (RFC 9293 §3.10.7.4 first check).
    pub rx_unacceptable: u64,
    /// RSTs sent by the stateless responder (segments matching nothing).
    pub rst_responder: u64,
    /// RSTs sent by abort / hard close.
    pub rst_abort: u64,
    /// RSTs sent because a linger deadline expired.
    pub rst_linger_expired: u64,
    /// RSTs sent for a close or shutdown(RECEIVE) with unread data.
    pub abort_on_close_unread: u64,
    /// RSTs sent because data arrived after close or shutdown(RECEIVE).
    pub rst_data_after_close: u64,
    /// Hard closes by the orphan timeout.
    pub orphan_timeouts: u64,
    /// Connections aborted after too many retransmissions.
    pub retransmit_timeouts: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Challenge ACKs withheld by the per-connection budget.
    pub challenge_acks_suppressed: u64,
    /// RSTs received that reset a connection.
    pub rst_received: u64,
    /// Closes completed, by outcome.
    pub closes_graceful: u64,
    /// Closes that returned at once with a background graceful close.
    pub closes_background: u64,
    /// Closes whose linger deadline expired.
    pub closes_aborted_linger: u64,
    /// Hard closes.
    pub closes_aborted: u64,
    /// Closes that found the connection reset by the peer.
    pub closes_reset_by_peer: u64,
    /// Connections that entered TIME-WAIT.
    pub time_wait_entered: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections established by connect.
    pub connected: u64,
    /// SYN cookies sent because a backlog was full.
    pub syn_cookies_sent: u64,
    /// Handshakes completed from a valid SYN cookie.
    pub syn_cookies_accepted: u64,
    /// SYNs dropped (table full, no listener for cookies to help).
    pub syn_dropped: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Fast retransmits (three duplicate ACKs).
    pub fast_retransmits: u64,
    /// Frames not sent because the next hop's MAC is unknown.
    pub tx_no_neighbor: u64,
    /// Control frames dropped because the control queue was full.
    pub tx_ctl_overflow: u64,
    /// ARP requests answered.
    pub arp_replies_sent: u64,
    /// ARP requests sent.
    pub arp_requests_sent: u64,
    /// Requests refused as invalid (bad handle, argument or state).
    pub requests_failed: u64,
}
