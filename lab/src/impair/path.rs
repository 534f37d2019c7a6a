//! One direction of the impairment stage: the decisions, with no I/O.
//!
//! A [`Path`] takes frames in ([`Path::handle_frame`]) and gives them back
//! when they are due ([`Path::poll_frame`]); the caller supplies the time,
//! so the whole thing runs on a virtual clock in tests. It owns the frames
//! in flight, its seeded random stream and its [`Counters`]; it never
//! touches a socket or the OS clock.
//!
//! Per frame, in this order: loss drops it; dup queues a second copy right
//! behind it; delay gives it a release time of `delay ± jitter` (uniform),
//! never earlier than the frame queued before it, so jitter alone keeps
//! the order; reorder holds it back at its release time until `gap` later
//! frames have gone out (or [`REORDER_HOLD_LIMIT`] has passed, when the
//! path goes quiet). Every arriving frame draws the same four numbers from
//! the stream, so with the same seed the n-th frame of a direction always
//! meets the same fate, whatever the timing.

use std::collections::VecDeque;
use std::time::Duration;

use chacha20::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::spec::Effects;

/// The longest a frame held back for reordering waits for later frames.
pub const REORDER_HOLD_LIMIT: Duration = Duration::from_millis(20);
/// Frames waiting in one direction at most; more are dropped as overflow.
pub const MAX_PENDING: usize = 16_384;

/// What one direction did, as the stage reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Frames received from the sending side.
    #[serde(rename = "in")]
    pub frames_in: u64,
    /// Frames handed to the receiving side's socket.
    #[serde(rename = "out")]
    pub frames_out: u64,
    /// Frames dropped by `loss`.
    pub dropped: u64,
    /// Extra copies made by `dup`.
    pub duplicated: u64,
    /// Frames sent after at least one later frame overtook them.
    pub reordered: u64,
    /// Frames released later than they arrived (`delay`).
    pub delayed: u64,
    /// Frames dropped because [`MAX_PENDING`] were waiting.
    pub overflow: u64,
    /// Frames the receiving side's socket refused (the stage's own loss).
    pub send_errors: u64,
    /// Frames larger than the receive buffer, dropped (GSO not bounded).
    pub oversize: u64,
    /// Frames the kernel dropped before the stage read them (its socket
    /// buffer was full): loss the spec did not ask for.
    pub kernel_drops: u64,
    /// Frames waiting now.
    pub pending: u64,
}

struct Queued {
    release: Duration,
    frame: Vec<u8>,
    hold: bool,
}

struct Held {
    frame: Vec<u8>,
    /// Later frames still to overtake it.
    left: u32,
    overtaken: u32,
    deadline: Duration,
}

/// One direction's frames in flight.
pub struct Path {
    effects: Effects,
    rng: ChaCha8Rng,
    queue: VecDeque<Queued>,
    held: Vec<Held>,
    ready: VecDeque<Vec<u8>>,
    /// Counters the path keeps (the stage adds `frames_out`, `send_errors`
    /// and `oversize`).
    pub counters: Counters,
}

impl Path {
    /// A path with `effects`; `stream` tells directions apart under one
    /// `seed`.
    pub fn new(effects: Effects, seed: u64, stream: u64) -> Path {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Path {
            effects,
            rng,
            queue: VecDeque::new(),
            held: Vec::new(),
            ready: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    fn chance(&mut self, ppm: u32) -> bool {
        // Always draw, so the stream stays aligned with the frame count.
        let draw = self.rng.next_u64() % 1_000_000;
        draw < u64::from(ppm)
    }

    fn pending(&self) -> usize {
        self.queue.len() + self.held.len() + self.ready.len()
    }

    fn sync_pending(&mut self) {
        self.counters.pending = self.pending() as u64;
    }

    /// A frame arrived at `now`.
    pub fn handle_frame(&mut self, now: Duration, frame: Vec<u8>) {
        self.counters.frames_in += 1;
        let e = self.effects;
        let lose = self.chance(e.loss_ppm);
        let dup = self.chance(e.dup_ppm);
        let hold = self.chance(e.reorder_ppm);
        let jitter_draw = self.rng.next_u64();
        if lose {
            self.counters.dropped += 1;
            return;
        }
        let copies = if dup { 2 } else { 1 };
        if self.pending() + copies > MAX_PENDING {
            self.counters.overflow += copies as u64;
            return;
        }
        let mut release = now + e.delay;
        let span = e.jitter.as_nanos() as u64;
        if span != 0 {
            // Uniform in [delay - jitter, delay + jitter], never before now.
            let offset = jitter_draw % (2 * span + 1);
            release = (release + Duration::from_nanos(offset))
                .saturating_sub(e.jitter)
                .max(now);
        }
        if let Some(last) = self.queue.back() {
            release = release.max(last.release);
        }
        if release > now {
            self.counters.delayed += copies as u64;
        }
        let copy = dup.then(|| frame.clone());
        self.queue.push_back(Queued {
            release,
            frame,
            hold,
        });
        if let Some(frame) = copy {
            // Right behind the original (which may still be held back).
            self.counters.duplicated += 1;
            self.queue.push_back(Queued {
                release,
                frame,
                hold: false,
            });
        }
        self.sync_pending();
    }

    fn release_held(&mut self, h: Held) -> Vec<u8> {
        if h.overtaken > 0 {
            self.counters.reordered += 1;
        }
        h.frame
    }

    /// The next frame due at `now`, if any; call until `None`.
    #[must_use]
    pub fn poll_frame(&mut self, now: Duration) -> Option<Vec<u8>> {
        let out = self.next_due(now);
        self.sync_pending();
        out
    }

    fn next_due(&mut self, now: Duration) -> Option<Vec<u8>> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Some(f);
            }
            if let Some(i) = self.held.iter().position(|h| h.deadline <= now) {
                let h = self.held.remove(i);
                return Some(self.release_held(h));
            }
            if self.queue.front().is_none_or(|q| q.release > now) {
                return None;
            }
            let q = self.queue.pop_front()?;
            if q.hold {
                self.held.push(Held {
                    frame: q.frame,
                    left: self.effects.reorder_gap.max(1),
                    overtaken: 0,
                    deadline: now + REORDER_HOLD_LIMIT,
                });
                continue;
            }
            // This frame overtakes every held one; those whose gap is
            // reached go out right behind it, oldest first.
            let mut i = 0;
            while i < self.held.len() {
                let h = &mut self.held[i];
                h.overtaken += 1;
                h.left -= 1;
                if h.left == 0 {
                    let h = self.held.remove(i);
                    let f = self.release_held(h);
                    self.ready.push_back(f);
                } else {
                    i += 1;
                }
            }
            return Some(q.frame);
        }
    }

    /// When [`Path::poll_frame`] will next have something, if ever.
    #[must_use]
    pub fn poll_deadline(&self) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let queued = self.queue.front().map(|q| q.release);
        let held = self.held.iter().map(|h| h.deadline).min();
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(spec: &str) -> Effects {
        spec.parse::<super::super::spec::Spec>().unwrap().to_dut
    }

    /// Feeds `n` numbered frames, one every `every`, and drains the path
    /// on the same virtual clock; returns the sequence numbers that came
    /// out, in order, and the counters.
    fn run(spec: &str, seed: u64, n: u32, every: Duration) -> (Vec<u32>, Counters) {
        let mut p = Path::new(effects(spec), seed, 0);
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        let drain = |p: &mut Path, now: Duration, out: &mut Vec<u32>| {
            while let Some(f) = p.poll_frame(now) {
                p.counters.frames_out += 1;
                out.push(u32::from_be_bytes(f[..4].try_into().unwrap()));
            }
        };
        for i in 0..n {
            p.handle_frame(now, i.to_be_bytes().to_vec());
            drain(&mut p, now, &mut out);
            now += every;
        }
        // The tail: step to each deadline until nothing is left (bounded).
        for _ in 0..(4 * n as usize + 16) {
            let Some(d) = p.poll_deadline() else { break };
            now = now.max(d);
            drain(&mut p, now, &mut out);
        }
        assert_eq!(p.poll_deadline(), None, "frames left in the path");
        (out, p.counters)
    }

    fn conserved(c: &Counters) {
        assert_eq!(c.pending, 0);
        assert_eq!(
            c.frames_in + c.duplicated,
            c.frames_out + c.dropped + c.overflow,
            "{c:?}"
        );
    }

    #[test]
    fn test_none_passes_everything_in_order_at_once() {
        let mut p = Path::new(effects("none"), 1, 0);
        for i in 0..100u32 {
            p.handle_frame(Duration::from_micros(u64::from(i)), vec![i as u8]);
            assert_eq!(
                p.poll_frame(Duration::from_micros(u64::from(i))),
                Some(vec![i as u8])
            );
            assert_eq!(p.poll_frame(Duration::from_micros(u64::from(i))), None);
        }
        assert_eq!(p.counters.delayed, 0);
        assert_eq!(p.poll_deadline(), None);
    }

    #[test]
    fn test_same_seed_same_fate() {
        let spec = "loss 3% reorder 5% 2 dup 2% delay 1ms 500us";
        let us = Duration::from_micros(100);
        let a = run(spec, 42, 5_000, us);
        assert_eq!(a, run(spec, 42, 5_000, us));
        // Timing does not change which frames are lost or copied.
        let b = run(spec, 42, 5_000, us * 3);
        assert_eq!(a.1.dropped, b.1.dropped);
        assert_eq!(a.1.duplicated, b.1.duplicated);
        assert_ne!(a.0, run(spec, 43, 5_000, us).0);
    }

    /// Within five standard deviations of the expected count.
    fn near(got: u64, n: u64, ppm: u64) {
        let p = ppm as f64 / 1e6;
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (got as f64 - mean).abs() <= 5.0 * sd,
            "{got} not within 5 sd ({sd:.1}) of {mean:.0}"
        );
    }

    /// For each frame sent, how many frames with a higher number went
    /// out before it.
    fn overtaken(out: &[u32]) -> Vec<usize> {
        (0..out.len())
            .map(|i| out[..i].iter().filter(|&&x| x > out[i]).count())
            .collect()
    }

    #[test]
    fn test_rates_within_tolerance() {
        let n = 100_000;
        for seed in [1, 2, 3] {
            let (_, c) = run("loss 1% dup 2%", seed, n, Duration::from_micros(10));
            near(c.dropped, u64::from(n), 10_000);
            // A lost frame is not also copied.
            near(c.duplicated, u64::from(n), 19_800);
            conserved(&c);
            let (out, c) = run("reorder 5%", seed, n, Duration::from_micros(10));
            near(c.reordered, u64::from(n), 50_000);
            conserved(&c);
            // Frames sent after a higher-numbered one: the reordered ones.
            let mut max = 0;
            let late = out
                .iter()
                .filter(|&&x| {
                    max = max.max(x);
                    x < max
                })
                .count();
            assert_eq!(late as u64, c.reordered);
        }
    }

    #[test]
    fn test_loss_all_and_dup_all() {
        let (out, c) = run("loss 100%", 7, 1_000, Duration::from_micros(10));
        assert!(out.is_empty());
        assert_eq!(c.dropped, 1_000);
        let (out, c) = run("dup 100%", 7, 1_000, Duration::from_micros(10));
        assert_eq!(out.len(), 2_000);
        assert!(
            out.chunks(2)
                .enumerate()
                .all(|(i, w)| w == [i as u32, i as u32])
        );
        conserved(&c);
    }

    #[test]
    fn test_delay_with_jitter_keeps_order_and_bounds() {
        let delay = Duration::from_millis(10);
        let jitter = Duration::from_millis(5);
        let mut p = Path::new(effects("delay 10ms 5ms"), 9, 0);
        let mut released = Vec::new();
        let step = Duration::from_micros(200);
        let mut now = Duration::ZERO;
        let mut earliest = Duration::MAX;
        for _ in 0..2_000 {
            p.handle_frame(now, (now.as_nanos() as u64).to_be_bytes().to_vec());
            now += step;
            while let Some(f) = p.poll_frame(now) {
                let sent = Duration::from_nanos(u64::from_be_bytes(f[..8].try_into().unwrap()));
                earliest = earliest.min(now - sent);
                released.push(sent);
            }
        }
        assert!(released.windows(2).all(|w| w[0] <= w[1]), "order kept");
        assert!(earliest >= delay - jitter, "{earliest:?}");
        // Some frame came out well before delay + jitter, so jitter is there.
        assert!(earliest < delay, "{earliest:?}");
        assert_eq!(p.counters.delayed, 2_000);
    }

    #[test]
    fn test_reorder_gap_and_quiet_path() {
        // Every frame held, gap 1: a held frame waits for the next one.
        let mut p = Path::new(effects("reorder 100%"), 5, 0);
        p.handle_frame(Duration::ZERO, vec![1]);
        assert_eq!(p.poll_frame(Duration::ZERO), None);
        // The path is quiet: the hold limit lets it out, not reordered.
        assert_eq!(p.poll_deadline(), Some(REORDER_HOLD_LIMIT));
        assert_eq!(p.poll_frame(REORDER_HOLD_LIMIT), Some(vec![1]));
        assert_eq!(p.counters.reordered, 0);
        // Gap 3 on a busy path: a held frame is overtaken by at least 3.
        let (out, c) = run("reorder 10% 3", 5, 3_000, Duration::from_micros(10));
        let over = overtaken(&out);
        assert!(over.iter().all(|&n| n == 0 || n >= 3), "{over:?}");
        assert_eq!(over.iter().filter(|&&n| n > 0).count() as u64, c.reordered);
        assert!(c.reordered > 200, "{c:?}");
        conserved(&c);
    }

    #[test]
    fn test_counters_json_names() {
        let c = Counters {
            frames_in: 3,
            frames_out: 2,
            ..Counters::default()
        };
        let v = serde_json::to_value(c).unwrap();
        for key in [
            "in",
            "out",
            "dropped",
            "duplicated",
            "reordered",
            "delayed",
            "overflow",
            "send_errors",
            "oversize",
            "kernel_drops",
            "pending",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!((v["in"].as_u64(), v["out"].as_u64()), (Some(3), Some(2)));
        assert_eq!(serde_json::from_value::<Counters>(v).unwrap(), c);
    }

    #[test]
    fn test_overflow_is_counted() {
        let mut p = Path::new(effects("delay 1s"), 1, 0);
        for _ in 0..MAX_PENDING + 10 {
            p.handle_frame(Duration::ZERO, vec![0]);
        }
        assert_eq!(p.counters.overflow, 10);
        assert_eq!(p.counters.pending, MAX_PENDING as u64);
    }
}
