//! RST pacing: the per-core token bucket and the queue of RSTs waiting for
//! a token (`close.max_rst_per_sec`, each core's share of it).
//!
//! It owns the arithmetic (integer and exact: a token is [`NS_PER_S`]
//! units of credit and the bucket gains `rate` units per nanosecond, so no
//! rounding drifts the rate over a long teardown), the FIFO of frames that
//! wait, and the close completions that wait with them: a close whose RST
//! is paced reports its outcome when that RST leaves the queue, not when
//! the close was decided. The engine decides which RSTs come here (the
//! ones it originates, never answers to a peer's segment), which
//! completion waits with which RST, when to look (each `poll_transmit`)
//! and what to count. Nothing here reads a clock: times are nanoseconds
//! since the engine's epoch, passed in.

use std::collections::VecDeque;

use super::CtlFrame;
use crate::shared::Completion;

/// Nanoseconds per second: the credit one token is worth.
const NS_PER_S: u64 = 1_000_000_000;

/// How much sending the bucket holds when full, in milliseconds of its
/// rate (at least one token). The bucket lets a core that woke late catch
/// up on the tokens that accrued meanwhile (a sleeping core wakes on a
/// millisecond timer and may be late by a scheduling quantum), so the mean
/// rate holds; the price is that a core idle for this long may send this
/// many RSTs back to back, which is 1% of a second's worth.
pub(crate) const BURST_MS: u64 = 10;

/// One RST waiting for a token.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    frame: CtlFrame,
    /// The engine millisecond it was queued at (for the wait figures).
    since_ms: u64,
    /// A completion waits for this frame: the next one of `held`.
    holds: bool,
}

/// A frame leaving the queue ([`RstPacer::pop`]).
#[derive(Debug)]
pub(crate) struct Departure {
    /// The RST.
    pub(crate) frame: CtlFrame,
    /// How long it waited, in milliseconds.
    pub(crate) waited_ms: u64,
    /// The close completion that waited for it, to be posted now.
    pub(crate) completion: Option<Completion>,
}

/// A token bucket and the RSTs that wait on it, in order.
#[derive(Debug)]
pub(crate) struct RstPacer {
    /// Credit in token-nanoseconds ([`NS_PER_S`] per token).
    credit: u64,
    /// When `credit` was last brought up to date (ns since the epoch).
    at_ns: u64,
    /// Frames waiting, oldest first.
    queue: VecDeque<Waiting>,
    /// The completions of the frames with `holds`, in the same order (one
    /// each). Not reserved: it grows only with paced closes that answer a
    /// request, and a completion queue grows with them anyway.
    held: VecDeque<Completion>,
    /// The most frames `queue` takes (one per connection record).
    bound: usize,
}

/// The bucket's depth in credit units at `rate` tokens per second.
fn depth(rate: u32) -> u64 {
    let tokens = (u64::from(rate) * BURST_MS / 1000).max(1);
    tokens * NS_PER_S
}

impl RstPacer {
    /// An empty queue for at most `bound` waiting frames and a full bucket.
    /// The queue's memory is reserved now when `rate` is not 0 (see
    /// [`RstPacer::set_rate`]).
    pub(crate) fn new(rate: u32, bound: usize) -> RstPacer {
        let mut p = RstPacer {
            credit: depth(rate),
            at_ns: 0,
            queue: VecDeque::new(),
            held: VecDeque::new(),
            bound,
        };
        p.set_rate(rate);
        p
    }

    /// The rate changed (a reload): reserves the queue once pacing is on,
    /// so no RST waits on an allocation. The credit is clamped to the new
    /// depth at the next refill.
    pub(crate) fn set_rate(&mut self, rate: u32) {
        if rate != 0 {
            self.queue
                .reserve(self.bound.saturating_sub(self.queue.len()));
        }
    }

    /// Frames waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether a new frame must queue behind others (pacing on, or frames
    /// still waiting from before a reload turned it off: order is kept).
    pub(crate) fn engaged(&self, rate: u32) -> bool {
        rate != 0 || !self.queue.is_empty()
    }

    /// Whether the queue has room for one more frame.
    pub(crate) fn has_room(&self) -> bool {
        self.queue.len() < self.bound
    }

    /// Queues a frame at the engine millisecond `now_ms`, with the
    /// completion that must not be posted before it leaves, if any. The
    /// caller checks [`RstPacer::has_room`] first.
    pub(crate) fn push(&mut self, frame: CtlFrame, now_ms: u64, completion: Option<Completion>) {
        let holds = completion.is_some();
        self.held.extend(completion);
        self.queue.push_back(Waiting {
            frame,
            since_ms: now_ms,
            holds,
        });
    }

    /// Completions waiting for their RST.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Brings the credit up to `now_ns` at `rate` tokens per second.
    fn refill(&mut self, now_ns: u64, rate: u32) {
        let elapsed = now_ns.saturating_sub(self.at_ns);
        self.at_ns = self.at_ns.max(now_ns);
        let gained = u128::from(elapsed) * u128::from(rate);
        let full = u128::from(depth(rate));
        self.credit = (u128::from(self.credit) + gained).min(full) as u64;
    }

    /// The oldest frame, if a token is available at `now_ns` (spending
    /// it), with the milliseconds it waited and the completion that waited
    /// for it. With `rate` 0 (unpaced) every frame leaves at once.
    pub(crate) fn pop(&mut self, now_ns: u64, now_ms: u64, rate: u32) -> Option<Departure> {
        if self.queue.is_empty() {
            return None;
        }
        if rate != 0 {
            self.refill(now_ns, rate);
            if self.credit < NS_PER_S {
                return None;
            }
            self.credit -= NS_PER_S;
        }
        let w = self.queue.pop_front()?;
        let completion = if w.holds { self.held.pop_front() } else { None };
        Some(Departure {
            frame: w.frame,
            waited_ms: now_ms.saturating_sub(w.since_ms),
            completion,
        })
    }

    /// When the next waiting frame may leave (ns since the epoch), `None`
    /// with nothing waiting. A time at or before the last `pop` means
    /// "now". The answer rounds up: at that time a whole token has accrued.
    pub(crate) fn next_departure_ns(&self, rate: u32) -> Option<u64> {
        if self.queue.is_empty() {
            return None;
        }
        if rate == 0 || self.credit >= NS_PER_S {
            return Some(self.at_ns);
        }
        let missing = NS_PER_S - self.credit;
        Some(self.at_ns + missing.div_ceil(u64::from(rate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ControlSegment, SeqNumber, TcpFlags};
    use std::net::IpAddr;

    fn frame(n: u32) -> CtlFrame {
        CtlFrame::Tcp {
            local: IpAddr::from([198, 18, 0, 1]),
            seg: ControlSegment {
                remote_ip: IpAddr::from([198, 18, 0, 2]),
                local_port: 80,
                remote_port: 1024,
                seq: SeqNumber(n),
                ack: SeqNumber(0),
                flags: TcpFlags::RST,
                window: 0,
            },
            clock: crate::shared::RstClock::UNTIMED,
        }
    }

    fn seq(f: CtlFrame) -> u32 {
        match f {
            CtlFrame::Tcp { seg, .. } => seg.seq.0,
            _ => unreachable!("only TCP frames are queued here"),
        }
    }

    /// Drains `n` frames, stepping to each reported departure time, and
    /// returns the departure times.
    fn drain(p: &mut RstPacer, rate: u32) -> Vec<u64> {
        let mut out = Vec::new();
        let mut expect = 0;
        while let Some(at) = p.next_departure_ns(rate) {
            let d = p.pop(at, at / 1_000_000, rate).expect("due when reported");
            assert_eq!(seq(d.frame), expect, "in order");
            expect += 1;
            out.push(at);
        }
        out
    }

    #[test]
    fn the_rate_holds_after_the_burst_and_departures_are_exact() {
        for rate in [1u32, 7, 1000, 3333, 250_000] {
            let n = 2 * depth(rate) / NS_PER_S + 50;
            let mut p = RstPacer::new(rate, n as usize);
            for i in 0..n {
                p.push(frame(i as u32), 0, None);
            }
            let times = drain(&mut p, rate);
            assert_eq!(times.len() as u64, n);
            let burst = (depth(rate) / NS_PER_S) as usize;
            assert!(times[..burst].iter().all(|&t| t == 0), "a full bucket");
            // After the burst, k more frames take k / rate seconds, never
            // less (rounding is always up).
            let k = (times.len() - burst) as u64;
            let span = times[times.len() - 1];
            let exact = k * NS_PER_S / u64::from(rate);
            assert!(span >= exact, "rate {rate}: {span} < {exact}");
            assert!(span <= exact + k, "rate {rate}: {span} drifts from {exact}");
        }
    }

    #[test]
    fn nothing_waits_when_unpaced_and_a_late_core_catches_up() {
        let mut p = RstPacer::new(0, 8);
        for i in 0..3 {
            p.push(frame(i), 5, None);
        }
        assert_eq!(p.next_departure_ns(0), Some(0));
        assert_eq!(
            p.pop(9_000_000, 9, 0).map(|d| (seq(d.frame), d.waited_ms)),
            Some((0, 4))
        );
        // Pacing at 1000/s with the bucket drained: a core that looks again
        // 3 ms late finds the three tokens that accrued meanwhile.
        let mut p = RstPacer::new(1000, 64);
        for i in 0..40 {
            p.push(frame(i), 0, None);
        }
        let burst = depth(1000) / NS_PER_S;
        for _ in 0..burst {
            assert!(p.pop(0, 0, 1000).is_some());
        }
        assert!(p.pop(0, 0, 1000).is_none(), "the bucket is empty");
        assert_eq!(p.next_departure_ns(1000), Some(1_000_000));
        let late = 3_000_000;
        let sent = std::iter::from_fn(|| p.pop(late, 3, 1000)).count();
        assert_eq!(sent, 3);
        // An idle core's bucket fills only to its depth.
        let sent = std::iter::from_fn(|| p.pop(late + 60 * NS_PER_S, 60_003, 1000)).count();
        assert_eq!(sent as u64, burst);
    }

    #[test]
    fn a_held_completion_leaves_with_its_own_frame_only() {
        use crate::shared::{ClientId, Detail, Outcome};
        use crate::table::Handle;
        let done = |ud: u64| Completion {
            client: ClientId(1),
            user_data: ud,
            handle: Handle::from_raw(ud),
            result: lingerd_abi::Errno::Ok,
            detail: Detail::Closed(Outcome::Aborted),
            is_event: false,
        };
        let mut p = RstPacer::new(1, 8);
        p.push(frame(0), 0, Some(done(10)));
        p.push(frame(1), 0, None);
        p.push(frame(2), 0, Some(done(12)));
        assert_eq!(p.held(), 2);
        let d = p.pop(0, 0, 1).expect("the bucket's one token");
        assert_eq!(d.completion.map(|c| c.user_data), Some(10));
        assert!(p.pop(0, 0, 1).is_none(), "no token, nothing released");
        assert_eq!(p.held(), 1);
        let d = p.pop(NS_PER_S, 1000, 1).expect("a second later");
        assert!(d.completion.is_none(), "frame 1 held nothing");
        let d = p.pop(2 * NS_PER_S, 2000, 1).expect("two seconds later");
        assert_eq!(
            (seq(d.frame), d.completion.map(|c| c.user_data)),
            (2, Some(12))
        );
        assert_eq!(p.held(), 0);
    }
}
