//! Client requests: validation of handles and arguments, then the matching
//! operation (docs/close-semantics.md).
//!
//! It owns the rules that apply before a connection's logic runs: the handle
//! must be this core's, alive, not closed, and the caller's (ENOTSOCK,
//! EPERM); arguments must be in range (EINVAL). Every request gets exactly
//! one completion, posted here or by the connection logic it calls.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use lingerd_abi::Errno;

use super::api::{ClientId, Completion, Detail, Request};
use super::{Listener, QueueEngine};
use crate::shared::Disposition;
use crate::table::{FourTuple, Handle, InsertError};
use crate::tcp::linger::MAX_LINGER_MS;
use crate::tcp::sendbuf::Fill;
use crate::tcp::state::State;
use crate::tcp::tcb::{Tcb, TcbFlags};
use crate::tcp::{close, open};
use crate::wire::SeqNumber;

/// Which requests a handle with a blocking close pending still takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Ordinary requests: EINPROGRESS while a close is pending.
    Normal,
    /// Abort: escalates a pending close.
    Escalate,
}

impl QueueEngine {
    /// Optional hint before [`prefetch_request`](Self::prefetch_request):
    /// starts fetching the slot of the connection a request names. A shell
    /// taking a burst calls this for the whole burst, then
    /// `prefetch_request` for the whole burst, then handles it, so that the
    /// slot misses overlap, then the index misses. No effect on behaviour.
    #[inline]
    pub fn prefetch_request_slot(&self, request: &Request) {
        if let Request::Abort { handle } | Request::Close { handle, .. } = request {
            self.table.prefetch_slot(*handle);
        }
    }

    /// Optional hint before [`handle_request`](Self::handle_request): for a
    /// request that may free its connection at once (`Abort`, `Close`),
    /// starts fetching the table memory the removal touches (it reads the
    /// slot, so [`prefetch_request_slot`](Self::prefetch_request_slot) it
    /// first). A shell that takes a burst of requests from a client ring
    /// calls this for the whole burst first, so that the random index
    /// accesses of a bulk close overlap instead of stalling one after the
    /// other. It asks for the whole slot first (as
    /// `prefetch_request_slot`; free when that came before), so that the
    /// record's lines arrive together with the key it reads. No effect on
    /// behaviour; skipping it is always correct.
    #[inline]
    pub fn prefetch_request(&self, request: &Request) {
        if let Request::Abort { handle } | Request::Close { handle, .. } = request {
            self.table.prefetch_slot(*handle);
            self.table.prefetch_remove(*handle);
        }
    }

    /// Takes one client request. Its completion (exactly one) is posted now
    /// or later; see [`Request`] for when.
    pub fn handle_request(
        &mut self,
        now: Instant,
        client: ClientId,
        user_data: u64,
        request: Request,
    ) {
        let now_ms = self.enter(now);
        // Whatever this request closes is timed from now to the wire.
        self.rst_clock = crate::shared::RstClock::request(self.now_ns);
        match request {
            Request::Listen { port, backlog } => {
                self.listen(now_ms, client, user_data, port, backlog)
            }
            Request::Connect {
                remote,
                local_port,
                local_addr,
            } => self.connect(
                now,
                now_ms,
                client,
                user_data,
                (remote, local_addr, local_port),
            ),
            Request::Send { handle, data } => self.send(
                now_ms,
                client,
                user_data,
                handle,
                data.len(),
                &mut |off, dst| {
                    dst.copy_from_slice(&data[off..off + dst.len()]);
                    true
                },
            ),
            Request::RecvDone { handle, len } => {
                self.on_conn(
                    now_ms,
                    client,
                    user_data,
                    handle,
                    Access::Normal,
                    |tcb, cx| {
                        let before = tcb.receive_space(cx.cfg.recv_buffer);
                        tcb.unconsumed = tcb.unconsumed.saturating_sub(len);
                        let after = tcb.receive_space(cx.cfg.recv_buffer);
                        // A window update when the window opens by an MSS or
                        // from closed (RFC 9293 §3.8.6.2.2 receiver SWS rule).
                        if tcb.state.can_receive()
                            && (before == 0 || after - before >= u32::from(tcb.mss))
                            && after > before
                        {
                            tcb.flags.insert(TcbFlags::NEED_ACK);
                        }
                        cx.complete(client, user_data, Errno::Ok, Detail::None);
                        Disposition::Keep
                    },
                )
            }
            Request::Shutdown { handle, .. } if self.is_listener(handle) => {
                // docs/close-semantics.md#shutdown: shutdown of a listener fails with ENOTCONN (it is not
                // connected), after the ownership check every request gets.
                let owner = self.table.get(handle).map(|t| t.owner);
                let e = if owner != Some(client) && !client.is_admin() {
                    Errno::Perm
                } else {
                    Errno::NotConn
                };
                self.complete(client, user_data, handle, e, Detail::None);
            }
            Request::Shutdown { handle, how } => self.on_conn(
                now_ms,
                client,
                user_data,
                handle,
                Access::Normal,
                |tcb, cx| close::shutdown(tcb, cx, user_data, how),
            ),
            Request::SetLinger { handle, linger } => self.on_conn(
                now_ms,
                client,
                user_data,
                handle,
                Access::Normal,
                |tcb, cx| {
                    let e = match tcb.linger.set(linger.on, linger.ms) {
                        Ok(()) => Errno::Ok,
                        Err(_) => Errno::Inval,
                    };
                    cx.complete(client, user_data, e, Detail::None);
                    Disposition::Keep
                },
            ),
            Request::SetDontLinger { handle, dont } => self.on_conn(
                now_ms,
                client,
                user_data,
                handle,
                Access::Normal,
                |tcb, cx| {
                    tcb.linger.set_dont_linger(dont);
                    cx.complete(client, user_data, Errno::Ok, Detail::None);
                    Disposition::Keep
                },
            ),
            Request::GetLinger { handle } => self.on_conn(
                now_ms,
                client,
                user_data,
                handle,
                Access::Normal,
                |tcb, cx| {
                    cx.complete(client, user_data, Errno::Ok, Detail::Linger(tcb.linger));
                    Disposition::Keep
                },
            ),
            Request::Close {
                handle,
                nonblocking,
            } => {
                if self.is_listener(handle) {
                    return self.close_listener(now_ms, client, user_data, handle);
                }
                self.on_conn(
                    now_ms,
                    client,
                    user_data,
                    handle,
                    Access::Normal,
                    |tcb, cx| close::close(tcb, cx, user_data, nonblocking),
                )
            }
            Request::Abort { handle } => {
                if self.is_listener(handle) {
                    return self.close_listener(now_ms, client, user_data, handle);
                }
                self.on_conn(
                    now_ms,
                    client,
                    user_data,
                    handle,
                    Access::Escalate,
                    |tcb, cx| close::abort(tcb, cx, user_data),
                )
            }
            Request::CloseMatching {
                filter,
                mode,
                pace_per_s,
            } => self.start_match(now_ms, client, user_data, filter, mode, pace_per_s),
        }
    }

    /// A send whose `len` bytes are copied straight from where the client
    /// put them (its TX chunk in shared memory, for the rings) into the
    /// connection's send buffer: `fill(offset, dst)` writes bytes
    /// `offset..offset + dst.len()` of the data into `dst`, and is called
    /// once or twice. A `fill` that fails queues nothing and answers EINVAL.
    /// Otherwise as [`Request::Send`].
    pub fn handle_send_from(
        &mut self,
        now: Instant,
        client: ClientId,
        user_data: u64,
        handle: Handle,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [u8]) -> bool,
    ) {
        let now_ms = self.enter(now);
        self.send(now_ms, client, user_data, handle, len, fill);
    }

    fn send(
        &mut self,
        now_ms: u64,
        client: ClientId,
        user_data: u64,
        handle: Handle,
        len: usize,
        fill: &mut dyn FnMut(usize, &mut [u8]) -> bool,
    ) {
        self.on_conn(
            now_ms,
            client,
            user_data,
            handle,
            Access::Normal,
            |tcb, cx| {
                let e = if let Some(e) = crate::tcp::teardown::dead_error(tcb) {
                    e
                } else if tcb.flags.contains(TcbFlags::SHUT_WR) {
                    Errno::Shutdown
                } else if !tcb.state.can_send() {
                    Errno::NotConn
                } else {
                    let buf = tcb.send.get_or_insert_with(|| cx.pool.get());
                    match buf.push_from(len, fill) {
                        Fill::Queued => Errno::Ok,
                        Fill::NoRoom => Errno::NoBufs,
                        Fill::Failed => Errno::Inval,
                    }
                };
                if tcb.queued() == 0 {
                    cx.release_send(tcb);
                }
                cx.complete(client, user_data, e, Detail::None);
                Disposition::Keep
            },
        )
    }

    /// Checks `handle` for `client` (docs/close-semantics.md#errors: ENOTSOCK, EPERM,
    /// EINPROGRESS).
    fn check_handle(&self, client: ClientId, handle: Handle, access: Access) -> Result<(), Errno> {
        if handle.core() != self.cfg.core {
            return Err(Errno::NotSock);
        }
        let tcb = self.table.get(handle).ok_or(Errno::NotSock)?;
        if tcb.flags.contains(TcbFlags::ORPHAN) || tcb.state == State::Listen {
            return Err(Errno::NotSock);
        }
        if tcb.owner != client && !client.is_admin() {
            return Err(Errno::Perm);
        }
        if tcb.pending == crate::tcp::tcb::Pending::Close && access == Access::Normal {
            return Err(Errno::InProgress);
        }
        Ok(())
    }

    /// Runs a request on a connection after validation, then carries out
    /// the disposition.
    fn on_conn(
        &mut self,
        now_ms: u64,
        client: ClientId,
        user_data: u64,
        handle: Handle,
        access: Access,
        f: impl FnOnce(&mut Tcb, &mut crate::tcp::cx::Cx<'_>) -> Disposition,
    ) {
        if let Err(e) = self.check_handle(client, handle, access) {
            self.complete(client, user_data, handle, e, Detail::None);
            return;
        }
        let d = self.with_conn(handle, now_ms, f);
        self.apply(handle, d, now_ms);
    }

    fn is_listener(&self, handle: Handle) -> bool {
        handle.core() == self.cfg.core
            && self
                .table
                .get(handle)
                .is_some_and(|t| t.state == State::Listen)
    }

    fn listen(&mut self, now_ms: u64, client: ClientId, user_data: u64, port: u16, backlog: u32) {
        let none = Handle::from_raw(0);
        if port == 0 || backlog == 0 {
            return self.complete(client, user_data, none, Errno::Inval, Detail::None);
        }
        if self.listeners.contains_key(&port) {
            return self.complete(client, user_data, none, Errno::AddrInUse, Detail::None);
        }
        let tcb = open::listener(self.birth(client, user_data, now_ms, false));
        // Listeners (of both families) are named by (0.0.0.0:port,
        // 0.0.0.0:0), a tuple no segment can carry, so they never match a
        // packet lookup; 0.0.0.0 is the table's local address 0.
        let key = FourTuple {
            local_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            remote_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            local_port: port,
            remote_port: 0,
        };
        match self.table.insert(key, tcb) {
            Ok(handle) => {
                self.listeners.insert(
                    port,
                    Listener {
                        handle,
                        backlog,
                        pending: 0,
                    },
                );
                self.complete(client, user_data, handle, Errno::Ok, Detail::None);
            }
            Err(InsertError::Full | InsertError::Address) => {
                self.complete(client, user_data, none, Errno::NoBufs, Detail::None)
            }
            Err(InsertError::Exists(_)) => {
                self.complete(client, user_data, none, Errno::AddrInUse, Detail::None)
            }
        }
    }

    /// Closes a listener (docs/close-semantics.md#listeners): the matrix
    /// answers for it like for a connection, the engine then forgets the
    /// port. Handshakes in progress are refused when they complete (they
    /// find no listener and are reset).
    fn close_listener(&mut self, now_ms: u64, client: ClientId, user_data: u64, handle: Handle) {
        let owner = self.table.get(handle).map(|t| t.owner);
        if owner != Some(client) && !client.is_admin() {
            return self.complete(client, user_data, handle, Errno::Perm, Detail::None);
        }
        let _freed = self.with_conn(handle, now_ms, |tcb, cx| {
            close::close(tcb, cx, user_data, false)
        });
        self.drop_listener(handle);
    }

    /// Removes a listener and frees its record.
    pub(super) fn drop_listener(&mut self, handle: Handle) {
        if let Some(p) = self.table.tuple(handle).map(|t| t.local_port)
            && self.listeners.get(&p).is_some_and(|l| l.handle == handle)
        {
            self.listeners.remove(&p);
        }
        self.free(handle);
    }

    fn connect(
        &mut self,
        now: Instant,
        now_ms: u64,
        client: ClientId,
        user_data: u64,
        (remote, bind, local_port): (SocketAddr, Option<IpAddr>, Option<u16>),
    ) {
        let none = Handle::from_raw(0);
        let peer = remote.ip();
        let v6 = peer.is_ipv6();
        if remote.port() == 0 || peer.is_unspecified() || peer.is_multicast() {
            return self.complete(client, user_data, none, Errno::Inval, Detail::None);
        }
        // Bound: one of ours of the peer's family, or EINVAL. Unbound: the
        // first of the peer's family on its link, else the first of its
        // family (the gateway's way out); none of its family: ENETUNREACH.
        let local_addr = match bind {
            Some(ip) if ip.is_ipv6() == v6 && self.is_local(ip) => ip,
            Some(_) => {
                return self.complete(client, user_data, none, Errno::Inval, Detail::None);
            }
            None => {
                let mut family = self.local_addrs().filter(|a| a.is_ipv6() == v6);
                let first = family.next();
                let on_link = first.into_iter().chain(family).find(|&a| {
                    self.cfg
                        .addrs
                        .iter()
                        .any(|p| p.addr() == a && p.contains(peer))
                });
                match on_link.or(first) {
                    Some(a) => a,
                    None => {
                        return self.complete(
                            client,
                            user_data,
                            none,
                            Errno::NetUnreach,
                            Detail::None,
                        );
                    }
                }
            }
        };
        let gateway = if v6 {
            self.cfg.gateway6.is_some()
        } else {
            self.cfg.gateway.is_some()
        };
        if !gateway && !self.is_on_link(peer) {
            return self.complete(client, user_data, none, Errno::NetUnreach, Detail::None);
        }
        let mut tuple = FourTuple {
            local_addr,
            remote_addr: peer,
            local_port: 0,
            remote_port: remote.port(),
        };
        let port = match local_port {
            Some(0) => return self.complete(client, user_data, none, Errno::Inval, Detail::None),
            Some(p) => Some(p),
            None => self.pick_ephemeral(&mut tuple),
        };
        let Some(port) = port else {
            return self.complete(client, user_data, none, Errno::AddrInUse, Detail::None);
        };
        tuple.local_port = port;
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let iss = SeqNumber(self.isn.isn(&tuple, now_us));
        let tcb = open::active(self.birth(client, user_data, now_ms, v6), iss);
        match self.table.insert(tuple, tcb) {
            Ok(handle) => {
                // The handle exists from now on: the client may close or
                // abort the connect before it completes (docs/close-semantics.md#rule-cancel: the
                // pending connect then completes with OPERATION_ABORTED).
                self.completions.push_back(Completion {
                    client,
                    user_data,
                    handle,
                    result: Errno::Ok,
                    detail: Detail::Connecting,
                    is_event: true,
                });
                self.sync(handle, now_ms);
            }
            Err(InsertError::Full) => {
                self.complete(client, user_data, none, Errno::NoBufs, Detail::None)
            }
            Err(InsertError::Exists(_)) => {
                self.complete(client, user_data, none, Errno::AddrInUse, Detail::None)
            }
            // The address was checked against the table's list above.
            Err(InsertError::Address) => {
                self.complete(client, user_data, none, Errno::Inval, Detail::None)
            }
        }
    }

    /// An ephemeral port free for this (local, remote) pair, searched from a
    /// rotating cursor over the configured range (RFC 6056 §3.3.2 style);
    /// with several queues, one whose answers hash to this queue
    /// (`crate::flow`).
    fn pick_ephemeral(&mut self, tuple: &mut FourTuple) -> Option<u16> {
        let (lo, hi) = self.cfg.tcp.ephemeral_ports;
        if lo == 0 || hi < lo {
            return None;
        }
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p >= hi { lo } else { p + 1 };
            tuple.local_port = p;
            // Several queues: only a port whose answers reach this queue.
            let ours = self.cfg.flow.as_ref().is_none_or(|f| {
                f.owns_local(tuple.local_addr, p, tuple.remote_addr, tuple.remote_port)
            });
            if ours && self.table.lookup(tuple).is_none() && !self.listeners.contains_key(&p) {
                return Some(p);
            }
        }
        None
    }

    /// Hard limits on a linger request, for callers that build one.
    pub const MAX_LINGER_MS: u32 = MAX_LINGER_MS;
}
