//! `wire` judged by an independent implementation: etherparse builds frames
//! we parse, parses frames we build, and computes every checksum a second
//! time. Touches only the public API of `wire` and etherparse.

mod wire_strategies;

use std::net::Ipv4Addr;

use etherparse::{
    ArpEthIpv4Packet, ArpOperation as EpArpOperation, IpNumber, Ipv4Header, NetSlice,
    PacketBuilder, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice,
};
use lingerd_dataplane::wire::{
    ArpOperation, ArpPacket, ArpRepr, Error, EthernetAddress, EthernetFrame, EthernetRepr,
    Ipv4Packet, Ipv4Repr, RST_FRAME_LEN, RstTemplate, SeqNumber, TcpFlags, TcpOptions, TcpPacket,
    TcpRepr,
};
use proptest::prelude::*;
use wire_strategies::*;

fn etherparse_tcp_header(tcp: &TcpRepr<'_>) -> TcpHeader {
    let f = tcp.flags;
    let mut header = TcpHeader::new(tcp.src_port, tcp.dst_port, tcp.seq.0, tcp.window);
    header.acknowledgment_number = tcp.ack.0;
    header.fin = f.contains(TcpFlags::FIN);
    header.syn = f.contains(TcpFlags::SYN);
    header.rst = f.contains(TcpFlags::RST);
    header.psh = f.contains(TcpFlags::PSH);
    header.ack = f.contains(TcpFlags::ACK);
    header.urg = f.contains(TcpFlags::URG);
    header.ece = f.contains(TcpFlags::ECE);
    header.cwr = f.contains(TcpFlags::CWR);
    header.urgent_pointer = tcp.urgent;
    header
        .set_options(&etherparse_options(&tcp.options))
        .expect("our options fit in 40 bytes");
    header
}

/// The frame for `case` as etherparse's `PacketBuilder` writes it.
fn etherparse_frame(case: &FrameCase) -> Vec<u8> {
    let tcp = case.tcp.repr();
    let builder = PacketBuilder::ethernet2(case.src_mac.0, case.dst_mac.0)
        .ipv4(case.src_ip.octets(), case.dst_ip.octets(), case.ttl)
        .tcp_header(etherparse_tcp_header(&tcp));
    let mut out = Vec::with_capacity(builder.size(tcp.payload.len()));
    builder.write(&mut out, tcp.payload).unwrap();
    out
}

/// Checks a frame of ours with etherparse: every field and both checksums.
fn check_with_etherparse(
    bytes: &[u8],
    eth: &EthernetRepr,
    ip: &Ipv4Repr,
    tcp: &TcpRepr<'_>,
) -> Result<(), TestCaseError> {
    let sliced = SlicedPacket::from_ethernet(bytes)
        .map_err(|e| TestCaseError::fail(format!("etherparse refused our frame: {e:?}")))?;
    let Some(etherparse::LinkSlice::Ethernet2(link)) = sliced.link else {
        return Err(TestCaseError::fail("no Ethernet II header"));
    };
    prop_assert_eq!(link.source(), eth.src_addr.0);
    prop_assert_eq!(link.destination(), eth.dst_addr.0);
    let Some(NetSlice::Ipv4(ipv4)) = sliced.net else {
        return Err(TestCaseError::fail("no IPv4 header"));
    };
    let header = ipv4.header().to_header();
    prop_assert_eq!(header.source, ip.src_addr.octets());
    prop_assert_eq!(header.destination, ip.dst_addr.octets());
    prop_assert_eq!(header.time_to_live, ip.ttl);
    prop_assert!(header.dont_fragment && !header.more_fragments);
    prop_assert_eq!(usize::from(header.total_len), ip.buffer_len());
    prop_assert_eq!(header.header_checksum, header.calc_header_checksum());

    let Some(TransportSlice::Tcp(segment)) = sliced.transport else {
        return Err(TestCaseError::fail("no TCP header"));
    };
    prop_assert_eq!(segment.source_port(), tcp.src_port);
    prop_assert_eq!(segment.destination_port(), tcp.dst_port);
    prop_assert_eq!(segment.sequence_number(), tcp.seq.0);
    prop_assert_eq!(segment.acknowledgment_number(), tcp.ack.0);
    prop_assert_eq!(segment.window_size(), tcp.window);
    prop_assert_eq!(segment.urgent_pointer(), tcp.urgent);
    prop_assert_eq!(segment.rst(), tcp.flags.rst());
    prop_assert_eq!(segment.syn(), tcp.flags.syn());
    prop_assert_eq!(segment.fin(), tcp.flags.fin());
    prop_assert_eq!(segment.ack(), tcp.flags.ack());
    prop_assert_eq!(segment.payload(), tcp.payload);
    let expected = segment
        .calc_checksum_ipv4(ip.src_addr.octets(), ip.dst_addr.octets())
        .unwrap();
    prop_assert_eq!(segment.checksum(), expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Same bytes from both emitters, checksums included.
    #[test]
    fn emit_is_byte_identical_to_etherparse(case in frame_case()) {
        prop_assert_eq!(case.emit(), etherparse_frame(&case));
    }

    /// etherparse builds, we parse (checksums verified by us).
    #[test]
    fn we_parse_etherparse_frames(case in frame_case()) {
        let bytes = etherparse_frame(&case);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame), Ok(case.ethernet()));
        let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
        prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(case.ipv4()));
        let segment = TcpPacket::new_checked(packet.payload()).unwrap();
        prop_assert_eq!(
            TcpRepr::parse(&segment, case.src_ip, case.dst_ip, true),
            Ok(case.tcp.repr())
        );
    }

    /// We build, etherparse parses and recomputes both checksums.
    #[test]
    fn etherparse_accepts_our_frames(case in frame_case()) {
        let bytes = case.emit();
        check_with_etherparse(&bytes, &case.ethernet(), &case.ipv4(), &case.tcp.repr())?;
    }

    /// Options in orders and paddings we never emit (etherparse's encoding,
    /// EOL padding, SACK blocks in the middle) still parse to the same values.
    #[test]
    fn we_parse_foreign_option_orders(
        options in tcp_options(),
        reverse in any::<bool>(),
    ) {
        let mut elements = Vec::new();
        if let Some(shift) = options.window_scale { elements.push(TcpOptionElement::WindowScale(shift)); }
        if let Some((a, b)) = options.timestamps { elements.push(TcpOptionElement::Timestamp(a, b)); }
        elements.extend(etherparse_sack(&options));
        if options.sack_permitted { elements.push(TcpOptionElement::SelectiveAcknowledgementPermitted); }
        if let Some(mss) = options.mss { elements.push(TcpOptionElement::MaximumSegmentSize(mss)); }
        if reverse { elements.reverse(); }
        let mut header = TcpHeader::new(1, 2, 3, 4);
        if header.set_options(&elements).is_err() {
            // Over 40 bytes: etherparse refuses too; nothing to compare.
            return Ok(());
        }
        let bytes = header.to_bytes();
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(TcpOptions::parse(packet.options()), Ok(options));
    }

    /// RST template frames: etherparse accepts them and its checksums agree.
    #[test]
    fn etherparse_accepts_template_frames(
        local_mac in mac(), gw_mac in mac(), local_ip in ipv4_addr(), seg in control_segment(),
    ) {
        let template = RstTemplate::new(local_mac, gw_mac, local_ip);
        let mut bytes = [0u8; RST_FRAME_LEN];
        template.build_array(&mut bytes, &seg);
        let (eth, ip, tcp) = template_reprs(local_mac, gw_mac, local_ip, &seg);
        check_with_etherparse(&bytes, &eth, &ip, &tcp)?;
    }

    /// ARP both ways.
    #[test]
    fn arp_agrees_with_etherparse(
        reply in any::<bool>(), sha in mac(), spa in ipv4_addr(), tha in mac(), tpa in ipv4_addr(),
    ) {
        let ours = ArpRepr::EthernetIpv4 {
            operation: if reply { ArpOperation::Reply } else { ArpOperation::Request },
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let theirs = ArpEthIpv4Packet {
            operation: if reply { EpArpOperation::REPLY } else { EpArpOperation::REQUEST },
            sender_mac: sha.0,
            sender_ipv4: spa.octets(),
            target_mac: tha.0,
            target_ipv4: tpa.octets(),
        };
        let their_bytes = theirs.to_arp_packet().to_bytes();
        let mut our_bytes = [0u8; 28];
        ours.emit(&mut ArpPacket::new_unchecked(&mut our_bytes[..]));
        prop_assert_eq!(&our_bytes[..], &their_bytes[..]);
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&their_bytes[..]).unwrap()), Ok(ours));
    }
}

/// etherparse's IPv4 header with options and fragment fields set as asked.
fn etherparse_ipv4(options: &[u8], more_fragments: bool, offset: u16) -> Vec<u8> {
    let mut header =
        Ipv4Header::new(20, 64, IpNumber::TCP, [198, 18, 0, 2], [198, 18, 0, 1]).unwrap();
    header.options = options.try_into().unwrap();
    header.total_len = (header.header_len() + 20) as u16;
    header.more_fragments = more_fragments;
    header.fragment_offset = offset.try_into().unwrap();
    header.header_checksum = header.calc_header_checksum();
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 20]);
    bytes
}

#[test]
fn etherparse_options_and_fragments_are_reported() {
    let plain = etherparse_ipv4(&[], false, 0);
    let packet = Ipv4Packet::new_checked(&plain[..]).unwrap();
    assert!(Ipv4Repr::parse(&packet).is_ok());

    // A router-alert option (RFC 2113), 4 bytes: IHL 6.
    let with_options = etherparse_ipv4(&[0x94, 0x04, 0x00, 0x00], false, 0);
    let packet = Ipv4Packet::new_checked(&with_options[..]).unwrap();
    assert_eq!(packet.header_len(), 24);
    assert!(packet.verify_checksum());
    assert_eq!(Ipv4Repr::parse(&packet), Err(Error::Options));

    for (mf, offset) in [(true, 0), (false, 1), (true, 185)] {
        let fragment = etherparse_ipv4(&[], mf, offset);
        let packet = Ipv4Packet::new_checked(&fragment[..]).unwrap();
        assert_eq!(packet.frag_offset(), offset * 8);
        assert_eq!(Ipv4Repr::parse(&packet), Err(Error::Fragmented));
    }
}

#[test]
fn etherparse_linux_syn_fixture() {
    // The SYN a Linux client sends: MSS, SACKOK, TS, NOP, WS, built by
    // etherparse; our parse must read every option and agree on checksums.
    let header = {
        let mut h = TcpHeader::new(40000, 80, 0x0102_0304, 64240);
        h.syn = true;
        h.set_options(&[
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(0x1122_3344, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap();
        h
    };
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .tcp_header(header);
    let mut bytes = Vec::new();
    builder.write(&mut bytes, &[]).unwrap();

    let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(frame.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
    let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
    let ip = Ipv4Repr::parse(&packet).unwrap();
    let segment = TcpPacket::new_checked(packet.payload()).unwrap();
    let tcp = TcpRepr::parse(&segment, ip.src_addr, ip.dst_addr, true).unwrap();
    assert_eq!(tcp.seq, SeqNumber(0x0102_0304));
    assert_eq!(tcp.flags, TcpFlags::SYN);
    assert_eq!(
        tcp.options,
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x1122_3344, 0)),
            ..TcpOptions::default()
        }
    );
    assert_eq!(ip.src_addr, Ipv4Addr::new(198, 18, 0, 2));
    // Corrupt one payload-free header byte: our checksum check must notice.
    let mut bad = bytes.clone();
    bad[14 + 20 + 14] ^= 0x01;
    let frame = EthernetFrame::new_checked(&bad[..]).unwrap();
    let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
    let segment = TcpPacket::new_checked(packet.payload()).unwrap();
    assert_eq!(
        TcpRepr::parse(&segment, ip.src_addr, ip.dst_addr, true),
        Err(Error::Checksum)
    );
}
