//! The attach protocol: the few messages a client and the daemon exchange
//! over the `SOCK_SEQPACKET` control socket before the rings take over.
//!
//! This module owns their byte encodings and nothing else: no sockets, no
//! file descriptors, no I/O. The conversation is exactly one exchange:
//!
//! 1. client → daemon: [`Hello`] (the ABI version it was built against);
//! 2. daemon → client: either [`Welcome`] — with, as `SCM_RIGHTS` on the
//!    same message, exactly [`WELCOME_FDS`] descriptors in the order of
//!    [`FD_REGION`], [`FD_WAKE`], [`FD_DOORBELL`] — or [`Refused`] with a
//!    [`RefuseReason`] (no descriptors);
//! 3. then silence: the socket stays open for as long as the client is
//!    attached, and its hang-up is how the daemon learns that the client is
//!    gone. Anything either side sends afterwards is a protocol violation.
//!
//! Every message starts with the same 8 bytes, little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | [`MAGIC`] `"LDAT"` |
//! | 4 | 2 | kind: 1 hello, 2 welcome, 3 refused |
//! | 6 | 2 | [`PROTOCOL_VERSION`] of this exchange |
//!
//! then the kind's body (offsets from the start of the message):
//!
//! | kind | offset | size | field |
//! |---|---|---|---|
//! | hello | 8 | 4 | region ABI version ([`crate::layout::VERSION`]) |
//! | hello | 12 | 4 | flags, must be 0 (reserved) |
//! | welcome | 8 | 4 | client id (the daemon's, for logs and `ctl`) |
//! | welcome | 12 | 1 | descriptor count, = [`WELCOME_FDS`] |
//! | welcome | 13 | 3 | zero |
//! | welcome | 16 | 48 | the region [`Header`] as [`Header::encode`] writes it |
//! | welcome | 64 | `cores` | per ring index, the core tag in the top byte of the handles that ring serves |
//! | refused | 8 | 2 | [`RefuseReason`] |
//! | refused | 10 | 2 | zero |
//! | refused | 12 | 4 | the region ABI version the daemon speaks |
//!
//! Decoding validates everything: magic, kind, versions, reserved bytes
//! being zero, exact lengths, a header that recomputes to a valid layout,
//! and a core list with one distinct tag per ring. A message that fails is
//! an error value, never a panic.

use crate::layout::{HEADER_BYTES, Header, HeaderError, Layout, MAX_CORES, VERSION};

/// `"LDAT"` little-endian: the first four bytes of every attach message.
pub const MAGIC: u32 = u32::from_le_bytes(*b"LDAT");
/// Version of this exchange (independent of the region layout's version).
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest message either side sends; a receiver's buffer of this size
/// (plus one, to detect longer ones) is always enough.
pub const MAX_MESSAGE: usize = WELCOME_FIXED + MAX_CORES as usize;
/// Descriptors that travel with a [`Welcome`].
pub const WELCOME_FDS: usize = 3;
/// Index of the region memfd among a welcome's descriptors (sealed against
/// shrinking, growing and further sealing; `header.total_size` bytes).
pub const FD_REGION: usize = 0;
/// Index of the wake eventfd: the daemon writes it after publishing
/// completions while the client's completion ring has NEED_WAKEUP set.
pub const FD_WAKE: usize = 1;
/// Index of the doorbell eventfd: the client writes it after publishing
/// requests while a request ring has NEED_WAKEUP set (the core sleeps).
pub const FD_DOORBELL: usize = 2;

const KIND_HELLO: u16 = 1;
const KIND_WELCOME: u16 = 2;
const KIND_REFUSED: u16 = 3;
const HELLO_LEN: usize = 16;
const WELCOME_FIXED: usize = 16 + HEADER_BYTES;
const REFUSED_LEN: usize = 16;

/// The client's first and only message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The region ABI version the client was built against.
    pub abi_version: u32,
}

impl Hello {
    /// The hello of a client built against this crate.
    pub fn current() -> Hello {
        Hello {
            abi_version: VERSION,
        }
    }

    /// The 16-byte encoding.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        put_prefix(&mut b, KIND_HELLO);
        b[8..12].copy_from_slice(&self.abi_version.to_le_bytes());
        b
    }

    /// Decodes a hello. The ABI version is returned as sent, not judged:
    /// the daemon answers a mismatch with [`RefuseReason::AbiVersion`].
    pub fn decode(b: &[u8]) -> Result<Hello, AttachDecodeError> {
        check_prefix(b, KIND_HELLO)?;
        if b.len() != HELLO_LEN {
            return Err(AttachDecodeError::Length);
        }
        if u32_at(b, 12) != 0 {
            return Err(AttachDecodeError::Reserved);
        }
        Ok(Hello {
            abi_version: u32_at(b, 8),
        })
    }
}

/// The daemon's answer when the client is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The client's id in the daemon.
    pub client_id: u32,
    /// The region's header (the same bytes are at the start of the region).
    pub header: Header,
    /// Per ring index, the core tag of the handles that ring serves (the
    /// top byte of a handle). As many as `header.cores`, all distinct.
    pub cores: Vec<u8>,
}

/// A decoded welcome with the layout its header describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedWelcome {
    /// The message.
    pub welcome: Welcome,
    /// The layout recomputed from the header.
    pub layout: Layout,
}

impl Welcome {
    /// Encodes. The core list must have `header.cores` entries (`None`
    /// otherwise: the daemon built something inconsistent).
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.cores.len() != self.header.cores as usize || self.cores.len() > MAX_CORES as usize {
            return None;
        }
        let mut b = vec![0u8; WELCOME_FIXED + self.cores.len()];
        put_prefix(&mut b, KIND_WELCOME);
        b[8..12].copy_from_slice(&self.client_id.to_le_bytes());
        b[12] = WELCOME_FDS as u8;
        b[16..WELCOME_FIXED].copy_from_slice(&self.header.encode());
        b[WELCOME_FIXED..].copy_from_slice(&self.cores);
        Some(b)
    }

    /// Decodes and validates a welcome, recomputing the layout.
    pub fn decode(b: &[u8]) -> Result<DecodedWelcome, AttachDecodeError> {
        check_prefix(b, KIND_WELCOME)?;
        if b.len() < WELCOME_FIXED {
            return Err(AttachDecodeError::Length);
        }
        if usize::from(b[12]) != WELCOME_FDS {
            return Err(AttachDecodeError::Descriptors(b[12]));
        }
        if b[13..16] != [0, 0, 0] {
            return Err(AttachDecodeError::Reserved);
        }
        let mut hb = [0u8; HEADER_BYTES];
        hb.copy_from_slice(&b[16..WELCOME_FIXED]);
        let (header, layout) = Header::decode(&hb).map_err(AttachDecodeError::Header)?;
        let cores = &b[WELCOME_FIXED..];
        if cores.len() != header.cores as usize {
            return Err(AttachDecodeError::Length);
        }
        for (i, c) in cores.iter().enumerate() {
            if cores[..i].contains(c) {
                return Err(AttachDecodeError::Cores);
            }
        }
        Ok(DecodedWelcome {
            welcome: Welcome {
                client_id: u32_at(b, 8),
                header,
                cores: cores.to_vec(),
            },
            layout,
        })
    }
}

/// Why the daemon refused to attach a client (stable numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum RefuseReason {
    /// The client's uid (`SO_PEERCRED` at `connect()`) is not in
    /// `clients.allow_uids`.
    UidNotAllowed = 1,
    /// The client speaks another region ABI version.
    AbiVersion = 2,
    /// The hello was malformed.
    Malformed = 3,
    /// The daemon has no client id or memory to spare now; try later.
    Resources = 4,
}

impl RefuseReason {
    fn from_u16(v: u16) -> Option<RefuseReason> {
        use RefuseReason::*;
        [UidNotAllowed, AbiVersion, Malformed, Resources]
            .into_iter()
            .find(|r| *r as u16 == v)
    }
}

/// The daemon's answer when it refuses; the socket is closed after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub reason: RefuseReason,
    /// The region ABI version the daemon speaks.
    pub abi_version: u32,
}

impl Refused {
    /// The 16-byte encoding.
    pub fn encode(&self) -> [u8; REFUSED_LEN] {
        let mut b = [0u8; REFUSED_LEN];
        put_prefix(&mut b, KIND_REFUSED);
        b[8..10].copy_from_slice(&(self.reason as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.abi_version.to_le_bytes());
        b
    }
}

/// What the daemon answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Attached (descriptors accompany the message).
    Welcome(DecodedWelcome),
    /// Refused.
    Refused(Refused),
}

impl Reply {
    /// Decodes a daemon reply of either kind.
    pub fn decode(b: &[u8]) -> Result<Reply, AttachDecodeError> {
        if b.len() < 8 {
            return Err(AttachDecodeError::Length);
        }
        match u16_at(b, 4) {
            KIND_WELCOME => Welcome::decode(b).map(Reply::Welcome),
            KIND_REFUSED => {
                check_prefix(b, KIND_REFUSED)?;
                if b.len() != REFUSED_LEN {
                    return Err(AttachDecodeError::Length);
                }
                if b[10..12] != [0, 0] {
                    return Err(AttachDecodeError::Reserved);
                }
                let raw = u16_at(b, 8);
                Ok(Reply::Refused(Refused {
                    reason: RefuseReason::from_u16(raw).ok_or(AttachDecodeError::Reason(raw))?,
                    abi_version: u32_at(b, 12),
                }))
            }
            other => {
                check_prefix(b, other)?;
                Err(AttachDecodeError::Kind(other))
            }
        }
    }
}

/// Why an attach message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachDecodeError {
    /// Too short, too long, or a core list of the wrong size.
    Length,
    /// Not an attach message.
    Magic,
    /// Another version of the exchange.
    ProtocolVersion(u16),
    /// A kind the receiver does not expect here.
    Kind(u16),
    /// A reserved field is not zero.
    Reserved,
    /// A welcome announcing another number of descriptors.
    Descriptors(u8),
    /// A welcome whose header is not acceptable.
    Header(HeaderError),
    /// A core tag listed twice.
    Cores,
    /// An unknown refusal reason.
    Reason(u16),
}

fn put_prefix(b: &mut [u8], kind: u16) {
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..6].copy_from_slice(&kind.to_le_bytes());
    b[6..8].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
}

fn check_prefix(b: &[u8], kind: u16) -> Result<(), AttachDecodeError> {
    if b.len() < 8 {
        return Err(AttachDecodeError::Length);
    }
    if u32_at(b, 0) != MAGIC {
        return Err(AttachDecodeError::Magic);
    }
    let version = u16_at(b, 6);
    if version != PROTOCOL_VERSION {
        return Err(AttachDecodeError::ProtocolVersion(version));
    }
    if u16_at(b, 4) != kind {
        return Err(AttachDecodeError::Kind(u16_at(b, 4)));
    }
    Ok(())
}

// Callers check lengths first.
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LayoutParams;

    fn layout(cores: u32) -> Layout {
        Layout::new(LayoutParams {
            cores,
            ring_entries: 64,
            chunk_size: 2048,
            tx_chunks: 32,
            rx_chunks: 32,
        })
        .unwrap()
    }

    fn welcome() -> Welcome {
        Welcome {
            client_id: 7,
            header: layout(2).header(),
            cores: vec![0, 3],
        }
    }

    #[test]
    fn hello_round_trips_and_fixed_bytes() {
        let b = Hello::current().encode();
        assert_eq!(&b[0..4], b"LDAT");
        assert_eq!(b[4..8], [1, 0, 1, 0]);
        assert_eq!(Hello::decode(&b), Ok(Hello::current()));
        let other = Hello { abi_version: 99 }.encode();
        assert_eq!(Hello::decode(&other).unwrap().abi_version, 99);
    }

    #[test]
    fn hello_rejects_tampering() {
        let b = Hello::current().encode();
        assert_eq!(Hello::decode(&b[..15]), Err(AttachDecodeError::Length));
        assert_eq!(
            Hello::decode(&[b.as_slice(), &[0]].concat()),
            Err(AttachDecodeError::Length)
        );
        let mut m = b;
        m[0] = b'X';
        assert_eq!(Hello::decode(&m), Err(AttachDecodeError::Magic));
        let mut m = b;
        m[6] = 2;
        assert_eq!(
            Hello::decode(&m),
            Err(AttachDecodeError::ProtocolVersion(2))
        );
        let mut m = b;
        m[4] = 3;
        assert_eq!(Hello::decode(&m), Err(AttachDecodeError::Kind(3)));
        let mut m = b;
        m[15] = 1;
        assert_eq!(Hello::decode(&m), Err(AttachDecodeError::Reserved));
        assert_eq!(Hello::decode(&[]), Err(AttachDecodeError::Length));
    }

    #[test]
    fn welcome_round_trips_with_its_layout() {
        let w = welcome();
        let b = w.encode().unwrap();
        assert_eq!(b.len(), 64 + 2);
        assert!(b.len() <= MAX_MESSAGE);
        let d = Welcome::decode(&b).unwrap();
        assert_eq!(d.welcome, w);
        assert_eq!(d.layout, layout(2));
        assert_eq!(Reply::decode(&b), Ok(Reply::Welcome(d)));
    }

    #[test]
    fn welcome_rejects_inconsistent_content() {
        let mut w = welcome();
        w.cores = vec![0];
        assert_eq!(w.encode(), None, "core list shorter than the header says");
        let b = welcome().encode().unwrap();
        assert_eq!(Welcome::decode(&b[..65]), Err(AttachDecodeError::Length));
        let mut m = b.clone();
        m[65] = m[64];
        assert_eq!(Welcome::decode(&m), Err(AttachDecodeError::Cores));
        let mut m = b.clone();
        m[12] = 2;
        assert_eq!(Welcome::decode(&m), Err(AttachDecodeError::Descriptors(2)));
        let mut m = b.clone();
        m[14] = 1;
        assert_eq!(Welcome::decode(&m), Err(AttachDecodeError::Reserved));
        let mut m = b.clone();
        m[16] ^= 1;
        assert_eq!(
            Welcome::decode(&m),
            Err(AttachDecodeError::Header(HeaderError::Magic))
        );
        let mut m = b;
        m[16 + 40] ^= 0x10;
        assert_eq!(
            Welcome::decode(&m),
            Err(AttachDecodeError::Header(HeaderError::Layout)),
            "total size disagrees with the layout"
        );
    }

    #[test]
    fn refused_round_trips_and_rejects_unknown_reasons() {
        for reason in [
            RefuseReason::UidNotAllowed,
            RefuseReason::AbiVersion,
            RefuseReason::Malformed,
            RefuseReason::Resources,
        ] {
            let r = Refused {
                reason,
                abi_version: VERSION,
            };
            assert_eq!(Reply::decode(&r.encode()), Ok(Reply::Refused(r)));
        }
        let mut b = Refused {
            reason: RefuseReason::Malformed,
            abi_version: 1,
        }
        .encode();
        b[8] = 200;
        assert_eq!(Reply::decode(&b), Err(AttachDecodeError::Reason(200)));
        assert_eq!(
            Reply::decode(&Hello::current().encode()),
            Err(AttachDecodeError::Kind(1)),
            "a hello is no reply"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let valid = welcome().encode().unwrap();
        for len in 0..=MAX_MESSAGE + 1 {
            for _ in 0..8 {
                let mut b = vec![0u8; len];
                for (i, byte) in b.iter_mut().enumerate() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Keep a valid prefix half the time so decoding gets deep.
                    *byte = if seed & 1 == 0 && i < valid.len() {
                        valid[i]
                    } else {
                        seed as u8
                    };
                }
                let _ = Hello::decode(&b);
                let _ = Reply::decode(&b);
            }
        }
    }
}
