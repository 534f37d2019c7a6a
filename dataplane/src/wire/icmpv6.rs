//! ICMPv6 (RFC 4443): the message header and checksum, Neighbor
//! Solicitation and Advertisement (RFC 4861 §4.3, §4.4) with their
//! validation rules (§7.1), and Packet Too Big (RFC 4443 §3.2) with the
//! quoted TCP header it is about.
//!
//! Owns these message layouts, the Source/Target Link-Layer Address options
//! for Ethernet (RFC 4861 §4.6.1), and the IPv6-multicast-to-Ethernet
//! mapping ND needs (solicited-node groups, RFC 4291 §2.7.1; 33:33 MACs,
//! RFC 2464 §7). It keeps no neighbor cache or path MTU, decides nothing
//! about replying, and does not match a Packet Too Big against a connection
//! (RFC 5927 §4.1 asks for that; the engine holds the connections): it
//! hands the quoted addresses, ports and sequence number up for it.

use std::net::Ipv6Addr;

use super::ethernet::{self, EtherType, EthernetAddress};
use super::ipv4::Protocol;
use super::tcp::SeqNumber;
use super::{Error, Result, checksum, ipv6, ipv6ext};

/// Length of the part every message has: type, code, checksum and four
/// message-specific bytes.
pub const HEADER_LEN: usize = 8;

/// Length of a Neighbor Solicitation or Advertisement without options
/// (RFC 4861 §7.1.1: "ICMP length (derived from the IP length) is 24 or
/// more octets").
pub const ND_LEN: usize = field::ND_OPTIONS.start;

/// The IP hop limit of every ND message, sent and accepted (RFC 4861
/// §7.1: a router would have decremented it, so 255 proves on-link).
pub const ND_HOP_LIMIT: u8 = 255;

/// Length of a link-layer address option for Ethernet: one 8-octet unit
/// (RFC 4861 §4.6.1, "for IEEE 802 addresses is 1").
const LLADDR_OPTION_LEN: usize = 8;

/// ND option types (RFC 4861 §4.6).
mod option {
    pub(super) const SOURCE_LLADDR: u8 = 1;
    pub(super) const TARGET_LLADDR: u8 = 2;
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    /// Neighbor Advertisement: R, S, O and 29 reserved bits; Neighbor
    /// Solicitation: 32 reserved bits.
    pub(super) const ND_FLAGS: usize = 4;
    pub(super) const ND_RESERVED: Range<usize> = 4..8;
    pub(super) const TARGET: Range<usize> = 8..24;
    pub(super) const ND_OPTIONS: RangeFrom<usize> = 24..;
    /// Packet Too Big: the next-hop MTU and as much of the invoking packet
    /// as fits.
    pub(super) const MTU: Range<usize> = 4..8;
    pub(super) const INVOKING: RangeFrom<usize> = 8..;
}

/// The message type (RFC 4443 §2.1; RFC 4861 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// Destination Unreachable, 1.
    DstUnreachable,
    /// Packet Too Big, 2.
    PacketTooBig,
    /// Time Exceeded, 3.
    TimeExceeded,
    /// Parameter Problem, 4.
    ParamProblem,
    /// Echo Request, 128.
    EchoRequest,
    /// Echo Reply, 129.
    EchoReply,
    /// Router Solicitation, 133.
    RouterSolicit,
    /// Router Advertisement, 134.
    RouterAdvert,
    /// Neighbor Solicitation, 135.
    NeighborSolicit,
    /// Neighbor Advertisement, 136.
    NeighborAdvert,
    /// Redirect, 137.
    Redirect,
    /// Anything else, raw.
    Unknown(u8),
}

impl Message {
    /// Whether this is an error message (types 0 to 127, RFC 4443 §2.1).
    #[inline]
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

impl From<u8> for Message {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            1 => Message::DstUnreachable,
            2 => Message::PacketTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    #[inline]
    fn from(value: Message) -> Self {
        match value {
            Message::DstUnreachable => 1,
            Message::PacketTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::Unknown(other) => other,
        }
    }
}

/// The R, S and O bits of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NdiscFlags(pub u8);

impl NdiscFlags {
    /// Router: the sender is a router.
    pub const ROUTER: NdiscFlags = NdiscFlags(0x80);
    /// Solicited: sent in response to a Neighbor Solicitation.
    pub const SOLICITED: NdiscFlags = NdiscFlags(0x40);
    /// Override: update a cached link-layer address.
    pub const OVERRIDE: NdiscFlags = NdiscFlags(0x20);
    /// No flag.
    pub const EMPTY: NdiscFlags = NdiscFlags(0);
    /// The three defined bits; the other 29 are reserved (sent as zero,
    /// ignored on receipt).
    const MASK: u8 = 0xe0;

    /// Whether every flag of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: NdiscFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the flags of `other` added.
    #[inline]
    #[must_use]
    pub const fn union(self, other: NdiscFlags) -> NdiscFlags {
        NdiscFlags(self.0 | other.0)
    }
}

impl core::ops::BitOr for NdiscFlags {
    type Output = NdiscFlags;
    #[inline]
    fn bitor(self, rhs: NdiscFlags) -> NdiscFlags {
        self.union(rhs)
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1):
/// `ff02::1:ff00:0/104` with the low 24 bits of `addr`.
#[inline]
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let low = u128::from(addr) & 0x00ff_ffff;
    Ipv6Addr::from(u128::from(SOLICITED_NODE_PREFIX) | low)
}

/// `ff02::1:ff00:0`, the /104 prefix of solicited-node addresses.
const SOLICITED_NODE_PREFIX: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0);

/// Whether `addr` is a solicited-node multicast address.
#[inline]
pub fn is_solicited_node(addr: Ipv6Addr) -> bool {
    u128::from(addr) >> 24 == u128::from(SOLICITED_NODE_PREFIX) >> 24
}

/// The Ethernet destination of an IPv6 multicast packet (RFC 2464 §7):
/// 33:33 followed by the last four octets of the group. Meaningful only for
/// a multicast `group`.
#[inline]
pub fn multicast_mac(group: Ipv6Addr) -> EthernetAddress {
    let o = group.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A zero-copy view of an ICMPv6 message (the upper-layer payload of an
/// IPv6 packet, after any extension headers).
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

    /// [`Error::Truncated`] if the buffer is shorter than [`HEADER_LEN`].
    /// Longer minimums per type (24 for ND) are checked by the `Repr`s;
    /// the accessors that need them return `None` or empty instead.
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

    /// The message type.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The Neighbor Advertisement flags (byte 4; meaningless for other
    /// types). Reserved bits are masked off.
    #[inline]
    pub fn nd_flags(&self) -> NdiscFlags {
        NdiscFlags(self.buffer.as_ref()[field::ND_FLAGS] & NdiscFlags::MASK)
    }

    /// The ND target address; `None` if the message is shorter than
    /// [`ND_LEN`].
    #[inline]
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        let bytes: [u8; 16] = self.buffer.as_ref().get(field::TARGET)?.try_into().ok()?;
        Some(Ipv6Addr::from(bytes))
    }

    /// The ND options (empty if none or if the message is shorter than
    /// [`ND_LEN`]).
    #[inline]
    pub fn nd_options(&self) -> &[u8] {
        self.buffer.as_ref().get(field::ND_OPTIONS).unwrap_or(&[])
    }

    /// The Packet Too Big MTU (bytes 4 to 8; meaningless for other types).
    #[inline]
    pub fn mtu(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::MTU];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The invoking packet quoted by an error message (from byte 8).
    #[inline]
    pub fn invoking(&self) -> &[u8] {
        self.buffer.as_ref().get(field::INVOKING).unwrap_or(&[])
    }

    /// Whether the checksum over the IPv6 pseudo header (next header 58,
    /// RFC 4443 §2.3) and the whole message verifies. `src` and `dst` are
    /// the IPv6 header's (the final destination, with a Routing header).
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        message_sum(self.buffer.as_ref(), src, dst).is_some_and(checksum::verifies)
    }
}

/// The accumulator of pseudo header and message, or `None` for a message
/// too long for the pseudo header's 32-bit length.
#[inline]
fn message_sum(data: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Option<u64> {
    let len = u32::try_from(data.len()).ok()?;
    let pseudo = checksum::pseudo_header_ipv6(src, dst, u8::from(Protocol::ICMPV6), len);
    Some(checksum::add(pseudo, checksum::sum(data)))
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = u8::from(value);
    }

    /// Sets the code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Stores a checksum value as is.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Neighbor Advertisement flags and clears the reserved bits
    /// (for a Neighbor Solicitation, pass [`NdiscFlags::EMPTY`]).
    #[inline]
    pub fn set_nd_flags(&mut self, value: NdiscFlags) {
        let bytes = &mut self.buffer.as_mut()[field::ND_RESERVED];
        bytes.fill(0);
        bytes[0] = value.0 & NdiscFlags::MASK;
    }

    /// Sets the ND target address.
    ///
    /// # Panics
    /// If the buffer is shorter than [`ND_LEN`].
    #[inline]
    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&value.octets());
    }

    /// The ND options, mutable (empty if the buffer is shorter).
    #[inline]
    pub fn nd_options_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::ND_OPTIONS)
            .unwrap_or(&mut [])
    }

    /// Sets the Packet Too Big MTU.
    #[inline]
    pub fn set_mtu(&mut self, value: u32) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&value.to_be_bytes());
    }

    /// The invoking packet, mutable (empty if the buffer is shorter).
    #[inline]
    pub fn invoking_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::INVOKING)
            .unwrap_or(&mut [])
    }

    /// Computes and stores the checksum over the whole buffer.
    ///
    /// # Panics
    /// If the buffer is shorter than 4 bytes or longer than `u32::MAX`.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let acc = message_sum(self.buffer.as_ref(), src, dst).expect("ICMPv6 message over 4 GiB");
        self.set_checksum(checksum::finish(acc));
    }
}

// ---------------------------------------------------------------------------
// Neighbor Discovery
// ---------------------------------------------------------------------------

/// A validated Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdiscRepr {
    /// Neighbor Solicitation (RFC 4861 §4.3).
    NeighborSolicit {
        /// The address whose link-layer address is asked for (or, from
        /// the unspecified address, checked for duplicates).
        target_addr: Ipv6Addr,
        /// The Source Link-Layer Address option: the sender's MAC.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor Advertisement (RFC 4861 §4.4).
    NeighborAdvert {
        /// R, S and O.
        flags: NdiscFlags,
        /// The address advertised.
        target_addr: Ipv6Addr,
        /// The Target Link-Layer Address option: the target's MAC.
        lladdr: Option<EthernetAddress>,
    },
}

impl NdiscRepr {
    /// Parses and validates a Neighbor Solicitation or Advertisement that
    /// arrived in the IPv6 packet `ip` (the message is the upper-layer
    /// payload after any extension headers). Checks lengths itself, so it
    /// never panics. In order (RFC 4861 §7.1.1, §7.1.2):
    /// - message shorter than 8 bytes: [`Error::Truncated`];
    /// - IP hop limit ≠ 255: [`Error::Malformed`];
    /// - if `verify_checksum`: [`Error::Checksum`];
    /// - another message type: [`Error::Unsupported`];
    /// - code ≠ 0: [`Error::Malformed`];
    /// - message shorter than [`ND_LEN`]: [`Error::Truncated`];
    /// - multicast target: [`Error::Malformed`];
    /// - an option of length 0 or running past the message, or a
    ///   link-layer address option of this message's kind whose length is
    ///   not one unit (not an Ethernet address): [`Error::Malformed`];
    /// - Solicitation from the unspecified address (duplicate address
    ///   detection) to anything but a solicited-node group, or with a
    ///   Source Link-Layer Address option: [`Error::Malformed`];
    /// - Advertisement to a multicast address with S set:
    ///   [`Error::Malformed`].
    ///
    /// Options other than the link-layer address of this message's kind
    /// are skipped (RFC 4861 §4.6: "silently ignore any options they do
    /// not recognize"); of repeated link-layer address options the first
    /// is used.
    pub fn parse<T: AsRef<[u8]>>(
        ip: &ipv6::Repr,
        packet: &Packet<T>,
        verify_checksum: bool,
    ) -> Result<NdiscRepr> {
        packet.check_len()?;
        if ip.hop_limit != ND_HOP_LIMIT {
            return Err(Error::Malformed);
        }
        if verify_checksum && !packet.verify_checksum(ip.src_addr, ip.dst_addr) {
            return Err(Error::Checksum);
        }
        let wanted = match packet.msg_type() {
            Message::NeighborSolicit => option::SOURCE_LLADDR,
            Message::NeighborAdvert => option::TARGET_LLADDR,
            _ => return Err(Error::Unsupported),
        };
        if packet.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        let target_addr = packet.target_addr().ok_or(Error::Truncated)?;
        if target_addr.is_multicast() {
            return Err(Error::Malformed);
        }
        let lladdr = lladdr_option(packet.nd_options(), wanted)?;
        if wanted == option::SOURCE_LLADDR {
            if ip.src_addr.is_unspecified() && (!is_solicited_node(ip.dst_addr) || lladdr.is_some())
            {
                return Err(Error::Malformed);
            }
            Ok(NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            })
        } else {
            let flags = packet.nd_flags();
            if ip.dst_addr.is_multicast() && flags.contains(NdiscFlags::SOLICITED) {
                return Err(Error::Malformed);
            }
            Ok(NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            })
        }
    }

    /// The message length: [`ND_LEN`], plus 8 with a link-layer address.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        let lladdr = match self {
            NdiscRepr::NeighborSolicit { lladdr, .. }
            | NdiscRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        if lladdr.is_some() {
            ND_LEN + LLADDR_OPTION_LEN
        } else {
            ND_LEN
        }
    }

    /// Writes the message and its checksum for an IPv6 packet from `src`
    /// to `dst`.
    ///
    /// # Panics
    /// If the buffer is shorter than [`NdiscRepr::buffer_len`]. The
    /// checksum covers the whole buffer: pass exactly that length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) {
        let (msg_type, flags, target_addr, lladdr, kind) = match *self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => (
                Message::NeighborSolicit,
                NdiscFlags::EMPTY,
                target_addr,
                lladdr,
                option::SOURCE_LLADDR,
            ),
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                lladdr,
            } => (
                Message::NeighborAdvert,
                flags,
                target_addr,
                lladdr,
                option::TARGET_LLADDR,
            ),
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(0);
        packet.set_nd_flags(flags);
        packet.set_target_addr(target_addr);
        if let Some(mac) = lladdr {
            let opt = &mut packet.nd_options_mut()[..LLADDR_OPTION_LEN];
            opt[0] = kind;
            opt[1] = (LLADDR_OPTION_LEN / 8) as u8;
            opt[2..].copy_from_slice(&mac.0);
        }
        packet.fill_checksum(src, dst);
    }

    /// Writes a whole frame: Ethernet (IPv6), the IPv6 header (hop limit
    /// 255, next header ICMPv6, no extension headers) and the message.
    /// Returns the frame length; [`Error::Truncated`] if `buf` is shorter.
    ///
    /// For a solicitation to resolve `target`, `dst_ip` is
    /// [`solicited_node`]`(target)` and `dst_mac` its [`multicast_mac`].
    pub fn emit_frame(
        &self,
        buf: &mut [u8],
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src_ip: Ipv6Addr,
        dst_ip: Ipv6Addr,
    ) -> Result<usize> {
        let len = self.buffer_len();
        let frame_len = ethernet::HEADER_LEN + ipv6::HEADER_LEN + len;
        let frame = buf.get_mut(..frame_len).ok_or(Error::Truncated)?;
        let (eth, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
        let (ip, message) = rest.split_at_mut(ipv6::HEADER_LEN);
        ethernet::Repr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: EtherType::IPV6,
        }
        .emit(&mut ethernet::Frame::new_unchecked(eth));
        ipv6::Repr {
            src_addr: src_ip,
            dst_addr: dst_ip,
            next_header: Protocol::ICMPV6,
            payload_len: len,
            hop_limit: ND_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(ip));
        self.emit(&mut Packet::new_unchecked(message), src_ip, dst_ip);
        Ok(frame_len)
    }
}

/// The first link-layer address option of type `wanted` in `options`,
/// after checking every option's length (RFC 4861 §4.6: length in 8-octet
/// units, 0 is invalid and the packet is discarded).
fn lladdr_option(mut options: &[u8], wanted: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while let [kind, units, ..] = *options {
        let len = usize::from(units) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        let opt = options.get(..len).ok_or(Error::Malformed)?;
        if kind == wanted && found.is_none() {
            if len != LLADDR_OPTION_LEN {
                return Err(Error::Malformed);
            }
            found = EthernetAddress::from_bytes(&opt[2..]);
        }
        options = &options[len..];
    }
    // A single trailing byte cannot be an option.
    if options.is_empty() {
        Ok(found)
    } else {
        Err(Error::Malformed)
    }
}

// ---------------------------------------------------------------------------
// Packet Too Big
// ---------------------------------------------------------------------------

/// What a Packet Too Big quotes of the TCP segment that caused it: enough
/// to find the connection and to check the sequence number against it
/// (RFC 5927 §4.1). Addresses and ports are as sent, so `src_addr` is
/// ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvokingTcp {
    /// Source of the quoted packet (our address).
    pub src_addr: Ipv6Addr,
    /// Destination of the quoted packet (the peer).
    pub dst_addr: Ipv6Addr,
    /// Quoted TCP source port (ours).
    pub src_port: u16,
    /// Quoted TCP destination port (the peer's).
    pub dst_port: u16,
    /// Quoted SEG.SEQ.
    pub seq: SeqNumber,
}

/// Bytes of the TCP header a quote must hold: ports and sequence number.
const QUOTED_TCP_LEN: usize = 8;

impl InvokingTcp {
    /// Parses a quoted packet: an IPv6 header (its payload length is the
    /// original's and is not checked against the quote), extension headers
    /// walked as in `ipv6_walk`, and the first 8 bytes of a TCP header.
    /// [`Error::Truncated`] if the quote stops before those; a quoted
    /// version other than 6 is [`Error::Malformed`]; a chain that does not
    /// end in TCP is [`Error::Unsupported`].
    pub fn parse(quote: &[u8]) -> Result<InvokingTcp> {
        if quote.len() < ipv6::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let ip = ipv6::Packet::new_unchecked(quote);
        if ip.version() != 6 {
            return Err(Error::Malformed);
        }
        let after = &quote[ipv6::HEADER_LEN..];
        let chain = ipv6ext::walk(ip.next_header(), after)?;
        if chain.end != ipv6ext::ChainEnd::Upper(Protocol::Tcp) {
            return Err(Error::Unsupported);
        }
        let Some(tcp) = chain.upper(after).first_chunk::<QUOTED_TCP_LEN>() else {
            return Err(Error::Truncated);
        };
        Ok(InvokingTcp {
            src_addr: ip.src_addr(),
            dst_addr: ip.dst_addr(),
            src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
            dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
            seq: SeqNumber(u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]])),
        })
    }

    /// The length [`InvokingTcp::emit`] writes: an IPv6 header and 8 bytes
    /// of TCP.
    pub const QUOTE_LEN: usize = ipv6::HEADER_LEN + QUOTED_TCP_LEN;

    /// Writes the shortest quote [`InvokingTcp::parse`] accepts (for test
    /// peers): an IPv6 header claiming a 20-byte segment, hop limit 64, and
    /// the first 8 bytes of its TCP header.
    ///
    /// # Panics
    /// If `buf` is shorter than [`InvokingTcp::QUOTE_LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        ipv6::Repr {
            src_addr: self.src_addr,
            dst_addr: self.dst_addr,
            next_header: Protocol::Tcp,
            payload_len: 20,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(
            &mut buf[..ipv6::HEADER_LEN],
        ));
        let tcp = &mut buf[ipv6::HEADER_LEN..Self::QUOTE_LEN];
        tcp[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.0.to_be_bytes());
    }
}

/// A validated Packet Too Big about one of our TCP segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketTooBigRepr {
    /// The MTU as carried, unclamped (see [`PacketTooBigRepr::path_mtu`]).
    pub mtu: u32,
    /// The segment it is about.
    pub invoking: InvokingTcp,
}

impl PacketTooBigRepr {
    /// Parses a Packet Too Big that arrived in the IPv6 packet `ip`. Checks
    /// lengths itself, so it never panics. In order:
    /// - message shorter than 8 bytes: [`Error::Truncated`];
    /// - if `verify_checksum`: [`Error::Checksum`];
    /// - another message type: [`Error::Unsupported`];
    /// - the quote as in [`InvokingTcp::parse`].
    ///
    /// The code is not checked (RFC 4443 §3.2: "set to 0 by the originator
    /// and ignored by the receiver"), nor the MTU: an MTU below 1280 is
    /// kept as carried and clamped by [`PacketTooBigRepr::path_mtu`]; one
    /// above the current estimate is the engine's to ignore (RFC 8201 §4).
    pub fn parse<T: AsRef<[u8]>>(
        ip: &ipv6::Repr,
        packet: &Packet<T>,
        verify_checksum: bool,
    ) -> Result<PacketTooBigRepr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(ip.src_addr, ip.dst_addr) {
            return Err(Error::Checksum);
        }
        if packet.msg_type() != Message::PacketTooBig {
            return Err(Error::Unsupported);
        }
        Ok(PacketTooBigRepr {
            mtu: packet.mtu(),
            invoking: InvokingTcp::parse(packet.invoking())?,
        })
    }

    /// The path MTU to use: the carried MTU, never below the IPv6 minimum
    /// of 1280 (RFC 8201 §4: "A node MUST NOT reduce its estimate of the
    /// Path MTU below the IPv6 minimum link MTU", even when told a smaller
    /// next-hop MTU).
    #[inline]
    pub fn path_mtu(&self) -> u32 {
        self.mtu.max(ipv6::MIN_MTU)
    }

    /// The message length [`PacketTooBigRepr::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + InvokingTcp::QUOTE_LEN
    }

    /// Writes the message (code 0, the shortest quote) and its checksum
    /// for an IPv6 packet from `src` to `dst`; for test peers.
    ///
    /// # Panics
    /// If the buffer is shorter than [`PacketTooBigRepr::buffer_len`]. The
    /// checksum covers the whole buffer: pass exactly that length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) {
        packet.set_msg_type(Message::PacketTooBig);
        packet.set_msg_code(0);
        packet.set_mtu(self.mtu);
        self.invoking.emit(packet.invoking_mut());
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const HOST2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);
    const MAC1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    /// HOST2 asks for HOST1's MAC: to ff02::1:ff00:1, SLLA 02:00:00:00:00:02.
    /// Checksum 0x1c27 computed independently (Python).
    const NS: [u8; 32] = [
        135, 0, 0x1c, 0x27, 0, 0, 0, 0, // type, code, checksum, reserved
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // target
        1, 1, 2, 0, 0, 0, 0, 2, // source link-layer address
    ];

    /// HOST1 answers HOST2: S and O, TLLA 02:00:00:00:00:01. Checksum 0x8a73
    /// computed independently (Python).
    const NA: [u8; 32] = [
        136, 0, 0x8a, 0x73, 0x60, 0, 0, 0, // type, code, checksum, S|O
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // target
        2, 1, 2, 0, 0, 0, 0, 1, // target link-layer address
    ];

    /// A router tells HOST1 that its 1440-byte segment to HOST2 (80 → 40000,
    /// SEQ 0x01020304) met a 1280-byte link; the whole TCP header is
    /// quoted. Checksum 0xd6e5 computed independently (Python).
    const PTB: [u8; 68] = [
        2, 0, 0xd6, 0xe5, 0, 0, 0x05, 0x00, // type, code, checksum, MTU 1280
        0x60, 0, 0, 0, 0x05, 0xa0, 6, 64, // quoted IPv6: length 1440, TCP
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst
        0, 80, 0x9c, 0x40, 1, 2, 3, 4, 0, 0, 0, 9, 0x50, 0x10, 0xfa, 0xf0, 0x12, 0x34, 0, 0,
    ];

    fn ip(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> ipv6::Repr {
        ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: Protocol::ICMPV6,
            payload_len: len,
            hop_limit: ND_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    fn ns_ip() -> ipv6::Repr {
        ip(HOST2, solicited_node(HOST1), NS.len())
    }

    fn na_ip() -> ipv6::Repr {
        ip(HOST1, HOST2, NA.len())
    }

    const NS_REPR: NdiscRepr = NdiscRepr::NeighborSolicit {
        target_addr: HOST1,
        lladdr: Some(MAC2),
    };

    const NA_REPR: NdiscRepr = NdiscRepr::NeighborAdvert {
        flags: NdiscFlags(0x60),
        target_addr: HOST1,
        lladdr: Some(MAC1),
    };

    /// `bytes` changed by `f`, checksum refilled for `ip`.
    fn with<const N: usize>(
        mut bytes: [u8; N],
        ip: &ipv6::Repr,
        f: impl FnOnce(&mut [u8]),
    ) -> [u8; N] {
        f(&mut bytes);
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(ip.src_addr, ip.dst_addr);
        bytes
    }

    #[test]
    fn multicast_helpers() {
        let node = solicited_node(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0x12, 0x3456, 0x789a));
        assert_eq!(node, "ff02::1:ff56:789a".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node(node) && node.is_multicast());
        assert!(!is_solicited_node("ff02::1:fe56:789a".parse().unwrap()));
        assert!(!is_solicited_node("ff02::1".parse().unwrap()));
        assert!(!is_solicited_node(HOST1));
        assert_eq!(
            multicast_mac(node),
            EthernetAddress([0x33, 0x33, 0xff, 0x56, 0x78, 0x9a])
        );
        assert!(multicast_mac(node).is_multicast());
        assert_eq!(
            multicast_mac("ff02::1".parse().unwrap()),
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1])
        );
    }

    #[test]
    fn message_types_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(Message::from(v)), v);
            assert_eq!(Message::from(v).is_error(), v < 128);
        }
    }

    #[test]
    fn deconstruct_ns_and_na() {
        let packet = Packet::new_checked(&NS[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::NeighborSolicit);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0x1c27);
        assert_eq!(packet.target_addr(), Some(HOST1));
        assert_eq!(packet.nd_options(), &NS[24..]);
        assert!(packet.verify_checksum(HOST2, solicited_node(HOST1)));
        assert!(!packet.verify_checksum(HOST1, solicited_node(HOST1)));
        assert_eq!(NdiscRepr::parse(&ns_ip(), &packet, true), Ok(NS_REPR));

        let packet = Packet::new_checked(&NA[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::NeighborAdvert);
        assert_eq!(
            packet.nd_flags(),
            NdiscFlags::SOLICITED | NdiscFlags::OVERRIDE
        );
        assert!(!packet.nd_flags().contains(NdiscFlags::ROUTER));
        assert_eq!(NdiscRepr::parse(&na_ip(), &packet, true), Ok(NA_REPR));
    }

    #[test]
    fn construct_ns_and_na() {
        for (repr, ip, expected) in [(NS_REPR, ns_ip(), NS), (NA_REPR, na_ip(), NA)] {
            assert_eq!(repr.buffer_len(), 32);
            let mut bytes = [0xa5u8; 32];
            repr.emit(
                &mut Packet::new_unchecked(&mut bytes[..]),
                ip.src_addr,
                ip.dst_addr,
            );
            assert_eq!(bytes, expected);
        }
        let bare = NdiscRepr::NeighborSolicit {
            target_addr: HOST1,
            lladdr: None,
        };
        assert_eq!(bare.buffer_len(), ND_LEN);
        let mut bytes = [0u8; ND_LEN];
        bare.emit(&mut Packet::new_unchecked(&mut bytes[..]), HOST2, HOST1);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            NdiscRepr::parse(&ip(HOST2, HOST1, ND_LEN), &packet, true),
            Ok(bare)
        );
    }

    #[test]
    fn emit_frame() {
        let dst = solicited_node(HOST1);
        let mut buf = [0u8; 100];
        let len = NS_REPR
            .emit_frame(&mut buf, MAC2, multicast_mac(dst), HOST2, dst)
            .unwrap();
        assert_eq!(len, 14 + 40 + 32);
        assert_eq!(buf[..6], [0x33, 0x33, 0xff, 0, 0, 1]);
        assert_eq!(buf[12..14], [0x86, 0xdd]);
        let ip = ipv6::Packet::new_checked(&buf[14..len]).unwrap();
        let ip = ipv6::Repr::parse(&ip).unwrap();
        assert_eq!(ip, ns_ip());
        assert_eq!(buf[54..len], NS);
        assert_eq!(
            NS_REPR.emit_frame(&mut buf[..len - 1], MAC2, MAC1, HOST2, dst),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn nd_validation() {
        let parse = |ip: &ipv6::Repr, bytes: &[u8]| {
            NdiscRepr::parse(ip, &Packet::new_unchecked(bytes), true)
        };
        // Hop limit not 255: forwarded, so not from a neighbor.
        let routed = ipv6::Repr {
            hop_limit: 254,
            ..ns_ip()
        };
        assert_eq!(parse(&routed, &NS), Err(Error::Malformed));
        // Bad checksum.
        let mut bytes = NS;
        bytes[31] ^= 1;
        assert_eq!(parse(&ns_ip(), &bytes), Err(Error::Checksum));
        // Other types.
        let echo = with(NS, &ns_ip(), |b| b[0] = 128);
        assert_eq!(parse(&ns_ip(), &echo), Err(Error::Unsupported));
        // Code not 0.
        let coded = with(NS, &ns_ip(), |b| b[1] = 1);
        assert_eq!(parse(&ns_ip(), &coded), Err(Error::Malformed));
        // Shorter than 24 (checksum valid over what there is).
        for len in [0usize, 7] {
            assert_eq!(parse(&ns_ip(), &NS[..len]), Err(Error::Truncated), "{len}");
        }
        let mut short = [0u8; 23];
        short[..8].copy_from_slice(&NS[..8]);
        Packet::new_unchecked(&mut short[..]).fill_checksum(HOST2, solicited_node(HOST1));
        assert_eq!(parse(&ns_ip(), &short), Err(Error::Truncated));
        // Multicast target.
        let multi = with(NS, &ns_ip(), |b| b[8] = 0xff);
        assert_eq!(parse(&ns_ip(), &multi), Err(Error::Malformed));
        // Option length 0, past the end, lladdr of two units, one stray byte.
        for (at, value) in [(25usize, 0u8), (25, 2)] {
            let bad = with(NS, &ns_ip(), |b| b[at] = value);
            assert_eq!(parse(&ns_ip(), &bad), Err(Error::Malformed), "{at} {value}");
        }
        let ip40 = ip(HOST2, solicited_node(HOST1), 40);
        let mut long = [0u8; 40];
        long[..24].copy_from_slice(&NS[..24]);
        long[24..26].copy_from_slice(&[1, 2]);
        let long = with(long, &ip40, |_| {});
        assert_eq!(parse(&ip40, &long), Err(Error::Malformed));
        let ip33 = ip(HOST2, solicited_node(HOST1), 33);
        let mut stray = [0u8; 33];
        stray[..32].copy_from_slice(&NS);
        let stray = with(stray, &ip33, |_| {});
        assert_eq!(parse(&ip33, &stray), Err(Error::Malformed));
    }

    #[test]
    fn nd_options_skipped_and_first_wins() {
        // A TLLA (ignored in a solicitation), an unknown option (type 14,
        // nonce, 1 unit), then two SLLAs: the first counts.
        let ip56 = ip(HOST2, solicited_node(HOST1), 56);
        let mut bytes = [0u8; 56];
        bytes[..24].copy_from_slice(&NS[..24]);
        bytes[24..32].copy_from_slice(&[2, 1, 9, 9, 9, 9, 9, 9]);
        bytes[32..40].copy_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        bytes[40..48].copy_from_slice(&[1, 1, 2, 0, 0, 0, 0, 7]);
        bytes[48..56].copy_from_slice(&[1, 1, 2, 0, 0, 0, 0, 8]);
        let bytes = with(bytes, &ip56, |_| {});
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            NdiscRepr::parse(&ip56, &packet, true),
            Ok(NdiscRepr::NeighborSolicit {
                target_addr: HOST1,
                lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 7])),
            })
        );
    }

    #[test]
    fn duplicate_address_detection() {
        // From ::, to the solicited-node group, no SLLA: valid.
        let dad = ip(Ipv6Addr::UNSPECIFIED, solicited_node(HOST1), ND_LEN);
        let mut bytes = [0u8; ND_LEN];
        NdiscRepr::NeighborSolicit {
            target_addr: HOST1,
            lladdr: None,
        }
        .emit(
            &mut Packet::new_unchecked(&mut bytes[..]),
            dad.src_addr,
            dad.dst_addr,
        );
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(NdiscRepr::parse(&dad, &packet, true).is_ok());
        // From :: to a unicast address: invalid.
        let unicast = ip(Ipv6Addr::UNSPECIFIED, HOST1, ND_LEN);
        let bytes = with(bytes, &unicast, |_| {});
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            NdiscRepr::parse(&unicast, &packet, true),
            Err(Error::Malformed)
        );
        // From :: with an SLLA: invalid.
        let dad32 = ip(Ipv6Addr::UNSPECIFIED, solicited_node(HOST1), 32);
        let bytes = with(NS, &dad32, |_| {});
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            NdiscRepr::parse(&dad32, &packet, true),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn advert_to_multicast_must_not_be_solicited() {
        let all_nodes = ip(HOST1, "ff02::1".parse().unwrap(), 32);
        let bytes = with(NA, &all_nodes, |_| {});
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            NdiscRepr::parse(&all_nodes, &packet, true),
            Err(Error::Malformed)
        );
        // Unsolicited (O only) is fine; reserved bits are ignored.
        let bytes = with(NA, &all_nodes, |b| {
            b[4..8].copy_from_slice(&[0x20, 0xff, 0, 1])
        });
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            NdiscRepr::parse(&all_nodes, &packet, true),
            Ok(NdiscRepr::NeighborAdvert {
                flags: NdiscFlags::OVERRIDE,
                target_addr: HOST1,
                lladdr: Some(MAC1),
            })
        );
    }

    fn ptb_ip() -> ipv6::Repr {
        ipv6::Repr {
            hop_limit: 60,
            ..ip(ROUTER, HOST1, PTB.len())
        }
    }

    const INVOKING: InvokingTcp = InvokingTcp {
        src_addr: HOST1,
        dst_addr: HOST2,
        src_port: 80,
        dst_port: 40000,
        seq: SeqNumber(0x0102_0304),
    };

    #[test]
    fn deconstruct_packet_too_big() {
        let packet = Packet::new_checked(&PTB[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::PacketTooBig);
        assert!(packet.msg_type().is_error());
        assert_eq!(packet.mtu(), 1280);
        assert_eq!(packet.invoking(), &PTB[8..]);
        let repr = PacketTooBigRepr::parse(&ptb_ip(), &packet, true).unwrap();
        assert_eq!(
            repr,
            PacketTooBigRepr {
                mtu: 1280,
                invoking: INVOKING
            }
        );
        assert_eq!(repr.path_mtu(), 1280);
        // Any hop limit: a PTB comes from a router, not a neighbor.
        let mut bad = PTB;
        bad[67] = 1;
        let packet = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(
            PacketTooBigRepr::parse(&ptb_ip(), &packet, true),
            Err(Error::Checksum)
        );
        let packet = Packet::new_checked(&NA[..]).unwrap();
        assert_eq!(
            PacketTooBigRepr::parse(&na_ip(), &packet, true),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn packet_too_big_mtu_is_clamped() {
        for (mtu, path) in [
            (0u32, 1280u32),
            (576, 1280),
            (1279, 1280),
            (1280, 1280),
            (1500, 1500),
            (u32::MAX, u32::MAX),
        ] {
            let repr = PacketTooBigRepr {
                mtu,
                invoking: INVOKING,
            };
            assert_eq!(repr.path_mtu(), path, "{mtu}");
            let mut bytes = [0u8; 56];
            assert_eq!(repr.buffer_len(), 56);
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), ROUTER, HOST1);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            let ip = ip(ROUTER, HOST1, 56);
            assert_eq!(PacketTooBigRepr::parse(&ip, &packet, true), Ok(repr));
        }
    }

    #[test]
    fn packet_too_big_quotes() {
        let parse =
            |bytes: &[u8]| PacketTooBigRepr::parse(&ptb_ip(), &Packet::new_unchecked(bytes), false);
        // The quote ends anywhere before the TCP ports and SEQ: truncated.
        for len in 8..(8 + 40 + 8) {
            assert_eq!(parse(&PTB[..len]), Err(Error::Truncated), "{len}");
        }
        assert!(parse(&PTB[..56]).is_ok());
        // Quoted version 4: malformed; quoted UDP: not ours.
        let mut bytes = PTB;
        bytes[8] = 0x40;
        assert_eq!(parse(&bytes), Err(Error::Malformed));
        let mut bytes = PTB;
        bytes[14] = 17;
        assert_eq!(parse(&bytes), Err(Error::Unsupported));
        // A quoted Destination Options header is walked over.
        let mut quoted = Vec::from(&PTB[..48]);
        quoted[14] = 60;
        quoted.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        quoted.extend_from_slice(&PTB[48..]);
        let repr = parse(&quoted).unwrap();
        assert_eq!(repr.invoking, INVOKING);
    }
}
