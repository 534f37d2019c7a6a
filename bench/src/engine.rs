//! Two lingerd engines wired back to back over the in-process (`mem`)
//! frame path, and the close scenarios the `engine` figures time.
//!
//! Engine A is the lingerd under test (198.18.0.1, listening on ports
//! 10000.. so that one address holds millions of connections); engine B is
//! the load generator (198.18.0.2), a second `QueueEngine` that actively
//! opens from explicit ports. Frames move directly between them in a tight
//! loop (no `Pair`, no trace, no impairments) and time is a virtual clock
//! that only moves when a scenario says so. This module owns the set-up and
//! the scenario loops; it checks that every close really happened (frame
//! and counter totals) and panics on a miscount, but never judges a timing.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_abi::entry::{self, Op};
use lingerd_abi::layout::{Layout, LayoutParams};
use lingerd_abi::sys::{Consumer, Producer, SharedRegion};

use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, CloseMode, Completion, Detail, Filter, Request};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::port::{Port, TxOutcome};
use lingerd_dataplane::rings::ClientRings;
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::linger::Linger;
use lingerd_dataplane::wire::EthernetAddress;

use crate::measure::{Span, Stopwatch, profile_off, profile_on, profiled};

/// The client that owns A's connections.
pub const CLIENT: ClientId = ClientId(1);
/// The load generator's client on B.
pub const PEER_CLIENT: ClientId = ClientId(2);
/// Engine A's address.
pub const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Engine B's address.
pub const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const B_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
/// A's first listening port; connection `i` goes to `BASE_PORT + i / 64000`.
pub const BASE_PORT: u16 = 10_000;
const PORTS_PER_LISTENER: u32 = 64_000;
/// Requests handed to the engine between two transmit drains: one client
/// ring burst, as in the shell's loop.
pub const BURST: usize = 256;
/// Connections opened between two pumps during set-up.
const OPEN_BATCH: u32 = 1024;
/// Bytes of one TX buffer slot (control frames and options fit).
const SLOT: usize = 256;
/// The linger time of the linger-expiry scenario.
pub const LINGER_MS: u32 = 5_000;

/// A's configuration for `n` connections.
pub fn config_a(n: u32) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        0,
        A_MAC,
        Prefix::new(A_IP.into(), 24).expect("an IPv4 prefix length"),
    );
    cfg.max_connections = n + 1024;
    cfg.hash_key = 0x0a0a_5eed;
    cfg
}

/// B's configuration for `n` connections.
pub fn config_b(n: u32) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        0,
        B_MAC,
        Prefix::new(B_IP.into(), 24).expect("an IPv4 prefix length"),
    );
    cfg.max_connections = n + 1024;
    cfg.hash_key = 0x0b0b_5eed;
    cfg.isn_secret = [7, 11];
    cfg
}

/// Frames in flight one way, in reusable fixed-size slots.
#[derive(Debug, Default)]
pub struct Wire {
    slots: Vec<[u8; SLOT]>,
    lens: Vec<u16>,
}

impl Wire {
    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Takes every frame `e` has to send now; returns how many.
    pub fn fill_from(&mut self, e: &mut QueueEngine, now: Instant) -> usize {
        let mut n = 0;
        loop {
            let i = self.lens.len();
            if i == self.slots.len() {
                self.slots.push([0; SLOT]);
            }
            match e.poll_transmit(now, &mut self.slots[i]) {
                Some(len) => {
                    self.lens.push(len as u16);
                    n += 1;
                }
                None => return n,
            }
        }
    }

    /// Hands every waiting frame to `e`, in order, and empties the wire;
    /// in the core loop's two passes (`Port::rx_burst_ahead`) of at most
    /// `RX_BURST` frames: each frame's index bucket asked for, then the
    /// frames handled.
    pub fn deliver(&mut self, e: &mut QueueEngine, now: Instant) {
        let frame = |i: usize| &self.slots[i][..usize::from(self.lens[i])];
        let mut at = 0;
        while at < self.lens.len() {
            let end = (at + lingerd_dataplane::port::core_loop::RX_BURST).min(self.lens.len());
            for i in at..end {
                e.prefetch_rx(frame(i));
            }
            for i in at..end {
                e.handle_rx(now, frame(i));
            }
            at = end;
        }
        self.lens.clear();
    }
}

/// Whether `frame` is an IPv4 TCP segment with RST set.
#[inline]
pub fn is_rst(frame: &[u8]) -> bool {
    frame.len() >= 54 && frame[12..14] == [0x08, 0x00] && frame[23] == 6 && frame[47] & 0x04 != 0
}

/// A TX ring: `poll_transmit` writes into the next of a fixed set of
/// buffers, as into a NIC's TX ring, and nothing is delivered anywhere.
#[derive(Debug)]
pub struct TxRing {
    slots: Vec<[u8; SLOT]>,
    next: usize,
}

impl Default for TxRing {
    fn default() -> Self {
        TxRing {
            slots: vec![[0; SLOT]; 512],
            next: 0,
        }
    }
}

impl TxRing {
    /// Drains `e`'s transmit queue; returns (frames, RST frames).
    #[inline]
    pub fn drain(&mut self, e: &mut QueueEngine, now: Instant) -> (usize, usize) {
        let (mut frames, mut rsts) = (0, 0);
        loop {
            let slot = &mut self.slots[self.next];
            let Some(len) = e.poll_transmit(now, slot) else {
                return (frames, rsts);
            };
            frames += 1;
            rsts += usize::from(is_rst(&slot[..len]));
            self.next = (self.next + 1) % self.slots.len();
        }
    }
}

/// Frames of a [`MemPort`]'s TX area (a UMEM's worth of TX frames).
const PORT_FRAMES: usize = 1024;
/// Bytes of one [`MemPort`] frame.
const PORT_FRAME: usize = 2048;

/// A cheap in-memory [`Port`] for the TX-per-frame figure: the shape of
/// the AF_XDP port's TX side (a free list of frames in one area, a
/// descriptor per queued frame, a flush that hands the descriptors over
/// and takes back the sent frames) with a device that sends every frame
/// the moment it is flushed. It receives nothing and never waits.
#[derive(Debug)]
pub struct MemPort {
    area: Vec<u8>,
    free: Vec<u32>,
    /// Queued descriptors: (frame, length).
    queued: Vec<(u32, u16)>,
    /// Frames handed over so far.
    pub sent: u64,
    /// Of which RSTs.
    pub rsts: u64,
}

impl Default for MemPort {
    fn default() -> Self {
        MemPort {
            area: vec![0; PORT_FRAMES * PORT_FRAME],
            free: (0..PORT_FRAMES as u32).rev().collect(),
            queued: Vec::with_capacity(PORT_FRAMES),
            sent: 0,
            rsts: 0,
        }
    }
}

impl Port for MemPort {
    type Stats = u64;

    fn rx_burst(&mut self, _max: usize, _on_frame: impl FnMut(&[u8])) -> usize {
        0
    }

    #[inline]
    fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
        let Some(frame) = self.free.pop() else {
            return TxOutcome::NoFrame;
        };
        let at = frame as usize * PORT_FRAME;
        let buf = &mut self.area[at..at + PORT_FRAME];
        match write(buf) {
            Some(n) if n > 0 && n <= PORT_FRAME => {
                self.rsts += u64::from(is_rst(&buf[..n]));
                self.queued.push((frame, n as u16));
                TxOutcome::Queued
            }
            _ => {
                self.free.push(frame);
                TxOutcome::Empty
            }
        }
    }

    fn flush(&mut self) -> io::Result<usize> {
        let n = self.queued.len();
        self.sent += n as u64;
        self.free
            .extend(self.queued.drain(..).map(|(frame, _)| frame));
        Ok(n)
    }

    fn tx_in_flight(&self) -> usize {
        self.queued.len()
    }

    fn wait(&mut self, _: Duration, _: Option<BorrowedFd<'_>>) -> io::Result<bool> {
        Ok(false)
    }

    fn stats(&self) -> io::Result<u64> {
        Ok(self.sent)
    }

    fn count_loop(&mut self) {}
}

/// What the client-ring abort scenario measured, by part of the daemon's
/// loop ([`Lab::ring_abort_all`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct RingTiming {
    /// The whole scenario (client side included) as a [`Timing`].
    pub timing: Timing,
    /// Request intake: `ClientRings::poll_requests` (copy, decode,
    /// prefetch, and the engine's handling of each abort).
    pub requests: Span,
    /// The port's TX: `tx_frame` with `poll_transmit` into its buffer,
    /// then `flush`.
    pub tx: Span,
    /// Completions: `poll_completion`, `ClientRings::deliver`, `flush`
    /// (encode and publish).
    pub completions: Span,
    /// Frames the port sent.
    pub frames: u64,
}

impl RingTiming {
    /// The daemon's side (requests + TX + completions).
    pub fn daemon(&self) -> Span {
        let mut s = self.requests;
        s += self.tx;
        s += self.completions;
        s
    }
}

/// Entries of each client ring in [`Lab::ring_abort_all`] (the daemon's
/// default ring size).
const RING_ENTRIES: u32 = 4096;

/// Counts `e`'s pending completions, applying `f` to each.
#[inline]
fn drain_completions(e: &mut QueueEngine, mut f: impl FnMut(&Completion)) -> usize {
    let mut n = 0;
    while let Some(c) = e.poll_completion() {
        f(&c);
        n += 1;
    }
    n
}

/// The `i`-th connection's (A port, B port).
fn ports(i: u32) -> (u16, u16) {
    (
        BASE_PORT + (i / PORTS_PER_LISTENER) as u16,
        1024 + (i % PORTS_PER_LISTENER) as u16,
    )
}

/// How long one scenario took, and on which side.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Connections closed.
    pub closes: usize,
    /// Wall time from the first request to the last frame.
    pub total: Duration,
    /// The part of `total` spent in engine A (when the scenario splits it).
    pub engine_a: Duration,
    /// Loop iterations (`handle_timeout` + drains) the scenario took, when
    /// it counts them (linger expiry); 0 otherwise.
    pub rounds: usize,
    /// The median of those iterations.
    pub median_round: Duration,
    /// The longest of those iterations (on a shared machine, usually a
    /// preemption rather than the engine).
    pub longest_round: Duration,
    /// TSC cycles over `total`.
    pub cycles: u64,
    /// TSC cycles over `engine_a`.
    pub cycles_a: u64,
}

impl Timing {
    /// The timing of a scenario that times engine A alone, over `span`.
    fn engine_a_only(closes: usize, span: &Span) -> Timing {
        Timing {
            closes,
            total: span.elapsed,
            engine_a: span.elapsed,
            cycles: span.cycles,
            cycles_a: span.cycles,
            ..Timing::default()
        }
    }

    /// Closes per second over the whole scenario.
    pub fn per_s(&self) -> f64 {
        crate::measure::per_second(self.total, self.closes)
    }

    /// Closes per second counting only engine A's time.
    pub fn per_s_engine_a(&self) -> f64 {
        crate::measure::per_second(self.engine_a, self.closes)
    }

    /// TSC cycles per close over the whole scenario.
    pub fn cycles_per_close(&self) -> f64 {
        self.cycles as f64 / self.closes.max(1) as f64
    }

    /// TSC cycles per close counting only engine A's time.
    pub fn cycles_per_close_a(&self) -> f64 {
        self.cycles_a as f64 / self.closes.max(1) as f64
    }
}

/// Two engines with `n` established connections between them.
#[derive(Debug)]
pub struct Lab {
    /// The lingerd under test.
    pub a: QueueEngine,
    /// The load generator.
    pub b: QueueEngine,
    /// The virtual clock.
    pub now: Instant,
    /// A's handles of the established connections.
    pub handles: Vec<Handle>,
    /// Whether bursts of requests are announced with
    /// `QueueEngine::prefetch_request` first, as a shell reading a client
    /// ring burst does.
    pub prefetch: bool,
    ab: Wire,
    ba: Wire,
}

impl Lab {
    /// Opens `n` connections from B to A (three-way handshakes over the
    /// wire, ARP included) and returns once all are established.
    ///
    /// # Panics
    /// If fewer than `n` connections got established.
    pub fn establish(n: u32) -> Lab {
        assert!(
            n <= 64_000 * 5_000,
            "too many connections for the port plan"
        );
        let now = Instant::now();
        let mut lab = Lab {
            a: QueueEngine::new(config_a(n), now),
            b: QueueEngine::new(config_b(n), now),
            now,
            handles: Vec::with_capacity(n as usize),
            prefetch: true,
            ab: Wire::default(),
            ba: Wire::default(),
        };
        let listeners = n.div_ceil(PORTS_PER_LISTENER);
        for k in 0..listeners {
            lab.a.handle_request(
                now,
                CLIENT,
                0,
                Request::Listen {
                    port: BASE_PORT + k as u16,
                    backlog: 1 << 20,
                },
            );
        }
        let _ = drain_completions(&mut lab.a, |_| ());
        let mut i = 0;
        while i < n {
            let end = (i + OPEN_BATCH).min(n);
            for j in i..end {
                let (a_port, b_port) = ports(j);
                lab.b.handle_request(
                    now,
                    PEER_CLIENT,
                    u64::from(j),
                    Request::Connect {
                        remote: SocketAddrV4::new(A_IP, a_port).into(),
                        local_port: Some(b_port),
                        local_addr: None,
                    },
                );
            }
            lab.pump(|_, _| ());
            i = end;
        }
        assert_eq!(
            lab.handles.len(),
            n as usize,
            "connections established: {} of {n} (A: {:?})",
            lab.handles.len(),
            lab.a.counters()
        );
        lab
    }

    /// Moves frames both ways until both engines are quiet, collecting A's
    /// accepted handles and handing B's completions to `on_b`.
    fn pump(&mut self, mut on_b: impl FnMut(&mut QueueEngine, &Completion)) {
        let now = self.now;
        loop {
            self.ba.fill_from(&mut self.b, now);
            self.ab.fill_from(&mut self.a, now);
            if self.ab.is_empty() && self.ba.is_empty() {
                break;
            }
            self.ba.deliver(&mut self.a, now);
            self.ab.deliver(&mut self.b, now);
            let handles = &mut self.handles;
            drain_completions(&mut self.a, |c| {
                if matches!(c.detail, Detail::Accepted { .. }) {
                    handles.push(c.handle);
                }
            });
            while let Some(c) = self.b.poll_completion() {
                on_b(&mut self.b, &c);
            }
        }
    }

    /// Aborts every connection on A (`Request::Abort`, a burst at a time,
    /// draining the RSTs into a TX ring after each burst) and times it from
    /// the first request to the last frame. B never sees the RSTs.
    ///
    /// # Panics
    /// If not every connection produced exactly one RST and one completion.
    pub fn abort_all(&mut self) -> Timing {
        let listeners = self.a.connection_count() - self.handles.len();
        let handles = std::mem::take(&mut self.handles);
        let mut ring = TxRing::default();
        let (now, a) = (self.now, &mut self.a);
        let (mut rsts, mut done) = (0, 0);
        let prefetch = self.prefetch;
        let span = profiled("abort", || {
            let watch = Stopwatch::start();
            for burst in handles.chunks(BURST) {
                if prefetch {
                    for &handle in burst {
                        a.prefetch_request(&Request::Abort { handle });
                    }
                }
                for &handle in burst {
                    a.handle_request(now, CLIENT, handle.raw(), Request::Abort { handle });
                }
                rsts += ring.drain(a, now).1;
                done += drain_completions(a, |_| ());
            }
            watch.stop()
        });
        assert_eq!(
            (rsts, done),
            (handles.len(), handles.len()),
            "abort RSTs, completions"
        );
        assert_eq!(a.connection_count(), listeners, "records left after abort");
        Timing::engine_a_only(handles.len(), &span)
    }

    /// Aborts every established connection on A with one bulk request
    /// (`CloseMatching`, state Established, mode abort, unpaced), the way
    /// a load balancer drops a backend: the shell's loop at one instant
    /// runs `handle_timeout` (one bounded slice of the job each call) and
    /// drains the RSTs after each, until the job's final completion. Timed
    /// from the request to the last frame.
    ///
    /// # Panics
    /// If the job did not finish within one call per connection, or not
    /// every connection produced exactly one RST and the job's count.
    pub fn bulk_abort_all(&mut self) -> Timing {
        const USER_DATA: u64 = 0xb01c;
        let listeners = self.a.connection_count() - self.handles.len();
        let handles = std::mem::take(&mut self.handles);
        let mut ring = TxRing::default();
        let (now, a) = (self.now, &mut self.a);
        let (mut rsts, mut count) = (0, None);
        let span = profiled("bulk", || {
            let watch = Stopwatch::start();
            a.handle_request(
                now,
                CLIENT,
                USER_DATA,
                Request::CloseMatching {
                    filter: Filter {
                        states: State::Established.bit(),
                        ..Filter::default()
                    },
                    mode: CloseMode::Abort,
                    pace_per_s: 0,
                },
            );
            for _ in 0..=handles.len() {
                a.handle_timeout(now);
                rsts += ring.drain(a, now).1;
                drain_completions(a, |c| {
                    if let (false, USER_DATA, Detail::Count(n)) =
                        (c.is_event, c.user_data, &c.detail)
                    {
                        count = Some(*n);
                    }
                });
                if count.is_some() {
                    break;
                }
            }
            watch.stop()
        });
        assert_eq!(
            (rsts, count),
            (handles.len(), Some(handles.len() as u64)),
            "bulk abort RSTs, the job's count"
        );
        assert_eq!(
            a.connection_count(),
            listeners,
            "records left after bulk abort"
        );
        Timing::engine_a_only(handles.len(), &span)
    }

    /// Aborts every connection on A through a client's rings, as the
    /// daemon does: the client writes `Abort` entries into its request
    /// ring (bursts of [`BURST`]), the daemon side takes them with
    /// `ClientRings::poll_requests` (at most [`BURST`] per loop, as the
    /// daemon's per-client budget), sends the RSTs through a [`MemPort`]
    /// and writes the completions into the completion ring, which the
    /// client reads. Only the daemon's side is in the parts' spans; the
    /// timing's total covers the client too.
    ///
    /// # Panics
    /// If not every request got one successful completion and one RST.
    pub fn ring_abort_all(&mut self) -> RingTiming {
        let listeners = self.a.connection_count() - self.handles.len();
        let handles = std::mem::take(&mut self.handles);
        let layout = Layout::new(LayoutParams {
            cores: 1,
            ring_entries: RING_ENTRIES,
            chunk_size: 256,
            tx_chunks: 16,
            rx_chunks: 16,
        })
        .expect("valid ring layout");
        let region = Arc::new(SharedRegion::anonymous(layout.total));
        let mut rings =
            ClientRings::new(CLIENT, 0, region.clone(), layout).expect("rings fit the region");
        let mut submit = Producer::new(
            region.clone(),
            layout.request_ring(0).expect("core 0"),
            RING_ENTRIES,
        )
        .expect("request ring");
        let mut reap = Consumer::new(
            region,
            layout.completion_ring(0).expect("core 0"),
            RING_ENTRIES,
        )
        .expect("completion ring");
        let mut port = MemPort::default();
        let (now, a) = (self.now, &mut self.a);
        let mut t = RingTiming::default();
        let (mut next, mut done) = (0usize, 0usize);
        let watch = {
            let watch = Stopwatch::start();
            while done < handles.len() {
                // The client: a burst of aborts, then the doorbell.
                let end = (next + BURST).min(handles.len());
                while next < end {
                    let h = handles[next].raw();
                    if !submit.push(&entry::encode_request(h, &Op::Abort { handle: h })) {
                        break;
                    }
                    next += 1;
                }
                submit.publish();
                // The daemon's loop: requests, TX, completions (the part
                // a profile of this scenario records).
                profile_on("ring");
                let w = Stopwatch::start();
                rings.poll_requests(a, now, BURST as u32);
                t.requests += w.stop();
                let w = Stopwatch::start();
                while port.tx_frame(|buf| a.poll_transmit(now, buf)) == TxOutcome::Queued {}
                let _ = port.flush();
                t.tx += w.stop();
                let w = Stopwatch::start();
                while let Some(c) = a.poll_completion() {
                    rings.deliver(c);
                }
                rings.flush();
                t.completions += w.stop();
                profile_off("ring");
                // The client reads its completions.
                let n = reap.available();
                for _ in 0..n {
                    let bytes = reap.pop().expect("available");
                    let c = entry::Completion::decode(&bytes).expect("valid completion");
                    assert_eq!(c.result, Errno::Ok, "abort of {:#x}", c.user_data);
                    done += 1;
                }
                reap.release();
            }
            watch.stop()
        };
        let span = watch;
        t.frames = port.sent;
        assert_eq!(
            (port.sent, port.rsts, rings.stats().completions),
            (
                handles.len() as u64,
                handles.len() as u64,
                handles.len() as u64
            ),
            "ring abort frames, RSTs, completions"
        );
        assert_eq!(a.connection_count(), listeners, "records left after abort");
        let daemon = t.daemon();
        t.timing = Timing {
            closes: handles.len(),
            total: span.elapsed,
            engine_a: daemon.elapsed,
            cycles: span.cycles,
            cycles_a: daemon.cycles,
            ..Timing::default()
        };
        t
    }

    /// Graceful close of every connection with linger off: A's `Close`
    /// sends FIN, B answers (ACK, and its own FIN once its client closes on
    /// the PeerClosed event), A ACKs and enters TIME-WAIT. Timed until every
    /// connection of A reached TIME-WAIT and all frames were exchanged; B's
    /// processing is inside `total`, and A's own share is `engine_a`.
    ///
    /// # Panics
    /// If not every connection of A entered TIME-WAIT.
    pub fn graceful_all(&mut self) -> Timing {
        let handles = std::mem::take(&mut self.handles);
        let now = self.now;
        let before = self.a.counters().time_wait_entered;
        let mut a_span = Span::default();
        let watch = Stopwatch::start();
        for burst in handles.chunks(BURST) {
            profile_on("graceful");
            let t = Stopwatch::start();
            for &handle in burst {
                self.a.handle_request(
                    now,
                    CLIENT,
                    handle.raw(),
                    Request::Close {
                        handle,
                        nonblocking: false,
                    },
                );
            }
            self.ab.fill_from(&mut self.a, now);
            drain_completions(&mut self.a, |_| ());
            a_span += t.stop();
            profile_off("graceful");
            while !self.ab.is_empty() || !self.ba.is_empty() {
                // B: FINs (and final ACKs) in; its client closes on PeerClosed.
                self.ab.deliver(&mut self.b, now);
                while let Some(c) = self.b.poll_completion() {
                    if c.detail == Detail::PeerClosed {
                        self.b.handle_request(
                            now,
                            PEER_CLIENT,
                            0,
                            Request::Close {
                                handle: c.handle,
                                nonblocking: false,
                            },
                        );
                    }
                }
                self.ba.fill_from(&mut self.b, now);
                // A: B's ACK+FIN in, our ACK out.
                profile_on("graceful");
                let t = Stopwatch::start();
                self.ba.deliver(&mut self.a, now);
                self.ab.fill_from(&mut self.a, now);
                drain_completions(&mut self.a, |_| ());
                a_span += t.stop();
                profile_off("graceful");
            }
        }
        let span = watch.stop();
        let total = span.elapsed;
        let entered = self.a.counters().time_wait_entered - before;
        assert_eq!(
            entered,
            handles.len() as u64,
            "connections that reached TIME-WAIT"
        );
        Timing {
            closes: handles.len(),
            total,
            engine_a: a_span.elapsed,
            cycles: span.cycles,
            cycles_a: a_span.cycles,
            ..Timing::default()
        }
    }

    /// Sets linger `{on, LINGER_MS}` and closes (blocking) every connection
    /// on A; the peer never sees the FINs so nothing is acknowledged. Then
    /// moves the virtual clock past the deadline and times the shell's loop
    /// at that instant: `handle_timeout` (bounded per call), draining the
    /// RSTs into a TX ring and the completions, again while `poll_timeout`
    /// is due. Only the expiry is timed; `rounds` and `longest_round` say
    /// how the work was sliced.
    ///
    /// # Panics
    /// If not every connection was reset by its linger deadline.
    pub fn linger_expire_all(&mut self) -> Timing {
        let handles = std::mem::take(&mut self.handles);
        let now = self.now;
        let mut ring = TxRing::default();
        for burst in handles.chunks(BURST) {
            for &handle in burst {
                self.a.handle_request(
                    now,
                    CLIENT,
                    0,
                    Request::SetLinger {
                        handle,
                        linger: Linger {
                            on: true,
                            ms: LINGER_MS,
                        },
                    },
                );
                self.a.handle_request(
                    now,
                    CLIENT,
                    handle.raw(),
                    Request::Close {
                        handle,
                        nonblocking: false,
                    },
                );
            }
            // The FINs go nowhere: the peer never acknowledges.
            let _ = ring.drain(&mut self.a, now);
            drain_completions(&mut self.a, |_| ());
        }
        let before = self.a.counters().rst_linger_expired;
        let later = now + Duration::from_millis(u64::from(LINGER_MS) + 1);
        let a = &mut self.a;
        let (mut rsts, mut done) = (0, 0);
        let mut rounds = Vec::with_capacity(handles.len() / 64 + 16);
        let span = profiled("linger", || {
            let watch = Stopwatch::start();
            // The shell's loop at one instant: `handle_timeout` works off at
            // most `MAX_EXPIRIES_PER_CALL` expiries per call and stays due.
            while a.poll_timeout().is_some_and(|t| t <= later) {
                let round = Instant::now();
                a.handle_timeout(later);
                rsts += ring.drain(a, later).1;
                done += drain_completions(a, |_| ());
                rounds.push(round.elapsed());
            }
            watch.stop()
        });
        rounds.sort_unstable();
        self.now = later;
        let expired = a.counters().rst_linger_expired - before;
        assert_eq!(
            (expired, rsts, done),
            (handles.len() as u64, handles.len(), handles.len()),
            "linger expiries, RSTs, completions"
        );
        Timing {
            rounds: rounds.len(),
            median_round: rounds.get(rounds.len() / 2).copied().unwrap_or_default(),
            longest_round: rounds.last().copied().unwrap_or_default(),
            ..Timing::engine_a_only(handles.len(), &span)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn establish_then_abort_all() {
        let mut lab = Lab::establish(3_000);
        assert!(
            lab.handles
                .iter()
                .all(|&h| lab.a.state(h) == Some(State::Established))
        );
        let t = lab.abort_all();
        assert_eq!(t.closes, 3_000);
    }

    #[test]
    fn bulk_abort_all_resets_every_established_connection() {
        let mut lab = Lab::establish(3_000);
        let t = lab.bulk_abort_all();
        assert_eq!(t.closes, 3_000);
    }

    #[test]
    fn ring_abort_all_answers_every_request_and_sends_every_rst() {
        let mut lab = Lab::establish(3_000);
        let t = lab.ring_abort_all();
        assert_eq!((t.timing.closes, t.frames), (3_000, 3_000));
        assert!(t.timing.engine_a <= t.timing.total);
    }

    #[test]
    fn graceful_all_reaches_time_wait() {
        let mut lab = Lab::establish(2_000);
        let handles = lab.handles.clone();
        let t = lab.graceful_all();
        assert_eq!(t.closes, 2_000);
        assert!(
            handles
                .iter()
                .all(|&h| lab.a.state(h) == Some(State::TimeWait))
        );
        assert!(t.engine_a <= t.total);
    }

    #[test]
    fn linger_deadlines_expire_into_rsts() {
        let mut lab = Lab::establish(1_500);
        assert_eq!(lab.linger_expire_all().closes, 1_500);
    }
}
