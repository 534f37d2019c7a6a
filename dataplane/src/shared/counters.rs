//! The engine's counters: plain integers written only by the owning core.
//!
//! It owns the names and meanings; the daemon renders them for `/metrics`
//! (one series per core). Nothing here is atomic: a snapshot is copied out
//! by the core itself between loop iterations. Some counters are one label
//! value of a labelled family (`rst_sent{reason}`, `closes{outcome}`): the
//! declaration says which, so the metric can never drift from the struct.
//! The three duration histograms ([`Log2Histogram`]) travel with them.

pub use super::histogram::Log2Histogram;
use crate::wire;

/// One scalar counter as [`Counters::fields`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name: the metric's name when it has no family, and
    /// `lingerd ctl stats`'s name either way.
    pub name: &'static str,
    /// What it counts (the field's doc).
    pub help: &'static str,
    /// Its value.
    pub value: u64,
    /// `(family, label, value)` when the counter is one label value of a
    /// family: `("rst_sent", "reason", "abort")`.
    pub family: Option<(&'static str, &'static str, &'static str)>,
}

/// The labelled families the counters belong to, with their help text.
pub const FAMILIES: [(&str, &str); 2] = [
    (
        "rst_sent",
        "RSTs lingerd originated or answered with, by reason; counted when queued \
         (paced ones wait in lingerd_rsts_paced_waiting until they leave).",
    ),
    ("closes", "Closes completed, by outcome."),
];

/// Declares the counters once: the struct field, its doc (which is also the
/// metric's help text), its name (which is also the metric's name) and,
/// for some, the family and label value it is rendered as, so `/metrics`
/// can never drift from the struct.
macro_rules! counters {
    ($( #[doc = $help:literal] $name:ident $(=> $fam:ident($key:ident = $val:literal))? ),* $(,)?) => {
        /// Per-engine counters. Field names are the metric names (or the
        /// label values of their family, see [`Field::family`]).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            /// Frames dropped by parse errors, per [`wire::Error`] cause.
            pub rx_parse_errors: [u64; wire::Error::COUNT],
            /// Close request → the close's RST handed to the port
            /// (`poll_transmit`): aborts, hard and bulk closes, closes
            /// with unread data; pacing waits included.
            pub close_rst_wire: Log2Histogram,
            /// Close request → the close's FIN handed to the port: graceful
            /// and linger closes (after any queued data).
            pub close_fin_wire: Log2Histogram,
            /// How long after its deadline a linger (or `deadline=`) RST
            /// was handed to the port.
            pub linger_rst_late: Log2Histogram,
            $( #[doc = $help] pub $name: u64, )*
        }

        impl Counters {
            /// Every scalar counter, in declaration order (the per-cause
            /// parse errors are in [`rx_parse_errors`](Self::rx_parse_errors),
            /// the histograms in their own fields).
            pub fn fields(&self) -> [Field; counters!(@count $($name)*)] {
                [$( Field {
                    name: stringify!($name),
                    help: $help,
                    value: self.$name,
                    family: counters!(@family $($fam $key $val)?),
                } ),*]
            }

            /// Adds `other` into `self` (summing cores).
            pub fn add(&mut self, other: &Counters) {
                for (a, b) in self.rx_parse_errors.iter_mut().zip(other.rx_parse_errors) {
                    *a += b;
                }
                self.close_rst_wire.add(&other.close_rst_wire);
                self.close_fin_wire.add(&other.close_fin_wire);
                self.linger_rst_late.add(&other.linger_rst_late);
                $( self.$name += other.$name; )*
            }
        }
    };
    (@family) => { None };
    (@family $fam:ident $key:ident $val:literal) => {
        Some((stringify!($fam), stringify!($key), $val))
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
    rst_responder => rst_sent(reason = "responder"),
    #[doc = "RSTs answering an ACK of something never sent, in SYN-SENT or SYN-RECEIVED (RFC 9293 §3.10.7.3, §3.10.7.4)."]
    rst_unacceptable_ack => rst_sent(reason = "unacceptable_ack"),
    #[doc = "RSTs of hard closes asked for with nothing unread: abort, SO_LINGER {on, 0}, a bulk or client-exit abort."]
    rst_abort => rst_sent(reason = "abort"),
    #[doc = "RSTs sent instead of a FIN because a close or shutdown(RECEIVE) found unread data (RFC 2525 §2.17)."]
    rst_close_unread => rst_sent(reason = "close_unread"),
    #[doc = "RSTs sent because data arrived after close or shutdown(RECEIVE)."]
    rst_data_after_close => rst_sent(reason = "data_after_close"),
    #[doc = "RSTs sent because a linger deadline expired."]
    rst_linger_expired => rst_sent(reason = "linger_expired"),
    #[doc = "RSTs sent because a bulk close's hard deadline (`deadline=N`) expired."]
    rst_deadline_expired => rst_sent(reason = "deadline_expired"),
    #[doc = "RSTs sent because a closed connection's orphan timeout expired."]
    rst_orphan_timeout => rst_sent(reason = "orphan_timeout"),
    #[doc = "RSTs to handshakes completed after their listener was closed."]
    rst_listener_closed => rst_sent(reason = "listener_closed"),
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
    #[doc = "Closes that completed once the peer acknowledged our data and FIN."]
    closes_graceful => closes(outcome = "graceful"),
    #[doc = "Closes that returned at once with a background graceful close."]
    closes_background => closes(outcome = "background"),
    #[doc = "Closes whose linger deadline expired."]
    closes_aborted_linger => closes(outcome = "aborted_linger"),
    #[doc = "Hard closes."]
    closes_aborted => closes(outcome = "aborted"),
    #[doc = "Closes that found the connection reset by the peer."]
    closes_reset_by_peer => closes(outcome = "reset_by_peer"),
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
    #[doc = "Fast retransmits (duplicate ACKs or SACKed data reaching the duplicate threshold)."]
    fast_retransmits,
    #[doc = "Retransmissions of a hole the peer's SACK blocks showed (RFC 6675)."]
    sack_retransmits,
    #[doc = "SACK blocks sent for out-of-order data held (RFC 2018)."]
    sack_blocks_sent,
    #[doc = "SACK blocks received that lie within the data outstanding."]
    sack_blocks_received,
    #[doc = "SACK blocks received and ignored: outside SND.UNA..SND.MAX (D-SACK, stale or forged)."]
    sack_blocks_ignored,
    #[doc = "Fast recoveries found spurious by the timestamp echo (RFC 3522) and undone."]
    spurious_recoveries_undone,
    #[doc = "Tail loss probes: the retransmission timer's short first run expired and the first unacknowledged segment went again as the start of a recovery."]
    loss_probes,
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
    #[doc = "IPv6 Neighbor Solicitations for our addresses answered (Neighbor Advertisements sent)."]
    nd_adverts_sent,
    #[doc = "IPv6 Neighbor Solicitations sent (for the gateway or an on-link peer)."]
    nd_solicits_sent,
    #[doc = "ICMPv6 Packet Too Big messages that lowered a connection's MSS."]
    ptb_mss_lowered,
    #[doc = "ICMPv6 Packet Too Big messages ignored: no such connection, a quoted sequence number outside SND.UNA..SND.MAX (RFC 5927 §4.1), or no smaller MSS."]
    ptb_ignored,
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
        assert!(f.iter().any(|x| x.name == "rst_abort"
            && x.value == 4
            && !x.help.is_empty()
            && x.family == Some(("rst_sent", "reason", "abort"))));
        // Every family a counter names is declared, with its help.
        for x in &f {
            if let Some((fam, _, _)) = x.family {
                assert!(
                    FAMILIES.iter().any(|(n, h)| *n == fam && !h.is_empty()),
                    "{fam}"
                );
            }
        }
        let mut names: Vec<_> = f.iter().map(|x| x.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), f.len(), "names are unique");
    }
}
