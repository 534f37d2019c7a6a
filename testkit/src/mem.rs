//! The in-process port: a seeded, impaired frame pipe between two
//! [`Endpoint`]s, driven by a virtual clock.
//!
//! It owns two things. [`Link`], one direction of the pipe: latency,
//! loss, duplication, reordering, an optional bandwidth and drop-tail queue,
//! and a filter hook so a test can drop precisely the frame it means to.
//! [`Pair`], the quinn-style harness: two endpoints, a link each way, a
//! virtual clock that jumps from one event to the next, and a raw trace of
//! every frame that crossed (or failed to). Every random decision comes from
//! the crate's one PRNG, [`SplitMix64`], seeded per link. It may not parse
//! frames or read the OS clock: decoding belongs to test support code, and
//! the start instant is given by the caller (only differences between
//! instants matter).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

use lingerd_dataplane::port::Endpoint;

use crate::rng::SplitMix64;

/// The size of the transmit buffer a [`Pair`] hands to
/// [`Endpoint::transmit`]: a standard Ethernet frame fits with room to spare,
/// jumbo frames do not.
pub const MAX_FRAME_LEN: usize = 4096;

/// What a link filter decides for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the frame go on to the random impairments.
    Pass,
    /// Drop the frame (recorded as [`DropReason::Filter`]).
    Drop,
}

/// A test's hook on a link: sees every frame before the impairments.
pub type Filter = Box<dyn FnMut(&[u8]) -> Verdict>;

/// Why a link did not carry a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The random loss draw.
    Loss,
    /// The test's filter said [`Verdict::Drop`].
    Filter,
    /// The link already held [`LinkConfig::queue_limit`] frames (drop-tail).
    QueueFull,
}

/// The impairments of one direction of a pipe. Probabilities are in
/// `[0, 1]`. Build with struct update syntax:
/// `LinkConfig { loss: 0.1, seed: 7, ..LinkConfig::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way latency added to every frame.
    pub latency: Duration,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a carried frame arrives twice.
    pub duplicate: f64,
    /// Probability that a copy is held back by an extra delay, uniform in
    /// `(0, reorder_delay]`, so later frames overtake it.
    pub reorder: f64,
    /// The largest extra delay of a held-back frame.
    pub reorder_delay: Duration,
    /// Bandwidth in bits per second: frames are serialised one after the
    /// other (`len * 8 / rate` each) before the latency. `None`: infinite.
    pub rate_bps: Option<u64>,
    /// The most frames the link holds at once (in flight, not yet
    /// delivered); one more is dropped ([`DropReason::QueueFull`]). `None`:
    /// unbounded.
    pub queue_limit: Option<usize>,
    /// Seed of the link's [`SplitMix64`].
    pub seed: u64,
}

impl Default for LinkConfig {
    /// A perfect 1 ms wire: no loss, no duplicates, no reordering, no
    /// bandwidth limit.
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(1),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            rate_bps: None,
            queue_limit: None,
            seed: 0x6c69_6e67_6572_6421,
        }
    }
}

/// Counters of one link since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames offered to [`Link::send`].
    pub offered: u64,
    /// Copies handed out by [`Link::pop_due`] (duplicates included).
    pub delivered: u64,
    /// Frames lost to the random draw.
    pub lost: u64,
    /// Frames dropped by the filter.
    pub filtered: u64,
    /// Frames dropped because the queue was full.
    pub queue_dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies held back by a reordering delay.
    pub reordered: u64,
}

/// What [`Link::send`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The frame is in flight, as one copy or two (duplicated).
    Queued {
        /// 1, or 2 when duplicated.
        copies: u8,
    },
    /// The frame will never arrive.
    Dropped(DropReason),
}

/// A frame coming out of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The frame's bytes; give the buffer back with [`Link::recycle`].
    pub bytes: Vec<u8>,
    /// When it entered the link.
    pub sent_at: Instant,
    /// When it was due at the far end.
    pub due: Instant,
    /// This is the extra copy of a duplicated frame.
    pub duplicate: bool,
}

/// A copy in flight, ordered by (due, entry order) so that frames due at the
/// same instant leave in the order they entered.
struct InFlight {
    due: Instant,
    order: u64,
    sent_at: Instant,
    duplicate: bool,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// Spare buffers kept for reuse; beyond this they are freed.
const POOL_LIMIT: usize = 256;

/// One direction of a frame pipe with seeded impairments. Each frame gets
/// its delivery instant when it enters; nothing about it is random after
/// that. A link keeps no clock: every call takes `now`.
///
/// Per frame, in this order: the filter; the queue limit; the bandwidth
/// (serialisation); one loss draw; one duplicate draw; per copy one reorder
/// draw, plus one delay draw when held back.
pub struct Link {
    config: LinkConfig,
    rng: SplitMix64,
    filter: Option<Filter>,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    busy_until: Option<Instant>,
    pool: Vec<Vec<u8>>,
    stats: LinkStats,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("config", &self.config)
            .field("filter", &self.filter.is_some())
            .field("in_flight", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// An empty link with these impairments.
    pub fn new(config: LinkConfig) -> Self {
        Self {
            rng: SplitMix64::new(config.seed),
            config,
            filter: None,
            queue: BinaryHeap::new(),
            order: 0,
            busy_until: None,
            pool: Vec::new(),
            stats: LinkStats::default(),
        }
    }

    /// The impairments in force.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Changes the impairments for frames sent from now on (frames in flight
    /// keep their delivery instants). Changing `seed` here does not reseed:
    /// use [`reseed`](Self::reseed).
    pub fn config_mut(&mut self) -> &mut LinkConfig {
        &mut self.config
    }

    /// Restarts the PRNG from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.config.seed = seed;
        self.rng = SplitMix64::new(seed);
    }

    /// Installs a filter that sees every frame offered from now on, e.g.
    /// "drop the 3rd segment" with a counter captured by the closure.
    pub fn set_filter(&mut self, filter: impl FnMut(&[u8]) -> Verdict + 'static) {
        self.filter = Some(Box::new(filter));
    }

    /// Removes the filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Counters since the link was made.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Copies in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// When the next copy is due, if any.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.due)
    }

    /// Offers a frame to the link at `now`.
    pub fn send(&mut self, now: Instant, frame: &[u8]) -> Admission {
        self.stats.offered += 1;
        if let Some(filter) = self.filter.as_mut()
            && filter(frame) == Verdict::Drop
        {
            self.stats.filtered += 1;
            return Admission::Dropped(DropReason::Filter);
        }
        if self
            .config
            .queue_limit
            .is_some_and(|limit| self.queue.len() >= limit)
        {
            self.stats.queue_dropped += 1;
            return Admission::Dropped(DropReason::QueueFull);
        }
        let departs = match self.config.rate_bps {
            Some(rate) if rate > 0 => {
                let bits = frame.len() as u128 * 8;
                let nanos = (bits * 1_000_000_000).div_ceil(u128::from(rate));
                let start = self.busy_until.map_or(now, |busy| busy.max(now));
                let done = start + Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64);
                self.busy_until = Some(done);
                done
            }
            _ => now,
        };
        if self.rng.chance(self.config.loss) {
            self.stats.lost += 1;
            return Admission::Dropped(DropReason::Loss);
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            let mut due = departs + self.config.latency;
            if self.rng.chance(self.config.reorder) {
                let max = self
                    .config
                    .reorder_delay
                    .as_nanos()
                    .min(u128::from(u64::MAX)) as u64;
                due += Duration::from_nanos(1 + self.rng.below(max.max(1)));
                self.stats.reordered += 1;
            }
            let mut bytes = self.pool.pop().unwrap_or_default();
            bytes.clear();
            bytes.extend_from_slice(frame);
            self.queue.push(Reverse(InFlight {
                due,
                order: self.order,
                sent_at: now,
                duplicate: copy == 1,
                bytes,
            }));
            self.order += 1;
        }
        Admission::Queued { copies }
    }

    /// Takes the earliest copy due at or before `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Delivery> {
        if self.next_delivery()? > now {
            return None;
        }
        let Reverse(f) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(Delivery {
            bytes: f.bytes,
            sent_at: f.sent_at,
            due: f.due,
            duplicate: f.duplicate,
        })
    }

    /// Gives a delivered buffer back for reuse.
    pub fn recycle(&mut self, bytes: Vec<u8>) {
        if self.pool.len() < POOL_LIMIT {
            self.pool.push(bytes);
        }
    }

    /// Drops every frame in flight without delivering it (a cable pulled).
    /// They are not counted as lost.
    pub fn flush(&mut self) {
        while let Some(Reverse(f)) = self.queue.pop() {
            self.recycle(f.bytes);
        }
    }
}

/// Which way a frame crossed a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From endpoint `a` to endpoint `b`.
    AToB,
    /// From endpoint `b` to endpoint `a`.
    BToA,
}

/// What became of a traced frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Handed to the far endpoint at [`TraceEntry::at`].
    Delivered,
    /// Never arrived; recorded when it was sent.
    Dropped(DropReason),
}

/// One frame event of a [`Pair`]'s trace. Dropped frames are recorded when
/// sent, delivered copies when delivered, so frames still in flight are not
/// in the trace yet; a duplicated frame appears twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Which way it went.
    pub direction: Direction,
    /// When it was sent.
    pub sent_at: Instant,
    /// When it was delivered, or (dropped) when it was sent.
    pub at: Instant,
    /// Delivered or dropped, and why.
    pub fate: Fate,
    /// This is the extra copy of a duplicated frame.
    pub duplicate: bool,
    /// The raw Ethernet frame.
    pub bytes: Vec<u8>,
}

impl TraceEntry {
    /// Whether the frame reached the far endpoint.
    pub fn delivered(&self) -> bool {
        self.fate == Fate::Delivered
    }
}

/// Bounds on one [`Pair`] run, so a misbehaving endpoint (a timer that is
/// always due, a frame storm) ends a test instead of hanging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Steps one `drive*` call may take.
    pub max_steps: u64,
    /// Virtual time [`Pair::drive`] and [`Pair::drive_until`] may cover
    /// (the deadline bounds `drive_for` and `advance_to` instead).
    pub max_time: Duration,
    /// Frames taken from one endpoint's `transmit` in one step.
    pub max_transmits_per_step: usize,
    /// Frames delivered (both directions together) in one step.
    pub max_deliveries_per_step: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps: 1_000_000,
            max_time: Duration::from_secs(3600),
            max_transmits_per_step: 1024,
            max_deliveries_per_step: 1024,
        }
    }
}

/// How a `drive*` call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Drive {
    /// Nothing left: no frame in flight, nothing to send, no timer armed.
    Idle,
    /// The deadline of `drive_for`/`advance_to` came with work still pending
    /// (the clock stands at the deadline).
    Deadline,
    /// The condition of [`Pair::drive_until`] became true.
    Reached,
    /// [`Limits::max_steps`] steps were taken.
    StepLimit,
    /// The next event lay beyond [`Limits::max_time`] (the clock stands at
    /// the last event before it).
    TimeLimit,
}

impl Drive {
    /// Whether the run ended because nothing was left to do.
    pub fn is_idle(self) -> bool {
        self == Drive::Idle
    }
}

/// Two endpoints joined by a [`Link`] each way, on a virtual clock.
///
/// The clock starts at the instant given to the constructor and only moves
/// when a `drive*` call or [`advance_to`](Self::advance_to) moves it, always
/// straight to the next event (a due frame or timeout), so a run is exact and
/// as fast as the endpoints. Between calls a test may act on [`a`](Self::a)
/// and [`b`](Self::b) (submit requests, read data) and on the links
/// (filters, impairments).
pub struct Pair<A: Endpoint, B: Endpoint> {
    /// The first endpoint.
    pub a: A,
    /// The second endpoint.
    pub b: B,
    /// Frames from `a` to `b`.
    pub a_to_b: Link,
    /// Frames from `b` to `a`.
    pub b_to_a: Link,
    now: Instant,
    start: Instant,
    limits: Limits,
    tracing: bool,
    trace: Vec<TraceEntry>,
    buf: Vec<u8>,
}

impl<A: Endpoint + fmt::Debug, B: Endpoint + fmt::Debug> fmt::Debug for Pair<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("a", &self.a)
            .field("b", &self.b)
            .field("a_to_b", &self.a_to_b)
            .field("b_to_a", &self.b_to_a)
            .field("elapsed", &self.elapsed())
            .field("trace_len", &self.trace.len())
            .finish_non_exhaustive()
    }
}

impl<A: Endpoint, B: Endpoint> Pair<A, B> {
    /// A pair on perfect 1 ms links ([`LinkConfig::default`]), clock at
    /// `start`.
    pub fn new(start: Instant, a: A, b: B) -> Self {
        Self::with_links(start, a, b, LinkConfig::default(), LinkConfig::default())
    }

    /// A pair with the same impairments both ways; the B→A link's seed is
    /// derived from `config.seed` so the directions are not correlated.
    pub fn symmetric(start: Instant, a: A, b: B, config: LinkConfig) -> Self {
        let back = LinkConfig {
            seed: SplitMix64::new(config.seed).next_u64(),
            ..config.clone()
        };
        Self::with_links(start, a, b, config, back)
    }

    /// A pair with its own impairments each way.
    pub fn with_links(start: Instant, a: A, b: B, a_to_b: LinkConfig, b_to_a: LinkConfig) -> Self {
        Self {
            a,
            b,
            a_to_b: Link::new(a_to_b),
            b_to_a: Link::new(b_to_a),
            now: start,
            start,
            limits: Limits::default(),
            tracing: true,
            trace: Vec::new(),
            buf: vec![0; MAX_FRAME_LEN],
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The instant the clock started at.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The bounds on each run.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the bounds on each run.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Turns recording on (the default) or off (benches: no copy per frame).
    pub fn set_tracing(&mut self, on: bool) {
        self.tracing = on;
    }

    /// Every frame event recorded since the last clear, in order.
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// Forgets the recorded trace.
    pub fn clear_trace(&mut self) {
        self.trace.clear();
    }

    /// Returns the recorded trace and starts a new one.
    pub fn take_trace(&mut self) -> Vec<TraceEntry> {
        std::mem::take(&mut self.trace)
    }

    /// The earliest pending event: a frame due on either link or either
    /// endpoint's timeout. Frames an endpoint has yet to transmit are not
    /// visible here; [`step`](Self::step) finds them.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.a.next_timeout(),
            self.b.next_timeout(),
            self.a_to_b.next_delivery(),
            self.b_to_a.next_delivery(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One round at the current instant: drain both endpoints' transmits
    /// into their links (up to [`Limits::max_transmits_per_step`] each),
    /// deliver the frames due now (up to
    /// [`Limits::max_deliveries_per_step`], earliest first), fire the
    /// timeouts due now. Returns whether anything happened; the clock does
    /// not move.
    pub fn step(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;

        for dir in [Direction::AToB, Direction::BToA] {
            for _ in 0..self.limits.max_transmits_per_step {
                let sent = match dir {
                    Direction::AToB => self.a.transmit(now, &mut self.buf),
                    Direction::BToA => self.b.transmit(now, &mut self.buf),
                };
                let Some(len) = sent else { break };
                progress = true;
                let frame = &self.buf[..len];
                let link = match dir {
                    Direction::AToB => &mut self.a_to_b,
                    Direction::BToA => &mut self.b_to_a,
                };
                if let Admission::Dropped(reason) = link.send(now, frame)
                    && self.tracing
                {
                    self.trace.push(TraceEntry {
                        direction: dir,
                        sent_at: now,
                        at: now,
                        fate: Fate::Dropped(reason),
                        duplicate: false,
                        bytes: frame.to_vec(),
                    });
                }
            }
        }

        for _ in 0..self.limits.max_deliveries_per_step {
            let ab = self.a_to_b.next_delivery().filter(|&t| t <= now);
            let ba = self.b_to_a.next_delivery().filter(|&t| t <= now);
            let dir = match (ab, ba) {
                (Some(x), Some(y)) if y < x => Direction::BToA,
                (Some(_), _) => Direction::AToB,
                (None, Some(_)) => Direction::BToA,
                (None, None) => break,
            };
            let (link, delivery) = match dir {
                Direction::AToB => {
                    let d = self.a_to_b.pop_due(now).expect("a frame is due");
                    self.b.receive(now, &d.bytes);
                    (&mut self.a_to_b, d)
                }
                Direction::BToA => {
                    let d = self.b_to_a.pop_due(now).expect("a frame is due");
                    self.a.receive(now, &d.bytes);
                    (&mut self.b_to_a, d)
                }
            };
            progress = true;
            if self.tracing {
                self.trace.push(TraceEntry {
                    direction: dir,
                    sent_at: delivery.sent_at,
                    at: now,
                    fate: Fate::Delivered,
                    duplicate: delivery.duplicate,
                    bytes: delivery.bytes,
                });
            } else {
                link.recycle(delivery.bytes);
            }
        }

        if self.a.next_timeout().is_some_and(|t| t <= now) {
            self.a.on_timeout(now);
            progress = true;
        }
        if self.b.next_timeout().is_some_and(|t| t <= now) {
            self.b.on_timeout(now);
            progress = true;
        }
        progress
    }

    /// Runs until nothing is left to do ([`Drive::Idle`]: no frame in flight
    /// or to send, no timer armed), moving the clock from event to event,
    /// within [`Limits`]. Endpoints with a timer that never stops (keepalive,
    /// a periodic tick) never go idle: use [`drive_for`](Self::drive_for).
    pub fn drive(&mut self) -> Drive {
        self.run(None, |_| false)
    }

    /// Runs for `duration` of virtual time; the clock ends exactly at
    /// `now + duration` even when nothing happens (to test timers).
    pub fn drive_for(&mut self, duration: Duration) -> Drive {
        let deadline = self.now + duration;
        self.advance_to(deadline)
    }

    /// Runs every event up to and including `deadline` in order, then sets
    /// the clock to `deadline`. Returns [`Drive::Idle`] if nothing is left
    /// pending, [`Drive::Deadline`] otherwise.
    ///
    /// # Panics
    /// If `deadline` is before [`now`](Self::now): time never goes back.
    pub fn advance_to(&mut self, deadline: Instant) -> Drive {
        assert!(
            deadline >= self.now,
            "the virtual clock cannot go backwards"
        );
        self.run(Some(deadline), |_| false)
    }

    /// Runs until `done(self)` holds ([`Drive::Reached`], checked before
    /// every step), or as [`drive`](Self::drive) would stop.
    pub fn drive_until(&mut self, done: impl FnMut(&Self) -> bool) -> Drive {
        self.run(None, done)
    }

    fn run(&mut self, deadline: Option<Instant>, mut done: impl FnMut(&Self) -> bool) -> Drive {
        let time_limit = self.now + self.limits.max_time;
        for _ in 0..self.limits.max_steps {
            if done(self) {
                return Drive::Reached;
            }
            if self.step() {
                continue;
            }
            // Nothing happened at `now`, so every pending event is later.
            let Some(next) = self.next_event() else {
                if let Some(deadline) = deadline {
                    self.now = deadline;
                }
                return Drive::Idle;
            };
            let next = next.max(self.now);
            match deadline {
                Some(deadline) if next > deadline => {
                    self.now = deadline;
                    return Drive::Deadline;
                }
                None if next > time_limit => return Drive::TimeLimit,
                _ => self.now = next,
            }
        }
        Drive::StepLimit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn t0() -> Instant {
        // Any instant will do: only differences matter.
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends `n` numbered frames at 1 µs intervals and collects what comes
    /// out: (index, delivery offset in ns, duplicate).
    fn run_link(config: LinkConfig, n: u32) -> Vec<(u32, u128, bool)> {
        let start = t0();
        let mut link = Link::new(config);
        let mut out = Vec::new();
        let mut now = start;
        for i in 0..n {
            link.send(now, &i.to_be_bytes());
            now += Duration::from_micros(1);
        }
        while let Some(due) = link.next_delivery() {
            let d = link.pop_due(due).expect("due");
            let idx = u32::from_be_bytes(d.bytes[..4].try_into().expect("4 bytes"));
            out.push((idx, (d.due - start).as_nanos(), d.duplicate));
        }
        out
    }

    fn impaired(seed: u64) -> LinkConfig {
        LinkConfig {
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.1,
            reorder_delay: ms(3),
            seed,
            ..LinkConfig::default()
        }
    }

    #[test]
    fn test_link_same_seed_same_trace() {
        let a = run_link(impaired(42), 2000);
        let b = run_link(impaired(42), 2000);
        let c = run_link(impaired(43), 2000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn test_link_loss_rate() {
        let config = LinkConfig {
            loss: 0.1,
            seed: 7,
            ..LinkConfig::default()
        };
        let out = run_link(config, 10_000);
        let lost = 10_000 - out.len();
        assert!((850..=1150).contains(&lost), "lost {lost} of 10000");
    }

    #[test]
    fn test_link_perfect_is_fifo_with_latency() {
        let out = run_link(LinkConfig::default(), 100);
        assert_eq!(out.len(), 100);
        for (i, &(idx, at, dup)) in out.iter().enumerate() {
            assert_eq!(idx as usize, i);
            assert_eq!(at, 1_000_000 + i as u128 * 1000);
            assert!(!dup);
        }
    }

    #[test]
    fn test_link_duplicates_and_reorders() {
        let config = LinkConfig {
            duplicate: 0.05,
            reorder: 0.1,
            seed: 9,
            ..LinkConfig::default()
        };
        let mut link = Link::new(config.clone());
        let out = run_link(config, 1000);
        let dups = out.iter().filter(|d| d.2).count();
        assert!(dups > 20, "{dups} duplicates");
        assert_eq!(out.len(), 1000 + dups);
        let inversions = out.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(inversions > 20, "{inversions} inversions");
        // Stats agree.
        for i in 0..1000u32 {
            link.send(t0(), &i.to_be_bytes());
        }
        let stats = link.stats();
        assert_eq!(stats.offered, 1000);
        assert!(stats.duplicated > 0 && stats.reordered > 0);
    }

    #[test]
    fn test_link_filter_drops_third_frame() {
        let mut link = Link::new(LinkConfig::default());
        let mut seen = 0;
        link.set_filter(move |_| {
            seen += 1;
            if seen == 3 {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        });
        let now = t0();
        let verdicts: Vec<_> = (0..5u8).map(|i| link.send(now, &[i])).collect();
        assert_eq!(verdicts[2], Admission::Dropped(DropReason::Filter));
        assert_eq!(verdicts[3], Admission::Queued { copies: 1 });
        let mut got = Vec::new();
        while let Some(d) = link.pop_due(now + ms(1)) {
            got.push(d.bytes[0]);
        }
        assert_eq!(got, [0, 1, 3, 4]);
        assert_eq!(link.stats().filtered, 1);
        link.clear_filter();
        assert_eq!(link.send(now, &[9]), Admission::Queued { copies: 1 });
    }

    #[test]
    fn test_link_not_due_before_latency() {
        let mut link = Link::new(LinkConfig::default());
        let now = t0();
        link.send(now, b"x");
        assert!(link.pop_due(now).is_none());
        assert!(link.pop_due(now + Duration::from_micros(999)).is_none());
        assert_eq!(link.next_delivery(), Some(now + ms(1)));
        assert!(link.pop_due(now + ms(1)).is_some());
    }

    #[test]
    fn test_link_bandwidth_and_queue_limit() {
        // 8 Mbit/s: a 1000-byte frame takes 1 ms to serialise.
        let mut link = Link::new(LinkConfig {
            latency: Duration::ZERO,
            rate_bps: Some(8_000_000),
            queue_limit: Some(3),
            ..LinkConfig::default()
        });
        let now = t0();
        let frame = [0u8; 1000];
        for _ in 0..3 {
            assert_eq!(link.send(now, &frame), Admission::Queued { copies: 1 });
        }
        assert_eq!(
            link.send(now, &frame),
            Admission::Dropped(DropReason::QueueFull)
        );
        assert_eq!(link.stats().queue_dropped, 1);
        let dues: Vec<_> = std::iter::from_fn(|| link.pop_due(now + ms(10)))
            .map(|d| d.due - now)
            .collect();
        assert_eq!(dues, [ms(1), ms(2), ms(3)]);
    }

    /// Echoes every frame back after `delay`, prefixing nothing; counts
    /// what it received.
    #[derive(Debug, Default)]
    struct Echo {
        delay: Duration,
        pending: Vec<(Instant, Vec<u8>)>,
        ready: Vec<Vec<u8>>,
        received: Vec<(Instant, Vec<u8>)>,
        timeouts: u32,
    }

    impl Endpoint for Echo {
        fn receive(&mut self, now: Instant, frame: &[u8]) {
            self.received.push((now, frame.to_vec()));
            if frame.first() == Some(&b'?') {
                let mut reply = frame.to_vec();
                reply[0] = b'!';
                self.pending.push((now + self.delay, reply));
            }
        }
        fn transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<usize> {
            let frame = self.ready.pop()?;
            buf[..frame.len()].copy_from_slice(&frame);
            Some(frame.len())
        }
        fn next_timeout(&self) -> Option<Instant> {
            self.pending.iter().map(|p| p.0).min()
        }
        fn on_timeout(&mut self, now: Instant) {
            self.timeouts += 1;
            let (due, later) = self.pending.drain(..).partition(|p| p.0 <= now);
            self.pending = later;
            let due: Vec<(Instant, Vec<u8>)> = due;
            // `ready` is popped from the back: reverse to keep order.
            self.ready.extend(due.into_iter().rev().map(|p| p.1));
        }
    }

    fn echo(delay_ms: u64) -> Echo {
        Echo {
            delay: ms(delay_ms),
            ..Echo::default()
        }
    }

    #[test]
    fn test_pair_echo_round_trip_times() {
        let start = t0();
        let mut pair = Pair::new(start, echo(0), echo(5));
        pair.a.ready.push(b"?ping".to_vec());
        assert!(pair.drive().is_idle());
        // 1 ms there, 5 ms in b, 1 ms back.
        assert_eq!(pair.b.received, [(start + ms(1), b"?ping".to_vec())]);
        assert_eq!(pair.a.received, [(start + ms(7), b"!ping".to_vec())]);
        assert_eq!(pair.elapsed(), ms(7));
        let trace = pair.trace();
        assert_eq!(trace.len(), 2);
        assert_eq!(trace[0].direction, Direction::AToB);
        assert_eq!(trace[1].direction, Direction::BToA);
        assert_eq!(trace[1].sent_at, start + ms(6));
        assert!(trace.iter().all(TraceEntry::delivered));
    }

    #[test]
    fn test_pair_advance_to_moves_clock_when_idle() {
        let start = t0();
        let mut pair = Pair::new(start, echo(0), echo(0));
        assert_eq!(pair.drive_for(ms(250)), Drive::Idle);
        assert_eq!(pair.now(), start + ms(250));
        assert_eq!(pair.advance_to(start + ms(300)), Drive::Idle);
        assert_eq!(pair.elapsed(), ms(300));
    }

    #[test]
    fn test_pair_timer_fires_at_its_instant_not_before() {
        let start = t0();
        let mut pair = Pair::new(start, echo(0), echo(100));
        pair.a.ready.push(b"?x".to_vec());
        // b receives at 1 ms, answers at 101 ms.
        assert_eq!(pair.drive_for(ms(100)), Drive::Deadline);
        assert_eq!(pair.b.timeouts, 0);
        assert_eq!(pair.b.next_timeout(), Some(start + ms(101)));
        assert_eq!(pair.drive_for(ms(1)), Drive::Deadline);
        assert_eq!(pair.b.timeouts, 1);
        assert_eq!(pair.drive(), Drive::Idle);
        assert_eq!(pair.a.received[0].0, start + ms(102));
    }

    #[test]
    fn test_pair_trace_records_drops_and_clears() {
        let start = t0();
        let mut pair = Pair::new(start, echo(0), echo(0));
        pair.b_to_a.set_filter(|_| Verdict::Drop);
        pair.a.ready.extend([b"?1".to_vec(), b"?2".to_vec()]);
        assert!(pair.drive().is_idle());
        let dropped: Vec<_> = pair.trace().iter().filter(|e| !e.delivered()).collect();
        assert_eq!(dropped.len(), 2);
        assert!(
            dropped
                .iter()
                .all(|e| e.direction == Direction::BToA
                    && e.fate == Fate::Dropped(DropReason::Filter))
        );
        assert!(pair.a.received.is_empty());
        assert_eq!(pair.take_trace().len(), 4);
        assert!(pair.trace().is_empty());
    }

    #[test]
    fn test_pair_drive_until_and_limits() {
        let start = t0();
        let mut pair = Pair::new(start, echo(0), echo(3));
        pair.a.ready.push(b"?x".to_vec());
        assert_eq!(
            pair.drive_until(|p| !p.b.received.is_empty()),
            Drive::Reached
        );
        assert_eq!(pair.now(), start + ms(1));

        /// Always due: a buggy endpoint must not hang the test.
        #[derive(Debug)]
        struct Spin(Instant);
        impl Endpoint for Spin {
            fn receive(&mut self, _: Instant, _: &[u8]) {}
            fn transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<usize> {
                None
            }
            fn next_timeout(&self) -> Option<Instant> {
                Some(self.0)
            }
            fn on_timeout(&mut self, _: Instant) {}
        }
        let mut spin = Pair::new(start, Spin(start), echo(0));
        spin.set_limits(Limits {
            max_steps: 100,
            ..Limits::default()
        });
        assert_eq!(spin.drive(), Drive::StepLimit);
    }

    #[test]
    fn test_pair_time_limit() {
        let start = t0();
        let mut pair = Pair::new(start, echo(0), echo(7200 * 1000));
        pair.a.ready.push(b"?late".to_vec());
        assert_eq!(pair.drive(), Drive::TimeLimit);
        assert_eq!(pair.now(), start + ms(1));
        assert!(pair.drive_for(Duration::from_secs(7201)).is_idle());
        assert_eq!(pair.a.received.len(), 1);
    }

    #[test]
    fn test_pair_lossy_is_deterministic() {
        let run = |seed| {
            let start = t0();
            let mut pair = Pair::symmetric(start, echo(0), echo(1), impaired(seed));
            pair.a.ready.extend((0..200u8).map(|i| vec![b'?', i]));
            assert!(pair.drive().is_idle());
            pair.trace()
                .iter()
                .map(|e| (e.direction, e.at - start, e.fate, e.bytes.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn test_pair_without_tracing_recycles() {
        let start = t0();
        let mut pair = Pair::new(start, echo(0), echo(0));
        pair.set_tracing(false);
        let got = Rc::new(Cell::new(0));
        let seen = Rc::clone(&got);
        pair.a_to_b.set_filter(move |_| {
            seen.set(seen.get() + 1);
            Verdict::Pass
        });
        pair.a.ready.extend((0..10u8).map(|i| vec![b'?', i]));
        assert!(pair.drive().is_idle());
        assert!(pair.trace().is_empty());
        assert_eq!(got.get(), 10);
        assert_eq!(pair.a.received.len(), 10);
    }
}
