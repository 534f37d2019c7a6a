//! One RST frame of either address family, built with the wire layer's
//! templates (`RstTemplate`, `RstTemplateV6`), for the senders that measure
//! a ceiling: the system tests' bare AF_XDP loop and the bench's.
//!
//! It owns nothing but the choice of template by family; every byte comes
//! from the wire layer.

use std::net::IpAddr;

use lingerd_dataplane::wire::{
    ControlSegment, EthernetAddress, RST_FRAME_LEN, RST_FRAME_LEN_V6, RstTemplate, RstTemplateV6,
    SeqNumber,
};

/// An Ethernet + IP + TCP RST from `local:local_port` to
/// `remote:remote_port` with `seq`, through `next_hop_mac`: 54 bytes over
/// IPv4, 74 over IPv6. `None` when the two addresses are of different
/// families.
pub fn rst_frame(
    local_mac: EthernetAddress,
    next_hop_mac: EthernetAddress,
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    seq: SeqNumber,
) -> Option<Vec<u8>> {
    match (local.0, remote.0) {
        (IpAddr::V4(l), IpAddr::V4(r)) => {
            let mut frame = [0u8; RST_FRAME_LEN];
            RstTemplate::new(local_mac, next_hop_mac, l)
                .build_array(&mut frame, &ControlSegment::rst(r, local.1, remote.1, seq));
            Some(frame.to_vec())
        }
        (IpAddr::V6(l), IpAddr::V6(r)) => {
            let mut frame = [0u8; RST_FRAME_LEN_V6];
            RstTemplateV6::new(local_mac, next_hop_mac, l)
                .build_array(&mut frame, &ControlSegment::rst(r, local.1, remote.1, seq));
            Some(frame.to_vec())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    /// etherparse's reading of `frame`: (source, destination, ports, RST,
    /// whether the IPv4 header and the TCP checksums are right).
    fn oracle(frame: &[u8]) -> (IpAddr, IpAddr, (u16, u16), bool, bool) {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse reads it");
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("no TCP header");
        };
        let (src, dst, sums_ok) = match p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                let sum = tcp
                    .calc_checksum_ipv4(h.source, h.destination)
                    .expect("a small segment");
                let ok = h.header_checksum == h.calc_header_checksum() && sum == tcp.checksum();
                (IpAddr::from(h.source), IpAddr::from(h.destination), ok)
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                let sum = tcp
                    .calc_checksum_ipv6(h.source, h.destination)
                    .expect("a small segment");
                (
                    IpAddr::from(h.source),
                    IpAddr::from(h.destination),
                    sum == tcp.checksum(),
                )
            }
            other => panic!("not IP: {other:?}"),
        };
        let ports = (tcp.source_port(), tcp.destination_port());
        (src, dst, ports, tcp.rst(), sums_ok)
    }

    #[test]
    fn both_families_are_rsts_with_right_checksums() {
        for (l, r, len) in [
            ("198.18.0.1", "198.18.0.2", RST_FRAME_LEN),
            ("2001:db8::1", "2001:db8::2", RST_FRAME_LEN_V6),
        ] {
            let (l, r): (IpAddr, IpAddr) = (l.parse().unwrap(), r.parse().unwrap());
            let f = rst_frame(A, B, (l, 9), (r, 40_000), SeqNumber(7)).unwrap();
            assert_eq!(f.len(), len);
            assert_eq!(oracle(&f), (l, r, (9, 40_000), true, true), "{l} -> {r}");
        }
        let mixed = rst_frame(
            A,
            B,
            ("198.18.0.1".parse().unwrap(), 9),
            ("2001:db8::2".parse().unwrap(), 40_000),
            SeqNumber(7),
        );
        assert!(mixed.is_none());
    }
}
