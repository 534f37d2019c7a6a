//! Proptest strategies for the IPv6 `wire` integration tests: random, valid
//! IPv6 headers, extension header chains (written here: `wire` never emits
//! extension headers), Ethernet + IPv6 + TCP frames, Neighbor Discovery and
//! Packet Too Big values. Shared by `wire6_props.rs` and `wire6_oracle.rs`,
//! which also include `wire_strategies` (for `TcpCase`); it builds values
//! only and asserts nothing.

#![allow(dead_code, unreachable_pub)]

use std::net::Ipv6Addr;

use lingerd_dataplane::wire::{
    ControlSegment, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv6InvokingTcp,
    IpProtocol, Ipv6Packet, Ipv6Repr, NdiscFlags, NdiscRepr, PacketTooBigRepr, RST_TTL, TcpFlags,
    TcpPacket, TcpPseudoHeader, TcpRepr,
};
use proptest::prelude::*;

use crate::wire_strategies::{TcpCase, mac, seq, tcp_case};

/// Next header values of the extension headers built here.
pub mod nh {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const DEST_OPTS: u8 = 60;
}

/// Addresses: anything, or in 2001:db8::/32, or link-local.
pub fn ipv6_addr() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        any::<u128>(),
        any::<u128>().prop_map(|x| (0x2001_0db8u128 << 96) | (x >> 32)),
        any::<u64>().prop_map(|x| (0xfe80u128 << 112) | u128::from(x)),
    ]
    .prop_map(Ipv6Addr::from)
}

/// Addresses an IPv6 packet may come from: not multicast (RFC 4291 §2.7).
pub fn source_addr() -> impl Strategy<Value = Ipv6Addr> {
    ipv6_addr().prop_filter("not multicast", |a| !a.is_multicast())
}

/// Unicast (not multicast, not unspecified) addresses, for ND.
pub fn unicast_addr() -> impl Strategy<Value = Ipv6Addr> {
    ipv6_addr().prop_filter("unicast", |a| !a.is_multicast() && !a.is_unspecified())
}

pub fn flow_label() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 0..=0x000f_ffffu32]
}

/// An extension header, valid and to be skipped by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-Hop Options: the bytes after next header and length
    /// (`len % 8 == 6`), skippable options and padding.
    HopByHop(Vec<u8>),
    /// Destination Options, as above.
    DestOpts(Vec<u8>),
    /// Routing with segments left 0: the type and the bytes after
    /// `[next, len, type, segments left]` (`len % 8 == 4`).
    Routing { routing_type: u8, data: Vec<u8> },
    /// An atomic fragment (offset 0, M clear).
    Fragment { ident: u32 },
}

impl Ext {
    pub fn number(&self) -> u8 {
        match self {
            Ext::HopByHop(_) => nh::HOP_BY_HOP,
            Ext::DestOpts(_) => nh::DEST_OPTS,
            Ext::Routing { .. } => nh::ROUTING,
            Ext::Fragment { .. } => nh::FRAGMENT,
        }
    }

    /// The header's bytes, with `next` as its next header.
    pub fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            Ext::HopByHop(area) | Ext::DestOpts(area) => {
                let mut out = vec![next, ((area.len() + 2) / 8 - 1) as u8];
                out.extend_from_slice(area);
                out
            }
            Ext::Routing { routing_type, data } => {
                let mut out = vec![next, ((data.len() + 4) / 8 - 1) as u8, *routing_type, 0];
                out.extend_from_slice(data);
                out
            }
            Ext::Fragment { ident } => {
                let mut out = vec![next, 0, 0, 0];
                out.extend_from_slice(&ident.to_be_bytes());
                out
            }
        }
    }

    pub fn len(&self) -> usize {
        self.bytes(0).len()
    }
}

/// A chain's bytes, the last header pointing at `last`.
pub fn chain_bytes(exts: &[Ext], last: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, ext) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(last, Ext::number);
        out.extend(ext.bytes(next));
    }
    out
}

/// The first next header of a chain ending in `last`.
pub fn first_header(exts: &[Ext], last: u8) -> u8 {
    exts.first().map_or(last, Ext::number)
}

/// An options area: up to three skippable options (types 2..0x40, action
/// bits 00, not padding) and the padding that brings the header to a
/// multiple of 8 bytes.
pub fn options_area() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        (2u8..0x40, proptest::collection::vec(any::<u8>(), 0..12)),
        0..3,
    )
    .prop_map(|options| {
        let mut area = Vec::new();
        for (kind, data) in options {
            area.extend_from_slice(&[kind, data.len() as u8]);
            area.extend_from_slice(&data);
        }
        match (14 - area.len() % 8) % 8 {
            0 => {}
            1 => area.push(0),
            n => {
                area.extend_from_slice(&[1, (n - 2) as u8]);
                area.extend(std::iter::repeat_n(0, n - 2));
            }
        }
        area
    })
}

pub fn routing() -> impl Strategy<Value = Ext> {
    (any::<u8>(), 0..3usize, any::<[u8; 28]>()).prop_map(|(routing_type, units, bytes)| {
        Ext::Routing {
            routing_type,
            data: bytes[..4 + 8 * units].to_vec(),
        }
    })
}

/// A chain in RFC 8200 §4.1's recommended order, each header at most once:
/// what etherparse's `Ipv6Extensions` can hold.
pub fn canonical_chain() -> impl Strategy<Value = Vec<Ext>> {
    (
        proptest::option::of(options_area().prop_map(Ext::HopByHop)),
        proptest::option::of(options_area().prop_map(Ext::DestOpts)),
        proptest::option::of(routing()),
        proptest::option::of(any::<u32>().prop_map(|ident| Ext::Fragment { ident })),
    )
        .prop_map(|(hbh, dest, routing, fragment)| {
            [hbh, dest, routing, fragment]
                .into_iter()
                .flatten()
                .collect()
        })
}

/// A chain in any order (Hop-by-Hop only first), repeats allowed, at most
/// seven headers.
pub fn any_chain() -> impl Strategy<Value = Vec<Ext>> {
    let middle = prop_oneof![
        options_area().prop_map(Ext::DestOpts),
        routing(),
        any::<u32>().prop_map(|ident| Ext::Fragment { ident }),
    ];
    (
        proptest::option::of(options_area().prop_map(Ext::HopByHop)),
        proptest::collection::vec(middle, 0..7),
    )
        .prop_map(|(hbh, rest)| hbh.into_iter().chain(rest).collect())
}

/// A whole Ethernet + IPv6 (+ extension headers) + TCP frame case.
#[derive(Debug, Clone)]
pub struct Frame6Case {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub exts: Vec<Ext>,
    pub tcp: TcpCase,
}

impl Frame6Case {
    pub fn ethernet(&self) -> EthernetRepr {
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: EtherType::IPV6,
        }
    }

    pub fn chain_len(&self) -> usize {
        self.exts.iter().map(Ext::len).sum()
    }

    pub fn ipv6(&self) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: self.src_ip,
            dst_addr: self.dst_ip,
            next_header: IpProtocol::from(first_header(&self.exts, nh::TCP)),
            payload_len: self.chain_len() + self.tcp.repr().buffer_len(),
            hop_limit: self.hop_limit,
            traffic_class: self.traffic_class,
            flow_label: self.flow_label,
        }
    }

    pub fn pseudo(&self) -> TcpPseudoHeader {
        TcpPseudoHeader::ipv6(self.src_ip, self.dst_ip)
    }

    /// The frame as our emit paths (and this module's chain) write it.
    pub fn emit(&self) -> Vec<u8> {
        let eth = self.ethernet();
        let ip = self.ipv6();
        let tcp = self.tcp.repr();
        let mut bytes = vec![0u8; eth.buffer_len(ip.buffer_len())];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv6Packet::new_unchecked(frame.payload_mut());
        ip.emit(&mut packet);
        let payload = packet.payload_mut();
        let chain = chain_bytes(&self.exts, nh::TCP);
        payload[..chain.len()].copy_from_slice(&chain);
        let mut segment = TcpPacket::new_unchecked(&mut payload[chain.len()..]);
        tcp.emit_pseudo(&mut segment, self.pseudo());
        bytes
    }
}

fn frame6_case_with(chain: impl Strategy<Value = Vec<Ext>>) -> impl Strategy<Value = Frame6Case> {
    (
        (mac(), mac(), source_addr(), ipv6_addr()),
        (any::<u8>(), any::<u8>(), flow_label()),
        chain,
        tcp_case(),
    )
        .prop_map(
            |(
                (src_mac, dst_mac, src_ip, dst_ip),
                (hop_limit, traffic_class, flow_label),
                exts,
                tcp,
            )| {
                Frame6Case {
                    src_mac,
                    dst_mac,
                    src_ip,
                    dst_ip,
                    hop_limit,
                    traffic_class,
                    flow_label,
                    exts,
                    tcp,
                }
            },
        )
}

/// Frames whose chains etherparse can hold.
pub fn frame6_case() -> impl Strategy<Value = Frame6Case> {
    frame6_case_with(canonical_chain())
}

/// Frames with chains in any order.
pub fn frame6_case_any_chain() -> impl Strategy<Value = Frame6Case> {
    frame6_case_with(any_chain())
}

pub fn control_segment_v6() -> impl Strategy<Value = ControlSegment<Ipv6Addr>> {
    let flags = prop_oneof![
        Just(TcpFlags::RST),
        Just(TcpFlags::RST | TcpFlags::ACK),
        Just(TcpFlags::ACK),
        Just(TcpFlags::FIN | TcpFlags::ACK),
        any::<u8>().prop_map(TcpFlags),
    ];
    (
        ipv6_addr(),
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

/// What the ordinary emit paths must be given to write the frame the IPv6
/// RST template builds for `seg`.
pub fn template_reprs_v6(
    local_mac: EthernetAddress,
    gw_mac: EthernetAddress,
    local_ip: Ipv6Addr,
    seg: &ControlSegment<Ipv6Addr>,
) -> (EthernetRepr, Ipv6Repr, TcpRepr<'static>) {
    let eth = EthernetRepr {
        src_addr: local_mac,
        dst_addr: gw_mac,
        ethertype: EtherType::IPV6,
    };
    let ip = Ipv6Repr {
        src_addr: local_ip,
        dst_addr: seg.remote_ip,
        next_header: IpProtocol::Tcp,
        payload_len: 20,
        hop_limit: RST_TTL,
        traffic_class: 0,
        flow_label: 0,
    };
    let tcp = seg.tcp_repr();
    (eth, ip, tcp)
}

/// A valid ND exchange: the message, and the IPv6 source and destination
/// it travels between (hop limit 255 implied).
#[derive(Debug, Clone)]
pub struct NdiscCase {
    pub repr: NdiscRepr,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
}

pub fn ndisc_case() -> impl Strategy<Value = NdiscCase> {
    let solicit = (
        unicast_addr(),
        unicast_addr(),
        proptest::option::of(mac()),
        any::<bool>(),
    )
        .prop_map(|(src_ip, target_addr, lladdr, to_group)| {
            let dst_ip = if to_group {
                lingerd_dataplane::wire::solicited_node(target_addr)
            } else {
                target_addr
            };
            NdiscCase {
                repr: NdiscRepr::NeighborSolicit {
                    target_addr,
                    lladdr,
                },
                src_ip,
                dst_ip,
            }
        });
    let dad = (unicast_addr(),).prop_map(|(target_addr,)| NdiscCase {
        repr: NdiscRepr::NeighborSolicit {
            target_addr,
            lladdr: None,
        },
        src_ip: Ipv6Addr::UNSPECIFIED,
        dst_ip: lingerd_dataplane::wire::solicited_node(target_addr),
    });
    let advert = (
        unicast_addr(),
        unicast_addr(),
        proptest::option::of(mac()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        any::<bool>(),
    )
        .prop_map(|(src_ip, target_addr, lladdr, (r, s, o), to_all)| {
            // To all-nodes (unsolicited) S must be clear.
            let dst_ip = if to_all {
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
            } else {
                src_ip
            };
            let mut flags = NdiscFlags::EMPTY;
            if r {
                flags = flags | NdiscFlags::ROUTER;
            }
            if s && !to_all {
                flags = flags | NdiscFlags::SOLICITED;
            }
            if o {
                flags = flags | NdiscFlags::OVERRIDE;
            }
            NdiscCase {
                repr: NdiscRepr::NeighborAdvert {
                    flags,
                    target_addr,
                    lladdr,
                },
                src_ip: target_addr,
                dst_ip,
            }
        });
    prop_oneof![solicit, dad, advert]
}

pub fn packet_too_big() -> impl Strategy<Value = PacketTooBigRepr> {
    (
        prop_oneof![any::<u32>(), 0..2000u32],
        ipv6_addr(),
        ipv6_addr(),
        any::<u16>(),
        any::<u16>(),
        seq(),
    )
        .prop_map(
            |(mtu, src_addr, dst_addr, src_port, dst_port, seq)| PacketTooBigRepr {
                mtu,
                invoking: Icmpv6InvokingTcp {
                    src_addr,
                    dst_addr,
                    src_port,
                    dst_port,
                    seq,
                },
            },
        )
}
