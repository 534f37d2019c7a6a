//! The `wire_parse` harness: hostile bytes through every view and `Repr` of
//! [`lingerd_dataplane::wire`], checking the module's own contract (`wire/mod.rs`):
//!
//! - `new_checked` succeeds exactly when `check_len` does, and after it no
//!   accessor panics;
//! - `Repr::parse` never panics, even on an unchecked view, and fails
//!   whenever `check_len` does;
//! - variable-length accessors (options, payload, ARP addresses) and the
//!   IPv4 `verify_checksum` never panic at all, even on an unchecked view of
//!   any length;
//! - the lengths the accessors report agree with each other;
//! - a parsed `Repr`, emitted into a fresh buffer and parsed again, gives the
//!   same `Repr` (and for Ethernet and ARP the very same bytes, since those
//!   `Repr`s keep every field);
//! - the IPv6 extension header walk never panics, stays inside its bounds
//!   and the payload, and the ICMPv6 `Repr`s (Neighbor Discovery, Packet Too
//!   Big) round-trip through `emit`;
//! - both RST templates build byte for byte what the `emit` path builds.
//!
//! The same bytes are read at every layer (as an Ethernet frame, as a bare
//! ARP packet, IPv4 and IPv6 packet, extension header chain, ICMPv6
//! message, TCP segment and TCP option list), then as a real frame nests
//! them: Ethernet → ARP, IPv4 → TCP, or IPv6 → extension headers → TCP or
//! ICMPv6.

use std::net::{Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};

use lingerd_dataplane::wire::{
    ArpPacket, ArpRepr, ControlSegment, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IPV6_HEADER_LEN, IPV6_MAX_CHAIN_LEN, IPV6_MAX_EXT_HEADERS, Icmpv6Packet, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6ChainEnd, Ipv6Packet, Ipv6Repr, NdiscRepr, PacketTooBigRepr,
    RST_FRAME_LEN, RST_FRAME_LEN_V6, RST_TTL, RstTemplate, RstTemplateV6, SeqNumber, TcpFlags,
    TcpOptions, TcpPacket, TcpPseudoHeader, TcpRepr, ipv6_walk, ipv6_walk_options,
};

/// Pseudo-header addresses for bytes read as a bare TCP segment.
const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// Runs `data` through every parser; panics when a `wire` invariant breaks.
pub fn wire_parse(data: &[u8]) {
    ethernet(data);
    arp(data);
    if let Some((src, dst, segment)) = ipv4(data) {
        tcp(segment, src, dst);
    }
    ipv6(data);
    tcp(data, SRC, DST);
    options(data.get(..40).unwrap_or(data));
    // The bytes as an extension header chain behind each kind of first
    // header, as bare options, and as an ICMPv6 message.
    for first in [0u8, 43, 44, 60, 6, 58] {
        chain(IpProtocol::from(first), data, None);
    }
    let _ = ipv6_walk_options(data.get(..256).unwrap_or(data));
    icmpv6(&bare_ip6(data.len()), data);
    rst_template(data);
    rst_template_v6(data);

    // As the engine reads a frame.
    if let Ok(frame) = EthernetFrame::new_checked(data) {
        match frame.ethertype() {
            EtherType::IPV6 => ipv6(frame.payload()),
            EtherType::Arp => arp(frame.payload()),
            EtherType::Ipv4 => {
                if let Some((src, dst, segment)) = ipv4(frame.payload()) {
                    tcp(segment, src, dst);
                }
            }
            EtherType::Unknown(_) => {}
        }
    }
}

fn ethernet(data: &[u8]) {
    let unchecked = EthernetFrame::new_unchecked(data);
    let _ = unchecked.payload();
    let parsed = EthernetRepr::parse(&unchecked);
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        assert!(unchecked.check_len().is_err());
        assert!(
            parsed.is_err(),
            "Ethernet parse succeeded without check_len"
        );
        return;
    };
    let (dst, src, ethertype, payload) = (
        frame.dst_addr(),
        frame.src_addr(),
        frame.ethertype(),
        frame.payload(),
    );
    assert_eq!(
        payload.len() + lingerd_dataplane::wire::ETHERNET_HEADER_LEN,
        data.len()
    );
    for mac in [dst, src] {
        let _ = (mac.is_broadcast(), mac.is_local(), mac.to_string());
        assert_ne!(mac.is_multicast(), mac.is_unicast());
        assert_eq!(EthernetAddress::from_bytes(mac.as_bytes()), Some(mac));
    }
    assert_eq!(EtherType::from(u16::from(ethertype)), ethertype);
    let Ok(repr) = parsed else { return };
    assert_eq!((repr.dst_addr, repr.src_addr), (dst, src));
    assert_eq!(repr.ethertype, ethertype);

    let mut buf = vec![0u8; repr.buffer_len(payload.len())];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    buf[repr.header_len()..].copy_from_slice(payload);
    assert_eq!(buf, data, "Ethernet emit changed the bytes");
    let again = EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap());
    assert_eq!(again, Ok(repr));
}

fn arp(data: &[u8]) {
    let unchecked = ArpPacket::new_unchecked(data);
    let _ = (
        unchecked.source_hardware_addr(),
        unchecked.source_protocol_addr(),
        unchecked.target_hardware_addr(),
        unchecked.target_protocol_addr(),
    );
    let parsed = ArpRepr::parse(&unchecked);
    let Ok(packet) = ArpPacket::new_checked(data) else {
        assert!(unchecked.check_len().is_err());
        assert!(parsed.is_err(), "ARP parse succeeded without check_len");
        return;
    };
    let (hlen, plen) = (
        usize::from(packet.hardware_len()),
        usize::from(packet.protocol_len()),
    );
    let _ = (
        packet.hardware_type(),
        packet.protocol_type(),
        packet.operation(),
    );
    assert_eq!(packet.source_hardware_addr().len(), hlen);
    assert_eq!(packet.source_protocol_addr().len(), plen);
    assert_eq!(packet.target_hardware_addr().len(), hlen);
    assert_eq!(packet.target_protocol_addr().len(), plen);
    let Ok(repr) = parsed else { return };

    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    assert_eq!(buf, data[..repr.buffer_len()], "ARP emit changed the bytes");
    let again = ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap());
    assert_eq!(again, Ok(repr));
}

/// Returns the addresses and TCP bytes of a valid IPv4 packet carrying TCP.
fn ipv4(data: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    let unchecked = Ipv4Packet::new_unchecked(data);
    let _ = (
        unchecked.options(),
        unchecked.payload(),
        unchecked.verify_checksum(),
    );
    let parsed = Ipv4Repr::parse(&unchecked);
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        assert!(unchecked.check_len().is_err());
        assert!(parsed.is_err(), "IPv4 parse succeeded without check_len");
        return None;
    };
    let header_len = usize::from(packet.header_len());
    let total_len = usize::from(packet.total_len());
    let _ = (
        packet.version(),
        packet.dscp(),
        packet.ecn(),
        packet.ident(),
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
        packet.ttl(),
        packet.checksum(),
        packet.src_addr(),
        packet.dst_addr(),
        packet.verify_checksum(),
    );
    assert_eq!(
        packet.is_fragment(),
        packet.more_frags() || packet.frag_offset() != 0
    );
    assert_eq!(
        IpProtocol::from(u8::from(packet.protocol())),
        packet.protocol()
    );
    assert_eq!(
        packet.options().len(),
        header_len - lingerd_dataplane::wire::IPV4_HEADER_LEN
    );
    assert_eq!(packet.payload().len(), total_len - header_len);
    let repr = parsed.ok()?;
    assert_eq!(repr.payload_len, packet.payload().len());
    assert!(packet.verify_checksum());

    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    buf[repr.header_len()..].copy_from_slice(packet.payload());
    let again = Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..]).unwrap());
    assert_eq!(again, Ok(repr));

    let payload = &data[header_len..total_len];
    (repr.protocol == IpProtocol::Tcp).then_some((repr.src_addr, repr.dst_addr, payload))
}

/// Pseudo-header addresses for bytes read as a bare IPv6 upper layer.
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// An IPv6 header for bytes read as a bare ICMPv6 message (hop limit 255,
/// so the ND checks go past it).
fn bare_ip6(payload_len: usize) -> Ipv6Repr {
    Ipv6Repr {
        src_addr: SRC6,
        dst_addr: DST6,
        next_header: IpProtocol::ICMPV6,
        payload_len,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
}

/// An IPv6 packet: the view's contract, the fixed header's round trip, then
/// its extension header chain and upper layer.
fn ipv6(data: &[u8]) {
    let unchecked = Ipv6Packet::new_unchecked(data);
    let _ = unchecked.payload();
    let parsed = Ipv6Repr::parse(&unchecked);
    let Ok(packet) = Ipv6Packet::new_checked(data) else {
        assert!(unchecked.check_len().is_err());
        assert!(parsed.is_err(), "IPv6 parse succeeded without check_len");
        return;
    };
    let _ = (
        packet.version(),
        packet.traffic_class(),
        packet.dscp(),
        packet.ecn(),
        packet.flow_label(),
        packet.hop_limit(),
        packet.src_addr(),
        packet.dst_addr(),
    );
    assert_eq!(
        IpProtocol::from(u8::from(packet.next_header())),
        packet.next_header()
    );
    assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
    let Ok(repr) = parsed else { return };
    assert_eq!(repr.payload_len, packet.payload().len());

    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
    buf[IPV6_HEADER_LEN..].copy_from_slice(packet.payload());
    assert_eq!(
        buf,
        data[..repr.buffer_len()],
        "IPv6 emit changed the bytes"
    );
    let again = Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap());
    assert_eq!(again, Ok(repr));

    chain(repr.next_header, packet.payload(), Some(&repr));
}

/// The extension header walk over `payload` from `first`; with the packet's
/// header `ip`, the upper layer it ends in is parsed too.
fn chain(first: IpProtocol, payload: &[u8], ip: Option<&Ipv6Repr>) {
    let Ok(chain) = ipv6_walk(first, payload) else {
        return;
    };
    assert!(chain.offset <= payload.len(), "{chain:?} past the payload");
    assert!(chain.offset <= IPV6_MAX_CHAIN_LEN, "{chain:?}");
    assert!(chain.headers <= IPV6_MAX_EXT_HEADERS, "{chain:?}");
    assert_eq!(chain.offset % 8, 0, "{chain:?}: headers are 8-octet units");
    assert_eq!(chain.headers == 0, chain.offset == 0, "{chain:?}");
    let upper = chain.upper(payload);
    assert_eq!(upper.len(), payload.len() - chain.offset);
    // Not an extension header, nor ESP, AH or No Next Header: the chain is
    // that upper layer, at offset 0.
    if !matches!(u8::from(first), 0 | 43 | 44 | 60 | 50 | 51 | 59) {
        assert_eq!((chain.end, chain.headers), (Ipv6ChainEnd::Upper(first), 0));
    }
    let Some(ip) = ip else { return };
    match chain.protocol() {
        Some(IpProtocol::Tcp) => tcp6(upper, ip.src_addr, ip.dst_addr),
        Some(p) if p == IpProtocol::ICMPV6 => icmpv6(ip, upper),
        _ => {}
    }
}

/// An ICMPv6 message that arrived in `ip`: the view, then Neighbor
/// Discovery and Packet Too Big, each emitted again and parsed back.
fn icmpv6(ip: &Ipv6Repr, data: &[u8]) {
    let unchecked = Icmpv6Packet::new_unchecked(data);
    let _ = (
        unchecked.target_addr(),
        unchecked.nd_options(),
        unchecked.invoking(),
        unchecked.verify_checksum(ip.src_addr, ip.dst_addr),
    );
    let nd = NdiscRepr::parse(ip, &unchecked, false);
    let ptb = PacketTooBigRepr::parse(ip, &unchecked, false);
    let Ok(packet) = Icmpv6Packet::new_checked(data) else {
        assert!(unchecked.check_len().is_err());
        assert!(
            nd.is_err() && ptb.is_err(),
            "ICMPv6 parse without check_len"
        );
        return;
    };
    let _ = (
        packet.msg_type(),
        packet.msg_code(),
        packet.checksum(),
        packet.nd_flags(),
        packet.mtu(),
        packet.msg_type().is_error(),
    );
    let checksum_ok = packet.verify_checksum(ip.src_addr, ip.dst_addr);
    for verified in [
        NdiscRepr::parse(ip, &packet, true).map(|_| ()),
        PacketTooBigRepr::parse(ip, &packet, true).map(|_| ()),
    ] {
        if verified.is_ok() {
            assert!(checksum_ok, "parsed with a bad checksum");
        }
    }
    if let Ok(repr) = nd {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv6Packet::new_unchecked(&mut buf[..]),
            ip.src_addr,
            ip.dst_addr,
        );
        let again = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            NdiscRepr::parse(ip, &again, true),
            Ok(repr),
            "ND round trip"
        );
    }
    if let Ok(repr) = ptb {
        assert!(repr.path_mtu() >= 1280);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv6Packet::new_unchecked(&mut buf[..]),
            ip.src_addr,
            ip.dst_addr,
        );
        let again = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            PacketTooBigRepr::parse(ip, &again, true),
            Ok(repr),
            "Packet Too Big round trip"
        );
    }
}

/// A TCP segment behind IPv6: parse with and without the checksum over the
/// IPv6 pseudo header, then emit and parse back.
fn tcp6(data: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let pseudo = TcpPseudoHeader::ipv6(src, dst);
    let unchecked = TcpPacket::new_unchecked(data);
    let parsed = TcpRepr::parse_pseudo(&unchecked, pseudo, false);
    let verified = TcpRepr::parse_pseudo(&unchecked, pseudo, true);
    match (&parsed, &verified) {
        (Ok(p), Ok(v)) => assert_eq!(p, v),
        (Ok(_), Err(e)) => assert_eq!(*e, lingerd_dataplane::wire::Error::Checksum),
        (Err(_), Ok(_)) => panic!("TCP/IPv6 parse failed only without checksum verification"),
        (Err(_), Err(_)) => {}
    }
    let Ok(repr) = parsed else { return };
    if repr.buffer_len() > usize::from(u16::MAX) {
        return;
    }
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit_pseudo(&mut TcpPacket::new_unchecked(&mut buf[..]), pseudo);
    let again = TcpPacket::new_checked(&buf[..]).unwrap();
    assert!(
        again.verify_checksum_pseudo(pseudo),
        "bad TCP/IPv6 checksum"
    );
    assert_eq!(TcpRepr::parse_pseudo(&again, pseudo, true), Ok(repr));
}

fn tcp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let unchecked = TcpPacket::new_unchecked(data);
    let _ = (unchecked.options(), unchecked.payload());
    let parsed = TcpRepr::parse(&unchecked, src, dst, false);
    let verified = TcpRepr::parse(&unchecked, src, dst, true);
    let Ok(packet) = TcpPacket::new_checked(data) else {
        assert!(unchecked.check_len().is_err());
        assert!(parsed.is_err() && verified.is_err());
        return;
    };
    let header_len = usize::from(packet.header_len());
    let _ = (
        packet.src_port(),
        packet.dst_port(),
        packet.seq_number(),
        packet.ack_number(),
        packet.window_len(),
        packet.checksum(),
        packet.urgent_at(),
        format!("{:?}", packet.flags()),
    );
    assert_eq!(
        packet.options().len(),
        header_len - lingerd_dataplane::wire::TCP_HEADER_LEN
    );
    assert_eq!(packet.payload().len(), data.len() - header_len);
    let checksum_ok = packet.verify_checksum(src, dst);
    match (&parsed, &verified) {
        (Ok(p), Ok(v)) => assert!(p == v && checksum_ok),
        (Ok(_), Err(e)) => assert_eq!(*e, lingerd_dataplane::wire::Error::Checksum),
        (Err(_), Ok(_)) => panic!("TCP parse failed only without checksum verification"),
        (Err(_), Err(_)) => {}
    }
    let Ok(repr) = parsed else { return };
    assert_eq!(repr.payload, packet.payload());
    assert_eq!(
        repr.segment_len() as usize,
        repr.payload.len() + usize::from(repr.flags.syn()) + usize::from(repr.flags.fin())
    );

    if repr.buffer_len() > usize::from(u16::MAX) {
        return; // `emit` documents a panic here: no pseudo header can say it.
    }
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst);
    let again = TcpPacket::new_checked(&buf[..]).unwrap();
    assert!(
        again.verify_checksum(src, dst),
        "emitted a bad TCP checksum"
    );
    assert_eq!(TcpRepr::parse(&again, src, dst, true), Ok(repr));
}

fn options(data: &[u8]) {
    let Ok(options) = TcpOptions::parse(data) else {
        return;
    };
    let _ = (options.window_shift(), options.is_empty());
    let len = options.wire_len();
    assert!(len <= 40 && len % 4 == 0);
    let mut buf = [0u8; 40];
    assert_eq!(options.emit(&mut buf), len);
    assert_eq!(TcpOptions::parse(&buf[..len]), Ok(options));
}

/// The fields of an RST, as `arbitrary` reads them from the first bytes.
#[derive(Debug, Arbitrary)]
struct RstCase {
    local_mac: [u8; 6],
    next_hop: [u8; 6],
    local_ip: u32,
    remote_ip: u32,
    local_port: u16,
    remote_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
}

/// The RST template against the `emit` path, for fields taken from the
/// first bytes (ports 0 are kept: the template does not judge them).
fn rst_template(data: &[u8]) {
    let Ok(case) = RstCase::arbitrary(&mut Unstructured::new(data)) else {
        return; // never: integers past the end read as zeroes
    };
    let local_mac = EthernetAddress(case.local_mac);
    let next_hop = EthernetAddress(case.next_hop);
    let local_ip = Ipv4Addr::from(case.local_ip);
    let seg = ControlSegment {
        remote_ip: Ipv4Addr::from(case.remote_ip),
        local_port: case.local_port,
        remote_port: case.remote_port,
        seq: SeqNumber(case.seq),
        ack: SeqNumber(case.ack),
        flags: TcpFlags(case.flags),
        window: case.window,
    };
    let template = RstTemplate::new(local_mac, next_hop, local_ip);
    let mut built = [0u8; RST_FRAME_LEN];
    assert_eq!(template.build(&mut built, &seg), Ok(RST_FRAME_LEN));
    assert!(template.build(&mut [0u8; RST_FRAME_LEN - 1], &seg).is_err());

    let mut emitted = [0u8; RST_FRAME_LEN];
    EthernetRepr {
        src_addr: local_mac,
        dst_addr: next_hop,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut emitted[..]));
    let tcp_repr = seg.tcp_repr();
    let ip = &mut emitted[lingerd_dataplane::wire::ETHERNET_HEADER_LEN..];
    Ipv4Repr {
        src_addr: local_ip,
        dst_addr: seg.remote_ip,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_repr.buffer_len(),
        ttl: RST_TTL,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]));
    tcp_repr.emit(
        &mut TcpPacket::new_unchecked(&mut ip[lingerd_dataplane::wire::IPV4_HEADER_LEN..]),
        local_ip,
        seg.remote_ip,
    );
    assert_eq!(built, emitted, "RST template and emit path disagree");
}

/// The fields of an IPv6 RST, as `arbitrary` reads them from the first
/// bytes.
#[derive(Debug, Arbitrary)]
struct RstCaseV6 {
    local_mac: [u8; 6],
    next_hop: [u8; 6],
    local_ip: [u8; 16],
    remote_ip: [u8; 16],
    local_port: u16,
    remote_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
}

/// [`RstTemplateV6`] against the `emit` path, as [`rst_template`] does for
/// IPv4.
fn rst_template_v6(data: &[u8]) {
    let Ok(case) = RstCaseV6::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let local_mac = EthernetAddress(case.local_mac);
    let next_hop = EthernetAddress(case.next_hop);
    let local_ip = Ipv6Addr::from(case.local_ip);
    let seg = ControlSegment {
        remote_ip: Ipv6Addr::from(case.remote_ip),
        local_port: case.local_port,
        remote_port: case.remote_port,
        seq: SeqNumber(case.seq),
        ack: SeqNumber(case.ack),
        flags: TcpFlags(case.flags),
        window: case.window,
    };
    let template = RstTemplateV6::new(local_mac, next_hop, local_ip);
    let mut built = [0u8; RST_FRAME_LEN_V6];
    assert_eq!(template.build(&mut built, &seg), Ok(RST_FRAME_LEN_V6));
    assert!(
        template
            .build(&mut [0u8; RST_FRAME_LEN_V6 - 1], &seg)
            .is_err()
    );

    let mut emitted = [0u8; RST_FRAME_LEN_V6];
    EthernetRepr {
        src_addr: local_mac,
        dst_addr: next_hop,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut emitted[..]));
    let tcp_repr = seg.tcp_repr();
    let ip = &mut emitted[lingerd_dataplane::wire::ETHERNET_HEADER_LEN..];
    Ipv6Repr {
        src_addr: local_ip,
        dst_addr: seg.remote_ip,
        next_header: IpProtocol::Tcp,
        payload_len: tcp_repr.buffer_len(),
        hop_limit: RST_TTL,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut ip[..]));
    tcp_repr.emit_pseudo(
        &mut TcpPacket::new_unchecked(&mut ip[IPV6_HEADER_LEN..]),
        TcpPseudoHeader::ipv6(local_ip, seg.remote_ip),
    );
    assert_eq!(built, emitted, "IPv6 RST template and emit path disagree");
}
