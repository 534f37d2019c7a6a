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
//! - the RST template builds byte for byte what the `emit` path builds.
//!
//! The same bytes are read at every layer (as an Ethernet frame, as a bare
//! ARP packet, IPv4 packet, TCP segment and TCP option list), then as a real
//! frame nests them: Ethernet → ARP or IPv4 → TCP.

use std::net::Ipv4Addr;

use arbitrary::{Arbitrary, Unstructured};

use lingerd_dataplane::wire::{
    ArpPacket, ArpRepr, ControlSegment, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, RST_FRAME_LEN, RST_TTL, RstTemplate, SeqNumber, TcpFlags,
    TcpOptions, TcpPacket, TcpRepr,
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
    tcp(data, SRC, DST);
    options(data.get(..40).unwrap_or(data));
    rst_template(data);

    // As the engine reads a frame.
    if let Ok(frame) = EthernetFrame::new_checked(data) {
        match frame.ethertype() {
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
    let tcp_repr = TcpRepr {
        src_port: seg.local_port,
        dst_port: seg.remote_port,
        seq: seg.seq,
        ack: seg.ack,
        flags: seg.flags,
        window: if seg.flags.rst() { 0 } else { seg.window },
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    };
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
