//! ARP (RFC 826) packets, as carried in an Ethernet frame.
//!
//! Owns the packet layout: the fixed 8-byte prefix and the four addresses
//! whose lengths the packet itself declares (`hlen`, `plen`). The view reads
//! any hardware/protocol pair; [`Repr`] accepts only Ethernet + IPv4, the
//! one pair lingerd resolves. It does not keep a neighbour cache or decide
//! whether to answer; that is the engine's.

use std::net::Ipv4Addr;

use super::ethernet::EthernetAddress;
use super::{Error, Result};

/// Length of an Ethernet + IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;

mod field {
    use core::ops::Range;

    pub(super) const HTYPE: Range<usize> = 0..2;
    pub(super) const PTYPE: Range<usize> = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Range<usize> = 6..8;
    /// End of the fixed prefix; the addresses follow.
    pub(super) const ADDRESSES: usize = 8;

    // Address offsets for Ethernet + IPv4 (hlen 6, plen 4); the view itself
    // computes them from hlen and plen.
    pub(super) const TPA: Range<usize> = 24..28;

    #[inline]
    pub(super) const fn sha(hlen: u8, _plen: u8) -> Range<usize> {
        ADDRESSES..ADDRESSES + hlen as usize
    }
    #[inline]
    pub(super) const fn spa(hlen: u8, plen: u8) -> Range<usize> {
        let start = sha(hlen, plen).end;
        start..start + plen as usize
    }
    #[inline]
    pub(super) const fn tha(hlen: u8, plen: u8) -> Range<usize> {
        let start = spa(hlen, plen).end;
        start..start + hlen as usize
    }
    #[inline]
    pub(super) const fn tpa(hlen: u8, plen: u8) -> Range<usize> {
        let start = tha(hlen, plen).end;
        start..start + plen as usize
    }
}

/// `ar$hrd` for Ethernet (RFC 826 "Packet format"; IANA hardware type 1).
const HTYPE_ETHERNET: u16 = 1;
/// `ar$pro` for IPv4 (the EtherType).
const PTYPE_IPV4: u16 = 0x0800;

/// The ARP opcode (`ar$op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `ares_op$REQUEST`, 1.
    Request,
    /// `ares_op$REPLY`, 2.
    Reply,
    /// Anything else (RARP, InARP, ...), raw.
    Unknown(u16),
}

impl From<u16> for Operation {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    #[inline]
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// A zero-copy view of an ARP packet.
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

    /// Wraps a buffer and checks its length.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Error::Truncated`] unless the buffer holds the fixed prefix and all
    /// four addresses at the lengths the packet declares.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < field::ADDRESSES {
            return Err(Error::Truncated);
        }
        if data.len() < field::tpa(self.hardware_len(), self.protocol_len()).end {
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

    /// `ar$hrd`, the hardware type.
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        self.read_u16(field::HTYPE)
    }

    /// `ar$pro`, the protocol type.
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        self.read_u16(field::PTYPE)
    }

    /// `ar$hln`, the hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// `ar$pln`, the protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// `ar$op`.
    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(self.read_u16(field::OPER))
    }

    /// The address at `range(hlen, plen)`; empty when the buffer is too
    /// short for it, or even for the two length bytes.
    #[inline]
    fn slice(&self, range: fn(u8, u8) -> core::ops::Range<usize>) -> &[u8] {
        let data = self.buffer.as_ref();
        if data.len() < field::ADDRESSES {
            return &[];
        }
        data.get(range(self.hardware_len(), self.protocol_len()))
            .unwrap_or(&[])
    }

    /// `ar$sha`, `hardware_len` bytes (empty on a short buffer).
    #[inline]
    pub fn source_hardware_addr(&self) -> &[u8] {
        self.slice(field::sha)
    }

    /// `ar$spa`, `protocol_len` bytes (empty on a short buffer).
    #[inline]
    pub fn source_protocol_addr(&self) -> &[u8] {
        self.slice(field::spa)
    }

    /// `ar$tha`, `hardware_len` bytes (empty on a short buffer).
    #[inline]
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.slice(field::tha)
    }

    /// `ar$tpa`, `protocol_len` bytes (empty on a short buffer).
    #[inline]
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.slice(field::tpa)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn write(&mut self, range: core::ops::Range<usize>, value: &[u8]) {
        self.buffer.as_mut()[range].copy_from_slice(value);
    }

    /// Sets `ar$hrd`.
    #[inline]
    pub fn set_hardware_type(&mut self, value: u16) {
        self.write(field::HTYPE, &value.to_be_bytes());
    }

    /// Sets `ar$pro`.
    #[inline]
    pub fn set_protocol_type(&mut self, value: u16) {
        self.write(field::PTYPE, &value.to_be_bytes());
    }

    /// Sets `ar$hln`; the address setters use it, so set it first.
    #[inline]
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets `ar$pln`; the address setters use it, so set it first.
    #[inline]
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets `ar$op`.
    #[inline]
    pub fn set_operation(&mut self, value: Operation) {
        self.write(field::OPER, &u16::from(value).to_be_bytes());
    }

    /// Sets `ar$sha`.
    ///
    /// # Panics
    /// If `value` is not `hardware_len` bytes or the buffer is short.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) {
        let range = field::sha(self.hardware_len(), self.protocol_len());
        self.write(range, value);
    }

    /// Sets `ar$spa`.
    ///
    /// # Panics
    /// If `value` is not `protocol_len` bytes or the buffer is short.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) {
        let range = field::spa(self.hardware_len(), self.protocol_len());
        self.write(range, value);
    }

    /// Sets `ar$tha`.
    ///
    /// # Panics
    /// If `value` is not `hardware_len` bytes or the buffer is short.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) {
        let range = field::tha(self.hardware_len(), self.protocol_len());
        self.write(range, value);
    }

    /// Sets `ar$tpa`.
    ///
    /// # Panics
    /// If `value` is not `protocol_len` bytes or the buffer is short.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) {
        let range = field::tpa(self.hardware_len(), self.protocol_len());
        self.write(range, value);
    }
}

/// A parsed ARP packet: Ethernet + IPv4 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// ARP for IPv4 over Ethernet (hlen 6, plen 4).
    EthernetIpv4 {
        /// Request, reply or an opcode lingerd ignores.
        operation: Operation,
        /// The sender's MAC.
        source_hardware_addr: EthernetAddress,
        /// The sender's IPv4 address.
        source_protocol_addr: Ipv4Addr,
        /// The target's MAC (all zeroes in a request).
        target_hardware_addr: EthernetAddress,
        /// The IPv4 address being resolved or answered for.
        target_protocol_addr: Ipv4Addr,
    },
}

impl Repr {
    /// Parses a packet. Checks the length itself, so it never panics.
    ///
    /// RFC 826 ("Packet Reception"): a receiver that does not speak the
    /// packet's hardware and protocol types discards it; here that is
    /// [`Error::Unsupported`] for anything but Ethernet (1, hlen 6) + IPv4
    /// (0x0800, plen 4). Unknown opcodes parse; the engine ignores them.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != PTYPE_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let ip = |bytes: &[u8]| -> Result<Ipv4Addr> {
            let octets: [u8; 4] = bytes.try_into().map_err(|_| Error::Truncated)?;
            Ok(Ipv4Addr::from(octets))
        };
        let mac = |bytes: &[u8]| EthernetAddress::from_bytes(bytes).ok_or(Error::Truncated);
        Ok(Repr::EthernetIpv4 {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr())?,
            source_protocol_addr: ip(packet.source_protocol_addr())?,
            target_hardware_addr: mac(packet.target_hardware_addr())?,
            target_protocol_addr: ip(packet.target_protocol_addr())?,
        })
    }

    /// The packet length: [`HEADER_LEN`] (28).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the packet.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let Repr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        } = *self;
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(operation);
        packet.set_source_hardware_addr(&source_hardware_addr.0);
        packet.set_source_protocol_addr(&source_protocol_addr.octets());
        packet.set_target_hardware_addr(&target_hardware_addr.0);
        packet.set_target_protocol_addr(&target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 198.18.0.1? Tell 198.18.0.254" from 52:54:00:00:00:fe.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth, ipv4, 6, 4, request
        0x52, 0x54, 0x00, 0x00, 0x00, 0xfe, 198, 18, 0, 254, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 1, // target
    ];

    const REQUEST_REPR: Repr = Repr::EthernetIpv4 {
        operation: Operation::Request,
        source_hardware_addr: EthernetAddress([0x52, 0x54, 0, 0, 0, 0xfe]),
        source_protocol_addr: Ipv4Addr::new(198, 18, 0, 254),
        target_hardware_addr: EthernetAddress::UNSPECIFIED,
        target_protocol_addr: Ipv4Addr::new(198, 18, 0, 1),
    };

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), 0x0800);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), Operation::Request);
        assert_eq!(packet.source_hardware_addr(), &[0x52, 0x54, 0, 0, 0, 0xfe]);
        assert_eq!(packet.source_protocol_addr(), &[198, 18, 0, 254]);
        assert_eq!(packet.target_hardware_addr(), &[0; 6]);
        assert_eq!(packet.target_protocol_addr(), &[198, 18, 0, 1]);
        assert_eq!(Repr::parse(&packet), Ok(REQUEST_REPR));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        REQUEST_REPR.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, REQUEST);
        assert_eq!(REQUEST_REPR.buffer_len(), 28);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..REQUEST.len() {
            let packet = Packet::new_unchecked(&REQUEST[..len]);
            assert_eq!(packet.check_len(), Err(Error::Truncated), "len {len}");
            assert_eq!(Repr::parse(&packet), Err(Error::Truncated), "len {len}");
            // Address accessors never panic, even unchecked.
            if len >= field::ADDRESSES {
                let _ = packet.target_protocol_addr();
            }
        }
    }

    #[test]
    fn impossible_lengths() {
        // hlen 255 declares a packet far longer than the buffer.
        let mut bytes = REQUEST;
        bytes[field::HLEN] = 255;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
        // Shorter declared lengths fit, but are not Ethernet/IPv4.
        let mut bytes = REQUEST;
        bytes[field::HLEN] = 2;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.source_hardware_addr(), &[0x52, 0x54]);
        assert_eq!(Repr::parse(&packet), Err(Error::Unsupported));
    }

    #[test]
    fn other_types_are_unsupported() {
        for (offset, value) in [(0usize, 6u8), (3, 0xdd)] {
            let mut bytes = REQUEST;
            bytes[offset] = value; // hardware type 0x0601 / protocol 0x08dd
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(Repr::parse(&packet), Err(Error::Unsupported));
        }
    }

    #[test]
    fn unknown_operation_round_trips() {
        let mut bytes = REQUEST;
        bytes[field::OPER].copy_from_slice(&[0, 8]); // InARP request
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        let Repr::EthernetIpv4 { operation, .. } = repr;
        assert_eq!(operation, Operation::Unknown(8));
        let mut out = [0u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }
}
