//! The per-queue TCP engine: one per NIC queue, owned by one core.
//!
//! [`QueueEngine`] owns that queue's connection table, timing wheel,
//! listeners, neighbour cache and the queues between it and its clients. It
//! is sans-IO: frames, requests and the time come in as arguments, frames and
//! completions go out through `poll_*`. Protocol decisions for a connection
//! are made in [`crate::tcp`]; this module routes frames and requests to the
//! right record and carries out what `tcp` decides (free, reply, transmit,
//! re-arm). It may not read clocks, sockets or threads.

pub mod api;
pub mod config;
mod matching;
pub mod neighbor;
mod pacing;
mod requests;
mod rx;
mod tx;

pub use crate::shared::counters;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use api::{ClientId, Completion};
use config::EngineConfig;
use counters::Counters;
use neighbor::NeighborCache;

use crate::shared::config::TcpConfig;
use crate::shared::reply_limit::ReplyLimit;
use crate::shared::{CtlSegment, Disposition, NoSink, RstClock, RxSink};
use crate::table::{FourTuple, Handle, Table};
use crate::tcp::cx::Cx;
use crate::tcp::isn::IsnGenerator;
use crate::tcp::reasm::{ReasmPool, ReasmUsage};
use crate::tcp::sendbuf::SendBufPool;
use crate::tcp::state::State;
use crate::tcp::tcb::{Tcb, TcbFlags};
use crate::tcp::{open, output, timers};
use crate::timer::Wheel;
use crate::wire::{ArpOperation, EthernetAddress, RstTemplate, RstTemplateV6, SeqNumber};

/// A listener: where passive opens on a port go.
#[derive(Clone, Copy, Debug)]
struct Listener {
    handle: Handle,
    backlog: u32,
    /// Handshakes in SYN-RECEIVED (beyond `backlog`, SYN cookies answer).
    pending: u32,
}

/// A frame that needs no connection record: RSTs, ARP, Neighbor
/// Discovery, cookie SYN-ACKs.
#[derive(Clone, Copy, Debug)]
enum CtlFrame {
    /// A TCP control segment from `local` (of the segment's family); an
    /// RST of our own carries what its departure is timed against.
    Tcp {
        local: IpAddr,
        seg: CtlSegment,
        clock: RstClock,
    },
    /// An ARP request or reply.
    Arp {
        op: ArpOperation,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
        sender_ip: Ipv4Addr,
    },
    /// A Neighbor Advertisement of our address `target` to `dst_ip` at
    /// `dst_mac` (answering a solicitation; `solicited` unless it answers
    /// duplicate address detection, whose answer goes to all nodes).
    NdAdvert {
        target: Ipv6Addr,
        dst_ip: Ipv6Addr,
        dst_mac: EthernetAddress,
        solicited: bool,
    },
    /// A Neighbor Solicitation for `target` from our address `src_ip`, to
    /// the target's solicited-node group.
    NdSolicit { target: Ipv6Addr, src_ip: Ipv6Addr },
    /// A SYN-ACK carrying a SYN cookie.
    CookieSynAck {
        tuple: FourTuple,
        seq: SeqNumber,
        ack: SeqNumber,
        mss: u16,
    },
}

/// Bound on queued control frames answering peers (responder RSTs, ARP,
/// challenge-free replies); beyond it they are dropped and counted. RSTs of
/// our own closes are never dropped.
const MAX_REPLY_FRAMES: usize = 1 << 16;

/// What a walk of the connection table counts ([`QueueEngine::count_states`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Records per TCP state (index = `State as usize`).
    pub states: [u64; 11],
    /// Records with a linger deadline armed ([`Tcb::linger_armed`]).
    pub linger_armed: u64,
}

/// Expired timers one [`QueueEngine::handle_timeout`] call processes at most;
/// the rest stay due (`poll_timeout` reports a time ≤ `now`) for the next
/// call.
///
/// The trade-off: the linger contract (one RST within one timer tick after
/// the deadline, docs/close-semantics.md#peer-view) holds for every expiry
/// as long as the shell's loop runs at least once per tick and no more than
/// this many deadlines fall due in one tick; meanwhile a request that
/// arrives waits for at most one call's worth of expiries. When more fall
/// due at once (a million lingering connections closed in the same
/// millisecond), they are worked off at this many per loop iteration: the
/// last is late by `due / MAX_EXPIRIES_PER_CALL` iterations, but none is
/// lost, none is sent twice, and receive, requests and transmit keep being
/// served in between (and the control and completion queues stay bounded
/// by this cap instead of growing to the number of expiries). A larger cap
/// finishes a burst in fewer iterations at the price of longer stalls of
/// everything else; the measurements behind the value are in the commit
/// history and the README.
pub const MAX_EXPIRIES_PER_CALL: usize = 64;

/// Timer entries one `handle_timeout` call may move down the wheel's levels
/// (cascading; a move is a few ns, an order of magnitude cheaper than an
/// expiry). Without it one call could cascade a whole slot: 1M linger
/// deadlines armed in the same second share one level-2 slot.
const MAX_CASCADE_MOVES_PER_CALL: usize = 8 * MAX_EXPIRIES_PER_CALL;

/// The listener a connection needs in its [`Cx`]: only a passive open in
/// SYN-RECEIVED uses it (to report the accept, RFC 9293 §3.10.7.4 fifth
/// step), so every other event skips the hash lookup.
#[inline]
fn passive_listener(listeners: &HashMap<u16, Listener>, tcb: &Tcb, port: u16) -> Option<Handle> {
    if tcb.state == State::SynReceived {
        listeners.get(&port).map(|l| l.handle)
    } else {
        None
    }
}

/// One queue's TCP engine.
///
/// # Call order (the shell's loop)
/// 1. `handle_rx(now, frame)` for each received frame (a burst);
/// 2. `handle_request(now, client, user_data, request)` for client requests;
/// 3. `handle_timeout(now)` when `poll_timeout()` is at or before `now`;
/// 4. `poll_transmit(now, buf)` until `None`, sending each frame;
/// 5. `poll_completion()` until `None`, delivering each to its client.
///
/// `now` must never go backwards. All methods are bounded: a single call
/// never walks the whole table (bulk work is sliced by `handle_timeout`,
/// which also processes at most [`MAX_EXPIRIES_PER_CALL`] expired timers per
/// call and stays due while more are left).
#[derive(Debug)]
pub struct QueueEngine {
    cfg: EngineConfig,
    epoch: Instant,
    /// The time deadlines are armed from: the last entry's `now`, rounded
    /// up to the millisecond (see [`QueueEngine::enter`]).
    arm_ms: u64,
    /// The last entry's `now` in nanoseconds since the epoch (the close
    /// histograms' clock).
    now_ns: u64,
    /// The last entry's `now` and the whole milliseconds `enter` returned
    /// for it: a shell hands one `now` to a whole burst of calls, and the
    /// clock arithmetic is done once for them.
    entered: (Instant, u64),
    /// What an RST of our own decided now is timed against (set per event
    /// by the entry points; see [`RstClock`]).
    rst_clock: RstClock,
    table: Table<Tcb>,
    wheel: Wheel,
    neighbors: NeighborCache,
    isn: IsnGenerator,
    listeners: HashMap<u16, Listener>,
    ctl: VecDeque<CtlFrame>,
    /// Control frames waiting for their next hop's MAC.
    ctl_waiting: VecDeque<CtlFrame>,
    tx_list: VecDeque<Handle>,
    completions: VecDeque<Completion>,
    counters: Counters,
    /// RSTs we originate, waiting for a token of `max_rst_per_s`.
    pacer: pacing::RstPacer,
    /// The longest any paced RST waited so far, in milliseconds.
    rst_wait_max_ms: u64,
    /// The bound on answers to peers (responder RSTs, challenge ACKs).
    replies: ReplyLimit,
    pool: SendBufPool,
    /// Out-of-order data of every connection, in one budget.
    reasm: ReasmPool,
    jobs: VecDeque<matching::MatchJob>,
    next_ephemeral: u16,
    scratch: Vec<u8>,
    rst_templates: Vec<(IpAddr, EthernetAddress, AnyRstTemplate)>,
    /// `cfg.tcp` as IPv6 connections use it: the MSS 20 bytes smaller
    /// (the IPv6 header is 40 bytes, the IPv4 one 20).
    tcp6: TcpConfig,
}

/// An RST template of either family.
#[derive(Debug)]
enum AnyRstTemplate {
    V4(RstTemplate),
    V6(RstTemplateV6),
}

/// Bytes an IPv6 header takes beyond an IPv4 one: what an IPv6
/// connection's MSS is smaller by on the same link.
const V6_EXTRA_HEADER: u16 = (crate::wire::IPV6_HEADER_LEN - crate::wire::IPV4_HEADER_LEN) as u16;

/// The TCP configuration IPv6 connections use: `tcp` with its MSS lowered
/// by the larger IP header (never below the IPv6 minimum's 1220).
fn tcp_for_v6(tcp: &TcpConfig) -> TcpConfig {
    TcpConfig {
        mss: tcp
            .mss
            .saturating_sub(V6_EXTRA_HEADER)
            .max(MIN_MSS_V6.min(tcp.mss)),
        ..tcp.clone()
    }
}

/// The smallest MSS an IPv6 path can force: the IPv6 minimum MTU, 1280,
/// less 40 bytes of IPv6 header and 20 of TCP (RFC 8200 §5, RFC 8201 §4).
pub const MIN_MSS_V6: u16 = (crate::wire::IPV6_MIN_MTU as u16) - 60;

/// The local-address list of an engine's table: the unspecified IPv4
/// address first (listeners' keys), then the engine's addresses (at most
/// [`config::MAX_ADDRS`]).
fn table_addrs(cfg: &EngineConfig) -> Vec<IpAddr> {
    std::iter::once(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .chain(cfg.addrs.iter().map(|a| a.addr()))
        .take(crate::table::MAX_LOCAL_ADDRS)
        .collect()
}

impl QueueEngine {
    /// An engine with an empty table; `now` becomes its epoch.
    pub fn new(cfg: EngineConfig, now: Instant) -> QueueEngine {
        let table = Table::with_capacity(
            cfg.core,
            cfg.max_connections,
            cfg.hash_key,
            &table_addrs(&cfg),
        );
        let pool = SendBufPool::new(cfg.tcp.send_buffer as usize, 4096);
        let next_ephemeral = cfg.tcp.ephemeral_ports.0;
        QueueEngine {
            isn: IsnGenerator::new(cfg.isn_secret, cfg.cookie_secret),
            table,
            wheel: Wheel::new(0),
            neighbors: NeighborCache::default(),
            listeners: HashMap::new(),
            ctl: VecDeque::new(),
            ctl_waiting: VecDeque::new(),
            tx_list: VecDeque::new(),
            completions: VecDeque::new(),
            counters: Counters::default(),
            pacer: pacing::RstPacer::new(cfg.max_rst_per_s, cfg.max_connections as usize),
            rst_wait_max_ms: 0,
            // Seeded from the engine's secrets, never the same sequence as
            // the ISNs' or cookies' own use of them.
            replies: ReplyLimit::new(
                cfg.max_replies_per_s,
                cfg.cookie_secret[1] ^ cfg.isn_secret[0].rotate_left(29) ^ cfg.hash_key,
            ),
            pool,
            reasm: ReasmPool::new(cfg.reassembly),
            jobs: VecDeque::new(),
            next_ephemeral,
            scratch: vec![0; usize::from(cfg.tcp.mss).max(536)],
            rst_templates: Vec::new(),
            tcp6: tcp_for_v6(&cfg.tcp),
            epoch: now,
            arm_ms: 0,
            now_ns: 0,
            entered: (now, 0),
            rst_clock: RstClock::UNTIMED,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Changes the values a running engine may change (a reload): they
    /// apply to timers armed and connections opened from now on; armed
    /// deadlines and open connections' linger settings stay as they are
    /// ([`config::Tunables`] says which value applies when). A new RST
    /// pacing rate applies to the next RST to leave, waiting ones included.
    pub fn retune(&mut self, tunables: config::Tunables) {
        self.cfg.set_tunables(tunables);
        self.tcp6 = tcp_for_v6(&self.cfg.tcp);
        self.pacer.set_rate(self.cfg.max_rst_per_s);
    }

    /// RSTs of our own closes waiting for a pacing token
    /// ([`EngineConfig::max_rst_per_s`]); not part of
    /// [`tx_backlog`](Self::tx_backlog), since they are not ready to go.
    pub fn paced_rsts_waiting(&self) -> usize {
        self.pacer.len()
    }

    /// Close completions waiting for their paced RST to leave (each is
    /// posted by the `poll_transmit` that sends its RST).
    pub fn closes_waiting_for_rst(&self) -> usize {
        self.pacer.held()
    }

    /// The longest a paced RST waited for its token so far, in
    /// milliseconds (from the close that decided it to its departure).
    pub fn paced_rst_wait_max_ms(&self) -> u64 {
        self.rst_wait_max_ms
    }

    /// Lets every waiting paced RST go at once, ignoring the rate (a
    /// shutdown whose drain time is up: late RSTs beat lost ones). Returns
    /// how many were released; they count in [`tx_backlog`](Self::tx_backlog)
    /// until sent.
    pub fn release_paced_rsts(&mut self, now: Instant) -> usize {
        let now_ms = self.enter(now);
        let mut n = 0;
        while let Some(d) = self.pacer.pop(0, now_ms, 0) {
            self.count_paced(d.waited_ms);
            self.ctl.push_back(d.frame);
            self.post_held(d.completion);
            n += 1;
        }
        n
    }

    /// Counts one paced RST leaving after `waited` ms.
    fn count_paced(&mut self, waited: u64) {
        self.counters.rst_paced += 1;
        self.counters.rst_paced_wait_ms += waited;
        self.rst_wait_max_ms = self.rst_wait_max_ms.max(waited);
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Records in the table (connections in any state, listeners, handles
    /// of dead connections not yet closed by their client).
    pub fn connection_count(&self) -> usize {
        self.table.len()
    }

    /// Armed connection timers.
    pub fn timers_armed(&self) -> usize {
        self.wheel.len()
    }

    /// Bulk jobs (`close_matching`, client-exit sweeps) still walking the
    /// table: a shell that wants to stop waits for them too.
    pub fn pending_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Frames waiting for `poll_transmit` (control frames plus connections
    /// with output): the shell's backpressure signal.
    pub fn tx_backlog(&self) -> usize {
        self.ctl.len() + self.tx_list.len()
    }

    /// Bytes of memory held by the table (records, index, free list).
    pub fn table_memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    /// The reassembly pool's gauges: its budget and what queues hold.
    pub fn reasm_usage(&self) -> ReasmUsage {
        self.reasm.usage()
    }

    /// Payload bytes a connection holds out of order (tests).
    pub fn reasm_queued(&self, handle: Handle) -> u32 {
        self.table
            .get(handle)
            .map_or(0, |t| self.reasm.queued_bytes(t.reasm))
    }

    /// The state of a connection, for tests and `ctl conns`.
    pub fn state(&self, handle: Handle) -> Option<State> {
        self.table.get(handle).map(|t| t.state)
    }

    /// The 4-tuple of a connection.
    pub fn tuple(&self, handle: Handle) -> Option<FourTuple> {
        self.table.tuple(handle)
    }

    /// Counts records per state (bounded by the table size; for metrics and
    /// tests, not for the hot path).
    pub fn states_histogram(&self) -> [u64; 11] {
        let mut c = Census::default();
        let _ = self.count_states(0, u32::MAX, &mut c);
        c.states
    }

    /// Adds at most `max_slots` records from slot `cursor` into `census`
    /// (their states, and whether a linger deadline is armed) and returns
    /// the next cursor, or `None` once the table has been walked: a bounded
    /// census for the `connections{state}` and `linger_timers_armed`
    /// gauges, spread over loop iterations instead of one scan of millions.
    pub fn count_states(&self, cursor: u32, max_slots: u32, census: &mut Census) -> Option<u32> {
        let end = self.table.slots_in_use();
        let stop = cursor.saturating_add(max_slots).min(end);
        for slot in cursor..stop {
            if let Some(t) = self.table.handle_at(slot).and_then(|h| self.table.get(h)) {
                census.states[t.state as usize] += 1;
                census.linger_armed += u64::from(t.linger_armed());
            }
        }
        (stop < end).then_some(stop)
    }

    fn now_ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The engine's clock at an entry point: returns `now` in whole
    /// milliseconds rounded down (what is due is what the wheel's
    /// millisecond has reached) and records it rounded up as the time
    /// deadlines count from. A deadline of N ms armed now therefore never
    /// fires before N ms have passed (docs/close-semantics.md#deadlines);
    /// it may fire up to a millisecond late. It also records the time in
    /// nanoseconds and leaves RSTs untimed until the caller says otherwise.
    fn enter(&mut self, now: Instant) -> u64 {
        self.rst_clock = RstClock::UNTIMED;
        if now == self.entered.0 {
            // `now_ns` and `arm_ms` are still those of this instant.
            return self.entered.1;
        }
        let since = now.saturating_duration_since(self.epoch);
        // u64 arithmetic (as_nanos is u128): exact for 584 years.
        self.now_ns = since
            .as_secs()
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(since.subsec_nanos()));
        let floor = since.as_millis() as u64;
        let exact = since.subsec_nanos().is_multiple_of(1_000_000);
        self.arm_ms = if exact {
            floor
        } else {
            floor.saturating_add(1)
        };
        self.entered = (now, floor);
        floor
    }

    /// The time a deadline armed now counts from (see [`Self::enter`]):
    /// never before `now_ms`, the current call's clock, even for a path
    /// that reached the engine without passing through `enter`.
    fn arm_from(&self, now_ms: u64) -> u64 {
        self.arm_ms.max(now_ms)
    }

    fn instant_at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// The next completion for a client, in order.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// When `handle_timeout` must next be called (`None`: only when
    /// something arrives). A time ≤ `now` means "call it now": either a
    /// deadline passed or a previous call left expired timers for later
    /// ([`MAX_EXPIRIES_PER_CALL`]). It is also the time the next paced RST
    /// may leave (its token accrues), so a sleeping shell wakes for it; at
    /// that time `poll_transmit` sends it.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wheel = self.wheel.next_deadline().map(|ms| self.instant_at(ms));
        let jobs = self
            .jobs
            .iter()
            .map(|j| self.instant_at(j.next_run_ms()))
            .min();
        let rst = self
            .pacer
            .next_departure_ns(self.cfg.max_rst_per_s)
            .map(|ns| self.epoch + Duration::from_nanos(ns));
        [wheel, jobs, rst].into_iter().flatten().min()
    }

    /// Runs expired timers (at most [`MAX_EXPIRIES_PER_CALL`], oldest
    /// ticks first) and a slice of bulk teardown work.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.enter(now);
        let mut moves = MAX_CASCADE_MOVES_PER_CALL;
        for _ in 0..MAX_EXPIRIES_PER_CALL {
            let Some(slot) = self
                .wheel
                .poll_expired_within(&mut self.table, now_ms, &mut moves)
            else {
                break;
            };
            let Some(handle) = self.table.handle_at(slot) else {
                continue;
            };
            self.prefetch_due();
            // Untimed unless the timer is a linger or `deadline=` expiry.
            self.rst_clock = RstClock::UNTIMED;
            let d = self.with_conn(handle, now_ms, timers::on_timer);
            self.apply(handle, d, now_ms);
        }
        // A bulk close decides its closes now: each is timed from here.
        self.rst_clock = RstClock::request(self.now_ns);
        self.run_jobs(now_ms);
    }

    /// While one expired timer is handled, starts fetching what the next
    /// ones will touch: the next due entry's slot is in cache (taking the
    /// previous one relinked it), so its index bucket (which its free
    /// removes) can be asked for now, and the slot after it, whose link
    /// the next pop rewrites. No effect on behaviour.
    #[inline]
    fn prefetch_due(&self) {
        use crate::timer::TimerStore;
        let Some(next) = self.wheel.due_head() else {
            return;
        };
        if let Some(h) = self.table.handle_at(next) {
            self.table.prefetch_remove(h);
        }
        let after = self.table.timer_link(next).next();
        self.table.prefetch_slot_at(after);
    }

    /// Runs `f` on the connection with an effects context. The record must
    /// exist.
    fn with_conn(
        &mut self,
        handle: Handle,
        now_ms: u64,
        f: impl FnOnce(&mut Tcb, &mut Cx<'_>) -> Disposition,
    ) -> Disposition {
        self.in_conn(handle, now_ms, &mut NoSink, f)
            .unwrap_or(Disposition::Keep)
    }

    /// Runs `f` on the connection with the effects context it may use (the
    /// one place a `Cx` is built); `None` for a stale handle.
    fn in_conn<R>(
        &mut self,
        handle: Handle,
        now_ms: u64,
        sink: &mut dyn RxSink,
        f: impl FnOnce(&mut Tcb, &mut Cx<'_>) -> R,
    ) -> Option<R> {
        let arm_ms = self.arm_from(now_ms);
        let tuple = self.table.tuple(handle)?;
        let tcb = self.table.get_mut(handle)?;
        let listener = passive_listener(&self.listeners, tcb, tuple.local_port);
        let cfg = if tuple.is_ipv6() {
            &self.tcp6
        } else {
            &self.cfg.tcp
        };
        let mut cx = Cx {
            now_ms,
            arm_ms,
            now_ns: self.now_ns,
            rst_clock: &mut self.rst_clock,
            handle,
            tuple,
            listener,
            cfg,
            counters: &mut self.counters,
            completions: &mut self.completions,
            pool: &mut self.pool,
            sink,
            reasm: &mut self.reasm,
            replies: &mut self.replies,
        };
        Some(f(tcb, &mut cx))
    }

    /// Carries out a disposition, then re-files the timer and queues output.
    fn apply(&mut self, handle: Handle, d: Disposition, now_ms: u64) {
        let own = self.rst_clock;
        let table = &self.table;
        let reply = |seg: CtlSegment, clock: RstClock| {
            table
                .local_addr(handle)
                .map(|local| CtlFrame::Tcp { local, seg, clock })
        };
        match d {
            Disposition::Keep => {}
            Disposition::Reply(ctl) => {
                if let Some(f) = reply(ctl, RstClock::UNTIMED) {
                    self.push_limited_rst(f, now_ms);
                }
            }
            Disposition::Free => {
                self.free(handle);
                return;
            }
            Disposition::ResetAndFree(ctl) => {
                if let Some(f) = reply(ctl, own) {
                    self.push_own_rst(f, now_ms, handle);
                }
                self.free(handle);
                return;
            }
            Disposition::Unindex => self.table.unindex(handle),
            Disposition::ResetAndUnindex(ctl) => {
                if let Some(f) = reply(ctl, own) {
                    self.push_own_rst(f, now_ms, handle);
                }
                self.table.unindex(handle);
            }
            Disposition::Reopen => {
                // A record the client still holds stays until it closes it
                // (`tcp::close::finished`); either way the tuple is free.
                if self.table.get(handle).is_some_and(|t| t.closed_by_client()) {
                    self.free(handle);
                    return;
                }
                self.table.unindex(handle);
            }
        }
        self.sync(handle, now_ms);
    }

    /// Re-files the connection's earliest deadline and queues it for
    /// transmission when it has output.
    fn sync(&mut self, handle: Handle, now_ms: u64) {
        let slot = handle.slot();
        let arm_ms = self.arm_from(now_ms);
        let Some(tcb) = self.table.get_mut(handle) else {
            return;
        };
        if tcb.reasm.is_some() && !tcb.may_reassemble() {
            // The peer's FIN came, the connection ended or the client can no
            // longer read: what was kept out of order can never be delivered.
            self.reasm.release(&mut tcb.reasm);
        }
        output::arm_persist(tcb, arm_ms, &self.cfg.tcp.rto);
        let deadline = tcb.next_deadline();
        let wants_tx = output::has_output(tcb) && !tcb.flags.contains(TcbFlags::ON_TX_LIST);
        if wants_tx {
            tcb.flags.insert(TcbFlags::ON_TX_LIST);
        }
        if wants_tx {
            self.tx_list.push_back(handle);
        }
        use crate::timer::TimerStore;
        let armed = self.table.timer_link(slot).deadline();
        match deadline.ms() {
            None => {
                if armed.is_some() {
                    self.wheel.cancel(&mut self.table, slot);
                }
            }
            Some(at) if armed != Some(at) => self.wheel.arm(&mut self.table, slot, at),
            Some(_) => {}
        }
    }

    /// Frees a record: cancels its timer, returns its buffers (send and
    /// reassembly), updates the listener's handshake count.
    fn free(&mut self, handle: Handle) {
        // Only a passive open still in its handshake counts against its
        // listener: the port is looked up for it alone.
        let port = self
            .table
            .get(handle)
            .is_some_and(|t| {
                t.state == State::SynReceived && !t.flags.contains(TcbFlags::ACTIVE_OPEN)
            })
            .then(|| self.table.tuple(handle).map(|t| t.local_port))
            .flatten();
        // The record's buffers go back to their pools; the rest of it
        // stays in the free slot (nothing else in it owns memory).
        let (pool, reasm) = (&mut self.pool, &mut self.reasm);
        let freed = self
            .table
            .remove_cancelling_with(handle, &mut self.wheel, |tcb| {
                if let Some(buf) = tcb.send.take() {
                    pool.put(buf);
                }
                reasm.release(&mut tcb.reasm);
            });
        if freed.is_some()
            && let Some(l) = port.and_then(|p| self.listeners.get_mut(&p))
        {
            l.pending = l.pending.saturating_sub(1);
        }
    }

    /// Queues the RST of one of our own closes: straight to the control
    /// queue when unpaced (today's cost: one push), else behind the RSTs
    /// already waiting for a pacing token. The pacing queue holds one RST
    /// per connection record; should records be freed and reset faster
    /// than the rate for longer than a whole table's worth, the RST that
    /// finds it full leaves unpaced (counted) rather than being lost.
    ///
    /// A paced RST takes the completion of the close that sent it with it
    /// (`handle`'s answer to its close, abort or blocking linger close,
    /// posted by this event): the close reports its outcome when its RST
    /// leaves, not before.
    fn push_own_rst(&mut self, f: CtlFrame, now_ms: u64, handle: Handle) {
        if !self.pacer.engaged(self.cfg.max_rst_per_s) {
            self.ctl.push_back(f);
        } else if self.pacer.has_room() {
            let done = self.take_close_completion(handle);
            self.pacer.push(f, now_ms, done);
        } else {
            self.counters.rst_pacing_overflow += 1;
            self.ctl.push_back(f);
        }
    }

    /// Takes `handle`'s close completion out of the completion queue, if
    /// the event being applied posted one. Everything an event posts is
    /// for its own handle and comes last in the queue, so the search stops
    /// at the first entry for another handle: a few entries at most.
    fn take_close_completion(&mut self, handle: Handle) -> Option<Completion> {
        let at = self
            .completions
            .iter()
            .rev()
            .take_while(|c| c.handle == handle)
            .position(|c| !c.is_event && matches!(c.detail, api::Detail::Closed(_)))?;
        let index = self.completions.len().checked_sub(at + 1)?;
        self.completions.remove(index)
    }

    /// Posts the completion a paced RST carried, now that it left.
    fn post_held(&mut self, completion: Option<Completion>) {
        if let Some(c) = completion {
            self.completions.push_back(c);
        }
    }

    /// Queues an RST answering a peer's segment, within the core's bound
    /// on answers ([`EngineConfig::max_replies_per_s`]); over it, the RST
    /// is not sent and is counted.
    fn push_limited_rst(&mut self, f: CtlFrame, now_ms: u64) {
        if self.replies.admit(now_ms) {
            self.push_reply(f);
        } else {
            self.counters.rst_reply_limited += 1;
        }
    }

    /// Queues a control frame answering a peer; bounded.
    fn push_reply(&mut self, f: CtlFrame) {
        if self.ctl.len() >= MAX_REPLY_FRAMES {
            self.counters.tx_ctl_overflow += 1;
        } else {
            self.ctl.push_back(f);
        }
    }

    /// The TCP configuration of a connection of this family.
    fn tcp_cfg(&self, v6: bool) -> &TcpConfig {
        if v6 { &self.tcp6 } else { &self.cfg.tcp }
    }

    /// What a record created now for `owner`, of the family `v6` says,
    /// starts from.
    fn birth(&self, owner: ClientId, user_data: u64, now_ms: u64, v6: bool) -> open::Birth<'_> {
        open::Birth {
            owner,
            user_data,
            linger: self.cfg.default_linger,
            cfg: self.tcp_cfg(v6),
            now_ms,
            arm_ms: self.arm_from(now_ms),
        }
    }

    /// Posts a completion for `client`.
    fn complete(
        &mut self,
        client: ClientId,
        user_data: u64,
        handle: Handle,
        result: lingerd_abi::Errno,
        detail: api::Detail,
    ) {
        if result != lingerd_abi::Errno::Ok {
            self.counters.requests_failed += 1;
        }
        self.completions.push_back(Completion {
            client,
            user_data,
            handle,
            result,
            detail,
            is_event: false,
        });
    }
}
