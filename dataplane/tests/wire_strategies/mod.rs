//! Proptest strategies for the `wire` integration tests: random, valid
//! `Repr` values and the frames the ordinary emit path builds from them.
//! Shared by `wire_props.rs` and `wire_oracle.rs`; it builds values only and
//! asserts nothing.

#![allow(dead_code, unreachable_pub)]

use std::net::Ipv4Addr;

use etherparse::TcpOptionElement;
use lingerd_dataplane::wire::{
    ControlSegment, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol,
    Ipv4Packet, Ipv4Repr, RST_TTL, SeqNumber, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};
use proptest::prelude::*;

pub fn ipv4_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

pub fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

/// Sequence numbers biased towards the interesting places: around 0, 2^31
/// and 2^32 − 1.
pub fn seq() -> impl Strategy<Value = SeqNumber> {
    prop_oneof![
        any::<u32>(),
        0..1024u32,
        (u32::MAX - 1024)..=u32::MAX,
        (0x8000_0000u32 - 1024)..(0x8000_0000u32 + 1024),
    ]
    .prop_map(SeqNumber)
}

pub fn tcp_options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        any::<bool>(),
        proptest::option::of(any::<(u32, u32)>()),
        proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
    )
        .prop_map(|(mss, window_scale, sack_permitted, timestamps, blocks)| {
            let mut o = TcpOptions {
                mss,
                window_scale,
                sack_permitted,
                timestamps,
                ..TcpOptions::default()
            };
            // As many blocks as fit in 40 option bytes.
            for (l, r) in blocks {
                let mut sack = o.sack;
                sack.push(SeqNumber(l), SeqNumber(r));
                let bigger = TcpOptions { sack, ..o };
                if bigger.wire_len() <= 40 {
                    o = bigger;
                }
            }
            o
        })
}

/// An owned TCP segment: `TcpRepr` borrows its payload.
#[derive(Debug, Clone)]
pub struct TcpCase {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
}

impl TcpCase {
    pub fn repr(&self) -> TcpRepr<'_> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: TcpFlags(self.flags),
            window: self.window,
            urgent: self.urgent,
            options: self.options,
            payload: &self.payload,
        }
    }
}

pub fn tcp_case() -> impl Strategy<Value = TcpCase> {
    (
        (1..=u16::MAX, 1..=u16::MAX, seq(), seq()),
        (any::<u8>(), any::<u16>(), any::<u16>()),
        tcp_options(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(
            |((src_port, dst_port, seq, ack), (flags, window, urgent), options, payload)| TcpCase {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                urgent,
                options,
                payload,
            },
        )
}

/// A whole Ethernet + IPv4 + TCP frame case.
#[derive(Debug, Clone)]
pub struct FrameCase {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub ttl: u8,
    pub tcp: TcpCase,
}

impl FrameCase {
    pub fn ethernet(&self) -> EthernetRepr {
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: EtherType::Ipv4,
        }
    }

    pub fn ipv4(&self) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: self.src_ip,
            dst_addr: self.dst_ip,
            protocol: IpProtocol::Tcp,
            payload_len: self.tcp.repr().buffer_len(),
            ttl: self.ttl,
        }
    }

    /// The frame as our emit path writes it.
    pub fn emit(&self) -> Vec<u8> {
        emit_frame(&self.ethernet(), &self.ipv4(), &self.tcp.repr())
    }
}

pub fn frame_case() -> impl Strategy<Value = FrameCase> {
    (
        mac(),
        mac(),
        ipv4_addr(),
        ipv4_addr(),
        any::<u8>(),
        tcp_case(),
    )
        .prop_map(|(src_mac, dst_mac, src_ip, dst_ip, ttl, tcp)| FrameCase {
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            ttl,
            tcp,
        })
}

/// Ethernet + IPv4 + TCP through the three `emit`s.
pub fn emit_frame(eth: &EthernetRepr, ip: &Ipv4Repr, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let mut bytes = vec![0u8; eth.buffer_len(ip.buffer_len())];
    let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet);
    let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
    tcp.emit(&mut segment, ip.src_addr, ip.dst_addr);
    bytes
}

pub fn control_segment() -> impl Strategy<Value = ControlSegment> {
    let flags = prop_oneof![
        Just(TcpFlags::RST),
        Just(TcpFlags::RST | TcpFlags::ACK),
        Just(TcpFlags::ACK),
        Just(TcpFlags::FIN | TcpFlags::ACK),
        any::<u8>().prop_map(TcpFlags),
    ];
    (
        ipv4_addr(),
        any::<u16>(),
        any::<u16>(),
        seq(),
        seq(),
        flags,
        any::<u16>(),
    )
        .prop_map(
            |(remote_ip, local_port, remote_port, seq, ack, flags, window)| ControlSegment {
                remote_ip,
                local_port,
                remote_port,
                seq,
                ack,
                flags,
                window,
            },
        )
}

/// What the ordinary emit path must be given to write the frame the RST
/// template builds for `seg` (RST carries window 0; see `wire::rst`).
pub fn template_reprs(
    local_mac: EthernetAddress,
    gw_mac: EthernetAddress,
    local_ip: Ipv4Addr,
    seg: &ControlSegment,
) -> (EthernetRepr, Ipv4Repr, TcpRepr<'static>) {
    let eth = EthernetRepr {
        src_addr: local_mac,
        dst_addr: gw_mac,
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src_addr: local_ip,
        dst_addr: seg.remote_ip,
        protocol: IpProtocol::Tcp,
        payload_len: 20,
        ttl: RST_TTL,
    };
    let tcp = seg.tcp_repr();
    (eth, ip, tcp)
}

/// Our option layout, spelled as etherparse elements (so that etherparse's
/// bytes must equal ours).
pub fn etherparse_options(options: &TcpOptions) -> Vec<TcpOptionElement> {
    let mut out = Vec::new();
    if let Some(mss) = options.mss {
        out.push(TcpOptionElement::MaximumSegmentSize(mss));
    }
    match (options.timestamps, options.sack_permitted) {
        (Some((a, b)), true) => {
            out.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
            out.push(TcpOptionElement::Timestamp(a, b));
        }
        (Some((a, b)), false) => {
            out.extend([TcpOptionElement::Noop, TcpOptionElement::Noop]);
            out.push(TcpOptionElement::Timestamp(a, b));
        }
        (None, true) => out.extend([
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgementPermitted,
        ]),
        (None, false) => {}
    }
    if let Some(shift) = options.window_scale {
        out.extend([TcpOptionElement::Noop, TcpOptionElement::WindowScale(shift)]);
    }
    if let Some(sack) = etherparse_sack(options) {
        out.extend([TcpOptionElement::Noop, TcpOptionElement::Noop, sack]);
    }
    out
}

/// Our SACK blocks as etherparse's element (first block, then up to three).
pub fn etherparse_sack(options: &TcpOptions) -> Option<TcpOptionElement> {
    let blocks = options.sack.as_slice();
    let (&(l, r), rest) = blocks.split_first()?;
    let mut more = [None; 3];
    for (slot, &(l, r)) in more.iter_mut().zip(rest) {
        *slot = Some((l.0, r.0));
    }
    Some(TcpOptionElement::SelectiveAcknowledgement((l.0, r.0), more))
}
