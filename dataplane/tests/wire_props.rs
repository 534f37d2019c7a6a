//! Property tests of `wire` against itself: `parse(emit(x)) == x` for every
//! `Repr`, no panic on arbitrary or mutated bytes, `SeqNumber` ordering laws
//! near the wrap points, and checksum identities (fast sum vs the RFC 1071
//! loop, RFC 1624 update vs recomputation). Touches only the public API.

mod wire_strategies;

use std::net::Ipv4Addr;

use lingerd_dataplane::wire::{
    ArpOperation, ArpPacket, ArpRepr, ControlSegment, EtherType, EthernetFrame, EthernetRepr,
    Ipv4Packet, Ipv4Repr, RST_FRAME_LEN, RstTemplate, SeqNumber, TcpOptions, TcpPacket, TcpRepr,
    checksum,
};
use proptest::prelude::*;
use wire_strategies::*;

/// Parses a frame through every layer, as the engine will.
fn parse_frame(bytes: &[u8]) -> Result<(), lingerd_dataplane::wire::Error> {
    let frame = EthernetFrame::new_checked(bytes)?;
    let eth = EthernetRepr::parse(&frame)?;
    match eth.ethertype {
        EtherType::Arp => {
            ArpRepr::parse(&ArpPacket::new_checked(frame.payload())?)?;
        }
        EtherType::Ipv4 => {
            let packet = Ipv4Packet::new_checked(frame.payload())?;
            let ip = Ipv4Repr::parse(&packet)?;
            let segment = TcpPacket::new_checked(packet.payload())?;
            TcpRepr::parse(&segment, ip.src_addr, ip.dst_addr, true)?;
        }
        EtherType::Unknown(_) => {}
    }
    Ok(())
}

/// Calls every accessor of every view on `bytes`, unchecked where
/// `check_len` passes; none may panic.
fn read_everything(bytes: &[u8]) {
    if let Ok(f) = EthernetFrame::new_checked(bytes) {
        let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
    }
    if let Ok(p) = ArpPacket::new_checked(bytes) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        let _ = ArpRepr::parse(&p);
    }
    if let Ok(p) = Ipv4Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp(),
            p.ecn(),
            p.total_len(),
        );
        let _ = (p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset());
        let _ = (
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = (p.verify_checksum(), p.options(), p.payload());
        let _ = Ipv4Repr::parse(&p);
    }
    if let Ok(p) = TcpPacket::new_checked(bytes) {
        let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
        let _ = (p.header_len(), p.flags(), p.window_len(), p.checksum());
        let _ = (p.urgent_at(), p.options(), p.payload());
        let _ = p.verify_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        let _ = TcpRepr::parse(&p, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, true);
        let _ = TcpOptions::parse(p.options());
    }
    let _ = TcpOptions::parse(bytes);
    let _ = parse_frame(bytes);
}

/// The RFC 1071 §4.1 loop, as a reference.
fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for pair in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // ----- round trips -----

    #[test]
    fn ethernet_round_trip(src in mac(), dst in mac(), ty in prop_oneof![
        Just(EtherType::Ipv4),
        Just(EtherType::Arp),
        (0x0600u16..=u16::MAX)
            .prop_filter("VLAN tags are unsupported", |t| ![0x8100, 0x88a8, 0x9100].contains(t))
            .prop_map(EtherType::from),
    ]) {
        let repr = EthernetRepr { src_addr: src, dst_addr: dst, ethertype: ty };
        let mut bytes = [0u8; 14];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&bytes[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn arp_round_trip(op in any::<u16>(), sha in mac(), spa in ipv4_addr(), tha in mac(), tpa in ipv4_addr()) {
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::from(op),
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let mut bytes = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&bytes[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv4_round_trip(
        src in ipv4_addr(), dst in ipv4_addr(), proto in any::<u8>(), ttl in any::<u8>(),
        payload_len in prop_oneof![0..1500usize, Just(65515usize)],
        padding in 0..46usize,
    ) {
        let repr = Ipv4Repr { src_addr: src, dst_addr: dst, protocol: proto.into(), payload_len, ttl };
        let mut bytes = vec![0u8; repr.buffer_len() + padding];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(packet.payload().len(), payload_len);
        prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn tcp_round_trip(case in tcp_case(), src in ipv4_addr(), dst in ipv4_addr()) {
        let repr = case.repr();
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut bytes[..]), src, dst);
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(usize::from(packet.header_len()), repr.header_len());
        prop_assert_eq!(packet.header_len() % 4, 0);
        prop_assert!(packet.verify_checksum(src, dst));
        prop_assert_eq!(TcpRepr::parse(&packet, src, dst, true), Ok(repr));
        prop_assert_eq!(
            repr.segment_len() as usize,
            case.payload.len() + usize::from(repr.flags.syn()) + usize::from(repr.flags.fin())
        );
    }

    #[test]
    fn frame_round_trip(case in frame_case(), padding in 0..46usize) {
        let mut bytes = case.emit();
        bytes.resize(bytes.len() + padding, 0); // Ethernet padding is ignored
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame), Ok(case.ethernet()));
        let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
        prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(case.ipv4()));
        let segment = TcpPacket::new_checked(packet.payload()).unwrap();
        prop_assert_eq!(TcpRepr::parse(&segment, case.src_ip, case.dst_ip, true), Ok(case.tcp.repr()));
    }

    // ----- hostile input -----

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        read_everything(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic_and_fail_cleanly(
        case in frame_case(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = case.emit();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        read_everything(&bytes);
        // Every strict prefix of a valid frame fails to parse (the lengths
        // fields say more than is there).
        let valid = case.emit();
        let len = cut.index(valid.len());
        read_everything(&valid[..len]);
        prop_assert!(parse_frame(&valid[..len]).is_err());
        prop_assert_eq!(parse_frame(&valid), Ok(()));
    }

    #[test]
    fn every_truncation_of_a_frame_fails(case in frame_case()) {
        let valid = case.emit();
        for len in 0..valid.len() {
            prop_assert!(parse_frame(&valid[..len]).is_err(), "len {}", len);
        }
    }

    // ----- SeqNumber -----

    #[test]
    fn seq_forward_distance_orders(a in seq(), d in 1u32..0x8000_0000) {
        let b = a + d;
        prop_assert!(a < b);
        prop_assert!(b > a);
        prop_assert!(a <= b);
        prop_assert!(b >= a);
        prop_assert!(a != b);
        prop_assert_eq!(b.diff(a), d as i32);
        prop_assert_eq!(a.diff(b), (d as i32).wrapping_neg());
        prop_assert_eq!(b.distance_from(a), d);
        prop_assert_eq!(b - d, a);
    }

    #[test]
    fn seq_comparison_is_antisymmetric_and_dual(a in seq(), b in seq(), half_apart in any::<bool>()) {
        // Half the cases sit exactly 2^31 apart, the one incomparable distance.
        let b = if half_apart { a + 0x8000_0000 } else { b };
        prop_assert!(!(a < b && b < a));
        prop_assert_eq!(a < b, b > a);
        prop_assert_eq!(a <= b, b >= a);
        prop_assert_eq!(a == b, a.partial_cmp(&b) == Some(std::cmp::Ordering::Equal));
        // Incomparable exactly when 2^31 apart.
        prop_assert_eq!(a.partial_cmp(&b).is_none(), a.distance_from(b) == 0x8000_0000);
    }

    #[test]
    fn seq_transitive_within_half_space(a in seq(), d1 in 0u32..0x4000_0000, d2 in 0u32..0x4000_0000) {
        let (b, c) = (a + d1, a + d1 + d2);
        prop_assert!(a <= b && b <= c && a <= c);
        prop_assert_eq!(c.diff(a), (d1 + d2) as i32);
    }

    #[test]
    fn seq_window_and_span(start in seq(), len in any::<u32>(), k in any::<u32>()) {
        let x = start + k;
        prop_assert_eq!(x.is_in_window(start, len), k < len);
        let hi = start + len;
        prop_assert_eq!(x.is_between(start, hi), k <= len);
        // Both ends of a span are inside it.
        prop_assert!(start.is_between(start, hi) && hi.is_between(start, hi));
    }

    // ----- checksums -----

    #[test]
    fn fast_sum_matches_rfc1071_loop(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(checksum::data(&data), reference_sum(&data));
    }

    #[test]
    fn sums_concatenate_at_even_lengths(
        a in proptest::collection::vec(any::<u8>(), 0..100),
        b in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut a = a;
        if a.len() % 2 == 1 { a.pop(); }
        let joined: Vec<u8> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(
            checksum::fold(checksum::add(checksum::sum(&a), checksum::sum(&b))),
            checksum::data(&joined)
        );
    }

    #[test]
    fn incremental_update_equals_recomputation(
        words in proptest::collection::vec(any::<u16>(), 2..40),
        at in any::<prop::sample::Index>(),
        new16 in any::<u16>(),
        new32 in any::<u32>(),
    ) {
        let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let full = |w: &[u16]| checksum::finish(checksum::sum(&bytes(w)));
        let hc = full(&words);

        // One 16-bit word.
        let i = at.index(words.len());
        let mut changed = words.clone();
        changed[i] = new16;
        let updated = checksum::update_u16(hc, words[i], new16);
        if changed.iter().any(|&w| w != 0) {
            prop_assert_eq!(updated, full(&changed));
        } else {
            // RFC 1624 §3: all-zero data has sum +0, which recomputation
            // stores as 0xFFFF and the update as 0x0000 (-0): the same number.
            prop_assert_eq!((updated, full(&changed)), (0x0000, 0xffff));
        }

        // One 32-bit field (two adjacent words).
        let j = at.index(words.len() - 1);
        let old32 = (u32::from(words[j]) << 16) | u32::from(words[j + 1]);
        let mut changed = words.clone();
        changed[j] = (new32 >> 16) as u16;
        changed[j + 1] = new32 as u16;
        let updated = checksum::update_u32(hc, old32, new32);
        if changed.iter().any(|&w| w != 0) {
            prop_assert_eq!(updated, full(&changed));
        } else {
            prop_assert_eq!((updated, full(&changed)), (0x0000, 0xffff));
        }
    }

    #[test]
    fn incremental_update_on_real_headers(case in frame_case(), new_dst in ipv4_addr(), new_ttl in any::<u8>()) {
        // Change the IPv4 destination and TTL in an emitted frame by RFC 1624
        // updates only; the header must equal one emitted from scratch.
        let mut bytes = case.emit();
        let ip = &mut bytes[14..34];
        let old_checksum = u16::from_be_bytes([ip[10], ip[11]]);
        let old_ttl_word = u16::from_be_bytes([ip[8], ip[9]]);
        let new_ttl_word = (u16::from(new_ttl) << 8) | (old_ttl_word & 0xff);
        let hc = checksum::update_u16(old_checksum, old_ttl_word, new_ttl_word);
        let hc = checksum::update_u32(hc, u32::from(case.dst_ip), u32::from(new_dst));
        ip[8] = new_ttl;
        ip[16..20].copy_from_slice(&new_dst.octets());
        ip[10..12].copy_from_slice(&hc.to_be_bytes());

        let expected = wire_strategies::FrameCase { dst_ip: new_dst, ttl: new_ttl, ..case.clone() };
        prop_assert_eq!(&bytes[14..34], &expected.emit()[14..34]);
    }

    // ----- RST template -----

    #[test]
    fn rst_template_equals_emit_path(
        local_mac in mac(), gw_mac in mac(), local_ip in ipv4_addr(), seg in control_segment(),
    ) {
        let template = RstTemplate::new(local_mac, gw_mac, local_ip);
        let mut built = [0u8; RST_FRAME_LEN];
        template.build_array(&mut built, &seg);
        let (eth, ip, tcp) = template_reprs(local_mac, gw_mac, local_ip, &seg);
        prop_assert_eq!(&built[..], &emit_frame(&eth, &ip, &tcp)[..]);
    }
}

#[test]
fn rst_template_reuses_buffers() {
    // A buffer holding a previous, different frame is fully overwritten.
    let template = RstTemplate::new(
        lingerd_dataplane::wire::EthernetAddress([2, 0, 0, 0, 0, 1]),
        lingerd_dataplane::wire::EthernetAddress([2, 0, 0, 0, 0, 2]),
        Ipv4Addr::new(198, 18, 0, 1),
    );
    let a = ControlSegment::rst(Ipv4Addr::new(198, 18, 0, 2), 80, 1000, SeqNumber(1));
    let b = ControlSegment::rst_ack(
        Ipv4Addr::new(198, 18, 0, 3),
        81,
        1001,
        SeqNumber(0),
        SeqNumber(9),
    );
    let mut fresh = [0u8; RST_FRAME_LEN];
    template.build_array(&mut fresh, &b);
    let mut reused = [0xffu8; RST_FRAME_LEN];
    template.build_array(&mut reused, &a);
    template.build_array(&mut reused, &b);
    assert_eq!(reused, fresh);
    assert_ne!(fresh, [0u8; RST_FRAME_LEN]);
}
