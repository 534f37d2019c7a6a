//! The fast RST path: a prebuilt Ethernet + IPv4 + TCP frame per (local MAC,
//! next-hop MAC, local IP) and a `build` that fills in the rest; the same
//! for Ethernet + IPv6 + TCP ([`RstTemplateV6`]).
//!
//! Owns the 54-byte and 74-byte templates and the precomputed checksum
//! accumulators. A built frame is byte-identical to what the `Repr::emit`
//! path writes for the same segment (IPv4: DF, ID 0, TTL [`TTL`]; IPv6: hop
//! limit [`TTL`], traffic class 0, flow label 0, no extension headers; TCP:
//! data offset 5, no options, urgent 0), tested against it and against
//! etherparse. It decides nothing about *when*
//! to send or which SEQ/ACK to use: that is the engine's (RFC 9293 §3.10.7.1);
//! it only refuses to put a non-zero window on an RST.
//!
//! Checksums are fixed up incrementally, never re-summed over the frame: the
//! template's variable fields are zero, so RFC 1624 eqn. 3 for a field that
//! goes from `m = 0` to `m'` reduces to adding `m'` to the complement of the
//! template checksum (`~0` is negative zero). The template keeps those
//! complements as unfolded accumulators; `build` adds the new field words
//! (each address, port, SEQ, ACK word once) and folds once per checksum.
//! IPv6 has no header checksum (RFC 8200 §3), so the IPv6 template keeps
//! only the TCP one.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ethernet::{self, EtherType, EthernetAddress};
use super::ipv4::{self, Protocol};
use super::ipv6;
use super::tcp::{self, Flags, SeqNumber};
use super::{Error, Result, checksum};

/// Length of a built frame: 14 + 20 + 20.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp::HEADER_LEN;

/// Length of a built IPv6 frame: 14 + 40 + 20.
pub const FRAME_LEN_V6: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + tcp::HEADER_LEN;

/// The IPv4 TTL of template frames (Linux's default, `ip_default_ttl`), and
/// the IPv6 hop limit (Linux's default hop limit is also 64).
pub const TTL: u8 = 64;

/// Offsets into the IPv4 frame.
mod field {
    use core::ops::Range;

    const IP: usize = 14;
    pub(super) const TCP: usize = 34;
    pub(super) const IP_CHECKSUM: Range<usize> = IP + 10..IP + 12;
    pub(super) const IP_DST: Range<usize> = IP + 16..IP + 20;
    pub(super) const IP_HEADER: Range<usize> = IP..TCP;
    pub(super) const TCP_HEADER: Range<usize> = TCP..TCP + 20;
}

/// Offsets into the IPv6 frame.
mod field6 {
    use core::ops::Range;

    const IP: usize = 14;
    pub(super) const TCP: usize = 54;
    pub(super) const IP_DST: Range<usize> = IP + 24..IP + 40;
    pub(super) const IP_HEADER: Range<usize> = IP..TCP;
    pub(super) const TCP_HEADER: Range<usize> = TCP..TCP + 20;
}

/// Offsets into the TCP header, the same in both frames.
mod tcp_field {
    use core::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ: Range<usize> = 4..8;
    pub(super) const ACK: Range<usize> = 8..12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
}

/// Writes `seg`'s TCP fields into the zeroed template header `tcp` and its
/// checksum: `tcp_sum` (the template's constant words) plus `dst_acc` (the
/// destination address's words, summed by the caller's family) plus the
/// fields written (RST → window 0). Shared by both templates.
#[inline(always)]
fn fill_tcp<A>(tcp: &mut [u8], tcp_sum: u16, dst_acc: u64, seg: &ControlSegment<A>) {
    let window = if seg.flags.rst() { 0 } else { seg.window };
    tcp[tcp_field::SRC_PORT].copy_from_slice(&seg.local_port.to_be_bytes());
    tcp[tcp_field::DST_PORT].copy_from_slice(&seg.remote_port.to_be_bytes());
    tcp[tcp_field::SEQ].copy_from_slice(&seg.seq.0.to_be_bytes());
    tcp[tcp_field::ACK].copy_from_slice(&seg.ack.0.to_be_bytes());
    tcp[tcp_field::FLAGS] = seg.flags.bits();
    tcp[tcp_field::WINDOW].copy_from_slice(&window.to_be_bytes());
    // A dozen terms below 2^16 (and `dst_acc` below 2^18): no carry out of
    // 64 bits.
    let acc = u64::from(tcp_sum)
        + dst_acc
        + u64::from(seg.local_port)
        + u64::from(seg.remote_port)
        + u64::from(seg.seq.0 >> 16)
        + u64::from(seg.seq.0 & 0xffff)
        + u64::from(seg.ack.0 >> 16)
        + u64::from(seg.ack.0 & 0xffff)
        + u64::from(seg.flags.bits())
        + u64::from(window);
    tcp[tcp_field::CHECKSUM].copy_from_slice(&checksum::finish(acc).to_be_bytes());
}

/// The fields of a pure-header segment (no data, no options) to send from
/// the template: an RST, RST|ACK, a bare ACK (challenge ACK, TIME_WAIT
/// re-ACK) or FIN|ACK. `A` is the address type: `Ipv4Addr` (the default)
/// for [`RstTemplate`], `Ipv6Addr` for [`RstTemplateV6`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlSegment<A = Ipv4Addr> {
    /// The peer's address (IP destination).
    pub remote_ip: A,
    /// Our port (TCP source).
    pub local_port: u16,
    /// The peer's port (TCP destination).
    pub remote_port: u16,
    /// SEG.SEQ.
    pub seq: SeqNumber,
    /// SEG.ACK (sent as is; zero it when ACK is not set).
    pub ack: SeqNumber,
    /// Control bits.
    pub flags: Flags,
    /// SEG.WND, unscaled; ignored (sent as 0) when RST is set.
    pub window: u16,
}

impl<A> ControlSegment<A> {
    /// The same segment to `remote_ip`: how a family-neutral segment
    /// becomes one a template of that family builds.
    pub fn with_remote_ip<B>(&self, remote_ip: B) -> ControlSegment<B> {
        ControlSegment {
            remote_ip,
            local_port: self.local_port,
            remote_port: self.remote_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
        }
    }

    /// The same segment as a [`tcp::Repr`], for the ordinary `emit` path:
    /// what a template's `build` must equal byte for byte (data offset 5,
    /// no options, urgent 0, an RST's window 0).
    pub fn tcp_repr(&self) -> tcp::Repr<'static> {
        tcp::Repr {
            src_port: self.local_port,
            dst_port: self.remote_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: if self.flags.rst() { 0 } else { self.window },
            urgent: 0,
            options: tcp::Options::default(),
            payload: &[],
        }
    }

    /// `<SEQ=seq><CTL=RST>` (RFC 9293 §3.10.7.1: the answer to a segment
    /// that carries an ACK, and the abort of a synchronized connection).
    #[inline]
    pub const fn rst(remote_ip: A, local_port: u16, remote_port: u16, seq: SeqNumber) -> Self {
        ControlSegment {
            remote_ip,
            local_port,
            remote_port,
            seq,
            ack: SeqNumber(0),
            flags: Flags::RST,
            window: 0,
        }
    }

    /// `<SEQ=seq><ACK=ack><CTL=RST,ACK>` (RFC 9293 §3.10.7.1: the answer to
    /// a segment without ACK, with `seq` 0 and `ack` = SEG.SEQ + SEG.LEN).
    #[inline]
    pub const fn rst_ack(
        remote_ip: A,
        local_port: u16,
        remote_port: u16,
        seq: SeqNumber,
        ack: SeqNumber,
    ) -> Self {
        ControlSegment {
            remote_ip,
            local_port,
            remote_port,
            seq,
            ack,
            flags: Flags::RST.union(Flags::ACK),
            window: 0,
        }
    }
}

/// A prebuilt Ethernet + IPv4 + TCP header for one (local MAC, next-hop
/// MAC, local IP); one per core and gateway. Rebuild it when the next hop's
/// MAC changes.
#[derive(Debug, Clone)]
pub struct RstTemplate {
    /// The frame with every per-segment field zero, checksums included.
    frame: [u8; FRAME_LEN],
    /// Folded sum of the constant IPv4 header words (the complement of the
    /// template's header checksum).
    ip_sum: u16,
    /// Folded sum of the constant TCP words: the pseudo header without the
    /// destination (source, protocol, length 20) and the data offset.
    tcp_sum: u16,
}

impl RstTemplate {
    /// Builds the template through the ordinary `emit` paths, so it can only
    /// differ from them in the fields `build` writes.
    pub fn new(
        local_mac: EthernetAddress,
        next_hop_mac: EthernetAddress,
        local_ip: Ipv4Addr,
    ) -> RstTemplate {
        let mut frame = [0u8; FRAME_LEN];
        ethernet::Repr {
            src_addr: local_mac,
            dst_addr: next_hop_mac,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
        ipv4::Repr {
            src_addr: local_ip,
            dst_addr: Ipv4Addr::UNSPECIFIED,
            protocol: Protocol::Tcp,
            payload_len: tcp::HEADER_LEN,
            ttl: TTL,
        }
        .emit(&mut ipv4::Packet::new_unchecked(
            &mut frame[field::IP_HEADER],
        ));
        let mut tcp_header = tcp::Packet::new_unchecked(&mut frame[field::TCP_HEADER]);
        tcp_header.set_header_len(tcp::HEADER_LEN as u8);
        // Everything else in the TCP header starts at zero.
        frame[field::IP_CHECKSUM].fill(0);

        // Folded, so that `build` can add a dozen small terms without carry.
        let ip_sum = checksum::data(&frame[field::IP_HEADER]);
        let tcp_sum = checksum::fold(checksum::add(
            checksum::pseudo_header_ipv4(
                local_ip,
                Ipv4Addr::UNSPECIFIED,
                u8::from(Protocol::Tcp),
                tcp::HEADER_LEN as u16,
            ),
            checksum::sum(&frame[field::TCP_HEADER]),
        ));
        RstTemplate {
            frame,
            ip_sum,
            tcp_sum,
        }
    }

    /// Writes the frame for `seg` into `frame` (RST → window 0).
    ///
    /// Cost: one 54-byte copy, nine small stores, two folds; no loop over
    /// the frame.
    #[inline]
    pub fn build_array(&self, frame: &mut [u8; FRAME_LEN], seg: &ControlSegment) {
        *frame = self.frame;
        let dst = u32::from(seg.remote_ip);
        let dst_acc = u64::from(dst >> 16) + u64::from(dst & 0xffff);

        frame[field::IP_DST].copy_from_slice(&dst.to_be_bytes());
        let ip_checksum = checksum::finish(u64::from(self.ip_sum) + dst_acc);
        frame[field::IP_CHECKSUM].copy_from_slice(&ip_checksum.to_be_bytes());
        fill_tcp(&mut frame[field::TCP..], self.tcp_sum, dst_acc, seg);
    }

    /// Writes the frame for `seg` into the front of `buf` and returns its
    /// length, [`FRAME_LEN`]; [`Error::Truncated`] if `buf` is shorter.
    #[inline]
    pub fn build(&self, buf: &mut [u8], seg: &ControlSegment) -> Result<usize> {
        let frame: &mut [u8; FRAME_LEN] = buf
            .get_mut(..FRAME_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated)?;
        self.build_array(frame, seg);
        Ok(FRAME_LEN)
    }
}

/// A prebuilt Ethernet + IPv6 + TCP header for one (local MAC, next-hop
/// MAC, local IPv6 address): [`RstTemplate`]'s counterpart, with the same
/// API. Rebuild it when the next hop's MAC changes.
#[derive(Debug, Clone)]
pub struct RstTemplateV6 {
    /// The frame with every per-segment field zero, checksum included.
    frame: [u8; FRAME_LEN_V6],
    /// Folded sum of the constant TCP words: the pseudo header without the
    /// destination (source, length 20, next header 6; RFC 8200 §8.1) and
    /// the data offset.
    tcp_sum: u16,
}

impl RstTemplateV6 {
    /// Builds the template through the ordinary `emit` paths, so it can only
    /// differ from them in the fields `build` writes.
    pub fn new(
        local_mac: EthernetAddress,
        next_hop_mac: EthernetAddress,
        local_ip: Ipv6Addr,
    ) -> RstTemplateV6 {
        let mut frame = [0u8; FRAME_LEN_V6];
        ethernet::Repr {
            src_addr: local_mac,
            dst_addr: next_hop_mac,
            ethertype: EtherType::IPV6,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
        ipv6::Repr {
            src_addr: local_ip,
            dst_addr: Ipv6Addr::UNSPECIFIED,
            next_header: Protocol::Tcp,
            payload_len: tcp::HEADER_LEN,
            hop_limit: TTL,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(
            &mut frame[field6::IP_HEADER],
        ));
        let mut tcp_header = tcp::Packet::new_unchecked(&mut frame[field6::TCP_HEADER]);
        tcp_header.set_header_len(tcp::HEADER_LEN as u8);

        let tcp_sum = checksum::fold(checksum::add(
            checksum::pseudo_header_ipv6(
                local_ip,
                Ipv6Addr::UNSPECIFIED,
                u8::from(Protocol::Tcp),
                tcp::HEADER_LEN as u32,
            ),
            checksum::sum(&frame[field6::TCP_HEADER]),
        ));
        RstTemplateV6 { frame, tcp_sum }
    }

    /// Writes the frame for `seg` into `frame` (RST → window 0).
    ///
    /// Cost: one 74-byte copy, nine small stores, two folds; no loop over
    /// the frame.
    #[inline]
    pub fn build_array(&self, frame: &mut [u8; FRAME_LEN_V6], seg: &ControlSegment<Ipv6Addr>) {
        *frame = self.frame;
        let dst = u128::from(seg.remote_ip);
        // Eight address words as two 64-bit halves (2^64 ≡ 1 modulo
        // 2^16 - 1), folded so the sum stays far from overflow.
        let dst_acc = u64::from(checksum::fold(checksum::add(
            (dst >> 64) as u64,
            dst as u64,
        )));

        frame[field6::IP_DST].copy_from_slice(&dst.to_be_bytes());
        fill_tcp(&mut frame[field6::TCP..], self.tcp_sum, dst_acc, seg);
    }

    /// Writes the frame for `seg` into the front of `buf` and returns its
    /// length, [`FRAME_LEN_V6`]; [`Error::Truncated`] if `buf` is shorter.
    #[inline]
    pub fn build(&self, buf: &mut [u8], seg: &ControlSegment<Ipv6Addr>) -> Result<usize> {
        let frame: &mut [u8; FRAME_LEN_V6] = buf
            .get_mut(..FRAME_LEN_V6)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated)?;
        self.build_array(frame, seg);
        Ok(FRAME_LEN_V6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EthernetRepr, Ipv4Repr};

    const LOCAL_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    const GW_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xfe]);
    const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// The frame the ordinary emit path writes for `seg`.
    fn emitted(seg: &ControlSegment) -> [u8; FRAME_LEN] {
        let mut frame = [0u8; FRAME_LEN];
        EthernetRepr {
            src_addr: LOCAL_MAC,
            dst_addr: GW_MAC,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
        Ipv4Repr {
            src_addr: LOCAL_IP,
            dst_addr: seg.remote_ip,
            protocol: Protocol::Tcp,
            payload_len: 20,
            ttl: TTL,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut frame[14..34]));
        seg.tcp_repr().emit(
            &mut tcp::Packet::new_unchecked(&mut frame[34..]),
            LOCAL_IP,
            seg.remote_ip,
        );
        frame
    }

    #[test]
    fn rst_matches_emit() {
        let template = RstTemplate::new(LOCAL_MAC, GW_MAC, LOCAL_IP);
        let segs = [
            ControlSegment::rst(
                Ipv4Addr::new(198, 19, 1, 2),
                80,
                40000,
                SeqNumber(0xdead_beef),
            ),
            ControlSegment::rst_ack(
                Ipv4Addr::new(198, 18, 255, 255),
                443,
                65535,
                SeqNumber(0),
                SeqNumber(u32::MAX),
            ),
            ControlSegment {
                flags: Flags::ACK,
                window: 65535,
                ..ControlSegment::rst(Ipv4Addr::new(10, 0, 0, 1), 1, 2, SeqNumber(7))
            },
            ControlSegment {
                flags: Flags::FIN | Flags::ACK,
                window: 512,
                ..ControlSegment::rst_ack(
                    Ipv4Addr::BROADCAST,
                    65535,
                    65535,
                    SeqNumber(1),
                    SeqNumber(2),
                )
            },
        ];
        for seg in &segs {
            let mut buf = [0xa5u8; 64];
            assert_eq!(template.build(&mut buf, seg), Ok(FRAME_LEN));
            assert_eq!(buf[..FRAME_LEN], emitted(seg), "{seg:?}");
            assert_eq!(buf[FRAME_LEN..], [0xa5; 10], "wrote past the frame");
        }
    }

    #[test]
    fn rst_window_is_zero() {
        let template = RstTemplate::new(LOCAL_MAC, GW_MAC, LOCAL_IP);
        let seg = ControlSegment {
            window: 1000,
            ..ControlSegment::rst(Ipv4Addr::new(198, 18, 0, 2), 80, 1234, SeqNumber(5))
        };
        let mut frame = [0u8; FRAME_LEN];
        template.build_array(&mut frame, &seg);
        let tcp = tcp::Packet::new_checked(&frame[34..]).unwrap();
        assert_eq!(tcp.window_len(), 0);
        assert!(tcp.verify_checksum(LOCAL_IP, seg.remote_ip));
    }

    const LOCAL_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    /// The IPv6 frame the ordinary emit path writes for `seg`.
    fn emitted6(seg: &ControlSegment<Ipv6Addr>) -> [u8; FRAME_LEN_V6] {
        let mut frame = [0u8; FRAME_LEN_V6];
        EthernetRepr {
            src_addr: LOCAL_MAC,
            dst_addr: GW_MAC,
            ethertype: EtherType::IPV6,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
        ipv6::Repr {
            src_addr: LOCAL_IP6,
            dst_addr: seg.remote_ip,
            next_header: Protocol::Tcp,
            payload_len: 20,
            hop_limit: TTL,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut frame[14..54]));
        seg.tcp_repr().emit_pseudo(
            &mut tcp::Packet::new_unchecked(&mut frame[54..]),
            tcp::PseudoHeader::ipv6(LOCAL_IP6, seg.remote_ip),
        );
        frame
    }

    #[test]
    fn rst_v6_matches_emit() {
        let template = RstTemplateV6::new(LOCAL_MAC, GW_MAC, LOCAL_IP6);
        let segs = [
            ControlSegment::rst(
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
                80,
                40000,
                SeqNumber(0xdead_beef),
            ),
            ControlSegment::rst_ack(
                Ipv6Addr::from(u128::MAX),
                443,
                65535,
                SeqNumber(0),
                SeqNumber(u32::MAX),
            ),
            ControlSegment {
                flags: Flags::ACK,
                window: 65535,
                ..ControlSegment::rst(Ipv6Addr::LOCALHOST, 1, 2, SeqNumber(7))
            },
            ControlSegment {
                flags: Flags::FIN | Flags::ACK,
                window: 1000,
                ..ControlSegment::rst_ack(
                    Ipv6Addr::new(0xfe80, 0, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff),
                    65535,
                    65535,
                    SeqNumber(1),
                    SeqNumber(2),
                )
            },
        ];
        for seg in &segs {
            let mut buf = [0xa5u8; 84];
            assert_eq!(template.build(&mut buf, seg), Ok(FRAME_LEN_V6));
            assert_eq!(buf[..FRAME_LEN_V6], emitted6(seg), "{seg:?}");
            assert_eq!(buf[FRAME_LEN_V6..], [0xa5; 10], "wrote past the frame");
            let tcp = tcp::Packet::new_checked(&buf[54..FRAME_LEN_V6]).unwrap();
            assert!(tcp.verify_checksum_pseudo(tcp::PseudoHeader::ipv6(LOCAL_IP6, seg.remote_ip)));
            if seg.flags.rst() {
                assert_eq!(tcp.window_len(), 0);
            }
        }
        let mut short = [0u8; FRAME_LEN_V6 - 1];
        assert_eq!(template.build(&mut short, &segs[0]), Err(Error::Truncated));
        assert_eq!(short, [0u8; FRAME_LEN_V6 - 1]);
    }

    #[test]
    fn short_buffer_is_truncated() {
        let template = RstTemplate::new(LOCAL_MAC, GW_MAC, LOCAL_IP);
        let seg = ControlSegment::rst(Ipv4Addr::new(198, 18, 0, 2), 80, 1234, SeqNumber(5));
        let mut buf = [0u8; FRAME_LEN - 1];
        assert_eq!(template.build(&mut buf, &seg), Err(Error::Truncated));
        assert_eq!(buf, [0u8; FRAME_LEN - 1]);
    }
}
