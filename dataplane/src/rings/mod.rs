//! The daemon side of one client's rings on one core.
//!
//! [`ClientRings`] owns this core's request ring (consumed), completion ring
//! (produced) and share of the client's RX arena. It copies every request
//! entry out of shared memory once, decodes and validates it (the region is
//! hostile: bad opcodes, chunks, lengths are answered with EINVAL, never
//! trusted), turns it into an engine [`Request`], and turns the engine's
//! completions back into entries. Every request gets exactly one completion.
//! Backpressure, not loss: requests are taken only while the completion
//! ring has room for their answers; completions that do not fit wait here.
//! It may not make protocol decisions (the engine's) or do I/O beyond the
//! shared region.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use lingerd_abi::Errno;
use lingerd_abi::entry::{self, Body, Op};
use lingerd_abi::layout::Layout;
use lingerd_abi::sys::{Consumer, Producer, SharedRegion};

use crate::engine::QueueEngine;
use crate::engine::api::{ClientId, Completion, Detail, Filter, Request};
use crate::shared::RxSink;
use crate::table::Handle;
use crate::tcp::linger::Linger;

/// Counters of one client's rings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Request entries taken.
    pub requests: u64,
    /// Requests answered EINVAL by decoding or chunk validation.
    pub invalid: u64,
    /// Completion entries published.
    pub completions: u64,
    /// Times request intake stopped because the completion ring was full.
    pub backpressure: u64,
    /// Requests refused EPERM: on handles the client does not own.
    pub refused: u64,
    /// Ring heads or tails found out of range (a corrupted or hostile
    /// client; clamped, never trusted).
    pub hostile_indexes: u64,
}

impl RingStats {
    /// Adds `other` into `self` (summing clients or cores).
    pub fn add(&mut self, other: RingStats) {
        self.requests += other.requests;
        self.invalid += other.invalid;
        self.completions += other.completions;
        self.backpressure += other.backpressure;
        self.refused += other.refused;
        self.hostile_indexes += other.hostile_indexes;
    }
}

/// Why the rings could not be set up over a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSetupError;

/// This core's RX chunks: which are free, which the client holds.
#[derive(Debug)]
struct RxChunks {
    free: Vec<u32>,
    /// Bit per chunk of the whole arena: set while the client holds it.
    held: Vec<u64>,
}

impl RxChunks {
    fn new(total: u32, cores: u32, core: u32) -> RxChunks {
        let per = total / cores.max(1);
        let first = per * core;
        RxChunks {
            free: (first..first + per).rev().collect(),
            held: vec![0; (total as usize).div_ceil(64)],
        }
    }

    fn take(&mut self) -> Option<u32> {
        let c = self.free.pop()?;
        self.held[c as usize / 64] |= 1 << (c % 64);
        Some(c)
    }

    /// Gives back a chunk the client held; false for one it did not hold
    /// (never handed out, or returned twice).
    fn give_back(&mut self, c: u32) -> bool {
        let Some(word) = self.held.get_mut(c as usize / 64) else {
            return false;
        };
        let bit = 1 << (c % 64);
        if *word & bit == 0 {
            return false;
        }
        *word &= !bit;
        self.free.push(c);
        true
    }
}

/// One client's rings on one core.
#[derive(Debug)]
pub struct ClientRings {
    client: ClientId,
    region: Arc<SharedRegion>,
    layout: Layout,
    requests: Consumer,
    completions: Producer,
    rx: RxChunks,
    /// Completions waiting for ring space (or RX chunks, for data).
    backlog: VecDeque<Completion>,
    stats: RingStats,
    /// Requests taken but not yet handled ([`ClientRings::poll_requests`]
    /// works in batches of [`REQUEST_BATCH`]); empty between calls.
    batch: Vec<(u64, Result<Taken, Errno>)>,
    /// The batch after `batch`, taken and prefetched while `batch` is
    /// handled; empty between calls.
    ahead: Vec<(u64, Result<Taken, Errno>)>,
    /// Payloads handed to the engine as owned copies because this sink
    /// could not place them, not yet encoded. While any is owed, nothing
    /// is placed directly: a later payload must not take the RX chunk an
    /// earlier one waits for (the client frees chunks only in order).
    owed_copies: u32,
}

/// A request entry, decoded and validated.
#[derive(Debug)]
enum Taken {
    /// An engine request.
    Request(Request),
    /// A send: its bytes stay in the client's TX chunk until the engine
    /// copies them into the send buffer.
    Send {
        handle: Handle,
        range: std::ops::Range<usize>,
    },
}

/// Requests copied, validated and prefetched together before the engine
/// handles them.
const REQUEST_BATCH: usize = 16;

impl ClientRings {
    /// The rings of `client` on `core` in `region`.
    pub fn new(
        client: ClientId,
        core: u32,
        region: Arc<SharedRegion>,
        layout: Layout,
    ) -> Result<ClientRings, RingSetupError> {
        let entries = layout.params.ring_entries;
        let req = layout.request_ring(core).ok_or(RingSetupError)?;
        let cpl = layout.completion_ring(core).ok_or(RingSetupError)?;
        if region.len() < layout.total {
            return Err(RingSetupError);
        }
        Ok(ClientRings {
            client,
            requests: Consumer::new(region.clone(), req, entries).map_err(|_| RingSetupError)?,
            completions: Producer::new(region.clone(), cpl, entries).map_err(|_| RingSetupError)?,
            rx: RxChunks::new(layout.params.rx_chunks, layout.params.cores, core),
            region,
            layout,
            backlog: VecDeque::new(),
            stats: RingStats::default(),
            batch: Vec::with_capacity(REQUEST_BATCH),
            ahead: Vec::with_capacity(REQUEST_BATCH),
            owed_copies: 0,
        })
    }

    /// The client these rings belong to.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// Counters.
    pub fn stats(&self) -> RingStats {
        RingStats {
            hostile_indexes: self.requests.hostile_indexes() + self.completions.hostile_indexes(),
            ..self.stats
        }
    }

    /// Completions waiting for ring space.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Completions the ring can still take beyond those already waiting:
    /// how many requests may be taken now.
    fn room(&mut self) -> u32 {
        self.completions
            .free()
            .saturating_sub(self.backlog.len() as u32)
    }

    /// Asks the client to ring its doorbell with its next request (the core
    /// is about to sleep), then looks once more. True: requests arrived
    /// meanwhile and there is room to answer them, so do not sleep.
    pub fn arm_doorbell(&mut self) -> bool {
        self.requests.set_need_wakeup(true);
        self.requests.available() > 0 && self.room() > 0
    }

    /// The core is awake: the client need not ring.
    pub fn disarm_doorbell(&self) {
        self.requests.set_need_wakeup(false);
    }

    /// Takes up to `budget` requests into `engine`, only as many as the
    /// completion ring has room to answer. Returns how many were taken.
    pub fn poll_requests(&mut self, engine: &mut QueueEngine, now: Instant, budget: u32) -> u32 {
        let room = self.room();
        let ready = self.requests.available();
        if ready > 0 && room == 0 {
            self.stats.backpressure += 1;
        }
        let n = ready.min(room).min(budget);
        // In batches, a batch ahead: copy and validate each entry of the
        // next batch and let the engine prefetch its slots, then handle
        // the current batch in order (the slots arrive meanwhile), then
        // prefetch the next batch's index buckets (reading those slots),
        // so that a burst of closes waits for its cache misses together,
        // behind other work, rather than one after the other.
        let mut current = std::mem::take(&mut self.batch);
        let mut ahead = std::mem::take(&mut self.ahead);
        let mut taken = 0;
        self.take_batch(engine, n, &mut taken, &mut current);
        prefetch_removes(engine, &current);
        while !current.is_empty() {
            self.take_batch(engine, n, &mut taken, &mut ahead);
            self.handle_batch(engine, now, &mut current);
            prefetch_removes(engine, &ahead);
            std::mem::swap(&mut current, &mut ahead);
        }
        self.batch = current;
        self.ahead = ahead;
        self.requests.release();
        taken
    }

    /// Copies and validates up to [`REQUEST_BATCH`] entries (within `n`
    /// taken in all) into `batch` and prefetches their slots.
    fn take_batch(
        &mut self,
        engine: &QueueEngine,
        n: u32,
        taken: &mut u32,
        batch: &mut Vec<(u64, Result<Taken, Errno>)>,
    ) {
        while *taken < n && batch.len() < REQUEST_BATCH {
            let Some(bytes) = self.requests.pop() else {
                break;
            };
            *taken += 1;
            self.stats.requests += 1;
            let (user_data, op) = entry::decode_request(&bytes);
            let req = op
                .map_err(|_| Errno::Inval)
                .and_then(|op| self.take_request(op));
            if let Ok(Taken::Request(req)) = &req {
                engine.prefetch_request_slot(req);
            }
            batch.push((user_data, req));
        }
    }

    /// Hands every request of `batch` to the engine, in order, and
    /// empties it.
    fn handle_batch(
        &mut self,
        engine: &mut QueueEngine,
        now: Instant,
        batch: &mut Vec<(u64, Result<Taken, Errno>)>,
    ) {
        for (user_data, req) in batch.drain(..) {
            match req {
                Ok(Taken::Request(req)) => engine.handle_request(now, self.client, user_data, req),
                Ok(Taken::Send { handle, range }) => {
                    // Straight from the TX chunk into the send buffer:
                    // no copy of the bytes in between.
                    let region = &self.region;
                    let start = range.start;
                    engine.handle_send_from(
                        now,
                        self.client,
                        user_data,
                        handle,
                        range.len(),
                        &mut |off, dst| {
                            let from = start + off;
                            region.read(from..from + dst.len(), dst)
                        },
                    );
                }
                Err(e) => {
                    self.stats.invalid += 1;
                    self.backlog.push_back(answer(self.client, user_data, e));
                }
            }
        }
    }

    /// Turns a decoded entry into an engine request, validating TX chunks
    /// and settling RX chunk returns. Errors are the completion's result.
    fn take_request(&mut self, op: Op) -> Result<Taken, Errno> {
        Ok(Taken::Request(match op {
            Op::Listen { port, backlog } => Request::Listen { port, backlog },
            Op::Connect {
                addr,
                port,
                local_port,
            } => Request::Connect {
                remote: SocketAddr::new(addr, port),
                local_port: (local_port != 0).then_some(local_port),
                local_addr: None,
            },
            Op::Send { handle, chunk, len } => {
                let range = self.layout.tx_chunk(chunk, len).ok_or(Errno::Inval)?;
                return Ok(Taken::Send {
                    handle: Handle::from_raw(handle),
                    range,
                });
            }
            Op::RecvDone { handle, chunk, len } => {
                if len > self.layout.params.chunk_size || !self.rx.give_back(chunk) {
                    return Err(Errno::Inval);
                }
                Request::RecvDone {
                    handle: Handle::from_raw(handle),
                    len,
                }
            }
            Op::Shutdown { handle, how } => Request::Shutdown {
                handle: Handle::from_raw(handle),
                how,
            },
            Op::SetLinger { handle, on, ms } => Request::SetLinger {
                handle: Handle::from_raw(handle),
                linger: Linger { on, ms },
            },
            Op::SetDontLinger { handle, dont } => Request::SetDontLinger {
                handle: Handle::from_raw(handle),
                dont,
            },
            Op::GetLinger { handle } => Request::GetLinger {
                handle: Handle::from_raw(handle),
            },
            Op::Close {
                handle,
                nonblocking,
            } => Request::Close {
                handle: Handle::from_raw(handle),
                nonblocking,
            },
            Op::Abort { handle } => Request::Abort {
                handle: Handle::from_raw(handle),
            },
            Op::CloseMatching {
                filter,
                mode,
                pace_per_s,
            } => Request::CloseMatching {
                filter: Filter {
                    local: filter.local,
                    remote: filter.remote,
                    local_port: filter.local_port,
                    remote_port: filter.remote_port,
                    states: filter.states,
                    min_idle_ms: filter.min_idle_ms,
                },
                mode,
                pace_per_s,
            },
        }))
    }

    /// Writes `data` into a free RX chunk, if one is free and no earlier
    /// payload still waits for one.
    fn place_data(&mut self, data: &[u8]) -> Option<Detail> {
        if self.owed_copies > 0 || data.len() > self.layout.params.chunk_size as usize {
            return None;
        }
        let chunk = self.rx.take()?;
        let len = data.len() as u32;
        let written = self
            .layout
            .rx_chunk(chunk, len)
            .is_some_and(|range| self.region.write(range, data));
        if !written {
            self.rx.give_back(chunk);
            return None;
        }
        Some(Detail::DataInChunk { chunk, len })
    }

    /// Queues one engine completion addressed to this client.
    pub fn deliver(&mut self, c: Completion) {
        if c.result == Errno::Perm && !c.is_event {
            self.stats.refused += 1;
        }
        self.backlog.push_back(c);
    }

    /// Moves as many queued completions as fit into the ring and publishes
    /// them. Returns true when the client asked to be woken and something
    /// was published (signal its eventfd).
    pub fn flush(&mut self) -> bool {
        let mut published = 0u64;
        while let Some(c) = self.backlog.pop_front() {
            if self.completions.free() == 0 {
                self.backlog.push_front(c);
                break;
            }
            match self.encode(c) {
                Ok(bytes) => {
                    let pushed = self.completions.push(&bytes);
                    debug_assert!(pushed, "free() said there was room");
                    published += 1;
                }
                Err(rest) => {
                    // Data waiting for an RX chunk the client has not
                    // returned yet: keep the order, try again later.
                    self.backlog.push_front(rest);
                    break;
                }
            }
        }
        if published > 0 {
            self.completions.publish();
            self.stats.completions += published;
        }
        published > 0 && self.completions.needs_wakeup()
    }

    /// Encodes a completion. Data goes into one RX chunk; more than a chunk
    /// holds is split, the rest going back as the returned error.
    fn encode(&mut self, c: Completion) -> Result<[u8; entry::ENTRY_BYTES], Completion> {
        let body = match &c.detail {
            Detail::None => Body::Reply,
            Detail::Linger(l) => Body::Linger { on: l.on, ms: l.ms },
            Detail::Closed(o) => Body::Closed(*o),
            Detail::Count(n) => Body::Count(*n),
            Detail::Connecting => Body::Connecting,
            Detail::Connected { local_port } => Body::Connected {
                local_port: *local_port,
            },
            Detail::Accepted { listener, remote } => Body::Accepted {
                listener: listener.raw(),
                addr: remote.ip(),
                port: remote.port(),
            },
            Detail::PeerClosed => Body::PeerClosed,
            Detail::DataInChunk { chunk, len } => Body::Data {
                chunk: *chunk,
                len: *len,
            },
            Detail::Reset => Body::Reset,
            Detail::Data(bytes) => {
                let Some(chunk) = self.rx.take() else {
                    return Err(c);
                };
                let size = self.layout.params.chunk_size as usize;
                let n = bytes.len().min(size);
                let range = self
                    .layout
                    .rx_chunk(chunk, n as u32)
                    .expect("own chunk in bounds");
                let written = self.region.write(range, &bytes[..n]);
                debug_assert!(written);
                let entry = entry::Completion {
                    user_data: c.user_data,
                    handle: c.handle.raw(),
                    result: c.result,
                    event: c.is_event,
                    body: Body::Data {
                        chunk,
                        len: n as u32,
                    },
                }
                .encode();
                if n == bytes.len() {
                    self.owed_copies = self.owed_copies.saturating_sub(1);
                } else {
                    // The rest goes first next time, in order.
                    let rest = Completion {
                        detail: Detail::Data(bytes[n..].to_vec()),
                        ..c
                    };
                    self.backlog.push_front(rest);
                }
                return Ok(entry);
            }
        };
        Ok(entry::Completion {
            user_data: c.user_data,
            handle: c.handle.raw(),
            result: c.result,
            event: c.is_event,
            body,
        }
        .encode())
    }
}

/// The rings as the engine's [`RxSink`]: payload for this client goes
/// straight into one of its RX chunks (the copy-once receive path).
impl RxSink for ClientRings {
    fn place(&mut self, client: ClientId, data: &[u8]) -> Option<Detail> {
        if client != self.client {
            return None;
        }
        let placed = self.place_data(data);
        if placed.is_none() {
            self.owed_copies += 1;
        }
        placed
    }
}

/// The rings of every client on a core: each payload goes to its owner's.
impl RxSink for [ClientRings] {
    fn place(&mut self, client: ClientId, data: &[u8]) -> Option<Detail> {
        self.iter_mut()
            .find(|r| r.client == client)?
            .place(client, data)
    }
}

/// Prefetches what handling the requests of `batch` will remove from the
/// table (their slots were prefetched when they were taken).
fn prefetch_removes(engine: &QueueEngine, batch: &[(u64, Result<Taken, Errno>)]) {
    for (_, req) in batch {
        if let Ok(Taken::Request(req)) = req {
            engine.prefetch_request(req);
        }
    }
}

fn answer(client: ClientId, user_data: u64, result: Errno) -> Completion {
    Completion {
        client,
        user_data,
        handle: Handle::from_raw(0),
        result,
        detail: Detail::None,
        is_event: false,
    }
}
