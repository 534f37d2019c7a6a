//! Ethernet II frames (IEEE 802.3 clause 3.2.6 "Length/Type" ≥ 0x0600).
//!
//! Owns the 14-byte header layout and EtherTypes (IPv4, ARP, IPv6; the MAC
//! address type is the shared `lingerd_abi::MacAddr`, named
//! `EthernetAddress` here). It never looks into the payload and knows
//! nothing of IP; 802.1Q/802.1ad VLAN tags
//! are recognised and refused ([`Error::Unsupported`]), as are 802.3 length
//! frames. The FCS is the NIC's business and never in the buffer.

use super::{Error, Result};

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const DESTINATION: Range<usize> = 0..6;
    pub(super) const SOURCE: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
    pub(super) const PAYLOAD: RangeFrom<usize> = 14..;
}

/// A 48-bit MAC address: the shared [`lingerd_abi::MacAddr`] (its text
/// form is the configuration's), under the name the wire code uses.
pub use lingerd_abi::vocab::MacAddr as EthernetAddress;

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4, 0x0800.
    Ipv4,
    /// ARP, 0x0806.
    Arp,
    /// Anything else, raw.
    Unknown(u16),
}

impl EtherType {
    /// IPv6, 0x86DD (RFC 2464 §3). A constant rather than a variant, so that
    /// existing exhaustive matches keep compiling; it is usable as a
    /// pattern (`EtherType::IPV6 => ...` before `EtherType::Unknown(_)`).
    pub const IPV6: EtherType = EtherType::Unknown(0x86dd);

    /// Whether this is IPv6 (0x86DD).
    #[inline]
    pub const fn is_ipv6(self) -> bool {
        matches!(self, EtherType::Unknown(0x86dd))
    }

    /// 802.1Q customer VLAN tag.
    const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ).
    const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ tag still seen in the wild.
    const QINQ_LEGACY: u16 = 0x9100;
    /// Values below this are 802.3 lengths, not types.
    const MIN_TYPE: u16 = 0x0600;

    /// Whether this value is a VLAN tag or an 802.3 length, i.e. not a
    /// payload type lingerd could ever dispatch on.
    const fn is_unsupported(self) -> bool {
        match self {
            EtherType::Unknown(v) => {
                v < Self::MIN_TYPE || v == Self::VLAN || v == Self::QINQ || v == Self::QINQ_LEGACY
            }
            _ => false,
        }
    }
}

impl From<u16> for EtherType {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Unknown(other) => other,
        }
    }
}

/// A zero-copy view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short
    /// buffer until [`Frame::check_len`] has succeeded.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer and checks that it holds a whole header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// [`Error::Truncated`] if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let d = &self.buffer.as_ref()[field::DESTINATION];
        EthernetAddress([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let d = &self.buffer.as_ref()[field::SOURCE];
        EthernetAddress([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// The EtherType.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let d = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([d[0], d[1]]))
    }

    /// Everything after the header (for a frame from the NIC, including any
    /// padding to the 60-byte minimum; the IPv4 total length bounds the
    /// real payload). Empty rather than panicking on a short buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    /// The payload, mutable; empty on a short buffer.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD)
            .unwrap_or(&mut [])
    }
}

/// A parsed Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC.
    pub src_addr: EthernetAddress,
    /// Destination MAC.
    pub dst_addr: EthernetAddress,
    /// Payload type; never a VLAN tag or an 802.3 length.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses a header. Checks the length itself, so it never panics.
    ///
    /// VLAN-tagged (0x8100, 0x88a8, 0x9100) and 802.3 length (< 0x0600)
    /// frames are [`Error::Unsupported`]; other unknown types are returned
    /// as [`EtherType::Unknown`] for the caller to count.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        let ethertype = frame.ethertype();
        if ethertype.is_unsupported() {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype,
        })
    }

    /// The header length: always [`HEADER_LEN`].
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The frame length for a payload of `payload_len` bytes (without the
    /// padding to 60 bytes, which the NIC adds).
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request frame header: broadcast from 52:54:00:12:34:56.
    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x08, 0x06, // ARP
        0xaa, 0xbb, 0xcc, 0xdd, // payload
    ];

    const REPR: Repr = Repr {
        src_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    };

    #[test]
    fn deconstruct() {
        let frame = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(frame.src_addr(), REPR.src_addr);
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(Repr::parse(&frame), Ok(REPR));
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 18];
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        REPR.emit(&mut frame);
        frame
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(bytes, FRAME);
        assert_eq!(REPR.buffer_len(4), 18);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&FRAME[..len]).err(),
                Some(Error::Truncated)
            );
            assert_eq!(Frame::new_unchecked(&FRAME[..len]).payload(), &[] as &[u8]);
            assert_eq!(
                Repr::parse(&Frame::new_unchecked(&FRAME[..len])),
                Err(Error::Truncated)
            );
        }
        assert!(Frame::new_checked(&FRAME[..HEADER_LEN]).is_ok());
    }

    #[test]
    fn vlan_and_length_frames_are_unsupported() {
        for ty in [0x8100u16, 0x88a8, 0x9100, 0x0000, 0x05dc] {
            let mut bytes = FRAME;
            bytes[12..14].copy_from_slice(&ty.to_be_bytes());
            let frame = Frame::new_checked(&bytes[..]).unwrap();
            assert_eq!(Repr::parse(&frame), Err(Error::Unsupported), "{ty:#06x}");
        }
        let mut bytes = FRAME;
        bytes[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        let repr = Repr::parse(&Frame::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.ethertype, EtherType::IPV6);
    }

    #[test]
    fn ipv6_is_recognised() {
        let mut bytes = FRAME;
        bytes[12..14].copy_from_slice(&[0x86, 0xdd]);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert!(frame.ethertype().is_ipv6());
        assert!(!EtherType::Ipv4.is_ipv6() && !EtherType::Unknown(0x86de).is_ipv6());
        // Usable as a pattern, ahead of the catch-all.
        let kind = match Repr::parse(&frame).unwrap().ethertype {
            EtherType::Ipv4 => "ipv4",
            EtherType::Arp => "arp",
            EtherType::IPV6 => "ipv6",
            EtherType::Unknown(_) => "other",
        };
        assert_eq!(kind, "ipv6");
        let mut out = [0u8; 14];
        Repr {
            ethertype: EtherType::IPV6,
            ..REPR
        }
        .emit(&mut Frame::new_unchecked(&mut out[..]));
        assert_eq!(out[12..14], [0x86, 0xdd]);
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        let unicast = EthernetAddress([0x52, 0x54, 0, 0, 0, 1]);
        assert!(unicast.is_unicast() && unicast.is_local() && !unicast.is_broadcast());
        let multicast = EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert!(multicast.is_multicast() && !multicast.is_local());
        assert_eq!(unicast.to_string(), "52:54:00:00:00:01");
        assert_eq!(EthernetAddress::from_bytes(&[1, 2, 3, 4, 5]), None);
        assert_eq!(
            EthernetAddress::from_bytes(&[1, 2, 3, 4, 5, 6, 7]),
            Some(EthernetAddress([1, 2, 3, 4, 5, 6]))
        );
    }

    #[test]
    fn ethertype_round_trips() {
        for v in [0x0800u16, 0x0806, 0x86dd, 0x1234] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
    }
}
