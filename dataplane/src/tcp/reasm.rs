//! The reassembly queue: out-of-order payload a connection keeps until the
//! gap before it fills (RFC 9293 §3.10.7.4 seventh step, RFC 5681 §4.2).
//!
//! It owns one per-core pool of fixed-size chunks ([`CHUNK_BYTES`] each),
//! allocated once when the engine is built, and the queues made of them: a
//! queue is a header (first chunk, counts, a remembered FIN) and a list of
//! chunks in sequence order, each holding one contiguous run of bytes, none
//! overlapping. A connection names its queue by a four-byte [`QueueId`] in
//! its record, and only while it holds out-of-order data, so an idle
//! connection costs nothing beyond its record. It knows sequence numbers but
//! not states, windows or clients: the caller (`input`) says which bytes are
//! acceptable, delivers what [`ReasmPool::ready`] hands back and counts what
//! [`ReasmPool::insert`] reports. It may not touch the table, the sink or
//! the counters. Every index comes from this module, but each is still
//! checked on use: a bad one reads as an empty queue, never a panic.

use std::num::NonZeroU32;

use crate::wire::SeqNumber;

/// Payload bytes per chunk: a 1460-byte segment and a bit, so a run of small
/// segments coalesces into few chunks.
pub const CHUNK_BYTES: usize = 2048;

const NIL: u32 = u32::MAX;

/// Sizes of the reassembly pool (fixed for the engine's life).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasmConfig {
    /// Bytes of chunk memory per core, shared by every connection of the
    /// core (rounded down to whole chunks). 0 keeps no out-of-order data.
    pub budget_bytes: u32,
    /// Chunk memory one connection may hold (rounded up to whole chunks);
    /// the receive window bounds the bytes themselves. Runs that end inside
    /// a chunk waste its tail, so this is twice the window by default (as
    /// Linux lets a socket's buffer memory be twice its window).
    pub per_conn_bytes: u32,
}

impl Default for ReasmConfig {
    /// `tcp.reassembly_per_core` and `tcp.reassembly_per_connection`'s
    /// defaults: 4 MiB per core (2,048 chunks), twice a default 64 KiB
    /// receive window per connection.
    fn default() -> Self {
        use lingerd_abi::vocab::tcp_defaults as d;
        ReasmConfig {
            budget_bytes: d::REASSEMBLY_PER_CORE,
            per_conn_bytes: d::REASSEMBLY_PER_CONNECTION,
        }
    }
}

/// A connection's queue: an index into the pool's headers, plus one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueId(NonZeroU32);

impl QueueId {
    fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

#[derive(Clone, Copy, Debug)]
struct Chunk {
    /// Sequence number of the first byte held.
    seq: SeqNumber,
    /// Bytes held, at the start of the chunk's memory.
    len: u16,
    /// The next chunk of the queue (or of the free list), or `NIL`.
    next: u32,
}

#[derive(Clone, Copy, Debug)]
struct Head {
    /// First chunk (lowest sequence), or `NIL`.
    first: u32,
    /// Chunks held.
    chunks: u32,
    /// Payload bytes held.
    bytes: u32,
    /// The peer's FIN, received out of order: its sequence number.
    fin: Option<SeqNumber>,
    /// The first byte the latest insert kept (RFC 2018 §4: the SACK block
    /// holding it goes first).
    last: SeqNumber,
    /// Next free header while free.
    next_free: u32,
}

/// What one [`ReasmPool::insert`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// New bytes the queue took.
    pub kept: u32,
    /// Bytes given up for memory: queued ones pruned to make room, and
    /// this segment's that found none.
    pub pruned: u32,
    /// The segment's FIN is now remembered.
    pub fin_kept: bool,
}

/// The pool's gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReasmUsage {
    /// Chunk memory of the pool, bytes (the per-core budget, in whole chunks).
    pub budget_bytes: u64,
    /// Chunk memory held by queues, bytes.
    pub used_bytes: u64,
    /// Payload bytes held by queues.
    pub held_bytes: u64,
    /// Queues (connections holding out-of-order data or FIN).
    pub queues: u64,
    /// Chunk memory one queue may hold, bytes (the per-connection share,
    /// in whole chunks, at most the budget).
    pub per_connection_bytes: u64,
}

/// The per-core pool of chunks and queue headers.
#[derive(Debug)]
pub struct ReasmPool {
    data: Vec<u8>,
    chunks: Vec<Chunk>,
    heads: Vec<Head>,
    free_chunk: u32,
    free_head: u32,
    chunks_in_use: u32,
    heads_in_use: u32,
    held_bytes: u64,
    max_chunks_per_queue: u32,
}

impl ReasmPool {
    /// Allocates the whole pool now (the payload memory is zeroed lazily by
    /// the OS, so an engine that never reorders never touches it).
    pub fn new(cfg: ReasmConfig) -> ReasmPool {
        let n = (cfg.budget_bytes as usize / CHUNK_BYTES).min(NIL as usize - 1) as u32;
        let per_conn = (cfg.per_conn_bytes as usize).div_ceil(CHUNK_BYTES) as u32;
        let chunks = (0..n)
            .map(|i| Chunk {
                seq: SeqNumber(0),
                len: 0,
                next: if i + 1 < n { i + 1 } else { NIL },
            })
            .collect();
        let heads = (0..n)
            .map(|i| Head {
                first: NIL,
                chunks: 0,
                bytes: 0,
                fin: None,
                last: SeqNumber(0),
                next_free: if i + 1 < n { i + 1 } else { NIL },
            })
            .collect();
        ReasmPool {
            data: vec![0; n as usize * CHUNK_BYTES],
            chunks,
            heads,
            free_chunk: if n > 0 { 0 } else { NIL },
            free_head: if n > 0 { 0 } else { NIL },
            chunks_in_use: 0,
            heads_in_use: 0,
            held_bytes: 0,
            max_chunks_per_queue: per_conn.min(n),
        }
    }

    /// The gauges.
    pub fn usage(&self) -> ReasmUsage {
        ReasmUsage {
            budget_bytes: (self.chunks.len() * CHUNK_BYTES) as u64,
            used_bytes: u64::from(self.chunks_in_use) * CHUNK_BYTES as u64,
            held_bytes: self.held_bytes,
            queues: u64::from(self.heads_in_use),
            per_connection_bytes: u64::from(self.max_chunks_per_queue) * CHUNK_BYTES as u64,
        }
    }

    /// Payload bytes a queue holds (0 for none).
    pub fn queued_bytes(&self, id: Option<QueueId>) -> u32 {
        self.head(id).map_or(0, |h| h.bytes)
    }

    /// Chunks a queue holds (0 for none).
    pub fn queued_chunks(&self, id: Option<QueueId>) -> u32 {
        self.head(id).map_or(0, |h| h.chunks)
    }

    /// The remembered out-of-order FIN of a queue.
    pub fn fin(&self, id: Option<QueueId>) -> Option<SeqNumber> {
        self.head(id).and_then(|h| h.fin)
    }

    fn head(&self, id: Option<QueueId>) -> Option<&Head> {
        self.heads.get(id?.index())
    }

    fn chunk(&self, i: u32) -> Option<&Chunk> {
        self.chunks.get(i as usize)
    }

    fn next_of(&self, i: u32) -> u32 {
        self.chunk(i).map_or(NIL, |c| c.next)
    }

    /// `[start, end)` of chunk `i`, relative to `base` (exact: queued data
    /// lies within one receive window, far below 2^31, of `base`).
    fn span(&self, i: u32, base: SeqNumber) -> Option<(i64, i64)> {
        let c = self.chunk(i)?;
        let start = i64::from(c.seq.diff(base));
        Some((start, start + i64::from(c.len)))
    }

    fn set_next(&mut self, id: QueueId, prev: u32, to: u32) {
        if prev == NIL {
            if let Some(h) = self.heads.get_mut(id.index()) {
                h.first = to;
            }
        } else if let Some(c) = self.chunks.get_mut(prev as usize) {
            c.next = to;
        }
    }

    fn alloc_head(&mut self) -> Option<QueueId> {
        let i = self.free_head;
        let h = self.heads.get_mut(i as usize)?;
        self.free_head = h.next_free;
        *h = Head {
            first: NIL,
            chunks: 0,
            bytes: 0,
            fin: None,
            last: SeqNumber(0),
            next_free: NIL,
        };
        self.heads_in_use += 1;
        NonZeroU32::new(i.wrapping_add(1)).map(QueueId)
    }

    /// A free chunk for queue `id`, unless the pool or the queue's share is
    /// spent.
    fn alloc_chunk(&mut self, id: QueueId) -> Option<u32> {
        let h = self.heads.get(id.index())?;
        if h.chunks >= self.max_chunks_per_queue {
            return None;
        }
        let i = self.free_chunk;
        let c = self.chunks.get_mut(i as usize)?;
        self.free_chunk = c.next;
        c.next = NIL;
        c.len = 0;
        self.chunks_in_use += 1;
        if let Some(h) = self.heads.get_mut(id.index()) {
            h.chunks += 1;
        }
        Some(i)
    }

    /// Returns chunk `i` (already unlinked from queue `id`) to the free list.
    fn free_chunk(&mut self, id: QueueId, i: u32) {
        let Some(c) = self.chunks.get_mut(i as usize) else {
            return;
        };
        let len = u32::from(c.len);
        c.len = 0;
        c.next = self.free_chunk;
        self.free_chunk = i;
        self.chunks_in_use = self.chunks_in_use.saturating_sub(1);
        self.held_bytes = self.held_bytes.saturating_sub(u64::from(len));
        if let Some(h) = self.heads.get_mut(id.index()) {
            h.chunks = h.chunks.saturating_sub(1);
            h.bytes = h.bytes.saturating_sub(len);
        }
    }

    fn add_bytes(&mut self, id: QueueId, n: u32) {
        self.held_bytes += u64::from(n);
        if let Some(h) = self.heads.get_mut(id.index()) {
            h.bytes = h.bytes.saturating_add(n);
        }
    }

    /// Copies `src` to the end of chunk `i`'s bytes.
    fn append(&mut self, i: u32, src: &[u8]) {
        let Some(c) = self.chunks.get_mut(i as usize) else {
            return;
        };
        let at = i as usize * CHUNK_BYTES + usize::from(c.len);
        let n = src.len().min(CHUNK_BYTES - usize::from(c.len));
        if let Some(dst) = self.data.get_mut(at..at + n) {
            dst.copy_from_slice(&src[..n]);
            c.len += n as u16;
        }
    }

    /// Drops the highest chunk of queue `id` if it starts beyond `above`
    /// (relative to `base`): the data furthest from delivery goes first, as
    /// Linux prunes its out-of-order queue. Returns the bytes dropped, or
    /// `None` when nothing lies beyond `above`.
    fn prune_tail(&mut self, id: QueueId, base: SeqNumber, above: i64) -> Option<u32> {
        let mut prev = NIL;
        let mut cur = self.head(Some(id))?.first;
        if cur == NIL {
            return None;
        }
        while self.next_of(cur) != NIL {
            prev = cur;
            cur = self.next_of(cur);
        }
        let (start, end) = self.span(cur, base)?;
        if start <= above {
            return None;
        }
        self.set_next(id, prev, NIL);
        self.free_chunk(id, cur);
        Some((end - start) as u32)
    }

    /// Keeps what it can of an out-of-order segment: `data` at `seq`, plus
    /// its FIN when `fin`. Only bytes in `[rcv_nxt, rcv_nxt + wnd)` are
    /// taken (and none at or beyond a remembered FIN); bytes already queued
    /// stay as they are (the first copy wins), so overlapping and duplicated
    /// segments add only what is new. When the pool or the queue's share is
    /// spent, queued chunks beyond the bytes being placed are pruned,
    /// highest first, and what still finds no room is dropped; both are
    /// counted in [`Inserted::pruned`]. A FIN is remembered only when the
    /// whole segment lies within the window and nothing queued lies beyond
    /// it.
    pub fn insert(
        &mut self,
        slot: &mut Option<QueueId>,
        rcv_nxt: SeqNumber,
        wnd: u32,
        seq: SeqNumber,
        data: &[u8],
        fin: bool,
    ) -> Inserted {
        let mut out = Inserted::default();
        let start = i64::from(seq.diff(rcv_nxt));
        let seg_end = start + data.len() as i64;
        let wnd = i64::from(wnd);
        let old_fin = self.fin(*slot).map(|f| i64::from(f.diff(rcv_nxt)));
        let lo = start.max(0);
        let mut hi = seg_end.min(wnd);
        if let Some(f) = old_fin {
            hi = hi.min(f);
        }
        let wants_fin = fin && seg_end <= wnd && old_fin.is_none() && start > 0;
        if hi <= lo && !wants_fin {
            return out;
        }
        let id = match *slot {
            Some(id) => id,
            None => match self.alloc_head() {
                Some(id) => {
                    *slot = Some(id);
                    id
                }
                None => {
                    out.pruned = (hi - lo).max(0) as u32;
                    return out;
                }
            },
        };

        let mut p = lo;
        let mut no_room = false;
        let mut prev = NIL;
        let mut cur = self.head(Some(id)).map_or(NIL, |h| h.first);
        while p < hi {
            let span = if cur == NIL {
                None
            } else {
                self.span(cur, rcv_nxt)
            };
            if let Some((cs, ce)) = span
                && (ce <= p || cs <= p)
            {
                // Entirely before p, or covering p: what is queued stays.
                p = p.max(ce);
                prev = cur;
                cur = self.next_of(cur);
                continue;
            }
            // A hole: [p, hole_end).
            let hole_end = span.map_or(hi, |(cs, _)| cs.min(hi));
            let from = (p - start) as usize;
            let want = (hole_end - p) as usize;
            // Coalesce into the previous chunk when the bytes continue it.
            if let Some((_, pe)) = (prev != NIL).then(|| self.span(prev, rcv_nxt)).flatten()
                && pe == p
                && let Some(len) = self.chunk(prev).map(|c| usize::from(c.len))
                && len < CHUNK_BYTES
            {
                let n = want.min(CHUNK_BYTES - len);
                self.append(prev, &data[from..from + n]);
                self.add_bytes(id, n as u32);
                out.kept += n as u32;
                p += n as i64;
                continue;
            }
            if no_room {
                out.pruned += want as u32;
                p = hole_end;
                continue;
            }
            match self.alloc_chunk(id) {
                Some(c) => {
                    let n = want.min(CHUNK_BYTES);
                    if let Some(ch) = self.chunks.get_mut(c as usize) {
                        ch.seq = rcv_nxt.wrapping_add(p as u32);
                        ch.next = cur;
                    }
                    self.append(c, &data[from..from + n]);
                    self.set_next(id, prev, c);
                    self.add_bytes(id, n as u32);
                    out.kept += n as u32;
                    prev = c;
                    p += n as i64;
                }
                None => match self.prune_tail(id, rcv_nxt, p) {
                    Some(bytes) => {
                        // The list changed behind the cursor: walk again.
                        out.pruned += bytes;
                        prev = NIL;
                        cur = self.head(Some(id)).map_or(NIL, |h| h.first);
                    }
                    None => no_room = true,
                },
            }
        }

        if out.kept > 0
            && let Some(h) = self.heads.get_mut(id.index())
        {
            h.last = rcv_nxt.wrapping_add(lo as u32);
        }
        if wants_fin {
            let tail_end = self.tail_end(id, rcv_nxt);
            if tail_end.is_none_or(|e| e <= seg_end)
                && let Some(h) = self.heads.get_mut(id.index())
            {
                h.fin = Some(seq.wrapping_add(data.len() as u32));
                out.fin_kept = true;
            }
        }
        self.release_if_empty(slot);
        out
    }

    /// SACK blocks (RFC 2018 §4) for what queue `slot` holds above
    /// `rcv_nxt`, at most `max`: the block holding the latest segment kept
    /// first, then the others lowest first (the holes a sender repairs
    /// first stay in view). Contiguous chunks make one block.
    pub fn sack_blocks(
        &self,
        slot: Option<QueueId>,
        rcv_nxt: SeqNumber,
        max: usize,
    ) -> crate::wire::SackBlocks {
        let mut out = crate::wire::SackBlocks::default();
        let Some(head) = self.head(slot) else {
            return out;
        };
        if max == 0 {
            return out;
        }
        let last = i64::from(head.last.diff(rcv_nxt));
        let mut first = None;
        self.runs(head.first, rcv_nxt, &mut |s, e| {
            if s <= last && last < e {
                first = Some((s, e));
                false
            } else {
                true
            }
        });
        let seq = |v: i64| rcv_nxt.wrapping_add(v as u32);
        if let Some((s, e)) = first {
            out.push(seq(s), seq(e));
        }
        self.runs(head.first, rcv_nxt, &mut |s, e| {
            if first != Some((s, e)) && out.len() < max {
                out.push(seq(s), seq(e));
            }
            out.len() < max
        });
        out.truncate(max);
        out
    }

    /// Calls `f(start, end)` for each run of contiguous queued bytes above
    /// `base` (relative to it), lowest first, until `f` returns false.
    fn runs(&self, mut cur: u32, base: SeqNumber, f: &mut dyn FnMut(i64, i64) -> bool) {
        let mut run: Option<(i64, i64)> = None;
        // A queue holds at most its share of chunks; the bound only guards
        // against a corrupted list.
        let mut left = self.chunks.len();
        while cur != NIL && left > 0 {
            left -= 1;
            if let Some((s, e)) = self.span(cur, base)
                && e > 0
            {
                let s = s.max(0);
                run = match run {
                    Some((rs, re)) if re == s => Some((rs, e)),
                    Some(r) => {
                        if !f(r.0, r.1) {
                            return;
                        }
                        Some((s, e))
                    }
                    None => Some((s, e)),
                };
            }
            cur = self.next_of(cur);
        }
        if let Some((s, e)) = run {
            f(s, e);
        }
    }

    /// The end of the highest chunk of queue `id`, relative to `base`.
    fn tail_end(&self, id: QueueId, base: SeqNumber) -> Option<i64> {
        let mut cur = self.head(Some(id))?.first;
        let mut end = None;
        while cur != NIL {
            end = self.span(cur, base).map(|(_, e)| e);
            cur = self.next_of(cur);
        }
        end
    }

    /// The queued bytes that continue the stream at `rcv_nxt`, from the
    /// first chunk (drops chunks that in-order data already covered).
    /// Deliver them, then [`pop_front`](Self::pop_front).
    pub fn ready(&mut self, slot: Option<QueueId>, rcv_nxt: SeqNumber) -> Option<&[u8]> {
        let id = slot?;
        loop {
            let first = self.head(Some(id))?.first;
            let (start, end) = self.span(first, rcv_nxt)?;
            if start > 0 {
                return None;
            }
            if end <= 0 {
                let next = self.next_of(first);
                self.set_next(id, NIL, next);
                self.free_chunk(id, first);
                continue;
            }
            let at = first as usize * CHUNK_BYTES;
            return self
                .data
                .get(at + (-start) as usize..at + (end - start) as usize);
        }
    }

    /// Frees the first chunk of the queue (its bytes were delivered), and
    /// the queue itself once it holds nothing.
    pub fn pop_front(&mut self, slot: &mut Option<QueueId>) {
        let Some(id) = *slot else {
            return;
        };
        let first = self.head(Some(id)).map_or(NIL, |h| h.first);
        if first != NIL {
            let next = self.next_of(first);
            self.set_next(id, NIL, next);
            self.free_chunk(id, first);
        }
        self.release_if_empty(slot);
    }

    /// Forgets the remembered FIN (it was processed), and the queue once it
    /// holds nothing.
    pub fn take_fin(&mut self, slot: &mut Option<QueueId>) {
        if let Some(h) = slot.and_then(|id| self.heads.get_mut(id.index())) {
            h.fin = None;
        }
        self.release_if_empty(slot);
    }

    fn release_if_empty(&mut self, slot: &mut Option<QueueId>) {
        if self
            .head(*slot)
            .is_some_and(|h| h.first == NIL && h.fin.is_none())
        {
            self.release(slot);
        }
    }

    /// Frees a queue whole (the connection ended, or can no longer
    /// deliver): every chunk and the header go back to the pool.
    pub fn release(&mut self, slot: &mut Option<QueueId>) {
        let Some(id) = slot.take() else {
            return;
        };
        let mut cur = self.head(Some(id)).map_or(NIL, |h| h.first);
        // Bounded by the chunk count even if a list were ever corrupt.
        let mut budget = self.chunks.len();
        while cur != NIL && budget > 0 {
            let next = self.next_of(cur);
            self.free_chunk(id, cur);
            cur = next;
            budget -= 1;
        }
        let free_head = self.free_head;
        if let Some(h) = self.heads.get_mut(id.index()) {
            *h = Head {
                first: NIL,
                chunks: 0,
                bytes: 0,
                fin: None,
                last: SeqNumber(0),
                next_free: free_head,
            };
            self.free_head = id.index() as u32;
            self.heads_in_use = self.heads_in_use.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(chunks: u32, per_conn: u32) -> ReasmPool {
        ReasmPool::new(ReasmConfig {
            budget_bytes: chunks * CHUNK_BYTES as u32,
            per_conn_bytes: per_conn,
        })
    }

    /// Everything deliverable at `rcv_nxt`, popped.
    fn drain(p: &mut ReasmPool, slot: &mut Option<QueueId>, rcv_nxt: &mut SeqNumber) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = p.ready(*slot, *rcv_nxt) {
            out.extend_from_slice(b);
            *rcv_nxt = rcv_nxt.wrapping_add(b.len() as u32);
            p.pop_front(slot);
        }
        out
    }

    fn bytes(from: u8, n: usize) -> Vec<u8> {
        (0..n).map(|i| from.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn overlapping_and_duplicate_segments_fill_only_holes_and_deliver_in_order() {
        let mut p = pool(16, 65536);
        let mut q = None;
        let base = SeqNumber(u32::MAX - 100); // the window wraps
        let stream = bytes(0, 3000);
        let at = |off: usize| base.wrapping_add(off as u32);
        // 1000..1500, then a duplicate, then 1200..2000 overlapping it, then 2500..3000.
        let r = p.insert(&mut q, base, 65535, at(1000), &stream[1000..1500], false);
        assert_eq!(r.kept, 500);
        let r = p.insert(&mut q, base, 65535, at(1000), &stream[1000..1500], false);
        assert_eq!(r.kept, 0, "a duplicate adds nothing");
        let r = p.insert(&mut q, base, 65535, at(1200), &stream[1200..2000], false);
        assert_eq!(r.kept, 500);
        p.insert(&mut q, base, 65535, at(2500), &stream[2500..3000], false);
        // 100..1100 overlaps the head from below.
        p.insert(&mut q, base, 65535, at(100), &stream[100..1100], false);
        assert_eq!(p.queued_bytes(q), 900 + 1000 + 500);
        // Nothing is ready before the gap at 0 fills.
        let mut nxt = base;
        assert!(drain(&mut p, &mut q, &mut nxt).is_empty());
        // The in-order 0..150 arrives (the caller delivers it).
        nxt = at(150);
        assert_eq!(drain(&mut p, &mut q, &mut nxt), stream[150..2000]);
        assert_eq!(nxt, at(2000));
        nxt = at(2600); // in-order data overtook part of the last run
        assert_eq!(drain(&mut p, &mut q, &mut nxt), stream[2600..3000]);
        assert_eq!(q, None, "an empty queue frees its header");
        assert_eq!(p.usage().used_bytes, 0);
        assert_eq!(p.usage().queues, 0);
    }

    #[test]
    fn bytes_beyond_the_window_and_a_fin_are_trimmed_and_fin_is_remembered() {
        let mut p = pool(4, 65536);
        let mut q = None;
        let base = SeqNumber(7);
        let r = p.insert(&mut q, base, 1000, base + 800, &[1; 400], true);
        assert_eq!(r.kept, 200, "trimmed to the window");
        assert!(!r.fin_kept, "a FIN beyond the window is not kept");
        let r = p.insert(&mut q, base, 1000, base + 500, &[2; 100], true);
        assert!(!r.fin_kept, "data is queued beyond this FIN");
        p.release(&mut q);
        let r = p.insert(&mut q, base, 1000, base + 500, &[2; 100], true);
        assert!(r.fin_kept);
        assert_eq!(p.fin(q), Some(base + 600));
        let r = p.insert(&mut q, base, 1000, base + 550, &[3; 300], false);
        assert_eq!(r.kept, 0, "nothing at or after the FIN");
        let r = p.insert(&mut q, base, 1000, base + 10, &[4; 10], false);
        assert_eq!(r.kept, 10);
        let mut nxt = base + 10;
        assert_eq!(drain(&mut p, &mut q, &mut nxt), vec![4; 10]);
        assert!(q.is_some(), "the FIN and the run at 500 remain");
        p.release(&mut q);
        assert_eq!(
            p.usage(),
            ReasmUsage {
                budget_bytes: 4 * CHUNK_BYTES as u64,
                per_connection_bytes: p.usage().per_connection_bytes,
                ..ReasmUsage::default()
            }
        );
    }

    #[test]
    fn small_contiguous_segments_share_a_chunk() {
        let mut p = pool(4, 65536);
        let mut q = None;
        let base = SeqNumber(0);
        for i in 0..20u32 {
            p.insert(
                &mut q,
                base,
                65535,
                base + (100 + i * 100),
                &[i as u8; 100],
                false,
            );
        }
        assert_eq!(p.queued_bytes(q), 2000);
        assert_eq!(p.queued_chunks(q), 1);
        p.insert(&mut q, base, 65535, base + 2100, &[9; 100], false);
        assert_eq!(p.queued_chunks(q), 2, "2,100 bytes need a second chunk");
    }

    #[test]
    fn under_pressure_the_highest_data_goes_first_and_the_rest_is_dropped() {
        let mut p = pool(3, 65536);
        let (mut a, mut b) = (None, None);
        let base = SeqNumber(1000);
        p.insert(&mut b, base, 65535, base + 1, &[0; 10], false);
        // a: chunks at 10_000 and 20_000; the pool has one chunk left.
        p.insert(&mut a, base, 65535, base + 10_000, &[1; 100], false);
        p.insert(&mut a, base, 65535, base + 20_000, &[2; 100], false);
        assert_eq!(p.usage().used_bytes, 3 * CHUNK_BYTES as u64);
        // Lower data for a: its highest chunk (20_000) is pruned for it.
        let r = p.insert(&mut a, base, 65535, base + 5_000, &[3; 100], false);
        assert_eq!((r.kept, r.pruned), (100, 100));
        // Higher data than everything a holds finds no room and is dropped.
        let r = p.insert(&mut a, base, 65535, base + 30_000, &[4; 100], false);
        assert_eq!((r.kept, r.pruned), (0, 100));
        assert_eq!(p.queued_bytes(a), 200);
        // b could not get a chunk and has nothing to prune; it keeps its own.
        let r = p.insert(&mut b, base, 65535, base + 50, &[5; 10], false);
        assert_eq!((r.kept, r.pruned), (0, 10));
        p.release(&mut a);
        p.release(&mut b);
        assert_eq!(p.usage().used_bytes, 0);
        assert_eq!(p.usage().queues, 0);
    }

    #[test]
    fn the_per_connection_share_bounds_one_queue() {
        let mut p = pool(8, 2 * CHUNK_BYTES as u32);
        let mut q = None;
        let base = SeqNumber(0);
        for i in 1..6u32 {
            p.insert(&mut q, base, 65535, base + i * 5_000, &[1; 10], false);
        }
        assert_eq!(p.queued_chunks(q), 2);
        assert_eq!(p.queued_bytes(q), 20, "the two lowest runs stay");
        let mut nxt = base + 5_000;
        assert_eq!(drain(&mut p, &mut q, &mut nxt), vec![1; 10]);
    }

    #[test]
    fn hostile_numbers_never_panic_and_never_leak() {
        let mut p = pool(8, 65536);
        let mut q = None;
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let buf = vec![7u8; 9000];
        let mut nxt = SeqNumber(next() as u32);
        for _ in 0..20_000 {
            let r = next();
            let seq = match r % 3 {
                0 => SeqNumber(r as u32 >> 3),
                _ => nxt
                    .wrapping_add((r >> 8) as u32 % 70_000)
                    .wrapping_sub(2_000),
            };
            let len = (r >> 40) as usize % buf.len();
            let wnd = (r >> 20) as u32 % 70_000;
            p.insert(&mut q, nxt, wnd, seq, &buf[..len], r & 1 == 0);
            if r % 7 == 0 {
                nxt = nxt.wrapping_add((r >> 32) as u32 % 3_000);
                drain(&mut p, &mut q, &mut nxt);
                if p.fin(q) == Some(nxt) {
                    p.take_fin(&mut q);
                }
            }
            let u = p.usage();
            assert_eq!(u.queues, u64::from(q.is_some()));
            assert_eq!(
                u.used_bytes,
                u64::from(p.queued_chunks(q)) * CHUNK_BYTES as u64
            );
            assert_eq!(u.held_bytes, u64::from(p.queued_bytes(q)));
            if r % 101 == 0 {
                p.release(&mut q);
            }
        }
        p.release(&mut q);
        assert_eq!(p.usage().used_bytes, 0);
    }
}
