//! IPv4 headers (RFC 791 §3.1).
//!
//! Owns the header layout, its length rules and the header checksum. It does
//! not reassemble fragments or interpret options: both are recognised and
//! refused with their own [`Error`] so the engine can count them. It never
//! looks past `total_len`: what follows is Ethernet padding, not payload.

use std::net::Ipv4Addr;

use super::{Error, Result, checksum};

/// Length of a header without options (IHL 5).
pub const HEADER_LEN: usize = field::DST_ADDR.end;

mod field {
    use core::ops::Range;

    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Range<usize> = 10..12;
    pub(super) const SRC_ADDR: Range<usize> = 12..16;
    pub(super) const DST_ADDR: Range<usize> = 16..20;
}

/// Don't Fragment (RFC 791 §3.1 "Flags", bit 1).
const FLAG_DF: u16 = 0x4000;
/// More Fragments (bit 2).
const FLAG_MF: u16 = 0x2000;
/// Fragment offset, in 8-byte units.
const OFFSET_MASK: u16 = 0x1fff;

/// The IP protocol number (RFC 791 "Protocol"; IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ICMP, 1.
    Icmp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// Anything else, raw.
    Unknown(u8),
}

impl Protocol {
    /// ICMPv6, 58 (RFC 8200 §4.1, RFC 4443). A constant rather than a
    /// variant, so that existing exhaustive matches keep compiling; it is
    /// usable as a pattern.
    pub const ICMPV6: Protocol = Protocol::Unknown(58);
}

impl From<u8> for Protocol {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    #[inline]
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(other) => other,
        }
    }
}

/// A zero-copy view of an IPv4 packet.
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

    /// Checks the three lengths against each other (RFC 791 §3.1, "IHL" and
    /// "Total Length"):
    /// - buffer < 20 bytes: [`Error::Truncated`];
    /// - IHL < 5: [`Error::Malformed`] ("the minimum value for a correct
    ///   header is 5");
    /// - IHL × 4 > buffer: [`Error::Truncated`];
    /// - total length < IHL × 4: [`Error::Malformed`];
    /// - total length > buffer: [`Error::Truncated`].
    ///
    /// A buffer longer than the total length is fine (Ethernet padding).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
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
    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[range];
        u16::from_be_bytes([d[0], d[1]])
    }

    #[inline]
    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[range];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// The version field.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP, the upper six bits of the old TOS byte (RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// ECN, the lower two bits (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length: header plus payload.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_DF != 0
    }

    /// More Fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Whether this packet is a fragment: MF set or offset non-zero
    /// (RFC 791 §3.2, "Fragmentation and Reassembly").
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.read_u16(field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The payload's protocol.
    #[inline]
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR)
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// Whether the header checksum verifies: the sum over the whole header,
    /// checksum included, is `0xFFFF` (RFC 791 §3.1 "Header Checksum",
    /// RFC 1071 §1 (4)). False on a short buffer.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return false;
        }
        match self.buffer.as_ref().get(..usize::from(self.header_len())) {
            Some(header) => checksum::data(header) == 0xffff,
            None => false,
        }
    }

    /// The options, between byte 20 and IHL × 4 (empty if none or on a
    /// short buffer).
    #[inline]
    pub fn options(&self) -> &[u8] {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return &[];
        }
        let end = usize::from(self.header_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The payload: from IHL × 4 to the total length, never the Ethernet
    /// padding after it. Empty if the lengths are inconsistent or the
    /// buffer is shorter than a header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return &[];
        }
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        self.buffer.as_ref().get(range).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (stored as IHL = `value / 4`).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        self.write_u16(field::IDENT, value);
    }

    /// Sets flags and fragment offset: DF, MF and the offset in bytes
    /// (must be a multiple of 8; the low three bits are dropped).
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        self.write_u16(field::FLG_OFF, v);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = u8::from(value);
    }

    /// Stores a checksum value as is.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes and stores the header checksum over IHL × 4 bytes.
    ///
    /// # Panics
    /// If the buffer is shorter than the header length.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let value = checksum::finish(checksum::sum(&self.buffer.as_ref()[..header_len]));
        self.set_checksum(value);
    }

    /// The payload (up to the total length), mutable; empty if the lengths
    /// are inconsistent.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        self.buffer.as_mut().get_mut(range).unwrap_or(&mut [])
    }
}

/// A parsed IPv4 header: no options, not a fragment, checksum verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: Protocol,
    /// Payload length (total length − 20); at most 65515.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Repr {
    /// Parses and validates a header. Checks the lengths itself, so it never
    /// panics. In order:
    /// - lengths as in [`Packet::check_len`];
    /// - version ≠ 4: [`Error::Malformed`] (the EtherType said IPv4);
    /// - bad header checksum: [`Error::Checksum`] (RFC 791 §3.1: "if the
    ///   header checksum fails, the internet datagram is discarded");
    /// - IHL > 5: [`Error::Options`] (lingerd does not process IP options;
    ///   a host may not silently misread them, RFC 1122 §3.2.1.8 asks to
    ///   pass them up, so they are counted and dropped);
    /// - MF or offset ≠ 0: [`Error::Fragmented`] (no reassembly).
    ///
    /// DSCP, ECN, identification and DF are not kept.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        // One read of the fixed header; every field below is a constant
        // offset into it (no further bounds checks, nothing re-derived).
        let bytes = packet.buffer.as_ref();
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        if h[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let header_len = usize::from(h[field::VER_IHL] & 0x0f) * 4;
        // The common case, IHL 5, sums a fixed 20 bytes: fully unrolled.
        let acc = if header_len == HEADER_LEN {
            checksum::sum(h)
        } else {
            checksum::sum(bytes.get(..header_len).unwrap_or(&[]))
        };
        if !checksum::verifies(acc) {
            return Err(Error::Checksum);
        }
        if header_len > HEADER_LEN {
            return Err(Error::Options);
        }
        if be16(field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0 {
            return Err(Error::Fragmented);
        }
        Ok(Repr {
            src_addr: Ipv4Addr::from(be32(field::SRC_ADDR.start)),
            dst_addr: Ipv4Addr::from(be32(field::DST_ADDR.start)),
            protocol: Protocol::from(h[field::PROTOCOL]),
            // `check_len` made total length ≥ header length.
            payload_len: usize::from(be16(field::LENGTH.start)) - header_len,
            ttl: h[field::TTL],
        })
    }

    /// The header length: [`HEADER_LEN`] (we never emit options).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header: IHL 5, DSCP/ECN 0, identification 0, DF set
    /// (RFC 6864 §4.1: the ID of an atomic datagram, DF set and not a
    /// fragment, carries no meaning, so 0 is fine), and the checksum. The
    /// payload is the caller's.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`]. In debug builds, if
    /// `payload_len` exceeds 65515.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(0, 0);
        packet.set_total_len(self.buffer_len() as u16);
        packet.set_ident(0);
        packet.set_frag(true, false, 0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 header (198.18.0.2 → 198.18.0.1, TTL 64, DF, 20 bytes of
    /// payload), checksum 0xaea8 computed independently (Python), followed by 20
    /// payload bytes and 6 bytes of Ethernet padding.
    const PACKET: [u8; 46] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xae, 0xa8, 198, 18, 0, 2, 198,
        18, 0, 1, // header
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, // payload
        0, 0, 0, 0, 0, 0, // padding
    ];

    const REPR: Repr = Repr {
        src_addr: Ipv4Addr::new(198, 18, 0, 2),
        dst_addr: Ipv4Addr::new(198, 18, 0, 1),
        protocol: Protocol::Tcp,
        payload_len: 20,
        ttl: 64,
    };

    fn with(mut bytes: [u8; 46], f: impl FnOnce(&mut Packet<&mut [u8]>)) -> [u8; 46] {
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        f(&mut packet);
        if usize::from(packet.header_len()) <= 46 {
            packet.fill_checksum();
        }
        bytes
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp(), 0);
        assert_eq!(packet.ecn(), 0);
        assert_eq!(packet.total_len(), 40);
        assert_eq!(packet.ident(), 0);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), Protocol::Tcp);
        assert_eq!(packet.checksum(), 0xaea8);
        assert_eq!(packet.src_addr(), REPR.src_addr);
        assert_eq!(packet.dst_addr(), REPR.dst_addr);
        assert!(packet.verify_checksum());
        assert_eq!(packet.options(), &[] as &[u8]);
        // The padding is not payload.
        assert_eq!(packet.payload(), &PACKET[20..40]);
        assert_eq!(Repr::parse(&packet), Ok(REPR));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 46];
        REPR.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..20], PACKET[..20]);
        assert_eq!(REPR.buffer_len(), 40);
        assert_eq!(REPR.header_len(), 20);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..40 {
            let packet = Packet::new_unchecked(&PACKET[..len]);
            assert_eq!(packet.check_len(), Err(Error::Truncated), "len {len}");
            assert_eq!(Repr::parse(&packet), Err(Error::Truncated), "len {len}");
        }
        for len in 40..=PACKET.len() {
            assert_eq!(
                Repr::parse(&Packet::new_checked(&PACKET[..len]).unwrap()),
                Ok(REPR)
            );
        }
    }

    #[test]
    fn impossible_lengths() {
        // IHL below 5.
        for ihl in 0..5u8 {
            let bytes = with(PACKET, |p| p.set_header_len(ihl * 4));
            let packet = Packet::new_unchecked(&bytes[..]);
            assert_eq!(packet.check_len(), Err(Error::Malformed), "ihl {ihl}");
            assert_eq!(packet.options(), &[] as &[u8]);
        }
        // IHL past the buffer (60 bytes > 46).
        let bytes = with(PACKET, |p| {
            p.set_header_len(60);
            p.set_total_len(60);
        });
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
        // Total length below the header length.
        let bytes = with(PACKET, |p| p.set_total_len(19));
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
        // Total length past the buffer.
        let bytes = with(PACKET, |p| p.set_total_len(47));
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
        let packet = Packet::new_unchecked(&bytes[..]);
        assert_eq!(packet.payload(), &[] as &[u8]);
    }

    #[test]
    fn version_checksum_options_fragments() {
        let bytes = with(PACKET, |p| p.set_version(6));
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bytes[..])),
            Err(Error::Malformed)
        );

        let mut bytes = PACKET;
        bytes[8] = 63; // TTL changed, checksum not
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bytes[..])),
            Err(Error::Checksum)
        );

        // IHL 6: the first four payload bytes become options; total length 44.
        let bytes = with(PACKET, |p| {
            p.set_header_len(24);
            p.set_total_len(44);
        });
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options(), &PACKET[20..24]);
        assert_eq!(Repr::parse(&packet), Err(Error::Options));

        for (mf, offset) in [(true, 0), (false, 8), (true, 1480), (false, 65528)] {
            let bytes = with(PACKET, |p| p.set_frag(false, mf, offset));
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert!(packet.is_fragment());
            assert_eq!(packet.more_frags(), mf);
            assert_eq!(packet.frag_offset(), offset);
            assert_eq!(Repr::parse(&packet), Err(Error::Fragmented));
        }
        // DF alone is not a fragment.
        let bytes = with(PACKET, |p| p.set_frag(false, false, 0));
        assert!(Repr::parse(&Packet::new_unchecked(&bytes[..])).is_ok());
    }
}
