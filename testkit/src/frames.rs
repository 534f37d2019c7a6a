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

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    #[test]
    fn both_families_are_rsts_with_right_checksums() {
        for (l, r, len) in [
            ("198.18.0.1", "198.18.0.2", RST_FRAME_LEN),
            ("2001:db8::1", "2001:db8::2", RST_FRAME_LEN_V6),
        ] {
            let (l, r): (IpAddr, IpAddr) = (l.parse().unwrap(), r.parse().unwrap());
            let f = rst_frame(A, B, (l, 9), (r, 40_000), SeqNumber(7)).unwrap();
            assert_eq!(f.len(), len);
            let t = crate::oracle::read_tcp(&f);
            assert_eq!((t.src, t.dst, t.ports), (l, r, (9, 40_000)), "{l} -> {r}");
            assert!(t.flags.2 && t.sums_ok, "{l} -> {r}: {t:?}");
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
