//! The vocabulary the engine and the connection logic (`tcp`) share: who a
//! client is, what a completion says, how a close ended, what the engine must
//! do with a record after an event, the TCP configuration and the counters.
//!
//! It owns these types and nothing that uses them: it is a leaf that both
//! `engine` and `tcp` import, so neither has to import the other. It may
//! import only the wire formats, the table's handle and the linger setting;
//! never `engine` or the connection logic.

pub mod config;
pub mod counters;
pub mod histogram;
pub mod reply_limit;

use std::net::{IpAddr, SocketAddr};

use lingerd_abi::Errno;
pub use lingerd_abi::vocab::{ClientExitPolicy, CloseMode, Outcome};

use crate::table::Handle;
use crate::tcp::linger::Linger;
use crate::wire::ControlSegment;

/// A pure-header segment to a peer of either family.
pub(crate) type CtlSegment = ControlSegment<IpAddr>;

/// A client of the engine (one attached process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u16);

/// The daemon itself (its own app: the `listen:` ports): may act on every
/// connection.
pub const ADMIN_CLIENT: ClientId = ClientId(u16::MAX);

/// The operator (`lingerd ctl kill`): admin rights like [`ADMIN_CLIENT`],
/// under an id of its own so the shell can route its completions apart
/// from the daemon's app, and so that a kill of the app's connections
/// tells the app (an admin kill tells every owner that is not the killer).
/// It owns no connections.
pub const CTL_CLIENT: ClientId = ClientId(u16::MAX - 1);

impl ClientId {
    /// Whether this client may act on every connection, whoever owns it
    /// ([`ADMIN_CLIENT`] and [`CTL_CLIENT`]). Attached clients never get
    /// these ids.
    pub const fn is_admin(self) -> bool {
        self.0 == ADMIN_CLIENT.0 || self.0 == CTL_CLIENT.0
    }
}

/// What a completion says beyond its result code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Nothing more.
    None,
    /// `GetLinger`'s answer.
    Linger(Linger),
    /// A close finished.
    Closed(Outcome),
    /// `CloseMatching` finished, or progressed (event), with this many closes.
    Count(u64),
    /// Event: a connection was accepted on listener `listener`.
    Accepted {
        /// The listener it arrived on.
        listener: Handle,
        /// The peer.
        remote: SocketAddr,
    },
    /// Event: a `Connect` was accepted and has this handle (in
    /// [`Completion::handle`]); its completion follows.
    Connecting,
    /// `Connect` succeeded, from this local port.
    Connected {
        /// Our port.
        local_port: u16,
    },
    /// Event: in-order data from the peer, in an owned copy (when no
    /// [`RxSink`] took it).
    Data(Vec<u8>),
    /// Event: in-order data from the peer, already written by an
    /// [`RxSink`] into the client's receive chunk `chunk`.
    DataInChunk {
        /// The receive chunk (an index into the client's RX arena).
        chunk: u32,
        /// Bytes written at its start.
        len: u32,
    },
    /// Event: the peer sent FIN (end of stream).
    PeerClosed,
    /// Event: the connection was reset (by the peer: ECONNRESET; or aborted
    /// by a timeout: ECONNABORTED / ETIMEDOUT, in `result`).
    Reset,
}

/// One entry of a client's completion queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Who it is for.
    pub client: ClientId,
    /// The request's `user_data` (for events: the listen or connect request's).
    pub user_data: u64,
    /// The handle concerned (a fresh one for `Listen`, `Connect`, accepts).
    pub handle: Handle,
    /// Result code.
    pub result: Errno,
    /// Extra information.
    pub detail: Detail,
    /// An unsolicited event rather than the answer to a request.
    pub is_event: bool,
}

/// Where received payload goes: straight into the receive memory of the
/// client it is for (its RX chunk), so that the data path copies each byte
/// once and allocates nothing.
pub trait RxSink {
    /// Writes `data`, in-order payload for one of `client`'s connections,
    /// into memory the client will read, and returns the detail naming
    /// where it went. `None` when it cannot (no free chunk, another
    /// client, too long): the engine then keeps an owned copy
    /// ([`Detail::Data`]) that the client's queue delivers later, in order.
    fn place(&mut self, client: ClientId, data: &[u8]) -> Option<Detail>;
}

/// The sink that takes nothing: every payload becomes [`Detail::Data`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSink;

impl RxSink for NoSink {
    fn place(&mut self, _client: ClientId, _data: &[u8]) -> Option<Detail> {
        None
    }
}

/// What the engine must do with a connection's record after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Keep it (re-file its timer, transmit if it has output).
    Keep,
    /// Keep it and send this control segment.
    Reply(CtlSegment),
    /// Free it now (no TIME-WAIT).
    Free,
    /// Send this control segment, then free it.
    ResetAndFree(CtlSegment),
    /// The connection is dead but the client still holds the handle: take it
    /// out of the 4-tuple index and keep the record until the client closes.
    Unindex,
    /// As `Unindex`, and send this control segment first.
    ResetAndUnindex(CtlSegment),
    /// A new SYN ended a TIME-WAIT (RFC 6191 spirit): free the record (or
    /// only unindex it while the client still holds the handle), then hand
    /// the segment to the listener as a fresh connection request.
    Reopen,
}

/// What one of our own RSTs is timed against when it leaves, for the
/// `/metrics` histograms: nothing, the close request that decided it, or
/// the linger (or `deadline=`) deadline it enforces. Eight bytes: 0 is
/// untimed; otherwise the top bit says which, the rest is nanoseconds
/// since the engine's epoch, plus one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RstClock(u64);

/// The top bit of an [`RstClock`]: a deadline, not a request.
const DEADLINE_BIT: u64 = 1 << 63;

impl RstClock {
    /// Not timed (the RST answers a peer, or ends a connection for a
    /// reason with no time of its own: an orphan timeout, data after close).
    pub(crate) const UNTIMED: RstClock = RstClock(0);

    /// Decided by a close request at `ns`.
    #[inline]
    pub(crate) fn request(ns: u64) -> RstClock {
        RstClock((ns & !DEADLINE_BIT).saturating_add(1) & !DEADLINE_BIT)
    }

    /// Sent for a deadline that fell due at `ns`.
    #[inline]
    pub(crate) fn deadline(ns: u64) -> RstClock {
        RstClock(RstClock::request(ns).0 | DEADLINE_BIT)
    }

    /// The request's time, when it is one.
    #[inline]
    pub(crate) fn request_ns(self) -> Option<u64> {
        (self.0 != 0 && self.0 & DEADLINE_BIT == 0).then(|| self.0 - 1)
    }

    /// The deadline's time, when it is one.
    #[inline]
    pub(crate) fn deadline_ns(self) -> Option<u64> {
        (self.0 & DEADLINE_BIT != 0).then(|| (self.0 & !DEADLINE_BIT) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::RstClock;

    #[test]
    fn an_rst_clock_says_which_time_it_holds() {
        assert_eq!(RstClock::UNTIMED.request_ns(), None);
        assert_eq!(RstClock::UNTIMED.deadline_ns(), None);
        for ns in [0, 1, 12_345, (1 << 62) + 7] {
            assert_eq!(RstClock::request(ns).request_ns(), Some(ns));
            assert_eq!(RstClock::request(ns).deadline_ns(), None);
            assert_eq!(RstClock::deadline(ns).deadline_ns(), Some(ns));
            assert_eq!(RstClock::deadline(ns).request_ns(), None);
        }
    }
}
