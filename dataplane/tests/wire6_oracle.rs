//! The IPv6 half of `wire` judged by an independent implementation:
//! etherparse 0.21 builds IPv6 frames (with extension headers) and ICMPv6
//! messages we parse, parses the ones we build, computes every checksum a
//! second time, and walks random extension header chains beside ours.
//! Touches only the public API of `wire` and etherparse.

mod wire6_strategies;
mod wire_strategies;

use std::net::Ipv6Addr;

use etherparse::{
    Icmpv6Slice, Icmpv6Type, IpFragOffset, IpHeaders, IpNumber, Ipv6Extensions, Ipv6FlowLabel,
    Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions, NetSlice,
    PacketBuilder, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice,
    icmpv6::NeighborAdvertisementHeader,
};
use lingerd_dataplane::wire::{
    Error, EtherType, EthernetFrame, EthernetRepr, Icmpv6Packet, IpProtocol, Ipv6ChainEnd,
    Ipv6Packet, Ipv6Repr, NdiscFlags, NdiscRepr, PacketTooBigRepr, RST_FRAME_LEN_V6, RstTemplateV6,
    TcpFlags, TcpPacket, TcpPseudoHeader, TcpRepr, ipv6_walk,
};
use proptest::prelude::*;
use wire_strategies::{TcpCase, etherparse_options, mac};
use wire6_strategies::*;

fn etherparse_tcp_header(tcp: &TcpCase) -> TcpHeader {
    let repr = tcp.repr();
    let f = repr.flags;
    let mut header = TcpHeader::new(repr.src_port, repr.dst_port, repr.seq.0, repr.window);
    header.acknowledgment_number = repr.ack.0;
    header.fin = f.contains(TcpFlags::FIN);
    header.syn = f.contains(TcpFlags::SYN);
    header.rst = f.contains(TcpFlags::RST);
    header.psh = f.contains(TcpFlags::PSH);
    header.ack = f.contains(TcpFlags::ACK);
    header.urg = f.contains(TcpFlags::URG);
    header.ece = f.contains(TcpFlags::ECE);
    header.cwr = f.contains(TcpFlags::CWR);
    header.urgent_pointer = repr.urgent;
    header
        .set_options(&etherparse_options(&repr.options))
        .expect("our options fit in 40 bytes");
    header
}

/// A canonical chain as etherparse's `Ipv6Extensions` (next headers are
/// filled in by the builder).
fn etherparse_exts(exts: &[Ext]) -> Ipv6Extensions {
    let raw = |bytes: &[u8]| Ipv6RawExtHeader::new_raw(IpNumber(0), bytes).unwrap();
    let mut out = Ipv6Extensions::default();
    for ext in exts {
        match ext {
            Ext::HopByHop(area) => out.hop_by_hop_options = Some(raw(area)),
            Ext::DestOpts(area) => out.destination_options = Some(raw(area)),
            Ext::Routing { routing_type, data } => {
                let mut body = vec![*routing_type, 0];
                body.extend_from_slice(data);
                out.routing = Some(Ipv6RoutingExtensions {
                    routing: raw(&body),
                    final_destination_options: None,
                });
            }
            Ext::Fragment { ident } => {
                out.fragment = Some(Ipv6FragmentHeader::new(
                    IpNumber(0),
                    IpFragOffset::ZERO,
                    false,
                    *ident,
                ));
            }
        }
    }
    out
}

/// The frame for `case` as etherparse's `PacketBuilder` writes it.
fn etherparse_frame(case: &Frame6Case) -> Vec<u8> {
    let header = Ipv6Header {
        traffic_class: case.traffic_class,
        flow_label: Ipv6FlowLabel::try_new(case.flow_label).unwrap(),
        payload_length: 0,
        next_header: IpNumber(0),
        hop_limit: case.hop_limit,
        source: case.src_ip.octets(),
        destination: case.dst_ip.octets(),
    };
    let builder = PacketBuilder::ethernet2(case.src_mac.0, case.dst_mac.0)
        .ip(IpHeaders::Ipv6(header, etherparse_exts(&case.exts)))
        .tcp_header(etherparse_tcp_header(&case.tcp));
    let payload = &case.tcp.payload;
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

/// Checks a frame of ours with etherparse: IPv6 fields, the chain length,
/// every TCP field and the checksum.
fn check_with_etherparse(
    bytes: &[u8],
    eth: &EthernetRepr,
    ip: &Ipv6Repr,
    chain_len: usize,
    tcp: &TcpRepr<'_>,
) -> Result<(), TestCaseError> {
    let sliced = SlicedPacket::from_ethernet(bytes)
        .map_err(|e| TestCaseError::fail(format!("etherparse refused our frame: {e:?}")))?;
    let Some(etherparse::LinkSlice::Ethernet2(link)) = sliced.link else {
        return Err(TestCaseError::fail("no Ethernet II header"));
    };
    prop_assert_eq!(link.source(), eth.src_addr.0);
    prop_assert_eq!(link.destination(), eth.dst_addr.0);
    prop_assert_eq!(link.ether_type().0, 0x86dd);
    let Some(NetSlice::Ipv6(ipv6)) = sliced.net else {
        return Err(TestCaseError::fail("no IPv6 header"));
    };
    let header = ipv6.header().to_header();
    prop_assert_eq!(header.source_addr(), ip.src_addr);
    prop_assert_eq!(header.destination_addr(), ip.dst_addr);
    prop_assert_eq!(header.hop_limit, ip.hop_limit);
    prop_assert_eq!(header.traffic_class, ip.traffic_class);
    prop_assert_eq!(header.flow_label.value(), ip.flow_label);
    prop_assert_eq!(usize::from(header.payload_length), ip.payload_len);
    prop_assert_eq!(header.next_header.0, u8::from(ip.next_header));
    prop_assert_eq!(ipv6.extensions().slice().len(), chain_len);

    let Some(TransportSlice::Tcp(segment)) = sliced.transport else {
        return Err(TestCaseError::fail("no TCP header"));
    };
    prop_assert_eq!(segment.source_port(), tcp.src_port);
    prop_assert_eq!(segment.destination_port(), tcp.dst_port);
    prop_assert_eq!(segment.sequence_number(), tcp.seq.0);
    prop_assert_eq!(segment.acknowledgment_number(), tcp.ack.0);
    prop_assert_eq!(segment.window_size(), tcp.window);
    prop_assert_eq!(segment.rst(), tcp.flags.rst());
    prop_assert_eq!(segment.syn(), tcp.flags.syn());
    prop_assert_eq!(segment.fin(), tcp.flags.fin());
    prop_assert_eq!(segment.ack(), tcp.flags.ack());
    prop_assert_eq!(segment.payload(), tcp.payload);
    let expected = segment
        .calc_checksum_ipv6(ip.src_addr.octets(), ip.dst_addr.octets())
        .unwrap();
    prop_assert_eq!(segment.checksum(), expected);
    Ok(())
}

/// Whether `n` is a header etherparse's `Ipv6Extensions` walks over.
fn etherparse_walks(n: u8) -> bool {
    matches!(n, 0 | 43 | 44 | 51 | 60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Same bytes from both emitters (our IPv6 header and TCP checksum,
    /// this file's chain bytes vs etherparse's), checksums included.
    #[test]
    fn emit_is_byte_identical_to_etherparse(case in frame6_case()) {
        prop_assert_eq!(case.emit(), etherparse_frame(&case));
    }

    /// etherparse builds, we parse (checksums verified by us).
    #[test]
    fn we_parse_etherparse_frames(case in frame6_case()) {
        let bytes = etherparse_frame(&case);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame), Ok(case.ethernet()));
        let packet = Ipv6Packet::new_checked(frame.payload()).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&packet), Ok(case.ipv6()));
        let chain = ipv6_walk(packet.next_header(), packet.payload()).unwrap();
        prop_assert_eq!(chain.end, Ipv6ChainEnd::Upper(IpProtocol::Tcp));
        prop_assert_eq!(chain.offset, case.chain_len());
        let segment = TcpPacket::new_checked(chain.upper(packet.payload())).unwrap();
        prop_assert_eq!(
            TcpRepr::parse_pseudo(&segment, case.pseudo(), true),
            Ok(case.tcp.repr())
        );
    }

    /// We build, etherparse parses and recomputes the TCP checksum.
    #[test]
    fn etherparse_accepts_our_frames(case in frame6_case()) {
        let bytes = case.emit();
        check_with_etherparse(&bytes, &case.ethernet(), &case.ipv6(), case.chain_len(), &case.tcp.repr())?;
    }

    /// IPv6 RST template frames: etherparse accepts them and its checksum
    /// agrees.
    #[test]
    fn etherparse_accepts_template_v6_frames(
        local_mac in mac(), gw_mac in mac(), local_ip in source_addr(), seg in control_segment_v6(),
    ) {
        let template = RstTemplateV6::new(local_mac, gw_mac, local_ip);
        let mut bytes = [0u8; RST_FRAME_LEN_V6];
        template.build_array(&mut bytes, &seg);
        let (eth, ip, tcp) = template_reprs_v6(local_mac, gw_mac, local_ip, &seg);
        check_with_etherparse(&bytes, &eth, &ip, 0, &tcp)?;
    }

    /// Random chains, some bytes overwritten: wherever our walk accepts a
    /// chain, etherparse walks it to the same header at the same offset;
    /// wherever etherparse refuses the bytes, so do we.
    #[test]
    fn walk_agrees_with_etherparse(
        exts in any_chain(),
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        last in prop_oneof![Just(6u8), Just(58), Just(59), Just(50), any::<u8>()],
    ) {
        let mut bytes = chain_bytes(&exts, last);
        bytes.extend_from_slice(&[0xab; 24]);
        for (at, value) in mutations {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let bytes = &bytes[..cut.index(bytes.len() + 1)];
        let first = first_header(&exts, last);
        let ours = ipv6_walk(IpProtocol::from(first), bytes);
        let theirs = Ipv6Extensions::from_slice(IpNumber(first), bytes);
        match (&ours, &theirs) {
            // We stop at AH; etherparse goes on into it.
            (Ok(chain), _) if chain.end == Ipv6ChainEnd::Ah => {}
            (Ok(chain), Ok((their_exts, next, rest))) => {
                // etherparse holds one header of each kind (two Destination
                // Options around Routing); with more it stops early, still
                // on an extension header: nothing to compare then.
                if !etherparse_walks(next.0) {
                    let ours_next = match chain.end {
                        Ipv6ChainEnd::Upper(p) => u8::from(p),
                        Ipv6ChainEnd::NoNextHeader => 59,
                        Ipv6ChainEnd::Esp => 50,
                        Ipv6ChainEnd::Ah => 51,
                    };
                    prop_assert_eq!(ours_next, next.0);
                    prop_assert_eq!(chain.offset, bytes.len() - rest.len());
                    prop_assert!(!their_exts.is_fragmenting_payload());
                }
            }
            (Ok(chain), Err(e)) => {
                return Err(TestCaseError::fail(format!(
                    "we accepted {chain:?}, etherparse refused: {e:?}"
                )));
            }
            (Err(_), _) => {}
        }
        // (Except past an AH, which etherparse reads and we do not.)
        if theirs.is_err() && !matches!(ours, Ok(c) if c.end == Ipv6ChainEnd::Ah) {
            prop_assert!(ours.is_err(), "etherparse refused, we accepted {:?}", ours);
        }
        // A non-atomic fragment header that etherparse reads is one we
        // refuse, for that or for an earlier reason.
        if let Ok((their_exts, _, _)) = &theirs
            && their_exts.is_fragmenting_payload()
        {
            prop_assert!(ours.is_err());
        }
    }

    /// Neighbor Discovery both ways, checksums judged by etherparse.
    #[test]
    fn ndisc_agrees_with_etherparse(case in ndisc_case(), src_mac in mac(), dst_mac in mac()) {
        // Ours → etherparse.
        let mut buf = [0u8; 128];
        let len = case.repr.emit_frame(&mut buf, src_mac, dst_mac, case.src_ip, case.dst_ip).unwrap();
        let sliced = SlicedPacket::from_ethernet(&buf[..len])
            .map_err(|e| TestCaseError::fail(format!("etherparse refused: {e:?}")))?;
        let Some(NetSlice::Ipv6(ipv6)) = &sliced.net else {
            return Err(TestCaseError::fail("no IPv6 header"));
        };
        prop_assert_eq!(ipv6.header().hop_limit(), 255);
        let Some(TransportSlice::Icmpv6(icmp)) = &sliced.transport else {
            return Err(TestCaseError::fail("no ICMPv6"));
        };
        prop_assert!(icmp.is_checksum_valid(case.src_ip.octets(), case.dst_ip.octets()));
        let (target_addr, lladdr, kind) = match case.repr {
            NdiscRepr::NeighborSolicit { target_addr, lladdr } => {
                prop_assert_eq!(icmp.icmp_type(), Icmpv6Type::NeighborSolicitation);
                (target_addr, lladdr, 1u8)
            }
            NdiscRepr::NeighborAdvert { flags, target_addr, lladdr } => {
                let Icmpv6Type::NeighborAdvertisement(h) = icmp.icmp_type() else {
                    return Err(TestCaseError::fail("not an advertisement"));
                };
                prop_assert_eq!(h.router, flags.contains(NdiscFlags::ROUTER));
                prop_assert_eq!(h.solicited, flags.contains(NdiscFlags::SOLICITED));
                prop_assert_eq!(h.r#override, flags.contains(NdiscFlags::OVERRIDE));
                (target_addr, lladdr, 2u8)
            }
        };
        let payload = icmp.payload();
        prop_assert_eq!(&payload[..16], &target_addr.octets()[..]);
        match lladdr {
            Some(mac) => {
                prop_assert_eq!(&payload[16..18], &[kind, 1][..]);
                prop_assert_eq!(&payload[18..24], &mac.0[..]);
            }
            None => prop_assert_eq!(payload.len(), 16),
        }

        // etherparse → ours: the same message through etherparse's builder.
        let icmp_type = match case.repr {
            NdiscRepr::NeighborSolicit { .. } => Icmpv6Type::NeighborSolicitation,
            NdiscRepr::NeighborAdvert { flags, .. } => {
                Icmpv6Type::NeighborAdvertisement(NeighborAdvertisementHeader {
                    router: flags.contains(NdiscFlags::ROUTER),
                    solicited: flags.contains(NdiscFlags::SOLICITED),
                    r#override: flags.contains(NdiscFlags::OVERRIDE),
                })
            }
        };
        let builder = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
            .ipv6(case.src_ip.octets(), case.dst_ip.octets(), 255)
            .icmpv6(icmp_type);
        let mut theirs = Vec::new();
        builder.write(&mut theirs, payload).unwrap();
        prop_assert_eq!(&theirs[..], &buf[..len]);
        let frame = EthernetFrame::new_checked(&theirs[..]).unwrap();
        prop_assert_eq!(frame.ethertype(), EtherType::IPV6);
        let packet = Ipv6Packet::new_checked(frame.payload()).unwrap();
        let ip = Ipv6Repr::parse(&packet).unwrap();
        let message = Icmpv6Packet::new_checked(packet.payload()).unwrap();
        prop_assert_eq!(NdiscRepr::parse(&ip, &message, true), Ok(case.repr));
    }

    /// Packet Too Big both ways.
    #[test]
    fn packet_too_big_agrees_with_etherparse(
        repr in packet_too_big(), router in source_addr(), host in ipv6_addr(),
        extra in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        // etherparse → ours, with a longer quote (more of the segment).
        let mut quote = vec![0u8; 48];
        repr.invoking.emit(&mut quote);
        quote.extend_from_slice(&extra);
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(router.octets(), host.octets(), 64)
            .icmpv6(Icmpv6Type::PacketTooBig { mtu: repr.mtu });
        let mut bytes = Vec::new();
        builder.write(&mut bytes, &quote).unwrap();
        let packet = Ipv6Packet::new_checked(&bytes[14..]).unwrap();
        let ip = Ipv6Repr::parse(&packet).unwrap();
        let message = Icmpv6Packet::new_checked(packet.payload()).unwrap();
        prop_assert_eq!(PacketTooBigRepr::parse(&ip, &message, true), Ok(repr));

        // Ours → etherparse.
        let mut ours = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv6Packet::new_unchecked(&mut ours[..]), router, host);
        let slice = Icmpv6Slice::from_slice(&ours).unwrap();
        prop_assert_eq!(slice.icmp_type(), Icmpv6Type::PacketTooBig { mtu: repr.mtu });
        prop_assert!(slice.is_checksum_valid(router.octets(), host.octets()));
        prop_assert_eq!(slice.payload(), &quote[..48]);
    }
}

#[test]
fn etherparse_fragments_are_refused() {
    // A real (non-atomic) fragment built by etherparse: offset 0 with M set,
    // and a later one.
    for (offset, more) in [(0u16, true), (185, false), (1, true)] {
        let exts = Ipv6Extensions {
            fragment: Some(Ipv6FragmentHeader::new(
                IpNumber::TCP,
                IpFragOffset::try_new(offset).unwrap(),
                more,
                7,
            )),
            ..Default::default()
        };
        let header = Ipv6Header {
            hop_limit: 64,
            source: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets(),
            destination: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets(),
            ..Default::default()
        };
        let builder = PacketBuilder::ip(IpHeaders::Ipv6(header, exts)).tcp(1, 2, 3, 4);
        let mut bytes = Vec::new();
        builder.write(&mut bytes, &[]).unwrap();
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            ipv6_walk(packet.next_header(), packet.payload()),
            Err(Error::Fragmented),
            "offset {offset} more {more}"
        );
    }
}

#[test]
fn etherparse_tcp_over_ipv6_fixture() {
    // A SYN from etherparse over IPv6 with the Linux option layout; our
    // parse must agree, and a flipped byte must fail our checksum.
    let mut h = TcpHeader::new(40000, 80, 0x0102_0304, 64800);
    h.syn = true;
    h.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1440),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(0x1122_3344, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ])
    .unwrap();
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv6(src.octets(), dst.octets(), 64)
        .tcp_header(h);
    let mut bytes = Vec::new();
    builder.write(&mut bytes, &[]).unwrap();
    let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
    assert!(frame.ethertype().is_ipv6());
    let packet = Ipv6Packet::new_checked(frame.payload()).unwrap();
    let ip = Ipv6Repr::parse(&packet).unwrap();
    let segment = TcpPacket::new_checked(packet.payload()).unwrap();
    let pseudo = TcpPseudoHeader::ipv6(ip.src_addr, ip.dst_addr);
    let tcp = TcpRepr::parse_pseudo(&segment, pseudo, true).unwrap();
    assert_eq!(tcp.options.mss, Some(1440));
    assert_eq!(tcp.options.window_scale, Some(7));
    assert_eq!(tcp.flags, TcpFlags::SYN);
    let mut bad = bytes.clone();
    bad[14 + 40 + 14] ^= 1;
    let packet = Ipv6Packet::new_checked(&bad[14..]).unwrap();
    let segment = TcpPacket::new_checked(packet.payload()).unwrap();
    assert_eq!(
        TcpRepr::parse_pseudo(&segment, pseudo, true),
        Err(Error::Checksum)
    );
}
