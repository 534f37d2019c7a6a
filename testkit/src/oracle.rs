//! An independent reading of a TCP frame, by etherparse rather than our
//! own wire layer: what the tests hold our built frames against.
//!
//! It owns that one reading and nothing else; it panics on a frame that is
//! not Ethernet + IPv4/IPv6 + TCP, as a test's oracle should.

use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// What etherparse reads in a TCP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpReading {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// (source, destination) ports.
    pub ports: (u16, u16),
    /// (SEQ, ACK) as sent.
    pub seq_ack: (u32, u32),
    /// FIN, ACK, RST.
    pub flags: (bool, bool, bool),
    /// The IPv4 header checksum (if any) and the TCP checksum are right.
    pub sums_ok: bool,
}

/// etherparse's reading of `frame` (panics if it is not a TCP frame).
pub fn read_tcp(frame: &[u8]) -> TcpReading {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse reads it");
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("no TCP header");
    };
    let (src, dst, sums_ok) = match p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            let sum = tcp
                .calc_checksum_ipv4(h.source, h.destination)
                .expect("a segment below 64 KiB");
            let ok = h.header_checksum == h.calc_header_checksum() && sum == tcp.checksum();
            (IpAddr::from(h.source), IpAddr::from(h.destination), ok)
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header().to_header();
            let sum = tcp
                .calc_checksum_ipv6(h.source, h.destination)
                .expect("a segment below 64 KiB");
            (
                IpAddr::from(h.source),
                IpAddr::from(h.destination),
                sum == tcp.checksum(),
            )
        }
        other => panic!("not IP: {other:?}"),
    };
    TcpReading {
        src,
        dst,
        ports: (tcp.source_port(), tcp.destination_port()),
        seq_ack: (tcp.sequence_number(), tcp.acknowledgment_number()),
        flags: (tcp.fin(), tcp.ack(), tcp.rst()),
        sums_ok,
    }
}
