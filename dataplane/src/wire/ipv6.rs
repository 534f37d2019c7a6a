//! IPv6 fixed headers (RFC 8200 §3).
//!
//! Owns the 40-byte header layout and its length rule (payload length
//! against the buffer). It has no checksum to keep (RFC 8200 §3 has none;
//! upper layers cover the pseudo header, see `checksum` and `tcp`). It does
//! not walk extension headers (that is `ipv6ext`), judge destinations (one
//! that is not ours is the engine's to drop), or reassemble; of addresses
//! it refuses only what no IPv6 packet may carry, a multicast source. Like `ipv4`, it never looks past the payload length: what
//! follows is Ethernet padding.

use std::net::Ipv6Addr;

use super::ipv4::Protocol;
use super::{Error, Result};

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The IPv6 minimum link MTU (RFC 8200 §5): every link carries 1280-byte
/// packets, and no path MTU estimate goes below it (RFC 8201 §4).
pub const MIN_MTU: u32 = 1280;

/// Largest flow label (20 bits, RFC 8200 §6, RFC 6437).
pub const MAX_FLOW_LABEL: u32 = 0x000f_ffff;

mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8), flow label (20).
    pub(super) const VER_TC_FLOW: Range<usize> = 0..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Range<usize> = 8..24;
    pub(super) const DST_ADDR: Range<usize> = 24..40;
}

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short
    /// buffer until [`Packet::check_len`] has succeeded.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks its lengths.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the lengths (RFC 8200 §3, "Payload Length": the rest of the
    /// packet after the fixed header, extension headers included):
    /// - buffer < 40 bytes: [`Error::Truncated`];
    /// - 40 + payload length > buffer: [`Error::Truncated`].
    ///
    /// A buffer longer than that is fine (Ethernet padding). A payload
    /// length of 0 is an empty payload; a jumbogram (RFC 2675, length 0
    /// with a Jumbo Payload option) is refused by the extension header
    /// walk, not here.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn first_word(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    #[inline]
    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[range]);
        Ipv6Addr::from(octets)
    }

    /// The version field.
    #[inline]
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    /// The traffic class (RFC 8200 §7): DSCP and ECN.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// DSCP, the upper six bits of the traffic class (RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN, the lower two bits (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// The 20-bit flow label (RFC 6437).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & MAX_FLOW_LABEL
    }

    /// Payload length: extension headers plus upper-layer data.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The first next header: an extension header or the upper layer.
    #[inline]
    pub fn next_header(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// The hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        self.read_addr(field::SRC_ADDR)
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// The payload: from byte 40 to 40 + payload length, never the Ethernet
    /// padding after it. Empty if the lengths are inconsistent or the
    /// buffer is shorter than a header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let bytes = self.buffer.as_ref();
        if bytes.len() < HEADER_LEN {
            return &[];
        }
        let end = HEADER_LEN + usize::from(self.payload_len());
        bytes.get(HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_first_word(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let word = (self.first_word() & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28);
        self.set_first_word(word);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let word = (self.first_word() & 0xf00f_ffff) | (u32::from(value) << 20);
        self.set_first_word(word);
    }

    /// Sets the flow label; bits above the 20th are dropped.
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let word = (self.first_word() & !MAX_FLOW_LABEL) | (value & MAX_FLOW_LABEL);
        self.set_first_word(word);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the first next header.
    #[inline]
    pub fn set_next_header(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::NXT_HDR] = u8::from(value);
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The payload (up to the payload length), mutable; empty if the
    /// lengths are inconsistent.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return &mut [];
        }
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// A parsed IPv6 fixed header. Extension headers, if any, are part of the
/// payload: `next_header` is the first of them (walk them with
/// `wire::ipv6_walk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The first next header.
    pub next_header: Protocol,
    /// Payload length (extension headers and upper layer); at most 65535.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label; at most [`MAX_FLOW_LABEL`].
    pub flow_label: u32,
}

impl Repr {
    /// Parses and validates a fixed header. Checks the lengths itself, so it
    /// never panics. In order:
    /// - lengths as in [`Packet::check_len`];
    /// - version ≠ 6: [`Error::Malformed`] (the EtherType said IPv6);
    /// - multicast source: [`Error::Malformed`] (RFC 4291 §2.7: "Multicast
    ///   addresses must not be used as source addresses in IPv6 packets").
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::Malformed);
        }
        let src_addr = packet.src_addr();
        if src_addr.is_multicast() {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr,
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The header length: always [`HEADER_LEN`] (extension headers, if any,
    /// are the caller's payload).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the fixed header. The payload is the caller's.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`]. In debug builds, if
    /// `payload_len` exceeds 65535 or `flow_label` exceeds 20 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX));
        debug_assert!(self.flow_label <= MAX_FLOW_LABEL);
        let word = (6u32 << 28)
            | (u32::from(self.traffic_class) << 20)
            | (self.flow_label & MAX_FLOW_LABEL);
        packet.set_first_word(word);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv6 header (2001:db8::2 → 2001:db8::1, traffic class 0x2e,
    /// flow label 0x12345, hop limit 64, 20 bytes of payload), the payload,
    /// and 6 bytes of padding.
    const PACKET: [u8; 66] = [
        0x62, 0xe1, 0x23, 0x45, // version 6, TC 0x2e, flow 0x12345
        0x00, 0x14, 0x06, 0x40, // length 20, TCP, hop limit 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // dst
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, // payload
        0, 0, 0, 0, 0, 0, // padding
    ];

    const REPR: Repr = Repr {
        src_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        dst_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        next_header: Protocol::Tcp,
        payload_len: 20,
        hop_limit: 64,
        traffic_class: 0x2e,
        flow_label: 0x12345,
    };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0x2e);
        assert_eq!(packet.dscp(), 0x0b);
        assert_eq!(packet.ecn(), 0x02);
        assert_eq!(packet.flow_label(), 0x12345);
        assert_eq!(packet.payload_len(), 20);
        assert_eq!(packet.next_header(), Protocol::Tcp);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), REPR.src_addr);
        assert_eq!(packet.dst_addr(), REPR.dst_addr);
        // The padding is not payload.
        assert_eq!(packet.payload(), &PACKET[40..60]);
        assert_eq!(Repr::parse(&packet), Ok(REPR));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 66];
        REPR.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..40], PACKET[..40]);
        assert_eq!(bytes[40..], [0xa5; 26]);
        assert_eq!(REPR.buffer_len(), 60);
        assert_eq!(REPR.header_len(), 40);
    }

    #[test]
    fn setters_touch_only_their_bits() {
        let mut bytes = PACKET;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_flow_label(0xfff_ffff); // upper bits dropped
        assert_eq!(packet.flow_label(), MAX_FLOW_LABEL);
        assert_eq!((packet.version(), packet.traffic_class()), (6, 0x2e));
        packet.set_traffic_class(0xff);
        assert_eq!((packet.version(), packet.flow_label()), (6, MAX_FLOW_LABEL));
        packet.set_version(4);
        assert_eq!(packet.traffic_class(), 0xff);
        assert_eq!(packet.flow_label(), MAX_FLOW_LABEL);
        packet.set_next_header(Protocol::Unknown(58));
        packet.set_hop_limit(255);
        assert_eq!(packet.next_header(), Protocol::Unknown(58));
        assert_eq!(packet.hop_limit(), 255);
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed));
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..60 {
            let packet = Packet::new_unchecked(&PACKET[..len]);
            assert_eq!(packet.check_len(), Err(Error::Truncated), "len {len}");
            assert_eq!(Repr::parse(&packet), Err(Error::Truncated), "len {len}");
            assert!(packet.payload().len() <= 20);
        }
        for len in 60..=PACKET.len() {
            let packet = Packet::new_checked(&PACKET[..len]).unwrap();
            assert_eq!(Repr::parse(&packet), Ok(REPR));
            assert_eq!(packet.payload(), &PACKET[40..60]);
        }
    }

    #[test]
    fn payload_length_past_the_buffer() {
        let mut bytes = PACKET;
        Packet::new_unchecked(&mut bytes[..]).set_payload_len(27);
        let packet = Packet::new_unchecked(&bytes[..]);
        assert_eq!(packet.check_len(), Err(Error::Truncated));
        assert_eq!(packet.payload(), &[] as &[u8]);
        // 26 fits: 20 bytes of payload and the 6 of padding.
        Packet::new_unchecked(&mut bytes[..]).set_payload_len(26);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &PACKET[40..]);
        // Zero: an empty payload, not a jumbogram.
        Packet::new_unchecked(&mut bytes[..]).set_payload_len(0);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &[] as &[u8]);
        assert_eq!(Repr::parse(&packet).map(|r| r.payload_len), Ok(0));
    }

    #[test]
    fn multicast_source_is_malformed() {
        let mut bytes = PACKET;
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        Packet::new_unchecked(&mut bytes[..]).set_src_addr(group);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed));
        // As a destination it is fine (ND, for one).
        let mut bytes = PACKET;
        Packet::new_unchecked(&mut bytes[..]).set_dst_addr(group);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet).map(|r| r.dst_addr), Ok(group));
        // The unspecified source is fine (duplicate address detection).
        let mut bytes = PACKET;
        Packet::new_unchecked(&mut bytes[..]).set_src_addr(Ipv6Addr::UNSPECIFIED);
        assert!(Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).is_ok());
    }

    #[test]
    fn version_must_be_six() {
        for version in [0u8, 4, 7, 15] {
            let mut bytes = PACKET;
            Packet::new_unchecked(&mut bytes[..]).set_version(version);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(Repr::parse(&packet), Err(Error::Malformed), "{version}");
        }
    }
}
