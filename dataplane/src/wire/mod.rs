//! Wire formats: Ethernet II, ARP, IPv4, IPv6 (with its extension header
//! walk), TCP and ICMPv6 (Neighbor Discovery, Packet Too Big), plus the fast
//! RST templates for both families.
//!
//! Every protocol comes in two layers, smoltcp style:
//! - a zero-copy view (`Packet<T: AsRef<[u8]>>`, `Frame` for Ethernet) with
//!   `new_unchecked`, `new_checked` (= `new_unchecked` + `check_len`), field
//!   accessors and, when `T: AsMut<[u8]>`, setters. Once `check_len` has
//!   succeeded no accessor panics; variable-length accessors (options,
//!   payload) never panic at all;
//! - a validated value (`Repr`) with `parse`, `emit` and `buffer_len`.
//!
//! Parse failures are a unit [`Error`]: `Copy`, no allocation, no logging, so
//! the engine counts drops per cause ([`Error::index`]). This module owns byte
//! layouts and checksums only; it keeps no state, reads no clock and knows
//! nothing of connections, tables or ports.

pub mod checksum;

mod arp;
mod ethernet;
mod icmpv6;
mod ipv4;
mod ipv6;
mod ipv6ext;
mod rst;
mod tcp;

use std::fmt;

pub use arp::{
    HEADER_LEN as ARP_LEN, Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr,
};
pub use ethernet::{
    EtherType, EthernetAddress, Frame as EthernetFrame, HEADER_LEN as ETHERNET_HEADER_LEN,
    Repr as EthernetRepr,
};
pub use icmpv6::{
    HEADER_LEN as ICMPV6_HEADER_LEN, InvokingTcp as Icmpv6InvokingTcp, Message as Icmpv6Message,
    ND_HOP_LIMIT, ND_LEN, NdiscFlags, NdiscRepr, Packet as Icmpv6Packet, PacketTooBigRepr,
    is_solicited_node, multicast_mac as ipv6_multicast_mac, solicited_node,
};
pub use ipv4::{
    HEADER_LEN as IPV4_HEADER_LEN, Packet as Ipv4Packet, Protocol as IpProtocol, Repr as Ipv4Repr,
};
pub use ipv6::{
    HEADER_LEN as IPV6_HEADER_LEN, MAX_FLOW_LABEL as IPV6_MAX_FLOW_LABEL, MIN_MTU as IPV6_MIN_MTU,
    Packet as Ipv6Packet, Repr as Ipv6Repr,
};
pub use ipv6ext::{
    Chain as Ipv6Chain, ChainEnd as Ipv6ChainEnd, MAX_CHAIN_LEN as IPV6_MAX_CHAIN_LEN,
    MAX_HEADERS as IPV6_MAX_EXT_HEADERS, walk as ipv6_walk, walk_options as ipv6_walk_options,
};
pub use rst::{
    ControlSegment, FRAME_LEN as RST_FRAME_LEN, FRAME_LEN_V6 as RST_FRAME_LEN_V6, RstTemplate,
    RstTemplateV6, TTL as RST_TTL,
};
pub use tcp::{
    Flags as TcpFlags, HEADER_LEN as TCP_HEADER_LEN, MAX_WINDOW_SHIFT, Options as TcpOptions,
    Packet as TcpPacket, PseudoHeader as TcpPseudoHeader, Repr as TcpRepr, SackBlocks, SeqNumber,
};

/// Why a frame could not be parsed or built. One variant per drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than a header or a length field says.
    Truncated,
    /// A field holds a value the protocol forbids (bad IHL, data offset,
    /// option length, version, port 0, ...).
    Malformed,
    /// A header or segment checksum did not verify.
    Checksum,
    /// An IPv4 fragment (MF set or offset non-zero) or an IPv6 Fragment
    /// header that is not an atomic fragment: lingerd does not reassemble
    /// (RFC 791 §3.2 leaves reassembly to hosts that want it).
    Fragmented,
    /// An IPv4 header with options (IHL > 5), or an IPv6 option that must
    /// not be skipped (RFC 8200 §4.2: action bits other than `00`).
    Options,
    /// A well-formed frame of a kind lingerd does not handle (VLAN tags, ARP
    /// for other hardware or protocol types, an IPv6 Routing header with
    /// segments left, an IPv6 header chain past lingerd's bounds, ...).
    Unsupported,
}

impl Error {
    /// Number of variants: the size of a per-cause counter array.
    pub const COUNT: usize = 6;

    /// Every variant, in [`Error::index`] order.
    pub const ALL: [Error; Error::COUNT] = [
        Error::Truncated,
        Error::Malformed,
        Error::Checksum,
        Error::Fragmented,
        Error::Options,
        Error::Unsupported,
    ];

    /// A dense index in `0..Error::COUNT`, for counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short lower-case name, for metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "checksum",
            Error::Fragmented => "fragmented",
            Error::Options => "options",
            Error::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}

/// The result of parsing or building wire data.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_indices_are_dense_and_named() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(e.to_string(), e.as_str());
        }
        let mut names: Vec<_> = Error::ALL.iter().map(|e| e.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Error::COUNT);
    }
}
