//! The engine's client-facing vocabulary: requests in, completions out.
//!
//! These are plain Rust values, mapped 1:1 onto the shared-memory ABI by the
//! ring layer (a `Vec<u8>` here is an arena chunk there). This module owns
//! only the types and their invariants; it performs no work. Every request
//! gets exactly one completion carrying its `user_data`; events (accepted,
//! data, peer closed, reset, progress) are extra completions with
//! [`Completion::is_event`] set.

use std::net::SocketAddrV4;

use lingerd_abi::Errno;
pub use lingerd_abi::vocab::{ClientExitPolicy, Prefix, Shutdown};

use crate::table::Handle;
use crate::tcp::linger::Linger;

/// How `close_matching` closes what it finds: the shared
/// [`lingerd_abi::CloseMode`], under the name the engine's close code
/// still uses (one type; the old name stays while the close matrix is
/// being rewritten, so that the two changes merge cleanly).
pub use lingerd_abi::vocab::CloseMode as MatchMode;
/// How a close ended: the shared [`lingerd_abi::Outcome`], under the
/// engine's older name (one type, see [`MatchMode`]).
pub use lingerd_abi::vocab::Outcome as CloseOutcome;

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

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Open a listener on a local port. Completes with the listener handle.
    Listen {
        /// The local port.
        port: u16,
        /// The most handshakes in progress before SYN cookies take over.
        backlog: u32,
    },
    /// Active open. An event `Connecting` carries the new handle at once
    /// (so the client can close or abort it); the request completes
    /// (`Connected`) when established, or with ECONNREFUSED / ETIMEDOUT /
    /// OPERATION_ABORTED.
    Connect {
        /// The peer.
        remote: SocketAddrV4,
        /// Our port; `None` picks an ephemeral one.
        local_port: Option<u16>,
    },
    /// Queue data. Completes at once: OK when queued whole, ENOBUFS (nothing
    /// queued) when the send buffer has no room, ESHUTDOWN after shutdown.
    Send {
        /// The connection.
        handle: Handle,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The client consumed `len` bytes of delivered data: the receive window
    /// opens by as much.
    RecvDone {
        /// The connection.
        handle: Handle,
        /// Bytes consumed.
        len: u32,
    },
    /// `shutdown(how)`. A raw `how` other than 0, 1, 2 never gets here:
    /// the ring decoder answers it with EINVAL.
    Shutdown {
        /// The connection.
        handle: Handle,
        /// Which side.
        how: Shutdown,
    },
    /// `SO_LINGER`, time in milliseconds (≤ 65,535 s).
    SetLinger {
        /// The connection.
        handle: Handle,
        /// The new setting.
        linger: Linger,
    },
    /// `SO_DONTLINGER`.
    SetDontLinger {
        /// The connection.
        handle: Handle,
        /// TRUE = do not linger.
        dont: bool,
    },
    /// Read the linger setting; completes with [`Detail::Linger`].
    GetLinger {
        /// The connection.
        handle: Handle,
    },
    /// `closesocket` (CLOSE-SEMANTICS.md §2).
    Close {
        /// The connection or listener.
        handle: Handle,
        /// A non-blocking close fails with EWOULDBLOCK instead of lingering.
        nonblocking: bool,
    },
    /// Hard close whatever the linger setting (§3).
    Abort {
        /// The connection.
        handle: Handle,
    },
    /// Bulk teardown (§6). Completes once with [`Detail::Count`].
    CloseMatching {
        /// Which connections.
        filter: Filter,
        /// How to close them.
        mode: MatchMode,
        /// Closes per second; 0 = as fast as the engine allows.
        pace_per_s: u32,
    },
}

/// Bulk teardown filter; every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Our address within this prefix.
    pub local: Option<Prefix>,
    /// The peer's address within this prefix.
    pub remote: Option<Prefix>,
    /// Our port.
    pub local_port: Option<u16>,
    /// The peer's port.
    pub remote_port: Option<u16>,
    /// States to match (a bit per [`crate::tcp::State`]); 0 = any.
    pub states: u16,
    /// Idle for at least this long (no segment received or sent).
    pub min_idle_ms: u32,
}

impl Filter {
    /// Whether a connection with this tuple, state and idle time matches
    /// every field that is set. (Who may act on it is the caller's rule.)
    pub fn matches(
        &self,
        tuple: &crate::table::FourTuple,
        state: crate::tcp::State,
        idle_ms: u64,
    ) -> bool {
        self.local.is_none_or(|p| p.contains_v4(tuple.local_addr))
            && self.remote.is_none_or(|p| p.contains_v4(tuple.remote_addr))
            && self.local_port.is_none_or(|p| p == tuple.local_port)
            && self.remote_port.is_none_or(|p| p == tuple.remote_port)
            && (self.states == 0 || self.states & state.bit() != 0)
            && idle_ms >= u64::from(self.min_idle_ms)
    }
}

/// One connection as `lingerd ctl conns` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// Its handle.
    pub handle: Handle,
    /// Its 4-tuple.
    pub tuple: crate::table::FourTuple,
    /// Its state.
    pub state: crate::tcp::State,
    /// The client that owns it.
    pub owner: ClientId,
    /// Closed by its client, finishing in the background.
    pub orphan: bool,
    /// Milliseconds since the last segment in or out.
    pub idle_ms: u64,
    /// Bytes queued to send (unacknowledged).
    pub send_queue: u32,
    /// Bytes delivered to the client and not yet consumed.
    pub recv_queue: u32,
    /// Linger setting.
    pub linger: Linger,
    /// Milliseconds until the lifetime deadline (linger, orphan, TIME-WAIT,
    /// SYN-RECEIVED), if one is armed.
    pub close_in_ms: Option<u64>,
    /// The lifetime deadline is a linger deadline (a blocking linger close
    /// waiting, or a background close bounded by a linger time).
    pub lingering: bool,
    /// Milliseconds until the retransmission / persist / SYN retry
    /// deadline, if one is armed.
    pub rtx_in_ms: Option<u64>,
}

/// What a completion says beyond its result code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Nothing more.
    None,
    /// `GetLinger`'s answer.
    Linger(Linger),
    /// A close finished.
    Closed(CloseOutcome),
    /// `CloseMatching` finished, or progressed (event), with this many closes.
    Count(u64),
    /// Event: a connection was accepted on listener `listener`.
    Accepted {
        /// The listener it arrived on.
        listener: Handle,
        /// The peer.
        remote: SocketAddrV4,
    },
    /// Event: a `Connect` was accepted and has this handle (in
    /// [`Completion::handle`]); its completion follows.
    Connecting,
    /// `Connect` succeeded, from this local port.
    Connected {
        /// Our port.
        local_port: u16,
    },
    /// Event: in-order data from the peer.
    Data(Vec<u8>),
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
