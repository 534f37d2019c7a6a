//! The `engine_rx` harness: a [`QueueEngine`] at 198.18.0.1 (and
//! 2001:db8::1, so that IPv6 frames in raw ops and seeds reach the same
//! code) with a listener on port 80, driven by a sequence of [`Op`]s
//! decoded from fuzzer bytes.
//!
//! # Input
//! An [`Input`], decoded from the fuzzer's bytes by `arbitrary`: one setup
//! byte ([`setup`] bits: scripted handshake, small backlog, config
//! variants), then ops (the first [`MAX_OPS`] run). An op
//! is a raw frame, a well-formed frame from the peer 198.18.0.2 built with
//! our own `wire` emit path (fuzzer-chosen flags, options, window and
//! payload, and SEQ/ACK either raw or relative to what the harness has seen
//! of the connection, so that the fuzzer can walk a connection through its
//! states instead of guessing 32-bit numbers), such a frame with one byte
//! flipped, an ARP packet, a clock step, or a client request on a handle the
//! harness has learnt (listener, accepted or connected) or a bogus one.
//!
//! # Checks, after every op
//! The engine is driven the way its call order asks: frames, requests, then
//! `handle_timeout` while `poll_timeout` is due, then `poll_transmit` and
//! `poll_completion` until empty (bounded). Then:
//! - nothing panicked;
//! - every transmitted frame parses with our `wire` parsers, checksums
//!   verified, from our MAC and address (of either family; Neighbor
//!   Discovery with our link-layer address), with no trailing bytes; an
//!   RST carries no data and window 0;
//! - a received RST is never answered with an RST (RFC 9293 §3.10.7.1);
//! - `poll_transmit` says `None` only with nothing queued (`tx_backlog`);
//! - each request gets at most one completion (events aside), and once
//!   the ops are done and the clock runs on with a silent peer, exactly one
//!   (nothing a request waits for is unbounded);
//! - once synchronized, every segment but an RST carries ACK;
//! - `handle_timeout` does not stay due forever at one instant;
//! - the reassembly pool holds no more queues than there are records, and
//!   no chunk outside a queue (out-of-order segments reach it through
//!   `Num::Track` with a positive delta).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;

use lingerd_abi::Errno;

use super::{Encoder, long_bytes, short_bytes};
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{
    ADMIN_CLIENT, ClientId, CloseMode, Detail, Filter, Prefix, Request,
};
use lingerd_dataplane::engine::config::{EngineConfig, TimeWaitRst};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::linger::Linger;
use lingerd_dataplane::wire::{
    self, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, NdiscRepr,
    SeqNumber, TcpFlags, TcpOptions, TcpPacket, TcpPseudoHeader, TcpRepr,
};

/// The engine's address.
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The engine's MAC.
pub const LOCAL_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
/// The peer every built frame comes from (on link).
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The engine's IPv6 address.
pub const LOCAL_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The IPv6 peer of the IPv6 seeds (on link).
pub const PEER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// The peer's MAC.
pub const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
/// An address off every local link (no gateway is configured).
pub const OFF_LINK_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 9);
/// The port the setup listens on.
pub const LISTEN_PORT: u16 = 80;
/// A port nothing listens on.
pub const CLOSED_PORT: u16 = 81;
/// The peer's ports; [`Segment::peer`] picks one.
pub const PEER_PORTS: [u16; 4] = [40_000, 40_001, 40_002, 40_003];
/// Ops run per input at most.
pub const MAX_OPS: usize = 256;

/// The client that owns everything the harness opens.
const CLIENT: ClientId = ClientId(7);
/// Another client (its requests on our handles get EPERM).
const OTHER_CLIENT: ClientId = ClientId(8);
/// Frames drained per step at most.
const MAX_FRAMES_PER_STEP: usize = 1024;
/// `handle_timeout` calls at one instant before the engine counts as
/// livelocked.
const MAX_TIMEOUT_ROUNDS: usize = 256;
/// Deadlines run at most once the ops are done, waiting for outstanding
/// completions (a 4,000 s linger with a connection retrying every second
/// takes more: such a run is left inconclusive, not failed).
const MAX_SETTLE_DEADLINES: usize = 4096;
/// Handles remembered at most.
const MAX_HANDLES: usize = 32;
/// Size of the transmit buffer: what `poll_transmit` asks for.
const TX_BUF_LEN: usize = 14 + 20 + 60 + 1460;

/// Bits of the setup byte.
pub mod setup {
    /// Open a connection from `PEER_PORTS[0]` by a scripted handshake; its
    /// handle is the second one known (after the listener).
    pub const HANDSHAKE: u8 = 1 << 0;
    /// The listener's backlog is 1 (further SYNs get cookies), not 64.
    pub const SMALL_BACKLOG: u8 = 1 << 1;
    /// Timestamps off.
    pub const NO_TIMESTAMPS: u8 = 1 << 2;
    /// RFC 1337: RST in TIME-WAIT ignored.
    pub const TIME_WAIT_IGNORE_RST: u8 = 1 << 3;
    /// New connections linger on with time 0 (close = RST).
    pub const LINGER_HARD: u8 = 1 << 4;
    /// New connections linger on for 500 ms.
    pub const LINGER_500MS: u8 = 1 << 5;
    /// No window scaling offered.
    pub const NO_WINDOW_SCALE: u8 = 1 << 6;
    /// 4 KiB send and receive buffers (zero windows come quickly).
    pub const SMALL_BUFFERS: u8 = 1 << 7;
}

/// A sequence or acknowledgment number as the fuzzer picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Num {
    /// The number the peer would use, plus a delta: for SEQ the peer's next
    /// sequence number (the engine's last ACK, or where the peer's own
    /// in-order segments got to), for ACK the end of what the engine sent.
    Track(i16),
    /// This number.
    Raw(u32),
}

/// TCP options for a built segment: the known ones, emitted by
/// [`TcpOptions::emit`], then raw bytes, cut to 40 and padded with EOL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Arbitrary)]
pub struct Opts {
    /// MSS.
    pub mss: Option<u16>,
    /// Window scale shift (unclamped).
    pub window_scale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// Timestamps.
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks `[left, right)`, at most four (`Num::Track` counts from
    /// the end of what the engine sent, so negative deltas land in its
    /// flight); emitted only as far as 40 option bytes allow.
    #[arbitrary(with = sack_blocks)]
    pub sack: Vec<(Num, Num)>,
    /// Raw option bytes appended (at most 40).
    #[arbitrary(with = |u: &mut arbitrary::Unstructured<'_>| short_bytes(u, 40))]
    pub raw: Vec<u8>,
}

/// Up to four SACK blocks behind a one-byte count (`count % 5`).
fn sack_blocks(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Vec<(Num, Num)>> {
    let n = u8::arbitrary(u)? % 5;
    (0..n)
        .map(|_| Ok((Num::arbitrary(u)?, Num::arbitrary(u)?)))
        .collect()
}

/// A well-formed segment from the peer.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Segment {
    /// The peer's port: `PEER_PORTS[peer % 4]`.
    pub peer: u8,
    /// Our port, by `local % 4`: 0 and 1 the listener's, 2 the port of the
    /// last active open seen, 3 [`CLOSED_PORT`].
    pub local: u8,
    /// The control bits, all eight.
    pub flags: u8,
    /// SEG.SEQ.
    pub seq: Num,
    /// SEG.ACK (sent whether or not ACK is set).
    pub ack: Num,
    /// SEG.WND, unscaled.
    pub window: u16,
    /// Options.
    pub options: Opts,
    /// Bytes of data (a fixed pattern): `payload_len % 2048`.
    pub payload_len: u16,
}

impl Segment {
    /// A segment on the connection from `PEER_PORTS[0]` to the listener with
    /// tracked numbers and no options or data.
    pub fn new(flags: TcpFlags) -> Segment {
        Segment {
            peer: 0,
            local: 0,
            flags: flags.bits(),
            seq: Num::Track(0),
            ack: Num::Track(0),
            window: 0xffff,
            options: Opts::default(),
            payload_len: 0,
        }
    }
}

/// A client request; what the fields mean depends on `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub struct Req {
    /// `kind % 12` picks the request (see [`Req::KINDS`]); `kind / 12 % 4`
    /// the client: 0 and 1 the owner, 2 another client, 3 the admin.
    pub kind: u8,
    /// Index into the handles known so far; past them, a bogus handle
    /// `Handle::from_raw(arg)`.
    pub target: u8,
    /// The request's argument.
    pub arg: u32,
}

impl Req {
    /// The request kinds, in `kind % 12` order.
    pub const KINDS: [&'static str; 12] = [
        "send (arg % 70000 bytes)",
        "close (nonblocking: arg & 1)",
        "abort",
        "shutdown (how: arg % 4)",
        "recv_done (len: arg)",
        "set_linger (on: arg & 1, ms: arg >> 2, mod 2000 unless arg & 2)",
        "set_dont_linger (arg & 1)",
        "get_linger",
        "listen (port 80 + (arg >> 1) % 4 or 80, backlog (arg >> 16) % 4)",
        "connect (peer port arg % 4; off link if arg & 4; local port arg >> 16 if arg & 8)",
        "close_matching (mode arg % 3, states arg >> 8, port 80 if arg & 4, pace)",
        "send (arg % 2000 bytes)",
    ];
}

/// One step of the harness.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub enum Op {
    /// These bytes (at most 2047), handed to `handle_rx` as a frame.
    Raw(#[arbitrary(with = |u: &mut arbitrary::Unstructured<'_>| long_bytes(u, 2047))] Vec<u8>),
    /// A well-formed Ethernet/IPv4/TCP frame from the peer.
    Segment(Segment),
    /// A well-formed frame with byte `at % len` XORed with `xor`: bad
    /// checksums, lengths, versions, ports.
    Corrupt {
        /// The frame before corruption.
        segment: Segment,
        /// Which byte.
        at: u16,
        /// What to XOR it with.
        xor: u8,
    },
    /// An ARP packet from the peer: request or reply (or another opcode),
    /// for our address or another one.
    Arp {
        /// `ar$op`.
        operation: u16,
        /// Whether the target protocol address is ours.
        to_us: bool,
    },
    /// The clock moves on: `v` ms, or `(v & 0x7fff) × 100` ms when the top
    /// bit is set; then due timeouts run.
    Advance(u16),
    /// The clock jumps to the engine's next deadline, and it runs.
    NextDeadline,
    /// A client request.
    Request(Req),
}

/// A whole `engine_rx` input.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Input {
    /// The [`setup`] bits.
    pub setup: u8,
    /// The ops; the first [`MAX_OPS`] run.
    pub ops: Vec<Op>,
}

impl Input {
    /// The bytes that decode to this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u8(self.setup);
        for op in &self.ops {
            e.bool(true);
            op.encode(&mut e);
        }
        e.finish()
    }
}

impl Num {
    fn encode(self, e: &mut Encoder) {
        match self {
            Num::Track(d) => {
                e.variant(0, 2);
                e.i16(d);
            }
            Num::Raw(v) => {
                e.variant(1, 2);
                e.u32(v);
            }
        }
    }
}

impl Opts {
    fn encode(&self, e: &mut Encoder) {
        e.bool(self.mss.is_some());
        if let Some(mss) = self.mss {
            e.u16(mss);
        }
        e.bool(self.window_scale.is_some());
        if let Some(shift) = self.window_scale {
            e.u8(shift);
        }
        e.bool(self.sack_permitted);
        e.bool(self.timestamps.is_some());
        if let Some((a, b)) = self.timestamps {
            e.u32(a);
            e.u32(b);
        }
        let blocks = &self.sack[..self.sack.len().min(4)];
        e.u8(blocks.len() as u8);
        for &(l, r) in blocks {
            l.encode(e);
            r.encode(e);
        }
        e.short_bytes(&self.raw, 40);
    }

    /// The option bytes: known options, raw bytes, EOL padding to 4.
    /// `Num::Track` SACK edges count from `engine_nxt`.
    fn bytes(&self, engine_nxt: SeqNumber) -> Vec<u8> {
        let mut known = TcpOptions {
            mss: self.mss,
            window_scale: self.window_scale,
            sack_permitted: self.sack_permitted,
            timestamps: self.timestamps,
            sack: wire::SackBlocks::default(),
        };
        let edge = |n: Num| match n {
            Num::Track(d) => engine_nxt + i32::from(d) as u32,
            Num::Raw(v) => SeqNumber(v),
        };
        for &(l, r) in self.sack.iter().take(4) {
            let mut more = known.sack;
            more.push(edge(l), edge(r));
            let bigger = TcpOptions {
                sack: more,
                ..known
            };
            if bigger.wire_len() <= 40 {
                known = bigger;
            }
        }
        let mut buf = vec![0u8; 40];
        let n = known.emit(&mut buf);
        buf.truncate(n);
        buf.extend_from_slice(&self.raw);
        buf.truncate(40);
        buf.resize(buf.len().next_multiple_of(4), 0);
        buf
    }
}

impl Segment {
    fn encode(&self, e: &mut Encoder) {
        e.u8(self.peer);
        e.u8(self.local);
        e.u8(self.flags);
        self.seq.encode(e);
        self.ack.encode(e);
        e.u16(self.window);
        self.options.encode(e);
        e.u16(self.payload_len);
    }
}

impl Op {
    /// The number of variants, for [`Encoder::variant`].
    const VARIANTS: u32 = 7;

    /// Appends the bytes that `arbitrary` reads back as this op.
    pub fn encode(&self, e: &mut Encoder) {
        match self {
            Op::Raw(bytes) => {
                e.variant(0, Self::VARIANTS);
                e.long_bytes(bytes, 2047);
            }
            Op::Segment(s) => {
                e.variant(1, Self::VARIANTS);
                s.encode(e);
            }
            Op::Corrupt { segment, at, xor } => {
                e.variant(2, Self::VARIANTS);
                segment.encode(e);
                e.u16(*at);
                e.u8(*xor);
            }
            Op::Arp { operation, to_us } => {
                e.variant(3, Self::VARIANTS);
                e.u16(*operation);
                e.bool(*to_us);
            }
            Op::Advance(v) => {
                e.variant(4, Self::VARIANTS);
                e.u16(*v);
            }
            Op::NextDeadline => e.variant(5, Self::VARIANTS),
            Op::Request(req) => {
                e.variant(6, Self::VARIANTS);
                e.u8(req.kind);
                e.u8(req.target);
                e.u32(req.arg);
            }
        }
    }
}

/// The input bytes for a setup byte and a list of ops.
pub fn encode(setup: u8, ops: &[Op]) -> Vec<u8> {
    Input {
        setup,
        ops: ops.to_vec(),
    }
    .encode()
}

/// What a run did, for tests that check a seed reaches what it is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Ops run.
    pub ops: usize,
    /// Frames transmitted.
    pub frames: usize,
    /// RSTs among them.
    pub rsts: usize,
    /// Completions and events delivered.
    pub completions: usize,
    /// States any record was in after some step, a bit per
    /// [`State`](lingerd_dataplane::tcp::state::State).
    pub states_seen: u16,
}

/// Decodes `data` as an [`Input`] and runs it: what the cargo-fuzz target
/// and the corpus replay call.
pub fn engine_rx(data: &[u8]) -> Report {
    super::decode::<Input>(data).map_or_else(Report::default, |input| run(&input))
}

/// Runs `input` through an engine; panics when an invariant breaks.
pub fn run(input: &Input) -> Report {
    let setup = input.setup;
    let mut h = Harness::new(setup);
    if setup & setup::HANDSHAKE != 0 {
        let syn = Segment {
            options: Opts {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 0)),
                sack: Vec::new(),
                raw: Vec::new(),
            },
            ..Segment::new(TcpFlags::SYN)
        };
        h.run(&Op::Segment(syn));
        h.run(&Op::Segment(Segment::new(TcpFlags::ACK)));
    }
    for op in &input.ops {
        if h.report.ops >= MAX_OPS {
            break;
        }
        h.run(op);
    }
    h.settle();
    h.report
}

/// What the harness knows of one 4-tuple (our port, the peer's port).
#[derive(Clone, Copy, Debug, Default)]
struct Track {
    /// The peer's next sequence number.
    peer_nxt: Option<SeqNumber>,
    /// The end of what the engine sent.
    engine_nxt: Option<SeqNumber>,
}

struct Harness {
    engine: QueueEngine,
    now: Instant,
    buf: Vec<u8>,
    handles: Vec<Handle>,
    tracks: HashMap<(u16, u16), Track>,
    /// Our port of the last active open seen.
    active_port: u16,
    next_user_data: u64,
    /// Requests made, and those answered.
    asked: HashSet<u64>,
    answered: HashSet<u64>,
    report: Report,
}

impl Harness {
    fn new(setup: u8) -> Harness {
        let mut cfg = EngineConfig::new(
            0,
            LOCAL_MAC,
            Prefix::new(LOCAL_IP.into(), 24).expect("an IPv4 prefix length"),
        );
        cfg.addrs
            .push(Prefix::new(LOCAL_IP6.into(), 64).expect("an IPv6 prefix length"));
        // Small, so that a table-full path is reachable and each run is cheap.
        cfg.max_connections = 64;
        let tcp = &mut cfg.tcp;
        tcp.timestamps = setup & setup::NO_TIMESTAMPS == 0;
        if setup & setup::TIME_WAIT_IGNORE_RST != 0 {
            tcp.time_wait_rst = TimeWaitRst::Ignore;
        }
        if setup & setup::NO_WINDOW_SCALE != 0 {
            tcp.window_shift = 0;
        }
        if setup & setup::SMALL_BUFFERS != 0 {
            tcp.send_buffer = 4096;
            tcp.recv_buffer = 4096;
        }
        if setup & setup::LINGER_HARD != 0 {
            cfg.default_linger = Linger { on: true, ms: 0 };
        } else if setup & setup::LINGER_500MS != 0 {
            cfg.default_linger = Linger { on: true, ms: 500 };
        }
        let now = Instant::now();
        let mut h = Harness {
            engine: QueueEngine::new(cfg, now),
            now,
            buf: vec![0; TX_BUF_LEN],
            handles: Vec::new(),
            tracks: HashMap::new(),
            active_port: LISTEN_PORT,
            next_user_data: 1,
            asked: HashSet::new(),
            answered: HashSet::new(),
            report: Report::default(),
        };
        let backlog = if setup & setup::SMALL_BACKLOG != 0 {
            1
        } else {
            64
        };
        h.request(
            CLIENT,
            Request::Listen {
                port: LISTEN_PORT,
                backlog,
            },
        );
        assert_eq!(h.handles.len(), 1, "the listener did not open");
        h
    }

    fn run(&mut self, op: &Op) {
        self.report.ops += 1;
        match op {
            Op::Raw(bytes) => self.rx(bytes),
            Op::Segment(s) => {
                let frame = self.segment_frame(s);
                self.rx(&frame);
            }
            Op::Corrupt { segment, at, xor } => {
                let mut frame = self.segment_frame(segment);
                let i = usize::from(*at) % frame.len();
                frame[i] ^= xor;
                self.rx(&frame);
            }
            Op::Arp { operation, to_us } => {
                let frame = arp_frame(*operation, *to_us);
                self.rx(&frame);
            }
            Op::Advance(v) => {
                let ms = if v & 0x8000 != 0 {
                    u64::from(v & 0x7fff) * 100
                } else {
                    u64::from(*v)
                };
                self.now += Duration::from_millis(ms);
                self.timeouts();
            }
            Op::NextDeadline => {
                if let Some(t) = self.engine.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeouts();
            }
            Op::Request(req) => self.client_request(*req),
        }
        let histogram = self.engine.states_histogram();
        for (state, &n) in histogram.iter().enumerate() {
            if n > 0 {
                self.report.states_seen |= 1 << state;
            }
        }
    }

    /// The peer falls silent: the clock runs from deadline to deadline
    /// until nothing is due. Every request must have had its completion by
    /// then: each one gets exactly one, and whatever it waits for (a
    /// handshake, a linger deadline, a paced teardown) is bounded by a
    /// timer.
    fn settle(&mut self) {
        for _ in 0..MAX_SETTLE_DEADLINES {
            if self.answered.len() == self.asked.len() {
                return;
            }
            let Some(t) = self.engine.poll_timeout() else {
                break;
            };
            self.now = self.now.max(t);
            self.timeouts();
        }
        if self.engine.poll_timeout().is_some() {
            // Still waking up: a long linger, say, retried every RTO. That
            // ends, just beyond what one input may cost; inconclusive.
            return;
        }
        let mut pending: Vec<_> = self.asked.difference(&self.answered).collect();
        pending.sort_unstable();
        assert!(
            pending.is_empty(),
            "requests (user_data) never completed, with no timer left: {pending:?}"
        );
    }

    /// One received frame, then its output.
    fn rx(&mut self, frame: &[u8]) {
        // Only an RST the engine will actually see, with nothing queued
        // before it, makes the "no RST for an RST" check exact.
        let rst_in = is_rst_for_us(frame) && self.engine.tx_backlog() == 0;
        self.engine.handle_rx(self.now, frame);
        self.drain(rst_in);
    }

    /// Runs timeouts due at `now`, the way a shell's loop does.
    fn timeouts(&mut self) {
        for _ in 0..MAX_TIMEOUT_ROUNDS {
            match self.engine.poll_timeout() {
                Some(t) if t <= self.now => {
                    self.engine.handle_timeout(self.now);
                    self.drain(false);
                }
                _ => return,
            }
        }
        panic!("handle_timeout stays due at one instant after {MAX_TIMEOUT_ROUNDS} calls");
    }

    fn client_request(&mut self, req: Req) {
        let client = match req.kind / 12 % 4 {
            0 | 1 => CLIENT,
            2 => OTHER_CLIENT,
            _ => ADMIN_CLIENT,
        };
        let handle = self
            .handles
            .get(usize::from(req.target))
            .copied()
            .unwrap_or(Handle::from_raw(u64::from(req.arg)));
        let arg = req.arg;
        let request = match req.kind % 12 {
            0 => Request::Send {
                handle,
                data: pattern(arg as usize % 70_000),
            },
            1 => Request::Close {
                handle,
                nonblocking: arg & 1 != 0,
            },
            2 => Request::Abort { handle },
            3 => Request::Shutdown {
                handle,
                how: lingerd_abi::Shutdown::ALL[(arg % 3) as usize],
            },
            4 => Request::RecvDone { handle, len: arg },
            5 => Request::SetLinger {
                handle,
                linger: Linger {
                    on: arg & 1 != 0,
                    ms: if arg & 2 != 0 {
                        arg >> 2
                    } else {
                        (arg >> 2) % 2000
                    },
                },
            },
            6 => Request::SetDontLinger {
                handle,
                dont: arg & 1 != 0,
            },
            7 => Request::GetLinger { handle },
            8 => Request::Listen {
                port: if arg & 1 != 0 {
                    LISTEN_PORT
                } else {
                    LISTEN_PORT + (arg >> 1) as u16 % 4
                },
                backlog: (arg >> 16) % 4,
            },
            9 => Request::Connect {
                remote: SocketAddrV4::new(
                    if arg & 4 != 0 { OFF_LINK_IP } else { PEER_IP },
                    PEER_PORTS[(arg % 4) as usize],
                )
                .into(),
                local_port: (arg & 8 != 0).then_some((arg >> 16) as u16),
                local_addr: (arg & 16 != 0).then_some(if arg & 32 != 0 {
                    PEER_IP.into()
                } else {
                    LOCAL_IP.into()
                }),
            },
            10 => Request::CloseMatching {
                filter: Filter {
                    remote: (arg & 2 != 0).then_some(Prefix::host(PEER_IP.into())),
                    local_port: (arg & 4 != 0).then_some(LISTEN_PORT),
                    states: (arg >> 8) as u16,
                    ..Filter::default()
                },
                mode: match arg % 4 {
                    0 => CloseMode::Graceful,
                    1 => CloseMode::Abort,
                    2 => CloseMode::Linger { ms: arg >> 16 },
                    _ => CloseMode::Deadline { ms: arg >> 16 },
                },
                pace_per_s: if arg & 8 != 0 { 0 } else { arg >> 20 },
            },
            _ => Request::Send {
                handle,
                data: pattern(arg as usize % 2000),
            },
        };
        self.request(client, request);
    }

    fn request(&mut self, client: ClientId, request: Request) {
        let user_data = self.next_user_data;
        self.next_user_data += 1;
        self.asked.insert(user_data);
        self.engine
            .handle_request(self.now, client, user_data, request);
        self.drain(false);
    }

    /// Takes every frame and completion the engine has, checking each.
    fn drain(&mut self, rst_in: bool) {
        let reasm = self.engine.reasm_usage();
        assert!(
            reasm.queues <= self.engine.connection_count() as u64
                && reasm.used_bytes <= reasm.budget_bytes
                && (reasm.used_bytes == 0 || reasm.queues > 0),
            "reassembly pool out of step with the table: {reasm:?}"
        );
        for _ in 0..MAX_FRAMES_PER_STEP {
            let Some(len) = self.engine.poll_transmit(self.now, &mut self.buf) else {
                let backlog = self.engine.tx_backlog();
                assert_eq!(backlog, 0, "poll_transmit said None with frames queued");
                break;
            };
            assert!(len <= self.buf.len(), "frame longer than the buffer");
            let sent = check_frame(&self.buf[..len]);
            self.report.frames += 1;
            if let Sent::Tcp {
                local_port,
                remote_port,
                flags,
                seq,
                ack,
                seg_len,
            } = sent
            {
                if flags.rst() {
                    self.report.rsts += 1;
                    assert!(!rst_in, "answered an RST with an RST");
                }
                self.track_tx(local_port, remote_port, flags, seq, ack, seg_len);
            }
        }
        while let Some(c) = self.engine.poll_completion() {
            self.report.completions += 1;
            if !c.is_event {
                assert!(
                    self.asked.contains(&c.user_data),
                    "completion for a request never made: {c:?}"
                );
                assert!(
                    self.answered.insert(c.user_data),
                    "second completion for one request: {c:?}"
                );
            }
            let opened = match c.detail {
                Detail::Accepted { .. } | Detail::Connected { .. } => true,
                // A listen's answer carries the new listener.
                Detail::None => !c.is_event && c.result == Errno::Ok && self.is_listener(c.handle),
                _ => false,
            };
            if opened && self.handles.len() < MAX_HANDLES && !self.handles.contains(&c.handle) {
                self.handles.push(c.handle);
            }
        }
    }

    fn is_listener(&self, handle: Handle) -> bool {
        self.engine.state(handle) == Some(lingerd_dataplane::tcp::state::State::Listen)
    }

    /// Learns from a segment the engine sent.
    fn track_tx(
        &mut self,
        local_port: u16,
        remote_port: u16,
        flags: TcpFlags,
        seq: SeqNumber,
        ack: SeqNumber,
        seg_len: u32,
    ) {
        if flags.rst() {
            return; // its numbers echo the segment it answers
        }
        if flags.syn() && !flags.ack() {
            self.active_port = local_port;
        }
        let t = self.tracks.entry((local_port, remote_port)).or_default();
        let end = seq + seg_len;
        t.engine_nxt = match t.engine_nxt {
            Some(old) if !flags.syn() && end.diff(old) <= 0 => Some(old),
            _ => Some(end),
        };
        if flags.ack() {
            t.peer_nxt = Some(ack);
        }
    }

    /// Builds the frame for `s` with our `wire` emit path.
    fn segment_frame(&mut self, s: &Segment) -> Vec<u8> {
        let remote_port = PEER_PORTS[usize::from(s.peer % 4)];
        let local_port = match s.local % 4 {
            0 | 1 => LISTEN_PORT,
            2 => self.active_port,
            _ => CLOSED_PORT,
        };
        let t = self.tracks.entry((local_port, remote_port)).or_default();
        let seq = match s.seq {
            Num::Track(d) => t.peer_nxt.unwrap_or(SeqNumber(1000)) + i32::from(d) as u32,
            Num::Raw(v) => SeqNumber(v),
        };
        let ack = match s.ack {
            Num::Track(d) => t.engine_nxt.unwrap_or_default() + i32::from(d) as u32,
            Num::Raw(v) => SeqNumber(v),
        };
        let flags = TcpFlags(s.flags);
        let payload_len = usize::from(s.payload_len % 2048);
        if s.seq == Num::Track(0) {
            // An in-order segment moves the peer's next number on.
            let len = payload_len as u32 + u32::from(flags.syn()) + u32::from(flags.fin());
            t.peer_nxt = Some(seq + len);
        }

        TcpFrame {
            src_port: remote_port,
            dst_port: local_port,
            seq,
            ack,
            flags,
            window: s.window,
            options: &s.options.bytes(t.engine_nxt.unwrap_or_default()),
            payload: &pattern(payload_len),
        }
        .build()
    }
}

/// An Ethernet/IPv4/TCP frame from the peer to the engine, with option
/// bytes as given (a multiple of 4, at most 40), built with the `wire`
/// emit path and setters; checksums right.
#[derive(Clone, Copy, Debug)]
pub(super) struct TcpFrame<'a> {
    pub(super) src_port: u16,
    pub(super) dst_port: u16,
    pub(super) seq: SeqNumber,
    pub(super) ack: SeqNumber,
    pub(super) flags: TcpFlags,
    pub(super) window: u16,
    pub(super) options: &'a [u8],
    pub(super) payload: &'a [u8],
}

impl TcpFrame<'_> {
    pub(super) fn build(&self) -> Vec<u8> {
        let header_len = wire::TCP_HEADER_LEN + self.options.len();
        let tcp_len = header_len + self.payload.len();
        let ip_len = wire::IPV4_HEADER_LEN + tcp_len;
        let mut frame = vec![0u8; wire::ETHERNET_HEADER_LEN + ip_len];
        EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: LOCAL_MAC,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        let ip = &mut frame[wire::ETHERNET_HEADER_LEN..];
        Ipv4Repr {
            src_addr: PEER_IP,
            dst_addr: LOCAL_IP,
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len,
            ttl: 64,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]));
        let mut tcp = TcpPacket::new_unchecked(&mut ip[wire::IPV4_HEADER_LEN..]);
        tcp.set_src_port(self.src_port);
        tcp.set_dst_port(self.dst_port);
        tcp.set_seq_number(self.seq);
        tcp.set_ack_number(self.ack);
        tcp.set_header_len(header_len as u8);
        tcp.set_flags(self.flags);
        tcp.set_window_len(self.window);
        tcp.set_urgent_at(0);
        tcp.options_mut().copy_from_slice(self.options);
        tcp.payload_mut().copy_from_slice(self.payload);
        tcp.fill_checksum(PEER_IP, LOCAL_IP);
        frame
    }
}

/// `n` bytes of a fixed pattern.
pub(super) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// An ARP packet from the peer.
pub(super) fn arp_frame(operation: u16, to_us: bool) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::from(operation),
        source_hardware_addr: PEER_MAC,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress::UNSPECIFIED,
        target_protocol_addr: if to_us {
            LOCAL_IP
        } else {
            Ipv4Addr::new(198, 18, 0, 3)
        },
    };
    let mut frame = vec![0u8; wire::ETHERNET_HEADER_LEN + repr.buffer_len()];
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    repr.emit(&mut ArpPacket::new_unchecked(
        &mut frame[wire::ETHERNET_HEADER_LEN..],
    ));
    frame
}

/// Whether the engine will read `frame` as a TCP segment with RST for one
/// of its addresses: the same parse path, checksums verified.
fn is_rst_for_us(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.dst_addr() != LOCAL_MAC && !eth.dst_addr().is_broadcast() {
        return false;
    }
    if eth.ethertype() != EtherType::Ipv4 {
        return false;
    }
    let Ok(ip_packet) = Ipv4Packet::new_checked(eth.payload()) else {
        return false;
    };
    let Ok(ip) = Ipv4Repr::parse(&ip_packet) else {
        return false;
    };
    if ip.dst_addr != LOCAL_IP || ip.protocol != IpProtocol::Tcp {
        return false;
    }
    let payload = ip_packet.payload();
    let Ok(tcp) = TcpPacket::new_checked(payload) else {
        return false;
    };
    TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, true).is_ok_and(|seg| seg.flags.rst())
}

/// A transmitted frame, reduced to what the harness tracks.
enum Sent {
    Arp,
    Tcp {
        local_port: u16,
        remote_port: u16,
        flags: TcpFlags,
        seq: SeqNumber,
        ack: SeqNumber,
        seg_len: u32,
    },
}

/// Checks a frame the engine transmitted; panics if it is not one our own
/// parsers accept whole.
fn check_frame(frame: &[u8]) -> Sent {
    let eth = EthernetFrame::new_checked(frame).expect("tx: short Ethernet frame");
    let eth_repr = EthernetRepr::parse(&eth).expect("tx: bad Ethernet header");
    assert_eq!(eth_repr.src_addr, LOCAL_MAC, "tx: not from our MAC");
    match eth_repr.ethertype {
        EtherType::Arp => {
            let packet = ArpPacket::new_checked(eth.payload()).expect("tx: short ARP");
            let ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                ..
            } = ArpRepr::parse(&packet).expect("tx: bad ARP");
            assert!(matches!(
                operation,
                ArpOperation::Request | ArpOperation::Reply
            ));
            assert_eq!(source_hardware_addr, LOCAL_MAC);
            assert_eq!(source_protocol_addr, LOCAL_IP);
            assert_eq!(
                eth.payload().len(),
                wire::ARP_LEN,
                "tx: ARP with trailing bytes"
            );
            Sent::Arp
        }
        EtherType::Ipv4 => {
            let packet = Ipv4Packet::new_checked(eth.payload()).expect("tx: short IPv4");
            let ip = Ipv4Repr::parse(&packet).expect("tx: bad IPv4 header or checksum");
            assert_eq!(ip.src_addr, LOCAL_IP, "tx: not from our address");
            assert_eq!(ip.protocol, IpProtocol::Tcp);
            assert_eq!(
                packet.total_len() as usize,
                eth.payload().len(),
                "tx: IPv4 with trailing bytes"
            );
            let tcp = TcpPacket::new_checked(packet.payload()).expect("tx: short TCP");
            let seg = TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, true)
                .expect("tx: bad TCP segment or checksum");
            sent_tcp(&seg)
        }
        EtherType::IPV6 => check_ipv6(&eth),
        EtherType::Unknown(t) => panic!("tx: EtherType {t:#06x}"),
    }
}

/// [`check_frame`] for an IPv6 frame: TCP from our address, or a Neighbor
/// Solicitation or Advertisement carrying our link-layer address.
fn check_ipv6(eth: &EthernetFrame<&[u8]>) -> Sent {
    let packet = Ipv6Packet::new_checked(eth.payload()).expect("tx: short IPv6");
    let ip = Ipv6Repr::parse(&packet).expect("tx: bad IPv6 header");
    assert_eq!(
        ip.buffer_len(),
        eth.payload().len(),
        "tx: IPv6 with trailing bytes"
    );
    assert_eq!(ip.src_addr, LOCAL_IP6, "tx: not from our address");
    if ip.next_header == IpProtocol::ICMPV6 {
        let icmp = Icmpv6Packet::new_checked(packet.payload()).expect("tx: short ICMPv6");
        let lladdr = match NdiscRepr::parse(&ip, &icmp, true).expect("tx: bad ND message") {
            NdiscRepr::NeighborSolicit { lladdr, .. }
            | NdiscRepr::NeighborAdvert { lladdr, .. } => lladdr,
        };
        assert_eq!(
            lladdr,
            Some(LOCAL_MAC),
            "tx: ND without our link-layer address"
        );
        return Sent::Arp;
    }
    assert_eq!(ip.next_header, IpProtocol::Tcp);
    let tcp = TcpPacket::new_checked(packet.payload()).expect("tx: short TCP");
    let pseudo = TcpPseudoHeader::ipv6(ip.src_addr, ip.dst_addr);
    let seg = TcpRepr::parse_pseudo(&tcp, pseudo, true).expect("tx: bad TCP segment or checksum");
    sent_tcp(&seg)
}

/// The checks every TCP segment we send must pass, of either family, and
/// what it was.
fn sent_tcp(seg: &TcpRepr<'_>) -> Sent {
    if seg.flags.rst() {
        assert!(seg.payload.is_empty(), "tx: RST with data");
        assert_eq!(seg.window, 0, "tx: RST with a window");
    } else if !seg.flags.syn() {
        // RFC 9293 §3.10.7.4: once synchronized, ACK is always sent.
        assert!(seg.flags.ack(), "tx: {:?} without ACK", seg.flags);
    }
    Sent::Tcp {
        local_port: seg.src_port,
        remote_port: seg.dst_port,
        flags: seg.flags,
        seq: seg.seq,
        ack: seg.ack,
        seg_len: seg.segment_len(),
    }
}

/// An Ethernet/IPv6/TCP frame from [`PEER_IP6`]`:port` to our port 80 with
/// `flags` and sequence number `seq` (window 8192, MSS 1440), built with
/// our `wire` emit path: the IPv6 seeds' raw frame.
pub fn tcp6_frame(port: u16, flags: TcpFlags, seq: u32) -> Vec<u8> {
    let seg = TcpRepr {
        src_port: port,
        dst_port: LISTEN_PORT,
        seq: SeqNumber(seq),
        ack: SeqNumber(0),
        flags,
        window: 8192,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1440),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    let tcp_len = seg.buffer_len();
    let ip = Ipv6Repr {
        src_addr: PEER_IP6,
        dst_addr: LOCAL_IP6,
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut frame = vec![0u8; wire::ETHERNET_HEADER_LEN + ip.buffer_len()];
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: LOCAL_MAC,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let body = &mut frame[wire::ETHERNET_HEADER_LEN..];
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut body[..]));
    seg.emit_pseudo(
        &mut TcpPacket::new_unchecked(&mut body[wire::IPV6_HEADER_LEN..]),
        TcpPseudoHeader::ipv6(PEER_IP6, LOCAL_IP6),
    );
    frame
}

/// A Neighbor Solicitation from [`PEER_IP6`] for our IPv6 address, to its
/// solicited-node group, built with our `wire` emit path.
pub fn ns6_frame() -> Vec<u8> {
    let group = wire::solicited_node(LOCAL_IP6);
    let ns = NdiscRepr::NeighborSolicit {
        target_addr: LOCAL_IP6,
        lladdr: Some(PEER_MAC),
    };
    let mut frame = vec![0u8; 128];
    let len = ns
        .emit_frame(
            &mut frame,
            PEER_MAC,
            wire::ipv6_multicast_mac(group),
            PEER_IP6,
            group,
        )
        .expect("room for an NS");
    frame.truncate(len);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_through_bytes() {
        let ops = [
            Op::Raw(vec![1, 2, 3]),
            Op::Segment(Segment {
                seq: Num::Track(-5),
                ack: Num::Raw(0xdead_beef),
                options: Opts {
                    mss: Some(0),
                    window_scale: Some(15),
                    sack_permitted: true,
                    timestamps: Some((1, 2)),
                    sack: Vec::new(),
                    raw: vec![2, 0],
                },
                payload_len: 100,
                ..Segment::new(TcpFlags::ACK | TcpFlags::PSH)
            }),
            Op::Corrupt {
                segment: Segment::new(TcpFlags::RST),
                at: 40,
                xor: 0xff,
            },
            Op::Arp {
                operation: 1,
                to_us: true,
            },
            Op::Arp {
                operation: 9,
                to_us: false,
            },
            Op::Advance(0x8005),
            Op::NextDeadline,
            Op::Request(Req {
                kind: 30,
                target: 1,
                arg: 7,
            }),
        ];
        let bytes = encode(0x81, &ops);
        let input: Input = crate::fuzz::decode(&bytes).expect("decodes");
        assert_eq!(
            input,
            Input {
                setup: 0x81,
                ops: ops.to_vec()
            }
        );
    }

    #[test]
    fn any_bytes_decode_to_an_input() {
        assert_eq!(
            crate::fuzz::decode::<Input>(&[]),
            Some(Input {
                setup: 0,
                ops: Vec::new()
            })
        );
        let mut rng = crate::rng::SplitMix64::new(1);
        for len in 0..512 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let input: Input = crate::fuzz::decode(&bytes).expect("decodes");
            // The encoder writes what `arbitrary` reads, for every variant
            // and field a fuzzer can produce.
            assert_eq!(crate::fuzz::decode(&input.encode()), Some(input));
        }
    }

    #[test]
    fn handshake_setup_establishes() {
        let report = engine_rx(&[setup::HANDSHAKE]);
        let established = 1 << lingerd_dataplane::tcp::state::State::Established as u16;
        assert_ne!(report.states_seen & established, 0, "{report:?}");
        assert_eq!(report.frames, 1, "one SYN-ACK: {report:?}");
    }
}
