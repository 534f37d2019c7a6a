//! The 64-byte entries of the request and completion rings, with their
//! opcodes, kinds and outcome codes.
//!
//! This module owns the byte encoding, little-endian at fixed offsets, and
//! decoding that treats every byte as hostile: unknown opcodes, flag bits or
//! values are errors, never panics, and the `user_data` of a bad request is
//! still recovered so it gets its one completion. It performs no I/O.
//!
//! Addresses are family-neutral: each travels as 16 bytes beside an
//! explicit family (a family byte, or for the two prefixes of a
//! `CloseMatching` filter a family bit each). An IPv4 address fills the
//! first four of its 16 bytes, network order, and the other twelve must be
//! zero; an unknown family, or stray bytes after an IPv4 address, is a
//! decode error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::errno::Errno;
pub use crate::vocab::{CloseMode, Outcome, Shutdown};
use crate::vocab::{MAX_LINGER_MS, Prefix};

/// Size of an entry.
pub const ENTRY_BYTES: usize = 64;

/// Request opcodes (stable numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Open a listener.
    Listen = 1,
    /// Active open.
    Connect = 2,
    /// Send the bytes of a TX chunk.
    Send = 3,
    /// Return an RX chunk (its bytes are consumed).
    RecvDone = 4,
    /// Half-close.
    Shutdown = 5,
    /// `SO_LINGER`.
    SetLinger = 6,
    /// `SO_DONTLINGER`.
    SetDontLinger = 7,
    /// Read the linger setting.
    GetLinger = 8,
    /// `closesocket`.
    Close = 9,
    /// Hard close.
    Abort = 10,
    /// Bulk teardown.
    CloseMatching = 11,
}

impl Opcode {
    /// Decodes an opcode byte.
    pub fn from_u8(b: u8) -> Option<Opcode> {
        use Opcode::*;
        [
            Listen,
            Connect,
            Send,
            RecvDone,
            Shutdown,
            SetLinger,
            SetDontLinger,
            GetLinger,
            Close,
            Abort,
            CloseMatching,
        ]
        .into_iter()
        .find(|o| *o as u8 == b)
    }
}

/// `Close` flag: fail with EWOULDBLOCK instead of lingering.
pub const CLOSE_NONBLOCK: u8 = 1;
/// `SetLinger` flag: `l_onoff`.
pub const LINGER_ON: u8 = 1;
/// `SetDontLinger` flag: TRUE (do not linger).
pub const DONT_LINGER: u8 = 1;
/// `CloseMatching` filter-present bits.
pub const MATCH_LOCAL: u8 = 1;
/// See [`MATCH_LOCAL`].
pub const MATCH_REMOTE: u8 = 2;
/// See [`MATCH_LOCAL`].
pub const MATCH_LOCAL_PORT: u8 = 4;
/// See [`MATCH_LOCAL`].
pub const MATCH_REMOTE_PORT: u8 = 8;

/// `CloseMatching` mode byte of [`CloseMode::Graceful`].
pub const MODE_GRACEFUL: u8 = 0;
/// `CloseMatching` mode byte of [`CloseMode::Abort`].
pub const MODE_ABORT: u8 = 1;
/// `CloseMatching` mode byte of [`CloseMode::Linger`] (its time in the
/// entry's linger field).
pub const MODE_LINGER: u8 = 2;
/// `CloseMatching` mode byte of [`CloseMode::Deadline`] (its time in the
/// entry's linger field).
pub const MODE_DEADLINE: u8 = 3;

/// Family byte of an IPv4 address.
pub const FAMILY_V4: u8 = 4;
/// Family byte of an IPv6 address.
pub const FAMILY_V6: u8 = 6;
/// `CloseMatching` present bit: the local prefix is IPv6 (else IPv4).
pub const MATCH_LOCAL_V6: u8 = 16;
/// `CloseMatching` present bit: the remote prefix is IPv6 (else IPv4).
pub const MATCH_REMOTE_V6: u8 = 32;

/// Bytes an address takes in an entry, whatever its family.
pub const ADDR_BYTES: usize = 16;

/// The family byte of an address.
pub fn family_of(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => FAMILY_V4,
        IpAddr::V6(_) => FAMILY_V6,
    }
}

/// Writes `a` as 16 bytes at `at` (IPv4: four octets, then zeros).
fn put_addr(b: &mut [u8; ENTRY_BYTES], at: usize, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => b[at..at + 4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b[at..at + ADDR_BYTES].copy_from_slice(&v6.octets()),
    }
}

/// Reads the 16 bytes at `at` as an address of `family`; `None` for an
/// unknown family or an IPv4 address with non-zero trailing bytes.
fn get_addr(b: &[u8; ENTRY_BYTES], at: usize, family: u8) -> Option<IpAddr> {
    let mut raw = [0u8; ADDR_BYTES];
    raw.copy_from_slice(&b[at..at + ADDR_BYTES]);
    match family {
        FAMILY_V4 if raw[4..].iter().all(|&x| x == 0) => {
            Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])))
        }
        FAMILY_V6 => Some(IpAddr::V6(Ipv6Addr::from(raw))),
        _ => None,
    }
}

/// The filter of a `CloseMatching` request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatchFilter {
    /// Local prefix, IPv4 or IPv6.
    pub local: Option<Prefix>,
    /// Remote prefix, IPv4 or IPv6.
    pub remote: Option<Prefix>,
    /// Local port.
    pub local_port: Option<u16>,
    /// Remote port.
    pub remote_port: Option<u16>,
    /// State set (bit per RFC 9293 state number); 0 = any.
    pub states: u16,
    /// Minimum idle time.
    pub min_idle_ms: u32,
}

/// A decoded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Listen on `port` with `backlog`.
    Listen {
        /// Port.
        port: u16,
        /// Backlog.
        backlog: u32,
    },
    /// Connect to `addr:port`, from `local_port` (0 = ephemeral).
    Connect {
        /// Peer address, IPv4 or IPv6.
        addr: IpAddr,
        /// Peer port.
        port: u16,
        /// Our port or 0.
        local_port: u16,
    },
    /// Send `len` bytes of TX chunk `chunk`.
    Send {
        /// Connection.
        handle: u64,
        /// TX chunk index.
        chunk: u32,
        /// Bytes.
        len: u32,
    },
    /// Give back RX chunk `chunk`, whose `len` bytes were consumed.
    RecvDone {
        /// Connection.
        handle: u64,
        /// RX chunk index.
        chunk: u32,
        /// Bytes consumed.
        len: u32,
    },
    /// `shutdown(how)`; a `how` other than 0, 1, 2 is a decode error
    /// (EINVAL).
    Shutdown {
        /// Connection.
        handle: u64,
        /// Which side.
        how: Shutdown,
    },
    /// `SO_LINGER`.
    SetLinger {
        /// Connection.
        handle: u64,
        /// `l_onoff`.
        on: bool,
        /// `l_linger` in ms.
        ms: u32,
    },
    /// `SO_DONTLINGER`.
    SetDontLinger {
        /// Connection.
        handle: u64,
        /// TRUE = do not linger.
        dont: bool,
    },
    /// Read linger.
    GetLinger {
        /// Connection.
        handle: u64,
    },
    /// `closesocket`.
    Close {
        /// Connection or listener.
        handle: u64,
        /// Non-blocking.
        nonblocking: bool,
    },
    /// Hard close.
    Abort {
        /// Connection or listener.
        handle: u64,
    },
    /// Bulk teardown.
    CloseMatching {
        /// Filter.
        filter: MatchFilter,
        /// How (a linger time beyond [`MAX_LINGER_MS`] is a decode error).
        mode: CloseMode,
        /// Closes per second, 0 = unpaced.
        pace_per_s: u32,
    },
}

/// Why a request entry could not be decoded. Answered with EINVAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Unknown opcode byte.
    Opcode(u8),
    /// Flag bits the opcode does not define.
    Flags,
    /// A value out of its range (prefix length, mode, linger time,
    /// shutdown `how`, address family, stray bytes after an IPv4 address).
    Value,
}

fn u16_at(b: &[u8; ENTRY_BYTES], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8; ENTRY_BYTES], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8; ENTRY_BYTES], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}
fn put16(b: &mut [u8; ENTRY_BYTES], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8; ENTRY_BYTES], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8; ENTRY_BYTES], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

// Request entry offsets.
const R_USER_DATA: usize = 0;
const R_HANDLE: usize = 8;
const R_OPCODE: usize = 16;
const R_FLAGS: usize = 17;
const R_A16: usize = 18;
const R_A32: usize = 20;
const R_B32: usize = 24;
const R_C32: usize = 28;
// Connect: the family byte and the peer's 16 address bytes.
const R_FAMILY: usize = 24;
const R_ADDR: usize = 32;
// CloseMatching filter block (the handle field is unused by this opcode
// and holds the small fields; pace is A32, the linger time C32).
const M_LOCAL_LEN: usize = 8;
const M_REMOTE_LEN: usize = 9;
const M_PRESENT: usize = 10;
const M_MODE: usize = 11;
const M_STATES: usize = 12;
const M_LOCAL_PORT: usize = 14;
const M_REMOTE_PORT: usize = R_A16;
const M_IDLE: usize = R_B32;
const M_LOCAL: usize = 32;
const M_REMOTE: usize = 48;

/// Encodes a request (the client side).
pub fn encode_request(user_data: u64, op: &Op) -> [u8; ENTRY_BYTES] {
    let mut b = [0u8; ENTRY_BYTES];
    put64(&mut b, R_USER_DATA, user_data);
    let (code, handle, flags) = match *op {
        Op::Listen { port, backlog } => {
            put16(&mut b, R_A16, port);
            put32(&mut b, R_A32, backlog);
            (Opcode::Listen, 0, 0)
        }
        Op::Connect {
            addr,
            port,
            local_port,
        } => {
            put16(&mut b, R_A16, port);
            b[R_FAMILY] = family_of(addr);
            put_addr(&mut b, R_ADDR, addr);
            put32(&mut b, R_A32, u32::from(local_port));
            (Opcode::Connect, 0, 0)
        }
        Op::Send { handle, chunk, len } => {
            put32(&mut b, R_A32, chunk);
            put32(&mut b, R_B32, len);
            (Opcode::Send, handle, 0)
        }
        Op::RecvDone { handle, chunk, len } => {
            put32(&mut b, R_A32, chunk);
            put32(&mut b, R_B32, len);
            (Opcode::RecvDone, handle, 0)
        }
        Op::Shutdown { handle, how } => {
            put16(&mut b, R_A16, how as u16);
            (Opcode::Shutdown, handle, 0)
        }
        Op::SetLinger { handle, on, ms } => {
            put32(&mut b, R_A32, ms);
            (Opcode::SetLinger, handle, if on { LINGER_ON } else { 0 })
        }
        Op::SetDontLinger { handle, dont } => (
            Opcode::SetDontLinger,
            handle,
            if dont { DONT_LINGER } else { 0 },
        ),
        Op::GetLinger { handle } => (Opcode::GetLinger, handle, 0),
        Op::Close {
            handle,
            nonblocking,
        } => (
            Opcode::Close,
            handle,
            if nonblocking { CLOSE_NONBLOCK } else { 0 },
        ),
        Op::Abort { handle } => (Opcode::Abort, handle, 0),
        Op::CloseMatching {
            filter,
            mode,
            pace_per_s,
        } => {
            let (mode, linger_ms) = match mode {
                CloseMode::Graceful => (MODE_GRACEFUL, 0),
                CloseMode::Abort => (MODE_ABORT, 0),
                CloseMode::Linger { ms } => (MODE_LINGER, ms),
                CloseMode::Deadline { ms } => (MODE_DEADLINE, ms),
            };
            let mut present = 0;
            if let Some(p) = filter.local {
                put_addr(&mut b, M_LOCAL, p.addr());
                b[M_LOCAL_LEN] = p.prefix_len();
                present |= MATCH_LOCAL;
                if p.addr().is_ipv6() {
                    present |= MATCH_LOCAL_V6;
                }
            }
            if let Some(p) = filter.remote {
                put_addr(&mut b, M_REMOTE, p.addr());
                b[M_REMOTE_LEN] = p.prefix_len();
                present |= MATCH_REMOTE;
                if p.addr().is_ipv6() {
                    present |= MATCH_REMOTE_V6;
                }
            }
            if let Some(p) = filter.local_port {
                put16(&mut b, M_LOCAL_PORT, p);
                present |= MATCH_LOCAL_PORT;
            }
            if let Some(p) = filter.remote_port {
                put16(&mut b, M_REMOTE_PORT, p);
                present |= MATCH_REMOTE_PORT;
            }
            b[M_PRESENT] = present;
            b[M_MODE] = mode;
            put16(&mut b, M_STATES, filter.states);
            put32(&mut b, M_IDLE, filter.min_idle_ms);
            put32(&mut b, R_A32, pace_per_s);
            put32(&mut b, R_C32, linger_ms);
            return finish(b, Opcode::CloseMatching, 0);
        }
    };
    put64(&mut b, R_HANDLE, handle);
    finish(b, code, flags)
}

fn finish(mut b: [u8; ENTRY_BYTES], code: Opcode, flags: u8) -> [u8; ENTRY_BYTES] {
    b[R_OPCODE] = code as u8;
    b[R_FLAGS] = flags;
    b
}

/// Decodes a request copied out of shared memory. The `user_data` comes
/// back in both cases so that a bad request still gets its completion.
pub fn decode_request(b: &[u8; ENTRY_BYTES]) -> (u64, Result<Op, DecodeError>) {
    let user_data = u64_at(b, R_USER_DATA);
    (user_data, decode_op(b))
}

fn decode_op(b: &[u8; ENTRY_BYTES]) -> Result<Op, DecodeError> {
    let handle = u64_at(b, R_HANDLE);
    let flags = b[R_FLAGS];
    let code = Opcode::from_u8(b[R_OPCODE]).ok_or(DecodeError::Opcode(b[R_OPCODE]))?;
    let allowed = match code {
        Opcode::Close => CLOSE_NONBLOCK,
        Opcode::SetLinger => LINGER_ON,
        Opcode::SetDontLinger => DONT_LINGER,
        _ => 0,
    };
    if flags & !allowed != 0 {
        return Err(DecodeError::Flags);
    }
    let a16 = u16_at(b, R_A16);
    let a32 = u32_at(b, R_A32);
    let b32 = u32_at(b, R_B32);
    Ok(match code {
        Opcode::Listen => Op::Listen {
            port: a16,
            backlog: a32,
        },
        Opcode::Connect => Op::Connect {
            addr: get_addr(b, R_ADDR, b[R_FAMILY]).ok_or(DecodeError::Value)?,
            port: a16,
            local_port: u16::try_from(a32).map_err(|_| DecodeError::Value)?,
        },
        Opcode::Send => Op::Send {
            handle,
            chunk: a32,
            len: b32,
        },
        Opcode::RecvDone => Op::RecvDone {
            handle,
            chunk: a32,
            len: b32,
        },
        Opcode::Shutdown => Op::Shutdown {
            handle,
            how: Shutdown::from_code(a16).ok_or(DecodeError::Value)?,
        },
        Opcode::SetLinger => Op::SetLinger {
            handle,
            on: flags & LINGER_ON != 0,
            ms: a32,
        },
        Opcode::SetDontLinger => Op::SetDontLinger {
            handle,
            dont: flags & DONT_LINGER != 0,
        },
        Opcode::GetLinger => Op::GetLinger { handle },
        Opcode::Close => Op::Close {
            handle,
            nonblocking: flags & CLOSE_NONBLOCK != 0,
        },
        Opcode::Abort => Op::Abort { handle },
        Opcode::CloseMatching => {
            let present = b[M_PRESENT];
            let known = MATCH_LOCAL
                | MATCH_REMOTE
                | MATCH_LOCAL_PORT
                | MATCH_REMOTE_PORT
                | MATCH_LOCAL_V6
                | MATCH_REMOTE_V6;
            if present & !known != 0
                || (present & MATCH_LOCAL_V6 != 0 && present & MATCH_LOCAL == 0)
                || (present & MATCH_REMOTE_V6 != 0 && present & MATCH_REMOTE == 0)
            {
                return Err(DecodeError::Flags);
            }
            let prefix = |at: usize,
                          len_at: usize,
                          bit: u8,
                          v6_bit: u8|
             -> Result<Option<Prefix>, DecodeError> {
                if present & bit == 0 {
                    return Ok(None);
                }
                let family = if present & v6_bit != 0 {
                    FAMILY_V6
                } else {
                    FAMILY_V4
                };
                let addr = get_addr(b, at, family).ok_or(DecodeError::Value)?;
                Prefix::new(addr, b[len_at])
                    .map(Some)
                    .ok_or(DecodeError::Value)
            };
            let mode = match b[M_MODE] {
                MODE_GRACEFUL => CloseMode::Graceful,
                MODE_ABORT => CloseMode::Abort,
                MODE_LINGER => match u32_at(b, R_C32) {
                    ms if ms <= MAX_LINGER_MS => CloseMode::Linger { ms },
                    _ => return Err(DecodeError::Value),
                },
                MODE_DEADLINE => match u32_at(b, R_C32) {
                    ms if ms <= MAX_LINGER_MS => CloseMode::Deadline { ms },
                    _ => return Err(DecodeError::Value),
                },
                _ => return Err(DecodeError::Value),
            };
            Op::CloseMatching {
                filter: MatchFilter {
                    local: prefix(M_LOCAL, M_LOCAL_LEN, MATCH_LOCAL, MATCH_LOCAL_V6)?,
                    remote: prefix(M_REMOTE, M_REMOTE_LEN, MATCH_REMOTE, MATCH_REMOTE_V6)?,
                    local_port: (present & MATCH_LOCAL_PORT != 0).then(|| u16_at(b, M_LOCAL_PORT)),
                    remote_port: (present & MATCH_REMOTE_PORT != 0)
                        .then(|| u16_at(b, M_REMOTE_PORT)),
                    states: u16_at(b, M_STATES),
                    min_idle_ms: u32_at(b, M_IDLE),
                },
                mode,
                pace_per_s: a32,
            }
        }
    })
}

/// What a completion carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A plain answer.
    Reply,
    /// `GetLinger`'s answer.
    Linger {
        /// `l_onoff`.
        on: bool,
        /// ms.
        ms: u32,
    },
    /// A close finished.
    Closed(Outcome),
    /// `CloseMatching` finished (or, as an event, progressed) with a count.
    Count(u64),
    /// Event: a `Connect` was accepted; `handle` names it from now on.
    Connecting,
    /// `Connect` succeeded.
    Connected {
        /// Our port.
        local_port: u16,
    },
    /// Event: accepted on `listener` from `addr:port`.
    Accepted {
        /// The listener.
        listener: u64,
        /// Peer address, IPv4 or IPv6.
        addr: IpAddr,
        /// Peer port.
        port: u16,
    },
    /// Event: `len` bytes in RX chunk `chunk`.
    Data {
        /// RX chunk.
        chunk: u32,
        /// Bytes.
        len: u32,
    },
    /// Event: end of stream.
    PeerClosed,
    /// Event: the connection was reset or aborted (`result` says why).
    Reset,
}

/// A completion entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The request's `user_data` (events: the listen/connect request's).
    pub user_data: u64,
    /// The handle concerned.
    pub handle: u64,
    /// Result code.
    pub result: Errno,
    /// An unsolicited event rather than an answer.
    pub event: bool,
    /// What it carries.
    pub body: Body,
}

const C_USER_DATA: usize = 0;
const C_HANDLE: usize = 8;
const C_KIND: usize = 16;
const C_FLAGS: usize = 17;
const C_RESULT: usize = 18;
const C_A8: usize = 20;
const C_A32: usize = 24;
const C_B32: usize = 28;
const C_U64: usize = 32;
const C_PORT: usize = 40;
const C_FAMILY: usize = C_A8;
const C_ADDR: usize = 48;
const C_EVENT: u8 = 1;

/// Completion kinds (stable numbers).
const K_REPLY: u8 = 0;
const K_LINGER: u8 = 1;
const K_CLOSED: u8 = 2;
const K_COUNT: u8 = 3;
const K_CONNECTED: u8 = 4;
const K_ACCEPTED: u8 = 5;
const K_DATA: u8 = 6;
const K_PEER_CLOSED: u8 = 7;
const K_RESET: u8 = 8;
const K_CONNECTING: u8 = 9;

/// Why a completion entry could not be decoded (a daemon bug or a
/// corrupted region: the client drops the attachment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletionError;

impl Completion {
    /// Encodes (the daemon side).
    pub fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        put64(&mut b, C_USER_DATA, self.user_data);
        put64(&mut b, C_HANDLE, self.handle);
        b[C_FLAGS] = if self.event { C_EVENT } else { 0 };
        put16(&mut b, C_RESULT, self.result as u16);
        b[C_KIND] = match self.body {
            Body::Reply => K_REPLY,
            Body::Linger { on, ms } => {
                b[C_A8] = u8::from(on);
                put32(&mut b, C_A32, ms);
                K_LINGER
            }
            Body::Closed(o) => {
                b[C_A8] = o as u8;
                K_CLOSED
            }
            Body::Count(n) => {
                put64(&mut b, C_U64, n);
                K_COUNT
            }
            Body::Connected { local_port } => {
                put16(&mut b, C_PORT, local_port);
                K_CONNECTED
            }
            Body::Accepted {
                listener,
                addr,
                port,
            } => {
                put64(&mut b, C_U64, listener);
                b[C_FAMILY] = family_of(addr);
                put_addr(&mut b, C_ADDR, addr);
                put16(&mut b, C_PORT, port);
                K_ACCEPTED
            }
            Body::Data { chunk, len } => {
                put32(&mut b, C_A32, chunk);
                put32(&mut b, C_B32, len);
                K_DATA
            }
            Body::PeerClosed => K_PEER_CLOSED,
            Body::Reset => K_RESET,
            Body::Connecting => K_CONNECTING,
        };
        b
    }

    /// Decodes an entry read from a completion ring.
    pub fn decode(b: &[u8; ENTRY_BYTES]) -> Result<Completion, CompletionError> {
        let result = Errno::from_u16(u16_at(b, C_RESULT)).ok_or(CompletionError)?;
        if b[C_FLAGS] & !C_EVENT != 0 {
            return Err(CompletionError);
        }
        let body = match b[C_KIND] {
            K_REPLY => Body::Reply,
            K_LINGER => Body::Linger {
                on: b[C_A8] != 0,
                ms: u32_at(b, C_A32),
            },
            K_CLOSED => Body::Closed(Outcome::from_code(b[C_A8]).ok_or(CompletionError)?),
            K_COUNT => Body::Count(u64_at(b, C_U64)),
            K_CONNECTED => Body::Connected {
                local_port: u16_at(b, C_PORT),
            },
            K_ACCEPTED => Body::Accepted {
                listener: u64_at(b, C_U64),
                addr: get_addr(b, C_ADDR, b[C_FAMILY]).ok_or(CompletionError)?,
                port: u16_at(b, C_PORT),
            },
            K_DATA => Body::Data {
                chunk: u32_at(b, C_A32),
                len: u32_at(b, C_B32),
            },
            K_PEER_CLOSED => Body::PeerClosed,
            K_RESET => Body::Reset,
            K_CONNECTING => Body::Connecting,
            _ => return Err(CompletionError),
        };
        Ok(Completion {
            user_data: u64_at(b, C_USER_DATA),
            handle: u64_at(b, C_HANDLE),
            result,
            event: b[C_FLAGS] & C_EVENT != 0,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4() -> IpAddr {
        "198.18.0.2".parse().unwrap()
    }

    fn v6() -> IpAddr {
        "2001:db8::2".parse().unwrap()
    }

    fn every_op() -> Vec<Op> {
        let h = 0x0102_0304_0506_0708;
        vec![
            Op::Listen {
                port: 80,
                backlog: 65_536,
            },
            Op::Connect {
                addr: v4(),
                port: 443,
                local_port: 0,
            },
            Op::Connect {
                addr: v4(),
                port: 443,
                local_port: 50_000,
            },
            Op::Connect {
                addr: v6(),
                port: 443,
                local_port: 50_000,
            },
            Op::Send {
                handle: h,
                chunk: 7,
                len: 1_500,
            },
            Op::RecvDone {
                handle: h,
                chunk: 9,
                len: 100,
            },
            Op::Shutdown {
                handle: h,
                how: Shutdown::Receive,
            },
            Op::Shutdown {
                handle: h,
                how: Shutdown::Both,
            },
            Op::SetLinger {
                handle: h,
                on: true,
                ms: 5_000,
            },
            Op::SetDontLinger {
                handle: h,
                dont: true,
            },
            Op::GetLinger { handle: h },
            Op::Close {
                handle: h,
                nonblocking: true,
            },
            Op::Close {
                handle: h,
                nonblocking: false,
            },
            Op::Abort { handle: h },
            Op::CloseMatching {
                filter: MatchFilter::default(),
                mode: CloseMode::Deadline { ms: 5_000 },
                pace_per_s: 0,
            },
            Op::CloseMatching {
                filter: MatchFilter {
                    local: Some("2001:db8::/32".parse().unwrap()),
                    remote: Some("198.18.0.0/24".parse().unwrap()),
                    local_port: None,
                    remote_port: Some(443),
                    states: 0,
                    min_idle_ms: u32::MAX,
                },
                mode: CloseMode::Abort,
                pace_per_s: 7,
            },
            Op::CloseMatching {
                filter: MatchFilter {
                    local: Some("2001:db8::1/128".parse().unwrap()),
                    remote: Some("2001:2::/48".parse().unwrap()),
                    local_port: Some(u16::MAX),
                    remote_port: Some(1),
                    states: u16::MAX,
                    min_idle_ms: 1,
                },
                mode: CloseMode::Graceful,
                pace_per_s: u32::MAX,
            },
            Op::CloseMatching {
                filter: MatchFilter {
                    local: Some("198.18.0.0/24".parse().unwrap()),
                    remote: None,
                    local_port: Some(80),
                    remote_port: None,
                    states: 1 << 4,
                    min_idle_ms: 30_000,
                },
                mode: CloseMode::Linger { ms: 2_000 },
                pace_per_s: 100_000,
            },
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for (i, op) in every_op().into_iter().enumerate() {
            let b = encode_request(i as u64 + 1, &op);
            assert_eq!(decode_request(&b), (i as u64 + 1, Ok(op)));
        }
    }

    #[test]
    fn hostile_requests_are_errors_with_their_user_data() {
        let mut b = encode_request(42, &Op::Abort { handle: 1 });
        b[R_OPCODE] = 0xee;
        assert_eq!(decode_request(&b), (42, Err(DecodeError::Opcode(0xee))));
        let mut b = encode_request(43, &Op::Abort { handle: 1 });
        b[R_FLAGS] = 0x80;
        assert_eq!(decode_request(&b), (43, Err(DecodeError::Flags)));
        let mut b = encode_request(44, &every_op().pop().unwrap());
        b[M_LOCAL_LEN] = 33;
        assert_eq!(decode_request(&b), (44, Err(DecodeError::Value)));
        let mut b = encode_request(45, &every_op().pop().unwrap());
        b[M_MODE] = 4;
        assert_eq!(decode_request(&b), (45, Err(DecodeError::Value)));
        let mut b = encode_request(46, &every_op().pop().unwrap());
        b[R_C32..R_C32 + 4].copy_from_slice(&(MAX_LINGER_MS + 1).to_le_bytes());
        assert_eq!(decode_request(&b), (46, Err(DecodeError::Value)));
        // A bad `how` is refused here, before any engine sees it.
        for how in [3u16, 200, 0x0100, u16::MAX] {
            let mut b = encode_request(
                47,
                &Op::Shutdown {
                    handle: 1,
                    how: Shutdown::Send,
                },
            );
            b[R_A16..R_A16 + 2].copy_from_slice(&how.to_le_bytes());
            assert_eq!(decode_request(&b), (47, Err(DecodeError::Value)), "{how}");
        }
    }

    #[test]
    fn every_byte_string_decodes_or_errs_without_panicking() {
        // A cheap exhaustive-ish sweep: every value of the bytes that steer
        // decoding, the rest pseudo-random.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for opcode in 0..=255u8 {
            for flags in [0u8, 1, 2, 0xff] {
                let mut b = [0u8; ENTRY_BYTES];
                for byte in b.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *byte = seed as u8;
                }
                b[R_OPCODE] = opcode;
                b[R_FLAGS] = flags;
                let _ = decode_request(&b);
                let _ = Completion::decode(&b);
            }
        }
    }

    #[test]
    fn completions_round_trip() {
        let bodies = [
            Body::Reply,
            Body::Linger {
                on: true,
                ms: 65_535_000,
            },
            Body::Closed(Outcome::AbortedLinger),
            Body::Count(10_000_000),
            Body::Connected { local_port: 40_000 },
            Body::Accepted {
                listener: 5,
                addr: v4(),
                port: 1234,
            },
            Body::Accepted {
                listener: 6,
                addr: v6(),
                port: 4321,
            },
            Body::Data {
                chunk: 3,
                len: 2_048,
            },
            Body::PeerClosed,
            Body::Reset,
            Body::Connecting,
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let c = Completion {
                user_data: i as u64,
                handle: 99,
                result: Errno::ALL[i % Errno::ALL.len()],
                event: i % 2 == 1,
                body,
            };
            assert_eq!(Completion::decode(&c.encode()), Ok(c));
        }
        let mut bad = Completion {
            user_data: 0,
            handle: 0,
            result: Errno::Ok,
            event: false,
            body: Body::Reply,
        }
        .encode();
        bad[C_KIND] = 99;
        assert_eq!(Completion::decode(&bad), Err(CompletionError));
    }

    #[test]
    fn hostile_families_and_addresses_are_decode_errors() {
        let connect = |addr| Op::Connect {
            addr,
            port: 80,
            local_port: 0,
        };
        // Unknown family bytes.
        for family in [0u8, 2, 5, 7, 10, 0xff] {
            let mut b = encode_request(50, &connect(v4()));
            b[R_FAMILY] = family;
            assert_eq!(
                decode_request(&b),
                (50, Err(DecodeError::Value)),
                "{family}"
            );
        }
        // An IPv4 address with bytes after its four octets.
        let mut b = encode_request(51, &connect(v4()));
        b[R_ADDR + 15] = 1;
        assert_eq!(decode_request(&b), (51, Err(DecodeError::Value)));
        // The same bytes under the IPv6 family are a valid (other) address.
        b[R_FAMILY] = FAMILY_V6;
        let (_, op) = decode_request(&b);
        assert!(matches!(
            op,
            Ok(Op::Connect {
                addr: IpAddr::V6(_),
                ..
            })
        ));

        let filter = |local: &str| Op::CloseMatching {
            filter: MatchFilter {
                local: Some(local.parse().unwrap()),
                ..MatchFilter::default()
            },
            mode: CloseMode::Abort,
            pace_per_s: 0,
        };
        // A v6 prefix may be up to 128 long, a v4 one up to 32.
        let mut b = encode_request(52, &filter("2001:db8::/32"));
        b[M_LOCAL_LEN] = 128;
        assert!(decode_request(&b).1.is_ok());
        b[M_LOCAL_LEN] = 129;
        assert_eq!(decode_request(&b), (52, Err(DecodeError::Value)));
        // Clearing the v6 bit makes the same bytes a v4 prefix with stray
        // bytes: refused, not truncated.
        let mut b = encode_request(53, &filter("2001:db8::1/32"));
        b[M_PRESENT] &= !MATCH_LOCAL_V6;
        assert_eq!(decode_request(&b), (53, Err(DecodeError::Value)));
        // A family bit without its prefix, and unknown present bits.
        let mut b = encode_request(54, &filter("198.18.0.0/24"));
        b[M_PRESENT] |= MATCH_REMOTE_V6;
        assert_eq!(decode_request(&b), (54, Err(DecodeError::Flags)));
        b[M_PRESENT] = MATCH_LOCAL | 0x40;
        assert_eq!(decode_request(&b), (54, Err(DecodeError::Flags)));

        // Completions: an unknown family or stray v4 bytes are errors.
        let accepted = Completion {
            user_data: 1,
            handle: 2,
            result: Errno::Ok,
            event: true,
            body: Body::Accepted {
                listener: 3,
                addr: v4(),
                port: 80,
            },
        };
        let mut b = accepted.encode();
        b[C_FAMILY] = 0;
        assert_eq!(Completion::decode(&b), Err(CompletionError));
        let mut b = accepted.encode();
        b[C_ADDR + 4] = 9;
        assert_eq!(Completion::decode(&b), Err(CompletionError));
    }

    #[test]
    fn addresses_sit_at_their_documented_offsets() {
        let b = encode_request(
            1,
            &Op::Connect {
                addr: v6(),
                port: 80,
                local_port: 0,
            },
        );
        assert_eq!(b[R_FAMILY], FAMILY_V6);
        assert_eq!(
            &b[R_ADDR..R_ADDR + 16],
            &"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets()
        );
        let b = encode_request(
            1,
            &Op::Connect {
                addr: v4(),
                port: 80,
                local_port: 0,
            },
        );
        assert_eq!(b[R_FAMILY], FAMILY_V4);
        assert_eq!(&b[R_ADDR..R_ADDR + 4], &[198, 18, 0, 2]);
        assert!(b[R_ADDR + 4..R_ADDR + 16].iter().all(|&x| x == 0));
    }
}
