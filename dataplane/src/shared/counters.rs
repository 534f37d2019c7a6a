//! The engine's counters: plain integers written only by the owning core.
//!
//! It owns the names and meanings; the daemon sums them across cores for
//! `/metrics`. Nothing here is atomic: a snapshot is copied out by the core
//! itself between loop iterations.

use crate::wire;

/// Declares the counters once: the struct field, its doc (which is also the
/// metric's help text) and its name (which is also the metric's name), so
/// `/metrics` can never drift from the struct.
macro_rules! counters {
    ($( #[doc = $help:literal] $name:ident ),* $(,)?) => {
        /// Per-engine counters. Field names are the metric names.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            /// Frames dropped by parse errors, per [`wire::Error`] cause.
            pub rx_parse_errors: [u64; wire::Error::COUNT],
            $( #[doc = $help] pub $name: u64, )*
        }

        impl Counters {
            /// Every scalar counter as `(name, help, value)`, in declaration
            /// order (the per-cause parse errors are in
            /// [`rx_parse_errors`](Self::rx_parse_errors)).
            pub fn fields(&self) -> [(&'static str, &'static str, u64); counters!(@count $($name)*)] {
                [$( (stringify!($name), $help, self.$name) ),*]
            }

            /// Adds `other` into `self` (summing cores for `/metrics`).
            pub fn add(&mut self, other: &Counters) {
                for (a, b) in self.rx_parse_errors.iter_mut().zip(other.rx_parse_errors) {
                    *a += b;
                }
                $( self.$name += other.$name; )*
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + counters!(@count $($tail)*) };
}

counters! {
    #[doc = "Frames handed to `handle_rx`."]
    rx_frames,
    #[doc = "Frames built by `poll_transmit`."]
    tx_frames,
    #[doc = "Frames not for us (other MAC, other IP, other protocol)."]
    rx_not_ours,
    #[doc = "TCP segments dropped as unacceptable (RFC 9293 §3.10.7.4 first check)."]
    rx_unacceptable,
    #[doc = "RSTs sent by the stateless responder (segments matching nothing)."]
    rst_responder,
    #[doc = "RSTs sent by abort / hard close."]
    rst_abort,
    #[doc = "RSTs sent because a linger deadline expired."]
    rst_linger_expired,
    #[doc = "RSTs sent because a bulk close's hard deadline (`deadline=N`) expired."]
    rst_deadline_expired,
    #[doc = "RSTs sent for a close or shutdown(RECEIVE) with unread data."]
    abort_on_close_unread,
    #[doc = "RSTs sent because data arrived after close or shutdown(RECEIVE)."]
    rst_data_after_close,
    #[doc = "Hard closes by the orphan timeout."]
    orphan_timeouts,
    #[doc = "Connections aborted after too many retransmissions."]
    retransmit_timeouts,
    #[doc = "Challenge ACKs sent (RFC 5961)."]
    challenge_acks,
    #[doc = "Challenge ACKs withheld by the per-connection budget."]
    challenge_acks_suppressed,
    #[doc = "Challenge ACKs withheld by the per-core bound on answers to peers (a connection's own budget allowed them)."]
    challenge_acks_limited,
    #[doc = "RSTs answering a peer's segment (the responder's, or a handshake's answer to an unacceptable ACK) withheld by the per-core bound on answers to peers."]
    rst_reply_limited,
    #[doc = "RSTs received that reset a connection."]
    rst_received,
    #[doc = "Closes completed, by outcome."]
    closes_graceful,
    #[doc = "Closes that returned at once with a background graceful close."]
    closes_background,
    #[doc = "Closes whose linger deadline expired."]
    closes_aborted_linger,
    #[doc = "Hard closes."]
    closes_aborted,
    #[doc = "Closes that found the connection reset by the peer."]
    closes_reset_by_peer,
    #[doc = "Connections that entered TIME-WAIT."]
    time_wait_entered,
    #[doc = "Connections accepted."]
    accepted,
    #[doc = "Connections established by connect."]
    connected,
    #[doc = "SYN cookies sent because a backlog was full."]
    syn_cookies_sent,
    #[doc = "Handshakes completed from a valid SYN cookie."]
    syn_cookies_accepted,
    #[doc = "SYNs dropped (table full, no listener for cookies to help)."]
    syn_dropped,
    #[doc = "Segments retransmitted."]
    retransmits,
    #[doc = "Fast retransmits (three duplicate ACKs)."]
    fast_retransmits,
    #[doc = "Out-of-order segments kept in a reassembly queue (new bytes or a FIN)."]
    ooo_segments_kept,
    #[doc = "Out-of-order bytes given up for memory: pruned from a reassembly queue, or not kept for lack of room."]
    ooo_bytes_pruned,
    #[doc = "Bytes delivered from a reassembly queue once the gap before them filled."]
    ooo_bytes_delivered,
    #[doc = "Frames not sent because the next hop's MAC is unknown."]
    tx_no_neighbor,
    #[doc = "Control frames dropped because the control queue was full."]
    tx_ctl_overflow,
    #[doc = "RSTs of our own closes sent through the pacing queue (`close.max_rst_per_sec`)."]
    rst_paced,
    #[doc = "Milliseconds paced RSTs waited for their token, summed (divide by `rst_paced` for the mean)."]
    rst_paced_wait_ms,
    #[doc = "RSTs sent unpaced because the pacing queue already held one per connection record."]
    rst_pacing_overflow,
    #[doc = "ARP requests answered."]
    arp_replies_sent,
    #[doc = "ARP requests sent."]
    arp_requests_sent,
    #[doc = "Requests refused as invalid (bad handle, argument or state)."]
    requests_failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_every_counter_and_add_sums_them() {
        let mut a = Counters {
            rst_abort: 2,
            accepted: 1,
            ..Counters::default()
        };
        a.rx_parse_errors[1] = 3;
        let mut b = a.clone();
        b.add(&a);
        assert_eq!((b.rst_abort, b.accepted, b.rx_parse_errors[1]), (4, 2, 6));
        let f = b.fields();
        assert!(
            f.iter()
                .any(|&(n, h, v)| n == "rst_abort" && v == 4 && !h.is_empty())
        );
        let mut names: Vec<_> = f.iter().map(|x| x.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), f.len(), "names are unique");
    }
}
