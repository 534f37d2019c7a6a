//! Result codes carried in completions, with stable numbers.
//!
//! The numbers are part of the ABI: never renumber, only append. They follow
//! docs/close-semantics.md#errors and keep the Winsock meaning of each name.

/// A completion's result code. `Ok` is 0; the rest are stable, non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Errno {
    /// Done.
    Ok = 0,
    /// Handle unknown, dead, or of a recycled slot (stale generation).
    NotSock = 1,
    /// The handle belongs to another client.
    Perm = 2,
    /// A non-blocking linger close cannot complete now; nothing was started.
    WouldBlock = 3,
    /// Bad argument (shutdown `how`, linger range, opcode, flags).
    Inval = 4,
    /// The operation needs a connected handle.
    NotConn = 5,
    /// The peer reset the connection.
    ConnReset = 6,
    /// The connection was aborted locally by a timeout or failure.
    ConnAborted = 7,
    /// The port or interface is down.
    NetDown = 8,
    /// An operation of the same kind is still pending on the handle.
    InProgress = 9,
    /// The request was cancelled because its handle was closed.
    OperationAborted = 10,
    /// No ring or memory space; nothing was done, retry.
    NoBufs = 11,
    /// The connection attempt or operation timed out.
    TimedOut = 12,
    /// The peer refused the connection.
    ConnRefused = 13,
    /// Sending after `shutdown(SEND)`.
    Shutdown = 14,
    /// The address and port are already in use.
    AddrInUse = 15,
    /// No route to the destination (off every local link, no gateway).
    NetUnreach = 16,
}

impl Errno {
    /// Every code, in numeric order.
    pub const ALL: [Errno; 17] = [
        Errno::Ok,
        Errno::NotSock,
        Errno::Perm,
        Errno::WouldBlock,
        Errno::Inval,
        Errno::NotConn,
        Errno::ConnReset,
        Errno::ConnAborted,
        Errno::NetDown,
        Errno::InProgress,
        Errno::OperationAborted,
        Errno::NoBufs,
        Errno::TimedOut,
        Errno::ConnRefused,
        Errno::Shutdown,
        Errno::AddrInUse,
        Errno::NetUnreach,
    ];

    /// Decodes a code read from shared memory; unknown numbers are `None`.
    pub fn from_u16(raw: u16) -> Option<Errno> {
        Errno::ALL.get(usize::from(raw)).copied()
    }

    /// The Winsock name of the code, for logs and the C header.
    pub fn winsock_name(self) -> &'static str {
        match self {
            Errno::Ok => "0",
            Errno::NotSock => "WSAENOTSOCK",
            Errno::Perm => "EPERM",
            Errno::WouldBlock => "WSAEWOULDBLOCK",
            Errno::Inval => "WSAEINVAL",
            Errno::NotConn => "WSAENOTCONN",
            Errno::ConnReset => "WSAECONNRESET",
            Errno::ConnAborted => "WSAECONNABORTED",
            Errno::NetDown => "WSAENETDOWN",
            Errno::InProgress => "WSAEINPROGRESS",
            Errno::OperationAborted => "WSA_OPERATION_ABORTED",
            Errno::NoBufs => "WSAENOBUFS",
            Errno::TimedOut => "WSAETIMEDOUT",
            Errno::ConnRefused => "WSAECONNREFUSED",
            Errno::Shutdown => "WSAESHUTDOWN",
            Errno::AddrInUse => "WSAEADDRINUSE",
            Errno::NetUnreach => "WSAENETUNREACH",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense_and_decode_back() {
        for (i, e) in Errno::ALL.iter().enumerate() {
            assert_eq!(*e as u16 as usize, i);
            assert_eq!(Errno::from_u16(i as u16), Some(*e));
        }
        assert_eq!(Errno::from_u16(Errno::ALL.len() as u16), None);
        assert_eq!(Errno::from_u16(u16::MAX), None);
    }
}
