//! Test support shared by the dataplane's integration tests: a reference TCP
//! peer ([`smoltcp_peer`]) and an oracle that decodes raw frames from a
//! [`Pair`](lingerd_testkit::mem::Pair) trace with etherparse.
//!
//! It owns only test-side decoding and peers; it may not be used by the
//! library (etherparse and smoltcp are dev-dependencies) and it never
//! decodes with lingerd's own `wire` code, so a bug there cannot hide itself.
//!
//! Each `tests/*.rs` binary compiles this module separately and uses a
//! subset of it, so unused items are expected in any one binary: hence the
//! `dead_code` allowance below, and nothing else.
#![allow(dead_code)]

pub(crate) mod engine;
pub(crate) mod raw_peer;
pub(crate) mod smoltcp_peer;

use std::fmt;
use std::net::SocketAddr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lingerd_testkit::mem::{Direction, Fate, TraceEntry};

/// The TCP flags of a segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// SYN.
    pub(crate) syn: bool,
    /// FIN.
    pub(crate) fin: bool,
    /// RST.
    pub(crate) rst: bool,
    /// PSH.
    pub(crate) psh: bool,
    /// ACK.
    pub(crate) ack: bool,
    /// URG.
    pub(crate) urg: bool,
}

impl fmt::Display for Flags {
    /// Letters in the order S F R P A U: a SYN-ACK is "SA", an RST-ACK "RA",
    /// a bare ACK "A".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, letter) in [
            (self.syn, 'S'),
            (self.fin, 'F'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.ack, 'A'),
            (self.urg, 'U'),
        ] {
            if on {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// A decoded Ethernet/IPv4/TCP or Ethernet/IPv6/TCP segment, reduced to
/// what tests assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Source address and port.
    pub(crate) src: SocketAddr,
    /// Destination address and port.
    pub(crate) dst: SocketAddr,
    /// TCP flags.
    pub(crate) flags: Flags,
    /// Sequence number.
    pub(crate) seq: u32,
    /// Acknowledgment number (meaningful when `flags.ack`).
    pub(crate) ack: u32,
    /// Window field, unscaled.
    pub(crate) window: u16,
    /// Payload bytes.
    pub(crate) payload_len: usize,
    /// Both the IPv4 header checksum and the TCP checksum are right.
    pub(crate) checksum_ok: bool,
}

impl Segment {
    /// The flags as letters, e.g. "SA" (see [`Flags`]'s `Display`).
    pub(crate) fn flags_str(&self) -> String {
        self.flags.to_string()
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {} [{}] seq={} ack={} win={} len={}{}",
            self.src,
            self.dst,
            self.flags,
            self.seq,
            self.ack,
            self.window,
            self.payload_len,
            if self.checksum_ok { "" } else { " BAD-CSUM" }
        )
    }
}

/// Decodes an Ethernet frame; `None` unless it is IPv4 carrying TCP (ARP,
/// IPv6, UDP, garbage).
pub(crate) fn summarize(frame: &[u8]) -> Option<Segment> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(TransportSlice::Tcp(tcp)) = &packet.transport else {
        return None;
    };
    let (src_ip, dst_ip, checksum_ok) = match &packet.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let (src, dst) = (h.source_addr(), h.destination_addr());
            let ip_ok = h.to_header().calc_header_checksum() == h.header_checksum();
            let tcp_ok = tcp
                .calc_checksum_ipv4(src.octets(), dst.octets())
                .is_ok_and(|sum| sum == tcp.checksum());
            (src.into(), dst.into(), ip_ok && tcp_ok)
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let (src, dst) = (h.source_addr(), h.destination_addr());
            let tcp_ok = tcp
                .calc_checksum_ipv6(src.octets(), dst.octets())
                .is_ok_and(|sum| sum == tcp.checksum());
            (src.into(), dst.into(), tcp_ok)
        }
        _ => return None,
    };
    Some(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        flags: Flags {
            syn: tcp.syn(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            psh: tcp.psh(),
            ack: tcp.ack(),
            urg: tcp.urg(),
        },
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        window: tcp.window_size(),
        payload_len: tcp.payload().len(),
        checksum_ok,
    })
}

/// The TCP segments the sender emitted in `direction`, in send order:
/// delivered and dropped alike, duplicate copies made by the link excluded.
pub(crate) fn sent(trace: &[TraceEntry], direction: Direction) -> Vec<Segment> {
    let mut entries: Vec<&TraceEntry> = trace
        .iter()
        .filter(|e| e.direction == direction && !e.duplicate)
        .collect();
    entries.sort_by_key(|e| e.sent_at);
    entries.iter().filter_map(|e| summarize(&e.bytes)).collect()
}

/// The TCP segments the receiver got in `direction`, in arrival order
/// (duplicates included).
pub(crate) fn delivered(trace: &[TraceEntry], direction: Direction) -> Vec<Segment> {
    trace
        .iter()
        .filter(|e| e.direction == direction && e.fate == Fate::Delivered)
        .filter_map(|e| summarize(&e.bytes))
        .collect()
}

/// How many RSTs the sender emitted in `direction` (see [`sent`]).
pub(crate) fn count_rst(trace: &[TraceEntry], direction: Direction) -> usize {
    sent(trace, direction)
        .iter()
        .filter(|s| s.flags.rst)
        .count()
}

/// One line per trace entry, for failure messages:
/// `+12.000ms A>B delivered 198.18.0.1:1 > ... [SA] ...`.
pub(crate) fn dump(trace: &[TraceEntry]) -> String {
    let Some(first) = trace.iter().map(|e| e.sent_at).min() else {
        return String::new();
    };
    let mut out = String::new();
    for e in trace {
        let dir = match e.direction {
            Direction::AToB => "A>B",
            Direction::BToA => "B>A",
        };
        let fate = match e.fate {
            Fate::Delivered if e.duplicate => "dup".to_string(),
            Fate::Delivered => "ok".to_string(),
            Fate::Dropped(why) => format!("{why:?}"),
        };
        let what = summarize(&e.bytes).map_or_else(
            || format!("non-TCP frame, {} bytes", e.bytes.len()),
            |s| s.to_string(),
        );
        let at = (e.at - first).as_secs_f64() * 1e3;
        out.push_str(&format!("+{at:.3}ms {dir} {fate} {what}\n"));
    }
    out
}
