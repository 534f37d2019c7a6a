//! One core's end of a capture ([`CaptureTap`]) and the reader's
//! ([`CaptureReader`]), joined by a bounded pool of batch buffers.
//!
//! The reader allocates every buffer when the capture is made; from then on
//! they only move: free buffers wait in one lock-free queue, filled ones in
//! another. The core fills one buffer at a time with the frames its filter
//! accepts ([`super::batch`] records) and hands it over when it is full,
//! when it has waited [`FLUSH_AFTER`], or when the capture ends. When no
//! free buffer is left (the reader is slower than the frames) the copy is
//! dropped and counted, never the frame, and the core never waits or
//! allocates. The reader sends each filled buffer on and gives it back.
//!
//! It owns the pool, the per-core counts and the clock of the records (the
//! loop iteration's `Instant`, turned into Unix nanoseconds from the pair
//! taken when the capture was made). It may not look inside frames beyond
//! running the filter, nor touch the port: the loop offers it the frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::batch::{self, Direction, RECORD_HEADER_LEN};
use super::bpf::Program;

/// The bytes of one batch buffer: one ctl message (well under the
/// `lingerd ctl` receive buffer of 128 KiB).
pub const BATCH_BYTES: usize = 64 * 1024;
/// The longest snap length: a record always fits an empty batch.
pub const MAX_SNAPLEN: u32 = 16 * 1024;
/// The most batch buffers one core's capture may have (1 GiB).
pub const MAX_BATCHES: usize = 16 * 1024;
/// A partly filled batch is handed over once it is this old, so that a
/// slow trickle of frames still reaches the file promptly.
pub const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// What a capture on one core takes.
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// The NIC queue, written in every batch.
    pub queue: u32,
    /// Frames the filter accepts are copied (`None`: every frame).
    pub filter: Option<Program>,
    /// Bytes kept of each frame, 1..=[`MAX_SNAPLEN`] (clamped).
    pub snaplen: u32,
    /// Batch buffers, 2..=[`MAX_BATCHES`] (clamped): the backlog the reader
    /// may fall behind by before copies are dropped.
    pub batches: usize,
    /// An instant and the Unix time (ns) it was, for the records' times.
    pub clock: (Instant, u64),
}

/// The counts of one core's capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames offered (received and sent).
    pub seen: u64,
    /// Frames the filter accepted.
    pub matched: u64,
    /// Accepted frames whose copy was dropped (no free buffer).
    pub dropped: u64,
}

/// What both ends share.
#[derive(Debug)]
struct Shared {
    free: ArrayQueue<Vec<u8>>,
    full: ArrayQueue<Vec<u8>>,
    seen: AtomicU64,
    matched: AtomicU64,
    dropped: AtomicU64,
    /// The tap finished: its last batch is in `full`, its counts final.
    finished: AtomicBool,
}

/// The core's end: offered every frame while installed in the loop.
#[derive(Debug)]
pub struct CaptureTap {
    shared: Arc<Shared>,
    queue: u32,
    filter: Option<Program>,
    snaplen: usize,
    clock: (Instant, u64),
    /// The current burst's time (see [`CaptureTap::set_clock`]) and its
    /// Unix time.
    now: Instant,
    now_ns: u64,
    /// The batch being filled, when the core has one.
    current: Option<Vec<u8>>,
    records: u32,
    started: Instant,
    dropped_since: u32,
    stats: TapStats,
}

/// The reader's end.
#[derive(Debug)]
pub struct CaptureReader {
    shared: Arc<Shared>,
}

/// A capture for one core: the tap to install in its loop and the reader
/// that takes the batches. Allocates every buffer now.
pub fn capture(cfg: TapConfig) -> (CaptureTap, CaptureReader) {
    let batches = cfg.batches.clamp(2, MAX_BATCHES);
    let shared = Arc::new(Shared {
        free: ArrayQueue::new(batches),
        full: ArrayQueue::new(batches),
        seen: AtomicU64::new(0),
        matched: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        finished: AtomicBool::new(false),
    });
    for _ in 0..batches {
        // Written once here, so that the memory is mapped before a core
        // copies into it (no page fault on the core's path).
        let mut buf = vec![0u8; BATCH_BYTES];
        buf.fill(1);
        std::hint::black_box(&buf);
        buf.clear();
        // Room for exactly `batches`: cannot fail.
        let _ = shared.free.push(buf);
    }
    let now = cfg.clock.0;
    let tap = CaptureTap {
        shared: shared.clone(),
        queue: cfg.queue,
        filter: cfg.filter,
        snaplen: cfg.snaplen.clamp(1, MAX_SNAPLEN) as usize,
        clock: cfg.clock,
        now,
        now_ns: cfg.clock.1,
        current: None,
        records: 0,
        started: now,
        dropped_since: 0,
        stats: TapStats::default(),
    };
    (tap, CaptureReader { shared })
}

impl CaptureTap {
    /// Sets the time of the frames offered next (once per burst).
    #[inline]
    pub fn set_clock(&mut self, now: Instant) {
        let since = now.saturating_duration_since(self.clock.0);
        let ns = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        self.now = now;
        self.now_ns = self.clock.1.saturating_add(ns);
    }

    /// Offers one frame: copied into the current batch when the filter
    /// accepts it (and a buffer is free), else counted.
    pub fn offer(&mut self, direction: Direction, frame: &[u8]) {
        self.stats.seen += 1;
        let keep = match &self.filter {
            None => u32::MAX,
            Some(p) => p.run(frame),
        };
        if keep == 0 {
            return;
        }
        self.stats.matched += 1;
        let cap = frame.len().min(self.snaplen).min(keep as usize);
        let need = RECORD_HEADER_LEN + cap;
        let room = self
            .current
            .as_ref()
            .is_some_and(|b| b.capacity() - b.len() >= need);
        if !room {
            self.hand_over();
            match self.shared.free.pop() {
                Some(mut b) => {
                    batch::start(&mut b, self.queue);
                    self.current = Some(b);
                    self.started = self.now;
                }
                None => {
                    self.stats.dropped += 1;
                    self.dropped_since = self.dropped_since.saturating_add(1);
                    return;
                }
            }
        }
        let Some(b) = self.current.as_mut() else {
            return;
        };
        // `need` fits what is left of the capacity (checked above, and an
        // empty buffer of BATCH_BYTES holds any record of MAX_SNAPLEN).
        if b.capacity() - b.len() < need {
            self.stats.dropped += 1;
            self.dropped_since = self.dropped_since.saturating_add(1);
            return;
        }
        let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        batch::push(
            b,
            self.now_ns,
            wire_len,
            direction,
            self.dropped_since,
            frame.get(..cap).unwrap_or(frame),
        );
        self.dropped_since = 0;
        self.records += 1;
    }

    /// Once per loop iteration: hands over a batch that waited
    /// [`FLUSH_AFTER`], and publishes the counts.
    pub fn end_iteration(&mut self, now: Instant) {
        if self.records > 0 && now.saturating_duration_since(self.started) >= FLUSH_AFTER {
            self.hand_over();
        }
        self.publish();
    }

    /// The counts so far.
    pub fn stats(&self) -> TapStats {
        self.stats
    }

    /// Ends the capture on this core: hands over the last batch and the
    /// final counts. The reader sees [`CaptureReader::finished`] after.
    pub fn finish(mut self) {
        self.hand_over();
        self.publish();
        self.shared.finished.store(true, Ordering::Release);
    }

    fn publish(&self) {
        let s = &self.shared;
        s.seen.store(self.stats.seen, Ordering::Relaxed);
        s.matched.store(self.stats.matched, Ordering::Relaxed);
        s.dropped.store(self.stats.dropped, Ordering::Relaxed);
    }

    /// Hands the current batch to the reader (if it holds records; an empty
    /// one stays).
    fn hand_over(&mut self) {
        if self.records == 0 {
            return;
        }
        let Some(mut b) = self.current.take() else {
            return;
        };
        batch::set_count(&mut b, self.records);
        let n = self.records;
        self.records = 0;
        // `full` has room for every buffer there is: this cannot fail; if
        // it did, the copies are dropped and counted, and the buffer kept.
        if let Err(b) = self.shared.full.push(b) {
            self.stats.dropped += u64::from(n);
            let _ = self.shared.free.push(b);
        }
    }
}

impl Drop for CaptureTap {
    /// A tap dropped without [`CaptureTap::finish`] (its core stopped)
    /// still tells the reader it is done.
    fn drop(&mut self) {
        self.shared.finished.store(true, Ordering::Release);
    }
}

impl CaptureReader {
    /// The next filled batch, oldest first.
    pub fn next_batch(&self) -> Option<Vec<u8>> {
        self.shared.full.pop()
    }

    /// Gives a batch's buffer back to the core.
    pub fn recycle(&self, mut buf: Vec<u8>) {
        buf.clear();
        let _ = self.shared.free.push(buf);
    }

    /// Whether the tap finished (or its core dropped it): no batch will
    /// come after those waiting now.
    pub fn finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// The core's counts as last published (once per loop iteration, and
    /// final once [`CaptureReader::finished`]).
    pub fn stats(&self) -> TapStats {
        let s = &self.shared;
        TapStats {
            seen: s.seen.load(Ordering::Relaxed),
            matched: s.matched.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::Batch;
    use super::super::bpf::Insn;
    use super::*;

    fn cfg(batches: usize, filter: Option<Program>) -> TapConfig {
        TapConfig {
            queue: 2,
            filter,
            snaplen: 100,
            batches,
            clock: (Instant::now(), 1_700_000_000_000_000_000),
        }
    }

    fn drain(r: &CaptureReader) -> Vec<(u32, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        while let Some(b) = r.next_batch() {
            let batch = Batch::parse(&b).expect("a good batch");
            out.push((
                batch.queue,
                batch.records().map(|r| r.bytes.to_vec()).collect(),
            ));
            r.recycle(b);
        }
        out
    }

    #[test]
    fn frames_are_copied_in_order_snapped_and_timed() {
        let (mut tap, reader) = capture(cfg(4, None));
        let t0 = tap.clock.0;
        tap.set_clock(t0 + Duration::from_micros(5));
        tap.offer(Direction::Received, &[1u8; 60]);
        tap.offer(Direction::Sent, &[2u8; 300]);
        assert!(reader.next_batch().is_none(), "still filling");
        tap.end_iteration(t0 + Duration::from_millis(1));
        assert!(reader.next_batch().is_none(), "not old enough");
        tap.end_iteration(t0 + FLUSH_AFTER + Duration::from_micros(5));
        let b = reader.next_batch().expect("handed over when old");
        let batch = Batch::parse(&b).unwrap();
        let r: Vec<_> = batch.records().collect();
        assert_eq!(batch.queue, 2);
        assert_eq!(r[0].time_ns, 1_700_000_000_000_005_000);
        assert_eq!(
            (r[0].direction, r[0].bytes.len()),
            (Direction::Received, 60)
        );
        assert_eq!(
            (r[1].direction, r[1].wire_len, r[1].bytes.len()),
            (Direction::Sent, 300, 100)
        );
        reader.recycle(b);
        assert_eq!(
            reader.stats(),
            TapStats {
                seen: 2,
                matched: 2,
                dropped: 0
            }
        );
        tap.finish();
        assert!(reader.finished());
    }

    #[test]
    fn a_slow_reader_costs_copies_never_frames_and_the_drops_are_counted() {
        let (mut tap, reader) = capture(cfg(2, None));
        // 2 buffers of 64 KiB hold about 1,000 records of 120 bytes; offer
        // 5,000 with nobody reading.
        for i in 0..5_000u32 {
            tap.offer(Direction::Sent, &i.to_le_bytes().repeat(25));
        }
        let s = tap.stats();
        assert_eq!((s.seen, s.matched), (5_000, 5_000));
        assert!(s.dropped > 3_000 && s.dropped < 4_500, "{s:?}");
        tap.finish();
        let got = drain(&reader);
        let kept: usize = got.iter().map(|b| b.1.len()).sum();
        assert_eq!(
            kept as u64 + reader.stats().dropped,
            5_000,
            "each copy kept or counted"
        );
        // The first ones were kept, in order.
        let first: Vec<u32> = got
            .iter()
            .flat_map(|b| b.1.iter())
            .map(|f| u32::from_le_bytes(f[..4].try_into().unwrap()))
            .collect();
        assert_eq!(first, (0..kept as u32).collect::<Vec<_>>());
    }

    #[test]
    fn a_reader_that_keeps_up_gets_everything_and_drop_counts_mark_gaps() {
        let (mut tap, reader) = capture(cfg(2, None));
        let mut got = 0;
        for round in 0..20 {
            for _ in 0..2_000 {
                tap.offer(Direction::Received, &[round as u8; 100]);
            }
            tap.end_iteration(Instant::now() + FLUSH_AFTER * 2);
            for b in drain(&reader) {
                got += b.1.len();
            }
        }
        tap.finish();
        got += drain(&reader).iter().map(|b| b.1.len()).sum::<usize>();
        let s = reader.stats();
        assert_eq!(got as u64 + s.dropped, 40_000);
        assert!(s.dropped > 0, "2 buffers cannot hold 2,000 records");
    }

    #[test]
    fn the_filter_decides_and_its_answer_bounds_the_copy() {
        // ld len; ret a/2 when len > 10 else 0.
        let p = Program::new(&[
            Insn {
                code: 0x80,
                jt: 0,
                jf: 0,
                k: 0,
            },
            Insn {
                code: 0x25,
                jt: 0,
                jf: 2,
                k: 10,
            },
            Insn {
                code: 0x74,
                jt: 0,
                jf: 0,
                k: 1,
            },
            Insn {
                code: 0x16,
                jt: 0,
                jf: 0,
                k: 0,
            },
            Insn {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ])
        .unwrap();
        let (mut tap, reader) = capture(cfg(4, Some(p)));
        tap.offer(Direction::Received, &[0u8; 8]);
        tap.offer(Direction::Received, &[0u8; 40]);
        tap.finish();
        let got = drain(&reader);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), 1);
        assert_eq!(got[0].1[0].len(), 20, "the filter kept half");
        assert_eq!(
            reader.stats(),
            TapStats {
                seen: 2,
                matched: 1,
                dropped: 0
            }
        );
    }

    #[test]
    fn a_dropped_tap_still_says_finished() {
        let (tap, reader) = capture(cfg(2, None));
        assert!(!reader.finished());
        drop(tap);
        assert!(reader.finished());
    }
}
