//! The `ring_entries` harness: the daemon side of one client's rings
//! ([`ClientRings`] over a [`QueueEngine`]) on a shared region that a
//! fuzzer-driven client writes, honestly or not.
//!
//! # Input
//! An [`Input`], decoded from the fuzzer's bytes by `arbitrary`: one setup
//! byte ([`setup`]: ring size, one or two cores and which one the daemon
//! serves, and whether the four ring cursors start hostile), the four
//! hostile cursor values, then ops ([`Op`]; the first [`MAX_OPS`] run). The client
//! pushes well-formed requests (on handles it learnt from completions, or
//! bogus ones) or 64 raw bytes through an honest producer, writes TX
//! chunks, reaps completions, sets NEED_WAKEUP; the hostile part scribbles
//! arbitrary bytes anywhere in the region (header, ring control blocks,
//! live request and completion slots, both arenas) and sets the four ring
//! cursors to arbitrary or nearly right values. Daemon steps run the way a
//! core's loop does: requests (with a fuzzer-chosen budget), timers,
//! transmit, completions into the rings, publish.
//!
//! # Checks
//! The harness knows which slots the daemon took (its head advances by the
//! `requests` counter) and captures every completion the moment it is
//! published (the tail advances by `completions`), so it can judge the
//! daemon whatever the client does to the words afterwards. After every
//! daemon step:
//! - nothing panicked, and every published completion decodes;
//! - the daemon wrote only what it owns: its request head, its completion
//!   tail and slots, its share of the RX arena (a byte-wise diff of the
//!   region around the step);
//! - it never published over completions the client had not released: the
//!   tail stays within one ring of some head value it may have read (a
//!   head the client sets ahead of the tail counts once the tail passes
//!   it, as in io_uring and AF_XDP: a client that claims to have read
//!   what it has not loses those entries, nobody else does);
//! - backpressure: it took no more requests than the completion ring had
//!   room for, minus the completions already waiting;
//! - no request is answered twice, and nothing is answered that was not
//!   taken (answers per `user_data` never exceed entries taken with it).
//!
//! Once the ops are done the client is honest again: if it touched a
//! cursor it resynchronises (request tail at the daemon's head, completion
//! head and tail at the daemon's tail, as a recovering client that trusts
//! only the daemon's words would), then it reaps everything while the clock
//! runs from deadline to deadline. By then every entry the daemon took has
//! exactly one answer (short of those it published over in the step that
//! published them, which only a head set ahead of the tail allows, and
//! never more than that many), no completion waits in the backlog, and, with
//! untouched cursors, every request the client published was taken.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};

use lingerd_abi::entry::{self, MatchFilter, Op as WireOp};
use lingerd_abi::layout::{
    ENTRY_SIZE, HEADER_BYTES, Layout, LayoutParams, RING_CONTROL_SIZE, RING_HEAD, RING_TAIL,
};
use lingerd_abi::sys::{Consumer, Producer, SharedRegion};

use super::engine::{LOCAL_IP, LOCAL_MAC, OFF_LINK_IP, PEER_IP};
use super::{Encoder, short_bytes};
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::ClientId;
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::rings::ClientRings;

/// Ops run per input at most.
pub const MAX_OPS: usize = 256;
/// The client whose rings these are.
const CLIENT: ClientId = ClientId(5);
/// Chunk size of every layout (small: data spans chunks quickly).
const CHUNK_SIZE: u32 = 128;
/// TX chunks in the arena.
const TX_CHUNKS: u32 = 8;
/// RX chunks per core.
const RX_CHUNKS_PER_CORE: u32 = 4;
/// Requests a settle step takes at most (what a core takes per client).
const SETTLE_BUDGET: u32 = 256;
/// Settle rounds at most once the ops are done.
const MAX_SETTLE_ROUNDS: usize = 4096;
/// `handle_timeout` calls at one instant before the engine counts as stuck.
const MAX_TIMEOUT_ROUNDS: usize = 256;
/// Frames drained per step at most (there is no peer: they are dropped).
const MAX_FRAMES_PER_STEP: usize = 4096;
/// Handles remembered at most.
const MAX_HANDLES: usize = 16;
/// `user_data` of well-formed requests: a tag and a sequence number.
const HONEST_TAG: u64 = 0x5a5a << 48;

/// Bits of the setup byte.
pub mod setup {
    /// Ring entries: `2 << (setup & RING_SIZE)` (2, 4, 8 or 16).
    pub const RING_SIZE: u8 = 0b11;
    /// Two cores in the layout, not one.
    pub const TWO_CORES: u8 = 1 << 2;
    /// With two cores, the daemon serves core 1 (the rings after core 0's).
    pub const SECOND_CORE: u8 = 1 << 3;
    /// The input's four hostile `u32`s are written to the request head and
    /// tail and the completion head and tail before the daemon builds its
    /// rings (a client may write before its core attaches).
    pub const HOSTILE_START: u8 = 1 << 4;
}

/// Which ring cursor a [`Op::Cursor`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Word {
    /// The request ring's head (the daemon's word).
    RequestHead,
    /// The request ring's tail (the client's word).
    RequestTail,
    /// The completion ring's head (the client's word).
    CompletionHead,
    /// The completion ring's tail (the daemon's word).
    CompletionTail,
}

const WORDS: [Word; 4] = [
    Word::RequestHead,
    Word::RequestTail,
    Word::CompletionHead,
    Word::CompletionTail,
];

/// What a cursor write puts there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Value {
    /// This value.
    Raw(u32),
    /// The word's current value plus a small delta (nearly right values
    /// find the off-by-one cases that random ones miss).
    Delta(i8),
}

/// A well-formed request: `kind` picks the opcode, `target` a learnt handle
/// (or, past the known ones, the bogus handle `arg`), `arg` the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub struct Req {
    /// Opcode choice (`% 11`).
    pub kind: u8,
    /// Index into the handles learnt.
    pub target: u8,
    /// Argument bits.
    pub arg: u32,
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub enum Op {
    /// Push a well-formed request (published unless `hold`).
    Submit {
        /// The request.
        req: Req,
        /// Push without publishing.
        hold: bool,
    },
    /// Push 64 bytes as they are (zero-padded), then publish.
    Raw(#[arbitrary(with = entry_bytes)] Vec<u8>),
    /// Write bytes at `offset % region size`, skipping the four cursors.
    Scribble {
        /// Where.
        offset: u32,
        /// What (at most 64 bytes).
        #[arbitrary(with = |u: &mut Unstructured<'_>| short_bytes(u, ENTRY_SIZE as u8))]
        bytes: Vec<u8>,
    },
    /// Overwrite a ring cursor.
    Cursor {
        /// Which.
        word: Word,
        /// With what.
        value: Value,
    },
    /// One iteration of the daemon's loop after `advance_ms`, taking at
    /// most `1 + budget % 32` requests.
    Step {
        /// Requests taken at most, minus one.
        budget: u8,
        /// Clock advance first.
        advance_ms: u16,
    },
    /// The client reaps up to `n` completions (0: all there are).
    Reap(u8),
    /// The client says it sleeps (NEED_WAKEUP on the completion ring), or
    /// that it is awake.
    Sleep(bool),
    /// The clock jumps to the engine's next deadline, then a daemon step.
    NextDeadline,
    /// The client writes `len` bytes into TX chunk `chunk`.
    TxData {
        /// Chunk index (may be out of range: then nothing is written).
        chunk: u8,
        /// Bytes.
        len: u16,
    },
    /// Publish pushed requests.
    Publish,
}

/// One ring entry's worth of bytes, zero-padded past the input's end.
fn entry_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let mut e = vec![0; ENTRY_SIZE];
    u.fill_buffer(&mut e)?;
    Ok(e)
}

impl Op {
    /// The number of variants, for [`Encoder::variant`].
    const VARIANTS: u32 = 10;

    /// Appends the bytes that `arbitrary` reads back as this op (a `Raw`
    /// entry is cut or zero-padded to 64 bytes, `Scribble` bytes cut to 64).
    pub fn encode(&self, e: &mut Encoder) {
        let n = Self::VARIANTS;
        match self {
            Op::Submit { req, hold } => {
                e.variant(0, n);
                e.u8(req.kind);
                e.u8(req.target);
                e.u32(req.arg);
                e.bool(*hold);
            }
            Op::Raw(bytes) => {
                e.variant(1, n);
                let mut entry = bytes.clone();
                entry.resize(ENTRY_SIZE, 0);
                e.raw(&entry);
            }
            Op::Scribble { offset, bytes } => {
                e.variant(2, n);
                e.u32(*offset);
                e.short_bytes(bytes, ENTRY_SIZE as u8);
            }
            Op::Cursor { word, value } => {
                e.variant(3, n);
                let w = WORDS.iter().position(|x| x == word).unwrap_or(0) as u32;
                e.variant(w, WORDS.len() as u32);
                match value {
                    Value::Raw(v) => {
                        e.variant(0, 2);
                        e.u32(*v);
                    }
                    Value::Delta(d) => {
                        e.variant(1, 2);
                        e.i8(*d);
                    }
                }
            }
            Op::Step { budget, advance_ms } => {
                e.variant(4, n);
                e.u8(*budget);
                e.u16(*advance_ms);
            }
            Op::Reap(count) => {
                e.variant(5, n);
                e.u8(*count);
            }
            Op::Sleep(on) => {
                e.variant(6, n);
                e.bool(*on);
            }
            Op::NextDeadline => e.variant(7, n),
            Op::TxData { chunk, len } => {
                e.variant(8, n);
                e.u8(*chunk);
                e.u16(*len);
            }
            Op::Publish => e.variant(9, n),
        }
    }
}

/// A whole `ring_entries` input.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Input {
    /// The [`setup`] bits.
    pub setup: u8,
    /// The cursor values written first if the setup has
    /// [`setup::HOSTILE_START`] (ignored otherwise).
    pub hostile_start: [u32; 4],
    /// The ops; the first [`MAX_OPS`] run.
    pub ops: Vec<Op>,
}

impl Input {
    /// The bytes that decode to this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u8(self.setup);
        for w in self.hostile_start {
            e.u32(w);
        }
        for op in &self.ops {
            e.bool(true);
            op.encode(&mut e);
        }
        e.finish()
    }
}

/// A whole input: the setup byte, the hostile start words (used only if
/// the setup asks for them), then the ops.
pub fn encode(setup: u8, hostile_start: [u32; 4], ops: &[Op]) -> Vec<u8> {
    Input {
        setup,
        hostile_start,
        ops: ops.to_vec(),
    }
    .encode()
}

/// What a run did, for seeds to assert they still reach their paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Ops run.
    pub ops: usize,
    /// Request entries the daemon took.
    pub taken: u64,
    /// Of those, answered EINVAL by decoding or chunk validation.
    pub invalid: u64,
    /// Completion entries published (answers and events).
    pub completions: u64,
    /// Of those, overwritten in the step that published them (the client
    /// had set the completion head ahead of the tail).
    pub overwritten: u64,
    /// Answers (not events) captured.
    pub answers: u64,
    /// Times intake stopped on a full completion ring.
    pub backpressure: u64,
    /// A cursor was overwritten (the client resynchronised at the end).
    pub cursors_touched: bool,
    /// The settle ended with every answer in (false: inconclusive, the
    /// engine still had deadlines after its bound of settle rounds).
    pub settled: bool,
}

/// Decodes `data` as an [`Input`] and runs it: what the cargo-fuzz target
/// and the corpus replay call.
pub fn ring_entries(data: &[u8]) -> Report {
    super::decode::<Input>(data).map_or_else(Report::default, |input| run(&input))
}

/// Runs `input` through a client's rings; panics when an invariant breaks.
pub fn run(input: &Input) -> Report {
    let setup = input.setup;
    let start = (setup & setup::HOSTILE_START != 0).then_some(input.hostile_start);
    let mut h = Harness::new(setup, start);
    for op in &input.ops {
        if h.report.ops >= MAX_OPS {
            break;
        }
        h.run(op);
    }
    h.settle();
    h.report
}

struct Harness {
    region: Arc<SharedRegion>,
    layout: Layout,
    entries: u32,
    /// Offsets of the daemon's request and completion rings.
    req_base: usize,
    cpl_base: usize,
    /// This core's RX chunks, as a byte range of the arena.
    rx_range: std::ops::Range<usize>,
    rings: ClientRings,
    engine: QueueEngine,
    now: Instant,
    /// The client's side.
    tx: Producer,
    rx: Consumer,
    /// The daemon's private request head and completion tail, as the
    /// counters say it moved them.
    d_head: u32,
    p_tail: u32,
    /// Completion heads the daemon's producer may hold as its cached head:
    /// values of the head word it may have read that still allow a write.
    heads: Vec<u32>,
    /// Completions overwritten within the step that published them.
    overwritten: u64,
    taken: HashMap<u64, u32>,
    answered: HashMap<u64, u32>,
    handles: Vec<u64>,
    next_user_data: u64,
    frame: Vec<u8>,
    report: Report,
}

impl Harness {
    fn new(setup: u8, hostile_start: Option<[u32; 4]>) -> Harness {
        let entries = 2u32 << (setup & setup::RING_SIZE);
        let cores = if setup & setup::TWO_CORES != 0 { 2 } else { 1 };
        let core = u32::from(setup & setup::SECOND_CORE != 0) % cores;
        let layout = Layout::new(LayoutParams {
            cores,
            ring_entries: entries,
            chunk_size: CHUNK_SIZE,
            tx_chunks: TX_CHUNKS,
            rx_chunks: RX_CHUNKS_PER_CORE * cores,
        })
        .expect("a valid layout");
        let region = Arc::new(SharedRegion::anonymous(layout.total));
        assert!(region.write(0..HEADER_BYTES, &layout.header().encode()));
        let req_base = layout.request_ring(core).expect("core in range");
        let cpl_base = layout.completion_ring(core).expect("core in range");
        if let Some(words) = hostile_start {
            let at = [
                req_base + RING_HEAD,
                req_base + RING_TAIL,
                cpl_base + RING_HEAD,
                cpl_base + RING_TAIL,
            ];
            for (o, v) in at.into_iter().zip(words) {
                write_word(&region, o, v);
            }
        }
        let rings = ClientRings::new(CLIENT, core, region.clone(), layout)
            .expect("rings over a region built for their layout");
        let tx = Producer::new(region.clone(), req_base, entries).expect("request ring in bounds");
        let rx =
            Consumer::new(region.clone(), cpl_base, entries).expect("completion ring in bounds");
        let d_head = read_word(&region, req_base + RING_HEAD);
        let p_tail = read_word(&region, cpl_base + RING_TAIL);
        let heads = vec![read_word(&region, cpl_base + RING_HEAD)];
        let per = RX_CHUNKS_PER_CORE as usize * CHUNK_SIZE as usize;
        let rx_start = layout.rx_arena + core as usize * per;
        let mut cfg = EngineConfig::new(
            0,
            LOCAL_MAC,
            Prefix::new(LOCAL_IP.into(), 24).expect("an IPv4 prefix length"),
        );
        cfg.max_connections = 16;
        let now = Instant::now();
        Harness {
            region,
            layout,
            entries,
            req_base,
            cpl_base,
            rx_range: rx_start..rx_start + per,
            rings,
            engine: QueueEngine::new(cfg, now),
            now,
            tx,
            rx,
            d_head,
            p_tail,
            heads,
            overwritten: 0,
            taken: HashMap::new(),
            answered: HashMap::new(),
            handles: Vec::new(),
            next_user_data: 0,
            frame: vec![0; 2048],
            report: Report {
                cursors_touched: hostile_start.is_some(),
                ..Report::default()
            },
        }
    }

    fn run(&mut self, op: &Op) {
        self.report.ops += 1;
        match op {
            Op::Submit { req, hold } => {
                let user_data = HONEST_TAG | self.next_user_data;
                self.next_user_data += 1;
                let wire = self.request(*req);
                let _ = self.tx.push(&entry::encode_request(user_data, &wire));
                if !hold {
                    self.tx.publish();
                }
            }
            Op::Raw(bytes) => {
                let mut e = [0u8; ENTRY_SIZE];
                e.copy_from_slice(&bytes[..ENTRY_SIZE]);
                let _ = self.tx.push(&e);
                self.tx.publish();
            }
            Op::Scribble { offset, bytes } => self.scribble(*offset, bytes),
            Op::Cursor { word, value } => {
                self.report.cursors_touched = true;
                let at = self.word_offset(*word);
                let v = match value {
                    Value::Raw(v) => *v,
                    Value::Delta(d) => {
                        read_word(&self.region, at).wrapping_add_signed(i32::from(*d))
                    }
                };
                write_word(&self.region, at, v);
            }
            Op::Step { budget, advance_ms } => {
                self.now += Duration::from_millis(u64::from(*advance_ms));
                self.step(1 + u32::from(*budget) % 32);
            }
            Op::Reap(n) => {
                let n = if *n == 0 { u32::MAX } else { u32::from(*n) };
                self.reap(n);
            }
            Op::Sleep(on) => self.rx.set_need_wakeup(*on),
            Op::NextDeadline => {
                if let Some(t) = self.engine.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.step(SETTLE_BUDGET);
            }
            Op::TxData { chunk, len } => {
                let len = u32::from(*len) % (CHUNK_SIZE + 1);
                if let Some(range) = self.layout.tx_chunk(u32::from(*chunk), len) {
                    let bytes: Vec<u8> = (0..len).map(|i| i as u8 ^ chunk).collect();
                    assert!(self.region.write(range, &bytes));
                }
            }
            Op::Publish => self.tx.publish(),
        }
    }

    fn word_offset(&self, w: Word) -> usize {
        match w {
            Word::RequestHead => self.req_base + RING_HEAD,
            Word::RequestTail => self.req_base + RING_TAIL,
            Word::CompletionHead => self.cpl_base + RING_HEAD,
            Word::CompletionTail => self.cpl_base + RING_TAIL,
        }
    }

    /// Hostile bytes anywhere but the four cursors (those are
    /// [`Op::Cursor`]'s, which the accounting must know about).
    fn scribble(&mut self, offset: u32, bytes: &[u8]) {
        let total = self.layout.total;
        let start = offset as usize % total;
        let cursors = WORDS.map(|w| self.word_offset(w));
        for (i, &b) in bytes.iter().enumerate() {
            let at = start + i;
            if at >= total || cursors.iter().any(|&c| (c..c + 4).contains(&at)) {
                continue;
            }
            assert!(self.region.write(at..at + 1, &[b]));
        }
    }

    /// A well-formed request on a learnt or bogus handle.
    fn request(&mut self, req: Req) -> WireOp {
        let handle = self
            .handles
            .get(usize::from(req.target))
            .copied()
            .unwrap_or(u64::from(req.arg));
        let a = req.arg;
        let prefix = |addr: IpAddr, len: u8| {
            lingerd_abi::Prefix::new(addr, len).unwrap_or(lingerd_abi::Prefix::host(addr))
        };
        // An IPv6 peer (documentation range) now and then.
        let v6_peer = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        match req.kind % 11 {
            0 => WireOp::Listen {
                port: 80 + (a % 4) as u16,
                backlog: a >> 8 & 0xff,
            },
            1 => WireOp::Connect {
                addr: match a & 0x2_0001 {
                    0x2_0000 => v6_peer,
                    0 => IpAddr::V4(OFF_LINK_IP),
                    _ => IpAddr::V4(PEER_IP),
                },
                port: (a >> 1) as u16,
                local_port: if a & 0x10000 != 0 {
                    (a >> 17) as u16
                } else {
                    0
                },
            },
            2 => WireOp::Send {
                handle,
                // One past the arena now and then.
                chunk: a % (TX_CHUNKS + 1),
                len: (a >> 8) % (CHUNK_SIZE + 2),
            },
            3 => WireOp::RecvDone {
                handle,
                chunk: a % (RX_CHUNKS_PER_CORE * 2 + 1),
                len: (a >> 8) % (CHUNK_SIZE + 2),
            },
            4 => WireOp::Shutdown {
                handle,
                how: lingerd_abi::Shutdown::ALL[(a % 3) as usize],
            },
            5 => WireOp::SetLinger {
                handle,
                on: a & 1 != 0,
                ms: (a >> 1) % 5_000,
            },
            6 => WireOp::SetDontLinger {
                handle,
                dont: a & 1 != 0,
            },
            7 => WireOp::GetLinger { handle },
            8 => WireOp::Close {
                handle,
                nonblocking: a & 1 != 0,
            },
            9 => WireOp::Abort { handle },
            _ => WireOp::CloseMatching {
                filter: MatchFilter {
                    local: (a & 1 != 0).then(|| prefix(IpAddr::V4(LOCAL_IP), 24)),
                    remote: (a & 2 != 0).then(|| {
                        if a & 0x4_0000 != 0 {
                            prefix(v6_peer, 64)
                        } else {
                            prefix(IpAddr::V4(PEER_IP), 32)
                        }
                    }),
                    local_port: None,
                    remote_port: (a & 4 != 0).then_some(80),
                    states: 0,
                    min_idle_ms: 0,
                },
                mode: match a >> 3 & 3 {
                    0 => lingerd_abi::CloseMode::Graceful,
                    1 => lingerd_abi::CloseMode::Abort,
                    2 => lingerd_abi::CloseMode::Linger {
                        ms: (a >> 5) % 2_000,
                    },
                    _ => lingerd_abi::CloseMode::Deadline {
                        ms: (a >> 5) % 2_000,
                    },
                },
                pace_per_s: if a & 0x8000 != 0 {
                    1 + (a >> 16) % 100
                } else {
                    0
                },
            },
        }
    }

    /// The client takes up to `n` completions and releases them.
    fn reap(&mut self, n: u32) {
        let ready = self.rx.available().min(n);
        for _ in 0..ready {
            let _ = self.rx.pop();
        }
        self.rx.release();
    }

    /// One iteration of a core's loop for this client, then the checks.
    fn step(&mut self, budget: u32) -> (u64, u64) {
        let before = self.snapshot();
        let stats0 = self.rings.stats();
        let backlog0 = self.rings.backlog() as u32;
        let h = read_word(&self.region, self.cpl_base + RING_HEAD);
        if !self.heads.contains(&h) {
            self.heads.push(h);
        }
        let room = self
            .heads
            .iter()
            .map(|&c| self.p_tail.wrapping_sub(c))
            .filter(|&used| used <= self.entries)
            .map(|used| self.entries - used)
            .max()
            .unwrap_or(0);

        self.rings.poll_requests(&mut self.engine, self.now, budget);
        for _ in 0..MAX_TIMEOUT_ROUNDS {
            match self.engine.poll_timeout() {
                Some(t) if t <= self.now => self.engine.handle_timeout(self.now),
                _ => break,
            }
        }
        for _ in 0..MAX_FRAMES_PER_STEP {
            if self
                .engine
                .poll_transmit(self.now, &mut self.frame)
                .is_none()
            {
                break;
            }
        }
        while let Some(c) = self.engine.poll_completion() {
            assert_eq!(c.client, CLIENT, "a completion for another client");
            self.rings.deliver(c);
        }
        let _wake = self.rings.flush();

        let stats = self.rings.stats();
        let taken = stats.requests - stats0.requests;
        let published = stats.completions - stats0.completions;
        self.report.taken = stats.requests;
        self.report.invalid = stats.invalid;
        self.report.completions = stats.completions;
        self.report.backpressure = stats.backpressure;
        assert!(
            taken <= u64::from(budget),
            "took {taken} requests on a budget of {budget}"
        );
        assert!(
            taken <= u64::from(room.saturating_sub(backlog0)),
            "backpressure: took {taken} requests with {backlog0} completions queued \
             and room for {room} in the completion ring"
        );
        self.check_writes(&before, published);
        self.account_taken(taken as u32);
        self.capture_published(published as u32);
        (taken, published)
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.layout.total];
        assert!(self.region.read(0..self.layout.total, &mut b));
        b
    }

    /// The daemon wrote only its own words, slots and RX chunks.
    fn check_writes(&self, before: &[u8], published: u64) {
        let after = self.snapshot();
        let req_head = self.req_base + RING_HEAD..self.req_base + RING_HEAD + 4;
        let cpl_tail = self.cpl_base + RING_TAIL..self.cpl_base + RING_TAIL + 4;
        let cpl_slots = self.cpl_base + RING_CONTROL_SIZE..self.cpl_base + self.layout.ring_size;
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            if a == b {
                continue;
            }
            let own = req_head.contains(&i)
                || cpl_tail.contains(&i)
                || cpl_slots.contains(&i)
                || self.rx_range.contains(&i);
            assert!(own, "the daemon wrote byte {i} of the region, not its own");
        }
        let new_tail = self.p_tail.wrapping_add(published as u32);
        if published > 0 {
            assert!(
                self.heads
                    .iter()
                    .any(|&c| new_tail.wrapping_sub(c) <= self.entries),
                "completions published over ones the client had not released: \
                 tail {new_tail}, heads the daemon may have read {:?}, {} entries",
                self.heads,
                self.entries
            );
            assert_eq!(
                read_word(&self.region, self.cpl_base + RING_TAIL),
                new_tail,
                "the published tail is the daemon's own"
            );
        }
    }

    /// Records the `user_data` of each slot the daemon took.
    fn account_taken(&mut self, taken: u32) {
        let mask = self.entries - 1;
        for i in 0..taken {
            let slot = (self.d_head.wrapping_add(i) & mask) as usize;
            let at = self.req_base + RING_CONTROL_SIZE + slot * ENTRY_SIZE;
            let mut e = [0u8; ENTRY_SIZE];
            assert!(self.region.read(at..at + ENTRY_SIZE, &mut e));
            let (user_data, _) = entry::decode_request(&e);
            *self.taken.entry(user_data).or_default() += 1;
        }
        self.d_head = self.d_head.wrapping_add(taken);
        if taken > 0 {
            assert_eq!(
                read_word(&self.region, self.req_base + RING_HEAD),
                self.d_head,
                "the released head is where the daemon got to"
            );
        }
    }

    /// Reads each completion the moment it is published: it decodes, and
    /// no request is answered more often than it was taken.
    fn capture_published(&mut self, published: u32) {
        let mask = self.entries - 1;
        // More than a ring in one step (a head set ahead of the tail): the
        // first ones were overwritten before anyone could read them.
        let lost = published.saturating_sub(self.entries);
        self.overwritten += u64::from(lost);
        self.report.overwritten = self.overwritten;
        for i in lost..published {
            let slot = (self.p_tail.wrapping_add(i) & mask) as usize;
            let at = self.cpl_base + RING_CONTROL_SIZE + slot * ENTRY_SIZE;
            let mut e = [0u8; ENTRY_SIZE];
            assert!(self.region.read(at..at + ENTRY_SIZE, &mut e));
            let c = entry::Completion::decode(&e)
                .unwrap_or_else(|_| panic!("the daemon published an undecodable entry {e:?}"));
            if c.handle != 0
                && self.handles.len() < MAX_HANDLES
                && !self.handles.contains(&c.handle)
            {
                self.handles.push(c.handle);
            }
            if c.event {
                continue;
            }
            self.report.answers += 1;
            let n = self.answered.entry(c.user_data).or_default();
            *n += 1;
            let took = self.taken.get(&c.user_data).copied().unwrap_or(0);
            assert!(
                *n <= took,
                "user_data {:#x} answered {n} times, taken {took} times",
                c.user_data
            );
        }
        self.p_tail = self.p_tail.wrapping_add(published);
        // A head the tail is more than a ring past cannot be the daemon's
        // cached one any more (it would allow no write; the next look
        // reads the word afresh).
        let (tail, entries) = (self.p_tail, self.entries);
        self.heads.retain(|&c| tail.wrapping_sub(c) <= entries);
    }

    /// The client turns honest and the clock runs out the deadlines: every
    /// entry taken gets its one answer.
    fn settle(&mut self) {
        if self.report.cursors_touched {
            self.resync();
        }
        let mut quiet = 0;
        for _ in 0..MAX_SETTLE_ROUNDS {
            self.tx.publish();
            let (taken, published) = self.step(SETTLE_BUDGET);
            self.reap(u32::MAX);
            if self.done() {
                self.report.settled = true;
                return;
            }
            if taken > 0 || published > 0 {
                quiet = 0;
                continue;
            }
            quiet += 1;
            match self.engine.poll_timeout() {
                Some(t) => self.now = self.now.max(t),
                None if quiet > 2 => break,
                None => {}
            }
        }
        if self.engine.poll_timeout().is_some() {
            return; // still waking up: inconclusive, not failed
        }
        let mut missing: Vec<_> = self
            .taken
            .iter()
            .filter(|(u, n)| self.answered.get(u) != Some(n))
            .map(|(u, n)| (*u, *n, self.answered.get(u).copied().unwrap_or(0)))
            .collect();
        missing.sort_unstable();
        panic!(
            "not settled with no timer left: (user_data, taken, answered) {missing:?}, \
             backlog {}, daemon head {} vs request tail {}",
            self.rings.backlog(),
            self.d_head,
            read_word(&self.region, self.req_base + RING_TAIL)
        );
    }

    fn done(&self) -> bool {
        let answers_in = if self.overwritten == 0 {
            self.taken == self.answered
        } else {
            // Answers overwritten unread are missing from `answered`,
            // never more of them than were overwritten.
            let taken: u64 = self.taken.values().map(|&n| u64::from(n)).sum();
            let answered: u64 = self.answered.values().map(|&n| u64::from(n)).sum();
            taken - answered <= self.overwritten
        };
        self.rings.backlog() == 0
            && answers_in
            && self.d_head == read_word(&self.region, self.req_base + RING_TAIL)
    }

    /// A client that wrote the cursors starts over from the daemon's
    /// words: its requests from the daemon's head, its completions from
    /// the daemon's tail (the harness already has every published one).
    fn resync(&mut self) {
        for (w, v) in [
            (Word::RequestHead, self.d_head),
            (Word::RequestTail, self.d_head),
            (Word::CompletionHead, self.p_tail),
            (Word::CompletionTail, self.p_tail),
        ] {
            write_word(&self.region, self.word_offset(w), v);
        }
        self.tx = Producer::new(self.region.clone(), self.req_base, self.entries)
            .expect("request ring in bounds");
        self.rx = Consumer::new(self.region.clone(), self.cpl_base, self.entries)
            .expect("completion ring in bounds");
    }
}

fn read_word(region: &SharedRegion, at: usize) -> u32 {
    let mut b = [0u8; 4];
    assert!(region.read(at..at + 4, &mut b));
    u32::from_le_bytes(b)
}

fn write_word(region: &SharedRegion, at: usize, v: u32) {
    assert!(region.write(at..at + 4, &v.to_le_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_through_bytes() {
        let ops = vec![
            Op::Submit {
                req: Req {
                    kind: 200,
                    target: 3,
                    arg: 0xdead_beef,
                },
                hold: true,
            },
            Op::Raw((0..64).collect()),
            Op::Scribble {
                offset: 77,
                bytes: vec![1, 2, 3],
            },
            Op::Cursor {
                word: Word::CompletionTail,
                value: Value::Delta(-3),
            },
            Op::Cursor {
                word: Word::RequestHead,
                value: Value::Raw(u32::MAX),
            },
            Op::Step {
                budget: 31,
                advance_ms: 1000,
            },
            Op::Reap(0),
            Op::Sleep(true),
            Op::NextDeadline,
            Op::TxData { chunk: 9, len: 129 },
            Op::Publish,
        ];
        let input = Input {
            setup: setup::HOSTILE_START | 3,
            hostile_start: [1, 2, 3, u32::MAX],
            ops,
        };
        assert_eq!(crate::fuzz::decode(&input.encode()), Some(input));
    }

    #[test]
    fn any_bytes_decode_to_an_input() {
        let mut rng = crate::rng::SplitMix64::new(2);
        for len in 0..512 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let input: Input = crate::fuzz::decode(&bytes).expect("decodes");
            // The encoder writes what `arbitrary` reads, for every variant
            // and field a fuzzer can produce.
            assert_eq!(crate::fuzz::decode(&input.encode()), Some(input));
        }
    }
}
