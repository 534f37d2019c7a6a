//! Property tests of the whole engine: two lingerd engines in a mem `Pair`
//! take random interleavings of client requests (listen, connect, send,
//! recv_done, shutdown with good and bad `how`, set_linger, close blocking
//! and non-blocking, abort, close_matching), on valid, stale, foreign,
//! wrong-core and random handles, from the owner and from another client;
//! peer segments come from the other engine and from injected,
//! well-formed segments for known 4-tuples (random flags and sequence
//! numbers around the live ones); timers advance; links lose frames.
//!
//! Nothing may panic, and these hold:
//! - every request gets exactly one completion (tracked by `user_data`);
//! - at quiescence, the records in each table are exactly the handles the
//!   client holds (a successful open, no successful close), listeners
//!   included;
//! - no event arrives for a handle after its close was accepted;
//! - after a hard close completed (Aborted, AbortedLinger, ResetByPeer) the
//!   connection sends no RST of its own beyond the abort's one; any later
//!   RST on its 4-tuple answers a peer segment as the stateless responder
//!   does (`SEQ=SEG.ACK`, or `SEQ=0, ACK=SEG.SEQ+SEG.LEN` without ACK);
//! - `close_matching` from a client that owns nothing closes nothing;
//! - reassembly queues sit only on records that can still deliver, and
//!   once every held handle is aborted the per-core pool is empty again.
//!
//! Injected segments never carry SYN, so a 4-tuple is never reused by a new
//! incarnation within a case and the RST rule can be judged per tuple.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, CloseMode, Detail, Filter, Outcome, Request};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::linger::{Linger, MAX_LINGER_MS};
use lingerd_testkit::mem::{Direction, Fate, LinkConfig, Pair, TraceEntry};
use proptest::prelude::*;
use support::engine::{self, CLIENT};
use support::{Segment, summarize};

/// A client that owns nothing: its requests on our handles get EPERM.
const OTHER: ClientId = ClientId(9);
const PORTS: [u16; 2] = [80, 81];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Side {
    A,
    B,
}

impl Side {
    fn host(self) -> u8 {
        match self {
            Side::A => 1,
            Side::B => 2,
        }
    }
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    fn idx(self) -> usize {
        self as usize
    }
    /// The direction of frames this side sends.
    fn tx(self) -> Direction {
        match self {
            Side::A => Direction::AToB,
            Side::B => Direction::BToA,
        }
    }
}

/// How a request names its handle.
#[derive(Clone, Debug)]
enum HRef {
    /// The i-th handle this side ever learned (live or stale).
    Mine(usize),
    /// The i-th handle the other engine issued (meaningless here).
    Foreign(usize),
    /// A handle of a core this engine is not.
    BadCore(u32),
    /// Any 64 bits.
    Raw(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Listen {
        side: Side,
        port: usize,
        backlog: u32,
    },
    Connect {
        side: Side,
        port: usize,
    },
    Send {
        side: Side,
        h: HRef,
        len: usize,
        other: bool,
    },
    RecvDone {
        side: Side,
        h: HRef,
        len: u32,
        other: bool,
    },
    Shutdown {
        side: Side,
        h: HRef,
        how: u8,
        other: bool,
    },
    SetLinger {
        side: Side,
        h: HRef,
        on: bool,
        ms: u32,
        other: bool,
    },
    Close {
        side: Side,
        h: HRef,
        nonblocking: bool,
        other: bool,
    },
    Abort {
        side: Side,
        h: HRef,
        other: bool,
    },
    CloseMatching {
        side: Side,
        mode: u8,
        ms: u32,
        pace: u32,
        other: bool,
    },
    Advance {
        ms: u64,
    },
    Loss {
        percent: u8,
    },
    /// Both links reorder and duplicate this share of frames.
    Reorder {
        percent: u8,
    },
    Inject {
        to: Side,
        conn: usize,
        kind: u8,
        seq_delta: i32,
        ack_delta: i32,
        len: u16,
    },
}

/// What a pending request was, for the model.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Listen,
    Connect,
    Close,
    Matching { other: bool },
    Probe(Handle),
    Other,
}

/// A hard close whose completion was seen: its 4-tuple (our port, the
/// peer's port) and the window of time in which it happened.
#[derive(Clone, Copy, Debug)]
struct HardClose {
    side: Side,
    local_port: u16,
    remote_port: u16,
    lo: Instant,
    hi: Instant,
    own_rsts_allowed: usize,
    /// A new incarnation of the 4-tuple was learned (a SYN cookie still
    /// valid for the peer's ACK re-creates a connection, as cookies do):
    /// RSTs from then on are the new connection's.
    until: Option<Instant>,
}

/// One side's view of its handles.
#[derive(Default)]
struct Model {
    /// Every handle ever learned, in order.
    known: Vec<Handle>,
    /// Successfully opened, not yet successfully closed (listeners too).
    held: HashSet<Handle>,
    listeners: HashSet<Handle>,
    /// (our port, peer port) of every connection ever learned.
    tuples: HashMap<Handle, (u16, u16)>,
    tuple_list: Vec<(u16, u16)>,
    /// A close_matching finished: find out which held handles it closed.
    resync: bool,
}

struct Harness {
    pair: Pair<QueueEngine, QueueEngine>,
    models: [Model; 2],
    pending: HashMap<u64, (Side, Kind)>,
    next_ud: u64,
    last_collect: Instant,
    hard: Vec<HardClose>,
    /// Frames the test forged; not sent by either engine.
    injected: HashSet<Vec<u8>>,
}

fn handle_of(m: &Model, i: usize) -> Handle {
    if m.known.is_empty() {
        Handle::from_raw(0)
    } else {
        m.known[i % m.known.len()]
    }
}

impl Harness {
    fn new() -> Harness {
        let t0 = Instant::now();
        let a = engine::engine(1, t0);
        let b = engine::engine(2, t0);
        Harness {
            pair: Pair::symmetric(t0, a, b, LinkConfig::default()),
            models: [Model::default(), Model::default()],
            pending: HashMap::new(),
            next_ud: 1,
            last_collect: t0,
            hard: Vec::new(),
            injected: HashSet::new(),
        }
    }

    fn engine(&mut self, side: Side) -> &mut QueueEngine {
        match side {
            Side::A => &mut self.pair.a,
            Side::B => &mut self.pair.b,
        }
    }

    fn resolve(&self, side: Side, h: &HRef) -> Handle {
        match *h {
            HRef::Mine(i) => handle_of(&self.models[side.idx()], i),
            HRef::Foreign(i) => handle_of(&self.models[side.other().idx()], i),
            HRef::BadCore(slot) => Handle::new(7, slot % 8, 1),
            HRef::Raw(x) => Handle::from_raw(x),
        }
    }

    fn submit(&mut self, side: Side, other: bool, kind: Kind, req: Request) {
        let ud = self.next_ud;
        self.next_ud += 1;
        self.pending.insert(ud, (side, kind));
        let now = self.pair.now();
        let client = if other { OTHER } else { CLIENT };
        self.engine(side).handle_request(now, client, ud, req);
        self.collect();
    }

    /// Records a handle the client now holds. `ports` is (our port, the
    /// peer's port) when the completion names them: an accepted connection
    /// may already be gone from the table by the time it is collected (a
    /// close_matching walking the table catches it), and its incarnation
    /// must still end the previous one's RST window.
    fn learn(&mut self, side: Side, h: Handle, ports: Option<(u16, u16)>) {
        let ports = ports.or_else(|| {
            self.engine(side)
                .tuple(h)
                .map(|t| (t.local_port, t.remote_port))
        });
        let m = &mut self.models[side.idx()];
        m.known.push(h);
        m.held.insert(h);
        if let Some(ports) = ports {
            m.tuples.insert(h, ports);
            m.tuple_list.push(ports);
            for hc in &mut self.hard {
                if hc.side == side && (hc.local_port, hc.remote_port) == ports {
                    hc.until.get_or_insert(self.last_collect);
                }
            }
        }
    }

    /// Drains both engines' completions into the model, checking the
    /// per-completion invariants.
    fn collect(&mut self) {
        let now = self.pair.now();
        for side in [Side::A, Side::B] {
            while let Some(c) = self.engine(side).poll_completion() {
                if c.is_event {
                    match c.detail {
                        Detail::Accepted { listener, remote } => {
                            assert!(
                                !self.models[side.idx()].known.contains(&c.handle),
                                "accepted handle {:?} is new",
                                c.handle
                            );
                            let local = self.models[side.idx()].tuples.get(&listener);
                            let ports = local.map(|&(port, _)| (port, remote.port()));
                            self.learn(side, c.handle, ports);
                        }
                        Detail::Data(_) | Detail::PeerClosed | Detail::Reset => {
                            assert!(
                                self.models[side.idx()].held.contains(&c.handle),
                                "{side:?}: event {:?} for {:?}, which the client does not hold",
                                c.detail,
                                c.handle
                            );
                        }
                        _ => {}
                    }
                    continue;
                }
                let Some((req_side, kind)) = self.pending.remove(&c.user_data) else {
                    panic!(
                        "{side:?}: completion for user_data {} that has no pending request \
                         (a second completion?): {c:?}",
                        c.user_data
                    );
                };
                assert_eq!(
                    req_side, side,
                    "completion on the engine that got the request"
                );
                let m = &mut self.models[side.idx()];
                match kind {
                    Kind::Listen if c.result == Errno::Ok => {
                        self.learn(side, c.handle, None);
                        self.models[side.idx()].listeners.insert(c.handle);
                    }
                    Kind::Connect if c.result == Errno::Ok => {
                        assert!(matches!(c.detail, Detail::Connected { .. }));
                        self.learn(side, c.handle, None);
                    }
                    Kind::Close => {
                        if let (Errno::Ok, Detail::Closed(outcome)) = (c.result, &c.detail) {
                            m.held.remove(&c.handle);
                            m.listeners.remove(&c.handle);
                            let own = match outcome {
                                Outcome::Aborted | Outcome::AbortedLinger => Some(1),
                                Outcome::ResetByPeer => Some(0),
                                _ => None,
                            };
                            if let (Some(own), Some(&(lp, rp))) = (own, m.tuples.get(&c.handle)) {
                                // A later incarnation already learned: its
                                // RSTs cannot be told apart; stop here.
                                let pos = m.known.iter().position(|&k| k == c.handle);
                                let reborn = m.known.iter().enumerate().any(|(i, k)| {
                                    Some(i) > pos && m.tuples.get(k) == Some(&(lp, rp))
                                });
                                self.hard.push(HardClose {
                                    side,
                                    local_port: lp,
                                    remote_port: rp,
                                    lo: self.last_collect,
                                    hi: now,
                                    own_rsts_allowed: own,
                                    until: reborn.then_some(self.last_collect),
                                });
                            }
                        }
                    }
                    Kind::Matching { other } => {
                        if let (false, Detail::Count(n)) = (c.result != Errno::Ok, &c.detail) {
                            if other {
                                assert_eq!(*n, 0, "close_matching by a client owning nothing");
                            }
                            m.resync = true;
                        }
                    }
                    Kind::Probe(h) if c.result == Errno::NotSock => {
                        m.held.remove(&h);
                    }
                    _ => {}
                }
            }
        }
        self.last_collect = now;
        for side in [Side::A, Side::B] {
            if std::mem::take(&mut self.models[side.idx()].resync) {
                let m = &self.models[side.idx()];
                let probes: Vec<Handle> = m.held.difference(&m.listeners).copied().collect();
                for h in probes {
                    self.submit(
                        side,
                        false,
                        Kind::Probe(h),
                        Request::GetLinger { handle: h },
                    );
                }
            }
        }
    }

    fn run(&mut self, total: Duration, step: Duration) {
        let mut left = total;
        while !left.is_zero() {
            let _ = self.pair.drive_for(step.min(left));
            left = left.saturating_sub(step);
            self.collect();
        }
    }

    /// The last segment `side` sent on (local, remote) ports, if any.
    fn last_sent(&self, side: Side, lp: u16, rp: u16) -> Option<Segment> {
        self.pair
            .trace()
            .iter()
            .rev()
            .filter(|e| e.direction == side.tx())
            .filter_map(|e| summarize(&e.bytes))
            .find(|s| s.src.port() == lp && s.dst.port() == rp)
    }

    fn inject(&mut self, to: Side, conn: usize, kind: u8, deltas: (i32, i32), len: u16) {
        let m = &self.models[to.idx()];
        if m.tuple_list.is_empty() {
            return;
        }
        let (lp, rp) = m.tuple_list[conn % m.tuple_list.len()];
        let (seq, ack) = match self.last_sent(to, lp, rp) {
            Some(s) => (
                s.ack.wrapping_add_signed(deltas.0),
                s.seq
                    .wrapping_add(s.payload_len as u32)
                    .wrapping_add_signed(deltas.1),
            ),
            None => (deltas.0 as u32, deltas.1 as u32),
        };
        let from = to.other();
        let mac = |s: Side| [2, 0, 0, 0, 0, s.host()];
        let ip = |s: Side| Ipv4Addr::new(198, 18, 0, s.host()).octets();
        let b = etherparse::PacketBuilder::ethernet2(mac(from), mac(to))
            .ipv4(ip(from), ip(to), 64)
            .tcp(rp, lp, seq, 8_192);
        let payload = vec![0x5a; usize::from(len)];
        let (b, payload) = match kind % 6 {
            0 => (b.ack(ack), &payload[..0]),
            1 => (b.ack(ack).psh(), &payload[..]),
            2 => (b.ack(ack).fin(), &payload[..]),
            3 => (b.rst(), &payload[..0]),
            4 => (b.rst().ack(ack), &payload[..0]),
            _ => (b, &payload[..]),
        };
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, payload).expect("a frame");
        let now = self.pair.now();
        let link = match to {
            Side::A => &mut self.pair.b_to_a,
            Side::B => &mut self.pair.a_to_b,
        };
        let _ = link.send(now, &frame);
        self.injected.insert(frame);
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Listen {
                side,
                port,
                backlog,
            } => self.submit(
                *side,
                false,
                Kind::Listen,
                Request::Listen {
                    port: PORTS[port % PORTS.len()],
                    backlog: *backlog,
                },
            ),
            Op::Connect { side, port } => {
                let remote = engine::addr(side.other().host(), PORTS[port % PORTS.len()]);
                self.submit(
                    *side,
                    false,
                    Kind::Connect,
                    Request::Connect {
                        remote,
                        local_port: None,
                        local_addr: None,
                    },
                )
            }
            Op::Send {
                side,
                h,
                len,
                other,
            } => {
                let handle = self.resolve(*side, h);
                let data = vec![0xa5; *len];
                self.submit(*side, *other, Kind::Other, Request::Send { handle, data })
            }
            Op::RecvDone {
                side,
                h,
                len,
                other,
            } => {
                let handle = self.resolve(*side, h);
                self.submit(
                    *side,
                    *other,
                    Kind::Other,
                    Request::RecvDone { handle, len: *len },
                )
            }
            Op::Shutdown {
                side,
                h,
                how,
                other,
            } => {
                let handle = self.resolve(*side, h);
                self.submit(
                    *side,
                    *other,
                    Kind::Other,
                    Request::Shutdown {
                        handle,
                        how: lingerd_abi::Shutdown::ALL[usize::from(*how)],
                    },
                )
            }
            Op::SetLinger {
                side,
                h,
                on,
                ms,
                other,
            } => {
                let handle = self.resolve(*side, h);
                let linger = Linger { on: *on, ms: *ms };
                self.submit(
                    *side,
                    *other,
                    Kind::Other,
                    Request::SetLinger { handle, linger },
                )
            }
            Op::Close {
                side,
                h,
                nonblocking,
                other,
            } => {
                let handle = self.resolve(*side, h);
                self.submit(
                    *side,
                    *other,
                    Kind::Close,
                    Request::Close {
                        handle,
                        nonblocking: *nonblocking,
                    },
                )
            }
            Op::Abort { side, h, other } => {
                let handle = self.resolve(*side, h);
                self.submit(*side, *other, Kind::Close, Request::Abort { handle })
            }
            Op::CloseMatching {
                side,
                mode,
                ms,
                pace,
                other,
            } => {
                let mode = match mode % 3 {
                    0 => CloseMode::Abort,
                    1 => CloseMode::Graceful,
                    _ => CloseMode::Linger { ms: *ms },
                };
                self.submit(
                    *side,
                    *other,
                    Kind::Matching { other: *other },
                    Request::CloseMatching {
                        filter: Filter::default(),
                        mode,
                        pace_per_s: *pace,
                    },
                )
            }
            Op::Advance { ms } => self.run(Duration::from_millis(*ms), Duration::from_millis(5)),
            Op::Loss { percent } => {
                let p = f64::from(*percent) / 100.0;
                self.pair.a_to_b.config_mut().loss = p;
                self.pair.b_to_a.config_mut().loss = p;
            }
            Op::Reorder { percent } => {
                let p = f64::from(*percent) / 100.0;
                for link in [&mut self.pair.a_to_b, &mut self.pair.b_to_a] {
                    let c = link.config_mut();
                    c.reorder = p;
                    c.duplicate = p / 4.0;
                }
            }
            Op::Inject {
                to,
                conn,
                kind,
                seq_delta,
                ack_delta,
                len,
            } => self.inject(*to, *conn, *kind, (*seq_delta, *ack_delta), *len),
        }
    }

    /// Loss off, long enough for every bounded state to end (TIME-WAIT,
    /// orphan timeout, SYN retries, linger deadlines), then the end-state
    /// invariants.
    fn quiesce_and_check(&mut self) {
        for link in [&mut self.pair.a_to_b, &mut self.pair.b_to_a] {
            let c = link.config_mut();
            c.loss = 0.0;
            c.reorder = 0.0;
            c.duplicate = 0.0;
        }
        self.run(Duration::from_secs(400), Duration::from_millis(100));
        assert!(
            self.pending.is_empty(),
            "requests without a completion: {:?}",
            self.pending
        );
        for side in [Side::A, Side::B] {
            let count = self.engine(side).connection_count();
            let held = self.models[side.idx()].held.len();
            let hist = self.engine(side).states_histogram();
            let m = &self.models[side.idx()];
            let engine = match side {
                Side::A => &self.pair.a,
                Side::B => &self.pair.b,
            };
            let records: Vec<_> = m
                .known
                .iter()
                .filter_map(|&h| {
                    let state = engine.state(h)?;
                    Some((h, state, m.tuples.get(&h), m.held.contains(&h)))
                })
                .collect();
            let unheld: String = records
                .iter()
                .filter(|r| !r.3)
                .filter_map(|r| r.2)
                .map(|&ports| tuple_trace(self.pair.trace(), ports))
                .collect();
            assert_eq!(
                count, held,
                "{side:?}: table records vs handles the client holds; states {hist:?}; \
                 known handles still in the table (handle, state, ports, held): {records:?}; \
                 the trace of those not held:\n{unheld}"
            );
        }
        check_rsts(self.pair.trace(), &self.hard, &self.injected);
    }

    /// No reassembly memory outlives what may use it: queues only on
    /// records that can still deliver (ESTABLISHED, FIN-WAIT-1/2), and,
    /// once the client has aborted every handle it holds, none at all.
    fn check_reassembly_pools(&mut self) {
        for side in [Side::A, Side::B] {
            let hist = self.engine(side).states_histogram();
            let receiving: u64 = [State::Established, State::FinWait1, State::FinWait2]
                .iter()
                .map(|&s| hist[s as usize])
                .sum();
            let u = self.engine(side).reasm_usage();
            assert!(
                u.queues <= receiving,
                "{side:?}: {u:?} beyond the {receiving} records that may hold a queue; {hist:?}"
            );
            // A queue may hold only a FIN; chunks always belong to a queue.
            assert!(u.used_bytes == 0 || u.queues > 0, "{side:?}: {u:?}");
            let held: Vec<Handle> = self.models[side.idx()].held.iter().copied().collect();
            for handle in held {
                self.submit(side, false, Kind::Close, Request::Abort { handle });
            }
        }
        self.run(Duration::from_secs(1), Duration::from_millis(100));
        for side in [Side::A, Side::B] {
            let u = self.engine(side).reasm_usage();
            assert_eq!(
                (u.queues, u.used_bytes, u.held_bytes),
                (0, 0, 0),
                "{side:?}: reassembly memory left after every handle was aborted"
            );
        }
    }
}

/// Whether `rst` is what the stateless responder answers to `seg`.
fn answers(rst: &Segment, seg: &Segment) -> bool {
    if seg.flags.rst {
        return false;
    }
    if seg.flags.ack {
        rst.seq == seg.ack && !rst.flags.ack
    } else {
        let len = seg.payload_len as u32 + u32::from(seg.flags.syn) + u32::from(seg.flags.fin);
        rst.seq == 0 && rst.flags.ack && rst.ack == seg.seq.wrapping_add(len)
    }
}

/// The RST rule after hard closes (see the module documentation).
fn check_rsts(trace: &[TraceEntry], hard: &[HardClose], injected: &HashSet<Vec<u8>>) {
    for hc in hard {
        let rx_dir = hc.side.other().tx();
        let ours = trace
            .iter()
            .filter(|e| e.direction == hc.side.tx() && !e.duplicate && e.sent_at >= hc.lo)
            .filter(|e| !injected.contains(&e.bytes))
            .filter(|e| hc.until.is_none_or(|u| e.sent_at < u))
            .filter_map(|e| summarize(&e.bytes).map(|s| (e.sent_at, s)))
            .filter(|(_, s)| {
                s.flags.rst && s.src.port() == hc.local_port && s.dst.port() == hc.remote_port
            });
        let mut own = 0;
        for (at, rst) in ours {
            let answered = trace
                .iter()
                .filter(|e| e.direction == rx_dir && e.fate == Fate::Delivered)
                .filter(|e| e.at >= hc.lo && e.at <= at)
                .filter_map(|e| summarize(&e.bytes))
                .filter(|s| s.src.port() == hc.remote_port && s.dst.port() == hc.local_port)
                .any(|s| answers(&rst, &s));
            if answered {
                continue;
            }
            assert!(
                at <= hc.hi,
                "{hc:?}: RST {rst} after the close completed answers no peer segment; \
                 the 4-tuple's trace:\n{}",
                tuple_trace(trace, (hc.local_port, hc.remote_port))
            );
            own += 1;
        }
        assert!(
            own <= hc.own_rsts_allowed,
            "{hc:?}: {own} RSTs of its own from a hard close"
        );
    }
}

/// Every frame on a 4-tuple (our port, the peer's port), one per line, for a failure message.
fn tuple_trace(trace: &[TraceEntry], (ours, peers): (u16, u16)) -> String {
    let t0 = trace.first().map(|e| e.sent_at);
    trace
        .iter()
        .filter_map(|e| summarize(&e.bytes).map(|s| (e, s)))
        .filter(|(_, s)| {
            let ports = (s.src.port(), s.dst.port());
            ports == (ours, peers) || ports == (peers, ours)
        })
        .map(|(e, s)| {
            let ms = t0.map_or(0, |t| e.sent_at.duration_since(t).as_millis());
            format!("  +{ms}ms {:?} {:?} {s}\n", e.direction, e.fate)
        })
        .collect()
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn href() -> impl Strategy<Value = HRef> {
    prop_oneof![
        8 => (0usize..64).prop_map(HRef::Mine),
        1 => (0usize..64).prop_map(HRef::Foreign),
        1 => any::<u32>().prop_map(HRef::BadCore),
        1 => any::<u64>().prop_map(HRef::Raw),
    ]
}

/// Mostly the owner; sometimes a client that owns nothing.
fn other() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.1)
}

fn linger_ms() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(50),
        Just(2_000),
        Just(MAX_LINGER_MS + 1)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (side(), 0usize..2, 1u32..4).prop_map(|(side, port, backlog)| Op::Listen { side, port, backlog }),
        4 => (side(), 0usize..2).prop_map(|(side, port)| Op::Connect { side, port }),
        4 => (side(), href(), prop_oneof![Just(0usize), 1usize..3_000, Just(70_000)], other())
            .prop_map(|(side, h, len, other)| Op::Send { side, h, len, other }),
        2 => (side(), href(), 0u32..5_000, other())
            .prop_map(|(side, h, len, other)| Op::RecvDone { side, h, len, other }),
        2 => (side(), href(), 0u8..3, other())
            .prop_map(|(side, h, how, other)| Op::Shutdown { side, h, how, other }),
        2 => (side(), href(), any::<bool>(), linger_ms(), other())
            .prop_map(|(side, h, on, ms, other)| Op::SetLinger { side, h, on, ms, other }),
        3 => (side(), href(), any::<bool>(), other())
            .prop_map(|(side, h, nonblocking, other)| Op::Close { side, h, nonblocking, other }),
        2 => (side(), href(), other()).prop_map(|(side, h, other)| Op::Abort { side, h, other }),
        1 => (side(), 0u8..3, linger_ms(), prop_oneof![Just(0u32), Just(1u32), Just(500u32)], other())
            .prop_map(|(side, mode, ms, pace, other)| Op::CloseMatching { side, mode, ms, pace, other }),
        5 => prop_oneof![1u64..20, 20u64..500, Just(2_100u64)].prop_map(|ms| Op::Advance { ms }),
        1 => prop_oneof![Just(0u8), Just(10), Just(50), Just(100)].prop_map(|percent| Op::Loss { percent }),
        1 => prop_oneof![Just(0u8), Just(20), Just(60)].prop_map(|percent| Op::Reorder { percent }),
        3 => (
            side(),
            0usize..64,
            0u8..6,
            prop_oneof![Just(0i32), Just(-1), Just(1), -70_000i32..70_000],
            prop_oneof![Just(0i32), Just(-1), Just(1), -70_000i32..70_000],
            prop_oneof![Just(0u16), 1u16..1_400],
        )
            .prop_map(|(to, conn, kind, seq_delta, ack_delta, len)| Op::Inject {
                to,
                conn,
                kind,
                seq_delta,
                ack_delta,
                len
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_interleavings_keep_the_invariants(
        backlog in 1u32..4,
        opens in (0usize..6, 0usize..6),
        ops in prop::collection::vec(op(), 1..64),
    ) {
        let mut h = Harness::new();
        // Prelude: a listener on each side and a burst of connects each
        // way (more than a small backlog, so SYN cookies answer some), so
        // most cases have connections for the random ops to act on.
        h.apply(&Op::Listen { side: Side::B, port: 0, backlog });
        h.apply(&Op::Listen { side: Side::A, port: 1, backlog });
        for _ in 0..opens.0 {
            h.apply(&Op::Connect { side: Side::A, port: 0 });
        }
        for _ in 0..opens.1 {
            h.apply(&Op::Connect { side: Side::B, port: 1 });
        }
        for op in &ops {
            h.apply(op);
        }
        h.quiesce_and_check();
        h.check_reassembly_pools();
    }
}

/// The harness can fail: a deliberately wrong model (one held handle
/// forgotten) is caught by the table-count invariant.
#[test]
#[should_panic(expected = "table records vs handles the client holds")]
fn the_count_invariant_can_fail() {
    let mut h = Harness::new();
    h.apply(&Op::Listen {
        side: Side::B,
        port: 0,
        backlog: 4,
    });
    h.apply(&Op::Connect {
        side: Side::A,
        port: 0,
    });
    h.apply(&Op::Advance { ms: 50 });
    let forgotten = *h.models[0].held.iter().next().expect("a connection");
    h.models[0].held.remove(&forgotten);
    h.quiesce_and_check();
}

/// A fixed scenario through the harness: connect, data, abort; the peer's
/// late data is answered by the responder only.
#[test]
fn scenario_abort_then_peer_data_gets_responder_rsts_only() {
    let mut h = Harness::new();
    for op in [
        Op::Listen {
            side: Side::B,
            port: 0,
            backlog: 4,
        },
        Op::Connect {
            side: Side::A,
            port: 0,
        },
        Op::Advance { ms: 50 },
        Op::Send {
            side: Side::B,
            h: HRef::Mine(1),
            len: 100,
            other: false,
        },
        Op::Advance { ms: 50 },
        Op::Abort {
            side: Side::A,
            h: HRef::Mine(0),
            other: false,
        },
        Op::Inject {
            to: Side::A,
            conn: 0,
            kind: 1,
            seq_delta: 0,
            ack_delta: 0,
            len: 10,
        },
        Op::Inject {
            to: Side::A,
            conn: 0,
            kind: 5,
            seq_delta: 0,
            ack_delta: 0,
            len: 10,
        },
        Op::Advance { ms: 50 },
    ] {
        h.apply(&op);
    }
    assert_eq!(h.hard.len(), 1, "the abort was a hard close");
    h.quiesce_and_check();
    let rsts = support::count_rst(h.pair.trace(), Direction::AToB);
    assert_eq!(rsts, 3, "the abort's RST and two responder answers");
}

/// Shrunk from a proptest failure: A closes (linger off), B reads EOF and
/// shuts down its send side without closing. When B's FIN is acknowledged
/// (LAST-ACK ends) B's client still holds the handle: the record must stay
/// (CLOSED, unindexed) until B closes it, and that close is graceful.
#[test]
fn scenario_last_ack_ends_under_a_held_handle() {
    let mut h = Harness::new();
    for op in [
        Op::Listen {
            side: Side::A,
            port: 1,
            backlog: 1,
        },
        Op::Connect {
            side: Side::B,
            port: 1,
        },
        Op::Advance { ms: 10 },
        Op::Close {
            side: Side::A,
            h: HRef::Mine(1),
            nonblocking: false,
            other: false,
        },
        Op::Advance { ms: 10 },
        Op::Shutdown {
            side: Side::B,
            h: HRef::Mine(0),
            how: 1,
            other: false,
        },
        Op::Advance { ms: 100 },
    ] {
        h.apply(&op);
    }
    let hb = h.models[1].known[0];
    assert_eq!(
        h.pair.b.state(hb),
        Some(lingerd_dataplane::tcp::State::Closed),
        "B's record outlives LAST-ACK while its handle is held"
    );
    assert_eq!(h.pair.b.connection_count(), 1);
    h.apply(&Op::Send {
        side: Side::B,
        h: HRef::Mine(0),
        len: 1,
        other: false,
    });
    h.apply(&Op::Close {
        side: Side::B,
        h: HRef::Mine(0),
        nonblocking: true,
        other: false,
    });
    assert_eq!(h.pair.b.connection_count(), 0);
    assert_eq!(h.pair.b.counters().closes_graceful, 1);
    h.quiesce_and_check();
}

/// Shrunk from a proptest failure: a graceful close_matching catches a
/// passive connection still in SYN-RECEIVED. When the handshake completes
/// it must go on to FIN-WAIT-1 (RFC 9293 §3.10.4) and end, not sit in
/// ESTABLISHED without a timer forever.
#[test]
fn scenario_close_matching_in_syn_received_does_not_leak() {
    let mut h = Harness::new();
    h.apply(&Op::Listen {
        side: Side::A,
        port: 0,
        backlog: 4,
    });
    h.apply(&Op::Connect {
        side: Side::B,
        port: 0,
    });
    // Until the SYN has arrived (after the ARP exchange) and the SYN-ACK
    // is on its way back.
    let syn_rcvd = lingerd_dataplane::tcp::State::SynReceived as usize;
    for _ in 0..20 {
        if h.pair.a.states_histogram()[syn_rcvd] == 1 {
            break;
        }
        h.run(Duration::from_millis(1), Duration::from_millis(1));
    }
    let hist = h.pair.a.states_histogram();
    assert_eq!(hist[syn_rcvd], 1, "{hist:?}");
    h.apply(&Op::CloseMatching {
        side: Side::A,
        mode: 1,
        ms: 0,
        pace: 0,
        other: false,
    });
    h.quiesce_and_check();
    assert_eq!(h.pair.a.connection_count(), 1, "only the listener is left");
}
