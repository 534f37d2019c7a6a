//! TCP segments (RFC 9293 §3.1), their options (RFC 9293 §3.2, RFC 7323)
//! and sequence-number arithmetic (RFC 9293 §3.4).
//!
//! Owns the header layout, option encoding and decoding, the segment
//! checksum over either pseudo header ([`PseudoHeader`]: IPv4, RFC 9293
//! §3.1, or IPv6, RFC 8200 §8.1) and [`SeqNumber`], the one sequence type
//! the whole engine uses.
//! It makes no state-machine decisions: it does not judge whether a segment
//! is acceptable, clamp a window scale or pick an MSS; it only says what the
//! bytes hold and refuses bytes that cannot be read safely.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, BitAnd, BitOr, BitOrAssign, Sub, SubAssign};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Error, Result, checksum};

/// Length of a header without options (data offset 5).
pub const HEADER_LEN: usize = field::URGENT.end;

/// Largest window shift a receiver may use (RFC 7323 §2.3: a larger
/// `shift.cnt` is logged and 14 used instead).
pub const MAX_WINDOW_SHIFT: u8 = 14;

/// Largest header: data offset 15.
const MAX_HEADER_LEN: usize = 60;

/// IP protocol number of TCP, for the pseudo header.
const PROTOCOL_TCP: u8 = 6;

mod field {
    use core::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ_NUM: Range<usize> = 4..8;
    pub(super) const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (upper nibble) and reserved bits.
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WIN_SIZE: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;
}

/// Option kinds (RFC 9293 §3.2, RFC 7323 §2.2, §3.2; RFC 2018 §2).
mod kind {
    pub(super) const EOL: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const MSS: u8 = 2;
    pub(super) const WINDOW_SCALE: u8 = 3;
    pub(super) const SACK_PERMITTED: u8 = 4;
    pub(super) const SACK: u8 = 5;
    pub(super) const TIMESTAMPS: u8 = 8;
}

// ---------------------------------------------------------------------------
// Sequence numbers
// ---------------------------------------------------------------------------

/// A TCP sequence (or acknowledgment) number: arithmetic modulo 2^32 and
/// comparison in the RFC 9293 §3.4 sense ("the symbol `=<` means less than
/// or equal (modulo 2**32)").
///
/// `a < b` iff `(b - a) mod 2^32` lies in `1..2^31`, i.e. `b` is at most
/// 2^31 − 1 ahead of `a`. **Caveat**: this is an order only on a window of
/// less than 2^31 numbers. Two numbers exactly 2^31 apart are incomparable
/// (`partial_cmp` is `None`, both `<` and `>` are false), and transitivity
/// fails across more than 2^31 (`0 < 2^30 < 2^31 < 3·2^30 < 0`). Valid TCP
/// windows are at most 2^30 (RFC 7323 §2.3), which keeps the numbers an
/// engine compares well inside one such window. For range checks prefer
/// [`SeqNumber::is_in_window`] and [`SeqNumber::is_between`]: they are exact
/// for any span.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self + n` modulo 2^32.
    #[inline]
    #[must_use]
    pub const fn wrapping_add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// `self - n` modulo 2^32.
    #[inline]
    #[must_use]
    pub const fn wrapping_sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }

    /// The signed distance `self - other`: positive if `self` is after
    /// `other`. Exact when the two are less than 2^31 apart; at exactly 2^31
    /// it is `i32::MIN` both ways.
    #[inline]
    pub const fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The forward distance from `earlier` to `self`, modulo 2^32: how many
    /// sequence numbers `earlier + k` it takes to reach `self`.
    #[inline]
    pub const fn distance_from(self, earlier: SeqNumber) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// `start =< self < start + len` (mod 2^32): the RFC 9293 §3.10.7.4
    /// segment acceptability test for one end of a segment. Exact for every
    /// `len` (an empty window contains nothing).
    #[inline]
    pub const fn is_in_window(self, start: SeqNumber, len: u32) -> bool {
        self.distance_from(start) < len
    }

    /// `lo =< self =< hi` (mod 2^32), walking forward from `lo`: e.g. the
    /// RFC 5961 §5.2 ACK test `SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT`.
    /// Exact for every span; `hi` before `lo` means the span wraps.
    #[inline]
    pub const fn is_between(self, lo: SeqNumber, hi: SeqNumber) -> bool {
        self.distance_from(lo) <= hi.distance_from(lo)
    }
}

impl From<u32> for SeqNumber {
    #[inline]
    fn from(value: u32) -> Self {
        SeqNumber(value)
    }
}

impl From<SeqNumber> for u32 {
    #[inline]
    fn from(value: SeqNumber) -> Self {
        value.0
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    /// Wrapping addition (sequence space is modulo 2^32).
    #[inline]
    fn add(self, rhs: u32) -> SeqNumber {
        self.wrapping_add(rhs)
    }
}

impl AddAssign<u32> for SeqNumber {
    #[inline]
    fn add_assign(&mut self, rhs: u32) {
        *self = self.wrapping_add(rhs);
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    /// Wrapping subtraction (sequence space is modulo 2^32).
    #[inline]
    fn sub(self, rhs: u32) -> SeqNumber {
        self.wrapping_sub(rhs)
    }
}

impl SubAssign<u32> for SeqNumber {
    #[inline]
    fn sub_assign(&mut self, rhs: u32) {
        *self = self.wrapping_sub(rhs);
    }
}

impl PartialOrd for SeqNumber {
    /// Modular comparison (RFC 9293 §3.4): the sign of `self - other` as an
    /// `i32`; `None` when the two are exactly 2^31 apart, so that `a < b`
    /// and `b < a` are never both true.
    #[inline]
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        match self.diff(*other) {
            i32::MIN => None,
            d => Some(d.cmp(&0)),
        }
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqNumber({})", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

// ---------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------

/// The eight control bits of byte 13 (RFC 9293 §3.1; ECE and CWR from
/// RFC 3168 §23.2). The historic NS bit (RFC 8311 §3) is not kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push function.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN-Echo.
    pub const ECE: Flags = Flags(0x40);
    /// Congestion Window Reduced.
    pub const CWR: Flags = Flags(0x80);

    /// No flags.
    pub const EMPTY: Flags = Flags(0);

    const NAMES: [(Flags, &'static str); 8] = [
        (Flags::FIN, "FIN"),
        (Flags::SYN, "SYN"),
        (Flags::RST, "RST"),
        (Flags::PSH, "PSH"),
        (Flags::ACK, "ACK"),
        (Flags::URG, "URG"),
        (Flags::ECE, "ECE"),
        (Flags::CWR, "CWR"),
    ];

    /// The raw byte.
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set in `self`.
    #[inline]
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `self` with the flags of `other` added.
    #[inline]
    #[must_use]
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// `self` with the flags of `other` removed.
    #[inline]
    #[must_use]
    pub const fn difference(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// FIN is set.
    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Flags::FIN)
    }

    /// SYN is set.
    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Flags::SYN)
    }

    /// RST is set.
    #[inline]
    pub const fn rst(self) -> bool {
        self.contains(Flags::RST)
    }

    /// ACK is set.
    #[inline]
    pub const fn ack(self) -> bool {
        self.contains(Flags::ACK)
    }
}

impl BitOr for Flags {
    type Output = Flags;
    #[inline]
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl BitOrAssign for Flags {
    #[inline]
    fn bitor_assign(&mut self, rhs: Flags) {
        *self = self.union(rhs);
    }
}

impl BitAnd for Flags {
    type Output = Flags;
    #[inline]
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
    }
}

impl fmt::Debug for Flags {
    /// `SYN|ACK`, or `(empty)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(empty)");
        }
        let mut first = true;
        for (flag, name) in Flags::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// Up to four SACK blocks (RFC 2018 §3), `[left, right)` each, in the
/// order they were sent (or are to be sent). On parse nothing is checked
/// beyond the encoding: the receiver of the blocks validates them against
/// its own send sequence space.
#[derive(Debug, Clone, Copy, Default)]
pub struct SackBlocks {
    blocks: [(SeqNumber, SeqNumber); 4],
    len: u8,
}

impl PartialEq for SackBlocks {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SackBlocks {}

impl SackBlocks {
    /// The most blocks an option can hold (40 option bytes: 2 + 4 × 8).
    pub const MAX: usize = 4;

    /// Appends a block; false (nothing appended) when four are held.
    pub fn push(&mut self, left: SeqNumber, right: SeqNumber) -> bool {
        let Some(slot) = self.blocks.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = (left, right);
        self.len += 1;
        true
    }

    /// The blocks held, first sent first.
    pub fn as_slice(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.blocks[..usize::from(self.len).min(Self::MAX)]
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps only the first `n` blocks.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n.min(Self::MAX) as u8);
    }

    /// Bytes on the wire, with the two NOPs that align it: 0 when empty.
    pub fn wire_len(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            4 + 8 * self.len()
        }
    }
}

/// The options lingerd understands. Unknown options (MD5, TCP-AO, Fast
/// Open, ...) are skipped on parse and never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Maximum segment size (RFC 9293 §3.7.1; kind 2).
    pub mss: Option<u16>,
    /// Window scale shift as received, unclamped (RFC 7323 §2; kind 3); see
    /// [`Options::window_shift`].
    pub window_scale: Option<u8>,
    /// SACK permitted (RFC 2018 §2; kind 4).
    pub sack_permitted: bool,
    /// Timestamps `(TSval, TSecr)` (RFC 7323 §3; kind 8).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (RFC 2018 §3; kind 5). A sender must keep the total
    /// within 40 bytes: three blocks beside timestamps, four without.
    pub sack: SackBlocks,
}

impl Options {
    /// The window scale to use, clamped to [`MAX_WINDOW_SHIFT`] (RFC 7323
    /// §2.3: "MUST use 14 instead of the specified value").
    #[inline]
    pub fn window_shift(&self) -> Option<u8> {
        self.window_scale.map(|s| s.min(MAX_WINDOW_SHIFT))
    }

    /// Whether no option is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }

    /// Parses the option bytes of a header (RFC 9293 §3.2, §3.1 "Options").
    ///
    /// - EOL ends the list; NOP is skipped.
    /// - Every other option has a length byte counting kind and length; a
    ///   missing length byte, a length of 0 or 1 (which would never advance),
    ///   or a length running past the options is [`Error::Malformed`]
    ///   (RFC 9293 §3.2: "MUST be prepared to handle an illegal option
    ///   length (e.g., zero)"; the segment is dropped, never misread).
    /// - Unknown kinds are skipped by their length (RFC 9293 §3.2: "MUST
    ///   ignore without error any TCP option it does not implement").
    /// - A known kind with an unexpected length is skipped the same way
    ///   (as Linux's `tcp_parse_options` does): the walk stays in bounds and
    ///   the option is not believed.
    /// - A repeated option: the last one wins.
    pub fn parse(mut bytes: &[u8]) -> Result<Options> {
        let mut options = Options::default();
        loop {
            match bytes {
                [] | [kind::EOL, ..] => return Ok(options),
                [kind::NOP, rest @ ..] => bytes = rest,
                [_] => return Err(Error::Malformed),
                [kind, len, ..] => {
                    let len = usize::from(*len);
                    if len < 2 {
                        return Err(Error::Malformed);
                    }
                    let body = bytes.get(2..len).ok_or(Error::Malformed)?;
                    match (*kind, body) {
                        (kind::MSS, &[a, b]) => options.mss = Some(u16::from_be_bytes([a, b])),
                        (kind::WINDOW_SCALE, &[shift]) => options.window_scale = Some(shift),
                        (kind::SACK_PERMITTED, []) => options.sack_permitted = true,
                        (kind::SACK, body) if !body.is_empty() && body.len() % 8 == 0 => {
                            // A length that is not 2 + 8n is skipped like any
                            // other malformed known option; more than four
                            // blocks cannot fit in 40 bytes.
                            let mut sack = SackBlocks::default();
                            for b in body.chunks_exact(8) {
                                let left = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                                let right = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                                sack.push(SeqNumber(left), SeqNumber(right));
                            }
                            options.sack = sack;
                        }
                        (kind::TIMESTAMPS, &[a, b, c, d, e, f, g, h]) => {
                            options.timestamps = Some((
                                u32::from_be_bytes([a, b, c, d]),
                                u32::from_be_bytes([e, f, g, h]),
                            ));
                        }
                        _ => {}
                    }
                    bytes = bytes.get(len..).unwrap_or(&[]);
                }
            }
        }
    }

    /// The encoded length: a multiple of 4, at most 20 without SACK
    /// blocks, at most 40 with them (the caller bounds the count).
    ///
    /// Layout (Linux's, 32-bit aligned without trailing padding):
    /// `MSS(4)`, then `SACKOK TS(12)` or `NOP NOP TS(12)` or
    /// `NOP NOP SACKOK(4)`, then `NOP WS(4)`, then `NOP NOP SACK(2+8n)`.
    #[inline]
    pub fn wire_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.timestamps.is_some() {
            len += 12;
        } else if self.sack_permitted {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        len + self.sack.wire_len()
    }

    /// Encodes the options into the front of `buf` and returns
    /// [`Options::wire_len`].
    ///
    /// # Panics
    /// If `buf` is shorter than [`Options::wire_len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.mss {
            let [a, b] = mss.to_be_bytes();
            put(&[kind::MSS, 4, a, b]);
        }
        match (self.timestamps, self.sack_permitted) {
            (Some((tsval, tsecr)), sack) => {
                if sack {
                    put(&[kind::SACK_PERMITTED, 2]);
                } else {
                    put(&[kind::NOP, kind::NOP]);
                }
                put(&[kind::TIMESTAMPS, 10]);
                put(&tsval.to_be_bytes());
                put(&tsecr.to_be_bytes());
            }
            (None, true) => put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]),
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            put(&[kind::NOP, kind::WINDOW_SCALE, 3, shift]);
        }
        if !self.sack.is_empty() {
            put(&[
                kind::NOP,
                kind::NOP,
                kind::SACK,
                2 + 8 * self.sack.len() as u8,
            ]);
            for (left, right) in self.sack.as_slice() {
                put(&left.0.to_be_bytes());
                put(&right.0.to_be_bytes());
            }
        }
        at
    }
}

// ---------------------------------------------------------------------------
// Pseudo header
// ---------------------------------------------------------------------------

/// The part of the TCP pseudo header that is fixed for a connection: both
/// addresses and the protocol (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for
/// IPv6), summed once. The segment length is added per segment.
///
/// The family-neutral checksum entry points (`*_pseudo`) take one; the IPv4
/// ones taking two `Ipv4Addr` build it inline and compile to the same sum
/// as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PseudoHeader(u64);

impl PseudoHeader {
    /// The IPv4 pseudo header of a segment from `src` to `dst`.
    #[inline(always)]
    pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> PseudoHeader {
        // Below 2^34: adding a 16-bit length cannot carry out.
        PseudoHeader(checksum::pseudo_header_ipv4(src, dst, PROTOCOL_TCP, 0))
    }

    /// The IPv6 pseudo header of a segment from `src` to `dst` (for a
    /// packet with a Routing header, `dst` is the final destination).
    #[inline]
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr) -> PseudoHeader {
        // Folded to 16 bits, so that adding a 16-bit length cannot carry
        // out either: the IPv6 form of the 32-bit length is its value.
        let acc = checksum::pseudo_header_ipv6(src, dst, PROTOCOL_TCP, 0);
        PseudoHeader(u64::from(checksum::fold(acc)))
    }

    /// The accumulator with the segment length added.
    #[inline(always)]
    fn with_len(self, len: u16) -> u64 {
        self.0 + u64::from(len)
    }
}

// ---------------------------------------------------------------------------
// Packet
// ---------------------------------------------------------------------------

/// A zero-copy view of a TCP segment. The buffer is the IPv4 payload
/// (bounded by the IPv4 total length), so its length is the segment length.
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

    /// - buffer < 20 bytes: [`Error::Truncated`];
    /// - data offset < 5 or past the buffer: [`Error::Malformed`]
    ///   (RFC 9293 §3.1 "Data Offset": the header is at least 5 words, and
    ///   the segment, bounded by the IP length, must hold it).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::Malformed);
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
    fn read_u32(&self, range: core::ops::Range<usize>) -> u32 {
        let d = &self.buffer.as_ref()[range];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::SEQ_NUM))
    }

    /// Acknowledgment number (meaningful only with ACK).
    #[inline]
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::ACK_NUM))
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The control bits.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// The window field, unscaled.
    #[inline]
    pub fn window_len(&self) -> u16 {
        self.read_u16(field::WIN_SIZE)
    }

    /// The checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        self.read_u16(field::URGENT)
    }

    /// The option bytes (empty if none, if the data offset is bad or on a
    /// buffer shorter than a header).
    #[inline]
    pub fn options(&self) -> &[u8] {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return &[];
        }
        let end = usize::from(self.header_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The data after the header (empty if the data offset is bad or on a
    /// buffer shorter than a header).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return &[];
        }
        let start = usize::from(self.header_len());
        self.buffer.as_ref().get(start..).unwrap_or(&[])
    }

    /// Whether the checksum over the IPv4 pseudo header, header and data
    /// verifies (RFC 9293 §3.1 "Checksum"). False for a buffer over 65535
    /// bytes.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        segment_verifies(self.buffer.as_ref(), PseudoHeader::ipv4(src, dst))
    }

    /// Whether the checksum over `pseudo`, header and data verifies, for
    /// either family (RFC 8200 §8.1 for IPv6). False for a buffer over
    /// 65535 bytes (lingerd takes no jumbograms).
    #[inline]
    pub fn verify_checksum_pseudo(&self, pseudo: PseudoHeader) -> bool {
        segment_verifies(self.buffer.as_ref(), pseudo)
    }
}

/// The folded sum of pseudo header and segment (RFC 9293 §3.1, RFC 8200
/// §8.1), or `None` for a segment too long for a 16-bit length.
#[inline]
fn segment_sum(data: &[u8], pseudo: PseudoHeader) -> Option<u16> {
    let len = u16::try_from(data.len()).ok()?;
    Some(checksum::fold(checksum::add(
        pseudo.with_len(len),
        checksum::sum(data),
    )))
}

/// Whether the checksum over pseudo header and segment verifies; false for
/// a segment too long for a 16-bit length.
#[inline(always)]
fn segment_verifies(data: &[u8], pseudo: PseudoHeader) -> bool {
    let Ok(len) = u16::try_from(data.len()) else {
        return false;
    };
    checksum::verifies(checksum::add(pseudo.with_len(len), checksum::sum(data)))
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn write(&mut self, range: core::ops::Range<usize>, value: &[u8]) {
        self.buffer.as_mut()[range].copy_from_slice(value);
    }

    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.write(field::SRC_PORT, &value.to_be_bytes());
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.write(field::DST_PORT, &value.to_be_bytes());
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: SeqNumber) {
        self.write(field::SEQ_NUM, &value.0.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: SeqNumber) {
        self.write(field::ACK_NUM, &value.0.to_be_bytes());
    }

    /// Sets the header length in bytes (stored as `value / 4`); clears the
    /// reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::DATA_OFF] = ((value / 4) & 0x0f) << 4;
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, value: Flags) {
        self.buffer.as_mut()[field::FLAGS] = value.0;
    }

    /// Sets the window field.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        self.write(field::WIN_SIZE, &value.to_be_bytes());
    }

    /// Stores a checksum value as is.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.write(field::CHECKSUM, &value.to_be_bytes());
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        self.write(field::URGENT, &value.to_be_bytes());
    }

    /// The option bytes, mutable (empty if the data offset is bad).
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }

    /// The data after the header, mutable (empty if the data offset is bad).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes and stores the checksum over the whole buffer with the
    /// IPv4 pseudo header.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes or longer than 65535.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.fill_checksum_pseudo(PseudoHeader::ipv4(src, dst));
    }

    /// Computes and stores the checksum over the whole buffer with
    /// `pseudo`, for either family.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes or longer than 65535.
    #[inline]
    pub fn fill_checksum_pseudo(&mut self, pseudo: PseudoHeader) {
        self.set_checksum(0);
        let sum =
            segment_sum(self.buffer.as_ref(), pseudo).expect("TCP segment longer than 65535 bytes");
        self.set_checksum(!sum);
    }
}

// ---------------------------------------------------------------------------
// Repr
// ---------------------------------------------------------------------------

/// A parsed TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Source port (never 0).
    pub src_port: u16,
    /// Destination port (never 0).
    pub dst_port: u16,
    /// SEG.SEQ.
    pub seq: SeqNumber,
    /// SEG.ACK as carried, whether or not ACK is set.
    pub ack: SeqNumber,
    /// Control bits.
    pub flags: Flags,
    /// SEG.WND as carried, before window scaling (RFC 7323 §2.3: never
    /// scaled in a SYN).
    pub window: u16,
    /// The urgent pointer as carried.
    pub urgent: u16,
    /// The options lingerd understands.
    pub options: Options,
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a segment whose IPv4 addresses are `src` and `dst`. Checks the
    /// lengths itself, so it never panics. In order:
    /// - lengths as in [`Packet::check_len`];
    /// - if `verify_checksum` (false only when the NIC verified it):
    ///   [`Error::Checksum`] (RFC 9293 §3.10.7.1 first step: a segment with a
    ///   bad checksum is discarded);
    /// - source or destination port 0: [`Error::Malformed`] (port 0 is
    ///   reserved, RFC 6335 §6; no connection can use it);
    /// - options as in [`Options::parse`].
    ///
    /// Inlined: returning the `Repr` through memory from an outlined call
    /// cost about as much as the parse itself.
    #[inline(always)]
    pub fn parse<T>(
        packet: &Packet<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<Repr<'a>>
    where
        T: AsRef<[u8]> + ?Sized,
    {
        Self::parse_pseudo(packet, PseudoHeader::ipv4(src, dst), verify_checksum)
    }

    /// [`Repr::parse`] for either family: the checksum is verified against
    /// `pseudo` (for IPv6, [`PseudoHeader::ipv6`] of the packet's source and
    /// final destination, RFC 8200 §8.1). The segment is the upper-layer
    /// payload after any extension headers.
    #[inline(always)]
    pub fn parse_pseudo<T>(
        packet: &Packet<&'a T>,
        pseudo: PseudoHeader,
        verify_checksum: bool,
    ) -> Result<Repr<'a>>
    where
        T: AsRef<[u8]> + ?Sized,
    {
        // The same checks as `check_len`, on one read of the fixed header;
        // every field below is a constant offset into it.
        let buffer: &'a T = packet.buffer;
        let bytes: &'a [u8] = buffer.as_ref();
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let header_len = usize::from(h[field::DATA_OFF] >> 4) * 4;
        if header_len < HEADER_LEN || header_len > bytes.len() {
            return Err(Error::Malformed);
        }
        if verify_checksum && !segment_verifies(bytes, pseudo) {
            return Err(Error::Checksum);
        }
        let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let (src_port, dst_port) = (be16(field::SRC_PORT.start), be16(field::DST_PORT.start));
        if src_port == 0 || dst_port == 0 {
            return Err(Error::Malformed);
        }
        // Data offset 5 (a bare ACK, most of what arrives): no option walk.
        let options = if header_len == HEADER_LEN {
            Options::default()
        } else {
            Options::parse(bytes.get(HEADER_LEN..header_len).unwrap_or(&[]))?
        };
        let payload = bytes.get(header_len..).unwrap_or(&[]);
        Ok(Repr {
            src_port,
            dst_port,
            seq: SeqNumber(be32(field::SEQ_NUM.start)),
            ack: SeqNumber(be32(field::ACK_NUM.start)),
            flags: Flags(h[field::FLAGS]),
            window: be16(field::WIN_SIZE.start),
            urgent: be16(field::URGENT.start),
            options,
            payload,
        })
    }

    /// Header length: 20 plus the encoded options (at most 40).
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.wire_len()
    }

    /// Header plus payload.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// SEG.LEN (RFC 9293 §3.4): the octets of data plus one each for SYN
    /// and FIN, i.e. the sequence space this segment occupies.
    #[inline]
    pub fn segment_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }

    /// Writes header, options, payload and checksum. The buffer must be
    /// exactly [`Repr::buffer_len`] long, since the checksum covers all of
    /// it (pass the IPv4 payload slice).
    ///
    /// # Panics
    /// If the buffer is shorter than [`Repr::buffer_len`] or longer than
    /// 65535 bytes.
    pub fn emit<T>(&self, packet: &mut Packet<T>, src: Ipv4Addr, dst: Ipv4Addr)
    where
        T: AsRef<[u8]> + AsMut<[u8]>,
    {
        self.emit_pseudo(packet, PseudoHeader::ipv4(src, dst));
    }

    /// [`Repr::emit`] for either family: the checksum covers `pseudo`
    /// (RFC 8200 §8.1 for IPv6). Pass the upper-layer payload slice, after
    /// any extension headers.
    ///
    /// # Panics
    /// As [`Repr::emit`].
    pub fn emit_pseudo<T>(&self, packet: &mut Packet<T>, pseudo: PseudoHeader)
    where
        T: AsRef<[u8]> + AsMut<[u8]>,
    {
        let header_len = self.header_len();
        debug_assert!(header_len <= MAX_HEADER_LEN);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq);
        packet.set_ack_number(self.ack);
        packet.set_header_len(header_len as u8);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window);
        packet.set_urgent_at(self.urgent);
        self.options.emit(packet.options_mut());
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        packet.fill_checksum_pseudo(pseudo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// A Linux-style SYN: 40000 → 80, SEQ 0x01020304, window 64240, options
    /// MSS 1460, SACKOK, TS (0x11223344, 0), NOP, WS 7. Checksum 0xdbea
    /// computed independently (Python).
    const SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, // ports
        0x01, 0x02, 0x03, 0x04, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // offset 10, SYN, window
        0xdb, 0xea, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS
        0x04, 0x02, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00, // SACKOK TS
        0x01, 0x03, 0x03, 0x07, // NOP WS
    ];

    fn syn_repr() -> Repr<'static> {
        Repr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNumber(0x0102_0304),
            ack: SeqNumber(0),
            flags: Flags::SYN,
            window: 64240,
            urgent: 0,
            options: Options {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((0x1122_3344, 0)),
                sack: SackBlocks::default(),
            },
            payload: &[],
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(packet.src_port(), 40000);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), SeqNumber(0x0102_0304));
        assert_eq!(packet.ack_number(), SeqNumber(0));
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.flags(), Flags::SYN);
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0xdbea);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &SYN[20..]);
        assert_eq!(packet.payload(), &[] as &[u8]);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, Ipv4Addr::new(198, 18, 0, 3)));
        let repr = Repr::parse(&packet, SRC, DST, true).unwrap();
        assert_eq!(repr, syn_repr());
        assert_eq!(repr.segment_len(), 1);
    }

    #[test]
    fn ipv6_pseudo_header() {
        // The same SYN from 2001:db8::2 to 2001:db8::1: checksum 0x0c9e
        // computed independently (Python, RFC 8200 §8.1 layout).
        let src6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let dst6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let pseudo = PseudoHeader::ipv6(src6, dst6);
        let mut bytes = [0xa5u8; 40];
        syn_repr().emit_pseudo(&mut Packet::new_unchecked(&mut bytes[..]), pseudo);
        assert_eq!(bytes[16..18], [0x0c, 0x9e]);
        assert_eq!(bytes[..16], SYN[..16]);
        assert_eq!(bytes[18..], SYN[18..]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum_pseudo(pseudo));
        assert!(!packet.verify_checksum_pseudo(PseudoHeader::ipv6(
            src6,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3)
        )));
        assert!(!packet.verify_checksum(SRC, DST));
        assert_eq!(Repr::parse_pseudo(&packet, pseudo, true), Ok(syn_repr()));
        assert_eq!(
            Repr::parse_pseudo(&packet, PseudoHeader::ipv4(SRC, DST), true),
            Err(Error::Checksum)
        );
        // The IPv4 entry points are the pseudo ones with an IPv4 header.
        let v4 = Packet::new_checked(&SYN[..]).unwrap();
        assert!(v4.verify_checksum_pseudo(PseudoHeader::ipv4(SRC, DST)));
        assert_eq!(
            Repr::parse_pseudo(&v4, PseudoHeader::ipv4(SRC, DST), true),
            Repr::parse(&v4, SRC, DST, true)
        );
    }

    #[test]
    fn construct() {
        let repr = syn_repr();
        assert_eq!(repr.header_len(), 40);
        let mut bytes = [0xa5u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), SRC, DST);
        assert_eq!(bytes, SYN);
    }

    #[test]
    fn construct_with_payload() {
        let repr = Repr {
            flags: Flags::PSH | Flags::ACK | Flags::FIN,
            options: Options::default(),
            payload: b"hello",
            ..syn_repr()
        };
        assert_eq!(repr.buffer_len(), 25);
        assert_eq!(repr.segment_len(), 6);
        let mut bytes = [0u8; 25];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), SRC, DST);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.payload(), b"hello");
        assert!(packet.verify_checksum(SRC, DST));
        assert_eq!(Repr::parse(&packet, SRC, DST, true), Ok(repr));
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..HEADER_LEN {
            let packet = Packet::new_unchecked(&SYN[..len]);
            assert_eq!(packet.check_len(), Err(Error::Truncated), "len {len}");
            assert_eq!(Repr::parse(&packet, SRC, DST, false), Err(Error::Truncated));
        }
        // From 20 bytes on, the data offset (40) runs past the buffer.
        for len in HEADER_LEN..SYN.len() {
            let packet = Packet::new_unchecked(&SYN[..len]);
            assert_eq!(packet.check_len(), Err(Error::Malformed), "len {len}");
            assert_eq!(Repr::parse(&packet, SRC, DST, false), Err(Error::Malformed));
            assert_eq!(packet.options(), &[] as &[u8]);
            assert_eq!(packet.payload(), &[] as &[u8]);
        }
    }

    #[test]
    fn impossible_data_offsets() {
        for offset in 0..5u8 {
            let mut bytes = SYN;
            bytes[field::DATA_OFF] = offset << 4;
            let packet = Packet::new_unchecked(&bytes[..]);
            assert_eq!(packet.check_len(), Err(Error::Malformed), "offset {offset}");
            assert_eq!(Repr::parse(&packet, SRC, DST, false), Err(Error::Malformed));
        }
        let mut bytes = SYN;
        bytes[field::DATA_OFF] = 15 << 4; // 60 > 40
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn bad_checksum_and_port_zero() {
        let mut bytes = SYN;
        bytes[15] ^= 1; // window changed
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet, SRC, DST, true), Err(Error::Checksum));
        assert!(Repr::parse(&packet, SRC, DST, false).is_ok());
        for port in [field::SRC_PORT, field::DST_PORT] {
            let mut bytes = SYN;
            bytes[port].copy_from_slice(&[0, 0]);
            let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
            packet.fill_checksum(SRC, DST);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(Repr::parse(&packet, SRC, DST, true), Err(Error::Malformed));
        }
    }

    #[test]
    fn options_eol_nop_unknown() {
        let parsed = Options::parse(&[
            1, 1, // NOP NOP
            30, 4, 0xde, 0xad, // unknown kind 30 (MPTCP), skipped
            5, 10, 0, 0, 0, 1, 0, 0, 0, 2, // SACK block [1, 2)
            5, 7, 0, 0, 0, 0, 0, // SACK with a length not 2 + 8n: skipped
            2, 3, 9, // MSS with a wrong length: skipped
            2, 4, 0x23, 0x28, // MSS 9000
            0,    // EOL
            2, 0, // garbage after EOL is never read
        ])
        .unwrap();
        let mut sack = SackBlocks::default();
        assert!(sack.push(SeqNumber(1), SeqNumber(2)));
        assert_eq!(
            parsed,
            Options {
                mss: Some(9000),
                sack,
                ..Options::default()
            }
        );
        assert_eq!(Options::parse(&[]), Ok(Options::default()));
        assert_eq!(Options::parse(&[0, 0, 0, 0]), Ok(Options::default()));
    }

    #[test]
    fn options_impossible_lengths() {
        let cases: [&[u8]; 8] = [
            &[2],             // kind without a length
            &[1, 1, 1, 8],    // kind without a length after NOPs
            &[30, 0, 0, 0],   // length 0
            &[30, 1, 0, 0],   // length 1
            &[2, 0],          // MSS, length 0
            &[8, 10, 0, 0],   // timestamps running past the end
            &[30, 255, 1, 1], // unknown option running past the end
            &[3, 3],          // window scale missing its byte
        ];
        for bytes in cases {
            assert_eq!(Options::parse(bytes), Err(Error::Malformed), "{bytes:?}");
        }
        // The same in a segment: option length 0 → Malformed, never a panic.
        let mut bytes = SYN;
        bytes[21] = 0;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet, SRC, DST, false), Err(Error::Malformed));
    }

    #[test]
    fn options_layouts() {
        let all = syn_repr().options;
        let cases = [
            (Options::default(), &[][..]),
            (
                Options {
                    sack_permitted: true,
                    ..Options::default()
                },
                &[1, 1, 4, 2][..],
            ),
            (
                Options {
                    timestamps: Some((1, 2)),
                    ..Options::default()
                },
                &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2][..],
            ),
            (
                Options {
                    window_scale: Some(14),
                    ..Options::default()
                },
                &[1, 3, 3, 14][..],
            ),
            (all, &SYN[20..]),
        ];
        let mut three = SackBlocks::default();
        for i in 0..3u32 {
            assert!(three.push(SeqNumber(i * 10), SeqNumber(i * 10 + 5)));
        }
        let ts_sack = Options {
            timestamps: Some((1, 2)),
            sack: three,
            ..Options::default()
        };
        let mut buf = [0u8; 40];
        assert_eq!(
            ts_sack.emit(&mut buf),
            40,
            "timestamps and three blocks fill 40 bytes"
        );
        assert_eq!(&buf[12..16], &[1, 1, 5, 26]);
        assert_eq!(Options::parse(&buf), Ok(ts_sack));
        let mut four = three;
        assert!(four.push(SeqNumber(100), SeqNumber(200)));
        assert!(
            !four.push(SeqNumber(300), SeqNumber(400)),
            "a fifth never fits"
        );
        let sack_only = Options {
            sack: four,
            ..Options::default()
        };
        assert_eq!(sack_only.emit(&mut buf), 36);
        assert_eq!(Options::parse(&buf[..36]), Ok(sack_only));
        let mut cut = four;
        cut.truncate(2);
        assert_eq!(cut.as_slice(), &three.as_slice()[..2]);
        for (options, expected) in cases {
            let mut buf = [0xa5u8; 40];
            let len = options.emit(&mut buf);
            assert_eq!(len, options.wire_len());
            assert_eq!(&buf[..len], expected);
            assert_eq!(len % 4, 0);
            assert_eq!(Options::parse(&buf[..len]), Ok(options));
        }
    }

    #[test]
    fn window_shift_is_clamped() {
        let options = Options {
            window_scale: Some(15),
            ..Options::default()
        };
        assert_eq!(options.window_shift(), Some(MAX_WINDOW_SHIFT));
        assert_eq!(Options::default().window_shift(), None);
        assert!(Options::default().is_empty() && !options.is_empty());
    }

    #[test]
    fn flags() {
        let f = Flags::RST | Flags::ACK;
        assert!(f.rst() && f.ack() && !f.syn() && !f.fin());
        assert!(f.contains(Flags::RST) && !f.contains(Flags::RST | Flags::SYN));
        assert!(f.intersects(Flags::RST | Flags::SYN));
        assert_eq!(f.difference(Flags::ACK), Flags::RST);
        assert_eq!(f & Flags::ACK, Flags::ACK);
        assert_eq!(format!("{f:?}"), "RST|ACK");
        assert_eq!(format!("{:?}", Flags::EMPTY), "(empty)");
        assert_eq!(
            format!("{:?}", Flags(0xff)),
            "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"
        );
    }

    #[test]
    fn seq_number_wraps() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a + 5;
        assert_eq!(b, SeqNumber(3));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.diff(a), 5);
        assert_eq!(a.diff(b), -5);
        assert_eq!(b.distance_from(a), 5);
        assert_eq!(b - 5, a);
        let mut c = a;
        c += 2;
        assert_eq!(c, SeqNumber(0));
        c -= 1;
        assert_eq!(c, SeqNumber(u32::MAX));
        // Exactly 2^31 apart: incomparable both ways.
        let far = SeqNumber(0) + (1 << 31);
        assert_eq!(SeqNumber(0).partial_cmp(&far), None);
        let (before, after) = (SeqNumber(0) < far, far < SeqNumber(0));
        assert!(!before && !after);
        // Windows and spans across the wrap.
        assert!(SeqNumber(2).is_in_window(a, 10));
        assert!(!SeqNumber(8).is_in_window(a, 10));
        assert!(!a.is_in_window(a, 0));
        assert!(SeqNumber(0).is_between(a, SeqNumber(1)));
        assert!(!SeqNumber(2).is_between(a, SeqNumber(1)));
    }
}
