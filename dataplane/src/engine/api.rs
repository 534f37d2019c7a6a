//! The engine's client-facing vocabulary: requests in, completions out.
//!
//! These are plain Rust values, mapped 1:1 onto the shared-memory ABI by the
//! ring layer (a `Vec<u8>` here is an arena chunk there). This module owns
//! only the types and their invariants; it performs no work. Every request
//! gets exactly one completion carrying its `user_data`; events (accepted,
//! data, peer closed, reset, progress) are extra completions with
//! [`Completion::is_event`] set.

use std::net::{IpAddr, SocketAddr};

pub use crate::shared::{
    ADMIN_CLIENT, CTL_CLIENT, ClientExitPolicy, ClientId, CloseMode, Completion, Detail, Outcome,
};
use crate::table::Handle;
use crate::tcp::linger::Linger;

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
        /// The peer (IPv4 or IPv6).
        remote: SocketAddr,
        /// Our port; `None` picks an ephemeral one.
        local_port: Option<u16>,
        /// Our address (bind before connect): one of the engine's, of the
        /// peer's family, else the connect fails with EINVAL; `None` picks
        /// the first address of the peer's family on the peer's link, else
        /// the first of its family (none: ENETUNREACH).
        local_addr: Option<IpAddr>,
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
    /// `shutdown(how)`, `how` raw so that a bad value reaches EINVAL.
    Shutdown {
        /// The connection.
        handle: Handle,
        /// Which side(s), decoded (a bad value never reaches the engine).
        how: lingerd_abi::vocab::Shutdown,
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
    /// `closesocket` (docs/close-semantics.md#linger-matrix).
    Close {
        /// The connection or listener.
        handle: Handle,
        /// A non-blocking close fails with EWOULDBLOCK instead of lingering.
        nonblocking: bool,
    },
    /// Hard close whatever the linger setting (docs/close-semantics.md#abort).
    Abort {
        /// The connection.
        handle: Handle,
    },
    /// Bulk teardown (docs/close-semantics.md#bulk-close). Completes once with [`Detail::Count`].
    CloseMatching {
        /// Which connections.
        filter: Filter,
        /// How to close them.
        mode: CloseMode,
        /// Closes per second; 0 = as fast as the engine allows.
        pace_per_s: u32,
    },
}

/// Bulk teardown filter; every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Our address within this prefix (IPv4 or IPv6; a connection of the
    /// other family never matches).
    pub local: Option<Prefix>,
    /// The peer's address within this prefix (as `local`).
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
        self.local.is_none_or(|p| p.contains(tuple.local_addr))
            && self.remote.is_none_or(|p| p.contains(tuple.remote_addr))
            && self.local_port.is_none_or(|p| p == tuple.local_port)
            && self.remote_port.is_none_or(|p| p == tuple.remote_port)
            && (self.states == 0 || self.states & state.bit() != 0)
            && idle_ms >= u64::from(self.min_idle_ms)
    }
}

/// How far a running `close_matching` has got on one engine
/// ([`QueueEngine::match_progress`](super::QueueEngine::match_progress)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatchProgress {
    /// Connections it closed so far.
    pub closed: u64,
    /// Table slots it has walked (its cursor).
    pub walked: u32,
    /// Table slots in use now: the walk ends there (the table may grow
    /// or shrink meanwhile, so `walked / slots` is an estimate).
    pub slots: u32,
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

pub use lingerd_abi::vocab::Prefix;
