//! [`Client`]: one attachment to the daemon and the API of docs/close-semantics.md
//! over it.
//!
//! It owns, for one attached process: the control socket (its hang-up is
//! how the daemon learns we left, and how we learn the daemon left), the
//! mapped region, per ring a request [`Producer`] and a completion
//! [`Consumer`], the TX chunk free list, the RX chunks we hold, and the
//! bookkeeping that turns completions into answers and per-handle events.
//! It may not write anything into the region except through the ABI's ring
//! cursors and `SharedRegion::write` into TX chunks it owns.
//!
//! ## Routing
//!
//! A handle's top byte is its core tag; the welcome lists, per ring index,
//! the tag that ring's core serves, so a request on a handle goes to the
//! ring of its tag (unknown tag: ENOTSOCK without asking the daemon).
//! Requests that make a new handle (`listen`, `connect`) go to ring 0, or to
//! the ring given to `listen_on` / `connect_on`. `close_matching` goes to
//! every ring and sums the counts.
//!
//! ## Chunks
//!
//! TX: a chunk is taken from the free list for each `SEND` (at most
//! `chunk_size` bytes) and is free again when that `SEND` completes. A
//! blocking `send` sends one chunk at a time and waits for its answer,
//! because a refused (ENOBUFS) piece followed by an accepted one would
//! reorder the stream. RX: a `Data` event's chunk is held until `recv` has
//! copied all of it out, then returned with `RECV_DONE` (which also opens
//! the receive window). Chunks still held when a close or abort completes
//! are returned then, not before: data the application never read must
//! stay unread for the daemon (closing with unread data resets, docs/close-semantics.md#unread-data).
//!
//! ## Waiting
//!
//! Every blocking call submits, then reaps completions and sleeps on the
//! wake eventfd (with the completion rings' NEED_WAKEUP set) and the
//! control socket, in slices of at most [`WAIT_SLICE`] so that a lost
//! wakeup costs latency, never a hang, until its answer arrives or its
//! timeout ([`Client::set_call_timeout`], default 10 s; a close also gets
//! the linger time it set) passes: then `ETIMEDOUT`, and the late answer
//! is still processed for its side effects (a TX chunk freed, a closed
//! handle forgotten) and otherwise dropped. Other completions met on the
//! way are filed: events into the per-handle queues, answers to
//! [`Client::submit`] tickets into the queue [`Client::poll_completions`]
//! drains. If the daemon hangs up, every call fails with `ENETDOWN`.

use std::collections::VecDeque;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_abi::entry::{self, Body, MatchFilter, Op};
use lingerd_abi::layout::Layout;
use lingerd_abi::sys::{Consumer, Producer, SharedRegion};
use lingerd_abi::vocab::{CloseMode, Linger, Outcome, Shutdown};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::net::RecvFlags;

use crate::handshake::{self, AttachError, timespec};
use crate::slots::{HandleTable, TicketTable};

/// The longest single sleep of a blocking call between two looks at the
/// rings.
pub const WAIT_SLICE: Duration = Duration::from_millis(5);
/// How long `attach` waits for the daemon's answer.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Identifies one submitted request (its `user_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// A request for the non-blocking API ([`Client::submit`]).
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    /// Open a listener through ring `ring`.
    Listen {
        /// Ring index.
        ring: usize,
        /// Port.
        port: u16,
        /// Backlog.
        backlog: u32,
    },
    /// Active open through ring `ring`; a `Connecting` event names the
    /// handle at once (see [`Client::connecting_handle`]).
    Connect {
        /// Ring index.
        ring: usize,
        /// The peer, IPv4 or IPv6.
        remote: SocketAddr,
        /// Our port, 0 = ephemeral.
        local_port: u16,
    },
    /// Send at most one chunk's worth of bytes (EINVAL if longer, ENOBUFS
    /// when no TX chunk is free).
    Send {
        /// Connection.
        handle: u64,
        /// Bytes.
        data: &'a [u8],
    },
    /// `shutdown`.
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
        /// Setting.
        linger: Linger,
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
        /// Fail with EWOULDBLOCK rather than linger.
        nonblocking: bool,
    },
    /// Hard close.
    Abort {
        /// Connection or listener.
        handle: u64,
    },
    /// Bulk teardown on ring `ring`'s core.
    CloseMatching {
        /// Ring index.
        ring: usize,
        /// Filter.
        filter: MatchFilter,
        /// Mode.
        mode: CloseMode,
        /// Closes per second, 0 = unpaced.
        pace_per_s: u32,
    },
}

/// The answer to a [`Client::submit`] ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// Which request.
    pub ticket: Ticket,
    /// The handle concerned (a new one for listen/connect).
    pub handle: u64,
    /// Result.
    pub result: Errno,
    /// What it carries.
    pub body: Body,
}

/// Who waits for a ticket's completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// A blocking call of ours; filed in `answers`.
    Call,
    /// The application through `submit`; filed in `user_done`.
    User,
    /// Nobody (RECV_DONE, or a blocking call that timed out).
    Nobody,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    owner: Owner,
    /// A TX chunk to free when this completes.
    tx_chunk: Option<u32>,
    /// A close or abort of this handle: forget it when done.
    closes: Option<u64>,
    /// A connect: its handle, once the `Connecting` event named it.
    connecting: Option<u64>,
    /// A listen or connect: its answer names a new handle.
    makes_handle: bool,
}

impl InFlight {
    fn new(owner: Owner) -> InFlight {
        InFlight {
            owner,
            tx_chunk: None,
            closes: None,
            connecting: None,
            makes_handle: false,
        }
    }
}

/// A part of an RX chunk not yet read.
#[derive(Clone, Copy, Debug)]
struct RxPiece {
    chunk: u32,
    len: u32,
    read: u32,
}

#[derive(Debug, Default)]
struct HandleState {
    rx: VecDeque<RxPiece>,
    eof: bool,
    error: Option<Errno>,
    accepted: VecDeque<(u64, SocketAddr)>,
    /// Linger set through this client, ms (to bound a blocking close).
    linger_ms: u32,
}

#[derive(Debug)]
struct RingPair {
    requests: Producer,
    completions: Consumer,
}

/// One attachment to lingerd.
#[derive(Debug)]
pub struct Client {
    ctl: OwnedFd,
    memfd: File,
    wake: OwnedFd,
    doorbell: OwnedFd,
    region: Arc<SharedRegion>,
    layout: Layout,
    client_id: u32,
    cores: Vec<u8>,
    rings: Vec<RingPair>,
    tx_free: Vec<u32>,
    in_flight: TicketTable<InFlight>,
    /// Answers to blocking calls, not yet picked up: at most one per call
    /// waiting, so a short list.
    answers: Vec<entry::Completion>,
    user_done: VecDeque<Done>,
    handles: HandleTable<HandleState>,
    /// RX chunks to give back (RECV_DONE) as soon as the ring has room.
    returns: VecDeque<(usize, u64, u32, u32)>,
    call_timeout: Duration,
    daemon_gone: bool,
    corrupt: bool,
}

impl Client {
    /// Attaches to the daemon listening at `path` (waits at most
    /// [`ATTACH_TIMEOUT`] for its answer).
    pub fn attach(path: impl AsRef<Path>) -> Result<Client, AttachError> {
        Client::attach_with_timeout(path, ATTACH_TIMEOUT)
    }

    /// Attaches, waiting at most `timeout` for the daemon's answer.
    pub fn attach_with_timeout(
        path: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Client, AttachError> {
        let a = handshake::attach(path.as_ref(), timeout)?;
        let p = a.layout.params;
        let mut rings = Vec::with_capacity(p.cores as usize);
        for core in 0..p.cores {
            let bad = |_| AttachError::Region("a ring does not fit the region");
            let req = a
                .layout
                .request_ring(core)
                .ok_or(AttachError::Region("ring"))?;
            let cpl = a
                .layout
                .completion_ring(core)
                .ok_or(AttachError::Region("ring"))?;
            rings.push(RingPair {
                requests: Producer::new(a.region.clone(), req, p.ring_entries).map_err(bad)?,
                completions: Consumer::new(a.region.clone(), cpl, p.ring_entries).map_err(bad)?,
            });
        }
        Ok(Client {
            ctl: a.ctl,
            memfd: a.memfd,
            wake: a.wake,
            doorbell: a.doorbell,
            region: a.region,
            layout: a.layout,
            client_id: a.welcome.client_id,
            cores: a.welcome.cores,
            rings,
            tx_free: (0..p.tx_chunks).rev().collect(),
            in_flight: TicketTable::default(),
            answers: Vec::new(),
            user_done: VecDeque::new(),
            handles: HandleTable::default(),
            returns: VecDeque::new(),
            call_timeout: Duration::from_secs(10),
            daemon_gone: false,
            corrupt: false,
        })
    }

    /// The daemon's id for this client.
    pub fn client_id(&self) -> u32 {
        self.client_id
    }

    /// The region's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Per ring index, the core tag of the handles it serves.
    pub fn cores(&self) -> &[u8] {
        &self.cores
    }

    /// The region's memfd (for inspection: its seals forbid resizing).
    pub fn region_fd(&self) -> BorrowedFd<'_> {
        self.memfd.as_fd()
    }

    /// The wake eventfd, for an application's own `poll` loop: readable
    /// when completions may be waiting ([`Client::poll_completions`]).
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// How long a blocking call waits for its answer.
    pub fn set_call_timeout(&mut self, timeout: Duration) {
        self.call_timeout = timeout;
    }

    /// TX chunks free now.
    pub fn tx_chunks_free(&self) -> usize {
        self.tx_free.len()
    }

    // ----- blocking API -------------------------------------------------

    /// Opens a listener through ring 0.
    pub fn listen(&mut self, port: u16, backlog: u32) -> Result<u64, Errno> {
        self.listen_on(0, port, backlog)
    }

    /// Opens a listener through ring `ring`.
    pub fn listen_on(&mut self, ring: usize, port: u16, backlog: u32) -> Result<u64, Errno> {
        let c = self.call(Request::Listen {
            ring,
            port,
            backlog,
        })?;
        Ok(c.handle)
    }

    /// Waits up to `timeout` for a connection accepted on `listener`
    /// (zero: do not wait, EWOULDBLOCK when none).
    pub fn accept(&mut self, listener: u64, timeout: Duration) -> Result<(u64, SocketAddr), Errno> {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap()?;
            let st = self.handles.get_mut(listener).ok_or(Errno::NotSock)?;
            if let Some(a) = st.accepted.pop_front() {
                return Ok(a);
            }
            if let Some(e) = st.error {
                return Err(e);
            }
            self.sleep_until(deadline, timeout)?;
        }
    }

    /// Active open through ring 0 from an ephemeral port; returns once
    /// established. `remote` is IPv4 or IPv6 (a `SocketAddrV4` or
    /// `SocketAddrV6` converts); a core without IPv6 answers ENETUNREACH.
    pub fn connect(&mut self, remote: impl Into<SocketAddr>) -> Result<u64, Errno> {
        self.connect_on(0, remote, 0)
    }

    /// Active open through ring `ring` from `local_port` (0 = ephemeral).
    /// If the call times out, the attempt is aborted.
    pub fn connect_on(
        &mut self,
        ring: usize,
        remote: impl Into<SocketAddr>,
        local_port: u16,
    ) -> Result<u64, Errno> {
        let remote = remote.into();
        let t = self.submit_as(
            Owner::Call,
            Request::Connect {
                ring,
                remote,
                local_port,
            },
        )?;
        match self.wait_answer(t, self.call_timeout) {
            Ok(c) if c.result == Errno::Ok => Ok(c.handle),
            Ok(c) => Err(c.result),
            Err(Errno::TimedOut) => {
                if let Some(h) = self.in_flight.get(t.0).and_then(|f| f.connecting) {
                    let _ = self.submit_as(Owner::Nobody, Request::Abort { handle: h });
                }
                Err(Errno::TimedOut)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends all of `data` (one chunk at a time, see "Chunks"); returns the
    /// bytes accepted. An error after some bytes went returns their count;
    /// an error before any returns the error. ENOBUFS from the daemon (send
    /// buffer full) is retried until the call timeout.
    pub fn send(&mut self, handle: u64, data: &[u8]) -> Result<usize, Errno> {
        let deadline = Instant::now() + self.call_timeout;
        let size = self.layout.params.chunk_size as usize;
        let mut sent = 0;
        for piece in data.chunks(size) {
            match self.send_piece(handle, piece, deadline) {
                Ok(()) => sent += piece.len(),
                Err(e) if sent == 0 => return Err(e),
                Err(_) => return Ok(sent),
            }
        }
        Ok(sent)
    }

    /// Sends one chunk and waits for its answer; ENOBUFS (no TX chunk, no
    /// ring slot, or a full send buffer) is retried until `deadline`.
    fn send_piece(&mut self, handle: u64, piece: &[u8], deadline: Instant) -> Result<(), Errno> {
        loop {
            let result = match self.submit_as(
                Owner::Call,
                Request::Send {
                    handle,
                    data: piece,
                },
            ) {
                Ok(t) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    self.wait_answer(t, left)?.result
                }
                Err(e) => e,
            };
            match result {
                Errno::Ok => return Ok(()),
                // Let completions and ACKs arrive, then retry.
                Errno::NoBufs => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    self.sleep_until(deadline, left).map_err(|e| match e {
                        Errno::WouldBlock => Errno::TimedOut,
                        e => e,
                    })?;
                    self.reap()?;
                }
                e => return Err(e),
            }
        }
    }

    /// Receives into `buf`, waiting up to `timeout` (zero: EWOULDBLOCK when
    /// nothing is there). Returns the bytes copied, 0 at end of stream, or
    /// the connection's error (ECONNRESET after a reset) once its data has
    /// been read.
    pub fn recv(&mut self, handle: u64, buf: &mut [u8], timeout: Duration) -> Result<usize, Errno> {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap()?;
            let ring = self.ring_of(handle)?;
            let st = self.handles.get_mut(handle).ok_or(Errno::NotSock)?;
            if !st.rx.is_empty() {
                let mut n = 0;
                while n < buf.len() {
                    let Some(p) = st.rx.front_mut() else { break };
                    let take = ((p.len - p.read) as usize).min(buf.len() - n);
                    let range = self
                        .layout
                        .rx_chunk(p.chunk, p.read + take as u32)
                        .ok_or(Errno::Inval)?;
                    let range = range.start + p.read as usize..range.end;
                    if !self.region.read(range, &mut buf[n..n + take]) {
                        return Err(Errno::Inval);
                    }
                    n += take;
                    p.read += take as u32;
                    if p.read == p.len {
                        let done = st.rx.pop_front().expect("front exists");
                        self.returns.push_back((ring, handle, done.chunk, done.len));
                    }
                }
                self.flush_returns();
                return Ok(n);
            }
            if let Some(e) = st.error {
                return Err(e);
            }
            if st.eof {
                return Ok(0);
            }
            self.sleep_until(deadline, timeout)?;
        }
    }

    /// `shutdown(how)`.
    pub fn shutdown(&mut self, handle: u64, how: Shutdown) -> Result<(), Errno> {
        self.call(Request::Shutdown { handle, how }).map(|_| ())
    }

    /// `shutdown` with a raw `how`, as C passes it: anything but 0, 1, 2 is
    /// EINVAL at once (the ring cannot carry it; the daemon would answer
    /// the same).
    pub fn shutdown_raw(&mut self, handle: u64, how: u8) -> Result<(), Errno> {
        let how = Shutdown::from_code(how.into()).ok_or(Errno::Inval)?;
        self.shutdown(handle, how)
    }

    /// `SO_LINGER` in seconds, as Winsock's `LINGER`.
    pub fn set_linger(&mut self, handle: u64, on: bool, secs: u16) -> Result<(), Errno> {
        self.set_linger_ms(handle, on, u32::from(secs) * 1000)
    }

    /// `SO_LINGER` in milliseconds (the extension of docs/close-semantics.md#linger-options).
    pub fn set_linger_ms(&mut self, handle: u64, on: bool, ms: u32) -> Result<(), Errno> {
        self.call(Request::SetLinger {
            handle,
            linger: Linger { on, ms },
        })?;
        if let Some(st) = self.handles.get_mut(handle) {
            st.linger_ms = if on { ms } else { 0 };
        }
        Ok(())
    }

    /// `SO_DONTLINGER` (TRUE = do not linger).
    pub fn set_dont_linger(&mut self, handle: u64, dont: bool) -> Result<(), Errno> {
        self.call(Request::SetDontLinger { handle, dont })
            .map(|_| ())
    }

    /// The current linger setting.
    pub fn get_linger(&mut self, handle: u64) -> Result<Linger, Errno> {
        match self.call(Request::GetLinger { handle })?.body {
            Body::Linger { on, ms } => Ok(Linger { on, ms }),
            _ => Err(Errno::Inval),
        }
    }

    /// `closesocket`: `blocking` waits out a linger (docs/close-semantics.md#linger-matrix); a non-blocking
    /// close that would have to linger fails with EWOULDBLOCK and the
    /// handle stays valid. The outcome says how the close ended.
    pub fn close(&mut self, handle: u64, blocking: bool) -> Result<Outcome, Errno> {
        let linger = self.handles.get(handle).map_or(0, |s| s.linger_ms);
        let t = self.submit_as(
            Owner::Call,
            Request::Close {
                handle,
                nonblocking: !blocking,
            },
        )?;
        let wait = self.call_timeout + Duration::from_millis(u64::from(linger));
        outcome(self.wait_answer(t, wait)?)
    }

    /// Non-blocking `closesocket` (same as `close(handle, false)`).
    pub fn close_nonblocking(&mut self, handle: u64) -> Result<Outcome, Errno> {
        self.close(handle, false)
    }

    /// Hard close whatever the linger setting (docs/close-semantics.md#abort).
    pub fn abort(&mut self, handle: u64) -> Result<Outcome, Errno> {
        outcome(self.call(Request::Abort { handle })?)
    }

    /// Bulk teardown on every ring (docs/close-semantics.md#bulk-close); returns how many were closed.
    /// Listeners are not matched (the engine's rule). The answer is a count,
    /// so this client does not learn which handles died: their later
    /// requests fail with ENOTSOCK, and a `close` or `abort` of one (also
    /// ENOTSOCK) drops its local state and returns its RX chunks.
    pub fn close_matching(
        &mut self,
        filter: &MatchFilter,
        mode: CloseMode,
        pace_per_s: u32,
    ) -> Result<u64, Errno> {
        let mut tickets = Vec::with_capacity(self.rings.len());
        for ring in 0..self.rings.len() {
            tickets.push(self.submit_as(
                Owner::Call,
                Request::CloseMatching {
                    ring,
                    filter: *filter,
                    mode,
                    pace_per_s,
                },
            )?);
        }
        let deadline = Instant::now() + self.call_timeout;
        let mut total = 0u64;
        let mut first_err = None;
        for t in tickets {
            match self.wait_answer(t, deadline.saturating_duration_since(Instant::now())) {
                Ok(c) if c.result == Errno::Ok => {
                    if let Body::Count(n) = c.body {
                        total += n;
                    }
                }
                Ok(c) => {
                    first_err.get_or_insert(c.result);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(total), Err)
    }

    // ----- non-blocking API ---------------------------------------------

    /// Submits a request without waiting: ENOBUFS when its ring (or, for a
    /// send, the TX arena) is full — nothing was done, retry after
    /// [`Client::poll_completions`]. The answer comes back through
    /// `poll_completions` with this ticket.
    pub fn submit(&mut self, req: Request<'_>) -> Result<Ticket, Errno> {
        self.submit_as(Owner::User, req)
    }

    /// Reaps completions: events go to their handles (read them with
    /// `recv`/`accept` and a zero timeout), answers to `submit` tickets are
    /// appended to `out`. Returns how many were appended.
    pub fn poll_completions(&mut self, out: &mut Vec<Done>) -> Result<usize, Errno> {
        self.reap()?;
        let n = self.user_done.len();
        out.extend(self.user_done.drain(..));
        Ok(n)
    }

    /// Sleeps until something may have arrived or `timeout` passed.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), Errno> {
        match self.sleep_until(Instant::now() + timeout, timeout) {
            Err(Errno::TimedOut | Errno::WouldBlock) => Ok(()),
            r => r,
        }
    }

    /// The handle a submitted connect got (from its `Connecting` event),
    /// once known; so a pending connect can be closed or aborted.
    pub fn connecting_handle(&self, t: Ticket) -> Option<u64> {
        self.in_flight.get(t.0).and_then(|f| f.connecting)
    }

    // ----- internals ----------------------------------------------------

    fn call(&mut self, req: Request<'_>) -> Result<entry::Completion, Errno> {
        let t = self.submit_as(Owner::Call, req)?;
        let c = self.wait_answer(t, self.call_timeout)?;
        if c.result == Errno::Ok {
            Ok(c)
        } else {
            Err(c.result)
        }
    }

    fn ring_of(&self, handle: u64) -> Result<usize, Errno> {
        let tag = (handle >> 56) as u8;
        self.cores
            .iter()
            .position(|&c| c == tag)
            .ok_or(Errno::NotSock)
    }

    fn check_alive(&self) -> Result<(), Errno> {
        if self.daemon_gone || self.corrupt {
            Err(Errno::NetDown)
        } else {
            Ok(())
        }
    }

    fn submit_as(&mut self, owner: Owner, req: Request<'_>) -> Result<Ticket, Errno> {
        self.check_alive()?;
        let mut flight = InFlight::new(owner);
        let ring_ok = |r: usize, n: usize| if r < n { Ok(r) } else { Err(Errno::Inval) };
        let n = self.rings.len();
        let (ring, op) = match req {
            Request::Listen {
                ring,
                port,
                backlog,
            } => {
                flight.makes_handle = true;
                (ring_ok(ring, n)?, Op::Listen { port, backlog })
            }
            Request::Connect {
                ring,
                remote,
                local_port,
            } => {
                flight.makes_handle = true;
                (
                    ring_ok(ring, n)?,
                    Op::Connect {
                        addr: remote.ip(),
                        port: remote.port(),
                        local_port,
                    },
                )
            }
            Request::Send { handle, data } => {
                let ring = self.ring_of(handle)?;
                if data.len() > self.layout.params.chunk_size as usize {
                    return Err(Errno::Inval);
                }
                let chunk = *self.tx_free.last().ok_or(Errno::NoBufs)?;
                let range = self
                    .layout
                    .tx_chunk(chunk, data.len() as u32)
                    .ok_or(Errno::Inval)?;
                if !self.region.write(range, data) {
                    return Err(Errno::Inval);
                }
                flight.tx_chunk = Some(chunk);
                (
                    ring,
                    Op::Send {
                        handle,
                        chunk,
                        len: data.len() as u32,
                    },
                )
            }
            Request::Shutdown { handle, how } => {
                (self.ring_of(handle)?, Op::Shutdown { handle, how })
            }
            Request::SetLinger { handle, linger } => (
                self.ring_of(handle)?,
                Op::SetLinger {
                    handle,
                    on: linger.on,
                    ms: linger.ms,
                },
            ),
            Request::SetDontLinger { handle, dont } => {
                (self.ring_of(handle)?, Op::SetDontLinger { handle, dont })
            }
            Request::GetLinger { handle } => (self.ring_of(handle)?, Op::GetLinger { handle }),
            Request::Close {
                handle,
                nonblocking,
            } => {
                flight.closes = Some(handle);
                (
                    self.ring_of(handle)?,
                    Op::Close {
                        handle,
                        nonblocking,
                    },
                )
            }
            Request::Abort { handle } => {
                flight.closes = Some(handle);
                (self.ring_of(handle)?, Op::Abort { handle })
            }
            Request::CloseMatching {
                ring,
                filter,
                mode,
                pace_per_s,
            } => {
                if matches!(mode, CloseMode::Linger { ms } | CloseMode::Deadline { ms }
                    if ms > lingerd_abi::vocab::MAX_LINGER_MS)
                {
                    // The daemon's decoder would refuse the entry alike.
                    return Err(Errno::Inval);
                }
                (
                    ring_ok(ring, n)?,
                    Op::CloseMatching {
                        filter,
                        mode,
                        pace_per_s,
                    },
                )
            }
        };
        let t = self.push(ring, &op, flight)?;
        if let Some(c) = flight.tx_chunk {
            let popped = self.tx_free.pop();
            debug_assert_eq!(popped, Some(c));
        }
        Ok(t)
    }

    /// Pushes and publishes one request, filing `flight` under its ticket;
    /// rings the doorbell if the core sleeps.
    fn push(&mut self, ring: usize, op: &Op, flight: InFlight) -> Result<Ticket, Errno> {
        let t = self.in_flight.next_ticket().ok_or(Errno::NoBufs)?;
        let r = &mut self.rings[ring].requests;
        if !r.push(&entry::encode_request(t, op)) {
            return Err(Errno::NoBufs);
        }
        self.in_flight.insert(flight);
        r.publish();
        if r.needs_wakeup() {
            let _ = rustix::io::write(&self.doorbell, &1u64.to_ne_bytes());
        }
        Ok(Ticket(t))
    }

    /// Gives back as many pending RX chunks as the rings take.
    fn flush_returns(&mut self) {
        while let Some(&(ring, handle, chunk, len)) = self.returns.front() {
            let Some(t) = self.in_flight.next_ticket() else {
                break;
            };
            let r = &mut self.rings[ring].requests;
            if !r.push(&entry::encode_request(
                t,
                &Op::RecvDone { handle, chunk, len },
            )) {
                break;
            }
            self.in_flight.insert(InFlight::new(Owner::Nobody));
            self.returns.pop_front();
        }
        for r in &mut self.rings {
            r.requests.publish();
            if r.requests.needs_wakeup() {
                let _ = rustix::io::write(&self.doorbell, &1u64.to_ne_bytes());
            }
        }
    }

    /// Takes every completion off every ring and files it.
    fn reap(&mut self) -> Result<(), Errno> {
        self.check_alive()?;
        for ring in 0..self.rings.len() {
            // Bounded: at most one lap of the ring per look.
            let n = self.rings[ring].completions.available();
            for _ in 0..n {
                let Some(bytes) = self.rings[ring].completions.pop() else {
                    break;
                };
                match entry::Completion::decode(&bytes) {
                    Ok(c) => self.file(ring, c),
                    Err(_) => {
                        // The daemon never writes these: the region is
                        // corrupt, the attachment unusable.
                        self.corrupt = true;
                    }
                }
            }
            self.rings[ring].completions.release();
        }
        self.flush_returns();
        self.check_alive()
    }

    fn file(&mut self, ring: usize, c: entry::Completion) {
        if c.event {
            self.file_event(ring, c);
            return;
        }
        let Some(f) = self.in_flight.remove(c.user_data) else {
            return; // not ours: ignore (a daemon bug; nothing to free)
        };
        if let Some(chunk) = f.tx_chunk {
            self.tx_free.push(chunk);
        }
        if let Some(h) = f.closes
            && c.result != Errno::WouldBlock
        {
            self.forget(ring, h);
        }
        if f.makes_handle && c.result == Errno::Ok {
            self.handles.get_or_insert_default(c.handle);
        } else if let Some(h) = f.connecting
            && c.result != Errno::Ok
        {
            // A connect that failed: its handle never became usable.
            self.forget(ring, h);
        }
        match f.owner {
            Owner::Call => {
                self.answers.push(c);
            }
            Owner::User => self.user_done.push_back(Done {
                ticket: Ticket(c.user_data),
                handle: c.handle,
                result: c.result,
                body: c.body,
            }),
            Owner::Nobody => {}
        }
    }

    fn file_event(&mut self, ring: usize, c: entry::Completion) {
        match c.body {
            Body::Connecting => {
                self.handles.get_or_insert_default(c.handle);
                if let Some(f) = self.in_flight.get_mut(c.user_data) {
                    f.connecting = Some(c.handle);
                }
            }
            Body::Accepted {
                listener,
                addr,
                port,
            } => {
                let peer = SocketAddr::new(addr, port);
                if let Some(l) = self.handles.get_mut(listener) {
                    l.accepted.push_back((c.handle, peer));
                    self.handles.get_or_insert_default(c.handle);
                } else {
                    // Its listener is being closed: nobody will take it.
                    let _ = self.submit_as(Owner::Nobody, Request::Abort { handle: c.handle });
                }
            }
            Body::Data { chunk, len } => match self.handles.get_mut(c.handle) {
                Some(st) if len > 0 => st.rx.push_back(RxPiece {
                    chunk,
                    len,
                    read: 0,
                }),
                _ => self.returns.push_back((ring, c.handle, chunk, len)),
            },
            Body::PeerClosed => {
                if let Some(st) = self.handles.get_mut(c.handle) {
                    st.eof = true;
                }
            }
            Body::Reset => {
                if let Some(st) = self.handles.get_mut(c.handle) {
                    st.error = Some(if c.result == Errno::Ok {
                        Errno::ConnReset
                    } else {
                        c.result
                    });
                }
            }
            // Progress of a close_matching, or anything else: nothing to keep.
            _ => {}
        }
    }

    /// A handle is dead: give back its RX chunks, forget its state.
    fn forget(&mut self, ring: usize, handle: u64) {
        if let Some(st) = self.handles.remove(handle) {
            for p in st.rx {
                self.returns.push_back((ring, handle, p.chunk, p.len));
            }
        }
    }

    /// Waits for ticket `t`'s answer for up to `timeout`.
    fn wait_answer(&mut self, t: Ticket, timeout: Duration) -> Result<entry::Completion, Errno> {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap()?;
            if let Some(at) = self.answers.iter().position(|c| c.user_data == t.0) {
                return Ok(self.answers.swap_remove(at));
            }
            if let Err(e) = self.sleep_until(deadline, timeout) {
                if let Some(f) = self.in_flight.get_mut(t.0) {
                    f.owner = Owner::Nobody;
                }
                return Err(if e == Errno::WouldBlock {
                    Errno::TimedOut
                } else {
                    e
                });
            }
        }
    }

    /// Sleeps until the wake eventfd fires, the control socket hangs up,
    /// [`WAIT_SLICE`] passes, or `deadline`. Errors: EWOULDBLOCK when the
    /// caller asked not to wait (`timeout` zero), ETIMEDOUT once the
    /// deadline has passed, ENETDOWN when the daemon is gone.
    fn sleep_until(&mut self, deadline: Instant, timeout: Duration) -> Result<(), Errno> {
        if timeout.is_zero() {
            return Err(Errno::WouldBlock);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Errno::TimedOut);
        }
        for r in &self.rings {
            r.completions.set_need_wakeup(true);
        }
        // Look once more after raising the flag: a completion published
        // before the daemon could see it would otherwise wait a slice.
        let ready = self.rings.iter_mut().any(|r| r.completions.available() > 0);
        if !ready {
            let slice = (deadline - now).min(WAIT_SLICE);
            let mut fds = [
                PollFd::new(&self.wake, PollFlags::IN),
                PollFd::new(&self.ctl, PollFlags::IN),
            ];
            let _ = poll(&mut fds, Some(&timespec(slice)));
            if !fds[1].revents().is_empty() {
                let mut b = [0u8; 1];
                // Anything but "nothing to read" means the daemon hung up
                // (or broke the protocol, which has nothing to say now).
                if !matches!(
                    rustix::net::recv(&self.ctl, &mut b, RecvFlags::DONTWAIT),
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR)
                ) {
                    self.daemon_gone = true;
                }
            }
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&self.wake, &mut b);
        }
        for r in &self.rings {
            r.completions.set_need_wakeup(false);
        }
        self.check_alive()
    }
}

fn outcome(c: entry::Completion) -> Result<Outcome, Errno> {
    if c.result != Errno::Ok {
        return Err(c.result);
    }
    match c.body {
        Body::Closed(o) => Ok(o),
        _ => Err(Errno::Inval),
    }
}
