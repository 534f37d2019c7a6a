//! The IPv6 extension header walk (RFC 8200 §4): from the fixed header's
//! next header to the upper-layer header.
//!
//! Owns the generic layout of Hop-by-Hop, Routing, Fragment and Destination
//! Options headers, the option TLV walk inside Hop-by-Hop and Destination
//! Options (RFC 8200 §4.2), and lingerd's bounds on a header chain. It reads
//! the bytes it is given and nothing else: it keeps no state, does not
//! reassemble, does not send ICMPv6 Parameter Problems (the caller may, from
//! the [`Error`]) and does not decide what an upper layer is for.
//!
//! The walk is bounded: at most [`MAX_HEADERS`] extension headers and at
//! most [`MAX_CHAIN_LEN`] bytes of them. RFC 8200 sets no limit; a hostile
//! chain must cost a bounded amount of work per packet, and these bounds
//! are well above anything a TCP peer sends (draft-ietf-6man-eh-limits
//! discusses such receive limits). Every length is checked before it is
//! used; no input panics.

use super::ipv4::Protocol;
use super::{Error, Result};

/// Most extension headers the walk goes through; one more is
/// [`Error::Unsupported`].
pub const MAX_HEADERS: usize = 8;

/// Most bytes of extension headers before the upper-layer header; more is
/// [`Error::Unsupported`].
pub const MAX_CHAIN_LEN: usize = 1024;

/// Most consecutive padding bytes (Pad1 and PadN) in one options header:
/// padding exists to align the next option to 8 bytes, so 7 is the most
/// that can be needed (RFC 8200 §4.2, Appendix A; Linux refuses more).
const MAX_PADDING: usize = 7;

/// Next header values (IANA "Assigned Internet Protocol Numbers"; RFC 8200
/// §4.1 lists the extension headers).
mod nh {
    pub(super) const HOP_BY_HOP: u8 = 0;
    pub(super) const ROUTING: u8 = 43;
    pub(super) const FRAGMENT: u8 = 44;
    pub(super) const ESP: u8 = 50;
    pub(super) const AH: u8 = 51;
    pub(super) const NO_NEXT: u8 = 59;
    pub(super) const DEST_OPTS: u8 = 60;
}

/// Option types inside Hop-by-Hop and Destination Options (RFC 8200 §4.2).
mod opt {
    pub(super) const PAD1: u8 = 0;
    pub(super) const PADN: u8 = 1;
    /// The two high-order bits: what to do with an unrecognised option;
    /// `00` is "skip over this option".
    pub(super) const ACTION_MASK: u8 = 0xc0;
}

/// How a header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainEnd {
    /// An upper-layer header: TCP, ICMPv6, UDP, or anything that is not one
    /// of the four extension headers this walk knows. Mobility (135), HIP
    /// (139), Shim6 (140) and the experimental 253/254 are reported here
    /// too: the walk does not look into them, and no caller takes them for
    /// TCP or ICMPv6.
    Upper(Protocol),
    /// No Next Header (59, RFC 8200 §4.7): nothing follows; whatever bytes
    /// remain are to be ignored.
    NoNextHeader,
    /// An Authentication Header (51, RFC 4302). lingerd holds no security
    /// associations, so it does not look past one.
    Ah,
    /// Encapsulating Security Payload (50, RFC 4303): opaque.
    Esp,
}

/// The result of a successful walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chain {
    /// What ends the chain.
    pub end: ChainEnd,
    /// The offset of that header into the IPv6 payload (the total length
    /// of the extension headers walked over).
    pub offset: usize,
    /// How many extension headers were walked over (an atomic fragment
    /// header counts).
    pub headers: usize,
}

impl Chain {
    /// The bytes from the end of the chain: the upper-layer header and its
    /// data, out of the `payload` the chain was walked over.
    #[inline]
    pub fn upper<'a>(&self, payload: &'a [u8]) -> &'a [u8] {
        payload.get(self.offset..).unwrap_or(&[])
    }

    /// The upper-layer protocol, or `None` when the chain ends in No Next
    /// Header, AH or ESP.
    #[inline]
    pub const fn protocol(&self) -> Option<Protocol> {
        match self.end {
            ChainEnd::Upper(protocol) => Some(protocol),
            _ => None,
        }
    }
}

/// Walks the extension headers of an IPv6 payload whose first next header
/// is `first` (the fixed header's), up to the header that ends the chain.
///
/// `payload` is the IPv6 payload (bounded by the payload length), or, for
/// a packet quoted in an ICMPv6 error, whatever of it was quoted. Per
/// header, in order:
/// - one more header than [`MAX_HEADERS`], or a header that would take the
///   chain past [`MAX_CHAIN_LEN`] bytes: [`Error::Unsupported`] (checked
///   before the header's bytes are needed);
/// - the header runs past `payload`: [`Error::Truncated`];
/// - Hop-by-Hop Options (0) anywhere but first: [`Error::Malformed`]
///   (RFC 8200 §4.1: "restricted to appear immediately after an IPv6
///   header"; §4: the receiver sends a Parameter Problem);
/// - Hop-by-Hop or Destination Options (60): the options are walked as in
///   [`walk_options`];
/// - Routing (43) with Segments Left ≠ 0: [`Error::Unsupported`] (RFC 8200
///   §4.4: a node must process the Routing type before passing the packet
///   on; lingerd is a host that implements no Routing type, and a packet
///   with segments left is not at its final destination). Segments Left 0:
///   ignored, "proceed to process the next header";
/// - Fragment (44) with offset ≠ 0 or M set: [`Error::Fragmented`] (no
///   reassembly). Offset 0 and M clear is an atomic fragment: processed as
///   a whole packet and the walk goes on (RFC 6946 §4);
/// - AH (51), ESP (50), No Next Header (59): the walk ends there.
pub fn walk(first: Protocol, payload: &[u8]) -> Result<Chain> {
    let mut next = u8::from(first);
    let mut offset = 0usize;
    let mut headers = 0usize;
    loop {
        let end = match next {
            nh::NO_NEXT => Some(ChainEnd::NoNextHeader),
            nh::AH => Some(ChainEnd::Ah),
            nh::ESP => Some(ChainEnd::Esp),
            nh::HOP_BY_HOP | nh::ROUTING | nh::FRAGMENT | nh::DEST_OPTS => None,
            other => Some(ChainEnd::Upper(Protocol::from(other))),
        };
        if let Some(end) = end {
            return Ok(Chain {
                end,
                offset,
                headers,
            });
        }
        if headers >= MAX_HEADERS {
            return Err(Error::Unsupported);
        }
        let rest = payload.get(offset..).unwrap_or(&[]);
        // Every header starts with its next header; all but Fragment (fixed
        // 8 bytes) then give their length in 8-octet units past the first 8
        // (RFC 8200 §4.3-§4.6, RFC 6564).
        let len = match (next, rest) {
            (nh::FRAGMENT, [_, ..]) => 8,
            (_, [_, units, ..]) => (usize::from(*units) + 1) * 8,
            _ => return Err(Error::Truncated),
        };
        if offset + len > MAX_CHAIN_LEN {
            return Err(Error::Unsupported);
        }
        let header = rest.get(..len).ok_or(Error::Truncated)?;
        match next {
            nh::FRAGMENT => check_fragment(header)?,
            nh::HOP_BY_HOP if headers != 0 => return Err(Error::Malformed),
            nh::HOP_BY_HOP | nh::DEST_OPTS => walk_options(&header[2..])?,
            // Routing: [next, length, type, segments left, ...].
            _ => {
                if header[3] != 0 {
                    return Err(Error::Unsupported);
                }
            }
        }
        next = header[0];
        offset += len;
        headers += 1;
    }
}

/// A Fragment header (RFC 8200 §4.5): `[next, reserved, offset (13 bits)
/// | res (2) | M, identification (4)]`. [`Error::Fragmented`] unless it is
/// an atomic fragment (offset 0, M clear).
fn check_fragment(header: &[u8]) -> Result<()> {
    let &[_, _, hi, lo, ..] = header else {
        return Err(Error::Truncated);
    };
    // Offset in the upper 13 bits, M in the lowest; the two reserved bits
    // between are ignored on receipt.
    if u16::from_be_bytes([hi, lo]) & 0xfff9 != 0 {
        return Err(Error::Fragmented);
    }
    Ok(())
}

/// Walks the options of a Hop-by-Hop or Destination Options header (the
/// bytes after its next-header and length bytes; RFC 8200 §4.2):
/// - Pad1 is one byte; every other option is type, length, data, and one
///   running past the header is [`Error::Malformed`];
/// - more than 7 consecutive padding bytes, or PadN data that is not zero,
///   is [`Error::Malformed`] (padding only aligns; RFC 4942 §2.1.9.5
///   suggests checking it);
/// - an option other than Pad1 or PadN whose two high-order bits are not
///   `00` is [`Error::Options`]: RFC 8200 §4.2 asks to discard the packet
///   for an unrecognised option of those types (lingerd recognises none;
///   the Jumbo Payload option, 0xC2, is one of them, though a real
///   jumbogram, payload length 0, is already [`Error::Truncated`]). With
///   `00`, the option is skipped.
pub fn walk_options(mut bytes: &[u8]) -> Result<()> {
    let mut padding = 0usize;
    loop {
        match bytes {
            [] => return Ok(()),
            [opt::PAD1, rest @ ..] => {
                padding += 1;
                bytes = rest;
            }
            [_] => return Err(Error::Malformed),
            [kind, len, rest @ ..] => {
                let len = usize::from(*len);
                let data = rest.get(..len).ok_or(Error::Malformed)?;
                if *kind == opt::PADN {
                    if data.iter().any(|&b| b != 0) {
                        return Err(Error::Malformed);
                    }
                    padding += len + 2;
                } else {
                    if kind & opt::ACTION_MASK != 0 {
                        return Err(Error::Options);
                    }
                    padding = 0;
                }
                bytes = rest.get(len..).unwrap_or(&[]);
            }
        }
        if padding > MAX_PADDING {
            return Err(Error::Malformed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: Protocol = Protocol::Tcp;

    /// Hop-by-Hop (8 bytes: Router Alert + PadN), Destination Options
    /// (16 bytes: an unknown skippable option), Routing (type 4, segments
    /// left 0, 8 bytes), atomic Fragment, then 4 bytes of "TCP".
    const CHAIN: [u8; 44] = [
        nh::DEST_OPTS,
        0,
        5,
        2,
        0,
        0,
        1,
        0, // HBH: router alert, PadN(0)
        nh::ROUTING,
        1,
        0x1e,
        6,
        1,
        2,
        3,
        4,
        5,
        6,
        1,
        4,
        0,
        0,
        0,
        0, // DO: type 0x1e, 6 bytes; PadN(4)
        nh::FRAGMENT,
        0,
        4,
        0,
        0,
        0,
        0,
        0, // Routing type 4, SL 0
        6,
        0,
        0,
        0,
        0xde,
        0xad,
        0xbe,
        0xef, // atomic fragment
        0xaa,
        0xbb,
        0xcc,
        0xdd, // upper layer
    ];

    #[test]
    fn no_extension_headers() {
        let chain = walk(TCP, &[1, 2, 3]).unwrap();
        assert_eq!(
            chain,
            Chain {
                end: ChainEnd::Upper(TCP),
                offset: 0,
                headers: 0
            }
        );
        assert_eq!(chain.upper(&[1, 2, 3]), &[1, 2, 3]);
        // The upper layer's own length is not the walk's business.
        assert_eq!(walk(TCP, &[]).unwrap().offset, 0);
    }

    #[test]
    fn walks_every_kind() {
        let chain = walk(Protocol::from(nh::HOP_BY_HOP), &CHAIN).unwrap();
        assert_eq!(chain.end, ChainEnd::Upper(TCP));
        assert_eq!(chain.protocol(), Some(TCP));
        assert_eq!(chain.offset, 40);
        assert_eq!(chain.headers, 4);
        assert_eq!(chain.upper(&CHAIN), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..40 {
            assert_eq!(
                walk(Protocol::from(nh::HOP_BY_HOP), &CHAIN[..len]),
                Err(Error::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn ends() {
        for (nh, end) in [
            (nh::NO_NEXT, ChainEnd::NoNextHeader),
            (nh::AH, ChainEnd::Ah),
            (nh::ESP, ChainEnd::Esp),
            (58, ChainEnd::Upper(Protocol::Unknown(58))),
            (135, ChainEnd::Upper(Protocol::Unknown(135))),
        ] {
            let mut bytes = CHAIN;
            bytes[24] = nh; // the Routing header's next header
            let chain = walk(Protocol::from(nh::HOP_BY_HOP), &bytes).unwrap();
            assert_eq!((chain.end, chain.offset, chain.headers), (end, 32, 3));
            assert_eq!(
                chain.protocol().is_some(),
                matches!(end, ChainEnd::Upper(_))
            );
        }
    }

    #[test]
    fn hop_by_hop_only_first() {
        let mut bytes = CHAIN;
        bytes[8] = nh::HOP_BY_HOP; // Destination Options says HBH follows
        assert_eq!(
            walk(Protocol::from(nh::HOP_BY_HOP), &bytes),
            Err(Error::Malformed)
        );
        // First is fine, and so is Destination Options twice (RFC 8200 §4.1).
        let mut bytes = CHAIN;
        bytes[24] = nh::DEST_OPTS;
        bytes[32..40].copy_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        let chain = walk(Protocol::from(nh::HOP_BY_HOP), &bytes).unwrap();
        assert_eq!((chain.end, chain.offset), (ChainEnd::Upper(TCP), 40));
    }

    #[test]
    fn routing_with_segments_left_is_unsupported() {
        let mut bytes = CHAIN;
        bytes[27] = 1;
        assert_eq!(
            walk(Protocol::from(nh::HOP_BY_HOP), &bytes),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn fragments() {
        // (offset/M word, fragmented?): M set, offset 8, offset max, and the
        // reserved bits alone (ignored: still atomic).
        for (word, fragmented) in [
            (0x0001u16, true),
            (0x0008, true),
            (0xfff8, true),
            (0x0006, false),
        ] {
            let mut bytes = CHAIN;
            bytes[34..36].copy_from_slice(&word.to_be_bytes());
            let result = walk(Protocol::from(nh::HOP_BY_HOP), &bytes);
            if fragmented {
                assert_eq!(result, Err(Error::Fragmented), "{word:#06x}");
            } else {
                assert_eq!(result.map(|c| c.offset), Ok(40), "{word:#06x}");
            }
        }
    }

    #[test]
    fn bounded_count_and_length() {
        // MAX_HEADERS Destination Options headers then TCP: fine; one more:
        // unsupported.
        let chain_of = |n: usize| {
            let mut bytes = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n { 6 } else { nh::DEST_OPTS };
                bytes.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            bytes
        };
        let first = Protocol::from(nh::DEST_OPTS);
        let ok = chain_of(MAX_HEADERS);
        assert_eq!(walk(first, &ok).map(|c| c.headers), Ok(MAX_HEADERS));
        assert_eq!(
            walk(first, &chain_of(MAX_HEADERS + 1)),
            Err(Error::Unsupported)
        );
        // 1024-byte headers, filled with skippable options: one is
        // MAX_CHAIN_LEN exactly; a second one passes it, and is refused
        // before its bytes are needed.
        let long_header = |next: u8| {
            let mut bytes = vec![next, 127];
            for data in [255u8, 255, 255, 249] {
                bytes.extend_from_slice(&[0x1e, data]);
                bytes.extend(std::iter::repeat_n(0, usize::from(data)));
            }
            assert_eq!(bytes.len(), 1024);
            bytes
        };
        let one = long_header(6);
        assert_eq!(walk(first, &one).map(|c| c.offset), Ok(MAX_CHAIN_LEN));
        let mut two = long_header(nh::DEST_OPTS);
        two.extend(long_header(6));
        assert_eq!(walk(first, &two), Err(Error::Unsupported));
        assert_eq!(walk(first, &two[..1030]), Err(Error::Unsupported));
    }

    #[test]
    fn options() {
        assert_eq!(walk_options(&[]), Ok(()));
        assert_eq!(walk_options(&[0; 6]), Ok(())); // six Pad1
        assert_eq!(walk_options(&[1, 4, 0, 0, 0, 0]), Ok(())); // PadN(4)
        assert_eq!(walk_options(&[5, 2, 0, 0, 1, 0]), Ok(())); // router alert, PadN(0)
        let malformed: [&[u8]; 6] = [
            &[5],                      // type without a length
            &[5, 3, 0, 0],             // data past the header
            &[1, 4, 0, 0, 1, 0],       // PadN with data
            &[0, 0, 0, 0, 0, 0, 0, 0], // eight Pad1
            &[1, 6, 0, 0, 0, 0, 0, 0], // PadN(6): 8 bytes of padding
            &[0, 0, 1, 4, 0, 0, 0, 0], // Pad1 Pad1 PadN(4): 8
        ];
        for bytes in malformed {
            assert_eq!(walk_options(bytes), Err(Error::Malformed), "{bytes:?}");
        }
        // Unrecognised, action ≠ 00: discard (jumbo payload, 0xc2, among them).
        for kind in [0x40u8, 0x80, 0xc2, 0xff] {
            assert_eq!(
                walk_options(&[kind, 0, 1, 2, 0, 0]),
                Err(Error::Options),
                "{kind:#x}"
            );
        }
        // Padding between real options resets the run.
        assert_eq!(
            walk_options(&[1, 4, 0, 0, 0, 0, 5, 0, 1, 4, 0, 0, 0, 0]),
            Ok(())
        );
        // An options error inside a header stops the walk.
        let mut bytes = CHAIN;
        bytes[2] = 0xc2;
        assert_eq!(
            walk(Protocol::from(nh::HOP_BY_HOP), &bytes),
            Err(Error::Options)
        );
    }
}
